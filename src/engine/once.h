/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * once.h - the table of idempotency ids (once.c): which ids were used, with
 * which request fingerprint, what their first request answered and when.
 * A chained hash keyed by the id (table_hash, the handle's seed) plus a FIFO
 * list in creation order, so that expiry pops from the head in O(1) per id.
 * Since ids leave in the order they came, the entries are carved from a
 * queue of blocks (struct once_block) instead of one malloc each: an add
 * bumps a pointer, and a block is freed when its last id is popped.
 * It knows nothing of logs: once.c's public functions decide what to log,
 * recovery and snapshots feed and walk it.
 *
 * Not thread-safe: the handle's loop thread is the only user.
 */
#ifndef ENGINE_ONCE_H
#define ENGINE_ONCE_H

#include <stddef.h>
#include <stdint.h>

#include "htab.h"

/* One remembered id: 60 bytes of header plus the id (and, for an id that
 * keeps its answer, the answer after it), rounded up to 8 bytes, in the
 * table's block queue. */
struct once_entry {
    struct once_entry *hnext; /* hash chain */
    struct once_entry *fnext; /* FIFO: the next newer id */
    uint64_t fp;              /* fingerprint of the first request */
    int64_t created_ms;       /* wall clock of the first request */
    int64_t value;            /* its outcome value */
    uint64_t ticket;          /* ticket of the record holding it */
    uint32_t hash;            /* once_hash of the id: a resize moves the
                                 entry without hashing the id again */
    uint16_t idlen;
    uint8_t code;             /* its outcome: TALLY_OK or TALLY_NOTFOUND */
    uint32_t alen;            /* bytes of answer after id[idlen] (an id
                                 recorded with tally_batch_commit_once);
                                 0: none */
    unsigned char id[];
};

/* A block of entries, oldest first.  Entries are added at used and popped
 * at start (the head of the FIFO is always the entry at start of the
 * oldest block). */
struct once_block {
    struct once_block *next;  /* the next newer block */
    size_t size;              /* bytes of data[] */
    size_t start, used;       /* data[start, used) holds live entries */
    unsigned char data[];
};

struct once_table {
    struct htab h;            /* the chains (h.b NULL while empty), resized
                                 incrementally */
    uint64_t count;
    uint64_t seed;            /* hash seed (the counter table's) */
    struct once_entry *head;  /* oldest */
    struct once_entry *tail;  /* newest */
    /* A snapshot's walk: the next id to write and the last one to write
     * (the newest when it began); NULL when done.  Expiry keeps them
     * valid. */
    struct once_entry *walk, *walk_last;
    struct once_block *bhead; /* oldest block (NULL while empty) */
    struct once_block *btail; /* newest: adds go here */
    uint64_t bytes;           /* heap of the blocks, but for the newest
                                 block's room not used yet */
    uint64_t replays;         /* requests answered as replays */
};

struct codec_idem;

/* Set up an empty table (no allocation until the first id). */
void once_init(struct once_table *o, uint64_t seed);
/* Free every id; o is then empty again (usable). */
void once_free(struct once_table *o);

/* The hash an id is kept under (o's seed). */
uint32_t once_hash(const struct once_table *o, const void *id, size_t idlen);
/* The entry for id, or NULL; once_find_h with its once_hash already
 * known. */
struct once_entry *once_find(const struct once_table *o, const void *id,
                             size_t idlen);
struct once_entry *once_find_h(const struct once_table *o, const void *id,
                               size_t idlen, uint32_t hash);
/* Append an id (which must be absent) as the newest, with a copy of
 * idem->answer if it has one; once_add_h with the id's once_hash. */
struct once_entry *once_add(struct once_table *o,
                            const struct codec_idem *idem, uint64_t ticket);
struct once_entry *once_add_h(struct once_table *o,
                              const struct codec_idem *idem, uint64_t ticket,
                              uint32_t hash);

/* Is an id created at created_ms past the retention ttl_ms at now_ms? */
int once_is_expired(int64_t created_ms, int64_t now_ms, uint64_t ttl_ms);
/* Drop up to max expired ids from the oldest end, stopping at the first
 * live one.  Returns 1 if the oldest id left is expired too (more work),
 * else 0. */
int once_expire(struct once_table *o, int64_t now_ms, uint64_t ttl_ms,
                unsigned max);

/* Move up to budget buckets of a running resize of the bucket array;
 * returns 1 if one still runs, else 0 (tally_step's share; every add and
 * pop moves a few too). */
int once_rehash_step(struct once_table *o, size_t budget);

/* Snapshot walk: begin at the oldest id, end at the newest one now; next
 * returns the next id to write or NULL when the walk is done. */
void once_walk_begin(struct once_table *o);
const struct once_entry *once_walk_next(struct once_table *o);

/* Heap the table takes: the entries' blocks (up to the newest one's fill)
 * plus the bucket array. */
uint64_t once_memory(const struct once_table *o);

/* Wall-clock milliseconds since 1970. */
int64_t once_now_ms(void);

#endif /* ENGINE_ONCE_H */
