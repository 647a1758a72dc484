/*
 * handle.c - opening and closing a handle, waiting for tickets, statistics.
 *
 * STEP 1 (in-memory only): nothing is written to disk yet; durable == head.
 * The log, sync thread, recovery and snapshots replace this next.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "mem.h"

int tally_open(const char *dir, const tally_options *opts, tally **dbp,
               char *err)
{
    tally *db;
    uint64_t seed;
    struct stat st;

    *dbp = NULL;
    if (!dir) {
        if (err)
            snprintf(err, TALLY_ERRMAX, "no data directory given");
        return TALLY_EINVAL;
    }
    db = mem_calloc(1, sizeof(*db));
    if (opts)
        db->opts = *opts;
    else
        tally_options_init(&db->opts);
    if (stat(dir, &st) != 0 && (!db->opts.create || mkdir(dir, 0755) != 0)) {
        if (err)
            snprintf(err, TALLY_ERRMAX, "%s: %s", dir, strerror(errno));
        free(db);
        return TALLY_EIO;
    }
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
    table_init(&db->table, seed, 0);
    db->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    db->dir = mem_strdup(dir);
    *dbp = db;
    return TALLY_OK;
}

int tally_close(tally *db)
{
    if (!db)
        return TALLY_OK;
    table_free(&db->table);
    if (db->efd >= 0)
        close(db->efd);
    free(db->scratch);
    free(db->dir);
    free(db);
    return TALLY_OK;
}

int tally_wait(tally *db, tally_ticket t)
{
    if (t <= tally_durable(db))
        return TALLY_OK;
    return TALLY_EFAILED;
}

int tally_snapshot(tally *db)
{
    snprintf(db->errmsg, sizeof(db->errmsg), "snapshots not written yet");
    return TALLY_EIO;
}

int tally_snapshot_begin(tally *db)
{
    return tally_snapshot(db);
}

int tally_step(tally *db, unsigned budget)
{
    return 0;
}

void tally_stats_get(const tally *db, tally_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->counters = db->table.count;
    st->head = tally_head(db);
    st->durable = tally_durable(db);
    st->changes = db->changes;
    st->health = tally_health(db);
    st->sync = db->opts.sync;
}

int tally_check(const char *dir, char *report)
{
    if (report)
        snprintf(report, TALLY_ERRMAX, "check not written yet");
    return TALLY_EIO;
}

int tally_repair(const char *dir, char *report)
{
    if (report)
        snprintf(report, TALLY_ERRMAX, "repair not written yet");
    return TALLY_EIO;
}
