/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * conn.c - listeners and stream connections for any struct proto_ops (RESP,
 * memcached): accept, read, hand bytes to the front end, write replies.
 *
 * Sockets are non-blocking and driven by raw libevent events, with the
 * daemon's own buffers: one read(2) per readable event into conn.in; once
 * every callback of the loop iteration has run, conn_run() passes each
 * complete request through ops->handle() (at most CONN_BUDGET per connection
 * and iteration, so one pipelining client cannot starve the others), then
 * makes one send(2) of everything that may leave.  The requests of an
 * iteration run back to back inside tally_cork(), so their changes share one
 * write and one sync in the engine; the batch stays open for up to
 * CONN_CORK_PASSES non-blocking passes while they keep bringing requests.
 * HTTP requests, which evhttp runs during the iteration's callbacks, join
 * the same batch (conn_cork_request, through the HTTP front end's
 * proto_waiter) and count as requests of the pass.
 * What may leave is decided by outbox.c (replies wait until durable).  A
 * client that does not read its replies stops being read once
 * CONN_OUT_LIMIT bytes are unsent, and one that sends more than
 * srv->max_input bytes without completing a request is closed.  A
 * connection is freed only in conn_close(), never while a caller
 * still holds it: every function that may close returns -1 when it did.
 * A TLS listener's connections read and write through tls.c (conn_recv,
 * conn_send); everything above those two calls is the same for both.
 * On a remote store a request that waits stops its connection there, and
 * the pipelined requests behind it that the store may take in order run
 * ahead (conn_ahead, cmd.h "Pipelined look-ahead"), so that a pipeline's
 * calls leave together rather than a round trip each.
 */
#define _GNU_SOURCE /* accept4 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_BUDGET 1000                    /* requests per connection and pass */
#define CONN_READ (16 * 1024)               /* room made for one read(2) */
#define CONN_OUT_LIMIT (16u * 1024 * 1024)  /* unsent bytes: stop reading */
#define CONN_KEEP (64 * 1024)               /* idle buffers above this are freed */
#define CONN_COMPACT (1024 * 1024)          /* written bytes worth a memmove */
#define ACCEPT_BATCH 64                     /* accepts per readable event */
#define CONN_CORK_PASSES 8                  /* passes one engine batch may span */
#define CONN_AHEAD 64                       /* requests run ahead of a waiting one */
/* The slowest recent fdatasync average (us) at which one client alone still
 * has the loop sync (conn_alone).  A newcomer waits for at most one such
 * fdatasync, as long as its own change would take: an SSD's 0.1-3 ms or a
 * spinning disk's 8 ms is fine, a volume stalling for tens of ms is not. */
#define CONN_INLINE_MAX_US 10000

/* One request run ahead of the first while that waits (conn_ahead). */
struct conn_ahead {
    struct cmd_replay *replay; /* its store calls; the slot keeps the log
                                  for the next request that uses it */
    size_t len;                /* its bytes, right after the ones before */
    int done;                  /* answered without waiting: its reply */
    struct buf reply;          /* waits here for its turn */
    tally_ticket ticket;
    unsigned flags;
};

/* The I/O seam: a plain socket, or TLS with read(2)'s and send(2)'s
 * conventions (tls.c). */
static ssize_t conn_recv(struct conn *c, void *p, size_t n)
{
    return c->tls ? tls_read(c->tls, p, n) : read(c->fd, p, n);
}

static ssize_t conn_send(struct conn *c, const void *p, size_t n)
{
    return c->tls ? tls_write(c->tls, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
}

/* The run queue: connections with input conn_run() has not run yet, in the
 * order their bytes arrived. */
static void runq_add(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->queued)
        return;
    c->queued = 1;
    c->rnext = NULL;
    c->rprev = srv->runq_tail;
    if (srv->runq_tail)
        srv->runq_tail->rnext = c;
    else
        srv->runq = c;
    srv->runq_tail = c;
    srv->nrunq++;
}

/* The ran list: connections whose requests ran in this pass and whose
 * replies are written once the pass's changes have been handed to the
 * engine (conn_run). */
static void ranq_add(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->ran)
        return; /* a CLIENT KILL put it there already */
    c->ran = 1;
    c->fprev = NULL;
    c->fnext = srv->ranq;
    if (srv->ranq)
        srv->ranq->fprev = c;
    srv->ranq = c;
}

