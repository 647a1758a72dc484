/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_pg.c - the PostgreSQL store (src/store/pg*.c) through store.h
 * against a real PostgreSQL that pg_server.sh started (TALLY_PG_URI,
 * TALLY_PG_DIR, TALLY_PG_PORT, TALLY_PG_SERVER).  Each case opens its own
 * store on its own event loop, drives it and looks at the tables with a
 * plain blocking libpq connection.  Cases that stop or kill the server
 * start it again before they return.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "pg.h"
#include "store.h"

/* ---- Fixture ------------------------------------------------------------- */

struct call {
    int done;
    struct store_res res;
    int64_t values[8];
    unsigned char founds[8];
    char keys[2048][16];   /* SCAN: the keys of the page, copied */
    size_t nkeys;
};

struct fx {
    struct event_base *evb;
    struct store *st;
};

static void on_done(void *arg, const struct store_res *res)
{
    struct call *c = arg;
    assert_false(c->done);
    c->done = 1;
    c->res = *res;
    for (size_t i = 0; i < res->n_items && i < 8; i++) {
        if (res->values)
            c->values[i] = res->values[i];
        if (res->founds)
            c->founds[i] = res->founds[i];
    }
    if (res->keys)
        for (size_t i = 0; i < res->n_items && c->nkeys < 2048; i++)
            snprintf(c->keys[c->nkeys++], 16, "%.*s", (int)res->klens[i],
                     res->keys[i]);
    c->res.values = NULL;
    c->res.founds = NULL;
    c->res.keys = NULL;
    c->res.klens = NULL;
    c->res.expires = NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spin(struct fx *f, int ms)
{
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        struct timeval tv = {0, 10000};
        event_base_loopexit(f->evb, &tv);
        event_base_loop(f->evb, 0);
    }
}

static void wait_ready(struct fx *f, int want)
{
    char why[200];
    int64_t end = mono_ms() + 30000;
    while (f->st->ops->ready(f->st, why, sizeof why) != want) {
        assert_true(mono_ms() < end);
        spin(f, 20);
    }
}

static void fx_open(struct fx *f)
{
    f->evb = event_base_new();
    assert_non_null(f->evb);
    char err[200];
    assert_int_equal(store_pg_open(f->evb, getenv("TALLY_PG_URI"),
                                   TALLY_SYNC_ALWAYS, &f->st, err, sizeof err), 0);
    wait_ready(f, 1);
}

/* fx_open with a second transaction behind the one in flight always
 * (store_pg_opts.behind 1), so that the cases below take that path. */
static void fx_open_behind(struct fx *f)
{
    f->evb = event_base_new();
    assert_non_null(f->evb);
    char err[200];
    struct store_pg_opts o = {.behind = 1};
    assert_int_equal(store_pg_open_opts(f->evb, getenv("TALLY_PG_URI"),
                                        TALLY_SYNC_ALWAYS, &o, &f->st, err,
                                        sizeof err), 0);
    wait_ready(f, 1);
}

static void fx_close(struct fx *f)
{
    f->st->ops->close(f->st);
    event_base_free(f->evb);
}

/* Start one operation; the result lands in *c (at once or from the loop). */
static void start(struct fx *f, const struct store_req *r, struct call *c)
{
    memset(c, 0, sizeof *c);
    struct store_res res;
    if (f->st->ops->exec(f->st, r, &res, on_done, c) == STORE_DONE)
        on_done(c, &res);
}

static void finish(struct fx *f, struct call *c, size_t n)
{
    int64_t end = mono_ms() + 30000;
    for (size_t i = 0; i < n; i++)
        while (!c[i].done) {
            assert_true(mono_ms() < end);
            event_base_loop(f->evb, EVLOOP_ONCE);
        }
}

static struct call *run(struct fx *f, const struct store_req *r)
{
    static struct call c;
    start(f, r, &c);
    finish(f, &c, 1);
    return &c;
}

static struct store_req incr(const char *k, int64_t d)
{
    return (struct store_req){.op = STORE_INCRBY, .key = k, .klen = strlen(k),
                              .num = d};
}

static struct store_req get(const char *k)
{
    return (struct store_req){.op = STORE_GET, .key = k, .klen = strlen(k)};
}

static struct store_req set(const char *k, int64_t v)
{
    return (struct store_req){.op = STORE_SET, .key = k, .klen = strlen(k),
                              .num = v, .xmode = STORE_X_NONE};
}

/* A plain blocking query on a connection of the test's own; caller frees
 * with PQclear. */
static PGresult *sql_query(const char *q)
{
    static PGconn *c;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        if (c)
            PQfinish(c);
        c = PQconnectdb(getenv("TALLY_PG_URI"));
    }
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, q);
    if (PQstatus(c) != CONNECTION_OK) { /* the server restarted since */
        PQclear(r);
        PQreset(c);
        r = PQexec(c, q);
    }
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    return r;
}

static void sql(const char *q)
{
    PQclear(sql_query(q));
}

static long long sql_int(const char *q)
{
    PGresult *r = sql_query(q);
    long long v = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static void server(const char *verb)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s %s %s %s", getenv("TALLY_PG_SERVER"), verb,
             getenv("TALLY_PG_DIR"), !strcmp(verb, "start")
                 ? getenv("TALLY_PG_PORT") : !strcmp(verb, "stop") ? "fast" : "");
    assert_int_equal(system(cmd), 0);
}

