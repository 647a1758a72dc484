/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg.c - the PostgreSQL store's connection and queue: store.h's operations
 * over one libpq connection, non-blocking and in pipeline mode, on the
 * caller's libevent loop.  pg_txn.c sends a batch and reads its rows;
 * pg_batch.c decides what one transaction holds and computes the answers;
 * pg_sql.c has the SQL; docs/postgresql.md the promises.
 *
 * Life of an operation.  store_exec copies the request into a pg_op and
 * queues it; the first one of a loop pass makes the flush event active, so
 * the flush runs after every callback of that pass.  The flush builds one
 * batch from the queue and sends it as one implicit transaction (the
 * statements of one pipeline Sync): the coalesced increments, the locks of
 * the slow keys and ids; if there are slow operations it asks for those
 * rows (a Flush), runs the operations in C and sends the rows they leave;
 * then Sync, which commits.  Answers go out when the Sync's result arrives,
 * that is after the commit.  Meanwhile the next batch gathers in the queue;
 * once the Sync is out a batch of coalesced increments may be sent behind
 * it (pg_txn.c kick_behind), which the backend runs as soon as the first
 * has committed.  Everything else waits until nothing is in flight, so a
 * read of a key with changes in flight is served after their commit.
 *
 * Faults.  40001, 40P01 (and 23505, two instances creating one id) re-run
 * the batch after a jittered backoff, at most PG_RETRY_MAX times.  A
 * connection lost after the Sync of a batch that changes something was
 * sent: every operation of it gets STORE_EUNKNOWN.  Lost before: nothing
 * committed, STORE_EUNAVAIL.  While the connection is down every operation
 * fails at once with STORE_EUNAVAIL; a timer reconnects with backoff.  While
 * a connect is under way (at start, or a reconnect) operations wait for it,
 * PG_CONNECT_WAIT_MS at most, and fail with it if it fails.
 */
#include <libpq-fe.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"
#include "pg_int.h"

int64_t pg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pg_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *pg_sync_setting(int policy)
{
    return policy == TALLY_SYNC_ALWAYS ? "on" : "off";
}

/* ---- Operations ----------------------------------------------------------- */

struct pg_op *pg_op_new(const struct store_req *r, store_done_fn done,
                        void *arg)
{
    struct pg_op *op = xcalloc(1, sizeof *op);
    op->req = *r;
    op->done = done;
    op->arg = arg;
    size_t need = r->klen + r->plen + r->oncelen + 3;
    int multi = r->op == STORE_DEL || r->op == STORE_EXISTS ||
                r->op == STORE_MGET || r->op == STORE_MSET;
    if (multi)
        for (size_t i = 0; i < r->nkeys; i++)
            need += r->klens[i];
    char *p = op->mem = xmalloc(need);
    if (r->key) {
        memcpy(p, r->key, r->klen);
        op->req.key = p;
        p += r->klen;
    }
    if (r->prefix) {
        memcpy(p, r->prefix, r->plen);
        op->req.prefix = p;
        p += r->plen;
    }
    if (r->once) {
        memcpy(p, r->once, r->oncelen);
        op->req.once = p;
        p += r->oncelen;
    }
    if (multi) {
        size_t n = r->nkeys ? r->nkeys : 1;
        op->keyv = xcalloc(n, sizeof *op->keyv);
        op->klenv = xcalloc(n, sizeof *op->klenv);
        for (size_t i = 0; i < r->nkeys; i++) {
            memcpy(p, r->keys[i], r->klens[i]);
            op->keyv[i] = p;
            op->klenv[i] = r->klens[i];
            p += r->klens[i];
        }
        op->req.keys = op->keyv;
        op->req.klens = op->klenv;
        if (r->op == STORE_MSET) {
            op->numv = xcalloc(n, sizeof *op->numv);
            memcpy(op->numv, r->nums, r->nkeys * sizeof *op->numv);
            op->req.nums = op->numv;
        }
    } else {
        op->req.keys = NULL;
        op->req.klens = NULL;
        op->req.nums = NULL;
    }
    return op;
}

void pg_op_free(struct pg_op *op)
{
    free(op->mem);
    free(op->keyv);
    free(op->klenv);
    free(op->numv);
    free(op->values);
    free(op->founds);
    free(op->rkeys);
    free(op->rklens);
    free(op->rexp);
    free(op->rmem);
    free(op);
}

