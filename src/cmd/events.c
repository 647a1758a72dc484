/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * events.c - the change-event hub (events.h): recorded changes wait in a
 * FIFO until their ticket is durable, then get an id, enter the window ring
 * and reach the subscribers whose key or prefix matches.
 *
 * Subscribers may leave while events are being handed out (a slow one is
 * cut off from inside its own callback), so a leaving subscriber is only
 * marked while a delivery is under way and freed when it ends.  The hub
 * knows nothing of protocols: src/proto/http_events.c and pubsub.c word the
 * events; src/server/outbox.c calls events_release().
 */
#include "events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "util.h"

struct events_sub {
    TAILQ_ENTRY(events_sub) link;
    char *key;
    size_t klen;
    int exact;
    int dead; /* unsubscribed during a delivery; freed after it */
    events_fn fn;
    void *arg;
};

TAILQ_HEAD(events_subs, events_sub);

/* A FIFO of events in an array used as a ring. */
struct events_ring {
    struct events_event *e;
    size_t head, n, cap;
};

struct events {
    struct events_ring pending; /* recorded, not durable yet; grows */
    struct events_ring window;  /* released; fixed capacity, oldest dropped */
    uint64_t next_id;
    struct events_subs subs;
    int delivering;             /* depth of deliveries under way */
    int reap;                   /* some subscriber is marked dead */
    int in_batch;               /* between events_batch_begin and _end */
    int keep;                   /* events_keep_window() was called */
    size_t batch_n;             /* the batch's events still in pending:
                                   its last batch_n entries */
    struct key_block *spare;    /* key_free's, for key_new */
    size_t nspare;
    struct events_stats stats;
};

/* Every change records an event with a copy of its key, freed when the
 * window drops it: a malloc and a free per request, 200 of the few
 * thousand instructions of an INCR (callgrind).  Keys shorter than
 * KEY_SMALL take a block of that size, and a freed block is kept for the
 * next (at most KEY_SPARE_MAX of them, a few hundred KiB). */
#define KEY_SMALL 48
#define KEY_SPARE_MAX 4096

struct key_block {
    struct key_block *next;
};

static char *key_new(struct events *h, size_t klen)
{
    struct key_block *b = h->spare;

    if (klen >= KEY_SMALL)
        return xmalloc(klen + 1);
    if (!b)
        return xmalloc(KEY_SMALL);
    h->spare = b->next;
    h->nspare--;
    return (char *)b;
}

static void key_free(struct events *h, char *key, size_t klen)
{
    struct key_block *b = (struct key_block *)(void *)key;

    if (klen >= KEY_SMALL || h->nspare == KEY_SPARE_MAX) {
        free(key);
        return;
    }
    b->next = h->spare;
    h->spare = b;
    h->nspare++;
}

static struct events_event *ring_at(struct events_ring *r, size_t i)
{
    return &r->e[(r->head + i) % r->cap];
}

static void ring_grow(struct events_ring *r)
{
    size_t cap = r->cap ? r->cap * 2 : 256;
    struct events_event *e = xcalloc(cap, sizeof *e);

    for (size_t i = 0; i < r->n; i++)
        e[i] = *ring_at(r, i);
    free(r->e);
    r->e = e;
    r->head = 0;
    r->cap = cap;
}

static struct events_event ring_pop(struct events_ring *r)
{
    struct events_event ev = r->e[r->head];

    r->head = (r->head + 1) % r->cap;
    r->n--;
    return ev;
}

static void ring_free(struct events_ring *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(ring_at(r, i)->key);
    free(r->e);
    memset(r, 0, sizeof *r);
}

struct events *events_new(size_t window)
{
    struct events *h = xcalloc(1, sizeof *h);
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    h->next_id = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    TAILQ_INIT(&h->subs);
    if (window) {
        h->window.cap = window;
        h->window.e = xcalloc(window, sizeof *h->window.e);
    }
    return h;
}

static void sub_free(struct events_sub *s)
{
    free(s->key);
    free(s);
}

