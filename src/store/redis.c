/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis.c - the Redis store's connection and the lives of its operations
 * (redis.h).  One connection on the caller's libevent loop; every
 * operation is one command (redis_ops.c), composite ones one Lua script
 * (redis_lua.c), so each is atomic on the server with any number of
 * tallyd instances sharing it.
 *
 * Client.  Debian 12's hiredis is 0.14: its async context cannot do TLS
 * (that came with 1.0's SSL context) and owns its socket and event
 * handling.  So the transport is libevent's bufferevent (the loop tallyd
 * already runs; bufferevent_openssl carries rediss://, redis_tls.c)
 * and only hiredis's well-kept pure reply reader (redisReader) is used;
 * commands are written as its formatter writes them (redis_format).
 *
 * Pipelining.  store_exec() formats the command and queues it; a flush
 * event on the next loop pass writes everything queued in one write, and
 * with --store-wait-replicas N a WAIT after the batch's writes, whose
 * answers are held until WAIT says how many replicas have them.
 *
 * Faults.  Until the handshake is done, operations wait (two seconds at
 * most); a store that is down answers STORE_EUNAVAIL at once.  A server
 * reading its AOF or RDB answers -LOADING (nothing ran): the handshake is
 * sent again, and a refused command re-sent, with backoff (25 ms doubling
 * to 800 ms), and operations wait for it, at most LOADING_WAIT_MS.  A
 * connection lost with commands on the wire fails those that may write
 * with STORE_EUNKNOWN, never success, and reconnects with backoff (100 ms
 * doubling to 5 s).  A NOSCRIPT answer (a SCRIPT FLUSH, a failover to a
 * server without the scripts) loads the scripts again and re-sends.  The
 * store is `ordered` (store.h): a NOSCRIPT or LOADING retry is not made
 * when an op of the same caller (store_req.order) is on the wire behind
 * it, since it would apply after that one; it answers STORE_EUNAVAIL, and
 * the caller's new ops wait behind one in a LOADING backoff.
 *
 * Batches (MULTI/EXEC, scripts, RENAME/COPY, /v1/batch): an operation of
 * one goes to redis_xact.c, whose reads and commit script come back here
 * as ordinary operations.
 *
 * Nodes.  redis_cluster.c runs one of these connections per master
 * (redis_node_open).  Such a node hands back to its cluster what it cannot
 * answer itself: commands refused by MOVED, ASK, TRYAGAIN, LOADING or
 * CLUSTERDOWN (nothing ran), and, when its connection goes, those it had
 * not sent and reads; a write on the wire still answers STORE_EUNKNOWN.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "redis.h"
#include "redis_int.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_WAIT_MS 2000  /* how long ops wait for a connect under way */
#define RECHECK_MS 2000       /* how often the durability facts are read */
#define REPLY_WAIT_MS 3000    /* a server silent this long with commands on
                                 the wire is treated as lost */
#define LOADING_WAIT_MS 10000 /* how long ops wait for a server loading its
                                 data (-LOADING) */
#define LOADING_RETRY_MIN_MS 25
#define LOADING_RETRY_MAX_MS 800

enum rstate { RS_DOWN = 0, RS_CONNECTING, RS_SETUP, RS_READY };

struct redis_store {
    struct store base;
    struct event_base *evb;
    struct redis_keys keys;
    char *prefix;
    char *host, *user, *pass;
    int port, db;
    int tls;                  /* rediss:// */
    SSL_CTX *tls_ctx;
    int own_ctx;              /* tls_ctx is ours to free (not a node's) */
    SSL *ssl;                 /* the connection's, owned by bev */
    int sync_policy;
    int wait_replicas, wait_timeout_ms;
    uint64_t once_ttl_ms;
    char sha[REDIS_S_COUNT_ALL][41];
    enum rstate state;
    struct bufferevent *bev;
    redisReader *reader;
    struct event *ev_flush, *ev_reconnect, *ev_wait, *ev_silent;
    struct event *ev_recheck;  /* CONFIG GET again while serving */
    int flush_armed;
    int need_load;            /* a NOSCRIPT came: SCRIPT LOAD first */
    struct redis_opq retry;   /* to send again first (NOSCRIPT), in order */
    struct redis_opq pending; /* not sent yet */
    struct redis_opq wire;    /* sent, reply not read, in order */
    struct redis_opq held;    /* answered, waiting for their WAIT */
    struct redis_opq later;   /* refused with LOADING: sent again by
                                 ev_loading */
    struct event *ev_loading; /* the handshake, or later, again */
    int64_t loading_since;    /* Unix ms of the handshake's first LOADING
                                 on this connection; 0: none */
    int loading_ms;           /* ev_loading's backoff */
    int setup_loading;        /* this handshake met LOADING */
    int setup_left;           /* handshake replies still to come */
    int backoff_ms;
    int64_t clock_off_ms;     /* Redis's clock minus ours */
    char why[200];            /* ready() when not serving */
    char last_refusal[200];   /* the last connect failure logged */
    /* durability facts, read at connect */
    char appendonly[16], appendfsync[16], version[32];
    int waitaof;              /* the server has WAITAOF (7.2+) */
    int waitaof_local;        /* numlocal of the WAITAOFs sent: 1, or 0
                                 when the server has no AOF (7.2 refuses
                                 1 then) */
    uint64_t n_ops, n_unknown, n_reconnects;
    uint64_t n_flushes;       /* loop passes that sent operations: one
                                 write each (INFO store_redis_flushes) */
    struct redis_xact_env xenv; /* its batches' (redis_xact.c) */
    /* A node of a cluster (redis_cluster.c): its hooks, or NULL. */
    void (*back)(void *parent, struct redis_store *node, struct redis_op *op,
                 const struct redisReply *r);
    void (*node_state)(void *parent, struct redis_store *node, int up);
    void *parent;
    struct redis_notify *notify; /* "expired" events, or NULL */
};

static struct redis_store *self(const struct store *st)
{
    return (struct redis_store *)(void *)st;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void op_finish(struct redis_store *rs, struct redis_op *op)
{
    if (op->kind == R_USER && op->done) {
        if (op->res.now_ms)
            rs->clock_off_ms = op->res.now_ms - wall_ms();
        op->done(op->arg, &op->res);
    } else if (op->kind == R_RAW && op->raw) {
        op->raw(op->arg, NULL);
    }
    redis_op_free(op);
}

static void after_barrier(void *ctx, void *arg)
{
    op_finish(ctx, arg);
}

/* Fail every op of q with rc, those that may have written (sent ones,
 * and a FLUSH with pages done) with STORE_EUNKNOWN. */
static void fail_list(struct redis_store *rs, struct redis_opq *q, int sent,
                      const char *why)
{
    struct redis_op *op;

    while ((op = TAILQ_FIRST(q))) {
        TAILQ_REMOVE(q, op, link);
        if (rs->back && op->kind == R_USER && !op->pages &&
            !(sent && op->writes)) {
            /* Nothing ran, or only a read: the cluster sends it again (not
             * a COUNT or FLUSH halfway through this node's pages). */
            rs->back(rs->parent, rs, op, NULL);
            continue;
        }
        store_res_init(&op->res);
        op->res.rc = (sent || op->pages) && op->writes ? STORE_EUNKNOWN
                                                       : STORE_EUNAVAIL;
        if (op->res.rc == STORE_EUNKNOWN)
            rs->n_unknown++;
        snprintf(op->res.detail, sizeof op->res.detail, "redis: %s", why);
        op_finish(rs, op);
    }
}

static void sched_flush(struct redis_store *rs)
{
    if (!rs->flush_armed && rs->state == RS_READY) {
        rs->flush_armed = 1;
        event_active(rs->ev_flush, EV_TIMEOUT, 0);
    }
}

/* ---- Connection -------------------------------------------------------- */

static void connect_start(struct redis_store *rs);

static void conn_lost(struct redis_store *rs, const char *why)
{
    if (rs->bev) {
        bufferevent_free(rs->bev);
        rs->bev = NULL;
    }
    if (rs->state == RS_READY)
        fprintf(stderr, "tallyd: redis: %s; reconnecting\n", why);
    snprintf(rs->why, sizeof rs->why, "redis store %s:%d: %s", rs->host,
             rs->port, why);
    rs->state = RS_DOWN;
    redisReaderFree(rs->reader);
    rs->reader = redisReaderCreate();
    event_del(rs->ev_wait);
    event_del(rs->ev_silent);
    event_del(rs->ev_recheck);
    event_del(rs->ev_loading);
    rs->loading_since = 0;
    rs->loading_ms = LOADING_RETRY_MIN_MS;
    fail_list(rs, &rs->held, 1, why);
    fail_list(rs, &rs->wire, 1, why);
    fail_list(rs, &rs->later, 0, why);
    fail_list(rs, &rs->retry, 0, why);
    fail_list(rs, &rs->pending, 0, why);
    if (rs->node_state)
        rs->node_state(rs->parent, rs, 0);
    {
        struct timeval tv = {rs->backoff_ms / 1000,
                             (rs->backoff_ms % 1000) * 1000};
        event_add(rs->ev_reconnect, &tv);
    }
    rs->backoff_ms = rs->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : rs->backoff_ms * 2;
    rs->n_reconnects++;
}

/* (Re)arm the silence timer: REPLY_WAIT_MS from the last progress. */
static void watch_silence(struct redis_store *rs)
{
    struct timeval tv = {REPLY_WAIT_MS / 1000, (REPLY_WAIT_MS % 1000) * 1000};

    if (TAILQ_EMPTY(&rs->wire))
        event_del(rs->ev_silent);
    else
        event_add(rs->ev_silent, &tv);
}

static void send_op(struct redis_store *rs, struct redis_op *op)
{
    int first = TAILQ_EMPTY(&rs->wire);

    bufferevent_write(rs->bev, op->cmd, op->cmdlen);
    TAILQ_INSERT_TAIL(&rs->wire, op, link);
    if (first)
        watch_silence(rs);
}

static struct redis_op *own_op(enum redis_kind kind, int argc,
                               const char **argv, const size_t *lens)
{
    struct redis_op *op = xcalloc(1, sizeof *op);

    op->kind = kind;
    op->script = REDIS_S_NONE;
    op->cmdlen = redis_format(&op->cmd, argc, argv, lens);
    return op;
}

static void send_own(struct redis_store *rs, enum redis_kind kind, int argc,
                     const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    send_op(rs, own_op(kind, argc, argv, lens));
    rs->setup_left += rs->state != RS_READY && kind != R_WAIT &&
                      kind != R_WAITAOF;
}

static void send_loads(struct redis_store *rs)
{
    for (int s = 0; s < REDIS_S_COUNT_ALL; s++) {
        const char *v[3] = {"SCRIPT", "LOAD", redis_lua_text[s]};
        send_own(rs, R_LOAD, 3, v);
    }
}

/* The handshake, pipelined in one write: AUTH, SELECT, what the server
 * promises, the scripts. */
static void send_setup(struct redis_store *rs)
{
    char db[16];

    rs->setup_left = 0;
    rs->setup_loading = 0;
    if (rs->pass) {
        const char *v[3] = {"AUTH", rs->user ? rs->user : rs->pass,
                            rs->pass};
        send_own(rs, R_AUTH, rs->user ? 3 : 2, v);
    }
    if (rs->db) {
        const char *v[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%d", rs->db);
        send_own(rs, R_SELECT, 2, v);
    }
    {
        const char *a[3] = {"CONFIG", "GET", "appendonly"};
        const char *f[3] = {"CONFIG", "GET", "appendfsync"};
        const char *i[2] = {"INFO", "server"};
        send_own(rs, R_CFG, 3, a);
        send_own(rs, R_CFG, 3, f);
        send_own(rs, R_INFO, 2, i);
    }
    send_loads(rs);
    rs->state = RS_SETUP;
}

/* Whether the server can give what --fsync asked; if not, why. */
static int durable_enough(const struct redis_store *rs, char *why, size_t n)
{
    if (rs->sync_policy != TALLY_SYNC_ALWAYS)
        return 1;
    if (!strcmp(rs->appendonly, "yes") && !strcmp(rs->appendfsync, "always"))
        return 1;
    snprintf(why, n, "--fsync always asked but the redis store has "
             "appendonly %s appendfsync %s: acknowledged changes may be lost",
             rs->appendonly, rs->appendfsync);
    return 0;
}

static void setup_done(struct redis_store *rs)
{
    struct timeval tick = {RECHECK_MS / 1000, (RECHECK_MS % 1000) * 1000};
    char why[200];

    rs->state = RS_READY;
    rs->backoff_ms = BACKOFF_MIN_MS;
    rs->loading_since = 0;
    rs->loading_ms = LOADING_RETRY_MIN_MS;
    rs->why[0] = 0;
    event_del(rs->ev_wait);
    event_add(rs->ev_recheck, &tick);
    fprintf(stderr, "tallyd: redis: connected to %s:%d (redis %s, "
            "appendonly %s, appendfsync %s)\n", rs->host, rs->port,
            rs->version, rs->appendonly, rs->appendfsync);
    if (!durable_enough(rs, why, sizeof why))
        fprintf(stderr, "tallyd: warning: %s; /readyz reports it (set "
                "appendonly yes and appendfsync always on the server, or "
                "run with --fsync everysec)\n", why);
    sched_flush(rs);
    if (rs->node_state)
        rs->node_state(rs->parent, rs, 1);
}

/* What the server promises may change while it serves (CONFIG SET). */
static void recheck_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_store *rs = arg;
    const char *a[3] = {"CONFIG", "GET", "appendonly"};
    const char *f[3] = {"CONFIG", "GET", "appendfsync"};

    (void)fd;
    (void)what;
    if (rs->state != RS_READY)
        return;
    send_own(rs, R_CFG, 3, a);
    send_own(rs, R_CFG, 3, f);
}

/* ev_loading again after its backoff, which doubles. */
static void loading_later(struct redis_store *rs)
{
    struct timeval tv = {rs->loading_ms / 1000,
                         (rs->loading_ms % 1000) * 1000};

    if (evtimer_pending(rs->ev_loading, NULL))
        return;
    evtimer_add(rs->ev_loading, &tv);
    rs->loading_ms = rs->loading_ms * 2 > LOADING_RETRY_MAX_MS
                         ? LOADING_RETRY_MAX_MS : rs->loading_ms * 2;
}

/* 1 once a server has been loading for longer than ops wait for it: they
 * answer STORE_EUNAVAIL at once, as with a server that is down. */
static int loading_too_long(const struct redis_store *rs)
{
    return rs->loading_since &&
           wall_ms() - rs->loading_since >= LOADING_WAIT_MS;
}

/* The handshake met LOADING: the first time on this connection it is
 * logged, and what waits for the connection waits LOADING_WAIT_MS. */
static void loading_seen(struct redis_store *rs)
{
    struct timeval tv = {LOADING_WAIT_MS / 1000,
                         (LOADING_WAIT_MS % 1000) * 1000};

    rs->setup_loading = 1;
    if (rs->loading_since)
        return;
    rs->loading_since = wall_ms();
    fprintf(stderr, "tallyd: redis: %s:%d is loading its data (LOADING); "
            "requests wait for it, at most %d s\n", rs->host, rs->port,
            LOADING_WAIT_MS / 1000);
    snprintf(rs->why, sizeof rs->why, "redis store %s:%d: loading its data "
             "(LOADING)", rs->host, rs->port);
    event_del(rs->ev_wait);
    event_add(rs->ev_wait, &tv);
}

/* A handshake reply: 0, or -1 with the connection dropped. */
static int on_setup(struct redis_store *rs, struct redis_op *op,
                    const redisReply *r)
{
    char why[160];

    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LOADING", 7)) {
        /* Nothing ran: the whole handshake again once this one is in
         * (a SCRIPT LOAD after a NOSCRIPT: the command's own retry). */
        if (rs->state == RS_SETUP) {
            loading_seen(rs);
            if (--rs->setup_left == 0)
                loading_later(rs);
        }
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR &&
        (op->kind == R_AUTH || op->kind == R_SELECT || op->kind == R_LOAD)) {
        snprintf(why, sizeof why, "%s refused: %.100s",
                 op->kind == R_AUTH ? "AUTH" : op->kind == R_SELECT ?
                 "SELECT" : "SCRIPT LOAD", r->str);
        if (!rs->why[0] || rs->state != RS_READY)
            fprintf(stderr, "tallyd: redis: %s\n", why);
        conn_lost(rs, why);
        return -1;
    }
    if (op->kind == R_CFG && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2) {
        const redisReply *k = r->element[0], *v = r->element[1];
        char *dst = !strcmp(k->str, "appendonly") ? rs->appendonly
                                                  : rs->appendfsync;
        if (rs->state == RS_READY && strcmp(dst, v->str)) {
            fprintf(stderr, "tallyd: redis: %s is now %s (was %s)\n",
                    k->str, v->str, dst);
            snprintf(dst, sizeof rs->appendonly, "%s", v->str);
            if (!durable_enough(rs, why, sizeof why))
                fprintf(stderr, "tallyd: warning: %s\n", why);
        }
        snprintf(dst, sizeof rs->appendonly, "%s", v->str);
    }
    if (op->kind == R_INFO && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "redis_version:");
        int maj = 0, min = 0;
        if (p && sscanf(p + 14, "%31[0-9.]", rs->version) == 1 &&
            sscanf(rs->version, "%d.%d", &maj, &min) == 2)
            rs->waitaof = maj > 7 || (maj == 7 && min >= 2);
    }
    /* Loads after a NOSCRIPT come while serving: no handshake to end. */
    if (rs->state == RS_SETUP && --rs->setup_left == 0) {
        if (rs->setup_loading)
            loading_later(rs);
        else
            setup_done(rs);
    }
    return 0;
}

