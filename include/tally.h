/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally.h - durable named counters, as an embeddable C library (libtally).
 *
 * A tally database is a directory holding an append-only, checksummed log and
 * at most one snapshot (docs/format.md).  Every counter is a binary-safe key of
 * at most TALLY_KEY_MAX bytes holding a signed 64-bit value.  Changes are
 * applied in memory at once and made durable by a background sync thread that
 * commits many changes with one fsync (group commit); docs/durability.md says
 * exactly what each sync policy promises.
 *
 * Two ways to use it:
 *   - Blocking, for embedded programs: pass a NULL ticket to any change and
 *     the call returns only once the change is durable under the policy.
 *   - Asynchronous, for an event loop: pass a ticket pointer; the call returns
 *     at once and *ticket names the point of the log that must be durable
 *     before the result may be shown to anyone.  Watch tally_notify_fd() and
 *     compare tickets with tally_durable().  Reads return tickets too, so a
 *     server can hold a read's reply until the value it shows cannot be taken
 *     back by a crash; a value whose last change is already durable gets a
 *     ticket that is already passed.
 *
 * Threading: a handle is used by one thread at a time (the engine keeps no
 * global state, so separate handles are independent).  tally_durable(),
 * tally_wait(), tally_notify_fd() and tally_health() may be called from any
 * thread.
 *
 * Return values: TALLY_OK (0) or TALLY_NOTFOUND (1, a result, not an error) or
 * a negative TALLY_E* code; tally_strerror() turns a code into a message and
 * tally_errmsg() gives the detail of the last failure on a handle.
 */
#ifndef TALLY_H
#define TALLY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "tally_version.h" /* TALLY_VERSION "x.y.z", from CMakeLists.txt */
#define TALLY_KEY_MAX 1024 /* longest key, in bytes */
#define TALLY_ERRMAX 512   /* size of the error buffers taken below */
#define TALLY_ID_MAX 256   /* longest idempotency id, in bytes */
#define TALLY_ONCE_TTL_DEFAULT (24ULL * 3600 * 1000) /* ms an id is kept */
#define TALLY_ANSWER_MAX 65536 /* longest answer a batch's id keeps, bytes */

/* ---- Results and errors ---------------------------------------------- */

#define TALLY_OK 0        /* done */
#define TALLY_NOTFOUND 1  /* no such counter (a result, not an error) */
#define TALLY_TORN 2      /* tally_check: sound but for a torn log tail that
                             opening would cut; no acknowledged change lost */

#define TALLY_EINVAL (-1)     /* bad argument (NULL key with length, ...) */
#define TALLY_EKEYLEN (-2)    /* key longer than TALLY_KEY_MAX bytes */
#define TALLY_EOVERFLOW (-3)  /* result would leave int64; nothing changed */
#define TALLY_ELOCKED (-4)    /* another process holds the data directory */
#define TALLY_ECORRUPT (-5)   /* a file failed verification; see errmsg */
#define TALLY_EIO (-6)        /* an I/O call failed; see errmsg */
#define TALLY_ENOSPC (-7)     /* disk full or file size limit: change refused,
                                 nothing changed, reads go on */
#define TALLY_EFAILED (-8)    /* the write path stopped after a fatal error
                                 (an fsync failed); reads of durable values go
                                 on, every change is refused until reopen */
#define TALLY_ENOTDURABLE (-9) /* read of a value whose last change was never
                                  made durable (only after TALLY_EFAILED) */
#define TALLY_EVERSION (-10)  /* files written by an unknown format version */
#define TALLY_EBUSY (-11)     /* a snapshot is already being written */
#define TALLY_ENOTEMPTY (-12) /* restore target already holds counters */
#define TALLY_EIDREUSED (-13) /* idempotency id already used for a request
                                 with another fingerprint; nothing changed */
#define TALLY_EINFLIGHT (-14) /* the first request with this id is not
                                 durable yet (async callers only): retry
                                 later; nothing changed */
#define TALLY_EIDLEN (-15)    /* idempotency id empty or longer than
                                 TALLY_ID_MAX bytes */

/* A static, human-readable message for a code above. */
const char *tally_strerror(int code);

