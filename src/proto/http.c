/*
 * http.c - the HTTP/JSON front end: routes /v1/counters/... onto the command
 * layer, holds each answer until it is durable, and serves /healthz, /readyz
 * and /metrics.
 *
 * Requests arrive through libevent's evhttp on the daemon's event loop.  Each
 * one is handled in three steps: parse (route, percent-decoded key, query,
 * JSON body, bearer token) into a struct cmd_req; run it with cmd_exec() on a
 * session made for this request; encode the result into the response buffer
 * and hand the response to the daemon's proto_waiter, which releases it once
 * its ticket is durable or turns it into a 503/507 problem if the write path
 * failed first.  What a command means lives in src/cmd; the Prometheus text
 * lives in metrics.c; docs/http.md and docs/openapi.yaml describe the API.
 *
 * Keys are one path segment, percent-decoded, so any byte (a '/' as %2F)
 * can be addressed.  A key that is not valid UTF-8 is shown as "key_b64"
 * (standard base64) instead of "key".  Errors are RFC 9457 problem details.
 *
 * Exactly once: an Idempotency-Key header on POST, PUT or DELETE (the IETF
 * httpapi draft "The Idempotency-Key HTTP Header Field") becomes the
 * command's idempotency id (req.once), the same id space as RESP's .ONCE
 * commands.  The engine records the first outcome; a replay is encoded
 * exactly like the first answer, marked "Idempotent-Replayed: true", and
 * waits for the first request's ticket like any answer.  Outcomes are
 * counted in struct metrics_idem for /metrics.
 */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "cmd.h"
#include "metrics.h"
#include "util.h"

/* Bodies up to this size are parsed; larger ones get a problem+json 413.
 * Ours are a few bytes ({"by": 5}). */
#define HTTP_MAX_BODY (64 * 1024)
/* evhttp refuses bodies above this before our handler runs, so it bounds the
 * memory one request can take; its 413 is libevent's own text/html page. */
#define HTTP_MAX_BODY_HARD (1024 * 1024)
/* Request targets longer than this get a problem+json 414; room for a
 * TALLY_KEY_MAX-byte key fully percent-encoded, twice over. */
#define HTTP_MAX_URI (8 * 1024)
/* One header line or the request line, and all headers together: beyond it
 * evhttp answers itself (400 for a long request line, 413 for headers) with
 * its own text/html page. */
#define HTTP_MAX_HEADERS (64 * 1024)
#define HTTP_TIMEOUT_S 60 /* idle keep-alive connections are closed after */

#define HTTP_LIST_DEFAULT 100
#define HTTP_LIST_MAX 1000
/* SCAN calls one list request may make: each visits a bounded slice of the
 * table, so this bounds the work (and loop stall) one request causes. */
#define HTTP_LIST_CALLS 16

/* Session ids of HTTP requests have the top bit set so they never collide
 * with the ids the daemon gives connections. */
#define HTTP_SESSION_BIT (UINT64_C(1) << 63)

#define HTTP_JSON "application/json"
#define HTTP_PROBLEM "application/problem+json"
#define HTTP_PROBLEM_BASE "urn:tally:problem:" /* + slug: the "type" */

#define HTTP_IDEM_KEY "Idempotency-Key"          /* request header */
#define HTTP_IDEM_REPLAYED "Idempotent-Replayed" /* response header */

struct http_front {
    struct evhttp *http;
    struct cmd_ctx *ctx;               /* borrowed */
    const struct proto_waiter *waiter; /* borrowed */
    uint64_t next_session;
    struct metrics_idem idem; /* Idempotency-Key outcomes, for /metrics */
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
    HTTP_R_DECR      /* /v1/counters/{key}/decrement */
};

