/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fronts.c - which front ends tallyd runs, in one place: RESP on --port
 * (resp_ops, with the command index made by resp_front_new), memcached on
 * --memcache-port (mc_ops, with the listener state made by mc_front_new)
 * and HTTP on --http-port (http_front_new, with the outbox's
 * proto_waiter).  A new front end is wired here and nowhere else.
 */
#include "server.h"

#include "http.h"
#include "memcache.h"
#include "resp.h"

/* The last listener conn_listen() opened speaks TLS (tls.c). */
static void last_listener_tls(struct server *srv)
{
    struct listener *ln = &srv->listeners[srv->nlisteners - 1];
    ln->tls = 1;
    ln->reject = NULL;
}

int fronts_start(struct server *srv, char *err)
{
    const struct conf *c = &srv->conf;

    if (c->port || c->tls_port)
        srv->resp = resp_front_new();
    if (c->port) {
        if (conn_listen(srv, &resp_ops, srv->resp, CMD_PROTO_RESP, c->port,
                        "-ERR max number of clients reached\r\n", err) < 0)
            return -1;
        srv->info.port = srv->listeners[srv->nlisteners - 1].port;
    }
    if (c->tls_port) {
        if (conn_listen(srv, &resp_ops, srv->resp, CMD_PROTO_RESP, c->tls_port,
                        NULL, err) < 0)
            return -1;
        last_listener_tls(srv);
        if (!c->port)
            srv->info.port = c->tls_port;
    }

    if (c->memcache_port || c->memcache_tls_port) {
        struct mc_options mo = {.allow_flush = c->allow_flush};
        srv->mc = mc_front_new(&mo);
    }
    if (c->memcache_port) {
        if (conn_listen(srv, &mc_ops, srv->mc, CMD_PROTO_MEMCACHE,
                        c->memcache_port,
                        "SERVER_ERROR max number of clients reached\r\n",
                        err) < 0)
            return -1;
        srv->info.memcache_port = srv->listeners[srv->nlisteners - 1].port;
    }
    if (c->memcache_tls_port) {
        if (conn_listen(srv, &mc_ops, srv->mc, CMD_PROTO_MEMCACHE,
                        c->memcache_tls_port, NULL, err) < 0)
            return -1;
        last_listener_tls(srv);
    }

    if (c->http_port || c->https_port) {
        struct http_options ho = {
            .cors_origins = (const char *const *)c->cors_origins,
            .ncors = c->ncors,
            .allowed_hosts = (const char *const *)c->allowed_hosts,
            .nhosts = c->nhosts,
            .https_port = c->https_port,
            .bevcb = tls_http_bev,
            .bevcb_arg = srv,
            .sub_limit = c->sub_limit,
            .keepalive_ms = c->keepalive_ms,
        };
        srv->http = http_front_new(srv->base, &srv->cmd, &srv->waiter, c->bind,
                                   c->http_port, &ho, err);
        if (!srv->http)
            return -1;
        if (c->passlen && (c->password[c->passlen - 1] == ' ' ||
                           c->password[c->passlen - 1] == '\t'))
            slog(&srv->log, SLOG_WARN, "the password ends in a space or tab: "
                 "HTTP drops blanks at the end of a header, so HTTP clients "
                 "cannot send it (RESP and memcached can)");
        if (!c->nhosts && !http_bind_is_loopback(c->bind))
            slog(&srv->log, SLOG_INFO, "HTTP on %s: requests that name this "
                 "server by a host name get 421 unless the name is given "
                 "with --http-allowed-host; IP addresses and localhost "
                 "always work", c->bind);
        srv->info.http_port = c->http_port;
    }
    return 0;
}

/* At the start of a graceful shutdown, next to conn_listeners_close(): the
 * stream listeners are conn.c's, the HTTP one is evhttp's. */
void fronts_quiesce(struct server *srv)
{
    if (srv->http)
        http_front_stop(srv->http);
}

int fronts_unanswered(const struct server *srv)
{
    return srv->http && http_front_unanswered(srv->http) > 0;
}

unsigned fronts_http_conns(const struct server *srv)
{
    return srv->http ? http_front_conns(srv->http) : 0;
}

/* Called after every connection is closed: the RESP and memcached listener
 * state is referenced by their connections until then. */
void fronts_stop(struct server *srv)
{
    if (srv->http)
        http_front_free(srv->http);
    srv->http = NULL;
    if (srv->mc)
        mc_front_free(srv->mc);
    srv->mc = NULL;
    resp_front_free(srv->resp);
    srv->resp = NULL;
}
