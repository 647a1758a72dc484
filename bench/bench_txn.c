/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_txn.c - a RESP load generator for transactions and scripts: N
 * connections, each with one request in flight, for a fixed time.  A
 * request is either MULTI + 10 INCRs of random keys + EXEC (-m multi),
 * one EVALSHA of a fixed-window rate limiter (INCR, and EXPIRE if the
 * count is 1; -m script), loaded with SCRIPT LOAD first, or one INCRBY of
 * a random key (-m incrby) or the same as INCRBY.ONCE with an id never used
 * before (-m once: the process id, the start time and a sequence number;
 * tally only).  Prints one table row: requests/s and latency percentiles
 * (p50, p99) from send to the last byte of the reply.
 * bench/txn_vs_redis.sh runs it against tallyd and redis-server,
 * bench/once_vs_plain.sh against tallyd alone.
 *
 * Replies are counted by their "\r\n": every reply these requests get is
 * made of one-line parts (+OK, +QUEUED, *10, :n), 22 lines for a
 * transaction and 1 for the script.
 *
 *   bench_txn [-h host] [-p port] [-c conns] [-d seconds]
 *             [-m multi|script|incrby|once] [-r keys] [-l label]
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_net.h"
#include "util.h"

#define RATE_LIMITER                                                        \
    "local n = redis.call('INCR', KEYS[1]) "                               \
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"

struct tconn {
    int fd;
    uint64_t sent_ns;
    size_t lines_left;
};

