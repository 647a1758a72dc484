/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_clients.c - CLIENT LIST, CLIENT KILL and CLIENT INFO: Redis 7's
 * syntax, errors and "key=value ..." lines over the connections the daemon
 * reports through the command layer (cmd.h "Connected clients"; the meaning
 * of the filters is in src/cmd/clients.c).  Only the formatting and the
 * argument parsing live here.  docs/resp.md lists the fields shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_int.h"

/* Refresh what the session shows of this connection (cmd_session's CLIENT
 * LIST fields) after its name, library or protocol changed. */
void resp_session_sync(struct resp_conn *c)
{
    c->s->name = c->name.len ? c->name.p : NULL;
    c->s->namelen = c->name.len;
    c->s->libname = c->libname.len ? c->libname.p : NULL;
    c->s->libnamelen = c->libname.len;
    c->s->libver = c->libver.len ? c->libver.p : NULL;
    c->s->libverlen = c->libver.len;
    c->s->resp = c->out.resp3 ? 3 : 2;
}

/* One client's line, in Redis's field order (networking.c), with the fields
 * that mean something in tally: no sharded Pub/Sub (ssub is 0), one
 * database, one user.  tally keeps one input and one growable reply buffer
 * per connection, no reply list: qbuf is the input not yet run, argv-mem 0
 * (arguments point into that input), obl the reply bytes not yet written
 * (held ones included), oll 0, omem the reply buffer's size and tot-mem the
 * connection's buffers and state. */
static void client_line(struct buf *t, const struct cmd_client *cl)
{
    const struct cmd_session *s = cl->session;
    int64_t multi = cmd_multi_queued(s);
    const char *flags = cmd_client_type_of(s) == CMD_CLIENT_PUBSUB ? "P"
                        : multi >= 0                              ? "x"
                                                                  : "N";
    char cmd[64];

    if (!s->last_cmd)
        snprintf(cmd, sizeof cmd, "NULL");
    else if (s->last_sub)
        snprintf(cmd, sizeof cmd, "%s|%s", s->last_cmd, s->last_sub);
    else
        snprintf(cmd, sizeof cmd, "%s", s->last_cmd);
    buf_printf(t, "id=%llu addr=%s laddr=%s fd=%d name=%.*s age=%lld "
                  "idle=%lld flags=%s db=0 sub=%zu psub=%zu ssub=0 multi=%lld "
                  "qbuf=%llu qbuf-free=%llu argv-mem=0 obl=%llu oll=0 "
                  "omem=%llu tot-mem=%llu events=%s cmd=%s user=default "
                  "redir=-1 resp=%d lib-name=%.*s lib-ver=%.*s\n",
               (unsigned long long)s->id, cl->addr, cl->laddr, cl->fd,
               (int)s->namelen, s->name ? s->name : "", (long long)cl->age_s,
               (long long)cl->idle_s, flags, cmd_client_subs(s, 0),
               cmd_client_subs(s, 1), (long long)multi, (unsigned long long)cl->qbuf,
               (unsigned long long)cl->qbuf_free, (unsigned long long)cl->obl,
               (unsigned long long)cl->omem, (unsigned long long)cl->tot_mem,
               cl->events ? cl->events : "", cmd, s->resp,
               (int)s->libnamelen, s->libname ? s->libname : "",
               (int)s->libverlen, s->libver ? s->libver : "");
}

struct list {
    struct buf *t;
    enum cmd_client_type type;
    const uint64_t *ids;      /* CLIENT LIST ID ...: only these, or NULL */
    size_t nids;
    uint64_t only;            /* CLIENT INFO: this id alone, or 0 */
};

static int list_one(void *arg, const struct cmd_client *cl)
{
    struct list *l = arg;
    int want = !l->ids && !l->only;

    if (cl->killed ||
        (l->type != CMD_CLIENT_ANY && l->type != cmd_client_type_of(cl->session)))
        return 0;
    for (size_t i = 0; i < l->nids; i++)
        want |= l->ids[i] == cl->session->id;
    if (l->only)
        want = l->only == cl->session->id;
    if (want)
        client_line(l->t, cl);
    return 0;
}

/* The walk goes newest first; Redis lists oldest first, so reverse the
 * lines. */
static void reply_lines(struct resp_conn *c, struct buf *t)
{
    struct buf r = {0};
    size_t end = t->len;

    while (end > 0) {
        size_t start = end - 1; /* end - 1 is this line's '\n' */
        while (start > 0 && t->p[start - 1] != '\n')
            start--;
        buf_add(&r, t->p + start, end - start);
        end = start;
    }
    resp_verbatim(&c->out, r.len ? r.p : "", r.len);
    buf_free(&r);
}

