/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store.h - where counters live: the one interface the command layer
 * (src/cmd) uses for them.  Implementations: the embedded engine
 * (engine.c, libtally on --dir), PostgreSQL (pg*.c, --store postgresql://),
 * and later Redis (--store redis://).  This layer knows nothing of commands,
 * protocols or sessions: it knows counters, expiries, idempotency ids and
 * what its backend promises about durability.
 *
 * One operation, one call.  A store_req names one atomic operation with all
 * its conditions (SET NX/XX/GET/IFEQ, GETDEL, an increment with a floor or
 * an expiry-if-new, multi-key DEL/MSET, an idempotency id): the store runs
 * it as one indivisible step, which on PostgreSQL or Redis must hold with
 * many tallyd instances on one database.  Composite commands that need
 * several steps (MULTI/EXEC, scripts, RENAME) use a store batch.
 *
 * Asynchronous by contract.  store_exec() either completes at once
 * (STORE_DONE: *res is filled; the engine always does) or returns
 * STORE_PENDING: the store has copied everything of *req it needs (keys,
 * values, the id; the caller's buffers may move on) and will call
 * done(arg, res) exactly once, later, from the event loop, never from inside
 * store_exec().  A caller that cannot wait passes done NULL: the store then
 * completes at once or answers STORE_EUNSUPPORTED.  The caller keeps arg alive until then: a connection that
 * closes with an operation in flight is freed only after its done() ran.
 * The res given to done() and the arrays it points to belong to the store
 * and are valid only during the call.
 *
 * Durability.  res->ticket says when the result may be shown: the reply
 * leaves once store_durable() reaches it.  The engine gives its log ticket
 * (tally.h).  A remote store completes only after its own commit (whatever
 * that store promises: store_info() says it honestly), so its results carry
 * ticket 0 (nothing to wait for).  Every result that shows state carries a
 * ticket, errors too (overflow shows a value, IDREUSED an id).
 *
 * Expiry.  Expiry times are Unix ms.  A relative TTL (STORE_X_REL) is
 * resolved by the store on its own clock (PostgreSQL's, so instances with
 * skewed clocks agree), and a time at or before the store's now deletes
 * the counter (Redis 7).  Results show res->expire_at (0: none) and
 * res->now_ms, the store's clock when the operation ran, so TTL-left is
 * expire_at - now_ms.
 */
#ifndef TALLY_STORE_H
#define TALLY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h" /* TALLY_KEY_MAX, TALLY_ID_MAX, tally_ticket */

struct event_base;
struct store_batch; /* an open batch: the store's own, opaque (see "Batches") */

/* ---- Operations -------------------------------------------------------- */

enum store_opk {
    STORE_GET = 0, /* key -> found, value, expire_at */
    STORE_INCRBY,  /* key, num = delta, expiry -> value, expire_at (a
                      missing counter starts at 0; STORE_F_FLOOR0: a
                      result below 0 becomes 0, memcached's decr) */
    STORE_SET,     /* key, num = value, conditions, expiry; STORE_F_GET:
                      found/value hold the old counter -> n = 1 if set */
    STORE_GETDEL,  /* key -> old found/value; deletes (STORE_F_IFEQ: only
                      if it holds req->cmp, else NOTSET: memcached md C) */
    STORE_DEL,     /* keys[nkeys] -> n = how many existed; founds[i] which
                      (each key once); atomic */
    STORE_EXISTS,  /* keys[nkeys] -> n (repeats count again) */
    STORE_MGET,    /* keys[nkeys] -> values[i], founds[i] */
    STORE_MSET,    /* keys[nkeys], nums[nkeys]; atomic */
    STORE_EXPIRE,  /* key, expiry (STORE_X_NONE: remove it), conditions
                      NX/XX/GT/LT -> n = 1 if changed (or deleted because
                      past); found/value/expire_at show the counter before
                      (GETEX, EXPIRE, PERSIST; TTL is a STORE_GET) */
    STORE_SCAN,    /* cursor, prefix (literal, may be empty), count -> items
                      in keys/klens/values/expires[n_items], next cursor in
                      n (0: done).  The cursor is an opaque integer the
                      caller may pass back any time later */
    STORE_COUNT,   /* -> n = live counters; expires_n, avg_ttl_ms;
                      STORE_F_ONCE: once_ids, once_bytes */
    STORE_FLUSH,   /* delete every counter -> n = how many */
    STORE_SAVE,    /* engine: snapshot now (blocks); others: unsupported */
    STORE_BGSAVE,  /* engine: background snapshot; others: unsupported */
    STORE_OPK_COUNT
};

/* Conditions and modes (STORE_SET, STORE_INCRBY, STORE_EXPIRE). */
#define STORE_F_NX 0x1      /* SET: only if missing; EXPIRE: only if none */
#define STORE_F_XX 0x2      /* SET: only if present; EXPIRE: only if one */
#define STORE_F_GET 0x4     /* SET: report the old counter */
#define STORE_F_IFEQ 0x8    /* SET, GETDEL: only if present and value ==
                               req->cmp (memcached cas, md C) */
#define STORE_F_GT 0x10     /* EXPIRE: only if later than the current */
#define STORE_F_LT 0x20     /* EXPIRE: only if earlier than the current */
#define STORE_F_FLOOR0 0x40 /* INCRBY: clamp a negative result at 0 */
#define STORE_F_MUSTEXIST 0x80 /* INCRBY: NOTFOUND instead of creating
                                  (memcached incr/decr on a miss) */
#define STORE_F_EXPIRES 0x100  /* COUNT: also expires_n and avg_ttl_ms (may
                                  cost a pass over the expiring counters) */
#define STORE_F_ONCE 0x200     /* COUNT (a remote store): also once_ids and
                                  once_bytes, the idempotency records it
                                  holds (a pass over them) */

/* What a change does to the counter's expiry. */
enum store_xmode {
    STORE_X_KEEP = 0, /* leave it (INCRBY's default, SET KEEPTTL) */
    STORE_X_NONE,     /* clear it (a plain SET; EXPIRE: PERSIST) */
    STORE_X_REL,      /* req->expire ms from the store's now */
    STORE_X_ABS,      /* req->expire is Unix ms */
    STORE_X_REL_IFNEW,/* as REL/ABS, but only if this change creates the */
    STORE_X_ABS_IFNEW /* counter (INCRBY: a fixed window) */
};

struct store_req {
    enum store_opk op;
    const char *key;           /* single-key ops */
    size_t klen;
    int64_t num;               /* delta, value */
    int64_t cmp;               /* STORE_F_IFEQ: the value expected */
    unsigned flags;            /* STORE_F_* */
    enum store_xmode xmode;
    int64_t expire;            /* with STORE_X_REL*: ms; _ABS*: Unix ms */
    size_t nkeys;              /* DEL, EXISTS, MGET, MSET */
    const char *const *keys;
    const size_t *klens;
    const int64_t *nums;       /* MSET */
    uint64_t cursor;           /* SCAN */
    const char *prefix;        /* SCAN: only keys starting so */
    size_t plen;
    size_t count;              /* SCAN: about how many */
    /* GET, INCRBY without an id: 1 if the caller reads only rc, found and
     * value, never expire_at or now_ms (RESP's GET and INCR show no
     * expiry), so a remote store may skip reading the expiry.  Redis then
     * runs its native GET or INCRBY rather than a script
     * (docs/redis-store.md, Atomicity); other stores ignore it. */
    int value_only;
    /* Exactly once (INCRBY, SET without conditions, GETDEL, DEL of one
     * key): the first request with id is applied; a repeat with the same
     * fingerprint gets the first one's result with res->replayed = 1; one
     * with another fingerprint STORE_EIDREUSED.  The id is recorded in the
     * same atomic step (and, on a remote store, the same transaction) as
     * the change, so a retry is recognised after any crash. */
    const char *once;          /* NULL: none */
    size_t oncelen;
    uint64_t fingerprint;      /* the caller's hash of the request */
    /* The open batch this operation belongs to (batch_begin), NULL for
     * none.  A store that is sync_only may ignore it: only one of its
     * batches is ever open, and only within one call of the caller. */
    struct store_batch *batch;
    /* On a store that is `ordered`: the caller whose calls must apply in
     * the order made (the command layer's session id), or 0.  Only the
     * command layer sets it (cmd.h "Pipelined look-ahead"). */
    uint64_t order;
};

/* Results and errors (res->rc). */
#define STORE_OK 0
#define STORE_NOTFOUND 1       /* no such counter */
#define STORE_NOTSET 2         /* a condition was not met; nothing changed */
#define STORE_EINVAL (-1)      /* bad request (flag combination, ...) */
#define STORE_EKEYLEN (-2)
#define STORE_EOVERFLOW (-3)   /* would leave int64; nothing changed */
#define STORE_EEXPIRE (-4)     /* expiry out of range; nothing changed */
#define STORE_EIDREUSED (-5)
#define STORE_EINFLIGHT (-6)   /* first request with the id not durable yet */
#define STORE_EIDLEN (-7)
#define STORE_ENOSPC (-8)      /* engine: disk full, nothing changed */
#define STORE_EFAILED (-9)     /* engine: write path stopped (fsync failed) */
#define STORE_ENOTDURABLE (-10)/* engine: value a failed sync may have lost */
#define STORE_EBUSY (-11)      /* a snapshot already running */
#define STORE_EIO (-12)        /* other failure; see detail */
#define STORE_EUNAVAIL (-13)   /* the store cannot be reached now; nothing
                                  was sent, nothing changed: retry (RESP
                                  -TRYAGAIN, HTTP 503, SERVER_ERROR) */
#define STORE_EUNKNOWN (-14)   /* the connection was lost after the change
                                  was sent: it may or may not have been
                                  applied.  Never reported as success; a
                                  retry with an idempotency id resolves it */
#define STORE_EUNSUPPORTED (-15) /* this store cannot do that (SAVE on
                                    PostgreSQL) */
#define STORE_ECONFLICT (-16)  /* the batch met a concurrent change (another
                                  instance's, or another connection's) or
                                  a deadlock: the store rolled it back and
                                  ended it, nothing of it applied.  Only
                                  ever given to done(), after the store's
                                  own jittered backoff: the caller runs
                                  the whole request again with a new
                                  batch */

