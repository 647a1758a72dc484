/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp.c - the Redis protocol front end (resp.h): per-connection state, the
 * command table, dispatch, and the commands that map onto the command layer
 * (GET, INCR..., SCAN...; SET and the expiry commands are in
 * resp_expire.c).  Each request is tokenized by resp_parse.c,
 * looked up here, checked for arity and authentication in Redis's order
 * (unknown command, then arity, then NOAUTH), run, and answered with Redis
 * 7's own reply and error texts (resp_reply.c encodes them).  Connection
 * and server commands (HELLO, CLIENT, COMMAND, INFO, CONFIG) live in
 * resp_admin.c.  Meaning, limits and storage belong to src/cmd; this file
 * only knows Redis's syntax and words.
 *
 * Every reply carries the highest ticket of the command results it shows
 * (out->ticket); the daemon holds it until that ticket is durable.
 *
 * Exactly once: INCRBY.ONCE, DECRBY.ONCE, SET.ONCE, DEL.ONCE and GETDEL.ONCE
 * take a client-chosen idempotency id after the key and the number (if the
 * command takes one), then INCRBY/DECRBY/SET.ONCE an expiry; they are
 * handled by the plain commands' handlers with req.once set (docs/resp.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "resp.h"
#include "resp_int.h"


/* The first bytes of a and b, case folded, are equal: a cheap look before
 * strncasecmp.  | 0x20 lowers a letter and makes no other byte a letter,
 * so this is never false where strncasecmp would match. */
static int same_first(const char *a, const char *b)
{
    return ((unsigned char)a[0] | 0x20) == ((unsigned char)b[0] | 0x20);
}

int resp_arg_is(const struct resp_conn *c, size_t i, const char *word)
{
    size_t n = strlen(word);
    return c->args.argl[i] == n &&
           (n == 0 || same_first(c->args.argv[i], word)) &&
           strncasecmp(c->args.argv[i], word, n) == 0;
}

void resp_err_arity(struct resp_conn *c, const char *name)
{
    resp_error(&c->out, "ERR wrong number of arguments for '%s' command",
               name);
}

static void err_syntax(struct resp_conn *c)
{
    resp_error(&c->out, "ERR syntax error");
}

/* The error reply for a command-layer status (>= CMD_ERR_NOTINT). */
void resp_reply_status(struct resp_conn *c, const struct cmd_res *res)
{
    struct resp_out *o = &c->out;

    switch (res->status) {
    case CMD_ERR_NOTINT: resp_error(o, ERR_NOTINT); break;
    case CMD_ERR_OVERFLOW:
        resp_error(o, "ERR increment or decrement would overflow");
        break;
    case CMD_ERR_KEYLEN:
        resp_error(o, "ERR key is too long (tally allows at most %d bytes)",
                   TALLY_KEY_MAX);
        break;
    case CMD_ERR_NOAUTH: resp_error(o, "NOAUTH Authentication required."); break;
    case CMD_ERR_WRONGPASS:
        resp_error(o, "WRONGPASS invalid username-password pair or user is "
                      "disabled.");
        break;
    case CMD_ERR_NOPASS:
        resp_error(o, "ERR AUTH <password> called without any password "
                      "configured for the default user. Are you sure your "
                      "configuration is correct?");
        break;
    case CMD_ERR_WRITEFAIL:
        resp_error(o, "ERR write path failed, tally refuses changes until it "
                      "is restarted: %s", res->detail);
        break;
    case CMD_ERR_DISKFULL:
        resp_error(o, "ERR change refused, disk full: %s", res->detail);
        break;
    case CMD_ERR_NOTDURABLE:
        resp_error(o, "ERR value not durable: the write path failed before "
                      "its last change was synced");
        break;
    case CMD_ERR_BUSY:
        resp_error(o, "ERR Background save already in progress");
        break;
    case CMD_ERR_IO: resp_error(o, "ERR I/O error: %s", res->detail); break;
    case CMD_ERR_IDREUSED:
        resp_error(o, "ERR idempotency id was already used for a different "
                      "request; nothing was applied");
        break;
    case CMD_ERR_INFLIGHT:
        /* Redis's retryable prefix: clients that know it retry. */
        resp_error(o, "TRYAGAIN the first request with this idempotency id "
                      "is not durable yet; retry shortly");
        break;
    case CMD_ERR_IDLEN:
        resp_error(o, "ERR idempotency id must be 1 to %d bytes",
                   TALLY_ID_MAX);
        break;
    case CMD_ERR_EXPIRE: resp_err_expire(c); break;
    case CMD_ERR_SCRIPTBUSY:
        resp_error(o, "BUSY Redis is busy running a script. You can only "
                      "call SCRIPT KILL or SHUTDOWN NOSAVE.");
        break;
    case CMD_ERR_DENIED:
        resp_error(o, "ERR refused by tallyd's configuration");
        break;
    case CMD_ERR_INBATCH:
        resp_error(o, "ERR idempotency ids cannot be used inside MULTI or a "
                      "script");
        break;
    case CMD_ERR_UNAVAILABLE:
        /* Redis's retryable prefix: nothing changed, a retry is safe. */
        resp_error(o, "TRYAGAIN the store is unavailable, nothing changed: %s",
                   res->detail[0] ? res->detail : "retry shortly");
        break;
    case CMD_ERR_UNKNOWN:
        resp_error(o, "ERR outcome unknown: the connection to the store was "
                      "lost after the change was sent; it may or may not "
                      "have been applied (retry with an idempotency id to "
                      "find out)");
        break;
    case CMD_ERR_UNSUPPORTED:
        resp_error(o, "ERR %s", res->detail[0] ? res->detail
                                              : "not supported by this store");
        break;
    case CMD_PENDING:
        break; /* no answer yet: conn.c drops this run's output anyway, and
                  formatting an error for it cost every request on a
                  remote store 700 instructions */
    default: err_syntax(c); break;
    }
}

