/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_multi.c - transactions in the command layer (multi.c), with no
 * front end: the queued "requests" are indexes into a table of cmd_reqs
 * that the run callback hands to cmd_exec.  Covers Redis's rules (nested
 * MULTI, EXEC/DISCARD without MULTI, EXECABORT), WATCH (another session's
 * change, a change that changed nothing, expiry on the engine's clock,
 * UNWATCH), reads of the transaction's own writes and its one ticket, and
 * an EXEC whose batch cannot be written (full disk) applying nothing.
 */
#include "engine_testutil.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include "cmd.h"
#include "engine.h"

static int64_t fake_now = 1700000000000;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

struct runner {
    struct cmd_ctx *ctx;
    struct cmd_session *s;
    const struct cmd_req *reqs;
    struct cmd_res res[16];
    size_t n;
};

static void run(void *arg, const void *req, size_t len)
{
    struct runner *r = arg;
    size_t i;

    assert_int_equal(len, sizeof i);
    memcpy(&i, req, sizeof i);
    cmd_exec(r->ctx, r->s, &r->reqs[i], &r->res[r->n++]);
}

static void queue(struct cmd_session *s, size_t i)
{
    cmd_multi_queue(s, &i, sizeof i);
}

#define INCR(k, by) {.op = CMD_INCRBY, .key = (k), .klen = strlen(k), .num = (by)}
#define GET(k) {.op = CMD_GET, .key = (k), .klen = strlen(k)}
#define SETNX(k, v)                                                        \
    {.op = CMD_SET, .key = (k), .klen = strlen(k), .num = (v),             \
     .flags = CMD_F_NX}

static void one(struct cmd_ctx *ctx, struct cmd_session *s,
                const struct cmd_req *req)
{
    struct cmd_res res;
    cmd_exec(ctx, s, req, &res);
    assert_true(res.status < CMD_ERR_NOTINT);
}

static void exec_runs_in_order_reads_own_writes_one_ticket(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    struct cmd_ctx ctx;
    struct cmd_session s = {.id = 1, .proto = CMD_PROTO_RESP};
    const struct cmd_req reqs[] = {INCR("a", 5), INCR("a", 2), GET("a"),
                                   INCR("b", INT64_MAX), INCR("b", 1)};
    struct runner r = {&ctx, &s, reqs, {{0}}, 0};
    struct cmd_res res;

    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, NULL, 0, NULL);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_ERR_NOMULTI);
    assert_int_equal(cmd_discard(&ctx, &s), CMD_ERR_NOMULTI);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_ERR_NESTED);
    assert_true(cmd_in_multi(&s));
    for (size_t i = 0; i < 5; i++)
        queue(&s, i);
    tally_ticket head = tally_head(db);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_OK);
    assert_false(cmd_in_multi(&s));
    assert_int_equal(res.n, 5);
    assert_int_equal(r.res[1].value, 7);
    assert_int_equal(r.res[2].value, 7);
    /* A runtime error fails its command alone. */
    assert_int_equal(r.res[4].status, CMD_ERR_OVERFLOW);
    /* One record for the whole EXEC; its ticket covers everything. */
    uint32_t nsub = 0;
    assert_int_equal(tally_wait(db, res.ticket), TALLY_OK);
    assert_int_equal(tt_record_between(TT_DIR(state), head, res.ticket, &nsub),
                     TT_BATCH);
    assert_int_equal(nsub, 3);
    assert_int_equal(tt_get(db, "a"), 7);
    cmd_session_end(&ctx, &s);
    cmd_fini(&ctx);
    tt_close(db);
}

static void queue_time_error_aborts_and_discard_forgets(void **state)
{
    tally *db = tt_open(TT_DIR(state), NULL);
    struct cmd_ctx ctx;
    struct cmd_session s = {.id = 1, .proto = CMD_PROTO_RESP};
    const struct cmd_req reqs[] = {INCR("a", 1)};
    struct runner r = {&ctx, &s, reqs, {{0}}, 0};
    struct cmd_res res;

    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, NULL, 0, NULL);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    queue(&s, 0);
    cmd_multi_fail(&s);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res),
                     CMD_ERR_EXECABORT);
    assert_int_equal(r.n, 0);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    queue(&s, 0);
    assert_int_equal(cmd_discard(&ctx, &s), CMD_OK);
    assert_false(tt_exists(db, "a"));
    cmd_session_end(&ctx, &s);
    tt_close(db);
}

