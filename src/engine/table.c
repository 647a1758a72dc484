/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * table.c - the in-memory counter table (see table.h).
 *
 * Layout.  A power-of-two array of bucket heads; each bucket a singly linked
 * chain of entries {next, value, lsn, u16 klen, key[]}.  The hash is not
 * stored: it would cost 8 bytes per counter and is only needed again on a
 * resize, where recomputing it is cheap next to the cache misses.  Entries
 * come from 64 KiB slabs in size classes of 8 bytes, so a counter with a
 * 16-byte key costs 48 bytes of slab plus 8-16 bytes of bucket array (the
 * load stays between 1/2 and 1 while the table grows; a resize holds the
 * old array too until its last bucket moved) instead of malloc's 64-byte
 * chunk.  Freed entries go to a free list of their class and are reused by
 * keys of the same size class; slabs are only returned to the system when
 * the table is freed (known debt: a table that shrinks a lot keeps its peak
 * slab memory, only its bucket array shrinks; compaction or per-slab free
 * counts would remove it).
 *
 * Growth and shrinking.  The bucket array (htab.c) doubles when the count
 * passes the bucket count and shrinks when it falls below an eighth of it
 * (to a load between 1/4 and 1/2, so a count near either boundary does not
 * resize back and forth), never below 16 buckets.  Either resize is
 * incremental, as in Redis's dict.c: two arrays while it runs, TABLE_STEP
 * buckets moved per insert and removal and a budget's worth per
 * tally_step() slice, a lookup reading the one chain its key is in.  No
 * single call pays for more than a few buckets, at any count.
 *
 * Expiry.  An entry's expiry (Unix ms, below 2^48) is kept in 6 bytes after
 * its key, flagged TE_TTL in the spare top bits of the key length; a slot
 * whose padding has 6 spare bytes is marked TE_ROOM at once, others move to
 * the next size class when they first get an expiry (and keep the room
 * after losing it).  Counters without an expiry pay nothing.  Active expiry
 * samples a separate list of 4-byte handles (chunk index << 13 | offset /
 * 8, so at most 2^19 chunks, 32 GiB of slabs, carry expiries) rather than
 * the whole table, as Redis samples its expires dict.  The list is lazy: a
 * handle is added when an unlisted entry gets an expiry (TE_LISTED) and is
 * dropped only when sampling meets a slot without TE_TTL (persisted, freed
 * or reused), so it may hold stale or repeated handles; slots are never
 * split or given back while the table lives, so a stale handle always
 * names the start of a slot whose kbits tell the truth (a freed slot has
 * kbits 0).  The list is compacted (stale and repeated handles dropped)
 * when it holds more than twice the entries with an expiry.
 *
 * Scanning uses Redis's reverse-binary cursor (dict.c dictScan, htab.c):
 * the cursor's bits are incremented from the top, so every bucket index
 * visited before a resize (in either direction, and while one runs) maps to
 * indices that are also "before" the cursor afterwards, and a counter
 * present for the whole scan is never skipped (after a shrink it may be
 * shown twice).  A snapshot walks the slabs instead (table_walk_step):
 * chunk by chunk, slot by slot, stepping over free slots by the size they
 * keep in their value field, so it reads memory in sequence.
 */
#include "table.h"

#include <stddef.h>
#include <stdio.h>
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

#define EXP_BYTES 6
#define HANDLE_SHIFT 13 /* offset / 8 within a 64 KiB chunk */
#define HANDLE_CHUNKS ((size_t)1 << (32 - HANDLE_SHIFT))

static size_t entry_size(size_t klen)
{
    return (TABLE_HDR + klen + 7) & ~(size_t)7;
}

/* The slot size of e, as allocated. */
static size_t slot_size(const struct table_entry *e)
{
    return entry_size(table_klen(e) + (e->kbits & TE_ROOM ? EXP_BYTES : 0));
}

/* Put a slot of sz bytes on its class's free list.  A free slot says so
 * in its own header (kbits 0, its size in value), so that stale expiry
 * handles and table_walk_step, which steps from slot to slot through a
 * chunk, can tell it from an entry and step over it. */
static void slab_free_entry(struct table *t, struct table_entry *e, size_t sz)
{
    e->kbits = 0;
    e->value = (int64_t)sz;
    e->next = t->freel[sz / 8];
    t->freel[sz / 8] = e;
}

/* Free a slot that held an entry. */
static void free_slot(struct table *t, struct table_entry *e)
{
    slab_free_entry(t, e, slot_size(e));
}

