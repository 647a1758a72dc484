/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_expire.c - what expiry costs in libtally, printed as tables:
 *   1. memory per counter without and with an expiry, for 14- and 16-byte
 *      keys (malloc's in-use bytes, mallinfo2 uordblks + hblkhd, around
 *      setting 1,000,000 counters, then around giving each an expiry);
 *   2. active expiry while 1,000,000 counters with random TTLs (2-7 s)
 *      expire: a loop that does what tallyd's does (tally_step(4096) every
 *      100 ms, every 10 ms while it reports more work) and between ticks
 *      runs INCR (asynchronous, TALLY_SYNC_NO) on 10,000 other counters:
 *      the share of the loop's time spent in tally_step and INCR's latency
 *      percentiles, against the same loop with no counters expiring;
 *   3. reopen time of 1,000,000 counters, none or half of them with a TTL
 *      (an hour ahead), from the log and from a snapshot.
 * Runs in a temporary directory under $TMPDIR (default /tmp), removed at
 * the end.  Usage: bench_expire [seconds of phase 2, default 8 [phases,
 * default 123]]
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

#define N 1000000u
#define HOT 10000u
#define STEP_BUDGET 4096

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static tally *must_open(const char *dir)
{
    return bench_open(dir, TALLY_SYNC_NO, UINT64_MAX);
}

/* Key i of width klen (14 or 16 bytes): "c:" or "cntr:" + 12/11 digits. */
static size_t key(char *k, unsigned i, int klen)
{
    return (size_t)snprintf(k, 32, klen == 14 ? "c:%012u" : "cntr:%011u", i);
}

/* Drain the pending log so its buffer does not count as table memory. */
static void settle(tally *db)
{
    bench_must(tally_wait(db, tally_head(db)), db, "wait");
}

/* Heap bytes per counter after setting N counters in a fresh database,
 * each with an expiry (an hour ahead) or none. */
static double per_counter(const char *base, int klen, int with_ttl)
{
    char dir[600], k[32];
    tally_ticket t;
    int64_t far = wall_ms() + 3600 * 1000;

    snprintf(dir, sizeof dir, "%s/mem%d-%d", base, klen, with_ttl);
    tally *db = must_open(dir);
    size_t h0 = bench_heap_used();
    for (unsigned i = 0; i < N; i++) {
        bench_must(tally_setx(db, k, key(k, i, klen), i, with_ttl ? far + i : 0,
                        &t), db, "setx");
        if (i % 65536 == 0)
            settle(db);
    }
    settle(db);
    double b = (double)(bench_heap_used() - h0) / N;
    tally_close(db);
    return b;
}

