/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_exec.c - the command layer (src/cmd/cmd.c) over a real engine in
 * a temporary directory: every operation's result, status and ticket, the
 * limits, authentication and the statistics.  Tickets are checked the way
 * the daemon uses them: each change's ticket must be waited on with
 * tally_wait() before its result counts as shown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd.h"
#include "util.h"

#include "cmd_fixture.h"

static int fx_open(void **state, const char *password)
{
    struct cmdfx *f = xcalloc(1, sizeof *f);

    if (cmdfx_open(f, "cmd", CMD_PROTO_RESP, password, NULL) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state) { return fx_open(state, NULL); }
static int setup_pass(void **state) { return fx_open(state, "sekret"); }

static int teardown(void **state)
{
    struct cmdfx *f = *state;
    int rc = cmdfx_close(f);

    free(f);
    return rc;
}

/* Run a request and wait for its ticket, as the daemon would before
 * sending the reply. */
static enum cmd_status exec(struct cmdfx *f, const struct cmd_req *req,
                            struct cmd_res *res)
{
    enum cmd_status st = cmd_exec(&f->ctx, &f->s, req, res);
    assert_true(res->ticket <= tally_head(f->db));
    assert_int_equal(tally_wait(f->db, res->ticket), TALLY_OK);
    assert_true(tally_durable(f->db) >= res->ticket);
    return st;
}

static enum cmd_status incrby(struct cmdfx *f, const char *key, int64_t d,
                              int64_t *v)
{
    struct cmd_req req = {.op = CMD_INCRBY, .key = key, .klen = strlen(key),
                          .num = d};
    struct cmd_res res;
    enum cmd_status st = exec(f, &req, &res);
    if (v)
        *v = res.value;
    return st;
}

static enum cmd_status get(struct cmdfx *f, const char *key, int64_t *v)
{
    struct cmd_req req = {.op = CMD_GET, .key = key, .klen = strlen(key)};
    struct cmd_res res;
    enum cmd_status st = exec(f, &req, &res);
    *v = res.value;
    assert_int_equal(res.found, st == CMD_OK);
    return st;
}

static void test_incrby_creates_adds_and_refuses_overflow(void **state)
{
    struct cmdfx *f = *state;
    int64_t v;
    struct cmd_req req = {.op = CMD_INCRBY, .key = "c", .klen = 1, .num = 5};
    struct cmd_res res;

    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.value == 5);
    assert_true(res.ticket > 0); /* a change must be waited for */
    assert_int_equal(incrby(f, "c", -7, &v), CMD_OK);
    assert_true(v == -2);
    assert_int_equal(incrby(f, "big", INT64_MAX, &v), CMD_OK);
    assert_int_equal(incrby(f, "big", 1, &v), CMD_ERR_OVERFLOW);
    assert_int_equal(get(f, "big", &v), CMD_OK);
    assert_true(v == INT64_MAX); /* nothing changed */
}

/* An error computed from state that may still be syncing carries that
 * state's ticket, so a front end holds it as it would a read (cmd.h). */
static void test_errors_that_show_state_carry_its_ticket(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req set = {.op = CMD_SET, .key = "big", .klen = 3,
                          .num = INT64_MAX};
    struct cmd_req inc = {.op = CMD_INCRBY, .key = "big", .klen = 3, .num = 1};
    struct cmd_req first = {.op = CMD_INCRBY, .key = "k", .klen = 1, .num = 5,
                            .once = "id", .oncelen = 2};
    struct cmd_req reused = first;
    struct cmd_res res;
    tally_ticket set_t, first_t;

    assert_int_equal(exec(f, &set, &res), CMD_OK);
    set_t = res.ticket;
    assert_int_equal(exec(f, &first, &res), CMD_OK);
    first_t = res.ticket;
    assert_true(set_t > 0 && first_t > set_t);
    /* The overflow shows big's value: the SET's ticket. */
    assert_int_equal(exec(f, &inc, &res), CMD_ERR_OVERFLOW);
    assert_int_equal(res.ticket, set_t);
    /* "Same id, other request" shows the id: its first request's ticket. */
    reused.num = 6;
    assert_int_equal(exec(f, &reused, &res), CMD_ERR_IDREUSED);
    assert_int_equal(res.ticket, first_t);
}

