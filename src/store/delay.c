/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * delay.c - the test store: another store (the engine) behind an answer
 * that always comes later.  Every operation is copied (keys, values, the
 * idempotency id: the caller's buffers may move on at once), queued, and
 * returns STORE_PENDING; on the next pass of the event loop the queue is
 * shuffled and each operation runs on the inner store and gets its done()
 * call.  So the command layer's re-run of requests (src/cmd/replay.c) and
 * the daemon's and front ends' handling of CMD_PENDING are exercised
 * without PostgreSQL, with answers out of order across connections (one
 * caller's, store_req.order, stay in order: it is `ordered`, as Redis is,
 * so pipelined look-ahead runs over it too).
 *
 * Batches, optimistically, as a remote store over a shared database may
 * do them: an operation of an open batch runs, on its pass, inside an inner
 * batch that first replays the batch's earlier operations and is then
 * rolled back, so it sees the batch's own writes and changes nothing; its
 * result is provisional.  The commit, on its pass, replays every operation
 * in one inner batch and compares each result with the provisional one
 * (rc, found, value, n and the arrays; not expiry times, which move with
 * the clock): all equal, the inner batch commits; else something else
 * changed a key in between and the commit answers STORE_ECONFLICT with
 * nothing applied, which makes the command layer run its request again.
 * So the re-run of batches and its conflict path are exercised without
 * PostgreSQL.  Only tests and the hidden `tallyd --store delay+engine:DIR`
 * use it (delay.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "delay.h"
#include "util.h"

/* One operation waiting for its pass, owning copies of what it names. */
struct delayed {
    struct store_req req;       /* req.batch: the batch it belongs to */
    store_done_fn done;
    void *arg;
    int want_founds;            /* the caller asked which DEL keys existed */
    int commit;                 /* req.batch's commit, not an operation */
    size_t seq;                 /* its place in the queue of its pass */
    char *mem;                  /* the copies: key, keys, prefix, id */
    /* In a batch, once run: the provisional result to check at commit. */
    struct store_res seen;
    int64_t *seen_values;
    unsigned char *seen_founds;
};

/* An open batch: its operations so far, in order, with their results. */
struct store_batch {
    struct delayed **ops;
    size_t n, cap;
    int queued;                 /* an operation (or the commit) waits */
    int aborted;                /* abort came while one waited */
    unsigned attempt;           /* conflicts of its request before it */
};

struct store_delay {
    struct store base;          /* base.db: the inner store's, if any */
    struct store *inner;        /* borrowed */
    struct event *ev;           /* runs the queue on the next pass */
    struct delayed **q;
    size_t n, cap;
    uint64_t rng;               /* the shuffle's state (xorshift64) */
    uint64_t ops;               /* operations run, for tests */
};

static struct store_delay *self(struct store *st)
{
    return (struct store_delay *)st;
}

static uint64_t next_rand(struct store_delay *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

/* A copy of req whose pointers all point into one allocation (*mem). */
static void copy_req(struct delayed *op, const struct store_req *req)
{
    size_t sz = req->klen + req->plen + req->oncelen;
    char *p;

    for (size_t i = 0; i < req->nkeys; i++)
        sz += req->klens[i];
    sz += req->nkeys * (sizeof(char *) + sizeof(size_t) + sizeof(int64_t));
    op->req = *req;
    p = op->mem = xmalloc(sz ? sz : 1);
    if (req->nkeys) {
        const char **keys = (const char **)(void *)p;
        size_t *klens = (size_t *)(void *)(p + req->nkeys * sizeof(char *));
        int64_t *nums = (int64_t *)(void *)(p + req->nkeys *
                                            (sizeof(char *) + sizeof(size_t)));
        p += req->nkeys * (sizeof(char *) + sizeof(size_t) + sizeof(int64_t));
        for (size_t i = 0; i < req->nkeys; i++) {
            klens[i] = req->klens[i];
            nums[i] = req->nums ? req->nums[i] : 0;
            keys[i] = p;
            memcpy(p, req->keys[i], klens[i]);
            p += klens[i];
        }
        op->req.keys = keys;
        op->req.klens = klens;
        op->req.nums = req->nums ? nums : NULL;
    }
    if (req->key) {
        op->req.key = memcpy(p, req->key, req->klen);
        p += req->klen;
    }
    if (req->prefix) {
        op->req.prefix = memcpy(p, req->prefix, req->plen);
        p += req->plen;
    }
    if (req->once)
        op->req.once = memcpy(p, req->once, req->oncelen);
}

/* Run req on the inner store into *res, with arrays for MGET and DEL that
 * the caller frees. */
static void inner_exec(struct store_delay *d, const struct delayed *op,
                       struct store_res *res, int64_t **values,
                       unsigned char **founds)
{
    size_t k = op->req.nkeys;
    struct store_req req = op->req;

    req.batch = NULL; /* the inner store's one batch needs no handle */
    store_res_init(res);
    *values = NULL;
    *founds = NULL;
    if (op->req.op == STORE_MGET) {
        res->values = *values = xcalloc(k ? k : 1, sizeof **values);
        res->founds = *founds = xcalloc(k ? k : 1, 1);
    } else if (op->req.op == STORE_DEL && op->want_founds) {
        res->founds = *founds = xcalloc(k ? k : 1, 1);
    }
    if (store_exec(d->inner, &req, res, NULL, NULL) != STORE_DONE) {
        store_res_init(res);
        res->rc = STORE_EIO;
        snprintf(res->detail, sizeof res->detail,
                 "the delay store's inner store answered later");
    }
    d->ops++;
}

static void delayed_free(struct delayed *op)
{
    free(op->seen_values);
    free(op->seen_founds);
    free(op->mem);
    free(op);
}

static void batch_free(struct store_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        delayed_free(b->ops[i]);
    free(b->ops);
    free(b);
}

/* Does the replayed result r agree with what op was shown? */
static int same(const struct delayed *op, const struct store_res *r)
{
    const struct store_res *s = &op->seen;
    size_t k = s->n_items;

    if (r->rc != s->rc || r->found != s->found || r->value != s->value ||
        r->n != s->n || r->n_items != k)
        return 0;
    if (op->seen_values && memcmp(r->values, op->seen_values,
                                  k * sizeof *r->values))
        return 0;
    return !op->seen_founds || !memcmp(r->founds, op->seen_founds, k);
}

/* Replay b's operations inside an open inner batch: 1 if each gave what it
 * was shown (check), always 1 without check. */
static int replay(struct store_delay *d, struct store_batch *b, int check)
{
    int ok = 1;

    for (size_t i = 0; i < b->n && ok; i++) {
        struct store_res r;
        int64_t *values;
        unsigned char *founds;

        inner_exec(d, b->ops[i], &r, &values, &founds);
        ok = !check || same(b->ops[i], &r);
        free(values);
        free(founds);
    }
    return ok;
}

/* An operation of batch b: run it over the batch's own writes, change
 * nothing, keep its result for the commit's check. */
static void run_in_batch(struct store_delay *d, struct delayed *op)
{
    struct store_batch *b = op->req.batch;
    struct store_batch *inner_b = NULL;
    struct store_res res;
    int64_t *values;
    unsigned char *founds;

    b->queued = 0;
    if (b->aborted) {
        store_res_init(&res);
        res.rc = STORE_EUNAVAIL;
        snprintf(res.detail, sizeof res.detail, "the batch was aborted");
        op->done(op->arg, &res);
        delayed_free(op);
        batch_free(b);
        return;
    }
    if (d->inner->ops->batch_begin(d->inner, 0, &inner_b) != STORE_OK) {
        store_res_init(&res);
        res.rc = STORE_EIO;
        snprintf(res.detail, sizeof res.detail,
                 "the delay store's inner batch did not open");
        op->done(op->arg, &res);
        delayed_free(op);
        return;
    }
    replay(d, b, 0);
    inner_exec(d, op, &res, &values, &founds);
    d->inner->ops->batch_abort(d->inner, inner_b);
    op->seen = res;
    op->seen_values = values;
    op->seen_founds = founds;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        b->ops = xrealloc(b->ops, b->cap * sizeof *b->ops);
    }
    b->ops[b->n++] = op;
    op->done(op->arg, &res);
}

static void conflict_cb(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *op = arg;

    (void)fd;
    (void)what;
    op->done(op->arg, &op->seen);
    delayed_free(op);
}

/* The commit of batch b: replay and check everything in one inner batch.
 * A conflict answers after a jittered wait that grows with the attempt,
 * as a remote store's does, so that batches that keep meeting spread. */
static void run_commit(struct store_delay *d, struct delayed *op)
{
    struct store_batch *b = op->req.batch;
    struct store_batch *inner_b = NULL;
    struct store_res res;

    store_res_init(&res);
    if (d->inner->ops->batch_begin(d->inner, 0, &inner_b) != STORE_OK) {
        res.rc = STORE_EIO;
        snprintf(res.detail, sizeof res.detail,
                 "the delay store's inner batch did not open");
    } else if (!replay(d, b, 1)) {
        d->inner->ops->batch_abort(d->inner, inner_b);
        res.rc = STORE_ECONFLICT;
        snprintf(res.detail, sizeof res.detail, "a key the batch read was "
                 "changed before its commit");
        long us = store_conflict_backoff_us(b->attempt, next_rand(d));
        struct timeval tv = {us / 1000000, us % 1000000};
        op->seen = res;
        op->req.batch = NULL;
        batch_free(b);
        if (event_base_once(event_get_base(d->ev), -1, EV_TIMEOUT,
                            conflict_cb, op, &tv) == 0)
            return;
        op->done(op->arg, &res);
        delayed_free(op);
        return;
    } else {
        d->inner->ops->batch_commit(d->inner, inner_b, &res, NULL, NULL);
    }
    op->done(op->arg, &res);
    delayed_free(op);
    batch_free(b);
}

/* Run one operation on the inner store and hand its result to done(). */
static void run_one(struct store_delay *d, struct delayed *op)
{
    struct store_res res;
    int64_t *values;
    unsigned char *founds;

    if (op->commit) {
        run_commit(d, op);
        return;
    }
    if (op->req.batch) {
        run_in_batch(d, op);
        return;
    }
    inner_exec(d, op, &res, &values, &founds);
    op->done(op->arg, &res);
    free(values);
    free(founds);
    delayed_free(op);
}

/* The next pass: everything queued before it, in a shuffled order (what
 * done() queues meanwhile waits for the pass after). */
static void on_pass(evutil_socket_t fd, short what, void *arg)
{
    struct store_delay *d = arg;
    size_t n = d->n;
    struct delayed **batch = d->q;

    d->q = NULL;
    d->n = d->cap = 0;
    for (size_t i = 0; i < n; i++)
        batch[i]->seq = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(next_rand(d) % i);
        struct delayed *t = batch[i - 1];
        batch[i - 1] = batch[j];
        batch[j] = t;
    }
    /* Ordered (store.h): the places one caller's operations got keep them
     * in the order made, so only different callers' interleave. */
    for (size_t i = 0; i < n; i++) {
        size_t first = i;
        if (!batch[i]->req.order)
            continue;
        for (size_t j = i + 1; j < n; j++)
            if (batch[j]->req.order == batch[i]->req.order &&
                batch[j]->seq < batch[first]->seq)
                first = j;
        struct delayed *t = batch[i];
        batch[i] = batch[first];
        batch[first] = t;
    }
    for (size_t i = 0; i < n; i++)
        run_one(d, batch[i]);
    free(batch);
}

static void queue(struct store_delay *d, struct delayed *op)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 16;
        d->q = xrealloc(d->q, d->cap * sizeof *d->q);
    }
    d->q[d->n++] = op;
    if (d->n == 1)
        event_active(d->ev, EV_TIMEOUT, 0);
}

