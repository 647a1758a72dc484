/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_notify.c - "expired" events on the Redis store.  Redis expires
 * counters itself, so tally learns of an expiry only from Redis's keyspace
 * notifications: this file keeps a second connection to the server,
 * subscribed to __keyevent@DB__:expired, and turns every expired key under
 * the store's prefix that is a counter (PREFIX{ESC(KEY)}, redis_ops.c)
 * into the caller's expired(key) call, the same "expired" change event the
 * engine emits.  redis.c opens it beside the store's own connection and
 * shows its state in INFO # Store; nothing here touches the operations.
 *
 * Setup, pipelined on connect: AUTH (when the URI has a password), CONFIG
 * GET notify-keyspace-events; then, if the server's flags lack E
 * (keyevent) or x (expired; A includes it), CONFIG SET with the flags it
 * had plus those, and SUBSCRIBE.  A server that refuses CONFIG (a managed
 * one, an ACL) is still subscribed: its own configuration decides whether
 * events come, and INFO says "unknown".  A refused CONFIG SET is logged
 * once: the events are then off, and INFO says so.
 *
 * Statistics wait for it: a count for INFO or /metrics (redis.c) is
 * answered only once a PING sent here after the count's reply came back
 * (redis_notify_barrier), so every expiry Redis published before the
 * count, the lazy ones its SCAN caused included, has been reported.
 *
 * Redis pub/sub is at most once: a notification sent while this
 * connection is down (or before it subscribed) is lost, and the counter is
 * gone without its "expired" event (docs/redis-store.md).  The connection
 * is made again with backoff (100 ms doubling to 5 s).  On a cluster each
 * master notifies only of its own keys, so each node connection of
 * redis_cluster.c opens one of these to its node (redis_node_open).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "redis_int.h"

#define NOTIFY_BACKOFF_MIN_MS 100
#define NOTIFY_BACKOFF_MAX_MS 5000

/* What the next reply on the connection answers. */
enum notify_expect { N_AUTH = 0, N_GET, N_SET, N_SUB, N_MSG };

struct redis_notify {
    struct redis_notify_cfg cfg;   /* strings below are our copies */
    struct redis_keys keys;
    char channel[64];              /* __keyevent@DB__:expired */
    struct bufferevent *bev;
    redisReader *reader;
    struct event *ev_reconnect;
    int backoff_ms;
    int up;                        /* connected */
    int subscribed;                /* SUBSCRIBE answered */
    int expect_auth;               /* an AUTH reply comes first */
    int expect_set;                /* a CONFIG SET reply before SUBSCRIBE's */
    enum notify_expect expect;
    char state[160];               /* INFO's store_expired_events (its
                                      first 127 bytes there); as long as
                                      the reasons given to set_state */
    char logged[160];              /* the last state logged (once each) */
    uint64_t seen;                 /* expired counters reported */
    /* Barriers waiting for their PING's answer, in the order sent. */
    struct barrier *bar_head, **bar_tail;
};

/* redis_notify_barrier's callback, run once its PING is answered (every
 * notification published before it has been reported) or the connection
 * goes. */
struct barrier {
    struct barrier *next;
    void (*fn)(void *ctx, void *arg);
    void *ctx, *arg;
};

static void run_barriers(struct redis_notify *nt, int all)
{
    struct barrier *b;

    while ((b = nt->bar_head)) {
        nt->bar_head = b->next;
        if (!nt->bar_head)
            nt->bar_tail = &nt->bar_head;
        b->fn(b->ctx, b->arg);
        free(b);
        if (!all)
            return;
    }
}

int redis_notify_flags(const char *cur, char *out, size_t n)
{
    int has_e = strchr(cur, 'E') != NULL;
    int has_x = strchr(cur, 'x') != NULL || strchr(cur, 'A') != NULL;

    snprintf(out, n, "%s%s%s", cur, has_e ? "" : "E", has_x ? "" : "x");
    return !(has_e && has_x);
}

int redis_notify_key(const struct redis_keys *kp, const char *k, size_t n,
                     char *out, size_t *outlen)
{
    size_t skip = kp->plen + 1, i;

    /* PREFIX{ESC(KEY)}: the prefix, '{', no '}' before the last byte. */
    if (n < skip + 2 || memcmp(k, kp->prefix, kp->plen) ||
        k[kp->plen] != '{' || k[n - 1] != '}')
        return -1;
    for (i = skip; i + 1 < n; i++)
        if (k[i] == '}')
            return -1; /* P{KEY}:id:ID is an id record, not a counter */
    if (n - skip - 1 > TALLY_KEY_MAX * 3 + 1)
        return -1;
    memcpy(out, k + skip, n - skip - 1);
    *outlen = redis_unesc(out, n - skip - 1);
    return 0;
}

