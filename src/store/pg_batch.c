/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_batch.c - which operations share one PostgreSQL transaction, and what
 * each of them answers.  pg.c sends the statements and feeds the rows back.
 *
 * Building (pg_batch_build, operations in submission order):
 *   - A plain INCRBY (no flags, no expiry change, no id) on a key no other
 *     kind of operation touched in this batch is hot: its delta is summed
 *     into the key's one row of the coalesced statement (PG_S_HOT).  A
 *     plain GET after a hot increment of its key is hot too.  The sum and
 *     every running value stay inside int64, or the batch ends there.
 *   - Everything else is slow: its keys are locked (PG_S_LOCK, created as
 *     placeholders if absent) or just read (PG_S_READ) and the operation
 *     runs here, in C, over that state (pg_batch_apply), in submission
 *     order; the rows it leaves are written back before COMMIT.  A slow
 *     operation on a key that is already hot ends the batch before it, so
 *     no key is both, and per key the serial order is submission order.
 *   - SCAN, COUNT, FLUSH and the store's own maintenance run alone.
 *   - hot_only: the batch ends at the first operation that is not hot (a
 *     batch sent behind the one in flight, pg_txn.c kick_behind).
 * Serial order: the hot operations in submission order, then the slow ones.
 * Each touches only its keys and per key submission order holds, so every
 * reply is the one that order gives.
 *
 * Overflow: the hot statement updates a live row only if its value lies in
 * one bound for the batch that keeps every running value of every key in
 * int64.  A row outside it comes back missing; its operations go back to
 * the front of the queue marked force_slow and run next as slow ones,
 * where each increment that would overflow fails alone.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define PG_BATCH_MAX 4096 /* operations in one transaction at most */

struct pg_batch *pg_batch_new(void)
{
    struct pg_batch *b = xcalloc(1, sizeof *b);
    TAILQ_INIT(&b->ops);
    return b;
}

