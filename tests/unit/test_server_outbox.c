/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_server_outbox.c - the durability hold (src/server/outbox.c) on its
 * own: which of a connection's reply bytes may leave as tally_durable()
 * moves, in what order HTTP waiters are called, and what happens to held
 * replies when a connection goes away or the engine's write path fails.
 *
 * outbox.c runs here over a real engine in a temporary directory, whose
 * syncs this file controls at the libc boundary: fdatasync below (the engine
 * is linked in statically, so it calls this one) lets a test choose exactly
 * how far durable moves, or make the sync in flight fail with EIO.  The
 * rest of the daemon is replaced by small stand-ins: conn_flush() "writes"
 * what outbox_ready() allows into a per-connection capture buffer (and, like
 * the real one, closes a closing connection once everything is written and
 * nothing is held), slog() counts warnings, srv_step() does nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server.h"

/* ---- fdatasync under the test's control --------------------------------
 * Until gate_count() is called every sync goes through (opening the
 * database).  After it, a sync waits until the test allows one more
 * (gate_allow) or makes it fail (gate_fail). */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_counting, g_allowed, g_fail; /* [g_mu] */
static unsigned g_entered, g_passed;      /* [g_mu] syncs begun, ended */

int fdatasync(int fd);
int fdatasync(int fd)
{
    int fail;

    pthread_mutex_lock(&g_mu);
    g_entered++;
    pthread_cond_broadcast(&g_cv);
    while (g_counting && g_allowed == 0 && !g_fail)
        pthread_cond_wait(&g_cv, &g_mu);
    if (g_counting && g_allowed > 0 && !g_fail)
        g_allowed--;
    fail = g_fail;
    g_passed++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    if (fail) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

static void gate_set(int counting, int allow, int fail)
{
    pthread_mutex_lock(&g_mu);
    g_counting = counting;
    g_allowed += allow;
    g_fail = fail;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* ---- The rest of the daemon, as small stand-ins ------------------------ */

struct tconn {
    struct conn c;
    struct buf wire; /* what conn_flush "sent" */
    int closed;      /* conn_flush "closed" it */
};

static int g_warnings;

void slog(struct slog *l, int level, const char *fmt, ...)
{
    (void)l;
    (void)fmt;
    if (level <= SLOG_WARN)
        g_warnings++;
}

void srv_step(struct server *srv)
{
    (void)srv;
}

/* conn.c's batching is not under test here: count the calls only. */
void conn_cork_request(struct server *srv)
{
    srv->corked_others++;
}

int conn_flush(struct conn *c)
{
    struct tconn *t = (struct tconn *)c;
    size_t ready = outbox_ready(c);

    assert_false(t->closed);
    assert_true(ready <= c->out.len);
    assert_true(ready >= c->sent);
    buf_add(&t->wire, c->out.p + c->sent, ready - c->sent);
    c->sent = ready;
    if (c->closing && c->sent == c->out.len && !c->nmarks) {
        outbox_forget(c);
        t->closed = 1;
        return -1;
    }
    return 0;
}

/* ---- Fixture ------------------------------------------------------------- */

struct fx {
    char dir[64];
    struct server srv;
    struct tconn a, b;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[TALLY_ERRMAX];
    tally_options o;

    gate_set(0, 0, 0);
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-outbox-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    tally_options_init(&o);
    o.snapshot_min_log = UINT64_MAX;
    if (tally_open(f->dir, &o, &f->srv.db, err) != TALLY_OK) {
        fprintf(stderr, "tally_open: %s\n", err);
        return -1;
    }
    outbox_waiter_init(&f->srv);
    f->a.c.srv = f->b.c.srv = &f->srv;
    snprintf(f->a.c.peer, sizeof f->a.c.peer, "a");
    snprintf(f->b.c.peer, sizeof f->b.c.peer, "b");
    g_warnings = 0;
    pthread_mutex_lock(&g_mu);
    g_allowed = 0;
    pthread_mutex_unlock(&g_mu);
    gate_set(1, 0, 0);
    *state = f;
    return 0;
}

static void conn_done(struct tconn *t)
{
    outbox_forget(&t->c);
    buf_free(&t->c.out);
    buf_free(&t->wire);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];

    gate_set(0, 0, 0);
    conn_done(&f->a);
    conn_done(&f->b);
    outbox_free(&f->srv.outbox);
    tally_close(f->srv.db); /* may report the failure a test caused */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* A change whose sync the gate keeps in flight: returns its ticket.  If no
 * sync is waiting at the gate yet, wait until this change's is, so that the
 * next change goes into a later sync. */
static tally_ticket pending(struct fx *f, const char *key)
{
    tally_ticket t = 0;
    pthread_mutex_lock(&g_mu);
    int busy = g_entered > g_passed;
    unsigned entered = g_entered;
    pthread_mutex_unlock(&g_mu);

    assert_int_equal(tally_set(f->srv.db, key, strlen(key), 1, &t), TALLY_OK);
    assert_true(t > tally_durable(f->srv.db));
    pthread_mutex_lock(&g_mu);
    while (!busy && g_entered == entered)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    return t;
}

/* Let the sync waiting at the gate through, which makes t durable (each
 * change a test makes through pending() has a sync of its own), then let
 * the outbox see it, as the notify fd's callback would. */
static void durable_to(struct fx *f, tally_ticket t)
{
    gate_set(1, 1, 0);
    assert_int_equal(tally_wait(f->srv.db, t), TALLY_OK);
    outbox_release(&f->srv);
}

/* Make the sync in flight fail and wait until the engine says so. */
static void fail_sync(struct fx *f)
{
    gate_set(1, 0, 1);
    while (tally_health(f->srv.db) != TALLY_EFAILED)
        usleep(1000);
    outbox_release(&f->srv);
}

/* Append one reply to t's output and hold it for ticket tk, as conn.c
 * does for every request (reply may be "": a request that wrote nothing). */
static void reply(struct tconn *t, const char *bytes, tally_ticket tk)
{
    size_t start = t->c.out.len;
    buf_adds(&t->c.out, bytes);
    outbox_hold(&t->c, start, tk);
}

/* What t's client has received so far, after one flush. */
static const char *received(struct tconn *t)
{
    if (!t->closed)
        conn_flush(&t->c);
    buf_addc(&t->wire, 0);
    t->wire.len--;
    return t->wire.p ? t->wire.p : "";
}

/* ---- Stream connections -------------------------------------------------- */

static void durable_reply_leaves_at_once_and_holds_nothing(void **state)
{
    struct fx *f = *state;

    reply(&f->a, "+OK\r\n", 0);
    reply(&f->a, ":1\r\n", tally_durable(f->srv.db));
    assert_int_equal(f->a.c.nmarks, 0);
    assert_false(f->a.c.waiting);
    assert_string_equal(received(&f->a), "+OK\r\n:1\r\n");
}

static void replies_leave_as_their_tickets_become_durable(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");

    assert_true(t1 < t2);
    reply(&f->a, "one\r\n", t1);
    reply(&f->a, "two\r\n", t2);
    assert_int_equal(f->a.c.nmarks, 2);
    assert_string_equal(received(&f->a), "");
    durable_to(f, t1);
    assert_string_equal(received(&f->a), "one\r\n");
    durable_to(f, t2);
    assert_string_equal(received(&f->a), "one\r\ntwo\r\n");
    assert_false(f->a.c.waiting);
}

static void reply_with_an_older_ticket_waits_behind_a_held_one(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");

    /* An INCR of y, then a read of x whose change is older. */
    reply(&f->a, ":1\r\n", t2);
    reply(&f->a, "$1\r\n1\r\n", t1);
    reply(&f->a, "+PONG\r\n", 0);
    assert_int_equal(f->a.c.nmarks, 1); /* joined the held one */
    durable_to(f, t1);
    assert_string_equal(received(&f->a), "");
    durable_to(f, t2);
    assert_string_equal(received(&f->a), ":1\r\n$1\r\n1\r\n+PONG\r\n");
}

static void connections_are_held_independently(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");

    reply(&f->a, "a2\r\n", t2);
    reply(&f->b, "b1\r\n", t1);
    reply(&f->b, "b0\r\n", 0);
    durable_to(f, t1);
    assert_string_equal(received(&f->a), "");
    assert_string_equal(received(&f->b), "b1\r\nb0\r\n");
    assert_false(f->b.c.waiting);
    assert_true(f->a.c.waiting);
    durable_to(f, t2);
    assert_string_equal(received(&f->a), "a2\r\n");
}

/* ---- Zero-length holds --------------------------------------------------- */

static void empty_hold_keeps_the_replies_after_it(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "b");

    /* set b ... noreply (nothing written), then mn, then a durable read */
    reply(&f->a, "", t1);
    assert_int_equal(f->a.c.nmarks, 1);
    assert_true(f->a.c.waiting);
    reply(&f->a, "MN\r\n", 0);
    reply(&f->a, "END\r\n", 0);
    assert_string_equal(received(&f->a), "");
    durable_to(f, t1);
    assert_string_equal(received(&f->a), "MN\r\nEND\r\n");
    assert_false(f->a.c.waiting);
}

static void empty_hold_after_sent_replies_holds_only_what_follows(
    void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "b"), t2 = pending(f, "c");

    reply(&f->a, "VALUE\r\n", 0);
    reply(&f->a, "", t1);       /* quiet change: holds nothing before it */
    assert_string_equal(received(&f->a), "VALUE\r\n");
    reply(&f->a, "", t2);       /* a second quiet change, newer */
    assert_int_equal(f->a.c.nmarks, 2);
    reply(&f->a, "MN\r\n", 0);
    durable_to(f, t1);
    assert_string_equal(received(&f->a), "VALUE\r\n"); /* waits for t2 */
    durable_to(f, t2);
    assert_string_equal(received(&f->a), "VALUE\r\nMN\r\n");
}

