/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_expire.c - the command layer's expiry (cmd.h "Expiry"): SET with
 * an expiry, KEEPTTL and a plain SET, INCRBY keeping it or setting it only
 * when it creates, EXPIRE's NX/XX/GT/LT, PERSIST, TTL, GETEX, a TTL of
 * zero, negative or in the past deleting, out-of-range expiries, tickets,
 * idempotency ids with a TTL and the keyspace figures.  The engine runs on
 * the test's own clock.
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
#include "engine.h"

static int64_t now_ms = 1700000000000;

static int64_t clock_fn(void *ctx)
{
    (void)ctx;
    return now_ms;
}

struct fx {
    char dir[64];
    tally *db;
    struct store_engine se;
    struct cmd_ctx ctx;
    struct cmd_session s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    tally_options o;
    char err[TALLY_ERRMAX];

    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-cmdx-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    tally_options_init(&o);
    o.sync = TALLY_SYNC_NO;
    o.clock_ms = clock_fn;
    if (tally_open(f->dir, &o, &f->db, err) != TALLY_OK) {
        fprintf(stderr, "tally_open: %s\n", err);
        return -1;
    }
    store_engine_init(&f->se, f->db);
    cmd_init(&f->ctx, &f->se.base, NULL, 0, NULL);
    f->s.id = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];

    store_close(&f->se.base);
    tally_close(f->db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    now_ms = 1700000000000;
    return 0;
}

/* Run op on key with num, flags and expire; returns the status. */
static enum cmd_status run(struct fx *f, enum cmd_op op, const char *key,
                           int64_t num, unsigned flags, int64_t expire,
                           struct cmd_res *res)
{
    struct cmd_req req = {0};

    req.op = op;
    req.key = key;
    req.klen = strlen(key);
    req.num = num;
    req.flags = flags;
    req.expire = expire;
    return cmd_exec(&f->ctx, &f->s, &req, res);
}

/* The TTL of key: -2 missing, -1 none, else ms left. */
static int64_t ttl(struct fx *f, const char *key)
{
    struct cmd_res res;
    enum cmd_status st = run(f, CMD_TTL, key, 0, 0, 0, &res);

    if (st == CMD_NOTFOUND)
        return -2;
    assert_int_equal(st, CMD_OK);
    return res.ttl_ms;
}

static int64_t get(struct fx *f, const char *key)
{
    struct cmd_res res;

    assert_int_equal(run(f, CMD_GET, key, 0, 0, 0, &res), CMD_OK);
    return res.value;
}

/* EXPIRE key (relative ms) with flags; returns n. */
static uint64_t expire(struct fx *f, const char *key, int64_t ms,
                       unsigned flags)
{
    struct cmd_res res;

    assert_int_equal(run(f, CMD_EXPIRE, key, 0, flags | CMD_F_PX, ms, &res),
                     CMD_OK);
    return res.n;
}

static void set_with_expiry_and_a_plain_set_clears_it(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;

    assert_int_equal(run(f, CMD_SET, "k", 5, CMD_F_PX, 10000, &res), CMD_OK);
    assert_int_equal(res.expire_at, now_ms + 10000);
    assert_int_equal(ttl(f, "k"), 10000);
    now_ms += 400;
    assert_int_equal(ttl(f, "k"), 9600);
    assert_int_equal(run(f, CMD_SET, "k", 6, CMD_F_KEEPTTL, 0, &res), CMD_OK);
    assert_int_equal(ttl(f, "k"), 9600);
    assert_int_equal(run(f, CMD_SET, "k", 7, 0, 0, &res), CMD_OK);
    assert_int_equal(ttl(f, "k"), -1);
    assert_int_equal(run(f, CMD_SET, "k", 8, CMD_F_PXAT, now_ms + 5, &res),
                     CMD_OK);
    assert_int_equal(ttl(f, "k"), 5);
    /* SET ... NX on an expired counter: it is missing, so NX sets. */
    now_ms += 5;
    assert_int_equal(run(f, CMD_SET, "k", 9, CMD_F_NX | CMD_F_PX, 100, &res),
                     CMD_OK);
    assert_int_equal(get(f, "k"), 9);
    /* An absolute time in the past deletes; GET still shows the old. */
    assert_int_equal(run(f, CMD_SET, "k", 10, CMD_F_PXAT | CMD_F_GET, 1,
                         &res), CMD_OK);
    assert_int_equal(res.found, 1);
    assert_int_equal(res.value, 9);
    assert_int_equal(ttl(f, "k"), -2);
    assert_int_equal(run(f, CMD_SET, "k", 1, CMD_F_KEEPTTL | CMD_F_PX, 100,
                         &res), CMD_ERR_ARGS);
}