void pg_batch_free(struct pg_batch *b)
{
    if (!b)
        return;
    free(b->keys);
    free(b->index);
    for (size_t i = 0; i < b->nids; i++)
        free(b->ids[i].answer);
    free(b->ids);
    free(b);
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

size_t pg_batch_key(const struct pg_batch *b, const char *k, size_t klen)
{
    if (!b->indexcap)
        return SIZE_MAX;
    size_t mask = b->indexcap - 1;
    for (size_t i = hash_bytes(k, klen) & mask;; i = (i + 1) & mask) {
        uint32_t v = b->index[i];
        if (!v)
            return SIZE_MAX;
        const struct pg_key *e = &b->keys[v - 1];
        if (e->klen == klen && memcmp(e->k, k, klen) == 0)
            return v - 1;
    }
}

static void index_put(struct pg_batch *b, size_t ki)
{
    size_t mask = b->indexcap - 1;
    size_t i = hash_bytes(b->keys[ki].k, b->keys[ki].klen) & mask;
    while (b->index[i])
        i = (i + 1) & mask;
    b->index[i] = (uint32_t)(ki + 1);
}

/* The key's index, added (all flags 0) if new. */
static size_t key_get(struct pg_batch *b, const char *k, size_t klen)
{
    size_t ki = pg_batch_key(b, k, klen);
    if (ki != SIZE_MAX)
        return ki;
    if (b->nkeys == b->capkeys) {
        b->capkeys = b->capkeys ? b->capkeys * 2 : 16;
        b->keys = xrealloc(b->keys, b->capkeys * sizeof *b->keys);
    }
    if ((b->nkeys + 1) * 2 > b->indexcap) {
        free(b->index);
        b->indexcap = b->indexcap ? b->indexcap * 2 : 64;
        b->index = xcalloc(b->indexcap, sizeof *b->index);
        for (size_t i = 0; i < b->nkeys; i++)
            index_put(b, i);
    }
    ki = b->nkeys++;
    memset(&b->keys[ki], 0, sizeof b->keys[ki]);
    b->keys[ki].k = k;
    b->keys[ki].klen = klen;
    index_put(b, ki);
    return ki;
}

size_t pg_batch_key_add(struct pg_batch *b, const char *k, size_t klen)
{
    return key_get(b, k, klen);
}

static struct pg_id *id_get(struct pg_batch *b, const char *id, size_t len)
{
    for (size_t i = 0; i < b->nids; i++)
        if (b->ids[i].len == len && memcmp(b->ids[i].id, id, len) == 0)
            return &b->ids[i];
    if (b->nids == b->capids) {
        b->capids = b->capids ? b->capids * 2 : 8;
        b->ids = xrealloc(b->ids, b->capids * sizeof *b->ids);
    }
    struct pg_id *e = &b->ids[b->nids++];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->len = len;
    return e;
}

int pg_op_writes(const struct pg_op *op)
{
    switch (op->req.op) {
    case STORE_GET: case STORE_EXISTS: case STORE_MGET: case STORE_SCAN:
    case STORE_COUNT:
        return op->kind == PG_PURGE;
    default:
        return op->kind != PG_INFO;
    }
}

static int is_barrier(const struct pg_op *op)
{
    return op->kind != PG_USER || op->req.op == STORE_SCAN ||
           op->req.op == STORE_COUNT || op->req.op == STORE_FLUSH;
}

/* The keys an operation touches: one, or req.keys. */
static int op_multi(const struct pg_op *op);

size_t pg_op_nkeys(const struct pg_op *op)
{
    return op_multi(op) ? op->req.nkeys : 1;
}

static int op_multi(const struct pg_op *op)
{
    enum store_opk o = op->req.op;
    return o == STORE_DEL || o == STORE_EXISTS || o == STORE_MGET ||
           o == STORE_MSET;
}

const char *pg_op_key(const struct pg_op *op, size_t i, size_t *klen)
{
    if (!op_multi(op)) {
        *klen = op->req.klen;
        return op->req.key;
    }
    *klen = op->req.klens[i];
    return op->req.keys[i];
}

static int add_hot(struct pg_batch *b, struct pg_op *op)
{
    const struct store_req *r = &op->req;
    if (op->force_slow || r->once)
        return 0;
    int incr = r->op == STORE_INCRBY && r->flags == 0 && r->xmode == STORE_X_KEEP;
    int get = r->op == STORE_GET;
    if (!incr && !get)
        return 0;
    size_t ki = get ? pg_batch_key(b, r->key, r->klen) : key_get(b, r->key, r->klen);
    if (ki == SIZE_MAX)
        return 0;
    struct pg_key *k = &b->keys[ki];
    if (k->slow || (get && !k->hot))
        return 0;
    if (incr) {
        int64_t s;
        if (__builtin_add_overflow(k->sum, r->num, &s))
            return -1;
        k->sum = s;
        if (s < k->minp)
            k->minp = s;
        if (s > k->maxp)
            k->maxp = s;
        k->hot = 1;
        b->has_hot = 1;
        b->writes = 1;
    }
    op->hot = 1;
    op->hk = ki;
    op->prefix = k->sum;
    return 1;
}

/* 1 if op joined as slow, 0 if it must wait for the next batch. */
static int add_slow(struct pg_batch *b, struct pg_op *op)
{
    size_t n = pg_op_nkeys(op);
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = pg_op_key(op, i, &klen);
        size_t ki = pg_batch_key(b, k, klen);
        if (ki != SIZE_MAX && b->keys[ki].hot)
            return 0;
    }
    int w = pg_op_writes(op);
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = pg_op_key(op, i, &klen);
        size_t ki = key_get(b, k, klen); /* may move b->keys */
        struct pg_key *e = &b->keys[ki];
        e->slow = 1;
        e->write |= w;
    }
    if (op->req.once)
        id_get(b, op->req.once, op->req.oncelen);
    b->has_slow = 1;
    b->writes |= w;
    return 1;
}

struct pg_batch *pg_batch_build(struct pg_opq *q, int hot_only)
{
    struct pg_batch *b = pg_batch_new();
    struct pg_op *op;
    while ((op = TAILQ_FIRST(q)) && b->nops < PG_BATCH_MAX) {
        op->hot = 0;
        if (hot_only) {
            if (is_barrier(op) || add_hot(b, op) <= 0)
                break;
        } else if (is_barrier(op)) {
            if (b->nops)
                break;
            b->barrier = op;
            b->writes = pg_op_writes(op);
        } else {
            int h = add_hot(b, op);
            if (h < 0 || (h == 0 && !add_slow(b, op)))
                break;
        }
        TAILQ_REMOVE(q, op, link);
        TAILQ_INSERT_TAIL(&b->ops, op, link);
        b->nops++;
        if (b->barrier)
            break;
    }
    return b;
}

