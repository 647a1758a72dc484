/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * handle.c - a handle's life: tally_open (directory, lock, recovery, sync
 * thread), tally_close (final sync, thread stop, unlock) and statistics.
 * The pieces are in recover.c, log.c and snap.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "mem.h"

static tally *handle_new(const char *dir, const tally_options *opts)
{
    tally *db = mem_calloc(1, sizeof(*db));

    if (opts)
        db->opts = *opts;
    else
        tally_options_init(&db->opts);
    db->dir = mem_strdup(dir);
    db->dirfd = db->lockfd = db->efd = -1;
    db->res_fd = db->log_fd = -1;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->done_cv, NULL);
    return db;
}

/* Free a handle whose sync thread is not running. */
static void handle_free(tally *db)
{
    db_batch_free(db);
    table_free(&db->table);
    once_free(&db->once);
    if (db->log_fd >= 0)
        close(db->log_fd);
    else if (db->res_fd >= 0)
        close(db->res_fd);
    if (db->efd >= 0)
        close(db->efd);
    if (db->lockfd >= 0)
        close(db->lockfd); /* releases the flock */
    if (db->dirfd >= 0)
        close(db->dirfd);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->done_cv);
    free(db->pend);
    free(db->wbuf);
    free(db->scratch);
    free(db->snap.buf);
    free(db->dir);
    free(db);
}

static int open_err(char *err, int code, const char *fmt, const char *a,
                    const char *b)
{
    if (err)
        snprintf(err, TALLY_ERRMAX, fmt, a, b);
    return code;
}

int tally_open(const char *dir, const tally_options *opts, tally **dbp,
               char *err)
{
    tally *db;
    uint64_t t0 = log_now_ns();
    int rc;

    if (!dbp)
        return open_err(err, TALLY_EINVAL, "%s%s", "no handle pointer", "");
    *dbp = NULL;
    if (!dir)
        return open_err(err, TALLY_EINVAL, "%s%s", "no data directory", "");
    if (opts && (opts->sync < TALLY_SYNC_ALWAYS || opts->sync > TALLY_SYNC_NO))
        return open_err(err, TALLY_EINVAL, "%s%s", "unknown sync policy", "");
    db = handle_new(dir, opts);
    if (db->opts.create && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = open_err(err, TALLY_EIO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    db->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (db->dirfd < 0) {
        rc = open_err(err, TALLY_EIO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((rc = recover_lock(db->dirfd, dir, &db->lockfd, err)) != 0)
        goto fail;
    db->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (db->efd < 0) {
        rc = open_err(err, TALLY_EIO, "eventfd: %s%s", strerror(errno), "");
        goto fail;
    }
    if ((rc = recover_open(db, err)) != 0)
        goto fail;
    /* Replay brought back counters whose time has passed: drop them before
     * anyone can see them (nothing to write, their time is on disk). */
    db_expire_all(db);
    db->recovery_ns = log_now_ns() - t0;
    if ((rc = log_start_thread(db)) != 0) {
        if (err)
            snprintf(err, TALLY_ERRMAX, "%s", db->errmsg);
        goto fail;
    }
    *dbp = db;
    return TALLY_OK;
fail:
    handle_free(db);
    return rc;
}

int tally_close(tally *db)
{
    int rc;

    if (!db)
        return TALLY_OK;
    snap_abandon(db);
    log_join_job(db); /* it needs the sync thread to get its log synced */
    log_stop_thread(db);
    if (db->snap.job) { /* finished (or failed) by the job's thread */
        free(db->snap.job);
        db->snap.job = NULL;
    }
    rc = tally_health(db) == TALLY_EFAILED ? TALLY_EFAILED : TALLY_OK;
    handle_free(db);
    return rc;
}

void tally_stats_get(const tally *db, tally_stats *st)
{
    int i;

    memset(st, 0, sizeof(*st));
    st->counters = db->table.count;
    st->head = tally_head(db);
    st->durable = tally_durable(db);
    st->log_bytes = st->head - db->log_base +
                    db->log_files * CODEC_FILE_HDR;
    st->snapshot_bytes = db->snap_bytes;
    st->last_snapshot_unix = db->snap_bytes ? db->snap_time : 0;
    st->snapshot_running = db->snap.running != 0;
    st->snapshots = db->snapshots;
    st->syncs = __atomic_load_n(&db->syncs, __ATOMIC_RELAXED);
    st->inline_syncs = db->inline_syncs;
    st->changes = db->changes;
    st->recovery_ns = db->recovery_ns;
    st->recovered_records = db->recovered_records;
    st->torn_bytes = db->torn_bytes;
    st->health = tally_health(db);
    st->sync = db->opts.sync;
    for (i = 0; i < TALLY_HIST_BUCKETS; i++) {
        st->sync_us_hist[i] =
            __atomic_load_n(&db->sync_us_hist[i], __ATOMIC_RELAXED);
        st->batch_hist[i] =
            __atomic_load_n(&db->batch_hist[i], __ATOMIC_RELAXED);
    }
    st->sync_us_sum = __atomic_load_n(&db->sync_us_sum, __ATOMIC_RELAXED);
    st->batch_sum = __atomic_load_n(&db->batch_sum, __ATOMIC_RELAXED);
    st->once_ids = db->once.count;
    st->once_bytes = once_memory(&db->once);
    st->once_replays = db->once.replays;
    st->expires = db->table.xcount;
    st->expired = db->table.expired;
    st->expire_bytes = table_expire_memory(&db->table);
}
