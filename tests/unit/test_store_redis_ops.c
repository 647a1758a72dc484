/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_redis_ops.c - the Redis store's bytes without a server
 * (src/store/redis_ops.c): keys escaped so a hash tag stays whole and never
 * empty whatever the key holds, SCAN's pattern with glob characters
 * escaped, and replies read exactly (int64 bounds, values Redis could hold
 * that are no counter, SCAN's keys unescaped), and a whole batch's id
 * record (Pbatch:ID) read and written with its answer's exact bytes; a
 * GET or plain INCRBY whose caller reads only the value as Redis's own
 * command, its errors mapped as the script's are.
 */
#define _GNU_SOURCE 1 /* memmem */
#include <stdarg.h>
#include <stdio.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis_int.h"
#include "view.h"

static const struct redis_keys kp = {"tally:", 6, 0};
static char sha[REDIS_S_COUNT_ALL][41];

static int has(const struct redis_op *op, const char *s)
{
    return memmem(op->cmd, op->cmdlen, s, strlen(s)) != NULL;
}

static struct redis_op *format(const struct store_req *req)
{
    struct redis_op *op = calloc(1, sizeof *op);

    assert_int_equal(redis_op_format(&kp, sha, 1000, req, op), STORE_OK);
    return op;
}

static void braces_in_a_key_keep_its_hash_tag_whole(void **state)
{
    struct store_req req = {.op = STORE_INCRBY, .key = "a}b{%", .klen = 5,
                            .num = 1, .once = "id}", .oncelen = 3};
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(has(op, "\r\ntally:{a%7Db%7B%25}\r\n"));
    assert_true(has(op, "\r\ntally:{a%7Db%7B%25}:id:id}\r\n"));
    assert_true(op->writes);
    redis_op_free(op);
}

static void the_empty_key_has_a_tag_of_its_own(void **state)
{
    struct store_req req = {.op = STORE_GET, .key = "", .klen = 0};
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(has(op, "\r\ntally:{%}\r\n"));
    assert_false(op->writes);
    redis_op_free(op);
}

static void scan_escapes_glob_characters_of_the_prefix(void **state)
{
    struct store_req req = {.op = STORE_SCAN, .prefix = "a*[?{", .plen = 5,
                            .count = 10};
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(has(op, "\r\ntally:{a\\*\\[\\?%7B*\r\n"));
    redis_op_free(op);
}

static void long_keys_and_ids_are_refused_before_anything_is_sent(void **s)
{
    static char big[TALLY_KEY_MAX + 1];
    struct store_req req = {.op = STORE_GET, .key = big, .klen = sizeof big};
    struct redis_op op;

    (void)s;
    memset(&op, 0, sizeof op);
    assert_int_equal(redis_op_format(&kp, sha, 1000, &req, &op),
                     STORE_EKEYLEN);
    req.klen = 1;
    req.op = STORE_INCRBY;
    req.once = "";
    req.oncelen = 0;
    assert_int_equal(redis_op_format(&kp, sha, 1000, &req, &op),
                     STORE_EIDLEN);
    assert_null(op.cmd);
}

static void a_value_only_plain_incrby_is_redis_own_incrby(void **state)
{
    struct store_req req = {.op = STORE_INCRBY, .key = "k{", .klen = 2,
                            .num = -7, .value_only = 1};
    static const char want[] = "*3\r\n$6\r\nINCRBY\r\n$12\r\n"
                               "tally:{k%7B}\r\n$2\r\n-7\r\n";
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(op->native);
    assert_true(op->writes);
    assert_int_equal(op->script, REDIS_S_NONE);
    assert_int_equal(op->cmdlen, sizeof want - 1);
    assert_memory_equal(op->cmd, want, sizeof want - 1);
    redis_op_free(op);
}

/* The native commands are written straight into their buffer
 * (format_native): the bytes hiredis's formatter writes for the same argv,
 * for escaped, empty and long keys and numbers to the int64 bounds. */
static void native_commands_are_the_bytes_hiredis_writes(void **state)
{
    static char longkey[TALLY_KEY_MAX];
    const char *keys[] = {"", "%", "a}b{%", "plain", longkey};
    const char *escd[] = {"%", "%25", "a%7Db%7B%25", "plain", longkey};
    int64_t nums[] = {0, -7, INT64_MIN, INT64_MAX};
    char key[TALLY_KEY_MAX + 16], n[24];

    (void)state;
    memset(longkey, 'x', sizeof longkey);
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        size_t klen = keys[k] == longkey ? sizeof longkey : strlen(keys[k]);
        size_t elen = keys[k] == longkey ? sizeof longkey : strlen(escd[k]);
        size_t keylen = 7 + elen + 1;
        memcpy(key, "tally:{", 7);
        memcpy(key + 7, escd[k], elen);
        key[7 + elen] = '}';
        for (size_t i = 0; i <= sizeof nums / sizeof *nums; i++) {
            int get = i == sizeof nums / sizeof *nums;
            struct store_req req = {.op = get ? STORE_GET : STORE_INCRBY,
                                    .key = keys[k], .klen = klen,
                                    .num = get ? 0 : nums[i],
                                    .value_only = 1};
            const char *argv[3] = {get ? "GET" : "INCRBY", key, n};
            size_t lens[3] = {get ? 3 : 6, keylen, 0};
            char *want;
            int wlen;
            struct redis_op *op;
            if (!get)
                lens[2] = (size_t)snprintf(n, sizeof n, "%lld",
                                           (long long)nums[i]);
            wlen = redisFormatCommandArgv(&want, get ? 2 : 3, argv, lens);
            op = format(&req);
            assert_true(op->native);
            assert_int_equal(op->cmdlen, (size_t)wlen);
            assert_memory_equal(op->cmd, want, (size_t)wlen);
            free(want);
            redis_op_free(op);
        }
    }
}