struct store_res {
    int rc;                    /* STORE_OK, STORE_NOTFOUND, ... */
    tally_ticket ticket;       /* show the result once durable (0: now) */
    int found;                 /* value holds a value */
    int64_t value;
    int64_t expire_at;         /* the counter's expiry shown, 0 for none */
    int64_t now_ms;            /* the store's clock when it ran (the
                                  engine fills it only when expire_at is
                                  set: TTL-left is all it is for) */
    uint64_t n;                /* counts; SCAN's next cursor */
    int replayed;              /* an idempotent repeat: the first result */
    /* What a change did to the expiry, for change events (SET, INCRBY,
     * EXPIRE with n = 1): expire_set is the expiry written with the counter
     * (Unix ms; a kept one for SET's STORE_X_KEEP, 0 when INCRBY kept it or
     * the change cleared it), and expired is 1 if that time was at or
     * before the store's now, so the counter was deleted at once. */
    int64_t expire_set;
    int expired;
    int unchanged;             /* INCRBY with STORE_F_FLOOR0: the floor
                                  left the counter as it was, nothing was
                                  written (no change event) */
    /* MGET, DEL (founds only), SCAN (all): arrays of n_items */
    size_t n_items;
    int64_t *values;
    unsigned char *founds;
    const char *const *keys;
    const size_t *klens;
    const int64_t *expires;
    uint64_t expires_n;        /* STORE_COUNT: counters with an expiry */
    int64_t avg_ttl_ms;
    uint64_t once_ids;         /* STORE_COUNT with STORE_F_ONCE: the
                                  idempotency records kept, and the bytes */
    uint64_t once_bytes;       /* they take in the store */
    const void *answer;        /* once_answer: the recorded answer */
    size_t alen;
    char detail[160];          /* one line saying more, or "" */
};

