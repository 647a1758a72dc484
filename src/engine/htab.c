/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * htab.c - an incrementally resized array of hash chains (see htab.h), the
 * part of Redis's dict.c that table.c and once.c share.
 *
 * A resize allocates the new array and leaves the old one in place; every
 * change to the table then moves a few old buckets (htab_step), and so does
 * each tally_step() slice, until the old array is empty and freed.  Unlike
 * dict.c, an insert goes to the chain its key belongs in now: the old
 * bucket if that was not moved yet (index >= ridx), else the new one.  So
 * a key is always in exactly one chain that the hash and ridx name, a
 * lookup (a miss above all, as every INCR of a new key is) reads one chain
 * instead of two, and the resize still ends, since ridx only goes up.
 *
 * Memory.  Arrays come from mem_zmap: big ones are mapped zeroed, and the
 * old array's pages are given back as the moves pass them (each step gives
 * back whole pages behind ridx, in pieces of HTAB_GIVEBACK), so neither the
 * calloc of the new array nor the free of the old is a pause.  The scan
 * therefore never reads an old bucket below ridx.
 *
 * Scanning.  Redis's reverse-binary cursor: the cursor's bits count up from
 * the top, so the buckets visited before a resize map to buckets that are
 * also "before" the cursor afterwards, in a bigger or smaller array.  During
 * a resize a step visits the smaller array's bucket and every bucket of the
 * bigger one that it expands to, which is what keeps the guarantee while
 * entries move between calls.
 */
#include "htab.h"

#include <string.h>

#include "mem.h"

#define HTAB_GIVEBACK ((size_t)256 * 1024)

/* The chain pointer at the start of an entry (memcpy: the entry's own type
 * is the table's). */
static void *link_get(const void *e)
{
    void *n;

    memcpy(&n, e, sizeof(n));
    return n;
}

static void link_set(void *e, void *n)
{
    memcpy(e, &n, sizeof(n));
}

static size_t array_bytes(uint64_t mask)
{
    return (size_t)(mask + 1) * sizeof(void *);
}

void htab_init(struct htab *h, uint64_t n)
{
    memset(h, 0, sizeof(*h));
    h->b = mem_zmap((size_t)n * sizeof(void *));
    h->mask = n - 1;
}

void htab_free(struct htab *h)
{
    if (h->b)
        mem_unmap(h->b, array_bytes(h->mask), 0);
    if (h->ob)
        mem_unmap(h->ob, array_bytes(h->omask), h->ounmapped);
    memset(h, 0, sizeof(*h));
}

void htab_resize(struct htab *h, uint64_t n)
{
    h->ob = h->b;
    h->omask = h->mask;
    h->ridx = 0;
    h->ounmapped = 0;
    h->b = mem_zmap((size_t)n * sizeof(void *));
    h->mask = n - 1;
}

/* Move old bucket i to the new array. */
static void move_bucket(struct htab *h, uint64_t i, htab_hash_fn hash,
                        uint64_t seed)
{
    void *e = h->ob[i], *next, **head;

    while (e) {
        next = link_get(e);
        head = &h->b[hash(e, seed) & h->mask];
        link_set(e, *head);
        *head = e;
        e = next;
    }
    h->ob[i] = NULL;
}

int htab_step(struct htab *h, size_t n, htab_hash_fn hash, uint64_t seed)
{
    size_t empty = 10 * n;
    size_t bytes;

    if (!h->ob)
        return 0;
    while (n > 0 && h->ridx <= h->omask) {
        if (h->ob[h->ridx]) {
            move_bucket(h, h->ridx, hash, seed);
            n--;
        } else if (empty-- == 0) {
            break;
        }
        h->ridx++;
    }
    bytes = array_bytes(h->omask);
    if (h->ridx > h->omask) {
        mem_unmap(h->ob, bytes, h->ounmapped);
        h->ob = NULL;
        h->omask = h->ridx = 0;
        h->ounmapped = 0;
        return 0;
    }
    if (h->ridx * sizeof(void *) >= h->ounmapped + HTAB_GIVEBACK)
        h->ounmapped = mem_unmap_prefix(h->ob, bytes, h->ounmapped,
                                        (size_t)h->ridx * sizeof(void *));
    return 1;
}

void htab_maintain(struct htab *h, uint64_t count, uint64_t min, size_t step,
                   htab_hash_fn hash, uint64_t seed)
{
    uint64_t n = htab_size(h), want;

    if (htab_step(h, step, hash, seed))
        return;
    if (count > n) {
        htab_resize(h, 2 * n);
    } else if (n > min && count < n / 8) {
        for (want = min; want < 2 * count; want <<= 1)
            ;
        htab_resize(h, want);
    }
}

static uint64_t rev64(uint64_t v)
{
    v = __builtin_bswap64(v);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    return v;
}

/* Increment the reversed cursor over mask's bits: the bits above the mask
 * are set so the carry runs off the top once every bucket was visited. */
static uint64_t rev_next(uint64_t v, uint64_t mask)
{
    v |= ~mask;
    v = rev64(v);
    v++;
    return rev64(v);
}

/* The chain of old bucket i, NULL for one already moved (whose page may
 * have been given back). */
static void *old_chain(const struct htab *h, uint64_t i)
{
    return i < h->ridx ? NULL : h->ob[i];
}

uint64_t htab_scan_step(const struct htab *h, uint64_t v, htab_chain_fn fn,
                        void *ctx, size_t *visited)
{
    uint64_t m0, m1;
    int old_small;

    if (!h->ob) {
        (*visited)++;
        if (fn(ctx, h->b[v & h->mask]))
            return 0;
        return rev_next(v, h->mask);
    }
    old_small = h->omask < h->mask;
    m0 = old_small ? h->omask : h->mask;
    m1 = old_small ? h->mask : h->omask;
    (*visited)++;
    if (fn(ctx, old_small ? old_chain(h, v & m0) : h->b[v & m0]))
        return 0;
    /* Every bucket of the bigger array that bucket v & m0 expands to. */
    do {
        (*visited)++;
        if (fn(ctx, old_small ? h->b[v & m1] : old_chain(h, v & m1)))
            return 0;
        v = rev_next(v, m1);
    } while (v & (m0 ^ m1));
    return v;
}

size_t htab_memory(const struct htab *h)
{
    size_t n = h->b ? array_bytes(h->mask) : 0;

    if (h->ob)
        n += array_bytes(h->omask) - h->ounmapped;
    return n;
}