/* Run a request through the command layer, take its ticket and answer its
 * errors.  Returns the status; for results (< CMD_ERR_NOTINT) the caller
 * writes the reply. */
static enum cmd_status run(struct resp_conn *c, const struct cmd_req *req,
                           struct cmd_res *res)
{
    enum cmd_status st = cmd_exec(c->ctx, c->s, req, res);

    if (res->ticket > c->ticket)
        c->ticket = res->ticket;
    if (st >= CMD_ERR_NOTINT)
        resp_reply_status(c, res);
    return st;
}

/* Parse argument i as an int64, answering `errtext` if it is not one (the
 * refusal is counted against op). */
static int arg_i64(struct resp_conn *c, size_t i, enum cmd_op op,
                   const char *errtext, int64_t *v)
{
    if (cmd_parse_i64(c->args.argv[i], c->args.argl[i], v) == 0)
        return 0;
    cmd_refuse(c->ctx, c->s, op, CMD_ERR_NOTINT);
    resp_error(&c->out, "%s", errtext);
    return -1;
}

static void single_key(struct resp_conn *c, struct cmd_req *req,
                       enum cmd_op op)
{
    memset(req, 0, sizeof *req);
    req->op = op;
    req->key = c->args.argv[1];
    req->klen = c->args.argl[1];
}

/* Is this one of the .ONCE commands?  Then the idempotency id goes into
 * req: argument 2 of DEL.ONCE and GETDEL.ONCE (arity exactly 3), argument
 * 3 of INCRBY, DECRBY and SET.ONCE (at least 4, options after the id); the
 * table's arity has already checked that it is there. */
static int take_once(struct resp_conn *c, struct cmd_req *req)
{
    size_t n = c->args.argl[0], i = c->args.argc == 3 ? 2 : 3;

    if (n < 5 || strncasecmp(c->args.argv[0] + n - 5, ".once", 5) != 0)
        return 0;
    req->once = c->args.argv[i];
    req->oncelen = c->args.argl[i];
    return 1;
}

/* ---- Counter commands ------------------------------------------------- */

/* GET, GETDEL and GETDEL.ONCE: the value as a bulk string, as Redis shows
 * a number stored in a string, or null. */
static void cmd_get(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;

    single_key(c, &req, resp_arg_is(c, 0, "get") ? CMD_GET : CMD_GETDEL);
    take_once(c, &req);
    if (req.op == CMD_GET)
        req.flags = CMD_F_NOEXPIRY; /* a remote store need not read it */
    if (run(c, &req, &res) >= CMD_ERR_NOTINT)
        return;
    if (res.found)
        resp_bulk_i64(&c->out, res.value);
    else
        resp_null(&c->out);
}

/* INCR, DECR, INCRBY, DECRBY and their .ONCE forms (with an expiry after
 * the id: resp_once_ttl, parsed first as SET's is): the name's first
 * letter and the argument count say which. */
static void cmd_incr(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    int decr = c->args.argv[0][0] == 'd' || c->args.argv[0][0] == 'D';
    int64_t by = 1;

    single_key(c, &req, CMD_INCRBY);
    if (take_once(c, &req) && resp_once_ttl(c, &req) != 0)
        return;
    if (c->args.argc >= 3 && arg_i64(c, 2, CMD_INCRBY, ERR_NOTINT, &by) != 0)
        return;
    if (decr && by == INT64_MIN) {
        /* -INT64_MIN does not exist; Redis words this case on its own. */
        cmd_refuse(c->ctx, c->s, CMD_INCRBY, CMD_ERR_OVERFLOW);
        resp_error(&c->out, "ERR decrement would overflow");
        return;
    }
    req.num = decr ? -by : by;
    if (!req.once)
        req.flags = CMD_F_NOEXPIRY; /* a remote store need not read it */
    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_int(&c->out, res.value);
}

