/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_once.c - idempotency ids through the command layer (cmd.h,
 * "Exactly once") over a real engine in a temporary directory: a repeat
 * answers as the first request did and applies nothing, a reused id is
 * refused, which operations take an id, the fingerprint's documented bytes,
 * a first request still in flight (this program defines fdatasync to hold
 * the engine's sync thread: sync_gate.h), and the
 * statuses' names and statistics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd.h"
#include "util.h"

#include "cmd_fixture.h"
#include "sync_gate.h"

static int setup(void **state)
{
    struct cmdfx *f = xcalloc(1, sizeof *f);

    if (cmdfx_open(f, "cmdonce", CMD_PROTO_HTTP, NULL, NULL) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct cmdfx *f = *state;
    int rc;

    sync_gate(0, 0);
    rc = cmdfx_close(f);
    free(f);
    return rc;
}

/* Run a request and wait for its ticket, as the daemon would. */
static enum cmd_status exec(struct cmdfx *f, const struct cmd_req *req,
                            struct cmd_res *res)
{
    enum cmd_status st = cmd_exec(&f->ctx, &f->s, req, res);

    assert_int_equal(tally_wait(f->db, res->ticket), TALLY_OK);
    return st;
}

static struct cmd_req incr_req(const char *key, int64_t d, const char *id)
{
    struct cmd_req req = {.op = CMD_INCRBY, .key = key, .klen = strlen(key),
                          .num = d, .once = id,
                          .oncelen = id ? strlen(id) : 0};
    return req;
}

static int64_t value_of(struct cmdfx *f, const char *key)
{
    struct cmd_req req = {.op = CMD_GET, .key = key, .klen = strlen(key)};
    struct cmd_res res;

    assert_int_equal(exec(f, &req, &res), CMD_OK);
    return res.value;
}

static void test_incrby_repeat_counts_once(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = incr_req("c", 5, "req-1");
    struct cmd_res res;

    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.value == 5 && res.found && !res.replayed);
    assert_true(res.ticket > 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(exec(f, &req, &res), CMD_OK);
        assert_true(res.value == 5 && res.found && res.replayed);
    }
    /* Without an id, the same request counts again, and clears replayed. */
    req.once = NULL;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.value == 10 && !res.replayed);
    assert_true(value_of(f, "c") == 10);
    assert_int_equal(f->ctx.stats.calls[CMD_PROTO_HTTP][CMD_INCRBY], 12);
}

static void test_reused_id_is_refused(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = incr_req("c", 5, "req-1"), other;
    struct cmd_res res;

    assert_int_equal(exec(f, &req, &res), CMD_OK);
    other = incr_req("c", 6, "req-1"); /* another delta */
    assert_int_equal(exec(f, &other, &res), CMD_ERR_IDREUSED);
    other = incr_req("d", 5, "req-1"); /* another key */
    assert_int_equal(exec(f, &other, &res), CMD_ERR_IDREUSED);
    other.op = CMD_SET; /* another operation */
    other.key = "c";
    other.klen = 1;
    assert_int_equal(exec(f, &other, &res), CMD_ERR_IDREUSED);
    assert_true(value_of(f, "c") == 5);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_HTTP][CMD_INCRBY], 2);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_HTTP][CMD_SET], 1);
}

static void test_set_del_getdel_take_ids(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req set = {.op = CMD_SET, .key = "k", .klen = 1, .num = 7,
                          .once = "s", .oncelen = 1};
    const char *keys[] = {"k", "x"};
    size_t klens[] = {1, 1};
    struct cmd_req del = {.op = CMD_DEL, .nkeys = 1, .keys = keys,
                          .klens = klens, .once = "d", .oncelen = 1};
    struct cmd_req getdel = {.op = CMD_GETDEL, .key = "k", .klen = 1,
                             .once = "g", .oncelen = 1};
    struct cmd_req plain = {.op = CMD_SET, .key = "k", .klen = 1, .num = 9};
    struct cmd_res res;

    assert_int_equal(exec(f, &set, &res), CMD_OK);
    assert_int_equal(exec(f, &set, &res), CMD_OK);
    assert_true(res.replayed);
    assert_int_equal(exec(f, &del, &res), CMD_OK);
    assert_true(res.n == 1 && !res.replayed);
    assert_int_equal(exec(f, &plain, &res), CMD_OK);
    assert_int_equal(exec(f, &del, &res), CMD_OK);
    assert_true(res.n == 1 && res.replayed); /* as the first: not again */
    assert_true(value_of(f, "k") == 9);

    assert_int_equal(exec(f, &getdel, &res), CMD_OK);
    assert_true(res.found && res.value == 9 && !res.replayed);
    assert_int_equal(exec(f, &set, &res), CMD_OK); /* replay: k stays gone */
    assert_int_equal(exec(f, &getdel, &res), CMD_OK);
    assert_true(res.found && res.value == 9 && res.replayed);
    getdel.once = "g2";
    getdel.oncelen = 2;
    assert_int_equal(exec(f, &getdel, &res), CMD_NOTFOUND);
    assert_true(!res.found && !res.replayed);
    assert_int_equal(exec(f, &plain, &res), CMD_OK);
    assert_int_equal(exec(f, &getdel, &res), CMD_NOTFOUND);
    assert_true(res.replayed);
    assert_true(value_of(f, "k") == 9);
}

