/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_events.c - the change-event hub (src/cmd/events.h) and the
 * pub/sub broker over it (src/cmd/pubsub.h), without a database: tickets
 * are made up and "durable" is whatever the test releases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "events.h"
#include "pubsub.h"
#include "util.h"

/* What a subscriber saw. */
struct seen {
    uint64_t ids[64];
    char keys[64][16];
    int64_t values[64];
    size_t n;
    struct events *hub;
    struct events_sub *self; /* unsubscribed after `stop_after` events */
    size_t stop_after;
};

static void record_fn(void *arg, const struct events_event *ev)
{
    struct seen *s = arg;

    s->ids[s->n] = ev->id;
    snprintf(s->keys[s->n], sizeof s->keys[0], "%s", ev->key);
    s->values[s->n] = ev->value;
    s->n++;
    if (s->self && s->n == s->stop_after)
        events_unsubscribe(s->hub, s->self);
}

static void rec(struct events *h, const char *key, int64_t v, tally_ticket t)
{
    events_record(h, key, strlen(key), EVENTS_VALUE, EVENTS_OP_INCRBY, v, t);
}

/* Nothing is delivered before its ticket is durable, and everything is,
 * in order, once it is. */
static void test_events_wait_for_their_ticket(void **state)
{
    struct events *h = events_new(16);
    struct seen s = {0};

    events_subscribe(h, "", 0, 0, record_fn, &s);
    rec(h, "a", 1, 5);
    rec(h, "b", 2, 7);
    events_release(h, 4, 0);
    assert_int_equal(s.n, 0);
    events_release(h, 5, 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "a");
    events_release(h, 9, 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[1], s.ids[0] + 1);
    assert_int_equal(events_last_id(h), s.ids[1]);
    events_free(h);
}

/* Regression (MULTI/EXEC and scripts met the hub): a change inside an
 * atomic batch gets, in memory, a ticket that is already issued, but it is
 * durable only with the batch's commit.  Its event must wait for the
 * commit's ticket, hold the events after it in order, and vanish if the
 * batch is aborted. */
static void test_events_of_a_batch_wait_for_its_commit(void **state)
{
    struct events *h = events_new(16);
    struct seen s = {0};
    struct events_stats st;

    events_subscribe(h, "", 0, 0, record_fn, &s);
    events_batch_begin(h);
    rec(h, "in", 1, 5); /* the ticket the change got inside the batch */
    events_release(h, 5, 0);
    assert_int_equal(s.n, 0); /* not durable yet: the batch is not */
    events_batch_end(h, 1, 9);
    rec(h, "after", 2, 10);
    events_release(h, 8, 0);
    assert_int_equal(s.n, 0);
    events_release(h, 10, 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[0], "in");
    assert_string_equal(s.keys[1], "after");

    /* An aborted batch (or a refused commit) changed nothing. */
    rec(h, "before", 3, 11);
    events_batch_begin(h);
    rec(h, "undone", 4, 11);
    events_batch_end(h, 0, 0);
    events_release(h, UINT64_MAX - 1, 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[2], "before");
    events_stats_get(h, &st);
    assert_int_equal(st.dropped, 1);
    events_free(h);
}

/* A failed sync: events past the durable point are dropped, never sent. */
static void test_events_of_a_failed_sync_are_never_sent(void **state)
{
    struct events *h = events_new(16);
    struct seen s = {0};
    struct events_stats st;

    events_subscribe(h, "", 0, 0, record_fn, &s);
    rec(h, "ok", 1, 3);
    rec(h, "lost", 2, 4);
    events_release(h, 3, 1);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "ok");
    events_stats_get(h, &st);
    assert_int_equal(st.dropped, 1);
    events_release(h, 10, 0);
    assert_int_equal(s.n, 1);
    events_free(h);
}

/* Exact and prefix filters. */
static void test_events_filters(void **state)
{
    struct events *h = events_new(16);
    struct seen exact = {0}, prefix = {0};

    events_subscribe(h, "page", 4, 1, record_fn, &exact);
    events_subscribe(h, "page:", 5, 0, record_fn, &prefix);
    rec(h, "page", 1, 1);
    rec(h, "page:1", 2, 1);
    rec(h, "other", 3, 1);
    events_release(h, 1, 0);
    assert_int_equal(exact.n, 1);
    assert_string_equal(exact.keys[0], "page");
    assert_int_equal(prefix.n, 1);
    assert_string_equal(prefix.keys[0], "page:1");
    events_free(h);
}

