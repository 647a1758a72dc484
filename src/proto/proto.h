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

#endif /* TALLY_PROTO_H */