static const char *info(struct fx *f, const char *name)
{
    static struct store_info_kv kv[32];
    size_t n = f->st->ops->info(f->st, kv, 32);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].name, name))
            return kv[i].value;
    return "";
}

/* ---- Cases ---------------------------------------------------------------- */

/* Fifty increments of one counter in one loop pass: one transaction, each
 * caller a distinct value of a serial order. */
static void hot_increments_coalesce_into_one_transaction(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    static struct call c[50];
    struct store_req r = incr("hot", 1);
    long long tx0 = atoll(info(&f, "store_pg_transactions"));
    for (int i = 0; i < 50; i++)
        start(&f, &r, &c[i]);
    finish(&f, c, 50);
    long long tx1 = atoll(info(&f, "store_pg_transactions"));
    unsigned char seen[51] = {0};
    for (int i = 0; i < 50; i++) {
        assert_int_equal(c[i].res.rc, STORE_OK);
        assert_true(c[i].res.value >= 1 && c[i].res.value <= 50);
        assert_false(seen[c[i].res.value]);
        seen[c[i].res.value] = 1;
        assert_int_equal(c[i].res.value, i + 1); /* submission order */
    }
    assert_true(tx1 - tx0 <= 2); /* the batch, perhaps the store's purge */
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'hot'"), 50);
    fx_close(&f);
}

/* One connection's pipeline INCR, SET, INCR, GET, GETDEL, INCR in one pass
 * answers as if run one by one. */
static void mixed_ops_in_one_pass_keep_submission_order(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    struct store_req r[7] = {incr("m", 2), set("m", 10), incr("m", 5), get("m"),
                             {.op = STORE_GETDEL, .key = "m", .klen = 1},
                             incr("m", 1), get("other")};
    static struct call c[7];
    for (int i = 0; i < 7; i++)
        start(&f, &r[i], &c[i]);
    finish(&f, c, 7);
    assert_int_equal(c[0].res.value, 2);
    assert_int_equal(c[1].res.rc, STORE_OK);
    assert_int_equal(c[2].res.value, 15);
    assert_int_equal(c[3].res.value, 15);
    assert_int_equal(c[4].res.value, 15);
    assert_int_equal(c[5].res.value, 1);
    assert_int_equal(c[6].res.rc, STORE_NOTFOUND);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'm'"), 1);
    fx_close(&f);
}

/* An increment that would leave int64 fails alone; the others of its pass,
 * on the same counter and on another, succeed. */
static void overflow_fails_alone_not_its_batch(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_SET, .key = "big",
                     .klen = 3, .num = INT64_MAX - 1, .xmode = STORE_X_NONE})->res.rc,
                     STORE_OK);
    struct store_req r[4] = {incr("big", 1), incr("big", 1), incr("small", 1),
                             incr("big", -5)};
    static struct call c[4];
    for (int i = 0; i < 4; i++)
        start(&f, &r[i], &c[i]);
    finish(&f, c, 4);
    assert_int_equal(c[0].res.rc, STORE_OK);
    assert_int_equal(c[0].res.value, INT64_MAX);
    assert_int_equal(c[1].res.rc, STORE_EOVERFLOW);
    assert_int_equal(c[2].res.rc, STORE_OK);
    assert_int_equal(c[2].res.value, 1);
    assert_int_equal(c[3].res.rc, STORE_OK);
    assert_int_equal(c[3].res.value, INT64_MAX - 5);
    assert_int_equal(c[1].res.value, INT64_MAX);
    fx_close(&f);
}

/* The same id replays the first result, also on a new store (a tallyd
 * restart or reconnect); another request with it is IDREUSED. */
static void ids_replay_across_a_reconnect(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters; DELETE FROM tally_once");
    struct store_req r = incr("paid", 7);
    r.once = "order-1";
    r.oncelen = 7;
    r.fingerprint = 42;
    struct call *c = run(&f, &r);
    assert_int_equal(c->res.rc, STORE_OK);
    assert_int_equal(c->res.value, 7);
    assert_false(c->res.replayed);
    c = run(&f, &r);
    assert_int_equal(c->res.value, 7);
    assert_true(c->res.replayed);
    fx_close(&f);

    fx_open(&f);
    static struct call two[2];
    start(&f, &r, &two[0]);
    start(&f, &r, &two[1]);
    finish(&f, two, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(two[i].res.rc, STORE_OK);
        assert_int_equal(two[i].res.value, 7);
        assert_true(two[i].res.replayed);
    }
    r.fingerprint = 43;
    assert_int_equal(run(&f, &r)->res.rc, STORE_EIDREUSED);
    r.oncelen = 0; /* an empty id is no id */
    assert_int_equal(run(&f, &r)->res.rc, STORE_EIDLEN);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'paid'"), 7);
    fx_close(&f);
}

/* The connection dies while a batch's COMMIT is on its way (the increment
 * waits for a row lock another session holds): the outcome is unknown,
 * never success; a read after the reconnect is not. */