/* DEL, EXISTS and MGET take their keys straight from the argument vector. */
static void multi_key(struct resp_conn *c, struct cmd_req *req,
                      enum cmd_op op)
{
    memset(req, 0, sizeof *req);
    req->op = op;
    req->nkeys = c->args.argc - 1;
    req->keys = c->args.argv + 1;
    req->klens = c->args.argl + 1;
}

/* DEL, EXISTS, and DEL.ONCE key id (one key). */
static void cmd_del(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;

    multi_key(c, &req, resp_arg_is(c, 0, "exists") ? CMD_EXISTS : CMD_DEL);
    if (take_once(c, &req))
        req.nkeys = 1;
    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_int(&c->out, (int64_t)res.n);
}

static void cmd_mget(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;

    multi_key(c, &req, CMD_MGET);
    res.values = c->nums;
    res.founds = c->founds;
    if (run(c, &req, &res) >= CMD_ERR_NOTINT)
        return;
    resp_array(&c->out, req.nkeys);
    for (size_t i = 0; i < req.nkeys; i++) {
        if (c->founds[i])
            resp_bulk_i64(&c->out, c->nums[i]);
        else
            resp_null(&c->out);
    }
}

static void cmd_mset(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    size_t n = (c->args.argc - 1) / 2;

    if (c->args.argc % 2 == 0) {
        resp_err_arity(c, "mset");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        c->keys[i] = c->args.argv[1 + 2 * i];
        c->klens[i] = c->args.argl[1 + 2 * i];
        if (arg_i64(c, 2 + 2 * i, CMD_MSET, ERR_NOTINT_VALUE, &c->nums[i]))
            return;
    }
    memset(&req, 0, sizeof req);
    req.op = CMD_MSET;
    req.nkeys = n;
    req.keys = c->keys;
    req.klens = c->klens;
    req.nums = c->nums;
    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_simple(&c->out, "OK");
}

static void cmd_dbsize(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_DBSIZE};
    struct cmd_res res;

    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_int(&c->out, (int64_t)res.n);
}

/* SCAN and KEYS collect the keys as bulks into c->tmp while counting them,
 * then put the array header in front. */
struct collect {
    struct resp_out o;
    size_t n;
};

static int collect_key(void *arg, const char *key, size_t klen, int64_t value)
{
    struct collect *k = arg;

    (void)value;
    resp_bulk(&k->o, key, klen);
    k->n++;
    return 0;
}

static void reply_keys(struct resp_conn *c, const struct collect *k)
{
    resp_array(&c->out, k->n);
    buf_add(c->out.b, c->tmp.p, c->tmp.len);
}

/* SCAN cursor [MATCH pattern] [COUNT count] [TYPE type] */
static void cmd_scan(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_SCAN};
    struct cmd_res res;
    struct collect k = {{&c->tmp, c->out.resp3}, 0};
    int other_type = 0;
    char cur[24];

    if (cmd_parse_u64(c->args.argv[1], c->args.argl[1], &req.cursor) != 0) {
        cmd_refuse(c->ctx, c->s, CMD_SCAN, CMD_ERR_ARGS);
        resp_error(&c->out, "ERR invalid cursor");
        return;
    }
    for (size_t j = 2; j < c->args.argc; j += 2) {
        int64_t count;
        if (j + 1 >= c->args.argc) {
            cmd_refuse(c->ctx, c->s, CMD_SCAN, CMD_ERR_ARGS);
            err_syntax(c);
            return;
        }
        if (resp_arg_is(c, j, "count")) {
            if (arg_i64(c, j + 1, CMD_SCAN, ERR_NOTINT, &count) != 0)
                return;
            if (count < 1) {
                cmd_refuse(c->ctx, c->s, CMD_SCAN, CMD_ERR_ARGS);
                err_syntax(c);
                return;
            }
            req.count = (size_t)count;
        } else if (resp_arg_is(c, j, "match")) {
            req.match = c->args.argv[j + 1];
            req.matchlen = c->args.argl[j + 1];
        } else if (resp_arg_is(c, j, "type")) {
            other_type = !resp_arg_is(c, j + 1, "string");
        } else {
            cmd_refuse(c->ctx, c->s, CMD_SCAN, CMD_ERR_ARGS);
            err_syntax(c);
            return;
        }
    }
    if (other_type) {
        /* Every counter is a string to Redis clients: no key has any other
         * type, so the whole scan is empty and done. */
        resp_array(&c->out, 2);
        resp_bulks(&c->out, "0");
        resp_array(&c->out, 0);
        return;
    }
    buf_clear(&c->tmp);
    res.item = collect_key;
    res.item_ctx = &k;
    if (run(c, &req, &res) >= CMD_ERR_NOTINT)
        return;
    resp_array(&c->out, 2);
    resp_bulk(&c->out, cur, u64_to_dec(res.n, cur));
    reply_keys(c, &k);
}