static void set_state(struct redis_notify *nt, const char *s)
{
    snprintf(nt->state, sizeof nt->state, "%s", s);
    if (strcmp(nt->logged, nt->state)) {
        snprintf(nt->logged, sizeof nt->logged, "%s", nt->state);
        if (strncmp(s, "on", 2))
            fprintf(stderr, "tallyd: redis: expired events from %s:%d: %s\n",
                    nt->cfg.host, nt->cfg.port, s);
    }
}

static void connect_start(struct redis_notify *nt);

static void lost(struct redis_notify *nt, const char *why)
{
    struct timeval tv = {nt->backoff_ms / 1000,
                         (nt->backoff_ms % 1000) * 1000};
    char s[160];

    if (nt->bev)
        bufferevent_free(nt->bev);
    nt->bev = NULL;
    redisReaderFree(nt->reader);
    nt->reader = redisReaderCreate();
    if (nt->subscribed) {
        snprintf(s, sizeof s, "off while disconnected (%.60s): expiries "
                 "meanwhile send no event", why);
        set_state(nt, s);
    }
    nt->up = 0;
    nt->subscribed = 0;
    run_barriers(nt, 1); /* nothing more comes on this connection */
    event_add(nt->ev_reconnect, &tv);
    nt->backoff_ms = nt->backoff_ms * 2 > NOTIFY_BACKOFF_MAX_MS
                         ? NOTIFY_BACKOFF_MAX_MS : nt->backoff_ms * 2;
}

static void send_cmd(struct redis_notify *nt, int argc, const char **argv)
{
    size_t lens[4];
    char *cmd = NULL;
    size_t len;

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    len = redis_format(&cmd, argc, argv, lens);
    bufferevent_write(nt->bev, cmd, len);
    free(cmd);
}

/* The flags the server has (CONFIG GET's answer): set what is missing,
 * then subscribe. */
static void on_flags(struct redis_notify *nt, const redisReply *r)
{
    char flags[64];

    nt->expect_set = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[1]->len < 32) {
        if (redis_notify_flags(r->element[1]->str, flags, sizeof flags)) {
            const char *v[4] = {"CONFIG", "SET", "notify-keyspace-events",
                                flags};
            send_cmd(nt, 4, v);
            nt->expect_set = 1;
        } else {
            set_state(nt, "on");
        }
    } else {
        set_state(nt, "unknown: CONFIG GET refused; events come only if "
                      "the server's notify-keyspace-events has E and x");
    }
    {
        const char *v[2] = {"SUBSCRIBE", nt->channel};
        send_cmd(nt, 2, v);
    }
    nt->expect = nt->expect_set ? N_SET : N_SUB;
}

static void on_message(struct redis_notify *nt, const redisReply *r)
{
    char key[TALLY_KEY_MAX * 3 + 2];
    size_t klen;
    const redisReply *p;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        !strcmp(r->element[0]->str, "pong")) {
        run_barriers(nt, 0); /* a barrier's PING (subscribed form) */
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message"))
        return;
    p = r->element[2];
    if (p->type != REDIS_REPLY_STRING ||
        redis_notify_key(&nt->keys, p->str, p->len, key, &klen) < 0)
        return;
    nt->seen++;
    if (nt->cfg.expired)
        nt->cfg.expired(nt->cfg.ctx, key, klen);
}