/* ---- Opening and closing --------------------------------------------- */

typedef struct tally tally; /* an open database; opaque */

/* A ticket is a position in the log.  A result carrying ticket t may be shown
 * once tally_durable(db) >= t. */
typedef uint64_t tally_ticket;

typedef enum tally_sync {
    TALLY_SYNC_ALWAYS = 0, /* done means fsync'd (the default) */
    TALLY_SYNC_EVERYSEC,   /* done means written to the OS; fsync each second */
    TALLY_SYNC_NO          /* done means written to the OS; the OS syncs */
} tally_sync;

/* Log levels passed to tally_options.log. */
#define TALLY_LOG_ERROR 0
#define TALLY_LOG_WARN 1
#define TALLY_LOG_INFO 2

typedef struct tally_options {
    tally_sync sync;   /* durability policy; default TALLY_SYNC_ALWAYS */
    int create;        /* create the directory if missing; default 1 */
    uint64_t snapshot_min_log; /* log bytes since the last snapshot that start
                                  an automatic one (it also waits for the log
                                  to outgrow the last snapshot); default
                                  64 MiB; UINT64_MAX turns them off */
    /* Called for warnings (a torn log tail cut off, ...) and errors, from the
     * thread that noticed them; may be NULL.  msg is one line, no newline. */
    void (*log)(void *log_ctx, int level, const char *msg);
    void *log_ctx;
    uint64_t once_ttl_ms; /* how long an idempotency id is remembered after
                             its first use, in wall-clock ms (it holds across
                             restarts); default TALLY_ONCE_TTL_DEFAULT (24 h);
                             0 also means the default */
    unsigned spin_us;     /* under TALLY_SYNC_ALWAYS, how long (us, at most)
                             the sync thread polls for the next batch after
                             finishing one before it sleeps; waking a
                             sleeping thread can cost more than an fdatasync
                             on a virtual machine.  It never spins when no
                             batch came in.  Default 0: never */
    /* The wall clock that counter expiry is measured on, in Unix ms; NULL
     * (the default) reads CLOCK_REALTIME.  For tests: a clock the caller
     * moves.  Called from the loop thread only.  See "Expiry" below. */
    int64_t (*clock_ms)(void *clock_ctx);
    void *clock_ctx;
    /* Told when a counter is removed because its expiry passed (by a call
     * that found it expired, or by tally_step's active expiry), before it is
     * gone: its key and the ticket its absence rests on (the record that
     * set the expiry).  Loop thread only; it must not call into the handle.
     * NULL (the default): not told.  For change events (keyspace
     * notifications' "expired"). */
    void (*expired)(void *expired_ctx, const void *key, size_t klen,
                    tally_ticket ticket);
    void *expired_ctx;
} tally_options;

/* Fill *opts with the defaults above. */
void tally_options_init(tally_options *opts);

/* Open (and recover) the database in dir, locking it against other processes.
 * opts may be NULL for the defaults.  On success *dbp is the handle and
 * TALLY_OK is returned.  On failure *dbp is NULL, the code is returned and
 * err (if not NULL, TALLY_ERRMAX bytes) holds a message naming the file and
 * byte offset at fault. */
int tally_open(const char *dir, const tally_options *opts, tally **dbp,
               char *err);

/* Sync everything still pending (under every policy), stop the sync thread,
 * release the lock and free the handle.  Returns TALLY_OK, or the error that
 * stopped the final sync (the handle is freed either way). */
int tally_close(tally *db);

/* ---- Counters --------------------------------------------------------
 *
 * For every change: ticket NULL blocks until the change is durable (and
 * returns TALLY_EFAILED if the write path failed meanwhile); a non-NULL
 * ticket returns at once with *ticket set.  On any error nothing changed
 * and the outputs are untouched, with one exception: an error that reveals
 * state sets *ticket as a read of that state would (TALLY_EOVERFLOW: the
 * ticket of the value the sum overflowed; TALLY_EIDREUSED: that of the
 * id's first request), because a crash before it is durable could take
 * that state back and make the error a lie.  Show such an error only once
 * *ticket is durable; with a NULL ticket the call waits for it (and returns
 * TALLY_ENOTDURABLE if the write path fails first). */

