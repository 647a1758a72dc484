/*
 * mdel.c - tally_mdel (include/tally.h): deleting many counters as one
 * atomic change, the way tally_mset (db.c) sets many.
 *
 * The deletes of the counters that exist are encoded as one BATCH record of
 * DEL sub-records (format in codec.c) and go through the one change path of
 * db.c (db_change_start, db_change_emit, db_change_finish).  So a refused
 * reservation (disk full) or a failed write path deletes nothing, and
 * recovery applies all of the deletes or none: one torn record is cut whole.
 * A key given twice is written twice (replaying a DEL of a missing key does
 * nothing, db_apply) and counted once.
 */
#include "codec.h"
#include "engine.h"
#include "mem.h"

/* An expired counter does not exist (db_live removes it, raising
 * last_del to the record that set its time). */
static int exists(tally *db, const void *key, size_t klen)
{
    return db_live(db, key, klen, tally_now_ms(db)) != NULL;
}

int tally_mdel(tally *db, size_t n, const void *const *keys,
               const size_t *klens, uint64_t *deleted, tally_ticket *ticket)
{
    size_t i, total = CODEC_BATCH_HDR, pos = CODEC_BATCH_HDR;
    uint32_t nops = 0;
    uint64_t gone = 0, t;
    int rc;

    if (n && (!keys || !klens))
        return db_err(db, TALLY_EINVAL, "NULL array for mdel");
    for (i = 0; i < n; i++) {
        if ((rc = db_key_check(db, keys[i], klens[i])) != 0)
            return rc;
        if (!exists(db, keys[i], klens[i]))
            continue;
        nops++;
        total += codec_batch_op_size(klens[i], CODEC_DEL);
        if (total - CODEC_REC_HDR > CODEC_MAX_BODY)
            return db_err(db, TALLY_EINVAL,
                          "mdel of %zu keys exceeds the 1 MiB record limit", n);
    }
    if (nops == 0) {
        /* Nothing to write: the answer is n absences, a read. */
        if ((rc = db_read_finish(db, db->last_del, ticket)) != 0)
            return rc;
        if (deleted)
            *deleted = 0;
        return 0;
    }
    if ((rc = db_change_start(db, total)) != 0)
        return rc;
    if (db->scratch_cap < total) {
        db->scratch = mem_realloc(db->scratch, total);
        db->scratch_cap = total;
    }
    for (i = 0; i < n; i++) {
        struct codec_op op = {CODEC_DEL, keys[i], klens[i], 0, 0};
        if (exists(db, keys[i], klens[i]))
            pos += codec_batch_add(db->scratch + pos, &op);
    }
    codec_batch_close(db->scratch, pos, nops);
    t = db_change_emit(db, db->scratch, pos, nops);
    /* Missing keys too: for them db_apply only moves last_del to t, where
     * the batch's own deletes put it anyway. */
    for (i = 0; i < n; i++) {
        struct codec_op op = {CODEC_DEL, keys[i], klens[i], 0, 0};
        gone += (uint64_t)db_apply(&db->table, &db->last_del, &op, t);
    }
    if ((rc = db_change_finish(db, t, ticket)) != 0)
        return rc;
    if (deleted)
        *deleted = gone;
    return 0;
}
