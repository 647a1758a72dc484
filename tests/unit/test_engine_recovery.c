/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_recovery.c - black-box tests of what tally_open() makes of a
 * data directory: empty, snapshot only, log only, both; files written by
 * hand from the format (docs/format.md, summed up in engine_testutil.h) and
 * files the engine wrote, checked byte for byte; a log tail torn at every
 * byte of its last record; bit flips in the log and the snapshot, a missing
 * log file; what tally_check and tally_repair make of those; and scans.
 * Every case runs in a fresh temporary directory.  Crashes of a live process
 * are in test_engine_crash.c, resource faults in test_engine_faults.c.
 */
#include "engine_testutil.h"

#include <ctype.h>

/* Open dir expecting refusal with code want; the message goes to err.
 * `what` (printf-style) says what was done to dir, for the failure message. */
static void open_refused(const char *dir, int want, char err[TALLY_ERRMAX],
                         const char *what, ...)
    __attribute__((format(printf, 4, 5)));
static void open_refused(const char *dir, int want, char err[TALLY_ERRMAX],
                         const char *what, ...)
{
    char done[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(done, sizeof(done), what, ap);
    va_end(ap);
    tally_options o;
    tally *db = NULL;
    tt_options(&o, NULL);
    err[0] = 0;
    int rc = tally_open(dir, &o, &db, err);
    if (rc != want) {
        if (db)
            tally_close(db);
        fail_msg("%s: tally_open = %d (%s), want %d; err: %s", done, rc,
                 tally_strerror(rc), want, err);
    }
    assert_null(db);
}

/* The record [from, to) must be exactly `want` (a framed record). */
static void assert_record(const char *dir, tally_ticket from, tally_ticket to,
                          const tt_bytes *want)
{
    tt_located loc = {0};
    tt_locate(dir, from, to, &loc);
    assert_int_equal(to - from, want->len);
    if (memcmp(loc.file.p + loc.off, want->p, want->len) != 0)
        fail_msg("record at %s offset %zu differs from the format", loc.name,
                 loc.off);
    tt_free(&loc.file);
}

/* The frame at LSN lsn must be valid, total bytes long (header included),
 * and say synced and flags as given. */
static void assert_frame(const char *dir, tally_ticket lsn, size_t total,
                         uint64_t synced, uint32_t flags)
{
    tt_located loc = {0};
    tt_locate(dir, lsn, lsn + total, &loc);
    const uint8_t *f = loc.file.p + loc.off;
    assert_int_equal(tt_next_frame(loc.file.p, loc.file.len, loc.off),
                     (long)total);
    assert_int_equal(tt_get_le(f + 8, 8), lsn);
    assert_int_equal(tt_get_le(f + 16, 8), synced);
    assert_int_equal(tt_get_le(f + 24, 4),
                     tt_zero_pieces(f, total, loc.off));
    assert_int_equal(tt_get_le(f + 28, 4), flags);
    tt_free(&loc.file);
}

static char *logname(char out[TT_NAME], uint64_t lsn)
{
    snprintf(out, TT_NAME, "log-%016" PRIx64 ".tly", lsn);
    return out;
}

/* Write a log file starting at lsn holding recs, then 16 zero bytes; returns
 * the LSN after its last record. */
static uint64_t write_log(const char *dir, uint64_t lsn, const tt_bytes *recs)
{
    tt_bytes f = {0};
    char name[TT_NAME];
    static const uint8_t zeros[16];
    tt_file_header(&f, "TALLYLOG", lsn, 0);
    tt_put(&f, recs->p, recs->len);
    tt_put(&f, zeros, sizeof(zeros));
    tt_write_bytes(dir, logname(name, lsn), &f);
    tt_free(&f);
    return lsn + recs->len;
}

/* ---- Empty and missing directories -------------------------------------- */

static void empty_dir_opens_empty(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tally_count(db), 0);
    assert_false(tt_exists(db, "x"));
    db = tt_reopen(db, dir);
    assert_int_equal(tally_count(db), 0);
    tt_close(db);
}

static void missing_dir_created_only_when_asked(void **state)
{
    char sub[PATH_MAX], err[TALLY_ERRMAX] = "";
    struct stat st;
    tally_options o;
    tally *db = NULL;
    tt_path(sub, TT_DIR(state), "not-yet");
    tt_options(&o, NULL);
    o.create = 0;
    assert_true(tally_open(sub, &o, &db, err) < 0);
    assert_null(db);
    assert_true(err[0] != 0);
    assert_int_not_equal(stat(sub, &st), 0);

    o.create = 1;
    db = tt_open(sub, &o);
    tt_set(db, "k", 7);
    db = tt_reopen(db, sub);
    assert_int_equal(tt_get(db, "k"), 7);
    tt_close(db);
}

/* ---- The three scenarios the service was asked for ---------------------- */

/* c is set to 10 and the database reopened; then c is incremented `incrs`
 * times and after another reopen it must read 10 + incrs. */
static void reopen_scenario(const char *dir, int incrs)
{
    tally *db = tt_open(dir, NULL);
    tt_set(db, "c", 10);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "c"), 10);
    for (int i = 1; i <= incrs; i++)
        assert_int_equal(tt_incr(db, "c", 1), 10 + i);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "c"), 10 + incrs);
    tt_close(db);
}

static void set_10_reads_10_after_reopen(void **state)
{
    reopen_scenario(TT_DIR(state), 0);
}

static void incr_10_reads_11_after_reopen(void **state)
{
    reopen_scenario(TT_DIR(state), 1);
}

static void incr_10_five_times_reads_15_after_reopen(void **state)
{
    reopen_scenario(TT_DIR(state), 5);
}

/* ---- Log only, snapshot only, both -------------------------------------- */

/* Some history: a set, increments, a delete, a batch.  Afterwards
 * a=7, b=-3, d=4, e=5 and c does not exist. */
static void write_history(tally *db)
{
    const void *keys[3] = {"d", "c", "e"};
    size_t klens[3] = {1, 1, 1};
    int64_t vals[3] = {4, 9, 5};
    tt_set(db, "a", 5);
    tt_incr(db, "a", 2);
    tt_incr(db, "b", -3);
    assert_int_equal(tally_mset(db, 3, keys, klens, vals, NULL), TALLY_OK);
    assert_int_equal(tally_del(db, "c", 1, NULL), TALLY_OK);
}

static void check_history(tally *db)
{
    assert_int_equal(tt_get(db, "a"), 7);
    assert_int_equal(tt_get(db, "b"), -3);
    assert_false(tt_exists(db, "c"));
    assert_int_equal(tt_get(db, "d"), 4);
    assert_int_equal(tt_get(db, "e"), 5);
    assert_int_equal(tally_count(db), 4);
}

