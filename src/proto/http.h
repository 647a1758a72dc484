/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http.h - the HTTP/JSON front end, on libevent's evhttp and the daemon's
 * event loop.
 *
 * It maps /v1/counters/... requests onto the command layer (src/cmd), holds
 * every response until it is durable through the daemon's proto_waiter, and
 * serves /healthz, /readyz and /metrics.  docs/http.md and docs/openapi.yaml
 * describe the API.
 */
#ifndef TALLY_HTTP_H
#define TALLY_HTTP_H

#include "proto.h"

struct event_base;
struct http_front;

/* What browsers may do (docs/http.md, "Browsers"; http_guard.c).  Each list
 * holds lower-case entries as tallyd's flags checked them; a "*" entry
 * turns its check off.  The front end copies the struct but borrows the
 * lists and their strings, which must outlive it. */
struct http_options {
    const char *const *cors_origins; /* --http-cors-origin: origins such as
                                        "https://app.example:8443" that may
                                        change counters and read answers */
    size_t ncors;
    const char *const *allowed_hosts; /* --http-allowed-host: names (no
                                         port) the Host header may carry */
    size_t nhosts;
    /* HTTPS beside (or instead of) HTTP: https_port > 0 listens there too,
     * each connection's bufferevent made by bevcb(base, bevcb_arg) (the
     * daemon's TLS, bufferevent_openssl). */
    int https_port;
    struct bufferevent *(*bevcb)(struct event_base *base, void *arg);
    void *bevcb_arg;
    uint64_t sub_limit;               /* --subscriber-output-limit: unsent
                                         bytes before an SSE client is cut
                                         off (0: 8 MiB) */
    int keepalive_ms;                 /* SSE keep-alive comments (0: 15 s) */
};

/* Listen on bind:port (if port > 0) and on opt->https_port on base.  ctx, waiter and opt are borrowed and must
 * outlive the front end; opt may be NULL (no origins, no extra hosts).
 * Returns NULL with a message in err (256 bytes) on failure. */
struct http_front *http_front_new(struct event_base *base, struct cmd_ctx *ctx,
                                  const struct proto_waiter *waiter,
                                  const char *bind, int port,
                                  const struct http_options *opt, char *err);

/* True if bind (an address or name as --bind takes it; NULL = all) is a
 * loopback address, where the Host check needs no list. */
int http_bind_is_loopback(const char *bind);

/* Stop taking work, for a graceful shutdown: close the listening socket, so
 * new connections are refused, and answer every request that arrives after
 * this on a connection already open with a 503 problem "shutting-down" and
 * Connection: close, without running it.  Responses already waiting for
 * durability are still sent when the daemon's waiter releases them.  Calling
 * it again does nothing. */
void http_front_stop(struct http_front *h);

/* How many requests were received but their responses not yet written to
 * the socket: held for durability, or handed to evhttp, which writes them on
 * a later pass of the event loop.  Freeing the front end before this is 0
 * closes those connections without an answer; a connection that closes
 * first stops counting. */
unsigned http_front_unanswered(const struct http_front *h);

/* How many connections have sent a request and are still open (idle
 * keep-alive ones and change streams among them; one that has sent nothing
 * yet is not counted). */
unsigned http_front_conns(const struct http_front *h);

/* Stop listening if still listening, close every connection and free;
 * requests still waiting for durability are answered first by the daemon's
 * waiter before it calls this. */
void http_front_free(struct http_front *h);

#endif /* TALLY_HTTP_H */