void pg_batch_reset(struct pg_batch *b)
{
    for (size_t i = 0; i < b->nkeys; i++) {
        struct pg_key *k = &b->keys[i];
        k->got = k->exists = 0;
        k->n = k->expire_at = 0;
    }
    for (size_t i = 0; i < b->nids; i++) {
        struct pg_id *e = &b->ids[i];
        e->live = e->dirty = 0;
        free(e->answer);
        e->answer = NULL;
        e->alen = 0;
    }
    struct pg_op *op;
    TAILQ_FOREACH(op, &b->ops, link) {
        free(op->values);
        free(op->founds);
        op->values = NULL;
        op->founds = NULL;
        memset(&op->res, 0, sizeof op->res);
    }
    b->now_ms = 0;
}

/* ---- Slow operations over the locked state ------------------------------- */

static struct pg_key *key_of(struct pg_batch *b, const char *k, size_t klen)
{
    return &b->keys[pg_batch_key(b, k, klen)];
}

static void show(struct store_res *res, const struct pg_key *k)
{
    res->found = k->exists;
    res->value = k->exists ? k->n : 0;
    res->expire_at = k->exists ? k->expire_at : 0;
}

/* The expiry a change names (the engine's resolve() in engine.c): 0 none,
 * 1 for a time at or before now (the change deletes), else Unix ms;
 * STORE_EEXPIRE on overflow or past TALLY_EXPIRE_MAX. */
static int resolve(const struct store_req *r, int64_t now, int64_t *x)
{
    int64_t when;
    switch (r->xmode) {
    case STORE_X_REL: case STORE_X_REL_IFNEW:
        if (__builtin_add_overflow(now, r->expire, &when))
            return STORE_EEXPIRE;
        break;
    case STORE_X_ABS: case STORE_X_ABS_IFNEW:
        when = r->expire;
        break;
    default:
        *x = 0;
        return 0;
    }
    if (when > TALLY_EXPIRE_MAX)
        return STORE_EEXPIRE;
    *x = when <= now ? 1 : when;
    return 0;
}

static int ifnew(const struct store_req *r)
{
    return r->xmode == STORE_X_REL_IFNEW || r->xmode == STORE_X_ABS_IFNEW;
}

/* Store (n, expiry x as resolve() gives it) as the key's new state; 1
 * deletes it (Redis 7). */
static void put(struct pg_key *k, int64_t n, int64_t x)
{
    k->exists = x != 1;
    k->n = k->exists ? n : 0;
    k->expire_at = k->exists ? x : 0;
}

/* INCRBY keeps the expiry, sets it (always, or if it creates), with
 * memcached's MUSTEXIST and FLOOR0 (as engine.c's op_incr). */
static void do_incr(struct pg_batch *b, const struct store_req *r,
                    struct store_res *res)
{
    struct pg_key *k = key_of(b, r->key, r->klen);
    int64_t x, delta = r->num, v;
    if ((res->rc = resolve(r, b->now_ms, &x)))
        return;
    show(res, k);
    if (!k->exists && (r->flags & STORE_F_MUSTEXIST)) {
        res->rc = STORE_NOTFOUND;
        return;
    }
    /* The floor: a result below 0 becomes 0; a counter already below it
     * stays as it is (memcached's decr never goes under 0). */
    if ((r->flags & STORE_F_FLOOR0) && delta < 0) {
        int64_t c = res->value;
        delta = c <= 0 ? 0 : (delta < -c ? -c : delta);
    }
    if ((r->flags & (STORE_F_FLOOR0 | STORE_F_MUSTEXIST)) && delta == 0 &&
        r->xmode == STORE_X_KEEP && k->exists) {
        res->unchanged = 1;
        return;
    }
    if (__builtin_add_overflow(res->value, delta, &v)) {
        res->rc = STORE_EOVERFLOW;
        return;
    }
    int set = r->xmode >= STORE_X_REL && (!ifnew(r) || !k->exists);
    if (!set)
        x = r->xmode == STORE_X_NONE ? 0 : k->expire_at;
    put(k, v, x);
    res->found = 1;
    res->value = v;
    res->expire_at = k->expire_at;
    res->expire_set = set ? x : 0;
    res->expired = set && x == 1;
}

/* SET with its conditions (NX, XX, IFEQ), GET and expiry (engine.c's
 * op_set): found/value show the old counter, expire_at the new one. */