/* The snapshot file: header, PUT records, END with their count.  Returns S
 * and fills *puts. */
static uint64_t check_snapshot_file(const char *dir, uint64_t *puts)
{
    char name[TT_NAME], path[PATH_MAX];
    uint64_t s = 0, hdr_s = 0, n = 0;
    tt_bytes b = {0};
    assert_true(tt_newest(dir, "snap-", name, &s));
    tt_path(path, dir, name);
    assert_int_equal(tt_read_file(path, &b), 0);
    assert_true(tt_header_ok(b.p, b.len, "TALLYSNP", &hdr_s));
    assert_int_equal(hdr_s, s);
    size_t off = TT_HDR;
    for (;;) {
        long sz = tt_next_record(b.p, b.len, off);
        if (sz <= 0)
            fail_msg("%s: bad or missing record at %zu", name, off);
        uint8_t type = b.p[off + 8];
        off += (size_t)sz;
        if (type == TT_END) {
            assert_int_equal(sz, 8 + 9);
            assert_int_equal(tt_get_le(b.p + off - 8, 8), n);
            break;
        }
        assert_int_equal(type, TT_PUT);
        n++;
    }
    assert_int_equal(off, b.len); /* nothing after END */
    tt_free(&b);
    *puts = n;
    return s;
}

static void log_only(void **state)
{
    const char *dir = TT_DIR(state);
    char names[TT_FILES][TT_NAME];
    tally_stats st;
    tally *db = tt_open(dir, NULL);
    write_history(db);
    tt_close(db);
    assert_int_equal(tt_list(dir, "snap-", ".tly", names, TT_FILES), 0);
    assert_true(tt_list(dir, "log-", ".tly", names, TT_FILES) >= 1);
    db = tt_open(dir, NULL);
    check_history(db);
    tally_stats_get(db, &st);
    assert_true(st.recovered_records >= 5);
    assert_int_equal(st.torn_bytes, 0);
    tt_close(db);
}

static void snapshot_only(void **state)
{
    const char *dir = TT_DIR(state);
    uint64_t puts;
    tally *db = tt_open(dir, NULL);
    write_history(db);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tally_ticket head = tally_head(db);
    tt_close(db);

    /* Nothing to replay after S: the counters come from the snapshot. */
    uint64_t s = check_snapshot_file(dir, &puts);
    assert_int_equal(puts, 4);
    assert_true(s >= head);
    db = tt_open(dir, NULL);
    check_history(db);
    tt_close(db);
}

static void snapshot_then_log(void **state)
{
    const char *dir = TT_DIR(state);
    uint64_t puts;
    tally *db = tt_open(dir, NULL);
    write_history(db);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_incr(db, "a", 10);                                /* 17 */
    assert_int_equal(tally_del(db, "b", 1, NULL), TALLY_OK); /* gone */
    tt_set(db, "c", 33);                                 /* back */
    tt_set(db, "f", -6);                                 /* new */
    tally_ticket head = tally_head(db);
    tt_close(db);

    uint64_t s = check_snapshot_file(dir, &puts);
    assert_int_equal(puts, 4);
    assert_true(s < head);
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "a"), 17);
    assert_false(tt_exists(db, "b"));
    assert_int_equal(tt_get(db, "c"), 33);
    assert_int_equal(tt_get(db, "d"), 4);
    assert_int_equal(tt_get(db, "e"), 5);
    assert_int_equal(tt_get(db, "f"), -6);
    assert_int_equal(tally_count(db), 5);
    tt_close(db);
}

/* ---- Files written from the format, and files the engine wrote ---------- */

/* A log written by hand: every record type, a BATCH with a DEL inside. */
static void handmade_log_is_replayed(void **state)
{
    const char *dir = TT_DIR(state);
    tt_bytes recs = {0}, body = {0}, want = {0};
    tt_rec_put(&recs, "a", 1);
    tt_rec_put(&recs, "b", -2);
    tt_rec_del(&recs, "a");
    tt_rec_put(&recs, "c", INT64_MIN);
    tt_put_le(&body, TT_BATCH, 1);
    tt_put_le(&body, 3, 4);
    tt_bytes sub = {0};
    tt_body_put(&sub, "d", 1, 4);
    tt_put_le(&body, sub.len, 4);
    tt_put(&body, sub.p, sub.len);
    sub.len = 0;
    tt_body_del(&sub, "b", 1);
    tt_put_le(&body, sub.len, 4);
    tt_put(&body, sub.p, sub.len);
    sub.len = 0;
    tt_body_put(&sub, "e", 1, INT64_MAX);
    tt_put_le(&body, sub.len, 4);
    tt_put(&body, sub.p, sub.len);
    tt_record(&recs, &body);
    uint64_t end = write_log(dir, 0, &recs);

    tally *db = tt_open(dir, NULL);
    assert_false(tt_exists(db, "a"));
    assert_false(tt_exists(db, "b"));
    assert_int_equal(tt_get(db, "c"), INT64_MIN);
    assert_int_equal(tt_get(db, "d"), 4);
    assert_int_equal(tt_get(db, "e"), INT64_MAX);
    assert_int_equal(tally_count(db), 3);

    /* That was a version 1 log: the next change goes into a new, framed
     * log starting right after the last record, in a frame of its own. */
    tally_ticket t = 0;
    assert_int_equal(tally_set(db, "x", 1, 9, &t), TALLY_OK);
    tt_rec_put(&want, "x", 9);
    assert_int_equal(t, end + TT_FRAME + want.len);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    assert_true(tally_durable(db) >= t);
    tt_close(db);
    char names[TT_FILES][TT_NAME], name[TT_NAME];
    assert_int_equal(tt_list(dir, "log-", ".tly", names, TT_FILES), 2);
    assert_string_equal(names[1], logname(name, end));
    assert_frame(dir, end, TT_FRAME + want.len, end, 0);
    assert_record(dir, end + TT_FRAME, t, &want);
    assert_frame(dir, t, TT_FRAME, t, TT_CLOSE);
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "x"), 9);
    assert_int_equal(tt_get(db, "d"), 4);
    tt_close(db);
    tt_free(&recs), tt_free(&body), tt_free(&sub), tt_free(&want);
}