static void cmd_keys(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_KEYS};
    struct cmd_res res;
    struct collect k = {{&c->tmp, c->out.resp3}, 0};

    req.match = c->args.argv[1];
    req.matchlen = c->args.argl[1];
    buf_clear(&c->tmp);
    res.item = collect_key;
    res.item_ctx = &k;
    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        reply_keys(c, &k);
}

static void cmd_save(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_SAVE};
    struct cmd_res res;

    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_simple(&c->out, "OK");
}

/* BGSAVE [SCHEDULE]: tally cannot queue a snapshot behind a running one,
 * so SCHEDULE while one runs gets the same refusal as plain BGSAVE. */
static void cmd_bgsave(struct resp_conn *c)
{
    struct cmd_req req = {.op = CMD_BGSAVE};
    struct cmd_res res;

    if (c->args.argc > 2 ||
        (c->args.argc == 2 && !resp_arg_is(c, 1, "schedule"))) {
        err_syntax(c);
        return;
    }
    if (run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_simple(&c->out, "Background saving started");
}

/* ---- Connection commands ---------------------------------------------- */

int resp_auth(struct resp_conn *c, const char *user, size_t ulen,
              const char *pass, size_t plen)
{
    struct cmd_req req = {.op = CMD_AUTH, .pass = pass, .passlen = plen};
    struct cmd_res res;
    enum cmd_status st;

    /* tally has one user, Redis's "default". */
    if (user && !(ulen == 7 && memcmp(user, "default", 7) == 0)) {
        res.status = cmd_refuse(c->ctx, c->s, CMD_AUTH, CMD_ERR_WRONGPASS);
        resp_reply_status(c, &res);
        return -1;
    }
    st = cmd_exec(c->ctx, c->s, &req, &res);
    /* With no password set, Redis's default user is "nopass": naming it
     * succeeds whatever the password, only the one-argument form is an
     * error. */
    if (st == CMD_OK || (st == CMD_ERR_NOPASS && user))
        return 0;
    resp_reply_status(c, &res);
    return -1;
}

/* AUTH [username] password */
static void cmd_auth(struct resp_conn *c)
{
    struct resp_args *a = &c->args;

    if (a->argc > 3) {
        err_syntax(c);
        return;
    }
    if (a->argc == 3 ? resp_auth(c, a->argv[1], a->argl[1], a->argv[2],
                                 a->argl[2]) == 0
                     : resp_auth(c, NULL, 0, a->argv[1], a->argl[1]) == 0)
        resp_simple(&c->out, "OK");
}

static void cmd_ping(struct resp_conn *c)
{
    if (c->args.argc > 2)
        resp_err_arity(c, "ping");
    else if (resp_pubsub_ping(c))
        return;
    else if (c->args.argc == 2)
        resp_bulk(&c->out, c->args.argv[1], c->args.argl[1]);
    else
        resp_simple(&c->out, "PONG");
}

static void cmd_echo(struct resp_conn *c)
{
    resp_bulk(&c->out, c->args.argv[1], c->args.argl[1]);
}

static void cmd_quit(struct resp_conn *c)
{
    resp_simple(&c->out, "OK");
    c->flags |= PROTO_CLOSE;
}

/* SELECT index: tally has one database, Redis's 0. */
static void cmd_select(struct resp_conn *c)
{
    int64_t db;

    if (cmd_parse_i64(c->args.argv[1], c->args.argl[1], &db) != 0)
        resp_error(&c->out, ERR_NOTINT);
    else if (db != 0)
        resp_error(&c->out, "ERR DB index is out of range");
    else
        resp_simple(&c->out, "OK");
}

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: success has no reply, the
 * connection closes as the daemon stops (tally_close syncs everything, so
 * NOSAVE loses nothing either; SAVE also writes a snapshot first).  While
 * another client's script is past busy-reply-threshold, as in Redis 7
 * (shutdownCommand): only NOSAVE goes ahead, stopping the script even if it
 * has written and undoing its writes, which never reached the log (Redis
 * exits before propagating them); anything else is -BUSY, after the syntax
 * check. */
static void cmd_shutdown(struct resp_conn *c)
{
    int save = 0, nosave = 0;

    for (size_t j = 1; j < c->args.argc; j++) {
        if (resp_arg_is(c, j, "save")) {
            save = 1;
        } else if (resp_arg_is(c, j, "nosave")) {
            nosave = 1;
        } else if (resp_arg_is(c, j, "now") || resp_arg_is(c, j, "force")) {
            continue;
        } else if (resp_arg_is(c, j, "abort") && c->args.argc == 2) {
            resp_error(&c->out, "ERR No shutdown in progress.");
            return;
        } else {
            err_syntax(c);
            return;
        }
    }
    if (save && nosave) {
        err_syntax(c);
        return;
    }
    if (resp_script_shutdown(c, nosave))
        return;
    if (save) {
        struct cmd_req req = {.op = CMD_SAVE};
        struct cmd_res res;
        if (cmd_exec(c->ctx, c->s, &req, &res) != CMD_OK) {
            resp_error(&c->out, "ERR Errors trying to SHUTDOWN. Check logs.");
            return;
        }
    }
    c->flags |= PROTO_SHUTDOWN | PROTO_CLOSE;
}

/* ---- Shared with resp_expire.c (resp_int.h) ---------------------------- */

enum cmd_status resp_run(struct resp_conn *c, const struct cmd_req *req,
                         struct cmd_res *res)
{
    return run(c, req, res);
}

int resp_arg_i64(struct resp_conn *c, size_t i, enum cmd_op op,
                 const char *errtext, int64_t *v)
{
    return arg_i64(c, i, op, errtext, v);
}

void resp_single_key(struct resp_conn *c, struct cmd_req *req,
                     enum cmd_op op)
{
    single_key(c, req, op);
}

int resp_take_once(struct resp_conn *c, struct cmd_req *req)
{
    return take_once(c, req);
}

void resp_err_syntax(struct resp_conn *c)
{
    err_syntax(c);
}

/* ---- The table and dispatch ------------------------------------------- */

/* RESP_AHEAD marks what proto_ops.ahead may run ahead.  The .ONCE forms
 * are not one call: an id may make a second. */
const struct resp_command resp_commands[] = {
    {"get", 2, RESP_AHEAD(CMD_GET, 2), cmd_get, "readonly fast", 1, 1, 1},
    {"set", -3, RESP_AHEAD(CMD_SET, 3), resp_cmd_set, "write denyoom", 1, 1, 1},
    {"getset", 3, 0, resp_cmd_set, "write denyoom fast", 1, 1, 1},
    {"setex", 4, 0, resp_cmd_setex, "write denyoom", 1, 1, 1},
    {"psetex", 4, 0, resp_cmd_setex, "write denyoom", 1, 1, 1},
    {"getex", -2, 0, resp_cmd_getex, "write fast", 1, 1, 1},
    {"expire", -3, 0, resp_cmd_expire, "write fast", 1, 1, 1},
    {"pexpire", -3, 0, resp_cmd_expire, "write fast", 1, 1, 1},
    {"expireat", -3, 0, resp_cmd_expire, "write fast", 1, 1, 1},
    {"pexpireat", -3, 0, resp_cmd_expire, "write fast", 1, 1, 1},
    {"ttl", 2, RESP_AHEAD(CMD_TTL, 2), resp_cmd_ttl, "readonly fast", 1, 1, 1},
    {"pttl", 2, RESP_AHEAD(CMD_TTL, 2), resp_cmd_ttl, "readonly fast", 1, 1, 1},
    {"expiretime", 2, 0, resp_cmd_ttl, "readonly fast", 1, 1, 1},
    {"pexpiretime", 2, 0, resp_cmd_ttl, "readonly fast", 1, 1, 1},
    {"persist", 2, 0, resp_cmd_persist, "write fast", 1, 1, 1},
    {"getdel", 2, 0, cmd_get, "write fast", 1, 1, 1},
    {"incr", 2, RESP_AHEAD(CMD_INCRBY, 2),
     cmd_incr, "write denyoom fast", 1, 1, 1},
    {"decr", 2, RESP_AHEAD(CMD_INCRBY, 2),
     cmd_incr, "write denyoom fast", 1, 1, 1},
    {"incrby", 3, RESP_AHEAD(CMD_INCRBY, 3),
     cmd_incr, "write denyoom fast", 1, 1, 1},
    {"decrby", 3, RESP_AHEAD(CMD_INCRBY, 3),
     cmd_incr, "write denyoom fast", 1, 1, 1},
    {"del", -2, RESP_AHEAD(CMD_DEL, 0), cmd_del, "write", 1, -1, 1},
    {"exists", -2, RESP_AHEAD(CMD_EXISTS, 0),
     cmd_del, "readonly fast", 1, -1, 1},
    {"mget", -2, RESP_AHEAD(CMD_MGET, 0), cmd_mget, "readonly fast", 1, -1, 1},
    {"mset", -3, 0, cmd_mset, "write denyoom", 1, -1, 2},
    {"dbsize", 1, 0, cmd_dbsize, "readonly fast", 0, 0, 0},
    {"scan", -2, 0, cmd_scan, "readonly", 0, 0, 0},
    {"keys", 2, 0, cmd_keys, "readonly", 0, 0, 0},
    {"save", 1, RESP_NOMULTI, cmd_save, "admin noscript", 0, 0, 0},
    {"bgsave", -1, 0, cmd_bgsave, "admin noscript", 0, 0, 0},
    {"shutdown", -1, RESP_NOMULTI, cmd_shutdown,
     "admin noscript loading stale allow_busy", 0, 0, 0},
    /* tally's own: an idempotency id after the key (and number), then
     * the expiry options. */
    {"incrby.once", -4, 0, cmd_incr, "write denyoom fast", 1, 1, 1},
    {"decrby.once", -4, 0, cmd_incr, "write denyoom fast", 1, 1, 1},
    {"set.once", -4, 0, resp_cmd_set, "write denyoom", 1, 1, 1},
    {"del.once", 3, 0, cmd_del, "write fast", 1, 1, 1},
    {"getdel.once", 3, 0, cmd_get, "write fast", 1, 1, 1},
    {"auth", -2, RESP_NOAUTH, cmd_auth,
     "noscript loading stale fast no_auth", 0, 0, 0},
    {"hello", -1, RESP_NOAUTH, resp_cmd_hello,
     "noscript loading stale fast no_auth", 0, 0, 0},
    {"quit", -1, RESP_NOAUTH | RESP_NOQUEUE, cmd_quit,
     "noscript loading stale fast no_auth", 0, 0, 0},
    {"ping", -1, 0, cmd_ping, "fast", 0, 0, 0},
    {"echo", 2, 0, cmd_echo, "fast", 0, 0, 0},
    {"select", 2, 0, cmd_select, "loading stale fast", 0, 0, 0},
    {"client", -2, 0, resp_cmd_client, "noscript loading stale", 0, 0, 0},
    {"command", -1, 0, resp_cmd_command, "loading stale", 0, 0, 0},
    {"info", -1, 0, resp_cmd_info, "loading stale", 0, 0, 0},
    {"subscribe", -2, 0, resp_cmd_subscribe,
     "pubsub noscript loading stale", 0, 0, 0},
    {"psubscribe", -2, 0, resp_cmd_subscribe,
     "pubsub noscript loading stale", 0, 0, 0},
    {"unsubscribe", -1, 0, resp_cmd_subscribe,
     "pubsub noscript loading stale", 0, 0, 0},
    {"punsubscribe", -1, 0, resp_cmd_subscribe,
     "pubsub noscript loading stale", 0, 0, 0},
    {"publish", 3, 0, resp_cmd_publish, "pubsub loading stale fast", 0, 0, 0},
    {"pubsub", -2, 0, resp_cmd_pubsub, "pubsub loading stale", 0, 0, 0},
    {"config", -2, 0, resp_cmd_config, "admin noscript loading stale", 0, 0,
     0},
    /* Transactions (resp_multi.c). */
    {"multi", 1, RESP_NOQUEUE, resp_cmd_multi,
     "noscript loading stale fast allow_busy", 0, 0, 0},
    {"exec", 1, RESP_NOQUEUE, resp_cmd_exec,
     "noscript loading stale skip_slowlog", 0, 0, 0},
    {"discard", 1, RESP_NOQUEUE, resp_cmd_discard,
     "noscript loading stale fast allow_busy", 0, 0, 0},
    {"watch", -2, RESP_NOQUEUE, resp_cmd_watch,
     "noscript loading stale fast allow_busy", 1, -1, 1},
    {"unwatch", 1, 0, resp_cmd_unwatch,
     "noscript loading stale fast allow_busy", 0, 0, 0},
    /* Scripts (resp_script.c). */
    {"eval", -3, 0, resp_cmd_eval, "noscript stale skip_monitor movablekeys",
     0, 0, 0},
    {"evalsha", -3, 0, resp_cmd_eval,
     "noscript stale skip_monitor movablekeys", 0, 0, 0},
    {"eval_ro", -3, 0, resp_cmd_eval,
     "readonly noscript stale skip_monitor movablekeys", 0, 0, 0},
    {"evalsha_ro", -3, 0, resp_cmd_eval,
     "readonly noscript stale skip_monitor movablekeys", 0, 0, 0},
    {"script", -2, 0, resp_cmd_script, "noscript", 0, 0, 0},
    {"function", -2, 0, resp_cmd_function, "noscript", 0, 0, 0},
    /* Keys and server (resp_keys.c). */
    {"flushdb", -1, 0, resp_cmd_flush, "write", 0, 0, 0},
    {"flushall", -1, 0, resp_cmd_flush, "write", 0, 0, 0},
    {"type", 2, 0, resp_cmd_type, "readonly fast", 1, 1, 1},
    {"unlink", -2, RESP_AHEAD(CMD_DEL, 0), cmd_del, "write fast", 1, -1, 1},
    {"touch", -2, 0, resp_cmd_touch, "readonly fast", 1, -1, 1},
    {"rename", 3, 0, resp_cmd_rename, "write", 1, 2, 1},
    {"renamenx", 3, 0, resp_cmd_rename, "write fast", 1, 2, 1},
    {"copy", -3, 0, resp_cmd_copy, "write denyoom", 1, 2, 1},
    {"randomkey", 1, 0, resp_cmd_randomkey, "readonly", 0, 0, 0},
    {"object", -2, 0, resp_cmd_object, "readonly", 2, 2, 1},
    {"memory", -2, 0, resp_cmd_memory, "readonly", 0, 0, 0},
    {"wait", 3, 0, resp_cmd_wait, "", 0, 0, 0},
    {"lastsave", 1, 0, resp_cmd_lastsave, "loading stale fast", 0, 0, 0},
    {"time", 1, 0, resp_cmd_time, "loading stale fast", 0, 0, 0},
    {"incrbyfloat", 3, 0, resp_cmd_not_integer, "write denyoom fast", 1, 1,
     1},
    {"append", 3, 0, resp_cmd_not_integer, "write denyoom", 1, 1, 1},
};
const size_t resp_ncommands = sizeof resp_commands / sizeof resp_commands[0];

/* ---- The command index ------------------------------------------------ */

/* Every request looks its name up, so the table is indexed, as Redis's
 * command dict is: open addressing over the entries' positions (+1; 0 is
 * empty), at most a quarter full, keyed by FNV-1a of the name with each
 * byte | 0x20.  That folds a letter's case (and merges a few other bytes,
 * which costs only a compare), so names strncasecmp finds equal hash
 * equal.  The linear scan it replaced cost INCR about 200 instructions
 * (callgrind), and each command further down the table more. */
#define RESP_INDEX_SLOTS 1024

_Static_assert(sizeof resp_commands / sizeof resp_commands[0] <=
                   RESP_INDEX_SLOTS / 4,
               "grow RESP_INDEX_SLOTS with the command table");

struct resp_front {
    uint16_t slot[RESP_INDEX_SLOTS];
    size_t longest; /* no command's name is longer */
};

static size_t name_slot(const char *name, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ ((unsigned char)name[i] | 0x20)) * 16777619u;
    return h & (RESP_INDEX_SLOTS - 1);
}

