/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_once.c - exactly-once changes (tally_*_once, include/tally.h):
 * a repeated id is answered as the first request was and applies nothing;
 * an id reused for another request is refused; the record of ids survives
 * reopen, snapshots and SIGKILL; ids expire after the retention, in memory,
 * on disk and across reopen, so neither grows without bound; the IDEM record
 * is what docs/format.md says.  Durability is controlled at the libc
 * boundary (sync_gate.h, as test_engine_faults.c does), so
 * a case can hold the sync thread (a change stays in flight) or fail it.
 */
#include "engine_testutil.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "codec.h"

#include "sync_gate.h"

static int teardown(void **state)
{
    sync_gate(0, 0);
    return tt_fx_teardown(state);
}

/* ---- Helpers ------------------------------------------------------------ */

static tally_once once_of(const char *id, uint64_t fp)
{
    tally_once o = {id, strlen(id), fp};
    return o;
}

static tally *open_ttl(const char *dir, uint64_t ttl_ms)
{
    tally_options o;

    tt_options(&o, NULL);
    o.once_ttl_ms = ttl_ms;
    return tt_open(dir, &o);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A blocking once-increment of key by delta; returns the value, *rep gets
 * replayed. */
static int64_t incr1(tally *db, const char *id, uint64_t fp, const char *key,
                     int64_t delta, int *rep)
{
    tally_once o = once_of(id, fp);
    int64_t v = 0;
    int rc = tally_incr_once(db, &o, key, strlen(key), delta, &v, rep, NULL);

    if (rc != TALLY_OK)
        fail_msg("tally_incr_once(%s) = %d (%s): %s", id, rc,
                 tally_strerror(rc), tally_errmsg(db));
    return v;
}

/* Records of each type in the newest snapshot of dir. */
static void snapshot_types(const char *dir, int counts[8])
{
    char name[TT_NAME], path[PATH_MAX];
    tt_bytes b = {0};
    size_t off = TT_HDR;
    long n;

    memset(counts, 0, 8 * sizeof(int));
    assert_true(tt_newest(dir, "snap-", name, NULL));
    tt_path(path, dir, name);
    assert_int_equal(tt_read_file(path, &b), 0);
    while ((n = tt_next_record(b.p, b.len, off)) > 0) {
        counts[b.p[off + 8] & 7]++;
        off += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(off, b.len);
    tt_free(&b);
}

/* ---- Replay and reuse ------------------------------------------------- */

static void repeat_is_answered_as_the_first_and_applies_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    int rep = -1;

    tt_set(db, "k", 10);
    assert_int_equal(incr1(db, "id-1", 7, "k", 5, &rep), 15);
    assert_int_equal(rep, 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(incr1(db, "id-1", 7, "k", 5, &rep), 15);
        assert_int_equal(rep, 1);
    }
    assert_int_equal(tt_get(db, "k"), 15);
    /* Another id is another request. */
    assert_int_equal(incr1(db, "id-2", 7, "k", 5, &rep), 20);
    assert_int_equal(rep, 0);
    /* The recorded outcome is replayed, not the current value. */
    tt_incr(db, "k", 100);
    assert_int_equal(incr1(db, "id-1", 7, "k", 5, &rep), 15);
    assert_int_equal(tt_get(db, "k"), 120);

    tally_stats st;
    tally_stats_get(db, &st);
    assert_int_equal(st.once_ids, 2);
    assert_int_equal(tally_once_count(db), 2);
    assert_int_equal(st.once_replays, 101);
    assert_true(st.once_bytes > 0);
    tt_close(db);
}

static void reused_id_is_refused_and_changes_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("same", 2);
    tally_ticket t = 99;
    int64_t v = 1234;
    int rep = 77;

    incr1(db, "same", 1, "k", 5, &rep);
    rep = 77;
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 6, &v, &rep, &t),
                     TALLY_EIDREUSED);
    assert_non_null(strstr(tally_errmsg(db), "different request"));
    /* Outputs untouched, nothing applied, whatever the operation; the
     * ticket is the first request's (the answer shows that the id is
     * known, which a crash before then could undo: include/tally.h). */
    assert_int_equal(v, 1234);
    assert_int_equal(rep, 77);
    assert_int_equal(t, tally_head(db));
    assert_int_equal(tally_set_once(db, &o, "k", 1, 0, &rep, NULL),
                     TALLY_EIDREUSED);
    assert_int_equal(tally_del_once(db, &o, "k", 1, &v, &rep, NULL),
                     TALLY_EIDREUSED);
    assert_int_equal(tt_get(db, "k"), 5);
    /* The first request still replays. */
    assert_int_equal(incr1(db, "same", 1, "k", 5, &rep), 5);
    assert_int_equal(rep, 1);
    tt_close(db);
}