static void memory(const char *base)
{
    printf("\n1. memory per counter (%u counters, each set once)\n", N);
    printf("%-8s %14s %14s %14s\n", "key", "no expiry", "with expiry",
           "extra");
    for (int klen = 14; klen <= 16; klen += 2) {
        double a = per_counter(base, klen, 0), b = per_counter(base, klen, 1);
        printf("%-8d %12.1f B %12.1f B %12.1f B\n", klen, a, b, b - a);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The loop of phase 2; expiring says whether N counters with TTLs were
 * set first. */
static void tick_loop(const char *dir, int expiring, double seconds)
{
    tally *db = must_open(dir);
    tally_ticket t;
    tally_stats st;
    char k[32];
    size_t cap = 1u << 24, n = 0;
    uint64_t *lat = malloc(cap * sizeof(*lat));
    double step_s = 0, step_max = 0, start, end, next_tick;
    uint64_t steps = 0, left = 0;
    unsigned seed = 1;

    if (!lat)
        exit(1);
    if (expiring) {
        for (unsigned i = 0; i < N; i++) {
            /* From the moment it is set, so none expires before the loop
             * starts (setting them takes a second or two). */
            int64_t x = wall_ms() + 2000 + (int64_t)(rand_r(&seed) % 5000);
            bench_must(tally_setx(db, k, key(k, i, 16), i, x, &t), db, "setx");
            if (i % 65536 == 0)
                settle(db);
        }
        settle(db);
    }
    start = bench_now();
    end = start + seconds;
    next_tick = start;
    while (bench_now() < end) {
        double t0 = bench_now();
        if (t0 >= next_tick) {
            int r = tally_step(db, STEP_BUDGET);
            double t1 = bench_now();
            step_s += t1 - t0;
            if (t1 - t0 > step_max)
                step_max = t1 - t0;
            steps++;
            next_tick = t1 + (r == 1 ? 0.010 : 0.100);
            continue;
        }
        snprintf(k, sizeof k, "hot:%u", rand_r(&seed) % HOT);
        bench_must(tally_incr(db, k, strlen(k), 1, NULL, &t), db, "incr");
        if (n < cap)
            lat[n++] = (uint64_t)((bench_now() - t0) * 1e9);
        if (n % 65536 == 0)
            settle(db);
    }
    tally_stats_get(db, &st);
    left = st.expires;
    qsort(lat, n, sizeof(*lat), cmp_u64);
    printf("%-10s %9.2f%% %8" PRIu64 " %8.2f %9" PRIu64 " %7" PRIu64
           " %8.0f %8.0f %8.0f %8.0f\n",
           expiring ? "expiring" : "baseline", 100 * step_s / seconds, steps,
           step_max * 1e3,
           st.expired, left, n ? lat[n / 2] / 1e3 : 0,
           n ? lat[n * 99 / 100] / 1e3 : 0, n ? lat[n * 999 / 1000] / 1e3 : 0,
           n ? lat[n - 1] / 1e3 : 0);
    free(lat);
    tally_close(db);
}

static void active(const char *base, double seconds)
{
    char dir[600];

    printf("\n2. active expiry: %u counters with TTLs 2-7 s from when each "
           "was set, %.0f s of INCR between ticks\n", N, seconds);
    printf("%-10s %10s %8s %8s %9s %7s %8s %8s %8s %8s\n", "run", "step CPU",
           "steps", "max ms", "expired", "left", "p50 us", "p99 us",
           "p99.9 us", "max us");
    snprintf(dir, sizeof dir, "%s/tick0", base);
    tick_loop(dir, 0, seconds);
    snprintf(dir, sizeof dir, "%s/tick1", base);
    tick_loop(dir, 1, seconds);
}

static double reopen_s(const char *dir)
{
    double t0 = bench_now();
    tally *db = must_open(dir);
    double s = bench_now() - t0;

    if (tally_count(db) != N) {
        fprintf(stderr, "reopen found %" PRIu64 " counters\n",
                tally_count(db));
        exit(1);
    }
    tally_close(db);
    return s;
}

static void reopen(const char *base)
{
    printf("\n3. reopen of %u counters (16-byte keys)\n", N);
    printf("%-18s %12s %14s\n", "with a TTL", "from log", "from snapshot");
    for (int half = 0; half <= 1; half++) {
        char dir[600], k[32];
        snprintf(dir, sizeof dir, "%s/reopen%d", base, half);
        tally *db = must_open(dir);
        tally_ticket t;
        int64_t far = wall_ms() + 3600 * 1000;

        for (unsigned i = 0; i < N; i++) {
            size_t kl = key(k, i, 16);
            if (half && i % 2)
                bench_must(tally_setx(db, k, kl, i, far + i, &t), db, "setx");
            else
                bench_must(tally_set(db, k, kl, i, &t), db, "set");
            if (i % 65536 == 0)
                settle(db);
        }
        tally_close(db);
        double from_log = reopen_s(dir);
        db = must_open(dir);
        bench_must(tally_snapshot(db), db, "snapshot");
        tally_close(db);
        double from_snap = reopen_s(dir);
        printf("%-18s %10.3f s %12.3f s\n", half ? "half" : "none", from_log,
               from_snap);
    }
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    char base[512];
    double seconds = argc > 1 ? atof(argv[1]) : 8;
    const char *phases = argc > 2 ? argv[2] : "123";

    snprintf(base, sizeof base, "%s/tally-bench-expire-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    if (strchr(phases, '1'))
        memory(base);
    if (strchr(phases, '2'))
        active(base, seconds > 0 ? seconds : 8);
    if (strchr(phases, '3'))
        reopen(base);
    bench_rmdir_all(base);
    return 0;
}