static int delay_exec(struct store *st, const struct store_req *req,
                      struct store_res *res, store_done_fn done, void *arg)
{
    struct store_delay *d = self(st);
    struct delayed *op;

    if (!done) {
        /* A caller that cannot wait (outside any request): at once, as a
         * remote store could not. */
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "the delay store answers only later");
        return STORE_DONE;
    }
    op = xcalloc(1, sizeof *op);
    copy_req(op, req);
    op->done = done;
    op->arg = arg;
    op->want_founds = res->founds != NULL;
    if (req->batch)
        req->batch->queued = 1;
    queue(d, op);
    return STORE_PENDING;
}

static int delay_batch_begin(struct store *st, unsigned attempt,
                             struct store_batch **out)
{
    (void)st;
    *out = xcalloc(1, sizeof **out);
    (*out)->attempt = attempt;
    return STORE_OK;
}

static int delay_batch_commit(struct store *st, struct store_batch *b,
                              struct store_res *res, store_done_fn done,
                              void *arg)
{
    struct delayed *op;

    if (!done) {
        batch_free(b);
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "the delay store answers only later");
        return STORE_DONE;
    }
    op = xcalloc(1, sizeof *op);
    op->commit = 1;
    op->req.batch = b;
    op->done = done;
    op->arg = arg;
    b->queued = 1;
    queue(self(st), op);
    return STORE_PENDING;
}