/* Remember a new chunk in the index (by number and by address). */
static void chunk_index_add(struct table *t, void *chunk)
{
    size_t lo = 0, hi = t->nchunks, mid;

    if (t->nchunks == t->chunkcap) {
        t->chunkcap = t->chunkcap ? 2 * t->chunkcap : 64;
        t->chunkv = mem_realloc(t->chunkv, t->chunkcap * sizeof(*t->chunkv));
        t->csorted = mem_realloc(t->csorted,
                                 t->chunkcap * sizeof(*t->csorted));
    }
    while (lo < hi) {
        mid = (lo + hi) / 2;
        if ((uintptr_t)t->chunkv[t->csorted[mid]] < (uintptr_t)chunk)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(t->csorted + lo + 1, t->csorted + lo,
            (t->nchunks - lo) * sizeof(*t->csorted));
    t->csorted[lo] = (uint32_t)t->nchunks;
    t->chunkv[t->nchunks++] = chunk;
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
        chunk_index_add(t, chunk);
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
    htab_init(&t->h, n);
    t->seed = seed;
    t->xmin = INT64_MAX;
}

void table_free(struct table *t)
{
    void *c = t->chunks, *next;

    while (c) {
        next = *(void **)c;
        free(c);
        c = next;
    }
    htab_free(&t->h);
    free(t->chunkv);
    free(t->csorted);
    free(t->xs);
    memset(t, 0, sizeof(*t));
}

static int key_eq(const struct table_entry *e, const void *key, size_t klen)
{
    return table_klen(e) == klen && memcmp(e->key, key, klen) == 0;
}

struct table_entry *table_find(const struct table *t, uint64_t h,
                               const void *key, size_t klen)
{
    struct table_entry *e;

    for (e = *htab_head(&t->h, h); e; e = e->next)
        if (key_eq(e, key, klen))
            return e;
    return NULL;
}

/* Put e (of hash h) in place of old in its chain, or just take old out if
 * e is NULL; returns 1 if old was there.  (The chain heads are void
 * pointers of htab's, the links the entries' own.) */
static int chain_replace(struct table *t, uint64_t h, struct table_entry *old,
                         struct table_entry *e)
{
    void **head = htab_head(&t->h, h);
    struct table_entry *p = *head;

    if (!e)
        e = old->next;
    else
        e->next = old->next;
    if (p == old) {
        *head = e;
        return 1;
    }
    for (; p; p = p->next) {
        if (p->next == old) {
            p->next = e;
            return 1;
        }
    }
    return 0;
}

static uint64_t entry_hash(const void *entry, uint64_t seed)
{
    const struct table_entry *e = entry;

    return table_hash(seed, e->key, table_klen(e));
}

/* Buckets moved by each insert and removal during a resize: a growth is
 * done after half of the inserts that would trigger the next one. */
#define TABLE_STEP 2
#define TABLE_MIN 16

int table_rehash_step(struct table *t, size_t budget)
{
    return htab_step(&t->h, budget, entry_hash, t->seed);
}

/* After a change: move a few buckets of a running resize, or begin one. */
static void rehash_some(struct table *t)
{
    htab_maintain(&t->h, t->count, TABLE_MIN, TABLE_STEP, entry_hash,
                  t->seed);
}

struct table_entry *table_insert(struct table *t, uint64_t h, const void *key,
                                 size_t klen)
{
    size_t sz = entry_size(klen), szx = entry_size(klen + EXP_BYTES);
    /* Slots with room for an expiry, freed by expired counters, serve keys
     * of the class below too (so memory given back by expiry is reused by
     * counters without one) when that class has none free. */
    int room = sz == szx || (!t->freel[sz / 8] && t->freel[szx / 8]);
    struct table_entry *e = slab_alloc(t, room ? szx : sz);
    void **head;

    e->value = 0;
    e->lsn = 0;
    e->kbits = (uint16_t)(klen | (room ? TE_ROOM : 0));
    memcpy(e->key, key, klen);
    head = htab_head(&t->h, h);
    e->next = *head;
    *head = e;
    t->count++;
    rehash_some(t);
    return e;
}

/* Forget e's expiry in the totals (its bytes stay). */
static void ttl_forget(struct table *t, struct table_entry *e)
{
    if (!(e->kbits & TE_TTL))
        return;
    t->xcount--;
    t->xsum -= (uint64_t)table_expire_of(e);
    e->kbits &= (uint16_t)~TE_TTL;
}

int table_remove(struct table *t, uint64_t h, const void *key, size_t klen)
{
    struct table_entry *e = table_find(t, h, key, klen);

    if (!e)
        return 0;
    table_unlink(t, h, e);
    return 1;
}

void table_unlink(struct table *t, uint64_t h, struct table_entry *e)
{
    if (!chain_replace(t, h, e, NULL))
        return; /* not in the table: a caller bug, but harmless */
    t->count--;
    ttl_forget(t, e);
    free_slot(t, e);
    rehash_some(t);
}

/* ---- Expiry ---- */

int64_t table_expire_of(const struct table_entry *e)
{
    const unsigned char *p = e->key + table_klen(e);
    uint64_t v = 0;

    if (!(e->kbits & TE_TTL))
        return 0;
    for (int i = EXP_BYTES - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static void store_expire(struct table_entry *e, int64_t exp)
{
    unsigned char *p = e->key + table_klen(e);

    for (int i = 0; i < EXP_BYTES; i++)
        p[i] = (unsigned char)((uint64_t)exp >> (8 * i));
}

/* The handle of slot e: its chunk's index and its offset there. */
static uint32_t handle_of(const struct table *t, const struct table_entry *e)
{
    size_t lo = 0, hi = t->nchunks, mid;
    uintptr_t a = (uintptr_t)e, c;

    /* The last chunk starting at or below e. */
    while (hi - lo > 1) {
        mid = (lo + hi) / 2;
        if ((uintptr_t)t->chunkv[t->csorted[mid]] <= a)
            lo = mid;
        else
            hi = mid;
    }
    c = (uintptr_t)t->chunkv[t->csorted[lo]];
    if (t->csorted[lo] >= HANDLE_CHUNKS) {
        /* DEBT: 32-bit handles reach 32 GiB of slabs; wider handles (or
         * bigger chunks) would lift it. */
        fprintf(stderr, "libtally: more than 32 GiB of counters with an "
                "expiry are not supported\n");
        abort();
    }
    return (uint32_t)(t->csorted[lo] << HANDLE_SHIFT) |
           (uint32_t)((a - c) >> 3);
}

static struct table_entry *handle_entry(const struct table *t, uint32_t h)
{
    return (struct table_entry *)((unsigned char *)t->chunkv[h >> HANDLE_SHIFT]
                                  + ((size_t)(h & ((1u << HANDLE_SHIFT) - 1))
                                     << 3));
}

/* Drop stale and repeated handles. */
static void expire_compact(struct table *t)
{
    size_t i, n = 0;
    struct table_entry *e;

    for (i = 0; i < t->xn; i++) {
        e = handle_entry(t, t->xs[i]);
        if (!(e->kbits & TE_TTL)) {
            e->kbits &= (uint16_t)~TE_LISTED;
        } else if ((e->kbits & TE_LISTED) && !(e->kbits & TE_MARK)) {
            e->kbits |= TE_MARK;
            t->xs[n++] = t->xs[i];
        }
    }
    for (i = 0; i < n; i++)
        handle_entry(t, t->xs[i])->kbits &= (uint16_t)~TE_MARK;
    t->xn = n;
    t->xcur = 0;
}

static void expire_list(struct table *t, struct table_entry *e)
{
    if (e->kbits & TE_LISTED)
        return;
    if (t->xn > 2 * t->xcount + 64)
        expire_compact(t);
    if (t->xn == t->xcap) {
        t->xcap = t->xcap ? t->xcap + t->xcap / 2 : 64;
        t->xs = mem_realloc(t->xs, t->xcap * sizeof(*t->xs));
    }
    t->xs[t->xn++] = handle_of(t, e);
    e->kbits |= TE_LISTED;
}

/* Move e to a slot with room for an expiry, relinking its chain. */
static struct table_entry *grow_slot(struct table *t, uint64_t h,
                                     struct table_entry *e)
{
    size_t klen = table_klen(e);
    struct table_entry *n = slab_alloc(t, entry_size(klen + EXP_BYTES));

    memcpy(n, e, TABLE_HDR + klen);
    n->kbits = (uint16_t)((e->kbits & ~(TE_LISTED | TE_MARK)) | TE_ROOM);
    chain_replace(t, h, e, n);
    free_slot(t, e);
    return n;
}

void table_set_expire(struct table *t, uint64_t h, struct table_entry **ep,
                      int64_t exp)
{
    struct table_entry *e = *ep;

    ttl_forget(t, e);
    if (exp <= 0)
        return;
    if (!(e->kbits & TE_ROOM))
        *ep = e = grow_slot(t, h, e);
    store_expire(e, exp);
    e->kbits |= TE_TTL;
    t->xcount++;
    t->xsum += (uint64_t)exp;
    if (exp < t->xmin)
        t->xmin = exp;
    expire_list(t, e);
}

/* Look at handle i: remove its entry if expired at now, drop the handle if
 * stale.  Returns 1 if the handle at i was replaced (look at i again), 0 if
 * it stays; *removed counts removals. */
static int expire_one(struct table *t, size_t i, int64_t now,
                      uint64_t *maxlsn, size_t *removed, table_gone_fn gone,
                      void *gone_ctx)
{
    struct table_entry *e = handle_entry(t, t->xs[i]);

    if (e->kbits & TE_TTL) {
        if (table_expire_of(e) > now)
            return 0;
        if (e->lsn > *maxlsn)
            *maxlsn = e->lsn;
        if (gone)
            gone(gone_ctx, e->key, table_klen(e), e->lsn);
        table_unlink(t, table_hash(t->seed, e->key, table_klen(e)), e);
        t->expired++;
        (*removed)++;
    } else {
        e->kbits &= (uint16_t)~TE_LISTED;
    }
    t->xs[i] = t->xs[--t->xn];
    return 1;
}

size_t table_expire_step(struct table *t, int64_t now, size_t budget,
                         uint64_t *maxlsn, table_gone_fn gone, void *gone_ctx)
{
    size_t removed = 0;

    while (budget-- > 0 && t->xn > 0) {
        if (t->xcur >= t->xn)
            t->xcur = 0;
        if (!expire_one(t, t->xcur, now, maxlsn, &removed, gone, gone_ctx))
            t->xcur++;
    }
    if (t->xcount == 0)
        t->xmin = INT64_MAX;
    return removed;
}

void table_expire_all(struct table *t, int64_t now, uint64_t *maxlsn,
                      table_gone_fn gone, void *gone_ctx)
{
    size_t i = 0, removed = 0;
    int64_t min = INT64_MAX, x;

    if (t->xmin > now)
        return;
    while (i < t->xn) {
        if (expire_one(t, i, now, maxlsn, &removed, gone, gone_ctx))
            continue;
        x = table_expire_of(handle_entry(t, t->xs[i]));
        if (x < min)
            min = x;
        i++;
    }
    t->xmin = min;
    t->xcur = 0;
}

size_t table_expire_memory(const struct table *t)
{
    return t->xcap * sizeof(*t->xs) +
           t->chunkcap * (sizeof(*t->chunkv) + sizeof(*t->csorted));
}

/* What table_scan carries from chain to chain. */
struct scan_state {
    const void *prefix;
    size_t plen, shown;
    table_scan_fn fn;
    void *ctx;
    int stop;
};

static int scan_chain(void *arg, void *head)
{
    struct scan_state *ss = arg;
    const struct table_entry *e;

    for (e = head; e; e = e->next) {
        if (table_klen(e) < ss->plen ||
            (ss->plen && memcmp(e->key, ss->prefix, ss->plen) != 0))
            continue;
        if ((ss->stop = ss->fn(ss->ctx, e)) != 0)
            return 1;
        ss->shown++;
    }
    return 0;
}

uint64_t table_scan(const struct table *t, uint64_t cursor, size_t count,
                    const void *prefix, size_t plen, table_scan_fn fn,
                    void *ctx, int *stop)
{
    struct scan_state ss = {prefix, plen, 0, fn, ctx, 0};
    size_t visited = 0, limit;
    uint64_t v = cursor;

    if (count == 0)
        count = 1;
    limit = count > SIZE_MAX / 16 ? SIZE_MAX : 10 * count + 16;
    do {
        v = htab_scan_step(&t->h, v, scan_chain, &ss, &visited);
    } while (!ss.stop && v != 0 && ss.shown < count && visited < limit);
    *stop = ss.stop;
    return ss.stop ? 0 : v;
}

void table_walk_begin(const struct table *t, struct table_walk *w)
{
    w->chunk = 0;
    w->off = 16; /* after the chunk's list link */
    w->nchunks = t->nchunks;
}

/* Where the slots of chunk i end: the bump pointer in the newest chunk;
 * in an older one the chunk's end, but for a tail too small for any slot,
 * which slab_alloc left unused (a bigger tail became a free slot). */
static size_t chunk_end(const struct table *t, size_t i)
{
    if (i == t->nchunks - 1)
        return (size_t)(t->cur - (unsigned char *)t->chunkv[i]);
    return TABLE_CHUNK;
}

int table_walk_step(const struct table *t, struct table_walk *w, size_t count,
                    table_scan_fn fn, void *ctx, int *stop)
{
    const struct table_entry *e;
    size_t end, sz, shown = 0, visited = 0;
    /* Free slots cost a step too (after mass deletes most slots may be
     * free), though less than entries: a sequential read each. */
    size_t limit = count > SIZE_MAX / 16 ? SIZE_MAX : 8 * count + 64;

    *stop = 0;
    for (; w->chunk < w->nchunks; w->chunk++, w->off = 16) {
        end = chunk_end(t, w->chunk);
        for (; w->off + entry_size(0) <= end; w->off += sz) {
            if (shown == count || visited++ == limit)
                return 0;
            e = (const struct table_entry *)((unsigned char *)
                                             t->chunkv[w->chunk] + w->off);
            if (!e->kbits) {
                sz = (size_t)e->value; /* a free slot */
                continue;
            }
            sz = slot_size(e);
            shown++;
            if ((*stop = fn(ctx, e)) != 0)
                return 1;
        }
    }
    return 1;
}

size_t table_memory(const struct table *t)
{
    return t->slab_bytes + htab_memory(&t->h);
}
