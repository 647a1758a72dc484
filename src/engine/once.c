/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * once.c - exactly-once changes (include/tally.h, "Exactly-once changes"):
 * the once-forms of incr, set and del, and the table of idempotency ids
 * they consult (once.h).
 *
 * A first request is applied and recorded in one BATCH record holding its
 * PUT or DEL and an IDEM sub-record (id, fingerprint, creation time,
 * outcome; format in codec.c), so a crash keeps both or neither.  A repeat
 * is answered from the table.  Recovery rebuilds the table through
 * once_apply, from the snapshot's standalone IDEM records and the log's,
 * skipping ids already past the retention; snapshots (snap.c) write the
 * live ids only.  So the ids on disk and in memory are those of the last
 * retention window, whatever the history.
 *
 * Expiry.  Ids are appended to a FIFO list as they are created; their
 * creation times (wall clock) rise along it, so the expired ones are at its
 * head.  Every once-request pops a few, tally_step pops a budget's worth,
 * and a lookup that hits an expired id pops up to it, so an id is never
 * answered after its retention and the table never holds more than about
 * one window of ids.  If the wall clock steps back, a newer id may sit
 * behind an older one for a while: expiry then waits for it, keeping ids
 * longer than asked, never shorter.
 *
 * Memory: 60 bytes per id plus the id, rounded up to 8, and 8-16 bytes of
 * bucket array (the load stays between 1/8 and 1; the array shrinks when
 * ids expire).  Ids leave in the order they came, so entries are not
 * malloc'ed one by one: they are appended to ONCE_BLOCK-byte blocks and a
 * block is freed when expiry pops its last entry (a queue of blocks, as
 * an id and its answer never outlive an older one).  An add is a pointer
 * bump, a pop frees one block in hundreds of ids, and no malloc header
 * sits beside each id.  Each entry keeps its hash, so a resize never
 * hashes an id again, and a new id is hashed once for its lookup and its
 * insert.  The array grows and shrinks incrementally, as the counter
 * table's (htab.c): a few buckets per add and pop and per tally_step(), so
 * no request pays for rehashing millions of ids.
 *
 * Batches.  An id can also stand for a whole atomic batch
 * (tally_batch_commit_once): its IDEMA sub-record goes into the batch's
 * one BATCH record, with the caller's answer (opaque bytes, at most
 * TALLY_ANSWER_MAX), which the entry keeps after the id, so that a retry
 * gets that answer back (tally_once_answer).  Such ids live in the same
 * table, expire and are snapshotted the same way; a single change's id and
 * a batch's never match each other, whatever their fingerprints.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "mem.h"

/* Expired ids popped per once-request: more than one, so expiry outruns
 * creation; few, so one request never pays for many. */
#define ONCE_EXPIRE_STEP 8
#define ONCE_MIN_BUCKETS 64
#define ONCE_HDR offsetof(struct once_entry, id)
/* Data bytes of a block: hundreds of ids, under malloc's mmap threshold.
 * An entry bigger than that (a batch's id with a long answer) gets a block
 * of its own size. */
#define ONCE_BLOCK ((size_t)64 * 1024 - sizeof(struct once_block))

int64_t once_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define FNV_PRIME 0x100000001b3ULL

/* FNV-1a, as fingerprints on disk were made: the result must never change.
 * Four bytes a turn only saves the loop's own instructions. */