static void delay_batch_abort(struct store *st, struct store_batch *b)
{
    (void)st;
    if (b->queued)
        b->aborted = 1; /* its waiting operation frees it */
    else
        batch_free(b);
}

static tally_ticket delay_durable(const struct store *st)
{
    return store_durable(((const struct store_delay *)st)->inner);
}

static int64_t delay_now_ms(const struct store *st)
{
    return store_now_ms(((const struct store_delay *)st)->inner);
}

static int delay_ready(const struct store *st, char *why, size_t n)
{
    return store_ready(((const struct store_delay *)st)->inner, why, n);
}

static size_t delay_info(const struct store *st, struct store_info_kv *kv,
                         size_t max)
{
    const struct store_delay *d = (const struct store_delay *)st;
    size_t n = store_info(d->inner, kv, max);

    if (n && strcmp(kv[0].name, "store") == 0)
        snprintf(kv[0].value, sizeof kv[0].value, "delay+%s",
                 d->inner->ops->name);
    /* How many operations ran, so tests can tell how many a request took
     * (INFO store_delay_ops). */
    if (n < max) {
        kv[n].name = "store_delay_ops";
        snprintf(kv[n].value, sizeof kv[n].value, "%llu",
                 (unsigned long long)d->ops);
        n++;
    }
    return n;
}