/* Hand the result to the caller (the store's maintenance has none) and
 * free the op, which must be on no list. */
void pg_op_finish(struct pg_store *st, struct pg_op *op)
{
    if (op->kind == PG_PURGE) {
        st->purge_queued = 0;
        /* Committed (a failed purge comes here with no items): the
         * counters it deleted expired, here and for good. */
        for (size_t i = 0; st->expired && i < op->res.n_items; i++)
            st->expired(st->expired_ctx, op->res.keys[i], op->res.klens[i]);
    } else if (op->kind == PG_INFO)
        st->info_queued = 0;
    else
        op->done(op->arg, &op->res);
    pg_op_free(op);
}

static void op_fail(struct pg_store *st, struct pg_op *op, int rc,
                    const char *detail)
{
    free(op->values);
    free(op->founds);
    op->values = NULL;
    op->founds = NULL;
    memset(&op->res, 0, sizeof op->res);
    op->res.rc = rc;
    op->res.now_ms = pg_wall_ms() + st->clock_off_ms;
    snprintf(op->res.detail, sizeof op->res.detail, "%s", detail);
    pg_op_finish(st, op);
}

void pg_fail_list(struct pg_store *st, struct pg_opq *q, int rc,
                      const char *detail)
{
    struct pg_op *op;
    while ((op = TAILQ_FIRST(q))) {
        TAILQ_REMOVE(q, op, link);
        if (rc == STORE_EUNKNOWN && pg_op_writes(op))
            st->n_unknown++;
        op_fail(st, op, rc == STORE_EUNKNOWN && !pg_op_writes(op)
                            ? STORE_EUNAVAIL : rc, detail);
    }
}

static void enqueue(struct pg_store *st, struct pg_op *op)
{
    op->queued_us = pg_mono_us();
    TAILQ_INSERT_TAIL(&st->queue, op, link);
    if (!st->flush_armed) {
        st->flush_armed = 1;
        event_active(st->ev_flush, EV_TIMEOUT, 0);
    }
}

void pg_enqueue_own(struct pg_store *st, enum pg_kind kind)
{
    struct store_req r = {.op = STORE_COUNT};
    struct pg_op *op = pg_op_new(&r, NULL, NULL);
    op->kind = kind;
    enqueue(st, op);
}

/* ---- Connection ------------------------------------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state != PG_READY)
        return;
    st->ticks++;
    if (!st->purge_queued) {
        st->purge_queued = 1;
        pg_enqueue_own(st, PG_PURGE);
    }
    if (st->ticks % PG_INFO_TICKS == 0 && !st->info_queued) {
        st->info_queued = 1;
        pg_enqueue_own(st, PG_INFO);
    }
}

static void set_why(struct pg_store *st, const char *why)
{
    snprintf(st->why, sizeof st->why, "postgresql: %s", why);
    for (char *p = st->why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(st->why);
    while (n && st->why[n - 1] == ' ')
        st->why[--n] = 0;
}

static void drop_conn(struct pg_store *st)
{
    if (st->ev_read)
        event_free(st->ev_read);
    if (st->ev_write)
        event_free(st->ev_write);
    st->ev_read = st->ev_write = NULL;
    st->fd = -1;
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    st->exp_n = 0;
    st->exp_head = 0;
    st->exp_got = 0;
    evtimer_del(st->ev_retry);
    evtimer_del(st->ev_connect);
    evtimer_del(st->ev_stall);
    evtimer_del(st->ev_hold);
    st->hold_over = 0;
    st->expect = 0;
    st->hold_since_us = 0;
    st->answered_us = 0;
}

static void schedule_reconnect(struct pg_store *st)
{
    int ms = st->backoff_ms;
    ms = ms / 2 + rand() % (ms / 2 + 1);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(st->ev_reconnect, &tv);
    st->backoff_ms = st->backoff_ms * 2 > PG_BACKOFF_MAX_MS
                         ? PG_BACKOFF_MAX_MS : st->backoff_ms * 2;
}

void pg_conn_lost(struct pg_store *st, const char *why)
{
    if (st->state == PG_DOWN)
        return;
    set_why(st, why && *why ? why : "connection lost");
    if (!st->closing)
        fprintf(stderr, "tallyd: %s; reconnecting\n", st->why);
    /* In flight: cur, then the batch behind it (its Sync always sent);
     * a batch waiting to re-run has nothing of its own on the wire. */
    struct pg_batch *fly[3] = {st->cur, st->behind, st->rerun};
    int synced[3] = {st->cur_synced && !evtimer_pending(st->ev_retry, NULL),
                     1, 0};
    drop_conn(st);
    st->state = PG_DOWN;
    st->cur = st->behind = st->rerun = NULL;
    for (int i = 0; i < 3; i++) {
        struct pg_batch *b = fly[i];
        if (!b)
            continue;
        char d[160];
        if (synced[i] && b->writes) {
            snprintf(d, sizeof d, "%.80s; the change may or may not have been "
                     "applied (retry with an idempotency id)", st->why);
            pg_fail_list(st, &b->ops, STORE_EUNKNOWN, d);
        } else {
            pg_fail_list(st, &b->ops, STORE_EUNAVAIL, st->why);
        }
        pg_batch_free(b);
    }
    pg_fail_list(st, &st->queue, STORE_EUNAVAIL, st->why);
    if (!st->closing)
        schedule_reconnect(st);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg);