static int parse_type(struct resp_conn *c, size_t i, enum cmd_client_type *out)
{
    const struct resp_args *a = &c->args;

    if (cmd_client_type_parse(a->argv[i], a->argl[i], out) == 0)
        return 0;
    resp_error(&c->out, "ERR Unknown client type '%.*s'",
               (int)(a->argl[i] < 128 ? a->argl[i] : 128), a->argv[i]);
    return -1;
}

/* CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]] */
void resp_client_list(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    struct list l = {&c->tmp, CMD_CLIENT_ANY, NULL, 0, 0};
    uint64_t *ids = NULL;

    buf_clear(&c->tmp);
    if (a->argc == 4 && resp_arg_is(c, 2, "type")) {
        if (parse_type(c, 3, &l.type) != 0)
            return;
    } else if (a->argc > 3 && resp_arg_is(c, 2, "id")) {
        ids = xcalloc(a->argc - 3, sizeof *ids);
        for (size_t i = 3; i < a->argc; i++) {
            if (cmd_parse_u64(a->argv[i], a->argl[i], &ids[i - 3]) != 0 ||
                ids[i - 3] == 0) {
                resp_error(&c->out, "ERR Invalid client ID");
                free(ids);
                return;
            }
        }
        l.ids = ids;
        l.nids = a->argc - 3;
    } else if (a->argc != 2) {
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    if (cmd_clients_each(c->ctx, list_one, &l) != CMD_OK) {
        free(ids);
        resp_error(&c->out, "ERR CLIENT LIST needs tallyd's connections");
        return;
    }
    free(ids);
    reply_lines(c, &c->tmp);
}

/* CLIENT INFO: the caller's own line. */
void resp_client_info(struct resp_conn *c)
{
    struct list l = {&c->tmp, CMD_CLIENT_ANY, NULL, 0, c->s->id};

    buf_clear(&c->tmp);
    if (cmd_clients_each(c->ctx, list_one, &l) != CMD_OK || !c->tmp.len) {
        /* No daemon registry (an embedded front end): what the front end
         * itself knows. */
        struct cmd_client self = {.session = c->s, .addr = c->peer,
                                  .laddr = "", .fd = -1};
        buf_clear(&c->tmp);
        resp_session_sync(c);
        client_line(&c->tmp, &self);
    }
    resp_verbatim(&c->out, c->tmp.p, c->tmp.len);
}

/* CLIENT KILL addr:port (the old form: OK or an error), or
 * CLIENT KILL <filter value> ... (how many were killed). */
void resp_client_kill(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    struct cmd_client_filter f = {0};
    uint64_t killed = 0;

    if (a->argc == 3) {
        f.addr = a->argv[2];
        f.addrlen = a->argl[2];
        if (cmd_clients_kill(c->ctx, &f, c->s, &killed) != CMD_OK ||
            killed == 0)
            resp_error(&c->out, "ERR No such client");
        else
            resp_simple(&c->out, "OK");
        return;
    }
    f.skipme = 1;
    if (a->argc % 2 != 0) {
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    for (size_t i = 2; i + 1 < a->argc; i += 2) {
        const char *v = a->argv[i + 1];
        size_t vl = a->argl[i + 1];
        if (resp_arg_is(c, i, "id")) {
            if (cmd_parse_u64(v, vl, &f.id) != 0 || f.id == 0) {
                resp_error(&c->out, "ERR client-id should be greater than 0");
                return;
            }
        } else if (resp_arg_is(c, i, "type")) {
            if (parse_type(c, i + 1, &f.type) != 0)
                return;
        } else if (resp_arg_is(c, i, "addr")) {
            f.addr = v;
            f.addrlen = vl;
        } else if (resp_arg_is(c, i, "laddr")) {
            f.laddr = v;
            f.laddrlen = vl;
        } else if (resp_arg_is(c, i, "user")) {
            if (vl != 7 || memcmp(v, "default", 7) != 0) {
                resp_error(&c->out, "ERR No such user '%.*s'",
                           (int)(vl < 128 ? vl : 128), v);
                return;
            }
        } else if (resp_arg_is(c, i, "skipme")) {
            if (resp_arg_is(c, i + 1, "yes"))
                f.skipme = 1;
            else if (resp_arg_is(c, i + 1, "no"))
                f.skipme = 0;
            else {
                resp_error(&c->out, "ERR syntax error");
                return;
            }
        } else if (resp_arg_is(c, i, "maxage")) {
            if (cmd_parse_i64(v, vl, &f.maxage) != 0) {
                resp_error(&c->out, "ERR syntax error");
                return;
            }
        } else {
            resp_error(&c->out, "ERR syntax error");
            return;
        }
    }
    if (cmd_clients_kill(c->ctx, &f, c->s, &killed) != CMD_OK) {
        resp_error(&c->out, "ERR CLIENT KILL needs tallyd's connections");
        return;
    }
    resp_int(&c->out, (int64_t)killed);
}
