/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * view.c - store operations run in C over a batch's private view of its
 * keys (view.h).  The semantics are the engine's (engine.c) and Redis 7's
 * for expiries: a time at or before now deletes the counter.  A view is a
 * handful of keys (one MULTI's, one script's), so keys are found by a
 * linear search.  The store that owns the view reads the keys (view_read)
 * and checks and writes them at commit; nothing here does I/O.
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "view.h"

void view_init(struct view *v)
{
    memset(v, 0, sizeof *v);
}

void view_free(struct view *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->keys[i].k);
    free(v->keys);
    view_init(v);
}

size_t view_find(const struct view *v, const char *k, size_t klen)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->keys[i].klen == klen && !memcmp(v->keys[i].k, k, klen))
            return i;
    return SIZE_MAX;
}

size_t view_add(struct view *v, const char *k, size_t klen)
{
    size_t ki = view_find(v, k, klen);
    struct view_key *e;

    if (ki != SIZE_MAX)
        return ki;
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 8;
        v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
    }
    e = &v->keys[v->n];
    memset(e, 0, sizeof *e);
    e->k = xmalloc(klen ? klen : 1);
    if (klen)
        memcpy(e->k, k, klen);
    e->klen = klen;
    return v->n++;
}

void view_read(struct view *v, size_t ki, int exists, int64_t n, int64_t x)
{
    struct view_key *e = &v->keys[ki];

    e->read = 1;
    e->was = e->exists = exists != 0;
    e->was_n = e->n = exists ? n : 0;
    e->was_x = e->expire_at = exists ? x : 0;
}

static int req_multi(const struct store_req *r)
{
    return r->op == STORE_DEL || r->op == STORE_EXISTS ||
           r->op == STORE_MGET || r->op == STORE_MSET;
}

size_t view_req_nkeys(const struct store_req *r)
{
    if (req_multi(r))
        return r->nkeys;
    return r->op == STORE_SCAN || r->op == STORE_COUNT ||
           r->op == STORE_FLUSH || r->op == STORE_SAVE ||
           r->op == STORE_BGSAVE ? 0 : 1;
}

const char *view_req_key(const struct store_req *r, size_t i, size_t *klen)
{
    if (!req_multi(r)) {
        *klen = r->klen;
        return r->key;
    }
    *klen = r->klens[i];
    return r->keys[i];
}

void view_req_each_key(const struct store_req *r,
                       void (*fn)(void *arg, const char *k, size_t klen),
                       void *arg)
{
    size_t n = view_req_nkeys(r);

    if (r->once || r->op == STORE_COUNT || r->op == STORE_SCAN ||
        r->op == STORE_FLUSH)
        return;
    for (size_t i = 0; i < n; i++) {
        size_t klen;
        const char *k = view_req_key(r, i, &klen);
        if (klen <= TALLY_KEY_MAX)
            fn(arg, k, klen);
    }
}

/* ---- The operations ------------------------------------------------------ */

static struct view_key *key_of(struct view *v, const char *k, size_t klen)
{
    return &v->keys[view_find(v, k, klen)];
}

static void show(struct store_res *res, const struct view_key *k)
{
    res->found = k->exists;
    res->value = k->exists ? k->n : 0;
    res->expire_at = k->exists ? k->expire_at : 0;
}

/* The expiry a change names: 0 none, 1 for a time at or before now (the
 * change deletes), else Unix ms; STORE_EEXPIRE on overflow or past
 * TALLY_EXPIRE_MAX. */
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

/* (n, expiry x as resolve() gives it) as the key's new state; 1 deletes. */
static void put(struct view_key *k, int64_t n, int64_t x)
{
    k->exists = x != 1;
    k->n = k->exists ? n : 0;
    k->expire_at = k->exists ? x : 0;
    k->dirty = 1;
}

static void do_incr(struct view *v, const struct store_req *r,
                    struct store_res *res)
{
    struct view_key *k = key_of(v, r->key, r->klen);
    int64_t x, delta = r->num, val;
    int set;

