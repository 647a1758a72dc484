/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_script.c - EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT and FUNCTION
 * in RESP: the wire side of scripts.  Running them (Lua, the sandbox, the
 * atomic batch, Redis's conversions) is the command layer's
 * (src/cmd/script.c).  This file is the script's host: redis.call()'s
 * argument vector runs through the same command table a client's request
 * does (with Redis's refusals for scripts), its RESP2 reply is read back
 * into the Lua value the command layer builds, and the script's result is
 * encoded as this connection's reply, held until the batch is durable.
 */
#include <string.h>

#include "resp_int.h"
#include "script.h"

/* ---- The script's calls ----------------------------------------------- */

/* Read one RESP2 reply from p[0, n) into r; returns the bytes used, or 0
 * if the reply is malformed (never: it is our own encoding). */
static size_t read_reply(const char *p, size_t n, struct cmd_script_reply *r)
{
    const char *eol;
    size_t line, used;
    int64_t v = 0;

    if (n < 1) /* a call that pends wrote nothing (p may be NULL then) */
        return 0;
    eol = memchr(p, '\r', n);
    if (!eol)
        return 0;
    line = (size_t)(eol - p);
    used = line + 2;
    switch (p[0]) {
    case '+':
        cmd_script_reply_status(r, p + 1, line - 1);
        return used;
    case '-':
        cmd_script_reply_error(r, p + 1, line - 1);
        return used;
    case ':':
        cmd_parse_i64(p + 1, line - 1, &v);
        cmd_script_reply_int(r, v);
        return used;
    case '$':
        cmd_parse_i64(p + 1, line - 1, &v);
        if (v < 0) {
            cmd_script_reply_nil(r);
            return used;
        }
        cmd_script_reply_bulk(r, p + used, (size_t)v);
        return used + (size_t)v + 2;
    case '*':
        cmd_parse_i64(p + 1, line - 1, &v);
        if (v < 0) {
            cmd_script_reply_nil(r);
            return used;
        }
        cmd_script_reply_array(r, (size_t)v);
        for (int64_t i = 0; i < v; i++) {
            size_t k = read_reply(p + used, n - used, r);
            if (k == 0)
                return 0;
            used += k;
        }
        return used;
    default:
        return 0;
    }
}

static int has_flag(const struct resp_command *cmd, const char *flag)
{
    const char *f = cmd->doc_flags;
    size_t n = strlen(flag);

    for (; f && *f; f += strcspn(f, " "), f += *f == ' ') {
        if (strncmp(f, flag, n) == 0 && (f[n] == ' ' || f[n] == 0))
            return 1;
    }
    return 0;
}

static void host_call(void *arg, size_t argc, const char *const *argv,
                      const size_t *argl, int readonly,
                      struct cmd_script_reply *r)
{
    static const char *const err[] = {
        "ERR Unknown Redis command called from script",
        "ERR Wrong number of args calling Redis command from script",
        "ERR This Redis command is not allowed from script",
        "ERR Write commands are not allowed from read-only scripts.",
    };
    struct resp_conn *c = arg;
    const struct resp_command *cmd = resp_lookup(c->front, argv[0], argl[0]);
    struct resp_args saved = c->args, a = {0};
    struct resp_out out = c->out;
    struct buf reply = BUF_INIT;
    int refuse = -1;

    if (!cmd)
        refuse = 0;
    else if ((cmd->arity > 0 && (int)argc != cmd->arity) ||
             (cmd->arity < 0 && (int)argc < -cmd->arity))
        refuse = 1;
    else if (has_flag(cmd, "noscript"))
        refuse = 2;
    else if (readonly && has_flag(cmd, "write"))
        refuse = 3;
    if (refuse >= 0) {
        cmd_script_reply_error(r, err[refuse], strlen(err[refuse]));
        return;
    }
    a.argc = a.cap = argc;
    a.argv = (const char **)argv;
    a.argl = (size_t *)argl;
    c->args = a;
    /* Scripts see RESP2 replies, as in Redis without redis.setresp(3). */
    c->out.b = &reply;
    c->out.resp3 = 0;
    cmd->fn(c);
    c->out = out;
    c->args = saved;
    if (read_reply(reply.p, reply.len, r) == 0)
        cmd_script_reply_nil(r);
    buf_free(&reply);
}

/* ---- The script's result ---------------------------------------------- */

static void out_int(void *arg, int64_t v)
{
    resp_int(&((struct resp_conn *)arg)->out, v);
}

static void out_bulk(void *arg, const char *p, size_t n)
{
    resp_bulk(&((struct resp_conn *)arg)->out, p, n);
}

static void out_nil(void *arg)
{
    resp_null(&((struct resp_conn *)arg)->out);
}

static void out_status(void *arg, const char *p, size_t n)
{
    struct resp_conn *c = arg;

    buf_addc(c->out.b, '+');
    for (size_t i = 0; i < n; i++) /* one line, as resp_error keeps it */
        buf_addc(c->out.b, p[i] == '\r' || p[i] == '\n' ? ' ' : p[i]);
    buf_add(c->out.b, "\r\n", 2);
}

static void out_error(void *arg, const char *p, size_t n)
{
    resp_error(&((struct resp_conn *)arg)->out, "%.*s", (int)n, p);
}

static void out_array(void *arg, size_t n)
{
    resp_array(&((struct resp_conn *)arg)->out, n);
}

static struct cmd_script_host host_of(struct resp_conn *c)
{
    return (struct cmd_script_host){host_call, out_int,    out_bulk, out_nil,
                                    out_status, out_error, out_array, c};
}

/* ---- Commands --------------------------------------------------------- */

/* EVAL/EVALSHA[_RO] script numkeys [key ...] [arg ...] */
void resp_cmd_eval(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int by_sha = resp_arg_is(c, 0, "evalsha") ||
                 resp_arg_is(c, 0, "evalsha_ro");
    int ro = resp_arg_is(c, 0, "eval_ro") || resp_arg_is(c, 0, "evalsha_ro");
    struct cmd_script_host h = host_of(c);
    struct buf *outer = c->out.b, inner = BUF_INIT;
    struct cmd_res res;
    enum cmd_status st;
    int64_t nkeys;

    if (cmd_parse_i64(a->argv[2], a->argl[2], &nkeys) != 0) {
        resp_error(&c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (nkeys < 0) {
        resp_error(&c->out, "ERR Number of keys can't be negative");
        return;
    }
    if ((uint64_t)nkeys > a->argc - 3) {
        resp_error(&c->out,
                   "ERR Number of keys can't be greater than number of args");
        return;
    }
    c->out.b = &inner;
    st = cmd_eval(c->ctx, c->s, a->argv[1], a->argl[1], by_sha, ro,
                  (size_t)nkeys,
                  a->argc - 3 - (size_t)nkeys, a->argv + 3, a->argl + 3, &h,
                  &res);
    c->out.b = outer;
    if (res.ticket > c->ticket)
        c->ticket = res.ticket;
    if (st == CMD_OK) {
        buf_add(outer, inner.p, inner.len);
    } else if (st == CMD_NOTFOUND) {
        resp_error(&c->out, "NOSCRIPT No matching script. Please use EVAL.");
    } else if (st == CMD_NOTSET) {
        /* SHUTDOWN NOSAVE stopped it: Redis exits without a reply. */
        c->flags |= PROTO_CLOSE;
    } else { /* the batch could not be committed: nothing was applied */
        res.status = st;
        resp_reply_status(c, &res);
    }
    buf_free(&inner);
}

/* SCRIPT LOAD body | EXISTS sha ... | FLUSH [ASYNC|SYNC] | KILL */
void resp_cmd_script(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    struct cmd_script_host h = host_of(c);
    char sha[41];

    if (resp_arg_is(c, 1, "load") && a->argc == 3) {
        if (cmd_script_load(c->ctx, a->argv[2], a->argl[2], sha, &h) ==
            CMD_OK)
            resp_bulk(&c->out, sha, 40);
    } else if (resp_arg_is(c, 1, "exists") && a->argc >= 3) {
        resp_array(&c->out, a->argc - 2);
        for (size_t i = 2; i < a->argc; i++)
            resp_int(&c->out,
                     cmd_script_exists(c->ctx, a->argv[i], a->argl[i]));
    } else if (resp_arg_is(c, 1, "flush") &&
               (a->argc == 2 ||
                (a->argc == 3 &&
                 (resp_arg_is(c, 2, "async") || resp_arg_is(c, 2, "sync"))))) {
        cmd_script_flush(c->ctx);
        resp_simple(&c->out, "OK");
    } else if (resp_arg_is(c, 1, "kill") && a->argc == 2) {
        switch (cmd_script_kill(c->ctx)) {
        case CMD_OK: resp_simple(&c->out, "OK"); break;
        case CMD_NOTSET:
            resp_error(&c->out, "UNKILLABLE Sorry the script already "
                                "executed write commands against the "
                                "dataset. You can either wait the script "
                                "termination or kill the server in a hard "
                                "way using the SHUTDOWN NOSAVE command.");
            break;
        default:
            resp_error(&c->out, "NOTBUSY No scripts in execution right now.");
            break;
        }
    } else {
        resp_error(&c->out,
                   "ERR unknown subcommand or wrong number of arguments for "
                   "'%.*s'. Try SCRIPT HELP.",
                   (int)(a->argl[1] < 64 ? a->argl[1] : 64), a->argv[1]);
    }
}

int resp_script_busy(struct resp_conn *c, const struct resp_command *cmd)
{
    /* SHUTDOWN decides itself (it is allow_busy in Redis 7 too): NOSAVE
     * goes ahead, the others are refused after their syntax check. */
    if (!cmd_script_busy_for(c->ctx, c->s) ||
        (cmd->fn == resp_cmd_script && resp_arg_is(c, 1, "kill")) ||
        strcmp(cmd->name, "shutdown") == 0)
        return 0;
    resp_error(&c->out, "BUSY Redis is busy running a script. You can only "
                        "call SCRIPT KILL or SHUTDOWN NOSAVE.");
    return 1;
}

int resp_script_shutdown(struct resp_conn *c, int nosave)
{
    if (!cmd_script_busy_for(c->ctx, c->s))
        return 0;
    if (!nosave) {
        struct cmd_res busy = {.status = CMD_ERR_SCRIPTBUSY};
        resp_reply_status(c, &busy);
        return 1;
    }
    cmd_script_kill_nosave(c->ctx);
    return 0;
}

void resp_cmd_function(struct resp_conn *c)
{
    resp_error(&c->out, "ERR tally does not support FUNCTION; use EVAL, "
                        "EVALSHA and SCRIPT LOAD");
}
