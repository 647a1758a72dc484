/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_xact.c - store batches on PostgreSQL (store.h "Atomic batches"):
 * MULTI/EXEC, scripts, RENAME/COPY and HTTP /v1/batch as one atomic step,
 * also with many tallyd instances on one database.  pg.c routes every
 * operation whose req->batch is set here; pg_batch.c runs the commit inside
 * one of its transactions; the SQL is pg_sql.c's.
 *
 * Optimistic, checked at commit.  A batch holds no connection and no lock
 * while its request is re-run (docs/store.md): it keeps a private view of
 * the keys it touched.  The first operation on a key reads it (a plain GET
 * through the queue, so it sees every commit before it); every operation
 * then runs in C over the view (pg_batch_run, the code a transaction's slow
 * operations run), so later operations of the batch see its own writes and
 * most answer at once.  These results are provisional.  The commit is one
 * operation of the ordinary pipeline: its keys (every key the batch
 * touched, read or written) are locked in one sorted statement with the
 * batch's other slow keys (PG_S_LOCK, placeholders for missing ones, so no
 * instance can create them meanwhile), and pg_xact_apply runs the batch's
 * operations again, in order, over the locked rows.  Each must give the
 * result it gave before (rc, found, value, n and its arrays; not expiry
 * times, which move with the clock); then the rows it leaves are written
 * back and the transaction commits.  If one differs, something committed in
 * between: the rows are put back as they were, and the commit answers
 * STORE_ECONFLICT after a short jittered wait, so the command layer runs the
 * whole request again with a new batch (replay.c, capped).  Nothing was
 * shown before the commit, so the client sees one serial order: the
 * commit's.
 *
 * Why not an interactive transaction on a dedicated connection: it would
 * hold row locks across the client's round trips and re-runs, need a pool
 * and its limits, and deadlock between instances taking keys in different
 * orders (40P01 and a re-run anyway).  Here the locks are taken in one
 * sorted statement and held only for the commit's own transaction, so
 * instances never deadlock on batches, and a batch costs one read per key
 * (those of MULTI's queue, or a script's KEYS, read together: read-ahead,
 * pg_xact_prefetch) plus the commit's transaction.  40001/40P01 of that
 * transaction re-run it as for any batch (pg.c).
 *
 * Faults: a read that fails (the database is down) fails the operation and
 * the commit (STORE_EUNAVAIL, nothing applied).  A connection lost after
 * the commit's Sync was sent: STORE_EUNKNOWN, as for any change (pg.c).
 * DBSIZE inside a batch (STORE_COUNT) is the database's count plus what the
 * batch's own writes changed (keys it created or deleted); it is not checked
 * at commit, so counters another instance creates meanwhile may or may not
 * be in it.  Not inside a batch: SCAN/KEYS, FLUSH (STORE_EUNSUPPORTED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pg_int.h"
#include "view.h"

/* One operation of the batch and what it was shown. */
struct xsub {
    struct pg_op *op;          /* a copy of the request (keys live here) */
    struct store_res seen;
    int64_t *values;           /* seen's arrays, owned */
    unsigned char *founds;
};

struct store_batch {
    struct pg_store *st;
    struct pg_batch *view;     /* its keys; slow: read asked, got: known */
    struct xsub *subs;
    size_t n, cap;
    /* The operation waiting for its keys' reads. */
    struct xsub *wait;
    store_done_fn done;
    void *arg;
    unsigned reads;            /* reads in flight (the COUNT's too) */
    unsigned char *was;        /* per view key: it existed when read */
    size_t wascap;
    int counting;              /* the wait is a COUNT's, not wait's */
    struct store_res count;    /* its answer from the database */
    int in_exec;               /* inside pg_xact_exec: answer by return */
    int aborted;               /* abort came while reads were in flight */
    int failed;                /* a read's error: the batch fails with it */
    char why[160];
    /* The commit. */
    store_done_fn cdone;
    void *carg;
    struct store_res cres;
    struct event *ev_backoff;
    unsigned attempt;          /* conflicts of its request before it */
};

/* One read of one key of the view. */
struct xread {
    struct store_batch *b;
    size_t ki;
};

static void xact_free(struct store_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        pg_op_free(b->subs[i].op);
        free(b->subs[i].values);
        free(b->subs[i].founds);
    }
    free(b->subs);
    free(b->was);
    pg_batch_free(b->view);
    if (b->ev_backoff)
        event_free(b->ev_backoff);
    free(b);
}

int pg_xact_begin(struct store *s, unsigned attempt,
                  struct store_batch **out)
{
    struct store_batch *b = xcalloc(1, sizeof *b);

