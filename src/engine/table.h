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

/* One counter.  The key is stored inline; the header is 26 bytes, so an
 * entry with a 16-byte key takes 48 bytes of slab (see table.c). */
struct table_entry {
    struct table_entry *next; /* chain, or slab free list when free */
    int64_t value;
    uint64_t lsn;             /* ticket of the entry's last change */
    uint16_t klen;
    unsigned char key[];
};

#define TABLE_CLASSES 134 /* size classes of 8 bytes up to 26 + 1024 */

struct table {
    struct table_entry **b; /* bucket array, mask + 1 long */
    uint64_t mask;
    uint64_t count;
    uint64_t seed;           /* hash seed; random per handle */
    /* Slab allocator: entries are cut from big chunks and freed to a free
     * list per size class (no malloc header per entry). */
    void *chunks;            /* singly linked list of chunks */
    unsigned char *cur;      /* bump pointer into the newest chunk */
    size_t left;             /* bytes left after cur */
    size_t slab_bytes;       /* bytes of chunks allocated */
    struct table_entry *freel[TABLE_CLASSES];
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
 * May double the bucket array. */
struct table_entry *table_insert(struct table *t, uint64_t h, const void *key,
                                 size_t klen);
/* Remove key; returns 1 if it was there, 0 if not. */
int table_remove(struct table *t, uint64_t h, const void *key, size_t klen);

/* One step of a resumable scan with Redis's reverse-binary cursor: visits
 * whole buckets from `cursor` until about `count` matching entries were shown
 * or 10 * count + 16 buckets were visited, calling fn for entries whose key
 * starts with prefix.  Returns the next cursor (0 when done).  If fn returns
 * nonzero the scan stops at once and *stop gets that value (else 0). */
uint64_t table_scan(const struct table *t, uint64_t cursor, size_t count,
                    const void *prefix, size_t plen, table_scan_fn fn,
                    void *ctx, int *stop);

/* Bytes of memory the table holds (slabs plus bucket array). */
size_t table_memory(const struct table *t);

#endif /* ENGINE_TABLE_H */
