/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_cluster.c - the Redis store over a Redis Cluster
 * (redis+cluster://[user:password@]host1:port,host2:port; rediss+cluster://
 * over TLS).  This file owns the slot map and where each operation goes;
 * each node is one connection of redis.c (redis_node_open), which keeps
 * its own handshake, scripts, pipelining, WAIT and faults, and hands back
 * what it cannot answer itself.  Operations are formatted once
 * (redis_ops.c) and the same bytes go to whichever node owns their slot.
 *
 * Slot map.  CLUSTER SLOTS is asked of a seed at start, and again on a
 * MOVED, when a master's connection goes, while a slot has no master
 * reachable, and every 10 s.  One connection per master; nodes that are no
 * longer masters are closed once idle.
 *
 * Routing.  tally's key layout puts a counter and its ids under one hash
 * tag, PREFIX{ESC(key)} (redis_ops.c), so an operation's slot is CRC16 of
 * ESC(key) alone.  What each store operation becomes over the slots it
 * touches (split, refused, walked over the masters) is
 * redis_cluster_ops.c's; this file sends each op to its slot's master.
 *
 * Expired events.  Every node connection also subscribes to its node's
 * own "expired" notifications (redis_notify.c): only a master expires
 * keys, so a replica's subscription is quiet until it is promoted, and the
 * new masters of a map are subscribed once their connection is made.
 * Pub/sub is at most once, so an expiry on a master tallyd is not
 * subscribed to yet (just after a failover) sends no event.
 *
 * Redirects and faults.  MOVED: the map takes the new owner, the op goes
 * there and the whole map is asked for again.  ASK: ASKING and the op to
 * the named node, once per redirect, the map unchanged.  TRYAGAIN and
 * CLUSTERDOWN (nothing ran): the op waits and is sent again with backoff.
 * An op whose node is down, or that the node had not sent (or only read
 * with) when its connection went, waits for a new map or the node's
 * return, at most PARK_MS, then answers STORE_EUNAVAIL.  A write that was
 * on the wire when the connection went is STORE_EUNKNOWN (redis.c), never
 * retried here: an idempotency id resolves it on the client's retry.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "redis_cluster_int.h"

#define PARK_MS 8000         /* an op waits this long for a master */
#define MAX_REDIRECTS 16     /* MOVED/ASK followed per op (redis-cli's) */
#define TICK_MS 100          /* parked ops and map refreshes are looked at */
#define REFRESH_IDLE_MS 10000
#define REFRESH_DOWN_MS 200  /* while a slot has no reachable master */

struct cluster *cluster_of(const struct store *st)
{
    return (struct cluster *)(void *)st;
}

int64_t cluster_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Hash slots --------------------------------------------------------- */

static uint16_t crc16_add(uint16_t crc, unsigned char b)
{
    crc ^= (uint16_t)(b << 8);
    for (int i = 0; i < 8; i++)
        crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
                           : (uint16_t)(crc << 1);
    return crc;
}

/* The slot of a counter: CRC16 (XMODEM, Redis Cluster's) of its hash tag
 * ESC(key), the bytes redis_ops.c's arg_esc writes between the braces:
 * '%', '{', '}' as "%25", "%7B", "%7D", and the empty key as "%". */
int redis_cluster_slot(const char *key, size_t klen)
{
    uint16_t crc = 0;

    if (!klen)
        return crc16_add(0, '%') & (SLOTS - 1);
    for (size_t i = 0; i < klen; i++) {
        const char *e = key[i] == '%' ? "25" : key[i] == '{' ? "7B" :
                        key[i] == '}' ? "7D" : NULL;
        if (!e) {
            crc = crc16_add(crc, (unsigned char)key[i]);
            continue;
        }
        crc = crc16_add(crc, '%');
        crc = crc16_add(crc, (unsigned char)e[0]);
        crc = crc16_add(crc, (unsigned char)e[1]);
    }
    return crc & (SLOTS - 1);
}