/* WAIT's (or WAITAOF's) answer releases the batch's held answers; too few
 * replicas make them STORE_EUNKNOWN: applied here, maybe lost with it.  A
 * replayed id too: its first answer was refused for the same reason, and
 * the change it shows may still be on this node alone. */
static void on_wait(struct redis_store *rs, struct redis_op *op,
                    const redisReply *r)
{
    struct redis_op *h;
    long long got = -1;

    if (r->type == REDIS_REPLY_INTEGER)
        got = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_INTEGER &&
             r->element[1]->type == REDIS_REPLY_INTEGER)
        /* [numlocal, numreplicas]: this node's own AOF not fsynced in
         * time is too few fsyncs as well. */
        got = r->element[0]->integer < rs->waitaof_local
                  ? -1 : r->element[1]->integer;
    if (op->kind == R_WAIT && rs->waitaof)
        return; /* the WAITAOF after it decides */
    while ((h = TAILQ_FIRST(&rs->held))) {
        TAILQ_REMOVE(&rs->held, h, link);
        if (got < rs->wait_replicas && h->res.rc >= 0) {
            int64_t v = h->res.value;
            store_res_init(&h->res);
            h->res.value = v;
            h->res.rc = STORE_EUNKNOWN;
            rs->n_unknown++;
            snprintf(h->res.detail, sizeof h->res.detail, "redis: applied "
                     "but %lld of %d replicas acknowledged it in time",
                     got < 0 ? 0 : got, rs->wait_replicas);
        }
        op_finish(rs, h);
    }
}

