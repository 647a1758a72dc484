/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_hold.c - the durability hold at the command layer over the
 * embedded engine: every result that shows state carries the ticket of
 * that state, and while its sync has not run the ticket is past
 * tally_durable(), which is what makes the daemon hold the reply
 * (src/server/outbox.c).  The engine's fsyncs are held with sync_gate.h, so
 * each change stays in flight while its result is looked at.
 *
 * Regression: the INCR fast path (commit 3b96ebe, reverted) turned the
 * engine store's take() into a call of itself; the compiler dropped it, so
 * every engine result came back with ticket 0, replies left before their
 * change was on disk, and tests/e2e/test_resp_crash.py lost acknowledged
 * increments after SIGKILL.  Each case here names one request path that
 * must not lose its ticket, the plain INCRBY fast path first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd.h"
#include "cmd_fixture.h"
#include "sync_gate.h"

static int setup(void **state)
{
    return cmdfx_setup(state, "cmdhold", CMD_PROTO_RESP);
}

static int teardown(void **state)
{
    sync_gate(0, 0); /* a failed case may leave the syncs held */
    return cmdfx_teardown(state);
}

/* Set key to v and wait until that is durable. */
static void durable_set(struct cmdfx *f, const char *key, int64_t v)
{
    struct cmd_req req = {.op = CMD_SET, .key = key, .klen = strlen(key),
                          .num = v};
    struct cmd_res res;

    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
    assert_int_equal(tally_wait(f->db, res.ticket), TALLY_OK);
}

/* Run req with the syncs held: it must answer want, with a ticket that is
 * the newest change's (the one this request made or shows) and is not
 * durable yet, so the daemon would hold its reply.  Returns the ticket. */
static tally_ticket run_held(struct cmdfx *f, const struct cmd_req *req,
                             enum cmd_status want, struct cmd_res *res)
{
    assert_int_equal(cmd_exec(&f->ctx, &f->s, req, res), want);
    assert_true(res->ticket > 0);
    assert_int_equal(res->ticket, tally_head(f->db));
    assert_true(res->ticket > tally_durable(f->db));
    return res->ticket;
}

/* INCR, DECR, INCRBY: no expiry, no floor, no id (the engine's fast path). */
static void test_plain_incrby_result_carries_its_change_ticket(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_INCRBY, .key = "c", .klen = 1, .num = 1};
    struct cmd_res res;
    tally_ticket first;

    durable_set(f, "c", 41);
    sync_gate(1, 0);
    first = run_held(f, &req, CMD_OK, &res);
    assert_int_equal(res.value, 42);
    req.num = -2;
    assert_true(run_held(f, &req, CMD_OK, &res) > first);
    assert_int_equal(res.value, 40);
    /* A counter it creates too. */
    req.key = "new";
    req.klen = 3;
    run_held(f, &req, CMD_OK, &res);
    assert_int_equal(res.value, -2);
    sync_gate(0, 0);
    assert_int_equal(tally_wait(f->db, res.ticket), TALLY_OK);
}

/* The fast path keeps a counter's expiry and shows it, as the full one. */
static void test_plain_incrby_keeps_and_shows_the_expiry(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req set = {.op = CMD_SET, .key = "t", .klen = 1, .num = 1,
                          .flags = CMD_F_PX, .expire = 600000};
    struct cmd_req req = {.op = CMD_INCRBY, .key = "t", .klen = 1, .num = 1};
    struct cmd_res res;
    int64_t at;

    assert_int_equal(cmd_exec(&f->ctx, &f->s, &set, &res), CMD_OK);
    at = res.expire_at;
    assert_true(at > 0);
    sync_gate(1, 0);
    run_held(f, &req, CMD_OK, &res);
    assert_int_equal(res.value, 2);
    assert_true(res.found);
    assert_int_equal(res.expire_at, at);
}

/* The other INCRBY forms take the full path; they must carry it too. */
static void test_incrby_with_expiry_floor_or_mustexist_carries_its_ticket(
    void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req ttl = {.op = CMD_INCRBY, .key = "a", .klen = 1, .num = 3,
                          .flags = CMD_F_PX, .expire = 60000};
    struct cmd_req floor = {.op = CMD_INCRBY, .key = "a", .klen = 1,
                            .num = -10, .flags = CMD_F_FLOOR0 |
                                                 CMD_F_MUSTEXIST};
    struct cmd_res res;

    durable_set(f, "a", 1);
    sync_gate(1, 0);
    run_held(f, &ttl, CMD_OK, &res);
    assert_int_equal(res.value, 4);
    run_held(f, &floor, CMD_OK, &res);
    assert_int_equal(res.value, 0);
}

/* A read of a counter whose change is in flight shows that change: it
 * waits for the same ticket. */
static void test_read_of_a_counter_in_flight_carries_its_ticket(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req incr = {.op = CMD_INCRBY, .key = "r", .klen = 1, .num = 5};
    struct cmd_req get = {.op = CMD_GET, .key = "r", .klen = 1};
    struct cmd_res res;
    tally_ticket t;

    sync_gate(1, 0);
    t = run_held(f, &incr, CMD_OK, &res);
    assert_int_equal(run_held(f, &get, CMD_OK, &res), t);
    assert_int_equal(res.value, 5);
}

/* An error computed from a value in flight (overflow shows it) waits for
 * it too. */
static void test_overflow_error_carries_the_ticket_of_the_value(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req set = {.op = CMD_SET, .key = "big", .klen = 3,
                          .num = INT64_MAX};
    struct cmd_req incr = {.op = CMD_INCRBY, .key = "big", .klen = 3,
                           .num = 1};
    struct cmd_res res;
    tally_ticket t;

    sync_gate(1, 0);
    t = run_held(f, &set, CMD_OK, &res);
    assert_int_equal(run_held(f, &incr, CMD_ERR_OVERFLOW, &res), t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_plain_incrby_result_carries_its_change_ticket),
        T(test_plain_incrby_keeps_and_shows_the_expiry),
        T(test_incrby_with_expiry_floor_or_mustexist_carries_its_ticket),
        T(test_read_of_a_counter_in_flight_carries_its_ticket),
        T(test_overflow_error_carries_the_ticket_of_the_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