#define M(x) EVHTTP_REQ_##x
/* Methods each route accepts, and the Allow header a 405 carries. */
static const struct {
    unsigned methods;
    const char *allow;
} http_allowed[] = {
    [HTTP_R_NONE] = {0, ""},
    [HTTP_R_HEALTHZ] = {M(GET) | M(HEAD), "GET, HEAD"},
    [HTTP_R_READYZ] = {M(GET) | M(HEAD), "GET, HEAD"},
    [HTTP_R_METRICS] = {M(GET) | M(HEAD), "GET, HEAD"},
    [HTTP_R_LIST] = {M(GET) | M(HEAD), "GET, HEAD"},
    [HTTP_R_COUNTER] = {M(GET) | M(HEAD) | M(PUT) | M(DELETE),
                        "GET, HEAD, PUT, DELETE"},
    [HTTP_R_INCR] = {M(POST), "POST"},
    [HTTP_R_DECR] = {M(POST), "POST"},
};
#undef M

/* How each command status is reported.  Slugs name the problem type and are
 * listed in docs/http.md. */
static const struct http_map {
    int code;
    const char *slug, *title, *detail;
} http_cmd_map[CMD_STATUS_COUNT] = {
    [CMD_OK] = {200, NULL, NULL, NULL},
    [CMD_NOTFOUND] = {404, "not-found", "Counter not found",
                      "no counter has this key"},
    [CMD_NOTSET] = {409, "not-set", "Condition not met",
                    "the condition on the counter was not met"},
    [CMD_ERR_NOTINT] = {400, "bad-number", "Not an integer",
                        "a number is not a signed 64-bit integer"},
    [CMD_ERR_OVERFLOW] = {409, "overflow", "Counter would overflow",
                          "the result would leave the signed 64-bit range "
                          "(-9223372036854775808 to 9223372036854775807); "
                          "the counter was not changed"},
    [CMD_ERR_KEYLEN] = {414, "key-too-long", "Key too long",
                        "a key is longer than 1024 bytes"},
    [CMD_ERR_ARGS] = {400, "bad-request", "Bad request",
                      "the command layer refused the request"},
    [CMD_ERR_NOAUTH] = {401, "unauthorized", "Authentication required",
                        "send Authorization: Bearer <password>"},
    [CMD_ERR_WRONGPASS] = {401, "unauthorized", "Authentication required",
                           "the bearer token does not match the password"},
    [CMD_ERR_NOPASS] = {400, "bad-request", "Bad request",
                        "no password is configured"},
    [CMD_ERR_WRITEFAIL] = {503, "write-failed", "Writes are stopped",
                           "the write path failed (an fsync failed); "
                           "changes are refused until tallyd restarts"},
    [CMD_ERR_DISKFULL] = {507, "disk-full", "Disk full",
                          "the disk is full; the change was refused and "
                          "nothing changed"},
    [CMD_ERR_NOTDURABLE] = {503, "not-durable", "Value not durable",
                            "the value's last change was never made durable "
                            "and may be lost"},
    [CMD_ERR_BUSY] = {503, "busy", "Busy", "a snapshot is already running"},
    [CMD_ERR_IO] = {500, "io-error", "I/O error", "an I/O operation failed"},
    [CMD_ERR_IDREUSED] = {422, "idempotency-key-reused",
                          "Idempotency key reused",
                          "this Idempotency-Key was already used for a "
                          "different request (another method, key or "
                          "amount); nothing was applied: send a new key "
                          "with a new request"},
    [CMD_ERR_INFLIGHT] = {409, "idempotency-key-in-flight",
                          "Request in flight",
                          "the first request with this Idempotency-Key is "
                          "not durable yet; nothing was applied: retry "
                          "after Retry-After seconds to get its response"},
    [CMD_ERR_IDLEN] = {400, "bad-idempotency-key", "Bad idempotency key",
                       "an Idempotency-Key must be 1 to 256 bytes (inside "
                       "the quotes, when sent as a quoted string)"},
};

static const char *http_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}

/* ---- Encoding --------------------------------------------------------- */

/* Set the response's Content-Type, replacing any earlier one. */
static void http_ctype(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_remove_header(hd, "Content-Type");
    evhttp_add_header(hd, "Content-Type", type);
}

static int http_dump_cb(const char *p, size_t n, void *arg)
{
    return evbuffer_add(arg, p, n);
}

/* Replace the response body with obj as compact JSON of content type ctype.
 * Takes ownership of obj. */