/* Replay gives what came after an id, or -1 once the window lost some. */
static void test_events_replay_from_the_window(void **state)
{
    struct events *h = events_new(4);
    struct seen live = {0}, late = {0};
    struct events_sub *sub;

    events_subscribe(h, "", 0, 0, record_fn, &live);
    for (int i = 0; i < 6; i++)
        rec(h, "k", i, 1);
    events_release(h, 1, 0);
    assert_int_equal(live.n, 6);
    sub = events_subscribe(h, "", 0, 0, record_fn, &late);
    /* The window holds the last 4: ids[2..5]. */
    assert_int_equal(events_replay(h, sub, live.ids[1]), 0);
    assert_int_equal(late.n, 4);
    assert_int_equal(late.values[0], 2);
    late.n = 0;
    assert_int_equal(events_replay(h, sub, live.ids[0]), -1);
    assert_int_equal(late.n, 0);
    assert_int_equal(events_replay(h, sub, live.ids[5]), 0);
    assert_int_equal(late.n, 0);
    assert_int_equal(events_replay(h, sub, live.ids[5] + 1), -1);
    events_free(h);
}

/* A subscriber that leaves from inside its callback gets nothing more and
 * the others still get everything. */
static void test_events_unsubscribe_inside_a_callback(void **state)
{
    struct events *h = events_new(0);
    struct seen quitter = {0}, other = {0};

    quitter.hub = h;
    quitter.stop_after = 1;
    quitter.self = events_subscribe(h, "", 0, 0, record_fn, &quitter);
    events_subscribe(h, "", 0, 0, record_fn, &other);
    rec(h, "a", 1, 1);
    rec(h, "b", 2, 1);
    events_release(h, 1, 0);
    assert_int_equal(quitter.n, 1);
    assert_int_equal(other.n, 2);
    events_free(h);
}

/* With no subscriber a change is only counted: nothing is held, released
 * or given an id (events.h "Nobody listening"). */
static void test_events_nobody_listening_holds_nothing(void **state)
{
    struct events *h = events_new(16);
    struct seen s = {0};
    struct events_stats st;
    uint64_t before = events_last_id(h);

    rec(h, "a", 1, 1);
    rec(h, "b", 2, 2);
    events_release(h, 2, 0);
    events_stats_get(h, &st);
    assert_int_equal(st.recorded, 2);
    assert_int_equal(st.released, 0);
    assert_int_equal(events_last_id(h), before);
    /* A subscriber gets what is released after it came. */
    events_subscribe(h, "", 0, 0, record_fn, &s);
    rec(h, "c", 3, 3);
    events_release(h, 3, 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "c");
    assert_int_equal(s.ids[0], before + 1);
    events_free(h);
}

/* Once a stream has started (events_keep_window), the changes made while
 * its client is away are held, so that it resumes without a gap. */
static void test_events_a_resume_finds_what_came_while_away(void **state)
{
    struct events *h = events_new(16);
    struct seen first = {0}, back = {0};
    struct events_sub *sub;

    events_keep_window(h);
    sub = events_subscribe(h, "", 0, 0, record_fn, &first);
    rec(h, "a", 1, 1);
    events_release(h, 1, 0);
    assert_int_equal(first.n, 1);
    events_unsubscribe(h, sub); /* the client went away */
    rec(h, "b", 2, 2);
    rec(h, "c", 3, 3);
    events_release(h, 3, 0);
    sub = events_subscribe(h, "", 0, 0, record_fn, &back);
    assert_int_equal(events_replay(h, sub, first.ids[0]), 0);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.keys[0], "b");
    assert_string_equal(back.keys[1], "c");
    assert_int_equal(back.ids[0], first.ids[0] + 1);
    events_free(h);
}

/* ---- pub/sub ------------------------------------------------------------ */

struct inbox {
    struct buf text; /* "pattern|channel|message;" per message */
};

static void inbox_fn(void *arg, const char *pat, size_t patlen,
                     const char *chan, size_t chanlen, const char *msg,
                     size_t msglen)
{
    struct inbox *in = arg;

    buf_add(&in->text, pat ? pat : "-", pat ? patlen : 1);
    buf_addc(&in->text, '|');
    buf_add(&in->text, chan, chanlen);
    buf_addc(&in->text, '|');
    buf_add(&in->text, msg, msglen);
    buf_addc(&in->text, ';');
}

