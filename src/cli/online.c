/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * online.c - the commands that talk to a running tallyd over the Redis
 * protocol, with hiredis: get, incr, decr, set, del, list, info, ping.
 * set and incr take a trailing --ttl: SET ... PX, and INCRBY pipelined with
 * PEXPIRE ... NX (the fixed window).
 *
 * Each command opens one blocking connection (AUTH first when a password is
 * known), sends its requests with redisCommandArgv so that keys go over the
 * wire byte for byte as they came in argv, and maps the replies onto output
 * and an exit code (cli.h): an error reply, a lost connection or a reply of
 * an unexpected type is exit 2 with the message on stderr.  Printing keys is
 * out.c's job.  With --tls the same requests go through tls.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "cli.h"

/* Keys per MGET while listing: the server takes at most 1024 arguments per
 * request (PROTO_LIMITS_DEFAULT in src/proto/proto.h). */
#define LIST_MGET_MAX 1000
/* SCAN's COUNT hint while listing. */
#define LIST_SCAN_COUNT "1000"

/* One connection: hiredis's context, and TLS over its socket with --tls. */
struct conn {
    redisContext *rc;
    struct ssl_st *ssl;        /* NULL: plain */
};

static void conn_close(struct conn *c)
{
    cli_tls_close(c->ssl);
    redisFree(c->rc);
    free(c);
}

/* Send a command, over TLS or not; NULL with c->rc->err set on failure. */
static redisReply *conn_send(struct conn *c, int argc, const char **argv,
                             const size_t *lens)
{
    return c->ssl ? cli_tls_call(c->ssl, c->rc, argc, argv, lens)
                  : redisCommandArgv(c->rc, argc, argv, lens);
}

/* Connect to the server named by o and authenticate.  Returns the
 * connection (caller frees with conn_close), or NULL after printing why. */
static struct conn *conn_open(const struct cli_opts *o)
{
    struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    struct conn *c = xcalloc(1, sizeof *c);
    c->rc = o->timeout_ms ? redisConnectWithTimeout(o->host, o->port, tv)
                          : redisConnect(o->host, o->port);

