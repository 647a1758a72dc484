/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_growlib.c - the latency of each tally_incr while libtally's counter
 * set grows from 0 to N new counters (default 10,000,000), in process: no
 * network and no other server, so what shows is the table (and the log
 * write), not the loopback or the scheduler's other tenants.  A loop that
 * does what tallyd's does (tally_step(4096) every 10 ms) runs the INCRs
 * (TALLY_SYNC_NO) and times each call, by the wall clock and by the
 * thread's CPU clock: on a shared machine the wall clock also counts the
 * times the scheduler ran someone else, the CPU clock only the work the
 * call did (a rehash, page faults), so a stall of the table shows in both.
 * Prints one table row: calls/s; p50, p99, p99.9 and max (µs) by the wall
 * clock; calls of 1 ms or more; the count at the slowest call; p99.9 and
 * max by the CPU clock and the count at the costliest; and the resident set
 * at the end (VmRSS: the bucket arrays are
 * mapped on their own since incremental resizing, so malloc's counts would
 * miss them); then the calls of 1 ms or more of CPU, and the tally_step
 * calls' CPU: p99.9, max and how many took 1 ms or more (tallyd runs them
 * on its loop too, so a slow slice of a snapshot stalls every request as
 * a slow call does).
 * With BENCH_GROWLIB_CORK=1 each call is corked as tallyd corks a pass
 * (tally_cork, tally_incr, tally_uncork, timed together): under
 * TALLY_SYNC_NO uncork then writes the record itself instead of waking
 * the sync thread, whose FUTEX_WAKE is the costliest system call of a bare
 * call on a busy machine.
 * grow_vs_redis.sh runs it beside the servers; build it against an older
 * libtally to compare.  Runs in a temporary directory under $TMPDIR
 * (default /tmp), removed at the end.  Usage: bench_growlib [N]
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "tally.h"

#define HIST_US 1000000

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Count lat (µs) in hist, keeping the maximum and where it was. */
static void record(uint32_t *hist, double lat, uint64_t i, double *max,
                   uint64_t *at)
{
    if (lat > *max) {
        *max = lat;
        *at = i;
    }
    hist[lat < HIST_US ? (size_t)lat : HIST_US]++;
}

/* This process's resident set, MiB. */
static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lf", &kb) == 1)
            break;
    fclose(f);
    return kb / 1024;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[4096], key[32];
    uint32_t *hist = calloc(HIST_US + 1, sizeof(*hist));
    uint32_t *chist = calloc(HIST_US + 1, sizeof(*chist));
    uint32_t *shist = calloc(HIST_US + 1, sizeof(*shist));
    double t0, t, c0, next_step, lat, max = 0, cmax = 0, smax = 0, start;
    uint64_t i, at = 0, cat = 0, sat = 0, slow = 0, cslow = 0, steps = 0;
    uint64_t sslow = 0;
    tally *db;
    int k, cork = getenv("BENCH_GROWLIB_CORK") &&
                  strcmp(getenv("BENCH_GROWLIB_CORK"), "1") == 0;

    if (!hist || !chist || !shist)
        return 1;
    snprintf(dir, sizeof(dir), "%s/bench_growlib.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    db = bench_open(dir, TALLY_SYNC_NO, 0);
    start = next_step = bench_now();
    for (i = 0; i < n; i++) {
        k = snprintf(key, sizeof(key), "grow:%" PRIu64, i);
        t0 = bench_now();
        c0 = cpu_now();
        if (cork)
            tally_cork(db);
        bench_must(tally_incr(db, key, (size_t)k, 1, NULL, NULL), db,
                   "tally_incr");
        if (cork && tally_uncork(db) < 0) {
            fprintf(stderr, "bench_growlib: tally_uncork failed\n");
            return 1;
        }
        lat = (cpu_now() - c0) * 1e6;
        cslow += lat >= 1000;
        record(chist, lat, i, &cmax, &cat);
        t = bench_now();
        lat = (t - t0) * 1e6;
        slow += lat >= 1000;
        record(hist, lat, i, &max, &at);
        if (t >= next_step) {
            c0 = cpu_now();
            bench_must(tally_step(db, 4096), db, "tally_step");
            lat = (cpu_now() - c0) * 1e6;
            sslow += lat >= 1000;
            record(shist, lat, i, &smax, &sat);
            steps++;
            next_step = t + 0.010;
        }
    }
    t = bench_now();
    printf("%" PRIu64 " %.0f %" PRIu64 " %" PRIu64 " %" PRIu64 " %.0f %"
           PRIu64 " %" PRIu64 " %" PRIu64 " %.0f %" PRIu64 " %.0f %" PRIu64
           " %" PRIu64 " %.0f %" PRIu64 "\n", n,
           (double)n / (t - start), bench_hist_pct(hist, HIST_US, n, 0.5),
           bench_hist_pct(hist, HIST_US, n, 0.99),
           bench_hist_pct(hist, HIST_US, n, 0.999), max, slow, at,
           bench_hist_pct(chist, HIST_US, n, 0.999), cmax, cat, rss_mib(),
           cslow, steps ? bench_hist_pct(shist, HIST_US, steps, 0.999) : 0,
           smax, sslow);
    if (tally_close(db) != TALLY_OK)
        fprintf(stderr, "bench_growlib: tally_close failed\n");
    bench_rmdir_all(dir);
    free(hist);
    free(chist);
    free(shist);
    return 0;
}
