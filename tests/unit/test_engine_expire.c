/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_expire.c - counters that expire (include/tally.h "Expiry"):
 * the absolute expiry survives snapshot and replay, a reopen after the time
 * passed serves nothing, a torn expiry record, active expiry giving memory
 * back, and an expiry through increments, sets, deletes and recreation.
 * The clock is the test's own (opts.clock_ms), moved by hand.
 */
#include "engine_testutil.h"

#include <malloc.h>

#include "table.h"

static int64_t fake_now = 1700000000000; /* Unix ms, 2023-11-14 */

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void opts_fake(tally_options *o)
{
    tt_options(o, NULL);
    o->clock_ms = fake_clock;
    o->sync = TALLY_SYNC_NO; /* nothing here is about fsync */
}

static tally *open_fake(const char *dir)
{
    tally_options o;

    opts_fake(&o);
    return tt_open(dir, &o);
}

static tally *reopen_fake(tally *db, const char *dir)
{
    tt_close(db);
    return open_fake(dir);
}

/* The expiry of a counter that must exist. */
static int64_t expiry_of(tally *db, const char *key)
{
    int64_t v, x = -1;
    int rc = tally_getx(db, key, strlen(key), &v, &x, NULL);

    if (rc != TALLY_OK)
        fail_msg("tally_getx(%s) = %d", key, rc);
    return x;
}

static void setx(tally *db, const char *key, int64_t v, int64_t x)
{
    assert_int_equal(tally_setx(db, key, strlen(key), v, x, NULL), TALLY_OK);
}

static int count_scan(void *ctx, const void *k, size_t kl, int64_t v,
                      int64_t x)
{
    (void)k, (void)kl, (void)v, (void)x;
    ++*(int *)ctx;
    return 0;
}

static int scan_all(tally *db)
{
    uint64_t cur = 0, next;
    int n = 0;

    do {
        assert_int_equal(tally_scanx(db, cur, NULL, 0, 100, count_scan, &n,
                                     &next, NULL), TALLY_OK);
        cur = next;
    } while (cur);
    return n;
}

static void expiry_survives_snapshot_and_replay(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now;
    tally *db = open_fake(dir);

    setx(db, "before", 1, t0 + 10000);
    assert_int_equal(tt_incr(db, "before", 4), 5); /* keeps the expiry */
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    setx(db, "after", 7, t0 + 20000);
    tt_set(db, "plain", 3);
    /* Snapshot and log both hold absolute times: time spent closed does
     * not extend them. */
    fake_now += 5000;
    db = reopen_fake(db, dir);
    assert_int_equal(tt_get(db, "before"), 5);
    assert_int_equal(expiry_of(db, "before"), t0 + 10000);
    assert_int_equal(expiry_of(db, "after"), t0 + 20000);
    assert_int_equal(expiry_of(db, "plain"), 0);
    /* A snapshot taken now keeps them too (PUTX in the snapshot). */
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    db = reopen_fake(db, dir);
    assert_int_equal(expiry_of(db, "after"), t0 + 20000);
    assert_int_equal(tally_count(db), 3);
    tt_close(db);
    fake_now = t0;
}