/* Add delta (negative to subtract) to key, creating it at 0 first if missing.
 * *value (may be NULL) gets the new value. */
int tally_incr(tally *db, const void *key, size_t klen, int64_t delta,
               int64_t *value, tally_ticket *ticket);

/* Set key to value, creating it if missing. */
int tally_set(tally *db, const void *key, size_t klen, int64_t value,
              tally_ticket *ticket);

/* Delete key.  Returns TALLY_NOTFOUND if it did not exist; *ticket then says
 * when that absence is durable. */
int tally_del(tally *db, const void *key, size_t klen, tally_ticket *ticket);

/* Set n counters as one atomic change: after a crash either all of them or
 * none hold their new values.  keys[i] has klens[i] bytes. */
int tally_mset(tally *db, size_t n, const void *const *keys,
               const size_t *klens, const int64_t *values,
               tally_ticket *ticket);

/* Delete n counters as one atomic change: after a crash either all of the
 * ones that existed are gone or none is.  *deleted (may be NULL) gets how
 * many existed (a key given twice counts once).  If none existed, nothing
 * is written and *ticket says when those absences are durable, as for
 * tally_del.  On an error nothing changed. */
int tally_mdel(tally *db, size_t n, const void *const *keys,
               const size_t *klens, uint64_t *deleted, tally_ticket *ticket);

/* Read key into *value.  Returns TALLY_OK or TALLY_NOTFOUND; *ticket (or the
 * blocking wait, when NULL) covers the value or the absence. */
int tally_get(tally *db, const void *key, size_t klen, int64_t *value,
              tally_ticket *ticket);

/* Number of live counters.  Exact: counters whose expiry has passed are
 * not counted (they are purged first, which costs a pass over the counters
 * with an expiry when one has passed since the last pass). */
uint64_t tally_count(tally *db);

/* Called once per counter by tally_scan; return nonzero to stop early (the
 * scan then returns that value and *next is not meaningful). */
typedef int (*tally_scan_fn)(void *ctx, const void *key, size_t klen,
                             int64_t value);

/* Resumable iteration over the counters whose key starts with prefix (plen
 * may be 0).  Start with cursor 0; *next gets the cursor for the next call, 0
 * when the scan is complete.  A counter present for the whole scan is seen at
 * least once, even if the table grows meanwhile; one may be seen twice.  Each
 * call visits a bounded part of the table and returns at most about `count`
 * counters (never splitting a hash chain, so a call may return fewer, even
 * none, with a nonzero cursor, or a few more when count is tiny).  *ticket
 * covers every value and absence shown. */
int tally_scan(tally *db, uint64_t cursor, const void *prefix, size_t plen,
               size_t count, tally_scan_fn fn, void *ctx, uint64_t *next,
               tally_ticket *ticket);

/* ---- Expiry -------------------------------------------------------------
 *
 * A counter may carry an expiry: an absolute wall-clock time in Unix
 * milliseconds, 1..TALLY_EXPIRE_MAX, or 0 for none.  From the millisecond
 * it names on (now >= expire_ms, now from opts.clock_ms) the counter is gone
 * for every call: reads answer TALLY_NOTFOUND, scans skip it, tally_count
 * leaves it out, and a change treats it as missing (tally_incr starts it
 * again at 0, with no expiry).  The expiry is written to the log and the
 * snapshot as that absolute time, so a restart neither extends nor shortens
 * it, and recovery never brings back a counter whose time has passed.
 *
 * Which changes keep it: tally_incr and tally_incr_once keep a counter's
 * expiry (Redis's INCR); tally_set, tally_set_once and tally_mset clear it
 * (Redis's SET and MSET); tally_del removes it with the counter.
 *
 * A change that names an expiry at or before now deletes the counter (if it
 * existed) instead of storing it: Redis's rule for a TTL of zero, negative
 * or in the past.  It still returns TALLY_OK.
 *
 * Expired counters are also removed actively by tally_step (a bounded
 * sample of the counters that carry an expiry, as Redis's active expiry
 * cycle does).  Removing an expired counter writes nothing and syncs
 * nothing: the absolute time that made it expire is already in the log.
 * The absence it leaves has the ticket of the change that set that time,
 * so a read that shows a counter as expired waits, like any read, until the
 * change it depends on is durable.
 *
 * Clocks: expiry follows the wall clock.  A clock stepped forward expires
 * counters early; stepped back, late (and a counter already removed stays
 * removed only until the next restart replays its record), as in Redis.
 *
 * Memory: a counter without an expiry costs nothing extra; one with an
 * expiry costs about 6 bytes in its entry (often none, in the entry's
 * padding) plus a 4-byte slot in the list that active expiry samples. */

