/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http.c - the HTTP/JSON front end: its life cycle on libevent's evhttp and
 * the daemon's event loop, routing, bearer-token authentication, and the
 * endpoints that are not counters (/healthz, /readyz, /metrics).
 *
 * Each request has its Host checked, is routed by path and method (a wrong
 * method is a 405 with Allow; OPTIONS answers CORS preflights), gets its
 * CORS headers, has a change's Origin and Content-Type checked (these
 * browser rules are in http_guard.c), is authenticated, and is handed on:
 * the counter endpoints are in http_counter.c, which parses them into a
 * struct cmd_req and runs it through the command layer (src/cmd);
 * http_reply.c encodes answers and problems and holds each answer through
 * the daemon's proto_waiter until it is durable.  The Prometheus text lives
 * in metrics.c; http_int.h lists what the files share; docs/http.md and
 * docs/openapi.yaml describe the API.
 */
#include "http_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "util.h"

/* evhttp refuses bodies above this before our handler runs, so it bounds the
 * memory one request can take; its 413 is libevent's own text/html page.
 * http_counter.c answers smaller bodies it will not parse with a problem. */
#define HTTP_MAX_BODY_HARD (1024 * 1024)
/* Request targets longer than this get a problem+json 414; room for a
 * TALLY_KEY_MAX-byte key fully percent-encoded, twice over. */
#define HTTP_MAX_URI (8 * 1024)
/* One header line or the request line, and all headers together: beyond it
 * evhttp answers itself (400 for a long request line, 413 for headers) with
 * its own text/html page. */
#define HTTP_MAX_HEADERS (64 * 1024)
#define HTTP_TIMEOUT_S 60 /* idle keep-alive connections are closed after */

/* Session ids of HTTP requests have the top bit set so they never collide
 * with the ids the daemon gives connections. */
#define HTTP_SESSION_BIT (UINT64_C(1) << 63)

/* ---- Routing ---------------------------------------------------------- */

#define M(x) EVHTTP_REQ_##x
/* Methods each route accepts, the Allow header a 405 or an OPTIONS carries,
 * and whether a page on any origin may read its answers (a public route,
 * http_guard_cors). */
static const struct {
    unsigned methods;
    const char *allow;
    int public_route;
} http_allowed[] = {
    [HTTP_R_NONE] = {0, "", 0},
    [HTTP_R_HEALTHZ] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 1},
    [HTTP_R_READYZ] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 0},
    [HTTP_R_METRICS] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 0},
    [HTTP_R_LIST] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 0},
    [HTTP_R_COUNTER] = {M(GET) | M(HEAD) | M(PUT) | M(DELETE),
                        "GET, HEAD, PUT, DELETE, OPTIONS", 1},
    [HTTP_R_INCR] = {M(POST), "POST, OPTIONS", 0},
    [HTTP_R_DECR] = {M(POST), "POST, OPTIONS", 0},
    [HTTP_R_EXPIRE] = {M(POST), "POST, OPTIONS", 0},
    [HTTP_R_BATCH] = {M(POST), "POST, OPTIONS", 0},
    /* Change streams and badges are reads, public as GET of a counter. */
    [HTTP_R_KEY_EVENTS] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 1},
    [HTTP_R_EVENTS] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 1},
    [HTTP_R_BADGE] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 1},
    /* The dashboard is for this origin only: no CORS. */
    [HTTP_R_PAGE] = {M(GET) | M(HEAD), "GET, HEAD, OPTIONS", 0},
};
#undef M

/* Map a raw path onto a route.  For counter routes, *seg and *seglen get the key
 * segment, still percent-encoded. */
