/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * clients.c - CLIENT LIST and CLIENT KILL's meaning, for any front end: the
 * client types Redis names, the filters of CLIENT KILL, and the walk over the
 * daemon's connections through its provider (cmd.h "Connected clients").
 * This file never sees a connection itself; the daemon's conn.c fills the
 * provider, and the front end formats what the walk gives (resp_clients.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "pubsub.h"
#include "util.h"

int cmd_client_type_parse(const char *s, size_t n, enum cmd_client_type *out)
{
    static const struct {
        const char *name;
        enum cmd_client_type type;
    } types[] = {
        {"normal", CMD_CLIENT_NORMAL}, {"master", CMD_CLIENT_NONE},
        {"replica", CMD_CLIENT_NONE},  {"slave", CMD_CLIENT_NONE},
        {"pubsub", CMD_CLIENT_PUBSUB},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strlen(types[i].name) == n && strncasecmp(s, types[i].name, n) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -1;
}

size_t cmd_client_subs(const struct cmd_session *s, int pattern)
{
    return s->sub ? pubsub_client_count(s->sub, pattern) : 0;
}

/* As Redis: a pubsub client while it has a subscription. */
enum cmd_client_type cmd_client_type_of(const struct cmd_session *s)
{
    return cmd_client_subs(s, 0) + cmd_client_subs(s, 1) ? CMD_CLIENT_PUBSUB
                                                         : CMD_CLIENT_NORMAL;
}

static int same(const char *want, size_t n, const char *have)
{
    return strlen(have) == n && memcmp(want, have, n) == 0;
}

int cmd_client_match(const struct cmd_client_filter *f,
                     const struct cmd_client *cl,
                     const struct cmd_session *caller)
{
    if (cl->killed)
        return 0;
    if (f->id && cl->session->id != f->id)
        return 0;
    if (f->addr && !same(f->addr, f->addrlen, cl->addr))
        return 0;
    if (f->laddr && !same(f->laddr, f->laddrlen, cl->laddr))
        return 0;
    /* No replicas or masters: CMD_CLIENT_NONE matches nobody. */
    if (f->type != CMD_CLIENT_ANY && f->type != cmd_client_type_of(cl->session))
        return 0;
    if (f->maxage > 0 && cl->age_s < f->maxage)
        return 0;
    if (f->skipme && caller && cl->session->id == caller->id)
        return 0;
    return 1;
}

enum cmd_status cmd_clients_each(const struct cmd_ctx *ctx, cmd_client_fn fn,
                                 void *arg)
{
    const struct cmd_clients *p = ctx->info ? ctx->info->clients : NULL;

    if (!p)
        return CMD_ERR_DENIED;
    p->each(p->self, fn, arg);
    return CMD_OK;
}

/* The ids to kill are gathered first: killing while the provider walks
 * would change what it walks. */
struct gather {
    const struct cmd_client_filter *f;
    const struct cmd_session *caller;
    uint64_t *ids;
    size_t n, cap;
};

static int gather_one(void *arg, const struct cmd_client *cl)
{
    struct gather *g = arg;

    if (!cmd_client_match(g->f, cl, g->caller))
        return 0;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->ids = xrealloc(g->ids, g->cap * sizeof *g->ids);
    }
    g->ids[g->n++] = cl->session->id;
    return 0;
}

enum cmd_status cmd_clients_kill(const struct cmd_ctx *ctx,
                                 const struct cmd_client_filter *f,
                                 const struct cmd_session *caller,
                                 uint64_t *killed)
{
    const struct cmd_clients *p = ctx->info ? ctx->info->clients : NULL;
    struct gather g = {f, caller, NULL, 0, 0};

    *killed = 0;
    if (!p)
        return CMD_ERR_DENIED;
    p->each(p->self, gather_one, &g);
    for (size_t i = 0; i < g.n; i++)
        *killed += (uint64_t)p->kill(p->self, g.ids[i], caller);
    free(g.ids);
    return CMD_OK;
}