#define TALLY_EXPIRE_NONE 0 /* no expiry */
#define TALLY_EXPIRE_MAX (((int64_t)1 << 48) - 1) /* latest expiry: Unix ms
                                                     in the year 10889 */

/* What tally_incrx does with the counter's expiry. */
#define TALLY_TTL_KEEP 0  /* keep it (what tally_incr does) */
#define TALLY_TTL_SET 1   /* set it to expire_ms (0 clears it) */
#define TALLY_TTL_IFNEW 2 /* set it to expire_ms only if this increment
                             creates the counter, else keep it: a fixed-window
                             rate limiter in one atomic change */

/* The handle's clock: Unix ms (opts.clock_ms, or CLOCK_REALTIME). */
int64_t tally_now_ms(const tally *db);

/* tally_set with an expiry (0: none).  TALLY_EINVAL for expire_ms < 0 or
 * above TALLY_EXPIRE_MAX.  An expiry at or before now deletes key. */
int tally_setx(tally *db, const void *key, size_t klen, int64_t value,
               int64_t expire_ms, tally_ticket *ticket);

/* tally_incr with control of the expiry (ttl_mode TALLY_TTL_*; expire_ms
 * as for tally_setx, ignored for TALLY_TTL_KEEP).  *value (may be NULL)
 * gets the new value, *expire_out (may be NULL) the counter's expiry after
 * the change (0: none).  If that expiry is at or before now the counter is
 * deleted; *value still gets the value it would have had. */
int tally_incrx(tally *db, const void *key, size_t klen, int64_t delta,
                int ttl_mode, int64_t expire_ms, int64_t *value,
                int64_t *expire_out, tally_ticket *ticket);

/* Set key's expiry to expire_ms (0 removes it), keeping its value.
 * Returns TALLY_NOTFOUND if key does not exist (*ticket then covers the
 * absence).  An expiry at or before now deletes key (TALLY_OK).  Setting
 * the expiry it already has writes nothing. */
int tally_expire(tally *db, const void *key, size_t klen, int64_t expire_ms,
                 tally_ticket *ticket);

/* tally_get that also reports the expiry in *expire_ms (may be NULL; 0 for
 * none). */
int tally_getx(tally *db, const void *key, size_t klen, int64_t *value,
               int64_t *expire_ms, tally_ticket *ticket);

/* tally_scan whose callback also gets each counter's expiry (0: none). */
typedef int (*tally_scanx_fn)(void *ctx, const void *key, size_t klen,
                              int64_t value, int64_t expire_ms);
int tally_scanx(tally *db, uint64_t cursor, const void *prefix, size_t plen,
                size_t count, tally_scanx_fn fn, void *ctx, uint64_t *next,
                tally_ticket *ticket);

/* Number of live counters that carry an expiry (exact, as tally_count);
 * *avg_ttl_ms (may be NULL) gets their mean remaining time in ms, 0 when
 * there are none. */
uint64_t tally_expires(tally *db, int64_t *avg_ttl_ms);

/* ---- Atomic batches ----------------------------------------------------
 *
 * Several changes as one atomic, durable unit (a Redis MULTI/EXEC or
 * script, an HTTP batch).  Between tally_batch_begin() and
 * tally_batch_commit() every change on the handle (tally_incr*,
 * tally_set*, tally_del, tally_mset, tally_mdel, tally_expire) is applied
 * in memory at once, so reads on the handle see the batch's own earlier
 * writes, but is written to the log only by the commit, as ONE record:
 * after a crash either every change of the batch survives or none does.
 *
 * Inside a batch a change's *ticket is a ticket already issued (it says
 * nothing about the batch) and a NULL ticket does not block: the commit's
 * ticket covers every change of the batch and every read made in it.  A
 * change that fails inside a batch (overflow, bad argument) changed
 * nothing and the batch goes on: the caller decides whether to commit.
 * Not allowed inside a batch: the once-forms (TALLY_EINVAL), snapshots
 * (TALLY_EBUSY); tally_step does nothing until the commit.  A batch holds
 * at most one record's worth of changes (1 MiB, some 30,000 increments of
 * short keys); the change that would exceed it fails with TALLY_EINVAL.
 * One batch at a time per handle; tally_close aborts an open one. */