static void incr_keeps_the_expiry_or_sets_it_when_it_creates(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;

    assert_int_equal(run(f, CMD_SET, "c", 1, CMD_F_PX, 3000, &res), CMD_OK);
    assert_int_equal(run(f, CMD_INCRBY, "c", 2, 0, 0, &res), CMD_OK);
    assert_int_equal(res.value, 3);
    assert_int_equal(res.expire_at, now_ms + 3000);
    assert_int_equal(ttl(f, "c"), 3000);
    /* INCRBY with an expiry sets it; with IFNEW only on creation. */
    assert_int_equal(run(f, CMD_INCRBY, "c", 1, CMD_F_PX, 9000, &res),
                     CMD_OK);
    assert_int_equal(ttl(f, "c"), 9000);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(run(f, CMD_INCRBY, "w", 1,
                             CMD_F_PX | CMD_F_TTL_IFNEW, 2000, &res), CMD_OK);
        assert_int_equal(res.value, i);
        now_ms += 500;
    }
    assert_int_equal(ttl(f, "w"), 500);
    now_ms += 500;
    assert_int_equal(ttl(f, "w"), -2);
    assert_int_equal(run(f, CMD_INCRBY, "w", 1, CMD_F_PX | CMD_F_TTL_IFNEW,
                         2000, &res), CMD_OK);
    assert_int_equal(res.value, 1);
    assert_int_equal(ttl(f, "w"), 2000);
}

static void expire_conditions_as_redis_7(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;

    assert_int_equal(expire(f, "missing", 1000, 0), 0);
    assert_int_equal(run(f, CMD_SET, "k", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(expire(f, "k", 1000, CMD_F_XX), 0); /* has none */
    assert_int_equal(expire(f, "k", 1000, CMD_F_GT), 0); /* none = forever */
    assert_int_equal(expire(f, "k", 1000, CMD_F_LT), 1);
    assert_int_equal(expire(f, "k", 2000, CMD_F_NX), 0); /* has one */
    assert_int_equal(expire(f, "k", 2000, CMD_F_LT), 0); /* not earlier */
    assert_int_equal(expire(f, "k", 1000, CMD_F_GT), 0); /* equal */
    assert_int_equal(expire(f, "k", 2000, CMD_F_GT | CMD_F_XX), 1);
    assert_int_equal(ttl(f, "k"), 2000);
    assert_int_equal(expire(f, "k", 500, CMD_F_LT), 1);
    assert_int_equal(ttl(f, "k"), 500);
    assert_int_equal(expire(f, "k", 3000, 0), 1);
    assert_int_equal(ttl(f, "k"), 3000);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PX | CMD_F_NX |
                         CMD_F_GT, 1, &res), CMD_ERR_ARGS);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PX | CMD_F_GT |
                         CMD_F_LT, 1, &res), CMD_ERR_ARGS);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, 0, 1, &res), CMD_ERR_ARGS);
    /* Absolute, and the range. */
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PXAT, now_ms + 7, &res),
                     CMD_OK);
    assert_int_equal(ttl(f, "k"), 7);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PX, INT64_MAX, &res),
                     CMD_ERR_EXPIRE);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PXAT,
                         TALLY_EXPIRE_MAX + 1, &res), CMD_ERR_EXPIRE);
    assert_int_equal(ttl(f, "k"), 7); /* nothing changed */
}

