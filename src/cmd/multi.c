/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * multi.c - transactions for every front end (cmd.h "Transactions"):
 * MULTI's queue, EXEC's rules, DISCARD, WATCH/UNWATCH and the per-key
 * versions behind WATCH.  Front ends parse and encode; what a transaction
 * means, with Redis 7's rules, is decided here.  The atomicity comes from
 * the store's batch (cmd_batch_begin/commit in cmd.c): on the engine every
 * change of one EXEC is one log record, and the reply waits for it.
 *
 * On a store that answers later (PostgreSQL, many instances on one
 * database) WATCH and EXEC are re-run like any request (replay.c), so
 * neither changes the session's state until its last run: WATCH reads its
 * keys first, and EXEC gives its queue back when a run is abandoned.  There
 * a watched key is also compared by what it holds: WATCH remembers the
 * value and expiry it saw, and EXEC reads them again inside its own batch,
 * which the store checks again at commit (a concurrent change anywhere
 * makes the batch conflict and EXEC run again, and then see the change).
 * So another instance's change is caught unless it put back the exact
 * value and expiry (an ABA Redis would catch); this instance's own changes
 * are caught by the versions as on the engine.
 *
 * Watched keys live in one hash table per command context: a key's entry
 * holds a version that cmd_exec bumps (cmd_multi_touch) whenever a request
 * changes that key, and a count of the sessions watching it; the entry goes
 * when the last of them unwatches.  A session remembers, per watched key,
 * the version it saw and whether the key existed, so expiry (which writes
 * nothing and so bumps nothing) is caught at EXEC by looking the key up.
 * With nothing watched, ctx->watch is NULL and cmd_exec pays one test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "util.h"

struct watch_key {
    struct watch_key *next;
    uint64_t h;
    uint64_t version;
    unsigned refs;       /* sessions watching it */
    size_t klen;
    char key[];
};

struct cmd_watch_table {
    struct watch_key **b;
    size_t nb;           /* buckets, a power of two */
    size_t count;
    uint64_t epoch;      /* bumped by changes to every key (a flush) */
};

/* One key a session watches. */
struct watched {
    struct watch_key *wk;
    uint64_t seen;       /* wk->version at WATCH */
    uint64_t epoch;      /* the table's epoch at WATCH */
    int existed;
    int64_t value;       /* what it held at WATCH (if it existed) */
    int64_t expire_at;
};

struct cmd_multi {
    int active;          /* between MULTI and EXEC/DISCARD */
    int failed;          /* a queue-time error was seen */
    int checked;         /* EXEC's versions check passed on an earlier run
                            (its own writes since then bump them) */
    struct buf queue;    /* per request: u32 length, then its bytes */
    size_t nqueued;
    struct watched *w;
    size_t nw, wcap;
};

static uint64_t key_hash(const char *key, size_t klen)
{
    return tally_once_hash(TALLY_ONCE_HASH_INIT, key, klen);
}

static struct watch_key **slot(struct cmd_watch_table *t, uint64_t h,
                               const char *key, size_t klen)
{
    struct watch_key **p = &t->b[h & (t->nb - 1)];

    for (; *p; p = &(*p)->next)
        if ((*p)->h == h && (*p)->klen == klen &&
            memcmp((*p)->key, key, klen) == 0)
            break;
    return p;
}