/* A snapshot at S = 0x2000 and the log after it, written by hand. */
static void handmade_snapshot_and_log_are_replayed(void **state)
{
    const char *dir = TT_DIR(state);
    tt_bytes snap = {0}, recs = {0};
    tt_file_header(&snap, "TALLYSNP", 0x2000, 3);
    tt_rec_put(&snap, "a", 10);
    tt_rec_put(&snap, "b", 20);
    tt_rec_put(&snap, "c", 30);
    tt_rec_end(&snap, 3);
    tt_write_bytes(dir, "snap-0000000000002000.tly", &snap);
    tt_rec_put(&recs, "a", 11);
    tt_rec_del(&recs, "b");
    tt_rec_put(&recs, "d", 40);
    write_log(dir, 0x2000, &recs);

    tally *db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "a"), 11);
    assert_false(tt_exists(db, "b"));
    assert_int_equal(tt_get(db, "c"), 30);
    assert_int_equal(tt_get(db, "d"), 40);
    assert_int_equal(tally_count(db), 3);
    assert_true(tally_head(db) >= 0x2000 + recs.len);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "a"), 11);
    assert_int_equal(tally_count(db), 3);
    tt_close(db);
    tt_free(&snap), tt_free(&recs);
}

/* What the engine writes is the format, byte for byte: incr is logged as a
 * PUT of the new value, mset as one BATCH, a binary key as its bytes; the
 * changes of one write (here: one cork) are one frame, and a clean close
 * ends the log with a CLOSE frame. */
static void engine_writes_the_format(void **state)
{
    const char *dir = TT_DIR(state);
    tally_ticket t[6];
    tt_bytes want = {0}, body = {0}, sub = {0};
    const void *keys[2] = {"b", "c\0d"};
    size_t klens[2] = {1, 3};
    int64_t vals[2] = {2, -3};
    tally *db = tt_open(dir, NULL);
    tally_ticket frame = tally_head(db);
    tally_cork(db);
    t[0] = frame + TT_FRAME;
    assert_int_equal(tally_set(db, "a", 1, 1, &t[1]), TALLY_OK);
    assert_int_equal(tally_incr(db, "a", 1, 5, NULL, &t[2]), TALLY_OK);
    assert_int_equal(tally_del(db, "a", 1, &t[3]), TALLY_OK);
    assert_int_equal(tally_mset(db, 2, keys, klens, vals, &t[4]), TALLY_OK);
    assert_int_equal(tally_set(db, "\0\xff", 2, 0x0102030405060708, &t[5]),
                     TALLY_OK);
    assert_int_equal(tally_head(db), t[5]);
    tally_uncork(db);
    tt_close(db);

    assert_frame(dir, frame, (size_t)(t[5] - frame), frame, 0);
    tt_rec_put(&want, "a", 1);
    assert_record(dir, t[0], t[1], &want);
    want.len = 0;
    tt_rec_put(&want, "a", 6);
    assert_record(dir, t[1], t[2], &want);
    want.len = 0;
    tt_rec_del(&want, "a");
    assert_record(dir, t[2], t[3], &want);
    want.len = 0;
    tt_put_le(&body, TT_BATCH, 1);
    tt_put_le(&body, 2, 4);
    for (int i = 0; i < 2; i++) {
        sub.len = 0;
        tt_body_put(&sub, keys[i], klens[i], vals[i]);
        tt_put_le(&body, sub.len, 4);
        tt_put(&body, sub.p, sub.len);
    }
    tt_record(&want, &body);
    assert_record(dir, t[3], t[4], &want);
    want.len = 0;
    body.len = 0;
    tt_body_put(&body, "\0\xff", 2, 0x0102030405060708);
    tt_record(&want, &body);
    assert_record(dir, t[4], t[5], &want);

    /* Then the CLOSE frame, and the end of the log is marked by zeros (or
     * the end of the file). */
    assert_frame(dir, t[5], TT_FRAME, t[5], TT_CLOSE);
    tt_located loc = {0};
    tt_locate(dir, t[5], t[5], &loc);
    assert_int_equal(tt_next_frame(loc.file.p, loc.file.len, loc.off + TT_FRAME),
                     0);
    tt_free(&loc.file), tt_free(&want), tt_free(&body), tt_free(&sub);
}

/* ---- Deleted and recreated ---------------------------------------------- */

static void deleted_and_recreated_in_the_log(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tt_set(db, "k", 5);
    assert_int_equal(tally_del(db, "k", 1, NULL), TALLY_OK);
    tt_set(db, "k", 7);
    tt_set(db, "j", 1);
    assert_int_equal(tally_del(db, "j", 1, NULL), TALLY_OK);
    assert_int_equal(tally_del(db, "never", 5, NULL), TALLY_NOTFOUND);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "k"), 7);
    assert_false(tt_exists(db, "j"));
    assert_false(tt_exists(db, "never"));
    assert_int_equal(tally_del(db, "k", 1, NULL), TALLY_OK);
    db = tt_reopen(db, dir);
    assert_false(tt_exists(db, "k"));
    assert_int_equal(tt_incr(db, "k", 8), 8); /* recreated at 0 */
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "k"), 8);
    assert_int_equal(tally_count(db), 1);
    tt_close(db);
}

static void deleted_and_recreated_around_a_snapshot(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tt_set(db, "k", 5);
    tt_set(db, "j", 1);
    tt_set(db, "x", 1);
    assert_int_equal(tally_del(db, "x", 1, NULL), TALLY_OK);
    assert_int_equal(tally_snapshot(db), TALLY_OK); /* k, j; not x */
    assert_int_equal(tally_del(db, "k", 1, NULL), TALLY_OK);
    tt_set(db, "k", 9);
    assert_int_equal(tally_del(db, "j", 1, NULL), TALLY_OK);
    tt_set(db, "x", 3);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "k"), 9);
    assert_false(tt_exists(db, "j"));
    assert_int_equal(tt_get(db, "x"), 3);
    assert_int_equal(tally_snapshot(db), TALLY_OK); /* k, x; not j */
    tt_set(db, "j", 2);
    assert_int_equal(tally_del(db, "x", 1, NULL), TALLY_OK);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "k"), 9);
    assert_int_equal(tt_get(db, "j"), 2);
    assert_false(tt_exists(db, "x"));
    assert_int_equal(tally_count(db), 2);
    tt_close(db);
}

/* ---- Limits ------------------------------------------------------------- */