/* Watch the connection's socket (libpq may change it while connecting to
 * several hosts): always for reading when ready, for writing on demand. */
void pg_sock_watch(struct pg_store *st, int want_write)
{
    int fd = PQsocket(st->conn);
    if (fd != st->fd) {
        if (st->ev_read)
            event_free(st->ev_read);
        if (st->ev_write)
            event_free(st->ev_write);
        st->ev_read = event_new(st->evb, fd, EV_READ | EV_PERSIST, sock_cb, st);
        st->ev_write = event_new(st->evb, fd, EV_WRITE, sock_cb, st);
        st->fd = fd;
    }
    event_add(st->ev_read, NULL);
    if (want_write)
        event_add(st->ev_write, NULL);
    else
        event_del(st->ev_write);
}

static void setup_prepare(struct pg_store *st)
{
    if (!PQenterPipelineMode(st->conn)) {
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    for (int s = 0; s < PG_S_COUNT_ALL; s++) {
        if (!PQsendPrepare(st->conn, pg_sql_name[s], pg_sql_text[s], 0, NULL)) {
            pg_conn_lost(st, PQerrorMessage(st->conn));
            return;
        }
        pg_exp_push(st, EXP_PREPARE, (enum pg_stmt)s);
    }
    if (!PQpipelineSync(st->conn)) {
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    pg_exp_push(st, EXP_SYNC, 0);
    st->state = PG_PREPARING;
    pg_pump(st);
}

/* Results of the schema script (a simple query). */
static void setup_results(struct pg_store *st)
{
    while (!PQisBusy(st->conn)) {
        PGresult *r = PQgetResult(st->conn);
        if (!r) {
            if (st->schema_version > PG_SCHEMA_VERSION) {
                char d[120];
                snprintf(d, sizeof d, "schema version %lld is newer than this "
                         "tallyd's (%d): upgrade tallyd",
                         (long long)st->schema_version, PG_SCHEMA_VERSION);
                pg_conn_lost(st, d);
                return;
            }
            setup_prepare(st);
            return;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_FATAL_ERROR) {
            char d[160];
            snprintf(d, sizeof d, "creating the schema: %s",
                     PQresultErrorMessage(r));
            PQclear(r);
            while ((r = PQgetResult(st->conn)))
                PQclear(r);
            pg_conn_lost(st, d);
            return;
        }
        if (rs == PGRES_TUPLES_OK && PQnfields(r) == 1 && PQntuples(r) == 1 &&
            !strcmp(PQfname(r, 0), "max"))
            st->schema_version = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

static void connected(struct pg_store *st)
{
    if (PQsetnonblocking(st->conn, 1)) {
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    struct buf q = BUF_INIT;
    buf_printf(&q, "SET client_min_messages TO warning;"
               "SET synchronous_commit TO %s;"
               "SET application_name TO 'tallyd';%s",
               pg_sync_setting(st->sync_policy), pg_sql_schema);
    int ok = PQsendQuery(st->conn, q.p);
    buf_free(&q);
    if (!ok) {
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    st->schema_version = 0;
    st->state = PG_SETUP;
    pg_pump(st);
}

static void connect_poll(struct pg_store *st)
{
    switch (PQconnectPoll(st->conn)) {
    case PGRES_POLLING_READING:
        pg_sock_watch(st, 0);
        break;
    case PGRES_POLLING_WRITING:
        pg_sock_watch(st, 1);
        break;
    case PGRES_POLLING_OK:
        connected(st);
        break;
    default:
        pg_conn_lost(st, PQerrorMessage(st->conn));
        break;
    }
}

/* Operations queued while connecting waited long enough. */
static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state == PG_READY)
        return;
    /* Take them off the queue first: a done() that asks again at once
     * queues anew (and waits for a new timer), not onto this list. */
    struct pg_opq late = TAILQ_HEAD_INITIALIZER(late);
    TAILQ_CONCAT(&late, &st->queue, link);
    pg_fail_list(st, &late, STORE_EUNAVAIL,
                 st->why[0] ? st->why : "postgresql: connecting");
}

static void timeval_ms(struct timeval *tv, int ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

/* libpq's non-blocking connect applies no connect_timeout, so a host that
 * accepts and never answers would hold the connect (and, first in a host
 * list, the failover) for good: give up on it after hosts.timeout_ms, and
 * start the next attempt with the host after it (pg_hosts.c). */
static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state == PG_READY || st->state == PG_DOWN)
        return;
    char d[160];
    const char *host = st->conn ? PQhost(st->conn) : NULL;
    snprintf(d, sizeof d, "no answer from %.60s:%.8s within %d s while "
             "connecting", host && *host ? host : "the server",
             st->conn ? PQport(st->conn) : "", st->hosts.timeout_ms / 1000);
    pg_hosts_skip(&st->hosts, st->conn ? PQhost(st->conn) : NULL,
                  st->conn ? PQport(st->conn) : NULL);
    pg_conn_lost(st, d);
}

/* A batch in flight with no byte from the server for hosts.timeout_ms: the
 * server (or the path to it) went silent; TCP alone may take many minutes
 * to say so.  Drop the connection: its operations fail (EUNKNOWN for
 * changes whose COMMIT was sent) and a reconnect starts. */
static void stall_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state != PG_READY || !st->cur)
        return;
    char d[120];
    snprintf(d, sizeof d, "no answer from the server within %d s",
             st->hosts.timeout_ms / 1000);
    pg_conn_lost(st, d);
}

void pg_stall_arm(struct pg_store *st)
{
    struct timeval tv;
    timeval_ms(&tv, st->hosts.timeout_ms);
    evtimer_add(st->ev_stall, &tv);
}

void pg_stall_stop(struct pg_store *st)
{
    evtimer_del(st->ev_stall);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    struct timeval tv;
    timeval_ms(&tv, st->hosts.timeout_ms);
    evtimer_add(st->ev_connect, &tv);
    st->conn = pg_hosts_connect(&st->hosts);
    if (!st->conn || PQstatus(st->conn) == CONNECTION_BAD) {
        st->state = PG_CONNECTING; /* so that pg_conn_lost reschedules */
        pg_conn_lost(st, st->conn ? PQerrorMessage(st->conn) : "out of memory");
        return;
    }
    st->state = PG_CONNECTING;
    st->fd = -1;
    connect_poll(st);
}

/* Results of the pipeline, as far as they have come. */
static void pipeline_results(struct pg_store *st)
{
    while (st->conn && st->exp_n && !PQisBusy(st->conn)) {
        PGresult *r = PQgetResult(st->conn);
        size_t h = st->exp_head;
        if (!r) {
            if (!st->exp_got)
                break;
            pg_exp_pop(st);
            continue;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            /* After an error libpq may go straight to the Sync: the
             * statements before it were skipped. */
            while (st->exp_n && st->exp[st->exp_head].what != EXP_SYNC)
                pg_exp_pop(st);
            if (!st->exp_n) {
                pg_conn_lost(st, "pipeline out of step");
                return;
            }
            pg_exp_pop(st);
            if (st->state == PG_PREPARING) {
                st->state = PG_READY;
                st->why[0] = 0;
                evtimer_del(st->ev_wait); /* the flush below sends them */
                evtimer_del(st->ev_connect);
                st->backoff_ms = PG_BACKOFF_MIN_MS;
                fprintf(stderr, "tallyd: postgresql: connected to %s:%s\n",
                        PQhost(st->conn), PQport(st->conn));
                st->info_queued = 1;
                pg_enqueue_own(st, PG_INFO);
            } else {
                pg_on_sync(st);
            }
            continue;
        }
        if (st->exp_got) { /* the head's result, then this without a NULL */
            pg_exp_pop(st);
            h = st->exp_head;
        }
        st->exp_got = 1;
        if (st->exp[h].what == EXP_PREPARE) {
            if (rs == PGRES_FATAL_ERROR) {
                char d[160];
                snprintf(d, sizeof d, "preparing %s: %s",
                         pg_sql_name[st->exp[h].stmt], PQresultErrorMessage(r));
                PQclear(r);
                pg_conn_lost(st, d);
                return;
            }
        } else if (st->exp[h].what == EXP_STMT) {
            pg_on_stmt(st, st->exp[h].stmt, r);
        }
        PQclear(r);
    }
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    switch (st->state) {
    case PG_CONNECTING:
        connect_poll(st);
        return;
    case PG_DOWN:
        return;
    default:
        break;
    }
    if ((what & EV_WRITE) && pg_pump(st) < 0)
        return;
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(st->conn)) {
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    if (st->cur)
        pg_stall_arm(st); /* the server is answering: wait anew */
    if (st->state == PG_SETUP)
        setup_results(st);
    else
        pipeline_results(st);
    if (st->conn && PQstatus(st->conn) == CONNECTION_BAD)
        pg_conn_lost(st, PQerrorMessage(st->conn));
}

/* ---- store_ops ------------------------------------------------------------ */

static int pg_exec(struct store *s, const struct store_req *req,
                   struct store_res *res, store_done_fn done, void *arg)
{
    struct pg_store *st = (struct pg_store *)s;
    memset(res, 0, sizeof *res);
    res->now_ms = pg_wall_ms() + st->clock_off_ms;
    int multi = req->op == STORE_DEL || req->op == STORE_EXISTS ||
                req->op == STORE_MGET || req->op == STORE_MSET;
    if (req->op == STORE_SAVE || req->op == STORE_BGSAVE ||
        req->op >= STORE_OPK_COUNT) {
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "postgresql: snapshots are the database's (pg_dump, base backups)");
        return STORE_DONE;
    }
    if (req->once && (req->oncelen == 0 || req->oncelen > TALLY_ID_MAX)) {
        res->rc = STORE_EIDLEN;
        return STORE_DONE;
    }
    if (!multi && req->op != STORE_SCAN && req->op != STORE_COUNT &&
        req->op != STORE_FLUSH && req->klen > TALLY_KEY_MAX)
        res->rc = STORE_EKEYLEN;
    for (size_t i = 0; multi && i < req->nkeys; i++)
        if (req->klens[i] > TALLY_KEY_MAX)
            res->rc = STORE_EKEYLEN;
    if (res->rc)
        return STORE_DONE;
    if (!done) { /* the caller cannot wait, and every answer here waits */
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "postgresql: every operation waits for the database");
        return STORE_DONE;
    }
    if (req->batch)
        return pg_xact_exec(st, req, res, done, arg);
    return pg_submit(st, pg_op_new(req, done, arg), res);
}

