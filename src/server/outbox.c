/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * outbox.c - the durability hold: no reply leaves tallyd before the change
 * (or the value) it shows is durable under the sync policy.
 *
 * Stream connections.  Every reply is appended to its connection's one
 * output buffer (struct conn.out) by the front end, with a ticket.  If the
 * ticket is already durable and nothing earlier is held, nothing is recorded:
 * the bytes may leave at once (a compare with a cached tally_durable() is all
 * the work).  Otherwise the connection keeps a mark (ticket, end offset) and
 * goes on the server's holding list; a reply after a held one extends the
 * last mark when its ticket is not newer, so marks stay in strictly
 * increasing ticket order and a later reply never overtakes an earlier one.
 * A request that wrote nothing (memcached noreply, meta q) is held all the
 * same: its mark covers no bytes, and the replies after it join it, so an
 * `mn` sent after a batch of quiet changes says they are all durable.
 * When the engine's notify fd fires, outbox_release() walks only the holding
 * list, pops the marks now durable and writes what they cover.
 *
 * HTTP.  The front end calls the struct proto_waiter filled here; requests
 * wait in a min-heap on ticket and their callbacks run in ticket order.
 * Before it runs a request it asks for the loop pass's batch (conn.c), so
 * the requests evhttp hands over in one pass share one write and one sync.
 *
 * Failure.  When the write path fails (TALLY_EFAILED) held tickets will never
 * become durable: each holding connection gets what was durable, its held
 * bytes are dropped and it is closed, because the client cannot be told
 * whether those changes happened; HTTP waiters are called with the error.
 * docs/threading.md says this for operators.
 */
#include "server.h"

#include "events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Stream connections ------------------------------------------------ */

static void waiting_add(struct outbox *ob, struct conn *c)
{
    c->waiting = 1;
    c->wprev = NULL;
    c->wnext = ob->waiting;
    if (ob->waiting)
        ob->waiting->wprev = c;
    ob->waiting = c;
}

static void waiting_remove(struct outbox *ob, struct conn *c)
{
    if (!c->waiting)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        ob->waiting = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
    c->waiting = 0;
}

static void mark_push(struct conn *c, tally_ticket t, size_t end)
{
    if (c->mhead + c->nmarks == c->mcap) {
        if (c->mhead > c->mcap / 2) {
            /* Mostly popped: slide down instead of growing. */
            memmove(c->marks, c->marks + c->mhead, c->nmarks * sizeof *c->marks);
            c->mhead = 0;
        } else {
            c->mcap = c->mcap ? c->mcap * 2 : 16;
            c->marks = xrealloc(c->marks, c->mcap * sizeof *c->marks);
        }
    }
    c->marks[c->mhead + c->nmarks++] = (struct mark){t, end};
}

static void release_conn(struct outbox *ob, struct conn *c, int failed);

tally_ticket outbox_engine_durable(const struct server *srv)
{
    /* Without the engine (a remote store) every ticket is 0: all durable. */
    return srv->db ? tally_durable(srv->db) : UINT64_MAX;
}

void outbox_hold(struct conn *c, size_t start, tally_ticket t)
{
    struct outbox *ob = &c->srv->outbox;
    if (c->nmarks) {
        struct mark *last = &c->marks[c->mhead + c->nmarks - 1];
        if (t <= last->ticket)
            last->end = c->out.len; /* leaves with the held reply before it */
        else
            mark_push(c, t, c->out.len);
    } else {
        if (t <= ob->durable)
            return;
        /* The cache may be stale; the engine's own value is one atomic load. */
        ob->durable = outbox_engine_durable(c->srv);
        if (t <= ob->durable)
            return;
        c->ready = start;
        mark_push(c, t, c->out.len);
        waiting_add(ob, c);
    }
    /* After a failure no notification may come for this ticket: settle the
     * connection now rather than leave it waiting forever. */
    if (ob->health == TALLY_EFAILED)
        release_conn(ob, c, 1);
}

void outbox_forget(struct conn *c)
{
    waiting_remove(&c->srv->outbox, c);
    free(c->marks);
    c->marks = NULL;
    c->mhead = c->nmarks = c->mcap = 0;
}

void outbox_shift(struct conn *c, size_t n)
{
    if (!c->nmarks)
        return;
    c->ready -= n;
    for (size_t i = 0; i < c->nmarks; i++)
        c->marks[c->mhead + i].end -= n;
}

/* Pop c's marks that durable covers.  If failed, drop the rest (their bytes
 * too) and have the connection closed once the durable part is written. */
static void release_conn(struct outbox *ob, struct conn *c, int failed)
{
    while (c->nmarks && c->marks[c->mhead].ticket <= ob->durable) {
        c->ready = c->marks[c->mhead].end;
        c->mhead++;
        c->nmarks--;
    }
    if (c->nmarks && failed) {
        struct server *srv = c->srv;
        slog(&srv->log, SLOG_WARN,
             "closing client %s: %zu replies can never be made durable (%s); "
             "the client must treat those requests as of unknown outcome",
             c->peer, c->nmarks, tally_strerror(ob->health));
        c->out.len = c->ready;
        c->out.p[c->out.len] = 0; /* struct buf's invariant */
        c->nmarks = 0;
        c->closing = 1;
    }
    if (!c->nmarks) {
        c->mhead = 0;
        waiting_remove(ob, c);
    }
}

