/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * engine.h - the handle (struct tally) and what the engine's modules share.
 * db.c owns the public counter API and the apply function; once.c the
 * exactly-once changes and the table of idempotency ids; log.c the log
 * writer and the sync thread; snap.c snapshots; recover.c opening a data
 * directory (lock, recovery) and the offline check and repair; handle.c
 * ties them together (open, close, stats).
 *
 * Threads and locks.  One caller thread at a time (the "loop thread") owns
 * the table and every field marked [loop].  The sync thread owns the fields
 * marked [sync].  Fields marked [mu] are guarded by db->mu, which is held
 * only to append to or swap the pending buffer and to hand over work, never
 * across I/O; it is the only lock.  Fields marked [atomic] are read from any
 * thread with __atomic builtins.  Fields marked [token] belong to whichever
 * thread holds the write token (db->writing, taken and given back under mu):
 * the sync thread for each of its passes, or the loop thread while
 * tally_uncork writes a batch itself (EVERYSEC and NO; under ALWAYS too
 * for tally_uncork_inline, which also syncs it).  Taking the token
 * under mu orders one holder's writes before the next holder's reads.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "once.h"
#include "table.h"
#include "tally.h"

#define LOG_CHUNK (2u << 20) /* log space is reserved this much at a time */
/* A snapshot job's and a presync's thread run this much nicer than the
 * process, at most at Linux's lowest priority (log.c job_yield_cpu). */
#define LOG_JOB_NICE 10
#define LOG_JOB_NICE_MAX 19
#define LOG_NO_FRAME ((size_t)-1) /* db->frame_at: no frame open */

/* A snapshot being written (snap.c).  The loop thread fills the temp file;
 * a thread of its own finishes it (job: log.c log_start_job), as it must
 * first wait for the log to be synced, then fsync and rename, all of which
 * would hold up every commit if the sync thread did it. */
struct snap_job {
    uint64_t s;              /* LSN S: the log file it began with */
    uint64_t end_lsn;        /* head when the walk ended */
    int fd;                  /* snap-S.tmp */
    uint64_t bytes;          /* its size */
    int result;              /* [mu] set by the job's thread */
    int done;                /* [mu] */
    char msg[TALLY_ERRMAX];  /* [mu] why it failed */
};

struct snap_state {
    int running;             /* [loop] 1 while walking, 2 while finishing */
    struct snap_job *job;    /* [loop] the snapshot in progress */
    struct table_walk walk;  /* [loop] where the walk of the counters is */
    int ids;                 /* [loop] counters done, writing the ids */
    uint64_t puts;           /* [loop] PUT and IDEM records written so far */
    int64_t now;             /* [loop] the clock for this slice (expired
                                counters are left out); 0: keep them */
    unsigned char *buf;      /* [loop] records not yet written */
    size_t len, cap;
    uint64_t auto_after;     /* [loop] no automatic snapshot before head
                                reaches this (backoff after a failure) */
};

/* An open atomic batch (batch.c), [loop]. */
struct batch_state {
    int open;
    unsigned char *buf;      /* the BATCH record: header room, sub-records */
    size_t len, cap;         /* len includes CODEC_BATCH_HDR */
    uint32_t n;              /* sub-records so far */
    struct batch_undo *undo; /* what each op replaced, in order */
    size_t nundo, undo_cap;
    unsigned char *keys;     /* the undo entries' key bytes */
    size_t keys_len, keys_cap;
    uint64_t last_del;       /* db->last_del when the batch began */
    uint64_t stamp;          /* provisional LSN of the batch's changes */
};

struct tally {
    tally_options opts;
    char *dir;
    int dirfd;                 /* the data directory, for *at() calls */
    int lockfd;                /* LOCK, flock()ed */
    int efd;                   /* eventfd signalled when durable moves */