/* 1 if an op of op's caller (store_req.order) is on the wire behind it:
 * sending op again would reorder the two.  Only after NOSCRIPT or LOADING,
 * never on the request path. */
static int order_behind(const struct redis_store *rs,
                        const struct redis_op *op)
{
    const struct redis_op *o;

    if (!op->order)
        return 0;
    TAILQ_FOREACH(o, &rs->wire, link)
        if (o->order == op->order)
            return 1;
    return 0;
}

/* 1 if an op of this caller waits out a LOADING backoff: a new one goes
 * behind it, not past it. */
static int order_later(const struct redis_store *rs, uint64_t order)
{
    const struct redis_op *o;

    if (!order)
        return 0;
    TAILQ_FOREACH(o, &rs->later, link)
        if (o->order == order)
            return 1;
    return 0;
}

static void on_reply(struct redis_store *rs, const redisReply *r)
{
    struct redis_op *op = TAILQ_FIRST(&rs->wire);

    if (!op)
        return;
    TAILQ_REMOVE(&rs->wire, op, link);
    if (op->kind == R_WAIT || op->kind == R_WAITAOF) {
        on_wait(rs, op, r);
        redis_op_free(op);
        return;
    }
    if (op->kind == R_RAW || op->kind == R_ASKING) {
        if (op->raw)
            op->raw(op->arg, r);
        redis_op_free(op);
        return;
    }
    if (op->kind != R_USER) {
        if (on_setup(rs, op, r) == 0)
            redis_op_free(op);
        else
            redis_op_free(op);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && (!strncmp(r->str, "NOSCRIPT", 8) ||
        (!rs->back && !strncmp(r->str, "LOADING", 7))) &&
        order_behind(rs, op)) {
        /* Nothing ran, but sent again it would apply after a later call of
         * its caller's pipeline that has gone already (store.h, ordered):
         * refused, as a server refuses a command it cannot run now.  The
         * scripts are loaded again all the same, for what comes next. */
        if (!strncmp(r->str, "NOSCRIPT", 8))
            rs->need_load = 1; /* before the next flush's commands */
        store_res_init(&op->res);
        op->res.rc = STORE_EUNAVAIL;
        snprintf(op->res.detail, sizeof op->res.detail, "redis answered "
                 "%.*s and the command pipelined behind it has run; "
                 "nothing of this one did", (int)strcspn(r->str, " "),
                 r->str);
        op_finish(rs, op);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
        /* Nothing ran: load the scripts and send it again. */
        rs->need_load = 1;
        TAILQ_INSERT_TAIL(&rs->retry, op, link);
        sched_flush(rs);
        return;
    }
    if (!rs->back && r->type == REDIS_REPLY_ERROR &&
        !strncmp(r->str, "LOADING", 7)) {
        /* Refused before it ran (a replica resyncing, DEBUG RELOAD): sent
         * again with backoff, for LOADING_WAIT_MS at most. */
        int64_t now = wall_ms();
        if (!op->deadline)
            op->deadline = now + LOADING_WAIT_MS;
        if (now < op->deadline) {
            TAILQ_INSERT_TAIL(&rs->later, op, link);
            loading_later(rs);
            return;
        }
        store_res_init(&op->res);
        op->res.rc = STORE_EUNAVAIL;
        snprintf(op->res.detail, sizeof op->res.detail, "redis: still "
                 "loading its data after %d s", LOADING_WAIT_MS / 1000);
        op_finish(rs, op);
        return;
    }
    if (rs->back && r->type == REDIS_REPLY_ERROR && !op->pages &&
        (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4) ||
         !strncmp(r->str, "TRYAGAIN", 8) || !strncmp(r->str, "LOADING", 7) ||
         !strncmp(r->str, "CLUSTERDOWN", 11))) {
        /* Refused before it ran: the cluster sends it where it belongs. */
        rs->back(rs->parent, rs, op, r);
        return;
    }
    redis_op_answer(&rs->keys, op, r);
    rs->n_ops++;
    if (redis_op_next(&rs->keys, rs->sha, op)) {
        /* COUNT, FLUSH: the next SCAN page, behind what waits already. */
        TAILQ_INSERT_TAIL(&rs->pending, op, link);
        sched_flush(rs);
        return;
    }
    if (op->held && (op->script != REDIS_S_ONCE || op->res.rc == STORE_OK)) {
        TAILQ_INSERT_TAIL(&rs->held, op, link);
        return;
    }
    /* Statistics (STORE_F_ONCE): answered once the expiries Redis
     * published before this count have been reported (redis_notify.c). */
    if (op->page_mode == 3 && op->res.rc == STORE_OK &&
        redis_notify_barrier(rs->notify, after_barrier, rs, op) == 0)
        return;
    op_finish(rs, op);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct redis_store *rs = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    void *reply;
    int progress = 0;

    if (redis_feed(rs->reader, in) < 0) {
        conn_lost(rs, "protocol error");
        return;
    }
    for (;;) {
        reply = NULL;
        if (redisReaderGetReply(rs->reader, &reply) != REDIS_OK) {
            conn_lost(rs, "protocol error");
            return;
        }
        if (!reply)
            break;
        on_reply(rs, reply);
        freeReplyObject(reply);
        if (rs->state == RS_DOWN)
            return; /* the reply dropped the connection */
        progress = 1;
    }
    if (progress)
        watch_silence(rs);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct redis_store *rs = arg;
    char why[200];

    if (what & BEV_EVENT_CONNECTED) {
        /* Pipelined writes must not wait for the previous one's ACK
         * (Nagle): hiredis and Redis itself set this too. */
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        send_setup(rs);
        return;
    }
    if (rs->tls && rs->state == RS_CONNECTING)
        /* The handshake failed: say why (a certificate refused above all). */
        redis_tls_why(rs->ssl, bufferevent_get_openssl_error(bev), why,
                      sizeof why);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "connection closed by the server");
    else
        snprintf(why, sizeof why, "%s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    if (rs->state != RS_READY && (rs->n_reconnects < 1 ||
                                  strcmp(why, rs->last_refusal))) {
        fprintf(stderr, "tallyd: redis: cannot connect to %s:%d: %s\n",
                rs->host, rs->port, why);
        snprintf(rs->last_refusal, sizeof rs->last_refusal, "%s", why);
    }
    conn_lost(rs, why);
}