static void set_and_del_replay_their_outcome(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once s = once_of("s1", 11), d = once_of("d1", 12),
               miss = once_of("d2", 13);
    int64_t old = 0;
    int rep = -1;

    assert_int_equal(tally_set_once(db, &s, "k", 1, 42, &rep, NULL), 0);
    assert_int_equal(rep, 0);
    tt_set(db, "k", 50);
    assert_int_equal(tally_set_once(db, &s, "k", 1, 42, &rep, NULL), 0);
    assert_int_equal(rep, 1);
    assert_int_equal(tt_get(db, "k"), 50); /* not set again */

    assert_int_equal(tally_del_once(db, &d, "k", 1, &old, &rep, NULL), 0);
    assert_int_equal(old, 50);
    assert_int_equal(rep, 0);
    assert_false(tt_exists(db, "k"));
    tt_set(db, "k", 60);
    old = 0;
    assert_int_equal(tally_del_once(db, &d, "k", 1, &old, &rep, NULL), 0);
    assert_int_equal(old, 50);
    assert_int_equal(rep, 1);
    assert_int_equal(tt_get(db, "k"), 60); /* not deleted again */

    /* A miss is recorded: its replay stays a miss though k exists now. */
    assert_int_equal(tally_del_once(db, &miss, "nope", 4, &old, &rep, NULL),
                     TALLY_NOTFOUND);
    assert_int_equal(rep, 0);
    tt_set(db, "nope", 1);
    assert_int_equal(tally_del_once(db, &miss, "nope", 4, &old, &rep, NULL),
                     TALLY_NOTFOUND);
    assert_int_equal(rep, 1);
    assert_int_equal(tt_get(db, "nope"), 1);

    /* All of it survives a reopen. */
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tally_once_count(db), 3);
    assert_int_equal(tally_del_once(db, &miss, "nope", 4, &old, &rep, NULL),
                     TALLY_NOTFOUND);
    assert_int_equal(tally_del_once(db, &d, "k", 1, &old, &rep, NULL), 0);
    assert_int_equal(old, 50);
    assert_int_equal(rep, 1);
    assert_int_equal(tt_get(db, "k"), 60);
    assert_int_equal(tt_get(db, "nope"), 1);
    tt_close(db);
}

static void errors_are_not_recorded(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("ovf", 1);
    char id[TALLY_ID_MAX + 1];
    int64_t v = 0;
    int rep = -1;

    tt_set(db, "k", INT64_MAX);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 1, &v, &rep, NULL),
                     TALLY_EOVERFLOW);
    assert_int_equal(tally_once_count(db), 0);
    tt_set(db, "k", 0);
    assert_int_equal(incr1(db, "ovf", 1, "k", 1, &rep), 1);
    assert_int_equal(rep, 0);

    /* Bad ids and keys. */
    memset(id, 'x', sizeof(id));
    o = (tally_once){id, TALLY_ID_MAX + 1, 1};
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 1, &v, &rep, NULL),
                     TALLY_EIDLEN);
    o.idlen = 0;
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 1, &v, &rep, NULL),
                     TALLY_EIDLEN);
    assert_int_equal(tally_incr_once(db, NULL, "k", 1, 1, &v, &rep, NULL),
                     TALLY_EINVAL);
    o.idlen = TALLY_ID_MAX; /* the longest is fine */
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 1, &v, &rep, NULL), 0);
    o = once_of("key", 1);
    assert_int_equal(tally_incr_once(db, &o, id, TALLY_KEY_MAX + 1, 1, &v,
                                     &rep, NULL),
                     TALLY_EKEYLEN);
    assert_int_equal(tally_get(db, "k", 1, &v, NULL), 0);
    assert_int_equal(v, 2);
    tt_close(db);
}

/* ---- In flight and failed syncs --------------------------------------- */