void events_free(struct events *h)
{
    struct events_sub *s;

    if (!h)
        return;
    while ((s = TAILQ_FIRST(&h->subs))) {
        TAILQ_REMOVE(&h->subs, s, link);
        sub_free(s);
    }
    ring_free(&h->pending);
    ring_free(&h->window);
    while (h->spare) {
        struct key_block *b = h->spare;
        h->spare = b->next;
        free(b);
    }
    free(h);
}

/* Is anyone to be handed this change, now or on a resume?  Until then a
 * change is only counted: a subscriber gets the changes released after it
 * subscribed, and a stream shows what came before it by a durable read
 * (docs/events.md), so holding them would cost every change a key copy,
 * a clock read and two ring moves for nobody: about 600 of an INCR's
 * 5,400 instructions (bench/callgrind_incr.sh). */
static int wanted(const struct events *h)
{
    return h->stats.subscribers > 0 || (h->keep && h->window.cap);
}

void events_record(struct events *h, const char *key, size_t klen,
                   enum events_kind kind, enum events_op op, int64_t value,
                   tally_ticket ticket)
{
    struct timespec ts;
    struct events_event *ev;

    h->stats.recorded++;
    if (!wanted(h))
        return;
    if (h->pending.n == h->pending.cap)
        ring_grow(&h->pending);
    clock_gettime(CLOCK_REALTIME, &ts);
    ev = ring_at(&h->pending, h->pending.n++);
    ev->id = 0;
    /* Inside a batch the change is durable only with the batch's commit,
     * whose ticket is not known yet: hold it (and, FIFO, all after it). */
    ev->ticket = h->in_batch ? EVENTS_TICKET_BATCH : ticket;
    h->batch_n += h->in_batch;
    ev->time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ev->kind = kind;
    ev->op = op;
    ev->value = kind == EVENTS_VALUE ? value : 0;
    ev->key = key_new(h, klen);
    memcpy(ev->key, key, klen);
    ev->key[klen] = 0;
    ev->klen = klen;
}

static int sub_matches(const struct events_sub *s,
                       const struct events_event *ev)
{
    if (s->exact)
        return ev->klen == s->klen && memcmp(ev->key, s->key, s->klen) == 0;
    return ev->klen >= s->klen && memcmp(ev->key, s->key, s->klen) == 0;
}

static void reap(struct events *h)
{
    struct events_sub *s, *next;

    if (h->delivering || !h->reap)
        return;
    for (s = TAILQ_FIRST(&h->subs); s; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->dead) {
            TAILQ_REMOVE(&h->subs, s, link);
            sub_free(s);
        }
    }
    h->reap = 0;
}

static void deliver(struct events *h, const struct events_event *ev)
{
    struct events_sub *s;

    h->delivering++;
    TAILQ_FOREACH(s, &h->subs, link)
        if (!s->dead && sub_matches(s, ev))
            s->fn(s->arg, ev);
    h->delivering--;
}

void events_release(struct events *h, tally_ticket durable, int failed)
{
    if (!h)
        return;
    struct events_ring *w = &h->window;

    while (h->pending.n && (failed || h->pending.e[h->pending.head].ticket <=
                                          durable)) {
        struct events_event ev = ring_pop(&h->pending);

        if (ev.ticket == EVENTS_TICKET_BATCH)
            h->batch_n--; /* a failure drops it; the commit will fail too */
        if (ev.ticket > durable) {
            key_free(h, ev.key, ev.klen);
            h->stats.dropped++;
            continue;
        }
        ev.id = h->next_id++;
        h->stats.released++;
        deliver(h, &ev);
        if (!w->cap) {
            key_free(h, ev.key, ev.klen);
            continue;
        }
        if (w->n == w->cap) {
            struct events_event old = ring_pop(w);
            key_free(h, old.key, old.klen);
        }
        *ring_at(w, w->n++) = ev;
    }
    reap(h);
}

void events_batch_begin(struct events *h)
{
    if (!h)
        return;
    h->in_batch = 1;
    h->batch_n = 0;
}