/* Whatever the script does beyond INCRBY stays a script: an id, a TTL, the
 * memcached floor and MUSTEXIST, or a caller that shows the expiry. */
static void an_incrby_with_more_than_a_delta_stays_a_script(void **state)
{
    struct store_req reqs[] = {
        {.op = STORE_INCRBY, .key = "k", .klen = 1, .num = 1},
        {.op = STORE_INCRBY, .key = "k", .klen = 1, .num = 1,
         .value_only = 1, .once = "i", .oncelen = 1},
        {.op = STORE_INCRBY, .key = "k", .klen = 1, .num = 1,
         .value_only = 1, .xmode = STORE_X_REL_IFNEW, .expire = 1000},
        {.op = STORE_INCRBY, .key = "k", .klen = 1, .num = 1,
         .value_only = 1, .flags = STORE_F_FLOOR0},
        {.op = STORE_INCRBY, .key = "k", .klen = 1, .num = 1,
         .value_only = 1, .flags = STORE_F_MUSTEXIST},
    };

    (void)state;
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        struct redis_op *op = format(&reqs[i]);
        assert_false(op->native);
        assert_int_equal(op->script, REDIS_S_INCR);
        assert_true(has(op, "EVALSHA"));
        redis_op_free(op);
    }
}

static void a_value_only_get_is_redis_own_get(void **state)
{
    struct store_req req = {.op = STORE_GET, .key = "g", .klen = 1,
                            .value_only = 1};
    static const char want[] = "*2\r\n$3\r\nGET\r\n$9\r\n"
                               "tally:{g}\r\n";
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(op->native);
    assert_false(op->writes);
    assert_int_equal(op->cmdlen, sizeof want - 1);
    assert_memory_equal(op->cmd, want, sizeof want - 1);
    redis_op_free(op);
    req.value_only = 0; /* TTL, HTTP: the expiry too, in one script */
    op = format(&req);
    assert_false(op->native);
    assert_int_equal(op->script, REDIS_S_GET);
    redis_op_free(op);
}