static void repeat_of_an_undurable_first_is_inflight(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("fly", 3);
    tally_ticket t1 = 0, t2 = 0;
    int64_t v = 0;
    int rep = -1;

    tt_set(db, "k", 1); /* durable before the hold */
    sync_gate(1, 0);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 2, &v, &rep, &t1), 0);
    assert_int_equal(v, 3);
    assert_true(t1 > tally_durable(db));
    v = 0;
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 2, &v, &rep, &t2),
                     TALLY_EINFLIGHT);
    assert_int_equal(v, 0);
    assert_int_equal(t2, 0);
    sync_gate(0, 0);
    assert_int_equal(tally_wait(db, t1), 0);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 2, &v, &rep, &t2), 0);
    assert_int_equal(v, 3);
    assert_int_equal(rep, 1);
    assert_int_equal(t2, t1);
    assert_int_equal(tt_get(db, "k"), 3);
    tt_close(db);
}

struct releaser {
    long ms;
};

static void *release_later(void *arg)
{
    sleep_ms(((struct releaser *)arg)->ms);
    sync_gate(0, 0);
    return NULL;
}

static void blocking_repeat_waits_for_the_first(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("wait", 3);
    struct releaser r = {50};
    tally_ticket t1 = 0;
    pthread_t th;
    int64_t v = 0;
    int rep = -1;

    sync_gate(1, 0);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, &t1), 0);
    assert_int_equal(pthread_create(&th, NULL, release_later, &r), 0);
    v = 0;
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, NULL), 0);
    assert_true(tally_durable(db) >= t1);
    assert_int_equal(v, 4);
    assert_int_equal(rep, 1);
    pthread_join(th, NULL);
    tt_close(db);
}

static void repeat_after_a_failed_sync_is_not_durable(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("lost", 3);
    tally_ticket t1 = 0, t2 = 0;
    int64_t v = 0;
    int rep = -1;

    sync_gate(0, 1);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, &t1), 0);
    assert_int_equal(tally_wait(db, t1), TALLY_EFAILED);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, &t2),
                     TALLY_ENOTDURABLE);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, NULL),
                     TALLY_ENOTDURABLE);
    /* A new id is a change, refused like every change. */
    o = once_of("new", 3);
    assert_int_equal(tally_incr_once(db, &o, "k", 1, 4, &v, &rep, &t2),
                     TALLY_EFAILED);
    sync_gate(0, 0);
    assert_int_equal(tally_close(db), TALLY_EFAILED);
    /* The record was written before the sync failed, so the page cache may
     * still hold it: after reopen the retry is a replay or a first request,
     * and either way the increment counts once. */
    db = tt_open(TT_DIR(state), NULL);
    assert_int_equal(incr1(db, "lost", 3, "k", 4, &rep), 4);
    assert_int_equal(tt_get(db, "k"), 4);
    tt_close(db);
}

/* ---- Durable record: reopen, snapshots -------------------------------- */

static void ids_survive_reopen_and_snapshots(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    char id[32];
    int rep = -1, types[8];

    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        incr1(db, id, (uint64_t)i, i % 2 ? "odd" : "even", i, &rep);
    }
    db = tt_reopen(db, dir);
    assert_int_equal(tally_once_count(db), 50);
    assert_int_equal(tally_snapshot(db), 0);
    snapshot_types(dir, types);
    assert_int_equal(types[CODEC_IDEM], 50);
    assert_int_equal(types[CODEC_PUT], 2);
    assert_int_equal(types[CODEC_END], 1);
    /* The log before the snapshot is gone: the ids come from it. */
    db = tt_reopen(db, dir);
    assert_int_equal(tally_once_count(db), 50);
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        incr1(db, id, (uint64_t)i, i % 2 ? "odd" : "even", i, &rep);
        assert_int_equal(rep, 1);
    }
    assert_int_equal(tt_get(db, "even"), 600); /* 0 + 2 + ... + 48 */
    assert_int_equal(tt_get(db, "odd"), 625);  /* 1 + 3 + ... + 49 */
    tt_close(db);
}

/* Ids created and expiring while a background snapshot walks: the ones
 * from before it are in the snapshot, the later ones in the log after S. */
static void ids_made_during_a_fuzzy_snapshot_are_kept(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    char id[32];
    int rep = -1;

    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "a-%d", i);
        incr1(db, id, 1, "k", 1, &rep);
    }
    assert_int_equal(tally_snapshot_begin(db), 0);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "b-%d", i);
        incr1(db, id, 1, "k", 1, &rep); /* each gives the walk a slice */
        tally_step(db, 1);
    }
    while (tally_step(db, 1) == 1)
        ;
    tally_stats st;
    tally_stats_get(db, &st);
    assert_int_equal(st.snapshots, 1);
    db = tt_reopen(db, dir);
    assert_int_equal(tally_once_count(db), 600);
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "a-%d", i);
        incr1(db, id, 1, "k", 1, &rep);
        assert_int_equal(rep, 1);
        snprintf(id, sizeof(id), "b-%d", i);
        incr1(db, id, 1, "k", 1, &rep);
        assert_int_equal(rep, 1);
    }
    assert_int_equal(tt_get(db, "k"), 600);
    tt_close(db);
}

