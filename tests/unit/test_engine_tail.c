/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_tail.c - the rule that tells a torn write from damage to data
 * that reached the disk (src/engine/tail.c, docs/format.md "Torn writes and
 * damage").  After a clean close no byte can be torn: every flipped bit of
 * the last records is refused, naming the file and offset.  After a crash
 * only the last write may be torn, and only as the failure model allows (a
 * cut at any byte, any subset of its 512-byte sectors missing): each such
 * tear is cut silently and every acknowledged change is there; damage to the
 * last synced write is refused even with a torn write after it.  An old
 * CLOSE mark in the middle of the log vouches only for what is before it.
 * Version-1 logs keep their old rule.  A "crash" here is the directory's
 * files taken while the handle is still open (the page cache a SIGKILL
 * leaves; test_engine_crash.c kills real processes).
 */
#include "engine_testutil.h"

#define NACK 6      /* acknowledged changes before the last write */
#define NBATCH 10   /* changes in the last write */
#define BKEY 100    /* bytes in a batch key: the write spans sectors */

/* The acknowledged changes: ack0..ack(n-1) = 100 + i, each a blocking set,
 * so each is synced in a frame of its own. */
static void write_acked(tally *db, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "ack%d", i);
        tt_set(db, k, 100 + i);
    }
}

static void check_acked(tally *db, int n)
{
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "ack%d", i);
        assert_int_equal(tt_get(db, k), 100 + i);
    }
}

static void batch_key(char out[BKEY], int i)
{
    memset(out, 'x', BKEY);
    snprintf(out, BKEY, "batch%02d-", i);
    out[strlen(out)] = 'x';
}

/* NBATCH changes in one write: corked, then uncorked and waited for (so a
 * crash after this may leave it torn only if it had not been synced; the
 * tests tear it by hand).  [*start, *end) gets its frame's LSNs. */
static void write_batch(tally *db, tally_ticket *start, tally_ticket *end)
{
    *start = tally_head(db);
    tally_cork(db);
    for (int i = 0; i < NBATCH; i++) {
        char k[BKEY];
        batch_key(k, i);
        assert_int_equal(tally_set(db, k, BKEY, 7000 + i, end), TALLY_OK);
    }
    tally_uncork(db);
    assert_int_equal(tally_wait(db, *end), TALLY_OK);
}

/* How many of the batch's changes are there: they must be a prefix of it
 * (a torn write keeps its valid records before the tear, each whole). */
static int batch_state(tally *db)
{
    int there = 0;
    for (int i = 0; i < NBATCH; i++) {
        char k[BKEY];
        int64_t v;
        batch_key(k, i);
        int rc = tally_get(db, k, BKEY, &v, NULL);
        assert_true(rc == TALLY_OK || rc == TALLY_NOTFOUND);
        if (rc == TALLY_OK) {
            assert_int_equal(v, 7000 + i);
            if (there != i)
                fail_msg("batch change %d is there but %d is not", i, there);
            there++;
        }
    }
    return there;
}

/* Close db, but leave dir as a crash would have: as it was before close. */
static void crash(tally *db, const char *dir, tt_image *img)
{
    tt_image_load(img, dir);
    tt_close(db);
    tt_image_restore(img, dir);
}

static void write_zeros(const char *path, size_t off, size_t n)
{
    static const uint8_t zeros[TT_SECTOR];
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0 && n <= sizeof(zeros));
    assert_int_equal(pwrite(fd, zeros, n, (off_t)off), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

static void flip_byte(const char *path, size_t off, uint8_t mask)
{
    uint8_t b;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    assert_int_equal(close(fd), 0);
}

/* Open must refuse with TALLY_ECORRUPT, naming name and offset off and what
 * repair would lose; check must say the same.  what says what was done. */
static void assert_refused(const char *dir, const char *name, uint64_t off,
                           int also_check, const char *what, size_t at)
{
    char err[TALLY_ERRMAX] = "";
    tally_options o;
    tally *db = NULL;
    tt_options(&o, NULL);
    int rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_ECORRUPT) {
        if (db)
            tally_close(db);
        fail_msg("%s at %zu: open = %d (%s), want TALLY_ECORRUPT: %s", what,
                 at, rc, tally_strerror(rc), err);
    }
    assert_null(db);
    tt_assert_names(err, name, off);
    if (!strstr(err, "tally repair") || !strstr(err, "dropping"))
        fail_msg("%s at %zu: refusal does not say what repair would drop: %s",
                 what, at, err);
    if (also_check) {
        assert_int_equal(tally_check(dir, err), TALLY_ECORRUPT);
        tt_assert_names(err, name, off);
    }
}

