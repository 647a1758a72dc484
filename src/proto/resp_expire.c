/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_expire.c - the RESP commands that set, show or take an expiry: SET
 * (and GETSET, SET.ONCE) with EX/PX/EXAT/PXAT/KEEPTTL, the expiry options
 * of INCRBY.ONCE and DECRBY.ONCE, SETEX, PSETEX, GETEX, EXPIRE, PEXPIRE,
 * EXPIREAT, PEXPIREAT with NX/XX/GT/LT, TTL, PTTL, EXPIRETIME, PEXPIRETIME
 * and PERSIST.  Syntax, argument order and error
 * texts are Redis 7's (t_string.c's option parser and expire conversion,
 * expire.c's EXPIRE family); what an expiry means is the command layer's
 * (cmd.h "Expiry"), which resolves relative times on the engine's clock.
 * Dispatch, the table and the other counter commands are in resp.c.
 *
 * Known difference: tally keeps expiries up to TALLY_EXPIRE_MAX (Unix ms
 * 2^48-1, the year 10889); a later one, which Redis accepts, is refused
 * with Redis's "invalid expire time" text.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "resp_int.h"

/* How an expiry argument is written. */
enum xunit { X_NONE = 0, X_EX, X_PX, X_EXAT, X_PXAT };

void resp_err_expire(struct resp_conn *c)
{
    char name[32];
    size_t n = c->args.argl[0] < sizeof name - 1 ? c->args.argl[0]
                                                 : sizeof name - 1;

    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)c->args.argv[0][i]);
    name[n] = 0;
    resp_error(&c->out, "ERR invalid expire time in '%s' command", name);
}

/* Refuse an expiry argument (counted against op). */
static int bad_expire(struct resp_conn *c, enum cmd_op op)
{
    cmd_refuse(c->ctx, c->s, op, CMD_ERR_EXPIRE);
    resp_err_expire(c);
    return -1;
}

/* Argument i is the expiry of SET, SETEX, PSETEX or GETEX, written as u:
 * a positive integer (seconds or ms, relative or absolute), as Redis's
 * getExpireMillisecondsOrReply wants it.  Puts it into req (CMD_F_PX or
 * CMD_F_PXAT, ms).  Returns 0, or -1 with the error answered. */
static int expiry_arg(struct resp_conn *c, size_t i, enum xunit u,
                      enum cmd_op op, struct cmd_req *req)
{
    int64_t v;
    int seconds = u == X_EX || u == X_EXAT;

    if (resp_arg_i64(c, i, op, ERR_NOTINT, &v) != 0)
        return -1;
    if (v <= 0 || (seconds && v > INT64_MAX / 1000))
        return bad_expire(c, op);
    req->expire = seconds ? v * 1000 : v;
    req->flags |= u == X_EX || u == X_PX ? CMD_F_PX : CMD_F_PXAT;
    return 0;
}

/* Redis's parseExtendedStringArgumentsOrReply from argument `from` on, for
 * the words `allow` names: SET takes NX, XX, GET, KEEPTTL and one of
 * EX/PX/EXAT/PXAT (a repeat of the same one wins); GETEX takes PERSIST or
 * one of them; SET.ONCE KEEPTTL or one; INCRBY.ONCE NX and one.  Sets the
 * flags in req and *u, *xi (the unit and argument index of the expiry).
 * Returns 0, or -1 with "ERR syntax error" answered. */
static int string_opts(struct resp_conn *c, size_t from, unsigned allow,
                       enum cmd_op op, struct cmd_req *req, enum xunit *u,
                       size_t *xi)
{
    static const char *const units[] = {NULL, "ex", "px", "exat", "pxat"};
    unsigned *f = &req->flags;

    *u = X_NONE;
    *xi = 0;
    for (size_t j = from; j < c->args.argc; j++) {
        int more = j + 1 < c->args.argc, which = 0;
        for (int k = X_EX; k <= X_PXAT; k++)
            if (resp_arg_is(c, j, units[k]))
                which = k;
        if ((allow & CMD_F_NX) && resp_arg_is(c, j, "nx") &&
            !(*f & CMD_F_XX)) {
            *f |= CMD_F_NX;
        } else if ((allow & CMD_F_XX) && resp_arg_is(c, j, "xx") &&
                   !(*f & CMD_F_NX)) {
            *f |= CMD_F_XX;
        } else if ((allow & CMD_F_GET) && resp_arg_is(c, j, "get")) {
            *f |= CMD_F_GET;
        } else if ((allow & CMD_F_KEEPTTL) && resp_arg_is(c, j, "keepttl") &&
                   *u == X_NONE) {
            *f |= CMD_F_KEEPTTL;
        } else if ((allow & CMD_F_PERSIST) && resp_arg_is(c, j, "persist") &&
                   *u == X_NONE) {
            *f |= CMD_F_PERSIST;
        } else if (which && more && !(*f & (CMD_F_KEEPTTL | CMD_F_PERSIST)) &&
                   (*u == X_NONE || *u == (enum xunit)which)) {
            *u = (enum xunit)which;
            *xi = ++j;
        } else {
            cmd_refuse(c->ctx, c->s, op, CMD_ERR_ARGS);
            resp_err_syntax(c);
            return -1;
        }
    }
    return 0;
}

