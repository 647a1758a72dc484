/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * engine.c - the embedded engine as a store (store.h over libtally).  It
 * owns what the command layer used to do on the handle itself: resolving an
 * expiry on the engine's clock, the read-then-write of SET's conditions,
 * GETDEL, EXPIRE's conditions, memcached's cas and decr floor, multi-key
 * reads, scans and snapshots.  Each of those is atomic because one thread
 * owns the handle and nothing else runs between the read and the write.
 *
 * Every operation completes at once (STORE_DONE) and allocates nothing,
 * except SCAN, whose answer lives in arrays kept in the store and reused.
 * Every engine ticket is taken, an error's too (tally.h): the result's
 * ticket is the highest of them, and the reply waits for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"

static struct store_engine *self(struct store *st)
{
    return (struct store_engine *)st;
}

static void take(struct store_res *res, tally_ticket t)
{
    if (t > res->ticket)
        res->ticket = t;
}

/* An engine code as a store code; the engine's message goes to detail for
 * the codes whose message says more than the code's name. */
static int from_tally(tally *db, struct store_res *res, int rc)
{
    int out;

    switch (rc) {
    case TALLY_OK: return STORE_OK;
    case TALLY_NOTFOUND: return STORE_NOTFOUND;
    case TALLY_EINVAL: return STORE_EINVAL;
    case TALLY_EKEYLEN: return STORE_EKEYLEN;
    case TALLY_EOVERFLOW: return STORE_EOVERFLOW;
    case TALLY_EBUSY: return STORE_EBUSY;
    case TALLY_EIDREUSED: return STORE_EIDREUSED;
    case TALLY_EINFLIGHT: return STORE_EINFLIGHT;
    case TALLY_EIDLEN: return STORE_EIDLEN;
    case TALLY_ENOSPC: out = STORE_ENOSPC; break;
    case TALLY_EFAILED: out = STORE_EFAILED; break;
    case TALLY_ENOTDURABLE: out = STORE_ENOTDURABLE; break;
    default: out = STORE_EIO; break;
    }
    const char *msg = tally_errmsg(db);
    if (!msg || !*msg)
        msg = tally_strerror(rc);
    /* One line: front ends put it inside an error reply that ends at the
     * first line break. */
    size_t n = 0;
    for (; msg[n] && n + 1 < sizeof res->detail; n++)
        res->detail[n] = (msg[n] == '\r' || msg[n] == '\n') ? ' ' : msg[n];
    res->detail[n] = 0;
    return out;
}

/* The expiry a request names, as the engine is given it: 0 none, 1 (long
 * past) for a time at or before now, which makes the engine delete, else
 * the time.  STORE_EEXPIRE on overflow or past TALLY_EXPIRE_MAX. */
static int resolve_when(tally *db, const struct store_req *req, int64_t *x,
                        int64_t *when_out)
{
    int64_t now, when;

    *when_out = 0;
    if (req->xmode < STORE_X_REL) {
        *x = 0;
        return STORE_OK; /* no clock read: the common case */
    }
    now = tally_now_ms(db);
    switch (req->xmode) {
    case STORE_X_REL: case STORE_X_REL_IFNEW:
        if (__builtin_add_overflow(now, req->expire, &when))
            return STORE_EEXPIRE;
        break;
    case STORE_X_ABS: case STORE_X_ABS_IFNEW:
        when = req->expire;
        break;
    default:
        *x = 0;
        return STORE_OK;
    }
    if (when > TALLY_EXPIRE_MAX)
        return STORE_EEXPIRE;
    *x = when <= now ? 1 : when;
    *when_out = when;
    return STORE_OK;
}

static int resolve(tally *db, const struct store_req *req, int64_t *x)
{
    int64_t when;

    return resolve_when(db, req, x, &when);
}

static int has_expire(const struct store_req *req)
{
    return req->xmode >= STORE_X_REL;
}

static int ifnew(const struct store_req *req)
{
    return req->xmode == STORE_X_REL_IFNEW || req->xmode == STORE_X_ABS_IFNEW;
}

/* Read one counter into res (found/value/expire_at), taking its ticket. */
static int get_one(tally *db, const char *key, size_t klen,
                   struct store_res *res)
{
    tally_ticket t = 0;
    int64_t v = 0, x = 0;
    int rc = tally_getx(db, key, klen, &v, &x, &t);

