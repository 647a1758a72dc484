/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * replay.c - asynchronous store results without deferred encoding: the
 * re-run design (docs/store.md, cmd.h "Asynchronous stores").
 *
 * A request is served by running it: the front end parses it, calls
 * cmd_exec one or more times and encodes the reply.  Every store call the
 * command layer makes for it goes through cmd_store_call() here, numbered
 * 0, 1, 2 ... within the run.  On a store that completes at once
 * (store_ops.sync_only, the engine) the call goes straight to the store and
 * nothing is kept.  On any other store each completed result is appended to
 * the session's replay log; call i of a later run of the same request
 * returns logged result i.  When a call pends, the run is abandoned
 * (cmd_exec returns CMD_PENDING, the daemon drops the reply bytes and keeps
 * the input), the result is logged when the store's done() runs, and the
 * daemon is woken to run the request again from its first byte.  Its
 * earlier calls then come from the log, so nothing is applied twice, and
 * the front end encodes the reply as it always does.  cmd_request_done()
 * clears the log once the request is consumed.
 *
 * Batches (cmd_store_batch_*): the request's open store batch lives here,
 * not in the run, so it survives the re-runs.  Its begin is a logged call
 * like the others (a re-run does not begin again: the log already knows),
 * the operations inside carry it (store_req.batch), and the commit is a
 * logged call that may pend.  A run that is abandoned (a call pends) does
 * not abort or commit anything: the batch stays open for the next run.
 * When the store answers STORE_ECONFLICT for a call of the batch (another
 * instance changed what it read; the store has rolled it back, ended it and
 * waited its jittered backoff), nothing of it was shown yet: the log is cut
 * back to before the begin and the request runs again from its first byte
 * with a new batch, at most CMD_CONFLICT_MAX times; after that the conflict
 * is the answer (CMD_ERR_UNAVAILABLE: nothing changed, retry).
 *
 * Lifetime: the store holds the struct cmd_replay (never the session) as
 * its done() argument.  A session that ends with a call in flight detaches
 * from it; the replay then frees itself when the last done() has run.  A
 * batch still open then is aborted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "util.h"

/* One completed store call; mem holds copies of the arrays it showed. */
struct logged {
    struct store_res res;
    void *mem;
    uint64_t fp;              /* what was asked (req_fp), 0: not a call */
};

struct cmd_replay {
    struct cmd_session *s;    /* NULL once the session ended */
    size_t next;              /* the next call of this run */
    size_t n, cap;
    struct logged *log;
    size_t reported;          /* entries whose cmd_exec finished once:
                                 their events and statistics are done */
    int waiting;              /* a call of this run pends */
    unsigned inflight;        /* done() calls still to come */
    struct store *st;         /* borrowed: the store the calls go to */
    struct store_batch *batch;/* the request's open store batch, or NULL */
    size_t begin_at;          /* the log entry of its begin */
    size_t once_at;           /* the entry of its once_answer, if has_once:
                                 a conflict cuts the log back to there */
    int has_once;
    int in_batch;             /* the call in flight belongs to the batch */
    uint64_t fp;              /* its req_fp, logged with its result */
    unsigned conflicts;       /* re-runs of this request after a conflict */
    int diverged;             /* a re-run asked something else than the
                                 log holds: its batch must not commit */
};

#define DIVERGED "the request did not ask the store the same when run " \
                 "again (a script that is not deterministic?); nothing of " \
                 "its batch applied"

#define FP_MUL 0x9E3779B97F4A7C15ull

static uint64_t fp_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * FP_MUL;
    return h ^ (h >> 29);
}

/* p[0, n) into h eight bytes at a time: what was tally_once_hash here
 * (FNV, a multiply per byte) was 400 instructions of every request on a
 * remote store, each run hashing its call (callgrind, INCR at 50
 * clients).  Only a re-run of this process compares it, so any fixed mix
 * does; it guards against mistakes (a script that is not deterministic),
 * not against an adversary. */
static uint64_t fp_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t w;

    for (; n >= 8; b += 8, n -= 8) {
        memcpy(&w, b, 8);
        h = fp_word(h, w);
    }
    w = 0;
    memcpy(&w, b, n);
    return fp_word(h, w ^ ((uint64_t)n << 56));
}

/* What a call asks, as a number: a re-run must ask the same at the same
 * place, or the logged result would answer another question. */
