/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg.h - the PostgreSQL store (pg.c, pg_batch.c, pg_sql.c): store.h over
 * one libpq connection in pipeline mode on the caller's libevent loop.
 * docs/postgresql.md says what it promises, its schema and its SQL.
 */
#ifndef TALLY_STORE_PG_H
#define TALLY_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

/* Open the store on a libpq connection string or URI (postgresql://...,
 * several hosts and target_session_attrs=read-write included).
 * fsync_policy is a tally_sync value: TALLY_SYNC_ALWAYS maps to
 * synchronous_commit=on, the others to off (docs/postgresql.md).  The
 * connection is made in the background: the store answers STORE_EUNAVAIL
 * and ready() says why until it is up, and it reconnects by itself after a
 * loss.  Returns 0 with *out set (close it with (*out)->ops->close), or -1
 * with the reason in err (a URI libpq cannot parse) and *out NULL. */
int store_pg_open(struct event_base *base, const char *uri, int fsync_policy,
                  struct store **out, char *err, size_t errlen);

/* What tallyd's flags say beyond the URI (every field 0 or NULL: the
 * defaults store_pg_open uses). */
struct store_pg_opts {
    uint64_t once_ttl_ms;      /* --idempotency-ttl: how long an id is
                                  kept; 0: TALLY_ONCE_TTL_DEFAULT (24 h) */
    /* Called on the loop for every counter this instance's purge deleted
     * because it had expired (the "expired" change events); NULL: none.
     * key is valid only during the call. */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *expired_ctx;
    /* A second transaction of coalesced increments sent behind the one in
     * flight (pg_txn.c kick_behind): 0, when PostgreSQL's idle time between
     * commits exceeds the commit's (tallyd); 1 always, -1 never (tests and
     * benchmarks). */
    int behind;
};

/* store_pg_open with *o (NULL: the defaults). */
int store_pg_open_opts(struct event_base *base, const char *uri,
                       int fsync_policy, const struct store_pg_opts *o,
                       struct store **out, char *err, size_t errlen);

#endif /* TALLY_STORE_PG_H */
