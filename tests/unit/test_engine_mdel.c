/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_mdel.c - tally_mdel, deleting many counters as one change:
 * what it counts, that it writes one BATCH record of the keys that existed
 * (and nothing when none did), and what its ticket covers.  Atomicity under
 * a full disk and a torn write is tested through the command layer's DEL in
 * test_cmd_del.c.
 */
#include "engine_testutil.h"

static void mdel_counts_each_existing_key_once(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    const void *keys[] = {"a", "b", "missing", "a"};
    size_t klens[] = {1, 1, 7, 1};
    uint64_t n = 99;

    tt_set(db, "a", 1);
    tt_set(db, "b", 2);
    tt_set(db, "c", 3);
    assert_int_equal(tally_mdel(db, 4, keys, klens, &n, NULL), TALLY_OK);
    assert_int_equal(n, 2);
    assert_false(tt_exists(db, "a"));
    assert_false(tt_exists(db, "b"));
    assert_int_equal(tt_get(db, "c"), 3);
    db = tt_reopen(db, dir);
    assert_false(tt_exists(db, "a"));
    assert_false(tt_exists(db, "b"));
    assert_int_equal(tt_get(db, "c"), 3);
    tt_close(db);
}

static void mdel_is_one_batch_record(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    const void *keys[] = {"a", "b", "nope"};
    size_t klens[] = {1, 1, 4};
    uint64_t n = 0;
    tally_ticket t = 0;

    tt_set(db, "a", 1);
    tt_set(db, "b", 2);
    tally_ticket before = tally_head(db);
    assert_int_equal(tally_mdel(db, 3, keys, klens, &n, &t), TALLY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(t, tally_head(db));
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tt_close(db);
    /* One record from `before` to t: a BATCH of two DELs, a and b. */
    uint32_t nsub = 0;
    assert_int_equal(tt_record_between(dir, before, t, &nsub), TT_BATCH);
    assert_int_equal(nsub, 2);
}

static void mdel_of_missing_keys_writes_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    const void *keys[] = {"x", "y"};
    size_t klens[] = {1, 1};
    uint64_t n = 99;
    tally_ticket t = 0, del_t = 0;

    tt_set(db, "x", 1);
    assert_int_equal(tally_del(db, "x", 1, &del_t), TALLY_OK);
    tally_ticket head = tally_head(db);
    assert_int_equal(tally_mdel(db, 2, keys, klens, &n, &t), TALLY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tally_head(db), head);
    /* The absences are as durable as the last delete. */
    assert_int_equal(t, del_t);
    assert_int_equal(tally_mdel(db, 0, NULL, NULL, &n, NULL), TALLY_OK);
    assert_int_equal(n, 0);
    tt_close(db);
}

static void mdel_refuses_a_bad_key_and_changes_nothing(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    static char longkey[TALLY_KEY_MAX + 1];
    const void *keys[] = {"a", longkey};
    size_t klens[] = {1, sizeof longkey};
    uint64_t n = 99;

    tt_set(db, "a", 1);
    assert_int_equal(tally_mdel(db, 2, keys, klens, &n, NULL), TALLY_EKEYLEN);
    assert_int_equal(n, 99);
    assert_int_equal(tt_get(db, "a"), 1);
    tt_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(mdel_counts_each_existing_key_once,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(mdel_is_one_batch_record,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(mdel_of_missing_keys_writes_nothing,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            mdel_refuses_a_bad_key_and_changes_nothing, tt_fx_setup,
            tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