static void ranq_remove(struct conn *c)
{
    if (!c->ran)
        return;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        c->srv->ranq = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->fprev = c->fnext = NULL;
    c->ran = 0;
}

static void runq_remove(struct conn *c)
{
    struct server *srv = c->srv;
    if (!c->queued)
        return;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        srv->runq = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        srv->runq_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->queued = 0;
    srv->nrunq--;
}

/* Start or stop reading as the connection's state asks. */
static void update_reading(struct conn *c)
{
    int could = !c->rpaused && !c->closing && !c->eof && !c->srv->stopping;
    int want = could && !c->storewait;
    /* Waiting for its store, a connection keeps its read event: a client
     * that waits for its reply sends nothing meanwhile, and deleting the
     * event and adding it again were two epoll_ctl calls per request, half
     * the system calls of a request on a remote store.  Should bytes come
     * meanwhile (a pipelining client), on_read stops reading then. */
    if (want == (int)c->reading || (could && c->storewait && c->reading))
        return;
    if (want ? event_add(c->rev, NULL) : event_del(c->rev)) {
        slog(&c->srv->log, SLOG_ERROR, "client %s: event_%s failed", c->peer,
             want ? "add" : "del");
        return;
    }
    c->reading = (unsigned)want;
}

/* Release everything a connection holds.  Its pointer is dead afterwards. */
static void conn_close(struct conn *c, const char *why)
{
    struct server *srv = c->srv;
    slog(&srv->log, SLOG_DEBUG, "client %s closed: %s", c->peer, why);
    outbox_forget(c);
    runq_remove(c);
    ranq_remove(c);
    event_free(c->rev);
    event_free(c->wev);
    tls_conn_free(c->tls);
    close(c->fd);
    c->ln->ops->conn_free(c->proto);
    /* An operation still in flight keeps only the session's replay log,
     * which frees itself once the store has answered (replay.c). */
    cmd_replay_end(&c->session);
    if (c->ahead) {
        for (unsigned i = 0; i < CONN_AHEAD; i++) {
            cmd_replay_drop(c->ahead[i].replay);
            buf_free(&c->ahead[i].reply);
        }
        free(c->ahead);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    buf_free(&c->in);
    buf_free(&c->out);
    srv->info.connected_clients--;
    free(c);
}

int conn_flush(struct conn *c)
{
    if (c->killed) {
        conn_close(c, "killed by CLIENT KILL");
        return -1;
    }
    size_t ready = outbox_ready(c);
    while (c->sent < ready) {
        ssize_t n = conn_send(c, c->out.p + c->sent, ready - c->sent);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The socket is full: wait for room rather than spin. */
            if (!c->wpending && event_add(c->wev, NULL) == 0)
                c->wpending = 1;
            return 0;
        }
        conn_close(c, n < 0 ? strerror(errno) : "send returned 0");
        return -1;
    }
    if (c->wpending) {
        event_del(c->wev);
        c->wpending = 0;
    }
    if (c->sent == c->out.len) {
        /* A held change that wrote nothing may keep an empty mark at the
         * end: it moves to the start with the bytes. */
        outbox_shift(c, c->sent);
        if (c->out.cap > CONN_KEEP)
            buf_free(&c->out);
        else
            buf_clear(&c->out);
        c->sent = 0;
    } else if (c->sent > CONN_COMPACT) {
        /* Replies are held behind a slow sync: drop what was written so the
         * buffer does not grow with everything ever sent. */
        buf_consume(&c->out, c->sent);
        outbox_shift(c, c->sent);
        c->sent = 0;
    }
    if (c->rpaused && c->out.len - c->sent < CONN_OUT_LIMIT / 2) {
        c->rpaused = 0;
        update_reading(c);
        if (c->backlog && !c->storewait)
            runq_add(c);
    }
    if (c->closing && c->out.len == 0 && !c->nmarks && !c->backlog) {
        conn_close(c, "done");
        return -1;
    }
    return 0;
}

/* Read once into c->in.  Returns 1 (bytes came), 0 (nothing now), -1 (the
 * peer closed its side; c->eof is set) or -2 (an error; errno set). */