static void test_get_missing_is_a_result_not_an_error(void **state)
{
    struct cmdfx *f = *state;
    int64_t v;

    assert_int_equal(get(f, "nope", &v), CMD_NOTFOUND);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_RESP][CMD_GET], 0);
    assert_int_equal(f->ctx.stats.calls[CMD_PROTO_RESP][CMD_GET], 1);
}

static void test_set_conditions_and_old_value(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_SET, .key = "k", .klen = 1, .num = 3};
    struct cmd_res res;
    int64_t v;

    req.flags = CMD_F_XX; /* missing: XX refuses */
    assert_int_equal(exec(f, &req, &res), CMD_NOTSET);
    assert_int_equal(get(f, "k", &v), CMD_NOTFOUND);
    req.flags = CMD_F_NX | CMD_F_GET; /* missing: NX sets, no old value */
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(res.found, 0);
    req.num = 4; /* present: NX refuses but GET still reports */
    assert_int_equal(exec(f, &req, &res), CMD_NOTSET);
    assert_int_equal(res.found, 1);
    assert_true(res.value == 3);
    req.flags = CMD_F_XX | CMD_F_GET;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.found && res.value == 3);
    assert_int_equal(get(f, "k", &v), CMD_OK);
    assert_true(v == 4);
    req.flags = CMD_F_NX | CMD_F_XX;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
    req.flags = 0;
    req.num = INT64_MIN;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(get(f, "k", &v), CMD_OK);
    assert_true(v == INT64_MIN);
}

static void test_getdel_returns_and_removes(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_GETDEL, .key = "g", .klen = 1};
    struct cmd_res res;
    int64_t v;

    assert_int_equal(exec(f, &req, &res), CMD_NOTFOUND);
    assert_int_equal(incrby(f, "g", 9, NULL), CMD_OK);
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.found && res.value == 9);
    assert_int_equal(get(f, "g", &v), CMD_NOTFOUND);
}

static void test_del_exists_mget_count_per_key(void **state)
{
    struct cmdfx *f = *state;
    const char *keys[] = {"a", "b", "a", "zz"};
    size_t klens[] = {1, 1, 1, 2};
    int64_t vals[4];
    unsigned char founds[4];
    struct cmd_req req = {.op = CMD_EXISTS, .nkeys = 4, .keys = keys,
                          .klens = klens};
    struct cmd_res res = {.values = vals, .founds = founds};

    assert_int_equal(incrby(f, "a", 1, NULL), CMD_OK);
    assert_int_equal(incrby(f, "b", 2, NULL), CMD_OK);
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(res.n, 3); /* repeats count again */
    req.op = CMD_MGET;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(founds[0] && vals[0] == 1 && founds[1] && vals[1] == 2);
    assert_true(founds[2] && vals[2] == 1 && !founds[3]);
    req.op = CMD_DEL;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(res.n, 2); /* "a" the second time is already gone */
    req.op = CMD_DBSIZE;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(res.n, 0);
    req.op = CMD_DEL;
    req.nkeys = 0;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_ARGS);
}

static void test_key_limit_refuses_whole_request(void **state)
{
    struct cmdfx *f = *state;
    static char longkey[TALLY_KEY_MAX + 1];
    const char *keys[] = {"ok", longkey};
    size_t klens[] = {2, TALLY_KEY_MAX + 1};
    int64_t nums[] = {1, 2};
    struct cmd_req req = {.op = CMD_MSET, .nkeys = 2, .keys = keys,
                          .klens = klens, .nums = nums};
    struct cmd_res res;
    int64_t v;

    memset(longkey, 'k', sizeof longkey);
    assert_int_equal(exec(f, &req, &res), CMD_ERR_KEYLEN);
    assert_int_equal(get(f, "ok", &v), CMD_NOTFOUND); /* nothing half done */
    req.op = CMD_INCRBY;
    req.key = longkey;
    req.klen = TALLY_KEY_MAX + 1;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_KEYLEN);
    req.klen = TALLY_KEY_MAX; /* exactly the limit is fine */
    req.num = 1;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_RESP][CMD_INCRBY], 1);
}