/* Open a batch.  TALLY_EINVAL if one is open already. */
int tally_batch_begin(tally *db);

/* Write the batch's changes as one record and close the batch.  *ticket
 * (NULL: block until durable) gets its ticket, 0 if the batch changed
 * nothing.  On failure (TALLY_ENOSPC, TALLY_EFAILED, ...) every change of
 * the batch is undone in memory and nothing was written; the batch is
 * closed either way. */
int tally_batch_commit(tally *db, tally_ticket *ticket);

/* Undo every change of the open batch (nothing was written) and close it;
 * nothing happens if none is open. */
void tally_batch_abort(tally *db);

/* 1 while a batch is open on the handle. */
int tally_batch_is_open(const tally *db);

/* ---- Exactly-once changes (idempotency ids) ----------------------------
 *
 * A client that timed out cannot know whether its change happened; retrying
 * a plain tally_incr could count twice.  The once-forms below take a
 * client-chosen id (1..TALLY_ID_MAX bytes, binary-safe) and a fingerprint of
 * the whole request (operation, key, argument: the caller hashes them, e.g.
 * with tally_once_hash; the command layer's cmd_once_fingerprint is one).
 *
 *   - Unknown id: the change is applied and (id, fingerprint, outcome,
 *     creation time) is recorded in the same atomic log record, so after a
 *     crash either both the change and the id survive or neither does.
 *     *replayed = 0.
 *   - Known id, same fingerprint: nothing is applied; *replayed = 1 and the
 *     outputs and return code are those of the first request.  With a
 *     non-NULL ticket, *ticket is the first request's ticket, or
 *     TALLY_EINFLIGHT is returned if that is not durable yet; with a NULL
 *     ticket the call waits for it.  If the write path failed before it
 *     became durable: TALLY_ENOTDURABLE.
 *   - Known id, other fingerprint: TALLY_EIDREUSED, nothing applied.
 *
 * Errors (overflow, disk full, ...) are not recorded: a failed request
 * leaves its id unused, so its retry is a first attempt.  An id is
 * remembered for at least opts.once_ttl_ms after its first use, counted on
 * the wall clock from the time recorded with it, across restarts; after
 * that it is forgotten (and the same id is new again).  */

typedef struct tally_once {
    const void *id;       /* the client's idempotency id */
    size_t idlen;         /* 1..TALLY_ID_MAX */
    uint64_t fingerprint; /* hash of the request the id was sent with */
} tally_once;

/* tally_incr, once.  *value (may be NULL) gets the value after the first
 * request's increment. */
int tally_incr_once(tally *db, const tally_once *once, const void *key,
                    size_t klen, int64_t delta, int64_t *value, int *replayed,
                    tally_ticket *ticket);

/* tally_set, once. */
int tally_set_once(tally *db, const tally_once *once, const void *key,
                   size_t klen, int64_t value, int *replayed,
                   tally_ticket *ticket);

/* tally_del, once.  Returns TALLY_OK (the counter existed; *old, may be
 * NULL, gets the value it held) or TALLY_NOTFOUND, as the first request
 * found it; a not-found first request is recorded too, so its replay stays
 * TALLY_NOTFOUND even if the counter was created since. */
int tally_del_once(tally *db, const tally_once *once, const void *key,
                   size_t klen, int64_t *old, int *replayed,
                   tally_ticket *ticket);

/* tally_incrx, once.  The fingerprint should cover ttl_mode and the
 * expiry as the client sent it (a relative TTL, not the absolute time
 * computed from it, so that a retry matches). */