static int conn_fill(struct conn *c)
{
    buf_reserve(&c->in, CONN_READ);
    ssize_t n = conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
    if (n > 0) {
        c->in.len += (size_t)n;
        /* TLS may hold decrypted bytes that the socket will not signal. */
        while (c->tls && tls_pending(c->tls)) {
            buf_reserve(&c->in, CONN_READ);
            n = tls_read(c->tls, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
            if (n <= 0)
                break; /* the next readable event says the rest */
            c->in.len += (size_t)n;
        }
        c->in.p[c->in.len] = 0;
        return 1;
    }
    if (n == 0) {
        c->eof = 1;
        return -1;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -2;
}

static struct conn_ahead *ahead_slot(struct conn *c, unsigned i)
{
    return &c->ahead[(c->ahead_first + i) % CONN_AHEAD];
}

/* The request at c->in[at] waits for the store (the first one not run yet,
 * at head): run the requests behind it that may go now, each with a replay
 * log of its own, after those that ran ahead already.  Their output is
 * dropped, as a waiting run's always is; one that answered at once (an
 * argument refused) keeps its reply in its slot.  They are served again in
 * turn by conn_process, from their logs. */
static void conn_ahead(struct conn *c, size_t head, size_t at)
{
    const struct proto_ops *ops = c->ln->ops;

    /* Only behind a request of one call itself: a second call it made
     * later would go behind theirs. */
    if (!ops->ahead || !ops->ahead(c->proto, c->in.p + head, c->in.len - head))
        return;
    for (unsigned i = 0; i < c->nahead; i++)
        at += ahead_slot(c, i)->len;
    while (c->nahead < CONN_AHEAD && at < c->in.len) {
        size_t n = ops->ahead(c->proto, c->in.p + at, c->in.len - at);
        struct proto_out o = {&c->out, 0, 0};
        size_t start = c->out.len;
        struct cmd_replay *head_log;
        struct conn_ahead *a;

        if (n == 0)
            return;
        if (!c->ahead)
            c->ahead = xcalloc(CONN_AHEAD, sizeof *c->ahead);
        a = ahead_slot(c, c->nahead);
        head_log = cmd_replay_swap(&c->session, a->replay);
        n = ops->handle(c->proto, c->in.p + at, c->in.len - at, &o);
        a->done = !cmd_pending(&c->session);
        if (a->done)
            cmd_request_done(&c->session); /* a refused call's log: the
                                              slot's next request starts
                                              clean */
        a->replay = cmd_replay_swap(&c->session, head_log);
        if (n == 0) { /* ahead() said complete: cannot happen */
            c->out.len = start;
            return;
        }
        a->len = n;
        if (a->done) {
            buf_add(&a->reply, c->out.p + start, c->out.len - start);
            a->ticket = o.ticket;
            a->flags = o.flags;
        }
        c->out.len = start;
        c->nahead++;
        at += n;
        if (a->done && a->flags)
            return; /* it closes (or more): nothing after it runs */
    }
}

/* The first request was served: the next one is the first slot's, whose
 * log becomes the session's, or which is served from its slot if it
 * answered already (ahead_done). */
static void ahead_next(struct conn *c)
{
    struct conn_ahead *a = ahead_slot(c, 0);

    if (a->done) {
        c->ahead_done = 1;
        return;
    }
    a->replay = cmd_replay_swap(&c->session, a->replay);
    c->ahead_first = (c->ahead_first + 1) % CONN_AHEAD;
    c->nahead--;
}

/* The first slot answered without waiting: its reply into out, its bytes
 * consumed (returned), as if handle() had run it now. */
static size_t ahead_done(struct conn *c, struct proto_out *o)
{
    struct conn_ahead *a = ahead_slot(c, 0);
    size_t n = a->len;

    if (a->reply.len)
        buf_add(&c->out, a->reply.p, a->reply.len);
    o->ticket = a->ticket;
    o->flags = a->flags;
    a->done = 0;
    c->ahead_done = 0;
    buf_clear(&a->reply);
    c->ahead_first = (c->ahead_first + 1) % CONN_AHEAD;
    c->nahead--;
    return n;
}

/* Run the complete requests in c->in through the front end, at most
 * CONN_BUDGET of them; c->backlog says whether some are left. */
static void conn_process(struct conn *c)
{
    const struct proto_ops *ops = c->ln->ops;
    size_t pos = 0;
    unsigned budget = CONN_BUDGET;
    if (c->storewait)
        return; /* conn_wake() queues it again */
    c->backlog = 0;
    while (pos < c->in.len && !c->closing) {
        if (c->out.len - c->sent > CONN_OUT_LIMIT) {
            c->rpaused = 1; /* conn_flush() resumes once the client reads */
            c->backlog = 1;
            break;
        }
        if (budget-- == 0) {
            c->backlog = 1; /* let the other clients run, then come back */
            break;
        }
        size_t start = c->out.len;
        struct proto_out o = {&c->out, 0, 0};
        size_t n;
        if (c->ahead_done) {
            n = ahead_done(c, &o);
        } else {
            n = ops->handle(c->proto, c->in.p + pos, c->in.len - pos, &o);
            /* One branch on the engine, which never keeps a replay log. */
            if (c->session.replay && cmd_pending(&c->session)) {
                /* The store answers later (cmd.h "Asynchronous stores"):
                 * drop what the front end wrote for this request, keep its
                 * bytes, and run it again from its first byte once woken;
                 * meanwhile the ones behind it may go too. */
                c->out.len = start;
                if (n)
                    conn_ahead(c, pos, pos + n);
                c->storewait = 1;
                c->backlog = 1;
                update_reading(c);
                break;
            }
        }
        if (n == 0)
            break;
        pos += n;
        if (c->session.replay)
            cmd_request_done(&c->session);
        if (c->nahead)
            ahead_next(c);
        /* Also when the request wrote nothing (memcached noreply, meta q):
         * its change still holds every reply after it (outbox.c). */
        outbox_hold(c, start, o.ticket);
        c->active_ms = srv_now_ms();
        if (o.flags & PROTO_CLOSE)
            c->closing = 1;
        if (o.flags & PROTO_ATTACK)
            slog(&c->srv->log, SLOG_WARN, "Possible SECURITY ATTACK detected: "
                 "client %s sent an HTTP request to the %s port, as a web page "
                 "can make a browser do (cross-protocol scripting); nothing of "
                 "it ran and the connection was closed. Keep tallyd's ports "
                 "unreachable from untrusted pages and hosts", c->peer, ops->name);
        if ((o.flags & PROTO_SHUTDOWN) && !c->srv->stopping) {
            slog(&c->srv->log, SLOG_INFO, "client %s asked for a shutdown", c->peer);
            srv_shutdown(c->srv);
        }
    }
    if (pos == c->in.len) {
        if (c->in.cap > CONN_KEEP)
            buf_free(&c->in);
        else
            buf_clear(&c->in);
    } else if (pos) {
        buf_consume(&c->in, pos);
    }
}

/* Reading only fills c->in and queues the connection: conn_run() runs the
 * requests once every callback of this loop iteration is done. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->backlog) {
        /* Bytes from the last read are not all run yet.  Waiting for its
         * store, it stops reading until conn_wake (update_reading), or
         * the loop would call this every pass until the answer came. */
        if (c->storewait && c->reading && event_del(c->rev) == 0)
            c->reading = 0;
        return;
    }
    switch (conn_fill(c)) {
    case 0:
        return;
    case -2:
        conn_close(c, strerror(errno));
        return;
    default: /* bytes, or the end of them: both need a look */
        c->backlog = 1;
        update_reading(c);
        runq_add(c);
    }
}