/* Open must succeed, having cut a torn tail with a warning; the acknowledged
 * changes are all there and at most a prefix of the batch (the whole
 * records before the tear); new writes survive, after them. */
static void assert_cut(const char *dir, int acked, const char *what,
                       size_t at)
{
    tt_log log = TT_LOG_INIT;
    tally_options o;
    tally_stats st;
    char err[TALLY_ERRMAX] = "";
    tally *db = NULL;
    tt_options(&o, &log);
    int rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_OK)
        fail_msg("%s at %zu: open = %d (%s): %s", what, at, rc,
                 tally_strerror(rc), err);
    tally_stats_get(db, &st);
    if (st.torn_bytes == 0 || log.warnings == 0)
        fail_msg("%s at %zu: torn_bytes %" PRIu64 ", %d warnings", what, at,
                 st.torn_bytes, log.warnings);
    check_acked(db, acked);
    int kept = batch_state(db);
    if (kept == NBATCH)
        fail_msg("%s at %zu: the torn write is there whole", what, at);
    if (at % 8 != 0) { /* appending after the cut: every eighth case */
        tt_close(db);
        return;
    }
    tt_set(db, "after", (int64_t)at);
    db = tt_reopen(db, dir);
    check_acked(db, acked);
    assert_int_equal(batch_state(db), kept);
    assert_int_equal(tt_get(db, "after"), (int64_t)at);
    tt_close(db);
    assert_int_equal(tally_check(dir, NULL), TALLY_OK);
}

/* ---- After a clean close nothing is torn -------------------------------- */

static void clean_close_every_flipped_bit_of_the_last_records_is_refused(
    void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    write_acked(db, 0, NACK);
    tally_ticket from = 0;
    /* The last three records, each in its own frame (synced one by one). */
    tally_ticket t[4];
    t[0] = tally_head(db);
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof(k), "last%d", i);
        tt_set(db, k, 0x7172737475767778 + i);
        t[i + 1] = tally_head(db);
    }
    from = t[0];
    tt_close(db); /* its CLOSE frame follows at t[3] */

    tt_located loc = {0};
    tt_locate(dir, from, t[3] + TT_FRAME, &loc);
    char path[PATH_MAX];
    tt_path(path, dir, loc.name);
    tt_image orig, now;
    tt_image_load(&orig, dir);
    const size_t start = loc.off, stop = loc.off + (size_t)(t[3] - from) +
                                         TT_FRAME;
    for (size_t off = start; off < stop; off++) {
        /* What the message names: the frame, for a byte of a frame
         * header, else the record. */
        size_t frame = start, named;
        for (int i = 0; i < 3 && start + (t[i + 1] - from) <= off; i++)
            frame = start + (size_t)(t[i + 1] - from);
        named = off - frame < TT_FRAME ? frame : frame + TT_FRAME;
        for (int bit = 0; bit < 8; bit++) {
            flip_byte(path, off, (uint8_t)(1u << bit));
            assert_refused(dir, loc.name, named, bit == (int)(off % 8),
                           "clean close, bit flipped", off);
            flip_byte(path, off, (uint8_t)(1u << bit));
        }
    }
    tt_image_load(&now, dir);
    assert_true(tt_image_equal(&orig, &now));
    assert_int_equal(tally_check(dir, NULL), TALLY_OK);
    db = tt_open(dir, NULL);
    check_acked(db, NACK);
    tt_close(db);

    /* A whole write zeroed looks like a tear, but the CLOSE mark after it
     * says it was synced: refused, where after a crash it would be cut. */
    tt_image_restore(&orig, dir);
    size_t last = start + (size_t)(t[2] - from);
    write_zeros(path, last, (size_t)(t[3] - t[2]));
    assert_refused(dir, loc.name, last, 1, "clean close, last write zeroed",
                   last);
    tt_image_free(&orig), tt_image_free(&now), tt_free(&loc.file);
}