static void overflow_is_refused_and_changes_nothing(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tt_set(db, "max", INT64_MAX);
    tt_set(db, "min", INT64_MIN);
    assert_int_equal(tt_incr(db, "fresh", INT64_MIN), INT64_MIN);
    for (int round = 0; round < 2; round++) {
        tally_ticket head = tally_head(db), t = 12345;
        int64_t v = 42;
        assert_int_equal(tally_incr(db, "max", 3, 1, &v, NULL), TALLY_EOVERFLOW);
        assert_int_equal(tally_incr(db, "max", 3, INT64_MAX, &v, &t),
                         TALLY_EOVERFLOW);
        assert_int_equal(tally_incr(db, "min", 3, -1, &v, NULL), TALLY_EOVERFLOW);
        assert_int_equal(tally_incr(db, "min", 3, INT64_MIN, &v, &t),
                         TALLY_EOVERFLOW);
        assert_int_equal(tally_incr(db, "fresh", 5, -1, &v, NULL),
                         TALLY_EOVERFLOW);
        assert_int_equal(v, 42);     /* outputs untouched, but the ticket: */
        /* the error shows min's value, so it carries that value's ticket,
         * as a read of min would (include/tally.h) */
        tally_ticket read_t = 0;
        assert_int_equal(tally_get(db, "min", 3, NULL, &read_t), TALLY_OK);
        assert_int_equal(t, read_t);
        assert_int_equal(tally_head(db), head); /* nothing logged */
        assert_int_equal(tt_get(db, "max"), INT64_MAX);
        assert_int_equal(tt_get(db, "min"), INT64_MIN);
        assert_int_equal(tt_get(db, "fresh"), INT64_MIN);
        db = tt_reopen(db, dir);
        assert_int_equal(tt_get(db, "max"), INT64_MAX);
        assert_int_equal(tt_get(db, "min"), INT64_MIN);
        assert_int_equal(tt_get(db, "fresh"), INT64_MIN);
    }
    /* The edges themselves are reachable from inside. */
    assert_int_equal(tt_incr(db, "max", -1), INT64_MAX - 1);
    assert_int_equal(tt_incr(db, "max", 1), INT64_MAX);
    assert_int_equal(tt_incr(db, "min", 1), INT64_MIN + 1);
    assert_int_equal(tt_incr(db, "min", -1), INT64_MIN);
    tt_close(db);
}

static void key_lengths_0_1024_and_1025(void **state)
{
    const char *dir = TT_DIR(state);
    uint8_t big[TALLY_KEY_MAX + 1];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    int64_t v = 99;
    tally_ticket t = 77;
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tally_set(db, "", 0, -1, NULL), TALLY_OK);
    assert_int_equal(tally_set(db, big, TALLY_KEY_MAX, 1024, NULL), TALLY_OK);
    assert_int_equal(tally_set(db, big, TALLY_KEY_MAX - 1, 1023, NULL), TALLY_OK);

    const size_t too = TALLY_KEY_MAX + 1;
    const void *keys[2] = {"ok", big};
    size_t klens[2] = {2, too};
    int64_t vals[2] = {1, 2};
    assert_int_equal(tally_set(db, big, too, 1, &t), TALLY_EKEYLEN);
    assert_int_equal(tally_incr(db, big, too, 1, &v, &t), TALLY_EKEYLEN);
    assert_int_equal(tally_get(db, big, too, &v, &t), TALLY_EKEYLEN);
    assert_int_equal(tally_del(db, big, too, &t), TALLY_EKEYLEN);
    assert_int_equal(tally_mset(db, 2, keys, klens, vals, &t), TALLY_EKEYLEN);
    assert_int_equal(v, 99);
    assert_int_equal(t, 77);
    assert_false(tt_exists(db, "ok")); /* the batch changed nothing */

    for (int round = 0; round < 2; round++) {
        assert_int_equal(tally_count(db), 3);
        assert_int_equal(tally_get(db, "", 0, &v, NULL), TALLY_OK);
        assert_int_equal(v, -1);
        assert_int_equal(tally_get(db, big, TALLY_KEY_MAX, &v, NULL), TALLY_OK);
        assert_int_equal(v, 1024);
        assert_int_equal(tally_get(db, big, TALLY_KEY_MAX - 1, &v, NULL),
                         TALLY_OK);
        assert_int_equal(v, 1023);
        db = tt_reopen(db, dir);
    }
    tt_close(db);
}

static const struct {
    const char *k;
    size_t len;
} binary_keys[] = {
    {"a\0b", 3}, {"a\0c", 3}, {"a", 1}, {"a\0", 2}, {"\0", 1}, {"\xff\0\x01", 3},
};
#define NBINARY (sizeof(binary_keys) / sizeof(binary_keys[0]))

static void binary_keys_with_nul_bytes(void **state)
{
    const char *dir = TT_DIR(state);
    int64_t v;
    tally *db = tt_open(dir, NULL);
    for (size_t i = 0; i < NBINARY; i++)
        assert_int_equal(tally_set(db, binary_keys[i].k, binary_keys[i].len,
                                   (int64_t)i * 10, NULL),
                         TALLY_OK);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(tally_count(db), NBINARY);
        for (size_t i = 0; i < NBINARY; i++) {
            assert_int_equal(tally_get(db, binary_keys[i].k,
                                       binary_keys[i].len, &v, NULL),
                             TALLY_OK);
            assert_int_equal(v, (int64_t)i * 10);
        }
        db = tt_reopen(db, dir);
    }
    tt_close(db);
}

static void mset_sets_all_or_nothing(void **state)
{
    const char *dir = TT_DIR(state);
    const void *keys[3] = {"x", "y", "z"};
    size_t klens[3] = {1, 1, 1};
    int64_t vals[3] = {1, -2, 3};
    tally *db = tt_open(dir, NULL);
    tt_set(db, "y", 100);
    assert_int_equal(tally_mset(db, 3, keys, klens, vals, NULL), TALLY_OK);
    db = tt_reopen(db, dir);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tt_get(db, keys[i]), vals[i]);
    /* A bad argument anywhere refuses the whole batch. */
    int64_t vals2[3] = {7, 8, 9};
    const void *keys2[3] = {"x", "y", NULL};
    size_t klens2[3] = {1, 1, 1};
    assert_int_equal(tally_mset(db, 3, keys2, klens2, vals2, NULL), TALLY_EINVAL);
    db = tt_reopen(db, dir);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tt_get(db, keys[i]), vals[i]);
    tt_close(db);
}

/* ---- A log tail torn at every byte of its last write ---------------------
 * Before the last change: a=1, b=2, c=3, d=4, each synced.  The last change
 * is one of the ops below, written in a frame of its own; then the process
 * "crashes" (the files are taken as they are while the handle is open, so
 * there is no clean-close mark).  Whatever byte that write is cut at, and
 * from whichever sector boundary on it is zero, recovery must give back the
 * state before it (all of a batch or none), report the torn bytes, and take
 * new writes that survive another reopen.  test_engine_tail.c tears batches
 * in every other way the failure model allows. */
