/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * snap.c - snapshots: a file holding one PUT record per counter and one
 * IDEM record per live idempotency id (an IDEMA for a batch's id, with its
 * answer), so that recovery reads them once
 * instead of the whole history.  The
 * record format is codec.c's; the file is snap-<S>.tly, with S the LSN from
 * which the log must be replayed over it.
 *
 * Snapshots are fuzzy: log records hold absolute values (PUT key=value,
 * DEL), so replaying the log from S over a table walked at any time after S
 * gives the right state, whatever changed during the walk.  Steps:
 *   1. begin (loop thread): rotate the log to a new file starting at S =
 *      head (log.c), create snap-S.tmp and write its header; under
 *      EVERYSEC and NO an automatic snapshot first has the old log
 *      fdatasynced on a thread of its own (log_presync), as the rotation
 *      must sync it and commits wait while the sync thread does;
 *   2. walk (loop thread): a slice at a time (tally_step, plus a small slice
 *      after every change), the counters are walked in slab order
 *      (table_walk_step), which shows every counter that stays in its slot
 *      for the whole walk, whatever resizes run, and reads memory in
 *      sequence: the reverse-binary scan that SCAN uses costs two or three
 *      cache and TLB misses per counter at millions of them, 2.5 ms of CPU
 *      per 4096 counters at 1M, 10 ms at 10M, which stalled the loop for
 *      that long in every tally_step (a counter that moves or appears
 *      during the walk was changed after S, so its record is in the log
 *      after S; the one exception, a batch's abort putting counters back
 *      without a record and maybe in other slots, shows each of them to
 *      the walk, snap_show); then the ids that existed at S, oldest first
 *      along
 *      the id FIFO (ids created after S are in the log after S; ids that
 *      expire during the walk are skipped, once.c keeps the walk's cursor
 *      valid); records are buffered and written in 64 KiB writes (a
 *      write may land in a change's slice, and copying 256 KiB into the
 *      page cache took up to 1.5 ms of CPU at 10M counters); an END
 *      record with the PUT + IDEM count closes the file;
 *   3. finish (a thread of the job's own, log.c log_start_job, so neither
 *      the loop nor the commits behind the sync thread wait on it): wait
 *      until the log is synced up to the head at the end of the walk (the
 *      walk may have shown values of changes not yet durable, and a batch
 *      must not appear half-applied after a crash), fsync snap-S.tmp,
 *      rename it to snap-S.tly, fsync the directory, remove older
 *      snapshots and the log files before S, fsync the directory again;
 *   4. collect (loop thread): statistics, back to idle.
 * Any failure abandons the snapshot (temp file removed); the log stays
 * authoritative and nothing is lost.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "mem.h"

#define SNAP_FLUSH (64u << 10)

/* Write the buffered records at the end of the temp file. */
static int flush_buf(struct snap_state *ss, struct snap_job *job, char *msg)
{
    int rc;

    if (ss->len == 0)
        return 0;
    if (!log_fits_limit(job->bytes + ss->len)) {
        snprintf(msg, TALLY_ERRMAX, "snapshot would pass the file size "
                 "limit (RLIMIT_FSIZE)");
        return TALLY_ENOSPC;
    }
    rc = log_pwrite_all(job->fd, ss->buf, ss->len, (off_t)job->bytes);
    if (rc != 0) {
        snprintf(msg, TALLY_ERRMAX, "writing snapshot: %s", strerror(-rc));
        return rc == -ENOSPC || rc == -EDQUOT ? TALLY_ENOSPC : TALLY_EIO;
    }
    job->bytes += ss->len;
    ss->len = 0;
    return 0;
}

static void buf_room(struct snap_state *ss, size_t n)
{
    if (ss->cap - ss->len >= n)
        return;
    ss->cap = ss->len + n > 2 * ss->cap ? ss->len + n : 2 * ss->cap;
    ss->buf = mem_realloc(ss->buf, ss->cap);
}