static enum http_route http_route(const char *path, const char **seg,
                                  size_t *seglen)
{
    static const char pfx[] = "/v1/counters/";
    if (strcmp(path, "/healthz") == 0)
        return HTTP_R_HEALTHZ;
    if (strcmp(path, "/readyz") == 0)
        return HTTP_R_READYZ;
    if (strcmp(path, "/metrics") == 0)
        return HTTP_R_METRICS;
    if (strcmp(path, "/v1/counters") == 0)
        return HTTP_R_LIST;
    if (strcmp(path, "/v1/batch") == 0)
        return HTTP_R_BATCH;
    if (strcmp(path, "/v1/events") == 0)
        return HTTP_R_EVENTS;
    if (http_page_exists(path))
        return HTTP_R_PAGE;
    if (strncmp(path, pfx, sizeof pfx - 1) != 0)
        return HTTP_R_NONE;
    const char *k = path + sizeof pfx - 1;
    const char *slash = strchr(k, '/');
    *seg = k;
    *seglen = slash ? (size_t)(slash - k) : strlen(k);
    if (*seglen == 0)
        return HTTP_R_NONE;
    if (!slash)
        return HTTP_R_COUNTER;
    if (strcmp(slash, "/increment") == 0)
        return HTTP_R_INCR;
    if (strcmp(slash, "/decrement") == 0)
        return HTTP_R_DECR;
    if (strcmp(slash, "/expire") == 0)
        return HTTP_R_EXPIRE;
    if (strcmp(slash, "/events") == 0)
        return HTTP_R_KEY_EVENTS;
    if (strcmp(slash, "/badge.svg") == 0)
        return HTTP_R_BADGE;
    return HTTP_R_NONE;
}

/* ---- Endpoints -------------------------------------------------------- */

static void http_health(struct evhttp_request *req, const char *status)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(status));
    http_json_body(req, o, HTTP_JSON);
    http_send(req, 200);
}

/* Ready while the store can serve (the engine: changes are accepted;
 * recovery ran before the daemon created this front end). */
static void http_readyz(struct http_front *h, struct evhttp_request *req)
{
    char why[256];

    if (cmd_ready(h->ctx, why, sizeof why)) {
        http_health(req, "ready");
        return;
    }
    http_problem(req, 503, "not-ready", "Not ready", "%s", why);
}

/* A store that answers later pends cmd_stats: nothing is sent, and the
 * request is parked and served again (http_on_request). */
static void http_metrics(struct http_front *h, struct evhttp_request *req,
                         struct cmd_session *s)
{
    struct buf b = BUF_INIT;
    tally_stats st;

    if (cmd_stats(h->ctx, s, &st, NULL) == CMD_PENDING)
        return;
    metrics_render(&b, h->ctx, &st, &h->idem);
    evbuffer_add(evhttp_request_get_output_buffer(req), b.p, b.len);
    buf_free(&b);
    http_ctype(req, METRICS_CONTENT_TYPE);
    http_send(req, 200);
}

/* With a password set, authenticate the request's session from its bearer
 * token (a constant-time compare in the command layer).  The token is every
 * byte after "Bearer" and its one space, so a password that starts with a
 * space works as it does over RESP.  Returns 0 if the session may go on, or
 * -1 after sending a 401. */
static int http_auth(struct http_front *h, struct evhttp_request *req,
                     struct cmd_session *s)
{
    static const char scheme[] = "Bearer ";
    if (!h->ctx->password)
        return 0;
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Authorization");
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (!a || strncasecmp(a, scheme, sizeof scheme - 1) != 0) {
        evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"tally\"");
        http_problem(req, 401, "unauthorized", "Authentication required",
                     "this server has a password: send Authorization: "
                     "Bearer <password>");
        return -1;
    }
    a += sizeof scheme - 1;
    /* Credentials on a request are no AUTH command: not counted as one. */
    if (cmd_login(h->ctx, s, a, strlen(a)) != CMD_OK) {
        evhttp_add_header(out, "WWW-Authenticate",
                          "Bearer realm=\"tally\", error=\"invalid_token\"");
        http_problem(req, 401, "unauthorized", "Authentication required",
                     "the bearer token does not match the password");
        return -1;
    }
    return 0;
}

/* ---- Connections ------------------------------------------------------ */

/* h->conns counts the connections that have sent a request and are still
 * open, so the daemon can tell one client alone from several
 * (http_front_conns).  evhttp 2.1 tells of neither a connection's start nor
 * its end, only of the close of a connection that has our close callback;
 * so from its first request on a connection always carries one of ours, and
 * each of them calls http_conn_gone().  Which connections are counted is
 * kept by socket in h->seen: an fd names one open connection at a time, and
 * evhttp runs the close callback before it closes the socket.  A connection
 * that never sends a request is never counted. */
