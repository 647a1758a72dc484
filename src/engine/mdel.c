/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mdel.c - tally_mdel (include/tally.h): deleting many counters as one
 * atomic change, the way tally_mset (db.c) sets many.
 *
 * The deletes of the counters that exist are encoded as one BATCH record of
 * DEL sub-records (format in codec.c) and go through the one change path,
 * batch.c's db_change_ops (which also lets them join an open tally_batch).
 * So a refused reservation (disk full) or a failed write path deletes nothing, and
 * recovery applies all of the deletes or none: one torn record is cut whole.
 * A key given twice is written twice (replaying a DEL of a missing key does
 * nothing, db_apply) and counted once.
 */
#include "codec.h"
#include "engine.h"
#include "mem.h"

#include <stdlib.h>

/* An expired counter does not exist (db_live removes it, raising
 * last_del to the record that set its time). */
static int exists(tally *db, const void *key, size_t klen)
{
    return db_live(db, key, klen, tally_now_ms(db)) != NULL;
}

int tally_mdel(tally *db, size_t n, const void *const *keys,
               const size_t *klens, uint64_t *deleted, tally_ticket *ticket)
{
    size_t i, j = 0, total = CODEC_BATCH_HDR;
    struct codec_op *ops;
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
    ops = mem_alloc(nops * sizeof *ops);
    for (i = 0; i < n; i++)
        if (exists(db, keys[i], klens[i]))
            ops[j++] = (struct codec_op){CODEC_DEL, keys[i], klens[i], 0, 0};
    /* The missing keys need no op: their absence rests on last_del, which
     * the deletes move to t anyway. */
    rc = db_change_ops(db, ops, nops, NULL, &t, &gone);
    free(ops);
    if (rc)
        return rc;
    if ((rc = db_change_finish(db, t, ticket)) != 0)
        return rc;
    if (deleted)
        *deleted = gone;
    return 0;
}
