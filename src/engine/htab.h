/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * htab.h - the bucket array under the counter table (table.c) and the table
 * of idempotency ids (once.c): heads of singly linked chains, resized
 * incrementally as Redis's dict.c does, so that growing to millions of
 * entries never stops the caller for the whole rehash.  It owns the arrays,
 * the rehash and the reverse-binary scan order; the entries, their keys and
 * their hashes belong to the table above, which tells it how to hash an
 * entry.  An entry kept here starts with its chain pointer (first member).
 *
 * Not thread-safe: the owning table's thread is the only user.
 */
#ifndef ENGINE_HTAB_H
#define ENGINE_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct htab {
    void **b;       /* the array being filled: mask + 1 chain heads */
    uint64_t mask;
    void **ob;      /* during a resize, the array being emptied; else NULL */
    uint64_t omask;
    uint64_t ridx;  /* ob's buckets below ridx were moved to b */
    size_t ounmapped; /* bytes at ob's start given back already */
};

/* The hash of an entry kept in the table (seed: the table's). */
typedef uint64_t (*htab_hash_fn)(const void *entry, uint64_t seed);
/* Called by htab_scan_step for each chain it visits (head may be NULL);
 * nonzero stops the step at once. */
typedef int (*htab_chain_fn)(void *ctx, void *head);

/* Set up an array of n chain heads (n a power of two), all empty. */
void htab_init(struct htab *h, uint64_t n);
/* Free the arrays (not the entries); h is then as if zeroed. */
void htab_free(struct htab *h);

/* Where the chain for a hash is: in ob while its bucket there has not been
 * moved, else in b.  So every entry is in exactly one chain, lookups read
 * one chain, and an insert goes to the chain this returns. */
static inline void **htab_head(const struct htab *h, uint64_t hash)
{
    if (h->ob && (hash & h->omask) >= h->ridx)
        return &h->ob[hash & h->omask];
    return &h->b[hash & h->mask];
}

/* The size the table is going to (or at, when no resize runs). */
static inline uint64_t htab_size(const struct htab *h)
{
    return h->mask + 1;
}

/* Begin moving every chain to a new array of n heads (a power of two).
 * Must not be called while a resize runs (h->ob not NULL). */
void htab_resize(struct htab *h, uint64_t n);
/* Move up to n buckets of a running resize (visiting at most 10 * n empty
 * ones), hashing each entry with hash(entry, seed).  Returns 1 if the resize
 * still runs afterwards, 0 if none does. */
int htab_step(struct htab *h, size_t n, htab_hash_fn hash, uint64_t seed);

/* After a change that left count entries: move step buckets of a running
 * resize, or, if none runs, begin one when the load left [1/8, 1]: double
 * above 1, and below 1/8 shrink to a load between 1/4 and 1/2 (never below
 * min buckets), so a count near either boundary does not resize back and
 * forth. */
void htab_maintain(struct htab *h, uint64_t count, uint64_t min, size_t step,
                   htab_hash_fn hash, uint64_t seed);

/* One step of a resumable scan with Redis's reverse-binary cursor (dict.c
 * dictScan): calls fn for the chains at cursor (in both arrays during a
 * resize) and returns the next cursor, 0 once every bucket was visited.
 * *visited grows by the buckets visited.  If fn returns nonzero the step
 * stops at once and returns 0.  A chain whose entries are all present from
 * the first step to the last is visited, whatever resizes run between
 * steps (entries may be visited twice after a shrink). */
uint64_t htab_scan_step(const struct htab *h, uint64_t cursor,
                        htab_chain_fn fn, void *ctx, size_t *visited);

/* Bytes the arrays take. */
size_t htab_memory(const struct htab *h);

#endif /* ENGINE_HTAB_H */
