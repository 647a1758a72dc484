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
#include <unistd.h>

#include "codec.h"
#include "engine.h"
#include "mem.h"

const char *tally_strerror(int code)
{
    switch (code) {
    case TALLY_OK: return "ok";
    case TALLY_NOTFOUND: return "not found";
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

int db_apply(struct table *t, uint64_t *last_del, const struct codec_op *op,
             uint64_t lsn)
{
    uint64_t h = table_hash(t->seed, op->key, op->klen);
    struct table_entry *e;

    if (op->type == CODEC_DEL) {
        /* Recorded even when the key is already gone (a replay over a
         * fuzzy snapshot): a conservative "absent since" point. */
        if (lsn > *last_del)
            *last_del = lsn;
        return table_remove(t, h, op->key, op->klen);
    }
    e = table_find(t, h, op->key, op->klen);
    if (!e) {
        e = table_insert(t, h, op->key, op->klen);
        e->value = op->value;
        e->lsn = lsn;
        return 0;
    }
    e->value = op->value;
    e->lsn = lsn;
    return 1;
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
static int change_op(tally *db, const struct codec_op *op, uint64_t *t)
{
    unsigned char rec[CODEC_REC_HDR + 11 + TALLY_KEY_MAX];
    size_t len = op->type == CODEC_PUT ? codec_put_size(op->klen)
                                       : codec_del_size(op->klen);
    int rc = db_change_start(db, len);

    if (rc)
        return rc;
    codec_op(rec, op);
    *t = db_change_emit(db, rec, len, 1);
    db_apply(&db->table, &db->last_del, op, *t);
    return 0;
}

int tally_incr(tally *db, const void *key, size_t klen, int64_t delta,
               int64_t *value, tally_ticket *ticket)
{
    struct table_entry *e;
    struct codec_op op = {CODEC_PUT, key, klen, 0};
    uint64_t t;
    int rc = db_key_check(db, key, klen);

    if (rc)
        return rc;
    e = table_find(&db->table, table_hash(db->table.seed, key, klen), key,
                   klen);
    if (__builtin_add_overflow(e ? e->value : 0, delta, &op.value))
        return db_overflow(db, e, delta, ticket);
    rc = change_op(db, &op, &t);
    if (rc == 0)
        rc = db_change_finish(db, t, ticket);
    if (rc == 0 && value)
        *value = op.value;
    return rc;
}

int tally_set(tally *db, const void *key, size_t klen, int64_t value,
              tally_ticket *ticket)
{
    struct codec_op op = {CODEC_PUT, key, klen, value};
    uint64_t t;
    int rc = db_key_check(db, key, klen);

    if (rc == 0)
        rc = change_op(db, &op, &t);
    if (rc == 0)
        rc = db_change_finish(db, t, ticket);
    return rc;
}

int tally_del(tally *db, const void *key, size_t klen, tally_ticket *ticket)
{
    struct codec_op op = {CODEC_DEL, key, klen, 0};
    uint64_t t;
    int rc = db_key_check(db, key, klen);

    if (rc)
        return rc;
    if (!table_find(&db->table, table_hash(db->table.seed, key, klen), key,
                    klen)) {
        rc = db_read_finish(db, db->last_del, ticket);
        return rc ? rc : TALLY_NOTFOUND;
    }
    rc = change_op(db, &op, &t);
    if (rc == 0)
        rc = db_change_finish(db, t, ticket);
    return rc;
}

int tally_mset(tally *db, size_t n, const void *const *keys,
               const size_t *klens, const int64_t *values,
               tally_ticket *ticket)
{
    size_t i, total = CODEC_BATCH_HDR, pos;
    struct codec_op op;
    uint64_t t;
    int rc;

    if (n && (!keys || !klens || !values))
        return db_err(db, TALLY_EINVAL, "NULL array for mset");
    for (i = 0; i < n; i++) {
        if ((rc = db_key_check(db, keys[i], klens[i])) != 0)
            return rc;
        total += codec_batch_op_size(klens[i], CODEC_PUT);
        if (total - CODEC_REC_HDR > CODEC_MAX_BODY)
            return db_err(db, TALLY_EINVAL,
                          "mset of %zu keys exceeds the 1 MiB record limit", n);
    }
    if (n == 0) {
        if (ticket)
            *ticket = 0;
        return 0;
    }
    if ((rc = db_change_start(db, total)) != 0)
        return rc;
    if (db->scratch_cap < total) {
        db->scratch = mem_realloc(db->scratch, total);
        db->scratch_cap = total;
    }
    pos = CODEC_BATCH_HDR;
    for (i = 0; i < n; i++) {
        op = (struct codec_op){CODEC_PUT, keys[i], klens[i], values[i]};
        pos += codec_batch_add(db->scratch + pos, &op);
    }
    codec_batch_close(db->scratch, pos, (uint32_t)n);
    t = db_change_emit(db, db->scratch, pos, (unsigned)n);
    for (i = 0; i < n; i++) {
        op = (struct codec_op){CODEC_PUT, keys[i], klens[i], values[i]};
        db_apply(&db->table, &db->last_del, &op, t);
    }
    return db_change_finish(db, t, ticket);
}

int tally_get(tally *db, const void *key, size_t klen, int64_t *value,
              tally_ticket *ticket)
{
    struct table_entry *e;
    int rc = db_key_check(db, key, klen);

    if (rc)
        return rc;
    e = table_find(&db->table, table_hash(db->table.seed, key, klen), key,
                   klen);
    rc = db_read_finish(db, e ? e->lsn : db->last_del, ticket);
    if (rc)
        return rc;
    if (!e)
        return TALLY_NOTFOUND;
    if (value)
        *value = e->value;
    return TALLY_OK;
}

uint64_t tally_count(const tally *db)
{
    return db->table.count;
}

struct scan_ctx {
    tally_scan_fn fn;
    void *ctx;
    uint64_t maxlsn;
};

static int scan_one(void *arg, const struct table_entry *e)
{
    struct scan_ctx *sc = arg;

    if (e->lsn > sc->maxlsn)
        sc->maxlsn = e->lsn;
    return sc->fn(sc->ctx, e->key, e->klen, e->value);
}

int tally_scan(tally *db, uint64_t cursor, const void *prefix, size_t plen,
               size_t count, tally_scan_fn fn, void *ctx, uint64_t *next,
               tally_ticket *ticket)
{
    struct scan_ctx sc = {fn, ctx, db->last_del};
    uint64_t nx;
    int stop, rc;

    if ((!prefix && plen) || !fn || !next)
        return db_err(db, TALLY_EINVAL, "bad scan arguments");
    nx = table_scan(&db->table, cursor, count, prefix, plen, scan_one, &sc,
                    &stop);
    rc = db_read_finish(db, sc.maxlsn, ticket);
    if (rc)
        return rc;
    if (stop)
        return stop;
    *next = nx;
    return TALLY_OK;
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
