/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_batch.c - atomic batches (tally_batch_*): reads inside a
 * batch see its writes, the commit writes ONE BATCH record whose ticket
 * covers everything, an abort or a failed commit puts every counter back,
 * a log cut at any byte of the batch recovers all of it or none, and what
 * is refused inside a batch (once-forms, snapshots).
 */
#include "engine_testutil.h"

static void batch_reads_its_own_writes_and_commits_one_record(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    int64_t v = 0;
    tally_ticket t = 0, rt = 0;

    tt_set(db, "gone", 5);
    tally_ticket before = tally_head(db);
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_true(tally_batch_is_open(db));
    assert_int_equal(tally_batch_begin(db), TALLY_EINVAL);
    assert_int_equal(tally_incr(db, "a", 1, 10, &v, NULL), TALLY_OK);
    assert_int_equal(tally_incr(db, "a", 1, 5, &v, NULL), TALLY_OK);
    assert_int_equal(v, 15);
    assert_int_equal(tally_get(db, "a", 1, &v, &rt), TALLY_OK);
    assert_int_equal(v, 15);
    assert_int_equal(tally_del(db, "gone", 4, NULL), TALLY_OK);
    assert_int_equal(tally_get(db, "gone", 4, &v, NULL), TALLY_NOTFOUND);
    /* Nothing is in the log before the commit. */
    assert_int_equal(tally_head(db), before);
    assert_int_equal(tally_batch_commit(db, &t), TALLY_OK);
    assert_false(tally_batch_is_open(db));
    assert_true(t > before);
    assert_true(t >= rt);
    /* Reads now carry the batch's ticket. */
    assert_int_equal(tally_get(db, "a", 1, &v, &rt), TALLY_OK);
    assert_int_equal(rt, t);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tt_close(db);

    uint32_t n = 0;
    assert_int_equal(tt_record_between(dir, before, t, &n), TT_BATCH);
    assert_int_equal(n, 3);

    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "a"), 15);
    assert_false(tt_exists(db, "gone"));
    tt_close(db);
}

static void abort_puts_every_counter_back(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    int64_t v = 0, x = 0, far = tally_now_ms(db) + 3600 * 1000;
    const void *keys[] = {"m1", "m2"};
    size_t klens[] = {2, 2};
    int64_t vals[] = {7, 8};

    tt_set(db, "kept", 1);
    assert_int_equal(tally_setx(db, "ttl", 3, 2, far, NULL), TALLY_OK);
    tally_ticket head = tally_head(db);
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_incr(db, "kept", 4, 100, NULL, NULL), TALLY_OK);
    assert_int_equal(tally_set(db, "kept", 4, -3, NULL), TALLY_OK);
    assert_int_equal(tally_set(db, "ttl", 3, 9, NULL), TALLY_OK); /* clears */
    assert_int_equal(tally_incr(db, "new", 3, 1, NULL, NULL), TALLY_OK);
    assert_int_equal(tally_mset(db, 2, keys, klens, vals, NULL), TALLY_OK);
    assert_int_equal(tally_del(db, "kept", 4, NULL), TALLY_OK);
    /* A failing change inside changes nothing and the batch goes on. */
    assert_int_equal(tally_set(db, "big", 3, INT64_MAX, NULL), TALLY_OK);
    assert_int_equal(tally_incr(db, "big", 3, 1, NULL, NULL), TALLY_EOVERFLOW);
    tally_batch_abort(db);
    assert_false(tally_batch_is_open(db));
    assert_int_equal(tally_head(db), head);
    assert_int_equal(tt_get(db, "kept"), 1);
    assert_int_equal(tally_getx(db, "ttl", 3, &v, &x, NULL), TALLY_OK);
    assert_int_equal(v, 2);
    assert_int_equal(x, far);
    assert_false(tt_exists(db, "new"));
    assert_false(tt_exists(db, "m1"));
    assert_false(tt_exists(db, "big"));
    assert_int_equal(tally_count(db), 2);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "kept"), 1);
    assert_int_equal(tally_count(db), 2);
    tt_close(db);
}

static void batch_refuses_ids_and_snapshots(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    tally_once once = {"id", 2, 1};
    int replayed = 0;
    tally_ticket t = 1;

    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_incr_once(db, &once, "a", 1, 1, NULL, &replayed,
                                     NULL),
                     TALLY_EINVAL);
    assert_int_equal(tally_snapshot(db), TALLY_EBUSY);
    assert_int_equal(tally_snapshot_begin(db), TALLY_EBUSY);
    assert_int_equal(tally_step(db, 100), 0);
    /* An empty batch writes nothing. */
    assert_int_equal(tally_batch_commit(db, &t), TALLY_OK);
    assert_int_equal(t, 0);
    assert_int_equal(tally_batch_commit(db, &t), TALLY_EINVAL);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_close(db);
}

#define NCUT 6 /* counters of the batch cut at every byte */

static void batch_cut_at_any_byte_recovers_all_or_none(void **state)
{
    const char *dir = TT_DIR(state);
    char logname[TT_NAME], path[PATH_MAX], key[8];
    uint64_t start = 0;
    tally_ticket t = 0;
    tt_image im;
    tally *db = tt_open(dir, NULL);

    /* Constant sum: each counter starts at 10, the batch moves 1 along. */
    for (int i = 0; i < NCUT; i++) {
        snprintf(key, sizeof key, "c%d", i);
        tt_set(db, key, 10);
    }
    tally_ticket before = tally_head(db);
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    for (int i = 0; i < NCUT; i++) {
        snprintf(key, sizeof key, "c%d", i);
        assert_int_equal(tally_incr(db, key, strlen(key), i % 2 ? 1 : -1,
                                    NULL, NULL),
                         TALLY_OK);
    }
    assert_int_equal(tally_batch_commit(db, &t), TALLY_OK);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tt_close(db);
    assert_true(tt_newest(dir, "log-", logname, &start));
    tt_image_load(&im, dir);
    for (tally_ticket cut = before; cut <= t; cut++) {
        int changed = 0;
        tt_image_restore(&im, dir);
        tt_path(path, dir, logname);
        assert_int_equal(truncate(path, (off_t)(TT_HDR + (cut - start))), 0);
        db = tt_open(dir, NULL);
        for (int i = 0; i < NCUT; i++) {
            snprintf(key, sizeof key, "c%d", i);
            changed += tt_get(db, key) != 10;
        }
        tt_close(db);
        assert_int_equal(changed, cut == t ? NCUT : 0);
    }
    tt_image_free(&im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            batch_reads_its_own_writes_and_commits_one_record, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(abort_puts_every_counter_back,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(batch_refuses_ids_and_snapshots,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            batch_cut_at_any_byte_recovers_all_or_none, tt_fx_setup,
            tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