static void empty_hold_of_a_durable_ticket_holds_nothing(void **state)
{
    struct fx *f = *state;

    reply(&f->a, "", tally_durable(f->srv.db));
    assert_int_equal(f->a.c.nmarks, 0);
    assert_false(f->a.c.waiting);
    reply(&f->a, "MN\r\n", 0);
    assert_string_equal(received(&f->a), "MN\r\n");
}

/* ---- A connection closed with held replies -------------------------------- */

static void closed_connection_leaves_the_holding_list(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x");
    struct tconn *c = calloc(1, sizeof *c);

    c->c.srv = &f->srv;
    reply(c, ":1\r\n", t1);
    reply(&f->a, ":2\r\n", t1);
    assert_true(c->c.waiting);
    /* The client went away: conn_close() forgets its marks, frees it. */
    conn_done(c);
    free(c);
    /* Releasing must not touch it (ASan would see a use after free). */
    durable_to(f, t1);
    assert_string_equal(received(&f->a), ":2\r\n");
    assert_null(f->srv.outbox.waiting);
}

/* ---- Engine failure while replies are held -------------------------------- */

static void failed_sync_sends_what_was_durable_and_closes(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");

    reply(&f->a, "one\r\n", t1);
    reply(&f->a, "two\r\n", t2);
    reply(&f->b, "", t2);
    reply(&f->b, "MN\r\n", 0);
    durable_to(f, t1);
    fail_sync(f);
    /* a gets the reply that was durable, never the other; both close. */
    assert_string_equal(received(&f->a), "one\r\n");
    assert_string_equal(received(&f->b), "");
    assert_true(f->a.closed);
    assert_true(f->b.closed);
    assert_null(f->srv.outbox.waiting);
    assert_true(g_warnings >= 2);
}

