/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_grow.c - the latency of single requests while a server's counter
 * set grows from nothing: INCR of N new keys ("grow:<n>") over RESP, to
 * tallyd or redis-server, with at most W requests in flight (W = 1: each
 * reply awaited before the next request), timing every request from its
 * send to its reply.  A one-shot rehash of a big table shows as one slow
 * request, so the table's point is the maximum and the p99.9.  Driven by
 * grow_vs_redis.sh, which starts the servers; never run by the tests.
 *
 * Usage: bench_grow PORT N [W]
 * Prints one line: "n rps p50_us p99_us p999_us max_us at_key slow_1ms",
 * at_key being the count of keys created when the slowest reply came.
 * With BENCH_GROW_SLOW_US=U, every reply of U µs or more is also printed on
 * stderr with its CLOCK_MONOTONIC time, to find it in a profile.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define HIST_US 1000000 /* 1 µs buckets up to 1 s; slower ones go in the last */
#define MAX_W 256

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_grow: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_to(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        die("socket");
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Append the RESP request INCR grow:<i> to p; returns its length. */
static size_t put_incr(char *p, uint64_t i)
{
    char key[32];
    int k = snprintf(key, sizeof(key), "grow:%llu", (unsigned long long)i);

    return (size_t)sprintf(p, "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", k, key);
}

/* Bytes of the first whole reply line in buf[0..n) (":1\r\n"), 0 if not
 * all there yet.  An error reply ends the run. */
static size_t reply_len(const char *buf, size_t n)
{
    const char *nl = memchr(buf, '\n', n);

    if (!nl)
        return 0;
    if (buf[0] != ':') {
        fprintf(stderr, "bench_grow: unexpected reply: %.*s\n",
                (int)(nl - buf), buf);
        exit(1);
    }
    return (size_t)(nl - buf) + 1;
}

int main(int argc, char **argv)
{
    uint64_t n, sent = 0, done = 0, sent_at[MAX_W], max_ns = 0, at = 0;
    uint64_t slow = 0, t0, lat;
    uint32_t *hist;
    char out[MAX_W * 64], in[65536];
    size_t have = 0, len, used;
    ssize_t r;
    uint64_t slow_us = 0;
    const char *env = getenv("BENCH_GROW_SLOW_US");
    int fd, w;

    if (env)
        slow_us = strtoull(env, NULL, 10);
    if (argc < 3) {
        fprintf(stderr, "usage: bench_grow PORT N [W]\n");
        return 2;
    }
    n = strtoull(argv[2], NULL, 10);
    w = argc > 3 ? atoi(argv[3]) : 1;
    if (w < 1 || w > MAX_W) {
        fprintf(stderr, "bench_grow: W from 1 to %d\n", MAX_W);
        return 2;
    }
    hist = calloc(HIST_US + 1, sizeof(*hist));
    if (!hist)
        die("calloc");
    fd = connect_to(atoi(argv[1]));
    t0 = now_ns();
    while (done < n) {
        /* Fill the window: one write for what goes out now. */
        len = 0;
        while (sent < n && sent - done < (uint64_t)w) {
            len += put_incr(out + len, sent);
            sent_at[sent % MAX_W] = now_ns();
            sent++;
        }
        if (len && write(fd, out, len) != (ssize_t)len)
            die("write");
        r = read(fd, in + have, sizeof(in) - have);
        if (r <= 0)
            die(r == 0 ? "server closed" : "read");
        have += (size_t)r;
        uint64_t t = now_ns();
        used = 0;
        while ((len = reply_len(in + used, have - used)) != 0) {
            lat = t - sent_at[done % MAX_W];
            if (lat > max_ns) {
                max_ns = lat;
                at = done;
            }
            if (lat >= 1000000)
                slow++;
            /* For lining a slow reply up with a profile of the server
             * (perf record -k mono): when it came, on CLOCK_MONOTONIC. */
            if (slow_us && lat >= slow_us * 1000)
                fprintf(stderr, "slow %" PRIu64 " us key %" PRIu64
                        " at %" PRIu64 ".%06" PRIu64 "\n", lat / 1000, done,
                        t / 1000000000u, t / 1000 % 1000000u);
            hist[lat / 1000 < HIST_US ? lat / 1000 : HIST_US]++;
            used += len;
            done++;
        }
        memmove(in, in + used, have - used);
        have -= used;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("%" PRIu64 " %.0f %" PRIu64 " %" PRIu64 " %" PRIu64 " %.0f %"
           PRIu64 " %" PRIu64 "\n", n, (double)n / secs,
           bench_hist_pct(hist, HIST_US, n, 0.5),
           bench_hist_pct(hist, HIST_US, n, 0.99),
           bench_hist_pct(hist, HIST_US, n, 0.999), (double)max_ns / 1e3, at,
           slow);
    close(fd);
    free(hist);
    return 0;
}