/* ---- Nodes -------------------------------------------------------------- */

static void node_back(void *parent, struct redis_store *node,
                      struct redis_op *op, const redisReply *r);
static void node_state(void *parent, struct redis_store *node, int up);

static struct cnode *node_find(struct cluster *c, const char *host, int port)
{
    struct cnode *n;

    TAILQ_FOREACH(n, &c->nodes, link)
        if (n->port == port && !strcmp(n->host, host))
            return n;
    return NULL;
}

/* The node at host:port, connecting to it if it is new. */
static struct cnode *node_get(struct cluster *c, const char *host, int port)
{
    struct cnode *n = node_find(c, host, port);

    if (n)
        return n;
    n = xcalloc(1, sizeof *n);
    n->host = xstrdup(host);
    n->port = port;
    n->first_slot = SLOTS;
    c->cfg.host = n->host;
    c->cfg.port = port;
    n->rs = redis_node_open(c->evb, &c->cfg);
    TAILQ_INSERT_TAIL(&c->nodes, n, link);
    return n;
}

static struct cnode *node_of(struct cluster *c, const struct redis_store *rs)
{
    struct cnode *n;

    TAILQ_FOREACH(n, &c->nodes, link)
        if (n->rs == rs)
            return n;
    return NULL;
}

static void node_free(struct cnode *n)
{
    struct store *st = redis_node_store(n->rs);

    st->ops->close(st);
    free(n->host);
    free(n);
}

/* A node's "expired" event: counted here, where INFO reads it, since
 * nodes come and go with the map. */
static void node_expired(void *ctx, const void *key, size_t klen)
{
    struct cluster *c = ctx;

    c->n_expired++;
    c->expired(c->expired_ctx, key, klen);
}

/* ---- Ops: answering, waiting, sending ----------------------------------- */

static void op_fail(struct redis_op *op, int rc, const char *why)
{
    store_res_init(&op->res);
    op->res.rc = rc;
    snprintf(op->res.detail, sizeof op->res.detail, "redis cluster: %s",
             why);
    if (op->done)
        op->done(op->arg, &op->res);
    redis_op_free(op);
}

static void ask_map(struct cluster *c);

static void tick_soon(struct cluster *c)
{
    struct timeval tv = {0, TICK_MS * 1000};

    if (!evtimer_pending(c->ev_tick, NULL))
        evtimer_add(c->ev_tick, &tv);
}

/* op waits (until retry_at, at most until its deadline) for a master. */
static void park(struct cluster *c, struct redis_op *op, int64_t retry_at)
{
    int64_t now = cluster_wall_ms();

    if (!op->deadline)
        op->deadline = now + PARK_MS;
    if (now >= op->deadline) {
        char why[80];
        snprintf(why, sizeof why, "no master reachable for slot %d in %d s",
                 op->slot, PARK_MS / 1000);
        op_fail(op, STORE_EUNAVAIL, why);
        return;
    }
    op->retry_at = retry_at;
    TAILQ_INSERT_TAIL(&c->parked, op, link);
    c->nparked[op->slot]++;
    tick_soon(c);
}

/* Send op to its slot's master now, or park it; 1 if parked. */
static int send_now(struct cluster *c, struct redis_op *op)
{
    struct cnode *n = c->slot[op->slot];

    if (!n || !redis_node_up(n->rs)) {
        park(c, op, 0);
        ask_map(c);
        return 1;
    }
    redis_node_send(n->rs, op);
    return 0;
}

void cluster_route(struct cluster *c, struct redis_op *op)
{
    if (c->nparked[op->slot]) {
        park(c, op, 0); /* behind the earlier ones of its slot */
        return;
    }
    send_now(c, op);
}

/* Route what waits and may go now, in order: an op that must wait holds
 * back the later ones of its slot.  Called by the tick and the drain (all:
 * without waiting for retry_at). */
