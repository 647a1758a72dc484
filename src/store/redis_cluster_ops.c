/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_cluster_ops.c - what each store operation becomes on a Redis
 * Cluster: one op to the master of its key's slot (redis_cluster.c's
 * cluster_route), or, over several slots, one op per slot whose answers
 * are put together here.  MGET, EXISTS and DEL split per slot (DEL is then
 * atomic per slot); MSET across slots is refused with CROSSSLOT, as Redis
 * Cluster does, for it would lose its atomicity.  SCAN walks the masters in
 * the order of their first slot, which the cursor carries in its top 14
 * bits above that master's own cursor; COUNT and FLUSH ask every master and
 * add up.  The bytes of each op are redis_ops.c's, the same as on one Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cluster_int.h"

/* ---- Operations over many slots ----------------------------------------- */

/* One operation split over slots (MGET, EXISTS, DEL; COUNT and FLUSH over
 * every master): each part answers into it, the last answers the caller. */
struct fan {
    enum store_opk op;
    size_t left, nkeys;
    store_done_fn done;
    void *arg;
    int rc;                   /* the first error (STORE_EUNKNOWN wins) */
    int applied;              /* a part changed something */
    char detail[160];
    uint64_t n, expires_n, once_ids, once_bytes;
    double ttl_sum;
    int64_t now_ms;
    int64_t *values;
    unsigned char *founds;
};

struct part {
    struct fan *f;
    size_t n;
    size_t *idx;              /* the part's keys' places in the request */
};

static void fan_finish(struct fan *f)
{
    struct store_res out;

    store_res_init(&out);
    out.now_ms = f->now_ms;
    if (f->rc < 0) {
        out.rc = f->rc;
        snprintf(out.detail, sizeof out.detail, "%s", f->detail);
        if (f->applied && f->rc != STORE_EUNKNOWN) {
            /* Some slots changed, others not: no success, no "nothing". */
            out.rc = STORE_EUNKNOWN;
            snprintf(out.detail, sizeof out.detail, "redis cluster: applied "
                     "on some slots only (%.100s)", f->detail);
        }
    } else {
        out.n = f->n;
        out.expires_n = f->expires_n;
        out.once_ids = f->once_ids;
        out.once_bytes = f->once_bytes;
        out.avg_ttl_ms = f->expires_n ? (int64_t)(f->ttl_sum /
                                                  (double)f->expires_n) : 0;
        if (f->op == STORE_MGET || f->op == STORE_DEL) {
            out.n_items = f->nkeys;
            out.values = f->op == STORE_MGET ? f->values : NULL;
            out.founds = f->founds;
        }
    }
    f->done(f->arg, &out);
    free(f->values);
    free(f->founds);
    free(f);
}

static void part_done(void *arg, const struct store_res *res)
{
    struct part *p = arg;
    struct fan *f = p->f;

    if (res->rc < 0) {
        if (f->rc >= 0 || res->rc == STORE_EUNKNOWN) {
            f->rc = res->rc;
            snprintf(f->detail, sizeof f->detail, "%s", res->detail);
        }
    } else {
        for (size_t i = 0; i < p->n && i < res->n_items; i++) {
            if (res->values && f->values)
                f->values[p->idx[i]] = res->values[i];
            if (res->founds && f->founds)
                f->founds[p->idx[i]] = res->founds[i];
        }
        f->n += res->n;
        f->expires_n += res->expires_n;
        f->once_ids += res->once_ids;
        f->once_bytes += res->once_bytes;
        f->ttl_sum += (double)res->avg_ttl_ms * (double)res->expires_n;
        f->applied |= (f->op == STORE_DEL || f->op == STORE_FLUSH) && res->n;
        if (res->now_ms)
            f->now_ms = res->now_ms;
    }
    free(p->idx);
    free(p);
    if (--f->left == 0)
        fan_finish(f);
}

struct keyslot {
    int slot;
    size_t idx;
};

