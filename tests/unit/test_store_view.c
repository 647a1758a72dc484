/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_view.c - store operations over a batch's private view
 * (src/store/view.c): later operations see earlier ones' writes, the state
 * read stays apart from the state left (what a commit checks and what it
 * writes), conditions, expiries at or before now delete, overflow changes
 * nothing, multi-key operations fill the caller's arrays.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "view.h"

#define NOW 1700000000000LL

static struct view v;

static int setup(void **state)
{
    (void)state;
    view_init(&v);
    v.now_ms = NOW;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    view_free(&v);
    return 0;
}

/* Key k, read as existing with n (expiry x) or missing (exists 0). */
static size_t known(const char *k, int exists, int64_t n, int64_t x)
{
    size_t ki = view_add(&v, k, strlen(k));
    view_read(&v, ki, exists, n, x);
    return ki;
}

static int run1(enum store_opk op, const char *k, int64_t num,
                struct store_res *res)
{
    struct store_req r = {.op = op, .key = k, .klen = strlen(k), .num = num};
    return view_run(&v, &r, res, NULL, NULL);
}

static void later_ops_see_earlier_writes_and_the_read_state_stays(void **s)
{
    struct store_res res;
    size_t ki = known("a", 1, 10, NOW + 5000);

    (void)s;
    assert_int_equal(run1(STORE_INCRBY, "a", 5, &res), STORE_OK);
    assert_int_equal(res.value, 15);
    assert_int_equal(res.expire_at, NOW + 5000); /* INCRBY keeps it */
    assert_int_equal(run1(STORE_INCRBY, "a", -20, &res), STORE_OK);
    assert_int_equal(res.value, -5);
    assert_int_equal(run1(STORE_GET, "a", 0, &res), STORE_OK);
    assert_int_equal(res.value, -5);
    assert_true(v.keys[ki].dirty);
    assert_int_equal(v.keys[ki].was, 1);
    assert_int_equal(v.keys[ki].was_n, 10);
    assert_int_equal(v.keys[ki].was_x, NOW + 5000);
}

static void a_missing_key_starts_at_zero_and_getdel_deletes_it(void **s)
{
    struct store_res res;
    size_t ki = known("b", 0, 0, 0);

    (void)s;
    assert_int_equal(run1(STORE_GET, "b", 0, &res), STORE_NOTFOUND);
    assert_false(v.keys[ki].dirty); /* a read writes nothing */
    assert_int_equal(run1(STORE_INCRBY, "b", 3, &res), STORE_OK);
    assert_int_equal(res.value, 3);
    assert_int_equal(run1(STORE_GETDEL, "b", 0, &res), STORE_OK);
    assert_int_equal(res.value, 3);
    assert_false(v.keys[ki].exists);
    assert_true(v.keys[ki].dirty);
    assert_int_equal(run1(STORE_GETDEL, "b", 0, &res), STORE_NOTFOUND);
}

static void set_conditions_and_an_expiry_in_the_past_deletes(void **s)
{
    struct store_res res;
    struct store_req r = {.op = STORE_SET, .key = "c", .klen = 1, .num = 7,
                          .flags = STORE_F_NX, .xmode = STORE_X_NONE};
    size_t ki = known("c", 1, 1, 0);

    (void)s;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_NOTSET);
    assert_false(v.keys[ki].dirty);
    r.flags = STORE_F_IFEQ;
    r.cmp = 1;
    r.xmode = STORE_X_REL;
    r.expire = 1000;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(v.keys[ki].n, 7);
    assert_int_equal(v.keys[ki].expire_at, NOW + 1000);
    r.flags = 0;
    r.xmode = STORE_X_ABS;
    r.expire = NOW; /* at now: deleted, as Redis 7 does */
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_true(res.expired);
    assert_false(v.keys[ki].exists);
}

static void an_overflowing_increment_changes_nothing(void **s)
{
    struct store_res res;
    size_t ki = known("d", 1, INT64_MAX - 1, 0);

    (void)s;
    assert_int_equal(run1(STORE_INCRBY, "d", 2, &res), STORE_EOVERFLOW);
    assert_false(v.keys[ki].dirty);
    assert_int_equal(v.keys[ki].n, INT64_MAX - 1);
}

static void expire_conditions_follow_redis_7(void **s)
{
    struct store_res res;
    struct store_req r = {.op = STORE_EXPIRE, .key = "e", .klen = 1,
                          .xmode = STORE_X_REL, .expire = 9000,
                          .flags = STORE_F_GT};
    size_t ki = known("e", 1, 4, NOW + 10000);

    (void)s;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(res.n, 0); /* not later than the one it has */
    r.flags = STORE_F_LT;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(v.keys[ki].expire_at, NOW + 9000);
    r.xmode = STORE_X_NONE;
    r.flags = 0;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(v.keys[ki].expire_at, 0);
}

static void multi_key_ops_fill_the_callers_arrays(void **s)
{
    const char *keys[3] = {"x", "y", "x"};
    size_t klens[3] = {1, 1, 1};
    int64_t nums[2] = {4, 5}, values[3];
    unsigned char founds[3];
    struct store_res res;
    struct store_req r = {.op = STORE_MSET, .nkeys = 2, .keys = keys,
                          .klens = klens, .nums = nums};

    (void)s;
    known("x", 1, 1, NOW + 100);
    known("y", 0, 0, 0);
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(v.keys[0].expire_at, 0); /* MSET clears it */
    r.op = STORE_MGET;
    r.nkeys = 3;
    assert_int_equal(view_run(&v, &r, &res, values, founds), STORE_OK);
    assert_int_equal(res.n_items, 3);
    assert_int_equal(values[1], 5);
    assert_int_equal(values[2], 4);
    r.op = STORE_DEL;
    r.nkeys = 2;
    assert_int_equal(view_run(&v, &r, &res, NULL, founds), STORE_OK);
    assert_int_equal(res.n, 2);
    r.op = STORE_EXISTS;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_OK);
    assert_int_equal(res.n, 0);
}

static void ids_and_whole_keyspace_ops_are_unsupported(void **s)
{
    struct store_res res;
    struct store_req r = {.op = STORE_INCRBY, .key = "f", .klen = 1, .num = 1,
                          .once = "id", .oncelen = 2};
    size_t ki = known("f", 0, 0, 0);

    (void)s;
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_EUNSUPPORTED);
    assert_false(v.keys[ki].dirty);
    r.op = STORE_SCAN;
    r.once = NULL;
    assert_int_equal(view_req_nkeys(&r), 0);
    assert_int_equal(view_run(&v, &r, &res, NULL, NULL), STORE_EUNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(later_ops_see_earlier_writes_and_the_read_state_stays),
        T(a_missing_key_starts_at_zero_and_getdel_deletes_it),
        T(set_conditions_and_an_expiry_in_the_past_deletes),
        T(an_overflowing_increment_changes_nothing),
        T(expire_conditions_follow_redis_7),
        T(multi_key_ops_fill_the_callers_arrays),
        T(ids_and_whole_keyspace_ops_are_unsupported),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