static void last_set(tally *db, tally_ticket *t)
{
    /* No zero byte in the value or key, so zeroing any tail changes it. */
    assert_int_equal(tally_set(db, "a", 1, 0x7172737475767778, t), TALLY_OK);
}

static void last_incr(tally *db, tally_ticket *t)
{
    assert_int_equal(tally_incr(db, "b", 1, -0x1111111111111111, NULL, t),
                     TALLY_OK);
}

static void last_del(tally *db, tally_ticket *t)
{
    assert_int_equal(tally_del(db, "d", 1, t), TALLY_OK);
}

static void last_mset(tally *db, tally_ticket *t)
{
    const void *keys[3] = {"a", "b", "c"};
    size_t klens[3] = {1, 1, 1};
    int64_t vals[3] = {0x3132333435363738, 0x4142434445464748, -1};
    assert_int_equal(tally_mset(db, 3, keys, klens, vals, t), TALLY_OK);
}

static void check_before_last(tally *db)
{
    assert_int_equal(tt_get(db, "a"), 1);
    assert_int_equal(tt_get(db, "b"), 2);
    assert_int_equal(tt_get(db, "c"), 3);
    assert_int_equal(tt_get(db, "d"), 4);
}

static void tear_at_every_offset(const char *dir, void (*last)(tally *, tally_ticket *))
{
    tally *db = tt_open(dir, NULL);
    tt_set(db, "a", 5);
    tt_incr(db, "a", -4);
    tt_set(db, "b", 2);
    tt_set(db, "c", 3);
    tt_set(db, "d", 4);
    tally_ticket prev = tally_head(db), end = 0;
    last(db, &end);
    assert_true(end > prev);
    assert_int_equal(tally_wait(db, end), TALLY_OK);
    tt_image orig;
    tt_image_load(&orig, dir); /* what a crash leaves: no CLOSE frame */
    tt_close(db);
    tt_image_restore(&orig, dir);

    tt_located loc = {0};
    tt_locate(dir, prev, end, &loc);
    const size_t from = loc.off, to = loc.off + (size_t)(end - prev);
    assert_int_equal(tt_next_frame(loc.file.p, loc.file.len, from), to - from);
    assert_int_equal(tt_next_frame(loc.file.p, loc.file.len, to), 0);
    char path[PATH_MAX];
    tt_path(path, dir, loc.name);

    for (int zero = 0; zero <= 1; zero++) {
        for (size_t off = from; off < to; off++) {
            if (zero && off != from && off % TT_SECTOR != 0)
                continue; /* a sector is written whole or not at all */
            tt_image_restore(&orig, dir);
            if (zero) {
                static const uint8_t zeros[4096];
                int fd = open(path, O_WRONLY);
                assert_true(fd >= 0 && to - off <= sizeof(zeros));
                assert_int_equal(pwrite(fd, zeros, to - off, (off_t)off),
                                 (ssize_t)(to - off));
                assert_int_equal(close(fd), 0);
            } else {
                assert_int_equal(truncate(path, (off_t)off), 0);
            }
            /* Torn means some of the write's bytes are left (not zeroed:
             * then it would read as the end mark). */
            int torn = off > from;

            tt_log log = TT_LOG_INIT;
            tally_options o;
            tally_stats st;
            tt_options(&o, &log);
            db = tt_open(dir, &o);
            tally_stats_get(db, &st);
            if (torn && (st.torn_bytes == 0 || log.warnings == 0))
                fail_msg("%s at %zu (write %zu..%zu of %s): torn_bytes %" PRIu64
                         ", %d warnings",
                         zero ? "zeroed" : "truncated", off, from, to, loc.name,
                         st.torn_bytes, log.warnings);
            check_before_last(db);
            assert_int_equal(tally_count(db), 4);
            tt_set(db, "new", (int64_t)off);
            db = tt_reopen(db, dir);
            check_before_last(db);
            assert_int_equal(tt_get(db, "new"), (int64_t)off);
            tally_stats_get(db, &st);
            assert_int_equal(st.torn_bytes, 0);
            tt_close(db);
        }
    }
    tt_image_free(&orig);
    tt_free(&loc.file);
}

static void torn_set_at_every_offset(void **state)
{
    tear_at_every_offset(TT_DIR(state), last_set);
}

static void torn_incr_at_every_offset(void **state)
{
    tear_at_every_offset(TT_DIR(state), last_incr);
}

static void torn_del_at_every_offset(void **state)
{
    tear_at_every_offset(TT_DIR(state), last_del);
}

static void torn_mset_at_every_offset(void **state)
{
    tear_at_every_offset(TT_DIR(state), last_mset);
}

/* ---- Damage that recovery must refuse ----------------------------------- */

#define NREC 10

/* Ten counters r00..r09 set to 100..109, one record each; t[i] is the ticket
 * of record i (the LSN past its end).  Returns where record 0 starts. */
static tally_ticket write_ten(const char *dir, tally_ticket t[NREC])
{
    tally *db = tt_open(dir, NULL);
    tally_ticket t0 = tally_head(db);
    /* Corked, the ten records share one frame whatever the sync thread's
     * timing.  Uncorked, it could take the first few alone, and record 4
     * then came after a frame header of its own, which the repair test,
     * damaging "record 4's body", hit instead (seen once under TSan). */
    tally_cork(db);
    for (int i = 0; i < NREC; i++) {
        char k[16];
        snprintf(k, sizeof(k), "r%02d", i);
        assert_int_equal(tally_set(db, k, 3, 100 + i, &t[i]), TALLY_OK);
    }
    assert_int_not_equal(tally_uncork(db), TALLY_EFAILED);
    assert_int_equal(tally_wait(db, t[NREC - 1]), TALLY_OK);
    tt_close(db);
    return t0;
}

/* The counters r00..r(n-1) hold their values and the rest are gone. */
static void check_first(tally *db, int n)
{
    for (int i = 0; i < NREC; i++) {
        char k[16];
        snprintf(k, sizeof(k), "r%02d", i);
        if (i < n)
            assert_int_equal(tt_get(db, k), 100 + i);
        else
            assert_false(tt_exists(db, k));
    }
}

/* Flip every bit of record 4 (of 10) in turn: open, and check, must
 * refuse, naming the file and the record's offset, and change nothing.  All
 * the bits that are let through are listed in one failure at the end. */
