/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_proto_http_json.c - the counter answer written without jansson
 * (src/proto/http_json.c): for every key byte, the edges of 64-bit values
 * and a range of expiries, its bytes are those jansson writes for
 * http_counter_json() with JSON_COMPACT plus a newline (what every counter
 * answer was before), and plain keys really take the fast path.
 * http_counter_body() is checked on a real evhttp request, both for keys it
 * writes itself and for keys it leaves to jansson (escapes, UTF-8,
 * key_b64).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http_int.h"

/* What the answer was before http_json.c: jansson's dump and a newline.
 * Caller frees. */
static char *jansson_text(const char *key, size_t klen, int64_t v,
                          int64_t expire_at)
{
    json_t *o = http_counter_json(key, klen, v, expire_at);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(s);
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    assert_non_null(t);
    memcpy(t, s, n);
    t[n] = '\n';
    t[n + 1] = 0;
    free(s);
    return t;
}

/* Returns 1 if the fast path wrote the answer (and it matched), 0 if it
 * left the key to jansson. */
static int check_same(const char *key, size_t klen, int64_t v,
                      int64_t expire_at)
{
    char out[TALLY_KEY_MAX + 128];
    size_t n = http_json_counter(out, sizeof out, key, klen, v, expire_at);
    if (!n)
        return 0;
    char *want = jansson_text(key, klen, v, expire_at);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("key %.*s value %lld expiry %lld: wrote %.*s, jansson %s",
                 (int)klen, key, (long long)v, (long long)expire_at, (int)n,
                 out, want);
    free(want);
    return 1;
}

static const int64_t values[] = {
    0, 1, -1, 9, 10, -10, 99, 100, 123456789, -987654321,
    INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1,
    (int64_t)1 << 53, -((int64_t)1 << 53) - 1,
};

static const int64_t expiries[] = {
    0, 1, 999, 1000, 1001, 86399999, 1764590400000, 1764590400123,
    1764590400999, 951782400000 /* 2000-02-29 */, 253402300799999,
};

static void test_plain_keys_match_jansson(void **state)
{
    static const char *const keys[] = {
        "a", "bench:12345", "page/home", "visits", "with space",
        "~!@#$%^&*()_+-={}[]|:;'<>,.?/`", "0", "rl:user42",
    };
    (void)state;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        for (size_t i = 0; i < sizeof values / sizeof *values; i++)
            for (size_t j = 0; j < sizeof expiries / sizeof *expiries; j++)
                assert_true(check_same(keys[k], strlen(keys[k]), values[i],
                                       expiries[j]));
}

/* Every byte value alone, and inside a plain key: printable ASCII but '"'
 * and '\\' takes the fast path, everything else is jansson's. */
static void test_every_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char one[1] = {(char)c};
        char mid[5] = {'a', 'b', (char)c, 'c', 'd'};
        int plain = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
        assert_int_equal(check_same(one, 1, 7, 0), plain);
        assert_int_equal(check_same(mid, 5, -7, 1764590400123), plain);
    }
}

static void test_empty_and_longest_key(void **state)
{
    char key[TALLY_KEY_MAX];
    (void)state;
    memset(key, 'k', sizeof key);
    assert_true(check_same("", 0, 5, 0));
    assert_true(check_same(key, sizeof key, INT64_MIN, 253402300799999));
}

static void test_small_buffer_falls_back(void **state)
{
    char out[64];
    (void)state;
    /* {"key":"abc","value":1}\n is 24 bytes. */
    assert_int_equal(http_json_counter(out, 24, "abc", 3, 1, 0), 24);
    assert_int_equal(http_json_counter(out, 23, "abc", 3, 1, 0), 0);
    assert_int_equal(http_json_counter(out, 0, "abc", 3, 1, 0), 0);
}

/* The body and Content-Type http_counter_body() puts on a request. */
static void check_body(const char *key, size_t klen, int64_t v,
                       int64_t expire_at)
{
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    assert_non_null(req);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add(out, "stale", 5); /* a rerun's leftover is replaced */
    http_counter_body(req, key, klen, v, expire_at);
    char *want = jansson_text(key, klen, v, expire_at);
    size_t n = evbuffer_get_length(out);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(evbuffer_pullup(out, -1), want, n);
    const char *ct = evhttp_find_header(
        evhttp_request_get_output_headers(req), "Content-Type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/json");
    free(want);
    evhttp_request_free(req);
}

static void test_counter_body_both_paths(void **state)
{
    (void)state;
    check_body("bench:1", 7, 42, 0);                  /* fast path */
    check_body("bench:1", 7, -42, 1764590400123);     /* fast, expiry */
    check_body("q\"uote\\", 7, 1, 0);                 /* escapes */
    check_body("tab\tnl\n", 7, 1, 0);                 /* control bytes */
    check_body("caf\xc3\xa9", 5, 3, 1764590400000);   /* UTF-8 */
    check_body("\xff\xfe", 2, 3, 0);                  /* key_b64 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_keys_match_jansson),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_empty_and_longest_key),
        cmocka_unit_test(test_small_buffer_falls_back),
        cmocka_unit_test(test_counter_body_both_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
