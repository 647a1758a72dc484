/*
 * fronts.c - which front ends tallyd runs, in one place: RESP on --port,
 * memcached on --memcache-port (mc_ops, after mc_configure) and HTTP on
 * --http-port (http_front_new, with the outbox's proto_waiter).
 *
 * Integration debt: the front ends are written alongside the daemon, so
 * src/server/CMakeLists.txt defines TALLY_HAVE_RESP, TALLY_HAVE_HTTP and
 * TALLY_HAVE_MEMCACHE only once src/proto/resp.c, http.c and memcache.c
 * exist; until then their ports are ignored with a warning.  When all have
 * landed, drop the checks there and the #ifdefs here.
 */
#include "server.h"

#include <stdio.h>

#ifdef TALLY_HAVE_RESP
#include "resp.h"
#endif
#ifdef TALLY_HAVE_HTTP
#include "http.h"
#endif
#ifdef TALLY_HAVE_MEMCACHE
#include "memcache.h"
#endif

int fronts_start(struct server *srv, char *err)
{
    const struct conf *c = &srv->conf;
#ifdef TALLY_HAVE_RESP
    if (conn_listen(srv, &resp_ops, CMD_PROTO_RESP, c->port,
                    "-ERR max number of clients reached\r\n", err) < 0)
        return -1;
    srv->info.port = srv->listeners[srv->nlisteners - 1].port;
#else
    slog(&srv->log, SLOG_WARN, "--port %d ignored: this tallyd was built "
         "without the Redis protocol front end", c->port);
#endif

    if (c->memcache_port) {
#ifdef TALLY_HAVE_MEMCACHE
        struct mc_options mo = {.allow_flush = c->allow_flush};
        mc_configure(&mo);
        if (conn_listen(srv, &mc_ops, CMD_PROTO_MEMCACHE, c->memcache_port,
                        "SERVER_ERROR max number of clients reached\r\n", err) < 0)
            return -1;
        srv->info.memcache_port = srv->listeners[srv->nlisteners - 1].port;
#else
        slog(&srv->log, SLOG_WARN, "--memcache-port %d ignored: this tallyd "
             "was built without the memcached front end", c->memcache_port);
#endif
    }

    if (c->http_port) {
#ifdef TALLY_HAVE_HTTP
        srv->http = http_front_new(srv->base, &srv->cmd, &srv->waiter, c->bind,
                                   c->http_port, err);
        if (!srv->http)
            return -1;
        srv->info.http_port = c->http_port;
#else
        slog(&srv->log, SLOG_WARN, "--http-port %d ignored: this tallyd was "
             "built without the HTTP front end", c->http_port);
#endif
    }
    return 0;
}

void fronts_stop(struct server *srv)
{
#ifdef TALLY_HAVE_HTTP
    if (srv->http)
        http_front_free(srv->http);
#endif
    srv->http = NULL;
}