static void unpark(struct cluster *c, int all)
{
    struct redis_opq q;
    struct redis_op *op;
    int64_t now = cluster_wall_ms();
    unsigned char held[SLOTS / 8];

    memset(held, 0, sizeof held);
    TAILQ_INIT(&q);
    TAILQ_CONCAT(&q, &c->parked, link);
    while ((op = TAILQ_FIRST(&q))) {
        int s = op->slot;
        TAILQ_REMOVE(&q, op, link);
        if ((held[s / 8] & (1u << s % 8)) ||
            (!all && op->retry_at > now && op->deadline > now)) {
            TAILQ_INSERT_TAIL(&c->parked, op, link);
            held[s / 8] |= (unsigned char)(1u << s % 8);
            continue;
        }
        c->nparked[s]--;
        if (send_now(c, op))
            held[s / 8] |= (unsigned char)(1u << s % 8);
    }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    unpark(arg, 1);
}

/* "MOVED 3999 127.0.0.1:6381": the slot and the node; -1 if malformed.
 * An empty host is the answering node's (Redis's "unknown endpoint"). */
static int parse_redirect(const char *s, const char *self_host, int *slot,
                          char *host, size_t hlen, int *port)
{
    const char *sp = strchr(s, ' '), *addr, *colon;

    if (!sp)
        return -1;
    *slot = atoi(sp + 1);
    addr = strchr(sp + 1, ' ');
    if (!addr || *slot < 0 || *slot >= SLOTS)
        return -1;
    addr++;
    colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= hlen)
        return -1;
    if (colon == addr)
        snprintf(host, hlen, "%s", self_host);
    else
        snprintf(host, hlen, "%.*s", (int)(colon - addr), addr);
    *port = atoi(colon + 1);
    return *port > 0 && *port <= 65535 ? 0 : -1;
}

/* A node hands back op: refused by a redirect or a cluster error (r), or
 * not sent before its connection went (r NULL). */
static void node_back(void *parent, struct redis_store *node,
                      struct redis_op *op, const redisReply *r)
{
    struct cluster *c = parent;
    struct cnode *from = node_of(c, node), *to;
    char host[256];
    int slot, port, tries;

    if (!r) {
        park(c, op, 0);
        ask_map(c);
        return;
    }
    if (!strncmp(r->str, "TRYAGAIN", 8) || !strncmp(r->str, "LOADING", 7) ||
        !strncmp(r->str, "CLUSTERDOWN", 11)) {
        /* Nothing ran (a slot migrating, a failover under way, a master
         * reading its AOF): again later, 25 ms doubling to 800 ms. */
        tries = op->retries < 5 ? op->retries : 5;
        op->retries++;
        c->n_retried++;
        park(c, op, cluster_wall_ms() + (25 << tries));
        if (r->str[0] == 'C')
            ask_map(c);
        return;
    }
    if (++op->redirects > MAX_REDIRECTS ||
        parse_redirect(r->str, from ? from->host : "", &slot, host,
                       sizeof host, &port) < 0) {
        char why[120];
        snprintf(why, sizeof why, "gave up after %d redirects (last: %.60s)",
                 op->redirects - 1, r->str);
        op_fail(op, STORE_EUNAVAIL, why);
        return;
    }
    to = node_get(c, host, port);
    if (r->str[0] == 'A') {
        c->n_ask++;
        op->asking = 1;
        if (redis_node_up(to->rs))
            redis_node_send(to->rs, op);
        else
            park(c, op, 0);
        return;
    }
    c->n_moved++;
    op->asking = 0;
    if (c->slot[slot] != to) {
        if (!c->slot[slot])
            c->nserved++;
        c->slot[slot] = to;
        to->master = 1;
    }
    ask_map(c);
    cluster_route(c, op);
}