static void test_mset_sets_all(void **state)
{
    struct cmdfx *f = *state;
    const char *keys[] = {"x", "y"};
    size_t klens[] = {1, 1};
    int64_t nums[] = {10, -20};
    struct cmd_req req = {.op = CMD_MSET, .nkeys = 2, .keys = keys,
                          .klens = klens, .nums = nums};
    struct cmd_res res;
    int64_t v;

    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(res.ticket > 0);
    assert_int_equal(get(f, "x", &v), CMD_OK);
    assert_true(v == 10);
    assert_int_equal(get(f, "y", &v), CMD_OK);
    assert_true(v == -20);
}

/* Collect SCAN/KEYS items into a string "k1,k2,..." in arrival order. */
struct seen {
    char text[4096];
    size_t n;
};

static int see(void *ctx, const char *key, size_t klen, int64_t value)
{
    struct seen *s = ctx;
    (void)value;
    strncat(s->text, key, klen);
    strcat(s->text, ",");
    s->n++;
    return 0;
}

/* Scan to the end with the given pattern and count; returns how many keys
 * (counting each once: the engine may show one twice). */
static size_t scan_all(struct cmdfx *f, const char *pat, size_t count,
                       struct seen *s)
{
    struct cmd_req req = {.op = CMD_SCAN, .match = pat,
                          .matchlen = pat ? strlen(pat) : 0, .count = count};
    struct cmd_res res = {.item = see, .item_ctx = s};
    int steps = 0;

    memset(s, 0, sizeof *s);
    do {
        assert_int_equal(exec(f, &req, &res), CMD_OK);
        req.cursor = res.n;
        assert_true(++steps < 10000);
    } while (req.cursor != 0);
    return s->n;
}

static void test_scan_and_keys_filter_by_glob(void **state)
{
    struct cmdfx *f = *state;
    static const char *const names[] = {"user:1", "user:2", "user:10",
                                        "other", "", "us"};
    struct seen s;
    char key[32];

    for (size_t i = 0; i < 6; i++)
        assert_int_equal(incrby(f, names[i], 1, NULL), CMD_OK);
    for (int i = 0; i < 200; i++) { /* enough to need many SCAN steps */
        snprintf(key, sizeof key, "bulk:%d", i);
        assert_int_equal(incrby(f, key, 1, NULL), CMD_OK);
    }
    assert_true(scan_all(f, NULL, 0, &s) >= 206);
    assert_true(scan_all(f, "*", 3, &s) >= 206); /* includes the empty key */
    assert_int_equal(scan_all(f, "user:?", 1, &s), 2);
    assert_int_equal(scan_all(f, "user:*", 5, &s), 3);
    assert_int_equal(scan_all(f, "u*", 5, &s), 4);
    assert_int_equal(scan_all(f, "bulk:1[0-9]", 7, &s), 10);
    assert_int_equal(scan_all(f, "nothing*", 7, &s), 0);

    struct cmd_req req = {.op = CMD_KEYS, .match = "user:1*", .matchlen = 7};
    struct cmd_res res = {.item = see, .item_ctx = &s};
    memset(&s, 0, sizeof s);
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(s.n, 2);
    assert_true(strstr(s.text, "user:1,") && strstr(s.text, "user:10,"));
    req.match = "*";
    req.matchlen = 1;
    memset(&s, 0, sizeof s);
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_int_equal(s.n, 206);
}

static void test_save_and_bgsave(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_SAVE};
    struct cmd_res res;

    assert_int_equal(incrby(f, "s", 1, NULL), CMD_OK);
    if (exec(f, &req, &res) != CMD_OK)
        fail_msg("SAVE: %s (%s)", cmd_status_name(res.status), res.detail);
    req.op = CMD_BGSAVE;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    /* Finish it so a second one may start; while it runs, BUSY. */
    enum cmd_status again = exec(f, &req, &res);
    assert_true(again == CMD_ERR_BUSY || again == CMD_OK);
    while (tally_step(f->db, 1000) > 0)
        ;
}