static void http_json_body(struct evhttp_request *req, json_t *obj,
                           const char *ctype)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_drain(out, evbuffer_get_length(out));
    if (json_dump_callback(obj, http_dump_cb, out, JSON_COMPACT) != 0 ||
        evbuffer_add(out, "\n", 1) != 0) {
        /* Only allocation fails here; abort like xmalloc does. */
        fprintf(stderr, "tally: out of memory encoding an HTTP response\n");
        abort();
    }
    json_decref(obj);
    http_ctype(req, ctype);
}

/* Standard base64 with padding (RFC 4648 section 4). */
static void http_base64(const unsigned char *p, size_t n, struct buf *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_addc(out, tab[v >> 18 & 63]);
        buf_addc(out, tab[v >> 12 & 63]);
        buf_addc(out, i + 1 < n ? tab[v >> 6 & 63] : '=');
        buf_addc(out, i + 2 < n ? tab[v & 63] : '=');
    }
}

/* {"key": ..., "value": v}, or {"key_b64": ...} when the key is not valid
 * UTF-8 (JSON strings cannot carry arbitrary bytes). */
static json_t *http_counter_json(const char *key, size_t klen, int64_t v)
{
    json_t *o = json_object();
    json_t *s = json_stringn(key, klen); /* NULL: not valid UTF-8 */
    if (s) {
        json_object_set_new(o, "key", s);
    } else {
        struct buf b = BUF_INIT;
        http_base64((const unsigned char *)key, klen, &b);
        json_object_set_new(o, "key_b64", json_stringn(b.p ? b.p : "", b.len));
        buf_free(&b);
    }
    json_object_set_new(o, "value", json_integer(v));
    return o;
}

/* Put an RFC 9457 problem into the response body (not sent yet). */
static void http_problem_body(struct evhttp_request *req, int code,
                              const char *slug, const char *title,
                              const char *detail)
{
    char type[64];
    snprintf(type, sizeof type, HTTP_PROBLEM_BASE "%s", slug);
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(title));
    json_object_set_new(o, "status", json_integer(code));
    /* A detail may quote request bytes; json_string refuses invalid UTF-8,
     * so fall back to the title rather than send no detail at all. */
    json_t *d = json_string(detail);
    json_object_set_new(o, "detail", d ? d : json_string(title));
    http_json_body(req, o, HTTP_PROBLEM);
}

static void http_send(struct evhttp_request *req, int code)
{
    evhttp_send_reply(req, code, http_reason(code), NULL);
}

/* Send a problem now; detail is a printf format. */
static void http_vproblem(struct evhttp_request *req, int code,
                          const char *slug, const char *title,
                          const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof detail, fmt, ap);
    http_problem_body(req, code, slug, title, detail);
    http_send(req, code);
}