static int any_master_down(const struct cluster *c)
{
    struct cnode *n;

    TAILQ_FOREACH(n, &c->nodes, link)
        if (n->master && !redis_node_up(n->rs))
            return 1;
    return 0;
}

static void node_state(void *parent, struct redis_store *node, int up)
{
    struct cluster *c = parent;
    struct cnode *n = node_of(c, node);

    if (up) {
        if (!TAILQ_EMPTY(&c->parked))
            event_active(c->ev_drain, EV_TIMEOUT, 0);
        if (c->nserved < SLOTS)
            ask_map(c);
        return;
    }
    if (n && n->master) {
        /* A master gone: its replica may be taking over. */
        ask_map(c);
        tick_soon(c);
    }
}

/* ---- The slot map ------------------------------------------------------- */

static int reply_int(const redisReply *r, long long *v)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING) {
        char *e;
        *v = strtoll(r->str, &e, 10);
        return *e ? -1 : 0;
    }
    return -1;
}

/* The map in short, "host:port 0-5460, ..." (first range of each). */
static void map_describe(struct cluster *c)
{
    struct cnode *n;
    size_t o = 0;
    int masters = 0;

    c->map_text[0] = 0;
    TAILQ_FOREACH(n, &c->nodes, link) {
        int last = n->first_slot;
        if (!n->master)
            continue;
        masters++;
        while (last + 1 < SLOTS && c->slot[last + 1] == n)
            last++;
        if (o < sizeof c->map_text)
            o += (size_t)snprintf(c->map_text + o, sizeof c->map_text - o,
                                  "%s%s:%d %d-%d", masters > 1 ? ", " : "",
                                  n->host, n->port, n->first_slot, last);
    }
}

/* CLUSTER SLOTS's answer: [[start, end, [host, port, id], replicas...]...].
 * The map is replaced only by a well-formed answer. */
static void on_map(void *arg, const redisReply *r)
{
    struct cluster *c = arg;
    struct cnode **fresh, *n, *asked = c->asked;
    char before[sizeof c->map_text];
    int served = 0;

    if (c->closing)
        return;
    c->asking_map = 0;
    c->asked = NULL;
    c->last_map_ms = cluster_wall_ms();
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(c->why, sizeof c->why,
                 "redis cluster: CLUSTER SLOTS %s%.100s",
                 r ? "refused: " : "lost with its node",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "");
        if (r && r->type == REDIS_REPLY_ERROR &&
            strcmp(c->why, c->logged)) {
            /* Once per reason: the map is asked for again every 200 ms. */
            fprintf(stderr, "tallyd: %s (is cluster-enabled set?)\n", c->why);
            snprintf(c->logged, sizeof c->logged, "%s", c->why);
        }
        tick_soon(c);
        return;
    }
    fresh = xcalloc(SLOTS, sizeof *fresh);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        long long lo, hi, port;
        char host[256];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            reply_int(e->element[0], &lo) < 0 ||
            reply_int(e->element[1], &hi) < 0 || lo < 0 || hi >= SLOTS ||
            lo > hi || (m = e->element[2])->type != REDIS_REPLY_ARRAY ||
            m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            reply_int(m->element[1], &port) < 0 || port <= 0 || port > 65535)
            goto bad;
        /* An empty or "?" host: the node asked (an unknown endpoint). */
        snprintf(host, sizeof host, "%s",
                 m->element[0]->len && strcmp(m->element[0]->str, "?")
                     ? m->element[0]->str
                     : asked ? asked->host : c->seed_host[0]);
        n = node_get(c, host, (int)port);
        for (long long s = lo; s <= hi; s++)
            fresh[s] = n;
    }
    snprintf(before, sizeof before, "%s", c->map_text);
    TAILQ_FOREACH(n, &c->nodes, link) {
        n->master = 0;
        n->first_slot = SLOTS;
    }
    for (int s = 0; s < SLOTS; s++) {
        c->slot[s] = fresh[s];
        if (!fresh[s])
            continue;
        served++;
        fresh[s]->master = 1;
        if (fresh[s]->first_slot > s)
            fresh[s]->first_slot = s;
    }
    free(fresh);
    c->nserved = served;
    map_describe(c);
    if (strcmp(before, c->map_text))
        fprintf(stderr, "tallyd: redis cluster: slot map (%d of %d slots "
                "served): %s\n", served, SLOTS, c->map_text);
    if (served < SLOTS)
        snprintf(c->why, sizeof c->why, "redis cluster: %d of %d slots have "
                 "no master", SLOTS - served, SLOTS);
    else
        c->why[0] = 0;
    if (c->map_again) {
        c->map_again = 0;
        tick_soon(c);
    }
    event_active(c->ev_drain, EV_TIMEOUT, 0);
    return;