static void reopen_after_the_time_passed_serves_nothing(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, v;
    tally *db = open_fake(dir);
    tally_stats st;

    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        setx(db, k, i, t0 + 1000 + i);
    }
    tt_set(db, "live", 1);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    setx(db, "inlog", 2, t0 + 500);
    tt_close(db);
    fake_now = t0 + 1100; /* every one of them has expired */
    db = open_fake(dir);
    assert_int_equal(tally_count(db), 1);
    assert_int_equal(tally_get(db, "k0", 2, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tally_get(db, "k99", 3, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tally_get(db, "inlog", 5, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(scan_all(db), 1);
    tally_stats_get(db, &st);
    assert_int_equal(st.counters, 1);
    assert_int_equal(st.expires, 0);
    assert_int_equal(st.expired, 101);
    /* Nor does the next snapshot bring them back. */
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    fake_now = t0;
    db = reopen_fake(db, dir);
    assert_int_equal(tally_count(db), 1);
    tt_close(db);
}

static void expired_counter_is_gone_at_its_millisecond(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, v, x;
    tally *db = open_fake(dir);
    tally_ticket t = 0, rt = 0;

    assert_int_equal(tally_setx(db, "k", 1, 5, t0 + 10, &t), TALLY_OK);
    fake_now = t0 + 9;
    assert_int_equal(tally_getx(db, "k", 1, &v, &x, NULL), TALLY_OK);
    assert_int_equal(tally_count(db), 1);
    fake_now = t0 + 10;
    assert_int_equal(tally_count(db), 0);
    /* The absence rests on the record that set the time. */
    assert_int_equal(tally_get(db, "k", 1, &v, &rt), TALLY_NOTFOUND);
    assert_true(rt >= t);
    assert_int_equal(tally_del(db, "k", 1, NULL), TALLY_NOTFOUND);
    assert_int_equal(tally_expire(db, "k", 1, t0 + 100, NULL),
                     TALLY_NOTFOUND);
    /* An increment starts it again, without the old expiry. */
    assert_int_equal(tt_incr(db, "k", 2), 2);
    assert_int_equal(expiry_of(db, "k"), 0);
    tt_close(db);
    fake_now = t0;
}

static void expiry_through_incr_set_del_and_recreate(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, v, x;
    tally *db = open_fake(dir);

    tt_set(db, "c", 1);
    assert_int_equal(tally_expire(db, "c", 1, t0 + 60000, NULL), TALLY_OK);
    assert_int_equal(expiry_of(db, "c"), t0 + 60000);
    assert_int_equal(tt_incr(db, "c", 1), 2);
    assert_int_equal(expiry_of(db, "c"), t0 + 60000);
    tt_set(db, "c", 10); /* a plain set clears it */
    assert_int_equal(expiry_of(db, "c"), 0);
    setx(db, "c", 11, t0 + 30000);
    assert_int_equal(tally_del(db, "c", 1, NULL), TALLY_OK);
    assert_int_equal(tally_get(db, "c", 1, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tt_incr(db, "c", 3), 3); /* recreated: no expiry */
    assert_int_equal(expiry_of(db, "c"), 0);
    /* tally_expire(0) persists; an expiry in the past deletes. */
    setx(db, "c", 4, t0 + 30000);
    assert_int_equal(tally_expire(db, "c", 1, 0, NULL), TALLY_OK);
    assert_int_equal(expiry_of(db, "c"), 0);
    assert_int_equal(tally_expire(db, "c", 1, t0 - 1, NULL), TALLY_OK);
    assert_int_equal(tally_get(db, "c", 1, &v, NULL), TALLY_NOTFOUND);
    setx(db, "c", 4, t0); /* at now: deleted at once */
    assert_int_equal(tally_get(db, "c", 1, &v, NULL), TALLY_NOTFOUND);
    /* The fixed window: the expiry only when the increment creates. */
    assert_int_equal(tally_incrx(db, "w", 1, 1, TALLY_TTL_IFNEW, t0 + 2000,
                                 &v, &x, NULL), TALLY_OK);
    assert_int_equal(v, 1);
    assert_int_equal(x, t0 + 2000);
    fake_now = t0 + 1000;
    assert_int_equal(tally_incrx(db, "w", 1, 1, TALLY_TTL_IFNEW, t0 + 3000,
                                 &v, &x, NULL), TALLY_OK);
    assert_int_equal(v, 2);
    assert_int_equal(x, t0 + 2000);
    fake_now = t0 + 2000;
    assert_int_equal(tally_incrx(db, "w", 1, 1, TALLY_TTL_IFNEW, t0 + 4000,
                                 &v, &x, NULL), TALLY_OK);
    assert_int_equal(v, 1); /* a new window */
    assert_int_equal(x, t0 + 4000);
    assert_int_equal(tally_setx(db, "bad", 3, 1, -1, NULL), TALLY_EINVAL);
    assert_int_equal(tally_setx(db, "bad", 3, 1, TALLY_EXPIRE_MAX + 1, NULL),
                     TALLY_EINVAL);
    /* All of it replays the same. */
    db = reopen_fake(db, dir);
    assert_int_equal(tt_get(db, "w"), 1);
    assert_int_equal(expiry_of(db, "w"), t0 + 4000);
    assert_int_equal(tally_get(db, "c", 1, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tally_expires(db, &v), 1);
    assert_int_equal(v, 2000);
    tt_close(db);
    fake_now = t0;
}

/* Keys of every length class move to a larger slot, or use their padding,
 * when they get an expiry; the list of handles stays right through
 * persist, re-expire, delete and reuse of slots. */
static void expiry_list_survives_churn(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, avg;
    tally *db = open_fake(dir);
    char k[64];

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2000; i++) {
            snprintf(k, sizeof k, "%.*s%d", i % 40, "abcdefghijklmnopqrstuvwxyz0123456789ABCD", i);
            tt_set(db, k, i);
            assert_int_equal(tally_expire(db, k, strlen(k), t0 + 1000 + i,
                                          NULL), TALLY_OK);
            if (i % 3 == 0)
                assert_int_equal(tally_expire(db, k, strlen(k), 0, NULL),
                                 TALLY_OK);
            if (i % 5 == 0)
                assert_int_equal(tally_del(db, k, strlen(k), NULL), TALLY_OK);
        }
        for (int i = 0; i < 2000; i++) {
            snprintf(k, sizeof k, "%.*s%d", i % 40, "abcdefghijklmnopqrstuvwxyz0123456789ABCD", i);
            int64_t v, x;
            int rc = tally_getx(db, k, strlen(k), &v, &x, NULL);
            if (i % 5 == 0) {
                assert_int_equal(rc, TALLY_NOTFOUND);
                continue;
            }
            assert_int_equal(rc, TALLY_OK);
            assert_int_equal(v, i);
            assert_int_equal(x, i % 3 == 0 ? 0 : t0 + 1000 + i);
        }
    }
    /* 2000 keys, minus 400 deleted; of the 1600, those with i % 3 != 0. */
    assert_int_equal(tally_count(db), 1600);
    assert_int_equal(tally_expires(db, &avg), 1067);
    fake_now = t0 + 1000 + 1000; /* the first half of them expired */
    while (tally_step(db, 64) == 1)
        ;
    for (int i = 0; i < 200; i++)
        tally_step(db, 64);
    int left = 0, gone = 0; /* with an expiry still to come, expired */
    for (int i = 0; i < 2000; i++) {
        if (i % 5 == 0 || i % 3 == 0)
            continue;
        if (1000 + i <= 2000)
            gone++;
        else
            left++;
    }
    assert_int_equal(tally_expires(db, &avg), left);
    assert_int_equal(tally_count(db), 1600 - gone);
    tt_close(db);
    fake_now = t0;
}

static void active_expiry_reclaims_memory(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now;
    tally_options o;
    tally *db;
    tally_stats st;
    char k[32];
    enum { N = 100000 };

    opts_fake(&o);
    db = tt_open(dir, &o);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "short:%08d", i);
        assert_int_equal(tally_setx(db, k, strlen(k), i, t0 + 1 + i % 1000,
                                    NULL), TALLY_OK);
    }
    struct mallinfo2 full = mallinfo2();
    fake_now = t0 + 1000;
    /* Nobody reads them: only the tick's active expiry removes them. */
    for (int i = 0; i < 10000 && tally_step(db, 1000) == 1; i++)
        ;
    for (int i = 0; i < 200; i++)
        tally_step(db, 1000);
    tally_stats_get(db, &st);
    assert_int_equal(st.counters, 0);
    assert_int_equal(st.expires, 0);
    assert_int_equal(st.expired, N);
    /* The same number of new counters fits in the memory they gave back. */
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "other:%08d", i);
        tt_set(db, k, i);
    }
    struct mallinfo2 again = mallinfo2();
    if (again.uordblks > full.uordblks + (1u << 20))
        fail_msg("heap grew from %zu to %zu bytes: expired counters' memory "
                 "was not reused", full.uordblks, again.uordblks);
    assert_int_equal(tally_count(db), N);
    tt_close(db);
    fake_now = t0;
}