static uint64_t req_fp(const struct store_req *req)
{
    uint64_t h = fp_word(FP_MUL, (uint64_t)req->op);

    h = fp_word(fp_word(h, (uint64_t)req->num), (uint64_t)req->nkeys);
    if (req->key)
        h = fp_bytes(h, req->key, req->klen);
    if (req->nkeys)
        h = fp_bytes(h, req->keys[0], req->klens[0]);
    return h | 1;
}

static void end_batch(struct cmd_replay *r)
{
    if (r->batch) {
        r->st->ops->batch_abort(r->st, r->batch);
        r->batch = NULL;
    }
}

static void clear_log(struct cmd_replay *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->log[i].mem);
    r->n = 0;
    r->next = 0;
    r->reported = 0;
    r->has_once = 0;
}

static void replay_free(struct cmd_replay *r)
{
    end_batch(r);
    clear_log(r);
    free(r->log);
    free(r);
}

/* Append a copy of res, with copies of every array it points to (they
 * belong to the store, or to a caller that moves on). */
static void append(struct cmd_replay *r, const struct store_res *res)
{
    size_t k = res->n_items, sz = 0, kb = 0;
    struct logged *l;
    char *p;

    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 4;
        r->log = xrealloc(r->log, r->cap * sizeof *r->log);
    }
    l = &r->log[r->n++];
    l->res = *res;
    l->mem = NULL;
    l->fp = 0;
    if (res->answer && res->alen) {
        /* once_answer's: only ever alone, no arrays */
        l->res.answer = l->mem = xmalloc(res->alen);
        memcpy(l->mem, res->answer, res->alen);
        return;
    }
    if (!k)
        return;
    if (res->keys)
        for (size_t i = 0; i < k; i++)
            kb += res->klens[i];
    sz = k * (sizeof(int64_t) * 2 + sizeof(char *) + sizeof(size_t) + 1) + kb;
    p = l->mem = xmalloc(sz);
    if (res->values) {
        l->res.values = memcpy(p, res->values, k * sizeof(int64_t));
    }
    p += k * sizeof(int64_t);
    if (res->expires)
        l->res.expires = memcpy(p, res->expires, k * sizeof(int64_t));
    p += k * sizeof(int64_t);
    if (res->keys) {
        const char **keys = (const char **)(void *)p;
        size_t *klens = (size_t *)(void *)(p + k * sizeof(char *));
        char *bytes = p + k * (sizeof(char *) + sizeof(size_t));
        for (size_t i = 0; i < k; i++) {
            klens[i] = res->klens[i];
            keys[i] = bytes;
            if (klens[i])
                memcpy(bytes, res->keys[i], klens[i]);
            bytes += klens[i];
        }
        l->res.keys = keys;
        l->res.klens = klens;
        p = bytes;
    } else {
        p += k * (sizeof(char *) + sizeof(size_t));
    }
    if (res->founds)
        l->res.founds = memcpy(p, res->founds, k);
}

/* Logged result l into the caller's *res, keeping the caller's arrays
 * (MGET, DEL) and filling them. */
static void restore(const struct logged *l, struct store_res *res)
{
    int64_t *values = res->values;
    unsigned char *founds = res->founds;
    size_t k = l->res.n_items;

    *res = l->res;
    if (values) {
        if (l->res.values && k)
            memcpy(values, l->res.values, k * sizeof *values);
        res->values = values;
    }
    if (founds) {
        if (l->res.founds && k)
            memcpy(founds, l->res.founds, k);
        res->founds = founds;
    }
}

static void on_done(void *arg, const struct store_res *res)
{
    struct cmd_replay *r = arg;

    r->inflight--;
    if (r->in_batch && res->rc == STORE_ECONFLICT)
        r->batch = NULL; /* the store ended it: nothing of it applied */
    if (!r->s) {
        if (r->inflight == 0)
            replay_free(r); /* the session is gone: the result is dropped */
        return;
    }
    if (r->in_batch && res->rc == STORE_ECONFLICT) {
        if (++r->conflicts <= CMD_CONFLICT_MAX) {
            size_t cut = r->has_once ? r->once_at : r->begin_at;
            for (size_t i = cut; i < r->n; i++)
                free(r->log[i].mem);
            r->n = cut;
            r->has_once = 0;
            r->waiting = 0;
            r->next = 0;
            if (r->s->wake)
                r->s->wake(r->s->wake_arg, r->s);
            return;
        }
    }
    append(r, res);
    r->log[r->n - 1].fp = r->fp;
    r->fp = 0;
    /* The request runs again from its start: its calls so far come from
     * the log, this one too. */
    r->waiting = 0;
    r->next = 0;
    if (r->s->wake)
        r->s->wake(r->s->wake_arg, r->s);
}