static void connection_lost_after_commit_sent_is_unknown(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters; INSERT INTO tally_counters (k, n) VALUES ('locked', 1)");
    PGconn *holder = PQconnectdb(getenv("TALLY_PG_URI"));
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN; SELECT * FROM tally_counters WHERE k = 'locked' FOR UPDATE"));
    static struct call c[2];
    struct store_req r = incr("locked", 1), g = get("elsewhere");
    start(&f, &r, &c[0]);
    spin(&f, 300); /* the batch is sent and waits for the lock */
    assert_false(c[0].done);
    start(&f, &g, &c[1]); /* queued behind it */
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'tallyd'");
    finish(&f, c, 2);
    assert_int_equal(c[0].res.rc, STORE_EUNKNOWN);
    assert_non_null(strstr(c[0].res.detail, "may or may not"));
    assert_int_equal(c[1].res.rc, STORE_EUNAVAIL);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    wait_ready(&f, 1);
    assert_int_equal(run(&f, &r)->res.value, 2);
    assert_int_equal(atoll(info(&f, "store_pg_unknown_outcomes")), 1);
    fx_close(&f);
}

/* ---- Store batches (pg_xact.c) ------------------------------------------ */

static struct store_batch *begin(struct fx *f)
{
    struct store_batch *b = NULL;
    assert_int_equal(f->st->ops->batch_begin(f->st, 0, &b), STORE_OK);
    assert_non_null(b);
    return b;
}

/* One operation of batch b, waited for. */
static struct call *in_batch(struct fx *f, struct store_batch *b,
                             struct store_req r)
{
    r.batch = b;
    return run(f, &r);
}

static struct call *commit(struct fx *f, struct store_batch *b)
{
    static struct call c;
    struct store_res res;
    memset(&c, 0, sizeof c);
    if (f->st->ops->batch_commit(f->st, b, &res, on_done, &c) == STORE_DONE)
        on_done(&c, &res);
    finish(f, &c, 1);
    return &c;
}

/* A batch sees its own writes at once (one read per key, then C), shows
 * nothing to others before its commit, and applies whole at it. */
static void batch_reads_its_own_writes_and_applies_whole_at_commit(
    void **state)
{
    struct fx f;
    (void)state;
    fx_open(&f);
    sql("DELETE FROM tally_counters; INSERT INTO tally_counters (k, n) VALUES ('a', 1)");
    struct store_batch *b = begin(&f);
    assert_int_equal(in_batch(&f, b, incr("a", 5))->res.value, 6);
    struct store_req again = incr("a", 1);
    struct store_res res;
    again.batch = b;
    store_res_init(&res);
    assert_int_equal(f.st->ops->exec(f.st, &again, &res, on_done, NULL),
                     STORE_DONE); /* a key it knows: no round trip */
    assert_int_equal(res.value, 7);
    assert_int_equal(in_batch(&f, b, get("b"))->res.rc, STORE_NOTFOUND);
    assert_int_equal(in_batch(&f, b, set("b", 3))->res.rc, STORE_OK);
    assert_int_equal(in_batch(&f, b, get("b"))->res.value, 3);
    /* DBSIZE: the database's one counter and the one the batch made. */
    struct store_req count = {.op = STORE_COUNT};
    assert_int_equal(in_batch(&f, b, count)->res.n, 2);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'a'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM tally_counters WHERE k = 'b'"), 0);
    assert_int_equal(commit(&f, b)->res.rc, STORE_OK);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'a'"), 7);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'b'"), 3);
    fx_close(&f);
}

/* Another writer (another instance) changes a key the batch read: the
 * commit applies nothing, leaves no placeholder, and says ECONFLICT so the
 * caller runs its request again. */
static void batch_commit_conflicts_when_another_writer_got_in_between(
    void **state)
{
    struct fx f;
    (void)state;
    fx_open(&f);
    sql("DELETE FROM tally_counters; INSERT INTO tally_counters (k, n) VALUES ('a', 1)");
    struct store_batch *b = begin(&f);
    assert_int_equal(in_batch(&f, b, incr("a", 1))->res.value, 2);
    assert_int_equal(in_batch(&f, b, incr("new", 1))->res.value, 1);
    sql("UPDATE tally_counters SET n = 100 WHERE k = 'a'");
    struct call *c = commit(&f, b);
    assert_int_equal(c->res.rc, STORE_ECONFLICT);
    assert_string_equal(info(&f, "store_pg_batch_conflicts"), "1");
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'a'"), 100);
    assert_int_equal(sql_int("SELECT count(*) FROM tally_counters"), 1);
    /* A batch whose reads still hold commits. */
    b = begin(&f);
    assert_int_equal(in_batch(&f, b, incr("a", 1))->res.value, 101);
    assert_int_equal(commit(&f, b)->res.rc, STORE_OK);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'a'"), 101);
    fx_close(&f);
}

/* Aborted while its read is in flight: the read's operation still gets its
 * done() (an error), the batch is freed after it (ASan), nothing applied. */
static void batch_aborted_with_a_read_in_flight_answers_it(void **state)
{
    struct fx f;
    (void)state;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    struct store_batch *b = begin(&f);
    static struct call c;
    struct store_req r = incr("c", 1);
    r.batch = b;
    start(&f, &r, &c);
    assert_false(c.done);
    f.st->ops->batch_abort(f.st, b);
    finish(&f, &c, 1);
    assert_int_equal(c.res.rc, STORE_EUNAVAIL);
    assert_int_equal(sql_int("SELECT count(*) FROM tally_counters"), 0);
    fx_close(&f);
}