/* INCRBY.ONCE / DECRBY.ONCE key n id [EX s|PX ms|EXAT t|PXAT t] [NX]: the
 * expiry this increment sets, with NX only if it creates the counter
 * (CMD_F_TTL_IFNEW; NX without an expiry is a syntax error).  Returns 0,
 * or -1 with the error answered. */
int resp_once_ttl(struct resp_conn *c, struct cmd_req *req)
{
    enum xunit u;
    size_t xi;

    if (string_opts(c, 4, CMD_F_NX, CMD_INCRBY, req, &u, &xi) != 0)
        return -1;
    if ((req->flags & CMD_F_NX) && u == X_NONE) {
        cmd_refuse(c->ctx, c->s, CMD_INCRBY, CMD_ERR_ARGS);
        resp_err_syntax(c);
        return -1;
    }
    if (req->flags & CMD_F_NX)
        req->flags = (req->flags & ~(unsigned)CMD_F_NX) | CMD_F_TTL_IFNEW;
    return u != X_NONE ? expiry_arg(c, xi, u, CMD_INCRBY, req) : 0;
}

/* The value res shows as a bulk decimal, or null. */
static void reply_value(struct resp_conn *c, const struct cmd_res *res)
{
    if (res->found)
        resp_bulk_i64(&c->out, res->value);
    else
        resp_null(&c->out);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]; GETSET
 * is SET ... GET; SET.ONCE key value id [EX|PX|EXAT|PXAT|KEEPTTL] takes
 * only the expiry.  Redis's order: options, then the expiry, then (tally's
 * own) the integer value. */
void resp_cmd_set(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    enum xunit u;
    size_t xi;

    resp_single_key(c, &req, CMD_SET);
    if (resp_arg_is(c, 0, "getset"))
        req.flags |= CMD_F_GET;
    int once = resp_take_once(c, &req);
    if (string_opts(c, once ? 4 : 3,
                    once ? CMD_F_KEEPTTL
                         : CMD_F_NX | CMD_F_XX | CMD_F_GET | CMD_F_KEEPTTL,
                    CMD_SET, &req, &u, &xi) != 0)
        return;
    if (u != X_NONE && expiry_arg(c, xi, u, CMD_SET, &req) != 0)
        return;
    if (resp_arg_i64(c, 2, CMD_SET, ERR_NOTINT_VALUE, &req.num) != 0)
        return;
    enum cmd_status st = resp_run(c, &req, &res);
    if (st >= CMD_ERR_NOTINT)
        return;
    if (req.flags & CMD_F_GET)
        reply_value(c, &res);
    else if (st == CMD_OK)
        resp_simple(&c->out, "OK");
    else
        resp_null(&c->out);
}


