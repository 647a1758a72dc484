/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * push.c - the daemon's side of struct proto_push (proto.h): how a front end
 * sends a stream connection bytes nobody asked for just now (pub/sub
 * messages, released by the event hub once durable).
 *
 * Pushed bytes are appended to the connection's one output buffer, after any
 * reply still held for durability, so they keep their place in the stream;
 * the write itself waits for the next loop pass (the write event is made
 * active), so a publisher never waits for a subscriber's socket.  A
 * subscriber that does not read is cut off once conf.sub_limit bytes are
 * unsent, as Redis's client-output-buffer-limit pubsub does: the socket is
 * shut down, and conn.c closes the connection when its next write fails.
 */
#include "server.h"

#include <sys/socket.h>

#include "events.h"

static int conn_push(void *self, const void *p, size_t n)
{
    struct conn *c = self;
    struct server *srv = c->srv;

    if (c->closing)
        return -1;
    if (c->out.len - c->sent + n > srv->conf.sub_limit) {
        slog(&srv->log, SLOG_WARN, "closing subscriber %s: %zu bytes unsent, "
             "over --subscriber-output-limit %llu (a client that does not "
             "read its messages)", c->peer, c->out.len - c->sent,
             (unsigned long long)srv->conf.sub_limit);
        events_count_cutoff(srv->events, c->session.proto);
        c->closing = 1;
        shutdown(c->fd, SHUT_RDWR);
        event_active(c->wev, EV_WRITE, 0);
        return -1;
    }
    buf_add(&c->out, p, n);
    event_active(c->wev, EV_WRITE, 0);
    return 0;
}

struct proto_push conn_push_for(struct conn *c)
{
    return (struct proto_push){conn_push, c};
}