int tally_incrx_once(tally *db, const tally_once *once, const void *key,
                     size_t klen, int64_t delta, int ttl_mode,
                     int64_t expire_ms, int64_t *value, int *replayed,
                     tally_ticket *ticket);

/* tally_setx, once. */
int tally_setx_once(tally *db, const tally_once *once, const void *key,
                    size_t klen, int64_t value, int64_t expire_ms,
                    int *replayed, tally_ticket *ticket);

/* ---- A whole batch under one id ----
 *
 * An atomic batch (above) may be committed under an idempotency id with the
 * answer the caller made of it (opaque bytes: an HTTP batch's JSON body),
 * so that a retry of the whole batch gets that answer back instead of
 * running it again.  The id, the fingerprint (the caller's hash of the
 * batch's operations) and the answer are written INSIDE the batch's one log
 * record, so after a crash the changes and the id are both there or
 * neither is.  Such an id lives in the same table as the once-forms' ids,
 * expires the same way (opts.once_ttl_ms) and is kept by snapshots; it
 * never matches a single change's id (TALLY_EIDREUSED either way).
 *
 * The caller's order: tally_once_answer first; on TALLY_NOTFOUND,
 * tally_batch_begin, the changes, then tally_batch_commit_once.  Answers
 * are 1..TALLY_ANSWER_MAX bytes (memory: the table keeps each one until its
 * id expires, counted in tally_stats.once_bytes). */

/* Look up a batch's id.  TALLY_NOTFOUND: unknown (or expired), run the
 * batch.  TALLY_OK: the batch ran before with this fingerprint; *answer
 * (borrowed, valid until the next call on the handle) and *alen get the
 * answer it was committed with, and *ticket the batch's ticket (NULL:
 * waits for it).  As for the once-forms: TALLY_EINFLIGHT (ticket given)
 * while that ticket is not durable, TALLY_ENOTDURABLE if the write path
 * failed before it was, TALLY_EIDREUSED (with *ticket) if the id was used
 * with another fingerprint or by a single change, TALLY_EIDLEN.  Counts as
 * a replay in tally_stats.once_replays when it answers TALLY_OK. */
int tally_once_answer(tally *db, const tally_once *once, const void **answer,
                      size_t *alen, tally_ticket *ticket);

/* tally_batch_commit, recording once's id, its fingerprint, the time and
 * answer[0, alen) in the batch's record (written even if the batch changed
 * nothing: the id is the change).  The id must be new: a known one is
 * TALLY_EIDREUSED (with *ticket as a read of it).  TALLY_EINVAL for no open
 * batch, or an answer empty or over TALLY_ANSWER_MAX bytes, or a batch and
 * answer over the 1 MiB record; TALLY_EIDLEN.  On any failure the batch is
 * undone and closed, and the id stays unknown (a failed batch records
 * nothing, as a failed once-change). */
int tally_batch_commit_once(tally *db, const tally_once *once,
                            const void *answer, size_t alen,
                            tally_ticket *ticket);

/* Fold n bytes into a fingerprint h: 64-bit FNV-1a (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3), unseeded and fixed forever, so
 * fingerprints recorded on disk stay comparable across restarts and
 * versions.  Start with h = TALLY_ONCE_HASH_INIT. */
#define TALLY_ONCE_HASH_INIT 0xcbf29ce484222325ULL
uint64_t tally_once_hash(uint64_t h, const void *p, size_t n);

/* Number of idempotency ids remembered now. */
uint64_t tally_once_count(const tally *db);

/* ---- Durability -------------------------------------------------------- */

/* The highest ticket that is durable under the policy.  Thread-safe. */
tally_ticket tally_durable(const tally *db);

/* The ticket of the newest change (what tally_wait(db, tally_head(db)) waits
 * for to have everything so far durable). */
tally_ticket tally_head(const tally *db);

/* Block until ticket t is durable.  Returns TALLY_OK or TALLY_EFAILED.
 * Thread-safe. */
int tally_wait(tally *db, tally_ticket t);

/* A file descriptor (an eventfd) that becomes readable when tally_durable()
 * moves or the write path fails.  The caller drains it with read(2) of 8
 * bytes, or watches it edge-triggered (EPOLLET: every signal is a new edge,
 * and its counter cannot fill in practice, 2^64 - 2 signals); it is owned
 * by the handle. */