static void do_set(struct pg_batch *b, const struct store_req *r,
                   struct store_res *res)
{
    struct pg_key *k = key_of(b, r->key, r->klen);
    unsigned f = r->flags;
    int64_t x;
    if ((res->rc = resolve(r, b->now_ms, &x)))
        return;
    show(res, k);
    if (((f & STORE_F_NX) && k->exists) || ((f & STORE_F_XX) && !k->exists) ||
        ((f & STORE_F_IFEQ) && (!k->exists || k->n != r->cmp))) {
        res->rc = STORE_NOTSET;
        return;
    }
    if (r->xmode == STORE_X_KEEP)
        x = k->expire_at;
    put(k, r->num, x);
    res->n = 1;
    res->expire_at = k->expire_at;
    res->expire_set = x;
    res->expired = x == 1;
}

/* EXPIRE, PERSIST (STORE_X_NONE), GETEX: res shows the counter before
 * (engine.c's op_expire, Redis 7's conditions). */
static void do_expire(struct pg_batch *b, const struct store_req *r,
                      struct store_res *res)
{
    struct pg_key *k = key_of(b, r->key, r->klen);
    unsigned f = r->flags;
    int64_t x, when = 0;
    if ((res->rc = resolve(r, b->now_ms, &x)))
        return;
    if (r->xmode >= STORE_X_REL)
        when = r->xmode == STORE_X_REL || r->xmode == STORE_X_REL_IFNEW
                   ? b->now_ms + r->expire : r->expire;
    show(res, k);
    if (!k->exists) {
        res->rc = STORE_NOTFOUND;
        return;
    }
    int64_t cur = k->expire_at;
    if (r->xmode == STORE_X_NONE) {
        if (!cur)
            return; /* nothing to remove */
    } else if (r->xmode < STORE_X_REL ||
               ((f & STORE_F_NX) && cur) || ((f & STORE_F_XX) && !cur) ||
               ((f & STORE_F_GT) && (!cur || when <= cur)) ||
               ((f & STORE_F_LT) && cur && when >= cur)) {
        return;
    }
    put(k, k->n, x);
    res->n = 1;
    res->expire_set = when;
    res->expired = x == 1;
}

static void do_multi(struct pg_batch *b, struct pg_op *op)
{
    const struct store_req *r = &op->req;
    struct store_res *res = &op->res;
    size_t n = r->nkeys;
    if (r->op == STORE_MGET || r->op == STORE_DEL) {
        op->founds = xcalloc(n ? n : 1, 1);
        res->founds = op->founds;
        res->n_items = n;
    }
    if (r->op == STORE_MGET) {
        op->values = xcalloc(n ? n : 1, sizeof *op->values);
        res->values = op->values;
    }
    for (size_t i = 0; i < n; i++) {
        struct pg_key *k = key_of(b, r->keys[i], r->klens[i]);
        switch (r->op) {
        case STORE_DEL:
            if (k->exists) {
                op->founds[i] = 1;
                res->n++;
                k->exists = 0;
            }
            break;
        case STORE_EXISTS:
            res->n += (uint64_t)k->exists;
            break;
        case STORE_MGET:
            op->founds[i] = (unsigned char)k->exists;
            op->values[i] = k->exists ? k->n : 0;
            break;
        default: /* STORE_MSET */
            put(k, r->nums[i], 0);
            break;
        }
    }
    if (r->op == STORE_DEL && n == 1)
        res->found = op->founds[0];
}

void pg_batch_run(struct pg_batch *b, struct pg_op *op)
{
    const struct store_req *r = &op->req;
    struct store_res *res = &op->res;
    struct pg_key *k;
    switch (r->op) {
    case STORE_GET:
        show(res, key_of(b, r->key, r->klen));
        res->rc = res->found ? STORE_OK : STORE_NOTFOUND;
        break;
    case STORE_INCRBY:
        do_incr(b, r, res);
        break;
    case STORE_SET:
        do_set(b, r, res);
        break;
    case STORE_GETDEL:
        k = key_of(b, r->key, r->klen);
        show(res, k);
        res->rc = k->exists ? STORE_OK : STORE_NOTFOUND;
        k->exists = 0;
        break;
    case STORE_EXPIRE:
        do_expire(b, r, res);
        break;
    case STORE_DEL: case STORE_EXISTS: case STORE_MGET: case STORE_MSET:
        do_multi(b, op);
        break;
    default:
        res->rc = STORE_EUNSUPPORTED;
        break;
    }
}

/* once_answer: the record of a whole batch's id, its answer copied into
 * op->rmem (freed after done()). */
