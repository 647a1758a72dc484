/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * batch.c - atomic batches (include/tally.h "Atomic batches") and the one
 * function every counter change goes through, db_change_ops().
 *
 * Outside a batch db_change_ops() writes its ops as one record (a PUT, PUTX
 * or DEL for one op, a BATCH for several: format in codec.c) and applies
 * them, as tally_mset and tally_mdel always did.  Inside a batch it checks
 * the write path's health, encodes the ops as BATCH sub-records into
 * db->batch.buf, saves what each op's counter held before (the undo list)
 * and applies them to the table at once, stamped with a provisional LSN (the
 * head when the batch began, a ticket already issued), so that reads on the
 * handle see the batch's own writes.  Nothing reaches the log until
 * tally_batch_commit(), which reserves log space for the whole record,
 * emits it as ONE BATCH record and restamps the touched counters with its
 * ticket; recovery applies a BATCH whole or, if it is torn, not at all.  A
 * commit that cannot reserve space (disk full) or finds the write path
 * failed, and tally_batch_abort(), walk the undo list backwards and put
 * every touched counter back as it was (value, expiry, LSN), so the table
 * again matches the log.
 *
 * While a batch is open no snapshot slice runs (a snapshot must never see a
 * value the log may not get) and active expiry waits; both resume after the
 * commit.  Idempotency ids are refused inside a batch: their table has no
 * undo.  A batch may instead be committed under one id
 * (tally_batch_commit_once, once.c), whose IDEMA sub-record then ends the
 * batch's record and enters the id table only once the record is emitted.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "engine.h"
#include "mem.h"

/* What a counter held before a batch op changed it. */
struct batch_undo {
    size_t koff;     /* key bytes in batch.keys */
    size_t klen;
    int existed;
    int64_t value;
    int64_t expire;
    uint64_t lsn;
};

static size_t op_size(const struct codec_op *op)
{
    return codec_batch_op_size(op->klen, op->type == CODEC_PUT && op->expire
                                             ? CODEC_PUTX
                                             : op->type);
}

static void grow(unsigned char **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    *p = mem_realloc(*p, n);
    *cap = n;
}

static void save_undo(tally *db, const struct codec_op *op)
{
    struct batch_state *b = &db->batch;
    struct table_entry *e = table_find(
        &db->table, table_hash(db->table.seed, op->key, op->klen), op->key,
        op->klen);
    struct batch_undo *u;

    if (b->nundo == b->undo_cap) {
        b->undo_cap = b->undo_cap ? 2 * b->undo_cap : 16;
        b->undo = mem_realloc(b->undo, b->undo_cap * sizeof *b->undo);
    }
    grow(&b->keys, &b->keys_cap, b->keys_len + op->klen);
    if (op->klen)
        memcpy(b->keys + b->keys_len, op->key, op->klen);
    u = &b->undo[b->nundo++];
    u->koff = b->keys_len;
    u->klen = op->klen;
    u->existed = e != NULL;
    u->value = e ? e->value : 0;
    u->expire = e ? table_expire_of(e) : 0;
    u->lsn = e ? e->lsn : 0;
    b->keys_len += op->klen;
}

/* Inside a batch: queue the ops' sub-records, remember what they replace,
 * apply them. */
static int batch_add(tally *db, const struct codec_op *ops, size_t n,
                     uint64_t *t, uint64_t *existed)
{
    struct batch_state *b = &db->batch;
    size_t need = 0, i;
    uint64_t hits = 0;

    if (tally_health(db) == TALLY_EFAILED)
        return db_err(db, TALLY_EFAILED, "%s", db->failmsg);
    for (i = 0; i < n; i++)
        need += op_size(&ops[i]);
    if (b->len + need - CODEC_REC_HDR > CODEC_MAX_BODY)
        return db_err(db, TALLY_EINVAL,
                      "batch would exceed the 1 MiB record limit");
    grow(&b->buf, &b->cap, b->len + need);
    for (i = 0; i < n; i++) {
        save_undo(db, &ops[i]);
        b->len += codec_batch_add(b->buf + b->len, &ops[i]);
        b->n++;
        hits += (uint64_t)db_apply(&db->table, &db->last_del, &ops[i],
                                   b->stamp);
    }
    *t = b->stamp;
    if (existed)
        *existed = hits;
    return 0;
}

int db_change_ops(tally *db, const struct codec_op *ops, size_t n,
                  const struct db_found *found, uint64_t *t,
                  uint64_t *existed)
{
    size_t total, pos, i;
    uint64_t hits = 0;
    int rc;

    if (db->batch.open)
        return batch_add(db, ops, n, t, existed);
    total = n == 1 ? codec_op_size(&ops[0]) : CODEC_BATCH_HDR;
    for (i = 0; n > 1 && i < n; i++)
        total += op_size(&ops[i]);
    if (total - CODEC_REC_HDR > CODEC_MAX_BODY)
        return db_err(db, TALLY_EINVAL,
                      "%zu changes exceed the 1 MiB record limit", n);
    if ((rc = db_change_start(db, total)) != 0)
        return rc;
    grow(&db->scratch, &db->scratch_cap, total);
    if (n == 1) {
        pos = codec_op(db->scratch, &ops[0]);
    } else {
        pos = CODEC_BATCH_HDR;
        for (i = 0; i < n; i++)
            pos += codec_batch_add(db->scratch + pos, &ops[i]);
        codec_batch_close(db->scratch, pos, (uint32_t)n);
    }
    *t = db_change_emit(db, db->scratch, pos, (unsigned)n);
    /* Nothing since the caller's lookup changed the table: found holds. */
    if (n == 1 && found && ops[0].type == CODEC_PUT)
        hits = (uint64_t)db_apply_found(&db->table, &ops[0], *t, found);
    else
        for (i = 0; i < n; i++)
            hits += (uint64_t)db_apply(&db->table, &db->last_del, &ops[i],
                                       *t);
    if (existed)
        *existed = hits;
    return 0;
}

