/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_batchid.c - a whole atomic batch under one idempotency id
 * (tally_batch_commit_once, tally_once_answer; include/tally.h "A whole
 * batch under one id"): the answer committed with the batch comes back byte
 * for byte and nothing is applied again, after reopen and after a snapshot;
 * the id, its answer and the batch's changes are in one record, so a log
 * cut at any byte of it keeps all or none; another fingerprint, or a
 * single change's id, is IDREUSED; a batch not durable yet is INFLIGHT; a
 * failed commit records nothing; batch ids expire like the others; the
 * IDEMA record is what docs/format.md says; a version-3 log still opens
 * and is never appended to.
 */
#include "engine_testutil.h"

#include <time.h>

#include "codec.h"

#include "sync_gate.h"

static int teardown(void **state)
{
    sync_gate(0, 0);
    return tt_fx_teardown(state);
}

static tally_once once_of(const char *id, uint64_t fp)
{
    tally_once o = {id, strlen(id), fp};
    return o;
}

/* Move `by` from counter a to counter b as one batch committed under id
 * with answer; returns the batch's ticket (async), or fails the test. */
static tally_ticket move(tally *db, const char *id, uint64_t fp, int64_t by,
                         const char *answer)
{
    tally_once o = once_of(id, fp);
    tally_ticket t = 0;
    int rc;

    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_incr(db, "a", 1, -by, NULL, NULL), TALLY_OK);
    assert_int_equal(tally_incr(db, "b", 1, by, NULL, NULL), TALLY_OK);
    rc = tally_batch_commit_once(db, &o, answer, strlen(answer), &t);
    if (rc != TALLY_OK)
        fail_msg("tally_batch_commit_once(%s) = %d: %s", id, rc,
                 tally_errmsg(db));
    return t;
}

/* Look id up, blocking; returns the code, the answer in out (NUL-ended). */
static int answer_of(tally *db, const char *id, uint64_t fp, char *out,
                     size_t n)
{
    tally_once o = once_of(id, fp);
    const void *a = NULL;
    size_t alen = 0;
    int rc = tally_once_answer(db, &o, &a, &alen, NULL);

    out[0] = 0;
    if (rc == TALLY_OK) {
        assert_true(alen < n);
        memcpy(out, a, alen);
        out[alen] = 0;
    }
    return rc;
}

/* ---- Replay ------------------------------------------------------------- */

static void batch_id_replays_its_answer_and_applies_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    char got[64];
    tally_stats st;

    tt_set(db, "a", 100);
    assert_int_equal(answer_of(db, "order-1", 9, got, sizeof got),
                     TALLY_NOTFOUND);
    tally_ticket t = move(db, "order-1", 9, 30, "{\"moved\":30}");
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    assert_int_equal(tally_once_count(db), 1);

    /* The caller replays instead of running the batch again. */
    tally_once o = once_of("order-1", 9);
    const void *a = NULL;
    size_t alen = 0;
    tally_ticket rt = 0;
    assert_int_equal(tally_once_answer(db, &o, &a, &alen, &rt), TALLY_OK);
    assert_int_equal(alen, 12);
    assert_memory_equal(a, "{\"moved\":30}", 12);
    assert_int_equal(rt, t);
    assert_int_equal(tt_get(db, "a"), 70);
    assert_int_equal(tt_get(db, "b"), 30);
    tally_stats_get(db, &st);
    assert_int_equal(st.once_replays, 1);
    assert_true(st.once_bytes >= 12 + 7);
    tt_close(db);
}

static void batch_id_replays_after_reopen_and_after_a_snapshot(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    char got[64];

    move(db, "before-snap", 1, 5, "first answer");
    db = tt_reopen(db, dir);
    assert_int_equal(answer_of(db, "before-snap", 1, got, sizeof got),
                     TALLY_OK);
    assert_string_equal(got, "first answer");
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    move(db, "after-snap", 2, 7, "second answer");
    db = tt_reopen(db, dir);
    assert_int_equal(answer_of(db, "before-snap", 1, got, sizeof got),
                     TALLY_OK);
    assert_string_equal(got, "first answer");
    assert_int_equal(answer_of(db, "after-snap", 2, got, sizeof got),
                     TALLY_OK);
    assert_string_equal(got, "second answer");
    /* Both ids once more through a snapshot of its own: the snapshot keeps
     * the answers (IDEMA records), the log holds nothing of them. */
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    db = tt_reopen(db, dir);
    assert_int_equal(answer_of(db, "after-snap", 2, got, sizeof got),
                     TALLY_OK);
    assert_string_equal(got, "second answer");
    assert_int_equal(tt_get(db, "a"), -12);
    assert_int_equal(tt_get(db, "b"), 12);
    assert_int_equal(tally_once_count(db), 2);
    tt_close(db);
}