void events_batch_end(struct events *h, int applied, tally_ticket ticket)
{
    if (!h)
        return;
    struct events_ring *r = &h->pending;
    if (applied) {
        for (size_t i = r->n - h->batch_n; i < r->n; i++)
            ring_at(r, i)->ticket = ticket;
    } else {
        for (; h->batch_n; h->batch_n--) {
            struct events_event *ev = ring_at(r, --r->n);
            key_free(h, ev->key, ev->klen);
            h->stats.dropped++;
        }
    }
    h->in_batch = 0;
    h->batch_n = 0;
}

struct events_sub *events_subscribe(struct events *h, const char *key,
                                    size_t klen, int exact, events_fn fn,
                                    void *arg)
{
    struct events_sub *s = xcalloc(1, sizeof *s);

    s->key = xmalloc(klen + 1);
    memcpy(s->key, key, klen);
    s->key[klen] = 0;
    s->klen = klen;
    s->exact = exact;
    s->fn = fn;
    s->arg = arg;
    TAILQ_INSERT_TAIL(&h->subs, s, link);
    h->stats.subscribers++;
    return s;
}

void events_keep_window(struct events *h)
{
    h->keep = 1;
}

void events_unsubscribe(struct events *h, struct events_sub *s)
{
    if (!s || s->dead)
        return;
    h->stats.subscribers--;
    s->dead = 1;
    h->reap = 1;
    reap(h);
}

int events_replay(struct events *h, struct events_sub *sub, uint64_t after)
{
    struct events_ring *w = &h->window;
    uint64_t first = h->next_id - w->n; /* id of the oldest held */

    if (after >= h->next_id || after + 1 < first)
        return -1;
    h->delivering++;
    for (size_t i = (size_t)(after + 1 - first); i < w->n && !sub->dead; i++) {
        const struct events_event *ev = ring_at(w, i);
        if (sub_matches(sub, ev))
            sub->fn(sub->arg, ev);
    }
    h->delivering--;
    reap(h);
    return 0;
}

uint64_t events_last_id(const struct events *h)
{
    return h->next_id - 1;
}

void events_stats_get(const struct events *h, struct events_stats *out)
{
    *out = h->stats;
}

void events_count_cutoff(struct events *h, enum cmd_proto p)
{
    if (p >= 0 && p < CMD_PROTO_COUNT)
        h->stats.cutoff[p]++;
}

const char *events_op_name(enum events_op op)
{
    static const char *const names[EVENTS_OP_COUNT] = {
        [EVENTS_OP_INCRBY] = "incrby", [EVENTS_OP_SET] = "set",
        [EVENTS_OP_MSET] = "mset",     [EVENTS_OP_DEL] = "del",
        [EVENTS_OP_GETDEL] = "getdel", [EVENTS_OP_EXPIRE] = "expire",
        [EVENTS_OP_PERSIST] = "persist", [EVENTS_OP_EXPIRED] = "expired",
    };
    return op >= 0 && op < EVENTS_OP_COUNT ? names[op] : "unknown";
}

/* Redis's names (t_string.c, db.c, expire.c): INCR, DECR and their BY
 * forms notify "incrby"; SET, MSET and SETNX "set"; DEL and GETDEL "del";
 * EXPIRE and its kin "expire", PERSIST "persist", expiry itself
 * "expired". */
const char *events_redis_name(enum events_op op)
{
    static const char *const names[EVENTS_OP_COUNT] = {
        [EVENTS_OP_INCRBY] = "incrby", [EVENTS_OP_SET] = "set",
        [EVENTS_OP_MSET] = "set",      [EVENTS_OP_DEL] = "del",
        [EVENTS_OP_GETDEL] = "del",    [EVENTS_OP_EXPIRE] = "expire",
        [EVENTS_OP_PERSIST] = "persist", [EVENTS_OP_EXPIRED] = "expired",
    };
    return op >= 0 && op < EVENTS_OP_COUNT ? names[op] : "unknown";
}
