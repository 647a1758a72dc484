/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_glob.c - cmd_parse_i64 against Redis's string2ll rules and
 * cmd_glob_match against Redis's stringmatchlen rules (src/cmd/glob.c),
 * including binary keys and patterns that would take exponential time
 * without the skip rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmd.h"

static void test_parse_i64_accepts(void **state)
{
    static const struct { const char *s; int64_t v; } ok[] = {
        {"0", 0},
        {"1", 1},
        {"-1", -1},
        {"42", 42},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 12345;
        assert_int_equal(cmd_parse_i64(ok[i].s, strlen(ok[i].s), &v), 0);
        assert_true(v == ok[i].v);
    }
}

static void test_parse_i64_refuses_what_redis_refuses(void **state)
{
    static const char *const bad[] = {
        "", "-", "+1", " 1", "1 ", "01", "-0", "00", "1.0", "1e3", "0x10",
        "9223372036854775808", "-9223372036854775809",
        "18446744073709551616", "99999999999999999999",
        "123456789012345678901", /* 21 bytes: refused before looking */
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 7;
        assert_int_equal(cmd_parse_i64(bad[i], strlen(bad[i]), &v), -1);
        assert_true(v == 7); /* untouched on failure */
    }
    /* Binary-safe: a NUL inside the length is a non-digit. */
    int64_t v;
    assert_int_equal(cmd_parse_i64("1\0", 2, &v), -1);
    /* Only the given length is read. */
    assert_int_equal(cmd_parse_i64("123", 2, &v), 0);
    assert_true(v == 12);
}

struct gcase {
    const char *pat;
    size_t plen;
    const char *str;
    size_t slen;
    int want;
};
#define G(p, s, w) {p, sizeof(p) - 1, s, sizeof(s) - 1, w}

static void test_parse_u64_takes_digits_up_to_uint64_max(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(cmd_parse_u64("0", 1, &v), 0);
    assert_true(v == 0);
    assert_int_equal(cmd_parse_u64("0042", 4, &v), 0);
    assert_true(v == 42);
    assert_int_equal(cmd_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    assert_int_equal(cmd_parse_u64("18446744073709551616", 20, &v), -1);
    assert_int_equal(cmd_parse_u64("", 0, &v), -1);
    assert_int_equal(cmd_parse_u64("-1", 2, &v), -1);
    assert_int_equal(cmd_parse_u64("+1", 2, &v), -1);
    assert_int_equal(cmd_parse_u64("1 ", 2, &v), -1);
    assert_int_equal(cmd_parse_u64("12", 1, &v), 0); /* stops at len */
    assert_true(v == 1);
}

static void test_glob_matches_like_redis(void **state)
{
    static const struct gcase cases[] = {
        G("", "", 1),
        G("", "a", 0),
        G("a", "a", 1),
        G("a", "b", 0),
        G("*", "", 0), /* stringmatchlen itself; SCAN special-cases "*" */
        G("*", "abc", 1),
        G("a*", "a", 1),
        G("a**", "a", 1),
        G("a*", "abc", 1),
        G("*c", "abc", 1),
        G("*b*", "abc", 1),
        G("*d", "abc", 0),
        G("a?c", "abc", 1),
        G("a?c", "ac", 0),
        G("?", "", 0),
        G("[abc]", "b", 1),
        G("[abc]", "d", 0),
        G("[^abc]", "b", 0),
        G("[^abc]", "d", 1),
        G("[a-c]", "b", 1),
        G("[c-a]", "b", 1), /* a reversed range is swapped */
        G("[a-c]", "d", 0),
        G("[\\]]", "]", 1),
        G("[a-]", "]", 1), /* Redis reads "a-]" as the range ']'..'a' */
        G("a[bc", "ab", 1), /* an unclosed set runs to the end */
        G("a[bc", "ad", 0),
        G("\\*", "*", 1),
        G("\\*", "a", 0),
        G("\\?x", "?x", 1),
        G("a\\", "a\\", 1), /* a trailing backslash matches itself */
        G("user:*", "user:42", 1),
        G("user:*", "use", 0),
        G("h[ae]llo", "hello", 1),
        G("h[ae]llo", "hillo", 0),
        G("a\0*", "a\0b", 1), /* binary-safe pattern and key */
        G("a\0*", "a\1b", 0),
        G("[\x80-\xff]", "\xc3", 1), /* bytes compare unsigned */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct gcase *g = &cases[i];
        int got = cmd_glob_match(g->pat, g->plen, g->str, g->slen);
        if (got != g->want)
            fail_msg("pattern #%zu '%s' on '%s': got %d", i, g->pat, g->str,
                     got);
    }
}

static void test_glob_pathological_pattern_is_fast(void **state)
{
    /* Without Redis's skipLongerMatches this takes exponential time. */
    char str[200];
    const char *pat = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    (void)state;
    memset(str, 'a', sizeof str);
    assert_int_equal(cmd_glob_match(pat, strlen(pat), str, sizeof str), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_i64_accepts),
        cmocka_unit_test(test_parse_i64_refuses_what_redis_refuses),
        cmocka_unit_test(test_parse_u64_takes_digits_up_to_uint64_max),
        cmocka_unit_test(test_glob_matches_like_redis),
        cmocka_unit_test(test_glob_pathological_pattern_is_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