/* Reopening a cleanly closed log and closing it again, with no change in
 * between, adds nothing: one CLOSE mark is proof enough. */
static void reopen_and_close_without_changes_adds_no_mark(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    write_acked(db, 0, NACK);
    tt_close(db);
    tt_image before, after;
    tt_image_load(&before, dir);
    db = tt_open(dir, NULL);
    tt_close(db);
    tt_image_load(&after, dir);
    assert_true(tt_image_equal(&before, &after));
    char report[TALLY_ERRMAX];
    assert_int_equal(tally_check(dir, report), TALLY_OK);
    if (!strstr(report, "closed cleanly"))
        fail_msg("check report \"%s\" does not say closed cleanly", report);
    tt_image_free(&before), tt_image_free(&after);
}

/* ---- After a crash only the last write may be torn ---------------------- */

/* A directory with NACK synced changes (the first `closed` of them before a
 * clean close and reopen) and then the batch, left as by a crash; its
 * frame's file offsets go to *from, *to, its file's name to name. */
static void crashed_after_batch(const char *dir, int closed, tt_image *img,
                                size_t *from, size_t *to, char name[TT_NAME])
{
    tally *db = tt_open(dir, NULL);
    write_acked(db, 0, closed);
    if (closed)
        db = tt_reopen(db, dir);
    write_acked(db, closed, NACK - closed);
    tally_ticket s, e;
    write_batch(db, &s, &e);
    crash(db, dir, img);
    tt_located loc = {0};
    tt_locate(dir, s, e, &loc);
    *from = loc.off;
    *to = loc.off + (size_t)(e - s);
    memcpy(name, loc.name, TT_NAME);
    assert_int_equal(tt_next_frame(loc.file.p, loc.file.len, *from),
                     (long)(*to - *from));
    tt_free(&loc.file);
}

static void crash_every_tear_of_the_last_write_is_cut(void **state,
                                                      int closed)
{
    const char *dir = TT_DIR(state);
    tt_image img;
    size_t from, to;
    char name[TT_NAME], path[PATH_MAX];
    crashed_after_batch(dir, closed, &img, &from, &to, name);
    tt_path(path, dir, name);

    /* Untouched, the batch is there: it was written whole. */
    tally *db = tt_open(dir, NULL);
    check_acked(db, NACK);
    assert_int_equal(batch_state(db), NBATCH);
    tt_close(db);

    /* A cut at every byte of the write. */
    for (size_t off = from + 1; off < to; off++) {
        tt_image_restore(&img, dir);
        assert_int_equal(truncate(path, (off_t)off), 0);
        if (off % 97 == 0)
            assert_int_equal(tally_check(dir, NULL), TALLY_TORN);
        assert_cut(dir, NACK, "cut", off);
    }

    /* The sector pieces of the write: [from, first boundary), whole
     * sectors, [last boundary, to). */
    size_t piece[16][2];
    int np = 0;
    for (size_t at = from; at < to; np++) {
        size_t end = (at / TT_SECTOR + 1) * TT_SECTOR;
        assert_true(np < 16);
        piece[np][0] = at;
        piece[np][1] = end < to ? end : to;
        at = piece[np][1];
    }
    assert_true(np >= 3); /* the batch spans sectors */

    /* Zeros from every sector boundary on (and from the write's start). */
    for (int p = 1; p < np; p++) {
        tt_image_restore(&img, dir);
        for (int q = p; q < np; q++)
            write_zeros(path, piece[q][0], piece[q][1] - piece[q][0]);
        assert_cut(dir, NACK, "zeros from sector piece", (size_t)p);
    }

    /* Its sectors persisted in any order: every subset missing. */
    for (unsigned missing = 1; missing < (1u << np); missing++) {
        if (missing == (1u << np) - 1)
            continue; /* nothing of it written: the log just ends */
        tt_image_restore(&img, dir);
        for (int q = 0; q < np; q++)
            if (missing & (1u << q))
                write_zeros(path, piece[q][0], piece[q][1] - piece[q][0]);
        if (missing % 5 == 0)
            assert_int_equal(tally_check(dir, NULL), TALLY_TORN);
        assert_cut(dir, NACK, "sector pieces missing, mask", missing);
    }
    tt_image_free(&img);
}