    struct table table;        /* [loop] the counters */
    struct once_table once;    /* [loop] the idempotency ids */
    uint64_t last_del;         /* [loop] LSN of the latest delete */
    uint64_t head;             /* [atomic, written by loop] newest ticket */
    uint64_t durable;          /* [atomic, written by sync] durable to here */
    int health;                /* [atomic] TALLY_OK, _EFAILED or _ENOSPC */
    char errmsg[TALLY_ERRMAX]; /* [loop] detail of the last failure */
    char failmsg[TALLY_ERRMAX]; /* written once, by the thread that claimed
                                   fail_claim, before health becomes
                                   TALLY_EFAILED */
    int fail_claim;            /* [atomic] a write-path failure is being
                                  recorded (log.c sync_fail) */
    unsigned char *scratch;    /* [loop] encoding buffer for batches */
    size_t scratch_cap;

    /* Log space reservation, [loop]. */
    int res_fd;                /* newest log file (maybe still log-S.tmp) */
    uint64_t res_start;        /* LSN of its first record byte */
    uint64_t res_end;          /* space is reserved up to this LSN */

    /* Hand-over to the sync thread, [mu]. */
    pthread_mutex_t mu;
    pthread_cond_t done_cv;    /* tally_wait and snapshot waiters */
    unsigned char *pend;       /* frames not yet taken by the sync thread */
    size_t pend_len, pend_cap;
    size_t frame_at;           /* offset in pend of the frame that appends
                                  go into, or LOG_NO_FRAME (pend empty, or
                                  a rotation starts a new file) */
    uint64_t pend_changes;
    int rot;                   /* a rotation is pending: */
    size_t rot_off;            /*   records from pend[rot_off] go to ... */
    int rot_fd;                /*   ... this new file (log-<rot_lsn>.tmp) */
    uint64_t rot_lsn;
    uint64_t rot_asked;        /* rotations queued (log_rotate) */
    uint64_t rotated;          /* rotations done: the sync thread switched
                                  log_fd and synced the file before (a
                                  snapshot job waits for its own) */
    int stop;                  /* close: write, sync and exit */
    int sync_idle;             /* the sync thread sleeps on kicks: 0 no,
                                  1 for work, 2 also for the everysec tick */
    int corked;                /* tally_cork: appends do not wake the sync
                                  thread, which leaves pend alone */
    unsigned waiters;          /* threads in tally_wait: a cork never makes
                                  them wait */
    int writing;               /* the write token is taken (see above) */
    uint32_t kicks;            /* [atomic, written under mu] bumped by every
                                  hand-over, so a spinning sync thread sees
                                  work without taking mu; the futex word the
                                  sleeping one waits on (log.c wait_work) */
    uint64_t kick_ns;          /* [atomic, written under mu] when the first
                                  hand-over since the sync thread last took
                                  a batch came (0: none yet); the models of
                                  log.c's "Waiting" are measured from it */
    pthread_t thread;
    int thread_started;
    pthread_t job_thread;      /* [loop] finishing snap.job (log_start_job)
                                  or syncing the log before a rotation
                                  (log_presync) */
    int job_started;           /* [loop] job_thread is to be joined */
    int presync;               /* [atomic] LOG_PRESYNC_*: log_presync's */

    /* The write position, [token]; written is also [mu] when the loop
     * thread moves it, as the sleeping sync thread reads it under mu. */
    int log_fd;                /* the log file being written */
    uint64_t log_start;        /* its first LSN */
    uint64_t written;          /* LSN written to the OS */
    /* [token] too; the sleeping sync thread reads them under mu only under
     * EVERYSEC, where no other thread moves them. */
    uint64_t synced;           /* LSN covered by fdatasync */
    uint64_t last_sync_ns;
    /* The sync thread's side, [sync]. */
    unsigned char *wbuf;       /* the batch being written */
    size_t wbuf_cap;
    uint64_t closed_at;        /* the log ended with a CLOSE frame at open,
                                  just before this LSN (else UINT64_MAX): a
                                  close that wrote nothing adds none */