static void http_problem(struct evhttp_request *req, int code,
                         const char *slug, const char *title,
                         const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void http_problem(struct evhttp_request *req, int code,
                         const char *slug, const char *title,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_vproblem(req, code, slug, title, fmt, ap);
    va_end(ap);
}

/* A 400: the request itself is wrong (body, number, query, encoding). */
static void http_bad(struct evhttp_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void http_bad(struct evhttp_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_vproblem(req, 400, "bad-request", "Bad request", fmt, ap);
    va_end(ap);
}

/* Put the problem for a command status (>= CMD_NOTFOUND) into the body;
 * returns the HTTP status.  extra is the command layer's detail or "". */
static int http_cmd_problem(struct evhttp_request *req, enum cmd_status st,
                            const char *extra)
{
    const struct http_map *m = &http_cmd_map[st];
    char detail[512];
    if (extra && *extra)
        snprintf(detail, sizeof detail, "%s: %s", m->detail, extra);
    else
        snprintf(detail, sizeof detail, "%s", m->detail);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    if (m->code == 401)
        evhttp_add_header(hd, "WWW-Authenticate", "Bearer realm=\"tally\"");
    /* The first request becomes durable within one sync, a few ms with
     * fsync always; one second is the smallest delay Retry-After can say. */
    if (st == CMD_ERR_INFLIGHT)
        evhttp_add_header(hd, "Retry-After", "1");
    http_problem_body(req, m->code, m->slug, m->title, detail);
    return m->code;
}

/* The problem for a tally code that stopped the write path (from the waiter
 * or tally_health()). */
static int http_tally_problem(struct evhttp_request *req, int code)
{
    if (code == TALLY_ENOSPC)
        return http_cmd_problem(req, CMD_ERR_DISKFULL, "");
    return http_cmd_problem(req, CMD_ERR_WRITEFAIL,
                            code == TALLY_EFAILED ? "" : tally_strerror(code));
}

/* ---- Holding responses until durable ---------------------------------- */

struct http_pending {
    struct evhttp_request *req;
    int code; /* status to send once durable */
};

/* The waiter's callback: send the prepared response, or, if the write path
 * failed first, a problem in its place (the prepared body may show a value
 * that a crash could take back). */
static void http_on_durable(void *arg, int status)
{
    struct http_pending *p = arg;
    int code = p->code;
    if (status != TALLY_OK) {
        /* The problem replaces the recorded answer, so it is no replay. */
        evhttp_remove_header(evhttp_request_get_output_headers(p->req),
                             HTTP_IDEM_REPLAYED);
        code = http_tally_problem(p->req, status);
    }
    /* evhttp frees the request here, even if its client has gone. */
    http_send(p->req, code);
    free(p);
}

/* Send the response prepared in req once ticket t is durable.  The waiter
 * may call back before this returns. */
static void http_send_durable(struct http_front *h,
                              struct evhttp_request *req, int code,
                              tally_ticket t)
{
    struct http_pending *p = xmalloc(sizeof *p);
    p->req = req;
    p->code = code;
    h->waiter->wait(h->waiter->self, t, http_on_durable, p);
}

/* Answer a command's result: OK with the body built by the caller, or the
 * problem for its status.  Results (found or not) wait for their ticket;
 * errors changed nothing and show nothing, so they leave at once. */
static void http_finish(struct http_front *h, struct evhttp_request *req,
                        const struct cmd_res *res, int ok_code)
{
    if (res->status == CMD_OK) {
        http_send_durable(h, req, ok_code, res->ticket);
        return;
    }
    int code = http_cmd_problem(req, res->status, res->detail);
    if (res->status == CMD_NOTFOUND)
        http_send_durable(h, req, code, res->ticket);
    else
        http_send(req, code);
}

/* ---- Parsing ---------------------------------------------------------- */

static int http_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0, n) onto out; with plus, '+' means a space (query
 * strings).  Returns 0, or -1 at a '%' not followed by two hex digits (out
 * then holds a prefix of the result). */
static int http_unescape(const char *s, size_t n, int plus, struct buf *out)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? http_hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? http_hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            buf_addc(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            buf_addc(out, plus && s[i] == '+' ? ' ' : s[i]);
        }
    }
    return 0;
}

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
    return HTTP_R_NONE;
}

/* Parse the body as a JSON object whose only member may be `name`, an
 * integer.  An empty body leaves *out as it is unless required.  Returns 0,
 * or -1 after sending a 400 or 413 problem. */
