/*
 * engine.h - the handle (struct tally) and what the engine's modules share.
 * db.c owns the public counter API and the apply function; the log, sync
 * thread, snapshots and recovery live in their own files (see each one).
 *
 * Threads and locks: one caller thread (the "loop thread") owns the table and
 * every field marked [loop].  The sync thread owns the fields marked [sync].
 * Fields marked [mu] are guarded by db->mu, which is only ever held for
 * short copies and swaps, never across I/O.  Fields marked [atomic] are read
 * from any thread.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stdint.h>

#include "codec.h"
#include "table.h"
#include "tally.h"

struct tally {
    tally_options opts;
    struct table table;        /* [loop] the counters */
    uint64_t last_del;         /* [loop] LSN of the latest delete */
    uint64_t head;             /* [atomic, written by loop] newest ticket */
    uint64_t durable;          /* [atomic] durable up to here */
    int health;                /* [atomic] TALLY_OK, _EFAILED, _ENOSPC */
    uint64_t changes;          /* [loop] changes applied since open */
    char errmsg[TALLY_ERRMAX]; /* [loop] detail of the last failure */
    unsigned char *scratch;    /* [loop] encoding buffer for batches */
    size_t scratch_cap;
    int efd;                   /* eventfd signalled when durable moves */
    char *dir;
};

/* Apply one PUT or DEL to the table, stamping the entry with lsn (the
 * ticket of its record).  Live changes and recovery both go through here.
 * Returns 1 if the key existed before, else 0. */
int db_apply(struct table *t, uint64_t *last_del, const struct codec_op *op,
             uint64_t lsn);

#endif /* ENGINE_H */
