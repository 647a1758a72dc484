/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis.h - the Redis store (redis.c, redis_ops.c, redis_lua.c): store.h
 * over one Redis connection on the caller's libevent loop, every
 * composite operation one Lua script.  docs/redis-store.md says what it
 * promises, its key layout and what it lacks.
 */
#ifndef TALLY_STORE_REDIS_H
#define TALLY_STORE_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

struct store_redis_opts {
    const char *prefix;        /* of every key; NULL: "tally:" */
    int wait_replicas;         /* > 0: WAIT this many after each batch */
    int wait_timeout_ms;       /* WAIT's timeout; 0: 1000 */
    uint64_t once_ttl_ms;      /* how long an id is kept; 0: 24 h */
    /* rediss:// */
    const char *tls_ca_file;   /* NULL: the system's CAs */
    const char *tls_cert_file; /* a client certificate, or NULL */
    const char *tls_key_file;  /* its key; NULL: in the certificate file */
    /* Called on the loop for every counter Redis expired, from its
     * keyspace notifications (redis_notify.c; on a cluster, each master's
     * own); NULL: not subscribed.  key is valid only during the call. */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *expired_ctx;
};

/* Open the store on redis://[user:password@]host:port[/db] (rediss://:
 * the same over TLS; the certificate must chain to opts->tls_ca_file and
 * name host).  fsync_policy
 * is a tally_sync value: under TALLY_SYNC_ALWAYS a server that cannot
 * fsync every write (AOF off, or appendfsync other than always) makes
 * ready() 0 with the reason and is logged at connect.  The connection is
 * made in the background: operations wait for it at most two seconds,
 * then answer STORE_EUNAVAIL, and it reconnects by itself with backoff.
 * Returns 0 with *out set (close with (*out)->ops->close), or -1 with the
 * reason in err and *out NULL (a bad URI or prefix, unreadable TLS files). */
int store_redis_open(struct event_base *base, const char *uri,
                     int fsync_policy, struct store **out, char *err,
                     size_t errlen);
/* The same with options (opts NULL: the defaults). */
int store_redis_open_opts(struct event_base *base, const char *uri,
                          int fsync_policy,
                          const struct store_redis_opts *opts,
                          struct store **out, char *err, size_t errlen);

#endif /* TALLY_STORE_REDIS_H */