static int put_entry(void *arg, const struct table_entry *e)
{
    struct snap_state *ss = arg;
    struct codec_op op = {CODEC_PUT, e->key, table_klen(e), e->value,
                          table_expire_of(e)};

    /* An expired counter is left out; a live one keeps its absolute
     * expiry (PUTX). */
    if (ss->now && table_expired(e, ss->now))
        return 0;
    buf_room(ss, codec_op_size(&op));
    ss->len += codec_op(ss->buf + ss->len, &op);
    ss->puts++;
    return 0;
}

static void put_id(struct snap_state *ss, const struct once_entry *e)
{
    struct codec_idem idem = {e->id, e->idlen, e->fp, e->created_ms, e->code,
                              e->value, e->alen ? e->id + e->idlen : NULL,
                              e->alen};

    /* A batch's id keeps its answer: an IDEMA. */
    buf_room(ss, e->alen ? codec_idema_size(e->idlen, e->alen)
                         : codec_idem_size(e->idlen));
    ss->len += codec_idem(ss->buf + ss->len, &idem);
    ss->puts++;
}

void snap_show(tally *db, const struct table_entry *e)
{
    struct snap_state *ss = &db->snap;

    if (ss->running != 1 || !e)
        return;
    ss->now = tally_now_ms(db);
    put_entry(ss, e);
}

/* Create snap-S.tmp with its header; *job gets the new job. */
static int create_tmp(int dirfd, uint64_t s, uint64_t count,
                      struct snap_job **jobp, char *msg)
{
    unsigned char hdr[CODEC_FILE_HDR];
    char name[40];
    struct snap_job *job;
    int fd, rc;

    log_name(name, "snap", s, "tmp");
    fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(msg, TALLY_ERRMAX, "%s: %s", name, strerror(errno));
        return errno == ENOSPC ? TALLY_ENOSPC : TALLY_EIO;
    }
    codec_header(hdr, CODEC_SNAP, s,
                 count > UINT32_MAX ? UINT32_MAX : (uint32_t)count);
    if ((rc = log_pwrite_all(fd, hdr, sizeof(hdr), 0)) != 0) {
        snprintf(msg, TALLY_ERRMAX, "%s: %s", name, strerror(-rc));
        close(fd);
        unlinkat(dirfd, name, 0);
        return rc == -ENOSPC ? TALLY_ENOSPC : TALLY_EIO;
    }
    job = mem_calloc(1, sizeof(*job));
    job->s = s;
    job->fd = fd;
    job->bytes = CODEC_FILE_HDR;
    *jobp = job;
    return 0;
}

/* Drop a job whose file is still a temp file. */
static void drop_job(int dirfd, struct snap_job *job)
{
    char name[40];

    log_name(name, "snap", job->s, "tmp");
    if (job->fd >= 0)
        close(job->fd);
    unlinkat(dirfd, name, 0);
    free(job);
}

/* fsync, rename into place and fsync the directory; 0 or a code. */
static int publish_file(int dirfd, struct snap_job *job, char *msg)
{
    char tmp[40], name[40];

    log_name(tmp, "snap", job->s, "tmp");
    log_name(name, "snap", job->s, "tly");
    if (fsync(job->fd) != 0 || renameat(dirfd, tmp, dirfd, name) != 0 ||
        log_fsync_dir(dirfd) != 0) {
        snprintf(msg, TALLY_ERRMAX, "finishing %s: %s", name,
                 strerror(errno));
        return errno == ENOSPC ? TALLY_ENOSPC : TALLY_EIO;
    }
    return 0;
}