    take(res, t);
    if (rc < 0)
        return from_tally(db, res, rc);
    res->found = rc == TALLY_OK;
    res->value = res->found ? v : 0;
    res->expire_at = res->found ? x : 0;
    if (res->expire_at) /* TTL-left needs it; no clock read otherwise */
        res->now_ms = tally_now_ms(db);
    return res->found ? STORE_OK : STORE_NOTFOUND;
}

/* The events' view of expiry x as the engine was given it. */
static void note_expiry(struct store_res *res, int64_t x)
{
    res->expire_set = x;
    res->expired = x == 1;
}

/* SET with its conditions (NX, XX, IFEQ), GET and expiry. */
static int op_set(tally *db, const struct store_req *req,
                  struct store_res *res)
{
    unsigned cond = req->flags & (STORE_F_NX | STORE_F_XX | STORE_F_IFEQ);
    int keep = req->xmode == STORE_X_KEEP;
    tally_ticket t = 0;
    int64_t x = 0;
    int rc;

    if ((rc = resolve(db, req, &x)) != STORE_OK)
        return rc;
    if (cond || keep || (req->flags & STORE_F_GET)) {
        rc = get_one(db, req->key, req->klen, res);
        if (rc != STORE_OK && rc != STORE_NOTFOUND)
            return rc;
        if (((cond & STORE_F_NX) && res->found) ||
            ((cond & STORE_F_XX) && !res->found) ||
            ((cond & STORE_F_IFEQ) &&
             (!res->found || res->value != req->cmp)))
            return STORE_NOTSET;
        if (keep)
            x = res->expire_at;
    }
    rc = tally_setx(db, req->key, req->klen, req->num, x, &t);
    take(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(db, res, rc);
    note_expiry(res, x);
    res->n = 1;
    /* With GET, value/found show the old counter; expire_at the new one. */
    res->expire_at = x > 1 && x > tally_now_ms(db) ? x : 0;
    return STORE_OK;
}

/* INCRBY, keeping the expiry or setting it (always, or if it creates), with
 * memcached's MUSTEXIST and FLOOR0. */
static int op_incr(tally *db, const struct store_req *req,
                   struct store_res *res)
{
    int mode = TALLY_TTL_KEEP;
    tally_ticket t = 0;
    int64_t x = 0, delta = req->num;
    int rc;

    if ((rc = resolve(db, req, &x)) != STORE_OK)
        return rc;
    if (has_expire(req))
        mode = ifnew(req) ? TALLY_TTL_IFNEW : TALLY_TTL_SET;
    if (req->flags & (STORE_F_MUSTEXIST | STORE_F_FLOOR0)) {
        rc = get_one(db, req->key, req->klen, res);
        if (rc < 0)
            return rc;
        if (rc == STORE_NOTFOUND && (req->flags & STORE_F_MUSTEXIST))
            return STORE_NOTFOUND;
        /* The floor: a result below 0 becomes 0; a counter already below
         * it stays as it is (memcached's decr never goes under 0). */
        if ((req->flags & STORE_F_FLOOR0) && delta < 0) {
            int64_t v = res->value;
            delta = v <= 0 ? 0 : (delta < -v ? -v : delta);
        }
        if (delta == 0 && mode == TALLY_TTL_KEEP && res->found) {
            res->unchanged = 1; /* nothing to change: the read shows it */
            return STORE_OK;
        }
    }
    rc = tally_incrx(db, req->key, req->klen, delta, mode, x, &res->value,
                     &res->expire_at, &t);
    take(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(db, res, rc);
    res->found = 1;
    /* IFNEW sets the expiry only if this increment created the counter. */
    note_expiry(res, mode == TALLY_TTL_SET || (mode == TALLY_TTL_IFNEW &&
                                               res->expire_at == x) ? x : 0);
    return STORE_OK;
}

/* EXPIRE's conditions (Redis 7): may an expiry `when` replace `cur` (0 for
 * none, which counts as later than any time)? */
static int expire_allowed(unsigned flags, int64_t cur, int64_t when)
{
    if ((flags & STORE_F_NX) && cur)
        return 0;
    if ((flags & STORE_F_XX) && !cur)
        return 0;
    if ((flags & STORE_F_GT) && (!cur || when <= cur))
        return 0;
    if ((flags & STORE_F_LT) && cur && when >= cur)
        return 0;
    return 1;
}

/* EXPIRE, PERSIST (STORE_X_NONE), GETEX: res shows the counter before. */
static int op_expire(tally *db, const struct store_req *req,
                     struct store_res *res)
{
    tally_ticket t = 0;
    int64_t x = 0, when = 0;
    int rc;