    b->attempt = attempt;
    b->st = (struct pg_store *)s;
    b->view = pg_batch_new();
    *out = b;
    return STORE_OK;
}

static int64_t store_now(const struct pg_store *st)
{
    return pg_wall_ms() + st->clock_off_ms;
}

/* Run x over the view and keep what it showed. */
static void run_sub(struct store_batch *b, struct xsub *x)
{
    struct pg_op *op = x->op;

    b->view->now_ms = store_now(b->st);
    memset(&op->res, 0, sizeof op->res);
    op->res.now_ms = b->view->now_ms;
    pg_batch_run(b->view, op);
    x->seen = op->res;
    x->values = op->values;
    x->founds = op->founds;
    op->values = NULL;
    op->founds = NULL;
    x->seen.values = x->values;
    x->seen.founds = x->founds;
}

static void fail_res(struct store_res *res, int rc, const char *why)
{
    store_res_init(res);
    res->rc = rc;
    snprintf(res->detail, sizeof res->detail, "%s", why);
}

/* The waiting operation's reads are all in: answer it. */
static void finish_wait(struct store_batch *b)
{
    struct xsub *x = b->wait;
    struct store_res res;

    b->wait = NULL;
    if (b->counting && !b->aborted && !b->failed) {
        b->counting = 0;
        res = b->count;
        for (size_t i = 0; i < b->view->nkeys; i++)
            res.n += (uint64_t)b->view->keys[i].exists - b->was[i];
        b->done(b->arg, &res);
        return;
    }
    b->counting = 0;
    if (b->aborted) {
        fail_res(&res, STORE_EUNAVAIL, "postgresql: the batch was aborted");
        b->done(b->arg, &res);
        xact_free(b);
        return;
    }
    if (b->failed) {
        fail_res(&res, b->failed, b->why);
        b->done(b->arg, &res);
        return;
    }
    run_sub(b, x);
    b->done(b->arg, &x->seen);
}

static void read_in(struct store_batch *b, size_t ki,
                    const struct store_res *res)
{
    struct pg_key *k = &b->view->keys[ki];

    b->reads--;
    if (ki >= b->wascap) {
        b->wascap = b->view->capkeys > ki ? b->view->capkeys : ki + 1;
        b->was = xrealloc(b->was, b->wascap);
    }
    if (res->rc == STORE_OK || res->rc == STORE_NOTFOUND) {
        k->got = 1;
        k->exists = res->rc == STORE_OK;
        b->was[ki] = (unsigned char)k->exists;
        k->n = k->exists ? res->value : 0;
        k->expire_at = k->exists ? res->expire_at : 0;
    } else if (!b->failed) {
        b->failed = res->rc == STORE_EUNKNOWN ? STORE_EUNAVAIL : res->rc;
        snprintf(b->why, sizeof b->why, "%s",
                 res->detail[0] ? res->detail : "postgresql: a read failed");
    }
}

static void count_done(void *arg, const struct store_res *res)
{
    struct store_batch *b = arg;

    b->reads--;
    b->count = *res;
    if (res->rc < 0 && !b->failed) {
        b->failed = res->rc == STORE_EUNKNOWN ? STORE_EUNAVAIL : res->rc;
        snprintf(b->why, sizeof b->why, "%s", res->detail);
    }
    if (b->reads == 0)
        finish_wait(b);
}

/* DBSIZE inside the batch: the database's count, then the batch's own
 * creations and deletions on top (finish_wait). */
static int count_in(struct store_batch *b, const struct store_req *req,
                    struct store_res *res, store_done_fn done, void *arg)
{
    struct store_req c = *req;

    c.batch = NULL;
    b->reads++;
    if (b->st->base.ops->exec(&b->st->base, &c, res, count_done, b) ==
        STORE_DONE) {
        b->reads--;
        return STORE_DONE; /* the database is down: its error */
    }
    b->counting = 1;
    b->done = done;
    b->arg = arg;
    return STORE_PENDING;
}

static void read_done(void *arg, const struct store_res *res)
{
    struct xread *xr = arg;
    struct store_batch *b = xr->b;

    read_in(b, xr->ki, res);
    free(xr);
    if (b->reads == 0 && !b->in_exec) {
        if (b->wait || b->counting)
            finish_wait(b);
        else if (b->aborted)
            xact_free(b); /* only read-ahead was in flight */
    }
}

