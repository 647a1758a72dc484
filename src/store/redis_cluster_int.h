/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_cluster_int.h - what the two files of the cluster store share.
 * redis_cluster.c owns the nodes, the slot map, redirects and faults: where
 * an op goes and what happens when it cannot get there.  redis_cluster_ops.c
 * turns a store_req into ops for the slots it touches and puts their
 * answers together.  Only the event loop's thread uses any of it.
 */
#ifndef TALLY_STORE_REDIS_CLUSTER_INT_H
#define TALLY_STORE_REDIS_CLUSTER_INT_H

#include <openssl/ssl.h>

#include "redis_int.h"

#define SLOTS 16384
#define CURSOR_BITS 50       /* SCAN: a node's cursor below, slot above */

struct cnode {
    TAILQ_ENTRY(cnode) link;
    char *host;
    int port;
    struct redis_store *rs;
    int master;              /* in the map as a master */
    int first_slot;          /* its lowest slot; SCAN's order */
};
TAILQ_HEAD(cnodeq, cnode);

struct cluster {
    struct store base;
    struct event_base *evb;
    struct redis_node_cfg cfg; /* what every node gets; host, port apart */
    char *user, *pass, *prefix;
    SSL_CTX *tls_ctx;
    struct redis_keys keys;
    char sha[REDIS_S_COUNT_ALL][41];
    uint64_t once_ttl_ms;
    char **seed_host;
    int *seed_port;
    int nseeds;
    struct cnode *slot[SLOTS]; /* NULL: no master known */
    int nserved;               /* slots with a master */
    struct cnodeq nodes;
    struct redis_opq parked;   /* waiting for a map, a node, a retry */
    unsigned nparked[SLOTS];   /* how many of them each slot has: an op
                                  never overtakes an earlier one of its
                                  slot (replies keep request order) */
    struct event *ev_tick, *ev_drain;
    int asking_map;            /* a CLUSTER SLOTS is on its way */
    struct cnode *asked;       /* to that node */
    int map_again;             /* asked for while one was on its way */
    int64_t last_map_ms;
    int closing;
    char map_text[128];        /* the map in short, for INFO */
    char why[200];
    char logged[200];          /* the last map failure logged */
    uint64_t n_moved, n_ask, n_retried; /* INFO */
    /* The caller's "expired" events, which every node connection
     * reports (its master's own, redis_notify.c) through the cluster. */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *expired_ctx;
    uint64_t n_expired;        /* INFO store_expired_seen */
    struct redis_xact_env xenv; /* its batches' (redis_xact.c) */
};

/* The cluster of a store (st is a cluster's). */
struct cluster *cluster_of(const struct store *st);
int64_t cluster_wall_ms(void);
/* Send op (takes ownership) to the master of op->slot, or keep it until
 * one is reachable (at most a few seconds, then STORE_EUNAVAIL). */
void cluster_route(struct cluster *c, struct redis_op *op);

/* redis_cluster_ops.c: store_ops.exec. */
int cluster_exec(struct store *st, const struct store_req *req,
                 struct store_res *res, store_done_fn done, void *arg);

#endif /* TALLY_STORE_REDIS_CLUSTER_INT_H */