/* The commit waits on a row another session locked; the connection is
 * lost meanwhile: outcome unknown, never success. */
static void batch_commit_lost_after_it_was_sent_is_unknown(void **state)
{
    struct fx f;
    (void)state;
    fx_open(&f);
    sql("DELETE FROM tally_counters; INSERT INTO tally_counters (k, n) VALUES ('locked', 1)");
    struct store_batch *b = begin(&f);
    assert_int_equal(in_batch(&f, b, incr("locked", 1))->res.value, 2);
    PGconn *holder = PQconnectdb(getenv("TALLY_PG_URI"));
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN; SELECT * FROM tally_counters WHERE k = 'locked' FOR UPDATE"));
    static struct call c;
    struct store_res res;
    memset(&c, 0, sizeof c);
    assert_int_equal(f.st->ops->batch_commit(f.st, b, &res, on_done, &c),
                     STORE_PENDING);
    spin(&f, 300); /* sent, waiting for the lock */
    assert_false(c.done);
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'tallyd'");
    finish(&f, &c, 1);
    assert_int_equal(c.res.rc, STORE_EUNKNOWN);
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    fx_close(&f);
}

/* With PostgreSQL stopped every operation fails at once with EUNAVAIL and
 * ready() says why; the store reconnects by itself once it is back. */
static void postgresql_down_fails_fast_then_reconnects(void **state)
{
    struct fx f;
    fx_open(&f);
    server("stop");
    wait_ready(&f, 0);
    char why[200];
    assert_int_equal(f.st->ops->ready(f.st, why, sizeof why), 0);
    assert_non_null(strstr(why, "postgresql"));
    struct store_req r = incr("down", 1);
    for (int i = 0; i < 20; i++) { /* between reconnects and during them */
        int64_t t0 = mono_ms();
        assert_int_equal(run(&f, &r)->res.rc, STORE_EUNAVAIL);
        assert_true(mono_ms() - t0 < 1000);
        spin(&f, 20);
    }
    server("start");
    wait_ready(&f, 1);
    assert_int_equal(run(&f, &r)->res.rc, STORE_OK);
    fx_close(&f);
}

/* The same after a crash (SIGKILL of the postmaster, immediate shutdown). */
static void postgresql_killed_store_recovers(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    struct store_req r = incr("k9", 1);
    assert_int_equal(run(&f, &r)->res.value, 1);
    server("kill");
    sleep(1);
    server("start");
    wait_ready(&f, 1);
    spin(&f, 100);
    struct call *c = run(&f, &r);
    if (c->res.rc == STORE_EUNAVAIL) { /* the loss noticed only now */
        wait_ready(&f, 1);
        c = run(&f, &r);
    }
    assert_int_equal(c->res.rc, STORE_OK);
    assert_int_equal(c->res.value, 2);
    fx_close(&f);
}

/* An expired counter is gone for every read at once, and the purge deletes
 * its row later. */
static void expired_counters_invisible_then_purged(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    struct store_req s = set("ttl", 5);
    s.xmode = STORE_X_REL;
    s.expire = 300;
    struct call *c = run(&f, &s);
    assert_int_equal(c->res.rc, STORE_OK);
    assert_true(c->res.expire_at > c->res.now_ms);
    assert_true(c->res.expire_at - c->res.now_ms <= 300);
    c = run(&f, &(struct store_req){.op = STORE_GET, .key = "ttl", .klen = 3});
    assert_int_equal(c->res.value, 5);
    assert_true(c->res.expire_at > 0);
    usleep(400 * 1000);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_GET, .key = "ttl",
                                                 .klen = 3})->res.rc, STORE_NOTFOUND);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_COUNT})->res.n, 0);
    /* an increment of an expired counter starts from 0 without the TTL */
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_SET, .key = "ttl2",
                     .klen = 4, .num = 9, .xmode = STORE_X_REL, .expire = 100})->res.rc,
                     STORE_OK);
    usleep(200 * 1000);
    c = run(&f, &(struct store_req){.op = STORE_INCRBY, .key = "ttl2", .klen = 4, .num = 1});
    assert_int_equal(c->res.value, 1);
    assert_int_equal(c->res.expire_at, 0);
    int64_t end = mono_ms() + 5000;
    while (sql_int("SELECT count(*) FROM tally_counters WHERE k = 'ttl'") != 0) {
        assert_true(mono_ms() < end);
        spin(&f, 100);
    }
    fx_close(&f);
}

/* SCAN pages of about COUNT, a cursor redis-py can pass back, every key
 * once, the prefix honoured. */