/* Clear *r before a call: every field but detail's bytes after the first
 * (cheaper than zeroing the whole struct on the engine's hot path). */
static inline void store_res_init(struct store_res *r)
{
    r->rc = STORE_OK;
    r->ticket = 0;
    r->found = 0;
    r->value = 0;
    r->expire_at = 0;
    r->now_ms = 0;
    r->n = 0;
    r->replayed = 0;
    r->expire_set = 0;
    r->expired = 0;
    r->unchanged = 0;
    r->n_items = 0;
    r->values = NULL;
    r->founds = NULL;
    r->keys = NULL;
    r->klens = NULL;
    r->expires = NULL;
    r->expires_n = 0;
    r->avg_ttl_ms = 0;
    r->once_ids = 0;
    r->once_bytes = 0;
    r->answer = NULL;
    r->alen = 0;
    r->detail[0] = 0;
}

/* How long a store waits before it answers STORE_ECONFLICT for a batch of a
 * request that conflicted attempt times before: jittered (rnd is any random
 * number), 1 ms plus up to 2 ms doubling per attempt to 128 ms, so batches
 * that keep meeting spread out.  In microseconds. */
static inline long store_conflict_backoff_us(unsigned attempt, uint64_t rnd)
{
    long cap = 2000L << (attempt < 6 ? attempt : 6);

    return 1000L + (long)(rnd % (uint64_t)cap);
}

