/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_keys.c - the key and server commands client libraries and test
 * suites send besides the counter commands: FLUSHDB/FLUSHALL, TYPE, TOUCH,
 * RENAME/RENAMENX, COPY, RANDOMKEY, OBJECT ENCODING, MEMORY USAGE, WAIT,
 * LASTSAVE, TIME, and a clear refusal of INCRBYFLOAT and APPEND.  What the
 * multi-step ones mean is in src/cmd/keyspace.c; this file only parses
 * and answers with Redis 7's texts.
 */
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "resp_int.h"

/* Take a result's ticket; answer its error.  Returns 1 if it was one. */
static int failed(struct resp_conn *c, enum cmd_status st,
                  struct cmd_res *res)
{
    if (res->ticket > c->ticket)
        c->ticket = res->ticket;
    if (st < CMD_ERR_NOTINT)
        return 0;
    res->status = st;
    resp_reply_status(c, res);
    return 1;
}

/* FLUSHDB / FLUSHALL [ASYNC|SYNC] */
void resp_cmd_flush(struct resp_conn *c)
{
    struct cmd_res res;
    enum cmd_status st;

    if (c->args.argc > 2 || (c->args.argc == 2 && !resp_arg_is(c, 1, "async") &&
                             !resp_arg_is(c, 1, "sync"))) {
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    st = cmd_flush(c->ctx, c->s, &res);
    if (st == CMD_ERR_DENIED) {
        resp_error(&c->out, "ERR %s is refused: tallyd deletes every counter "
                            "only when started with --allow-flush",
                   resp_arg_is(c, 0, "flushall") ? "FLUSHALL" : "FLUSHDB");
        return;
    }
    if (!failed(c, st, &res))
        resp_simple(&c->out, "OK");
}

/* Answer about the counter named by argument i instead of argv[1]: a
 * read of it (so its ticket is taken).  Returns CMD_OK, CMD_NOTFOUND, or
 * an error already answered. */
static enum cmd_status read_arg(struct resp_conn *c, size_t i,
                                struct cmd_res *res)
{
    struct cmd_req req = {.op = CMD_GET, .key = c->args.argv[i],
                          .klen = c->args.argl[i]};
    enum cmd_status st = cmd_exec(c->ctx, c->s, &req, res);

    return failed(c, st, res) ? CMD_ERR_ARGS : st;
}

static void err_subcommand(struct resp_conn *c, const char *parent)
{
    resp_error(&c->out, "ERR unknown subcommand or wrong number of "
                        "arguments for '%.*s'. Try %s HELP.",
               (int)(c->args.argl[1] < 64 ? c->args.argl[1] : 64),
               c->args.argv[1], parent);
}

void resp_cmd_type(struct resp_conn *c)
{
    struct cmd_res res;
    enum cmd_status st = read_arg(c, 1, &res);

    if (st < CMD_ERR_NOTINT)
        resp_simple(&c->out, st == CMD_OK ? "string" : "none");
}

/* TOUCH key...: how many exist (nothing else to do: tally keeps no access
 * times). */
void resp_cmd_touch(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_EXISTS, .nkeys = c->args.argc - 1,
                          .keys = c->args.argv + 1,
                          .klens = c->args.argl + 1};
    struct cmd_res res;

    if (!failed(c, cmd_exec(c->ctx, c->s, &req, &res), &res))
        resp_int(&c->out, (int64_t)res.n);
}

void resp_cmd_rename(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int nx = resp_arg_is(c, 0, "renamenx");
    struct cmd_res res;
    enum cmd_status st = cmd_rename(c->ctx, c->s, a->argv[1], a->argl[1],
                                    a->argv[2], a->argl[2], nx, &res);

    if (failed(c, st, &res))
        return;
    if (st == CMD_NOTFOUND)
        resp_error(&c->out, "ERR no such key");
    else if (nx)
        resp_int(&c->out, st == CMD_OK);
    else
        resp_simple(&c->out, "OK");
}

