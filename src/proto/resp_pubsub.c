/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_pubsub.c - RESP's publish/subscribe commands: SUBSCRIBE, PSUBSCRIBE,
 * UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH and PUBSUB CHANNELS/NUMSUB/NUMPAT, and
 * the messages that reach a subscriber.
 *
 * Meaning lives in the broker (src/cmd/pubsub.h), keyspace notifications
 * included; this file only words it as Redis 7 does.  A confirmation or a
 * message is an array (RESP2) or a push frame (RESP3, '>'): ["subscribe",
 * channel, count], ["message", channel, payload], ["pmessage", pattern,
 * channel, payload].  Messages arrive when nobody asked, so they leave
 * through the daemon's struct proto_push (proto.h) rather than a reply; a
 * connection past its output limit is cut off by the daemon and pushes
 * nothing more.  In RESP2 a subscribed connection may only (un)subscribe,
 * PING and QUIT (subscriber mode); RESP3 has no such mode.
 */
#include <string.h>

#include "pubsub.h"
#include "resp_int.h"

/* An array header, or a push header in RESP3. */
static void push_header(struct resp_out *o, size_t n)
{
    buf_printf(o->b, "%c%zu\r\n", o->resp3 ? '>' : '*', n);
}

static size_t sub_count(const struct resp_conn *c)
{
    return c->sub ? pubsub_client_count(c->sub, 0) +
                        pubsub_client_count(c->sub, 1)
                  : 0;
}

/* The broker's callback: encode one message and push it. */
static void on_message(void *arg, const char *pat, size_t patlen,
                       const char *chan, size_t chanlen, const char *msg,
                       size_t msglen)
{
    struct resp_conn *c = arg;
    struct resp_out o = {&c->msg, c->out.resp3};

    if (c->push_failed || !c->push.push)
        return;
    buf_clear(&c->msg);
    push_header(&o, pat ? 4 : 3);
    resp_bulks(&o, pat ? "pmessage" : "message");
    if (pat)
        resp_bulk(&o, pat, patlen);
    resp_bulk(&o, chan, chanlen);
    resp_bulk(&o, msg, msglen);
    if (c->push.push(c->push.self, c->msg.p, c->msg.len) < 0)
        c->push_failed = 1;
}

/* One confirmation: [kind, name or null, subscriptions left]. */
static void confirm(struct resp_conn *c, const char *kind, const char *name,
                    size_t len)
{
    push_header(&c->out, 3);
    resp_bulks(&c->out, kind);
    if (name)
        resp_bulk(&c->out, name, len);
    else
        resp_null(&c->out);
    resp_int(&c->out, (int64_t)sub_count(c));
}

void resp_cmd_subscribe(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int pattern = a->argv[0][0] == 'p' || a->argv[0][0] == 'P';
    int unsub = (a->argv[0][pattern] | 0x20) == 'u';
    const char *kind = unsub ? (pattern ? "punsubscribe" : "unsubscribe")
                             : (pattern ? "psubscribe" : "subscribe");

    if (!c->ctx->pubsub) {
        resp_error(&c->out, "ERR pub/sub is not available");
        return;
    }
    if (!c->sub) {
        c->sub = pubsub_client_new(c->ctx->pubsub, on_message, c);
        c->s->sub = c->sub; /* CLIENT LIST's sub, psub and flags */
    }
    if (unsub && a->argc == 1) {
        /* Everything, in subscription order; one null reply if nothing. */
        if (pubsub_client_count(c->sub, pattern) == 0)
            confirm(c, kind, NULL, 0);
        while (pubsub_client_count(c->sub, pattern)) {
            size_t len;
            const char *name = pubsub_client_name(c->sub, pattern, 0, &len);
            struct buf copy = BUF_INIT;
            buf_add(&copy, name, len);
            pubsub_unsubscribe(c->sub, copy.p, copy.len, pattern);
            confirm(c, kind, copy.p, copy.len);
            buf_free(&copy);
        }
        return;
    }
    for (size_t i = 1; i < a->argc; i++) {
        if (unsub)
            pubsub_unsubscribe(c->sub, a->argv[i], a->argl[i], pattern);
        else
            pubsub_subscribe(c->sub, a->argv[i], a->argl[i], pattern);
        confirm(c, kind, a->argv[i], a->argl[i]);
    }
}