/* redis_format writes what hiredis's formatter writes, byte for byte:
 * no argument, empty ones, binary ones, lengths of every digit count. */
static void commands_are_written_as_hiredis_writes_them(void **state)
{
    static char big[123456];
    const char *argv[] = {"EVALSHA", "", "a\r\n\0b", big, "x"};
    size_t lens[] = {7, 0, 5, sizeof big, 1};

    (void)state;
    memset(big, 'k', sizeof big);
    for (int argc = 0; argc <= 5; argc++) {
        char *ours = NULL, *theirs = NULL;
        size_t n = redis_format(&ours, argc, argv, lens);
        int m = redisFormatCommandArgv(&theirs, argc, argv, lens);
        assert_int_equal(n, (size_t)m);
        assert_memory_equal(ours, theirs, n);
        free(ours);
        free(theirs);
    }
}

/* ---- replies ---------------------------------------------------------- */

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *arr(size_t n, ...)
{
    va_list ap;
    redisReply *r = calloc(1, sizeof *r);

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof *r->element);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void drop(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        drop(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void answer_with(const char *value, struct redis_op *op)
{
    redisReply *r = arr(10, num(0), num(1), str(value), num(0), num(5),
                        num(0), num(0), num(0), num(0), num(0));
    memset(op, 0, sizeof *op);
    op->op = STORE_INCRBY;
    redis_op_answer(&kp, op, r);
    drop(r);
}

static void values_are_exact_to_the_int64_bounds(void **state)
{
    struct redis_op op;

    (void)state;
    answer_with("9223372036854775807", &op);
    assert_int_equal(op.res.rc, STORE_OK);
    assert_true(op.res.value == INT64_MAX);
    answer_with("-9223372036854775808", &op);
    assert_true(op.res.value == INT64_MIN);
    assert_int_equal(op.res.now_ms, 5);
}

static void a_value_that_is_no_counter_is_an_io_error(void **state)
{
    const char *bad[] = {"9223372036854775808", "1.5", "", "-", "12a",
                         "-9223372036854775809"};
    struct redis_op op;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        answer_with(bad[i], &op);
        assert_int_equal(op.res.rc, STORE_EIO);
        assert_non_null(strstr(op.res.detail, "unexpected reply"));
    }
}

static redisReply *reply(int type, const char *s)
{
    redisReply *r = s ? str(s) : calloc(1, sizeof *r);

    r->type = type;
    return r;
}

/* A native command's reply r into op (r dropped). */
static void native(enum store_opk kind, redisReply *r, struct redis_op *op)
{
    memset(op, 0, sizeof *op);
    op->op = kind;
    op->native = 1;
    redis_op_answer(&kp, op, r);
    drop(r);
}

static void a_native_incrby_answers_as_the_script_does(void **state)
{
    struct redis_op op;

    (void)state;
    native(STORE_INCRBY, num(INT64_MIN), &op);
    assert_int_equal(op.res.rc, STORE_OK);
    assert_int_equal(op.res.found, 1);
    assert_true(op.res.value == INT64_MIN);
    /* Redis's two refusals of INCRBY (t_string.c), nothing changed */
    native(STORE_INCRBY, reply(REDIS_REPLY_ERROR,
           "ERR increment or decrement would overflow"), &op);
    assert_int_equal(op.res.rc, STORE_EOVERFLOW);
    native(STORE_INCRBY, reply(REDIS_REPLY_ERROR,
           "ERR value is not an integer or out of range"), &op);
    assert_int_equal(op.res.rc, STORE_EIO);
    assert_non_null(strstr(op.res.detail, "written by something else"));
    /* another type at the key: Redis's own words */
    native(STORE_INCRBY, reply(REDIS_REPLY_ERROR, "WRONGTYPE Operation "
           "against a key holding the wrong kind of value"), &op);
    assert_int_equal(op.res.rc, STORE_EIO);
    assert_non_null(strstr(op.res.detail, "WRONGTYPE"));
}

static void a_native_get_reads_exact_values_and_refuses_others(void **state)
{
    const char *bad[] = {"9223372036854775808", "1.5", "", "abc"};
    struct redis_op op;

    (void)state;
    native(STORE_GET, reply(REDIS_REPLY_NIL, NULL), &op);
    assert_int_equal(op.res.rc, STORE_NOTFOUND);
    assert_int_equal(op.res.found, 0);
    native(STORE_GET, str("9223372036854775807"), &op);
    assert_int_equal(op.res.rc, STORE_OK);
    assert_int_equal(op.res.found, 1);
    assert_true(op.res.value == INT64_MAX);
    assert_int_equal(op.res.expire_at, 0);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        native(STORE_GET, str(bad[i]), &op);
        assert_int_equal(op.res.rc, STORE_EIO);
        assert_int_equal(op.res.found, 0);
        assert_non_null(strstr(op.res.detail, "unexpected reply"));
    }
    native(STORE_GET, reply(REDIS_REPLY_ERROR, "WRONGTYPE x"), &op);
    assert_int_equal(op.res.rc, STORE_EIO);
}

