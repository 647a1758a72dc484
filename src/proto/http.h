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

/* Listen on bind:port on base.  ctx and waiter are borrowed and must outlive
 * the front end.  Returns NULL with a message in err (256 bytes) on failure. */
struct http_front *http_front_new(struct event_base *base, struct cmd_ctx *ctx,
                                  const struct proto_waiter *waiter,
                                  const char *bind, int port, char *err);

/* Stop taking work, for a graceful shutdown: close the listening socket, so
 * new connections are refused, and answer every request that arrives after
 * this on a connection already open with a 503 problem "shutting-down" and
 * Connection: close, without running it.  Responses already waiting for
 * durability are still sent when the daemon's waiter releases them.  Calling
 * it again does nothing. */
void http_front_stop(struct http_front *h);

/* Stop listening if still listening, close every connection and free;
 * requests still waiting for durability are answered first by the daemon's
 * waiter before it calls this. */
void http_front_free(struct http_front *h);

#endif /* TALLY_HTTP_H */
