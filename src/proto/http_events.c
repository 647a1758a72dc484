/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_events.c - change streams as Server-Sent Events: GET
 * /v1/counters/{key}/events (one counter) and GET /v1/events?prefix=...
 * (every counter whose key starts with the prefix; none: all).
 *
 * A stream is a chunked text/event-stream response that subscribes to the
 * command layer's event hub (src/cmd/events.h), so it sees a change only
 * once the change is durable.  Each event is
 *
 *     id: <event id>
 *     event: change
 *     data: {"key":"k","value":5,"op":"incrby","time":"2026-...Z"}
 *
 * with "deleted":true or "expired":true in place of "value" for a counter
 * that went away.  A client that reconnects with Last-Event-ID gets every
 * event after that id from the hub's window; when the window no longer
 * holds them it gets one `event: reset` instead: for one counter its
 * current (durable) value, for a prefix {"prefix": ...}, meaning "list the
 * counters again".  A comment line every keep-alive interval keeps proxies
 * from closing an idle stream.  A client that does not read is cut off once
 * its unsent output passes the subscriber limit (counted in /metrics).
 * docs/events.md is the user's description.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "events.h"
#include "util.h"

struct http_stream;

/* A reset waiting for its value to be durable. */
struct reset_wait {
    struct http_stream *st; /* NULL once the stream is gone */
    uint64_t id;
    int found;
    int64_t value;
};

struct http_stream {
    TAILQ_ENTRY(http_stream) link;
    struct http_front *h;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct events_sub *sub;
    struct evbuffer *pend;   /* text for the next chunk (stream_flush) */
    int dirty;               /* pend has text; the flush event is active */
    struct evbuffer *held;   /* events that came while a reset value waits
                                for its ticket; NULL once live */
    struct reset_wait *reset; /* that wait, or NULL */
    struct cmd_session s;    /* the reset's read, while a store that answers
                                later has it (reading) */
    int reading;
    uint64_t reset_id;       /* the reset's event id, meanwhile */
    struct buf key;          /* the counter or the prefix */
    int exact;
};

/* Unsent bytes on the stream's connection. */
static size_t stream_unsent(const struct http_stream *st)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(st->evcon);

    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void stream_free(struct http_stream *st)
{
    struct http_front *h = st->h;

    TAILQ_REMOVE(&h->streams, st, link);
    events_unsubscribe(h->ctx->events, st->sub);
    if (st->reset)
        st->reset->st = NULL; /* the wait finds the stream gone */
    if (st->reading)
        cmd_replay_end(&st->s); /* its answer frees itself */
    if (st->held)
        evbuffer_free(st->held);
    evbuffer_free(st->pend);
    buf_free(&st->key);
    free(st);
}

/* evhttp's close callback: the client went away or we cut it off. */
static void stream_closed(struct evhttp_connection *evcon, void *arg)
{
    struct http_stream *st = arg;
    struct http_front *h = st->h;

    stream_free(st);
    /* The stream's request is never answered now: as http_on_gone(). */
    http_on_gone(evcon, h);
}

/* Queue text for the stream, or cut the stream off past the limit.  What a
 * loop pass queues leaves as one chunk (stream_flush), so a sync that
 * releases a thousand events costs each stream one chunk, not a thousand.
 * Returns 0, or -1 if the stream is gone (st is freed). */
static int stream_send(struct http_stream *st, const char *p, size_t n)
{
    if (st->held) {
        evbuffer_add(st->held, p, n);
        return 0;
    }
    if (stream_unsent(st) + evbuffer_get_length(st->pend) + n >
        st->h->sub_limit) {
        events_count_cutoff(st->h->ctx->events, CMD_PROTO_HTTP);
        /* Frees the request and runs stream_closed(). */
        evhttp_connection_free(st->evcon);
        return -1;
    }
    evbuffer_add(st->pend, p, n);
    if (!st->dirty) {
        st->dirty = 1;
        event_active(st->h->flush, EV_TIMEOUT, 0);
    }
    return 0;
}

/* The flush event: one chunk for each stream with queued text. */
static void stream_flush(evutil_socket_t fd, short what, void *arg)
{
    struct http_front *h = arg;
    struct http_stream *st;

    TAILQ_FOREACH(st, &h->streams, link)
        if (st->dirty) {
            st->dirty = 0;
            evhttp_send_reply_chunk(st->req, st->pend); /* drains pend */
        }
}

/* One SSE event onto out: id (0: none), type and a JSON object (taken). */
static void sse_text(struct buf *out, uint64_t id, const char *type,
                     json_t *data)
{
    char *js = json_dumps(data, JSON_COMPACT);

    if (id)
        buf_printf(out, "id: %llu\n", (unsigned long long)id);
    buf_printf(out, "event: %s\ndata: %s\n\n", type, js);
    free(js);
    json_decref(data);
}

