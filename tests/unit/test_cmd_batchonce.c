/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_batchonce.c - cmd_batch_once (cmd.h), an atomic batch applied
 * once under an idempotency id, over a real engine: the batch's body runs
 * once and its answer comes back to every repeat without running it; a
 * repeat with other operations, or a single change's id, is IDREUSED; a
 * body that fails (or an answer too big to keep) records nothing; the
 * call is refused inside another batch and without authentication.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd.h"
#include "util.h"

#include "cmd_fixture.h"

static int setup_with(void **state, const char *password)
{
    struct cmdfx *f = xcalloc(1, sizeof *f);

    if (cmdfx_open(f, "batchonce", CMD_PROTO_HTTP, password, NULL) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_with(state, NULL); }
static int setup_pw(void **state) { return setup_with(state, "pw"); }

static int teardown(void **state)
{
    struct cmdfx *f = *state;
    int rc = cmdfx_close(f);

    free(f);
    return rc;
}

/* The body of a test batch: increments "a" by `by` through cmd_exec, then
 * answers "a=<value>", or fails with `fail`. */
struct body {
    struct cmdfx *f;
    int64_t by;
    enum cmd_status fail;
    size_t alen;     /* 0: the length of the text */
    int runs;
    char text[32];
};

static enum cmd_status run_body(void *arg, const void **answer, size_t *alen)
{
    struct body *b = arg;
    struct cmd_req req = {.op = CMD_INCRBY, .key = "a", .klen = 1,
                          .num = b->by};
    struct cmd_res res;

    b->runs++;
    if (cmd_exec(&b->f->ctx, &b->f->s, &req, &res) != CMD_OK)
        return res.status;
    if (b->fail != CMD_OK)
        return b->fail;
    snprintf(b->text, sizeof b->text, "a=%lld", (long long)res.value);
    *answer = b->text;
    *alen = b->alen ? b->alen : strlen(b->text);
    return CMD_OK;
}

/* cmd_batch_once under id with fingerprint fp, waiting for its ticket as
 * the daemon would; the answer goes to out (NUL-ended). */
static enum cmd_status once(struct cmdfx *f, const char *id, uint64_t fp,
                            struct body *b, struct cmd_res *res, char *out)
{
    tally_once o = {id, strlen(id), fp};
    const void *ans = NULL;
    size_t alen = 0;
    enum cmd_status st = cmd_batch_once(&f->ctx, &f->s, &o, run_body, b, res,
                                        &ans, &alen);

    out[0] = 0;
    if (st == CMD_OK) {
        memcpy(out, ans, alen);
        out[alen] = 0;
    }
    if (res->ticket)
        assert_int_equal(tally_wait(f->db, res->ticket), TALLY_OK);
    return st;
}

static int64_t value_of(struct cmdfx *f, const char *key)
{
    int64_t v = 0;

    return tally_get(f->db, key, strlen(key), &v, NULL) == TALLY_OK ? v : -1;
}

static void test_batch_runs_once_and_repeats_answer_its_first(void **state)
{
    struct cmdfx *f = *state;
    struct body b = {.f = f, .by = 5};
    struct cmd_res res;
    char out[64];

    assert_int_equal(once(f, "t-1", 7, &b, &res, out), CMD_OK);
    assert_string_equal(out, "a=5");
    assert_false(res.replayed);
    assert_true(res.ticket > 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(once(f, "t-1", 7, &b, &res, out), CMD_OK);
        assert_string_equal(out, "a=5");
        assert_true(res.replayed);
    }
    assert_int_equal(b.runs, 1);
    assert_int_equal(value_of(f, "a"), 5);
}

static void test_other_operations_under_the_id_are_reused(void **state)
{
    struct cmdfx *f = *state;
    struct body b = {.f = f, .by = 1};
    struct cmd_req single = {.op = CMD_INCRBY, .key = "c", .klen = 1,
                             .num = 1, .once = "single", .oncelen = 6};
    struct cmd_res res;
    char out[64];

    assert_int_equal(once(f, "t-2", 7, &b, &res, out), CMD_OK);
    assert_int_equal(once(f, "t-2", 8, &b, &res, out), CMD_ERR_IDREUSED);
    assert_true(res.ticket > 0); /* it shows the id is known */
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &single, &res), CMD_OK);
    assert_int_equal(once(f, "single", 7, &b, &res, out), CMD_ERR_IDREUSED);
    assert_int_equal(b.runs, 1);
    assert_int_equal(value_of(f, "a"), 1);
}

static void test_failed_body_records_nothing(void **state)
{
    struct cmdfx *f = *state;
    struct body b = {.f = f, .by = 3, .fail = CMD_ERR_OVERFLOW};
    struct cmd_res res;
    char out[64];

    assert_int_equal(once(f, "t-3", 1, &b, &res, out), CMD_ERR_OVERFLOW);
    assert_int_equal(value_of(f, "a"), -1); /* undone */
    /* An answer too big to keep fails the commit: undone too. */
    b.fail = CMD_OK;
    b.alen = TALLY_ANSWER_MAX + 1;
    assert_int_equal(once(f, "t-3", 1, &b, &res, out), CMD_ERR_ARGS);
    assert_int_equal(value_of(f, "a"), -1);
    /* The id is still unknown: the retry is a first attempt. */
    b.alen = 0;
    assert_int_equal(once(f, "t-3", 1, &b, &res, out), CMD_OK);
    assert_false(res.replayed);
    assert_string_equal(out, "a=3");
    assert_int_equal(b.runs, 3);
}

static void test_refused_inside_a_batch(void **state)
{
    struct cmdfx *f = *state;
    struct body b = {.f = f, .by = 1};
    struct cmd_res res;
    char out[64];

    cmd_batch_begin(&f->ctx, &f->s);
    assert_int_equal(once(f, "t-4", 1, &b, &res, out), CMD_ERR_INBATCH);
    cmd_batch_abort(&f->ctx, &f->s);
    assert_int_equal(b.runs, 0);
}

static void test_replay_needs_authentication_too(void **state)
{
    struct cmdfx *f = *state;
    struct body b = {.f = f, .by = 1};
    struct cmd_req auth = {.op = CMD_AUTH, .pass = "pw", .passlen = 2};
    struct cmd_res res;
    char out[64];

    assert_int_equal(once(f, "t-5", 1, &b, &res, out), CMD_ERR_NOAUTH);
    assert_int_equal(cmd_exec(&f->ctx, &f->s, &auth, &res), CMD_OK);
    assert_int_equal(once(f, "t-5", 1, &b, &res, out), CMD_OK);
    f->s.authed = 0;
    assert_int_equal(once(f, "t-5", 1, &b, &res, out), CMD_ERR_NOAUTH);
    assert_int_equal(b.runs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_batch_runs_once_and_repeats_answer_its_first, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_other_operations_under_the_id_are_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_body_records_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_inside_a_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replay_needs_authentication_too,
                                        setup_pw, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