#define STORE_DONE 0
#define STORE_PENDING 1

typedef void (*store_done_fn)(void *arg, const struct store_res *res);

/* ---- What every store provides ------------------------------------------ */

struct store;

/* How many facts info() gives at most: callers size their arrays so. */
#define STORE_INFO_MAX 32

struct store_info_kv {
    const char *name;          /* "store", "store_durability", ... */
    char value[128];
};

struct store_ops {
    const char *name;          /* "engine", "postgresql", "redis" */
    /* 1 if exec and batch_commit never return STORE_PENDING (the engine):
     * the command layer then keeps no replay log at all.  0 (a remote
     * store): every result of a request is logged for its re-run
     * (docs/store.md). */
    int sync_only;
    /* 1 if the operations made with one req.order apply in the order they
     * were made, also when the store must send one again (Redis's one
     * connection: a NOSCRIPT or LOADING retry that would apply after a
     * later call of that order already sent answers STORE_EUNAVAIL
     * instead, nothing applied).  The command layer then runs a
     * connection's pipelined requests ahead (cmd.h).  0: no promise (the
     * PostgreSQL store coalesces; a cluster's nodes answer apart). */
    int ordered;
    /* Run one operation: STORE_DONE (*res filled) or STORE_PENDING
     * (done(arg, res) later; see the top of this file).  res->values and
     * res->founds may be the caller's arrays for STORE_DONE (MGET, DEL):
     * the caller sets them before the call, or leaves them NULL. */
    int (*exec)(struct store *st, const struct store_req *req,
                struct store_res *res, store_done_fn done, void *arg);
    /* Optional, only on a sync_only store: a plain STORE_INCRBY (no
     * expiry, no flags, no id; INCR, DECR, INCRBY), the request path's
     * most common operation, without building a whole store_req.  Sets
     * only res->rc (returned too), ticket, value, expire_at, and detail
     * after an error: the caller reads nothing else.  NULL: use exec. */
    int (*incr)(struct store *st, const char *key, size_t klen,
                int64_t delta, struct store_res *res);
    /* Atomic batches (MULTI/EXEC, scripts, RENAME, HTTP /v1/batch): every
     * exec whose req->batch is b, between begin and commit, is one atomic
     * step.  NULL when the store cannot (the command layer then refuses
     * such commands with a clear error).
     *   begin: opens a batch into *out, at once (STORE_OK; no round trip:
     *     a remote store starts its transaction with the first operation)
     *     or an error with *out NULL.  attempt: how many times batches of
     *     this request conflicted before (for the store's backoff).
     *     Several may be open at once, one per request, and stay open
     *     across loop passes while their operations pend (a store that is
     *     sync_only has only one, within one call).
     *   exec inside: STORE_DONE or STORE_PENDING as always.  A remote
     *     store's results may be provisional, checked again at commit.
     *   commit: STORE_DONE or STORE_PENDING as exec; the store frees b
     *     (whatever the outcome).  STORE_ECONFLICT (through done() only):
     *     nothing applied, run the request again; STORE_EUNKNOWN: the
     *     connection was lost after the commit was sent.
     *   abort: undo and free b at once; an exec of b still in flight gets
     *     its done() (with an error) later, as promised.
     * An exec of b that answers STORE_ECONFLICT has ended b too: the caller
     * neither commits nor aborts it. */
    int (*batch_begin)(struct store *st, unsigned attempt,
                       struct store_batch **out);
    int (*batch_commit)(struct store *st, struct store_batch *b,
                        struct store_res *res, store_done_fn done, void *arg);
    void (*batch_abort)(struct store *st, struct store_batch *b);
    /* Optional (NULL: none): start reading req's keys into b's view now,
     * ahead of the exec of req that will follow, so that one round trip
     * reads the keys of many operations.  Nothing else: no result, no
     * change, no error (a failed read fails the exec that needs it, as
     * it would have anyway).  Called only while an exec of b pends, and
     * the store answers that exec once every read of b is in, these too:
     * so b never commits with a read in flight.  The keys are ones the
     * caller expects to name in b (MULTI's queue, a script's KEYS); one it
     * then does not name is still checked at commit on Redis. */
    void (*batch_prefetch)(struct store *st, struct store_batch *b,
                           const struct store_req *req);
    /* Durability: the highest ticket durable now; a remote store returns
     * UINT64_MAX (its results carry 0). */
    tally_ticket (*durable)(const struct store *st);
    /* The store's clock, Unix ms (for front ends that show relative times;
     * a remote store gives its last known offset from the database). */
    int64_t (*now_ms)(const struct store *st);
    /* 1 if the store can serve now; else 0 with why (one line) in why. */
    int (*ready)(const struct store *st, char *why, size_t n);
    /* Facts for INFO and /metrics: at most max pairs into kv, returns how
     * many.  Says honestly what a committed change survives ("fsync",
     * "synchronous_commit=on, no synchronous standby", ...). */
    size_t (*info)(const struct store *st, struct store_info_kv *kv,
                   size_t max);
    void (*close)(struct store *st);
    /* A whole batch under one idempotency id (HTTP /v1/batch with an
     * Idempotency-Key; tally.h "A whole batch under one id"), both NULL
     * when the store cannot (the command layer refuses such batches).
     * req carries once, oncelen and fingerprint, and in key and klen one
     * counter of the batch (its first; NULL: none), which a store may place
     * the record by (a Redis Cluster: in that counter's hash slot, where
     * the batch's commit runs).  Both answer as exec:
     * STORE_DONE with *res filled, or STORE_PENDING and done() later (a
     * remote store; the command layer logs their results like any other).
     * once_answer: res->rc STORE_OK with the recorded answer in
     * res->answer and res->alen (the store's, valid until its next call or
     * during done()), or STORE_NOTFOUND (run the batch), or an error
     * (EIDREUSED, EINFLIGHT, ...).  batch_commit_once: batch_commit that
     * records the id and answer[0, alen) in the batch's atomic step; an id
     * recorded meanwhile (another instance's copy got in first) is
     * STORE_ECONFLICT, so the re-run's once_answer finds it. */
    int (*once_answer)(struct store *st, const struct store_req *req,
                       struct store_res *res, store_done_fn done, void *arg);
    int (*batch_commit_once)(struct store *st, struct store_batch *b,
                             const struct store_req *req,
                             const void *answer, size_t alen,
                             struct store_res *res, store_done_fn done,
                             void *arg);
    /* The engine's own statistics (INFO persistence, /metrics, memcached
     * stats); NULL for a store that is not the engine.  A remote store's
     * numbers come from STORE_COUNT (what the store holds) and from the
     * command layer (what this instance saw: cmd_stats). */
    void (*stats)(const struct store *st, tally_stats *out);
};

/* ---- Calls (store.c): what the layers above use ------------------------- */

/* st->ops->exec. */
int store_exec(struct store *st, const struct store_req *req,
               struct store_res *res, store_done_fn done, void *arg);
/* 1 if the store can run batches (its batch ops are set). */
int store_has_batch(const struct store *st);
tally_ticket store_durable(const struct store *st);
int64_t store_now_ms(const struct store *st);
int store_ready(const struct store *st, char *why, size_t n);
size_t store_info(const struct store *st, struct store_info_kv *kv,
                  size_t max);
/* The engine's statistics into *out: 0, or -1 (zeroed) on another store. */
int store_stats(const struct store *st, tally_stats *out);
/* A short static name for a STORE_* result code ("overflow"). */
const char *store_strerror(int rc);
/* Close the store (NULL is allowed). */
void store_close(struct store *st);

struct store {
    const struct store_ops *ops;
    tally *db;                 /* the engine store's handle, else NULL */
};

#endif /* TALLY_STORE_H */