static void scan_unescapes_the_keys_it_returns(void **state)
{
    redisReply *r = arr(8, str("42"), num(7), str("tally:{x%7By%7D}"),
                        str("3"), num(0), str("tally:{%}"), str("-1"),
                        num(99));
    struct redis_op op;

    (void)state;
    memset(&op, 0, sizeof op);
    op.op = STORE_SCAN;
    redis_op_answer(&kp, &op, r);
    drop(r);
    assert_int_equal(op.res.rc, STORE_OK);
    assert_int_equal(op.res.n, 42);
    assert_int_equal(op.res.n_items, 2);
    assert_int_equal(op.res.klens[0], 4);
    assert_memory_equal(op.res.keys[0], "x{y}", 4);
    assert_int_equal(op.res.klens[1], 0);
    assert_true(op.res.values[1] == -1 && op.res.expires[1] == 99);
    free(op.values);
    free(op.rkeys);
    free(op.rklens);
    free(op.rexp);
    free(op.rmem);
}

static void page(struct redis_op *op, redisReply *r)
{
    redis_op_answer(&kp, op, r);
    drop(r);
}

static void count_is_scan_pages_summed_until_the_cursor_is_back_at_0(
    void **state)
{
    struct store_req req = {.op = STORE_COUNT, .flags = STORE_F_EXPIRES};
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_false(op->writes);
    /* cursor 0, the prefix's pattern, a bounded page, mode 1 (expiries) */
    assert_true(has(op, "\r\n0\r\n$8\r\ntally:{*\r\n$4\r\n1000\r\n"
                        "$1\r\n6\r\n$1\r\n1\r\n"));
    page(op, arr(6, str("17"), num(3), num(2), num(3000), num(0), num(0)));
    assert_int_equal(op->res.rc, STORE_OK);
    assert_int_equal(redis_op_next(&kp, sha, op), 1);
    assert_true(has(op, "\r\n17\r\n$8\r\ntally:{*\r\n"));
    page(op, arr(6, str("0"), num(4), num(1), num(1500), num(0), num(0)));
    assert_int_equal(redis_op_next(&kp, sha, op), 0);
    assert_int_equal(op->res.rc, STORE_OK);
    assert_int_equal(op->res.n, 7);
    assert_int_equal(op->res.expires_n, 3);
    assert_int_equal(op->res.avg_ttl_ms, 1500);
    assert_int_equal(op->pages, 2);
    redis_op_free(op);
}

/* Statistics (STORE_F_ONCE): mode 3, and the id records each page found
 * summed with the counters. */
