/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_delay.c - the command layer over a store that answers later
 * (src/store/delay.c over a real engine): a request that gets CMD_PENDING
 * is run again once the session is woken and then gets its result from the
 * replay log (src/cmd/replay.c); a request of several store calls applies
 * each exactly once and counts its statistics once; arrays (MGET, KEYS)
 * survive the wait; a session that ends with an operation in flight is
 * freed only by the store's answer (ASan checks); a batch stays open across
 * the re-runs, applies once at its commit, runs again from the start when
 * its commit conflicts, and is aborted when its session ends; EXEC keeps
 * MULTI's queue and WATCH until its last run.
 */
#include "engine_testutil.h"

#include <event2/event.h>

#include "cmd.h"
#include "delay.h"
#include "engine.h"

struct fx {
    tally *db;
    struct store_engine se;
    struct store *st;            /* the delay store over se */
    struct event_base *base;
    struct cmd_ctx ctx;
    struct cmd_session s;
    unsigned woken;
};

static void on_wake(void *arg, struct cmd_session *s)
{
    struct fx *f = arg;
    (void)s;
    f->woken++;
}

static void open_fx(struct fx *f, void **state)
{
    memset(f, 0, sizeof *f);
    f->db = tt_open(TT_DIR(state), NULL);
    store_engine_init(&f->se, f->db);
    f->base = event_base_new();
    assert_non_null(f->base);
    assert_int_equal(store_delay_open(f->base, &f->se.base, 7, &f->st), 0);
    cmd_init(&f->ctx, f->st, NULL, 0, NULL);
    f->s.id = 1;
    f->s.proto = CMD_PROTO_RESP;
    f->s.wake = on_wake;
    f->s.wake_arg = f;
}

static void close_fx(struct fx *f)
{
    cmd_session_end(&f->ctx, &f->s);
    cmd_fini(&f->ctx);
    store_close(f->st);
    event_base_free(f->base);
    store_close(&f->se.base);
    tt_close(f->db);
}

/* One pass of the loop: the store answers what was queued. */
static void pass(struct fx *f)
{
    assert_true(event_base_loop(f->base, EVLOOP_NONBLOCK) >= 0);
}

static int64_t engine_value(struct fx *f, const char *k)
{
    int64_t v = 0;
    tally_get(f->db, k, strlen(k), &v, NULL);
    return v;
}

#define INCR(k, d) {.op = CMD_INCRBY, .key = (k), .klen = strlen(k), .num = (d)}

static void pending_request_reruns_and_gets_its_logged_result(void **state)
{
    struct fx f;
    struct cmd_req q = INCR("a", 5);
    struct cmd_res res;

    open_fx(&f, state);
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_PENDING);
    assert_true(cmd_pending(&f.s));
    assert_int_equal(cmd_inflight(&f.s), 1);
    assert_int_equal(f.ctx.stats.calls[CMD_PROTO_RESP][CMD_INCRBY], 0);
    assert_int_equal(engine_value(&f, "a"), 0); /* not run yet */
    pass(&f);
    assert_int_equal(f.woken, 1);
    assert_false(cmd_pending(&f.s));
    assert_int_equal(engine_value(&f, "a"), 5);
    /* The re-run: the same request, answered from the log. */
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_OK);
    assert_int_equal(res.value, 5);
    assert_true(res.ticket > 0);
    cmd_request_done(&f.s);
    assert_int_equal(engine_value(&f, "a"), 5); /* applied once */
    assert_int_equal(f.ctx.stats.calls[CMD_PROTO_RESP][CMD_INCRBY], 1);
    /* The next request is new: it goes to the store again. */
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_PENDING);
    pass(&f);
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_OK);
    assert_int_equal(res.value, 10);
    cmd_request_done(&f.s);
    close_fx(&f);
}

/* A request made of two store calls (memcached's ma with T, a front end's
 * two cmd_execs): each is applied once and counted once, however many
 * times the request runs. */