static void scan_pages_cover_every_key(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters;"
        "INSERT INTO tally_counters (k, n) SELECT convert_to('s' || i, 'UTF8'), i"
        " FROM generate_series(1, 250) i;"
        "INSERT INTO tally_counters (k, n) SELECT convert_to('x' || i, 'UTF8'), i"
        " FROM generate_series(1, 30) i");
    static struct call c;
    static unsigned char seen[251];
    memset(seen, 0, sizeof seen);
    uint64_t cursor = 0;
    int pages = 0;
    size_t total = 0;
    do {
        struct store_req r = {.op = STORE_SCAN, .cursor = cursor, .count = 20,
                              .prefix = "s", .plen = 1};
        start(&f, &r, &c);
        finish(&f, &c, 1);
        assert_int_equal(c.res.rc, STORE_OK);
        assert_true(c.nkeys <= 20);
        for (size_t i = 0; i < c.nkeys; i++) {
            assert_int_equal(c.keys[i][0], 's');
            int v = atoi(c.keys[i] + 1);
            assert_false(seen[v]);
            seen[v] = 1;
            total++;
        }
        cursor = c.res.n;
        assert_true(cursor <= INT64_MAX);
        pages++;
    } while (cursor != 0 && pages < 100);
    assert_int_equal(total, 250);
    assert_true(pages >= 14);
    fx_close(&f);
}

/* Conditional operations over many keys: SET NX/XX/IFEQ, MSET, MGET, DEL,
 * EXISTS, EXPIRE GT. */
static void conditional_and_multi_key_ops(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters");
    struct store_req nx = set("a", 1);
    nx.flags = STORE_F_NX;
    assert_int_equal(run(&f, &nx)->res.rc, STORE_OK);
    assert_int_equal(run(&f, &nx)->res.rc, STORE_NOTSET);
    struct store_req xx = set("b", 1);
    xx.flags = STORE_F_XX;
    assert_int_equal(run(&f, &xx)->res.rc, STORE_NOTSET);
    struct store_req cas = set("a", 5);
    cas.flags = STORE_F_IFEQ;
    cas.cmp = 2;
    assert_int_equal(run(&f, &cas)->res.rc, STORE_NOTSET);
    cas.cmp = 1;
    assert_int_equal(run(&f, &cas)->res.rc, STORE_OK);
    const char *keys[3] = {"a", "b", "c"};
    size_t klens[3] = {1, 1, 1};
    int64_t nums[3] = {10, 20, 30};
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_MSET, .nkeys = 2,
                     .keys = keys + 1, .klens = klens, .nums = nums + 1})->res.rc,
                     STORE_OK);
    struct call *c = run(&f, &(struct store_req){.op = STORE_MGET, .nkeys = 3,
                                                 .keys = keys, .klens = klens});
    assert_int_equal(c->values[0], 5);
    assert_int_equal(c->values[1], 20);
    assert_int_equal(c->values[2], 30);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_EXISTS, .nkeys = 3,
                     .keys = keys, .klens = klens})->res.n, 3);
    struct store_req ex = {.op = STORE_EXPIRE, .key = "a", .klen = 1,
                           .xmode = STORE_X_REL, .expire = 100000,
                           .flags = STORE_F_GT};
    assert_int_equal(run(&f, &ex)->res.n, 0); /* no TTL is forever */
    ex.flags = 0;
    assert_int_equal(run(&f, &ex)->res.n, 1);
    ex.flags = STORE_F_GT;
    ex.expire = 200000;
    assert_int_equal(run(&f, &ex)->res.n, 1);
    c = run(&f, &(struct store_req){.op = STORE_DEL, .nkeys = 2, .keys = keys,
                                    .klens = klens});
    assert_int_equal(c->res.n, 2);
    assert_int_equal(sql_int("SELECT count(*) FROM tally_counters"), 1);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_FLUSH})->res.n, 1);
    /* memcached: cas of a missing item, incr of a missing one, decr's floor */
    cas.cmp = 5;
    assert_int_equal(run(&f, &cas)->res.rc, STORE_NOTSET);
    struct store_req mc = incr("mc", 1);
    mc.flags = STORE_F_MUSTEXIST;
    assert_int_equal(run(&f, &mc)->res.rc, STORE_NOTFOUND);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_SET, .key = "mc",
                     .klen = 2, .num = 3, .xmode = STORE_X_NONE})->res.rc, STORE_OK);
    mc.num = -5;
    mc.flags = STORE_F_MUSTEXIST | STORE_F_FLOOR0;
    assert_int_equal(run(&f, &mc)->res.value, 0);
    assert_int_equal(run(&f, &(struct store_req){.op = STORE_SET, .key = "mc",
                     .klen = 2, .num = -5, .xmode = STORE_X_NONE})->res.rc, STORE_OK);
    c = run(&f, &mc);
    assert_int_equal(c->res.value, -5); /* below the floor already: as it is */
    assert_true(c->res.unchanged);
    fx_close(&f);
}

/* INFO says what a commit survives. */
static void info_reports_durability_honestly(void **state)
{
    struct fx f;
    fx_open(&f);
    spin(&f, 200);
    assert_string_equal(info(&f, "store"), "postgresql");
    assert_string_equal(info(&f, "store_pg_synchronous_commit"), "on");
    assert_string_equal(info(&f, "store_pg_sync_standby_configured"), "0");
    assert_non_null(strstr(info(&f, "store_durability"),
                           "no synchronous standby configured"));
    fx_close(&f);
}

/* Two stores (two tallyd instances) on one database, clients mixing hot
 * increments and slow ones (with a floor, so locked and run in C) over two
 * keys: every acknowledged increment is counted exactly once, and since
 * every transaction locks its counters in one order there is no deadlock
 * (there were, each costing deadlock_timeout, when a batch locked its hot
 * keys and its slow keys in two statements). */
struct mixer {
    struct store *st;
    int i, stop;
    long acked[2];
    long errors;
    int inflight_key;
};