static void connect_start(struct redis_store *rs)
{
    struct timeval wait = {CONNECT_WAIT_MS / 1000,
                           (CONNECT_WAIT_MS % 1000) * 1000};

    rs->ssl = NULL;
    if (rs->tls) {
        rs->ssl = redis_tls_ssl(rs->tls_ctx, rs->host);
        rs->bev = rs->ssl ? bufferevent_openssl_socket_new(
                                rs->evb, -1, rs->ssl,
                                BUFFEREVENT_SSL_CONNECTING,
                                BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (rs->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(rs->bev, 1);
        else if (rs->ssl)
            SSL_free(rs->ssl);
    } else {
        rs->bev = bufferevent_socket_new(rs->evb, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!rs->bev) {
        conn_lost(rs, "cannot make a socket");
        return;
    }
    bufferevent_setcb(rs->bev, read_cb, NULL, event_cb, rs);
    bufferevent_enable(rs->bev, EV_READ | EV_WRITE);
    rs->state = RS_CONNECTING;
    event_add(rs->ev_wait, &wait);
    /* A NULL dns base: the name is resolved at once (getaddrinfo). */
    if (bufferevent_socket_connect_hostname(rs->bev, NULL, AF_UNSPEC,
                                            rs->host, rs->port) < 0)
        conn_lost(rs, "cannot resolve the host");
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_start(arg);
}

/* Backoff over after LOADING: the handshake again, or the refused ops. */
static void loading_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_store *rs = arg;

    (void)fd;
    (void)what;
    if (rs->state == RS_SETUP) {
        send_setup(rs);
        return;
    }
    TAILQ_CONCAT(&rs->retry, &rs->later, link);
    sched_flush(rs);
}

static void silent_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_lost(arg, "no reply within 3 s");
}

/* The connect took too long: what waits for it gives up. */
static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_store *rs = arg;

    (void)fd;
    (void)what;
    fail_list(rs, &rs->pending, 0, rs->loading_since
              ? "still loading its data (LOADING)" : "not connected yet");
}