static void request_of_two_calls_applies_and_counts_each_once(void **state)
{
    struct fx f;
    struct cmd_req qa = INCR("a", 1), qb = INCR("b", 1);
    struct cmd_res ra, rb;
    int runs = 0;

    open_fx(&f, state);
    for (;;) {
        runs++;
        cmd_exec(&f.ctx, &f.s, &qa, &ra);
        cmd_exec(&f.ctx, &f.s, &qb, &rb);
        if (!cmd_pending(&f.s))
            break;
        /* A pending run submits nothing after its first pending call. */
        assert_true(ra.status == CMD_PENDING || rb.status == CMD_PENDING);
        pass(&f);
    }
    cmd_request_done(&f.s);
    assert_int_equal(runs, 3);
    assert_int_equal(ra.status, CMD_OK);
    assert_int_equal(rb.status, CMD_OK);
    assert_int_equal(ra.value, 1);
    assert_int_equal(rb.value, 1);
    assert_int_equal(engine_value(&f, "a"), 1);
    assert_int_equal(engine_value(&f, "b"), 1);
    assert_int_equal(f.ctx.stats.calls[CMD_PROTO_RESP][CMD_INCRBY], 2);
    assert_int_equal(store_delay_ops(f.st), 2);
    close_fx(&f);
}

static int collect(void *arg, const char *key, size_t klen, int64_t value)
{
    (*(int64_t *)arg) += value;
    return 0;
}

static void mget_and_keys_arrays_survive_the_wait(void **state)
{
    struct fx f;
    const char *keys[] = {"m1", "nope", "m2"};
    size_t klens[] = {2, 4, 2};
    int64_t values[3] = {0};
    unsigned char founds[3] = {0};
    struct cmd_req mget = {.op = CMD_MGET, .nkeys = 3, .keys = keys,
                           .klens = klens};
    struct cmd_req keysq = {.op = CMD_KEYS};
    struct cmd_res res;
    int64_t sum = 0;
    char k[16];

    open_fx(&f, state);
    tally_set(f.db, "m1", 2, 11, NULL);
    tally_set(f.db, "m2", 2, 22, NULL);
    for (int i = 0; i < 3000; i++) { /* three KEYS steps */
        snprintf(k, sizeof k, "k%d", i);
        tally_set(f.db, k, strlen(k), 1, NULL);
    }
    res.values = values;
    res.founds = founds;
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &mget, &res), CMD_PENDING);
    pass(&f);
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &mget, &res), CMD_OK);
    cmd_request_done(&f.s);
    assert_int_equal(values[0], 11);
    assert_int_equal(founds[1], 0);
    assert_int_equal(values[2], 22);
    int runs = 0;
    do {
        sum = 0;
        memset(&res, 0, sizeof res);
        res.item = collect;
        res.item_ctx = &sum;
        runs++;
        if (cmd_exec(&f.ctx, &f.s, &keysq, &res) == CMD_PENDING)
            pass(&f);
    } while (res.status == CMD_PENDING);
    cmd_request_done(&f.s);
    assert_true(runs >= 4);
    assert_int_equal(sum, 3000 + 11 + 22);
    close_fx(&f);
}

static void session_ended_in_flight_is_freed_by_the_answer(void **state)
{
    struct fx f;
    struct cmd_req q = INCR("gone", 1);
    struct cmd_res res;

    open_fx(&f, state);
    assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_PENDING);
    cmd_session_end(&f.ctx, &f.s); /* the connection closes */
    assert_null(f.s.replay);
    pass(&f); /* the answer frees the log; nobody is woken */
    assert_int_equal(f.woken, 0);
    assert_int_equal(engine_value(&f, "gone"), 1); /* it was sent: it ran */
    close_fx(&f);
}

/* One run of a batch of INCRs (keys in ks, deltas 1, 2, ...) and a GET of
 * the first key, as EXEC or a script runs it: its status, *v the GET's. */