static void flipped_bit_mid_log_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    tally_ticket t[NREC];
    char err[TALLY_ERRMAX], missed[TALLY_ERRMAX] = "";
    int nmissed = 0;
    write_ten(dir, t);
    tt_located loc = {0};
    tt_locate(dir, t[3], t[4], &loc);
    const size_t end = loc.off + (size_t)(t[4] - t[3]);
    tt_image orig, now;
    tt_image_load(&orig, dir);
    for (size_t off = loc.off; off < end; off++) {
        for (int bit = 0; bit < 8; bit++) {
            tally_options o;
            tally *db = NULL;
            tt_options(&o, NULL);
            tt_flip_bit(dir, loc.name, off, bit);
            err[0] = 0;
            int rc = tally_open(dir, &o, &db, err);
            if (rc != TALLY_ECORRUPT) {
                size_t used = strlen(missed);
                snprintf(missed + used, sizeof(missed) - used, " %zu.%d->%d", off,
                         bit, rc);
                nmissed++;
                if (db)
                    tally_close(db);
                tt_image_restore(&orig, dir); /* open may have cut the log */
                continue;
            }
            assert_null(db);
            tt_assert_names(err, loc.name, loc.off);
            if (bit == (int)(off % 8)) { /* check is slower: a bit a byte */
                assert_int_equal(tally_check(dir, err), TALLY_ECORRUPT);
                tt_assert_names(err, loc.name, loc.off);
            }
            tt_flip_bit(dir, loc.name, off, bit);
        }
    }
    if (nmissed) {
        tt_image_free(&orig), tt_free(&loc.file); /* no leak report on top */
        fail_msg("%s: %d bit flips in record %zu..%zu (of records ending at "
                 "%zu) were not refused (byte.bit->open's code):%s",
                 loc.name, nmissed, loc.off, end,
                 loc.off + (size_t)(t[NREC - 1] - t[3]), missed);
    }
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&orig, &now));
    tally *db = tt_open(dir, NULL); /* flipped back: fine again */
    check_first(db, NREC);
    tt_close(db);
    tt_image_free(&orig), tt_image_free(&now), tt_free(&loc.file);
}

/* Flip a bit in every byte of a snapshot in turn: the header, each PUT and
 * the END must all be verified. */
static void flipped_bit_in_snapshot_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    tally_ticket t[NREC];
    char err[TALLY_ERRMAX], name[TT_NAME], path[PATH_MAX];
    write_ten(dir, t);
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_close(db);
    assert_true(tt_newest(dir, "snap-", name, NULL));
    tt_path(path, dir, name);
    tt_bytes b = {0};
    assert_int_equal(tt_read_file(path, &b), 0);
    tt_image orig, now;
    tt_image_load(&orig, dir);

    size_t rec = 0, next = TT_HDR; /* the record holding byte off */
    for (size_t off = 0; off < b.len; off++) {
        if (off == next) {
            long sz = tt_next_record(b.p, b.len, off);
            assert_true(sz > 0);
            rec = off;
            next = off + (size_t)sz;
        }
        int bit = (int)(off % 8);
        tt_flip_bit(dir, name, off, bit);
        tally_options o;
        tally *bad = NULL;
        tt_options(&o, NULL);
        err[0] = 0;
        int rc = tally_open(dir, &o, &bad, err);
        if (rc != TALLY_ECORRUPT && !(rc == TALLY_EVERSION && off >= 8 && off < 12))
            fail_msg("bit %d of snapshot byte %zu: open = %d (%s): %s", bit, off,
                     rc, tally_strerror(rc), err);
        assert_null(bad);
        tt_assert_names(err, name, rec);
        if (off % 5 == 0) {
            assert_int_equal(tally_check(dir, err), rc);
            tt_assert_names(err, name, rec);
        }
        tt_flip_bit(dir, name, off, bit);
    }
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&orig, &now));
    tt_image_free(&orig), tt_image_free(&now), tt_free(&b);
}

/* Three log files written by hand, r00..r08 three to a file, each starting
 * where the one before ends; their names go to names. */
static void write_chain(const char *dir, char names[3][TT_NAME])
{
    uint64_t lsn = 0;
    for (int f = 0; f < 3; f++) {
        tt_bytes recs = {0};
        for (int i = 3 * f; i < 3 * f + 3; i++) {
            char k[16];
            snprintf(k, sizeof(k), "r%02d", i);
            tt_rec_put(&recs, k, 100 + i);
        }
        logname(names[f], lsn);
        lsn = write_log(dir, lsn, &recs);
        tt_free(&recs);
    }
}

static void missing_log_in_the_chain_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    char names[3][TT_NAME], err[TALLY_ERRMAX], path[PATH_MAX];
    write_chain(dir, names);
    tt_image whole, now;
    tt_image_load(&whole, dir);
    tally *db = tt_open(dir, NULL);
    check_first(db, 9);
    tt_close(db);

    tt_image_restore(&whole, dir);
    tt_path(path, dir, names[1]);
    assert_int_equal(unlink(path), 0);
    tt_image before;
    tt_image_load(&before, dir);
    open_refused(dir, TALLY_ECORRUPT, err, "middle log %s removed", names[1]);
    assert_true(err[0] != 0);
    assert_int_equal(tally_check(dir, err), TALLY_ECORRUPT);
    assert_true(err[0] != 0);
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&before, &now));

    /* Repair keeps the part before the gap and moves the rest aside. */
    assert_int_equal(tally_repair(dir, err), TALLY_OK);
    assert_true(err[0] != 0);
    char aside[TT_FILES][TT_NAME];
    assert_int_equal(tt_list(dir, names[2], ".corrupt", aside, TT_FILES), 1);
    db = tt_open(dir, NULL);
    check_first(db, 3);
    tt_set(db, "r05", 5);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "r05"), 5);
    tt_close(db);
    tt_image_free(&whole), tt_image_free(&before), tt_image_free(&now);
}

/* A torn tail may only be cut from the newest log: an older log ends where
 * the next begins, so a torn record there is lost acknowledged data. */
static void torn_record_in_an_older_log_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    char names[3][TT_NAME], err[TALLY_ERRMAX], path[PATH_MAX];
    write_chain(dir, names);
    tt_path(path, dir, names[0]);
    /* Zero the second half of log 0's last record (r02), keeping the size. */
    off_t size = tt_file_size(path);
    const off_t rec = 8 + 14, end = size - 16; /* 16 zero bytes follow */
    uint8_t zeros[8] = {0};
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, zeros, sizeof(zeros), end - rec / 2 - 4), 8);
    assert_int_equal(close(fd), 0);
    open_refused(dir, TALLY_ECORRUPT, err, "torn r02 at the end of %s", names[0]);
    tt_assert_names(err, names[0], (uint64_t)(end - rec));
    assert_int_equal(tally_check(dir, err), TALLY_ECORRUPT);
    tt_assert_names(err, names[0], (uint64_t)(end - rec));
}