static struct cmd_replay *replay_of(struct cmd_ctx *ctx,
                                    struct cmd_session *s)
{
    if (!s->replay) {
        s->replay = xcalloc(1, sizeof *s->replay);
        s->replay->s = s;
        s->replay->st = ctx->store;
    }
    return s->replay;
}

/* Log a result made here, not by the store (a batch's begin, a call of a
 * batch the store already ended). */
static void append_rc(struct cmd_replay *r, int rc, const char *detail)
{
    struct store_res res;

    store_res_init(&res);
    res.rc = rc;
    if (detail)
        snprintf(res.detail, sizeof res.detail, "%s", detail);
    append(r, &res);
    r->next++;
}

/* What one submitted call is: an exec of req, the commit of batch b, or a
 * whole batch's once_answer or commit under its id (once). */
enum call_kind { CALL_EXEC, CALL_COMMIT, CALL_ONCE_ANSWER, CALL_COMMIT_ONCE };

struct call {
    enum call_kind kind;
    const struct store_req *req;
    struct store_batch *b;
    const struct store_req *once;
    const void *answer;
    size_t alen;
};

static int send_call(struct cmd_ctx *ctx, struct cmd_replay *r,
                     const struct call *c, struct store_res *res)
{
    const struct store_ops *ops = ctx->store->ops;
    store_done_fn done = r ? on_done : NULL; /* NULL: answer at once */

    switch (c->kind) {
    case CALL_EXEC:
        return ops->exec(ctx->store, c->req, res, done, r);
    case CALL_COMMIT:
        return ops->batch_commit(ctx->store, c->b, res, done, r);
    case CALL_ONCE_ANSWER:
        return ops->once_answer(ctx->store, c->once, res, done, r);
    case CALL_COMMIT_ONCE:
        break;
    }
    return ops->batch_commit_once(ctx->store, c->b, c->once, c->answer,
                                  c->alen, res, done, r);
}

/* Submit one call (the batch's, when in_batch) and log it if it is
 * done. */
static int submit_call(struct cmd_ctx *ctx, struct cmd_replay *r,
                       const struct call *c, struct store_res *res,
                       int in_batch)
{
    r->in_batch = in_batch;
    r->inflight++;
    if (send_call(ctx, r, c, res) == STORE_PENDING) {
        r->waiting = 1;
        return 1;
    }
    r->inflight--;
    append(r, res);
    r->log[r->n - 1].fp = r->fp;
    r->fp = 0;
    r->next++;
    return 0;
}

static int submit(struct cmd_ctx *ctx, struct cmd_replay *r,
                  const struct store_req *req, struct store_res *res,
                  int in_batch, struct store_batch *b)
{
    struct call c = {req ? CALL_EXEC : CALL_COMMIT, req, b, NULL, NULL, 0};

    return submit_call(ctx, r, &c, res, in_batch);
}

int cmd_store_call(struct cmd_ctx *ctx, struct cmd_session *s,
                   const struct store_req *req, struct store_res *res)
{
    struct cmd_replay *r;
    struct store_req in;
    uint64_t fp;

    if (ctx->store->ops->sync_only || !s) {
        /* The engine: straight through, nothing kept.  Without a session
         * to wake (no done()), a store must answer at once or refuse.  The
         * engine's one batch needs no handle in the request. */
        store_exec(ctx->store, req, res, NULL, NULL);
        return 0;
    }
    r = replay_of(ctx, s);
    if (r->waiting) {
        /* This run is abandoned: submit nothing more, but let the batch
         * read what MULTI's later commands name (cmd.h "Read-ahead"). */
        if (ctx->readahead && ctx->batch_depth && r->in_batch && r->batch &&
            ctx->store->ops->batch_prefetch)
            ctx->store->ops->batch_prefetch(ctx->store, r->batch, req);
        return 1;
    }
    fp = req_fp(req);
    if (r->next < r->n) {
        struct logged *l = &r->log[r->next++];
        ctx->echo = r->next <= r->reported;
        if (l->fp && l->fp != fp) {
            r->diverged = 1;
            store_res_init(res);
            res->rc = STORE_EIO;
            snprintf(res->detail, sizeof res->detail, "%s", DIVERGED);
            return 0;
        }
        restore(l, res);
        return 0;
    }
    ctx->echo = 0;
    r->fp = fp;
    if (!ctx->batch_depth) {
        if (!ctx->store->ops->ordered)
            return submit(ctx, r, req, res, 0, NULL);
        in = *req;
        in.order = s->id; /* kept in this session's order (cmd.h); not
                             its address: HTTP's move (cmd_session_moved) */
        return submit(ctx, r, &in, res, 0, NULL);
    }
    if (!r->batch) {
        /* Its batch has ended (conflicts past the cap): run nothing more
         * of it, outside it least of all. */
        append_rc(r, STORE_ECONFLICT, "the batch kept conflicting with "
                  "concurrent changes; nothing of it applied");
        restore(&r->log[r->n - 1], res);
        return 0;
    }
    in = *req;
    in.batch = r->batch;
    return submit(ctx, r, &in, res, 1, NULL);
}