static enum cmd_status run_batch(struct fx *f, struct cmd_session *s,
                                 const char *const *ks, size_t n, int64_t *v)
{
    struct cmd_res res;
    struct cmd_req get = {.op = CMD_GET, .key = ks[0], .klen = strlen(ks[0])};

    cmd_batch_begin(&f->ctx, s);
    for (size_t i = 0; i < n; i++) {
        struct cmd_req q = INCR(ks[i], (int64_t)i + 1);
        cmd_exec(&f->ctx, s, &q, &res);
    }
    cmd_exec(&f->ctx, s, &get, &res);
    *v = res.value;
    memset(&res, 0, sizeof res);
    return cmd_batch_commit(&f->ctx, s, &res);
}

static void batch_runs_across_pending_operations_and_applies_once(void **state)
{
    struct fx f;
    const char *ks[] = {"x", "y"};
    enum cmd_status st;
    int64_t v = 0;
    int runs = 0;

    open_fx(&f, state);
    assert_true(cmd_batches_ok(&f.ctx));
    while ((st = run_batch(&f, &f.s, ks, 2, &v)) == CMD_PENDING) {
        runs++;
        /* Nothing is applied before the commit. */
        assert_int_equal(engine_value(&f, "x"), 0);
        pass(&f);
    }
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_OK);
    assert_int_equal(runs, 4); /* two INCRs, the GET, the commit */
    assert_int_equal(v, 1);
    assert_int_equal(engine_value(&f, "x"), 1);
    assert_int_equal(engine_value(&f, "y"), 2);
    assert_int_equal(f.ctx.stats.calls[CMD_PROTO_RESP][CMD_INCRBY], 2);
    assert_int_equal(f.ctx.stats.calls[CMD_PROTO_RESP][CMD_GET], 1);
    close_fx(&f);
}

static void batch_that_conflicts_runs_again_with_a_new_batch(void **state)
{
    struct fx f;
    struct cmd_session other = {.id = 2, .proto = CMD_PROTO_RESP};
    const char *ks[] = {"x"};
    struct cmd_req q = INCR("x", 10);
    struct cmd_res res;
    enum cmd_status st;
    int64_t v = 0;
    int runs = 0;

    open_fx(&f, state);
    other.wake = on_wake;
    other.wake_arg = &f;
    /* The batch's INCR sees x = 0 and its GET 1; then another client adds
     * 10 before the commit, which must notice. */
    assert_int_equal(run_batch(&f, &f.s, ks, 1, &v), CMD_PENDING);
    pass(&f);
    assert_int_equal(run_batch(&f, &f.s, ks, 1, &v), CMD_PENDING);
    pass(&f);
    assert_int_equal(cmd_exec(&f.ctx, &other, &q, &res), CMD_PENDING);
    pass(&f);
    assert_int_equal(cmd_exec(&f.ctx, &other, &q, &res), CMD_OK);
    cmd_request_done(&other);
    assert_int_equal(engine_value(&f, "x"), 10);
    while ((st = run_batch(&f, &f.s, ks, 1, &v)) == CMD_PENDING) {
        runs++;
        pass(&f);
    }
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_OK);
    assert_true(runs > 3); /* the commit conflicted: run from the start */
    assert_int_equal(v, 11);
    assert_int_equal(engine_value(&f, "x"), 11);
    cmd_session_end(&f.ctx, &other);
    close_fx(&f);
}

/* EXEC's queued requests: the key names to increment. */
static void run_queued_incr(void *arg, const void *req, size_t len)
{
    struct fx *f = arg;
    struct cmd_req q = {.op = CMD_INCRBY, .key = req, .klen = len, .num = 1};
    struct cmd_res res;

    cmd_exec(&f->ctx, &f->s, &q, &res);
}