int tally_notify_fd(const tally *db);

/* A recent average of the log's fdatasync latency in microseconds (0 before
 * the first one): how long a loop that holds replies may expect to wait for
 * tally_durable() to move, e.g. to poll instead of sleep.  Any thread. */
unsigned tally_sync_estimate_us(const tally *db);

/* How many microseconds from now tally_durable() is expected to move for
 * what has been handed to the sync thread (by tally_uncork, or by a change
 * made uncorked): when that hand-over came, plus the recent average time
 * from a hand-over to durable (wake-up, write and fdatasync, measured on
 * this handle).  0 when it is due or overdue; UINT_MAX when nothing is on
 * its way or nothing was measured yet.  For a loop deciding whether to
 * poll for durable (worth it only for a few microseconds) or to sleep on
 * tally_notify_fd().  Any thread. */
unsigned tally_sync_eta_us(const tally *db);

/* Batching (for an event loop).  Between tally_cork() and tally_uncork()
 * changes are applied and get their tickets as always, but do not wake the
 * sync thread one by one, and a sync thread that finishes a batch leaves
 * them alone: everything queued in one pass of a server's loop then shares
 * one write and, under TALLY_SYNC_ALWAYS, one fsync.  Tickets promise the
 * same.  A cork never makes anyone wait: a blocking call (NULL ticket) or
 * tally_wait() while corked has its change written (and synced) at once;
 * snapshots, rotation and close go ahead.  Corks do not nest. */
void tally_cork(tally *db);

/* End the batch.  Under TALLY_SYNC_ALWAYS, wakes the sync thread once if
 * anything is queued and returns 0 (the notify fd fires when it is synced).
 * Under EVERYSEC and NO, where a change is durable once written to the OS,
 * writes the queued batch to the log itself with one write(2) if the sync
 * thread is not busy, and returns 1: tally_durable() has moved, and the
 * notify fd is not signalled for that move (the caller knows).  Returns 0
 * when it left the batch to the sync thread, which signals as usual.  A
 * failed write stops the write path exactly as one on the sync thread
 * would (health TALLY_EFAILED, notify fd signalled) and returns
 * TALLY_EFAILED. */
int tally_uncork(tally *db);

/* End the batch as tally_uncork() does, and under TALLY_SYNC_ALWAYS too
 * write and fdatasync it on the calling thread when the sync thread is not
 * busy, returning 1 once it is durable (the notify fd is not signalled for
 * that move).  For a caller with nobody else to serve meanwhile, such as a
 * server with one client connected, which waits for its reply: handing the
 * batch over costs two thread wake-ups a sync, more CPU than the
 * fdatasync's own on a fast disk.  The call blocks for the fdatasync, so
 * while it runs the caller answers nothing, not even a read of a durable
 * value.  Returns 0 when it left the batch to the sync thread (it was
 * busy, or a rotation is due) and TALLY_EFAILED after a failed write or
 * fdatasync, which stops the write path as one on the sync thread
 * would. */
int tally_uncork_inline(tally *db);

/* TALLY_OK while changes are accepted, else the code that stopped them
 * (TALLY_EFAILED after a failed fsync, TALLY_ENOSPC while the disk is full).
 * Thread-safe. */
int tally_health(const tally *db);

/* Detail of the last failure on this handle ("fsync of log-... failed: ...").
 * Valid until the next call on the handle. */
const char *tally_errmsg(const tally *db);

/* ---- Snapshots --------------------------------------------------------- */

/* Write a snapshot now and remove the log files it makes obsolete; blocks
 * until the snapshot is durable. */
int tally_snapshot(tally *db);

/* Start a snapshot in the background (TALLY_EBUSY if one is running).  It is
 * written a slice at a time by tally_step() and by every change, so it never
 * stalls the caller.  Automatic snapshots start the same way. */
int tally_snapshot_begin(tally *db);