/* Run c's requests and decide what becomes of it; conn_run() writes what
 * may leave.  Returns 0, or -1 if c was closed (and freed). */
static int conn_step(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->rpaused || c->storewait)
        return 0; /* conn_flush() or conn_wake() queues it again */
    conn_process(c);
    if (!c->backlog) {
        if (c->in.len > srv->max_input) {
            slog(&srv->log, SLOG_WARN,
                 "closing client %s: %zu bytes buffered without a complete "
                 "request (limit %zu)", c->peer, c->in.len, srv->max_input);
            conn_close(c, "query buffer limit");
            return -1;
        }
        /* No more requests will come: answer what was asked, then close. */
        if (c->eof || srv->stopping)
            c->closing = 1;
    }
    update_reading(c);
    return 0;
}

/* Corked, the changes of every request until conn_run() uncorks reach the
 * engine as one batch: one write and, under --fsync always, one fdatasync. */
static void conn_cork(struct server *srv)
{
    if (srv->corked || !srv->db)
        return; /* no engine (a remote store): nothing to batch */
    tally_cork(srv->db);
    srv->corked = 1;
}

void conn_cork_request(struct server *srv)
{
    conn_cork(srv);
    srv->corked_others++;
}

/* May the loop fdatasync the pass's batch itself (tally_uncork_inline)?
 * Only when the one client it has is waiting for its replies: the pass
 * after its requests brought nothing more (ran is 0), no other stream
 * connection is open, and no other HTTP connection that has sent a request
 * is open (http_front_conns: evhttp does not count them).  Nobody else
 * then waits while the loop sits in the fdatasync, and the two thread
 * wake-ups of a hand-over, which cost about as much CPU again as the
 * fdatasync, are saved.  A client that sends its first request meanwhile
 * waits for that one fdatasync; after it the loop hands over again.  That
 * wait is bounded by the disk: once the recent fdatasync average is over
 * CONN_INLINE_MAX_US (a stalling volume), the sync thread takes the syncs
 * again, and the loop answers others while they run.  Under
 * everysec and no both calls are the same. */