/* Send one SSE event (sse_text) on st.  Returns stream_send's result. */
static int stream_event(struct http_stream *st, uint64_t id, const char *type,
                        json_t *data)
{
    struct buf b = BUF_INIT;
    int rc;

    sse_text(&b, id, type, data);
    rc = stream_send(st, b.p, b.len);
    buf_free(&b);
    return rc;
}

/* A released change as its `change` event. */
static void event_text(struct buf *out, const struct events_event *ev)
{
    json_t *o = http_counter_json(ev->key, ev->klen, ev->value, 0);

    if (ev->kind != EVENTS_VALUE) {
        json_object_del(o, "value");
        json_object_set_new(o, ev->kind == EVENTS_DELETED ? "deleted"
                                                          : "expired",
                            json_true());
    }
    json_object_set_new(o, "op", json_string(events_op_name(ev->op)));
    json_object_set_new(o, "time", http_rfc3339(ev->time_ms));
    sse_text(out, ev->id, "change", o);
}

/* The hub's callback: word one released change, once for all the streams
 * it goes to (the text is kept by event id). */
static void on_event(void *arg, const struct events_event *ev)
{
    struct http_stream *st = arg;
    struct http_front *h = st->h;

    if (h->text_id != ev->id || !h->text.len) {
        buf_clear(&h->text);
        event_text(&h->text, ev);
        h->text_id = ev->id;
    }
    stream_send(st, h->text.p, h->text.len);
}

/* The reset value is durable now (or never will be): send it, then what
 * came meanwhile, and go live. */
static void reset_ready(void *arg, int status)
{
    struct reset_wait w = *(struct reset_wait *)arg;
    struct http_stream *st = w.st;
    struct evbuffer *held;

    free(arg);
    if (!st)
        return;
    st->reset = NULL;
    held = st->held;
    st->held = NULL;
    if (status != TALLY_OK) {
        evbuffer_free(held);
        evhttp_connection_free(st->evcon); /* nothing true to say */
        return;
    }
    json_t *o = http_counter_json(st->key.p, st->key.len, w.value, 0);
    if (!w.found) {
        json_object_del(o, "value");
        json_object_set_new(o, "deleted", json_true());
    }
    if (stream_event(st, w.id, "reset", o) == 0 &&
        evbuffer_get_length(held))
        stream_send(st, (const char *)evbuffer_pullup(held, -1),
                    evbuffer_get_length(held));
    evbuffer_free(held);
}

/* The reset's read has its result: show it once it is durable, holding
 * live events until then (the value is older than them). */
static void reset_wait_durable(struct http_stream *st, uint64_t id,
                               const struct cmd_res *res)
{
    struct http_front *h = st->h;
    struct reset_wait *w = xcalloc(1, sizeof *w);
    w->st = st;
    w->id = id;
    w->found = res->status == CMD_OK;
    w->value = res->value;
    st->reset = w;
    if (!st->held)
        st->held = evbuffer_new();
    h->waiter->wait(h->waiter->self, res->ticket, reset_ready, w);
}

/* The store answered the reset's read (the session's wake): run it again,
 * which now returns the logged result. */
static void reset_read_woken(void *arg, struct cmd_session *s)
{
    struct http_stream *st = arg;
    struct cmd_req c = {.op = CMD_GET, .key = st->key.p, .klen = st->key.len};
    struct cmd_res res = {0};

    if (cmd_exec(st->h->ctx, s, &c, &res) == CMD_PENDING)
        return; /* woken again when it comes */
    st->reading = 0;
    cmd_replay_end(s);
    reset_wait_durable(st, st->reset_id, &res);
}

/* Too far behind: tell the client what it missed can only be re-read. */
static void stream_reset(struct http_stream *st, struct cmd_session *s)
{
    struct http_front *h = st->h;
    uint64_t id = events_last_id(h->ctx->events);

    if (!st->exact) {
        json_t *o = json_object();
        json_object_set_new(o, "prefix",
                            json_stringn(st->key.p ? st->key.p : "",
                                         st->key.len));
        stream_event(st, id, "reset", o);
        return;
    }
    struct cmd_req c = {.op = CMD_GET, .key = st->key.p, .klen = st->key.len};
    struct cmd_res res = {0};
    if (cmd_exec(h->ctx, s, &c, &res) == CMD_PENDING) {
        /* A store that answers later: the stream has started, so the
         * request is not run again (docs/store.md); the stream takes the
         * read over and resets once its answer comes, holding live events
         * meanwhile.  The request's session no longer has it. */
        st->s = *s;
        st->s.wake = reset_read_woken;
        st->s.wake_arg = st;
        cmd_session_moved(&st->s);
        s->replay = NULL;
        st->reading = 1;
        st->reset_id = id;
        st->held = evbuffer_new();
        return;
    }
    reset_wait_durable(st, id, &res);
}