static int http_conn_fd(struct evhttp_connection *evcon)
{
    struct bufferevent *bev =
        evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev ? (int)bufferevent_getfd(bev) : -1;
}

static void http_conn_seen(struct http_front *h,
                           struct evhttp_connection *evcon)
{
    int fd = http_conn_fd(evcon);
    if (fd < 0)
        return;
    if ((size_t)fd >= h->nseen) {
        size_t n = h->nseen ? h->nseen : 64;
        while (n <= (size_t)fd)
            n *= 2;
        h->seen = xrealloc(h->seen, n);
        memset(h->seen + h->nseen, 0, n - h->nseen);
        h->nseen = n;
    }
    if (!h->seen[fd]) {
        h->seen[fd] = 1;
        h->conns++;
    }
}

void http_conn_gone(struct http_front *h, struct evhttp_connection *evcon)
{
    int fd = http_conn_fd(evcon);
    if (fd >= 0 && (size_t)fd < h->nseen && h->seen[fd]) {
        h->seen[fd] = 0;
        h->conns--;
    }
}

void http_idle_gone(struct evhttp_connection *evcon, void *arg)
{
    http_conn_gone(arg, evcon);
}

/* The response to the request http_count() counted is written.  evhttp
 * reads at most one request of a connection at a time, so the connection
 * has nothing else counted. */
static void http_on_answered(struct evhttp_request *req, void *arg)
{
    struct http_front *h = arg;
    h->unanswered--;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req),
                                  http_idle_gone, h);
}

/* The connection closed before its counted request was answered (the
 * client left, or a timeout): evhttp frees the request without calling
 * http_on_answered(). */
void http_on_gone(struct evhttp_connection *evcon, void *arg)
{
    struct http_front *h = arg;
    h->unanswered--;
    http_conn_gone(h, evcon);
}

/* Count req until its response is written or its connection is gone. */
static void http_count(struct http_front *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return;
    http_conn_seen(h, evcon);
    h->unanswered++;
    evhttp_request_set_on_complete_cb(req, http_on_answered, h);
    evhttp_connection_set_closecb(evcon, http_on_gone, h);
}

/* Route and run one request for session s (its own, for this request);
 * rerun: it ran before and waited for the store (its change may be done). */
static void http_serve(struct http_front *h, struct evhttp_request *req,
                       struct cmd_session *s, int rerun)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *seg = NULL;
    size_t seglen = 0;
    enum http_route r = http_route(path ? path : "", &seg, &seglen);

    if (h->stopping && !rerun) {
        /* Run nothing new while the daemon drains: it exits once no answer
         * is held, so a change run now might be applied and never
         * answered. */
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Connection", "close");
        http_problem(req, 503, "shutting-down", "Shutting down",
                     "tallyd is shutting down; the request was not run: "
                     "retry once the server is back");
        return;
    }
    size_t urilen = strlen(evhttp_request_get_uri(req));
    if (urilen > HTTP_MAX_URI) {
        http_problem(req, 414, "uri-too-long", "URI too long",
                     "the request target has %zu bytes; at most %d are "
                     "accepted", urilen, HTTP_MAX_URI);
        return;
    }
    if (http_guard_host(&h->guard, req) != 0)
        return;
    if (r == HTTP_R_NONE) {
        http_problem(req, 404, "no-route", "Not found",
                     "no such endpoint; counters are under /v1/counters/"
                     "{key}, with a '/' in a key written as %%2F");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_OPTIONS) {
        /* Before authentication: a preflight never carries credentials. */
        http_guard_options(&h->guard, req, http_allowed[r].allow);
        return;
    }
    http_guard_cors(&h->guard, req,
                    http_allowed[r].public_route &&
                    (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD));
    if (!(m & http_allowed[r].methods)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          http_allowed[r].allow);
        http_problem(req, 405, "method-not-allowed", "Method not allowed",
                     "this endpoint accepts %s", http_allowed[r].allow);
        return;
    }
    switch (r) {
    case HTTP_R_HEALTHZ:
        http_health(req, "ok");
        return;
    case HTTP_R_READYZ:
        http_readyz(h, req);
        return;
    case HTTP_R_PAGE:
        /* The page holds no data: the API calls it makes authenticate. */
        http_page(req, path);
        return;
    default:
        break;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD &&
        http_guard_change(&h->guard, req) != 0)
        return;
    if (http_auth(h, req, s) != 0)
        return;
    /* The changes of every request evhttp hands over in this pass of the
     * loop share one write and one sync. */
    if (h->waiter->batch)
        h->waiter->batch(h->waiter->self);
    if (r == HTTP_R_METRICS) {
        http_metrics(h, req, s);
        return;
    }
    if (r == HTTP_R_LIST) {
        http_list(h, req, s);
        return;
    }
    if (r == HTTP_R_BATCH) {
        http_batch(h, req, s);
        return;
    }
    if (r == HTTP_R_EVENTS || r == HTTP_R_KEY_EVENTS) {
        http_events(h, req, s, r == HTTP_R_EVENTS ? NULL : seg, seglen);
        return;
    }
    if (r == HTTP_R_BADGE) {
        http_badge(h, req, s, seg, seglen);
        return;
    }
    http_counter(h, req, s, r, seg, seglen);
}

