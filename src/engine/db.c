/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * db.c - libtally's counter API (include/tally.h): argument checks, the
 * change path (check health, reserve log space, encode, apply in memory,
 * hand the record to the log) and the read rule (a read's ticket is the LSN
 * of the change it shows).  The log and sync thread are in log.c, snapshots
 * in snap.c, recovery and the offline tools in recover.c, the exactly-once
 * forms of the changes in once.c (which shares the change path below).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "engine.h"
#include "mem.h"

const char *tally_strerror(int code)
{
    switch (code) {
    case TALLY_OK: return "ok";
    case TALLY_NOTFOUND: return "not found";
    case TALLY_TORN: return "torn log tail that opening would cut";
    case TALLY_EINVAL: return "invalid argument";
    case TALLY_EKEYLEN: return "key too long";
    case TALLY_EOVERFLOW: return "result out of the int64 range";
    case TALLY_ELOCKED: return "data directory in use by another process";
    case TALLY_ECORRUPT: return "data file failed verification";
    case TALLY_EIO: return "I/O error";
    case TALLY_ENOSPC: return "no space left on device or file size limit";
    case TALLY_EFAILED: return "write path failed; changes refused until reopen";
    case TALLY_ENOTDURABLE: return "value was never made durable";
    case TALLY_EVERSION: return "data written by an unknown format version";
    case TALLY_EBUSY: return "a snapshot is already being written";
    case TALLY_ENOTEMPTY: return "target already holds counters";
    case TALLY_EIDREUSED:
        return "idempotency id already used for a different request";
    case TALLY_EINFLIGHT:
        return "the first request with this idempotency id is not durable yet";
    case TALLY_EIDLEN: return "idempotency id empty or too long";
    default: return "unknown error";
    }
}

void tally_options_init(tally_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->sync = TALLY_SYNC_ALWAYS;
    opts->create = 1;
    opts->snapshot_min_log = 64ULL << 20;
    opts->once_ttl_ms = TALLY_ONCE_TTL_DEFAULT;
}

int db_err(tally *db, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
    va_end(ap);
    return code;
}