int pg_submit(struct pg_store *st, struct pg_op *op, struct store_res *res)
{
    if (st->state != PG_READY && st->state != PG_DOWN) {
        /* A connect is under way (tallyd just started, or a reconnect):
         * wait for it a little rather than fail what would succeed. */
        if (!evtimer_pending(st->ev_wait, NULL)) {
            struct timeval tv = {PG_CONNECT_WAIT_MS / 1000,
                                 (PG_CONNECT_WAIT_MS % 1000) * 1000};
            evtimer_add(st->ev_wait, &tv);
        }
        enqueue(st, op);
        return STORE_PENDING;
    }
    if (st->state != PG_READY) {
        pg_op_free(op);
        res->rc = STORE_EUNAVAIL;
        snprintf(res->detail, sizeof res->detail, "%s",
                 st->why[0] ? st->why : "postgresql: connecting");
        return STORE_DONE;
    }
    enqueue(st, op);
    return STORE_PENDING;
}

static tally_ticket pg_durable(const struct store *s)
{
    return UINT64_MAX;
}

static int64_t pg_now_ms(const struct store *s)
{
    const struct pg_store *st = (const struct pg_store *)s;
    return pg_wall_ms() + st->clock_off_ms;
}

static int pg_ready(const struct store *s, char *why, size_t n)
{
    const struct pg_store *st = (const struct pg_store *)s;
    if (st->state == PG_READY)
        return 1;
    snprintf(why, n, "%s", st->why[0] ? st->why : "postgresql: connecting");
    return 0;
}