/* Abandon the running snapshot after a failure on the loop thread. */
static int snap_fail(tally *db, int code, const char *why)
{
    struct snap_state *ss = &db->snap;
    uint64_t gap = db->opts.snapshot_min_log;
    char msg[TALLY_ERRMAX];

    /* why may be the job's own message, which drop_job frees. */
    snprintf(msg, sizeof(msg), "%s", why);
    db_log(&db->opts, TALLY_LOG_ERROR, "%s: snapshot abandoned (the log "
           "stays authoritative): %s", db->dir, msg);
    if (ss->job)
        drop_job(db->dirfd, ss->job);
    ss->job = NULL;
    ss->running = 0;
    ss->len = 0;
    /* Back off before an automatic retry, so a full disk does not turn
     * every change into a log rotation. */
    if (gap < (16u << 20))
        gap = 16u << 20;
    ss->auto_after = db->head + gap;
    return db_err(db, code, "snapshot abandoned: %s", msg);
}

int snap_begin(tally *db)
{
    struct snap_state *ss = &db->snap;
    char msg[TALLY_ERRMAX];
    uint64_t s = db->head;
    int rc;

    if (ss->running)
        return db_err(db, TALLY_EBUSY, "a snapshot is already running");
    log_join_job(db); /* a log_presync still running: log_fd must stay */
    if (tally_health(db) == TALLY_EFAILED)
        return db_err(db, TALLY_EFAILED, "%s", db->failmsg);
    if ((rc = log_rotate(db)) != 0) {
        snprintf(msg, sizeof(msg), "%s", db->errmsg);
        return snap_fail(db, rc, msg);
    }
    if ((rc = create_tmp(db->dirfd, s, db->table.count, &ss->job, msg)) != 0)
        return snap_fail(db, rc, msg);
    ss->running = 1;
    table_walk_begin(&db->table, &ss->walk);
    ss->ids = 0;
    ss->puts = 0;
    ss->len = 0;
    once_walk_begin(&db->once);
    return 0;
}

void snap_maybe_auto(tally *db)
{
    uint64_t since, limit = db->opts.snapshot_min_log;

    if (db->snap.running || limit == UINT64_MAX || db->head < db->snap.auto_after)
        return;
    since = db->head - db->snap_lsn;
    if (limit < db->snap_bytes)
        limit = db->snap_bytes;
    /* The rotation waits for the presync, on the loop's next changes,
     * rather than stall the commits behind the sync thread. */
    if (since > limit && log_presync(db))
        snap_begin(db); /* failures are logged and backed off */
}

/* Write up to budget ids of the walk; returns 1 when they are all
 * written. */
static int walk_ids(struct once_table *o, struct snap_state *ss,
                    unsigned budget)
{
    const struct once_entry *e;

    for (unsigned i = 0; i < budget; i++) {
        if (!(e = once_walk_next(o)))
            return 1;
        put_id(ss, e);
    }
    return o->walk == NULL;
}

/* The walk: about budget counters, then budget ids a slice; hands the job
 * over when complete. */
static int walk(tally *db, unsigned budget)
{
    struct snap_state *ss = &db->snap;
    char msg[TALLY_ERRMAX];
    int stop, rc, done = 0;

    if (!budget)
        budget = 1;
    if (!ss->ids) {
        ss->now = tally_now_ms(db);
        ss->ids = table_walk_step(&db->table, &ss->walk, budget, put_entry,
                                  ss, &stop);
    } else {
        done = walk_ids(&db->once, ss, budget);
    }
    if (done) {
        buf_room(ss, CODEC_END_SIZE);
        ss->len += codec_end(ss->buf + ss->len, ss->puts);
    }
    if ((ss->len >= SNAP_FLUSH || done) &&
        (rc = flush_buf(ss, ss->job, msg)) != 0)
        return snap_fail(db, rc, msg);
    if (done) {
        ss->job->end_lsn = db->head;
        ss->running = 2;
        log_start_job(db);
    }
    return 1;
}

/* Collect a job the sync thread finished. */
static int collect(tally *db)
{
    struct snap_state *ss = &db->snap;
    struct snap_job *job = ss->job;
    int done;

    pthread_mutex_lock(&db->mu);
    done = job->done;
    pthread_mutex_unlock(&db->mu);
    if (!done)
        return 1;
    log_join_job(db);
    if (job->result != 0) {
        job->fd = -1; /* closed by the job's thread */
        return snap_fail(db, job->result, job->msg);
    }
    db->snap_lsn = job->s;
    db->snap_bytes = job->bytes;
    db->snap_time = (int64_t)time(NULL);
    db->snapshots++;
    db->log_base = job->s;
    db->log_files = 1;
    free(job);
    ss->job = NULL;
    ss->running = 0;
    return 0;
}