static int http_body_int(struct evhttp_request *req, const char *name,
                         int required, int64_t *out)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > HTTP_MAX_BODY) {
        http_problem(req, 413, "too-large", "Content too large",
                     "the body has %zu bytes; at most %d are accepted", len,
                     HTTP_MAX_BODY);
        return -1;
    }
    if (len == 0) {
        if (!required)
            return 0;
        http_bad(req, "the body must be a JSON object like {\"%s\": 10}",
                 name);
        return -1;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            http_bad(req, "\"%s\" must be between -9223372036854775808 and "
                     "9223372036854775807", name);
        else
            http_bad(req, "the body is not valid JSON: %s (line %d, column "
                     "%d)", jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = -1;
    json_t *v = json_object_get(doc, name);
    if (!json_is_object(doc)) {
        http_bad(req, "the body must be a JSON object like {\"%s\": 10}",
                 name);
    } else if (json_object_size(doc) > (v ? 1u : 0u)) {
        http_bad(req, "unknown member in the body; only \"%s\" is accepted",
                 name);
    } else if (!v) {
        if (!required)
            rc = 0;
        else
            http_bad(req, "the body must hold \"%s\", an integer", name);
    } else if (json_is_integer(v)) {
        *out = json_integer_value(v);
        rc = 0;
    } else if (json_is_real(v)) {
        http_bad(req, "\"%s\" must be an integer (no fraction, no "
                 "exponent)", name);
    } else {
        http_bad(req, "\"%s\" must be a JSON integer", name);
    }
    json_decref(doc);
    return rc;
}

/* A 400 for a malformed Idempotency-Key header. */
static void http_idem_bad(struct evhttp_request *req, const char *why)
{
    http_problem(req, 400, "bad-idempotency-key", "Bad idempotency key",
                 "%s", why);
}

/* Read the request's Idempotency-Key into id.  The draft defines the field
 * as an RFC 8941 sf-string ("abc", quotes included): a value that opens
 * with '"' is parsed as one and the id is what the quotes hold, with \" and
 * \\ unescaped.  Any other value is the id as it stands, since most
 * clients send the bare form (Stripe's convention), so `abc` and `"abc"`
 * name the same id.  Returns 0 with *has = 0 (no header; id untouched) or
 * *has = 1 (id holds the bytes), or -1 after sending a 400 problem (two such
 * headers, a malformed quoted string; id then holds a prefix).  An empty or
 * too long id is left to the command layer (CMD_ERR_IDLEN). */
static int http_idem_key(struct evhttp_request *req, struct buf *id, int *has)
{
    const struct evkeyvalq *hd = evhttp_request_get_input_headers(req);
    const char *v = NULL;

    *has = 0;
    for (const struct evkeyval *kv = hd->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, HTTP_IDEM_KEY) != 0)
            continue;
        if (v) {
            /* Two keys name no single request; guessing could apply it
             * under a key the client will not retry with. */
            http_idem_bad(req, "the Idempotency-Key header is given more "
                          "than once; send exactly one");
            return -1;
        }
        v = kv->value;
    }
    if (!v)
        return 0;
    *has = 1;
    if (*v != '"') {
        buf_adds(id, v);
        return 0;
    }
    for (const char *p = v + 1;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\0') {
            http_idem_bad(req, "the quoted Idempotency-Key has no closing "
                          "quote");
            return -1;
        }
        if (ch == '"') {
            if (p[1] == '\0')
                return 0;
            http_idem_bad(req, "nothing may follow the closing quote of the "
                          "Idempotency-Key (parameters are not accepted)");
            return -1;
        }
        if (ch == '\\') {
            ch = (unsigned char)*++p;
            if (ch != '"' && ch != '\\') {
                http_idem_bad(req, "in a quoted Idempotency-Key a backslash "
                              "may only escape '\"' or '\\'");
                return -1;
            }
        } else if (ch < 0x20 || ch > 0x7e) {
            http_idem_bad(req, "a quoted Idempotency-Key holds printable "
                          "ASCII only; send other bytes unquoted");
            return -1;
        }
        buf_addc(id, (char)ch);
    }
}

/* Count how a request with an Idempotency-Key ended. */
static void http_idem_count(struct http_front *h, const struct cmd_res *res)
{
    enum metrics_idem_outcome o;
    switch (res->status) {
    case CMD_OK:
    case CMD_NOTFOUND:
        o = res->replayed ? METRICS_IDEM_REPLAYED : METRICS_IDEM_APPLIED;
        break;
    case CMD_ERR_IDREUSED: o = METRICS_IDEM_REUSED; break;
    case CMD_ERR_INFLIGHT: o = METRICS_IDEM_INFLIGHT; break;
    case CMD_ERR_IDLEN: o = METRICS_IDEM_INVALID; break;
    default: o = METRICS_IDEM_FAILED; break;
    }
    h->idem.n[o]++;
}

