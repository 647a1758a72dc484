/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_util.h - what the engine benchmarks (bench_*.c) share: a monotonic
 * clock, opening a database or exiting, checking a result or exiting, the
 * heap in use and removing the temporary directory.  Static inline, so
 * each benchmark stays one program.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tally.h"

static inline double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Open dir under the sync policy, automatic snapshots at snapshot_min_log
 * log bytes (0: the default), or exit with the engine's message. */
static inline tally *bench_open(const char *dir, tally_sync sync,
                                uint64_t snapshot_min_log)
{
    tally_options o;
    char err[TALLY_ERRMAX];
    tally *db;
    int rc;

    tally_options_init(&o);
    o.sync = sync;
    if (snapshot_min_log)
        o.snapshot_min_log = snapshot_min_log;
    rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_OK) {
        fprintf(stderr, "open %s: %s: %s\n", dir, tally_strerror(rc), err);
        exit(1);
    }
    return db;
}

/* Exit if rc is an error (TALLY_NOTFOUND is a result). */
static inline void bench_must(int rc, tally *db, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s: %s: %s\n", what, tally_strerror(rc),
                tally_errmsg(db));
        exit(1);
    }
}

static inline void bench_rmdir_all(const char *dir)
{
    char cmd[4200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* malloc's in-use bytes: uordblks + hblkhd (its mmap'd blocks).  Bucket
 * arrays of 1 MiB and more are mapped by libtally itself (mem_zmap, so that
 * resizes never memset or munmap a big array at once) and are not counted:
 * add 8-16 bytes per counter for them (test_engine_rehash measures the
 * table's whole memory). */
static inline size_t bench_heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

/* The q-quantile (0..1) of total latencies counted in hist, whose bucket i
 * counts those of i µs (up to n - 1; bucket n holds the slower ones). */
static inline uint64_t bench_hist_pct(const uint32_t *hist, uint64_t n,
                                      uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;

    for (uint64_t us = 0; us < n; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return n;
}

#endif /* BENCH_UTIL_H */