/* One loop pass's operations in one write, WAIT after the writes. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis_store *rs = arg;
    struct redis_op *op;
    int writes = 0;

    (void)fd;
    (void)what;
    rs->flush_armed = 0;
    TAILQ_CONCAT(&rs->retry, &rs->pending, link);
    TAILQ_CONCAT(&rs->pending, &rs->retry, link);
    if (rs->state != RS_READY || TAILQ_EMPTY(&rs->pending))
        return;
    if (rs->need_load) {
        rs->need_load = 0;
        send_loads(rs);
    }
    rs->n_flushes++;
    while ((op = TAILQ_FIRST(&rs->pending))) {
        TAILQ_REMOVE(&rs->pending, op, link);
        /* A batch id's record read (REDIS_S_ONCE) is held too: a replay
         * shows a change that may still be on this node alone. */
        op->held = rs->wait_replicas > 0 &&
                   (op->writes || op->script == REDIS_S_ONCE);
        writes |= op->held;
        if (op->asking) {
            const char *v[1] = {"ASKING"};
            send_own(rs, R_ASKING, 1, v);
        }
        send_op(rs, op);
    }
    if (writes) {
        char n[16], t[16];
        const char *w[3] = {"WAIT", n, t};
        snprintf(n, sizeof n, "%d", rs->wait_replicas);
        snprintf(t, sizeof t, "%d", rs->wait_timeout_ms);
        send_own(rs, R_WAIT, 3, w);
        if (rs->waitaof) {
            /* WAITAOF numlocal numreplicas timeout; numlocal 1 is refused
             * by a server without AOF, whose durability says "none". */
            const char *v[4] = {"WAITAOF", NULL, n, t};
            rs->waitaof_local = !strcmp(rs->appendonly, "yes");
            v[1] = rs->waitaof_local ? "1" : "0";
            send_own(rs, R_WAITAOF, 4, v);
        }
    }
}