/* ---- Requests the store answers later (cmd.h "Asynchronous stores") ----
 *
 * The handler ran with a result still to come: it sent nothing (http_finish
 * holds back a CMD_PENDING answer).  The request is parked with its session
 * and served again, from the start, when the store's answer wakes it; its
 * body is still in evhttp's input buffer, and the output built by the
 * abandoned run is cleared first.  If the client goes meanwhile, evhttp
 * frees the request; the parked session is then detached from its replay
 * log (which frees itself once the store answers) and freed. */
struct http_parked {
    struct http_front *h;
    struct evhttp_request *req;
    struct cmd_session s;
};

static void http_park(struct http_front *h, struct evhttp_request *req,
                      const struct cmd_session *s);

static void http_parked_gone(struct evhttp_connection *evcon, void *arg)
{
    struct http_parked *p = arg;
    p->h->unanswered--;
    http_conn_gone(p->h, evcon);
    cmd_replay_end(&p->s);
    free(p);
}

static void http_on_wake(void *arg, struct cmd_session *s)
{
    struct http_parked *p = arg;
    struct evhttp_request *req = p->req;
    struct http_front *h = p->h;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    (void)s;
    if (evcon)
        evhttp_connection_set_closecb(evcon, http_on_gone, h);
    http_hold_end(h, req);
    evhttp_clear_headers(evhttp_request_get_output_headers(req));
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_drain(out, evbuffer_get_length(out));
    http_serve(h, req, &p->s, 1);
    if (cmd_pending(&p->s)) {
        if (evcon)
            evhttp_connection_set_closecb(evcon, http_parked_gone, p);
        http_hold_begin(h, req);
        return;
    }
    cmd_replay_end(&p->s);
    free(p);
}

static void http_park(struct http_front *h, struct evhttp_request *req,
                      const struct cmd_session *s)
{
    struct http_parked *p = xmalloc(sizeof *p);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    p->h = h;
    p->req = req;
    p->s = *s;
    p->s.wake = http_on_wake;
    p->s.wake_arg = p;
    cmd_session_moved(&p->s);
    if (evcon)
        evhttp_connection_set_closecb(evcon, http_parked_gone, p);
}

/* evhttp's callback for every request.  While it runs, evhttp's own frames
 * are on the stack: an answer sent from here is written by evhttp later
 * (http_reply.c writes only released answers at once). */