/* A decimal in [0, max], digits only.  Returns 0, or -1. */
static int http_parse_u64(const char *s, size_t n, uint64_t max,
                          uint64_t *out)
{
    uint64_t v;
    if (cmd_parse_u64(s, n, &v) < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The list request's query: prefix, limit, cursor. */
struct http_listq {
    struct buf prefix;
    uint64_t limit, cursor;
};

/* Parse "prefix=..&limit=..&cursor=.." (any order, each at most once, no
 * other names).  Returns 0, or -1 after sending a 400 problem. */
static int http_list_query(struct evhttp_request *req, const char *q,
                           struct http_listq *lq)
{
    struct buf name = BUF_INIT, val = BUF_INIT;
    unsigned seen = 0;
    int rc = -1;
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t nl = eq ? (size_t)(eq - q) : n;
        buf_clear(&name);
        buf_clear(&val);
        if (n == 0)
            goto next; /* "a=1&&b=2" */
        if (http_unescape(q, nl, 1, &name) != 0 ||
            (eq && http_unescape(eq + 1, n - nl - 1, 1, &val) != 0)) {
            http_bad(req, "bad percent-encoding in the query string");
            goto done;
        }
        unsigned bit;
        if (name.len == 6 && memcmp(name.p, "prefix", 6) == 0) {
            bit = 1;
            buf_add(&lq->prefix, val.p, val.len);
        } else if (name.len == 5 && memcmp(name.p, "limit", 5) == 0) {
            bit = 2;
            if (http_parse_u64(val.p, val.len, HTTP_LIST_MAX, &lq->limit) ||
                lq->limit == 0) {
                http_bad(req, "limit must be an integer from 1 to %d",
                         HTTP_LIST_MAX);
                goto done;
            }
        } else if (name.len == 6 && memcmp(name.p, "cursor", 6) == 0) {
            bit = 4;
            if (http_parse_u64(val.p, val.len, UINT64_MAX, &lq->cursor)) {
                http_bad(req, "cursor must be a value returned by an "
                         "earlier page");
                goto done;
            }
        } else {
            http_bad(req, "unknown query parameter; accepted: prefix, "
                     "limit, cursor");
            goto done;
        }
        if (seen & bit) {
            http_bad(req, "a query parameter is given twice");
            goto done;
        }
        seen |= bit;
    next:
        q += n + (q[n] == '&');
    }
    rc = 0;
done:
    buf_free(&name);
    buf_free(&val);
    return rc;
}

/* ---- Endpoints -------------------------------------------------------- */

static void http_health(struct evhttp_request *req, const char *status)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(status));
    http_json_body(req, o, HTTP_JSON);
    http_send(req, 200);
}

/* Ready while changes are accepted: recovery ran before the daemon created
 * this front end, so only the write path's health is left to check. */
static void http_readyz(struct http_front *h, struct evhttp_request *req)
{
    int health = tally_health(h->ctx->db);
    if (health == TALLY_OK) {
        http_health(req, "ready");
        return;
    }
    http_problem(req, 503, "not-ready", "Not ready",
                 "changes are refused: %s (tally code %d)%s",
                 tally_strerror(health), health,
                 health == TALLY_ENOSPC
                     ? "; this clears once the disk has room"
                     : "; restart tallyd once the disk is checked");
}

static void http_metrics(struct http_front *h, struct evhttp_request *req)
{
    struct buf b = BUF_INIT;
    metrics_render(&b, h->ctx, &h->idem);
    evbuffer_add(evhttp_request_get_output_buffer(req), b.p, b.len);
    buf_free(&b);
    http_ctype(req, METRICS_CONTENT_TYPE);
    http_send(req, 200);
}

/* One counter route: GET, PUT, DELETE on the key, or POST increment or
 * decrement.  The changes take an Idempotency-Key; GET and HEAD are safe
 * anyway and ignore one. */