static int conn_alone(const struct server *srv, size_t ran)
{
    return ran == 0 &&
           srv->info.connected_clients + fronts_http_conns(srv) <= 1 &&
           tally_sync_estimate_us(srv->db) <= CONN_INLINE_MAX_US;
}

void conn_run(struct server *srv)
{
    /* HTTP requests ran during the loop's callbacks, inside the batch. */
    size_t ran = srv->corked_others;
    srv->corked_others = 0;
    if (srv->runq)
        conn_cork(srv);
    /* Only what was queued before: a connection queued again meanwhile runs
     * next iteration, after the loop has looked for new events. */
    for (size_t n = srv->nrunq; n && srv->runq; n--) {
        struct conn *c = srv->runq;
        runq_remove(c);
        ran++;
        if (conn_step(c) == 0)
            ranq_add(c);
    }
    /* The batch stays open while non-blocking passes keep bringing requests
     * (main.c does not sleep while corked), as Redis's beforeSleep does,
     * but for a few passes at most.  Such a pass is an epoll_wait more per
     * request at one client, but it cannot be skipped on a guess: epoll
     * returns at most 32 ready sockets at a time here, so fifty clients'
     * requests that arrived together take two passes (and were two syncs
     * when a measured model skipped it, test_http_pipeline.py). */
    if (srv->corked && (ran == 0 || ++srv->cork_passes >= CONN_CORK_PASSES)) {
        srv->corked = 0;
        srv->cork_passes = 0;
        /* Under everysec and no the engine may write the batch right here
         * and make it durable (1), and under always too with one client
         * (conn_alone), so held replies can go with this pass's send; after
         * a failed write (< 0) release settles the holders. */
        int rc = conn_alone(srv, ran) ? tally_uncork_inline(srv->db)
                                      : tally_uncork(srv->db);
        if (rc != 0)
            outbox_release(srv);
    }
    while (srv->ranq) {
        struct conn *c = srv->ranq;
        ranq_remove(c);
        /* The budget ran out: go on next iteration.  Not one that waits
         * for its store: conn_wake() queues it when the answer is there,
         * and queueing it every pass meanwhile kept the loop from ever
         * sleeping (a busy loop beside the database on a small machine). */
        if (conn_flush(c) == 0 && c->backlog && !c->rpaused && !c->storewait)
            runq_add(c);
    }
}

static void on_accept(evutil_socket_t lfd, short what, void *arg);

/* The session's wake (cmd.h): the store answered the request c waits on,
 * so run c's input again from that request. */
static void conn_wake(void *arg, struct cmd_session *s)
{
    struct conn *c = arg;
    (void)s;
    c->storewait = 0;
    update_reading(c);
    runq_add(c);
}