static void once_read(struct pg_batch *b, struct pg_op *op)
{
    const struct pg_id *id = id_get(b, op->req.once, op->req.oncelen);

    if (!id->live) {
        op->res.rc = STORE_NOTFOUND;
    } else if (id->fp != op->req.fingerprint || !id->answer) {
        op->res.rc = STORE_EIDREUSED; /* another batch's, or a change's */
    } else {
        op->rmem = xmalloc(id->alen);
        memcpy(op->rmem, id->answer, id->alen);
        op->res.rc = STORE_OK;
        op->res.found = op->res.replayed = 1;
        op->res.answer = op->rmem;
        op->res.alen = id->alen;
    }
}

/* A store batch's commit; under an id, the id checked and recorded in
 * this same transaction: recorded already means another instance's (or
 * connection's) copy committed first, a conflict, so the re-run's
 * once_answer finds it. */
static void xact_apply(struct pg_batch *b, struct pg_op *op)
{
    struct pg_id *id = op->req.once ? id_get(b, op->req.once,
                                             op->req.oncelen) : NULL;

    if (id && id->live) {
        op->res.rc = STORE_ECONFLICT;
        snprintf(op->res.detail, sizeof op->res.detail, "postgresql: the "
                 "batch's idempotency id was recorded before its commit");
        return;
    }
    pg_xact_apply(b, op);
    if (id && op->res.rc == STORE_OK) {
        id->live = id->dirty = 1;
        id->fp = op->req.fingerprint;
        memset(&id->res, 0, sizeof id->res);
        free(id->answer);
        id->answer = xmalloc(op->alen ? op->alen : 1);
        memcpy(id->answer, op->answer, op->alen);
        id->alen = op->alen;
    }
}

void pg_batch_apply(struct pg_batch *b)
{
    /* Rows that did not come back, or expired, do not exist (pg.c). */
    for (size_t i = 0; i < b->nkeys; i++) {
        struct pg_key *k = &b->keys[i];
        if (!k->slow)
            continue;
        k->exists = k->got;
        if (!k->exists)
            k->n = k->expire_at = 0;
    }
    struct pg_op *op;
    TAILQ_FOREACH(op, &b->ops, link) {
        if (op->hot)
            continue;
        op->res.now_ms = b->now_ms;
        if (op->once_read) {
            once_read(b, op);
            continue;
        }
        if (op->xact) {
            xact_apply(b, op);
            continue;
        }
        struct pg_id *id = NULL;
        if (op->req.once) {
            id = id_get(b, op->req.once, op->req.oncelen);
            if (id->live) {
                if (id->fp != op->req.fingerprint) {
                    op->res.rc = STORE_EIDREUSED;
                } else {
                    op->res = id->res;
                    op->res.replayed = 1;
                    op->res.now_ms = b->now_ms;
                }
                continue;
            }
        }
        if (id && (op->req.flags || (op->req.op == STORE_SET && ifnew(&op->req)) ||
                   (op->req.op == STORE_DEL && op->req.nkeys != 1)))
            op->res.rc = STORE_EINVAL; /* as the engine: ids take no conditions */
        else
            pg_batch_run(b, op);
        if (id && (op->res.rc == STORE_OK || op->res.rc == STORE_NOTFOUND)) {
            id->live = id->dirty = 1;
            id->fp = op->req.fingerprint;
            id->res = op->res;
            id->res.values = NULL;
            id->res.founds = NULL;
            id->res.n_items = 0;
        }
    }
}

void pg_batch_answer_hot(struct pg_batch *b, struct pg_opq *q)
{
    struct pg_opq back = TAILQ_HEAD_INITIALIZER(back);
    struct pg_op *op, *next;
    for (op = TAILQ_FIRST(&b->ops); op; op = next) {
        next = TAILQ_NEXT(op, link);
        if (!op->hot)
            continue;
        const struct pg_key *k = &b->keys[op->hk];
        if (!k->got) {
            TAILQ_REMOVE(&b->ops, op, link);
            b->nops--;
            op->force_slow = 1;
            op->hot = 0;
            TAILQ_INSERT_TAIL(&back, op, link);
            continue;
        }
        /* The row holds the value after every hot delta of the batch, so
         * the value before them is n - sum (0 for a new or expired row). */
        struct store_res *res = &op->res;
        res->rc = STORE_OK;
        res->found = 1;
        res->value = k->n - k->sum + op->prefix;
        res->expire_at = k->expire_at;
        res->now_ms = b->now_ms;
    }
    while ((op = TAILQ_LAST(&back, pg_opq))) {
        TAILQ_REMOVE(&back, op, link);
        TAILQ_INSERT_HEAD(q, op, link);
    }
}