static void mixer_issue(struct mixer *m);

static void mixer_done(void *arg, const struct store_res *res)
{
    struct mixer *m = arg;
    if (res->rc == STORE_OK) {
        m->acked[m->inflight_key]++;
    } else {
        m->errors++;
        fprintf(stderr, "mixer: rc %d %s\n", res->rc, res->detail);
        m->stop = 1; /* an immediate error would recurse */
    }
    if (!m->stop)
        mixer_issue(m);
}

static void mixer_issue(struct mixer *m)
{
    static const char *const keys[2] = {"dx", "dy"};
    int k = (m->i++ + (int)((uintptr_t)m >> 4)) & 1;
    struct store_req r = incr(keys[k], 1);
    if (rand() & 1)
        r.flags = STORE_F_FLOOR0;
    m->inflight_key = k;
    struct store_res res;
    if (m->st->ops->exec(m->st, &r, &res, mixer_done, m) == STORE_DONE)
        mixer_done(m, &res);
}

static void two_instances_lock_in_one_order_and_count_exactly(void **state)
{
    struct fx a, b;
    fx_open(&a);
    sql("DELETE FROM tally_counters");
    b.evb = a.evb; /* one loop, two stores: two connections */
    char err[200];
    assert_int_equal(store_pg_open(b.evb, getenv("TALLY_PG_URI"),
                                   TALLY_SYNC_ALWAYS, &b.st, err, sizeof err), 0);
    wait_ready(&b, 1);
    static struct mixer m[40];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 40; i++) {
        m[i].st = i & 1 ? b.st : a.st;
        m[i].i = i;
        mixer_issue(&m[i]);
    }
    spin(&a, 3000);
    for (int i = 0; i < 40; i++)
        m[i].stop = 1;
    spin(&a, 500);
    long want[2] = {0, 0}, errors = 0;
    for (int i = 0; i < 40; i++) {
        want[0] += m[i].acked[0];
        want[1] += m[i].acked[1];
        errors += m[i].errors;
    }
    assert_int_equal(errors, 0);
    assert_true(want[0] > 100 && want[1] > 100);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'dx'"), want[0]);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'dy'"), want[1]);
    fprintf(stderr, "two instances: %ld + %ld increments, %s + %s re-runs\n",
            want[0], want[1], info(&a, "store_pg_retries"),
            info(&b, "store_pg_retries"));
    assert_true(want[0] + want[1] > 3000); /* not stalled by deadlocks */
    assert_string_equal(info(&a, "store_pg_retries"), "0");
    assert_string_equal(info(&b, "store_pg_retries"), "0");
    b.st->ops->close(b.st);
    fx_close(&a);
}

/* A deadlock with another session (40P01) re-runs the batch after a
 * backoff instead of failing it. */
static void deadlock_is_rerun_after_backoff(void **state)
{
    struct fx f;
    fx_open(&f);
    sql("DELETE FROM tally_counters;"
        "INSERT INTO tally_counters (k, n) VALUES ('p', 0), ('q', 0)");
    PGconn *holder = PQconnectdb(getenv("TALLY_PG_URI"));
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN; SELECT * FROM tally_counters WHERE k = 'q' FOR UPDATE"));
    const char *keys[2] = {"p", "q"};
    size_t klens[2] = {1, 1};
    int64_t nums[2] = {1, 2};
    static struct call c;
    start(&f, &(struct store_req){.op = STORE_MSET, .nkeys = 2, .keys = keys,
                                  .klens = klens, .nums = nums}, &c);
    spin(&f, 300); /* holds p, waits for q */
    assert_false(c.done);
    assert_int_equal(PQsendQuery(holder, "UPDATE tally_counters SET n = 5 WHERE k = 'p'"), 1);
    int64_t end = mono_ms() + 10000;
    int released = 0;
    while (!c.done) { /* the store's backend waited first: it is the victim */
        assert_true(mono_ms() < end);
        spin(&f, 20);
        PQconsumeInput(holder);
        if (!released && !PQisBusy(holder)) {
            released = 1;
            PGresult *r;
            while ((r = PQgetResult(holder)))
                PQclear(r);
            PQclear(PQexec(holder, "ROLLBACK"));
        }
    }
    assert_int_equal(c.res.rc, STORE_OK);
    assert_true(atoll(info(&f, "store_pg_retries")) >= 1);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'q'"), 2);
    PQfinish(holder);
    fx_close(&f);
}

/* An operation sent before the first connect is up waits for it instead of
 * failing (tallyd takes requests as soon as it listens). */
static void ops_during_the_first_connect_wait_for_it(void **state)
{
    struct fx f;
    f.evb = event_base_new();
    char err[200];
    assert_int_equal(store_pg_open(f.evb, getenv("TALLY_PG_URI"),
                                   TALLY_SYNC_ALWAYS, &f.st, err, sizeof err), 0);
    char why[200];
    assert_int_equal(f.st->ops->ready(f.st, why, sizeof why), 0);
    struct store_req r = incr("early", 1);
    struct call *c = run(&f, &r);
    assert_int_equal(c->res.rc, STORE_OK);
    fx_close(&f);
}