/* ---- HTTP waiters: a binary min-heap on (ticket, seq) ------------------- */

static int owait_less(const struct owait *a, const struct owait *b)
{
    return a->ticket < b->ticket || (a->ticket == b->ticket && a->seq < b->seq);
}

static void heap_push(struct outbox *ob, struct owait w)
{
    if (ob->nheap == ob->capheap) {
        ob->capheap = ob->capheap ? ob->capheap * 2 : 64;
        ob->heap = xrealloc(ob->heap, ob->capheap * sizeof *ob->heap);
    }
    size_t i = ob->nheap++;
    while (i > 0 && owait_less(&w, &ob->heap[(i - 1) / 2])) {
        ob->heap[i] = ob->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    ob->heap[i] = w;
}

static struct owait heap_pop(struct outbox *ob)
{
    struct owait top = ob->heap[0];
    struct owait last = ob->heap[--ob->nheap];
    size_t i = 0, n = ob->nheap;
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= n)
            break;
        if (kid + 1 < n && owait_less(&ob->heap[kid + 1], &ob->heap[kid]))
            kid++;
        if (!owait_less(&ob->heap[kid], &last))
            break;
        ob->heap[i] = ob->heap[kid];
        i = kid;
    }
    if (n)
        ob->heap[i] = last;
    return top;
}

/* proto_waiter.wait: call fn now if t is durable (or can never be), else
 * when outbox_release() sees it durable. */
static void waiter_wait(void *self, tally_ticket t, proto_ready_fn fn, void *arg)
{
    struct server *srv = self;
    struct outbox *ob = &srv->outbox;
    if (t > ob->durable)
        ob->durable = outbox_engine_durable(srv);
    if (t <= ob->durable) {
        fn(arg, TALLY_OK);
        return;
    }
    if (ob->health == TALLY_EFAILED) {
        fn(arg, TALLY_EFAILED);
        return;
    }
    heap_push(ob, (struct owait){t, ob->seq++, fn, arg});
}

/* proto_waiter.batch: the request about to run joins this pass's batch. */
static void waiter_batch(void *self)
{
    conn_cork_request(self);
}

void outbox_waiter_init(struct server *srv)
{
    srv->waiter.wait = waiter_wait;
    srv->waiter.batch = waiter_batch;
    srv->waiter.self = srv;
}

/* ---- Release ------------------------------------------------------------ */

/* Log a change of the engine's health once, with what the operator should do. */
static void health_changed(struct server *srv, int h)
{
    if (h == TALLY_OK)
        slog(&srv->log, SLOG_WARN, "storage healthy again: changes are accepted");
    else if (h == TALLY_ENOSPC)
        slog(&srv->log, SLOG_ERROR,
             "disk full under %s: changes are refused, reads go on; free "
             "space and changes resume by themselves", srv->conf.dir);
    else
        /* The engine has logged the failed call itself; say what follows. */
        slog(&srv->log, SLOG_ERROR,
             "%s: every change is refused from now on, reads of durable "
             "values go on, replies waiting for a sync are dropped and their "
             "connections closed; check the disk and the kernel log, then "
             "restart tallyd, which recovers everything acknowledged",
             tally_strerror(h));
}

void outbox_release(struct server *srv)
{
    struct outbox *ob = &srv->outbox;
    int h = srv->db ? tally_health(srv->db) : TALLY_OK;
    ob->durable = outbox_engine_durable(srv); /* after health: see below */
    if (h != ob->health) {
        health_changed(srv, h);
        ob->health = h;
    }
    /* Read health before durable: a sync that completed just before the
     * failure is then still counted as durable, never the reverse. */
    int failed = h == TALLY_EFAILED;
    struct conn *next;
    for (struct conn *c = ob->waiting; c; c = next) {
        next = c->wnext;
        release_conn(ob, c, failed);
        if (conn_flush(c) < 0)
            continue; /* closed and freed; next was read before */
    }
    while (ob->nheap && (failed || ob->heap[0].ticket <= ob->durable)) {
        struct owait w = heap_pop(ob);
        w.fn(w.arg, w.ticket <= ob->durable ? TALLY_OK : TALLY_EFAILED);
    }
    /* Change events follow the same rule as replies (src/cmd/events.h). */
    events_release(srv->events, ob->durable, failed);
}

void outbox_on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    /* The event is edge-triggered (main.c): every signal of the eventfd is
     * a new edge, one that comes while we release included, so it is not
     * read, which saves a system call per sync (tally_notify_fd). */
    (void)fd;
    outbox_release(srv);
    if (srv->step_pending)
        srv_step(srv);
}

void outbox_free(struct outbox *ob)
{
    free(ob->heap);
    ob->heap = NULL;
    ob->nheap = ob->capheap = 0;
}