    /* when: the time itself, for GT/LT and the events. */
    if ((rc = resolve_when(db, req, &x, &when)) != STORE_OK)
        return rc;
    rc = get_one(db, req->key, req->klen, res);
    if (rc != STORE_OK)
        return rc;
    if (req->xmode == STORE_X_NONE) {
        if (!res->expire_at)
            return STORE_OK; /* nothing to remove */
    } else if (!has_expire(req) ||
               !expire_allowed(req->flags, res->expire_at, when)) {
        return STORE_OK;
    }
    rc = tally_expire(db, req->key, req->klen, x, &t);
    take(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(db, res, rc);
    res->n = 1;
    res->expire_set = when;
    res->expired = x == 1;
    return STORE_OK;
}

static int op_getdel(tally *db, const struct store_req *req,
                     struct store_res *res)
{
    tally_ticket t = 0;
    int rc = get_one(db, req->key, req->klen, res);

    if (rc != STORE_OK)
        return rc;
    if ((req->flags & STORE_F_IFEQ) && res->value != req->cmp)
        return STORE_NOTSET;
    rc = tally_del(db, req->key, req->klen, &t);
    take(res, t);
    return rc < 0 ? from_tally(db, res, rc) : STORE_OK;
}

/* EXISTS and MGET: one read per key, tickets combined. */
static int op_reads(tally *db, const struct store_req *req,
                    struct store_res *res)
{
    for (size_t i = 0; i < req->nkeys; i++) {
        tally_ticket t = 0;
        int64_t v = 0;
        int rc = tally_get(db, req->keys[i], req->klens[i], &v, &t);
        take(res, t);
        if (rc < 0)
            return from_tally(db, res, rc);
        if (req->op == STORE_MGET) {
            res->values[i] = rc == TALLY_OK ? v : 0;
            res->founds[i] = rc == TALLY_OK;
        } else if (rc == TALLY_OK) {
            res->n++;
        }
    }
    res->n_items = req->op == STORE_MGET ? req->nkeys : 0;
    return STORE_OK;
}

/* DEL (with res->founds set: which keys existed, each once; the handle is
 * this thread's, so nothing changes between this look and the delete) and
 * MSET: one atomic change each. */
static int op_mchange(tally *db, const struct store_req *req,
                      struct store_res *res)
{
    const void *const *keys = (const void *const *)req->keys;
    tally_ticket t = 0;
    int rc;

    if (req->op == STORE_DEL && res->founds) {
        for (size_t i = 0; i < req->nkeys; i++) {
            size_t j = 0;
            int64_t v;
            while (j < i && !(req->klens[j] == req->klens[i] &&
                              memcmp(req->keys[j], req->keys[i],
                                     req->klens[i]) == 0))
                j++;
            res->founds[i] = j == i && tally_get(db, req->keys[i],
                                                 req->klens[i], &v,
                                                 &t) == TALLY_OK;
        }
        res->n_items = req->nkeys;
    }
    rc = req->op == STORE_DEL
             ? tally_mdel(db, req->nkeys, keys, req->klens, &res->n, &t)
             : tally_mset(db, req->nkeys, keys, req->klens, req->nums, &t);
    take(res, t);
    return rc < 0 ? from_tally(db, res, rc) : STORE_OK;
}

/* ---- Exactly once ------------------------------------------------------ */

static int op_once(tally *db, const struct store_req *req,
                   struct store_res *res)
{
    tally_once once = {req->once, req->oncelen, req->fingerprint};
    tally_ticket t = 0;
    int64_t x = 0;
    int rc, mode = TALLY_TTL_KEEP;