static void test_pubsub_channels_and_patterns(void **state)
{
    struct pubsub *ps = pubsub_new(NULL);
    struct inbox a = {BUF_INIT}, b = {BUF_INIT};
    struct pubsub_client *ca = pubsub_client_new(ps, inbox_fn, &a);
    struct pubsub_client *cb = pubsub_client_new(ps, inbox_fn, &b);

    assert_int_equal(pubsub_subscribe(ca, "news", 4, 0), 1);
    assert_int_equal(pubsub_subscribe(ca, "news", 4, 0), 0);
    assert_int_equal(pubsub_subscribe(cb, "n*", 2, 1), 1);
    assert_int_equal(pubsub_publish(ps, "news", 4, "hi", 2), 2);
    assert_string_equal(a.text.p, "-|news|hi;");
    assert_string_equal(b.text.p, "n*|news|hi;");
    assert_int_equal(pubsub_numsub(ps, "news", 4), 1);
    assert_int_equal(pubsub_numpat(ps), 1);
    assert_int_equal(pubsub_unsubscribe(ca, "news", 4, 0), 1);
    assert_int_equal(pubsub_numsub(ps, "news", 4), 0);
    assert_int_equal(pubsub_publish(ps, "news", 4, "x", 1), 1);
    pubsub_client_free(ca);
    pubsub_client_free(cb);
    assert_int_equal(pubsub_numpat(ps), 0);
    pubsub_free(ps);
    buf_free(&a.text);
    buf_free(&b.text);
}

/* Keyspace notifications come from released events only, with Redis's
 * channel names and event names. */
static void test_pubsub_keyspace_notifications(void **state)
{
    struct events *h = events_new(0);
    struct pubsub *ps = pubsub_new(h);
    struct inbox in = {BUF_INIT};
    struct pubsub_client *cl = pubsub_client_new(ps, inbox_fn, &in);
    char flags[32];

    assert_int_equal(pubsub_set_notify(ps, "KEA", 3), 0);
    pubsub_notify_string(ps, flags);
    assert_string_equal(flags, "AKE");
    assert_int_equal(pubsub_set_notify(ps, "KEQ", 3), -1);
    pubsub_subscribe(cl, "__key*", 6, 1);
    events_record(h, "k", 1, EVENTS_DELETED, EVENTS_OP_GETDEL, 0, 2);
    events_release(h, 1, 0);
    assert_int_equal(in.text.len, 0);
    events_release(h, 2, 0);
    assert_string_equal(in.text.p, "__key*|__keyspace@0__:k|del;"
                                   "__key*|__keyevent@0__:del|k;");
    /* Only g: string events are not sent. */
    buf_clear(&in.text);
    pubsub_set_notify(ps, "Kg", 2);
    rec(h, "k", 1, 3);
    events_release(h, 3, 0);
    assert_int_equal(in.text.len, 0);
    pubsub_client_free(cl);
    pubsub_free(ps);
    events_free(h);
    buf_free(&in.text);
}

/* The broker subscribes to the hub only while a change would be
 * published: by default, as in Redis, nothing is, and the hub then holds
 * nothing. */
static void test_pubsub_subscribes_to_the_hub_only_while_notifying(void **state)
{
    struct events *h = events_new(0);
    struct pubsub *ps = pubsub_new(h);
    struct events_stats st;

    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 0);
    assert_int_equal(pubsub_set_notify(ps, "K", 1), 0); /* no class */
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 0);
    assert_int_equal(pubsub_set_notify(ps, "Kl", 2), 0); /* no change's */
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 0);
    assert_int_equal(pubsub_set_notify(ps, "Ex", 2), 0);
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 1);
    assert_int_equal(pubsub_set_notify(ps, "KEA", 3), 0); /* still one */
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 1);
    assert_int_equal(pubsub_set_notify(ps, "", 0), 0);
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 0);
    pubsub_set_notify(ps, "K$", 2);
    pubsub_free(ps); /* leaves the hub */
    events_stats_get(h, &st);
    assert_int_equal(st.subscribers, 0);
    events_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_wait_for_their_ticket),
        cmocka_unit_test(test_events_of_a_failed_sync_are_never_sent),
        cmocka_unit_test(test_events_of_a_batch_wait_for_its_commit),
        cmocka_unit_test(test_events_filters),
        cmocka_unit_test(test_events_replay_from_the_window),
        cmocka_unit_test(test_events_unsubscribe_inside_a_callback),
        cmocka_unit_test(test_events_nobody_listening_holds_nothing),
        cmocka_unit_test(test_events_a_resume_finds_what_came_while_away),
        cmocka_unit_test(test_pubsub_channels_and_patterns),
        cmocka_unit_test(test_pubsub_keyspace_notifications),
        cmocka_unit_test(test_pubsub_subscribes_to_the_hub_only_while_notifying),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