static void exec_keeps_its_queue_and_watches_until_its_last_run(void **state)
{
    struct fx f;
    const char *w[] = {"w"};
    size_t wl[] = {1};
    struct cmd_res res;
    enum cmd_status st;

    open_fx(&f, state);
    tally_set(f.db, "w", 1, 7, NULL);
    while ((st = cmd_watch(&f.ctx, &f.s, 1, w, wl)) == CMD_PENDING)
        pass(&f);
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_OK);
    assert_int_equal(cmd_multi(&f.ctx, &f.s), CMD_OK);
    cmd_multi_queue(&f.s, "a", 1);
    cmd_multi_queue(&f.s, "b", 1);
    while ((st = cmd_exec_multi(&f.ctx, &f.s, run_queued_incr, &f, &res)) ==
           CMD_PENDING) {
        assert_true(cmd_in_multi(&f.s)); /* as it was for the re-run */
        pass(&f);
    }
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_OK);
    assert_int_equal(res.n, 2);
    assert_false(cmd_in_multi(&f.s));
    assert_int_equal(engine_value(&f, "a"), 1);
    assert_int_equal(engine_value(&f, "b"), 1);

    /* A watched key another instance changed (here: behind the command
     * layer's back, so no version moved): the value tells. */
    while (cmd_watch(&f.ctx, &f.s, 1, w, wl) == CMD_PENDING)
        pass(&f);
    cmd_request_done(&f.s);
    tally_set(f.db, "w", 1, 8, NULL);
    assert_int_equal(cmd_multi(&f.ctx, &f.s), CMD_OK);
    cmd_multi_queue(&f.s, "a", 1);
    while ((st = cmd_exec_multi(&f.ctx, &f.s, run_queued_incr, &f, &res)) ==
           CMD_PENDING)
        pass(&f);
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_NOTSET);
    assert_int_equal(engine_value(&f, "a"), 1);
    close_fx(&f);
}

/* RENAME's read of src is part of its batch: a change to src before the
 * commit makes it run again rather than lose that change. */
static void rename_sees_a_change_to_src_made_before_its_commit(void **state)
{
    struct fx f;
    struct cmd_session other = {.id = 2, .proto = CMD_PROTO_RESP};
    struct cmd_req q = INCR("src", 1);
    struct cmd_res res;
    enum cmd_status st;

    open_fx(&f, state);
    other.wake = on_wake;
    other.wake_arg = &f;
    tally_set(f.db, "src", 3, 5, NULL);
    assert_int_equal(cmd_rename(&f.ctx, &f.s, "src", 3, "dst", 3, 0, &res),
                     CMD_PENDING);
    pass(&f); /* it has read src = 5 */
    assert_int_equal(cmd_exec(&f.ctx, &other, &q, &res), CMD_PENDING);
    pass(&f);
    assert_int_equal(cmd_exec(&f.ctx, &other, &q, &res), CMD_OK);
    cmd_request_done(&other);
    while ((st = cmd_rename(&f.ctx, &f.s, "src", 3, "dst", 3, 0, &res)) ==
           CMD_PENDING)
        pass(&f);
    cmd_request_done(&f.s);
    assert_int_equal(st, CMD_OK);
    assert_int_equal(engine_value(&f, "dst"), 6);
    assert_int_equal(tally_get(f.db, "src", 3, NULL, NULL), TALLY_NOTFOUND);
    cmd_session_end(&f.ctx, &other);
    close_fx(&f);
}

static void session_ended_with_a_batch_open_applies_nothing(void **state)
{
    struct fx f;
    const char *ks[] = {"x"};
    int64_t v;

    open_fx(&f, state);
    assert_int_equal(run_batch(&f, &f.s, ks, 1, &v), CMD_PENDING);
    cmd_session_end(&f.ctx, &f.s); /* the connection closes */
    pass(&f); /* the answer frees the log and aborts the batch (ASan) */
    assert_int_equal(f.woken, 0);
    assert_int_equal(engine_value(&f, "x"), 0);
    close_fx(&f);
}

/* Pipelined look-ahead (cmd.h): a session's requests run with replay logs
 * of their own while the one before waits; the delay store, shuffling
 * everything else, keeps one session's calls in the order made, so each
 * request's result is the one its place in the pipeline gives, whatever
 * the shuffle.  Each re-run, in order, gets its own log's result. */
