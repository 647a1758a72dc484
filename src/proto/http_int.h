/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_int.h - what the three files of the HTTP front end share; nothing
 * here is seen outside src/proto/http*.c (the daemon sees http.h only).
 *
 * http.c: the front end's life cycle, routing, authentication and the
 * endpoints that are not counters (/healthz, /readyz, /metrics).
 * http_reply.c: encoding, RFC 9457 problems for command statuses, and
 * holding answers until they are durable (http_finish).
 * http_counter.c: the counter endpoints: keys, JSON bodies, the
 * Idempotency-Key header and listing.
 * http_guard.c: what browsers may do: the Host check against DNS
 * rebinding, Origin checks and CORS, and the Content-Type rule for changes.
 */
#ifndef TALLY_HTTP_INT_H
#define TALLY_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <jansson.h>

#include "cmd.h"
#include "http.h"
#include "metrics.h"
#include "proto.h"

#define HTTP_JSON "application/json"
#define HTTP_IDEM_REPLAYED "Idempotent-Replayed" /* response header */

/* The browser rules' settings (http_guard.c), from struct http_options. */
struct http_guard {
    const char *const *origins; /* --http-cors-origin, borrowed */
    size_t norigins;
    int any_origin;             /* "*" was listed (tallyd requires a password) */
    const char *const *hosts;   /* --http-allowed-host, borrowed */
    size_t nhosts;
    int any_host;               /* "*" was listed: no Host check */
    int loopback;               /* the listener is on a loopback address */
};

struct http_front {
    struct evhttp *http;               /* plain HTTP, or NULL */
    struct evhttp_bound_socket *bound; /* the listener; NULL once stopped */
    struct evhttp *https;              /* HTTPS (its own bufferevents), or NULL */
    struct evhttp_bound_socket *bound_tls;
    int stopping;                      /* http_front_stop() was called */
    int in_request;                    /* inside evhttp's request callback */
    unsigned unanswered;               /* see http_front_unanswered() */
    unsigned conns;                    /* see http_front_conns() */
    unsigned char *seen;               /* by fd: counted in conns (http.c) */
    size_t nseen;
    struct cmd_ctx *ctx;               /* borrowed */
    const struct proto_waiter *waiter; /* borrowed */
    uint64_t next_session;
    struct metrics_idem idem; /* Idempotency-Key outcomes, for /metrics */
    struct http_guard guard;
    /* Change streams (http_events.c). */
    TAILQ_HEAD(, http_stream) streams;
    struct event *keepalive;          /* a comment on every stream */
    struct event *flush;              /* sends what streams queued */
    struct buf text;                  /* the last event's text, for every */
    uint64_t text_id;                 /* stream it goes to; its id */
    uint64_t sub_limit;               /* unsent bytes before a cut-off */
    /* The Date header of answers sent this second (http_reply.c). */
    int64_t date_secs;
    char date[40];
};

/* What a path names. */
enum http_route {
    HTTP_R_NONE = 0, /* no such endpoint: 404 */
    HTTP_R_HEALTHZ,
    HTTP_R_READYZ,
    HTTP_R_METRICS,
    HTTP_R_LIST,     /* /v1/counters */
    HTTP_R_COUNTER,  /* /v1/counters/{key} */
    HTTP_R_INCR,     /* /v1/counters/{key}/increment */
    HTTP_R_DECR,     /* /v1/counters/{key}/decrement */
    HTTP_R_EXPIRE,   /* /v1/counters/{key}/expire */
    HTTP_R_BATCH,    /* /v1/batch */
    HTTP_R_KEY_EVENTS, /* /v1/counters/{key}/events */
    HTTP_R_EVENTS,   /* /v1/events?prefix= */
    HTTP_R_BADGE,    /* /v1/counters/{key}/badge.svg */
    HTTP_R_PAGE      /* the dashboard: / and its files */
};

/* ---- Answers (http_reply.c) ---------------------------------------------
 *
 * Functions that "send" hand the request back to evhttp, which frees it:
 * req must not be used after them. */

/* Set the response's Content-Type, replacing any earlier one. */
void http_ctype(struct evhttp_request *req, const char *type);
/* Replace the response body with obj as compact JSON of content type ctype.
 * Takes ownership of obj. */
void http_json_body(struct evhttp_request *req, json_t *obj,
                    const char *ctype);