static void zero_negative_or_past_ttl_deletes(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;
    const int64_t ttls[] = {0, -1, -100000};

    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        assert_int_equal(run(f, CMD_SET, "k", 1, 0, 0, &res), CMD_OK);
        assert_int_equal(expire(f, "k", ttls[i], 0), 1);
        assert_int_equal(ttl(f, "k"), -2);
    }
    assert_int_equal(run(f, CMD_SET, "k", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PXAT, now_ms, &res),
                     CMD_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(ttl(f, "k"), -2);
    /* GT on a counter without an expiry fails even for a past time, as
     * Redis checks the condition before deleting. */
    assert_int_equal(run(f, CMD_SET, "k", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(expire(f, "k", -5, CMD_F_GT), 0);
    assert_int_equal(get(f, "k"), 1);
}

static void persist_ttl_and_getex(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;

    assert_int_equal(run(f, CMD_PERSIST, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.n, 0);
    assert_int_equal(run(f, CMD_SET, "k", 4, CMD_F_PX, 1000, &res), CMD_OK);
    assert_int_equal(run(f, CMD_PERSIST, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(run(f, CMD_PERSIST, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.n, 0);
    assert_int_equal(ttl(f, "k"), -1);
    assert_int_equal(run(f, CMD_TTL, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.expire_at, 0);
    /* GETEX: plain, with an expiry, PERSIST, and in the past. */
    assert_int_equal(run(f, CMD_GETEX, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.value, 4);
    assert_int_equal(run(f, CMD_GETEX, "k", 0, CMD_F_PX, 5000, &res), CMD_OK);
    assert_int_equal(res.value, 4);
    assert_int_equal(ttl(f, "k"), 5000);
    assert_int_equal(run(f, CMD_GETEX, "k", 0, CMD_F_PERSIST, 0, &res),
                     CMD_OK);
    assert_int_equal(ttl(f, "k"), -1);
    assert_int_equal(run(f, CMD_GETEX, "k", 0, CMD_F_PXAT, 1, &res), CMD_OK);
    assert_int_equal(res.found, 1);
    assert_int_equal(res.value, 4);
    assert_int_equal(ttl(f, "k"), -2);
    assert_int_equal(run(f, CMD_GETEX, "k", 0, 0, 0, &res), CMD_NOTFOUND);
    assert_int_equal(run(f, CMD_GETEX, "k", 0, CMD_F_PX | CMD_F_PERSIST, 1,
                         &res), CMD_ERR_ARGS);
}

/* Every reply waits for the state it shows: an EXPIRE's change, a TTL's
 * read of the record that set the time, and an expired counter's absence
 * all carry a ticket at least as new as the change they rest on. */
static void results_carry_tickets(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;
    tally_ticket set_t;

    assert_int_equal(run(f, CMD_SET, "k", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(expire(f, "k", 100, 0), 1);
    set_t = tally_head(f->db);
    assert_int_equal(run(f, CMD_EXPIRE, "k", 0, CMD_F_PX | CMD_F_NX, 100,
                         &res), CMD_OK);
    assert_int_equal(res.n, 0);
    assert_int_equal(res.ticket, set_t);
    assert_int_equal(run(f, CMD_TTL, "k", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.ticket, set_t);
    now_ms += 100;
    assert_int_equal(run(f, CMD_GET, "k", 0, 0, 0, &res), CMD_NOTFOUND);
    assert_true(res.ticket >= set_t);
    assert_int_equal(run(f, CMD_TTL, "k", 0, 0, 0, &res), CMD_NOTFOUND);
    assert_true(res.ticket >= set_t);
}

static void once_with_a_ttl_replays_exactly(void **state)
{
    struct fx *f = *state;
    struct cmd_req req = {0};
    struct cmd_res res;

    req.op = CMD_INCRBY;
    req.key = "r";
    req.klen = 1;
    req.num = 5;
    req.flags = CMD_F_PX | CMD_F_TTL_IFNEW;
    req.expire = 60000;
    req.once = "id-1";
    req.oncelen = 4;
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
    assert_int_equal(res.value, 5);
    assert_int_equal(res.replayed, 0);
    assert_int_equal(tally_wait(f->db, res.ticket), TALLY_OK);
    now_ms += 1000; /* the retry comes later: the same TTL as sent */
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
    assert_int_equal(res.value, 5);
    assert_int_equal(res.replayed, 1);
    assert_int_equal(ttl(f, "r"), 59000);
    req.expire = 30000; /* another TTL is another request */
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_ERR_IDREUSED);
    req.op = CMD_SET;
    req.flags = CMD_F_PX;
    req.once = "id-2";
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
    assert_int_equal(ttl(f, "r"), 30000);
    assert_int_equal(get(f, "r"), 5);
}

static void keyspace_counts_expires_and_average(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;
    struct cmd_keyspace ks;
    tally_stats st;

    assert_int_equal(run(f, CMD_SET, "a", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(run(f, CMD_SET, "b", 1, CMD_F_PX, 1000, &res), CMD_OK);
    assert_int_equal(run(f, CMD_SET, "c", 1, CMD_F_PX, 3000, &res), CMD_OK);
    assert_int_equal(cmd_stats(&f->ctx, &f->s, &st, &ks), CMD_OK);
    assert_int_equal(ks.keys, 3);
    assert_int_equal(ks.expires, 2);
    assert_int_equal(ks.avg_ttl_ms, 2000);
    now_ms += 1000;
    assert_int_equal(cmd_stats(&f->ctx, &f->s, &st, &ks), CMD_OK);
    assert_int_equal(ks.keys, 2);
    assert_int_equal(ks.expires, 1);
    assert_int_equal(ks.avg_ttl_ms, 2000);
    assert_int_equal(st.expired, 1);
    assert_int_equal(run(f, CMD_DBSIZE, "", 0, 0, 0, &res), CMD_OK);
    assert_int_equal(res.n, 2);
}

/* What scan_with_expiry's callbacks saw. */
struct seen {
    int64_t sum_value, sum_expire;
    int calls;
};

static int seen_itemx(void *ctx, const char *key, size_t klen, int64_t value,
                      int64_t expire_at)
{
    struct seen *s = ctx;
    (void)key;
    (void)klen;
    s->sum_value += value;
    s->sum_expire += expire_at;
    s->calls++;
    return 0;
}

static int seen_item(void *ctx, const char *key, size_t klen, int64_t value)
{
    return seen_itemx(ctx, key, klen, value, 0);
}

/* SCAN and KEYS with CMD_F_ITEMX call itemx with each expiry (HTTP's list
 * shows them); without it they call item, and never read itemx. */
static void scan_with_expiry(void **state)
{
    struct fx *f = *state;
    struct cmd_res res;
    struct seen seen = {0, 0, 0};

    assert_int_equal(run(f, CMD_SET, "a", 1, 0, 0, &res), CMD_OK);
    assert_int_equal(run(f, CMD_SET, "b", 2, CMD_F_PX, 1000, &res), CMD_OK);
    assert_int_equal(run(f, CMD_SET, "c", 4, CMD_F_PX, 10, &res), CMD_OK);
    now_ms += 10; /* c expires: not shown */
    for (int op = 0; op < 2; op++) {
        struct cmd_req req = {.op = op ? CMD_KEYS : CMD_SCAN, .count = 100,
                              .flags = CMD_F_ITEMX};
        memset(&seen, 0, sizeof seen);
        memset(&res, 0, sizeof res);
        res.itemx = seen_itemx;
        res.item_ctx = &seen;
        assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
        assert_int_equal(seen.calls, 2);
        assert_int_equal(seen.sum_value, 3);
        assert_int_equal(seen.sum_expire, now_ms - 10 + 1000);
    }
    struct cmd_req req = {.op = CMD_KEYS};
    memset(&seen, 0, sizeof seen);
    memset(&res, 0xff, sizeof res); /* itemx is garbage: must not be read */
    res.item = seen_item;
    res.item_ctx = &seen;
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &req, &res), CMD_OK);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.sum_expire, 0);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(set_with_expiry_and_a_plain_set_clears_it),
        T(incr_keeps_the_expiry_or_sets_it_when_it_creates),
        T(expire_conditions_as_redis_7),
        T(zero_negative_or_past_ttl_deletes),
        T(persist_ttl_and_getex),
        T(results_carry_tickets),
        T(once_with_a_ttl_replays_exactly),
        T(keyspace_counts_expires_and_average),
        T(scan_with_expiry),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