int cmd_store_batch_begin(struct cmd_ctx *ctx, struct cmd_session *s,
                          struct store_batch **sync_batch)
{
    struct cmd_replay *r;
    int rc;

    if (ctx->store->ops->sync_only || !s)
        return ctx->store->ops->batch_begin(ctx->store, 0, sync_batch);
    r = replay_of(ctx, s);
    if (r->waiting)
        return STORE_OK; /* abandoned run */
    if (r->next < r->n) {
        rc = r->log[r->next++].res.rc; /* begun on an earlier run */
        return rc;
    }
    end_batch(r); /* none should be open; never two */
    r->begin_at = r->n;
    rc = ctx->store->ops->batch_begin(ctx->store, r->conflicts, &r->batch);
    append_rc(r, rc, NULL);
    return rc;
}

/* What a logged call c does before it submits: on a store that is
 * sync_only (or without a session) it runs straight through, an abandoned
 * run pends, a re-run gets its logged result.  NULL with *ret the call's
 * answer then, else the replay to submit it to. */
static struct cmd_replay *to_submit(struct cmd_ctx *ctx,
                                    struct cmd_session *s,
                                    const struct call *c,
                                    struct store_res *res, int *ret)
{
    struct cmd_replay *r;

    *ret = 0;
    if (ctx->store->ops->sync_only || !s) {
        send_call(ctx, NULL, c, res);
        return NULL;
    }
    r = replay_of(ctx, s);
    if (r->waiting) {
        *ret = 1;
        return NULL;
    }
    if (r->next < r->n) {
        restore(&r->log[r->next++], res);
        return NULL;
    }
    return r;
}

/* The commit of the request's batch (c->b set here), under an id if
 * c->once. */
static int commit(struct cmd_ctx *ctx, struct cmd_session *s,
                  struct store_batch *sync_batch, struct call *c,
                  struct store_res *res)
{
    struct cmd_replay *r;
    int ret;

    c->b = sync_batch; /* the engine's; a remote store's is the log's */
    if (!(r = to_submit(ctx, s, c, res, &ret)))
        return ret;
    if (r->diverged && r->batch) {
        end_batch(r);
        append_rc(r, STORE_EIO, DIVERGED);
        restore(&r->log[r->n - 1], res);
        return 0;
    }
    if (!(c->b = r->batch)) {
        append_rc(r, STORE_ECONFLICT, "the batch kept conflicting with "
                  "concurrent changes; nothing of it applied");
        restore(&r->log[r->n - 1], res);
        return 0;
    }
    r->batch = NULL; /* the store's now, whatever the outcome */
    r->fp = 0;
    return submit_call(ctx, r, c, res, 1);
}

int cmd_store_batch_commit(struct cmd_ctx *ctx, struct cmd_session *s,
                           struct store_batch *sync_batch,
                           struct store_res *res)
{
    struct call c = {CALL_COMMIT, NULL, NULL, NULL, NULL, 0};

    return commit(ctx, s, sync_batch, &c, res);
}

int cmd_store_batch_commit_once(struct cmd_ctx *ctx, struct cmd_session *s,
                                struct store_batch *sync_batch,
                                const struct store_req *req,
                                const void *answer, size_t alen,
                                struct store_res *res)
{
    struct call c = {CALL_COMMIT_ONCE, NULL, NULL, req, answer, alen};

    return commit(ctx, s, sync_batch, &c, res);
}

int cmd_store_once_answer(struct cmd_ctx *ctx, struct cmd_session *s,
                          const struct store_req *req, struct store_res *res)
{
    struct call c = {CALL_ONCE_ANSWER, NULL, NULL, req, NULL, 0};
    struct cmd_replay *r;
    int ret;

    if (!(r = to_submit(ctx, s, &c, res, &ret)))
        return ret;
    r->once_at = r->n;
    r->has_once = 1;
    r->fp = 0;
    return submit_call(ctx, r, &c, res, 0);
}

