/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pubsub.c - the broker (pubsub.h): channels and patterns with their
 * subscribers, PUBLISH, and Redis's keyspace notifications fed by the event
 * hub.
 *
 * Channels and patterns are kept in plain arrays searched in order.
 * DEBT: a publish costs O(channels + patterns); a hash table of channels
 * (Redis's server.pubsub_channels dict) removes the channel part once
 * thousands of distinct channels are subscribed.
 */
#include "pubsub.h"

#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "events.h"
#include "util.h"

/* Redis's notification classes (server.h NOTIFY_*), one bit per letter. */
#define N_KEYSPACE (1 << 0) /* K */
#define N_KEYEVENT (1 << 1) /* E */
#define N_GENERIC (1 << 2)  /* g */
#define N_STRING (1 << 3)   /* $ */
#define N_LIST (1 << 4)     /* l */
#define N_SET (1 << 5)      /* s */
#define N_HASH (1 << 6)     /* h */
#define N_ZSET (1 << 7)     /* z */
#define N_EXPIRED (1 << 8)  /* x */
#define N_EVICTED (1 << 9)  /* e */
#define N_STREAM (1 << 10)  /* t */
#define N_KEYMISS (1 << 11) /* m: not part of A */
#define N_MODULE (1 << 12)  /* d */
#define N_NEW (1 << 13)     /* n: not part of A */
#define N_ALL (N_GENERIC | N_STRING | N_LIST | N_SET | N_HASH | N_ZSET | \
               N_EXPIRED | N_EVICTED | N_STREAM | N_MODULE)

/* Letters in the order Redis prints them after A's classes. */
static const struct { char c; int bit; } letters[] = {
    {'g', N_GENERIC}, {'$', N_STRING}, {'l', N_LIST},    {'s', N_SET},
    {'h', N_HASH},    {'z', N_ZSET},   {'x', N_EXPIRED}, {'e', N_EVICTED},
    {'t', N_STREAM},  {'d', N_MODULE}, {'K', N_KEYSPACE}, {'E', N_KEYEVENT},
    {'m', N_KEYMISS}, {'n', N_NEW},
};
#define NLETTERS (sizeof letters / sizeof letters[0])

/* The classes a change of the event hub can be filed under (event_class). */
#define N_HUB (N_GENERIC | N_STRING | N_EXPIRED)

/* One channel or pattern and who is subscribed to it.  Each is allocated
 * on its own, so clients may keep pointers to it. */
struct topic {
    char *name;
    size_t len;
    struct pubsub_client **subs;
    size_t n, cap;
};

/* The broker's channels or patterns, and a client's own list of what it is
 * subscribed to, in subscription order. */
struct topics {
    struct topic **t;
    size_t n, cap;
};

struct pubsub_client {
    struct pubsub *ps;
    pubsub_fn fn;
    void *arg;
    struct topics chans, pats;
};

struct pubsub {
    struct topics chans, pats;
    struct events *hub;
    struct events_sub *sub; /* the hub subscription for notifications */
    int notify;             /* N_* */
};

static size_t topic_index(const struct topics *ts, const char *name,
                          size_t len)
{
    size_t i = 0;

    while (i < ts->n && !(ts->t[i]->len == len &&
                          memcmp(ts->t[i]->name, name, len) == 0))
        i++;
    return i;
}

static void grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return;
    *cap = *cap ? *cap * 2 : 8;
    *p = xrealloc(*p, *cap * size);
}

static void topics_add(struct topics *ts, struct topic *t)
{
    grow((void **)&ts->t, &ts->cap, ts->n, sizeof *ts->t);
    ts->t[ts->n++] = t;
}

/* The topic for name, created if missing. */
static struct topic *topic_get(struct topics *ts, const char *name,
                               size_t len)
{
    size_t i = topic_index(ts, name, len);
    struct topic *t;

    if (i < ts->n)
        return ts->t[i];
    t = xcalloc(1, sizeof *t);
    t->name = xmalloc(len + 1);
    memcpy(t->name, name, len);
    t->name[len] = 0;
    t->len = len;
    topics_add(ts, t);
    return t;
}