static void http_counter(struct http_front *h, struct evhttp_request *req,
                         struct cmd_session *s, enum http_route r,
                         const char *key, size_t klen)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct cmd_req c = {.key = key, .klen = klen};
    struct cmd_res res = {0};
    struct buf id = BUF_INIT;
    int ok_code = 200;

    if (r == HTTP_R_INCR || r == HTTP_R_DECR) {
        int64_t by = 1;
        if (http_body_int(req, "by", 0, &by) != 0)
            goto done;
        if (r == HTTP_R_DECR && by == INT64_MIN) {
            http_bad(req, "\"by\" must be above -9223372036854775808 for a "
                     "decrement");
            goto done;
        }
        /* decrement by n is increment by -n, fingerprint included, as
         * DECRBY.ONCE k n is INCRBY.ONCE k -n over RESP. */
        c.op = CMD_INCRBY;
        c.num = r == HTTP_R_DECR ? -by : by;
    } else if (m == EVHTTP_REQ_PUT) {
        if (http_body_int(req, "value", 1, &c.num) != 0)
            goto done;
        c.op = CMD_SET;
    } else if (m == EVHTTP_REQ_DELETE) {
        c.op = CMD_DEL;
        c.nkeys = 1;
        c.keys = &c.key;
        c.klens = &c.klen;
        ok_code = 204;
    } else {
        c.op = CMD_GET;
    }

    if (c.op != CMD_GET) {
        int has;
        if (http_idem_key(req, &id, &has) != 0) {
            h->idem.n[METRICS_IDEM_INVALID]++;
            goto done;
        }
        if (has) {
            c.once = id.p ? id.p : ""; /* an empty key is still a key */
            c.oncelen = id.len;
        }
    }

    cmd_exec(h->ctx, s, &c, &res);
    if (c.once)
        http_idem_count(h, &res);
    if (res.status == CMD_OK && c.op == CMD_DEL && res.n == 0)
        res.status = CMD_NOTFOUND; /* the absence is a result: it waits */
    if (res.status == CMD_OK && c.op != CMD_DEL) {
        /* A replay's value is the first request's (the engine's record),
         * so its body is the first answer's byte for byte. */
        int64_t v = c.op == CMD_SET ? c.num : res.value;
        http_json_body(req, http_counter_json(key, klen, v), HTTP_JSON);
    }
    if (res.replayed)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          HTTP_IDEM_REPLAYED, "true");
    http_finish(h, req, &res, ok_code);
done:
    buf_free(&id);
}

struct http_items {
    json_t *arr;
    size_t n;
};

static int http_list_item(void *arg, const char *key, size_t klen,
                          int64_t value)
{
    struct http_items *it = arg;
    json_array_append_new(it->arr, http_counter_json(key, klen, value));
    it->n++;
    return 0;
}

/* GET /v1/counters: SCAN with the prefix as a glob-escaped MATCH, calling
 * again until about `limit` items are found, the scan ends, or
 * HTTP_LIST_CALLS calls were made (a page may then be short, even empty, with
 * a cursor to go on from).  A call may return a few more than asked for (the
 * engine never splits a hash chain), so a page may hold a few more than
 * limit rather than drop items the cursor has passed. */
static void http_list(struct http_front *h, struct evhttp_request *req,
                      struct cmd_session *s)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct http_listq lq = {BUF_INIT, HTTP_LIST_DEFAULT, 0};
    struct buf glob = BUF_INIT;
    struct http_items it = {json_array(), 0};
    struct cmd_res res = {0};
    tally_ticket ticket = 0;

    if (http_list_query(req, q, &lq) != 0)
        goto done;
    if (lq.prefix.len > TALLY_KEY_MAX) {
        res.status = CMD_ERR_KEYLEN;
        http_finish(h, req, &res, 200);
        goto done;
    }
    for (size_t i = 0; i < lq.prefix.len; i++) {
        if (strchr("*?[]\\", lq.prefix.p[i]) && lq.prefix.p[i] != '\0')
            buf_addc(&glob, '\\');
        buf_addc(&glob, lq.prefix.p[i]);
    }
    buf_addc(&glob, '*');

    uint64_t cursor = lq.cursor;
    for (int calls = 0; calls < HTTP_LIST_CALLS; calls++) {
        struct cmd_req c = {.op = CMD_SCAN, .cursor = cursor,
                            .match = glob.p, .matchlen = glob.len,
                            .count = (size_t)lq.limit - it.n};
        memset(&res, 0, sizeof res);
        res.item = http_list_item;
        res.item_ctx = &it;
        if (cmd_exec(h->ctx, s, &c, &res) != CMD_OK) {
            http_finish(h, req, &res, 200);
            goto done;
        }
        if (res.ticket > ticket)
            ticket = res.ticket;
        cursor = res.n;
        if (cursor == 0 || it.n >= lq.limit)
            break;
    }

    json_t *o = json_object();
    json_object_set(o, "items", it.arr);
    if (cursor) {
        char dec[24];
        dec[u64_to_dec(cursor, dec)] = '\0';
        json_object_set_new(o, "cursor", json_string(dec));
    } else {
        json_object_set_new(o, "cursor", json_null());
    }
    http_json_body(req, o, HTTP_JSON);
    res.ticket = ticket;
    http_finish(h, req, &res, 200);