static void http_on_request(struct evhttp_request *req, void *arg)
{
    struct http_front *h = arg;
    struct cmd_session s = {.id = h->next_session++ | HTTP_SESSION_BIT,
                            .proto = CMD_PROTO_HTTP};

    h->in_request = 1;
    http_count(h, req);
    http_serve(h, req, &s, 0);
    if (cmd_pending(&s))
        http_park(h, req, &s);
    else
        cmd_replay_end(&s);
    /* req is still ours: evhttp frees a request only once it is answered,
     * and an answer sent from here is written later in the pass. */
    http_hold_begin(h, req);
    h->in_request = 0;
}

/* ---- Life cycle ------------------------------------------------------- */

/* One evhttp serving h's routes on bind:port.  HTTP and HTTPS each get one
 * (evhttp makes every connection's bufferevent the same way), with the same
 * limits and handlers.  Returns it, or NULL with err set. */
static struct evhttp *http_server_new(struct http_front *h, struct event_base *base,
                                      const char *bind, int port,
                                      const struct http_options *opt, int tls,
                                      struct evhttp_bound_socket **bound,
                                      char *err)
{
    struct evhttp *http = evhttp_new(base);
    if (!http) {
        snprintf(err, 256, "cannot create the HTTP server (evhttp_new)");
        return NULL;
    }
    /* Let every method reach the router so that a wrong one gets a 405 with
     * Allow instead of evhttp's bare 501. */
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(http, HTTP_MAX_BODY_HARD);
    evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(http, HTTP_TIMEOUT_S);
    /* Read (and drop) an oversized body before answering 413, so the client
     * sees the answer instead of a connection reset mid-upload. */
    evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(http, http_on_request, h);
    if (tls)
        evhttp_set_bevcb(http, opt->bevcb, opt->bevcb_arg);
    *bound = evhttp_bind_socket_with_handle(http, bind ? bind : "0.0.0.0",
                                            (ev_uint16_t)port);
    if (!*bound) {
        snprintf(err, 256, "cannot listen for HTTP%s on %s:%d: %s",
                 tls ? "S" : "", bind ? bind : "0.0.0.0", port, strerror(errno));
        evhttp_free(http);
        return NULL;
    }
    /* Accepted sockets inherit the option from the listener.  With Nagle,
     * a response written while the one before it is unacknowledged waits
     * for the client's delayed ACK (40 ms): the next answer on a pipelined
     * connection, and over TLS the last of the records
     * bufferevent_openssl writes one response as.  Every answer is one
     * write here (headers and body in one buffer), so Nagle saves
     * nothing. */
    int one = 1;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(*bound);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return http;
}

struct http_front *http_front_new(struct event_base *base, struct cmd_ctx *ctx,
                                  const struct proto_waiter *waiter,
                                  const char *bind, int port,
                                  const struct http_options *opt, char *err)
{
    struct http_front *h = xcalloc(1, sizeof *h);
    h->ctx = ctx;
    h->waiter = waiter;
    http_guard_init(&h->guard, opt, bind);
    http_events_init(h, base, opt);
    if (port > 0 &&
        !(h->http = http_server_new(h, base, bind, port, opt, 0, &h->bound, err)))
        goto fail;
    if (opt && opt->https_port > 0 &&
        !(h->https = http_server_new(h, base, bind, opt->https_port, opt, 1,
                                     &h->bound_tls, err)))
        goto fail;
    return h;
fail:
    http_front_free(h);
    return NULL;
}

void http_front_stop(struct http_front *h)
{
    h->stopping = 1;
    http_events_stop(h);
    /* Closes the listening fd: a connect is refused from now on instead of
     * waiting in the backlog for a server that will not serve it. */
    if (h->bound)
        evhttp_del_accept_socket(h->http, h->bound);
    h->bound = NULL;
    if (h->bound_tls)
        evhttp_del_accept_socket(h->https, h->bound_tls);
    h->bound_tls = NULL;
}

unsigned http_front_unanswered(const struct http_front *h)
{
    return h->unanswered;
}

unsigned http_front_conns(const struct http_front *h)
{
    return h->conns;
}

void http_front_free(struct http_front *h)
{
    if (!h)
        return;
    http_events_stop(h);
    if (h->http)
        evhttp_free(h->http);
    if (h->https)
        evhttp_free(h->https);
    free(h->seen);
    free(h);
}