    /* Statistics.  [atomic] ones are updated by the sync thread. */
    uint64_t changes;          /* [loop] */
    uint64_t syncs;            /* [atomic] */
    uint64_t inline_syncs;     /* [loop] tally_uncork_inline's, of syncs */
    uint64_t sync_us_hist[TALLY_HIST_BUCKETS]; /* [atomic] */
    uint64_t batch_hist[TALLY_HIST_BUCKETS];   /* [atomic] */
    uint64_t sync_us_sum, batch_sum;           /* [atomic] */
    uint64_t sync_ewma_us;     /* [atomic] recent fdatasync latency (1/8) */
    uint64_t hold_ewma_ns;     /* [atomic] recent time from a hand-over to
                                  durable covering it (1/8) */
    unsigned gap_hits;         /* [sync] of recent gaps between publishing
                                  durable and the next hand-over, the share
                                  (of 256, 1/8 weight) short enough to spin */
    uint64_t pub_ns;           /* [sync] when durable was last published */
    uint64_t flight_ns;        /* [atomic, written by sync] kick_ns of the
                                  batch being written and synced, or 0 */
    uint64_t recovery_ns, recovered_records, torn_bytes; /* [loop] */
    uint64_t log_base;         /* [loop] first LSN of the oldest log file */
    uint64_t log_files;        /* [loop] log files on disk */
    uint64_t snap_lsn;         /* [loop] S of the current snapshot */
    uint64_t snap_bytes;       /* [loop] its size, 0 if none */
    int64_t snap_time;         /* [loop] its mtime */
    uint64_t snapshots;        /* [loop] written since open */

    struct snap_state snap;    /* [loop] */
    struct batch_state batch;  /* [loop] */
};

/* ---- db.c ---- */

/* Apply one PUT or DEL to the table, stamping the entry with lsn (the
 * ticket of its record).  Live changes and recovery both go through here.
 * Returns 1 if the key existed before, else 0. */
int db_apply(struct table *t, uint64_t *last_del, const struct codec_op *op,
             uint64_t lsn);
/* What a change's caller found for its key just before (db_live_at): the
 * key's hash and its live entry (NULL: none), so that applying the change
 * does not look the key up again.  Valid until the table changes. */
struct db_found {
    uint64_t h;
    struct table_entry *e;
};
/* db_apply of a PUT whose key f describes. */
int db_apply_found(struct table *t, const struct codec_op *op, uint64_t lsn,
                   const struct db_found *f);
/* The live entry for key, or NULL: an entry expired at now is removed
 * first (lazy expiry, nothing written; last_del rises to its lsn). */
struct table_entry *db_live(tally *db, const void *key, size_t klen,
                            int64_t now);
/* db_live, also filling *f for db_change_ops. */
struct table_entry *db_live_at(tally *db, const void *key, size_t klen,
                               int64_t now, struct db_found *f);
/* Remove every counter expired now (after recovery, before a count). */
void db_expire_all(tally *db);
/* Apply every op of a decoded record (PUT, DEL, IDEM or BATCH) to db's
 * counters and ids. */
void db_apply_rec(tally *db, const struct codec_rec *r, uint64_t lsn);
/* Refuse a NULL key with a length or one over TALLY_KEY_MAX; 0 or a code
 * with errmsg set. */
int db_key_check(tally *db, const void *key, size_t klen);
/* The change path, in order: start (health, log space for reclen bytes:
 * 0 or a code, nothing changed), emit (queue the encoded record; returns
 * its ticket), finish (a snapshot slice, then *ticket = t or, for a NULL
 * ticket, wait until t is durable). */
int db_change_start(tally *db, size_t reclen);
uint64_t db_change_emit(tally *db, const unsigned char *rec, size_t len,
                        unsigned changes);
int db_change_finish(tally *db, uint64_t t, tally_ticket *ticket);
/* A result (or an error) that shows the log up to lsn: *ticket = lsn, or for
 * a NULL ticket wait until lsn is durable.  0, or TALLY_ENOTDURABLE (errmsg
 * set) if the write path failed first.  Errors that reveal state go through
 * it too (TALLY_EOVERFLOW, TALLY_EIDREUSED: include/tally.h). */
int db_read_finish(tally *db, uint64_t lsn, tally_ticket *ticket);
/* TALLY_EOVERFLOW for e's value (e may be NULL: 0) + delta, with the
 * ticket of e's value, through db_read_finish. */