static void add_arg(struct buf *b, const char *s)
{
    buf_printf(b, "$%zu\r\n%s\r\n", strlen(s), s);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("bench_txn: write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* SCRIPT LOAD the rate limiter on fd; sha gets its name. */
static void load_script(int fd, char sha[41])
{
    struct buf b = BUF_INIT;
    char in[256];
    size_t got = 0;

    buf_adds(&b, "*3\r\n");
    add_arg(&b, "SCRIPT");
    add_arg(&b, "LOAD");
    add_arg(&b, RATE_LIMITER);
    send_all(fd, b.p, b.len);
    buf_free(&b);
    while (got < 47) { /* "$40\r\n" + 40 + "\r\n" */
        ssize_t r = read(fd, in + got, sizeof in - got);
        if (r <= 0) {
            fprintf(stderr, "bench_txn: SCRIPT LOAD got no answer\n");
            exit(1);
        }
        got += (size_t)r;
    }
    if (strncmp(in, "$40\r\n", 5) != 0) {
        fprintf(stderr, "bench_txn: SCRIPT LOAD answered %.*s\n", (int)got,
                in);
        exit(1);
    }
    memcpy(sha, in + 5, 40);
    sha[40] = 0;
}

enum mode { MODE_MULTI, MODE_SCRIPT, MODE_INCRBY, MODE_ONCE };
static const char *const mode_names[] = {"multi", "script", "incrby", "once"};

/* One request into b; returns the reply lines it will get. */
static size_t request(struct buf *b, enum mode mode, const char *sha,
                      unsigned keys, unsigned *seed)
{
    static unsigned long long seq;
    static uint64_t run;
    char key[32], id[64];

    buf_clear(b);
    if (mode == MODE_INCRBY || mode == MODE_ONCE) {
        snprintf(key, sizeof key, "ib:%u", (unsigned)rand_r(seed) % keys);
        buf_adds(b, mode == MODE_ONCE ? "*4\r\n" : "*3\r\n");
        add_arg(b, mode == MODE_ONCE ? "INCRBY.ONCE" : "INCRBY");
        add_arg(b, key);
        add_arg(b, "1");
        if (mode == MODE_ONCE) {
            if (!run)
                run = bench_now_ns() ^ ((uint64_t)getpid() << 40);
            snprintf(id, sizeof id, "%llx:%llu", (unsigned long long)run,
                     seq++);
            add_arg(b, id);
        }
        return 1;
    }
    if (mode == MODE_SCRIPT) {
        snprintf(key, sizeof key, "rl:%u", (unsigned)rand_r(seed) % keys);
        buf_adds(b, "*5\r\n");
        add_arg(b, "EVALSHA");
        add_arg(b, sha);
        add_arg(b, "1");
        add_arg(b, key);
        add_arg(b, "60");
        return 1;
    }
    buf_adds(b, "*1\r\n");
    add_arg(b, "MULTI");
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "tx:%u", (unsigned)rand_r(seed) % keys);
        buf_adds(b, "*2\r\n");
        add_arg(b, "INCR");
        add_arg(b, key);
    }
    buf_adds(b, "*1\r\n");
    add_arg(b, "EXEC");
    return 22;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *label = "server";
    int port = 6379, conns = 1, secs = 3, opt;
    enum mode mode = MODE_MULTI;
    unsigned keys = 100000, seed = 1;
    char sha[41] = "";

    while ((opt = getopt(argc, argv, "h:p:c:d:m:r:l:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': secs = atoi(optarg); break;
        case 'm':
            for (mode = MODE_MULTI; mode <= MODE_ONCE; mode++)
                if (strcmp(optarg, mode_names[mode]) == 0)
                    break;
            if (mode > MODE_ONCE) {
                fprintf(stderr, "bench_txn: -m multi, script, incrby or once\n");
                return 2;
            }
            break;
        case 'r': keys = (unsigned)atoi(optarg); break;
        case 'l': label = optarg; break;
        default:
            fprintf(stderr, "usage: bench_txn [-h host] [-p port] [-c conns] "
                            "[-d seconds] [-m multi|script|incrby|once] "
                            "[-r keys] "
                            "[-l label]\n");
            return 2;
        }
    }
    if (conns < 1 || keys < 1 || secs < 1)
        return 2;
    struct tconn *c = xcalloc((size_t)conns, sizeof *c);
    struct pollfd *pf = xcalloc((size_t)conns, sizeof *pf);
    size_t cap = 1 << 20, n = 0;
    uint64_t *lat = xmalloc(cap * sizeof *lat);
    struct buf req = BUF_INIT;
    char in[65536];

    for (int i = 0; i < conns; i++) {
        c[i].fd = bench_dial("bench_txn", host, port);
        pf[i].fd = c[i].fd;
        pf[i].events = POLLIN;
    }
    if (mode == MODE_SCRIPT)
        load_script(c[0].fd, sha);
    uint64_t start = bench_now_ns(), end = start + (uint64_t)secs * 1000000000u;
    for (int i = 0; i < conns; i++) {
        c[i].lines_left = request(&req, mode, sha, keys, &seed);
        c[i].sent_ns = bench_now_ns();
        send_all(c[i].fd, req.p, req.len);
    }
    while (bench_now_ns() < end) {
        if (poll(pf, (nfds_t)conns, 100) < 0)
            break;
        for (int i = 0; i < conns; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(c[i].fd, in, sizeof in);
            if (r <= 0) {
                fprintf(stderr, "bench_txn: connection closed\n");
                return 1;
            }
            for (ssize_t j = 0; j < r; j++) {
                if (in[j] == '-') {
                    fprintf(stderr, "bench_txn: error reply: %.*s\n",
                            (int)(r - j < 200 ? r - j : 200), in + j);
                    return 1;
                }
                if (in[j] != '\n' || --c[i].lines_left > 0)
                    continue;
                uint64_t t = bench_now_ns();
                if (n == cap) {
                    cap *= 2;
                    lat = xrealloc(lat, cap * sizeof *lat);
                }
                lat[n++] = t - c[i].sent_ns;
                c[i].lines_left = request(&req, mode, sha, keys, &seed);
                c[i].sent_ns = t;
                send_all(c[i].fd, req.p, req.len);
            }
        }
    }
    double elapsed = (double)(bench_now_ns() - start) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("%-8s %-6s c=%-3d %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms\n",
           label, mode_names[mode], conns, (double)n / elapsed,
           n ? (double)lat[n / 2] / 1e6 : 0.0,
           n ? (double)lat[n * 99 / 100] / 1e6 : 0.0);
    for (int i = 0; i < conns; i++)
        close(c[i].fd);
    free(c);
    free(pf);
    free(lat);
    buf_free(&req);
    return 0;
}
