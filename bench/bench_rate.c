/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_rate.c - one RESP client sending INCR at a fixed rate, each reply
 * awaited before the next request: a modest real service, as opposed to
 * redis-benchmark's back-to-back load.  Request i is sent at t0 + i/rate
 * (at once if the previous reply came later than that, never in a burst
 * to catch up), so the server sits idle between requests and what it
 * burns while waiting shows in its CPU per request.  Prints one line:
 * "rps p50_ms p99_ms requests"; bench/cpu_vs_redis.sh reads the server's
 * CPU around it.
 *
 *   bench_rate [-h host] [-p port] [-r rate] [-d seconds]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_net.h"

static void sleep_until(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Send req and read one integer reply (":n\r\n"); exit on anything else. */
static void round_trip(int fd, const char *req, size_t n)
{
    char in[64];
    size_t got = 0;

    if (send(fd, req, n, 0) != (ssize_t)n) {
        perror("bench_rate: send");
        exit(1);
    }
    while (got < 2 || in[got - 1] != '\n') {
        ssize_t r = read(fd, in + got, sizeof in - got);
        if (r <= 0 || (got += (size_t)r) == sizeof in) {
            fprintf(stderr, "bench_rate: bad or no reply\n");
            exit(1);
        }
    }
    if (in[0] != ':') {
        fprintf(stderr, "bench_rate: reply %.*s", (int)got, in);
        exit(1);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 6379, opt;
    double rate = 700, secs = 5;

    while ((opt = getopt(argc, argv, "h:p:r:d:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'd': secs = atof(optarg); break;
        default:
            fprintf(stderr, "usage: bench_rate [-h host] [-p port] [-r rate] "
                    "[-d seconds]\n");
            return 2;
        }
    }
    if (rate <= 0 || secs <= 0) {
        fprintf(stderr, "bench_rate: rate and seconds must be positive\n");
        return 2;
    }
    size_t total = (size_t)(rate * secs), done = 0;
    uint64_t *lat = malloc((total ? total : 1) * sizeof *lat);
    uint64_t gap = (uint64_t)(1e9 / rate);
    static const char req[] = "*2\r\n$4\r\nINCR\r\n$10\r\nbench:rate\r\n";
    int fd = bench_dial("bench_rate", host, port);

    if (!lat) {
        perror("bench_rate");
        return 1;
    }
    uint64_t t0 = bench_now_ns(), next = t0;
    for (; done < total; done++, next += gap) {
        uint64_t t = bench_now_ns();
        if (t < next)
            sleep_until(next);
        else
            next = t; /* late: go on from here, no burst */
        t = bench_now_ns();
        round_trip(fd, req, sizeof req - 1);
        lat[done] = bench_now_ns() - t;
    }
    double elapsed = (double)(bench_now_ns() - t0) / 1e9;
    qsort(lat, done, sizeof *lat, cmp_u64);
    printf("%.1f %.3f %.3f %zu\n", (double)done / elapsed,
           (double)lat[done / 2] / 1e6, (double)lat[done * 99 / 100] / 1e6,
           done);
    close(fd);
    free(lat);
    return 0;
}
