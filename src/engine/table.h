/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * table.h - the in-memory counter table: a chained hash table keyed by a
 * seeded 64-bit hash, with entries carved from the table's own slabs.  It
 * knows nothing of logs or durability; db.c decides what to change and
 * records each entry's LSN here so reads can name the log position they
 * depend on.
 *
 * Not thread-safe: the handle's owning thread is the only user.
 */
#ifndef ENGINE_TABLE_H
#define ENGINE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "htab.h"

/* One counter.  The key is stored inline; the header is 26 bytes, so an
 * entry with a 16-byte key takes 48 bytes of slab (see table.c).  An entry
 * with an expiry keeps it in 6 more bytes after the key (TE_ROOM), and a
 * handle to it in the table's expiry list. */
struct table_entry {
    struct table_entry *next; /* chain, or slab free list when free */
    int64_t value;
    uint64_t lsn;             /* ticket of the entry's last change */
    uint16_t kbits;           /* key length (TABLE_KLEN_MASK) | TE_* */
    unsigned char key[];
};

#define TABLE_KLEN_MASK 0x07ffu
#define TE_MARK 0x1000u   /* scratch bit of the expiry list's compaction */
#define TE_LISTED 0x2000u /* a handle to this slot is in the expiry list */
#define TE_ROOM 0x4000u   /* the slot has the 6 bytes an expiry needs */
#define TE_TTL 0x8000u    /* the entry carries an expiry */

static inline size_t table_klen(const struct table_entry *e)
{
    return e->kbits & TABLE_KLEN_MASK;
}

#define TABLE_CLASSES 135 /* size classes of 8 bytes up to 26 + 1024 + 6 */

struct table {
    struct htab h;           /* the chains, resized incrementally */
    uint64_t count;
    uint64_t seed;           /* hash seed; random per handle */
    /* Slab allocator: entries are cut from big chunks and freed to a free
     * list per size class (no malloc header per entry). */
    void *chunks;            /* singly linked list of chunks */
    unsigned char *cur;      /* bump pointer into the newest chunk */
    size_t left;             /* bytes left after cur */
    size_t slab_bytes;       /* bytes of chunks allocated */
    struct table_entry *freel[TABLE_CLASSES];
    void **chunkv;           /* chunks by index (expiry handles name them) */
    uint32_t *csorted;       /* chunk indices in address order */
    size_t nchunks, chunkcap;
    /* Expiry: the list of handles that active expiry samples (see
     * table.c), which may hold stale and repeated handles. */
    uint32_t *xs;
    size_t xn, xcap, xcur;   /* used, allocated, sampling position */
    uint64_t xcount;         /* entries with TE_TTL */
    unsigned __int128 xsum;  /* sum of their expiry times */
    int64_t xmin;            /* no entry expires before this */
    uint64_t expired;        /* entries removed by expiry */
};

/* Called by table_scan for each entry shown; nonzero stops the scan. */
typedef int (*table_scan_fn)(void *ctx, const struct table_entry *e);

/* Set up an empty table sized for about `hint` entries. */
void table_init(struct table *t, uint64_t seed, uint64_t hint);
/* Free every entry and the bucket array; t is then unusable until init. */
void table_free(struct table *t);

/* The seeded hash of a key (see table.c for why this function). */
uint64_t table_hash(uint64_t seed, const void *key, size_t klen);

/* The entry for key, or NULL.  h = table_hash(t->seed, key, klen). */
struct table_entry *table_find(const struct table *t, uint64_t h,
                               const void *key, size_t klen);
/* Add key, which must be absent; returns the new entry with value and lsn 0.
 * May begin doubling the bucket array, and moves a few buckets of a resize
 * that runs (entries stay where they are in memory). */
struct table_entry *table_insert(struct table *t, uint64_t h, const void *key,
                                 size_t klen);
/* Remove key; returns 1 if it was there, 0 if not.  As every removal, may
 * begin shrinking the bucket array and moves a few buckets of a resize. */
int table_remove(struct table *t, uint64_t h, const void *key, size_t klen);
/* Remove entry e (of hash h) that is in the table. */
void table_unlink(struct table *t, uint64_t h, struct table_entry *e);