/* Last-Event-ID as a number, or 0 (none, or not ours). */
static uint64_t last_event_id(struct evhttp_request *req)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Last-Event-ID");
    uint64_t id = 0;

    if (!v || cmd_parse_u64(v, strlen(v), &id) != 0)
        return 0;
    return id;
}

void http_events(struct http_front *h, struct evhttp_request *req,
                 struct cmd_session *s, const char *seg, size_t seglen)
{
    struct http_stream *st;
    struct buf key = BUF_INIT;
    uint64_t after = last_event_id(req);

    if (seg) {
        if (http_unescape(seg, seglen, 0, &key) != 0) {
            http_bad(req, "bad percent-encoding in the key");
            goto fail;
        }
    } else {
        struct evkeyvalq q;
        const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        if (evhttp_parse_query_str(qs ? qs : "", &q) != 0) {
            http_bad(req, "bad query string");
            goto fail;
        }
        const char *p = evhttp_find_header(&q, "prefix");
        if (p)
            buf_adds(&key, p);
        evhttp_clear_headers(&q);
    }
    if (key.len > TALLY_KEY_MAX) {
        struct cmd_res res = {.status = CMD_ERR_KEYLEN};
        http_finish(h, req, &res, 200);
        goto fail;
    }
    if (!cmd_authorized(h->ctx, s)) {
        struct cmd_res res = {.status = CMD_ERR_NOAUTH};
        http_finish(h, req, &res, 200);
        goto fail;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    http_ctype(req, "text/event-stream; charset=utf-8");
    evhttp_add_header(out, "Cache-Control", "no-store");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        http_send(req, 200); /* the headers a stream would start with */
        goto fail;
    }
    st = xcalloc(1, sizeof *st);
    st->h = h;
    st->req = req;
    st->evcon = evhttp_request_get_connection(req);
    st->key = key;
    st->exact = seg != NULL;
    st->pend = evbuffer_new();
    TAILQ_INSERT_TAIL(&h->streams, st, link);

    evhttp_add_header(out, "X-Accel-Buffering", "no"); /* nginx: stream */
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(st->evcon, stream_closed, st);
    /* A stream has no end; evhttp's idle timeout must not close it. */
    evhttp_connection_set_timeout(st->evcon, -1);
    if (stream_send(st, ": tally change stream\nretry: 2000\n\n", 35) != 0)
        return;
    /* This client may come back with an id: the window must hold every
     * change from here on, connected or not. */
    events_keep_window(h->ctx->events);
    st->sub = events_subscribe(h->ctx->events, st->key.p ? st->key.p : "",
                               st->key.len, st->exact, on_event, st);
    if (after && events_replay(h->ctx->events, st->sub, after) != 0)
        stream_reset(st, s);
    return;
fail:
    buf_free(&key);
}

/* The keep-alive timer: a comment on every stream. */
static void keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct http_front *h = arg;
    struct http_stream *st, *next;

    for (st = TAILQ_FIRST(&h->streams); st; st = next) {
        next = TAILQ_NEXT(st, link);
        stream_send(st, ": keep-alive\n\n", 14);
    }
}

void http_events_init(struct http_front *h, struct event_base *base,
                      const struct http_options *opt)
{
    TAILQ_INIT(&h->streams);
    h->sub_limit = opt && opt->sub_limit ? opt->sub_limit : 8 * 1024 * 1024;
    int ms = opt && opt->keepalive_ms ? opt->keepalive_ms : 15000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    h->keepalive = event_new(base, -1, EV_PERSIST, keepalive, h);
    h->flush = event_new(base, -1, 0, stream_flush, h);
    if (!h->keepalive || !h->flush) {
        fprintf(stderr, "tallyd: out of memory creating events\n");
        abort();
    }
    event_add(h->keepalive, &tv);
}

void http_events_stop(struct http_front *h)
{
    struct http_stream *st;

    if (h->keepalive)
        event_free(h->keepalive);
    h->keepalive = NULL;
    if (h->flush)
        event_free(h->flush);
    h->flush = NULL;
    buf_free(&h->text);
    /* End each stream: the client sees the response finish and reconnects
     * (with Last-Event-ID) once the server is back.  evhttp frees the
     * request once the end is written; the close callback frees st. */
    while ((st = TAILQ_FIRST(&h->streams))) {
        struct evhttp_request *req = st->req;
        /* Unanswered until the end is written (http_on_answered). */
        evhttp_connection_set_closecb(st->evcon, http_on_gone, h);
        stream_free(st);
        evhttp_send_reply_end(req);
    }
}