/* Do a bounded slice of background work (about `budget` counters of a
 * snapshot in progress, then finishing it; active expiry of about `budget`
 * counters that carry an expiry, removing those whose time has passed; as
 * many expired idempotency ids; about budget / 8 buckets of a resize of the
 * counter or id table, which every change also advances, so the tables
 * grow and shrink without a pause).  It stops early, leaving the rest of
 * the budget, once about 0.5 ms has passed since it began, so that one call
 * never holds the caller's loop much longer whatever the budget.  Returns
 * 1 while more work is pending (also after stopping early), 0 when idle,
 * or a negative code if the snapshot failed (it is then abandoned; the log
 * stays authoritative). */
int tally_step(tally *db, unsigned budget);

/* ---- Statistics ------------------------------------------------------- */

#define TALLY_HIST_BUCKETS 32 /* bucket i counts values v with
                                 2^(i-1) < v <= 2^i; bucket 0 counts v <= 1 */

typedef struct tally_stats {
    uint64_t counters;          /* counters in memory (may include some
                                   whose expiry passed since the last purge;
                                   tally_count is exact) */
    tally_ticket head;          /* newest change */
    tally_ticket durable;       /* durable up to here */
    uint64_t log_bytes;         /* bytes in the log files */
    uint64_t snapshot_bytes;    /* size of the current snapshot, 0 if none */
    int64_t last_snapshot_unix; /* when it was written, 0 if none */
    int snapshot_running;       /* a background snapshot is in progress */
    uint64_t snapshots;         /* snapshots written since open */
    uint64_t syncs;             /* fsync/fdatasync calls on the log */
    uint64_t inline_syncs;      /* of those, the ones tally_uncork_inline
                                   ran on its caller's thread */
    uint64_t changes;           /* changes applied since open */
    uint64_t recovery_ns;       /* time open() spent recovering */
    uint64_t recovered_records; /* log records replayed at open */
    uint64_t torn_bytes;        /* bytes cut off a torn log tail at open */
    int health;                 /* as tally_health() */
    tally_sync sync;            /* the policy in force */
    uint64_t sync_us_hist[TALLY_HIST_BUCKETS];   /* fsync latency, us */
    uint64_t batch_hist[TALLY_HIST_BUCKETS];     /* changes per sync */
    uint64_t sync_us_sum, batch_sum;             /* sums, for averages */
    uint64_t once_ids;          /* idempotency ids remembered */
    uint64_t once_bytes;        /* heap they take (entries and buckets) */
    uint64_t once_replays;      /* once-requests answered as replays since
                                   open */
    uint64_t expires;           /* counters that carry an expiry (may include
                                   some whose time passed since the last
                                   purge; tally_expires is exact) */
    uint64_t expired;           /* counters removed by expiry since open
                                   (active, lazy, or at open) */
    uint64_t expire_bytes;      /* heap the expiry list takes */
} tally_stats;

/* Fill *st with a consistent-enough picture (histograms are read without a
 * lock and may be a sync behind). */
void tally_stats_get(const tally *db, tally_stats *st);

/* ---- Offline tools ---------------------------------------------------- */

/* Verify every file in dir without changing anything (the directory must not
 * be in use).  Returns one of three verdicts, or an error:
 *   TALLY_OK       sound: tally_open changes nothing;
 *   TALLY_TORN     sound but for the last write, which a crash interrupted:
 *                  tally_open cuts it (it held no acknowledged change);
 *   TALLY_ECORRUPT acknowledged data is damaged: tally_open refuses;
 *   TALLY_EVERSION, TALLY_ELOCKED, TALLY_EIO, ...: could not verify.
 * report (TALLY_ERRMAX bytes, may be NULL) gets a summary (live counters,
 * files, what open would cut, counters whose expiry has passed but that are
 * still in the files), or the file and byte offset of the damage, why it is
 * not a torn write, and what tally_repair would drop. */
int tally_check(const char *dir, char *report);

/* For an operator who accepts losing data: cut the log at the first bad
 * record, moving any later log files aside (renamed *.corrupt), or rebuild a
 * damaged snapshot from its valid records.  Afterwards tally_open succeeds.
 * report (TALLY_ERRMAX bytes) says what was cut. */
int tally_repair(const char *dir, char *report);

#ifdef __cplusplus
}
#endif
#endif /* TALLY_H */