/* The expiry of e (Unix ms), 0 for none. */
int64_t table_expire_of(const struct table_entry *e);
/* Is e expired at now? */
static inline int table_expired(const struct table_entry *e, int64_t now)
{
    return (e->kbits & TE_TTL) && table_expire_of(e) <= now;
}
/* Set e's expiry to exp (0: none).  The entry may move to a larger slot:
 * *ep is then the new one (h is its hash). */
void table_set_expire(struct table *t, uint64_t h, struct table_entry **ep,
                      int64_t exp);
/* Told of each entry active expiry removes, just before (table_expire_step;
 * tally_options.expired). */
typedef void (*table_gone_fn)(void *ctx, const void *key, size_t klen,
                              uint64_t lsn);

/* Active expiry: look at up to budget handles of the expiry list from where
 * the last call stopped, removing entries expired at now (raising *maxlsn to
 * each one's lsn, and telling gone(gone_ctx, ...) if gone is not NULL).
 * Returns how many it removed. */
size_t table_expire_step(struct table *t, int64_t now, size_t budget,
                         uint64_t *maxlsn, table_gone_fn gone, void *gone_ctx);
/* Remove every entry expired at now, if any may be (t->xmin <= now); then
 * t->xmin is exact. */
void table_expire_all(struct table *t, int64_t now, uint64_t *maxlsn,
                      table_gone_fn gone, void *gone_ctx);
/* Bytes the expiry list and chunk index take. */
size_t table_expire_memory(const struct table *t);

/* One step of a resumable scan with Redis's reverse-binary cursor: visits
 * whole buckets from `cursor` until about `count` matching entries were shown
 * or 10 * count + 16 buckets were visited, calling fn for entries whose key
 * starts with prefix.  Returns the next cursor (0 when done).  If fn returns
 * nonzero the scan stops at once and *stop gets that value (else 0). */
uint64_t table_scan(const struct table *t, uint64_t cursor, size_t count,
                    const void *prefix, size_t plen, table_scan_fn fn,
                    void *ctx, int *stop);

/* A walk over every entry in slab order (a snapshot's, snap.c): chunk by
 * chunk in the order they were allocated, slot by slot within each, so
 * that memory is read in sequence instead of one bucket and one entry at
 * random per counter as table_scan does.  An entry that stays in its slot
 * from the first step to the last is shown exactly once; one added or
 * removed meanwhile at most once, and one moved meanwhile
 * (table_set_expire may move it to a bigger slot) at most twice, which a
 * fuzzy snapshot allows: every such change has a log record after the walk
 * began, and recovery applies a repeated PUT as the later one.  Resizes of
 * the bucket array do not matter to it. */
struct table_walk {
    size_t chunk;   /* index in chunkv of the chunk being walked */
    size_t off;     /* byte offset of the next slot in it */
    size_t nchunks; /* chunks when the walk began: the walk ends there */
};

/* Begin a walk at the first slot of the first chunk. */
void table_walk_begin(const struct table *t, struct table_walk *w);
/* Call fn for up to count entries from where the walk stands, passing
 * over free slots (at most 8 * count + 64 slots in all, so a stretch of
 * free ones ends a step too).  Returns 1 once the walk is done, else 0.
 * If fn returns nonzero the walk stops at once, *stop gets that value
 * (else 0) and 1 is returned; the walk must not be continued then. */
int table_walk_step(const struct table *t, struct table_walk *w, size_t count,
                    table_scan_fn fn, void *ctx, int *stop);

/* Move up to budget buckets of a running resize of the bucket array (see
 * htab_step); returns 1 if one still runs, else 0. */
int table_rehash_step(struct table *t, size_t budget);
/* Buckets the table has (or is resizing to). */
static inline uint64_t table_buckets(const struct table *t)
{
    return htab_size(&t->h);
}

/* Bytes of memory the table holds (slabs plus bucket arrays). */
size_t table_memory(const struct table *t);

#endif /* ENGINE_TABLE_H */