/* ---- store_ops ---------------------------------------------------------- */

static int r_exec(struct store *st, const struct store_req *req,
                  struct store_res *res, store_done_fn done, void *arg)
{
    struct redis_store *rs = self(st);
    struct redis_op *op;
    int rc;

    store_res_init(res);
    if (req->op == STORE_SAVE || req->op == STORE_BGSAVE) {
        res->rc = STORE_EUNSUPPORTED;
        return STORE_DONE;
    }
    if (!done) {
        res->rc = STORE_EUNSUPPORTED;
        return STORE_DONE;
    }
    if (req->batch)
        return redis_xact_exec(req, res, done, arg);
    if (rs->state == RS_DOWN || loading_too_long(rs)) {
        res->rc = STORE_EUNAVAIL;
        snprintf(res->detail, sizeof res->detail, "%.150s", rs->why);
        return STORE_DONE;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = R_USER;
    if ((rc = redis_op_format(&rs->keys, rs->sha, rs->once_ttl_ms, req,
                              op)) != STORE_OK) {
        redis_op_free(op);
        res->rc = rc;
        return STORE_DONE;
    }
    op->done = done;
    op->arg = arg;
    op->order = req->order;
    if (!TAILQ_EMPTY(&rs->later) && order_later(rs, op->order)) {
        TAILQ_INSERT_TAIL(&rs->later, op, link);
        return STORE_PENDING;
    }
    TAILQ_INSERT_TAIL(&rs->pending, op, link);
    sched_flush(rs);
    return STORE_PENDING;
}

/* A batch's commit (redis_xact.c) into the next write. */
static int r_send(struct store *st, struct redis_op *op, struct store_res *res)
{
    struct redis_store *rs = self(st);

    if (rs->state == RS_DOWN || loading_too_long(rs)) {
        res->rc = STORE_EUNAVAIL;
        snprintf(res->detail, sizeof res->detail, "%.150s", rs->why);
        return -1;
    }
    TAILQ_INSERT_TAIL(&rs->pending, op, link);
    sched_flush(rs);
    return 0;
}

static int r_batch_begin(struct store *st, unsigned attempt,
                         struct store_batch **out)
{
    return redis_xact_begin(&self(st)->xenv, attempt, out);
}

static tally_ticket r_durable(const struct store *st)
{
    (void)st;
    return UINT64_MAX;
}

static int64_t r_now_ms(const struct store *st)
{
    return wall_ms() + self(st)->clock_off_ms;
}

static int r_ready(const struct store *st, char *why, size_t n)
{
    const struct redis_store *rs = self(st);

    if (rs->state != RS_READY) {
        snprintf(why, n, "%s", rs->why[0] ? rs->why : "redis store: "
                 "connecting");
        return 0;
    }
    return durable_enough(rs, why, n);
}

/* What a committed change survives on this server, in words. */
static const char *promise(const struct redis_store *rs)
{
    if (!rs->appendonly[0] || !strcmp(rs->appendonly, "unknown"))
        return "unknown (CONFIG GET refused)";
    if (strcmp(rs->appendonly, "yes"))
        return "none: no AOF; lost on a redis restart since the last RDB";
    if (!strcmp(rs->appendfsync, "always"))
        return "fsync: AOF fsynced before each answer";
    if (!strcmp(rs->appendfsync, "everysec"))
        return "survives a redis crash; about 1 s lost on power loss";
    return "survives a redis crash; power loss loses what the OS had";
}

static size_t r_info(const struct store *st, struct store_info_kv *kv,
                     size_t max)
{
    const struct redis_store *rs = self(st);
    size_t n = 0;

#define KV(k, ...)                                                          \
    do {                                                                    \
        if (n < max) {                                                      \
            kv[n].name = k;                                                 \
            snprintf(kv[n].value, sizeof kv[n].value, __VA_ARGS__);         \
            n++;                                                            \
        }                                                                   \
    } while (0)
    KV("store", "redis");
    KV("store_durability", "%s", promise(rs));
    KV("store_redis_version", "%s", rs->version[0] ? rs->version : "unknown");
    KV("store_redis_appendonly", "%s", rs->appendonly[0] ? rs->appendonly
                                                         : "unknown");
    KV("store_redis_appendfsync", "%s", rs->appendfsync[0] ? rs->appendfsync
                                                           : "unknown");
    KV("store_wait_replicas", "%d", rs->wait_replicas);
    KV("store_waitaof", "%s", rs->waitaof ? "yes" : "no");
    KV("store_connected", "%s", rs->state == RS_READY ? "yes" : "no");
    KV("store_ops", "%llu", (unsigned long long)rs->n_ops);
    KV("store_unknown_outcomes", "%llu", (unsigned long long)rs->n_unknown);
    KV("store_reconnects", "%llu", (unsigned long long)rs->n_reconnects);
    KV("store_redis_flushes", "%llu", (unsigned long long)rs->n_flushes);
    KV("store_redis_batch_commits", "%llu",
       (unsigned long long)rs->xenv.n_commits);
    KV("store_redis_batch_conflicts", "%llu",
       (unsigned long long)rs->xenv.n_conflicts);
    KV("store_expired_events", "%s",
       rs->notify ? redis_notify_state(rs->notify) : "off");
    if (rs->notify)
        KV("store_expired_seen", "%llu",
           (unsigned long long)redis_notify_seen(rs->notify));
#undef KV
    return n;
}

static void r_close(struct store *st)
{
    struct redis_store *rs = self(st);

    rs->back = NULL; /* what is left fails here: its cluster is closing */
    rs->node_state = NULL;
    redis_notify_close(rs->notify);
    if (rs->bev)
        bufferevent_free(rs->bev);
    rs->bev = NULL;
    fail_list(rs, &rs->held, 1, "store closed");
    fail_list(rs, &rs->wire, 1, "store closed");
    fail_list(rs, &rs->later, 0, "store closed");
    fail_list(rs, &rs->retry, 0, "store closed");
    fail_list(rs, &rs->pending, 0, "store closed");
    event_free(rs->ev_loading);
    event_free(rs->ev_flush);
    event_free(rs->ev_reconnect);
    event_free(rs->ev_wait);
    event_free(rs->ev_silent);
    event_free(rs->ev_recheck);
    redisReaderFree(rs->reader);
    if (rs->tls_ctx && rs->own_ctx)
        SSL_CTX_free(rs->tls_ctx);
    free(rs->prefix);
    free(rs->host);
    free(rs->user);
    free(rs->pass);
    free(rs);
}

static int r_once_answer(struct store *st, const struct store_req *req,
                         struct store_res *res, store_done_fn done, void *arg)
{
    return redis_xact_once_answer(&self(st)->xenv, req, res, done, arg);
}

static const struct store_ops redis_ops = {
    .name = "redis",
    .sync_only = 0,
    .ordered = 1,
    .exec = r_exec,
    .batch_begin = r_batch_begin,
    .batch_commit = redis_xact_commit,
    .batch_abort = redis_xact_abort,
    .batch_prefetch = redis_xact_prefetch,
    .durable = r_durable,
    .now_ms = r_now_ms,
    .ready = r_ready,
    .info = r_info,
    .close = r_close,
    .once_answer = r_once_answer,
    .batch_commit_once = redis_xact_commit_once,
};

/* ---- Opening ------------------------------------------------------------ */

/* redis://[user:password@]host:port[/db] into rs; -1 with err. */
static int parse_uri(struct redis_store *rs, const char *uri, char *err,
                     size_t errlen)
{
    const char *p, *at, *slash, *colon, *end;

    if (!strncmp(uri, "rediss://", 9)) {
        rs->tls = 1;
        p = uri + 9;
    } else if (!strncmp(uri, "redis://", 8)) {
        p = uri + 8;
    } else {
        snprintf(err, errlen, "not a redis://, rediss:// or "
                 "redis+cluster:// URI");
        return -1;
    }
    end = p + strlen(p);
    slash = strchr(p, '/');
    if (!slash)
        slash = end;
    at = memchr(p, '@', (size_t)(slash - p));
    if (at) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (!c) {
            rs->pass = strndup(p, (size_t)(at - p));
        } else {
            if (c > p)
                rs->user = strndup(p, (size_t)(c - p));
            rs->pass = strndup(c + 1, (size_t)(at - c - 1));
        }
        p = at + 1;
    }
    colon = memchr(p, ':', (size_t)(slash - p));
    if (!colon || colon == p) {
        snprintf(err, errlen, "write redis://[user:password@]host:port[/db]");
        return -1;
    }
    rs->host = strndup(p, (size_t)(colon - p));
    rs->port = atoi(colon + 1);
    if (rs->port <= 0 || rs->port > 65535) {
        snprintf(err, errlen, "bad port in the redis URI");
        return -1;
    }
    if (*slash == '/' && slash[1]) {
        char *e;
        long db = strtol(slash + 1, &e, 10);
        if (*e || db < 0 || db > 1000000) {
            snprintf(err, errlen, "bad database number in the redis URI");
            return -1;
        }
        rs->db = (int)db;
    }
    return 0;
}