/* While a script runs past busy-reply-threshold (cmd.h busy_poll), from
 * inside it: read what the other connections sent and run it, which the
 * command layer and the front ends answer -BUSY (SCRIPT KILL excepted), and
 * send what may leave.  The libevent loop cannot be entered again from
 * here, so this accepts and reads the sockets itself (non-blocking).
 * Replies of the loop pass the script started in, to requests run before
 * it, wait in c->out for the end of that pass (conn_run's ranq): they are
 * sent here too, or their clients would wait for the script's end.  Those
 * held for the pass's sync still wait for it (outbox_ready), as they must. */
void conn_busy_poll(void *arg)
{
    struct server *srv = arg;
    const struct cmd_session *busy = srv->cmd.busy_session;
    struct conn *c, *next;

    for (size_t i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].fd >= 0)
            on_accept(srv->listeners[i].fd, EV_READ, &srv->listeners[i]);
    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (&c->session == busy)
            continue;
        if (!c->closing && !c->rpaused) {
            if (conn_fill(c) == -2) {
                conn_close(c, strerror(errno));
                continue;
            }
            if (c->in.len)
                conn_process(c);
        }
        if (c->out.len == c->sent)
            continue;
        if (conn_flush(c) != 0)
            continue; /* closed */
        if (c->backlog)
            runq_add(c);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    conn_flush(arg);
}

/* "1.2.3.4:5678" or "[::1]:5678". */
static void format_peer(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "unknown");
    }
}

static void conn_new(struct listener *ln, int fd, const struct sockaddr *sa)
{
    struct server *srv = ln->srv;
    int one = 1;
    /* Replies are written once per batch, so Nagle would only add delay. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        slog(&srv->log, SLOG_DEBUG, "TCP_NODELAY: %s", strerror(errno));
    struct conn *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->ln = ln;
    c->fd = fd;
    format_peer(sa, c->peer, sizeof c->peer);
    struct sockaddr_storage ls;
    socklen_t lsl = sizeof ls;
    if (getsockname(fd, (struct sockaddr *)&ls, &lsl) == 0)
        format_peer((struct sockaddr *)&ls, c->local, sizeof c->local);
    else
        snprintf(c->local, sizeof c->local, "unknown");
    c->created_ms = c->active_ms = srv_now_ms();
    if (ln->tls)
        c->tls = tls_conn_new(srv, fd, c->peer);
    c->session.id = ++srv->next_session;
    c->session.proto = ln->proto;
    c->session.wake = conn_wake;
    c->session.wake_arg = c;
    c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->rev || !c->wev) {
        fprintf(stderr, "tallyd: out of memory creating events\n");
        abort();
    }
    c->proto = ln->ops->conn_new(ln->front, &srv->cmd, &c->session, &srv->limits, c->peer);
    if (ln->ops->set_push) {
        struct proto_push push = conn_push_for(c);
        ln->ops->set_push(c->proto, &push);
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->info.connected_clients++;
    srv->info.total_connections++;
    update_reading(c);
    slog(&srv->log, SLOG_DEBUG, "client %s connected (%s, id %llu)", c->peer,
         ln->ops->name, (unsigned long long)c->session.id);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *ln = arg;
    if (ln->fd >= 0 && !ln->srv->stopping)
        event_add(ln->ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct listener *ln = arg;
    struct server *srv = ln->srv;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            /* Out of descriptors or memory: the pending connection stays
             * in the kernel's queue, so pause rather than spin on it. */
            slog(&srv->log, SLOG_ERROR,
                 "accept on port %d: %s; pausing accepts for 100 ms (raise "
                 "ulimit -n or lower --maxclients)", ln->port, strerror(errno));
            event_del(ln->ev);
            struct timeval tv = {0, 100 * 1000};
            evtimer_add(ln->resume, &tv);
            return;
        }
        if (srv->info.connected_clients >= srv->conf.maxclients) {
            /* Best effort: the socket is new, so the line fits its buffer. */
            if (ln->reject) {
                ssize_t w = send(fd, ln->reject, strlen(ln->reject),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w;
            }
            close(fd);
            srv->info.rejected_connections++;
            slog(&srv->log, SLOG_WARN, "refused a client: --maxclients %llu reached",
                 (unsigned long long)srv->conf.maxclients);
            continue;
        }
        conn_new(ln, fd, (struct sockaddr *)&ss);
    }
}