    if ((res->rc = resolve(r, v->now_ms, &x)))
        return;
    show(res, k);
    if (!k->exists && (r->flags & STORE_F_MUSTEXIST)) {
        res->rc = STORE_NOTFOUND;
        return;
    }
    /* memcached's decr never takes a counter below 0; one already below
     * stays as it is. */
    if ((r->flags & STORE_F_FLOOR0) && delta < 0) {
        int64_t c = res->value;
        delta = c <= 0 ? 0 : (delta < -c ? -c : delta);
    }
    if ((r->flags & (STORE_F_FLOOR0 | STORE_F_MUSTEXIST)) && delta == 0 &&
        r->xmode == STORE_X_KEEP && k->exists) {
        res->unchanged = 1;
        return;
    }
    if (__builtin_add_overflow(res->value, delta, &val)) {
        res->rc = STORE_EOVERFLOW;
        return;
    }
    set = r->xmode >= STORE_X_REL && (!ifnew(r) || !k->exists);
    if (!set)
        x = r->xmode == STORE_X_NONE ? 0 : k->expire_at;
    put(k, val, x);
    res->found = 1;
    res->value = val;
    res->expire_at = k->expire_at;
    res->expire_set = set ? x : 0;
    res->expired = set && x == 1;
}

/* found/value show the old counter, expire_at the new one. */
static void do_set(struct view *v, const struct store_req *r,
                   struct store_res *res)
{
    struct view_key *k = key_of(v, r->key, r->klen);
    unsigned f = r->flags;
    int64_t x;

    if ((res->rc = resolve(r, v->now_ms, &x)))
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

static void do_getdel(struct view *v, const struct store_req *r,
                      struct store_res *res)
{
    struct view_key *k = key_of(v, r->key, r->klen);

    show(res, k);
    if (!k->exists) {
        res->rc = STORE_NOTFOUND;
        return;
    }
    if ((r->flags & STORE_F_IFEQ) && k->n != r->cmp) {
        res->rc = STORE_NOTSET;
        return;
    }
    put(k, 0, 1);
}

/* EXPIRE, PERSIST (STORE_X_NONE), GETEX: res shows the counter before. */
static void do_expire(struct view *v, const struct store_req *r,
                      struct store_res *res)
{
    struct view_key *k = key_of(v, r->key, r->klen);
    unsigned f = r->flags;
    int64_t x, cur, when = 0;

    if ((res->rc = resolve(r, v->now_ms, &x)))
        return;
    if (r->xmode >= STORE_X_REL)
        when = r->xmode == STORE_X_REL || r->xmode == STORE_X_REL_IFNEW
                   ? v->now_ms + r->expire : r->expire;
    show(res, k);
    if (!k->exists) {
        res->rc = STORE_NOTFOUND;
        return;
    }
    cur = k->expire_at;
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

static void do_multi(struct view *v, const struct store_req *r,
                     struct store_res *res, int64_t *values,
                     unsigned char *founds)
{
    size_t n = r->nkeys;

    if (r->op == STORE_MGET || r->op == STORE_DEL) {
        res->founds = founds;
        res->n_items = n;
    }
    if (r->op == STORE_MGET)
        res->values = values;
    for (size_t i = 0; i < n; i++) {
        struct view_key *k = key_of(v, r->keys[i], r->klens[i]);
        switch (r->op) {
        case STORE_DEL:
            if (founds)
                founds[i] = (unsigned char)k->exists;
            if (k->exists) {
                res->n++;
                put(k, 0, 1);
            }
            break;
        case STORE_EXISTS:
            res->n += (uint64_t)k->exists;
            break;
        case STORE_MGET:
            if (founds)
                founds[i] = (unsigned char)k->exists;
            if (values)
                values[i] = k->exists ? k->n : 0;
            break;
        default: /* STORE_MSET */
            put(k, r->nums[i], 0);
            break;
        }
    }
    if (r->op == STORE_DEL && n == 1)
        res->found = res->n == 1;
}

int view_run(struct view *v, const struct store_req *r, struct store_res *res,
             int64_t *values, unsigned char *founds)
{
    store_res_init(res);
    res->now_ms = v->now_ms;
    if (r->once) {
        res->rc = STORE_EUNSUPPORTED;
        return res->rc;
    }
    switch (r->op) {
    case STORE_GET:
        show(res, key_of(v, r->key, r->klen));
        res->rc = res->found ? STORE_OK : STORE_NOTFOUND;
        break;
    case STORE_INCRBY:
        do_incr(v, r, res);
        break;
    case STORE_SET:
        do_set(v, r, res);
        break;
    case STORE_GETDEL:
        do_getdel(v, r, res);
        break;
    case STORE_EXPIRE:
        do_expire(v, r, res);
        break;
    case STORE_DEL: case STORE_EXISTS: case STORE_MGET: case STORE_MSET:
        do_multi(v, r, res, values, founds);
        break;
    default:
        res->rc = STORE_EUNSUPPORTED;
        break;
    }
    return res->rc;
}