void redis_script_shas(char sha[][41])
{
    for (int s = 0; s < REDIS_S_COUNT_ALL; s++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        const char *t = redis_lua_text[s];
        EVP_Digest(t, strlen(t), md, &n, EVP_sha1(), NULL);
        for (unsigned i = 0; i < n && i < 20; i++)
            snprintf(sha[s] + 2 * i, 3, "%02x", md[i]);
    }
}

/* What every connection sets up, whoever opened it; then it connects. */
static void start(struct redis_store *rs, struct event_base *base,
                  const char *prefix, int fsync_policy, int wait_replicas,
                  int wait_timeout_ms, uint64_t once_ttl_ms)
{
    rs->base.ops = &redis_ops;
    rs->evb = base;
    rs->prefix = xstrdup(prefix);
    rs->keys.prefix = rs->prefix;
    rs->keys.plen = strlen(prefix);
    rs->sync_policy = fsync_policy;
    rs->wait_replicas = wait_replicas;
    rs->wait_timeout_ms = wait_timeout_ms ? wait_timeout_ms : 1000;
    rs->once_ttl_ms = once_ttl_ms ? once_ttl_ms : TALLY_ONCE_TTL_DEFAULT;
    rs->backoff_ms = BACKOFF_MIN_MS;
    TAILQ_INIT(&rs->retry);
    TAILQ_INIT(&rs->pending);
    TAILQ_INIT(&rs->wire);
    TAILQ_INIT(&rs->held);
    TAILQ_INIT(&rs->later);
    rs->loading_ms = LOADING_RETRY_MIN_MS;
    rs->reader = redisReaderCreate();
    rs->ev_flush = event_new(base, -1, 0, flush_cb, rs);
    rs->ev_reconnect = evtimer_new(base, reconnect_cb, rs);
    rs->ev_wait = evtimer_new(base, wait_cb, rs);
    rs->ev_silent = evtimer_new(base, silent_cb, rs);
    rs->ev_recheck = event_new(base, -1, EV_PERSIST, recheck_cb, rs);
    rs->ev_loading = evtimer_new(base, loading_cb, rs);
    snprintf(rs->why, sizeof rs->why, "redis store: connecting");
    redis_script_shas(rs->sha);
    rs->xenv.st = &rs->base;
    rs->xenv.evb = base;
    rs->xenv.keys = &rs->keys;
    rs->xenv.sha = rs->sha;
    rs->xenv.send = r_send;
    rs->xenv.once_ttl_ms = rs->once_ttl_ms;
    connect_start(rs);
}