static void batch_of_reads_only_still_records_its_id(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tally_once o = once_of("reads", 4);
    tally_ticket t = 0;
    int64_t v = 0;
    char got[16];

    tt_set(db, "a", 3);
    tally_ticket head = tally_head(db);
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_get(db, "a", 1, &v, NULL), TALLY_OK);
    assert_int_equal(tally_batch_commit_once(db, &o, "[3]", 3, &t), 0);
    assert_true(t > head);
    db = tt_reopen(db, dir);
    assert_int_equal(answer_of(db, "reads", 4, got, sizeof got), TALLY_OK);
    assert_string_equal(got, "[3]");
    tt_close(db);
}

/* ---- Reuse, in flight, failures ----------------------------------------- */

static void batch_id_with_another_request_is_reused(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("shared", 5);
    tally_ticket t = 0, rt = 0;
    int64_t v = 0;
    int rep = -1;
    char got[16];

    t = move(db, "shared", 5, 1, "ans");
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    /* Another batch under the same id. */
    o.fingerprint = 6;
    assert_int_equal(tally_once_answer(db, &o, NULL, NULL, &rt),
                     TALLY_EIDREUSED);
    assert_int_equal(rt, t);
    /* A single change with the id, even with the same fingerprint. */
    o.fingerprint = 5;
    assert_int_equal(tally_incr_once(db, &o, "a", 1, 1, &v, &rep, NULL),
                     TALLY_EIDREUSED);
    /* And a batch lookup of a single change's id. */
    tally_once single = once_of("single", 8);
    assert_int_equal(tally_incr_once(db, &single, "c", 1, 1, &v, &rep, NULL),
                     TALLY_OK);
    assert_int_equal(answer_of(db, "single", 8, got, sizeof got),
                     TALLY_EIDREUSED);
    /* Committing under a known id is refused and undoes the batch. */
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_incr(db, "a", 1, 1000, NULL, NULL), TALLY_OK);
    assert_int_equal(tally_batch_commit_once(db, &o, "x", 1, NULL),
                     TALLY_EIDREUSED);
    assert_false(tally_batch_is_open(db));
    assert_int_equal(tt_get(db, "a"), -1);
    assert_int_equal(tt_get(db, "c"), 1);
    tt_close(db);
}

static void batch_id_not_durable_yet_is_inflight(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("fly", 3);
    tally_ticket t = 0, rt = 0;
    const void *a = NULL;
    size_t alen = 0;

    tt_set(db, "a", 1); /* durable before the hold */
    sync_gate(1, 0);
    t = move(db, "fly", 3, 1, "held");
    assert_true(t > tally_durable(db));
    assert_int_equal(tally_once_answer(db, &o, &a, &alen, &rt),
                     TALLY_EINFLIGHT);
    assert_null(a);
    assert_int_equal(rt, 0);
    sync_gate(0, 0);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    assert_int_equal(tally_once_answer(db, &o, &a, &alen, &rt), TALLY_OK);
    assert_int_equal(rt, t);
    assert_memory_equal(a, "held", 4);
    tt_close(db);
}