/* The newest log's last write holds a PUTX; cut it at every byte:
 * recovery keeps the value before it (no expiry), never a half-read
 * expiry. */
static void torn_tail_inside_an_expiry_record(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, v, x;
    tally *db = open_fake(dir);
    tally_ticket before, end;
    char name[TT_NAME], path[PATH_MAX];
    uint64_t start = 0;
    tt_bytes file = {0};
    tt_image orig;

    tt_set(db, "k", 1);
    before = tally_head(db);
    assert_int_equal(tally_setx(db, "k", 1, 2, t0 + 50000, &end), TALLY_OK);
    assert_int_equal(tally_wait(db, end), TALLY_OK);
    tt_close(db);
    assert_true(tt_newest(dir, "log-", name, &start));
    tt_path(path, dir, name);
    assert_int_equal(tt_read_file(path, &file), 0);
    /* [from, to) is the write that carried the PUTX, which ends at its
     * ticket (a log format that frames writes puts a header before it). */
    size_t from = TT_HDR + (size_t)(before - start);
    size_t to = TT_HDR + (size_t)(end - start);
    assert_true(to - from >= 8 + 19 + 1);
    assert_int_equal(file.p[to - (19 + 1)], 5); /* a PUTX */
    tt_image_load(&orig, dir);
    for (size_t off = from; off < to; off++) {
        tt_image_restore(&orig, dir);
        assert_int_equal(truncate(path, (off_t)off), 0);
        db = open_fake(dir);
        assert_int_equal(tally_getx(db, "k", 1, &v, &x, NULL), TALLY_OK);
        assert_int_equal(v, 1);
        assert_int_equal(x, 0);
        tt_close(db);
    }
    tt_image_restore(&orig, dir);
    db = open_fake(dir);
    assert_int_equal(expiry_of(db, "k"), t0 + 50000);
    tt_close(db);
    tt_image_free(&orig);
    tt_free(&file);
}