struct resp_front *resp_front_new(void)
{
    struct resp_front *f = xcalloc(1, sizeof *f);

    for (size_t i = 0; i < resp_ncommands; i++) {
        size_t n = strlen(resp_commands[i].name);
        size_t k = name_slot(resp_commands[i].name, n);
        while (f->slot[k])
            k = (k + 1) & (RESP_INDEX_SLOTS - 1);
        f->slot[k] = (uint16_t)(i + 1);
        if (n > f->longest)
            f->longest = n;
    }
    return f;
}

void resp_front_free(struct resp_front *f)
{
    free(f);
}

const struct resp_command *resp_lookup(const struct resp_front *f,
                                       const char *name, size_t n)
{
    /* A name longer than every command's is never hashed: it may be a
     * bulk string of any size. */
    if (n == 0 || n > f->longest)
        return NULL;
    for (size_t k = name_slot(name, n); f->slot[k];
         k = (k + 1) & (RESP_INDEX_SLOTS - 1)) {
        const char *cn = resp_commands[f->slot[k] - 1].name;
        if (same_first(cn, name) && strlen(cn) == n &&
            strncasecmp(cn, name, n) == 0)
            return &resp_commands[f->slot[k] - 1];
    }
    return NULL;
}

/* Redis 7's wording: the name and the first arguments, quoted, up to about
 * 128 bytes of them. */
