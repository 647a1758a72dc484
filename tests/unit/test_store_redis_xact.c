/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_redis_xact.c - the Redis store's batches (src/store/
 * redis_xact.c) against a real redis-server this test starts on loopback:
 * a batch sees its own writes and shows nothing before its commit; the
 * commit script answers STORE_ECONFLICT, with nothing of the batch
 * written, when a key it read changed its value, its expiry instant or its
 * existence since the read; and a commit writes values with their exact
 * expiry instants.  Skipped when no redis-server is on PATH.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "redis.h"
#include "store.h"

static pid_t server;
static int port;
static struct event_base *evb;
static struct store *st;
static redisContext *other; /* another client of the same server */

struct wait {
    int done;
    struct store_res res;
};

static void on_done(void *arg, const struct store_res *res)
{
    struct wait *w = arg;

    w->res = *res;
    w->done = 1;
}

/* Run one exec (or commit when req is NULL) to its answer. */
static struct store_res call(const struct store_req *req,
                             struct store_batch *b)
{
    struct wait w = {0};
    int rc;

    store_res_init(&w.res);
    rc = req ? st->ops->exec(st, req, &w.res, on_done, &w)
             : st->ops->batch_commit(st, b, &w.res, on_done, &w);
    if (rc == STORE_DONE)
        return w.res;
    while (!w.done)
        event_base_loop(evb, EVLOOP_ONCE);
    return w.res;
}

static struct store_res op1(struct store_batch *b, enum store_opk op,
                            const char *k, int64_t num)
{
    struct store_req r = {.op = op, .key = k, .klen = strlen(k), .num = num,
                          .batch = b};
    return call(&r, b);
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(other, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void cmd0(const char *fmt, const char *k)
{
    freeReplyObject(cmd(fmt, k));
}

/* The raw value of counter k ("" when missing). */
static void raw(const char *k, char *out, size_t n)
{
    redisReply *r = cmd("GET tally:{%s}", k);

    snprintf(out, n, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

static int setup(void **state)
{
    char p[16], err[200];
    struct store_res res;

    (void)state;
    port = 20000 + getpid() % 20000;
    snprintf(p, sizeof p, "%d", port);
    server = fork();
    if (server == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execlp("redis-server", "redis-server", "--port", p, "--save", "",
               "--appendonly", "no", "--bind", "127.0.0.1", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !other; i++) {
        usleep(50000);
        other = redisConnect("127.0.0.1", port);
        if (other && other->err) {
            redisFree(other);
            other = NULL;
        }
    }
    if (!other)
        return 0; /* no server: the tests skip */
    evb = event_base_new();
    snprintf(err, sizeof err, "redis://127.0.0.1:%d", port);
    if (store_redis_open(evb, err, 0, &st, err, sizeof err) != 0)
        return -1;
    /* Until connected, operations wait; one read makes sure. */
    do {
        struct store_req get = {.op = STORE_GET, .key = "x", .klen = 1};
        res = call(&get, NULL);
    } while (res.rc == STORE_EUNAVAIL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (st)
        st->ops->close(st);
    if (evb)
        event_base_free(evb);
    if (other)
        redisFree(other);
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    return 0;
}

static struct store_batch *begin(void)
{
    struct store_batch *b = NULL;

    if (!other)
        skip();
    assert_int_equal(st->ops->batch_begin(st, 0, &b), STORE_OK);
    return b;
}

static void own_writes_at_once_and_nothing_shown_before_commit(void **s)
{
    struct store_batch *b = begin();
    char v[32];

    (void)s;
    cmd0("SET tally:{%s} 10", "own");
    assert_int_equal(op1(b, STORE_INCRBY, "own", 5).value, 15);
    assert_int_equal(op1(b, STORE_INCRBY, "own2", 1).value, 1);
    assert_int_equal(op1(b, STORE_GET, "own", 0).value, 15);
    raw("own", v, sizeof v);
    assert_string_equal(v, "10");
    raw("own2", v, sizeof v);
    assert_string_equal(v, "");
    assert_int_equal(call(NULL, b).rc, STORE_OK);
    raw("own", v, sizeof v);
    assert_string_equal(v, "15");
    raw("own2", v, sizeof v);
    assert_string_equal(v, "1");
}

/* The batch reads k (and writes w); then another client runs change on
 * k; the commit must conflict and write nothing. */
static void conflicts_after(const char *k, const char *change)
{
    struct store_batch *b = begin();
    char v[32];

    cmd0("DEL tally:{%s}", "w");
    op1(b, STORE_GET, k, 0);
    assert_int_equal(op1(b, STORE_INCRBY, "w", 1).rc, STORE_OK);
    cmd0(change, k);
    assert_int_equal(call(NULL, b).rc, STORE_ECONFLICT);
    raw("w", v, sizeof v);
    assert_string_equal(v, "");
}

static void a_changed_value_is_a_conflict(void **s)
{
    (void)s;
    if (other)
        cmd0("SET tally:{%s} 1", "cv");
    conflicts_after("cv", "INCRBY tally:{%s} 1");
}

static void a_changed_expiry_instant_is_a_conflict(void **s)
{
    (void)s;
    if (other)
        cmd0("SET tally:{%s} 1 PX 100000", "ce");
    conflicts_after("ce", "PEXPIRE tally:{%s} 200000");
}

static void a_key_created_after_it_was_read_missing_is_a_conflict(void **s)
{
    (void)s;
    if (other)
        cmd0("DEL tally:{%s}", "cc");
    conflicts_after("cc", "SET tally:{%s} 0");
}

static void a_key_deleted_after_it_was_read_is_a_conflict(void **s)
{
    (void)s;
    if (other)
        cmd0("SET tally:{%s} 3", "cd");
    conflicts_after("cd", "DEL tally:{%s}");
}

static void a_commit_writes_the_exact_expiry_instant(void **s)
{
    struct store_batch *b = begin();
    struct store_req r = {.op = STORE_SET, .key = "px", .klen = 2, .num = 9,
                          .xmode = STORE_X_ABS, .batch = b};
    redisReply *rep;

    (void)s;
    r.expire = st->ops->now_ms(st) + 3600000;
    assert_int_equal(call(&r, b).rc, STORE_OK);
    assert_int_equal(call(NULL, b).rc, STORE_OK);
    rep = cmd("PEXPIRETIME tally:{%s}", "px");
    assert_int_equal(rep->integer, r.expire);
    freeReplyObject(rep);
}

static void a_batch_that_only_reads_still_checks_what_it_read(void **s)
{
    struct store_batch *b = begin();

    (void)s;
    cmd0("SET tally:{%s} 1", "ro");
    op1(b, STORE_GET, "ro", 0);
    cmd0("SET tally:{%s} 2", "ro");
    assert_int_equal(call(NULL, b).rc, STORE_ECONFLICT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_writes_at_once_and_nothing_shown_before_commit),
        cmocka_unit_test(a_changed_value_is_a_conflict),
        cmocka_unit_test(a_changed_expiry_instant_is_a_conflict),
        cmocka_unit_test(a_key_created_after_it_was_read_missing_is_a_conflict),
        cmocka_unit_test(a_key_deleted_after_it_was_read_is_a_conflict),
        cmocka_unit_test(a_commit_writes_the_exact_expiry_instant),
        cmocka_unit_test(a_batch_that_only_reads_still_checks_what_it_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