static void failed_commits_record_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once o = once_of("big", 1), none = {NULL, 0, 1};
    static char big[TALLY_ANSWER_MAX + 1];
    char got[8];

    memset(big, 'x', sizeof big);
    /* No batch open. */
    assert_int_equal(tally_batch_commit_once(db, &o, "a", 1, NULL),
                     TALLY_EINVAL);
    /* An answer too big, an empty one, a bad id: undone, id unknown. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tally_batch_begin(db), TALLY_OK);
        assert_int_equal(tally_incr(db, "a", 1, 1, NULL, NULL), TALLY_OK);
        int rc = i == 0   ? tally_batch_commit_once(db, &o, big, sizeof big,
                                                    NULL)
                 : i == 1 ? tally_batch_commit_once(db, &o, "", 0, NULL)
                          : tally_batch_commit_once(db, &none, "a", 1, NULL);
        assert_int_equal(rc, i == 2 ? TALLY_EIDLEN : TALLY_EINVAL);
        assert_false(tally_batch_is_open(db));
        assert_false(tt_exists(db, "a"));
    }
    assert_int_equal(answer_of(db, "big", 1, got, sizeof got),
                     TALLY_NOTFOUND);
    /* The largest answer is fine. */
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_incr(db, "a", 1, 1, NULL, NULL), TALLY_OK);
    assert_int_equal(tally_batch_commit_once(db, &o, big, TALLY_ANSWER_MAX,
                                             NULL),
                     TALLY_OK);
    db = tt_reopen(db, TT_DIR(state));
    const void *a = NULL;
    size_t alen = 0;
    assert_int_equal(tally_once_answer(db, &o, &a, &alen, NULL), TALLY_OK);
    assert_int_equal(alen, TALLY_ANSWER_MAX);
    assert_memory_equal(a, big, TALLY_ANSWER_MAX);
    assert_int_equal(tt_get(db, "a"), 1);
    tt_close(db);
}

static void batch_ids_expire_like_the_others(void **state)
{
    const char *dir = TT_DIR(state);
    tally_options opts;
    char got[8];

    tt_options(&opts, NULL);
    opts.once_ttl_ms = 100;
    tally *db = tt_open(dir, &opts);
    move(db, "short", 1, 1, "gone");
    assert_int_equal(answer_of(db, "short", 1, got, sizeof got), TALLY_OK);
    usleep(150 * 1000);
    assert_int_equal(answer_of(db, "short", 1, got, sizeof got),
                     TALLY_NOTFOUND);
    tt_close(db);
    /* Nor brought back by recovery. */
    db = tt_open(dir, &opts);
    assert_int_equal(tally_once_count(db), 0);
    assert_int_equal(tt_get(db, "b"), 1);
    tt_close(db);
}

/* ---- Crashes and the format ---------------------------------------------- */

static void batch_id_cut_at_any_byte_keeps_all_or_none(void **state)
{
    const char *dir = TT_DIR(state);
    char logname[TT_NAME], path[PATH_MAX], got[64];
    uint64_t start = 0;
    tt_image im;
    tally *db = tt_open(dir, NULL);

    tt_set(db, "a", 10);
    tally_ticket before = tally_head(db);
    tally_ticket t = move(db, "cut", 77, 4, "{\"results\":[6,4]}");
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tt_close(db);
    assert_true(tt_newest(dir, "log-", logname, &start));
    tt_image_load(&im, dir);
    for (tally_ticket cut = before; cut <= t; cut++) {
        tt_image_restore(&im, dir);
        tt_path(path, dir, logname);
        assert_int_equal(truncate(path, (off_t)(TT_HDR + (cut - start))), 0);
        db = tt_open(dir, NULL);
        int rc = answer_of(db, "cut", 77, got, sizeof got);
        if (cut == t) {
            assert_int_equal(rc, TALLY_OK);
            assert_string_equal(got, "{\"results\":[6,4]}");
            assert_int_equal(tt_get(db, "a"), 6);
            assert_int_equal(tt_get(db, "b"), 4);
        } else {
            assert_int_equal(rc, TALLY_NOTFOUND);
            assert_int_equal(tt_get(db, "a"), 10);
            assert_false(tt_exists(db, "b"));
        }
        tt_close(db);
    }
    tt_image_free(&im);
}

/* The last sub-record of the batch's record is the IDEMA of format.md:
 * u8 7, u16 idlen, u64 fingerprint, i64 created_ms, u32 alen, id, answer. */