static void test_what_cannot_take_an_id(void **state)
{
    struct cmdfx *f = *state;
    const char *keys[] = {"a", "b"};
    size_t klens[] = {1, 1};
    int64_t nums[] = {1, 2};
    struct cmd_req req = {.op = CMD_SET, .key = "k", .klen = 1, .num = 1,
                          .flags = CMD_F_NX, .once = "i", .oncelen = 1};
    struct cmd_res res;
    char id[TALLY_ID_MAX + 1];

    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
    req = (struct cmd_req){.op = CMD_DEL, .nkeys = 2, .keys = keys,
                           .klens = klens, .once = "i", .oncelen = 1};
    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
    req = (struct cmd_req){.op = CMD_MSET, .nkeys = 2, .keys = keys,
                           .klens = klens, .nums = nums, .once = "i",
                           .oncelen = 1};
    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
    req = (struct cmd_req){.op = CMD_GET, .key = "k", .klen = 1, .once = "i",
                           .oncelen = 1};
    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
    memset(id, 'i', sizeof id);
    req = incr_req("k", 1, NULL);
    req.once = id;
    req.oncelen = sizeof id;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_IDLEN);
    req.oncelen = 0;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_IDLEN);
    req.oncelen = TALLY_ID_MAX;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(tally_once_count(f->db), 1);
}

/* FNV-1a written out here, over the bytes cmd.h documents. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void test_fingerprint_is_the_documented_hash(void **state)
{
    struct cmd_req req = incr_req("key", -2, "id");
    const char *keys[] = {"key"};
    size_t klens[] = {3};
    unsigned char bytes[] = {'i', 3, 0, 0, 0, 'k', 'e', 'y',
                             0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0, 0, 0, 0};
    uint64_t want = fnv(0xcbf29ce484222325ULL, bytes, sizeof bytes);

    (void)state;
    assert_true(cmd_once_fingerprint(&req) == want);
    /* Pinned: ids on disk must keep matching in later versions. */
    assert_true(want == 0x7881da67d873f237ULL);
    /* DEL names its key in keys[0]; its argument is 0 whatever num says. */
    struct cmd_req del = {.op = CMD_DEL, .nkeys = 1, .keys = keys,
                          .klens = klens, .num = 5};
    bytes[0] = 'd';
    memset(bytes + 8, 0, 8);
    assert_true(cmd_once_fingerprint(&del) ==
                fnv(0xcbf29ce484222325ULL, bytes, sizeof bytes));
}

static void test_repeat_in_flight_is_retry_later(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = incr_req("c", 1, "fly");
    struct cmd_res first, res;

    sync_gate(1, 0);
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &first), CMD_OK);
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_ERR_INFLIGHT);
    assert_int_equal(res.ticket, 0);
    sync_gate(0, 0);
    assert_int_equal(tally_wait(f->db, first.ticket), TALLY_OK);
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.replayed && res.value == 1 && res.ticket == first.ticket);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(cmd_status_name(CMD_ERR_IDREUSED), "idreused");
    assert_string_equal(cmd_status_name(CMD_ERR_INFLIGHT), "inflight");
    assert_string_equal(cmd_status_name(CMD_ERR_IDLEN), "idlen");
    for (int st = 0; st < CMD_STATUS_COUNT; st++)
        assert_string_not_equal(cmd_status_name((enum cmd_status)st),
                                "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_incrby_repeat_counts_once),
        T(test_reused_id_is_refused),
        T(test_set_del_getdel_take_ids),
        T(test_what_cannot_take_an_id),
        T(test_repeat_in_flight_is_retry_later),
        cmocka_unit_test(test_fingerprint_is_the_documented_hash),
        cmocka_unit_test(test_status_names),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
