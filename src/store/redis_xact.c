/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_xact.c - store batches on the Redis store, on one server and on a
 * cluster (store.h "Atomic batches": MULTI/EXEC, scripts, RENAME/COPY and
 * HTTP /v1/batch as one atomic step with any number of tallyd instances on
 * one Redis).  redis.c and redis_cluster_ops.c route every operation whose
 * req->batch is set here; view.c runs the operations; the commit script is
 * redis_lua.c's lua_commit, formatted by redis_ops.c.
 *
 * Optimistic, checked at commit, as on PostgreSQL (pg_xact.c).  A batch
 * holds nothing on the server while its request is re-run: it keeps a
 * private view of the keys it touched.  The first operation on a key reads
 * it (the ordinary GET script through the pipeline: value and expiry, the
 * instant PEXPIRETIME keeps); every operation then runs in C over the view
 * (view_run), so later operations see the batch's own writes, and most
 * answer at once.  These results are provisional: nothing shows on the
 * server before the commit.  The commit is ONE script: it checks that
 * every key the batch read still has exactly the state read (exists,
 * value, expiry) and only then writes the view's final states (SET with
 * PXAT, DEL), so it is atomic in Redis.  A key that changed answers
 * STORE_ECONFLICT after store_conflict_backoff_us, nothing applied, and the
 * command layer runs the whole request again with a new batch.  Why not
 * MULTI/WATCH on the server: WATCH belongs to a connection, and the one
 * connection is shared by every client of this tallyd (a dedicated
 * connection per batch would hold it across the client's round trips).
 *
 * The commit is an ordinary write of the pipeline: --store-wait-replicas
 * holds its answer for WAIT/WAITAOF, a connection lost after it was sent
 * is STORE_EUNKNOWN, a NOSCRIPT loads the scripts and sends it again.
 *
 * Cluster: a batch's keys must share one hash slot, and the commit goes to
 * its master; with tally's key layout (PREFIX{ESC(key)}) two different
 * counters are in different slots (unless their tags collide), so a batch
 * over two counters is refused with CROSSSLOT, as Redis Cluster refuses a
 * MULTI over several slots; the refusal ends the batch (every later
 * operation and the commit give it too).  A batch under one id keeps its
 * record beside its first counter (redis_ops.c's key layout), so
 * once_answer reads it on that slot's master and the commit writes it
 * there with the counters.
 *
 * Inside a batch, DBSIZE (STORE_COUNT) is the server's count plus the
 * batch's own creations and deletions, not checked at commit.  Not inside
 * a batch: SCAN/KEYS, FLUSH, idempotency ids (STORE_EUNSUPPORTED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "redis_int.h"
#include "view.h"

struct store_batch {
    struct redis_xact_env *env;
    struct view view;
    int slot;                  /* cluster: the batch's slot, -1 none yet */
    unsigned attempt;          /* conflicts of its request before it */
    unsigned reads;            /* reads in flight (the COUNT's too) */
    int in_exec;               /* inside redis_xact_exec: answer by return */
    int aborted;               /* abort came while reads were in flight */
    int failed;                /* a read's error, or CROSSSLOT: the batch
                                  fails with it */
    char why[160];
    /* The operation waiting for its keys' reads (a copy in wmem). */
    int waiting, counting;
    struct store_req wreq;
    char *wmem;
    store_done_fn done;
    void *arg;
    struct store_res count;    /* the COUNT's answer from the server */
    /* Result arrays handed out (MGET, DEL), freed with the batch. */
    void **mem;
    size_t nmem, capmem;
    /* The commit. */
    store_done_fn cdone;
    void *carg;
    struct store_res cres;
    struct event *ev_backoff;
};

struct xread {
    struct store_batch *b;
    size_t ki;
};

static void xact_free(struct store_batch *b)
{
    for (size_t i = 0; i < b->nmem; i++)
        free(b->mem[i]);
    free(b->mem);
    free(b->wmem);
    view_free(&b->view);
    if (b->ev_backoff)
        event_free(b->ev_backoff);
    free(b);
}

static void *keep(struct store_batch *b, size_t n)
{
    void *p = xcalloc(1, n ? n : 1);

    if (b->nmem == b->capmem) {
        b->capmem = b->capmem ? 2 * b->capmem : 8;
        b->mem = xrealloc(b->mem, b->capmem * sizeof *b->mem);
    }
    b->mem[b->nmem++] = p;
    return p;
}

static void fail_res(struct store_res *res, int rc, const char *why)
{
    store_res_init(res);
    res->rc = rc;
    snprintf(res->detail, sizeof res->detail, "%s", why);
}

int redis_xact_begin(struct redis_xact_env *env, unsigned attempt,
                     struct store_batch **out)
{
    struct store_batch *b = xcalloc(1, sizeof *b);

    b->env = env;
    b->attempt = attempt;
    b->slot = -1;
    view_init(&b->view);
    *out = b;
    return STORE_OK;
}

/* Run r over the view into res; MGET's and DEL's arrays are the batch's,
 * copied into the caller's where it gave some (into: 1). */
static void run(struct store_batch *b, const struct store_req *r,
                struct store_res *res, int into)
{
    int64_t *cv = into ? res->values : NULL;
    unsigned char *cf = into ? res->founds : NULL;
    int64_t *values = NULL;
    unsigned char *founds = NULL;
    size_t n = r->nkeys;

    if (r->op == STORE_MGET)
        values = keep(b, n * sizeof *values);
    if (r->op == STORE_MGET || r->op == STORE_DEL)
        founds = keep(b, n);
    b->view.now_ms = b->env->st->ops->now_ms(b->env->st);
    view_run(&b->view, r, res, values, founds);
    if (cv && values) {
        memcpy(cv, values, n * sizeof *cv);
        res->values = cv;
    }
    if (cf && founds) {
        memcpy(cf, founds, n);
        res->founds = cf;
    }
}

/* The waiting operation's reads are all in: answer it. */
static void finish_wait(struct store_batch *b)
{
    struct store_res res;

    b->waiting = 0;
    if (b->aborted) {
        fail_res(&res, STORE_EUNAVAIL, "redis: the batch was aborted");
        b->done(b->arg, &res);
        xact_free(b);
        return;
    }
    if (b->failed) {
        b->counting = 0;
        fail_res(&res, b->failed, b->why);
        b->done(b->arg, &res);
        return;
    }
    if (b->counting) {
        b->counting = 0;
        res = b->count;
        for (size_t i = 0; i < b->view.n; i++)
            res.n += (uint64_t)b->view.keys[i].exists - b->view.keys[i].was;
        b->done(b->arg, &res);
        return;
    }
    store_res_init(&res);
    run(b, &b->wreq, &res, 0);
    b->done(b->arg, &res);
}

static void read_in(struct store_batch *b, size_t ki,
                    const struct store_res *res)
{
    b->reads--;
    if (res->rc == STORE_OK || res->rc == STORE_NOTFOUND) {
        view_read(&b->view, ki, res->rc == STORE_OK, res->value,
                  res->expire_at);
    } else if (!b->failed) {
        b->failed = res->rc == STORE_EUNKNOWN ? STORE_EUNAVAIL : res->rc;
        snprintf(b->why, sizeof b->why, "%s",
                 res->detail[0] ? res->detail : "redis: a read failed");
    }
}

static void read_done(void *arg, const struct store_res *res)
{
    struct xread *xr = arg;
    struct store_batch *b = xr->b;

    read_in(b, xr->ki, res);
    free(xr);
    if (b->reads == 0 && !b->in_exec) {
        if (b->waiting)
            finish_wait(b);
        else if (b->aborted)
            xact_free(b); /* only read-ahead was in flight */
    }
}

/* Ask for key ki of the view through the ordinary pipeline. */
static void read_key(struct store_batch *b, size_t ki)
{
    const struct view_key *k = &b->view.keys[ki];
    struct store_req get = {.op = STORE_GET, .key = k->k, .klen = k->klen};
    struct xread *xr = xcalloc(1, sizeof *xr);
    struct store *st = b->env->st;
    struct store_res res;

    xr->b = b;
    xr->ki = ki;
    b->reads++;
    store_res_init(&res);
    if (st->ops->exec(st, &get, &res, read_done, xr) == STORE_DONE) {
        read_in(b, ki, &res);
        free(xr);
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

/* DBSIZE inside the batch: the server's count, then the batch's own
 * creations and deletions on top (finish_wait). */
static int count_in(struct store_batch *b, const struct store_req *req,
                    struct store_res *res, store_done_fn done, void *arg)
{
    struct store_req c = *req;
    struct store *st = b->env->st;

    c.batch = NULL;
    b->reads++;
    if (st->ops->exec(st, &c, res, count_done, b) == STORE_DONE) {
        b->reads--;
        return STORE_DONE; /* the server is down: its error */
    }
    b->counting = b->waiting = 1;
    b->done = done;
    b->arg = arg;
    return STORE_PENDING;
}

/* A copy of r's keys and numbers in b->wmem, as b->wreq. */
static void keep_req(struct store_batch *b, const struct store_req *r)
{
    size_t n = r->nkeys, bytes = r->klen;
    char *p;
    const char **keys;
    size_t *klens;
    int64_t *nums;

    for (size_t i = 0; i < n; i++)
        bytes += r->klens[i];
    free(b->wmem);
    b->wmem = xmalloc(n * (sizeof *keys + sizeof *klens + sizeof *nums) +
                      bytes + 1);
    keys = (const char **)(void *)b->wmem;
    klens = (size_t *)(void *)(keys + n);
    nums = (int64_t *)(void *)(klens + n);
    p = (char *)(nums + n);
    b->wreq = *r;
    b->wreq.batch = NULL;
    b->wreq.once = NULL;
    b->wreq.prefix = NULL;
    if (r->klen)
        memcpy(p, r->key, r->klen);
    b->wreq.key = p;
    p += r->klen;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, r->keys[i], r->klens[i]);
        keys[i] = p;
        klens[i] = r->klens[i];
        nums[i] = r->nums ? r->nums[i] : 0;
        p += r->klens[i];
    }
    b->wreq.keys = keys;
    b->wreq.klens = klens;
    b->wreq.nums = r->nums ? nums : NULL;
}

/* Cluster: 0 if every key of r is in the batch's slot (which the first
 * key sets), else -1 with the batch failed with CROSSSLOT. */
static int one_slot(struct store_batch *b, const struct store_req *r)
{
    size_t n = view_req_nkeys(r);

    if (!b->env->cluster)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = view_req_key(r, i, &klen);
        int s = redis_cluster_slot(k, klen);
        if (b->slot < 0)
            b->slot = s;
        if (s != b->slot) {
            b->failed = STORE_EUNSUPPORTED;
            snprintf(b->why, sizeof b->why, "CROSSSLOT Keys in request don't "
                     "hash to the same slot (on a Redis Cluster each counter "
                     "has a slot of its own: a transaction or script takes "
                     "one counter)");
            return -1;
        }
    }
    return 0;
}

int redis_xact_exec(const struct store_req *req, struct store_res *res,
                    store_done_fn done, void *arg)
{
    struct store_batch *b = req->batch;
    size_t n;

    store_res_init(res);
    if (b->failed) {
        fail_res(res, b->failed, b->why);
        return STORE_DONE;
    }
    if (req->op == STORE_COUNT)
        return count_in(b, req, res, done, arg);
    if (req->op == STORE_SCAN || req->op == STORE_FLUSH || req->once ||
        req->op == STORE_SAVE || req->op == STORE_BGSAVE) {
        fail_res(res, STORE_EUNSUPPORTED, "redis: SCAN, KEYS, FLUSH and "
                 "idempotency ids are not supported inside a transaction or "
                 "script");
        return STORE_DONE;
    }
    if (req->klen > TALLY_KEY_MAX) {
        fail_res(res, STORE_EKEYLEN, "");
        return STORE_DONE;
    }
    n = view_req_nkeys(req);
    for (size_t i = 0; i < n; i++)
        if (req->klens && req->nkeys && req->klens[i] > TALLY_KEY_MAX) {
            fail_res(res, STORE_EKEYLEN, "");
            return STORE_DONE;
        }
    if (one_slot(b, req) < 0) {
        fail_res(res, b->failed, b->why);
        return STORE_DONE;
    }
    b->in_exec = 1;
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = view_req_key(req, i, &klen);
        size_t before = b->view.n, ki = view_add(&b->view, k, klen);
        if (ki == before)
            read_key(b, ki);
    }
    b->in_exec = 0;
    if (b->reads) {
        keep_req(b, req);
        b->waiting = 1;
        b->done = done;
        b->arg = arg;
        return STORE_PENDING;
    }
    if (b->failed) {
        fail_res(res, b->failed, b->why);
        return STORE_DONE;
    }
    run(b, req, res, 1);
    return STORE_DONE;
}

static void prefetch_key(void *arg, const char *k, size_t klen)
{
    struct store_batch *b = arg;
    size_t before = b->view.n, ki = view_add(&b->view, k, klen);

    if (ki == before)
        read_key(b, ki);
}

void redis_xact_prefetch(struct store *st, struct store_batch *b,
                         const struct store_req *req)
{
    (void)st;
    /* A cluster's batch is one slot, so one counter: nothing to gain, and
     * a key of another slot must fail the operation that names it, not
     * this guess. */
    if (!b->failed && !b->aborted && !b->env->cluster)
        view_req_each_key(req, prefetch_key, b);
}

void redis_xact_abort(struct store *st, struct store_batch *b)
{
    (void)st;
    if (b->reads)
        b->aborted = 1; /* finish_wait answers and frees it */
    else
        xact_free(b);
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

    b->env->n_commits += res->rc == STORE_OK;
    b->env->n_conflicts += res->rc == STORE_ECONFLICT;
    if (res->rc == STORE_ECONFLICT) {
        /* Jittered and growing with the request's attempts, so batches
         * that keep meeting spread out. */
        long us = store_conflict_backoff_us(b->attempt, (uint64_t)random());
        struct timeval tv = {us / 1000000, us % 1000000};
        b->cres = *res;
        snprintf(b->cres.detail, sizeof b->cres.detail, "redis: a key the "
                 "batch read changed before its commit");
        b->ev_backoff = evtimer_new(b->env->evb, backoff_cb, b);
        if (b->ev_backoff && evtimer_add(b->ev_backoff, &tv) == 0)
            return;
    }
    b->cdone(b->carg, res);
    xact_free(b);
}

/* The commit, under an id if once (NULL: none). */
static int commit(struct store_batch *b, const struct redis_once *once,
                  struct store_res *res, store_done_fn done, void *arg)
{
    struct redis_xact_env *env = b->env;
    struct redis_op *op;

    store_res_init(res);
    if (b->failed || (b->view.n == 0 && !once) || !done) {
        if (b->failed)
            fail_res(res, b->failed, b->why);
        else if (!done)
            fail_res(res, STORE_EUNSUPPORTED,
                     "redis: every operation waits for the server");
        xact_free(b);
        return STORE_DONE;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = R_USER;
    op->slot = b->slot;
    redis_op_format_commit(env->keys, env->sha, &b->view, once, op);
    op->done = commit_done;
    op->arg = b;
    b->cdone = done;
    b->carg = arg;
    if (env->send(env->st, op, res) != 0) {
        redis_op_free(op);
        xact_free(b);
        return STORE_DONE;
    }
    return STORE_PENDING;
}

int redis_xact_commit(struct store *st, struct store_batch *b,
                      struct store_res *res, store_done_fn done, void *arg)
{
    (void)st;
    return commit(b, NULL, res, done, arg);
}

int redis_xact_commit_once(struct store *st, struct store_batch *b,
                           const struct store_req *req, const void *answer,
                           size_t alen, struct store_res *res,
                           store_done_fn done, void *arg)
{
    struct redis_once once = {req, answer, alen, b->env->once_ttl_ms};

    (void)st;
    if (b->env->cluster && !b->failed) {
        /* The record is written beside the first counter: in the slot
         * once_answer read it from, which must be the batch's. */
        int s = req->key ? redis_cluster_slot(req->key, req->klen) : -1;
        if (b->slot < 0)
            b->slot = s;
        if (s < 0 || s != b->slot) {
            b->failed = STORE_EUNSUPPORTED;
            snprintf(b->why, sizeof b->why, "CROSSSLOT the batch's id record "
                     "is not in the slot of its counters");
        }
    }
    return commit(b, &once, res, done, arg);
}

int redis_xact_once_answer(struct redis_xact_env *env,
                           const struct store_req *req,
                           struct store_res *res, store_done_fn done,
                           void *arg)
{
    struct redis_op *op;

    store_res_init(res);
    if (!req->once || !req->oncelen || req->oncelen > TALLY_ID_MAX) {
        fail_res(res, STORE_EIDLEN, "redis: bad idempotency id");
        return STORE_DONE;
    }
    if ((env->cluster && !req->key) || !done) {
        fail_res(res, STORE_EUNSUPPORTED, done ?
                 "redis cluster: a whole batch's id record goes beside its "
                 "first counter, and none was named" :
                 "redis: every operation waits for the server");
        return STORE_DONE;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = R_USER;
    op->slot = env->cluster ? redis_cluster_slot(req->key, req->klen) : -1;
    redis_op_format_once(env->keys, env->sha, req, op);
    op->done = done;
    op->arg = arg;
    if (env->send(env->st, op, res) != 0) {
        redis_op_free(op);
        return STORE_DONE;
    }
    return STORE_PENDING;
}
