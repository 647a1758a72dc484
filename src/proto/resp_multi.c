/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_multi.c - MULTI, EXEC, DISCARD, WATCH and UNWATCH in RESP: only the
 * wire side.  What a transaction means (the queue, EXECABORT, WATCH
 * versions, one atomic batch per EXEC) is the command layer's
 * (src/cmd/multi.c).  This file queues a request as its argument vector
 * (so that its arguments are checked when it runs, as Redis does), runs the
 * queued vectors back through the usual dispatch at EXEC, and gathers their
 * replies into EXEC's array, which leaves only once the batch is durable
 * (its ticket).
 *
 * A queued request is encoded as u32 argc, then per argument u32 length and
 * the bytes, little-endian.
 */
#include <stdio.h>
#include <string.h>

#include "resp_int.h"

static void put32(struct buf *b, size_t v)
{
    unsigned char n[4];

    for (int i = 0; i < 4; i++)
        n[i] = (unsigned char)(v >> (8 * i));
    buf_add(b, n, 4);
}

static size_t get32(const unsigned char *p)
{
    return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
           (size_t)p[3] << 24;
}

int resp_multi_intercept(struct resp_conn *c, const struct resp_command *cmd)
{
    const struct resp_args *a = &c->args;

    if (!cmd_in_multi(c->s) || (cmd->flags & RESP_NOQUEUE))
        return 0;
    if (cmd->flags & RESP_NOMULTI) {
        resp_error(&c->out, "ERR Command not allowed inside a transaction");
        cmd_multi_fail(c->s);
        return 1;
    }
    buf_clear(&c->tmp);
    put32(&c->tmp, a->argc);
    for (size_t i = 0; i < a->argc; i++) {
        put32(&c->tmp, a->argl[i]);
        buf_add(&c->tmp, a->argv[i], a->argl[i]);
    }
    cmd_multi_queue(c->s, c->tmp.p, c->tmp.len);
    resp_simple(&c->out, "QUEUED");
    return 1;
}

void resp_multi_flag(struct resp_conn *c)
{
    cmd_multi_fail(c->s);
}

int resp_multi_exec_refused(struct resp_conn *c,
                            const struct resp_command *cmd)
{
    if (cmd->fn != resp_cmd_exec || !cmd_in_multi(c->s))
        return 0;
    cmd_discard(c->ctx, c->s);
    resp_error(&c->out, "EXECABORT Transaction discarded because of: wrong "
                        "number of arguments for '%s' command", cmd->name);
    return 1;
}

/* Run one queued request: decode it into a resp_args of its own, put that
 * in c->args for the time of the dispatch. */
static void run_queued(void *arg, const void *req, size_t len)
{
    struct resp_conn *c = arg;
    const unsigned char *p = req, *end = p + len;
    struct resp_args saved = c->args, a = {0};
    size_t argc = get32(p);

    p += 4;
    a.argv = xcalloc(argc ? argc : 1, sizeof *a.argv);
    a.argl = xcalloc(argc ? argc : 1, sizeof *a.argl);
    a.cap = argc;
    for (size_t i = 0; i < argc && p + 4 <= end; i++) {
        a.argl[i] = get32(p);
        a.argv[i] = (const char *)p + 4;
        p += 4 + a.argl[i];
        a.argc++;
    }
    c->args = a;
    resp_dispatch(c);
    c->args = saved;
    resp_args_free(&a);
}

/* MULTI or WATCH on a store that cannot run atomic batches. */
static void refuse_unsupported(struct resp_conn *c, const char *what)
{
    struct cmd_res res = {.status = CMD_ERR_UNSUPPORTED};

    snprintf(res.detail, sizeof res.detail, "%s is not supported by the %s "
             "store (it has no atomic batches)", what,
             cmd_store_name(c->ctx));
    resp_reply_status(c, &res);
}

void resp_cmd_multi(struct resp_conn *c)
{
    enum cmd_status st = cmd_multi(c->ctx, c->s);

    if (st == CMD_ERR_NESTED)
        resp_error(&c->out, "ERR MULTI calls can not be nested");
    else
        resp_simple(&c->out, "OK");
}

void resp_cmd_discard(struct resp_conn *c)
{
    if (cmd_discard(c->ctx, c->s) == CMD_ERR_NOMULTI)
        resp_error(&c->out, "ERR DISCARD without MULTI");
    else
        resp_simple(&c->out, "OK");
}

void resp_cmd_watch(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    struct cmd_res res = {0};

    switch (cmd_watch(c->ctx, c->s, a->argc - 1, a->argv + 1, a->argl + 1)) {
    case CMD_OK: resp_simple(&c->out, "OK"); break;
    case CMD_ERR_WATCHMULTI:
        resp_error(&c->out, "ERR WATCH inside MULTI is not allowed");
        break;
    case CMD_ERR_UNSUPPORTED:
        refuse_unsupported(c, "WATCH");
        break;
    default:
        res.status = CMD_ERR_KEYLEN;
        resp_reply_status(c, &res);
        break;
    }
}

void resp_cmd_unwatch(struct resp_conn *c)
{
    cmd_unwatch(c->ctx, c->s);
    resp_simple(&c->out, "OK");
}

void resp_cmd_exec(struct resp_conn *c)
{
    struct buf *outer = c->out.b, inner = BUF_INIT;
    struct cmd_res res;
    enum cmd_status st;

    /* The replies of the queued requests gather in `inner` and follow the
     * array header, which needs their count. */
    c->out.b = &inner;
    st = cmd_exec_multi(c->ctx, c->s, run_queued, c, &res);
    c->out.b = outer;
    if (res.ticket > c->ticket)
        c->ticket = res.ticket;
    switch (st) {
    case CMD_OK:
        resp_array(&c->out, res.n);
        buf_add(outer, inner.p, inner.len);
        break;
    case CMD_NOTSET: /* a watched key changed: the null array */
        buf_adds(outer, c->out.resp3 ? "_\r\n" : "*-1\r\n");
        break;
    case CMD_ERR_NOMULTI:
        resp_error(&c->out, "ERR EXEC without MULTI");
        break;
    case CMD_ERR_EXECABORT:
        resp_error(&c->out,
                   "EXECABORT Transaction discarded because of previous "
                   "errors.");
        break;
    default: /* the batch could not be committed: nothing was applied */
        res.status = st;
        resp_reply_status(c, &res);
        break;
    }
    buf_free(&inner);
}