    if ((rc = resolve(db, req, &x)) != STORE_OK)
        return rc;
    if (has_expire(req))
        mode = ifnew(req) ? TALLY_TTL_IFNEW : TALLY_TTL_SET;
    switch (req->op) {
    case STORE_INCRBY:
        if (req->flags)
            return STORE_EINVAL;
        rc = tally_incrx_once(db, &once, req->key, req->klen, req->num, mode,
                              x, &res->value, &res->replayed, &t);
        res->found = rc == TALLY_OK;
        break;
    case STORE_SET:
        if (req->flags || ifnew(req))
            return STORE_EINVAL;
        /* KEEPTTL as op_set: the read and the write on one handle. */
        if (req->xmode == STORE_X_KEEP) {
            rc = get_one(db, req->key, req->klen, res);
            if (rc != STORE_OK && rc != STORE_NOTFOUND)
                return rc;
            x = res->expire_at;
        }
        rc = tally_setx_once(db, &once, req->key, req->klen, req->num, x,
                             &res->replayed, &t);
        break;
    case STORE_GETDEL:
        rc = tally_del_once(db, &once, req->key, req->klen, &res->value,
                            &res->replayed, &t);
        res->found = rc == TALLY_OK;
        break;
    case STORE_DEL:
        if (req->nkeys != 1)
            return STORE_EINVAL;
        rc = tally_del_once(db, &once, req->keys[0], req->klens[0], NULL,
                            &res->replayed, &t);
        res->n = rc == TALLY_OK;
        break;
    default:
        return STORE_EINVAL;
    }
    take(res, t); /* also EIDREUSED's: the first request's */
    if (rc < 0)
        return from_tally(db, res, rc);
    note_expiry(res, x);
    return rc == TALLY_NOTFOUND ? STORE_NOTFOUND : STORE_OK;
}

/* ---- SCAN ---------------------------------------------------------------- */

static int scan_add(void *arg, const void *key, size_t klen, int64_t value,
                    int64_t expire_ms)
{
    struct store_engine_scan *sc = arg;

    if (sc->n == sc->cap) {
        sc->cap = sc->cap ? 2 * sc->cap : 64;
        sc->keys = xrealloc(sc->keys, sc->cap * sizeof *sc->keys);
        sc->klens = xrealloc(sc->klens, sc->cap * sizeof *sc->klens);
        sc->values = xrealloc(sc->values, sc->cap * sizeof *sc->values);
        sc->expires = xrealloc(sc->expires, sc->cap * sizeof *sc->expires);
    }
    if (sc->blen + klen > sc->bcap) {
        while (sc->blen + klen > sc->bcap)
            sc->bcap = sc->bcap ? 2 * sc->bcap : 4096;
        sc->bytes = xrealloc(sc->bytes, sc->bcap);
    }
    if (klen)
        memcpy(sc->bytes + sc->blen, key, klen);
    sc->keys[sc->n] = (const char *)(uintptr_t)sc->blen; /* fixed below */
    sc->klens[sc->n] = klen;
    sc->values[sc->n] = value;
    sc->expires[sc->n] = expire_ms;
    sc->blen += klen;
    sc->n++;
    return 0;
}

/* One step of a scan: its counters into the store's arrays (the bytes may
 * move while they fill, so the key pointers are set at the end). */
static int op_scan(struct store_engine *se, const struct store_req *req,
                   struct store_res *res)
{
    tally *db = se->base.db;
    struct store_engine_scan *sc = &se->scan;
    tally_ticket t = 0;
    uint64_t next = 0;
    int rc;