/* A directory written by format version 1 (hand-made, PUT records only)
 * opens, takes expiries, and reopens with them. */
static void version_1_directory_takes_expiries(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now;
    tt_bytes log = {0};
    char name[40];

    tt_file_header_v(&log, "TALLYLOG", 0, 0, 1);
    tt_rec_put(&log, "old", 41);
    snprintf(name, sizeof name, "log-%016x.tly", 0);
    tt_write_bytes(dir, name, &log);
    tally *db = open_fake(dir);
    assert_int_equal(tt_get(db, "old"), 41);
    assert_int_equal(tally_expire(db, "old", 3, t0 + 9000, NULL), TALLY_OK);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    db = reopen_fake(db, dir);
    assert_int_equal(expiry_of(db, "old"), t0 + 9000);
    tt_close(db);
    tt_free(&log);
}

static void once_forms_keep_and_set_expiry(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now, v = 0;
    tally *db = open_fake(dir);
    tally_once once = {"id1", 3, 42};
    int replayed = -1;

    setx(db, "k", 1, t0 + 5000);
    assert_int_equal(tally_incr_once(db, &once, "k", 1, 1, &v, &replayed,
                                     NULL), TALLY_OK);
    assert_int_equal(v, 2);
    assert_int_equal(expiry_of(db, "k"), t0 + 5000);
    once.id = "id2";
    assert_int_equal(tally_incrx_once(db, &once, "n", 1, 5, TALLY_TTL_IFNEW,
                                      t0 + 7000, &v, &replayed, NULL),
                     TALLY_OK);
    assert_int_equal(expiry_of(db, "n"), t0 + 7000);
    assert_int_equal(tally_incrx_once(db, &once, "n", 1, 5, TALLY_TTL_IFNEW,
                                      t0 + 7000, &v, &replayed, NULL),
                     TALLY_OK);
    assert_int_equal(replayed, 1);
    assert_int_equal(v, 5);
    once.id = "id3";
    assert_int_equal(tally_setx_once(db, &once, "s", 1, 9, t0 + 8000,
                                     &replayed, NULL), TALLY_OK);
    db = reopen_fake(db, dir);
    assert_int_equal(expiry_of(db, "s"), t0 + 8000);
    assert_int_equal(expiry_of(db, "n"), t0 + 7000);
    assert_int_equal(tt_get(db, "n"), 5);
    tt_close(db);
}

/* Regression (merge with tally_mdel): a multi-delete counted expired
 * counters as existing. */
static void mdel_does_not_count_expired_counters(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t t0 = fake_now;
    tally *db = open_fake(dir);
    const void *keys[3] = {"a", "b", "c"};
    size_t klens[3] = {1, 1, 1};
    uint64_t n = 99;
    tally_ticket t = 0, set_t = 0;

    setx(db, "a", 1, t0 + 10);
    assert_int_equal(tally_setx(db, "b", 1, 2, t0 + 10, &set_t), TALLY_OK);
    tt_set(db, "c", 3);
    fake_now = t0 + 10;
    assert_int_equal(tally_mdel(db, 2, keys, klens, &n, &t), TALLY_OK);
    assert_int_equal(n, 0);
    assert_true(t >= set_t); /* the absences rest on the PUTX records */
    assert_int_equal(tally_mdel(db, 3, keys, klens, &n, NULL), TALLY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tally_count(db), 0);
    tt_close(db);
    fake_now = t0;
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tt_fx_setup, tt_fx_teardown)
    const struct CMUnitTest tests[] = {
        T(expiry_survives_snapshot_and_replay),
        T(reopen_after_the_time_passed_serves_nothing),
        T(expired_counter_is_gone_at_its_millisecond),
        T(expiry_through_incr_set_del_and_recreate),
        T(expiry_list_survives_churn),
        T(active_expiry_reclaims_memory),
        T(torn_tail_inside_an_expiry_record),
        T(version_1_directory_takes_expiries),
        T(once_forms_keep_and_set_expiry),
        T(mdel_does_not_count_expired_counters),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