/* A server that accepts and never answers (a hung host): operations wait
 * for the connect PG_CONNECT_WAIT_MS at most, then fail with EUNAVAIL; one
 * asked again from its done() waits anew instead of spinning. */
struct again {
    struct store *st;
    int calls;
    int rc[2];
    int64_t at[2];
};

static void again_done(void *arg, const struct store_res *res)
{
    struct again *a = arg;
    a->rc[a->calls] = res->rc;
    a->at[a->calls] = mono_ms();
    if (++a->calls == 1) {
        struct store_req r = incr("hung", 1);
        struct store_res now;
        if (a->st->ops->exec(a->st, &r, &now, again_done, a) == STORE_DONE)
            again_done(a, &now);
    }
}

static void connect_that_hangs_fails_after_the_wait(void **state)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 8), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    char uri[128];
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres",
             ntohs(sa.sin_port));
    struct fx f;
    f.evb = event_base_new();
    char err[200];
    assert_int_equal(store_pg_open(f.evb, uri, TALLY_SYNC_ALWAYS, &f.st, err,
                                   sizeof err), 0);
    static struct again a;
    memset(&a, 0, sizeof a);
    a.st = f.st;
    struct store_req r = incr("hung", 1);
    struct store_res now;
    int64_t t0 = mono_ms();
    if (f.st->ops->exec(f.st, &r, &now, again_done, &a) == STORE_DONE)
        again_done(&a, &now);
    while (a.calls < 2 && mono_ms() - t0 < 10000)
        spin(&f, 50);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.rc[0], STORE_EUNAVAIL);
    assert_int_equal(a.rc[1], STORE_EUNAVAIL);
    assert_true(a.at[0] - t0 >= 1500 && a.at[0] - t0 < 4000);
    assert_true(a.at[1] - a.at[0] >= 1500); /* waited anew */
    fx_close(&f);
    close(ls);
}

/* ---- A second transaction behind the one in flight ----------------------- */

/* A session of the test's own holds the row k (FOR UPDATE), so the store's
 * first batch, an increment of it, stays in flight until release_row().
 * What a failed case before left (its holder, its trigger) goes first, so
 * that one failure does not block the cases after it. */
static PGconn *hold_row(const char *k)
{
    char q[200];
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'tally-test-holder';"
        "DROP TRIGGER IF EXISTS tboom ON tally_counters");
    snprintf(q, sizeof q, "DELETE FROM tally_counters;"
             "INSERT INTO tally_counters (k, n) VALUES ('%s', 1)", k);
    sql(q);
    PGconn *holder = PQconnectdb(getenv("TALLY_PG_URI"));
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    snprintf(q, sizeof q, "SET application_name TO 'tally-test-holder';"
             "BEGIN; SELECT * FROM tally_counters WHERE k = '%s' FOR UPDATE", k);
    PQclear(PQexec(holder, q));
    return holder;
}

static void release_row(PGconn *holder)
{
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
}

static long long info_int(struct fx *f, const char *name)
{
    return atoll(info(f, name));
}

/* Start r[0], which stays in flight (its row is held), then r[1..n-1],
 * and check that a batch went behind it (the store's own purge may be the
 * batch ahead). */
static void start_behind(struct fx *f, const struct store_req *r,
                         struct call *c, size_t n)
{
    long long b0 = info_int(f, "store_pg_transactions_behind");
    start(f, &r[0], &c[0]);
    spin(f, 300); /* sent; it waits for the row lock */
    for (size_t i = 1; i < n; i++)
        start(f, &r[i], &c[i]);
    spin(f, 100);
    assert_true(info_int(f, "store_pg_transactions_behind") - b0 >= 1);
}

/* Increments sent behind a batch in flight are answered after it, in one
 * serial order; a read that cannot go behind waits for both. */
static void behind_batch_answers_after_the_one_ahead(void **state)
{
    struct fx f;
    fx_open_behind(&f);
    PGconn *holder = hold_row("locked");
    const char *mk[1] = {"locked"};
    size_t ml[1] = {6};
    struct store_req r[6] = {incr("locked", 1), incr("locked", 10),
                             incr("locked", 100), get("locked"),
                             {.op = STORE_MGET, .nkeys = 1, .keys = mk,
                              .klens = ml},
                             incr("locked", 1000)};
    static struct call c[6];
    start_behind(&f, r, c, 6);
    for (int i = 0; i < 6; i++)
        assert_false(c[i].done);
    release_row(holder);
    finish(&f, c, 6);
    assert_int_equal(c[0].res.value, 2);
    assert_int_equal(c[1].res.value, 12);
    assert_int_equal(c[2].res.value, 112);
    assert_int_equal(c[3].res.value, 112);
    assert_int_equal(c[4].res.rc, STORE_OK);
    assert_int_equal(c[4].values[0], 112); /* after both, not 1 or 2 */
    assert_int_equal(c[5].res.value, 1112);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'locked'"),
                     1112);
    fx_close(&f);
}

/* Behind a batch in flight an increment that would leave int64 still fails
 * alone. */