/* Ask for key ki of the view. */
static void read_key(struct store_batch *b, size_t ki)
{
    const struct pg_key *k = &b->view->keys[ki];
    struct store_req get = {.op = STORE_GET, .key = k->k, .klen = k->klen};
    struct xread *xr = xcalloc(1, sizeof *xr);
    struct store_res res;

    xr->b = b;
    xr->ki = ki;
    b->view->keys[ki].slow = 1;
    b->reads++;
    store_res_init(&res);
    if (b->st->base.ops->exec(&b->st->base, &get, &res, read_done, xr) ==
        STORE_DONE) {
        read_in(b, ki, &res);
        free(xr);
    }
}

/* res shows what x was shown, in the caller's arrays if it gave some. */
static void show_sub(const struct xsub *x, struct store_res *res)
{
    int64_t *values = res->values;
    unsigned char *founds = res->founds;
    size_t k = x->seen.n_items;

    *res = x->seen;
    if (values && x->values) {
        memcpy(values, x->values, k * sizeof *values);
        res->values = values;
    }
    if (founds && x->founds) {
        memcpy(founds, x->founds, k);
        res->founds = founds;
    }
}

int pg_xact_exec(struct pg_store *st, const struct store_req *req,
                 struct store_res *res, store_done_fn done, void *arg)
{
    struct store_batch *b = req->batch;
    struct store_req r = *req;
    struct xsub *x;

    (void)st;
    if (b->failed) {
        fail_res(res, b->failed, b->why);
        return STORE_DONE;
    }
    if (req->op == STORE_COUNT)
        return count_in(b, req, res, done, arg);
    if (req->op == STORE_SCAN || req->op == STORE_FLUSH || req->once) {
        fail_res(res, STORE_EUNSUPPORTED, "postgresql: SCAN, KEYS, FLUSH and "
                 "idempotency ids are not supported inside a transaction or "
                 "script");
        return STORE_DONE;
    }
    r.batch = NULL;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        b->subs = xrealloc(b->subs, b->cap * sizeof *b->subs);
    }
    x = &b->subs[b->n++];
    memset(x, 0, sizeof *x);
    x->op = pg_op_new(&r, NULL, NULL);
    b->in_exec = 1;
    for (size_t i = 0; i < pg_op_nkeys(x->op); i++) {
        size_t klen;
        const char *k = pg_op_key(x->op, i, &klen);
        size_t ki = pg_batch_key_add(b->view, k, klen);
        if (!b->view->keys[ki].slow)
            read_key(b, ki);
    }
    b->in_exec = 0;
    if (b->reads) {
        b->wait = x;
        b->done = done;
        b->arg = arg;
        return STORE_PENDING;
    }
    if (b->failed) {
        fail_res(res, b->failed, b->why);
        return STORE_DONE;
    }
    run_sub(b, x);
    show_sub(x, res);
    return STORE_DONE;
}

static void prefetch_key(void *arg, const char *k, size_t klen)
{
    struct store_batch *b = arg;
    size_t ki = pg_batch_key_add(b->view, k, klen);

    if (!b->view->keys[ki].slow)
        read_key(b, ki);
}

void pg_xact_prefetch(struct store *s, struct store_batch *b,
                      const struct store_req *req)
{
    (void)s;
    if (!b->failed && !b->aborted)
        view_req_each_key(req, prefetch_key, b);
}

void pg_xact_abort(struct store *s, struct store_batch *b)
{
    (void)s;
    if (b->reads)
        b->aborted = 1; /* finish_wait answers and frees it */
    else
        xact_free(b);
}

/* Did the re-run give what x was shown? */
static int same(const struct xsub *x, const struct store_res *r)
{
    const struct store_res *s = &x->seen;
    size_t k = s->n_items;

    if (r->rc != s->rc || r->found != s->found || r->value != s->value ||
        r->n != s->n || r->n_items != k)
        return 0;
    if (x->values && (!r->values ||
                      memcmp(r->values, x->values, k * sizeof *x->values)))
        return 0;
    return !x->founds || (r->founds && !memcmp(r->founds, x->founds, k));
}