static void err_unknown(struct resp_conn *c)
{
    struct buf args = BUF_INIT;
    const struct resp_args *a = &c->args;

    for (size_t i = 1; i < a->argc && args.len < 128; i++) {
        size_t room = 128 - args.len;
        buf_printf(&args, "'%.*s' ",
                   (int)(a->argl[i] < room ? a->argl[i] : room), a->argv[i]);
    }
    resp_error(&c->out, "ERR unknown command '%.*s', with args beginning "
                        "with: %s",
               (int)(a->argl[0] < 128 ? a->argl[0] : 128), a->argv[0],
               args.len ? args.p : "");
    buf_free(&args);
}

/* Redis's order: unknown command, arity, NOAUTH; inside MULTI each of
 * those errors also aborts the coming EXEC, and anything else is queued. */
void resp_dispatch(struct resp_conn *c)
{
    const struct resp_command *cmd =
        resp_lookup(c->front, c->args.argv[0], c->args.argl[0]);
    int argc = (int)c->args.argc;

    if (!cmd) {
        err_unknown(c);
        resp_multi_flag(c);
        return;
    }
    if ((cmd->arity > 0 && argc != cmd->arity) ||
        (cmd->arity < 0 && argc < -cmd->arity)) {
        if (!resp_multi_exec_refused(c, cmd))
            resp_err_arity(c, cmd->name);
        resp_multi_flag(c);
        return;
    }
    if (!(cmd->flags & RESP_NOAUTH) && !cmd_authorized(c->ctx, c->s)) {
        resp_error(&c->out, "NOAUTH Authentication required.");
        resp_multi_flag(c);
        return;
    }
    c->s->last_cmd = cmd->name;
    c->s->last_sub = NULL;
    if (resp_pubsub_allowed(c, cmd) != 0 || resp_script_busy(c, cmd) ||
        resp_multi_intercept(c, cmd))
        return;
    cmd->fn(c);
}