/* Remove entry i; keep_order for a client's list. */
static void topics_remove(struct topics *ts, size_t i, int keep_order)
{
    if (keep_order)
        memmove(&ts->t[i], &ts->t[i + 1], (ts->n - i - 1) * sizeof *ts->t);
    else
        ts->t[i] = ts->t[ts->n - 1];
    ts->n--;
}

static void notify_event(void *arg, const struct events_event *ev);

struct pubsub *pubsub_new(struct events *hub)
{
    struct pubsub *ps = xcalloc(1, sizeof *ps);

    ps->hub = hub; /* subscribed to once notifications are on */
    return ps;
}

void pubsub_free(struct pubsub *ps)
{
    if (!ps)
        return;
    if (ps->sub)
        events_unsubscribe(ps->hub, ps->sub);
    free(ps->chans.t);
    free(ps->pats.t);
    free(ps);
}

/* The N_* bits for classes, or -1 for a letter Redis does not know. */
static int notify_flags(const char *classes, size_t len)
{
    int flags = 0;

    for (size_t i = 0; i < len; i++) {
        size_t k = 0;
        if (classes[i] == 'A') {
            flags |= N_ALL;
            continue;
        }
        while (k < NLETTERS && letters[k].c != classes[i])
            k++;
        if (k == NLETTERS)
            return -1;
        flags |= letters[k].bit;
    }
    return flags;
}

int pubsub_notify_valid(const char *classes, size_t len)
{
    return notify_flags(classes, len) < 0 ? -1 : 0;
}

int pubsub_set_notify(struct pubsub *ps, const char *classes, size_t len)
{
    int flags = notify_flags(classes, len);

    if (flags < 0)
        return -1;
    ps->notify = flags;
    /* The hub's subscription only while some change would be published
     * (a channel letter and a class): the hub holds changes only for a
     * subscriber (events.h), and by default, as in Redis, nothing is
     * notified. */
    int on = (flags & (N_KEYSPACE | N_KEYEVENT)) && (flags & N_HUB);
    if (on && !ps->sub && ps->hub)
        ps->sub = events_subscribe(ps->hub, "", 0, 0, notify_event, ps);
    else if (!on && ps->sub) {
        events_unsubscribe(ps->hub, ps->sub);
        ps->sub = NULL;
    }
    return 0;
}

void pubsub_notify_string(const struct pubsub *ps, char *out)
{
    size_t n = 0;
    size_t k = 0;

    if ((ps->notify & N_ALL) == N_ALL) {
        out[n++] = 'A';
        while (letters[k].c != 'K')
            k++;
    }
    for (; k < NLETTERS; k++)
        if (ps->notify & letters[k].bit)
            out[n++] = letters[k].c;
    out[n] = 0;
}

struct pubsub_client *pubsub_client_new(struct pubsub *ps, pubsub_fn fn,
                                        void *arg)
{
    struct pubsub_client *cl = xcalloc(1, sizeof *cl);

    cl->ps = ps;
    cl->fn = fn;
    cl->arg = arg;
    return cl;
}

void pubsub_client_free(struct pubsub_client *cl)
{
    if (!cl)
        return;
    while (cl->chans.n)
        pubsub_unsubscribe(cl, cl->chans.t[0]->name, cl->chans.t[0]->len, 0);
    while (cl->pats.n)
        pubsub_unsubscribe(cl, cl->pats.t[0]->name, cl->pats.t[0]->len, 1);
    free(cl->chans.t);
    free(cl->pats.t);
    free(cl);
}

int pubsub_subscribe(struct pubsub_client *cl, const char *name, size_t len,
                     int pattern)
{
    struct topic *t = topic_get(pattern ? &cl->ps->pats : &cl->ps->chans,
                                name, len);

    for (size_t i = 0; i < t->n; i++)
        if (t->subs[i] == cl)
            return 0;
    grow((void **)&t->subs, &t->cap, t->n, sizeof *t->subs);
    t->subs[t->n++] = cl;
    topics_add(pattern ? &cl->pats : &cl->chans, t);
    return 1;
}

