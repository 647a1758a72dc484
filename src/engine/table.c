/*
 * table.c - the in-memory counter table (see table.h).
 *
 * Layout.  A power-of-two array of bucket heads; each bucket a singly linked
 * chain of entries {next, value, lsn, u16 klen, key[]}.  The hash is not
 * stored: it would cost 8 bytes per counter and is only needed again on a
 * resize, where recomputing it is cheap next to the cache misses.  Entries
 * come from 64 KiB slabs in size classes of 8 bytes, so a counter with a
 * 16-byte key costs 48 bytes of slab plus 8-16 bytes of bucket array (the
 * load stays between 1/2 and 1) instead of malloc's 64-byte chunk.  Freed
 * entries go to a free list of their class and are reused by keys of the
 * same size class; slabs are only returned to the system when the table is
 * freed (known debt: a table that shrinks a lot keeps its peak memory;
 * compaction or per-slab free counts would remove it).
 *
 * Growth.  The bucket array doubles when the count passes the bucket count,
 * in one go (known debt: with millions of counters this is a pause of tens
 * of milliseconds on the caller's thread; an incremental rehash with two
 * arrays, as in Redis's dict.c, would remove it).  It never shrinks.
 *
 * Scanning uses Redis's reverse-binary cursor (dict.c dictScan): the cursor's
 * bits are incremented from the top, so every bucket index visited before a
 * doubling maps to indices that are also "before" the cursor afterwards, and
 * a counter present for the whole scan is never skipped.
 */
#include "table.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define TABLE_CHUNK (64 * 1024)
#define TABLE_HDR offsetof(struct table_entry, key)

/*
 * The hash: a wyhash-style "multiply and fold" (64x64 -> 128-bit product,
 * high half xor low half) over 16-byte blocks.  Keys are short (most under
 * 32 bytes), so one multiply per 16 bytes and no setup beats SipHash by
 * several times; the per-handle random seed enters both operands of every
 * multiply, so an attacker who does not know it cannot aim keys at one
 * bucket (the known weakness of folded multiplies, an operand forced to zero,
 * needs the seed).  It is not a proven PRF: if hash flooding by a strong
 * adversary matters more than speed, SipHash-1-3 is the replacement.
 */
#define K0 0xa0761d6478bd642fULL
#define K1 0xe7037ed1a0b428dbULL
#define K2 0x8ebc6af09c88c6e3ULL
#define K3 0x589965cc75374cc3ULL

static uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;

    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* The hash lives only in memory, so host byte order is fine here. */
static uint64_t load_n(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    memcpy(&v, p, n);
    return v;
}

uint64_t table_hash(uint64_t seed, const void *key, size_t klen)
{
    const unsigned char *p = key;
    size_t n = klen;
    uint64_t s = seed ^ K0;
    uint64_t h = fold_mul(s ^ K3, (uint64_t)klen ^ K1);
    uint64_t a, b;

    while (n > 16) {
        h = fold_mul(load_n(p, 8) ^ s ^ K2, load_n(p + 8, 8) ^ h ^ K3);
        p += 16;
        n -= 16;
    }
    if (n > 8) {
        a = load_n(p, 8);
        b = load_n(p + 8, n - 8);
    } else {
        a = load_n(p, n);
        b = 0;
    }
    h = fold_mul(a ^ s ^ K2, b ^ h ^ K3);
    return fold_mul(h ^ K1, s ^ (uint64_t)klen);
}

static size_t entry_size(size_t klen)
{
    return (TABLE_HDR + klen + 7) & ~(size_t)7;
}

static void slab_free_entry(struct table *t, struct table_entry *e, size_t sz)
{
    e->next = t->freel[sz / 8];
    t->freel[sz / 8] = e;
}

static struct table_entry *slab_alloc(struct table *t, size_t sz)
{
    struct table_entry *e = t->freel[sz / 8];
    void **chunk;

