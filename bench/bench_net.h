/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_net.h - what the RESP load generators (bench_txn.c, bench_rate.c)
 * share: a monotonic clock in nanoseconds and a TCP connection to an IPv4
 * address with Nagle off, or exit.  Static inline, so each benchmark stays
 * one program.
 */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Connect to host:port (a dotted IPv4 address) or exit, naming who failed. */
static inline int bench_dial(const char *who, const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "%s: connect to %s:%d: ", who, host, port);
        perror(NULL);
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

#endif /* BENCH_NET_H */