static void *conn_new(void *front, struct cmd_ctx *ctx, struct cmd_session *s,
                      const struct proto_limits *lim, const char *peer)
{
    struct resp_conn *c = xcalloc(1, sizeof *c);
    size_t n = lim->max_args ? lim->max_args : 1;

    c->front = front;
    c->ctx = ctx;
    c->s = s;
    c->lim = *lim;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    c->created_unix = (int64_t)time(NULL);
    resp_session_sync(c);
    c->keys = xcalloc(n, sizeof *c->keys);
    c->klens = xcalloc(n, sizeof *c->klens);
    c->nums = xcalloc(n, sizeof *c->nums);
    c->founds = xcalloc(n, sizeof *c->founds);
    return c;
}

static void conn_free(void *conn)
{
    struct resp_conn *c = conn;

    if (!c)
        return;
    cmd_session_end(c->ctx, c->s);
    resp_pubsub_free(c);
    resp_args_free(&c->args);
    buf_free(&c->name);
    buf_free(&c->libname);
    buf_free(&c->libver);
    buf_free(&c->tmp);
    free(c->keys);
    free(c->klens);
    free(c->nums);
    free(c->founds);
    free(c);
}

/* Is this request a line of HTTP, sent to the RESP port by a web page
 * (cross-protocol scripting)?  A browser's POST carries a body the page
 * chose, and without this check every line of it would run as a command.
 * Redis treats "POST" and "Host:" as command names that end the connection
 * (server.c, processCommand); tally does the same, before authentication,
 * since an HTTP request has no business on this port at all. */