static size_t pg_info(const struct store *s, struct store_info_kv *kv,
                      size_t max)
{
    const struct pg_store *st = (const struct pg_store *)s;
    static const char *const states[] = {"down", "connecting", "connecting",
                                         "connecting", "ready"};
    size_t n = 0;
#define KV(nm, ...)                                                        \
    do {                                                                   \
        if (n < max) {                                                     \
            kv[n].name = nm;                                               \
            snprintf(kv[n].value, sizeof kv[n].value, __VA_ARGS__);        \
            n++;                                                           \
        }                                                                  \
    } while (0)
    int configured = st->standby_names[0] != 0;
    KV("store", "postgresql");
    KV("store_state", "%s", states[st->state]);
    if (st->state != PG_READY)
        KV("store_reason", "%.120s", st->why[0] ? st->why : "connecting");
    /* No ',' or '=': redis-py reads such an INFO value as a dict. */
    KV("store_durability", "synchronous_commit %s; %s",
       st->synchronous_commit[0] ? st->synchronous_commit
                                 : pg_sync_setting(st->sync_policy),
       !configured ? "no synchronous standby configured"
       : st->sync_attached ? "synchronous standby attached"
                           : "synchronous standby configured but NOT attached");
    KV("store_pg_synchronous_commit", "%s", st->synchronous_commit[0]
           ? st->synchronous_commit : pg_sync_setting(st->sync_policy));
    KV("store_pg_synchronous_standby_names", "%s", st->standby_names);
    KV("store_pg_sync_standby_configured", "%d", configured);
    KV("store_pg_sync_standbys_attached", "%lld", (long long)st->sync_attached);
    KV("store_pg_standbys", "%lld", (long long)st->standbys);
    if (st->conn && st->state == PG_READY)
        KV("store_pg_server", "%s:%s", PQhost(st->conn), PQport(st->conn));
    KV("store_pg_schema_version", "%lld", (long long)st->schema_version);
    KV("store_pg_transactions", "%llu", (unsigned long long)st->n_batches);
    KV("store_pg_transactions_behind", "%llu",
       (unsigned long long)st->n_behind);
    KV("store_pg_ops", "%llu", (unsigned long long)st->n_ops);
    KV("store_pg_retries", "%llu", (unsigned long long)st->n_retries);
    KV("store_pg_commit_us", "%lld", (long long)st->commit_us);
    KV("store_pg_unknown_outcomes", "%llu", (unsigned long long)st->n_unknown);
    KV("store_pg_purged", "%llu", (unsigned long long)st->n_purged);
    KV("store_pg_batch_commits", "%llu",
       (unsigned long long)st->n_xact_commits);
    KV("store_pg_batch_conflicts", "%llu",
       (unsigned long long)st->n_xact_conflicts);
    /* The cycle of a transaction, summed (pg_int.h struct pg_cycle): divide
     * by store_pg_transactions for the time of each step per commit. */
    KV("store_pg_time_gather_us", "%lld", (long long)st->cyc.gather);
    KV("store_pg_time_hold_us", "%lld", (long long)st->cyc.hold);
    KV("store_pg_time_commit_us", "%lld", (long long)st->cyc.commit);
    KV("store_pg_time_answer_us", "%lld", (long long)st->cyc.answer);
    KV("store_pg_time_turnaround_us", "%lld", (long long)st->cyc.turnaround);
    KV("store_pg_round_trips", "%llu", (unsigned long long)st->cyc.round_trips);
    KV("store_pg_idle_us", "%lld", (long long)st->idle_us);
#undef KV
    return n;
}

