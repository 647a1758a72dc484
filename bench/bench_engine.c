/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_engine.c - libtally's numbers, printed as a table:
 *   1. blocking incr under the default policy (always: each call waits for
 *      its fdatasync), one thread;
 *   2. asynchronous incr with group commit under always: the caller issues
 *      changes without waiting and the sync thread commits them in batches;
 *   3. reopen time of 1,000,000 counters with 16-byte keys after
 *      10,000,000 increments (written under TALLY_SYNC_NO to fill quickly;
 *      automatic snapshots at the default threshold keep the log short);
 *   4. memory per counter: malloc's in-use bytes (mallinfo2: uordblks +
 *      hblkhd) before and after opening that database, divided by the
 *      number of counters; it covers the table's slabs and the handle's
 *      buffers, not the bucket array (8-16 bytes per counter), which
 *      libtally maps itself when it is 1 MiB or more (bench_util.h).
 * Runs in a temporary directory under $TMPDIR (default /tmp), removed at
 * the end.  Usage: bench_engine [seconds per timed phase, default 2]
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "tally.h"

#define NCOUNTERS 1000000u
#define NINCRS 10000000u

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0, t0, t;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char base[4096], dir[4200];
    tally_ticket tk = 0;
    tally_stats st;
    uint64_t n, x = 88172645463325252ULL;
    char key[17];
    size_t before, after;
    tally *db;

    snprintf(base, sizeof(base), "%s/bench_engine.XXXXXX", tmp);
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    printf("%-52s %16s\n", "measure", "result");

    /* 1. Blocking, always. */
    snprintf(dir, sizeof(dir), "%s/blocking", base);
    db = bench_open(dir, TALLY_SYNC_ALWAYS, 0);
    t0 = bench_now();
    for (n = 0; (t = bench_now()) - t0 < secs; n++)
        bench_must(tally_incr(db, "k", 1, 1, NULL, NULL), db, "incr");
    printf("%-52s %12.0f op/s\n", "blocking incr, always, 1 thread", n / (t - t0));
    tally_stats_get(db, &st);
    printf("%-52s %12.0f us\n", "  mean fdatasync latency",
           st.syncs ? (double)st.sync_us_sum / st.syncs : 0.0);
    bench_must(tally_close(db), db, "close");

    /* 2. Async with group commit, always. */
    snprintf(dir, sizeof(dir), "%s/async", base);
    db = bench_open(dir, TALLY_SYNC_ALWAYS, 0);
    t0 = bench_now();
    for (n = 0; (n & 1023) || (t = bench_now()) - t0 < secs; n++) {
        snprintf(key, sizeof(key), "%016" PRIu64, n % 1000);
        bench_must(tally_incr(db, key, 16, 1, NULL, &tk), db, "incr");
    }
    bench_must(tally_wait(db, tk), db, "wait");
    t = bench_now();
    tally_stats_get(db, &st);
    printf("%-52s %12.0f op/s\n", "async incr + group commit, always (durable)",
           n / (t - t0));
    printf("%-52s %12.1f\n", "  mean changes per fdatasync",
           st.syncs ? (double)st.batch_sum / st.syncs : 0.0);
    bench_must(tally_close(db), db, "close");

    /* 3. Reopen after 10M increments over 1M counters. */
    snprintf(dir, sizeof(dir), "%s/reopen", base);
    db = bench_open(dir, TALLY_SYNC_NO, 0);
    t0 = bench_now();
    for (n = 0; n < NINCRS; n++) {
        uint64_t i = n < NCOUNTERS ? n : (x ^= x << 13, x ^= x >> 7,
                                           x ^= x << 17, x % NCOUNTERS);
        snprintf(key, sizeof(key), "%016" PRIu64, i);
        bench_must(tally_incr(db, key, 16, 1, NULL, &tk), db, "incr");
        if ((n & 4095) == 0)
            tally_step(db, 1024);
    }
    while (tally_step(db, 65536) == 1)
        usleep(1000);
    t = bench_now();
    tally_stats_get(db, &st);
    printf("%-52s %12.0f op/s\n", "fill: async incr, sync=no, 1M keys",
           NINCRS / (t - t0));
    printf("%-52s %12" PRIu64 "\n", "  automatic snapshots during the fill",
           st.snapshots);
    bench_must(tally_close(db), db, "close");

    before = bench_heap_used();
    t0 = bench_now();
    db = bench_open(dir, TALLY_SYNC_ALWAYS, 0);
    t = bench_now();
    after = bench_heap_used();
    tally_stats_get(db, &st);
    printf("%-52s %12.3f s\n", "reopen 1M counters after 10M increments",
           t - t0);
    printf("%-52s %12" PRIu64 "\n", "  log records replayed",
           st.recovered_records);
    printf("%-52s %12" PRIu64 " B\n", "  snapshot size", st.snapshot_bytes);
    printf("%-52s %12.1f B\n", "heap per counter (16-byte key; no buckets)",
           (double)(after - before) / (double)tally_count(db));
    if (tally_count(db) != NCOUNTERS) {
        fprintf(stderr, "expected %u counters, found %" PRIu64 "\n", NCOUNTERS,
                tally_count(db));
        return 1;
    }
    bench_must(tally_close(db), db, "close");
    bench_rmdir_all(base);
    return 0;
}