static int looks_like_http(const struct resp_conn *c)
{
    return c->args.argc > 0 &&
           (resp_arg_is(c, 0, "post") || resp_arg_is(c, 0, "host:"));
}

static size_t handle(void *conn, const char *in, size_t len,
                     struct proto_out *out)
{
    struct resp_conn *c = conn;
    char err[RESP_ERRMAX];
    ssize_t n;

    c->out.b = out->buf;
    c->ticket = 0;
    c->flags = 0;
    n = resp_parse(in, len, &c->lim, cmd_authorized(c->ctx, c->s), &c->args,
                   err);
    if (n == 0)
        return 0;
    if (n < 0) {
        resp_error(&c->out, "%s", err);
        out->flags |= PROTO_CLOSE;
        return len;
    }
    if (looks_like_http(c)) {
        /* Hang up without a reply; the rest of the buffer must not run. */
        out->flags |= PROTO_ATTACK | PROTO_CLOSE;
        return len;
    }
    if (c->args.argc > 0)
        resp_dispatch(c);
    if (c->ticket > out->ticket)
        out->ticket = c->ticket;
    out->flags |= c->flags;
    return (size_t)n;
}

static void set_push(void *conn, const struct proto_push *push)
{
    ((struct resp_conn *)conn)->push = *push;
}

static size_t ahead(void *conn, const char *in, size_t len)
{
    struct resp_conn *c = conn;
    char err[RESP_ERRMAX];
    const struct resp_args *a = &c->args;
    ssize_t n;

    if (!cmd_authorized(c->ctx, c->s))
        return 0;
    n = resp_parse(in, len, &c->lim, 1, &c->args, err);
    if (n <= 0 || a->argc < 2)
        return 0;
    const struct resp_command *cmd =
        resp_lookup(c->front, a->argv[0], a->argl[0]);
    if (!cmd || !(cmd->flags & RESP_AHEADF) ||
        (RESP_AHEAD_ARGC(cmd->flags) && a->argc != RESP_AHEAD_ARGC(cmd->flags)))
        return 0;
    return cmd_ahead_ok(c->ctx, RESP_AHEAD_OP(cmd->flags)) ? (size_t)n : 0;
}

const struct proto_ops resp_ops = {"resp", conn_new, conn_free, handle,
                                   set_push, ahead};