static void pg_close(struct store *s)
{
    struct pg_store *st = (struct pg_store *)s;
    st->closing = 1;
    if (st->state != PG_DOWN)
        pg_conn_lost(st, "store closed");
    drop_conn(st);
    event_free(st->ev_flush);
    event_free(st->ev_retry);
    event_free(st->ev_reconnect);
    event_free(st->ev_wait);
    event_free(st->ev_hold);
    event_free(st->ev_connect);
    event_free(st->ev_stall);
    pg_hosts_free(&st->hosts);
    event_free(st->ev_tick);
    for (size_t i = 0; i < sizeof st->arr / sizeof st->arr[0]; i++)
        buf_free(&st->arr[i]);
    free(st->uri);
    free(st);
}

/* store_ops.once_answer: the id's record read (locked, PG_S_IDS) in an
 * ordinary transaction of the queue; pg_batch.c's once_read answers. */
static int pg_once_answer(struct store *s, const struct store_req *req,
                          struct store_res *res, store_done_fn done,
                          void *arg)
{
    struct pg_store *st = (struct pg_store *)s;
    struct store_req r = {.op = STORE_EXISTS, .once = req->once,
                          .oncelen = req->oncelen,
                          .fingerprint = req->fingerprint};
    struct pg_op *op;

    store_res_init(res);
    if (!req->once || !req->oncelen || req->oncelen > TALLY_ID_MAX) {
        res->rc = STORE_EIDLEN;
        return STORE_DONE;
    }
    if (!done) {
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "postgresql: every operation waits for the database");
        return STORE_DONE;
    }
    op = pg_op_new(&r, done, arg);
    op->once_read = 1;
    return pg_submit(st, op, res);
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .exec = pg_exec,
    .batch_begin = pg_xact_begin, /* pg_xact.c */
    .batch_commit = pg_xact_commit,
    .batch_abort = pg_xact_abort,
    .batch_prefetch = pg_xact_prefetch,
    .durable = pg_durable,
    .now_ms = pg_now_ms,
    .ready = pg_ready,
    .info = pg_info,
    .close = pg_close,
    .once_answer = pg_once_answer,
    .batch_commit_once = pg_xact_commit_once,
};

