/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log.c - the write path to the log: space reservation and record hand-over
 * on the loop thread, and the sync thread that writes, syncs and publishes
 * the durable LSN (group commit).  What a record looks like is codec.c's
 * business; what a ticket promises is in docs/durability.md.
 *
 * Group commit.  The loop thread appends encoded records to db->pend under
 * db->mu (held only for the memcpy) and wakes the sync thread if it sleeps.
 * What one write will cover is one frame (codec.h): the first record
 * appended to an empty pend (or after a rotation mark) opens a frame header
 * in pend, which takes LSN bytes like a record, and each record after it
 * updates the header's length; the writer seals the frames (what had been
 * synced, zero sectors, CRC) just before its pwrite.  Close ends the log
 * with a synced CLOSE frame (write_close), the proof recovery needs that no
 * write was in flight.
 * The sync thread swaps pend with its own buffer, writes the whole batch
 * with one pwrite, and under TALLY_SYNC_ALWAYS fdatasyncs it; then it
 * publishes durable (an atomic store), broadcasts done_cv (tally_wait) and
 * writes the eventfd (tally_notify_fd).  Every change that arrived while the
 * previous fdatasync ran shares the next one.  Under EVERYSEC and NO,
 * durable moves after the write, and EVERYSEC fdatasyncs at most a second
 * later; close and log rotation fdatasync under every policy.
 *
 * Corking.  Between tally_cork and tally_uncork (a server's pass over the
 * requests it read) appends do not wake the sync thread and a sync thread
 * that finishes a batch leaves pend alone, so the whole pass shares one
 * write and one fdatasync; uncork wakes it once.  A thread in tally_wait
 * (every blocking call) overrides the cork, so no caller ever waits on one.
 * Under EVERYSEC and NO, where durable means written, uncork writes the
 * batch itself when the sync thread is not busy (it takes the write token,
 * engine.h) and publishes durable at once, so a reply costs no thread
 * wake-up at all; the sync thread then only fdatasyncs once a second.  A
 * pending rotation leaves the batch to the sync thread, which alone
 * rotates, so the order of writes and rotations never changes.
 * tally_uncork_inline does the same under ALWAYS and fdatasyncs too: for a
 * server with one client, which has nobody to answer while the fdatasync
 * runs, and saves the two thread wake-ups of a hand-over (the sync thread's
 * futex, the loop's eventfd) that cost about as much CPU again as the
 * fdatasync itself.
 *
 * Waiting.  A hand-over wakes the sync thread (a futex on db->kicks) only
 * when it sleeps, and after mu is released; durable comes back through the
 * eventfd.  A sleep and a wake cost a few
 * microseconds of CPU (more on a virtual CPU that went idle), so polling
 * instead pays only when the wait is shorter than that, and the engine
 * measures how long waits are: when a batch was handed over (kick_ns), how
 * long from then until durable covered it (hold_ewma_ns, behind
 * tally_sync_eta_us, for a loop deciding to poll or to sleep), and whether
 * the next hand-over came within spin_us of the publish before it
 * (gap_hits).  The sync thread polls for the next batch, for at most
 * spin_us, only after a batch of one or two changes and while at least
 * half of the recent hand-overs came that soon: one client sending its
 * next request as soon as it has the reply, over a fast loop; a client at
 * a modest rate, whose requests are milliseconds apart, makes it sleep at
 * once.
 *
 * Space.  Log files are grown ahead by the loop thread with fallocate in
 * LOG_CHUNK steps, before the change that needs the space is applied, so a
 * full disk refuses a change (TALLY_ENOSPC) instead of failing a write the
 * caller was already told about.  The sync thread only writes inside the
 * reserved space.  Reserved, unwritten space reads as zeros: that is how
 * recovery finds the end of the log.  RLIMIT_FSIZE is checked before every
 * growth so the library never raises SIGXFSZ.
 *
 * Failure.  A failed write or fdatasync is fatal to the write path: the
 * thread that made it (the token's holder, a snapshot job's thread or a
 * presync's) records why in db->failmsg, sets health to TALLY_EFAILED,
 * wakes every waiter and drops every later batch (a page cache that failed
 * to write back may have discarded the data, so a retry could report
 * success for bytes that are gone).
 *
 * Rotation (for snapshots).  The loop thread creates log-<L>.tmp, writes its
 * header, reserves space and marks the point in pend where the new file
 * begins.  The sync thread writes what comes before the mark to the old
 * file, fdatasyncs it, fsyncs the new file, renames it to log-<L>.tly and
 * fsyncs the directory.  The temp name keeps a crash before that from
 * leaving a newer log next to an old one whose tail was never written.
 * Under EVERYSEC and NO most of the old file may be unsynced; an
 * automatic snapshot first fdatasyncs it on a thread of its own
 * (log_presync), so the sync thread's fdatasync there is short.  The
 * snapshot's own last steps run on a thread of their own too (job_main),
 * so that commits go on while a big snapshot file is fsynced.  Both run
 * nicer than the loop (job_yield_cpu).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "mem.h"

#define LOG_SPIN_MAX_CHANGES 2 /* spin_us only after batches this small */
#define LOG_GAP_HITS_ONE 32    /* db->gap_hits: one short gap, 1/8 of 256 */
#define LOG_GAP_HITS_SPIN 128  /* spin while half the recent gaps were short */

uint64_t log_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void log_name(char *out, const char *prefix, uint64_t lsn, const char *ext)
{
    snprintf(out, 40, "%s-%016" PRIx64 ".%s", prefix, lsn, ext);
}

int log_fsync_dir(int dirfd)
{
    return fsync(dirfd) == 0 ? 0 : -errno;
}

int log_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const unsigned char *p = buf;
    ssize_t w;

    while (n > 0) {
        w = pwrite(fd, p, n, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int log_fits_limit(uint64_t end)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1;
    return end <= (uint64_t)rl.rlim_cur;
}

/* Grow fd to cover [off, off+len) with allocated blocks.  0 or -errno. */
static int reserve_range(int fd, uint64_t off, uint64_t len)
{
    int rc;

    if (!log_fits_limit(off + len))
        return -EFBIG;
    if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP)
        return -errno;
    /* A file system without fallocate: glibc writes the blocks instead. */
    rc = posix_fallocate(fd, (off_t)off, (off_t)len);
    return -rc;
}

int log_reserve(tally *db, size_t len)
{
    /* Room for a frame header this change may open, and for the CLOSE
     * frame of a clean close after it. */
    uint64_t need = db->head + len + 2 * CODEC_FRAME_HDR, want, off;
    int rc, ok = TALLY_ENOSPC, full = tally_health(db) == TALLY_ENOSPC;

    /* While the disk is full, every change probes for space again, so
     * health turns back to OK as soon as there is room. */
    if (need <= db->res_end && !full)
        return 0;
    off = CODEC_FILE_HDR + (db->res_end - db->res_start);
    want = need > db->res_end ? need - db->res_end : 0;
    if (want < LOG_CHUNK)
        want = LOG_CHUNK;
    rc = reserve_range(db->res_fd, off, want);
    if (rc != 0 && need > db->res_end && want > need - db->res_end) {
        /* Near the limit: take just what this change needs. */
        want = need - db->res_end;
        rc = reserve_range(db->res_fd, off, want);
    }
    if (rc != 0 && need <= db->res_end)
        return 0; /* still full, but this change fits */
    if (rc == 0) {
        db->res_end += want;
        __atomic_compare_exchange_n(&db->health, &ok, TALLY_OK, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return 0;
    }
    if (rc == -ENOSPC || rc == -EFBIG || rc == -EDQUOT) {
        ok = TALLY_OK;
        if (__atomic_compare_exchange_n(&db->health, &ok, TALLY_ENOSPC, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            db_log(&db->opts, TALLY_LOG_ERROR,
                   "%s: cannot reserve log space (%s); changes are refused "
                   "until space is freed", db->dir, strerror(-rc));
        return db_err(db, TALLY_ENOSPC, "cannot reserve log space: %s",
                      strerror(-rc));
    }
    return db_err(db, TALLY_EIO, "cannot reserve log space: %s",
                  strerror(-rc));
}

/* Hand work over to the sync thread, ending its spin or its sleep (it
 * sleeps on the kicks word, wait_work); called with mu held.  Returns
 * whether it sleeps, in which case the caller wakes it (wake_signal) once
 * it has released mu: woken under mu, it would block on mu at once, a
 * futex wait and wake more per hand-over. */
static int wake_sync(tally *db)
{
    __atomic_store_n(&db->kicks, db->kicks + 1, __ATOMIC_RELEASE);
    return db->sync_idle != 0;
}

/* A batch is handed over (wake_sync follows): note when, for the models
 * ("Waiting" above), once per batch; called with mu held. */
static void note_batch(tally *db)
{
    if (!db->kick_ns)
        __atomic_store_n(&db->kick_ns, log_now_ns(), __ATOMIC_RELEASE);
}

/* After mu is released: wake the sync thread if wake_sync said it sleeps. */
static void wake_signal(tally *db, int sleeping)
{
    if (sleeping)
        syscall(SYS_futex, &db->kicks, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Make room for len more bytes in pend; called with mu held. */
static void pend_room(tally *db, size_t len)
{
    if (db->pend_cap - db->pend_len >= len)
        return;
    db->pend_cap = db->pend_cap * 2 > db->pend_len + len
                       ? db->pend_cap * 2 : db->pend_len + len + 65536;
    db->pend = mem_realloc(db->pend, db->pend_cap);
}

uint64_t log_append(tally *db, const void *rec, size_t len, unsigned changes)
{
    uint64_t t = db->head; /* only this thread writes head */
    int sleeping = 0;

    pthread_mutex_lock(&db->mu);
    /* A batch the sync thread has not taken yet is one frame: only the
     * record's bytes and a length store, so the framing costs the hot path
     * nothing measurable. */
    if (db->frame_at == LOG_NO_FRAME ||
        db->pend_len - db->frame_at - CODEC_FRAME_HDR + len > CODEC_FRAME_MAX) {
        pend_room(db, CODEC_FRAME_HDR + len);
        db->frame_at = db->pend_len;
        codec_frame_open(db->pend + db->pend_len, t);
        db->pend_len += CODEC_FRAME_HDR;
        t += CODEC_FRAME_HDR;
    } else {
        pend_room(db, len);
    }
    memcpy(db->pend + db->pend_len, rec, len);
    db->pend_len += len;
    codec_frame_set_len(db->pend + db->frame_at,
                        (uint32_t)(db->pend_len - db->frame_at -
                                   CODEC_FRAME_HDR));
    db->pend_changes += changes;
    t += len;
    __atomic_store_n(&db->head, t, __ATOMIC_RELEASE);
    if (!db->corked) {
        note_batch(db);
        sleeping = wake_sync(db);
    }
    pthread_mutex_unlock(&db->mu);
    wake_signal(db, sleeping);
    return t;
}

int log_rotate(tally *db)
{
    char name[40];
    unsigned char hdr[CODEC_FILE_HDR];
    uint64_t lsn = db->head;
    int fd, rc, sleeping;

    log_name(name, "log", lsn, "tmp");
    fd = openat(db->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                0644);
    if (fd < 0)
        return db_err(db, errno == ENOSPC ? TALLY_ENOSPC : TALLY_EIO,
                      "%s/%s: %s", db->dir, name, strerror(errno));
    codec_header(hdr, CODEC_LOG, lsn, 0);
    rc = log_pwrite_all(fd, hdr, sizeof(hdr), 0);
    if (rc == 0)
        rc = reserve_range(fd, CODEC_FILE_HDR, LOG_CHUNK);
    if (rc != 0) {
        close(fd);
        unlinkat(db->dirfd, name, 0);
        return db_err(db, rc == -ENOSPC || rc == -EFBIG ? TALLY_ENOSPC
                                                       : TALLY_EIO,
                      "%s/%s: %s", db->dir, name, strerror(-rc));
    }
    pthread_mutex_lock(&db->mu);
    db->rot = 1;
    db->rot_asked++;
    db->rot_off = db->pend_len;
    db->rot_fd = fd;
    db->rot_lsn = lsn;
    db->frame_at = LOG_NO_FRAME; /* the new file starts with a new frame */
    sleeping = wake_sync(db);
    pthread_mutex_unlock(&db->mu);
    wake_signal(db, sleeping);
    db->res_fd = fd;
    db->res_start = lsn;
    db->res_end = lsn + LOG_CHUNK;
    db->log_files++;
    return 0;
}

static void hist_add(uint64_t *hist, uint64_t v)
{
    int i = v <= 1 ? 0 : 64 - __builtin_clzll(v - 1);

    if (i >= TALLY_HIST_BUCKETS)
        i = TALLY_HIST_BUCKETS - 1;
    __atomic_fetch_add(&hist[i], 1, __ATOMIC_RELAXED);
}

/* [token, or a snapshot job's thread] Stop the write path for good. */
static void sync_fail(tally *db, const char *what, int err)
{
    /* The sync thread, the token's holder and a snapshot job's thread may
     * each fail; the first one's reason is the one recorded. */
    if (__atomic_exchange_n(&db->fail_claim, 1, __ATOMIC_ACQ_REL))
        return;
    snprintf(db->failmsg, sizeof(db->failmsg),
             "%s of the log in %s failed: %s; changes are refused until the "
             "database is reopened", what, db->dir, strerror(err));
    __atomic_store_n(&db->health, TALLY_EFAILED, __ATOMIC_RELEASE);
    db_log(&db->opts, TALLY_LOG_ERROR, "%s", db->failmsg);
}

/* [token] fdatasync the log, which holds everything up to upto; 0 or
 * -errno. */
static int sync_to(tally *db, uint64_t upto)
{
    uint64_t t0, us;

    if (db->synced >= upto)
        return 0;
    t0 = log_now_ns();
    if (fdatasync(db->log_fd) != 0)
        return -errno;
    us = (log_now_ns() - t0) / 1000;
    db->last_sync_ns = log_now_ns();
    /* At least 1: 0 means no fdatasync yet (tmpfs takes well under 1 us). */
    __atomic_store_n(&db->sync_ewma_us,
                     db->sync_ewma_us ? db->sync_ewma_us - db->sync_ewma_us / 8
                                            + (us + 7) / 8
                                      : us + 1,
                     __ATOMIC_RELAXED);
    db->synced = upto;
    __atomic_fetch_add(&db->syncs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&db->sync_us_sum, us, __ATOMIC_RELAXED);
    hist_add(db->sync_us_hist, us);
    return 0;
}

/* [token] fdatasync the log up to what was written; 0 or -errno. */
static int sync_data(tally *db)
{
    return sync_to(db, db->written);
}

/* [token] Seal the frames that tile p[0, n), to be written at file offset
 * off: each says what was synced before this write. */
static void seal_frames(tally *db, unsigned char *p, size_t n, uint64_t off)
{
    size_t at = 0;

    while (at < n) {
        codec_frame_seal(p + at, off + at, db->synced, 0);
        at += CODEC_FRAME_HDR + codec_frame_len(p + at);
    }
}

/* [token] Seal and write n bytes of frames at the log's write position
 * (the caller moves db->written). */
static int write_frames(tally *db, unsigned char *p, size_t n)
{
    uint64_t off = CODEC_FILE_HDR + db->written - db->log_start;

    seal_frames(db, p, n, off);
    return log_pwrite_all(db->log_fd, p, n, (off_t)off);
}

/* [sync] Write n bytes of the batch at the log's write position. */
static int sync_write(tally *db, unsigned char *p, size_t n)
{
    int rc = write_frames(db, p, n);

    if (rc == 0)
        db->written += n;
    return rc;
}

/* [sync] The last write of a clean close, after everything is synced: a
 * CLOSE frame, synced too, so that the next open knows no write was in
 * flight and treats any bad byte as damage.  Skipped when nothing was
 * written since an open that found the log closed.  A failure here loses
 * nothing (the next open applies the crash rule); it is logged. */
static void write_close(tally *db)
{
    unsigned char f[CODEC_FRAME_HDR];
    uint64_t off = CODEC_FILE_HDR + db->written - db->log_start;
    int rc;

    if (db->written == db->closed_at || db->synced != db->written)
        return;
    codec_frame_open(f, db->written);
    codec_frame_seal(f, off, db->synced, CODEC_FRAME_CLOSE);
    rc = log_pwrite_all(db->log_fd, f, sizeof(f), (off_t)off);
    if (rc == 0 && fdatasync(db->log_fd) != 0)
        rc = -errno;
    if (rc != 0) {
        db_log(&db->opts, TALLY_LOG_WARN, "%s: cannot mark the log closed "
               "(%s); the next open checks its tail as after a crash",
               db->dir, strerror(-rc));
        return;
    }
    db->written += sizeof(f);
    db->synced = db->written;
}

/* [sync] Switch to the rotated file: old file complete and synced first. */
static int sync_rotate(tally *db, int fd, uint64_t lsn)
{
    char tmp[40], name[40];
    int rc;

    if ((rc = sync_data(db)) != 0)
        return rc;
    close(db->log_fd);
    db->log_fd = fd;
    db->log_start = lsn;
    if (fsync(fd) != 0)
        return -errno;
    log_name(tmp, "log", lsn, "tmp");
    log_name(name, "log", lsn, "tly");
    if (renameat(db->dirfd, tmp, db->dirfd, name) != 0)
        return -errno;
    return log_fsync_dir(db->dirfd);
}

/* [sync] Write (and maybe sync) one batch; 0 or -errno with *what set. */
static int sync_batch(tally *db, size_t len, int rot, size_t rot_off,
                      int rot_fd, uint64_t rot_lsn, int force,
                      const char **what)
{
    size_t first = rot ? rot_off : len;
    int rc;

    *what = "write";
    if ((rc = sync_write(db, db->wbuf, first)) != 0)
        return rc;
    if (rot) {
        *what = "rotation";
        if ((rc = sync_rotate(db, rot_fd, rot_lsn)) != 0)
            return rc;
        *what = "write";
        /* wbuf is still NULL when nothing was ever pending (a snapshot
         * right after open), and NULL + 0 is undefined. */
        if (len > first &&
            (rc = sync_write(db, db->wbuf + first, len - first)) != 0)
            return rc;
    }
    *what = "fdatasync";
    if (force || db->opts.sync == TALLY_SYNC_ALWAYS ||
        (db->opts.sync == TALLY_SYNC_EVERYSEC &&
         log_now_ns() - db->last_sync_ns >= 1000000000u))
        return sync_data(db);
    return 0;
}

/* Store durable and wake tally_wait's threads; called with mu held. */
static void publish_locked(tally *db, uint64_t durable)
{
    __atomic_store_n(&db->durable, durable, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&db->done_cv);
}

/* Signal tally_notify_fd. */
static void notify(tally *db)
{
    uint64_t one = 1;

    if (write(db->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the reader is woken anyway. */
    }
}

/* [token] Tell waiters that durable or health moved. */
static void publish(tally *db, uint64_t durable)
{
    pthread_mutex_lock(&db->mu);
    publish_locked(db, durable);
    pthread_mutex_unlock(&db->mu);
    notify(db);
}

/* [sync] Is there a batch, rotation or stop to take?  With mu held.
 * A corked batch waits for uncork unless a thread is in tally_wait. */
static int has_work(const tally *db)
{
    if (db->writing)
        return 0; /* tally_uncork is writing; it wakes us if need be */
    return db->stop || db->rot ||
           (db->pend_len > 0 && (!db->corked || db->waiters > 0));
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* [sync] Called with mu held after a batch under ALWAYS: poll (mu released)
 * for the next hand-over for up to spin_us before sleeping, as the loop
 * thread usually hands one over one round trip after durable moved, and
 * waking a sleeping thread can cost as much as the fdatasync (a virtual
 * CPU going idle).  Yields every turn so the spin never keeps a thread
 * that has work (the server, its clients) off a shared core. */
static void spin_work(tally *db)
{
    uint32_t seen = db->kicks;
    uint64_t end;

    if (has_work(db))
        return;
    pthread_mutex_unlock(&db->mu);
    end = log_now_ns() + (uint64_t)db->opts.spin_us * 1000u;
    while (__atomic_load_n(&db->kicks, __ATOMIC_ACQUIRE) == seen &&
           log_now_ns() < end) {
        cpu_relax();
        sched_yield();
    }
    pthread_mutex_lock(&db->mu);
}

/* [sync] Just before publishing a batch handed over at kick (0: not
 * known): update the models of "Waiting" above. */
static void learn(tally *db, uint64_t kick)
{
    uint64_t now = log_now_ns(), hold, ewma;
    int hit;

    if (kick) {
        hold = now > kick ? now - kick : 1;
        ewma = db->hold_ewma_ns;
        __atomic_store_n(&db->hold_ewma_ns,
                         ewma ? ewma - ewma / 8 + hold / 8 : hold,
                         __ATOMIC_RELAXED);
        /* A hand-over that came while this batch was written waited no
         * time at all. */
        hit = kick <= db->pub_ns ||
              kick - db->pub_ns <= (uint64_t)db->opts.spin_us * 1000u;
        db->gap_hits = db->gap_hits - db->gap_hits / 8 +
                       (hit ? LOG_GAP_HITS_ONE : 0);
    }
    db->pub_ns = now;
}

/* [sync] Sleep until there is work; returns with mu held.  Spins first
 * only when most recent hand-overs came within spin_us of the publish
 * before them ("Waiting" above).  It sleeps on the kicks word with a futex
 * rather than on a condition variable: glibc marks the mutex contended
 * when a condition wait takes it back, so every unlock after it would make
 * a system call more.  Every waker bumps kicks under mu (wake_sync), so a
 * wake-up between the unlock and the futex wait is not lost: the wait
 * returns at once when kicks is no longer what was seen. */
static void wait_work(tally *db, int spin)
{
    struct timespec ts, *limit;
    uint64_t due, now;
    uint32_t seen;

    if (spin && db->opts.spin_us && db->opts.sync == TALLY_SYNC_ALWAYS &&
        db->gap_hits >= LOG_GAP_HITS_SPIN)
        spin_work(db);
    while (!has_work(db)) {
        seen = db->kicks;
        limit = NULL;
        db->sync_idle = 1;
        if (db->opts.sync == TALLY_SYNC_EVERYSEC && db->synced < db->written &&
            !db->writing && tally_health(db) == TALLY_OK) {
            due = db->last_sync_ns + 1000000000u;
            now = log_now_ns();
            if (now >= due) {
                db->sync_idle = 0;
                return; /* time for the once-a-second fdatasync */
            }
            db->sync_idle = 2;
            /* FUTEX_WAIT's timeout is relative, on CLOCK_MONOTONIC. */
            ts.tv_sec = (time_t)((due - now) / 1000000000u);
            ts.tv_nsec = (long)((due - now) % 1000000000u);
            limit = &ts;
        }
        pthread_mutex_unlock(&db->mu);
        syscall(SYS_futex, &db->kicks, FUTEX_WAIT_PRIVATE, seen, limit, NULL,
                0);
        pthread_mutex_lock(&db->mu);
        db->sync_idle = 0;
    }
}

static void *sync_main(void *arg)
{
    tally *db = arg;
    unsigned char *tmp;
    size_t len, cap, rot_off;
    uint64_t changes, rot_lsn;
    int rot, rot_fd, stop, rc, held = 0, spin = 0;
    const char *what;
    uint64_t kick;

    for (;;) {
        pthread_mutex_lock(&db->mu);
        if (held)
            db->writing = 0; /* given back after the last pass */
        wait_work(db, spin); /* returns only when the token is free */
        db->writing = held = 1;
        tmp = db->wbuf;
        cap = db->wbuf_cap;
        db->wbuf = db->pend;
        db->wbuf_cap = db->pend_cap;
        len = db->pend_len;
        db->pend = tmp;
        db->pend_cap = cap;
        db->pend_len = 0;
        db->frame_at = LOG_NO_FRAME;
        changes = db->pend_changes;
        db->pend_changes = 0;
        rot = db->rot;
        rot_off = db->rot_off;
        rot_fd = db->rot_fd;
        rot_lsn = db->rot_lsn;
        db->rot = 0;
        stop = db->stop;
        /* flight_ns before kick_ns: tally_sync_eta_us reads them the other
         * way round and so never sees neither. */
        kick = db->kick_ns;
        __atomic_store_n(&db->flight_ns, kick, __ATOMIC_RELEASE);
        __atomic_store_n(&db->kick_ns, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&db->mu);
        /* A batch of one or two changes: one or two clients, each waiting
         * for its reply and then sending the next request; the cores are
         * free, so the next batch is worth polling for.  Bigger batches
         * mean clients that keep the cores busy, where measured spinning
         * only took CPU from them. */
        spin = len > 0 && changes <= LOG_SPIN_MAX_CHANGES;

        if (tally_health(db) != TALLY_EFAILED) {
            rc = sync_batch(db, len, rot, rot_off, rot_fd, rot_lsn, stop,
                            &what);
            if (rc != 0)
                sync_fail(db, what, -rc);
            else if (len > 0)
                hist_add(db->batch_hist, changes);
            if (rc == 0 && len > 0)
                __atomic_fetch_add(&db->batch_sum, changes, __ATOMIC_RELAXED);
            if (rc == 0 && len == 0 && !rot && !stop &&
                (rc = sync_data(db)) != 0) /* the everysec tick */
                sync_fail(db, "fdatasync", -rc);
        } else if (rot && rot_fd != db->log_fd) {
            close(rot_fd); /* dropped: the write path has stopped */
        }
        /* The model learns, and nothing is on its way, by the time durable
         * moves: a waiter woken by it sees both. */
        if (len > 0)
            learn(db, kick);
        __atomic_store_n(&db->flight_ns, 0, __ATOMIC_RELEASE);
        if (rot && tally_health(db) != TALLY_EFAILED) {
            pthread_mutex_lock(&db->mu);
            db->rotated++; /* log_fd is the new file's; see job_run */
            pthread_mutex_unlock(&db->mu);
        }
        if (tally_health(db) != TALLY_EFAILED)
            publish(db, db->written);
        else
            publish(db, tally_durable(db));
        if (stop) {
            if (tally_health(db) != TALLY_EFAILED)
                write_close(db);
            return NULL;
        }
    }
}

int log_start_thread(tally *db)
{
    int rc;

    db->frame_at = LOG_NO_FRAME;
    db->log_fd = db->res_fd;
    db->log_start = db->res_start;
    db->written = db->synced = db->head;
    db->last_sync_ns = db->pub_ns = log_now_ns();
    db->gap_hits = LOG_GAP_HITS_SPIN; /* spin until one gap proves long */
    rc = pthread_create(&db->thread, NULL, sync_main, db);
    if (rc != 0)
        return db_err(db, TALLY_EIO, "cannot start the sync thread: %s",
                      strerror(rc));
    db->thread_started = 1;
    return 0;
}

void log_stop_thread(tally *db)
{
    int sleeping;

    if (!db->thread_started)
        return;
    pthread_mutex_lock(&db->mu);
    db->stop = 1;
    sleeping = wake_sync(db);
    pthread_mutex_unlock(&db->mu);
    wake_signal(db, sleeping);
    pthread_join(db->thread, NULL);
    db->thread_started = 0;
}

/* [job] Give the cores to the loop and the sync thread first: the
 * fdatasync of a big file spends ms of kernel CPU submitting writeback,
 * and on a 2-core machine that took a core from the loop while requests
 * waited.  Linux keeps a nice value per thread (setpriority on a thread
 * id).  A failure only leaves the thread at the process's priority. */
static void job_yield_cpu(void)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    int nice;

    errno = 0;
    nice = getpriority(PRIO_PROCESS, tid);
    if (errno == 0 && nice < LOG_JOB_NICE_MAX)
        (void)setpriority(PRIO_PROCESS, tid,
                          nice + LOG_JOB_NICE > LOG_JOB_NICE_MAX
                              ? LOG_JOB_NICE_MAX
                              : nice + LOG_JOB_NICE);
}

/* [job] A background thread's fdatasync failed: stop the write path and
 * wake the waiters, whom health moving answers. */
static void job_sync_fail(tally *db, int err)
{
    sync_fail(db, "fdatasync", err);
    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->done_cv);
    pthread_mutex_unlock(&db->mu);
}

/* [job] A snapshot's last steps, off the sync thread: the fsync of a
 * file of hundreds of MB, the directory's and the removal of the old log
 * (a synchronous discard on some file systems) took 50-170 ms at a few
 * million counters, and every commit waited behind them while the sync
 * thread did them.  The log must first be synced up to the end of the
 * walk: the snapshot may show values of changes still in flight, and may
 * replace the log only once they are on disk too. */
static void job_run(tally *db)
{
    struct snap_job *job = db->snap.job;
    int rc = tally_wait(db, job->end_lsn), fd;

    /* The rotation this snapshot began with must be done too (it synced
     * the old file): with no change since, durable passed end_lsn before
     * it.  Then log_fd is the file that holds [S, end_lsn), and stays so,
     * as only a snapshot's start rotates and none starts before this one
     * is collected. */
    pthread_mutex_lock(&db->mu);
    while (rc == TALLY_OK && db->rotated < db->rot_asked &&
           tally_health(db) != TALLY_EFAILED)
        pthread_cond_wait(&db->done_cv, &db->mu);
    /* Read only once the rotation is known done: it wrote log_fd. */
    fd = db->rotated == db->rot_asked ? db->log_fd : -1;
    pthread_mutex_unlock(&db->mu);
    /* Under ALWAYS durable is synced; under EVERYSEC and NO only written,
     * so sync here (the sync thread's own accounting, db->synced, does not
     * move: it only makes its frames claim less than is on disk). */
    if (rc == TALLY_OK && fd >= 0 && tally_health(db) != TALLY_EFAILED &&
        db->opts.sync != TALLY_SYNC_ALWAYS && fdatasync(fd) != 0) {
        job_sync_fail(db, errno);
    }
    if (tally_health(db) == TALLY_EFAILED) {
        job->result = TALLY_EFAILED;
        snprintf(job->msg, sizeof(job->msg), "%s", db->failmsg);
        close(job->fd);
        job->fd = -1;
    } else {
        snap_finish(db, job);
    }
    pthread_mutex_lock(&db->mu);
    job->done = 1;
    pthread_cond_broadcast(&db->done_cv);
    pthread_mutex_unlock(&db->mu);
    notify(db); /* a server's loop collects it on its next step */
}

static void *job_main(void *arg)
{
    job_yield_cpu();
    job_run(arg);
    return NULL;
}

void log_start_job(tally *db)
{
    int rc = pthread_create(&db->job_thread, NULL, job_main, db);

    if (rc == 0) {
        db->job_started = 1;
        return;
    }
    /* No thread to be had: finish here, the loop waiting as it did before
     * the job had a thread of its own. */
    db_log(&db->opts, TALLY_LOG_WARN, "%s: no thread for the snapshot's "
           "last steps (%s): finishing it on the caller's", db->dir,
           strerror(rc));
    job_run(db);
}

void log_join_job(tally *db)
{
    if (!db->job_started)
        return;
    pthread_join(db->job_thread, NULL);
    db->job_started = 0;
    __atomic_store_n(&db->presync, LOG_PRESYNC_IDLE, __ATOMIC_RELAXED);
}

/* [job] The fdatasync that a rotation would otherwise do on the sync
 * thread: under NO the log since the last snapshot's end is unsynced (50
 * MB at 1.7M counters growing), and the sync thread took 100-140 ms over
 * it while every commit waited.  Done here first, the rotation's own
 * fdatasync (sync_rotate) has only what came since.  It does not move
 * db->synced, which is the sync thread's: the rotation still syncs. */
static void *presync_main(void *arg)
{
    tally *db = arg;
    int fd;

    job_yield_cpu();
    /* log_fd stays: only a rotation moves it, and none is asked until
     * this thread is reaped (snap_begin joins it). */
    pthread_mutex_lock(&db->mu);
    fd = db->log_fd;
    pthread_mutex_unlock(&db->mu);
    if (tally_health(db) != TALLY_EFAILED && fdatasync(fd) != 0) {
        /* The error is reported once per file: the sync thread's next
         * fdatasync might succeed over the lost pages. */
        job_sync_fail(db, errno);
        notify(db);
    }
    __atomic_store_n(&db->presync, LOG_PRESYNC_DONE, __ATOMIC_RELEASE);
    return NULL;
}

int log_presync(tally *db)
{
    int rc;

    switch (__atomic_load_n(&db->presync, __ATOMIC_ACQUIRE)) {
    case LOG_PRESYNC_DONE:
        log_join_job(db);
        return 1;
    case LOG_PRESYNC_RUNNING:
        return 0;
    }
    if (db->opts.sync == TALLY_SYNC_ALWAYS || db->job_started)
        return 1; /* all synced; or a job is still to be collected */
    __atomic_store_n(&db->presync, LOG_PRESYNC_RUNNING, __ATOMIC_RELAXED);
    rc = pthread_create(&db->job_thread, NULL, presync_main, db);
    if (rc != 0) {
        __atomic_store_n(&db->presync, LOG_PRESYNC_IDLE, __ATOMIC_RELAXED);
        return 1; /* the rotation syncs it all, as before */
    }
    db->job_started = 1;
    return 0;
}

void tally_cork(tally *db)
{
    pthread_mutex_lock(&db->mu);
    db->corked = 1;
    pthread_mutex_unlock(&db->mu);
}

/* tally_uncork, and under ALWAYS too when syncs (tally_uncork_inline):
 * the batch is written, and synced if it must be, on this thread when the
 * token is free; else handed to the sync thread. */
static int uncork(tally *db, int syncs)
{
    uint64_t changes;
    size_t len;
    int rc, sleeping = 0, always = db->opts.sync == TALLY_SYNC_ALWAYS;

    pthread_mutex_lock(&db->mu);
    db->corked = 0;
    len = db->pend_len;
    if (len == 0 || (always && !syncs) || db->writing || db->rot ||
        tally_health(db) == TALLY_EFAILED) {
        /* Durable means synced, the sync thread holds the token, or it
         * must rotate first (it alone does): its job, woken once. */
        if (len > 0) {
            note_batch(db);
            sleeping = wake_sync(db);
        }
        pthread_mutex_unlock(&db->mu);
        wake_signal(db, sleeping);
        return 0;
    }
    db->writing = 1;
    changes = db->pend_changes;
    pthread_mutex_unlock(&db->mu);

    /* pend is this thread's to write: only it appends, and the sync thread
     * leaves pend alone while the token is taken.  synced may run ahead of
     * written until mu is taken below: only the token's holder reads both
     * (the sleeping sync thread compares them under EVERYSEC alone). */
    rc = write_frames(db, db->pend, len);
    if (rc != 0)
        sync_fail(db, "write", -rc);
    else if (always && (rc = sync_to(db, db->written + len)) != 0)
        sync_fail(db, "fdatasync", -rc);

    pthread_mutex_lock(&db->mu);
    db->writing = 0;
    db->pend_len = 0; /* written, or dropped as every batch after a failure */
    db->pend_changes = 0;
    db->frame_at = LOG_NO_FRAME;
    if (rc == 0) {
        db->written += len;
        publish_locked(db, db->written);
    } else {
        pthread_cond_broadcast(&db->done_cv); /* health moved */
    }
    /* A sync thread asleep without a deadline must now arm the everysec
     * tick (or it waited for the token to come back). */
    if (db->sync_idle == 1 &&
        (db->opts.sync == TALLY_SYNC_EVERYSEC || has_work(db)))
        sleeping = wake_sync(db);
    pthread_mutex_unlock(&db->mu);
    wake_signal(db, sleeping);
    if (rc != 0) {
        notify(db);
        return TALLY_EFAILED;
    }
    hist_add(db->batch_hist, changes);
    __atomic_fetch_add(&db->batch_sum, changes, __ATOMIC_RELAXED);
    if (always)
        db->inline_syncs++;
    return 1;
}

int tally_uncork(tally *db)
{
    return uncork(db, 0);
}

int tally_uncork_inline(tally *db)
{
    return uncork(db, 1);
}

unsigned tally_sync_estimate_us(const tally *db)
{
    return (unsigned)__atomic_load_n(&db->sync_ewma_us, __ATOMIC_RELAXED);
}

unsigned tally_sync_eta_us(const tally *db)
{
    /* kick_ns before flight_ns: see sync_main. */
    uint64_t kick = __atomic_load_n(&db->kick_ns, __ATOMIC_ACQUIRE);
    uint64_t since = __atomic_load_n(&db->flight_ns, __ATOMIC_ACQUIRE);
    uint64_t hold = __atomic_load_n(&db->hold_ewma_ns, __ATOMIC_RELAXED);
    uint64_t now;

    if (!since)
        since = kick;
    if (!since || !hold)
        return UINT_MAX;
    now = log_now_ns();
    if (since + hold <= now)
        return 0;
    return since + hold - now >= (uint64_t)UINT_MAX * 1000u
               ? UINT_MAX - 1
               : (unsigned)((since + hold - now) / 1000u);
}

int tally_wait(tally *db, tally_ticket t)
{
    if (t <= tally_durable(db))
        return TALLY_OK;
    if (t > tally_head(db))
        return TALLY_EINVAL;
    pthread_mutex_lock(&db->mu);
    db->waiters++; /* overrides a cork: see has_work */
    if (db->pend_len > 0) {
        note_batch(db);
        /* Signalled under mu: this thread waits on done_cv at once. */
        wake_signal(db, wake_sync(db));
    }
    while (tally_durable(db) < t && tally_health(db) != TALLY_EFAILED)
        pthread_cond_wait(&db->done_cv, &db->mu);
    db->waiters--;
    pthread_mutex_unlock(&db->mu);
    return tally_durable(db) >= t ? TALLY_OK : TALLY_EFAILED;
}