static void watch_sees_changes_and_expiry_not_failed_conditions(void **state)
{
    tally_options o;
    tally *db;
    struct cmd_ctx ctx;
    struct cmd_session s = {.id = 1, .proto = CMD_PROTO_RESP};
    struct cmd_session other = {.id = 2, .proto = CMD_PROTO_RESP};
    const struct cmd_req reqs[] = {INCR("w", 1)};
    struct runner r = {&ctx, &s, reqs, {{0}}, 0};
    const char *w[] = {"w"};
    size_t wl[] = {1};
    struct cmd_res res;
    const struct cmd_req setnx = SETNX("w", 9), bump = INCR("w", 1);
    struct cmd_req expire = {.op = CMD_EXPIRE, .key = "w", .klen = 1,
                             .flags = CMD_F_PX, .expire = 1000};

    tally_options_init(&o);
    o.clock_ms = fake_clock;
    db = tt_open(TT_DIR(state), &o);
    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, NULL, 0, NULL);
    one(&ctx, &s, &bump);

    /* A SET NX that did not set changed nothing: EXEC runs. */
    assert_int_equal(cmd_watch(&ctx, &s, 1, w, wl), CMD_OK);
    one(&ctx, &other, &setnx);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    assert_int_equal(cmd_watch(&ctx, &s, 1, w, wl), CMD_ERR_WATCHMULTI);
    queue(&s, 0);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_OK);
    assert_int_equal(tt_get(db, "w"), 2);

    /* Another session's increment: null EXEC, nothing runs; the watch is
     * gone afterwards. */
    assert_int_equal(cmd_watch(&ctx, &s, 1, w, wl), CMD_OK);
    one(&ctx, &other, &bump);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    queue(&s, 0);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_NOTSET);
    assert_true(res.ticket > 0); /* the change it reveals */
    assert_int_equal(tt_get(db, "w"), 3);
    assert_null(ctx.watch);

    /* Expiry writes nothing, yet a watched key that expired is changed. */
    one(&ctx, &other, &expire);
    assert_int_equal(cmd_watch(&ctx, &s, 1, w, wl), CMD_OK);
    fake_now += 2000;
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    queue(&s, 0);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_NOTSET);

    /* UNWATCH forgets a change. */
    assert_int_equal(cmd_watch(&ctx, &s, 1, w, wl), CMD_OK);
    one(&ctx, &other, &bump);
    cmd_unwatch(&ctx, &s);
    assert_int_equal(cmd_multi(&ctx, &s), CMD_OK);
    queue(&s, 0);
    assert_int_equal(cmd_exec_multi(&ctx, &s, run, &r, &res), CMD_OK);
    assert_int_equal(tt_get(db, "w"), 2);
    cmd_session_end(&ctx, &s);
    cmd_session_end(&ctx, &other);
    tt_close(db);
}

/* ---- Disk full ----------------------------------------------------------- */

#define NTX 60 /* increments in the EXEC: far more than ROOM bytes hold */

struct full_report {
    int status;
    int changed;
    char why[300];
};

static void full_child(const char *dir, struct full_report *rep)
{
    static char names[NTX][8];
    struct cmd_req reqs[NTX];
    struct cmd_ctx ctx;
    struct cmd_session s = {.id = 1, .proto = CMD_PROTO_RESP};
    struct runner r = {&ctx, &s, reqs, {{0}}, 0};
    struct cmd_res res;
    struct rlimit lim;
    tally *db = tt_open(dir, NULL);
    const char *why;

    for (int i = 0; i < NTX; i++) {
        snprintf(names[i], sizeof names[i], "t%02d", i);
        tt_set(db, names[i], 100);
        reqs[i] = (struct cmd_req)INCR(names[i], 1);
    }
    why = tt_fill_disk(db, dir, 200, &lim);
    CHILD_CHECK(rep, why == NULL, "%s", why);
    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, NULL, 0, NULL);
    CHILD_CHECK(rep, cmd_multi(&ctx, &s) == CMD_OK, "multi");
    for (size_t i = 0; i < 16; i++) /* runner keeps 16 results */
        queue(&s, i);
    rep->status = cmd_exec_multi(&ctx, &s, run, &r, &res);
    for (int i = 0; i < NTX; i++)
        rep->changed += tt_get(db, names[i]) != 100;
    setrlimit(RLIMIT_FSIZE, &lim);
    cmd_session_end(&ctx, &s);
    tt_close(db);
}

static void exec_on_a_full_disk_applies_nothing(void **state)
{
    const char *dir = TT_DIR(state);
    struct full_report *rep = mmap(NULL, sizeof *rep,
                                   PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(rep != MAP_FAILED);
    memset(rep, 0, sizeof *rep);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        full_child(dir, rep);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (rep->why[0])
        fail_msg("child: %s", rep->why);
    assert_int_equal(rep->status, CMD_ERR_DISKFULL);
    assert_int_equal(rep->changed, 0); /* undone in memory ... */
    tally *db = tt_open(dir, NULL);    /* ... and never on disk */
    assert_int_equal(tt_get(db, "t00"), 100);
    assert_int_equal(tt_get(db, "t15"), 100);
    tt_close(db);
    munmap(rep, sizeof *rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            exec_runs_in_order_reads_own_writes_one_ticket, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            queue_time_error_aborts_and_discard_forgets, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            watch_sees_changes_and_expiry_not_failed_conditions, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(exec_on_a_full_disk_applies_nothing,
                                        tt_fx_setup, tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