    if (e) {
        t->freel[sz / 8] = e->next;
        return e;
    }
    if (t->left < sz) {
        /* The tail of the old chunk still serves smaller keys. */
        if (t->left >= entry_size(0))
            slab_free_entry(t, (struct table_entry *)t->cur, t->left);
        chunk = mem_alloc(TABLE_CHUNK);
        *chunk = t->chunks;
        t->chunks = chunk;
        t->cur = (unsigned char *)chunk + 16;
        t->left = TABLE_CHUNK - 16;
        t->slab_bytes += TABLE_CHUNK;
    }
    e = (struct table_entry *)t->cur;
    t->cur += sz;
    t->left -= sz;
    return e;
}

void table_init(struct table *t, uint64_t seed, uint64_t hint)
{
    uint64_t n = 16;

    memset(t, 0, sizeof(*t));
    while (n < hint && n < ((uint64_t)1 << 40))
        n <<= 1;
    t->b = mem_calloc(n, sizeof(*t->b));
    t->mask = n - 1;
    t->seed = seed;
}

void table_free(struct table *t)
{
    void *c = t->chunks, *next;

    while (c) {
        next = *(void **)c;
        free(c);
        c = next;
    }
    free(t->b);
    memset(t, 0, sizeof(*t));
}

static int key_eq(const struct table_entry *e, const void *key, size_t klen)
{
    return e->klen == klen && memcmp(e->key, key, klen) == 0;
}

struct table_entry *table_find(const struct table *t, uint64_t h,
                               const void *key, size_t klen)
{
    struct table_entry *e;

    for (e = t->b[h & t->mask]; e; e = e->next)
        if (key_eq(e, key, klen))
            return e;
    return NULL;
}

static void table_grow(struct table *t)
{
    uint64_t n = (t->mask + 1) * 2, i;
    struct table_entry **nb = mem_calloc(n, sizeof(*nb));
    struct table_entry *e, *next;
    uint64_t h;

    for (i = 0; i <= t->mask; i++) {
        for (e = t->b[i]; e; e = next) {
            next = e->next;
            h = table_hash(t->seed, e->key, e->klen);
            e->next = nb[h & (n - 1)];
            nb[h & (n - 1)] = e;
        }
    }
    free(t->b);
    t->b = nb;
    t->mask = n - 1;
}

struct table_entry *table_insert(struct table *t, uint64_t h, const void *key,
                                 size_t klen)
{
    struct table_entry *e = slab_alloc(t, entry_size(klen));
    struct table_entry **head;

    e->value = 0;
    e->lsn = 0;
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    head = &t->b[h & t->mask];
    e->next = *head;
    *head = e;
    t->count++;
    if (t->count > t->mask + 1)
        table_grow(t);
    return e;
}

int table_remove(struct table *t, uint64_t h, const void *key, size_t klen)
{
    struct table_entry **pp = &t->b[h & t->mask], *e;

    for (; (e = *pp) != NULL; pp = &e->next) {
        if (key_eq(e, key, klen)) {
            *pp = e->next;
            t->count--;
            slab_free_entry(t, e, entry_size(e->klen));
            return 1;
        }
    }
    return 0;
}

static uint64_t rev64(uint64_t v)
{
    v = __builtin_bswap64(v);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    return v;
}

uint64_t table_scan(const struct table *t, uint64_t cursor, size_t count,
                    const void *prefix, size_t plen, table_scan_fn fn,
                    void *ctx, int *stop)
{
    uint64_t v = cursor, m = t->mask;
    size_t shown = 0, visited = 0, limit;
    const struct table_entry *e;
    int r;

    if (count == 0)
        count = 1;
    limit = count > SIZE_MAX / 16 ? SIZE_MAX : 10 * count + 16;
    *stop = 0;
    do {
        for (e = t->b[v & m]; e; e = e->next) {
            if (e->klen < plen || (plen && memcmp(e->key, prefix, plen) != 0))
                continue;
            r = fn(ctx, e);
            if (r) {
                *stop = r;
                return 0;
            }
            shown++;
        }
        visited++;
        /* Increment the reversed cursor: set the bits above the mask so the
         * carry runs off the top once every bucket was visited. */
        v |= ~m;
        v = rev64(v);
        v++;
        v = rev64(v);
    } while (v != 0 && shown < count && visited < limit);
    return v;
}

size_t table_memory(const struct table *t)
{
    return t->slab_bytes + (size_t)(t->mask + 1) * sizeof(*t->b);
}