static void hold_after_the_failure_is_settled_at_once(void **state)
{
    struct fx *f = *state;
    tally_ticket t1 = pending(f, "x");

    fail_sync(f);
    /* A read of x after the failure would be refused by the engine; a
     * reply that still came with a lost ticket must never leave. */
    reply(&f->a, "$1\r\n1\r\n", t1);
    assert_string_equal(received(&f->a), "");
    assert_true(f->a.closed);
}

/* ---- HTTP waiters ---------------------------------------------------------- */

struct call {
    int order[8];
    int status[8];
    int n;
};

struct waiter_arg {
    struct call *log;
    int id;
};

static void on_ready(void *arg, int status)
{
    struct waiter_arg *w = arg;
    w->log->order[w->log->n] = w->id;
    w->log->status[w->log->n++] = status;
}

static void http_waiters_run_in_ticket_order(void **state)
{
    struct fx *f = *state;
    struct proto_waiter *pw = &f->srv.waiter;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");
    struct call log = {{0}, {0}, 0};
    struct waiter_arg w[5] = {{&log, 1}, {&log, 2}, {&log, 3}, {&log, 4},
                              {&log, 5}};

    pw->wait(pw->self, t2, on_ready, &w[0]);
    pw->wait(pw->self, t1, on_ready, &w[1]);
    pw->wait(pw->self, t2, on_ready, &w[2]);
    pw->wait(pw->self, t1, on_ready, &w[3]);
    pw->wait(pw->self, 0, on_ready, &w[4]); /* durable: at once */
    assert_int_equal(log.n, 1);
    assert_int_equal(log.order[0], 5);
    durable_to(f, t1);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.order[1], 2); /* equal tickets: first come first */
    assert_int_equal(log.order[2], 4);
    durable_to(f, t2);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.order[3], 1);
    assert_int_equal(log.order[4], 3);
    for (int i = 0; i < log.n; i++)
        assert_int_equal(log.status[i], TALLY_OK);
}