/* ---- Expiry -------------------------------------------------------------- */

static void ids_expire_in_memory(void **state)
{
    tally *db = open_ttl(TT_DIR(state), 100);
    int rep = -1;

    assert_int_equal(incr1(db, "e", 1, "k", 1, &rep), 1);
    assert_int_equal(incr1(db, "e", 1, "k", 1, &rep), 1);
    assert_int_equal(rep, 1);
    sleep_ms(150);
    /* Forgotten: the same id is a new request now. */
    assert_int_equal(incr1(db, "e", 1, "k", 1, &rep), 2);
    assert_int_equal(rep, 0);
    assert_int_equal(tally_once_count(db), 1);
    /* tally_step drops expired ids with no request coming. */
    sleep_ms(150);
    assert_int_equal(tally_step(db, 16), 0);
    assert_int_equal(tally_once_count(db), 0);
    tt_close(db);
}

static void expired_ids_are_not_reloaded_nor_snapshotted(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = open_ttl(dir, 200);
    int rep = -1, types[8];

    incr1(db, "old1", 1, "k", 1, &rep);
    incr1(db, "old2", 1, "k", 1, &rep);
    assert_int_equal(tally_close(db), 0);
    sleep_ms(250);
    db = open_ttl(dir, 200);
    assert_int_equal(tally_once_count(db), 0); /* skipped by replay */
    incr1(db, "new", 1, "k", 1, &rep);
    sleep_ms(250);
    incr1(db, "newer", 1, "k", 1, &rep); /* pops "new" */
    assert_int_equal(tally_once_count(db), 1);
    assert_int_equal(tally_snapshot(db), 0);
    snapshot_types(dir, types);
    assert_int_equal(types[CODEC_IDEM], 1);
    assert_int_equal(tally_close(db), 0);
    /* A longer retention at the next open keeps what is on disk. */
    db = open_ttl(dir, 60000);
    assert_int_equal(tally_once_count(db), 1);
    assert_int_equal(incr1(db, "newer", 1, "k", 1, &rep), 4);
    assert_int_equal(rep, 1);
    tt_close(db);
}

/* Many ids through a short retention: the table and the snapshots stay the
 * size of one window, not of the history. */
static void memory_and_files_stay_bounded(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = open_ttl(dir, 30);
    tally_once o;
    tally_stats st;
    tally_ticket t = 0;
    uint64_t peak_ids = 0, peak_bytes = 0, total = 0;
    char id[40];
    int rep;

    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 2000; i++, total++) {
            int n = snprintf(id, sizeof(id), "r%d-%d", round, i);
            o = (tally_once){id, (size_t)n, 1};
            assert_int_equal(tally_incr_once(db, &o, "k", 1, 1, NULL, &rep,
                                             &t), 0);
        }
        tally_stats_get(db, &st);
        if (st.once_ids > peak_ids)
            peak_ids = st.once_ids;
        if (st.once_bytes > peak_bytes)
            peak_bytes = st.once_bytes;
        sleep_ms(40);
    }
    assert_int_equal(tally_wait(db, t), 0);
    assert_int_equal(tt_get(db, "k"), (int64_t)total);
    assert_true(peak_ids <= 4000);
    sleep_ms(40);
    while (tally_step(db, 1000) == 1)
        ;
    tally_stats_get(db, &st);
    assert_int_equal(st.once_ids, 0);
    assert_int_equal(st.once_bytes, 0);
    print_message("      %" PRIu64 " ids, peak %" PRIu64 " live, %" PRIu64
                  " bytes at peak (%.0f per id)\n", total, peak_ids,
                  peak_bytes, (double)peak_bytes / (double)peak_ids);
    assert_int_equal(tally_snapshot(db), 0);
    int types[8];
    snapshot_types(dir, types);
    assert_int_equal(types[CODEC_IDEM], 0);
    tt_close(db);
}

/* ---- Other changes untouched ------------------------------------------ */