/* ---- tally_check and tally_repair --------------------------------------- */

static void check_passes_healthy_and_torn_dirs_unchanged(void **state)
{
    const char *dir = TT_DIR(state);
    char report[TALLY_ERRMAX];
    tally_ticket t[NREC];
    tt_image before, now;
    write_ten(dir, t);
    tt_image_load(&before, dir);
    report[0] = 0;
    assert_int_equal(tally_check(dir, report), TALLY_OK);
    assert_true(report[0] != 0);
    assert_int_equal(tally_check(dir, NULL), TALLY_OK);
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&before, &now));
    tt_image_free(&now);

    /* A torn tail is what open would cut: check says so (TALLY_TORN) and
     * changes nothing.  Here the clean close's own write was cut short. */
    tt_located loc = {0};
    tt_locate(dir, t[9], t[9] + TT_FRAME, &loc);
    char path[PATH_MAX];
    tt_path(path, dir, loc.name);
    assert_int_equal(truncate(path, (off_t)loc.off + 5), 0);
    tt_image_free(&before);
    tt_image_load(&before, dir);
    assert_int_equal(tally_check(dir, report), TALLY_TORN);
    if (!strstr(report, "torn tail") || !strstr(report, loc.name))
        fail_msg("check report \"%s\" names no torn tail in %s", report,
                 loc.name);
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&before, &now));
    tally *db = tt_open(dir, NULL);
    check_first(db, 10);
    tt_close(db);
    assert_int_equal(tally_check(dir, report), TALLY_OK);
    tt_image_free(&before), tt_image_free(&now), tt_free(&loc.file);
}

static void repair_cuts_the_log_at_the_bad_record(void **state)
{
    const char *dir = TT_DIR(state);
    char report[TALLY_ERRMAX];
    tally_ticket t[NREC];
    write_ten(dir, t);
    tt_located loc = {0};
    tt_locate(dir, t[3], t[4], &loc);
    tt_flip_bit(dir, loc.name, loc.off + 12, 3); /* in record 4's body */
    open_refused(dir, TALLY_ECORRUPT, report, "bit flipped in record 4");
    report[0] = 0;
    assert_int_equal(tally_repair(dir, report), TALLY_OK);
    /* What it says was lost is the intact records after the bad one, and
     * the bytes from the bad one on (the CLOSE frame too), not the space
     * reserved after them. */
    char want[64];
    snprintf(want, sizeof want, "losing %d intact records (%llu bytes)",
             NREC - 5, (unsigned long long)(t[NREC - 1] - t[3] + TT_FRAME));
    if (!strstr(report, want))
        fail_msg("repair report \"%s\" does not say \"%s\"", report, want);
    assert_int_equal(tally_check(dir, report), TALLY_OK);
    tally *db = tt_open(dir, NULL);
    check_first(db, 4);
    tt_set(db, "after", 1);
    db = tt_reopen(db, dir);
    check_first(db, 4);
    assert_int_equal(tt_get(db, "after"), 1);
    tt_close(db);
    tt_free(&loc.file);
}

static int64_t snapshot_value(const char *key)
{
    return 100 + atoi(key + 1);
}

static void repair_rebuilds_a_damaged_snapshot(void **state)
{
    const char *dir = TT_DIR(state);
    char report[TALLY_ERRMAX], name[TT_NAME], path[PATH_MAX];
    tally *db = tt_open(dir, NULL);
    for (int i = 0; i < NREC; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%02d", i);
        tt_set(db, k, snapshot_value(k));
    }
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_set(db, "z", 5); /* in the log after S */
    tt_close(db);

    /* Damage the body of the snapshot's fifth record; the four before it
     * must survive the repair. */
    assert_true(tt_newest(dir, "snap-", name, NULL));
    tt_path(path, dir, name);
    tt_bytes b = {0};
    assert_int_equal(tt_read_file(path, &b), 0);
    size_t off = TT_HDR;
    char before[4][8];
    for (int i = 0; i < 4; i++) {
        long sz = tt_next_record(b.p, b.len, off);
        assert_true(sz == 8 + 11 + 3 && b.p[off + 8] == TT_PUT);
        memcpy(before[i], b.p + off + 8 + 11, 3);
        before[i][3] = 0;
        off += (size_t)sz;
    }
    tt_flip_bit(dir, name, off + 8 + 5, 0);
    open_refused(dir, TALLY_ECORRUPT, report, "bit flipped in snapshot record 5");
    assert_int_equal(tally_repair(dir, report), TALLY_OK);
    assert_true(report[0] != 0);

    db = tt_open(dir, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tt_get(db, before[i]), snapshot_value(before[i]));
    for (int i = 0; i < NREC; i++) { /* never a wrong value */
        char k[16];
        snprintf(k, sizeof(k), "s%02d", i);
        if (tt_exists(db, k))
            assert_int_equal(tt_get(db, k), snapshot_value(k));
    }
    assert_int_equal(tt_get(db, "z"), 5);
    tt_close(db);
    tt_free(&b);
}

/* ---- Scans -------------------------------------------------------------- */

#define NSCAN 600
#define NGROW 4000

typedef struct seen {
    int s[NSCAN];       /* times s%04d was seen */
    int g[NGROW];       /* times g%05d was seen */
    int other;          /* anything else */
    int bad_value;      /* a value that is not the one set */
    const void *prefix; /* the scan's prefix */
    size_t plen;
    int off_prefix;     /* keys seen that do not start with it */
} seen;

static int count_seen(void *ctx, const void *key, size_t klen, int64_t value)
{
    seen *sn = ctx;
    char k[16];
    if (klen < sn->plen || (sn->plen && memcmp(key, sn->prefix, sn->plen) != 0))
        sn->off_prefix++;
    if (klen == 0 || klen >= sizeof(k)) {
        sn->other++;
        return 0;
    }
    memcpy(k, key, klen);
    k[klen] = 0;
    int i = atoi(k + 1);
    if (k[0] == 's' && klen == 5 && i < NSCAN) {
        sn->s[i]++;
        sn->bad_value |= value != i;
    } else if (k[0] == 'g' && klen == 6 && i < NGROW) {
        sn->g[i]++;
        sn->bad_value |= value != -i;
    } else {
        sn->other++;
    }
    return 0;
}

/* Scan to the end (with a bound, so a cursor that never returns to 0 fails
 * rather than hangs), calling grow between calls. */