static int by_slot(const void *a, const void *b)
{
    const struct keyslot *x = a, *y = b;

    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Format one part (keys idx[0..n) of req, or all of a keyless req) into a
 * new op bound for slot; STORE_OK or the error with nothing made. */
static int part_make(struct cluster *c, const struct store_req *req,
                     struct fan *f, const size_t *idx, size_t n, int slot,
                     struct redis_op **out)
{
    struct store_req sub = *req;
    const char **keys = NULL;
    size_t *klens = NULL;
    struct redis_op *op = xcalloc(1, sizeof *op);
    struct part *p = xcalloc(1, sizeof *p);
    int rc;

    if (idx) {
        keys = xmalloc((n ? n : 1) * sizeof *keys);
        klens = xmalloc((n ? n : 1) * sizeof *klens);
        for (size_t i = 0; i < n; i++) {
            keys[i] = req->keys[idx[i]];
            klens[i] = req->klens[idx[i]];
        }
        sub.keys = keys;
        sub.klens = klens;
        sub.nkeys = n;
        p->idx = xmalloc((n ? n : 1) * sizeof *p->idx);
        memcpy(p->idx, idx, n * sizeof *idx);
        p->n = n;
    }
    op->kind = R_USER;
    rc = redis_op_format(&c->keys, c->sha, c->once_ttl_ms, &sub, op);
    free(keys);
    free(klens);
    if (rc != STORE_OK) {
        redis_op_free(op);
        free(p->idx);
        free(p);
        return rc;
    }
    p->f = f;
    op->slot = slot;
    op->done = part_done;
    op->arg = p;
    *out = op;
    return STORE_OK;
}

static struct fan *fan_new(const struct store_req *req, store_done_fn done,
                           void *arg)
{
    struct fan *f = xcalloc(1, sizeof *f);

    f->op = req->op;
    f->nkeys = req->nkeys;
    f->done = done;
    f->arg = arg;
    if (req->op == STORE_MGET)
        f->values = xcalloc(req->nkeys ? req->nkeys : 1, sizeof *f->values);
    if (req->op == STORE_MGET || req->op == STORE_DEL)
        f->founds = xcalloc(req->nkeys ? req->nkeys : 1, 1);
    return f;
}

/* Send the parts, or free them and the fan on a format error. */
static int fan_send(struct cluster *c, struct fan *f, struct redis_op **ops,
                    size_t nops, int rc, struct store_res *res)
{
    if (rc != STORE_OK) {
        for (size_t i = 0; i < nops; i++) {
            struct part *p = ops[i]->arg;
            free(p->idx);
            free(p);
            redis_op_free(ops[i]);
        }
        free(ops);
        free(f->values);
        free(f->founds);
        free(f);
        res->rc = rc;
        return STORE_DONE;
    }
    f->left = nops;
    for (size_t i = 0; i < nops; i++)
        cluster_route(c, ops[i]);
    free(ops);
    return STORE_PENDING;
}

/* DEL, EXISTS, MGET over keys of more than one slot: a part per slot.
 * MSET would lose its atomicity: refused, as Redis Cluster does. */
static int exec_split(struct cluster *c, const struct store_req *req,
                      struct keyslot *ks, struct store_res *res,
                      store_done_fn done, void *arg)
{
    struct fan *f;
    struct redis_op **ops;
    size_t *idx, nops = 0, i = 0;
    int rc = STORE_OK;

    if (req->op == STORE_MSET) {
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail, "CROSSSLOT Keys in request "
                 "don't hash to the same slot (on a Redis Cluster each "
                 "counter has a slot of its own: SET them one by one)");
        return STORE_DONE;
    }
    qsort(ks, req->nkeys, sizeof *ks, by_slot);
    f = fan_new(req, done, arg);
    ops = xmalloc(req->nkeys * sizeof *ops);
    idx = xmalloc(req->nkeys * sizeof *idx);
    while (i < req->nkeys && rc == STORE_OK) {
        size_t n = 0;
        int slot = ks[i].slot;
        while (i < req->nkeys && ks[i].slot == slot)
            idx[n++] = ks[i++].idx;
        rc = part_make(c, req, f, idx, n, slot, &ops[nops]);
        nops += rc == STORE_OK;
    }
    free(idx);
    return fan_send(c, f, ops, nops, rc, res);
}

/* COUNT and FLUSH: a part for every master (by its first slot, so a
 * failover sends it to the new one). */
static int exec_every(struct cluster *c, const struct store_req *req,
                      struct store_res *res, store_done_fn done, void *arg)
{
    struct fan *f = fan_new(req, done, arg);
    struct redis_op **ops;
    struct cnode *n;
    size_t nops = 0, max = 0;
    int rc = STORE_OK;

    TAILQ_FOREACH(n, &c->nodes, link)
        max += n->master;
    ops = xmalloc((max ? max : 1) * sizeof *ops);
    TAILQ_FOREACH(n, &c->nodes, link) {
        if (!n->master || rc != STORE_OK)
            continue;
        rc = part_make(c, req, f, NULL, 0, n->first_slot, &ops[nops]);
        nops += rc == STORE_OK;
    }
    return fan_send(c, f, ops, nops, rc, res);
}

/* SCAN: the cursor is (a master's first slot << CURSOR_BITS) | that
 * master's own cursor; when a master is done the walk goes on at the
 * master with the next higher first slot. */
struct scan {
    struct cluster *c;
    int slot;
    store_done_fn done;
    void *arg;
};