void pg_xact_apply(struct pg_batch *pb, struct pg_op *op)
{
    struct store_batch *b = op->xact;
    size_t n = b->view->nkeys;
    struct pg_key *saved = xcalloc(n ? n : 1, sizeof *saved);
    int ok = 1;

    for (size_t i = 0; i < n; i++) {
        const struct pg_key *v = &b->view->keys[i];
        saved[i] = pb->keys[pg_batch_key(pb, v->k, v->klen)];
    }
    for (size_t i = 0; i < b->n && ok; i++) {
        struct pg_op *sub = b->subs[i].op;
        free(sub->values);
        free(sub->founds);
        sub->values = NULL;
        sub->founds = NULL;
        memset(&sub->res, 0, sizeof sub->res);
        sub->res.now_ms = pb->now_ms;
        pg_batch_run(pb, sub);
        ok = same(&b->subs[i], &sub->res);
    }
    if (!ok) {
        for (size_t i = 0; i < n; i++) {
            const struct pg_key *v = &b->view->keys[i];
            pb->keys[pg_batch_key(pb, v->k, v->klen)] = saved[i];
        }
        op->res.rc = STORE_ECONFLICT;
        snprintf(op->res.detail, sizeof op->res.detail, "postgresql: a key "
                 "the batch read changed before its commit");
    }
    free(saved);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
    struct store_batch *b = arg;

    (void)fd;
    (void)what;
    b->cdone(b->carg, &b->cres);
    xact_free(b);
}

static void commit_done(void *arg, const struct store_res *res)
{
    struct store_batch *b = arg;

    if (res->rc == STORE_OK)
        b->st->n_xact_commits++;
    if (res->rc == STORE_ECONFLICT) {
        b->st->n_xact_conflicts++;
        /* Jittered and growing with the request's attempts, so batches
         * that keep meeting spread out. */
        long us = store_conflict_backoff_us(b->attempt, (uint64_t)random());
        struct timeval tv = {us / 1000000, us % 1000000};
        b->cres = *res;
        b->ev_backoff = evtimer_new(b->st->evb, backoff_cb, b);
        if (b->ev_backoff && evtimer_add(b->ev_backoff, &tv) == 0)
            return;
    }
    b->cdone(b->carg, res);
    xact_free(b);
}

/* The commit, under the id of once (NULL: none) with answer[0, alen). */
static int commit(struct store *s, struct store_batch *b,
                  const struct store_req *once, const void *answer,
                  size_t alen, struct store_res *res, store_done_fn done,
                  void *arg)
{
    struct pg_store *st = (struct pg_store *)s;
    size_t n = b->view->nkeys;
    struct pg_op *op;
    int rc;

    store_res_init(res);
    if (b->failed || (b->n == 0 && !once) || !done) {
        if (b->failed)
            fail_res(res, b->failed, b->why);
        else if (!done)
            fail_res(res, STORE_EUNSUPPORTED,
                     "postgresql: every operation waits for the database");
        xact_free(b);
        return STORE_DONE;
    }
    /* One slow operation of the next transaction over all its keys. */
    op = xcalloc(1, sizeof *op);
    op->keyv = xcalloc(n, sizeof *op->keyv);
    op->klenv = xcalloc(n, sizeof *op->klenv);
    for (size_t i = 0; i < n; i++) {
        op->keyv[i] = b->view->keys[i].k;
        op->klenv[i] = b->view->keys[i].klen;
    }
    op->req.op = STORE_MSET; /* what pg_batch.c sees: keys it writes */
    op->req.nkeys = n;
    op->req.keys = op->keyv;
    op->req.klens = op->klenv;
    op->xact = b;
    if (once) {
        /* One copy of the id and the answer: pg_batch.c records both in
         * the commit's own transaction. */
        char *p = op->mem = xmalloc(once->oncelen + alen + 1);
        memcpy(p, once->once, once->oncelen);
        op->req.once = p;
        op->req.oncelen = once->oncelen;
        op->req.fingerprint = once->fingerprint;
        if (alen)
            memcpy(p + once->oncelen, answer, alen);
        op->answer = p + once->oncelen;
        op->alen = alen;
    }
    op->done = commit_done;
    op->arg = b;
    b->cdone = done;
    b->carg = arg;
    rc = pg_submit(st, op, res);
    if (rc == STORE_DONE)
        xact_free(b);
    return rc;
}

int pg_xact_commit(struct store *s, struct store_batch *b,
                   struct store_res *res, store_done_fn done, void *arg)
{
    return commit(s, b, NULL, NULL, 0, res, done, arg);
}

int pg_xact_commit_once(struct store *s, struct store_batch *b,
                        const struct store_req *req, const void *answer,
                        size_t alen, struct store_res *res,
                        store_done_fn done, void *arg)
{
    if (!req->once || !req->oncelen || req->oncelen > TALLY_ID_MAX) {
        store_res_init(res);
        fail_res(res, STORE_EIDLEN, "postgresql: bad idempotency id");
        xact_free(b);
        return STORE_DONE;
    }
    return commit(s, b, req, answer, alen, res, done, arg);
}