static void mset_and_plain_changes_are_untouched(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    const void *keys[] = {"a", "b"};
    const size_t klens[] = {1, 1};
    const int64_t vals[] = {5, 6};
    int rep;

    incr1(db, "x", 1, "a", 1, &rep);
    assert_int_equal(tally_mset(db, 2, keys, klens, vals, NULL), 0);
    tt_incr(db, "b", 1);
    assert_int_equal(tally_del(db, "a", 1, NULL), 0);
    incr1(db, "y", 1, "a", 3, &rep);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "a"), 3);
    assert_int_equal(tt_get(db, "b"), 7);
    assert_int_equal(tally_once_count(db), 2);
    assert_int_equal(tally_check(dir, NULL), TALLY_ELOCKED);
    tt_close(db);
    char report[TALLY_ERRMAX];
    assert_int_equal(tally_check(dir, report), 0);
    assert_int_equal(tally_repair(dir, report), 0);
    db = tt_open(dir, NULL);
    assert_int_equal(tally_once_count(db), 2);
    tt_close(db);
}

/* ---- The record on disk -------------------------------------------------- */

static void idem_record_is_the_documented_bytes(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tally_once o = {"ID", 2, 0x0102030405060708ULL};
    char name[TT_NAME], path[PATH_MAX];
    tt_bytes b = {0};
    int64_t before, v;
    int rep;

    before = (int64_t)time(NULL) * 1000;
    assert_int_equal(tally_incr_once(db, &o, "k", 1, -3, &v, &rep, NULL), 0);
    tt_close(db);
    assert_true(tt_newest(dir, "log-", name, NULL));
    tt_path(path, dir, name);
    assert_int_equal(tt_read_file(path, &b), 0);
    /* One BATCH record: u8 3, u32 n = 2, (u32 12, PUT k = -3), (u32 33,
     * IDEM). */
    const uint8_t *r = b.p + TT_HDR + TT_FRAME, *s;
    long n = tt_next_record(b.p, b.len, TT_HDR + TT_FRAME);
    assert_int_equal(n, 8 + 5 + 4 + 12 + 4 + 33);
    assert_int_equal(r[8], 3);
    assert_int_equal(tt_get_le(r + 9, 4), 2);
    assert_int_equal(tt_get_le(r + 13, 4), 12);
    assert_int_equal(r[17], 1);
    assert_int_equal((int64_t)tt_get_le(r + 20, 8), -3);
    s = r + 13 + 4 + 12;
    assert_int_equal(tt_get_le(s, 4), 33);
    s += 4;
    assert_int_equal(s[0], 6);                             /* IDEM */
    assert_int_equal(tt_get_le(s + 1, 2), 2);              /* idlen */
    assert_int_equal(tt_get_le(s + 3, 8), 0x0102030405060708ULL);
    int64_t created = (int64_t)tt_get_le(s + 11, 8);
    assert_true(created >= before && created < before + 60000);
    assert_int_equal(tt_get_le(s + 19, 4), TALLY_OK);      /* code */
    assert_int_equal((int64_t)tt_get_le(s + 23, 8), -3);   /* value */
    assert_memory_equal(s + 31, "ID", 2);
    /* Then the clean close's mark: a frame with no records. */
    assert_int_equal(tt_next_frame(b.p, b.len, TT_HDR + TT_FRAME + (size_t)n),
                     TT_FRAME);
    tt_free(&b);
}

static void idem_codec_round_trip_and_malformed(void **state)
{
    unsigned char buf[CODEC_REC_HDR + 31 + TALLY_ID_MAX];
    struct codec_idem in = {"abc", 3, 42, 1700000000000LL, TALLY_NOTFOUND, -7,
                              NULL, 0};
    struct codec_rec r;
    size_t used, claimed, n = codec_idem(buf, &in);
    const char *why = NULL;

    (void)state;
    assert_int_equal(n, codec_idem_size(3));
    assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                     CODEC_OK);
    assert_int_equal(r.type, CODEC_IDEM);
    assert_int_equal(used, n);
    assert_int_equal(r.idem.idlen, 3);
    assert_memory_equal(r.idem.id, "abc", 3);
    assert_int_equal(r.idem.fp, 42);
    assert_int_equal(r.idem.created_ms, 1700000000000LL);
    assert_int_equal(r.idem.code, TALLY_NOTFOUND);
    assert_int_equal(r.idem.value, -7);

    /* Behind a valid CRC: an unknown outcome code, an empty id, a short
     * body are corruption, not a newer format. */
    uint8_t body[64];
    memcpy(body, buf + 8, n - 8);
    body[19] = 9;
    tt_bytes rec = {0}, bb = {0};
    tt_put(&bb, body, n - 8);
    tt_record(&rec, &bb);
    assert_int_equal(codec_decode(rec.p, rec.len, &r, &used, &claimed, &why),
                     CODEC_EBODY);
    tt_free(&rec);
    tt_free(&bb);
    memcpy(body, buf + 8, n - 8);
    body[1] = 0; /* idlen 0 */
    tt_put(&bb, body, 31);
    tt_record(&rec, &bb);
    assert_int_equal(codec_decode(rec.p, rec.len, &r, &used, &claimed, &why),
                     CODEC_EBODY);
    tt_free(&rec);
    tt_free(&bb);
    memcpy(body, buf + 8, n - 8);
    tt_put(&bb, body, n - 9); /* one id byte short */
    tt_record(&rec, &bb);
    assert_int_equal(codec_decode(rec.p, rec.len, &r, &used, &claimed, &why),
                     CODEC_EBODY);
    tt_free(&rec);
    tt_free(&bb);
}

