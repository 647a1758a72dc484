/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcache.h - the memcached text protocol front end (classic commands and
 * the meta commands), driven by the daemon through mc_ops (proto.h) and
 * mapped onto the command layer (src/cmd).
 */
#ifndef TALLY_MEMCACHE_H
#define TALLY_MEMCACHE_H

#include "proto.h"

/* Options of one memcached listener. */
struct mc_options {
    int allow_flush; /* flush_all is refused unless set (--allow-flush) */
};

/* A memcached listener's shared state: its options and the hit/miss counters
 * that "stats" reports across all its connections.  The daemon makes one per
 * listener and passes it to mc_ops.conn_new as `front`. */
struct mc_front;

struct mc_front *mc_front_new(const struct mc_options *opts);
void mc_front_free(struct mc_front *f);

extern const struct proto_ops mc_ops;

#endif /* TALLY_MEMCACHE_H */
