/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_mcload.c - a memcached text-protocol load generator: N connections,
 * each keeping P requests in flight (P = 1: request, wait, repeat), sending
 * "incr <key> 1" on keys drawn at random from R keys, for a fixed time.
 * Prints one table row: ops/s and latency percentiles (p50, p99, max),
 * measured from a request's send to its reply.
 *
 * It seeds the R keys first with "set" (memcached's incr never creates a
 * key), so the same run works against tallyd's --memcache-port and a real
 * memcached.  One thread drives every connection with poll(2); replies are
 * counted by their "\r\n", which is exact for incr's one-line replies.
 * bench/memcache_vs_memcached.sh runs it against both servers.
 *
 *   bench_mcload [-h host] [-p port] [-c conns] [-P pipeline] [-r keys]
 *                [-d seconds] [-l label]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct bconn {
    int fd;
    uint64_t *sent_ns;  /* ring of send times of requests in flight */
    size_t head, inflight;
    char rbuf[4096];
    size_t rlen;
};

struct bopts {
    const char *host, *label;
    int port, conns, pipeline, seconds;
    unsigned keys;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bench_connect(const struct bopts *o)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)o->port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || inet_pton(AF_INET, o->host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        fprintf(stderr, "bench_mcload: connect %s:%d: %s\n", o->host,
                o->port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "bench_mcload: write: %s\n", strerror(errno));
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Create the keys (memcached's incr needs them) and check one reply. */
static void seed(const struct bopts *o)
{
    int fd = bench_connect(o);
    struct buf b = BUF_INIT;
    char r[64];
    for (unsigned i = 0; i < o->keys; i++)
        buf_printf(&b, "set bench:%u 0 0 1 noreply\r\n0\r\n", i);
    buf_adds(&b, "incr bench:0 0\r\n");
    write_all(fd, b.p, b.len);
    ssize_t n = read(fd, r, sizeof r - 1);
    if (n <= 0 || strcmp((r[n] = 0, r), "0\r\n") != 0) {
        fprintf(stderr, "bench_mcload: seeding failed: %s\n",
                n > 0 ? r : "no reply");
        exit(1);
    }
    buf_free(&b);
    close(fd);
}

static void send_some(struct bconn *c, const struct bopts *o,
                      unsigned *rng)
{
    char req[64];
    struct buf b = BUF_INIT;
    uint64_t t = now_ns();
    while (c->inflight < (size_t)o->pipeline) {
        unsigned k = (unsigned)rand_r(rng) % o->keys;
        int n = snprintf(req, sizeof req, "incr bench:%u 1\r\n", k);
        buf_add(&b, req, (size_t)n);
        c->sent_ns[(c->head + c->inflight) % (size_t)o->pipeline] = t;
        c->inflight++;
    }
    if (b.len)
        write_all(c->fd, b.p, b.len);
    buf_free(&b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct bopts o = {"127.0.0.1", "server", 11211, 50, 1, 10, 10000};
    int opt;
    while ((opt = getopt(argc, argv, "h:p:c:P:r:d:l:")) != -1) {
        switch (opt) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 'P': o.pipeline = atoi(optarg); break;
        case 'r': o.keys = (unsigned)atoi(optarg); break;
        case 'd': o.seconds = atoi(optarg); break;
        case 'l': o.label = optarg; break;
        default:
            fprintf(stderr, "usage: bench_mcload [-h host] [-p port] "
                    "[-c conns] [-P pipeline] [-r keys] [-d seconds] "
                    "[-l label]\n");
            return 2;
        }
    }
    if (o.conns < 1 || o.pipeline < 1 || o.keys < 1 || o.seconds < 1) {
        fprintf(stderr, "bench_mcload: -c, -P, -r and -d must be >= 1\n");
        return 2;
    }
    seed(&o);
    struct bconn *cs = xcalloc((size_t)o.conns, sizeof *cs);
    struct pollfd *pf = xcalloc((size_t)o.conns, sizeof *pf);
    size_t lcap = 1 << 20, nlat = 0;
    uint64_t *lat = xmalloc(lcap * sizeof *lat);
    unsigned rng = 12345;
    for (int i = 0; i < o.conns; i++) {
        cs[i].fd = bench_connect(&o);
        cs[i].sent_ns = xcalloc((size_t)o.pipeline, sizeof(uint64_t));
        pf[i].fd = cs[i].fd;
        pf[i].events = POLLIN;
        send_some(&cs[i], &o, &rng);
    }
    uint64_t start = now_ns(), end = start + (uint64_t)o.seconds * 1000000000u;
    uint64_t done = 0, errors = 0;
    while (now_ns() < end) {
        if (poll(pf, (nfds_t)o.conns, 100) < 0 && errno != EINTR) {
            perror("bench_mcload: poll");
            return 1;
        }
        for (int i = 0; i < o.conns; i++) {
            struct bconn *c = &cs[i];
            if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            ssize_t n = read(c->fd, c->rbuf + c->rlen,
                             sizeof c->rbuf - c->rlen);
            if (n <= 0) {
                fprintf(stderr, "bench_mcload: connection lost\n");
                return 1;
            }
            c->rlen += (size_t)n;
            uint64_t t = now_ns();
            char *p = c->rbuf, *e = c->rbuf + c->rlen, *nl;
            while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
                if (p[0] < '0' || p[0] > '9')
                    errors++; /* NOT_FOUND, CLIENT_ERROR, ... */
                if (nlat == lcap)
                    lat = xrealloc(lat, (lcap *= 2) * sizeof *lat);
                lat[nlat++] = t - c->sent_ns[c->head];
                c->head = (c->head + 1) % (size_t)o.pipeline;
                c->inflight--;
                done++;
                p = nl + 1;
            }
            c->rlen = (size_t)(e - p);
            memmove(c->rbuf, p, c->rlen);
            send_some(c, &o, &rng);
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
#define PCT(q) (nlat ? (double)lat[(size_t)((double)(nlat - 1) * (q))] / 1e3 : 0)
    printf("%-10s conns=%-4d pipeline=%-3d keys=%-7u ops/s=%-10.0f "
           "p50_us=%-8.1f p99_us=%-8.1f max_us=%-9.1f errors=%" PRIu64 "\n",
           o.label, o.conns, o.pipeline, o.keys, (double)done / secs,
           PCT(0.50), PCT(0.99), PCT(1.0), errors);
    for (int i = 0; i < o.conns; i++) {
        close(cs[i].fd);
        free(cs[i].sent_ns);
    }
    free(cs);
    free(pf);
    free(lat);
    return errors ? 1 : 0;
}