int snap_step(tally *db, unsigned budget)
{
    if (db->snap.running == 1)
        return walk(db, budget);
    if (db->snap.running == 2)
        return collect(db);
    return 0;
}

void snap_abandon(tally *db)
{
    if (db->snap.running == 1) {
        drop_job(db->dirfd, db->snap.job);
        db->snap.job = NULL;
        db->snap.running = 0;
        db->once.walk = db->once.walk_last = NULL;
    }
}

/* [job] Remove snapshots and log files older than S. */
static void remove_obsolete(tally *db, uint64_t s)
{
    int fd = dup(db->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    uint64_t lsn;
    int removed = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        if ((recover_parse_name(de->d_name, "log", "tly", &lsn) ||
             recover_parse_name(de->d_name, "snap", "tly", &lsn)) &&
            lsn < s && unlinkat(db->dirfd, de->d_name, 0) == 0)
            removed = 1;
    }
    closedir(d);
    /* A failure here only leaves files that the next open removes. */
    if (removed)
        log_fsync_dir(db->dirfd);
}

void snap_finish(tally *db, struct snap_job *job)
{
    char name[40];

    job->result = publish_file(db->dirfd, job, job->msg);
    close(job->fd);
    job->fd = -1;
    if (job->result != 0) {
        log_name(name, "snap", job->s, "tmp");
        unlinkat(db->dirfd, name, 0);
        return;
    }
    remove_obsolete(db, job->s);
}

int snap_write_table(int dirfd, const struct table *t,
                     const struct once_table *o, uint64_t s, char *msg)
{
    struct snap_state ss;
    struct snap_job *job;
    const struct once_entry *e = o->head;
    uint64_t cursor = 0;
    int stop, rc;
    char dummy[TALLY_ERRMAX];

    if (!msg)
        msg = dummy;
    memset(&ss, 0, sizeof(ss));
    if ((rc = create_tmp(dirfd, s, t->count, &job, msg)) != 0)
        return rc;
    do {
        cursor = table_scan(t, cursor, 4096, NULL, 0, put_entry, &ss, &stop);
        rc = flush_buf(&ss, job, msg);
    } while (rc == 0 && cursor != 0);
    for (; rc == 0 && e; e = e->fnext) {
        put_id(&ss, e);
        if (ss.len >= SNAP_FLUSH)
            rc = flush_buf(&ss, job, msg);
    }
    if (rc == 0) {
        buf_room(&ss, CODEC_END_SIZE);
        ss.len += codec_end(ss.buf + ss.len, ss.puts);
        rc = flush_buf(&ss, job, msg);
    }
    if (rc == 0)
        rc = publish_file(dirfd, job, msg);
    free(ss.buf);
    if (rc != 0) {
        drop_job(dirfd, job);
        return rc;
    }
    close(job->fd);
    free(job);
    return 0;
}

/* No snapshot while a batch is open (batch.c): it must not see a value the
 * log may never get. */
static int batch_busy(tally *db)
{
    return db->batch.open
               ? db_err(db, TALLY_EBUSY, "a batch is open on the handle")
               : 0;
}

int tally_snapshot_begin(tally *db)
{
    int rc = batch_busy(db);

    return rc ? rc : snap_begin(db);
}

/* tally_step works in pieces of STEP_PIECE (counters, handles or ids) and
 * looks at the clock between them: past STEP_NS since the call began, it
 * stops and reports more work, whatever is left of the budget.  A piece
 * costs tens of µs; a whole budget of 4096 (tallyd's) usually fits in a
 * few hundred, but not when the memory it reads is cold or the machine
 * busy, and every request waits while the loop is in here. */
