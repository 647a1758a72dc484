/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proto.h - the contract every stream front end (RESP, memcached) keeps with
 * the daemon.
 *
 * A front end is a pure function over bytes: the daemon hands it whatever has
 * arrived on a connection, it handles at most one complete request, appends
 * that request's reply to out->buf and says in out->ticket when the reply may
 * leave (src/server holds it until tally_durable() reaches the ticket).  A
 * front end never reads or writes a socket and never touches storage except
 * through the command layer (src/cmd).
 */
#ifndef TALLY_PROTO_H
#define TALLY_PROTO_H

#include <stddef.h>

#include "tally.h"
#include "util.h"

/* out->flags, set by a front end after a request. */
#define PROTO_CLOSE 0x1    /* close the connection once the reply is sent */
#define PROTO_SHUTDOWN 0x2 /* the client asked the daemon to shut down */
#define PROTO_ATTACK 0x4   /* the request looks like HTTP sent to this port by
                              a web page (cross-protocol scripting): nothing
                              of it ran, no reply was written, PROTO_CLOSE is
                              set too, and the daemon logs it (front ends
                              never log) */

struct proto_out {
    struct buf *buf;     /* the daemon's; the reply is appended here */
    tally_ticket ticket; /* the reply may leave once durable (0: at once) */
    unsigned flags;      /* PROTO_* */
};

/* Limits a front end enforces on one request, chosen by the daemon. */
struct proto_limits {
    size_t max_args;     /* arguments per request (1024) */
    size_t max_bulk;     /* one argument's bytes (64 KiB) */
    size_t max_request;  /* one request's bytes, e.g. an inline line (1 MiB) */
};

#define PROTO_LIMITS_DEFAULT {1024, 64 * 1024, 1024 * 1024}

struct cmd_ctx;
struct cmd_session;

/* How a front end sends bytes nobody asked for just now (pub/sub messages)
 * on one of its connections: push(self, p, n) appends them after whatever
 * the connection already has to send, and the daemon writes them without
 * holding up anything else.  Returns 0, or -1 when the connection is past
 * the daemon's subscriber output limit: the bytes were dropped, the
 * connection is being closed, and the front end should push nothing more
 * (conn_free still follows). */
struct proto_push {
    int (*push)(void *self, const void *p, size_t n);
    void *self;
};

/* A stream front end, as the daemon sees it.  conn_new gets the front end's
 * own state for this listener (`front`: what the daemon made with that front
 * end's constructor, e.g. mc_front_new(); NULL for one that keeps none), the
 * command context, the connection's session (owned by the daemon, outlives
 * the connection state), the limits and the peer's address
 * ("127.0.0.1:5555"); all are borrowed.  handle() handles at most one complete request from
 * in[0, len) and returns the bytes it consumed: 0 means the request is not
 * complete yet (the daemon waits for more bytes).  A request that breaks the
 * protocol or a limit gets an error reply, PROTO_CLOSE, and len is returned.
 * A request that needs no reply (memcached noreply) appends nothing.  A
 * front end with subscribers also gets a struct proto_push (set_push). */
struct proto_ops {
    const char *name; /* "resp", "memcache" */
    void *(*conn_new)(void *front, struct cmd_ctx *ctx, struct cmd_session *s,
                      const struct proto_limits *lim, const char *peer);
    void (*conn_free)(void *conn);
    size_t (*handle)(void *conn, const char *in, size_t len,
                     struct proto_out *out);
    /* Optional (NULL: the front end never pushes): called once right after
     * conn_new with the connection's push channel (copied). */
    void (*set_push)(void *conn, const struct proto_push *push);
    /* Optional (NULL: none): if the complete request at in[0, len) is one
     * that may run while the request before it waits for the store (one
     * cmd_exec of an op cmd_ahead_ok allows, cmd.h "Pipelined
     * look-ahead"), its length, else 0.  Parses only; handle() still
     * serves it. */
    size_t (*ahead)(void *conn, const char *in, size_t len);
};

/* How a front end that is not a byte stream (HTTP) holds a response until
 * it is durable: it calls wait(self, ticket, fn, arg) and the daemon calls
 * fn(arg, status) once tally_durable() >= ticket (status TALLY_OK), at once
 * if it already is, or with a negative tally code if the write path failed
 * first (the response must then report an error instead).
 * batch(self), if not NULL, is called right before the front end runs a
 * request through the command layer: the daemon then gathers the changes of
 * every request it runs in this pass of its event loop into one engine
 * batch (one write, one sync), as it does for the stream front ends'
 * requests, and closes the batch after the pass.  It makes nobody wait. */
typedef void (*proto_ready_fn)(void *arg, int status);
struct proto_waiter {
    void (*wait)(void *self, tally_ticket t, proto_ready_fn fn, void *arg);
    void (*batch)(void *self);
    void *self;
};

#endif /* TALLY_PROTO_H */