static void crash_every_tear_of_the_last_write_is_cut_silently(void **state)
{
    crash_every_tear_of_the_last_write_is_cut(state, 0);
}

/* The same after a clean close and reopen: the old CLOSE mark, now in the
 * middle of the log, must not make a later tear look like damage. */
static void crash_after_reopen_is_not_confused_by_the_old_mark(void **state)
{
    crash_every_tear_of_the_last_write_is_cut(state, 3);
}

/* Does flipping p[off] by mask zero a whole sector piece of the frame
 * [from, to)?  Then the flip looks exactly like a missing sector, which the
 * failure model cannot tell from a tear (docs/format.md, known limits). */
static int zeroes_a_piece(const uint8_t *p, size_t from, size_t to,
                          size_t off, uint8_t mask)
{
    size_t lo = off / TT_SECTOR * TT_SECTOR, hi = lo + TT_SECTOR;
    if (lo < from)
        lo = from;
    if (hi > to)
        hi = to;
    for (size_t i = lo; i < hi; i++)
        if ((i == off ? (uint8_t)(p[i] ^ mask) : p[i]) != 0)
            return 0;
    return 1;
}

/* The last synced write damaged, a newer unsynced write torn after it (its
 * header kept, or gone too): refused. */
/* NACK synced changes, the last in a write of its own, then the batch,
 * left as by a crash.  *loc gets the log from the last synced write on,
 * [*f0, *f1) that write's file offsets and *end1 the batch's end. */
static void crashed_after_synced_and_batch(const char *dir, tt_image *img,
                                           tt_located *loc, size_t *f0,
                                           size_t *f1, size_t *end1)
{
    tally *db = tt_open(dir, NULL);
    write_acked(db, 0, NACK - 1);
    tally_ticket s0 = tally_head(db);
    write_acked(db, NACK - 1, 1); /* the last synced write */
    tally_ticket s1 = tally_head(db), e1;
    write_batch(db, &s1, &e1); /* the newer one, to be torn */
    crash(db, dir, img);
    tt_locate(dir, s0, e1, loc);
    *f0 = loc->off;
    *f1 = loc->off + (size_t)(s1 - s0);
    *end1 = loc->off + (size_t)(e1 - s0);
}

