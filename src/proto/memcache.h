/*
 * memcache.h - the memcached text protocol front end (classic commands and
 * the meta commands), driven by the daemon through mc_ops (proto.h) and
 * mapped onto the command layer (src/cmd).
 */
#ifndef TALLY_MEMCACHE_H
#define TALLY_MEMCACHE_H

#include "proto.h"

/* Options the daemon passes to every memcached connection. */
struct mc_options {
    int allow_flush; /* flush_all is refused unless set (--allow-flush) */
};

/* The daemon sets this before accepting memcached connections. */
void mc_configure(const struct mc_options *opts);

extern const struct proto_ops mc_ops;

#endif /* TALLY_MEMCACHE_H */