int conn_listen(struct server *srv, const struct proto_ops *ops, void *front,
                enum cmd_proto proto, int port, const char *reject, char *err)
{
    if (srv->nlisteners == SRV_MAX_LISTENERS) {
        snprintf(err, 256, "too many listeners");
        return -1;
    }
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(srv->conf.bind, portstr, &hints, &res);
    if (rc) {
        snprintf(err, 256, "--bind %s: %s", srv->conf.bind, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    res->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        snprintf(err, 256, "cannot listen on %s port %d (%s): %s", srv->conf.bind,
                 port, ops->name, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(err, 256, "getsockname: %s", strerror(errno));
        goto fail;
    }
    struct listener *ln = &srv->listeners[srv->nlisteners];
    memset(ln, 0, sizeof *ln);
    ln->srv = srv;
    ln->ops = ops;
    ln->front = front;
    ln->proto = proto;
    ln->reject = reject;
    ln->fd = fd;
    ln->port = ntohs(ss.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&ss)->sin6_port
                         : ((struct sockaddr_in *)&ss)->sin_port);
    ln->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_accept, ln);
    ln->resume = evtimer_new(srv->base, on_resume, ln);
    if (!ln->ev || !ln->resume || event_add(ln->ev, NULL) < 0) {
        snprintf(err, 256, "cannot watch the %s listener", ops->name);
        if (ln->ev)
            event_free(ln->ev);
        if (ln->resume)
            event_free(ln->resume);
        goto fail;
    }
    srv->nlisteners++;
    freeaddrinfo(res);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

void conn_listeners_close(struct server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        struct listener *ln = &srv->listeners[i];
        if (ln->fd < 0)
            continue;
        event_free(ln->ev);
        event_free(ln->resume);
        close(ln->fd);
        ln->fd = -1;
    }
}

void conn_drain_all(struct server *srv)
{
    struct conn *next;
    for (struct conn *c = srv->conns; c; c = next) {
        next = c->next;
        update_reading(c);
        if (c->backlog)
            continue; /* conn_run() finishes the buffered requests first */
        c->closing = 1;
        conn_flush(c);
    }
}

void conn_close_all(struct server *srv)
{
    while (srv->conns)
        conn_close(srv->conns, "shutting down");
}

/* ---- The registry as the command layer sees it (CLIENT LIST/KILL) ------- */

static int clients_each(void *self, cmd_client_fn fn, void *arg)
{
    struct server *srv = self;
    int64_t now = srv_now_ms();
    for (struct conn *c = srv->conns; c; c = c->next) {
        struct cmd_client cl = {
            .session = &c->session,
            .addr = c->peer,
            .laddr = c->local,
            .fd = c->fd,
            .age_s = (now - c->created_ms) / 1000,
            .idle_s = (now - c->active_ms) / 1000,
            .qbuf = c->in.len,
            .qbuf_free = c->in.cap > c->in.len ? c->in.cap - c->in.len : 0,
            .obl = c->out.len - c->sent,
            .omem = c->out.cap,
            .tot_mem = sizeof *c + c->in.cap + c->out.cap +
                       c->mcap * sizeof *c->marks,
            .events = c->reading ? (c->wpending ? "rw" : "r")
                                 : (c->wpending ? "w" : ""),
            .killed = c->killed,
        };
        int rc = fn(arg, &cl);
        if (rc)
            return rc;
    }
    return 0;
}

/* The connection is not freed here: its front end may be running (the
 * caller's own, or a busy script's that a poll let this request in beside).
 * It stops being read, and conn_run()'s flush of the ran list closes it. */
static int clients_kill(void *self, uint64_t id, const struct cmd_session *caller)
{
    struct server *srv = self;
    struct conn *c = srv->conns;
    while (c && c->session.id != id)
        c = c->next;
    if (!c || c->killed)
        return 0;
    c->closing = 1;
    if (!caller || caller->id != id)
        c->killed = 1;
    update_reading(c);
    ranq_add(c);
    slog(&srv->log, SLOG_INFO, "client %s (id %llu) killed by CLIENT KILL",
         c->peer, (unsigned long long)id);
    return 1;
}

void conn_clients_serve(struct server *srv)
{
    srv->clients.self = srv;
    srv->clients.each = clients_each;
    srv->clients.kill = clients_kill;
    srv->info.clients = &srv->clients;
}