void db_log(const tally_options *opts, int level, const char *fmt, ...)
{
    char line[TALLY_ERRMAX];
    va_list ap;

    if (!opts->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    opts->log(opts->log_ctx, level, line);
}

int db_key_check(tally *db, const void *key, size_t klen)
{
    if (!key && klen)
        return db_err(db, TALLY_EINVAL, "NULL key with length %zu", klen);
    if (klen > TALLY_KEY_MAX)
        return db_err(db, TALLY_EKEYLEN, "key of %zu bytes (at most %d)",
                      klen, TALLY_KEY_MAX);
    return 0;
}

int64_t tally_now_ms(const tally *db)
{
    struct timespec ts;

    if (db->opts.clock_ms)
        return db->opts.clock_ms(db->opts.clock_ctx);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct table_entry *db_live(tally *db, const void *key, size_t klen,
                            int64_t now)
{
    struct db_found f;

    return db_live_at(db, key, klen, now, &f);
}

struct table_entry *db_live_at(tally *db, const void *key, size_t klen,
                               int64_t now, struct db_found *f)
{
    uint64_t h = table_hash(db->table.seed, key, klen);
    struct table_entry *e = table_find(&db->table, h, key, klen);

    f->h = h;
    f->e = e;
    if (!e || !table_expired(e, now))
        return e;
    f->e = NULL;
    /* Lazy expiry: nothing to write (the time is in e's record), but the
     * absence depends on that record being durable. */
    if (e->lsn > db->last_del)
        db->last_del = e->lsn;
    if (db->opts.expired)
        db->opts.expired(db->opts.expired_ctx, key, klen, e->lsn);
    table_unlink(&db->table, h, e);
    db->table.expired++;
    return NULL;
}

int db_apply(struct table *t, uint64_t *last_del, const struct codec_op *op,
             uint64_t lsn)
{
    struct db_found f = {table_hash(t->seed, op->key, op->klen), NULL};

    if (op->type == CODEC_DEL) {
        /* Recorded even when the key is already gone (a replay over a
         * fuzzy snapshot): a conservative "absent since" point. */
        if (lsn > *last_del)
            *last_del = lsn;
        return table_remove(t, f.h, op->key, op->klen);
    }
    f.e = table_find(t, f.h, op->key, op->klen);
    return db_apply_found(t, op, lsn, &f);
}

int db_apply_found(struct table *t, const struct codec_op *op, uint64_t lsn,
                   const struct db_found *f)
{
    struct table_entry *e = f->e;
    int existed = 1;

    if (!e) {
        e = table_insert(t, f->h, op->key, op->klen);
        existed = 0;
    }
    e->value = op->value;
    e->lsn = lsn;
    /* A PUT states the whole counter: its expiry, or none. */
    if (op->expire || (e->kbits & TE_TTL))
        table_set_expire(t, f->h, &e, op->expire);
    return existed;
}

void db_apply_rec(tally *db, const struct codec_rec *r, uint64_t lsn)
{
    struct codec_op op;
    struct codec_idem idem;
    size_t off = 0;

    if (r->type == CODEC_IDEM) {
        once_apply(db, &r->idem, lsn);
        return;
    }
    if (r->type != CODEC_BATCH) {
        db_apply(&db->table, &db->last_del, &r->op, lsn);
        return;
    }
    /* Counters through db_apply, ids through once_apply: the functions
     * live changes use. */
    while (codec_batch_next_idem(r, &off, &op, &idem)) {
        if (op.type == CODEC_IDEM)
            once_apply(db, &idem, lsn);
        else
            db_apply(&db->table, &db->last_del, &op, lsn);
    }
}

/* May a change of reclen bytes go ahead?  Returns 0, TALLY_EFAILED after a
 * fatal write error (copying its detail into errmsg), or TALLY_ENOSPC when
 * the log cannot grow; nothing has changed then. */
int db_change_start(tally *db, size_t reclen)
{
    if (tally_health(db) == TALLY_EFAILED)
        return db_err(db, TALLY_EFAILED, "%s", db->failmsg);
    return log_reserve(db, reclen);
}

/* Hand an encoded record to the log; returns its ticket. */
uint64_t db_change_emit(tally *db, const unsigned char *rec, size_t len,
                        unsigned changes)
{
    db->changes += changes;
    return log_append(db, rec, len, changes);
}

/* Finish a change with ticket t: report it, or block until it is durable.
 * A running snapshot gets a small slice of work first, so it progresses
 * under write load without the caller's help. */
int db_change_finish(tally *db, uint64_t t, tally_ticket *ticket)
{
    if (db->batch.open) {
        /* Nothing of it is in the log yet: no snapshot slice, and nothing
         * to wait for until the commit. */
        if (ticket)
            *ticket = t;
        return 0;
    }
    if (db->snap.running)
        snap_step(db, 16);
    else
        snap_maybe_auto(db);
    if (ticket) {
        *ticket = t;
        return 0;
    }
    if (tally_wait(db, t) != 0)
        return db_err(db, TALLY_EFAILED, "%s", db->failmsg);
    return 0;
}

/* Finish a read that depends on the log up to lsn: set *ticket to lsn, or
 * block until it is durable when ticket is NULL.  Returns 0, or
 * TALLY_ENOTDURABLE if the write path failed before lsn became durable.
 * Also for errors that reveal state (engine.h). */
int db_read_finish(tally *db, uint64_t lsn, tally_ticket *ticket)
{
    if (lsn > tally_durable(db) && tally_health(db) == TALLY_EFAILED)
        return db_err(db, TALLY_ENOTDURABLE,
                      "value depends on a change that was never made durable");
    if (ticket) {
        *ticket = lsn;
        return 0;
    }
    if (tally_wait(db, lsn) != 0)
        return db_err(db, TALLY_ENOTDURABLE,
                      "value depends on a change that was never made durable");
    return 0;
}

/* The overflow of e's value + delta.  The error shows e's value, so it
 * carries that value's ticket, as a read of it would (tally.h). */
int db_overflow(tally *db, const struct table_entry *e, int64_t delta,
                tally_ticket *ticket)
{
    int64_t v = e ? e->value : 0;
    int rc = db_read_finish(db, e ? e->lsn : 0, ticket);

    if (rc)
        return rc;
    return db_err(db, TALLY_EOVERFLOW, "%lld + %lld leaves int64",
                  (long long)v, (long long)delta);
}

/* Encode, emit and apply one PUT or DEL; returns the ticket via *t. */
static int change_op(tally *db, const struct codec_op *op,
                     const struct db_found *found, uint64_t *t)
{
    return db_change_ops(db, op, 1, found, t, NULL);
}

/* Check a key and an expiry argument (0 or 1..TALLY_EXPIRE_MAX). */
static int keyx_check(tally *db, const void *key, size_t klen,
                      int64_t expire_ms)
{
    int rc = db_key_check(db, key, klen);

    if (rc == 0 && (expire_ms < 0 || expire_ms > TALLY_EXPIRE_MAX))
        rc = db_err(db, TALLY_EINVAL, "expiry %lld out of range",
                    (long long)expire_ms);
    return rc;
}

/* One PUT or DEL from start to finish; found (may be NULL) as for
 * db_change_ops. */
static int change_found(tally *db, const struct codec_op *op,
                        const struct db_found *found, tally_ticket *ticket)
{
    uint64_t t;
    int rc = change_op(db, op, found, &t);

    return rc ? rc : db_change_finish(db, t, ticket);
}

static int change(tally *db, const struct codec_op *op, tally_ticket *ticket)
{
    return change_found(db, op, NULL, ticket);
}

/* Delete e's counter (a DEL record), or, if there is none, answer with the
 * absence's ticket: what a change whose expiry has passed does. */
static int expire_now(tally *db, const void *key, size_t klen,
                      const struct table_entry *e, tally_ticket *ticket)
{
    struct codec_op op = {CODEC_DEL, key, klen, 0, 0};

    return e ? change(db, &op, ticket)
             : db_read_finish(db, db->last_del, ticket);
}

int tally_incrx(tally *db, const void *key, size_t klen, int64_t delta,
                int ttl_mode, int64_t expire_ms, int64_t *value,
                int64_t *expire_out, tally_ticket *ticket)
{
    struct table_entry *e;
    struct codec_op op = {CODEC_PUT, key, klen, 0, 0};
    struct db_found found;
    int64_t now;
    int rc = keyx_check(db, key, klen,
                        ttl_mode == TALLY_TTL_KEEP ? 0 : expire_ms);

    if (rc == 0 && ttl_mode != TALLY_TTL_KEEP && ttl_mode != TALLY_TTL_SET &&
        ttl_mode != TALLY_TTL_IFNEW)
        rc = db_err(db, TALLY_EINVAL, "unknown ttl mode %d", ttl_mode);
    if (rc)
        return rc;
    now = tally_now_ms(db);
    /* found spares applying the PUT a second lookup of the key: a hash and
     * a probe, about 100 of an INCR's instructions (callgrind). */
    e = db_live_at(db, key, klen, now, &found);
    if (__builtin_add_overflow(e ? e->value : 0, delta, &op.value))
        return db_overflow(db, e, delta, ticket);
    op.expire = e ? table_expire_of(e) : 0;
    if (ttl_mode == TALLY_TTL_SET || (ttl_mode == TALLY_TTL_IFNEW && !e))
        op.expire = expire_ms;
    if (op.expire && op.expire <= now)
        rc = expire_now(db, key, klen, e, ticket);
    else
        rc = change_found(db, &op, &found, ticket);
    if (rc == 0 && value)
        *value = op.value;
    if (rc == 0 && expire_out)
        *expire_out = op.expire;
    return rc;
}

int tally_incr(tally *db, const void *key, size_t klen, int64_t delta,
               int64_t *value, tally_ticket *ticket)
{
    return tally_incrx(db, key, klen, delta, TALLY_TTL_KEEP, 0, value, NULL,
                       ticket);
}

int tally_setx(tally *db, const void *key, size_t klen, int64_t value,
               int64_t expire_ms, tally_ticket *ticket)
{
    struct codec_op op = {CODEC_PUT, key, klen, value, expire_ms};
    int64_t now;
    int rc = keyx_check(db, key, klen, expire_ms);

    if (rc)
        return rc;
    if (expire_ms && expire_ms <= (now = tally_now_ms(db)))
        return expire_now(db, key, klen, db_live(db, key, klen, now), ticket);
    return change(db, &op, ticket);
}

int tally_set(tally *db, const void *key, size_t klen, int64_t value,
              tally_ticket *ticket)
{
    return tally_setx(db, key, klen, value, 0, ticket);
}

int tally_expire(tally *db, const void *key, size_t klen, int64_t expire_ms,
                 tally_ticket *ticket)
{
    struct table_entry *e;
    struct codec_op op = {CODEC_PUT, key, klen, 0, expire_ms};
    int64_t now;
    int rc = keyx_check(db, key, klen, expire_ms);

    if (rc)
        return rc;
    now = tally_now_ms(db);
    if ((e = db_live(db, key, klen, now)) == NULL) {
        rc = db_read_finish(db, db->last_del, ticket);
        return rc ? rc : TALLY_NOTFOUND;
    }
    if (table_expire_of(e) == expire_ms) /* nothing to change */
        return db_read_finish(db, e->lsn, ticket);
    if (expire_ms && expire_ms <= now)
        return expire_now(db, key, klen, e, ticket);
    op.value = e->value;
    return change(db, &op, ticket);
}

int tally_del(tally *db, const void *key, size_t klen, tally_ticket *ticket)
{
    struct codec_op op = {CODEC_DEL, key, klen, 0, 0};
    int rc = db_key_check(db, key, klen);

    if (rc)
        return rc;
    if (!db_live(db, key, klen, tally_now_ms(db))) {
        rc = db_read_finish(db, db->last_del, ticket);
        return rc ? rc : TALLY_NOTFOUND;
    }
    return change(db, &op, ticket);
}

int tally_mset(tally *db, size_t n, const void *const *keys,
               const size_t *klens, const int64_t *values,
               tally_ticket *ticket)
{
    struct codec_op *ops;
    uint64_t t;
    int rc = 0;

    if (n && (!keys || !klens || !values))
        return db_err(db, TALLY_EINVAL, "NULL array for mset");
    for (size_t i = 0; i < n; i++)
        if ((rc = db_key_check(db, keys[i], klens[i])) != 0)
            return rc;
    if (n == 0) {
        if (ticket)
            *ticket = 0;
        return 0;
    }
    ops = mem_alloc(n * sizeof *ops);
    for (size_t i = 0; i < n; i++)
        ops[i] = (struct codec_op){CODEC_PUT, keys[i], klens[i], values[i], 0};
    rc = db_change_ops(db, ops, n, NULL, &t, NULL);
    free(ops);
    return rc ? rc : db_change_finish(db, t, ticket);
}

int tally_getx(tally *db, const void *key, size_t klen, int64_t *value,
               int64_t *expire_ms, tally_ticket *ticket)
{
    struct table_entry *e;
    int rc = db_key_check(db, key, klen);

    if (rc)
        return rc;
    e = db_live(db, key, klen, tally_now_ms(db));
    rc = db_read_finish(db, e ? e->lsn : db->last_del, ticket);
    if (rc)
        return rc;
    if (!e)
        return TALLY_NOTFOUND;
    if (value)
        *value = e->value;
    if (expire_ms)
        *expire_ms = table_expire_of(e);
    return TALLY_OK;
}

int tally_get(tally *db, const void *key, size_t klen, int64_t *value,
              tally_ticket *ticket)
{
    return tally_getx(db, key, klen, value, NULL, ticket);
}

void db_expire_all(tally *db)
{
    table_expire_all(&db->table, tally_now_ms(db), &db->last_del,
                     db->opts.expired, db->opts.expired_ctx);
}

/* DEBT: after an expiry has passed, a count walks the whole expiry list
 * (O(counters with a TTL), a few ms per million); an index ordered by
 * expiry time (a heap or timer wheel over the same handles) would make it
 * O(expired). */
uint64_t tally_count(tally *db)
{
    db_expire_all(db);
    return db->table.count;
}

uint64_t tally_expires(tally *db, int64_t *avg_ttl_ms)
{
    int64_t now = tally_now_ms(db);
    const struct table *t = &db->table;

    table_expire_all(&db->table, now, &db->last_del, db->opts.expired,
                     db->opts.expired_ctx);
    if (avg_ttl_ms)
        *avg_ttl_ms = t->xcount
                          ? (int64_t)(t->xsum / t->xcount) - now
                          : 0;
    return t->xcount;
}

struct scan_ctx {
    tally_scan_fn fn;
    tally_scanx_fn fnx;
    void *ctx;
    uint64_t maxlsn;
    int64_t now;
};

static int scan_one(void *arg, const struct table_entry *e)
{
    struct scan_ctx *sc = arg;

    /* Not shown once expired, but its absence rests on e's record. */
    if (e->lsn > sc->maxlsn)
        sc->maxlsn = e->lsn;
    if (table_expired(e, sc->now))
        return 0;
    if (sc->fnx)
        return sc->fnx(sc->ctx, e->key, table_klen(e), e->value,
                       table_expire_of(e));
    return sc->fn(sc->ctx, e->key, table_klen(e), e->value);
}

static int scan(tally *db, uint64_t cursor, const void *prefix, size_t plen,
                size_t count, struct scan_ctx *sc, uint64_t *next,
                tally_ticket *ticket)
{
    uint64_t nx;
    int stop, rc;

    if ((!prefix && plen) || (!sc->fn && !sc->fnx) || !next)
        return db_err(db, TALLY_EINVAL, "bad scan arguments");
    sc->maxlsn = db->last_del;
    sc->now = tally_now_ms(db);
    nx = table_scan(&db->table, cursor, count, prefix, plen, scan_one, sc,
                    &stop);
    rc = db_read_finish(db, sc->maxlsn, ticket);
    if (rc)
        return rc;
    if (stop)
        return stop;
    *next = nx;
    return TALLY_OK;
}

int tally_scan(tally *db, uint64_t cursor, const void *prefix, size_t plen,
               size_t count, tally_scan_fn fn, void *ctx, uint64_t *next,
               tally_ticket *ticket)
{
    struct scan_ctx sc = {fn, NULL, ctx, 0, 0};

    return scan(db, cursor, prefix, plen, count, &sc, next, ticket);
}

int tally_scanx(tally *db, uint64_t cursor, const void *prefix, size_t plen,
                size_t count, tally_scanx_fn fn, void *ctx, uint64_t *next,
                tally_ticket *ticket)
{
    struct scan_ctx sc = {NULL, fn, ctx, 0, 0};

    return scan(db, cursor, prefix, plen, count, &sc, next, ticket);
}

tally_ticket tally_durable(const tally *db)
{
    return __atomic_load_n(&db->durable, __ATOMIC_ACQUIRE);
}

tally_ticket tally_head(const tally *db)
{
    return __atomic_load_n(&db->head, __ATOMIC_ACQUIRE);
}

int tally_health(const tally *db)
{
    return __atomic_load_n(&db->health, __ATOMIC_ACQUIRE);
}

int tally_notify_fd(const tally *db)
{
    return db->efd;
}

const char *tally_errmsg(const tally *db)
{
    return db->errmsg;
}