void resp_cmd_publish(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int64_t n = 0;

    if (!c->ctx->pubsub) {
        resp_int(&c->out, 0);
        return;
    }
    /* Inside a request that is run again (MULTI on a store that answers
     * later) the message goes out once, on the first run that gets here. */
    if (cmd_replay_value(c->ctx, c->s, &n)) {
        resp_int(&c->out, n);
        return;
    }
    n = (int64_t)pubsub_publish(c->ctx->pubsub, a->argv[1], a->argl[1],
                                a->argv[2], a->argl[2]);
    cmd_replay_amend(c->ctx, c->s, n);
    resp_int(&c->out, n);
}

static void count_channel(void *arg, const char *chan, size_t len)
{
    (*(size_t *)arg)++;
}

static void reply_channel(void *arg, const char *chan, size_t len)
{
    resp_bulk(arg, chan, len);
}

void resp_cmd_pubsub(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    const struct pubsub *ps = c->ctx->pubsub;

    if (resp_arg_is(c, 1, "channels") && a->argc <= 3 && ps) {
        const char *pat = a->argc == 3 ? a->argv[2] : NULL;
        size_t patlen = a->argc == 3 ? a->argl[2] : 0, n = 0;
        pubsub_channels(ps, pat, patlen, count_channel, &n);
        resp_array(&c->out, n);
        pubsub_channels(ps, pat, patlen, reply_channel, &c->out);
    } else if (resp_arg_is(c, 1, "numsub") && ps) {
        resp_map(&c->out, a->argc - 2);
        for (size_t i = 2; i < a->argc; i++) {
            resp_bulk(&c->out, a->argv[i], a->argl[i]);
            resp_int(&c->out,
                     (int64_t)pubsub_numsub(ps, a->argv[i], a->argl[i]));
        }
    } else if (resp_arg_is(c, 1, "numpat") && a->argc == 2 && ps) {
        resp_int(&c->out, (int64_t)pubsub_numpat(ps));
    } else if (resp_arg_is(c, 1, "channels") || resp_arg_is(c, 1, "numpat")) {
        resp_err_arity(c, resp_arg_is(c, 1, "numpat") ? "pubsub|numpat"
                                                      : "pubsub|channels");
    } else {
        resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try PUBSUB HELP.",
                   (int)(a->argl[1] < 64 ? a->argl[1] : 64), a->argv[1]);
    }
}

int resp_pubsub_allowed(struct resp_conn *c, const struct resp_command *cmd)
{
    static const char *const ok[] = {"subscribe", "psubscribe", "unsubscribe",
                                     "punsubscribe", "ping", "quit", "reset"};

    if (c->out.resp3 || sub_count(c) == 0)
        return 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(cmd->name, ok[i]) == 0)
            return 0;
    resp_error(&c->out, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
                        "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
                        "this context", cmd->name);
    return -1;
}

int resp_pubsub_ping(struct resp_conn *c)
{
    if (c->out.resp3 || sub_count(c) == 0)
        return 0;
    resp_array(&c->out, 2);
    resp_bulks(&c->out, "pong");
    if (c->args.argc == 2)
        resp_bulk(&c->out, c->args.argv[1], c->args.argl[1]);
    else
        resp_bulk(&c->out, "", 0);
    return 1;
}

void resp_pubsub_free(struct resp_conn *c)
{
    pubsub_client_free(c->sub);
    c->sub = NULL;
    c->s->sub = NULL;
    buf_free(&c->msg);
}
