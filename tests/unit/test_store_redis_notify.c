/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_redis_notify.c - what the Redis store's keyspace notifications
 * (src/store/redis_notify.c) decide without a server: which
 * notify-keyspace-events flags it must add, and which expired keys are
 * tally's counters (unescaped), not id records, batch records or other
 * programs' keys.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis_int.h"

static const struct redis_keys kp = {"tally:", 6, 0};

static void flags_get_e_and_x_added_and_keep_the_others(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(redis_notify_flags("", out, sizeof out), 1);
    assert_string_equal(out, "Ex");
    assert_int_equal(redis_notify_flags("Kg", out, sizeof out), 1);
    assert_string_equal(out, "KgEx");
    assert_int_equal(redis_notify_flags("Ex", out, sizeof out), 0);
    assert_int_equal(redis_notify_flags("KEA", out, sizeof out), 0);
    assert_int_equal(redis_notify_flags("xK", out, sizeof out), 1);
    assert_string_equal(out, "xKE");
}

static int key_of(const char *k, char *out, size_t *n)
{
    return redis_notify_key(&kp, k, strlen(k), out, n);
}

static void a_counter_key_is_unescaped(void **state)
{
    char out[TALLY_KEY_MAX * 3 + 2];
    size_t n;

    (void)state;
    assert_int_equal(key_of("tally:{page:home}", out, &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(out, "page:home", 9);
    assert_int_equal(key_of("tally:{a%7Bb%7Dc%25}", out, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "a{b}c%", 6);
    assert_int_equal(key_of("tally:{%}", out, &n), 0); /* the empty key */
    assert_int_equal(n, 0);
}

static void other_keys_are_not_counters(void **state)
{
    char out[TALLY_KEY_MAX * 3 + 2];
    size_t n;

    (void)state;
    assert_int_equal(key_of("tally:{k}:id:abc", out, &n), -1); /* an id */
    assert_int_equal(key_of("tally:batch:abc", out, &n), -1);
    assert_int_equal(key_of("other:{k}", out, &n), -1);
    assert_int_equal(key_of("tally:k", out, &n), -1);
    assert_int_equal(key_of("tally:{}", out, &n), -1);
    assert_int_equal(key_of("tally:", out, &n), -1);
    assert_int_equal(key_of("k", out, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_get_e_and_x_added_and_keep_the_others),
        cmocka_unit_test(a_counter_key_is_unescaped),
        cmocka_unit_test(other_keys_are_not_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