    if (!c->rc) {
        cli_error("cannot connect to %s:%d: out of memory", o->host, o->port);
        free(c);
        return NULL;
    }
    if (c->rc->err) {
        cli_error("cannot connect to %s:%d: %s", o->host, o->port, c->rc->errstr);
        goto fail;
    }
    if (o->timeout_ms && redisSetTimeout(c->rc, tv) != REDIS_OK) {
        cli_error("cannot set the reply timeout: %s", c->rc->errstr);
        goto fail;
    }
    if (o->tls && !(c->ssl = cli_tls_open(c->rc, o)))
        goto fail;
    if (o->password) {
        const char *argv[] = {"AUTH", o->password};
        redisReply *r = conn_send(c, 2, argv, NULL);
        if (!r) {
            cli_error("%s:%d: %s", o->host, o->port, c->rc->errstr);
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            cli_error("authentication failed: %s", r->str);
            freeReplyObject(r);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    conn_close(c);
    return NULL;
}

/* Send one command of argc arguments (argv[i] has lens[i] bytes, or strlen
 * when lens is NULL) and return its reply (caller frees with
 * freeReplyObject).  An error reply or a failed connection is printed and
 * gives NULL. */
static redisReply *conn_call(struct conn *c, int argc, const char **argv,
                             const size_t *lens)
{
    redisReply *r = conn_send(c, argc, argv, lens);

    if (!r) {
        /* hiredis reports a read that hit SO_RCVTIMEO as a plain EAGAIN. */
        if (c->rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
            cli_error("%s: no reply from the server in time (see --timeout)",
                      argv[0]);
        else
            cli_error("%s: %s", argv[0],
                      c->rc->errstr[0] ? c->rc->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        cli_error("server error: %.*s", (int)r->len, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Read a counter's value out of a reply: a bulk string holding a decimal
 * (GET, MGET) or an integer (INCRBY).  Returns 0, or -1 after a message. */
static int reply_i64(const redisReply *r, int64_t *v)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING && strlen(r->str) == r->len &&
        cli_parse_i64(r->str, v) == 0)
        return 0;
    cli_error("unexpected reply from the server (type %d, not a counter value)",
              r->type);
    return -1;
}

/* Run one command on a fresh connection; *rp gets the reply (caller frees
 * with freeReplyObject).  A reply of another type than want (a
 * REDIS_REPLY_* type, or -1 for any) is an error: *rp is then NULL and
 * CLI_EXIT_ERROR returned after a message. */
static int call_once(const struct cli_opts *o, int argc, const char **argv,
                     int want, redisReply **rp)
{
    struct conn *c = conn_open(o);

    *rp = NULL;
    if (!c)
        return CLI_EXIT_ERROR;
    redisReply *r = conn_call(c, argc, argv, NULL);
    conn_close(c);
    if (!r)
        return CLI_EXIT_ERROR;
    if (want >= 0 && r->type != want) {
        int type = r->type;
        freeReplyObject(r);
        return cli_error("%s: unexpected reply from the server (type %d)",
                         argv[0], type);
    }
    *rp = r;
    return CLI_EXIT_OK;
}

/* Print {"key": key, "value": value} (takes ownership of value). */
static int print_json_value(const char *key, json_t *value)
{
    json_t *obj = json_object();

    out_json_key(obj, key, strlen(key));
    json_object_set_new(obj, "value", value);
    return out_json(obj) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* Print a key and its value as `get` and `incr` do. */
static int print_value(const struct cli_opts *o, const char *key, int64_t v)
{
    if (o->json)
        return print_json_value(key, json_integer(v));
    printf("%lld\n", (long long)v);
    return CLI_EXIT_OK;
}

/* Say on stderr that key does not exist; returns CLI_EXIT_NOTFOUND. */
static int not_found(const char *key)
{
    struct buf b = BUF_INIT;

    out_key_human(&b, key, strlen(key));
    cli_error("%s: not found", b.p);
    buf_free(&b);
    return CLI_EXIT_NOTFOUND;
}

int cli_get(const struct cli_opts *o, int argc, char **argv)
{
    redisReply *r;
    int64_t v;
    int rc;

    if (argc != 2)
        return cli_usage_error(cli_find("get"));
    const char *args[] = {"GET", argv[1]};
    if ((rc = call_once(o, 2, args, -1, &r)))
        return rc;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        if (o->json && print_json_value(argv[1], json_null()))
            return CLI_EXIT_ERROR;
        return not_found(argv[1]);
    }
    rc = reply_i64(r, &v);
    freeReplyObject(r);
    return rc ? CLI_EXIT_ERROR : print_value(o, argv[1], v);
}

/* Take a trailing "--ttl DURATION" (or "--ttl=DURATION") off argv[0, *argc).
 * It counts only after the key (from argv[2] on), so that a key spelled
 * "--ttl" stays reachable.  *ms gets the duration, 0 without one.  Returns
 * 0, or CLI_EXIT_ERROR after a message. */
static int take_ttl(int *argc, char **argv, int64_t *ms)
{
    const char *v = NULL;

    *ms = 0;
    if (*argc >= 3 && strncmp(argv[*argc - 1], "--ttl=", 6) == 0) {
        v = argv[*argc - 1] + 6;
        *argc -= 1;
    } else if (*argc >= 4 && strcmp(argv[*argc - 2], "--ttl") == 0) {
        v = argv[*argc - 1];
        *argc -= 2;
    }
    if (v && cli_parse_duration(v, ms) < 0)
        return cli_error("%s: --ttl: bad duration \"%s\" (want a positive "
                         "number with ms, s, m, h or d)", argv[0], v);
    return 0;
}

/* INCRBY key by, then PEXPIRE key ms NX on one connection: the rate
 * limiter's fixed window (the first increment opens it, later ones count in
 * it).  If the first succeeds and the second is lost, the next call sets the
 * expiry, since the counter then has none.  (One round trip each: over TLS
 * the CLI sends a command at a time.)  Returns 0 with *v the new value, or
 * CLI_EXIT_ERROR after a message. */
static int add_with_ttl(const struct cli_opts *o, const char *op,
                        const char *key, const char *by, int64_t ms,
                        int64_t *v)
{
    char msbuf[24];
    struct conn *c = conn_open(o);
    redisReply *r;
    int rc = CLI_EXIT_ERROR;

    if (!c)
        return CLI_EXIT_ERROR;
    snprintf(msbuf, sizeof msbuf, "%lld", (long long)ms);
    const char *incr[] = {op, key, by};
    const char *expire[] = {"PEXPIRE", key, msbuf, "NX"};
    if (!(r = conn_call(c, 3, incr, NULL)))
        goto out;
    int bad = reply_i64(r, v);
    freeReplyObject(r);
    if (bad || !(r = conn_call(c, 4, expire, NULL)))
        goto out;
    freeReplyObject(r);
    rc = 0;
out:
    conn_close(c);
    return rc;
}

/* incr and decr: INCRBY or DECRBY with BY checked here, so that a typo is a
 * usage error before anything is sent. */
static int add(const struct cli_opts *o, int argc, char **argv, const char *op)
{
    redisReply *r;
    int64_t by, v, ttl;
    int rc;

    if ((rc = take_ttl(&argc, argv, &ttl)))
        return rc;
    if (argc < 2 || argc > 3)
        return cli_usage_error(cli_find(argv[0]));
    if (argc == 3 && cli_parse_i64(argv[2], &by) < 0)
        return cli_error("%s: \"%s\" is not a signed 64-bit integer", argv[0],
                         argv[2]);
    const char *args[] = {op, argv[1], argc == 3 ? argv[2] : "1"};
    if (ttl) {
        if ((rc = add_with_ttl(o, op, args[1], args[2], ttl, &v)))
            return rc;
        return print_value(o, argv[1], v);
    }
    if ((rc = call_once(o, 3, args, -1, &r)))
        return rc;
    rc = reply_i64(r, &v);
    freeReplyObject(r);
    return rc ? CLI_EXIT_ERROR : print_value(o, argv[1], v);
}

int cli_incr(const struct cli_opts *o, int argc, char **argv)
{
    return add(o, argc, argv, "INCRBY");
}

int cli_decr(const struct cli_opts *o, int argc, char **argv)
{
    return add(o, argc, argv, "DECRBY");
}

int cli_set(const struct cli_opts *o, int argc, char **argv)
{
    redisReply *r;
    int64_t v, ttl;
    char msbuf[24];
    int rc;

    if ((rc = take_ttl(&argc, argv, &ttl)))
        return rc;
    if (argc != 3)
        return cli_usage_error(cli_find("set"));
    if (cli_parse_i64(argv[2], &v) < 0)
        return cli_error("set: \"%s\" is not a signed 64-bit integer", argv[2]);
    snprintf(msbuf, sizeof msbuf, "%lld", (long long)ttl);
    const char *args[] = {"SET", argv[1], argv[2], "PX", msbuf};
    if ((rc = call_once(o, ttl ? 5 : 3, args, REDIS_REPLY_STATUS, &r)))
        return rc;
    int ok = strcmp(r->str, "OK") == 0;
    freeReplyObject(r);
    if (!ok)
        return cli_error("set: unexpected reply from the server");
    if (o->json)
        return print_value(o, argv[1], v);
    puts("OK");
    return CLI_EXIT_OK;
}

int cli_del(const struct cli_opts *o, int argc, char **argv)
{
    redisReply *r;
    int rc;

    if (argc != 2)
        return cli_usage_error(cli_find("del"));
    const char *args[] = {"DEL", argv[1]};
    if ((rc = call_once(o, 2, args, REDIS_REPLY_INTEGER, &r)))
        return rc;
    int deleted = r->integer > 0;
    freeReplyObject(r);
    if (o->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "deleted", json_boolean(deleted));
        if (out_json(obj))
            return CLI_EXIT_ERROR;
    } else if (deleted) {
        puts("deleted");
    }
    return deleted ? CLI_EXIT_OK : not_found(argv[1]);
}

/* ---- list ---------------------------------------------------------------- */

/* Append the glob that matches every key starting with prefix: the prefix
 * with *, ?, [, ] and \ escaped, then "*". */
static void prefix_glob(struct buf *b, const char *prefix)
{
    for (const char *p = prefix; *p; p++) {
        if (strchr("*?[]\\", *p))
            buf_addc(b, '\\');
        buf_addc(b, *p);
    }
    buf_addc(b, '*');
}

/* Fetch the values of keys[0, n) with MGET and add the ones that still exist
 * to l.  Returns 0 or CLI_EXIT_ERROR after a message. */
static int list_fetch(struct conn *c, struct out_items *l, redisReply **keys,
                      size_t n)
{
    const char *argv[LIST_MGET_MAX + 1] = {"MGET"};
    size_t lens[LIST_MGET_MAX + 1] = {4};
    redisReply *r;
    int rc = CLI_EXIT_ERROR;

    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = keys[i]->str;
        lens[i + 1] = keys[i]->len;
    }
    if (!(r = conn_call(c, (int)n + 1, argv, lens)))
        return CLI_EXIT_ERROR;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        cli_error("list: unexpected reply to MGET");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (r->element[i]->type == REDIS_REPLY_NIL)
            continue; /* deleted since SCAN saw it */
        if (reply_i64(r->element[i], &v))
            goto out;
        out_items_add(l, keys[i]->str, keys[i]->len, v, 0);
    }
    rc = 0;
out:
    freeReplyObject(r);
    return rc;
}

/* Walk SCAN to the end, fetching each page's values as it comes. */
static int list_scan(struct conn *c, const char *prefix, struct out_items *l)
{
    struct buf pat = BUF_INIT;
    char cursor[32] = "0";
    int rc = 0;

    prefix_glob(&pat, prefix);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pat.p, "COUNT",
                              LIST_SCAN_COUNT};
        size_t lens[] = {4, strlen(cursor), 5, pat.len, 5,
                         strlen(LIST_SCAN_COUNT)};
        redisReply *r = conn_call(c, 6, argv, lens);
        if (!r) {
            rc = CLI_EXIT_ERROR;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof cursor ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            rc = cli_error("list: unexpected reply to SCAN");
            break;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        redisReply *page = r->element[1];
        for (size_t i = 0; i < page->elements && !rc; i += LIST_MGET_MAX) {
            size_t n = page->elements - i;
            rc = list_fetch(c, l, page->element + i,
                            n < LIST_MGET_MAX ? n : LIST_MGET_MAX);
        }
        freeReplyObject(r);
    } while (!rc && strcmp(cursor, "0") != 0);
    buf_free(&pat);
    return rc;
}

int cli_list(const struct cli_opts *o, int argc, char **argv)
{
    struct out_items l = OUT_ITEMS_INIT;
    struct conn *c;
    int rc;

    if (argc > 2)
        return cli_usage_error(cli_find("list"));
    if (!(c = conn_open(o)))
        return CLI_EXIT_ERROR;
    rc = list_scan(c, argc == 2 ? argv[1] : "", &l);
    conn_close(c);
    if (!rc && out_items_print(&l, o->json))
        rc = cli_error("cannot write the output: %m");
    out_items_free(&l);
    return rc;
}

/* ---- info, ping ---------------------------------------------------------- */

/* s[0, n) as a C string; caller frees with free(). */
static char *dup_n(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* INFO's "field:value" lines as one JSON object; integers become numbers. */
static json_t *info_json(const char *text)
{
    json_t *obj = json_object();

    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\r\n");
        const char *colon = memchr(line, ':', n);
        if (n && line[0] != '#' && colon) {
            char *val = dup_n(colon + 1, n - (size_t)(colon + 1 - line));
            char *name = dup_n(line, (size_t)(colon - line));
            int64_t iv;
            /* A value that is not UTF-8 cannot go into JSON as a string;
             * INFO is ASCII, so such a field is dropped rather than mangled. */
            json_t *jv = cli_parse_i64(val, &iv) == 0 ? json_integer(iv)
                                                      : json_string(val);
            if (jv)
                json_object_set_new(obj, name, jv);
            free(val);
            free(name);
        }
        line += n;
        line += strspn(line, "\r\n");
    }
    return obj;
}

int cli_info(const struct cli_opts *o, int argc, char **argv)
{
    redisReply *r;
    int rc;

    if (argc > 2)
        return cli_usage_error(cli_find("info"));
    const char *args[] = {"INFO", argc == 2 ? argv[1] : NULL};
    if ((rc = call_once(o, argc, args, REDIS_REPLY_STRING, &r)))
        return rc;
    if (o->json) {
        rc = out_json(info_json(r->str)) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    } else {
        /* INFO ends its lines with CRLF; a terminal or a pipe wants LF. */
        for (size_t i = 0; i < r->len; i++)
            if (r->str[i] != '\r')
                putchar(r->str[i]);
    }
    freeReplyObject(r);
    return rc;
}

int cli_ping(const struct cli_opts *o, int argc, char **argv)
{
    redisReply *r;
    int rc;

    if (argc != 1)
        return cli_usage_error(cli_find("ping"));
    const char *args[] = {"PING"};
    if ((rc = call_once(o, 1, args, REDIS_REPLY_STATUS, &r)))
        return rc;
    int pong = strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    if (!pong)
        return cli_error("ping: unexpected reply from the server");
    if (o->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "pong", json_true());
        return out_json(obj) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    }
    puts("PONG");
    return CLI_EXIT_OK;
}