bad:
    free(fresh);
    snprintf(c->why, sizeof c->why, "redis cluster: CLUSTER SLOTS answer "
             "not understood");
    if (strcmp(c->why, c->logged)) {
        fprintf(stderr, "tallyd: %s\n", c->why);
        snprintf(c->logged, sizeof c->logged, "%s", c->why);
    }
    tick_soon(c);
}

static int pick_rank(const struct cnode *n)
{
    return 2 * redis_node_serving(n->rs) + n->master;
}

/* Ask one reachable node for the map (one question at a time). */
static void ask_map(struct cluster *c)
{
    const char *v[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, 5};
    struct cnode *n, *pick = NULL;
    struct redis_op *op;

    if (c->closing)
        return;
    if (c->asking_map) {
        c->map_again = 1;
        return;
    }
    /* A master serving, else any node serving, else one connecting (a
     * master first), else the seeds again. */
    TAILQ_FOREACH(n, &c->nodes, link)
        if (redis_node_up(n->rs) && (!pick || pick_rank(n) > pick_rank(pick)))
            pick = n;
    if (!pick) {
        for (int i = 0; i < c->nseeds; i++)
            node_get(c, c->seed_host[i], c->seed_port[i]);
        tick_soon(c);
        return;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = R_RAW;
    op->script = REDIS_S_NONE;
    op->slot = -1;
    op->raw = on_map;
    op->arg = c;
    op->cmdlen = redis_format(&op->cmd, 2, v, lens);
    c->asking_map = 1;
    c->asked = pick;
    redis_node_send(pick->rs, op);
}

/* Nodes that are no masters any more and have nothing on them: closed
 * here, on the timer, never inside one of their own callbacks. */
static void retire_nodes(struct cluster *c)
{
    struct cnode *n, *next;

    if (c->nserved < SLOTS || c->asking_map)
        return;
    for (n = TAILQ_FIRST(&c->nodes); n; n = next) {
        next = TAILQ_NEXT(n, link);
        if (!n->master && redis_node_idle(n->rs)) {
            TAILQ_REMOVE(&c->nodes, n, link);
            node_free(n);
        }
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    int64_t now = cluster_wall_ms();
    int64_t every = c->nserved < SLOTS || any_master_down(c) ||
                    !TAILQ_EMPTY(&c->parked) ? REFRESH_DOWN_MS
                                             : REFRESH_IDLE_MS;

    (void)fd;
    (void)what;
    if (c->map_again || now - c->last_map_ms >= every) {
        c->map_again = 0;
        ask_map(c);
    }
    retire_nodes(c);
    unpark(c, 0);
    {
        struct timeval tv = {0, TICK_MS * 1000};
        evtimer_add(c->ev_tick, &tv);
    }
}

/* ---- store_ops ---------------------------------------------------------- */

static tally_ticket c_durable(const struct store *st)
{
    (void)st;
    return UINT64_MAX;
}

static struct cnode *first_master(const struct cluster *c)
{
    struct cnode *n;

    TAILQ_FOREACH(n, &c->nodes, link)
        if (n->master)
            return n;
    return NULL;
}

static int64_t c_now_ms(const struct store *st)
{
    struct cnode *n = first_master(cluster_of(st));

    if (!n)
        return cluster_wall_ms();
    return redis_node_store(n->rs)->ops->now_ms(redis_node_store(n->rs));
}

/* Ready when every slot has a master and every master is ready (connected,
 * and as durable as --fsync asks). */
static int c_ready(const struct store *st, char *why, size_t n)
{
    const struct cluster *c = cluster_of(st);
    struct cnode *node;

    if (c->nserved < SLOTS) {
        snprintf(why, n, "%s", c->why[0] ? c->why
                 : "redis cluster: no slot map yet");
        return 0;
    }
    TAILQ_FOREACH(node, &c->nodes, link) {
        struct store *ns = redis_node_store(node->rs);
        if (node->master && !ns->ops->ready(ns, why, n))
            return 0;
    }
    return 1;
}

static void kv_add(struct store_info_kv *kv, size_t max, size_t *n,
                   const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void kv_add(struct store_info_kv *kv, size_t max, size_t *n,
                   const char *name, const char *fmt, ...)
{
    va_list ap;

    if (*n == max)
        return;
    kv[*n].name = name;
    va_start(ap, fmt);
    vsnprintf(kv[*n].value, sizeof kv[*n].value, fmt, ap);
    va_end(ap);
    (*n)++;
}

/* INFO: the cluster's own facts, then each master's merged: counts
 * added up, the rest shown when the masters agree, else "mixed".  A fact
 * the cluster keeps itself (the batch counts: batches run on the cluster's
 * own xenv, never a master's) is the cluster's alone; a master's of the
 * same name would name it twice, and /metrics would carry the family twice. */
static size_t c_info(const struct store *st, struct store_info_kv *kv,
                     size_t max)
{
    static const char *const summed[] = {"store_ops", "store_unknown_outcomes",
                                         "store_reconnects"};
    const struct cluster *c = cluster_of(st);
    struct store_info_kv mine[32];
    size_t n = 0, base;
    struct cnode *node;
    int masters = 0;

    TAILQ_FOREACH(node, &c->nodes, link)
        masters += node->master;
    kv_add(kv, max, &n, "store", "redis-cluster");
    kv_add(kv, max, &n, "store_cluster_masters", "%d", masters);
    kv_add(kv, max, &n, "store_cluster_slots_served", "%d", c->nserved);
    kv_add(kv, max, &n, "store_cluster_map", "%s", c->map_text);
    /* Callers read 16 facts, ten of them each master's: few of ours. */
    kv_add(kv, max, &n, "store_cluster_redirects", "%llu",
       (unsigned long long)(c->n_moved + c->n_ask));
    kv_add(kv, max, &n, "store_cluster_retried", "%llu",
           (unsigned long long)c->n_retried);
    kv_add(kv, max, &n, "store_redis_batch_commits", "%llu",
           (unsigned long long)c->xenv.n_commits);
    kv_add(kv, max, &n, "store_redis_batch_conflicts", "%llu",
           (unsigned long long)c->xenv.n_conflicts);
    if (c->expired)
        kv_add(kv, max, &n, "store_expired_seen", "%llu",
               (unsigned long long)c->n_expired);
    base = n;
    TAILQ_FOREACH(node, &c->nodes, link) {
        struct store *ns = redis_node_store(node->rs);
        size_t got;
        if (!node->master)
            continue;
        got = ns->ops->info(ns, mine, sizeof mine / sizeof *mine);
        for (size_t i = 0; i < got; i++) {
            size_t j;
            int sum = 0;
            for (j = 0; j < base && strcmp(kv[j].name, mine[i].name); j++)
                ;
            if (j < base)
                continue; /* "store" and the cluster's own facts */
            for (size_t s = 0; s < sizeof summed / sizeof *summed; s++)
                sum |= !strcmp(mine[i].name, summed[s]);
            for (j = base; j < n && strcmp(kv[j].name, mine[i].name); j++)
                ;
            if (j == n) {
                if (n == max)
                    continue;
                kv[n].name = mine[i].name;
                snprintf(kv[n].value, sizeof kv[n].value, "%s",
                         mine[i].value);
                n++;
            } else if (sum) {
                snprintf(kv[j].value, sizeof kv[j].value, "%llu",
                         strtoull(kv[j].value, NULL, 10) +
                             strtoull(mine[i].value, NULL, 10));
            } else if (strcmp(kv[j].value, mine[i].value)) {
                snprintf(kv[j].value, sizeof kv[j].value, "mixed");
            }
        }
    }
    return n;
}

/* What open made before its events and nodes. */
static void cluster_free(struct cluster *c)
{
    if (c->tls_ctx)
        SSL_CTX_free(c->tls_ctx);
    for (int i = 0; i < c->nseeds; i++)
        free(c->seed_host[i]);
    free(c->seed_host);
    free(c->seed_port);
    free(c->user);
    free(c->pass);
    free(c->prefix);
    free(c);
}

static void c_close(struct store *st)
{
    struct cluster *c = cluster_of(st);
    struct cnode *n;
    struct redis_op *op;

    c->closing = 1;
    while ((n = TAILQ_FIRST(&c->nodes))) {
        TAILQ_REMOVE(&c->nodes, n, link);
        node_free(n);
    }
    while ((op = TAILQ_FIRST(&c->parked))) {
        TAILQ_REMOVE(&c->parked, op, link);
        c->nparked[op->slot]--;
        op_fail(op, STORE_EUNAVAIL, "store closed");
    }
    event_free(c->ev_tick);
    event_free(c->ev_drain);
    cluster_free(c);
}

/* A batch's commit (redis_xact.c) to its slot's master. */
static int c_send(struct store *st, struct redis_op *op, struct store_res *res)
{
    (void)res;
    cluster_route(cluster_of(st), op);
    return 0;
}

static int c_batch_begin(struct store *st, unsigned attempt,
                         struct store_batch **out)
{
    return redis_xact_begin(&cluster_of(st)->xenv, attempt, out);
}

static int c_once_answer(struct store *st, const struct store_req *req,
                         struct store_res *res, store_done_fn done, void *arg)
{
    return redis_xact_once_answer(&cluster_of(st)->xenv, req, res, done, arg);
}

static const struct store_ops cluster_ops = {
    .name = "redis-cluster",
    .sync_only = 0,
    .exec = cluster_exec,
    .batch_begin = c_batch_begin,
    .batch_commit = redis_xact_commit,
    .batch_abort = redis_xact_abort,
    .durable = c_durable,
    .now_ms = c_now_ms,
    .ready = c_ready,
    .info = c_info,
    .close = c_close,
    .once_answer = c_once_answer,
    .batch_commit_once = redis_xact_commit_once,
};

/* ---- Opening ------------------------------------------------------------ */

/* redis+cluster://[user:password@]host:port[,host:port...][/0] into c's
 * credentials and seeds; -1 with err. */
static int parse_uri(struct cluster *c, const char *uri, int *tls, char *err,
                     size_t errlen)
{
    const char *p, *at, *end;

    *tls = !strncmp(uri, "rediss+cluster://", 17);
    p = uri + (*tls ? 17 : 16);
    end = p + strcspn(p, "/");
    if (*end && strcmp(end, "/") && strcmp(end, "/0")) {
        snprintf(err, errlen, "a Redis Cluster has only database 0");
        return -1;
    }
    at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *col = memchr(p, ':', (size_t)(at - p));
        if (!col) {
            c->pass = strndup(p, (size_t)(at - p));
        } else {
            if (col > p)
                c->user = strndup(p, (size_t)(col - p));
            c->pass = strndup(col + 1, (size_t)(at - col - 1));
        }
        p = at + 1;
    }
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end, *colon;
        int port;
        for (colon = stop; colon > p && colon[-1] != ':'; colon--)
            ;
        port = colon > p + 1 ? atoi(colon) : 0;
        if (port <= 0 || port > 65535) {
            snprintf(err, errlen, "write redis+cluster://[user:password@]"
                     "host:port[,host:port...]");
            return -1;
        }
        c->seed_host = xrealloc(c->seed_host, (size_t)(c->nseeds + 1) *
                                                  sizeof *c->seed_host);
        c->seed_port = xrealloc(c->seed_port, (size_t)(c->nseeds + 1) *
                                                  sizeof *c->seed_port);
        c->seed_host[c->nseeds] = strndup(p, (size_t)(colon - 1 - p));
        c->seed_port[c->nseeds++] = port;
        p = comma ? comma + 1 : end;
    }
    if (!c->nseeds) {
        snprintf(err, errlen, "redis+cluster:// names no host:port");
        return -1;
    }
    return 0;
}

int redis_cluster_open(struct event_base *base, const char *uri,
                       int fsync_policy, const struct store_redis_opts *opts,
                       struct store **out, char *err, size_t errlen)
{
    struct cluster *c = xcalloc(1, sizeof *c);
    int tls = 0;

    *out = NULL;
    TAILQ_INIT(&c->nodes);
    TAILQ_INIT(&c->parked);
    if (parse_uri(c, uri, &tls, err, errlen) < 0 ||
        (tls && !(c->tls_ctx = redis_tls_ctx(
                      opts ? opts->tls_ca_file : NULL,
                      opts ? opts->tls_cert_file : NULL,
                      opts ? opts->tls_key_file : NULL, err, errlen)))) {
        cluster_free(c);
        return -1;
    }
    c->base.ops = &cluster_ops;
    c->evb = base;
    c->prefix = xstrdup(opts && opts->prefix ? opts->prefix : "tally:");
    c->keys.prefix = c->prefix;
    c->keys.plen = strlen(c->prefix);
    c->keys.cluster = 1;
    c->once_ttl_ms = opts && opts->once_ttl_ms ? opts->once_ttl_ms
                                               : TALLY_ONCE_TTL_DEFAULT;
    redis_script_shas(c->sha);
    c->xenv.st = &c->base;
    c->xenv.evb = base;
    c->xenv.keys = &c->keys;
    c->xenv.sha = c->sha;
    c->xenv.cluster = 1;
    c->xenv.once_ttl_ms = c->once_ttl_ms; /* a batch id's record's PX */
    c->xenv.send = c_send;
    c->cfg.user = c->user;
    c->cfg.pass = c->pass;
    c->cfg.tls = c->tls_ctx;
    c->cfg.prefix = c->prefix;
    c->cfg.sync_policy = fsync_policy;
    c->cfg.wait_replicas = opts ? opts->wait_replicas : 0;
    c->cfg.wait_timeout_ms = opts ? opts->wait_timeout_ms : 0;
    c->cfg.once_ttl_ms = c->once_ttl_ms;
    c->cfg.back = node_back;
    c->cfg.state = node_state;
    c->cfg.parent = c;
    if (opts && opts->expired) {
        c->expired = opts->expired;
        c->expired_ctx = opts->expired_ctx;
        c->cfg.expired = node_expired;
        c->cfg.expired_ctx = c;
    }
    snprintf(c->why, sizeof c->why, "redis cluster: connecting");
    c->ev_tick = evtimer_new(base, tick_cb, c);
    c->ev_drain = event_new(base, -1, 0, drain_cb, c);
    for (int i = 0; i < c->nseeds; i++)
        node_get(c, c->seed_host[i], c->seed_port[i]);
    tick_soon(c);
    *out = &c->base;
    return 0;
}