/* SETEX key seconds value, PSETEX key ms value. */
void resp_cmd_setex(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    int ms = c->args.argv[0][0] == 'p' || c->args.argv[0][0] == 'P';

    resp_single_key(c, &req, CMD_SET);
    if (expiry_arg(c, 2, ms ? X_PX : X_EX, CMD_SET, &req) != 0)
        return;
    if (resp_arg_i64(c, 3, CMD_SET, ERR_NOTINT_VALUE, &req.num) != 0)
        return;
    if (resp_run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_simple(&c->out, "OK");
}

/* GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST].  As in Redis, a missing
 * key answers null before its expiry argument is looked at. */
void resp_cmd_getex(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    enum xunit u;
    size_t xi;

    resp_single_key(c, &req, CMD_GETEX);
    if (string_opts(c, 2, CMD_F_PERSIST, CMD_GETEX, &req, &u, &xi) != 0)
        return;
    if (u != X_NONE) {
        struct cmd_req get = req;
        get.op = CMD_GET;
        get.flags = 0;
        enum cmd_status st = resp_run(c, &get, &res);
        if (st >= CMD_ERR_NOTINT)
            return;
        if (st == CMD_NOTFOUND) {
            resp_null(&c->out);
            return;
        }
        if (expiry_arg(c, xi, u, CMD_GETEX, &req) != 0)
            return;
    }
    if (resp_run(c, &req, &res) < CMD_ERR_NOTINT)
        reply_value(c, &res);
}

/* EXPIRE key seconds [NX|XX|GT|LT]..., PEXPIRE (ms), EXPIREAT (Unix s),
 * PEXPIREAT (Unix ms), in expire.c's order: the options, then the number,
 * then its range (seconds that overflow as ms, a relative time that
 * overflows from now), then the key. */
void resp_cmd_expire(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    const char *name = c->args.argv[0];
    int ms = name[0] == 'p' || name[0] == 'P';
    int at = c->args.argl[0] > 6 + (size_t)ms; /* "expireat", "pexpireat" */
    int64_t v;

    resp_single_key(c, &req, CMD_EXPIRE);
    for (size_t j = 3; j < c->args.argc; j++) {
        if (resp_arg_is(c, j, "nx")) {
            req.flags |= CMD_F_NX;
        } else if (resp_arg_is(c, j, "xx")) {
            req.flags |= CMD_F_XX;
        } else if (resp_arg_is(c, j, "gt")) {
            req.flags |= CMD_F_GT;
        } else if (resp_arg_is(c, j, "lt")) {
            req.flags |= CMD_F_LT;
        } else {
            cmd_refuse(c->ctx, c->s, CMD_EXPIRE, CMD_ERR_ARGS);
            resp_error(&c->out, "ERR Unsupported option %.*s",
                       (int)c->args.argl[j], c->args.argv[j]);
            return;
        }
    }
    if ((req.flags & CMD_F_NX) &&
        (req.flags & (CMD_F_XX | CMD_F_GT | CMD_F_LT))) {
        cmd_refuse(c->ctx, c->s, CMD_EXPIRE, CMD_ERR_ARGS);
        resp_error(&c->out, "ERR NX and XX, GT or LT options at the same "
                            "time are not compatible");
        return;
    }
    if ((req.flags & CMD_F_GT) && (req.flags & CMD_F_LT)) {
        cmd_refuse(c->ctx, c->s, CMD_EXPIRE, CMD_ERR_ARGS);
        resp_error(&c->out, "ERR GT and LT options at the same time are not "
                            "compatible");
        return;
    }
    if (resp_arg_i64(c, 2, CMD_EXPIRE, ERR_NOTINT, &v) != 0)
        return;
    if (!ms && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000)) {
        bad_expire(c, CMD_EXPIRE);
        return;
    }
    req.expire = ms ? v : v * 1000;
    req.flags |= at ? CMD_F_PXAT : CMD_F_PX;
    if (resp_run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_int(&c->out, (int64_t)res.n);
}

/* TTL and PTTL (time left), EXPIRETIME and PEXPIRETIME (Unix time): -2 for
 * a missing key, -1 for no expiry; seconds are rounded as Redis does. */
void resp_cmd_ttl(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;
    const char *name = c->args.argv[0];
    int ms = name[0] == 'p' || name[0] == 'P';
    int abs = c->args.argl[0] > 3 + (size_t)ms; /* "expiretime" */
    int64_t v;

    resp_single_key(c, &req, CMD_TTL);
    enum cmd_status st = resp_run(c, &req, &res);
    if (st >= CMD_ERR_NOTINT)
        return;
    if (st == CMD_NOTFOUND) {
        resp_int(&c->out, -2);
        return;
    }
    if (!res.expire_at) {
        resp_int(&c->out, -1);
        return;
    }
    v = abs ? res.expire_at : res.ttl_ms;
    if (v < 0)
        v = 0;
    resp_int(&c->out, ms ? v : (v + 500) / 1000);
}

void resp_cmd_persist(struct resp_conn *c)
{
    struct cmd_req req;
    struct cmd_res res;

    resp_single_key(c, &req, CMD_PERSIST);
    if (resp_run(c, &req, &res) < CMD_ERR_NOTINT)
        resp_int(&c->out, (int64_t)res.n);
}