static void delay_stats(const struct store *st, tally_stats *out)
{
    store_stats(((const struct store_delay *)st)->inner, out);
}

/* Runs what is still queued (its callers are told, so whatever they keep
 * for it is freed), then frees the store; the inner one stays open. */
static void delay_close(struct store *st)
{
    struct store_delay *d = self(st);

    while (d->n)
        on_pass(-1, 0, d);
    event_free(d->ev);
    free(d);
}

static const struct store_ops delay_ops = {
    .name = "delay",
    .sync_only = 0,
    .ordered = 1,
    .exec = delay_exec,
    .batch_begin = delay_batch_begin,
    .batch_commit = delay_batch_commit,
    .batch_abort = delay_batch_abort,
    .durable = delay_durable,
    .now_ms = delay_now_ms,
    .ready = delay_ready,
    .info = delay_info,
    .close = delay_close,
    .stats = delay_stats,
};

int store_delay_open(struct event_base *base, struct store *inner,
                     uint64_t seed, struct store **out)
{
    struct store_delay *d = xcalloc(1, sizeof *d);

    d->base.ops = &delay_ops;
    d->base.db = NULL; /* nothing above may reach the engine around it */
    d->inner = inner;
    d->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    d->ev = event_new(base, -1, 0, on_pass, d);
    if (!d->ev) {
        free(d);
        *out = NULL;
        return -1;
    }
    *out = &d->base;
    return 0;
}

uint64_t store_delay_ops(const struct store *st)
{
    return ((const struct store_delay *)st)->ops;
}
