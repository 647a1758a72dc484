/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_reply.c - how the HTTP front end answers: JSON bodies, RFC 9457
 * problem details (application/problem+json) for every command status, and
 * holding each answer until the change or value it shows is durable.
 *
 * An answer that reports a result (a value, an absence, a change) is handed
 * to the daemon's proto_waiter and sent once its ticket is durable; if the
 * write path failed first, a 503/507 problem replaces it, since the prepared
 * body may show a value a crash could take back.  Errors that changed
 * nothing leave at once.  What is parsed and routed lives in http.c and
 * http_counter.c (http_int.h lists what each file offers); the problem types
 * are listed in docs/http.md.
 */
#include "http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "util.h"

#define HTTP_PROBLEM "application/problem+json"
#define HTTP_PROBLEM_BASE "urn:tally:problem:" /* + slug: the "type" */

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
    [CMD_ERR_EXPIRE] = {400, "bad-expiry", "Bad expiry",
                        "the expiry lies beyond the latest time a counter "
                        "can keep"},
    [CMD_ERR_UNAVAILABLE] = {503, "store-unavailable", "Store unavailable",
                             "the store cannot be reached now; nothing "
                             "changed: retry shortly"},
    [CMD_ERR_UNKNOWN] = {503, "outcome-unknown", "Outcome unknown",
                         "the connection to the store was lost after the "
                         "change was sent: it may or may not have been "
                         "applied; retry with the same Idempotency-Key to "
                         "find out"},
    [CMD_ERR_UNSUPPORTED] = {501, "not-supported", "Not supported",
                             "this store cannot do that"},
};

static const char *http_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}

void http_ctype(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_remove_header(hd, "Content-Type");
    evhttp_add_header(hd, "Content-Type", type);
}

static int http_dump_cb(const char *p, size_t n, void *arg)
{
    return evbuffer_add(arg, p, n);
}

void http_json_body(struct evhttp_request *req, json_t *obj,
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

/* A HEAD answer carries GET's headers and no body (RFC 9110, section
 * 9.3.2), but evhttp writes whatever body the answer holds, and leaves out
 * Content-Length: the body bytes then read as the start of the next answer
 * on a keep-alive connection.  Drop the body; say its length, as GET's
 * answer would. */
static void http_head_strip(struct evhttp_request *req, int code)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    size_t n = evbuffer_get_length(out);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    if (!n)
        return;
    evbuffer_drain(out, n);
    if (code != 204 && code != 304 && code >= 200 &&
        !evhttp_find_header(hd, "Content-Length")) {
        char len[24];
        u64_to_dec(n, len);
        evhttp_add_header(hd, "Content-Length", len);
    }
}

void http_send(struct evhttp_request *req, int code)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        http_head_strip(req, code);
    evhttp_send_reply(req, code, http_reason(code), NULL);
}

/* http_problem() with a va_list. */
static void http_vproblem(struct evhttp_request *req, int code,
                          const char *slug, const char *title,
                          const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof detail, fmt, ap);
    http_problem_body(req, code, slug, title, detail);
    http_send(req, code);
}

void http_problem(struct evhttp_request *req, int code, const char *slug,
                  const char *title, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_vproblem(req, code, slug, title, fmt, ap);
    va_end(ap);
}

void http_bad(struct evhttp_request *req, const char *fmt, ...)
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

/* ---- Holding answers until durable ------------------------------------ */

struct http_pending {
    struct http_front *h;
    struct evhttp_request *req;
    int code; /* status to send once durable */
};

/* Write the response evhttp_send_reply() has just queued on evcon's socket
 * now, in the release that found it durable, rather than in the next pass
 * of the loop once epoll says the socket is writable: that pass cost an
 * epoll_ctl and a wake-up per response.  Once the output is written whole,
 * evhttp's write callback runs, exactly as the bufferevent would run it
 * (evhttp finishes the request, and reads the next one later in the pass,
 * never from inside this call); what is left over, or an error, stays with
 * the bufferevent, which is already waiting to write.  The bufferevent keeps
 * the front of its output frozen except while it writes: so do we.  Only
 * for plain sockets (TLS writes through OpenSSL), and never from inside
 * evhttp's request callback, whose frames the write callback could free the
 * connection under (Connection: close). */
static void http_write_now(struct http_front *h,
                           struct evhttp_connection *evcon)
{
    if (h->in_request || evhttp_connection_get_server(evcon) != h->http)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    bufferevent_data_cb written = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, NULL, &written, NULL, &arg);
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0 && written)
        written(bev, arg);
}