static void http_waiters_get_the_failure(void **state)
{
    struct fx *f = *state;
    struct proto_waiter *pw = &f->srv.waiter;
    tally_ticket t1 = pending(f, "x"), t2 = pending(f, "y");
    struct call log = {{0}, {0}, 0};
    struct waiter_arg w[3] = {{&log, 1}, {&log, 2}, {&log, 3}};

    pw->wait(pw->self, t2, on_ready, &w[0]);
    pw->wait(pw->self, t1, on_ready, &w[1]);
    durable_to(f, t1);
    assert_int_equal(log.n, 1);
    fail_sync(f);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.order[1], 1);
    assert_int_equal(log.status[1], TALLY_EFAILED);
    /* After the failure: a durable ticket is fine, a lost one fails. */
    pw->wait(pw->self, t1, on_ready, &w[2]);
    pw->wait(pw->self, t2, on_ready, &w[2]);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.status[2], TALLY_OK);
    assert_int_equal(log.status[3], TALLY_EFAILED);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(durable_reply_leaves_at_once_and_holds_nothing),
        CASE(replies_leave_as_their_tickets_become_durable),
        CASE(reply_with_an_older_ticket_waits_behind_a_held_one),
        CASE(connections_are_held_independently),
        CASE(empty_hold_keeps_the_replies_after_it),
        CASE(empty_hold_after_sent_replies_holds_only_what_follows),
        CASE(empty_hold_of_a_durable_ticket_holds_nothing),
        CASE(closed_connection_leaves_the_holding_list),
        CASE(failed_sync_sends_what_was_durable_and_closes),
        CASE(hold_after_the_failure_is_settled_at_once),
        CASE(http_waiters_run_in_ticket_order),
        CASE(http_waiters_get_the_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