#define STEP_PIECE 512u
#define STEP_NS 500000u

static size_t piece(size_t left)
{
    return left < STEP_PIECE ? left : STEP_PIECE;
}

static int step_late(uint64_t deadline)
{
    return log_now_ns() >= deadline;
}

/* Expired idempotency ids, up to budget; returns 1 if more are due. */
static int step_ids(tally *db, size_t budget, uint64_t deadline)
{
    int64_t now = once_now_ms();
    size_t n;

    for (;;) {
        n = piece(budget);
        if (!once_expire(&db->once, now, once_ttl(db), (unsigned)n))
            return 0;
        budget -= n;
        if (budget == 0 || step_late(deadline))
            return 1;
    }
}

/* Active expiry of counters: up to budget handles of the expiry list; as
 * Redis's cycle, more is due (on the next step) while more than a quarter
 * of those looked at had expired. */
static int step_expiry(tally *db, size_t budget, uint64_t deadline)
{
    struct table *t = &db->table;
    int64_t now = tally_now_ms(db);
    size_t n, looked = 0, removed = 0;

    while (budget > 0 && t->xn > 0) {
        n = piece(budget);
        removed += table_expire_step(t, now, n, &db->last_del,
                                     db->opts.expired, db->opts.expired_ctx);
        looked += n;
        budget -= n;
        if (budget > 0 && t->xn > 0 && step_late(deadline))
            return 1;
    }
    return removed > looked / 4 && removed > 0;
}

/* The running snapshot: up to budget counters (or ids) of its walk, or
 * collecting it once written; snap_step's result. */
static int step_snapshot(tally *db, size_t budget, uint64_t deadline)
{
    size_t n;
    int rc;

    do {
        n = piece(budget);
        rc = snap_step(db, (unsigned)n);
        budget -= n;
    } while (rc == 1 && db->snap.running == 1 && budget > 0 &&
             !step_late(deadline));
    return rc;
}

/* Resizes of the hash tables, which changes also move (table.c): up to
 * budget buckets of each, in pieces of an eighth of STEP_PIECE (a bucket
 * moved costs a few entries' cache misses); returns 1 if one still runs. */
static int step_rehash(tally *db, size_t budget, uint64_t deadline)
{
    size_t n;
    int more;

    for (;;) {
        if (step_late(deadline))
            return db->table.h.ob || db->once.h.ob;
        n = budget < STEP_PIECE / 8 ? budget : STEP_PIECE / 8;
        more = table_rehash_step(&db->table, n) |
               once_rehash_step(&db->once, n);
        budget -= n;
        if (!more || budget == 0)
            return more;
    }
}

int tally_step(tally *db, unsigned budget)
{
    uint64_t deadline = log_now_ns() + STEP_NS;
    size_t sample = budget ? budget : 1;
    int more, rc;

    if (db->batch.open)
        return 0;
    more = step_ids(db, sample, deadline);
    more |= step_expiry(db, sample, deadline);
    rc = step_snapshot(db, sample, deadline);
    more |= step_rehash(db, sample / 8 + 1, deadline);
    return rc == 0 && more ? 1 : rc;
}

/* Wait for the job's thread to finish the running job. */
static void wait_job(tally *db)
{
    pthread_mutex_lock(&db->mu);
    while (db->snap.job && !db->snap.job->done)
        pthread_cond_wait(&db->done_cv, &db->mu);
    pthread_mutex_unlock(&db->mu);
}

int tally_snapshot(tally *db)
{
    int rc = batch_busy(db);

    if (rc)
        return rc;
    /* Let one already running finish, then take a fresh one. */
    while ((rc = snap_step(db, 65536)) == 1)
        if (db->snap.running == 2)
            wait_job(db);
    if ((rc = snap_begin(db)) != 0)
        return rc;
    while ((rc = snap_step(db, 65536)) == 1)
        if (db->snap.running == 2)
            wait_job(db);
    return rc;
}