static void crash_damage_to_the_last_synced_write_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    tt_image img;
    tt_located loc = {0};
    size_t f0, f1, end1;
    char path[PATH_MAX];
    crashed_after_synced_and_batch(dir, &img, &loc, &f0, &f1, &end1);
    tt_path(path, dir, loc.name);

    /* Ways the newer write tears: cut after its header, cut inside its
     * header, its last sector piece missing, its first (header) piece
     * missing. */
    for (int tear = 0; tear < 4; tear++) {
        for (size_t off = f0; off < f1; off++) {
            tt_image_restore(&img, dir);
            size_t first_end = (f1 / TT_SECTOR + 1) * TT_SECTOR;
            if (tear == 0)
                assert_int_equal(truncate(path, (off_t)(f1 + TT_FRAME + 5)), 0);
            else if (tear == 1)
                assert_int_equal(truncate(path, (off_t)(f1 + 10)), 0);
            else if (tear == 2)
                write_zeros(path, (end1 - 1) / TT_SECTOR * TT_SECTOR,
                            end1 - (end1 - 1) / TT_SECTOR * TT_SECTOR);
            else
                write_zeros(path, f1, first_end - f1);
            uint8_t mask = 0x5A;
            if (zeroes_a_piece(loc.file.p, f0, f1, off, mask))
                mask = 0xA5;
            flip_byte(path, off, mask);
            size_t named = off - f0 < TT_FRAME ? f0 : f0 + TT_FRAME;
            assert_refused(dir, loc.name, named, off % 7 == 0,
                           tear == 0 ? "synced write flipped, newer cut "
                                       "after its header"
                           : tear == 1 ? "synced write flipped, newer cut "
                                         "inside its header"
                           : tear == 2 ? "synced write flipped, newer's last "
                                         "sector missing"
                                       : "synced write flipped, newer's "
                                         "first sector missing",
                           off);
        }
    }
    /* Without the flip each of those is a torn tail. */
    tt_image_restore(&img, dir);
    assert_int_equal(truncate(path, (off_t)(f1 + TT_FRAME + 5)), 0);
    assert_cut(dir, NACK, "newer write cut", f1 + TT_FRAME + 5);
    tt_image_free(&img), tt_free(&loc.file);
}

/* A whole synced write zeroed (a lost write, not a tear) with the newer
 * write after it intact: its header vouches for it, so refused. */
static void lost_synced_write_vouched_for_by_the_next_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    tt_image img;
    tt_located loc = {0};
    size_t f0, f1, end1;
    char path[PATH_MAX];
    crashed_after_synced_and_batch(dir, &img, &loc, &f0, &f1, &end1);
    tt_path(path, dir, loc.name);
    write_zeros(path, f0, f1 - f0);
    assert_refused(dir, loc.name, loc.off, 1, "synced write zeroed", loc.off);
    tt_image_free(&img), tt_free(&loc.file);
}

/* ---- Frames written by hand, from the format ----------------------------- */

/* A framed log by hand: frame A (synced before: nothing) holding ack0..2,
 * frame B (synced: A) holding ack3..5, then frame C and D as an everysec
 * writer leaves them, unsynced (both say only A and B were synced).  C
 * torn (a sector missing) and D intact after it: a power loss under
 * everysec; both are cut, nothing synced is lost.  The same with D saying
 * C was synced: refused, naming C. */