static void count_with_ids_sums_the_id_records_of_every_page(void **state)
{
    struct store_req req = {.op = STORE_COUNT,
                            .flags = STORE_F_EXPIRES | STORE_F_ONCE};
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(has(op, "$1\r\n6\r\n$1\r\n3\r\n")); /* mode 3 */
    page(op, arr(6, str("5"), num(2), num(0), num(0), num(2), num(90)));
    assert_int_equal(redis_op_next(&kp, sha, op), 1);
    page(op, arr(6, str("0"), num(1), num(1), num(800), num(1), num(40)));
    assert_int_equal(redis_op_next(&kp, sha, op), 0);
    assert_int_equal(op->res.rc, STORE_OK);
    assert_int_equal(op->res.n, 3);
    assert_int_equal(op->res.expires_n, 1);
    assert_int_equal(op->res.once_ids, 3);
    assert_int_equal(op->res.once_bytes, 130);
    redis_op_free(op);
}

static void flush_pages_delete_and_stop_at_an_error(void **state)
{
    struct store_req req = {.op = STORE_FLUSH};
    redisReply *err = calloc(1, sizeof *err);
    struct redis_op *op;

    (void)state;
    op = format(&req);
    assert_true(op->writes);
    assert_true(has(op, "$1\r\n6\r\n$1\r\n2\r\n")); /* mode 2: delete */
    page(op, arr(6, str("9"), num(5), num(0), num(0), num(0), num(0)));
    assert_int_equal(redis_op_next(&kp, sha, op), 1);
    err->type = REDIS_REPLY_ERROR;
    err->str = strdup("BUSY");
    err->len = 4;
    page(op, err);
    assert_int_equal(op->res.rc, STORE_EIO);
    assert_int_equal(redis_op_next(&kp, sha, op), 0);
    redis_op_free(op);
}

static void a_batch_id_is_its_own_record_written_by_the_commit(void **st)
{
    static const char answer[] = "{\"results\":[]}\n";
    struct store_req req = {.once = "k}1", .oncelen = 3, .fingerprint = 77};
    struct redis_once once = {&req, answer, sizeof answer - 1, 5000};
    struct redis_op *op = calloc(1, sizeof *op);
    struct view v;

    (void)st;
    /* The read: outside every counter's hash tag, and no write. */
    redis_op_format_once(&kp, sha, &req, op);
    assert_true(has(op, "\r\ntally:batch:k}1\r\n"));
    assert_true(has(op, "\r\n77\r\n"));
    assert_false(op->writes);
    redis_op_free(op);
    /* The commit: the record's key after the counters', then fp, PX and
     * the answer byte for byte; a write even when the batch wrote none. */
    view_init(&v);
    op = calloc(1, sizeof *op);
    redis_op_format_commit(&kp, sha, &v, &once, op);
    assert_true(has(op, "\r\ntally:batch:k}1\r\n"));
    assert_true(has(op, "\r\n77\r\n$4\r\n5000\r\n$15\r\n"
                        "{\"results\":[]}\n\r\n"));
    assert_true(op->writes);
    redis_op_free(op);
    op = calloc(1, sizeof *op);
    redis_op_format_commit(&kp, sha, &v, NULL, op);
    assert_false(has(op, "batch:"));
    assert_false(op->writes);
    redis_op_free(op);
    view_free(&v);
}

/* On a cluster the record sits under the batch's first counter's hash
 * tag, in its slot, so the commit script writes it with the counters; on
 * one Redis it stays Pbatch:ID, where older versions wrote it, even when a
 * key is named. */