/* Send the response prepared in req now, with status code. */
void http_send(struct evhttp_request *req, int code);
/* Send an RFC 9457 problem now; detail is a printf format. */
void http_problem(struct evhttp_request *req, int code, const char *slug,
                  const char *title, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Send a 400 problem: the request itself is wrong (body, number, query,
 * encoding). */
void http_bad(struct evhttp_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Answer a command's result: OK (status ok_code) with the body the caller
 * built in req, or the problem for its status.  Results, found or not, wait
 * until res->ticket is durable; errors leave at once. */
void http_finish(struct http_front *h, struct evhttp_request *req,
                 const struct cmd_res *res, int ok_code);
/* Keep reading req's connection while its answer is held (http_reply.c
 * says why): called after a request ran and did not send at once; does
 * nothing if it did.  http_hold_end() undoes it right before the answer is
 * sent or the request runs again. */
void http_hold_begin(struct http_front *h, struct evhttp_request *req);
void http_hold_end(struct http_front *h, struct evhttp_request *req);

/* ---- Browser rules (http_guard.c) ----------------------------------------
 *
 * http.c calls them in this order for each request; each returns 0 to go on
 * or -1 after it sent the refusal (req is then gone). */

/* Connections (http.c).  Every connection that has sent a request carries
 * one of these close callbacks, or one that calls http_conn_gone(), so
 * http_front_conns() stays right: http_idle_gone (arg h) between requests,
 * http_on_gone (arg h) while a counted request is unanswered. */
void http_conn_gone(struct http_front *h, struct evhttp_connection *evcon);
void http_idle_gone(struct evhttp_connection *evcon, void *arg);
void http_on_gone(struct evhttp_connection *evcon, void *arg);

/* Fill g from opt (may be NULL) for a listener on bind. */
void http_guard_init(struct http_guard *g, const struct http_options *opt,
                     const char *bind);
/* The Host check against DNS rebinding: -1 after a 421 problem. */
int http_guard_host(const struct http_guard *g, struct evhttp_request *req);
/* Add the CORS headers every answer on a known route carries (Vary: Origin;
 * Access-Control-Allow-Origin and -Expose-Headers for an origin that may
 * read it; "*" on a public route, one a page on any origin may read
 * without credentials). */
void http_guard_cors(const struct http_guard *g, struct evhttp_request *req,
                     int public_route);
/* Answer OPTIONS: a CORS preflight from an allowed origin, or a plain
 * OPTIONS, is a 204 listing allow (the route's methods); a preflight from
 * any other origin is a 403.  Always sends. */
void http_guard_options(const struct http_guard *g,
                        struct evhttp_request *req, const char *allow);
/* For a request that changes something (POST, PUT, DELETE): -1 after a 403
 * problem when its Origin (or Sec-Fetch-Site: cross-site) is not allowed,
 * or a 415 problem when its Content-Type is not application/json. */
int http_guard_change(const struct http_guard *g, struct evhttp_request *req);

/* ---- Counter endpoints (http_counter.c) --------------------------------- */

/* GET, HEAD, PUT, DELETE on a counter, POST increment/decrement, or POST
 * expire (route r).  seg[0, seglen) is the key's path segment, still
 * percent-encoded. */
void http_counter(struct http_front *h, struct evhttp_request *req,
                  struct cmd_session *s, enum http_route r, const char *seg,
                  size_t seglen);
/* POST /v1/batch: operations as one atomic change (http_batch.c). */
void http_batch(struct http_front *h, struct evhttp_request *req,
                struct cmd_session *s);
/* Percent-decode s[0, n) onto out; with plus, '+' means a space (query
 * strings).  Returns 0, or -1 at a '%' not followed by two hex digits. */
int http_unescape(const char *s, size_t n, int plus, struct buf *out);
/* {"key": ..., "value": v}, or "key_b64" for a key that is not UTF-8, with
 * "expires_at" when expire_at (Unix ms) is not 0. */
json_t *http_counter_json(const char *key, size_t klen, int64_t v,
                          int64_t expire_at);
/* Unix ms as RFC 3339 in UTC with milliseconds: "2026-12-01T12:00:00.000Z". */
json_t *http_rfc3339(int64_t ms);
/* Put req's body: the counter answer http_counter_json() describes, as
 * compact JSON and a newline, with Content-Type application/json. */
void http_counter_body(struct evhttp_request *req, const char *key,
                       size_t klen, int64_t v, int64_t expire_at);

/* ---- The counter answer without jansson (http_json.c) -------------------- */

#define HTTP_RFC3339_MAX 48 /* room for any http_rfc3339_text() and its NUL */
/* Unix ms as RFC 3339 text into out, NUL-terminated; returns its length, or
 * 0 if ms has no calendar date (out then holds nothing useful). */
size_t http_rfc3339_text(int64_t ms, char out[HTTP_RFC3339_MAX]);
/* Write http_counter_json(key, klen, v, expire_at) as JSON_COMPACT text and
 * a newline into out[0, cap), the same bytes jansson writes; returns their
 * length, or 0 when this key is jansson's to write (a byte that is not
 * printable ASCII, '"' or '\\') or cap is too small (out then holds
 * garbage).  No allocation. */
size_t http_json_counter(char *out, size_t cap, const char *key, size_t klen,
                         int64_t v, int64_t expire_at);

/* GET /v1/counters?prefix=&limit=&cursor=. */
void http_list(struct http_front *h, struct evhttp_request *req,
               struct cmd_session *s);

/* ---- Request parsing (http_counter.c) ------------------------------------
 *
 * Used by the counter endpoints, and here so that tests/fuzz/fuzz_http.c
 * reaches them.  Those that take req and fail have sent a problem (req is
 * then gone). */

/* Which members a route's body takes besides its number. */
#define HB_TTL 0x1   /* "ttl_ms" or "expires_at" */
#define HB_IFNEW 0x2 /* "ttl_if_new": true (with a TTL) */
#define HB_CLEAR 0x4 /* "ttl_ms": null or "expires_at": null (no expiry) */

/* A counter request's body, parsed. */
struct http_body {
    int64_t num;        /* `name`'s integer, if given */
    unsigned exp_flags; /* CMD_F_PX (expire: ms from now) or CMD_F_PXAT
                           (Unix ms); 0: none given */
    int64_t expire;
    int clear;          /* a null TTL: remove the expiry */
    int if_new;         /* ttl_if_new: CMD_F_TTL_IFNEW */
};
/* Parse req's body as a JSON object whose members may be `name` (an
 * integer; NULL: none), the expiry members `allow` names, and nothing
 * else.  An empty body is {}.  `name` is required if `required`; with
 * HB_CLEAR a TTL member is.  Returns 0, or -1 after sending a 400 or 413
 * problem (*b then holds what was parsed so far). */
int http_body_parse(struct evhttp_request *req, const char *name,
                    int required, unsigned allow, struct http_body *b);
/* Read req's Idempotency-Key header into id: 0 with *has = 0 (none) or 1,
 * or -1 after sending a 400 problem. */
int http_idem_key(struct evhttp_request *req, struct buf *id, int *has);
/* Count how a request with an Idempotency-Key ended (for /metrics). */
void http_idem_count(struct http_front *h, const struct cmd_res *res);

/* The list request's query: prefix, limit, cursor. */
struct http_listq {
    struct buf prefix;
    uint64_t limit, cursor;
};
/* Parse the query q into lq ("prefix=..&limit=..&cursor=..", any order, each
 * at most once, no other names).  Returns 0, or -1 after sending a 400
 * problem. */
int http_list_query(struct evhttp_request *req, const char *q,
                    struct http_listq *lq);


/* ---- Change streams (http_events.c) -------------------------------------- */

struct event_base;

/* GET /v1/counters/{key}/events (seg: the key, percent-encoded) or
 * /v1/events?prefix= (seg NULL): start a Server-Sent Events stream. */
void http_events(struct http_front *h, struct evhttp_request *req,
                 struct cmd_session *s, const char *seg, size_t seglen);
void http_events_init(struct http_front *h, struct event_base *base,
                      const struct http_options *opt);
/* End every stream (shutdown) and stop the keep-alive timer. */
void http_events_stop(struct http_front *h);

/* ---- Badge and dashboard (http_page.c) ----------------------------------- */

/* GET /v1/counters/{key}/badge.svg?label=&color=. */
void http_badge(struct http_front *h, struct evhttp_request *req,
                struct cmd_session *s, const char *seg, size_t seglen);
/* True if path names one of the dashboard's embedded files. */
int http_page_exists(const char *path);
/* GET / and the dashboard's files. */
void http_page(struct evhttp_request *req, const char *path);

#endif /* TALLY_HTTP_INT_H */