static void handmade_unsynced_frames_after_a_torn_one_are_cut(void **state)
{
    const char *dir = TT_DIR(state);
    char name[TT_NAME] = "log-0000000000000000.tly", path[PATH_MAX];
    tt_path(path, dir, name);
    for (int vouch = 0; vouch <= 1; vouch++) {
        tt_bytes f = {0}, recs = {0};
        tt_file_header_v(&f, "TALLYLOG", 0, 0, TT_VERSION);
        for (int fr = 0; fr < 2; fr++) {
            recs.len = 0;
            for (int i = 3 * fr; i < 3 * fr + 3; i++) {
                char k[16];
                snprintf(k, sizeof(k), "ack%d", i);
                tt_rec_put(&recs, k, 100 + i);
            }
            /* A: nothing synced before it; B: all of A. */
            tt_frame(&f, 0, &recs, fr == 0 ? 0 : f.len - TT_HDR, 0);
        }
        uint64_t synced = f.len - TT_HDR; /* A and B */
        size_t c = f.len;
        recs.len = 0;
        for (int i = 0; i < NBATCH; i++) {
            char k[BKEY];
            batch_key(k, i);
            tt_bytes body = {0};
            tt_body_put(&body, k, BKEY, 7000 + i);
            tt_record(&recs, &body);
            tt_free(&body);
        }
        tt_frame(&f, 0, &recs, synced, 0);
        size_t d = f.len;
        recs.len = 0;
        tt_rec_put(&recs, "late", 1);
        tt_frame(&f, 0, &recs, vouch ? c - TT_HDR + 1 : synced, 0);
        static const uint8_t zeros[4096];
        tt_put(&f, zeros, sizeof(zeros));
        /* C's second sector piece never reached the disk. */
        size_t hole = (c / TT_SECTOR + 1) * TT_SECTOR;
        assert_true(hole + TT_SECTOR <= d);
        memset(f.p + hole, 0, TT_SECTOR);
        tt_rmtree(dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        tt_write_bytes(dir, name, &f);
        if (vouch) {
            assert_refused(dir, name, c, 1, "torn frame vouched for", c);
        } else {
            assert_int_equal(tally_check(dir, NULL), TALLY_TORN);
            tally *db = tt_open(dir, NULL);
            check_acked(db, NACK);
            assert_true(batch_state(db) < NBATCH);
            assert_false(tt_exists(db, "late"));
            tt_close(db);
            assert_int_equal(tally_check(dir, NULL), TALLY_OK);
        }
        tt_free(&f), tt_free(&recs);
    }
}

/* ---- Version 1 logs keep their rule ------------------------------------- */

/* A version-1 log written by hand, its last record torn at every byte (cut
 * there, or zero from there on): cut as before, the records before it kept,
 * and the next changes go to a new, framed log. */
static void version_1_torn_tail_is_cut_by_its_old_rule(void **state)
{
    const char *dir = TT_DIR(state);
    tt_bytes f = {0}, last = {0};
    tt_file_header(&f, "TALLYLOG", 0, 0);
    for (int i = 0; i < NACK; i++) {
        char k[16];
        snprintf(k, sizeof(k), "ack%d", i);
        tt_rec_put(&f, k, 100 + i);
    }
    size_t from = f.len;
    tt_rec_put(&last, "lastkey", 0x7172737475767778);
    tt_put(&f, last.p, last.len);
    size_t to = f.len;
    static const uint8_t zeros[64];
    tt_put(&f, zeros, sizeof(zeros));
    char name[TT_NAME] = "log-0000000000000000.tly", path[PATH_MAX];
    tt_path(path, dir, name);

    for (int zero = 0; zero <= 1; zero++) {
        for (size_t off = from + 1; off < to; off++) {
            tt_rmtree(dir);
            assert_int_equal(mkdir(dir, 0755), 0);
            tt_write_bytes(dir, name, &f);
            if (zero)
                write_zeros(path, off, to - off);
            else
                assert_int_equal(truncate(path, (off_t)off), 0);
            assert_int_equal(tally_check(dir, NULL), TALLY_TORN);
            tt_log log = TT_LOG_INIT;
            tally_options o;
            tt_options(&o, &log);
            tally *db = tt_open(dir, &o);
            assert_true(log.warnings > 0);
            check_acked(db, NACK);
            assert_false(tt_exists(db, "lastkey"));
            tt_set(db, "after", 1);
            db = tt_reopen(db, dir);
            check_acked(db, NACK);
            assert_int_equal(tt_get(db, "after"), 1);
            tt_close(db);
            char names[TT_FILES][TT_NAME];
            assert_int_equal(tt_list(dir, "log-", ".tly", names, TT_FILES), 2);
        }
    }
    /* A flipped bit before the last record is refused, as always. */
    tt_rmtree(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    tt_write_bytes(dir, name, &f);
    flip_byte(path, from - 3, 0x10);
    char err[TALLY_ERRMAX];
    assert_int_equal(tally_check(dir, err), TALLY_ECORRUPT);
    tt_free(&f), tt_free(&last);
}

#define T(name) cmocka_unit_test_setup_teardown(name, tt_fx_setup, tt_fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(clean_close_every_flipped_bit_of_the_last_records_is_refused),
        T(reopen_and_close_without_changes_adds_no_mark),
        T(crash_every_tear_of_the_last_write_is_cut_silently),
        T(crash_after_reopen_is_not_confused_by_the_old_mark),
        T(crash_damage_to_the_last_synced_write_is_refused),
        T(lost_synced_write_vouched_for_by_the_next_is_refused),
        T(handmade_unsynced_frames_after_a_torn_one_are_cut),
        T(version_1_torn_tail_is_cut_by_its_old_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