static void requests_run_ahead_apply_in_order_with_logs_of_their_own(
    void **state)
{
    struct fx f;
    struct cmd_session other = {.id = 2, .proto = CMD_PROTO_RESP};
    struct cmd_res res;

    open_fx(&f, state);
    other.wake = on_wake;
    other.wake_arg = &f;
    assert_true(cmd_ahead_ok(&f.ctx, CMD_INCRBY));
    assert_true(cmd_ahead_ok(&f.ctx, CMD_GET));
    assert_false(cmd_ahead_ok(&f.ctx, CMD_MSET));
    assert_false(cmd_ahead_ok(&f.ctx, CMD_SCAN));
    for (int round = 0; round < 20; round++) {
        struct cmd_replay *logs[8] = {NULL};
        struct cmd_req q[8];
        const int64_t by[8] = {1, 10, 100, 1000, 10000, 100000, 1000000,
                               10000000};
        int64_t prev = engine_value(&f, "p");

        /* The first waits; seven run behind it, each on its own log, and
         * another session's increments (7: no power of ten is a multiple)
         * land among them. */
        for (int i = 0; i < 8; i++) {
            struct cmd_req o = INCR("p", 7);
            q[i] = (struct cmd_req)INCR("p", by[i]);
            logs[i] = cmd_replay_swap(&f.s, logs[i]);
            assert_int_equal(cmd_exec(&f.ctx, &f.s, &q[i], &res),
                             CMD_PENDING);
            logs[i] = cmd_replay_swap(&f.s, logs[i]);
            assert_true(cmd_replay_waiting(logs[i]));
            if (cmd_exec(&f.ctx, &other, &o, &res) != CMD_PENDING)
                cmd_request_done(&other);
            if (i % 3 == 2)
                pass(&f); /* some answer now, the rest later */
        }
        while (cmd_replay_waiting(logs[7]))
            pass(&f);
        /* The re-runs, in order, each from its own log: between one and
         * the next only its own increment and other's sevens applied. */
        for (int i = 0; i < 8; i++) {
            assert_false(cmd_replay_waiting(logs[i]));
            logs[i] = cmd_replay_swap(&f.s, logs[i]);
            assert_int_equal(cmd_exec(&f.ctx, &f.s, &q[i], &res), CMD_OK);
            cmd_request_done(&f.s);
            logs[i] = cmd_replay_swap(&f.s, logs[i]);
            assert_true(res.value - prev >= by[i]);
            assert_int_equal((res.value - prev - by[i]) % 7, 0);
            prev = res.value;
        }
        for (int i = 0; i < 8; i++)
            cmd_replay_drop(logs[i]);
        pass(&f);
    }
    cmd_session_end(&f.ctx, &other);
    close_fx(&f);
}

/* A connection that closes with requests run ahead still in flight drops
 * their logs: each is freed by its answer (ASan checks). */
static void logs_dropped_in_flight_are_freed_by_the_answer(void **state)
{
    struct fx f;
    struct cmd_req q = INCR("d", 1);
    struct cmd_res res;

    open_fx(&f, state);
    for (int i = 0; i < 4; i++) {
        struct cmd_replay *had = cmd_replay_swap(&f.s, NULL);
        assert_int_equal(cmd_exec(&f.ctx, &f.s, &q, &res), CMD_PENDING);
        cmd_replay_drop(cmd_replay_swap(&f.s, had));
    }
    pass(&f);
    pass(&f);
    assert_int_equal(engine_value(&f, "d"), 4); /* applied, answer dropped */
    close_fx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            pending_request_reruns_and_gets_its_logged_result, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            request_of_two_calls_applies_and_counts_each_once, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(mget_and_keys_arrays_survive_the_wait,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            session_ended_in_flight_is_freed_by_the_answer, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            batch_runs_across_pending_operations_and_applies_once,
            tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            batch_that_conflicts_runs_again_with_a_new_batch, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            exec_keeps_its_queue_and_watches_until_its_last_run, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            session_ended_with_a_batch_open_applies_nothing, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            rename_sees_a_change_to_src_made_before_its_commit, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            requests_run_ahead_apply_in_order_with_logs_of_their_own,
            tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            logs_dropped_in_flight_are_freed_by_the_answer, tt_fx_setup,
            tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