int db_overflow(tally *db, const struct table_entry *e, int64_t delta,
                tally_ticket *ticket);
/* Set the handle's error detail; returns code. */
int db_err(tally *db, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send one line to opts.log, if set. */
void db_log(const tally_options *opts, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- batch.c ---- */

/* Apply n PUT/DEL ops as one change: outside a batch one record (a BATCH
 * when n > 1) is emitted and *t is its ticket; inside one they join the
 * open batch (*t is then provisional, see batch.c).  *existed (may be NULL)
 * gets how many of the ops found their key.  found (may be NULL): for one
 * PUT, what db_live_at found for its key.  Returns 0, or a code with
 * nothing changed.  The caller finishes with db_change_finish. */
int db_change_ops(tally *db, const struct codec_op *ops, size_t n,
                  const struct db_found *found, uint64_t *t,
                  uint64_t *existed);
/* tally_batch_commit, with idem (NULL: none) written as the batch
 * record's last sub-record and added to the id table with the record's
 * ticket (tally_batch_commit_once). */
int db_batch_commit(tally *db, const struct codec_idem *idem,
                    tally_ticket *ticket);
/* Abort an open batch and free the batch buffers (close). */
void db_batch_free(tally *db);

/* ---- once.c ---- */

/* Recovery's apply for an IDEM op found at lsn (a log record's ticket, or
 * S for a snapshot): remember it unless expired or already known. */
void once_apply(tally *db, const struct codec_idem *idem, uint64_t lsn);
/* The retention in force (opts.once_ttl_ms, 0 meaning the default). */
uint64_t once_ttl(const tally *db);

/* ---- log.c ---- */

/* [loop] Make sure len more bytes fit in the newest log file.  Returns 0,
 * TALLY_ENOSPC (health then says so) or TALLY_EIO; nothing changed. */
int log_reserve(tally *db, size_t len);
/* [loop] Queue an encoded record of `changes` changes; returns its ticket.
 * The record goes into the open frame of pend, or a new frame starts
 * (CODEC_FRAME_HDR bytes of LSN, which log_reserve counted). */
uint64_t log_append(tally *db, const void *rec, size_t len, unsigned changes);
/* [loop] Create log-<head>.tmp and queue a switch to it: records appended
 * from now on go there.  Returns 0 or a code with errmsg set. */
int log_rotate(tally *db);
/* Start and stop the sync thread (stop writes and syncs what is pending). */
int log_start_thread(tally *db);
void log_stop_thread(tally *db);
/* [loop] Finish db->snap.job on a thread of its own: wait until the log
 * is synced up to its end_lsn, then snap_finish; job->done is set under
 * mu at the end.  log_join_job (collect, close) reaps the thread. */
void log_start_job(tally *db);
void log_join_job(tally *db);
/* [loop] Is the log synced enough for log_rotate not to hold up the
 * commits behind it?  Under EVERYSEC and NO the first call starts an
 * fdatasync of the log on job_thread and returns 0, as do the calls while
 * it runs; the first after it ends reaps the thread and returns 1.  Under
 * ALWAYS, or with no thread to be had, it returns 1 at once. */
#define LOG_PRESYNC_IDLE 0
#define LOG_PRESYNC_RUNNING 1
#define LOG_PRESYNC_DONE 2
int log_presync(tally *db);
/* fsync a directory; returns 0 or -errno. */
int log_fsync_dir(int dirfd);
/* Write all of buf at off (retrying short writes); 0 or -errno. */
int log_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Does a file of `end` bytes stay within RLIMIT_FSIZE?  Checked before
 * growing a file, so that the library never triggers SIGXFSZ. */
int log_fits_limit(uint64_t end);
/* Monotonic nanoseconds. */
uint64_t log_now_ns(void);
/* Name of a data file: "<prefix>-<16 hex>.<ext>" into out (40 bytes). */
void log_name(char *out, const char *prefix, uint64_t lsn, const char *ext);

/* ---- snap.c ---- */

/* [loop] Write a slice of the running snapshot (about budget counters) and
 * collect a finished one.  Returns 1 while busy, 0 idle, or a failure. */
int snap_step(tally *db, unsigned budget);
/* [loop] Start a snapshot (TALLY_EBUSY if one is running). */
int snap_begin(tally *db);
/* [loop] Start one if the log has outgrown the last snapshot. */
void snap_maybe_auto(tally *db);
/* [loop] Write e's counter into the snapshot being walked, if one is:
 * for a counter put back without a log record (a batch's undo), which may
 * have landed in a slot the walk has passed (NULL: nothing). */
void snap_show(tally *db, const struct table_entry *e);
/* [loop] Drop a snapshot in progress (close). */
void snap_abandon(tally *db);
/* [job] Finish a job once the log is synced up to its end: fsync, rename,
 * fsync the directory, remove obsolete files.  Sets job->result and
 * job->msg. */
void snap_finish(tally *db, struct snap_job *job);
/* Write a whole snapshot of table t and ids o at S (for repair).  0 or a
 * code. */
int snap_write_table(int dirfd, const struct table *t,
                     const struct once_table *o, uint64_t s, char *msg);

/* ---- tail.c ---- */

/* Results of tail_frame. */
#define TAIL_OK 0      /* a valid frame, every record in it valid */
#define TAIL_END 1     /* zeros from here to the end of the file */
#define TAIL_BAD 2     /* a bad frame: *d says where and what */
#define TAIL_VERSION 3 /* a record of an unknown type (a newer format) */

/* What is wrong with a frame, and what recovery may conclude. */
struct tail_damage {
    size_t at;             /* file offset of the first defect */
    size_t cut;            /* file offset of the bad frame: where a cut goes */
    const char *why;       /* what is wrong at `at` */
    struct codec_frame frame; /* its header, when header_ok */
    int header_ok;         /* the frame header itself checks out */
    int past_eof;          /* ... and claims bytes past the end of the file */
    uint64_t records;      /* valid records in the frame (before `at`) */
    size_t claimed;        /* bytes the bad record claims (8 + its len) */
    /* Set by tail_judge: */
    int torn;              /* consistent with the interrupted last write */
    uint64_t lost_records; /* intact records from `cut` on */
    char proof[160];       /* when not torn: why the bytes were acknowledged */
};

/* Called for each valid record of a frame, in order, with its ticket. */
typedef void (*tail_apply_fn)(void *ctx, const struct codec_rec *r,
                              uint64_t lsn);
/* Check the frame at file offset off of the mapped log p[0, n) whose first
 * LSN is lsn, passing each valid record to apply (if not NULL) as it goes:
 * TAIL_OK (*fr set, d->records its records), TAIL_END, or TAIL_BAD /
 * TAIL_VERSION with *d set (the d->records records before the defect were
 * applied). */
int tail_frame(const unsigned char *p, size_t n, uint64_t lsn, size_t off,
               struct codec_frame *fr, struct tail_damage *d,
               tail_apply_fn apply, void *ctx);
/* Judge the bad frame that tail_frame described in *d: torn write (d->torn)
 * or damage to acknowledged data (d->proof says why).  newest: the file is
 * the newest log, the only one where a write can have been in flight. */
void tail_judge(const unsigned char *p, size_t n, uint64_t lsn, int newest,
                struct tail_damage *d);

/* ---- recover.c ---- */

/* Lock the data directory (LOCK file, flock).  0, TALLY_ELOCKED or
 * TALLY_EIO with err set. */
int recover_lock(int dirfd, const char *dir, int *fd, char *err);
/* Recover db->dir into db (table, head, log files); 0 or a code with err
 * naming the file and offset at fault. */
int recover_open(tally *db, char *err);
/* Parse a data file name "<prefix>-<16 lowercase hex>.<ext>" exactly;
 * returns 1 with *lsn set, else 0. */
int recover_parse_name(const char *s, const char *prefix, const char *ext,
                       uint64_t *lsn);

#endif /* ENGINE_H */