static void scan_all(tally *db, const void *prefix, size_t plen, size_t count,
                     seen *sn, void (*grow)(tally *, int), int *grown)
{
    uint64_t cursor = 0;
    int calls = 0;
    sn->prefix = prefix;
    sn->plen = plen;
    do {
        uint64_t next = 0;
        assert_int_equal(tally_scan(db, cursor, prefix, plen, count, count_seen,
                                    sn, &next, NULL),
                         TALLY_OK);
        cursor = next;
        if (grow)
            grow(db, (*grown)++);
        assert_true(++calls < 1000000);
    } while (cursor != 0);
    assert_int_equal(sn->off_prefix, 0);
}

/* Forty new counters per scan call, so the table grows (and rehashes) while
 * the scan runs. */
static void grow_forty(tally *db, int round)
{
    for (int i = round * 40; i < round * 40 + 40 && i < NGROW; i++) {
        char k[16];
        snprintf(k, sizeof(k), "g%05d", i);
        assert_int_equal(tally_set(db, k, 6, -i, &(tally_ticket){0}), TALLY_OK);
    }
}

static void scan_sees_every_counter_while_the_table_grows(void **state)
{
    const char *dir = TT_DIR(state);
    seen *sn = calloc(1, sizeof(*sn));
    assert_non_null(sn);
    tally *db = tt_open(dir, NULL);
    for (int i = 0; i < NSCAN; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%04d", i);
        assert_int_equal(tally_set(db, k, 5, i, &(tally_ticket){0}), TALLY_OK);
    }
    int grown = 0;
    scan_all(db, NULL, 0, 8, sn, grow_forty, &grown);
    for (int i = 0; i < NSCAN; i++)
        if (sn->s[i] == 0)
            fail_msg("s%04d not seen by a scan while the table grew", i);
    assert_int_equal(sn->other, 0);
    assert_int_equal(sn->bad_value, 0);

    /* After a reopen, one more scan (no growth) sees everything. */
    int total = grown * 40 < NGROW ? grown * 40 : NGROW;
    db = tt_reopen(db, dir);
    memset(sn, 0, sizeof(*sn));
    scan_all(db, "", 0, 100, sn, NULL, NULL);
    for (int i = 0; i < NSCAN; i++)
        assert_true(sn->s[i] >= 1);
    for (int i = 0; i < total; i++)
        assert_true(sn->g[i] >= 1);
    assert_int_equal(tally_count(db), NSCAN + total);
    assert_int_equal(sn->other, 0);
    assert_int_equal(sn->bad_value, 0);
    tt_close(db);
    free(sn);
}

static int stop_at_once(void *ctx, const void *key, size_t klen, int64_t value)
{
    (*(int *)ctx)++;
    return 7;
}

static void scan_by_prefix(void **state)
{
    const char *dir = TT_DIR(state);
    seen *sn = calloc(1, sizeof(*sn));
    assert_non_null(sn);
    tally *db = tt_open(dir, NULL);
    for (int i = 0; i < NSCAN; i++) {
        char k[16];
        snprintf(k, sizeof(k), "s%04d", i);
        assert_int_equal(tally_set(db, k, 5, i, &(tally_ticket){0}), TALLY_OK);
    }
    grow_forty(db, 0);
    for (size_t i = 0; i < NBINARY; i++)
        assert_int_equal(tally_set(db, binary_keys[i].k, binary_keys[i].len, 1,
                                   NULL),
                         TALLY_OK);

    scan_all(db, "s01", 3, 5, sn, NULL, NULL); /* s0100..s0199 */
    for (int i = 0; i < NSCAN; i++)
        assert_int_equal(sn->s[i] >= 1, i >= 100 && i < 200);
    for (int i = 0; i < 40; i++)
        assert_int_equal(sn->g[i], 0);
    assert_int_equal(sn->other, 0);

    memset(sn, 0, sizeof(*sn));
    scan_all(db, "g", 1, 1, sn, NULL, NULL);
    for (int i = 0; i < 40; i++)
        assert_true(sn->g[i] >= 1);
    for (int i = 0; i < NSCAN; i++)
        assert_int_equal(sn->s[i], 0);
    assert_int_equal(sn->other, 0);

    /* A prefix with a NUL byte: "a\0" matches "a\0b", "a\0c" and "a\0". */
    memset(sn, 0, sizeof(*sn));
    scan_all(db, "a\0", 2, 10, sn, NULL, NULL);
    assert_true(sn->other >= 3);
    assert_int_equal(sn->s[0] + sn->g[0], 0);
    memset(sn, 0, sizeof(*sn));
    scan_all(db, "zz", 2, 10, sn, NULL, NULL);
    assert_int_equal(sn->other, 0);

    /* A callback's nonzero return stops the scan and is returned. */
    int calls = 0;
    uint64_t next;
    assert_int_equal(tally_scan(db, 0, NULL, 0, 1000, stop_at_once, &calls,
                                &next, NULL),
                     7);
    assert_int_equal(calls, 1);
    tt_close(db);
    free(sn);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tt_fx_setup, tt_fx_teardown)
    const struct CMUnitTest tests[] = {
        T(empty_dir_opens_empty),
        T(missing_dir_created_only_when_asked),
        T(set_10_reads_10_after_reopen),
        T(incr_10_reads_11_after_reopen),
        T(incr_10_five_times_reads_15_after_reopen),
        T(log_only),
        T(snapshot_only),
        T(snapshot_then_log),
        T(handmade_log_is_replayed),
        T(handmade_snapshot_and_log_are_replayed),
        T(engine_writes_the_format),
        T(deleted_and_recreated_in_the_log),
        T(deleted_and_recreated_around_a_snapshot),
        T(overflow_is_refused_and_changes_nothing),
        T(key_lengths_0_1024_and_1025),
        T(binary_keys_with_nul_bytes),
        T(mset_sets_all_or_nothing),
        T(torn_set_at_every_offset),
        T(torn_incr_at_every_offset),
        T(torn_del_at_every_offset),
        T(torn_mset_at_every_offset),
        T(flipped_bit_mid_log_is_refused),
        T(flipped_bit_in_snapshot_is_refused),
        T(missing_log_in_the_chain_is_refused),
        T(torn_record_in_an_older_log_is_refused),
        T(check_passes_healthy_and_torn_dirs_unchanged),
        T(repair_cuts_the_log_at_the_bad_record),
        T(repair_rebuilds_a_damaged_snapshot),
        T(scan_sees_every_counter_while_the_table_grows),
        T(scan_by_prefix),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