int tally_batch_begin(tally *db)
{
    struct batch_state *b = &db->batch;

    if (b->open)
        return db_err(db, TALLY_EINVAL, "a batch is already open");
    b->open = 1;
    b->len = CODEC_BATCH_HDR;
    b->n = 0;
    b->nundo = 0;
    b->keys_len = 0;
    b->last_del = db->last_del;
    b->stamp = tally_head(db);
    grow(&b->buf, &b->cap, CODEC_BATCH_HDR);
    return 0;
}

int tally_batch_is_open(const tally *db)
{
    return db->batch.open;
}

/* Put every counter the batch touched back as it was, newest change
 * first, so a counter changed twice ends at its value before the first. */
static void undo_all(tally *db)
{
    struct batch_state *b = &db->batch;

    for (size_t i = b->nundo; i-- > 0;) {
        const struct batch_undo *u = &b->undo[i];
        const unsigned char *key = b->keys + u->koff;
        uint64_t h = table_hash(db->table.seed, key, u->klen);

        if (u->existed) {
            struct codec_op op = {CODEC_PUT, key, u->klen, u->value,
                                  u->expire};
            uint64_t ignored = 0;
            db_apply(&db->table, &ignored, &op, u->lsn);
            /* Put back without a record, maybe in another slot: a
             * snapshot walking the slabs must be shown it (snap.c). */
            snap_show(db, table_find(&db->table, h, key, u->klen));
        } else {
            table_remove(&db->table, h, key, u->klen);
        }
    }
    db->last_del = b->last_del;
}

static void close_batch(tally *db)
{
    struct batch_state *b = &db->batch;

    b->open = 0;
    b->nundo = 0;
    b->keys_len = 0;
    b->n = 0;
    /* Keep the buffers for the next batch unless one was unusually big. */
    if (b->cap > (1u << 16)) {
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

void tally_batch_abort(tally *db)
{
    if (!db->batch.open)
        return;
    undo_all(db);
    close_batch(db);
}

int db_batch_commit(tally *db, const struct codec_idem *idem,
                    tally_ticket *ticket)
{
    struct batch_state *b = &db->batch;
    uint64_t t;
    int rc;

    if (!b->open)
        return db_err(db, TALLY_EINVAL, "no batch is open");
    if (b->n == 0 && !idem) {
        close_batch(db);
        if (ticket)
            *ticket = 0;
        return 0;
    }
    if (idem) {
        /* The id and its answer go last into the batch's one record, so a
         * crash keeps them and the changes together, or none of them. */
        size_t need = codec_batch_op_size(idem->idlen + idem->alen,
                                          CODEC_IDEMA);
        if (b->len + need - CODEC_REC_HDR > CODEC_MAX_BODY) {
            tally_batch_abort(db);
            return db_err(db, TALLY_EINVAL, "the batch and its answer would "
                          "exceed the 1 MiB record limit");
        }
        grow(&b->buf, &b->cap, b->len + need);
        b->len += codec_batch_add_idem(b->buf + b->len, idem);
    }
    if ((rc = db_change_start(db, b->len)) != 0) {
        tally_batch_abort(db);
        return rc;
    }
    codec_batch_close(b->buf, b->len, b->n + (idem != NULL));
    /* A batch of reads only is still one change: its id's. */
    t = db_change_emit(db, b->buf, b->len, b->n ? b->n : 1);
    if (idem)
        once_add(&db->once, idem, t);
    /* The counters the batch left carry its ticket; one it deleted leaves
     * an absence that rests on it. */
    for (size_t i = 0; i < b->nundo; i++) {
        const unsigned char *key = b->keys + b->undo[i].koff;
        size_t klen = b->undo[i].klen;
        struct table_entry *e = table_find(
            &db->table, table_hash(db->table.seed, key, klen), key, klen);
        if (e)
            e->lsn = t;
        else if (t > db->last_del)
            db->last_del = t;
    }
    close_batch(db);
    return db_change_finish(db, t, ticket);
}

int tally_batch_commit(tally *db, tally_ticket *ticket)
{
    return db_batch_commit(db, NULL, ticket);
}

void db_batch_free(tally *db)
{
    struct batch_state *b = &db->batch;

    tally_batch_abort(db);
    free(b->buf);
    free(b->undo);
    free(b->keys);
    memset(b, 0, sizeof *b);
}