static void test_no_password_auth_is_nopass(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_AUTH, .pass = "x", .passlen = 1};
    struct cmd_res res;

    assert_true(cmd_authorized(&f->ctx, &f->s));
    assert_int_equal(exec(f, &req, &res), CMD_ERR_NOPASS);
}

static void test_password_gates_every_op_but_auth(void **state)
{
    struct cmdfx *f = *state;
    struct cmd_req req = {.op = CMD_AUTH, .pass = "sekre", .passlen = 5};
    struct cmd_res res;
    int64_t v;

    assert_false(cmd_authorized(&f->ctx, &f->s));
    assert_int_equal(get(f, "a", &v), CMD_ERR_NOAUTH);
    assert_int_equal(incrby(f, "a", 1, NULL), CMD_ERR_NOAUTH);
    assert_int_equal(exec(f, &req, &res), CMD_ERR_WRONGPASS); /* prefix */
    req.pass = "sekrets";
    req.passlen = 7;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_WRONGPASS); /* longer */
    req.passlen = 0;
    assert_int_equal(exec(f, &req, &res), CMD_ERR_WRONGPASS); /* empty */
    assert_false(cmd_authorized(&f->ctx, &f->s));
    req.passlen = 6;
    assert_int_equal(exec(f, &req, &res), CMD_OK);
    assert_true(cmd_authorized(&f->ctx, &f->s));
    assert_int_equal(incrby(f, "a", 1, &v), CMD_OK);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_RESP][CMD_AUTH], 3);
    assert_int_equal(f->ctx.stats.calls[CMD_PROTO_RESP][CMD_AUTH], 4);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_RESP][CMD_INCRBY], 1);
}

static void test_stats_per_proto_and_refuse(void **state)
{
    struct cmdfx *f = *state;

    f->s.proto = CMD_PROTO_HTTP;
    assert_int_equal(incrby(f, "h", 1, NULL), CMD_OK);
    assert_int_equal(cmd_refuse(&f->ctx, &f->s, CMD_INCRBY, CMD_ERR_NOTINT),
                     CMD_ERR_NOTINT);
    assert_int_equal(f->ctx.stats.calls[CMD_PROTO_HTTP][CMD_INCRBY], 2);
    assert_int_equal(f->ctx.stats.errors[CMD_PROTO_HTTP][CMD_INCRBY], 1);
    assert_int_equal(f->ctx.stats.calls[CMD_PROTO_RESP][CMD_INCRBY], 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cmd_op_name(CMD_INCRBY), "incrby");
    assert_string_equal(cmd_op_name(CMD_AUTH), "auth");
    assert_string_equal(cmd_op_name(CMD_OP_COUNT), "unknown");
    assert_string_equal(cmd_proto_name(CMD_PROTO_MEMCACHE), "memcache");
    assert_string_equal(cmd_status_name(CMD_ERR_DISKFULL), "diskfull");
    for (int i = 0; i < CMD_OP_COUNT; i++)
        assert_non_null(cmd_op_name(i));
    for (int i = 0; i < CMD_STATUS_COUNT; i++)
        assert_string_not_equal(cmd_status_name(i), "unknown");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TP(fn) cmocka_unit_test_setup_teardown(fn, setup_pass, teardown)
    const struct CMUnitTest tests[] = {
        T(test_incrby_creates_adds_and_refuses_overflow),
        T(test_errors_that_show_state_carry_its_ticket),
        T(test_get_missing_is_a_result_not_an_error),
        T(test_set_conditions_and_old_value),
        T(test_getdel_returns_and_removes),
        T(test_del_exists_mget_count_per_key),
        T(test_key_limit_refuses_whole_request),
        T(test_mset_sets_all),
        T(test_scan_and_keys_filter_by_glob),
        T(test_save_and_bgsave),
        T(test_no_password_auth_is_nopass),
        TP(test_password_gates_every_op_but_auth),
        T(test_stats_per_proto_and_refuse),
        T(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