static void idema_record_is_the_documented_bytes(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    int64_t t0 = (int64_t)time(NULL) * 1000;
    tally_ticket before = tally_head(db);
    tally_ticket t = move(db, "fmt", 0x1122334455667788ULL, 2, "ANS");
    tt_located loc = {0};
    uint32_t subs = 0;

    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tt_close(db);
    /* One record, a BATCH: the two PUTs, then the IDEMA. */
    assert_int_equal(tt_record_between(dir, before, t, &subs), TT_BATCH);
    assert_int_equal(subs, 3);
    /* The record ends at t: its IDEMA sub-body is the last 23 + 3 + 3. */
    tt_locate(dir, t - 1, t, &loc);
    const uint8_t *end = loc.file.p + loc.off + 1;
    const uint8_t *sub = end - (23 + 3 + 3);
    assert_int_equal(tt_get_le(sub - 4, 4), 23 + 3 + 3);
    assert_int_equal(sub[0], 7);
    assert_int_equal(tt_get_le(sub + 1, 2), 3);
    assert_int_equal(tt_get_le(sub + 3, 8), 0x1122334455667788ULL);
    int64_t created = (int64_t)tt_get_le(sub + 11, 8);
    assert_true(created >= t0 && created < t0 + 60000);
    assert_int_equal(tt_get_le(sub + 19, 4), 3);
    assert_memory_equal(sub + 23, "fmt", 3);
    assert_memory_equal(sub + 26, "ANS", 3);
    tt_free(&loc.file);

    /* And the codec reads back what it wrote, refusing a bad length. */
    unsigned char buf[CODEC_REC_HDR + 23 + 8];
    struct codec_idem in = {"id", 2, 42, 1700000000000LL, 0, 0, "answer", 6};
    struct codec_rec r;
    size_t used, claimed, n = codec_idem(buf, &in);
    const char *why = NULL;
    assert_int_equal(n, codec_idema_size(2, 6));
    assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                     CODEC_OK);
    assert_int_equal(r.type, CODEC_IDEM);
    assert_int_equal(r.idem.alen, 6);
    assert_memory_equal(r.idem.answer, "answer", 6);
    assert_int_equal(r.idem.fp, 42);
    buf[CODEC_REC_HDR + 19] = 7; /* alen past the body */
    codec_put32(buf, tt_crc32c(buf + 4, 4 + (n - CODEC_REC_HDR)));
    assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                     CODEC_EBODY);
}

/* A directory written by version 3 opens; the next change goes into a new
 * version-4 log, so the version-3 file never holds a record it cannot
 * read. */
static void version_3_log_opens_and_is_not_appended_to(void **state)
{
    const char *dir = TT_DIR(state);
    char name[TT_NAME], path[PATH_MAX], got[8];
    tt_bytes f = {0}, recs = {0};
    uint64_t start = 0;

    tt_file_header_v(&f, "TALLYLOG", 0, 0, 3);
    tt_rec_put(&recs, "a", 41);
    tt_frame(&f, 0, &recs, 0, 0);
    size_t v3_len = f.len;
    tt_write_bytes(dir, "log-0000000000000000.tly", &f);
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "a"), 41);
    move(db, "new", 1, 1, "v4");
    tt_close(db);
    assert_true(tt_newest(dir, "log-", name, &start));
    assert_true(start > 0);
    tt_path(path, dir, name);
    tt_bytes n4 = {0};
    assert_int_equal(tt_read_file(path, &n4), 0);
    assert_int_equal(tt_get_le(n4.p + 8, 4), 4);
    tt_free(&n4);
    tt_path(path, dir, "log-0000000000000000.tly");
    tt_bytes old = {0};
    assert_int_equal(tt_read_file(path, &old), 0);
    assert_int_equal(tt_get_le(old.p + 8, 4), 3);
    assert_true(old.len >= v3_len);
    assert_memory_equal(old.p, f.p, v3_len);
    tt_free(&old);
    db = tt_open(dir, NULL);
    assert_int_equal(answer_of(db, "new", 1, got, sizeof got), TALLY_OK);
    assert_int_equal(tt_get(db, "a"), 40);
    tt_close(db);
    tt_free(&f);
    tt_free(&recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            batch_id_replays_its_answer_and_applies_nothing, tt_fx_setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            batch_id_replays_after_reopen_and_after_a_snapshot, tt_fx_setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            batch_of_reads_only_still_records_its_id, tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(
            batch_id_with_another_request_is_reused, tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(batch_id_not_durable_yet_is_inflight,
                                        tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(failed_commits_record_nothing,
                                        tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(batch_ids_expire_like_the_others,
                                        tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(
            batch_id_cut_at_any_byte_keeps_all_or_none, tt_fx_setup,
            teardown),
        cmocka_unit_test_setup_teardown(idema_record_is_the_documented_bytes,
                                        tt_fx_setup, teardown),
        cmocka_unit_test_setup_teardown(
            version_3_log_opens_and_is_not_appended_to, tt_fx_setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
