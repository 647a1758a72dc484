/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_store_pg.c - the PostgreSQL store (src/store/pg.h) alone, without
 * tallyd or sockets of its own: C virtual clients, each with one INCRBY in
 * flight, issuing the next from its completion, for a fixed time.  Shows
 * what the coalescing gives before the front ends add their costs; the
 * figures through tallyd are bench/pg_hot.sh's.  Prints one table row:
 * increments/s, transactions/s and increments per transaction.
 *
 *   bench_store_pg URI [-c clients] [-d seconds] [-r keys] [-s always|no]
 *   (-r 1, the default: one hot counter; -r N: a random one of N)
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "pg.h"
#include "store.h"

struct bclient {
    struct store *st;
    char key[24];
    unsigned keys;
    unsigned long done, errors;
    int stop;
};

static void issue(struct bclient *c);

static void on_done(void *arg, const struct store_res *res)
{
    struct bclient *c = arg;
    if (res->rc == STORE_OK)
        c->done++;
    else
        c->errors++;
    if (!c->stop)
        issue(c);
}

static void issue(struct bclient *c)
{
    if (c->keys > 1)
        snprintf(c->key, sizeof c->key, "key:%u", (unsigned)rand() % c->keys);
    struct store_req r = {.op = STORE_INCRBY, .key = c->key,
                          .klen = strlen(c->key), .num = 1};
    struct store_res res;
    if (c->st->ops->exec(c->st, &r, &res, on_done, c) == STORE_DONE)
        on_done(c, &res);
}

static long info_num(struct store *st, const char *name)
{
    struct store_info_kv kv[32];
    size_t n = st->ops->info(st, kv, 32);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].name, name))
            return atol(kv[i].value);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URI [-c clients] [-d seconds] [-r keys] "
                "[-s always|no]\n", argv[0]);
        return 2;
    }
    const char *uri = argv[1];
    int clients = 50, secs = 5, sync = TALLY_SYNC_ALWAYS;
    unsigned keys = 1;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "c:d:r:s:")) != -1) {
        switch (opt) {
        case 'c': clients = atoi(optarg); break;
        case 'd': secs = atoi(optarg); break;
        case 'r': keys = (unsigned)atoi(optarg); break;
        case 's': sync = strcmp(optarg, "always") ? TALLY_SYNC_NO : TALLY_SYNC_ALWAYS; break;
        default: return 2;
        }
    }
    struct event_base *evb = event_base_new();
    struct store *st;
    char err[200];
    if (store_pg_open(evb, uri, sync, &st, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char why[200];
    double t0 = bench_now();
    while (!st->ops->ready(st, why, sizeof why)) {
        if (bench_now() - t0 > 10) {
            fprintf(stderr, "%s\n", why);
            return 1;
        }
        event_base_loop(evb, EVLOOP_ONCE);
    }
    struct bclient *c = calloc((size_t)clients, sizeof *c);
    for (int i = 0; i < clients; i++) {
        c[i].st = st;
        c[i].keys = keys;
        snprintf(c[i].key, sizeof c[i].key, "hot");
        issue(&c[i]);
    }
    long tx0 = info_num(st, "store_pg_transactions");
    t0 = bench_now();
    struct timeval tv = {secs, 0};
    event_base_loopexit(evb, &tv);
    event_base_dispatch(evb);
    double el = bench_now() - t0;
    long tx = info_num(st, "store_pg_transactions") - tx0;
    unsigned long done = 0, errors = 0;
    for (int i = 0; i < clients; i++) {
        done += c[i].done;
        errors += c[i].errors;
        c[i].stop = 1;
    }
    printf("clients %3d  keys %7u  incr/s %9.0f  txn/s %7.0f  incr/txn %6.1f"
           "  errors %lu\n", clients, keys, done / el, tx / el,
           tx ? (double)done / tx : 0.0, errors);
    /* let the last batch finish before closing */
    for (int i = 0; i < 200 && info_num(st, "store_pg_ops") >
                                   (long)(done + errors); i++)
        event_base_loop(evb, EVLOOP_ONCE);
    st->ops->close(st);
    event_base_free(evb);
    free(c);
    return 0;
}