/* ---- Crash ---------------------------------------------------------------
 * A child does once-increments of 1..N (ids "c-<i>", delta i) one after
 * the other, blocking, and writes each acknowledged i to a pipe; the parent
 * SIGKILLs it after a few, reopens the directory and retries every id: the
 * acknowledged ones must replay, and after the retries the counter holds
 * exactly 1 + 2 + ... + N, whatever the kill cut. */

#define CRASH_N 200

static void crash_child(const char *dir, int wfd)
{
    tally_options o;
    tally *db = NULL;
    char id[16];

    tt_options(&o, NULL);
    if (tally_open(dir, &o, &db, NULL) != 0)
        _exit(2);
    for (int i = 1; i <= CRASH_N; i++) {
        int n = snprintf(id, sizeof(id), "c-%d", i);
        tally_once once = {id, (size_t)n, (uint64_t)i};
        int rep;
        if (tally_incr_once(db, &once, "c", 1, i, NULL, &rep, NULL) != 0 ||
            write(wfd, &i, sizeof(i)) != sizeof(i))
            _exit(3);
    }
    for (;;)
        pause();
}

static void retry_after_sigkill_is_a_replay(void **state)
{
    const char *dir = TT_DIR(state);
    int fds[2], i, acked = 0, status, rep;
    char id[16];
    pid_t pid;

    for (int round = 0; round < 3; round++) {
        char sub[PATH_MAX], name[8];
        snprintf(name, sizeof(name), "r%d", round);
        tt_path(sub, dir, name);
        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(sub, fds[1]);
        }
        close(fds[1]);
        /* Kill after 1, 20 and 120 acknowledgements. */
        int kill_at = round == 0 ? 1 : round == 1 ? 20 : 120;
        acked = 0;
        while (acked < kill_at && read(fds[0], &i, sizeof(i)) == sizeof(i))
            acked = i;
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        while (read(fds[0], &i, sizeof(i)) == sizeof(i)) /* sent before */
            acked = i;
        close(fds[0]);
        assert_true(acked >= kill_at);

        tally *db = tt_open(sub, NULL);
        int64_t before = tt_exists(db, "c") ? tt_get(db, "c") : 0;
        assert_true(before >= (int64_t)acked * (acked + 1) / 2);
        for (i = 1; i <= CRASH_N; i++) {
            incr1(db, (snprintf(id, sizeof(id), "c-%d", i), id), (uint64_t)i,
                  "c", i, &rep);
            if (i <= acked)
                assert_int_equal(rep, 1);
        }
        assert_int_equal(tt_get(db, "c"), CRASH_N * (CRASH_N + 1) / 2);
        tt_close(db);
        tt_rmtree(sub);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tt_fx_setup, teardown)
        T(repeat_is_answered_as_the_first_and_applies_nothing),
        T(reused_id_is_refused_and_changes_nothing),
        T(set_and_del_replay_their_outcome),
        T(errors_are_not_recorded),
        T(repeat_of_an_undurable_first_is_inflight),
        T(blocking_repeat_waits_for_the_first),
        T(repeat_after_a_failed_sync_is_not_durable),
        T(ids_survive_reopen_and_snapshots),
        T(ids_made_during_a_fuzzy_snapshot_are_kept),
        T(ids_expire_in_memory),
        T(expired_ids_are_not_reloaded_nor_snapshotted),
        T(memory_and_files_stay_bounded),
        T(mset_and_plain_changes_are_untouched),
        T(idem_record_is_the_documented_bytes),
        T(idem_codec_round_trip_and_malformed),
        T(retry_after_sigkill_is_a_replay),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