    sc->n = sc->blen = 0;
    rc = tally_scanx(db, req->cursor, req->prefix, req->plen,
                     req->count ? req->count : 10, scan_add, sc, &next, &t);
    take(res, t);
    if (rc < 0)
        return from_tally(db, res, rc);
    for (size_t i = 0; i < sc->n; i++)
        sc->keys[i] = sc->bytes + (uintptr_t)sc->keys[i];
    res->n = next;
    res->n_items = sc->n;
    res->keys = (const char *const *)sc->keys;
    res->klens = sc->klens;
    res->values = sc->values;
    res->expires = sc->expires;
    return STORE_OK;
}

/* FLUSH: every counter, in DELs of at most FLUSH_STEP keys (each atomic;
 * not the whole flush). */
#define FLUSH_STEP 512
static int op_flush(struct store_engine *se, struct store_res *res)
{
    struct store_req q = {.op = STORE_SCAN, .count = FLUSH_STEP};
    uint64_t deleted = 0;
    int rc;

    do {
        struct store_res r = {0};
        if ((rc = op_scan(se, &q, &r)) != STORE_OK) {
            memcpy(res->detail, r.detail, sizeof res->detail);
            return rc;
        }
        take(res, r.ticket);
        q.cursor = r.n;
        if (r.n_items) {
            struct store_req d = {.op = STORE_DEL, .nkeys = r.n_items,
                                  .keys = r.keys, .klens = r.klens};
            struct store_res dr = {0};
            rc = op_mchange(se->base.db, &d, &dr);
            take(res, dr.ticket);
            if (rc != STORE_OK) {
                memcpy(res->detail, dr.detail, sizeof res->detail);
                return rc;
            }
            deleted += dr.n;
        }
    } while (q.cursor != 0);
    res->n = deleted;
    return STORE_OK;
}

/* ---- store_ops ----------------------------------------------------------- */

static int engine_exec(struct store *st, const struct store_req *req,
                       struct store_res *res, store_done_fn done, void *arg)
{
    tally *db = st->db;
    int rc;

