/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stores.c - which store holds the counters: --store's URI scheme mapped to
 * the function that opens it (src/store/store.h).  No --store: the engine
 * on --dir, which main.c opens.  postgresql:// and postgres://: the
 * PostgreSQL store (src/store/pg.h), when this tallyd was built with it.
 * redis:// and rediss://: the Redis store (src/store/redis.h), with
 * --store-prefix, --store-wait-replicas and --store-tls-*.  delay+engine[:DIR]: the test store (src/store/delay.h) over the engine,
 * answering every operation a loop pass later; not documented for users,
 * it exists so the black-box tests can drive the asynchronous path.
 *
 * A remote store (postgresql://, redis://) leaves --dir alone: the engine
 * is not opened, so the directory is neither created nor locked, and
 * srv->db is NULL.  The loop, the outbox and corking (main.c, outbox.c,
 * conn.c) then have no engine to cork, step or wait for: a remote store's
 * results carry ticket 0, so nothing is held.
 */
#include <stdio.h>
#include <string.h>

#include "delay.h"
#include "server.h"
#ifdef TALLY_HAVE_REDIS
#include "redis.h"
#endif
#ifdef TALLY_HAVE_PG
#include "pg.h"
#endif

static int has_scheme(const char *uri, const char *scheme)
{
    return strncmp(uri, scheme, strlen(scheme)) == 0;
}

#ifdef TALLY_HAVE_PG
/* store_pg_opts.expired: the PostgreSQL store's purge deleted an expired
 * counter; its "expired" event is durable (ticket 0). */
static void pg_expired(void *ctx, const void *key, size_t klen)
{
    struct server *srv = ctx;
    cmd_note_expired(&srv->cmd, key, klen, 0);
}
#endif

int stores_need_engine(const struct conf *c)
{
    return !c->store || has_scheme(c->store, "delay+engine");
}

int stores_open(struct server *srv, char *err)
{
    const char *uri = srv->conf.store;

    srv->store = &srv->engine.base;
    if (!uri)
        return 0;
    if (has_scheme(uri, "delay+engine")) {
        if (store_delay_open(srv->base, &srv->engine.base,
                             (uint64_t)srv_now_us(), &srv->store) < 0) {
            snprintf(err, 256, "--store %s: cannot make the delay store", uri);
            srv->store = &srv->engine.base;
            return -1;
        }
        return 0;
    }
    if (has_scheme(uri, "postgresql://") || has_scheme(uri, "postgres://")) {
#ifdef TALLY_HAVE_PG
        char why[200] = "";
        struct store *pg = NULL;
        struct store_pg_opts o = {srv->conf.once_ttl_ms, pg_expired, srv, 0};
        if (store_pg_open_opts(srv->base, uri, (int)srv->conf.sync, &o, &pg,
                               why, sizeof why) < 0) {
            snprintf(err, 256, "--store: cannot use the PostgreSQL URI: %s",
                     why);
            return -1;
        }
        srv->store = pg;
        return 0;
#else
        snprintf(err, 256, "--store %.40s...: this tallyd was built without "
                 "the PostgreSQL store (libpq-dev and src/store/pg.c)", uri);
        return -1;
#endif
    }
    if (has_scheme(uri, "redis://") || has_scheme(uri, "rediss://") ||
        has_scheme(uri, "redis+cluster://") ||
        has_scheme(uri, "rediss+cluster://")) {
#ifdef TALLY_HAVE_REDIS
        char why[200] = "";
        struct store *rd = NULL;
        const struct conf *c = &srv->conf;
        struct store_redis_opts o = {c->store_prefix, c->store_wait_replicas,
                                     0, c->once_ttl_ms, c->store_tls_ca,
                                     c->store_tls_cert, c->store_tls_key};
        if (store_redis_open_opts(srv->base, uri, (int)srv->conf.sync, &o,
                                  &rd, why, sizeof why) < 0) {
            snprintf(err, 256, "--store: cannot use the Redis URI: %s", why);
            return -1;
        }
        srv->store = rd;
        return 0;
#else
        snprintf(err, 256, "--store %.40s...: this tallyd was built without "
                 "the Redis store (src/store/redis.c)", uri);
        return -1;
#endif
    }
    snprintf(err, 256, "--store: unknown scheme in '%.60s' (postgresql://, "
             "postgres://, redis://, or no --store for the engine on --dir)", uri);
    return -1;
}

void stores_close(struct server *srv)
{
    if (srv->store && srv->store != &srv->engine.base)
        store_close(srv->store);
    srv->store = NULL;
}