int store_pg_open(struct event_base *base, const char *uri, int fsync_policy,
                  struct store **out, char *err, size_t errlen)
{
    return store_pg_open_opts(base, uri, fsync_policy, NULL, out, err, errlen);
}

int store_pg_open_opts(struct event_base *base, const char *uri,
                       int fsync_policy, const struct store_pg_opts *o,
                       struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    struct pg_hosts hosts;
    if (pg_hosts_parse(&hosts, uri, err, errlen) < 0)
        return -1;
    struct pg_store *st = xcalloc(1, sizeof *st);
    st->hosts = hosts;
    st->base.ops = &pg_ops;
    st->evb = base;
    st->uri = xstrdup(uri);
    st->sync_policy = fsync_policy;
    st->once_ttl_ms = o && o->once_ttl_ms ? o->once_ttl_ms
                                          : TALLY_ONCE_TTL_DEFAULT;
    if (o) {
        st->expired = o->expired;
        st->expired_ctx = o->expired_ctx;
        st->behind_mode = o->behind;
    }
    st->fd = -1;
    st->backoff_ms = PG_BACKOFF_MIN_MS;
    TAILQ_INIT(&st->queue);
    st->ev_flush = event_new(base, -1, 0, pg_flush_cb, st);
    st->ev_retry = evtimer_new(base, pg_retry_cb, st);
    st->ev_reconnect = evtimer_new(base, reconnect_cb, st);
    st->ev_wait = evtimer_new(base, wait_cb, st);
    st->ev_hold = evtimer_new(base, pg_hold_cb, st);
    st->ev_connect = evtimer_new(base, connect_timeout_cb, st);
    st->ev_stall = evtimer_new(base, stall_cb, st);
    st->ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, st);
    struct timeval tv = {PG_TICK_MS / 1000, (PG_TICK_MS % 1000) * 1000};
    event_add(st->ev_tick, &tv);
    set_why(st, "connecting");
    st->state = PG_CONNECTING;
    reconnect_cb(-1, 0, st);
    *out = &st->base;
    return 0;
}