/* COPY source destination [DB 0] [REPLACE] */
void resp_cmd_copy(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int replace = 0;
    struct cmd_res res;
    enum cmd_status st;

    for (size_t i = 3; i < a->argc; i++) {
        if (resp_arg_is(c, i, "replace")) {
            replace = 1;
        } else if (resp_arg_is(c, i, "db") && i + 1 < a->argc) {
            int64_t db;
            if (cmd_parse_i64(a->argv[i + 1], a->argl[i + 1], &db) != 0) {
                resp_error(&c->out,
                           "ERR value is not an integer or out of range");
                return;
            }
            if (db != 0) {
                resp_error(&c->out, "ERR DB index is out of range");
                return;
            }
            i++;
        } else {
            resp_error(&c->out, "ERR syntax error");
            return;
        }
    }
    if (a->argl[1] == a->argl[2] &&
        memcmp(a->argv[1], a->argv[2], a->argl[1]) == 0) {
        resp_error(&c->out,
                   "ERR source and destination objects are the same");
        return;
    }
    st = cmd_copy(c->ctx, c->s, a->argv[1], a->argl[1], a->argv[2],
                  a->argl[2], replace, &res);
    if (!failed(c, st, &res))
        resp_int(&c->out, (int64_t)res.n);
}

void resp_cmd_randomkey(struct resp_conn *c)
{
    char key[TALLY_KEY_MAX];
    size_t klen = 0;
    struct cmd_res res;
    enum cmd_status st =
        cmd_randomkey(c->ctx, c->s, key, sizeof key, &klen, &res);

    if (failed(c, st, &res))
        return;
    if (st == CMD_OK)
        resp_bulk(&c->out, key, klen);
    else
        resp_null(&c->out);
}

/* OBJECT ENCODING key: every counter is an "int". */
void resp_cmd_object(struct resp_conn *c)
{
    struct cmd_res res;
    enum cmd_status st;

    if (c->args.argc != 3 || !resp_arg_is(c, 1, "encoding")) {
        err_subcommand(c, "OBJECT");
        return;
    }
    if ((st = read_arg(c, 2, &res)) >= CMD_ERR_NOTINT)
        return;
    if (st != CMD_OK)
        resp_null(&c->out);
    else
        resp_bulks(&c->out, "int");
}

/* MEMORY USAGE key [SAMPLES n]: an estimate of what the counter takes in
 * tally's table (entry header, key, allocator rounding). */
void resp_cmd_memory(struct resp_conn *c)
{
    struct cmd_res res;
    enum cmd_status st;
    size_t klen;

    if (!resp_arg_is(c, 1, "usage") || c->args.argc < 3) {
        err_subcommand(c, "MEMORY");
        return;
    }
    klen = c->args.argl[2];
    if ((st = read_arg(c, 2, &res)) >= CMD_ERR_NOTINT)
        return;
    if (st != CMD_OK)
        resp_null(&c->out);
    else /* 26-byte entry + key, in 16-byte slab steps, + a bucket */
        resp_int(&c->out, (int64_t)(((26 + klen + 15) / 16) * 16 + 8));
}

/* WAIT numreplicas timeout: there are no replicas, and every reply is
 * already durable when it is sent. */
void resp_cmd_wait(struct resp_conn *c)
{
    int64_t n, t;

    if (cmd_parse_i64(c->args.argv[1], c->args.argl[1], &n) != 0 ||
        cmd_parse_i64(c->args.argv[2], c->args.argl[2], &t) != 0) {
        resp_error(&c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (t < 0) {
        resp_error(&c->out, "ERR timeout is negative");
        return;
    }
    resp_int(&c->out, 0);
}

void resp_cmd_lastsave(struct resp_conn *c)
{
    tally_stats st;

    cmd_engine_stats(c->ctx, &st);
    resp_int(&c->out, st.last_snapshot_unix
                          ? st.last_snapshot_unix
                          : (c->ctx->info ? c->ctx->info->start_unix : 0));
}

void resp_cmd_time(struct resp_conn *c)
{
    struct timeval tv;
    int64_t us;

    gettimeofday(&tv, NULL);
    /* The same on every run of a request that a store answering later
     * runs again (a script that reads TIME, then writes by it). */
    us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
    cmd_replay_value(c->ctx, c->s, &us);
    resp_array(&c->out, 2);
    resp_bulk_i64(&c->out, us / 1000000);
    resp_bulk_i64(&c->out, us % 1000000);
}

/* INCRBYFLOAT, APPEND: a counter is an integer and stays one. */
void resp_cmd_not_integer(struct resp_conn *c)
{
    resp_error(&c->out, "ERR %.*s is not supported: tally stores signed "
                        "64-bit integer counters only",
               (int)(c->args.argl[0] < 32 ? c->args.argl[0] : 32),
               c->args.argv[0]);
}