void cmd_store_batch_abort(struct cmd_ctx *ctx, struct cmd_session *s,
                           struct store_batch *sync_batch)
{
    if (ctx->store->ops->sync_only || !s) {
        ctx->store->ops->batch_abort(ctx->store, sync_batch);
        return;
    }
    /* An abandoned run keeps the batch for the next one. */
    if (s->replay && !s->replay->waiting)
        end_batch(s->replay);
}

void cmd_store_batch_prefetch(struct cmd_ctx *ctx, struct cmd_session *s,
                              const char *key, size_t klen)
{
    struct store_req get = {.op = STORE_GET, .key = key, .klen = klen};

    if (ctx->store->ops->sync_only || !s || !ctx->store->ops->batch_prefetch)
        return;
    /* Only while a call of the batch pends (store.h): never a read still
     * in flight when the batch commits. */
    if (ctx->batch_depth && s->replay && s->replay->waiting &&
        s->replay->in_batch && s->replay->batch)
        ctx->store->ops->batch_prefetch(ctx->store, s->replay->batch, &get);
}

int cmd_replay_value(struct cmd_ctx *ctx, struct cmd_session *s,
                     int64_t *v)
{
    struct cmd_replay *r;

    if (ctx->store->ops->sync_only || !s)
        return 0;
    r = replay_of(ctx, s);
    if (r->waiting)
        return 1; /* abandoned: what this run does is dropped */
    if (r->next < r->n) {
        *v = r->log[r->next++].res.value;
        return 1;
    }
    append_rc(r, STORE_OK, NULL);
    r->log[r->n - 1].res.value = *v;
    return 0;
}

void cmd_replay_amend(struct cmd_ctx *ctx, struct cmd_session *s, int64_t v)
{
    if (!ctx->store->ops->sync_only && s && s->replay && s->replay->n)
        s->replay->log[s->replay->n - 1].res.value = v;
}

int cmd_store_replaying(const struct cmd_session *s)
{
    return s && s->replay && s->replay->next < s->replay->n;
}

int cmd_pending(const struct cmd_session *s)
{
    return s->replay && s->replay->waiting;
}

unsigned cmd_inflight(const struct cmd_session *s)
{
    return s->replay ? s->replay->inflight : 0;
}

void cmd_request_done(struct cmd_session *s)
{
    if (s->replay && (s->replay->n || s->replay->batch)) {
        end_batch(s->replay); /* a request that left one open: undo it */
        clear_log(s->replay);
        s->replay->conflicts = 0;
        s->replay->diverged = 0;
    }
}

void cmd_session_moved(struct cmd_session *s)
{
    if (s->replay)
        s->replay->s = s;
}

void cmd_replay_reported(struct cmd_session *s)
{
    if (s->replay && s->replay->next > s->replay->reported)
        s->replay->reported = s->replay->next;
}

void cmd_replay_drop(struct cmd_replay *r)
{
    if (!r)
        return;
    if (r->inflight) {
        r->s = NULL; /* freed (and its batch aborted) by the last done() */
        return;
    }
    replay_free(r);
}

void cmd_replay_end(struct cmd_session *s)
{
    struct cmd_replay *r = s->replay;

    s->replay = NULL;
    cmd_replay_drop(r);
}

int cmd_ahead_ok(const struct cmd_ctx *ctx, enum cmd_op op)
{
    if (!ctx->store->ops->ordered || ctx->batch_depth)
        return 0;
    /* One store call each (cmd.c), nothing shown before it.  Not MULTI's
     * or a script's requests: those never come here (the front end sends
     * only these ops), and a request before them that waits cannot be in
     * MULTI, where nothing waits. */
    switch (op) {
    case CMD_GET:
    case CMD_INCRBY:
    case CMD_SET:
    case CMD_DEL:
    case CMD_EXISTS:
    case CMD_MGET:
    case CMD_TTL:
        return 1;
    default:
        return 0;
    }
}

struct cmd_replay *cmd_replay_swap(struct cmd_session *s,
                                   struct cmd_replay *r)
{
    struct cmd_replay *had = s->replay;

    s->replay = r;
    if (r)
        r->s = s;
    return had;
}

int cmd_replay_waiting(const struct cmd_replay *r)
{
    return r && r->waiting;
}