    if (req->once) {
        res->rc = op_once(db, req, res);
        return STORE_DONE;
    }
    switch (req->op) {
    case STORE_GET:
        rc = get_one(db, req->key, req->klen, res);
        break;
    case STORE_INCRBY:
        rc = op_incr(db, req, res);
        break;
    case STORE_SET:
        rc = op_set(db, req, res);
        break;
    case STORE_GETDEL:
        rc = op_getdel(db, req, res);
        break;
    case STORE_DEL: case STORE_MSET:
        rc = op_mchange(db, req, res);
        break;
    case STORE_EXISTS: case STORE_MGET:
        rc = op_reads(db, req, res);
        break;
    case STORE_EXPIRE:
        rc = op_expire(db, req, res);
        break;
    case STORE_SCAN:
        rc = op_scan(self(st), req, res);
        break;
    case STORE_COUNT:
        if (req->flags & STORE_F_EXPIRES)
            res->expires_n = tally_expires(db, &res->avg_ttl_ms);
        res->n = tally_count(db);
        /* The count may include a creation or deletion still being synced;
         * waiting for everything so far keeps it from being taken back. */
        take(res, tally_head(db));
        rc = STORE_OK;
        break;
    case STORE_FLUSH:
        rc = op_flush(self(st), res);
        break;
    case STORE_SAVE:
        rc = tally_snapshot(db);
        rc = rc < 0 ? from_tally(db, res, rc) : STORE_OK;
        break;
    case STORE_BGSAVE:
        rc = tally_snapshot_begin(db);
        rc = rc < 0 ? from_tally(db, res, rc) : STORE_OK;
        break;
    default:
        rc = STORE_EINVAL;
        break;
    }
    res->rc = rc;
    return STORE_DONE;
}

/* store_ops.incr: op_incr's plain case (TALLY_TTL_KEEP, no read first),
 * the engine call and nothing around it. */
static int engine_incr(struct store *st, const char *key, size_t klen,
                       int64_t delta, struct store_res *res)
{
    tally_ticket t = 0;
    int rc = tally_incrx(st->db, key, klen, delta, TALLY_TTL_KEEP, 0,
                         &res->value, &res->expire_at, &t);

    res->ticket = t; /* also an error's: it may show state */
    if (rc < 0) {
        res->detail[0] = 0;
        return res->rc = from_tally(st->db, res, rc);
    }
    return res->rc = STORE_OK;
}

/* The engine has one batch, open within one call of the command layer:
 * its handle is the store itself. */
static int engine_batch_begin(struct store *st, unsigned attempt,
                              struct store_batch **out)
{
    (void)attempt;
    *out = tally_batch_begin(st->db) < 0 ? NULL : (struct store_batch *)st;
    return *out ? STORE_OK : STORE_EINVAL;
}

static int engine_batch_commit(struct store *st, struct store_batch *b,
                               struct store_res *res, store_done_fn done,
                               void *arg)
{
    tally_ticket t = 0;
    int rc = tally_batch_commit(st->db, &t);

    take(res, t);
    res->rc = rc < 0 ? from_tally(st->db, res, rc) : STORE_OK;
    return STORE_DONE;
}

static void engine_batch_abort(struct store *st, struct store_batch *b)
{
    (void)b;
    tally_batch_abort(st->db);
}

static int engine_once_answer(struct store *st, const struct store_req *req,
                              struct store_res *res, store_done_fn done,
                              void *arg)
{
    tally_once once = {req->once, req->oncelen, req->fingerprint};
    tally_ticket t = 0;
    int rc = tally_once_answer(st->db, &once, &res->answer, &res->alen, &t);

    (void)done;
    (void)arg;
    take(res, t); /* also EIDREUSED's: the first request's */
    res->replayed = rc == TALLY_OK;
    res->rc = rc < 0 ? from_tally(st->db, res, rc)
                     : rc == TALLY_OK ? STORE_OK : STORE_NOTFOUND;
    return STORE_DONE;
}

static int engine_batch_commit_once(struct store *st, struct store_batch *b,
                                    const struct store_req *req,
                                    const void *answer, size_t alen,
                                    struct store_res *res,
                                    store_done_fn done, void *arg)
{
    tally_once once = {req->once, req->oncelen, req->fingerprint};
    tally_ticket t = 0;
    int rc = tally_batch_commit_once(st->db, &once, answer, alen, &t);

    (void)b;
    (void)done;
    (void)arg;
    take(res, t);
    res->rc = rc < 0 ? from_tally(st->db, res, rc) : STORE_OK;
    return STORE_DONE;
}

static tally_ticket engine_durable(const struct store *st)
{
    return tally_durable(st->db);
}

static int64_t engine_now_ms(const struct store *st)
{
    return tally_now_ms(st->db);
}

/* Ready while changes are accepted: recovery ran before the store was
 * made, so only the write path's health is left to check. */
static int engine_ready(const struct store *st, char *why, size_t n)
{
    int health = tally_health(st->db);

    if (health == TALLY_OK)
        return 1;
    snprintf(why, n, "changes are refused: %s (tally code %d)%s",
             tally_strerror(health), health,
             health == TALLY_ENOSPC
                 ? "; this clears once the disk has room"
                 : "; restart tallyd once the disk is checked");
    return 0;
}

static const char *sync_name(tally_sync s)
{
    switch (s) {
    case TALLY_SYNC_ALWAYS: return "fsync always, a reply leaves after its change is on disk";
    case TALLY_SYNC_EVERYSEC: return "fsync everysec, up to about a second of changes may be lost";
    default: return "fsync no, the kernel decides when changes reach the disk";
    }
}

static size_t engine_info(const struct store *st, struct store_info_kv *kv,
                          size_t max)
{
    tally_stats s;
    size_t n = 0;

    tally_stats_get(st->db, &s);
    if (n < max) {
        kv[n].name = "store";
        snprintf(kv[n++].value, sizeof kv->value, "engine");
    }
    if (n < max) {
        kv[n].name = "store_durability";
        snprintf(kv[n++].value, sizeof kv->value, "%s", sync_name(s.sync));
    }
    if (n < max) {
        kv[n].name = "store_ready";
        snprintf(kv[n++].value, sizeof kv->value, "%d",
                 s.health == TALLY_OK);
    }
    return n;
}

static void engine_stats(const struct store *st, tally_stats *out)
{
    tally_stats_get(st->db, out);
}

/* Frees the scan arrays; the handle stays open (it is the caller's). */
static void engine_close(struct store *st)
{
    struct store_engine_scan *sc = &self(st)->scan;

    free(sc->keys);
    free(sc->klens);
    free(sc->values);
    free(sc->expires);
    free(sc->bytes);
    memset(sc, 0, sizeof *sc);
}

static const struct store_ops store_engine_ops = {
    .name = "engine",
    .sync_only = 1,
    .exec = engine_exec,
    .incr = engine_incr,
    .batch_begin = engine_batch_begin,
    .batch_commit = engine_batch_commit,
    .batch_abort = engine_batch_abort,
    .once_answer = engine_once_answer,
    .batch_commit_once = engine_batch_commit_once,
    .durable = engine_durable,
    .now_ms = engine_now_ms,
    .ready = engine_ready,
    .info = engine_info,
    .close = engine_close,
    .stats = engine_stats,
};

void store_engine_init(struct store_engine *se, tally *db)
{
    memset(se, 0, sizeof *se);
    se->base.ops = &store_engine_ops;
    se->base.db = db;
}