static void behind_batch_overflow_fails_alone(void **state)
{
    struct fx f;
    fx_open_behind(&f);
    PGconn *holder = hold_row("locked");
    sql("INSERT INTO tally_counters (k, n) VALUES ('big', 9223372036854775806)");
    struct store_req r[4] = {incr("locked", 1), incr("big", 1), incr("big", 1),
                             incr("y", 5)};
    static struct call c[4];
    start_behind(&f, r, c, 4);
    release_row(holder);
    finish(&f, c, 4);
    assert_int_equal(c[0].res.value, 2);
    assert_int_equal(c[1].res.rc, STORE_OK);
    assert_int_equal(c[1].res.value, INT64_MAX);
    assert_int_equal(c[2].res.rc, STORE_EOVERFLOW);
    assert_int_equal(c[3].res.value, 5);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'y'"), 5);
    fx_close(&f);
}

/* A batch that fails with 40001 while another is behind it runs again after
 * that one: both callers succeed, in one serial order. */
static void retry_of_a_batch_with_one_behind_runs_after_it(void **state)
{
    struct fx f;
    fx_open_behind(&f);
    PGconn *holder = hold_row("boom");
    sql("DROP SEQUENCE IF EXISTS tboom; CREATE SEQUENCE tboom;"
        "CREATE OR REPLACE FUNCTION tboom() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN IF nextval('tboom') = 1 THEN RAISE EXCEPTION 'test'"
        " USING ERRCODE = 'serialization_failure'; END IF; RETURN NEW; END$$;"
        "CREATE TRIGGER tboom BEFORE UPDATE ON tally_counters FOR EACH ROW"
        " WHEN (NEW.k = 'boom'::bytea) EXECUTE FUNCTION tboom()");
    struct store_req r[2] = {incr("boom", 1), incr("boom", 10)};
    static struct call c[2];
    long long t0 = info_int(&f, "store_pg_retries");
    start_behind(&f, r, c, 2);
    release_row(holder);
    finish(&f, c, 2);
    sql("DROP TRIGGER tboom ON tally_counters; DROP FUNCTION tboom();"
        "DROP SEQUENCE tboom");
    assert_int_equal(c[0].res.rc, STORE_OK);
    assert_int_equal(c[1].res.rc, STORE_OK);
    assert_int_equal(info_int(&f, "store_pg_retries") - t0, 1);
    assert_int_equal(c[1].res.value, 11); /* behind first, then the re-run */
    assert_int_equal(c[0].res.value, 12);
    assert_int_equal(sql_int("SELECT n FROM tally_counters WHERE k = 'boom'"), 12);
    fx_close(&f);
}

/* The connection lost with a batch behind the one in flight: both COMMITs
 * were sent, so both outcomes are unknown, never a success. */
static void connection_lost_with_one_behind_is_unknown_for_both(void **state)
{
    struct fx f;
    fx_open_behind(&f);
    PGconn *holder = hold_row("locked");
    struct store_req r[2] = {incr("locked", 1), incr("locked", 1)};
    static struct call c[2];
    long long u0 = info_int(&f, "store_pg_unknown_outcomes");
    start_behind(&f, r, c, 2);
    assert_false(c[1].done);
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'tallyd'");
    finish(&f, c, 2);
    assert_int_equal(c[0].res.rc, STORE_EUNKNOWN);
    assert_int_equal(c[1].res.rc, STORE_EUNKNOWN);
    assert_int_equal(info_int(&f, "store_pg_unknown_outcomes") - u0, 2);
    release_row(holder);
    wait_ready(&f, 1);
    assert_int_equal(run(&f, &r[0])->res.value, 2);
    fx_close(&f);
}

int main(void)
{
    if (!getenv("TALLY_PG_URI")) {
        fprintf(stderr, "run me through tests/store/pg_server.sh run 0 %s\n",
                "test_store_pg");
        return 77;
    }
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ops_during_the_first_connect_wait_for_it),
        cmocka_unit_test(connect_that_hangs_fails_after_the_wait),
        cmocka_unit_test(hot_increments_coalesce_into_one_transaction),
        cmocka_unit_test(mixed_ops_in_one_pass_keep_submission_order),
        cmocka_unit_test(overflow_fails_alone_not_its_batch),
        cmocka_unit_test(ids_replay_across_a_reconnect),
        cmocka_unit_test(conditional_and_multi_key_ops),
        cmocka_unit_test(expired_counters_invisible_then_purged),
        cmocka_unit_test(scan_pages_cover_every_key),
        cmocka_unit_test(info_reports_durability_honestly),
        cmocka_unit_test(batch_reads_its_own_writes_and_applies_whole_at_commit),
        cmocka_unit_test(batch_commit_conflicts_when_another_writer_got_in_between),
        cmocka_unit_test(batch_aborted_with_a_read_in_flight_answers_it),
        cmocka_unit_test(batch_commit_lost_after_it_was_sent_is_unknown),
        cmocka_unit_test(two_instances_lock_in_one_order_and_count_exactly),
        cmocka_unit_test(deadlock_is_rerun_after_backoff),
        cmocka_unit_test(behind_batch_answers_after_the_one_ahead),
        cmocka_unit_test(behind_batch_overflow_fails_alone),
        cmocka_unit_test(retry_of_a_batch_with_one_behind_runs_after_it),
        cmocka_unit_test(connection_lost_with_one_behind_is_unknown_for_both),
        cmocka_unit_test(connection_lost_after_commit_sent_is_unknown),
        cmocka_unit_test(postgresql_down_fails_fast_then_reconnects),
        cmocka_unit_test(postgresql_killed_store_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