static void scan_done(void *arg, const struct store_res *res)
{
    struct scan *sc = arg;
    struct cluster *c = sc->c;
    struct store_res out = *res;
    uint64_t nc = res->n;

    if (res->rc >= 0 && nc >> CURSOR_BITS) {
        store_res_init(&out);
        out.rc = STORE_EIO;
        snprintf(out.detail, sizeof out.detail, "redis cluster: a node's "
                 "SCAN cursor does not fit in %d bits", CURSOR_BITS);
    } else if (res->rc >= 0 && nc) {
        out.n = (uint64_t)sc->slot << CURSOR_BITS | nc;
    } else if (res->rc >= 0) {
        struct cnode *n, *at = c->slot[sc->slot];
        int base = at ? at->first_slot : sc->slot, next = SLOTS;
        TAILQ_FOREACH(n, &c->nodes, link)
            if (n->master && n->first_slot > base && n->first_slot < next)
                next = n->first_slot;
        out.n = next < SLOTS ? (uint64_t)next << CURSOR_BITS : 0;
    }
    sc->done(sc->arg, &out);
    free(sc);
}

static int exec_scan(struct cluster *c, const struct store_req *req,
                     struct store_res *res, store_done_fn done, void *arg)
{
    struct store_req sub = *req;
    struct redis_op *op = xcalloc(1, sizeof *op);
    struct scan *sc;
    int rc;

    sub.cursor = req->cursor & (((uint64_t)1 << CURSOR_BITS) - 1);
    op->kind = R_USER;
    if ((rc = redis_op_format(&c->keys, c->sha, c->once_ttl_ms, &sub,
                              op)) != STORE_OK) {
        redis_op_free(op);
        res->rc = rc;
        return STORE_DONE;
    }
    sc = xcalloc(1, sizeof *sc);
    sc->c = c;
    sc->slot = (int)(req->cursor >> CURSOR_BITS) & (SLOTS - 1);
    sc->done = done;
    sc->arg = arg;
    op->slot = sc->slot;
    op->done = scan_done;
    op->arg = sc;
    cluster_route(c, op);
    return STORE_PENDING;
}

static int any_node_up(const struct cluster *c)
{
    struct cnode *n;

    TAILQ_FOREACH(n, &c->nodes, link)
        if (redis_node_up(n->rs))
            return 1;
    return 0;
}

int cluster_exec(struct store *st, const struct store_req *req,
                  struct store_res *res, store_done_fn done, void *arg)
{
    struct cluster *c = cluster_of(st);
    struct redis_op *op;
    int rc, slot;

    store_res_init(res);
    if (req->op == STORE_SAVE || req->op == STORE_BGSAVE || !done) {
        res->rc = STORE_EUNSUPPORTED;
        return STORE_DONE;
    }
    if (req->batch)
        return redis_xact_exec(req, res, done, arg);
    if (!c->nserved && !any_node_up(c)) {
        /* Down from the start: answer now, as the one-node store does. */
        res->rc = STORE_EUNAVAIL;
        snprintf(res->detail, sizeof res->detail, "%.150s",
                 c->why[0] ? c->why : "redis cluster: no node reachable");
        return STORE_DONE;
    }
    switch (req->op) {
    case STORE_SCAN:
        return exec_scan(c, req, res, done, arg);
    case STORE_COUNT:
    case STORE_FLUSH:
        if (!c->nserved) {
            res->rc = STORE_EUNAVAIL;
            snprintf(res->detail, sizeof res->detail, "redis cluster: no "
                     "slot map yet");
            return STORE_DONE;
        }
        return exec_every(c, req, res, done, arg);
    case STORE_DEL:
    case STORE_EXISTS:
    case STORE_MGET:
    case STORE_MSET: {
        struct keyslot *ks;
        size_t i;
        if (!req->nkeys)
            break;
        int split = 0;
        ks = xmalloc(req->nkeys * sizeof *ks);
        for (i = 0; i < req->nkeys; i++) {
            ks[i].slot = redis_cluster_slot(req->keys[i], req->klens[i]);
            ks[i].idx = i;
            split |= ks[i].slot != ks[0].slot;
        }
        if (split && !req->once) {
            rc = exec_split(c, req, ks, res, done, arg);
            free(ks);
            return rc;
        }
        slot = ks[0].slot;
        free(ks);
        goto one;
    }
    default:
        break;
    }
    slot = redis_cluster_slot(req->key, req->klen);
one:
    op = xcalloc(1, sizeof *op);
    op->kind = R_USER;
    if ((rc = redis_op_format(&c->keys, c->sha, c->once_ttl_ms, req,
                              op)) != STORE_OK) {
        redis_op_free(op);
        res->rc = rc;
        return STORE_DONE;
    }
    op->slot = slot;
    op->done = done;
    op->arg = arg;
    cluster_route(c, op);
    return STORE_PENDING;
}