static void grow_table(struct cmd_watch_table *t)
{
    size_t nb = t->nb * 2;
    struct watch_key **b = xcalloc(nb, sizeof *b);

    for (size_t i = 0; i < t->nb; i++) {
        struct watch_key *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->h & (nb - 1)];
            b[e->h & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* The entry for key, created (refs 0) if missing. */
static struct watch_key *watch_get(struct cmd_ctx *ctx, const char *key,
                                   size_t klen)
{
    struct cmd_watch_table *t = ctx->watch;
    uint64_t h = key_hash(key, klen);
    struct watch_key **p, *e;

    if (!t) {
        t = ctx->watch = xcalloc(1, sizeof *t);
        t->nb = 16;
        t->b = xcalloc(t->nb, sizeof *t->b);
    }
    if (*(p = slot(t, h, key, klen)) != NULL)
        return *p;
    if (t->count >= t->nb) {
        grow_table(t);
        p = slot(t, h, key, klen);
    }
    e = xcalloc(1, sizeof *e + klen);
    e->h = h;
    e->klen = klen;
    memcpy(e->key, key, klen);
    *p = e;
    t->count++;
    return e;
}

static void watch_put(struct cmd_ctx *ctx, struct watch_key *e)
{
    struct cmd_watch_table *t = ctx->watch;
    struct watch_key **p;

    if (--e->refs > 0)
        return;
    p = slot(t, e->h, e->key, e->klen);
    *p = e->next;
    free(e);
    if (--t->count == 0) { /* nothing watched: cmd_exec stops looking */
        free(t->b);
        free(t);
        ctx->watch = NULL;
    }
}

static void bump(struct cmd_ctx *ctx, const char *key, size_t klen)
{
    struct cmd_watch_table *t = ctx->watch;
    struct watch_key *e = *slot(t, key_hash(key, klen), key, klen);

    if (e)
        e->version++;
}

/* Did this request change its keys?  Only what succeeded and changed
 * something counts, as Redis signals a modified key only then. */
static int changed_keys(const struct cmd_req *req, const struct cmd_res *res)
{
    if (res->status >= CMD_ERR_NOTINT || res->replayed)
        return 0;
    switch (req->op) {
    case CMD_INCRBY: case CMD_SET: case CMD_MSET:
        return res->status == CMD_OK;
    case CMD_GETDEL:
        return res->status == CMD_OK && res->found;
    case CMD_DEL: case CMD_EXPIRE: case CMD_PERSIST:
        return res->n > 0;
    case CMD_GETEX:
        return res->status == CMD_OK &&
               (req->flags & (CMD_F_PX | CMD_F_PXAT | CMD_F_PERSIST));
    default:
        return 0;
    }
}

void cmd_multi_touch(struct cmd_ctx *ctx, const struct cmd_req *req,
                     const struct cmd_res *res)
{
    if (!changed_keys(req, res))
        return;
    ctx->writes++;
    if (!ctx->watch)
        return;
    if (req->op == CMD_DEL || req->op == CMD_MSET) {
        /* DEL's count does not say which keys existed: bump them all (a
         * needless null EXEC at worst, never a missed change). */
        for (size_t i = 0; i < req->nkeys; i++)
            bump(ctx, req->keys[i], req->klens[i]);
        return;
    }
    bump(ctx, req->key, req->klen);
}

void cmd_multi_touch_all(struct cmd_ctx *ctx)
{
    ctx->writes++;
    if (ctx->watch)
        ctx->watch->epoch++;
}

static struct cmd_multi *state(struct cmd_session *s)
{
    if (!s->multi)
        s->multi = xcalloc(1, sizeof *s->multi);
    return s->multi;
}

int cmd_in_multi(const struct cmd_session *s)
{
    return s->multi && s->multi->active;
}

int64_t cmd_multi_queued(const struct cmd_session *s)
{
    return cmd_in_multi(s) ? (int64_t)s->multi->nqueued : -1;
}

enum cmd_status cmd_multi(struct cmd_ctx *ctx, struct cmd_session *s)
{
    struct cmd_multi *m;

    if (!cmd_authorized(ctx, s))
        return CMD_ERR_NOAUTH;
    if (cmd_in_multi(s))
        return CMD_ERR_NESTED;
    m = state(s);
    m->active = 1;
    m->failed = 0;
    m->nqueued = 0;
    buf_clear(&m->queue);
    return CMD_OK;
}

void cmd_multi_queue(struct cmd_session *s, const void *req, size_t len)
{
    struct cmd_multi *m = state(s);
    unsigned char n[4];

    for (int i = 0; i < 4; i++)
        n[i] = (unsigned char)(len >> (8 * i));
    buf_add(&m->queue, n, 4);
    buf_add(&m->queue, req, len);
    m->nqueued++;
}

void cmd_multi_fail(struct cmd_session *s)
{
    if (cmd_in_multi(s))
        s->multi->failed = 1;
}

/* Leave MULTI: forget the queue, keep the buffer for the next one. */
static void leave(struct cmd_multi *m)
{
    m->active = 0;
    m->failed = 0;
    m->checked = 0;
    m->nqueued = 0;
    if (m->queue.cap > (1u << 16))
        buf_free(&m->queue);
    else
        buf_clear(&m->queue);
}

void cmd_unwatch(struct cmd_ctx *ctx, struct cmd_session *s)
{
    struct cmd_multi *m = s->multi;

    if (!m)
        return;
    for (size_t i = 0; i < m->nw; i++)
        watch_put(ctx, m->w[i].wk);
    m->nw = 0;
}

enum cmd_status cmd_discard(struct cmd_ctx *ctx, struct cmd_session *s)
{
    if (!cmd_in_multi(s))
        return CMD_ERR_NOMULTI;
    leave(s->multi);
    cmd_unwatch(ctx, s);
    return CMD_OK;
}

static int sync_store(const struct cmd_ctx *ctx)
{
    return ctx->store->ops->sync_only;
}

/* Read key for s's request (inside its batch when one is open): 0 with *r
 * filled, or 1 if the store answers later.  On a store that answers at
 * once the read is no request's (nothing to log). */
static int look(struct cmd_ctx *ctx, struct cmd_session *s, const char *key,
                size_t klen, struct store_res *r)
{
    struct store_req sr = {.op = STORE_GET, .key = key, .klen = klen};

    store_res_init(r);
    return cmd_store_call(ctx, sync_store(ctx) ? NULL : s, &sr, r);
}

static int existed(const struct store_res *r)
{
    return r->rc == STORE_OK;
}

enum cmd_status cmd_watch(struct cmd_ctx *ctx, struct cmd_session *s,
                          size_t n, const char *const *keys,
                          const size_t *klens)
{
    struct cmd_multi *m;
    struct store_res *seen;
    int pending = 0;

    if (!cmd_authorized(ctx, s))
        return CMD_ERR_NOAUTH;
    if (cmd_in_multi(s))
        return CMD_ERR_WATCHMULTI;
    if (!cmd_batches_ok(ctx))
        return CMD_ERR_UNSUPPORTED;
    for (size_t i = 0; i < n; i++)
        if (klens[i] > TALLY_KEY_MAX)
            return CMD_ERR_KEYLEN;
    /* Every read first, so that a run that pends changes nothing. */
    seen = xcalloc(n ? n : 1, sizeof *seen);
    for (size_t i = 0; i < n; i++)
        pending |= look(ctx, s, keys[i], klens[i], &seen[i]);
    if (pending) {
        free(seen);
        return CMD_PENDING;
    }
    m = state(s);
    for (size_t i = 0; i < n; i++) {
        struct watch_key *e = watch_get(ctx, keys[i], klens[i]);
        size_t j;

        for (j = 0; j < m->nw && m->w[j].wk != e; j++)
            ;
        if (j < m->nw)
            continue; /* already watched: Redis keeps the first WATCH */
        if (m->nw == m->wcap) {
            m->wcap = m->wcap ? 2 * m->wcap : 4;
            m->w = xrealloc(m->w, m->wcap * sizeof *m->w);
        }
        e->refs++;
        m->w[m->nw++] = (struct watched){e, e->version, ctx->watch->epoch,
                                         existed(&seen[i]), seen[i].value,
                                         seen[i].expire_at};
    }
    free(seen);
    return CMD_OK;
}

/* Has any watched key changed since WATCH?  1 yes, 0 no, -1 the store
 * answers later.  *t gets the ticket of the state looked at: a null EXEC
 * must not be shown before the change that caused it is durable.  On a
 * store that answers later this runs inside EXEC's batch and also compares
 * what each key holds (the top of this file). */
static int watch_dirty(struct cmd_ctx *ctx, struct cmd_session *s,
                       struct cmd_multi *m, tally_ticket *t)
{
    int dirty = 0, pending = 0, by_value = !sync_store(ctx);

    for (size_t i = 0; i < m->nw; i++) {
        const struct watched *w = &m->w[i];
        struct store_res r;

        if (look(ctx, s, w->wk->key, w->wk->klen, &r)) {
            pending = 1;
            continue;
        }
        if (r.ticket > *t)
            *t = r.ticket;
        if (!m->checked &&
            (w->wk->version != w->seen || ctx->watch->epoch != w->epoch ||
             (w->existed && !existed(&r))))
            dirty = 1;
        if (by_value && (w->existed != existed(&r) ||
                         (w->existed && (r.value != w->value ||
                                         r.expire_at != w->expire_at))))
            dirty = 1;
    }
    if (pending)
        return -1;
    m->checked = by_value && !dirty;
    return dirty;
}

/* EXEC without its queue: nothing ran, or everything did. */
static void exec_done(struct cmd_ctx *ctx, struct cmd_session *s)
{
    leave(s->multi);
    cmd_unwatch(ctx, s);
}

enum cmd_status cmd_exec_multi(struct cmd_ctx *ctx, struct cmd_session *s,
                               cmd_multi_run_fn run, void *arg,
                               struct cmd_res *res)
{
    struct cmd_multi *m = s->multi;
    struct buf q;
    size_t off = 0, nqueued, nw = 0, wcap = 0;
    struct watched *w = NULL;
    enum cmd_status st;
    int dirty = 0;

    res->ticket = 0;
    res->n = 0;
    res->detail[0] = 0;
    if (!cmd_in_multi(s))
        return CMD_ERR_NOMULTI;
    if (m->failed) {
        exec_done(ctx, s);
        return CMD_ERR_EXECABORT;
    }
    if (!cmd_batches_ok(ctx)) {
        /* Queued, never run: a transaction is all or nothing. */
        exec_done(ctx, s);
        snprintf(res->detail, sizeof res->detail, "MULTI/EXEC is not "
                 "supported by the %s store (it has no atomic batches); "
                 "nothing ran", cmd_store_name(ctx));
        return CMD_ERR_UNSUPPORTED;
    }
    if (sync_store(ctx) && watch_dirty(ctx, s, m, &res->ticket)) {
        exec_done(ctx, s);
        return CMD_NOTSET;
    }
    /* Take the queue out of the session: a queued request runs as usual
     * and must not be queued again.  A run that pends puts it back. */
    q = m->queue;
    m->queue = (struct buf)BUF_INIT;
    nqueued = m->nqueued;
    m->active = 0;
    m->nqueued = 0;
    cmd_batch_begin(ctx, s);
    if (!sync_store(ctx))
        dirty = watch_dirty(ctx, s, m, &res->ticket);
    if (dirty) {
        cmd_batch_abort(ctx, s);
        st = dirty < 0 ? CMD_PENDING : CMD_NOTSET;
    } else {
        /* EXEC forgets the watches (an UNWATCH it runs has nothing to do).
         * A run that may be abandoned only sets them aside. */
        if (sync_store(ctx)) {
            cmd_unwatch(ctx, s);
        } else {
            w = m->w, nw = m->nw, wcap = m->wcap;
            m->w = NULL;
            m->nw = m->wcap = 0;
        }
        ctx->readahead = 1; /* the queue's keys are fixed (cmd.h) */
        while (off + 4 <= q.len) {
            const unsigned char *p = (const unsigned char *)q.p + off;
            size_t len = (size_t)p[0] | (size_t)p[1] << 8 |
                         (size_t)p[2] << 16 | (size_t)p[3] << 24;
            run(arg, p + 4, len);
            off += 4 + len;
        }
        ctx->readahead = 0;
        st = cmd_batch_commit(ctx, s, res);
    }
    if (w) {
        cmd_unwatch(ctx, s);
        free(m->w);
        m->w = w, m->nw = nw, m->wcap = wcap;
    }
    if (st == CMD_PENDING) {
        /* Run again from the start: MULTI's state as it was. */
        buf_free(&m->queue);
        m->queue = q;
        m->active = 1;
        m->nqueued = nqueued;
        return CMD_PENDING;
    }
    buf_free(&q);
    res->n = nqueued;
    exec_done(ctx, s);
    return st;
}

void cmd_session_end(struct cmd_ctx *ctx, struct cmd_session *s)
{
    cmd_replay_end(s);
    if (!s->multi)
        return;
    cmd_unwatch(ctx, s);
    buf_free(&s->multi->queue);
    free(s->multi->w);
    free(s->multi);
    s->multi = NULL;
}