/* While an answer is held, the connection's socket stays in epoll for
 * reading, as it is while evhttp writes an answer.  evhttp stops reading
 * when it hands a request over and starts again once the answer is
 * written; for an answer sent at once both happen in one pass and cancel
 * out in libevent's changelist, but a held answer is sent passes later, so
 * each request cost an epoll_ctl to remove the socket and another to add it
 * back (strace: 2.0 per request against RESP's none).  What arrives
 * meanwhile (the next pipelined request) waits in the input buffer, with no
 * read callback (evhttp would abort on bytes in its writing state), up to
 * HTTP_HOLD_INPUT bytes; evhttp runs it once the answer is written, as it
 * does for bytes that came during its own write.  The bufferevent stops
 * reading by itself at an end of file, error or timeout and calls
 * http_hold_event(), which leaves them for evhttp to meet when it writes
 * the answer, exactly as before (a client that half-closes still gets its
 * answer).  Plain sockets only: bufferevent_openssl is left as it was. */
#define HTTP_HOLD_INPUT (2 * 1024 * 1024)

static void http_hold_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    (void)arg;
}

void http_hold_begin(struct http_front *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon || evhttp_connection_get_server(evcon) != h->http)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    bufferevent_data_cb readcb = NULL, writecb = NULL;
    bufferevent_event_cb eventcb = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, &readcb, &writecb, &eventcb, &arg);
    if (!readcb && eventcb != http_hold_event)
        return; /* the answer is on its way: evhttp is writing it */
    bufferevent_setcb(bev, NULL, writecb, http_hold_event, arg);
    bufferevent_setwatermark(bev, EV_READ, 0, HTTP_HOLD_INPUT);
    bufferevent_enable(bev, EV_READ);
}

void http_hold_end(struct http_front *h, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon || evhttp_connection_get_server(evcon) != h->http)
        return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    bufferevent_event_cb eventcb = NULL;
    bufferevent_getcb(bev, NULL, NULL, &eventcb, NULL);
    /* evhttp sets its own callbacks again as it writes the answer. */
    if (eventcb == http_hold_event)
        bufferevent_setwatermark(bev, EV_READ, 0, 0);
}

/* Add the Date and Content-Length headers evhttp would add to a held
 * answer, the same bytes, but Date formatted once a second instead of per
 * answer (gmtime and snprintf were ~3,400 instructions of every answer) and
 * the length without snprintf.  evhttp adds neither when the answer has
 * it.  Unlike evhttp, Date goes on HTTP/1.0 answers too, which RFC 9110
 * (section 6.6.1) asks of a server with a clock; Content-Length only where
 * evhttp adds it too (a body that may be sent). */
static void http_stamp(struct http_front *h, struct evhttp_request *req,
                       int code)
{
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                   "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    time_t now = time(NULL);

    if ((int64_t)now != h->date_secs) {
        struct tm tm;
        if (!gmtime_r(&now, &tm))
            return; /* evhttp adds its own */
        snprintf(h->date, sizeof h->date, "%s, %02d %s %4d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                 1900 + tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec);
        h->date_secs = now;
    }
    evhttp_add_header(hd, "Date", h->date);
    if (code != 204 && code != 304 && code >= 200 &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        char len[24];
        u64_to_dec(evbuffer_get_length(evhttp_request_get_output_buffer(req)),
                   len);
        evhttp_add_header(hd, "Content-Length", len);
    }
}

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
    /* evhttp frees the request here, even if its client has gone (it then
     * has no connection); a connection outlives the sending of its answer. */
    struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);
    http_hold_end(p->h, p->req);
    http_stamp(p->h, p->req, code);
    http_send(p->req, code);
    if (evcon)
        http_write_now(p->h, evcon);
    free(p);
}

/* Send the response prepared in req once ticket t is durable.  The waiter
 * may call back before this returns. */
static void http_send_durable(struct http_front *h,
                              struct evhttp_request *req, int code,
                              tally_ticket t)
{
    struct http_pending *p = xmalloc(sizeof *p);
    p->h = h;
    p->req = req;
    p->code = code;
    h->waiter->wait(h->waiter->self, t, http_on_durable, p);
}

/* Answer a command's result: OK with the body built by the caller, or the
 * problem for its status.  Every answer waits for its ticket, errors too: an
 * overflow or a reused idempotency key shows state that may still be
 * syncing (cmd.h); an error that shows none has ticket 0 and leaves at
 * once. */
void http_finish(struct http_front *h, struct evhttp_request *req,
                 const struct cmd_res *res, int ok_code)
{
    if (res->status == CMD_PENDING)
        return; /* served again once the store answers (http.c) */
    int code = res->status == CMD_OK
                   ? ok_code
                   : http_cmd_problem(req, res->status, res->detail);
    http_send_durable(h, req, code, res->ticket);
}