static void on_reply(struct redis_notify *nt, const redisReply *r)
{
    char why[160];

    switch (nt->expect) {
    case N_AUTH:
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof why, "off: AUTH refused: %.100s", r->str);
            set_state(nt, why);
            nt->backoff_ms = NOTIFY_BACKOFF_MAX_MS; /* not soon better */
            lost(nt, why);
            return;
        }
        nt->expect = N_GET;
        return;
    case N_GET:
        on_flags(nt, r);
        return;
    case N_SET:
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof why, "off: CONFIG SET notify-keyspace-"
                     "events refused (%.60s); set E and x on the server",
                     r->str);
            set_state(nt, why);
        } else {
            set_state(nt, "on");
        }
        nt->expect = N_SUB;
        return;
    case N_SUB:
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof why, "off: SUBSCRIBE refused: %.100s",
                     r->str);
            set_state(nt, why);
            nt->backoff_ms = NOTIFY_BACKOFF_MAX_MS; /* an ACL: not soon */
            lost(nt, why);
            return;
        }
        nt->backoff_ms = NOTIFY_BACKOFF_MIN_MS;
        nt->subscribed = 1;
        if (!strncmp(nt->state, "off while", 9))
            set_state(nt, "on"); /* back after a reconnect */
        nt->expect = N_MSG;
        return;
    case N_MSG:
        on_message(nt, r);
        return;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct redis_notify *nt = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    void *reply;

    if (redis_feed(nt->reader, in) < 0) {
        lost(nt, "protocol error");
        return;
    }
    for (;;) {
        reply = NULL;
        if (redisReaderGetReply(nt->reader, &reply) != REDIS_OK) {
            lost(nt, "protocol error");
            return;
        }
        if (!reply)
            return;
        on_reply(nt, reply);
        freeReplyObject(reply);
        if (!nt->bev)
            return; /* the reply dropped the connection */
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct redis_notify *nt = arg;

    if (what & BEV_EVENT_CONNECTED) {
        const char *get[3] = {"CONFIG", "GET", "notify-keyspace-events"};
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        nt->up = 1;
        nt->expect = N_GET;
        if (nt->cfg.pass) {
            const char *v[3] = {"AUTH",
                                nt->cfg.user ? nt->cfg.user : nt->cfg.pass,
                                nt->cfg.pass};
            send_cmd(nt, nt->cfg.user ? 3 : 2, v);
            nt->expect = N_AUTH;
        }
        send_cmd(nt, 3, get);
        return;
    }
    lost(nt, what & BEV_EVENT_EOF ? "connection closed by the server"
                                  : evutil_socket_error_to_string(
                                        EVUTIL_SOCKET_ERROR()));
}

static void connect_start(struct redis_notify *nt)
{
    if (nt->cfg.tls) {
        SSL *ssl = redis_tls_ssl(nt->cfg.tls, nt->cfg.host);
        nt->bev = ssl ? bufferevent_openssl_socket_new(
                            nt->cfg.evb, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                            BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (nt->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(nt->bev, 1);
        else if (ssl)
            SSL_free(ssl);
    } else {
        nt->bev = bufferevent_socket_new(nt->cfg.evb, -1,
                                         BEV_OPT_CLOSE_ON_FREE);
    }
    if (!nt->bev) {
        lost(nt, "cannot make a socket");
        return;
    }
    bufferevent_setcb(nt->bev, read_cb, NULL, event_cb, nt);
    bufferevent_enable(nt->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect_hostname(nt->bev, NULL, AF_UNSPEC,
                                            nt->cfg.host, nt->cfg.port) < 0)
        lost(nt, "cannot resolve the host");
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_start(arg);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

struct redis_notify *redis_notify_open(const struct redis_notify_cfg *cfg)
{
    struct redis_notify *nt = xcalloc(1, sizeof *nt);

    nt->cfg = *cfg;
    nt->cfg.host = xstrdup(cfg->host);
    nt->cfg.user = dup_or_null(cfg->user);
    nt->cfg.pass = dup_or_null(cfg->pass);
    nt->cfg.prefix = xstrdup(cfg->prefix);
    nt->keys.prefix = nt->cfg.prefix;
    nt->keys.plen = strlen(nt->cfg.prefix);
    snprintf(nt->channel, sizeof nt->channel, "__keyevent@%d__:expired",
             cfg->db);
    nt->reader = redisReaderCreate();
    nt->bar_tail = &nt->bar_head;
    nt->backoff_ms = NOTIFY_BACKOFF_MIN_MS;
    nt->ev_reconnect = evtimer_new(cfg->evb, reconnect_cb, nt);
    snprintf(nt->state, sizeof nt->state, "connecting");
    connect_start(nt);
    return nt;
}

void redis_notify_close(struct redis_notify *nt)
{
    if (!nt)
        return;
    run_barriers(nt, 1);
    if (nt->bev)
        bufferevent_free(nt->bev);
    event_free(nt->ev_reconnect);
    redisReaderFree(nt->reader);
    free((char *)nt->cfg.host);
    free((char *)nt->cfg.user);
    free((char *)nt->cfg.pass);
    free((char *)nt->cfg.prefix);
    free(nt);
}

int redis_notify_barrier(struct redis_notify *nt,
                         void (*fn)(void *ctx, void *arg), void *ctx,
                         void *arg)
{
    const char *v[1] = {"PING"};
    struct barrier *b;

    if (!nt || !nt->subscribed || !nt->bev)
        return -1;
    b = xcalloc(1, sizeof *b);
    b->fn = fn;
    b->ctx = ctx;
    b->arg = arg;
    *nt->bar_tail = b;
    nt->bar_tail = &b->next;
    send_cmd(nt, 1, v);
    return 0;
}

const char *redis_notify_state(const struct redis_notify *nt)
{
    return nt->state;
}

uint64_t redis_notify_seen(const struct redis_notify *nt)
{
    return nt->seen;
}