int store_redis_open_opts(struct event_base *base, const char *uri,
                          int fsync_policy,
                          const struct store_redis_opts *opts,
                          struct store **out, char *err, size_t errlen)
{
    struct redis_store *rs;
    const char *prefix = opts && opts->prefix ? opts->prefix : "tally:";

    *out = NULL;
    if (!*prefix || strpbrk(prefix, "{}")) {
        snprintf(err, errlen, "--store-prefix must be non-empty, without "
                 "'{' or '}' (they would move the hash tag)");
        return -1;
    }
    if (!strncmp(uri, "redis+cluster://", 16) ||
        !strncmp(uri, "rediss+cluster://", 17))
        return redis_cluster_open(base, uri, fsync_policy, opts, out, err,
                                  errlen);
    rs = xcalloc(1, sizeof *rs);
    if (parse_uri(rs, uri, err, errlen) < 0 ||
        (rs->tls && !(rs->tls_ctx = redis_tls_ctx(
                          opts ? opts->tls_ca_file : NULL,
                          opts ? opts->tls_cert_file : NULL,
                          opts ? opts->tls_key_file : NULL, err, errlen)))) {
        free(rs->host);
        free(rs->user);
        free(rs->pass);
        free(rs);
        return -1;
    }
    rs->own_ctx = 1;
    start(rs, base, prefix, fsync_policy, opts ? opts->wait_replicas : 0,
          opts ? opts->wait_timeout_ms : 0, opts ? opts->once_ttl_ms : 0);
    if (opts && opts->expired) {
        struct redis_notify_cfg nc = {base, rs->host, rs->user, rs->pass,
                                      rs->port, rs->db, rs->tls_ctx, prefix,
                                      opts->expired, opts->expired_ctx};
        rs->notify = redis_notify_open(&nc);
    }
    *out = &rs->base;
    return 0;
}

struct redis_store *redis_node_open(struct event_base *base,
                                    const struct redis_node_cfg *cfg)
{
    struct redis_store *rs = xcalloc(1, sizeof *rs);

    rs->host = xstrdup(cfg->host);
    rs->port = cfg->port;
    rs->user = cfg->user ? xstrdup(cfg->user) : NULL;
    rs->pass = cfg->pass ? xstrdup(cfg->pass) : NULL;
    rs->tls = cfg->tls != NULL;
    rs->tls_ctx = cfg->tls;
    rs->back = cfg->back;
    rs->node_state = cfg->state;
    rs->parent = cfg->parent;
    start(rs, base, cfg->prefix, cfg->sync_policy, cfg->wait_replicas,
          cfg->wait_timeout_ms, cfg->once_ttl_ms);
    if (cfg->expired) {
        /* A cluster has database 0 only. */
        struct redis_notify_cfg nc = {base, rs->host, rs->user, rs->pass,
                                      rs->port, 0, rs->tls_ctx, cfg->prefix,
                                      cfg->expired, cfg->expired_ctx};
        rs->notify = redis_notify_open(&nc);
    }
    return rs;
}

struct store *redis_node_store(struct redis_store *node)
{
    return &node->base;
}

void redis_node_send(struct redis_store *node, struct redis_op *op)
{
    TAILQ_INSERT_TAIL(&node->pending, op, link);
    sched_flush(node);
}

int redis_node_up(const struct redis_store *node)
{
    return node->state != RS_DOWN && !loading_too_long(node);
}

int redis_node_serving(const struct redis_store *node)
{
    return node->state == RS_READY;
}

int redis_node_idle(const struct redis_store *node)
{
    return TAILQ_EMPTY(&node->pending) && TAILQ_EMPTY(&node->retry) &&
           TAILQ_EMPTY(&node->wire) && TAILQ_EMPTY(&node->held) &&
           TAILQ_EMPTY(&node->later);
}

int store_redis_open(struct event_base *base, const char *uri,
                     int fsync_policy, struct store **out, char *err,
                     size_t errlen)
{
    return store_redis_open_opts(base, uri, fsync_policy, NULL, out, err,
                                 errlen);
}