int pubsub_unsubscribe(struct pubsub_client *cl, const char *name, size_t len,
                       int pattern)
{
    struct topics *ts = pattern ? &cl->ps->pats : &cl->ps->chans;
    struct topics *mine = pattern ? &cl->pats : &cl->chans;
    size_t i = topic_index(mine, name, len), j = 0;
    struct topic *t;

    if (i == mine->n)
        return 0;
    t = mine->t[i];
    topics_remove(mine, i, 1);
    while (t->subs[j] != cl)
        j++;
    t->subs[j] = t->subs[--t->n];
    if (t->n == 0) {
        topics_remove(ts, topic_index(ts, name, len), 0);
        free(t->name);
        free(t->subs);
        free(t);
    }
    return 1;
}

size_t pubsub_client_count(const struct pubsub_client *cl, int pattern)
{
    return pattern ? cl->pats.n : cl->chans.n;
}

const char *pubsub_client_name(const struct pubsub_client *cl, int pattern,
                               size_t i, size_t *len)
{
    const struct topics *mine = pattern ? &cl->pats : &cl->chans;

    *len = mine->t[i]->len;
    return mine->t[i]->name;
}

uint64_t pubsub_publish(struct pubsub *ps, const char *chan, size_t chanlen,
                        const char *msg, size_t msglen)
{
    uint64_t n = 0;
    size_t i = topic_index(&ps->chans, chan, chanlen);

    if (i < ps->chans.n) {
        const struct topic *t = ps->chans.t[i];
        for (size_t j = 0; j < t->n; j++, n++)
            t->subs[j]->fn(t->subs[j]->arg, NULL, 0, chan, chanlen, msg,
                           msglen);
    }
    for (i = 0; i < ps->pats.n; i++) {
        const struct topic *t = ps->pats.t[i];
        if (!cmd_glob_match(t->name, t->len, chan, chanlen))
            continue;
        for (size_t j = 0; j < t->n; j++, n++)
            t->subs[j]->fn(t->subs[j]->arg, t->name, t->len, chan, chanlen,
                           msg, msglen);
    }
    return n;
}

void pubsub_channels(const struct pubsub *ps, const char *pat, size_t patlen,
                     void (*fn)(void *arg, const char *chan, size_t len),
                     void *arg)
{
    for (size_t i = 0; i < ps->chans.n; i++) {
        const struct topic *t = ps->chans.t[i];
        if (!pat || !patlen || cmd_glob_match(pat, patlen, t->name, t->len))
            fn(arg, t->name, t->len);
    }
}

uint64_t pubsub_numsub(const struct pubsub *ps, const char *chan, size_t len)
{
    size_t i = topic_index(&ps->chans, chan, len);

    return i < ps->chans.n ? ps->chans.t[i]->n : 0;
}

uint64_t pubsub_numpat(const struct pubsub *ps)
{
    return ps->pats.n;
}

/* ---- Keyspace notifications -------------------------------------------- */

/* The class Redis files each event under: string commands under $, DEL and
 * EXPIRE under g (generic), expiry itself under x. */
static int event_class(enum events_op op)
{
    switch (op) {
    case EVENTS_OP_INCRBY: case EVENTS_OP_SET: case EVENTS_OP_MSET:
        return N_STRING;
    case EVENTS_OP_EXPIRED:
        return N_EXPIRED;
    default:
        return N_GENERIC;
    }
}

/* Redis's notifyKeyspaceEvent() for db 0: both channels when asked for. */
static void notify_event(void *arg, const struct events_event *ev)
{
    static const char space[] = "__keyspace@0__:", event[] = "__keyevent@0__:";
    struct pubsub *ps = arg;
    const char *name = events_redis_name(ev->op);
    size_t nlen = strlen(name);
    struct buf chan = BUF_INIT;

    if (!(ps->notify & event_class(ev->op)) ||
        !(ps->notify & (N_KEYSPACE | N_KEYEVENT)))
        return;
    if (ps->notify & N_KEYSPACE) {
        buf_add(&chan, space, sizeof space - 1);
        buf_add(&chan, ev->key, ev->klen);
        pubsub_publish(ps, chan.p, chan.len, name, nlen);
        buf_clear(&chan);
    }
    if (ps->notify & N_KEYEVENT) {
        buf_add(&chan, event, sizeof event - 1);
        buf_add(&chan, name, nlen);
        pubsub_publish(ps, chan.p, chan.len, ev->key, ev->klen);
    }
    buf_free(&chan);
}