done:
    json_decref(it.arr);
    buf_free(&glob);
    buf_free(&lq.prefix);
}

/* With a password set, authenticate the request's session from its bearer
 * token through CMD_AUTH (a constant-time compare in the command layer).
 * Returns 0 if the session may go on, or -1 after sending a 401. */
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
    while (*a == ' ')
        a++;
    struct cmd_req c = {.op = CMD_AUTH, .pass = a, .passlen = strlen(a)};
    struct cmd_res res = {0};
    if (cmd_exec(h->ctx, s, &c, &res) != CMD_OK) {
        evhttp_add_header(out, "WWW-Authenticate",
                          "Bearer realm=\"tally\", error=\"invalid_token\"");
        http_problem(req, 401, "unauthorized", "Authentication required",
                     "the bearer token does not match the password");
        return -1;
    }
    return 0;
}

/* evhttp's callback for every request. */
static void http_on_request(struct evhttp_request *req, void *arg)
{
    struct http_front *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *seg = NULL;
    size_t seglen = 0;
    enum http_route r = http_route(path ? path : "", &seg, &seglen);
    struct cmd_session s = {h->next_session++ | HTTP_SESSION_BIT,
                            CMD_PROTO_HTTP, 0};

    size_t urilen = strlen(evhttp_request_get_uri(req));
    if (urilen > HTTP_MAX_URI) {
        http_problem(req, 414, "uri-too-long", "URI too long",
                     "the request target has %zu bytes; at most %d are "
                     "accepted", urilen, HTTP_MAX_URI);
        return;
    }
    if (r == HTTP_R_NONE) {
        http_problem(req, 404, "no-route", "Not found",
                     "no such endpoint; counters are under /v1/counters/"
                     "{key}, with a '/' in a key written as %%2F");
        return;
    }
    if (!(evhttp_request_get_command(req) & http_allowed[r].methods)) {
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
    default:
        break;
    }
    if (http_auth(h, req, &s) != 0)
        return;
    if (r == HTTP_R_METRICS) {
        http_metrics(h, req);
        return;
    }
    if (r == HTTP_R_LIST) {
        http_list(h, req, &s);
        return;
    }
    struct buf key = BUF_INIT;
    if (http_unescape(seg, seglen, 0, &key) != 0)
        http_bad(req, "bad percent-encoding in the key: '%%' must be "
                 "followed by two hex digits");
    else
        http_counter(h, req, &s, r, key.p, key.len);
    buf_free(&key);
}

/* ---- Life cycle ------------------------------------------------------- */

struct http_front *http_front_new(struct event_base *base, struct cmd_ctx *ctx,
                                  const struct proto_waiter *waiter,
                                  const char *bind, int port, char *err)
{
    struct http_front *h = xcalloc(1, sizeof *h);
    h->ctx = ctx;
    h->waiter = waiter;
    h->http = evhttp_new(base);
    if (!h->http) {
        snprintf(err, 256, "cannot create the HTTP server (evhttp_new)");
        goto fail;
    }
    /* Let every method reach the router so that a wrong one gets a 405 with
     * Allow instead of evhttp's bare 501. */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(h->http, HTTP_MAX_BODY_HARD);
    evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
    /* Read (and drop) an oversized body before answering 413, so the client
     * sees the answer instead of a connection reset mid-upload. */
    evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(h->http, http_on_request, h);
    if (!evhttp_bind_socket_with_handle(h->http, bind ? bind : "0.0.0.0",
                                        (ev_uint16_t)port)) {
        snprintf(err, 256, "cannot listen for HTTP on %s:%d: %s",
                 bind ? bind : "0.0.0.0", port, strerror(errno));
        goto fail;
    }
    return h;
fail:
    http_front_free(h);
    return NULL;
}

void http_front_free(struct http_front *h)
{
    if (!h)
        return;
    if (h->http)
        evhttp_free(h->http);
    free(h);
}