static void a_batch_id_on_a_cluster_is_beside_its_first_counter(void **st)
{
    static const struct redis_keys ck = {"tally:", 6, 1};
    static const char answer[] = "{}\n";
    struct store_req req = {.once = "i}d", .oncelen = 3, .fingerprint = 9,
                            .key = "a{b", .klen = 3};
    struct redis_once once = {&req, answer, sizeof answer - 1, 5000};
    struct redis_op *op = calloc(1, sizeof *op);
    struct view v;

    (void)st;
    redis_op_format_once(&ck, sha, &req, op);
    assert_true(has(op, "\r\ntally:{a%7Bb}:batch:i}d\r\n"));
    assert_false(op->writes);
    redis_op_free(op);
    view_init(&v);
    op = calloc(1, sizeof *op);
    redis_op_format_commit(&ck, sha, &v, &once, op);
    assert_true(has(op, "\r\ntally:{a%7Bb}:batch:i}d\r\n"));
    redis_op_free(op);
    view_free(&v);
    op = calloc(1, sizeof *op);
    redis_op_format_once(&kp, sha, &req, op);
    assert_true(has(op, "\r\ntally:batch:i}d\r\n"));
    assert_false(has(op, "{a%7Bb}"));
    redis_op_free(op);
}

static void once_answer(struct redis_op *op, redisReply *r)
{
    memset(op, 0, sizeof *op);
    op->op = STORE_GET;
    op->script = REDIS_S_ONCE;
    redis_op_answer(&kp, op, r);
    drop(r);
}

static void a_batch_id_record_answers_its_exact_bytes(void **state)
{
    struct redis_op op;

    (void)state;
    once_answer(&op, arr(10, num(0), num(1), str("[1]\n"), num(0), num(0),
                         num(0), num(1), num(0), num(0), num(0)));
    assert_int_equal(op.res.rc, STORE_OK);
    assert_int_equal(op.res.alen, 4);
    assert_memory_equal(op.res.answer, "[1]\n", 4);
    assert_true(op.res.replayed);
    free(op.rmem);
    once_answer(&op, arr(10, num(1), num(0), str("0"), num(0), num(0),
                         num(0), num(0), num(0), num(0), num(0)));
    assert_int_equal(op.res.rc, STORE_NOTFOUND);
    assert_null(op.res.answer);
    once_answer(&op, arr(10, num(-5), num(0), str("0"), num(0), num(0),
                         num(0), num(0), num(0), num(0), num(0)));
    assert_int_equal(op.res.rc, STORE_EIDREUSED);
    assert_null(op.res.answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(braces_in_a_key_keep_its_hash_tag_whole),
        cmocka_unit_test(the_empty_key_has_a_tag_of_its_own),
        cmocka_unit_test(scan_escapes_glob_characters_of_the_prefix),
        cmocka_unit_test(long_keys_and_ids_are_refused_before_anything_is_sent),
        cmocka_unit_test(commands_are_written_as_hiredis_writes_them),
        cmocka_unit_test(a_value_only_plain_incrby_is_redis_own_incrby),
        cmocka_unit_test(native_commands_are_the_bytes_hiredis_writes),
        cmocka_unit_test(an_incrby_with_more_than_a_delta_stays_a_script),
        cmocka_unit_test(a_value_only_get_is_redis_own_get),
        cmocka_unit_test(values_are_exact_to_the_int64_bounds),
        cmocka_unit_test(a_native_incrby_answers_as_the_script_does),
        cmocka_unit_test(a_native_get_reads_exact_values_and_refuses_others),
        cmocka_unit_test(a_value_that_is_no_counter_is_an_io_error),
        cmocka_unit_test(scan_unescapes_the_keys_it_returns),
        cmocka_unit_test(
            count_is_scan_pages_summed_until_the_cursor_is_back_at_0),
        cmocka_unit_test(count_with_ids_sums_the_id_records_of_every_page),
        cmocka_unit_test(flush_pages_delete_and_stop_at_an_error),
        cmocka_unit_test(a_batch_id_is_its_own_record_written_by_the_commit),
        cmocka_unit_test(a_batch_id_record_answers_its_exact_bytes),
        cmocka_unit_test(a_batch_id_on_a_cluster_is_beside_its_first_counter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