uint64_t tally_once_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        h = (h ^ b[i]) * FNV_PRIME;
        h = (h ^ b[i + 1]) * FNV_PRIME;
        h = (h ^ b[i + 2]) * FNV_PRIME;
        h = (h ^ b[i + 3]) * FNV_PRIME;
    }
    for (; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

/* ---- The table ---------------------------------------------------------- */

void once_init(struct once_table *o, uint64_t seed)
{
    memset(o, 0, sizeof(*o));
    o->seed = seed;
}

void once_free(struct once_table *o)
{
    struct once_block *b = o->bhead, *next;

    for (; b; b = next) {
        next = b->next;
        free(b);
    }
    htab_free(&o->h);
    once_init(o, o->seed);
}

uint32_t once_hash(const struct once_table *o, const void *id, size_t idlen)
{
    return (uint32_t)table_hash(o->seed, id, idlen);
}

static uint64_t entry_hash(const void *entry, uint64_t seed)
{
    (void)seed;
    return ((const struct once_entry *)entry)->hash;
}

/* Bytes an entry takes in its block (8-byte aligned, as the next one must
 * be). */
static size_t entry_size(size_t idlen, size_t alen)
{
    return (ONCE_HDR + idlen + alen + 7) & ~(size_t)7;
}

/* Room for an entry of n bytes at the newest block's end: a new block when
 * it is full. */
static struct once_entry *block_take(struct once_table *o, size_t n)
{
    struct once_block *b = o->btail;

    if (!b || b->size - b->used < n) {
        size_t size = n > ONCE_BLOCK ? n : ONCE_BLOCK;

        b = mem_alloc(sizeof(*b) + size);
        b->next = NULL;
        b->size = size;
        b->start = b->used = 0;
        /* What the older block leaves unused is counted from now on: it
         * stays taken until that block is freed. */
        if (o->btail) {
            o->bytes += o->btail->size - o->btail->used;
            o->btail->next = b;
        } else {
            o->bhead = b;
        }
        o->btail = b;
        o->bytes += sizeof(*b);
    }
    b->used += n;
    o->bytes += n;
    return (struct once_entry *)(b->data + b->used - n);
}

/* The oldest entry, of n bytes, was popped: free its block once it is the
 * block's last. */
static void block_pop(struct once_table *o, size_t n)
{
    struct once_block *b = o->bhead;

    b->start += n;
    o->bytes -= n;
    if (b->start < b->used)
        return;
    if (b->next) {
        /* Its unused end was counted when the next block began. */
        o->bytes -= sizeof(*b) + (b->size - b->used);
        o->bhead = b->next;
        free(b);
    } else {
        /* The newest and now empty: start it over. */
        b->start = b->used = 0;
    }
}

/* Buckets moved per add and pop while a resize runs. */
#define ONCE_REHASH_STEP 2

int once_rehash_step(struct once_table *o, size_t budget)
{
    return htab_step(&o->h, budget, entry_hash, o->seed);
}

struct once_entry *once_find_h(const struct once_table *o, const void *id,
                               size_t idlen, uint32_t hash)
{
    struct once_entry *e;

    if (!o->h.b)
        return NULL;
    e = *htab_head(&o->h, hash);
    for (; e; e = e->hnext)
        if (e->hash == hash && e->idlen == idlen &&
            memcmp(e->id, id, idlen) == 0)
            return e;
    return NULL;
}

struct once_entry *once_find(const struct once_table *o, const void *id,
                             size_t idlen)
{
    return once_find_h(o, id, idlen, once_hash(o, id, idlen));
}

struct once_entry *once_add_h(struct once_table *o,
                              const struct codec_idem *idem, uint64_t ticket,
                              uint32_t hash)
{
    size_t alen = idem->answer ? idem->alen : 0;
    struct once_entry *e = block_take(o, entry_size(idem->idlen, alen));
    void **head;

    if (!o->h.b)
        htab_init(&o->h, ONCE_MIN_BUCKETS);
    e->fnext = NULL;
    e->fp = idem->fp;
    e->created_ms = idem->created_ms;
    e->value = idem->value;
    e->ticket = ticket;
    e->hash = hash;
    e->idlen = (uint16_t)idem->idlen;
    e->code = (uint8_t)idem->code;
    e->alen = (uint32_t)alen;
    memcpy(e->id, idem->id, idem->idlen);
    if (alen)
        memcpy(e->id + idem->idlen, idem->answer, alen);
    head = htab_head(&o->h, hash);
    e->hnext = *head;
    *head = e;
    if (o->tail)
        o->tail->fnext = e;
    else
        o->head = e;
    o->tail = e;
    o->count++;
    htab_maintain(&o->h, o->count, ONCE_MIN_BUCKETS, ONCE_REHASH_STEP,
                  entry_hash, o->seed);
    return e;
}

struct once_entry *once_add(struct once_table *o,
                            const struct codec_idem *idem, uint64_t ticket)
{
    return once_add_h(o, idem, ticket, once_hash(o, idem->id, idem->idlen));
}

/* Remove the oldest id. */
static void pop_head(struct once_table *o)
{
    struct once_entry *e = o->head, *p;
    void **head = htab_head(&o->h, e->hash);

    if (*head == e) {
        *head = e->hnext;
    } else {
        for (p = *head; p->hnext != e; p = p->hnext)
            ;
        p->hnext = e->hnext;
    }
    o->head = e->fnext;
    if (!o->head)
        o->tail = NULL;
    /* Ids go in FIFO order, so the walk's last id goes after every id
     * before it: the walk is then done. */
    if (e == o->walk_last)
        o->walk = o->walk_last = NULL;
    else if (e == o->walk)
        o->walk = e->fnext;
    o->count--;
    block_pop(o, entry_size(e->idlen, e->alen));
    /* Gives the bucket array back as a burst of ids expires. */
    htab_maintain(&o->h, o->count, ONCE_MIN_BUCKETS, ONCE_REHASH_STEP,
                  entry_hash, o->seed);
}

int once_is_expired(int64_t created_ms, int64_t now_ms, uint64_t ttl_ms)
{
    return now_ms >= created_ms &&
           (uint64_t)now_ms - (uint64_t)created_ms >= ttl_ms;
}

int once_expire(struct once_table *o, int64_t now_ms, uint64_t ttl_ms,
                unsigned max)
{
    unsigned n = 0;

    while (o->head && once_is_expired(o->head->created_ms, now_ms, ttl_ms)) {
        if (n++ == max)
            return 1;
        pop_head(o);
    }
    if (o->count == 0 && o->h.b) {
        htab_free(&o->h);
        free(o->bhead); /* the one block left, empty */
        o->bhead = o->btail = NULL;
        o->bytes = 0;
    }
    return 0;
}

void once_walk_begin(struct once_table *o)
{
    o->walk = o->head;
    o->walk_last = o->tail;
}

const struct once_entry *once_walk_next(struct once_table *o)
{
    struct once_entry *e = o->walk;

    if (!e)
        return NULL;
    if (e == o->walk_last)
        o->walk = o->walk_last = NULL;
    else
        o->walk = e->fnext;
    return e;
}

uint64_t once_memory(const struct once_table *o)
{
    return o->bytes + htab_memory(&o->h);
}

/* ---- Recovery ------------------------------------------------------------ */

uint64_t once_ttl(const tally *db)
{
    return db->opts.once_ttl_ms ? db->opts.once_ttl_ms
                                : TALLY_ONCE_TTL_DEFAULT;
}

void once_apply(tally *db, const struct codec_idem *idem, uint64_t lsn)
{
    /* A fuzzy snapshot may hold an id the log after S holds again: the
     * first one read is the same record, so it is kept. */
    uint32_t h;

    if (once_is_expired(idem->created_ms, once_now_ms(), once_ttl(db)))
        return;
    h = once_hash(&db->once, idem->id, idem->idlen);
    if (!once_find_h(&db->once, idem->id, idem->idlen, h))
        once_add_h(&db->once, idem, lsn, h);
}

uint64_t tally_once_count(const tally *db)
{
    return db->once.count;
}

/* ---- The once-forms of the changes -------------------------------------- */

static int once_check(tally *db, const tally_once *once)
{
    if (!once || (!once->id && once->idlen))
        return db_err(db, TALLY_EINVAL, "no idempotency id");
    if (once->idlen == 0 || once->idlen > TALLY_ID_MAX)
        return db_err(db, TALLY_EIDLEN, "idempotency id of %zu bytes (1 to "
                      "%d allowed)", once->idlen, TALLY_ID_MAX);
    return 0;
}

/* The entry for once's id if it is known and not expired, else NULL;
 * expires a few old ids on the way.  *hash gets the id's once_hash, for
 * the add of a new one. */
static struct once_entry *lookup(tally *db, const tally_once *once,
                                 int64_t now, uint32_t *hash)
{
    struct once_table *o = &db->once;
    uint64_t ttl = once_ttl(db);
    uint32_t h = once_hash(o, once->id, once->idlen);
    struct once_entry *e;

    *hash = h;
    once_expire(o, now, ttl, ONCE_EXPIRE_STEP);
    e = once_find_h(o, once->id, once->idlen, h);
    if (e && once_is_expired(e->created_ms, now, ttl)) {
        /* Everything before it is older: pop up to it (each id is popped
         * once, so this is paid for by the requests that made them). */
        once_expire(o, now, ttl, UINT32_MAX);
        e = once_find_h(o, once->id, once->idlen, h);
    }
    return e;
}

/* One once-request: the id and where its answer goes. */
struct call {
    const tally_once *once;
    int64_t *value;        /* the caller's outputs, each may be NULL */
    int *replayed;
    tally_ticket *ticket;
    int64_t now;           /* wall clock when it arrived */
    int batch;             /* a batch's id (it keeps an answer) */
    uint32_t hash;         /* the id's once_hash (set by lookup) */
};

/* TALLY_EIDREUSED for a request whose id e already holds.  The error shows
 * the id is known, which is durable only with the first request: *ticket
 * gets that one's ticket. */
static int reused(tally *db, const struct once_entry *e, struct call *c)
{
    int rc = db_read_finish(db, e->ticket, c->ticket);

    return rc ? rc : db_err(db, TALLY_EIDREUSED, "idempotency id already "
                            "used for a different request; nothing was "
                            "applied");
}

/* Answer a repeat of a known id from its entry (see tally.h).  Outputs
 * are untouched on an error, but for TALLY_EIDREUSED's ticket.  A batch's
 * id never answers a single change, nor the other way round. */
static int replay(tally *db, const struct once_entry *e, struct call *c)
{
    uint64_t t = e->ticket;
    int64_t v = e->value;
    int code = e->code;

    if (e->fp != c->once->fingerprint || (e->alen != 0) != (c->batch != 0))
        return reused(db, e, c);
    if (t > tally_durable(db)) {
        if (tally_health(db) == TALLY_EFAILED)
            return db_err(db, TALLY_ENOTDURABLE, "the first request with "
                          "this idempotency id was never made durable");
        if (c->ticket)
            return db_err(db, TALLY_EINFLIGHT, "the first request with "
                          "this idempotency id is not durable yet; retry");
        if (tally_wait(db, t) != 0)
            return db_err(db, TALLY_ENOTDURABLE, "the first request with "
                          "this idempotency id was never made durable");
    }
    db->once.replays++;
    if (c->value && code == TALLY_OK)
        *c->value = v;
    if (c->replayed)
        *c->replayed = 1;
    if (c->ticket)
        *c->ticket = t;
    return code;
}

/* What every once-form does first: check the arguments and look the id
 * up, answering a known one.  Returns the answer with *done = 1, or 0 with
 * *done = 0 for a new id (c->now set). */
static int once_start(tally *db, struct call *c, const void *key,
                      size_t klen, int *done)
{
    struct once_entry *e;
    int rc = db_key_check(db, key, klen);

    *done = 1;
    if (rc == 0 && db->batch.open)
        rc = db_err(db, TALLY_EINVAL,
                    "idempotency ids cannot be used inside a batch");
    if (rc == 0)
        rc = once_check(db, c->once);
    if (rc)
        return rc;
    c->now = once_now_ms();
    if ((e = lookup(db, c->once, c->now, &c->hash)) != NULL)
        return replay(db, e, c);
    *done = 0;
    return 0;
}

/* Apply op (a PUT or DEL, or NULL for none) and record the id with the
 * outcome (code, outvalue) in one BATCH record; then finish as any change
 * and fill the outputs.  Returns code or an error (nothing changed unless
 * the error came from the blocking wait, as for every change). */
static int record(tally *db, struct call *c, const struct codec_op *op,
                  int32_t code, int64_t outvalue)
{
    unsigned char rec[CODEC_BATCH_HDR + 4 + 19 + TALLY_KEY_MAX + 4 + 31 +
                      TALLY_ID_MAX];
    struct codec_idem idem = {c->once->id, c->once->idlen,
                              c->once->fingerprint, c->now, code, outvalue, NULL, 0};
    size_t pos = CODEC_BATCH_HDR;
    uint32_t n = 0;
    uint64_t t;
    int rc;

    if (op) {
        pos += codec_batch_add(rec + pos, op);
        n++;
    }
    pos += codec_batch_add_idem(rec + pos, &idem);
    codec_batch_close(rec, pos, n + 1);
    if ((rc = db_change_start(db, pos)) != 0)
        return rc;
    t = db_change_emit(db, rec, pos, 1);
    if (op)
        db_apply(&db->table, &db->last_del, op, t);
    once_add_h(&db->once, &idem, t, c->hash);
    if ((rc = db_change_finish(db, t, c->ticket)) != 0)
        return rc;
    if (c->value && code == TALLY_OK)
        *c->value = outvalue;
    if (c->replayed)
        *c->replayed = 0;
    return code;
}

/* The counters' clock for call c: the wall clock once_start read for the
 * id, unless the handle has a clock of its own (tally_options.clock_ms),
 * so a request reads the clock once. */
static int64_t counters_now(tally *db, const struct call *c)
{
    return db->opts.clock_ms ? tally_now_ms(db) : c->now;
}

/* The live counter key names, or NULL. */
static struct table_entry *counter(tally *db, const struct call *c,
                                   const void *key, size_t klen)
{
    return db_live(db, key, klen, counters_now(db, c));
}

/* Record a PUT of op, or, if its expiry has passed, a DEL of a counter e
 * that exists (or no change at all): the once-forms' version of what
 * tally_setx and tally_incrx do. */
static int record_put(tally *db, struct call *c, struct codec_op *op,
                      const struct table_entry *e)
{
    if (op->expire && op->expire <= counters_now(db, c)) {
        int64_t v = op->value;
        op->type = CODEC_DEL;
        return record(db, c, e ? op : NULL, TALLY_OK, v);
    }
    return record(db, c, op, TALLY_OK, op->value);
}

static int ttl_args(tally *db, int ttl_mode, int64_t expire_ms)
{
    if (ttl_mode != TALLY_TTL_KEEP && ttl_mode != TALLY_TTL_SET &&
        ttl_mode != TALLY_TTL_IFNEW)
        return db_err(db, TALLY_EINVAL, "unknown ttl mode %d", ttl_mode);
    if (ttl_mode != TALLY_TTL_KEEP &&
        (expire_ms < 0 || expire_ms > TALLY_EXPIRE_MAX))
        return db_err(db, TALLY_EINVAL, "expiry %lld out of range",
                      (long long)expire_ms);
    return 0;
}

int tally_incrx_once(tally *db, const tally_once *once, const void *key,
                     size_t klen, int64_t delta, int ttl_mode,
                     int64_t expire_ms, int64_t *value, int *replayed,
                     tally_ticket *ticket)
{
    struct call c = {once, value, replayed, ticket, 0, 0, 0};
    struct codec_op op = {CODEC_PUT, key, klen, 0, 0};
    struct table_entry *e;
    int done, rc = ttl_args(db, ttl_mode, expire_ms);

    if (rc)
        return rc;
    rc = once_start(db, &c, key, klen, &done);
    if (done)
        return rc;
    e = counter(db, &c, key, klen);
    if (__builtin_add_overflow(e ? e->value : 0, delta, &op.value))
        return db_overflow(db, e, delta, ticket);
    op.expire = e ? table_expire_of(e) : 0;
    if (ttl_mode == TALLY_TTL_SET || (ttl_mode == TALLY_TTL_IFNEW && !e))
        op.expire = expire_ms;
    return record_put(db, &c, &op, e);
}

int tally_incr_once(tally *db, const tally_once *once, const void *key,
                    size_t klen, int64_t delta, int64_t *value, int *replayed,
                    tally_ticket *ticket)
{
    return tally_incrx_once(db, once, key, klen, delta, TALLY_TTL_KEEP, 0,
                            value, replayed, ticket);
}

int tally_setx_once(tally *db, const tally_once *once, const void *key,
                    size_t klen, int64_t value, int64_t expire_ms,
                    int *replayed, tally_ticket *ticket)
{
    struct call c = {once, NULL, replayed, ticket, 0, 0, 0};
    struct codec_op op = {CODEC_PUT, key, klen, value, expire_ms};
    int done, rc = ttl_args(db, TALLY_TTL_SET, expire_ms);

    if (rc)
        return rc;
    rc = once_start(db, &c, key, klen, &done);
    return done ? rc : record_put(db, &c, &op, counter(db, &c, key, klen));
}

int tally_set_once(tally *db, const tally_once *once, const void *key,
                   size_t klen, int64_t value, int *replayed,
                   tally_ticket *ticket)
{
    return tally_setx_once(db, once, key, klen, value, 0, replayed, ticket);
}

int tally_del_once(tally *db, const tally_once *once, const void *key,
                   size_t klen, int64_t *old, int *replayed,
                   tally_ticket *ticket)
{
    struct call c = {once, old, replayed, ticket, 0, 0, 0};
    struct codec_op op = {CODEC_DEL, key, klen, 0, 0};
    struct table_entry *e;
    int done, rc = once_start(db, &c, key, klen, &done);

    if (done)
        return rc;
    /* A miss is recorded too: its replay must stay a miss even if the
     * counter is created in between. */
    if ((e = counter(db, &c, key, klen)) == NULL)
        return record(db, &c, NULL, TALLY_NOTFOUND, 0);
    return record(db, &c, &op, TALLY_OK, e->value);
}

/* ---- Batches recorded under an id --------------------------------------- */

int tally_once_answer(tally *db, const tally_once *once, const void **answer,
                      size_t *alen, tally_ticket *ticket)
{
    struct call c = {once, NULL, NULL, ticket, 0, 1, 0};
    struct once_entry *e;
    int rc = once_check(db, once);

    if (rc)
        return rc;
    if ((e = lookup(db, once, once_now_ms(), &c.hash)) == NULL)
        return TALLY_NOTFOUND;
    if ((rc = replay(db, e, &c)) != TALLY_OK)
        return rc;
    if (answer)
        *answer = e->id + e->idlen;
    if (alen)
        *alen = e->alen;
    return TALLY_OK;
}

int tally_batch_commit_once(tally *db, const tally_once *once,
                            const void *answer, size_t alen,
                            tally_ticket *ticket)
{
    struct call c = {once, NULL, NULL, ticket, 0, 1, 0};
    struct codec_idem idem;
    struct once_entry *e;
    int rc = 0;

    if (!db->batch.open)
        return db_err(db, TALLY_EINVAL, "no batch is open");
    rc = once_check(db, once);
    if (rc == 0 && (!answer || alen == 0 || alen > TALLY_ANSWER_MAX))
        rc = db_err(db, TALLY_EINVAL, "an answer of %zu bytes (1 to %d "
                    "allowed)", alen, TALLY_ANSWER_MAX);
    c.now = once_now_ms();
    /* The id may be recorded once: a caller that did not look it up first
     * (tally_once_answer) learns it is taken. */
    if (rc == 0 && (e = lookup(db, once, c.now, &c.hash)) != NULL)
        rc = reused(db, e, &c);
    if (rc) {
        tally_batch_abort(db);
        return rc;
    }
    idem = (struct codec_idem){once->id,   once->idlen, once->fingerprint,
                               c.now,      TALLY_OK,    0,
                               answer,     alen};
    return db_batch_commit(db, &idem, ticket);
}
