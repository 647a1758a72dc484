/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_ops.c - one store_req as one Redis command, and its reply as a
 * store_res.  redis_format writes the command's bytes as hiredis's
 * redisFormatCommandArgv does, redisReader (in redis.c) parses the reply.
 *
 * Key layout (docs/redis-store.md):
 *   counter         PREFIX "{" ESC(key) "}"          a decimal string,
 *                                                    its expiry Redis's
 *   idempotency id  PREFIX "{" ESC(key) "}:id:" ID   "FP RC FOUND VALUE
 *                                                    EXPIRE_AT NOW N
 *                                                    EXPIRE_SET EXPIRED
 *                                                    UNCHANGED", PX the
 *                                                    id's lifetime
 *   a batch's id    PREFIX "batch:" ID               "B FP ANSWER", PX the
 *                   (one Redis)                      id's lifetime
 *                   PREFIX "{" ESC(key) "}:batch:" ID  the same, beside its
 *                   (a cluster)                      first counter
 * ESC keeps a key readable and its hash tag whole: '%', '{' and '}' become
 * "%25", "%7B", "%7D", and the empty key is "%" (no escape is a lone
 * '%'), so the tag between the first '{' and the next '}' is always the
 * whole key, never empty, and a counter and its ids share a cluster slot.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "redis_int.h"
#include "view.h"

/* The growing argv of one command: bytes in mem, argument i at off[i]. */
struct args {
    struct buf mem;
    size_t *off, *lens;
    size_t n, cap;
};

static void arg_begin(struct args *a)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->off = xrealloc(a->off, a->cap * sizeof *a->off);
        a->lens = xrealloc(a->lens, a->cap * sizeof *a->lens);
    }
    a->off[a->n] = a->mem.len;
    a->lens[a->n++] = 0;
}

static void arg_more(struct args *a, const void *p, size_t n)
{
    buf_add(&a->mem, p, n);
    a->lens[a->n - 1] += n;
}

static void arg_str(struct args *a, const char *s)
{
    arg_begin(a);
    arg_more(a, s, strlen(s));
}

static void arg_i64(struct args *a, int64_t v)
{
    char d[24];

    arg_begin(a);
    arg_more(a, d, i64_to_dec(v, d));
}

static void arg_u64(struct args *a, uint64_t v)
{
    char d[24];

    arg_begin(a);
    arg_more(a, d, u64_to_dec(v, d));
}

/* The length of ESC(key), as the top of this file says. */
static size_t esc_len(const char *k, size_t klen)
{
    size_t n = klen;

    if (!klen)
        return 1;
    for (size_t i = 0; i < klen; i++)
        n += (k[i] == '%' || k[i] == '{' || k[i] == '}') * 2;
    return n;
}

/* ESC(key) into p: elen bytes, esc_len's. */
static void esc_put(char *p, const char *k, size_t klen, size_t elen)
{
    if (!klen) {
        *p = '%';
        return;
    }
    if (elen == klen) {
        memcpy(p, k, klen); /* nothing to escape: most keys */
        return;
    }
    for (size_t i = 0; i < klen; i++) {
        const char *e = k[i] == '%' ? "%25" : k[i] == '{' ? "%7B" :
                        k[i] == '}' ? "%7D" : NULL;
        if (!e) {
            *p++ = k[i];
            continue;
        }
        memcpy(p, e, 3);
        p += 3;
    }
}

static void arg_esc(struct args *a, const char *k, size_t klen)
{
    size_t n = esc_len(k, klen);

    buf_reserve(&a->mem, n);
    esc_put(a->mem.p + a->mem.len, k, klen, n);
    a->mem.len += n;
    a->lens[a->n - 1] += n;
}

static void arg_key(struct args *a, const struct redis_keys *kp,
                    const char *k, size_t klen)
{
    arg_begin(a);
    arg_more(a, kp->prefix, kp->plen);
    arg_more(a, "{", 1);
    arg_esc(a, k, klen);
    arg_more(a, "}", 1);
}

static void arg_idkey(struct args *a, const struct redis_keys *kp,
                      const char *k, size_t klen, const struct store_req *req)
{
    arg_key(a, kp, k, klen);
    arg_more(a, ":id:", 4);
    arg_more(a, req->once, req->oncelen);
}

/* SCAN's MATCH: the prefix's keys, glob characters escaped. */
static void arg_pattern(struct args *a, const struct redis_keys *kp,
                        const char *p, size_t plen)
{
    struct args e = {BUF_INIT, NULL, NULL, 0, 0};

    arg_begin(&e);
    if (plen) /* ESC("") is "%": not a prefix of the other keys */
        arg_esc(&e, p, plen);
    arg_begin(a);
    for (size_t i = 0; i < kp->plen + e.mem.len; i++) {
        char c = i < kp->plen ? kp->prefix[i] : e.mem.p[i - kp->plen];
        if (strchr("*?[]\\", c) && c)
            arg_more(a, "\\", 1);
        arg_more(a, &c, 1);
        if (i + 1 == kp->plen)
            arg_more(a, "{", 1);
    }
    if (!kp->plen)
        arg_more(a, "{", 1); /* not reached: the prefix is never empty */
    arg_more(a, "*", 1);
    buf_free(&e.mem);
    free(e.off);
    free(e.lens);
}

/* The bytes redisFormatCommandArgv writes ("*N\r\n", then "$LEN\r\n"
 * ARG "\r\n" each), in one allocation: hiredis's sprintf of every header
 * was a fifth of tallyd's instructions per INCR on this store. */
size_t redis_format(char **out, int argc, const char **argv,
                    const size_t *lens)
{
    size_t total = 1 + 20 + 2, n;
    char *p;

    for (int i = 0; i < argc; i++)
        total += 1 + 20 + 2 + lens[i] + 2;
    p = *out = xmalloc(total);
    *p++ = '*';
    p += u64_to_dec((uint64_t)argc, p);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p += u64_to_dec(lens[i], p);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    n = (size_t)(p - *out);
    return n;
}

static void args_format(struct args *a, struct redis_op *op)
{
    const char **v = xmalloc((a->n ? a->n : 1) * sizeof *v);

    for (size_t i = 0; i < a->n; i++)
        v[i] = a->mem.p + a->off[i];
    op->cmdlen = redis_format(&op->cmd, (int)a->n, v, a->lens);
    free(v);
    buf_free(&a->mem);
    free(a->off);
    free(a->lens);
}

static void arg_eval(struct args *a, char sha[][41], int s, size_t nkeys)
{
    arg_str(a, "EVALSHA");
    arg_str(a, sha[s]);
    arg_u64(a, nkeys);
}

/* SCAN's COUNT for one page of COUNT or FLUSH: about this many keys of the
 * database (tally's or not) are looked at per call, which bounds how long
 * one call holds Redis. */
#define REDIS_PAGE_KEYS 1000

/* The command of COUNT's or FLUSH's next page (redis_lua.c's count
 * script) at op->page_cursor, into op->cmd. */
static void format_page(const struct redis_keys *kp, char sha[][41],
                        struct redis_op *op)
{
    struct args a = {BUF_INIT, NULL, NULL, 0, 0};

    arg_eval(&a, sha, REDIS_S_COUNT, 0);
    arg_u64(&a, op->page_cursor);
    arg_pattern(&a, kp, "", 0);
    arg_u64(&a, REDIS_PAGE_KEYS);
    arg_u64(&a, kp->plen);
    arg_u64(&a, (uint64_t)op->page_mode);
    args_format(&a, op);
}

int redis_op_next(const struct redis_keys *kp, char sha[][41],
                  struct redis_op *op)
{
    if ((op->op != STORE_COUNT && op->op != STORE_FLUSH) ||
        op->res.rc != STORE_OK || op->page_cursor == 0)
        return 0;
    if (op->cmd != op->cmd_here)
        free(op->cmd);
    op->cmd = NULL;
    format_page(kp, sha, op);
    return 1;
}

/* A plain INCRBY whose caller reads only the value needs no script:
 * Redis's own INCRBY is as atomic and refuses what the script refuses
 * (a value that is no decimal int64, an overflow), and leaves the expiry
 * as the script's STORE_X_KEEP does.  The script costs Redis about ten
 * times as much CPU (its GETs, TIME, PEXPIRETIME, the Lua call), on a
 * machine it shares with tallyd (bench/README.md). */
static int native_incr(const struct store_req *req)
{
    return req->value_only && !req->once && !req->flags &&
           req->xmode == STORE_X_KEEP;
}

static char *put_crlf(char *p)
{
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* GET KEY or INCRBY KEY NUM, the commands of plain RESP GET and INCR (most
 * requests), written straight into one allocation: the argv of the general
 * path cost four more and about 1,800 instructions per INCR at 50 clients
 * (callgrind; a fifth of tallyd's). */
static void format_native(const struct redis_keys *kp,
                          const struct store_req *req, struct redis_op *op)
{
    static const char inc[] = "*3\r\n$6\r\nINCRBY\r\n$";
    static const char get[] = "*2\r\n$3\r\nGET\r\n$";
    int incr = req->op == STORE_INCRBY;
    size_t elen = esc_len(req->key, req->klen);
    size_t klen = kp->plen + 1 + elen + 1, nlen = 0, max;
    char num[24], *p;

    if (incr)
        nlen = i64_to_dec(req->num, num);
    /* The header, two lengths of up to 20 digits with their "$\r\n\r\n",
     * and the bytes. */
    max = sizeof inc + 2 * 24 + klen + nlen;
    p = op->cmd = max <= sizeof op->cmd_here ? op->cmd_here : xmalloc(max);
    memcpy(p, incr ? inc : get, incr ? sizeof inc - 1 : sizeof get - 1);
    p += incr ? sizeof inc - 1 : sizeof get - 1;
    p = put_crlf(p + u64_to_dec(klen, p));
    memcpy(p, kp->prefix, kp->plen);
    p += kp->plen;
    *p++ = '{';
    esc_put(p, req->key, req->klen, elen);
    p += elen;
    *p++ = '}';
    p = put_crlf(p);
    if (incr) {
        *p++ = '$';
        p = put_crlf(p + u64_to_dec(nlen, p));
        memcpy(p, num, nlen);
        p = put_crlf(p + nlen);
    }
    op->cmdlen = (size_t)(p - op->cmd);
    op->native = 1;
}

int redis_op_format(const struct redis_keys *kp, char sha[][41],
                    uint64_t once_ttl_ms, const struct store_req *req,
                    struct redis_op *op)
{
    struct args a = {BUF_INIT, NULL, NULL, 0, 0};
    int id = req->once != NULL;
    size_t i;

    if (id && (!req->oncelen || req->oncelen > TALLY_ID_MAX))
        return STORE_EIDLEN;
    if (req->klen > TALLY_KEY_MAX)
        return STORE_EKEYLEN;
    for (i = 0; i < req->nkeys; i++)
        if (req->klens[i] > TALLY_KEY_MAX)
            return STORE_EKEYLEN;
    op->op = req->op;
    op->script = REDIS_S_NONE;
    op->nkeys = req->nkeys;
    op->writes = 1;
    switch (req->op) {
    case STORE_GET:
        op->writes = 0;
        if (req->value_only) {
            format_native(kp, req, op);
            return STORE_OK;
        }
        arg_eval(&a, sha, op->script = REDIS_S_GET, 1);
        arg_key(&a, kp, req->key, req->klen);
        break;
    case STORE_INCRBY:
        if (native_incr(req)) {
            format_native(kp, req, op);
            return STORE_OK;
        }
        /* fall through */
    case STORE_SET:
    case STORE_GETDEL:
        op->script = req->op == STORE_INCRBY ? REDIS_S_INCR :
                     req->op == STORE_SET ? REDIS_S_SET : REDIS_S_GETDEL;
        arg_eval(&a, sha, op->script, 1 + (size_t)id);
        arg_key(&a, kp, req->key, req->klen);
        if (id)
            arg_idkey(&a, kp, req->key, req->klen, req);
        if (req->op == STORE_GETDEL) {
            arg_u64(&a, req->flags);
            arg_i64(&a, req->cmp);
        } else {
            arg_i64(&a, req->num);
            if (req->op == STORE_SET)
                arg_i64(&a, req->cmp);
            arg_u64(&a, req->flags);
            arg_u64(&a, (uint64_t)req->xmode);
            arg_i64(&a, req->expire);
        }
        arg_u64(&a, req->fingerprint);
        arg_u64(&a, once_ttl_ms);
        break;
    case STORE_DEL:
        if (id && req->nkeys != 1) {
            free(a.off);
            return STORE_EINVAL;
        }
        arg_eval(&a, sha, op->script = REDIS_S_DEL, req->nkeys + (size_t)id);
        for (i = 0; i < req->nkeys; i++)
            arg_key(&a, kp, req->keys[i], req->klens[i]);
        if (id)
            arg_idkey(&a, kp, req->keys[0], req->klens[0], req);
        arg_str(&a, id ? "1" : "0");
        arg_u64(&a, req->fingerprint);
        arg_u64(&a, once_ttl_ms);
        break;
    case STORE_EXISTS:
    case STORE_MGET:
    case STORE_MSET:
        op->writes = req->op == STORE_MSET;
        arg_str(&a, req->op == STORE_EXISTS ? "EXISTS" :
                    req->op == STORE_MGET ? "MGET" : "MSET");
        for (i = 0; i < req->nkeys; i++) {
            arg_key(&a, kp, req->keys[i], req->klens[i]);
            if (req->op == STORE_MSET)
                arg_i64(&a, req->nums[i]);
        }
        break;
    case STORE_EXPIRE:
        arg_eval(&a, sha, op->script = REDIS_S_EXPIRE, 1);
        arg_key(&a, kp, req->key, req->klen);
        arg_u64(&a, req->flags);
        arg_u64(&a, (uint64_t)req->xmode);
        arg_i64(&a, req->expire);
        break;
    case STORE_SCAN:
        op->writes = 0;
        arg_eval(&a, sha, op->script = REDIS_S_SCAN, 0);
        arg_u64(&a, req->cursor);
        arg_pattern(&a, kp, req->prefix, req->plen);
        arg_u64(&a, req->count ? req->count : 10);
        arg_u64(&a, kp->plen);
        break;
    case STORE_COUNT:
    case STORE_FLUSH:
        op->writes = req->op == STORE_FLUSH;
        op->script = REDIS_S_COUNT;
        op->page_mode = req->op == STORE_FLUSH ? 2 :
                        req->flags & STORE_F_ONCE ? 3 :
                        req->flags & STORE_F_EXPIRES ? 1 : 0;
        free(a.off);
        format_page(kp, sha, op);
        return STORE_OK;
    default:
        free(a.off);
        return STORE_EUNSUPPORTED;
    }
    args_format(&a, op);
    return STORE_OK;
}

/* A whole batch's id record (docs/redis-store.md): Pbatch:ID on one
 * Redis, where older versions wrote it too; on a cluster
 * P{ESC(key)}:batch:ID, in the slot of the batch's first counter req->key,
 * so the commit script writes it with the counters. */
static void arg_batchid(struct args *a, const struct redis_keys *kp,
                        const struct store_req *req)
{
    if (kp->cluster && req->key) {
        arg_key(a, kp, req->key, req->klen);
        arg_more(a, ":", 1);
    } else {
        arg_begin(a);
        arg_more(a, kp->prefix, kp->plen);
    }
    arg_more(a, "batch:", 6);
    arg_more(a, req->once, req->oncelen);
}

void redis_op_format_once(const struct redis_keys *kp, char sha[][41],
                          const struct store_req *req, struct redis_op *op)
{
    struct args a = {BUF_INIT, NULL, NULL, 0, 0};

    op->op = STORE_GET;
    op->script = REDIS_S_ONCE;
    op->writes = 0;
    arg_eval(&a, sha, REDIS_S_ONCE, 1);
    arg_batchid(&a, kp, req);
    arg_u64(&a, req->fingerprint);
    args_format(&a, op);
}

void redis_op_format_commit(const struct redis_keys *kp, char sha[][41],
                            const struct view *v,
                            const struct redis_once *once,
                            struct redis_op *op)
{
    struct args a = {BUF_INIT, NULL, NULL, 0, 0};

    op->op = STORE_SET; /* its answer: the ten fields of a single key's */
    op->script = REDIS_S_COMMIT;
    op->writes = once != NULL;
    arg_eval(&a, sha, REDIS_S_COMMIT, v->n + (once != NULL));
    for (size_t i = 0; i < v->n; i++)
        arg_key(&a, kp, v->keys[i].k, v->keys[i].klen);
    if (once)
        arg_batchid(&a, kp, once->req);
    for (size_t i = 0; i < v->n; i++) {
        const struct view_key *k = &v->keys[i];
        arg_str(&a, k->was ? "1" : "0");
        arg_i64(&a, k->was_n);
        arg_i64(&a, k->was_x);
        arg_str(&a, !k->dirty ? "0" : k->exists ? "1" : "2");
        arg_i64(&a, k->n);
        arg_i64(&a, k->expire_at);
        op->writes |= k->dirty;
    }
    if (once) {
        arg_u64(&a, once->req->fingerprint);
        arg_u64(&a, once->ttl_ms);
        arg_begin(&a);
        arg_more(&a, once->answer, once->alen);
    }
    args_format(&a, op);
}

void redis_op_free(struct redis_op *op)
{
    if (op->cmd != op->cmd_here)
        free(op->cmd);
    free(op->values);
    free(op->founds);
    free(op->rkeys);
    free(op->rklens);
    free(op->rexp);
    free(op->rmem);
    free(op);
}

/* ---- Replies ----------------------------------------------------------- */

/* A decimal int64 from the bytes of a reply; -1 if it is none. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    uint64_t v = 0, lim;
    int neg = n && s[0] == '-';
    size_t i = (size_t)neg;

    if (i == n || n > 20)
        return -1;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int reply_i64(const struct redisReply *r, int64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING)
        return parse_i64(r->str, r->len, out);
    return -1;
}

static void set_err(struct store_res *res, int rc, const char *what,
                    const struct redisReply *r)
{
    res->rc = rc;
    snprintf(res->detail, sizeof res->detail, "redis: %s%s%.*s", what,
             r && r->type == REDIS_REPLY_ERROR ? ": " : "",
             r && r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
             r && r->type == REDIS_REPLY_ERROR ? r->str : "");
}

/* The ten fields of a single-key script's answer (redis_lua.c). */
static int answer_fields(struct store_res *res, const struct redisReply *r)
{
    int64_t f[10];

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 10)
        return -1;
    for (size_t i = 0; i < 10; i++)
        if (reply_i64(r->element[i], &f[i]) < 0)
            return -1;
    res->rc = (int)f[0];
    res->found = (int)f[1];
    res->value = f[2];
    res->expire_at = f[3];
    res->now_ms = f[4];
    res->n = (uint64_t)f[5];
    res->replayed = (int)f[6];
    res->expire_set = f[7];
    res->expired = (int)f[8];
    res->unchanged = (int)f[9];
    return 0;
}

/* REDIS_S_ONCE's answer: the ten fields, the third the recorded answer's
 * bytes (kept in op->rmem) when rc is 0. */
static int answer_once(struct redis_op *op, const struct redisReply *r)
{
    struct store_res *res = &op->res;
    const struct redisReply *a;
    int64_t rc;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 10 ||
        reply_i64(r->element[0], &rc) < 0)
        return -1;
    res->rc = (int)rc;
    if (rc != STORE_OK)
        return 0;
    a = r->element[2];
    if (a->type != REDIS_REPLY_STRING || a->len == 0)
        return -1;
    op->rmem = xmalloc(a->len);
    memcpy(op->rmem, a->str, a->len);
    res->answer = op->rmem;
    res->alen = a->len;
    res->found = 1;
    res->replayed = 1;
    return 0;
}

size_t redis_unesc(char *s, size_t n)
{
    size_t i, o = 0;

    if (n == 1 && s[0] == '%')
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex_digit(s[i + 1]) >= 0 &&
            hex_digit(s[i + 2]) >= 0) {
            s[o++] = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

static int answer_scan(const struct redis_keys *kp, struct redis_op *op,
                       const struct redisReply *r)
{
    struct store_res *res = &op->res;
    size_t n, i, mem = 0;
    int64_t cur;
    char *p;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        (r->elements - 2) % 3 ||
        reply_i64(r->element[0], &cur) < 0 ||
        reply_i64(r->element[1], &res->now_ms) < 0)
        return -1;
    /* Redis's cursor is an unsigned 64-bit decimal. */
    if (r->element[0]->type == REDIS_REPLY_STRING)
        res->n = strtoull(r->element[0]->str, NULL, 10);
    n = (r->elements - 2) / 3;
    for (i = 0; i < n; i++)
        mem += r->element[2 + 3 * i]->len;
    op->rkeys = xmalloc((n ? n : 1) * sizeof *op->rkeys);
    op->rklens = xmalloc((n ? n : 1) * sizeof *op->rklens);
    op->values = xmalloc((n ? n : 1) * sizeof *op->values);
    op->rexp = xmalloc((n ? n : 1) * sizeof *op->rexp);
    p = op->rmem = xmalloc(mem ? mem : 1);
    for (i = 0; i < n; i++) {
        const struct redisReply *k = r->element[2 + 3 * i];
        size_t skip = kp->plen + 1;
        if (k->type != REDIS_REPLY_STRING || k->len < skip + 1 ||
            reply_i64(r->element[3 + 3 * i], &op->values[i]) < 0 ||
            reply_i64(r->element[4 + 3 * i], &op->rexp[i]) < 0)
            return -1;
        memcpy(p, k->str + skip, k->len - skip - 1);
        op->rkeys[i] = p;
        op->rklens[i] = redis_unesc(p, k->len - skip - 1);
        p += k->len - skip - 1;
    }
    res->n_items = n;
    res->keys = op->rkeys;
    res->klens = op->rklens;
    res->values = op->values;
    res->expires = op->rexp;
    return 0;
}

/* One page of COUNT or FLUSH: { next cursor, n, nx, ms left summed, id
 * records, their bytes } added to the pages before; res shows the sums. */
static int answer_page(struct redis_op *op, const struct redisReply *r)
{
    struct store_res *res = &op->res;
    const struct redisReply *c;
    int64_t f[5];
    char *end;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 6)
        return -1;
    c = r->element[0];
    if (c->type != REDIS_REPLY_STRING || !c->len || c->len > 20)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (reply_i64(r->element[1 + i], &f[i]) < 0 || f[i] < 0)
            return -1;
    /* Redis's cursor is an unsigned 64-bit decimal. */
    op->page_cursor = strtoull(c->str, &end, 10);
    if (end != c->str + c->len)
        return -1;
    op->pages++;
    op->page_n += (uint64_t)f[0];
    op->page_nx += (uint64_t)f[1];
    op->page_ttl_sum += (double)f[2];
    op->page_ids += (uint64_t)f[3];
    op->page_idb += (uint64_t)f[4];
    res->once_ids = op->page_ids;
    res->once_bytes = op->page_idb;
    res->n = op->page_n;
    res->expires_n = op->page_nx;
    res->avg_ttl_ms = op->page_nx ? (int64_t)(op->page_ttl_sum /
                                              (double)op->page_nx) : 0;
    return 0;
}

static int answer_multi(struct redis_op *op, const struct redisReply *r)
{
    struct store_res *res = &op->res;
    size_t i, n = op->nkeys;

    switch (op->op) {
    case STORE_EXISTS:
        if (r->type != REDIS_REPLY_INTEGER)
            return -1;
        res->n = (uint64_t)r->integer;
        return 0;
    case STORE_MSET:
        if (r->type != REDIS_REPLY_STATUS)
            return -1;
        res->n = n;
        return 0;
    case STORE_MGET:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
            return -1;
        op->values = xcalloc(n ? n : 1, sizeof *op->values);
        op->founds = xcalloc(n ? n : 1, 1);
        for (i = 0; i < n; i++) {
            const struct redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_NIL)
                continue;
            if (reply_i64(e, &op->values[i]) < 0)
                return -1;
            op->founds[i] = 1;
            res->n++;
        }
        res->n_items = n;
        res->values = op->values;
        res->founds = op->founds;
        return 0;
    default:
        return -1;
    }
}

/* What a reply that is no counter of tally's answers, scripted or not. */
#define UNEXPECTED "unexpected reply (a counter written by something else " \
                   "than tally?)"

/* The reply to a native GET or INCRBY (native_incr): the results the
 * script would give for rc, found and value, the only ones the caller
 * reads (store_req.value_only).  Redis's INCRBY refuses an overflow and a
 * value that is no decimal int64 with two errors of its own (t_string.c):
 * the first is STORE_EOVERFLOW, nothing changed, as the script answers;
 * the second, like a GET of such a value, is -1 (UNEXPECTED), as the
 * script's reply then is. */
static int answer_native(struct store_res *res, enum store_opk op,
                         const struct redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        if (op == STORE_INCRBY && strstr(r->str, "would overflow")) {
            res->rc = STORE_EOVERFLOW;
            return 0;
        }
        if (strstr(r->str, "not an integer"))
            return -1;
        set_err(res, STORE_EIO, "error", r); /* WRONGTYPE, OOM, ... */
        return 0;
    }
    if (op == STORE_GET && r->type == REDIS_REPLY_NIL) {
        res->rc = STORE_NOTFOUND;
        return 0;
    }
    if (reply_i64(r, &res->value) < 0)
        return -1;
    res->found = 1;
    return 0;
}

void redis_op_answer(const struct redis_keys *kp, struct redis_op *op,
                     const struct redisReply *r)
{
    struct store_res *res = &op->res;
    int bad = 0;

    store_res_init(res);
    if (op->native) {
        if (answer_native(res, op->op, r) < 0) {
            store_res_init(res);
            set_err(res, STORE_EIO, UNEXPECTED, NULL);
        }
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* An error from Redis itself: nothing of ours ran (a script that
         * fails does so before its first write, or not at all). */
        set_err(res, STORE_EIO, "error", r);
        return;
    }
    switch (op->script == REDIS_S_ONCE ? STORE_OPK_COUNT : op->op) {
    case STORE_OPK_COUNT:
        bad = answer_once(op, r);
        break;
    case STORE_SCAN:
        bad = answer_scan(kp, op, r);
        break;
    case STORE_COUNT:
    case STORE_FLUSH:
        bad = answer_page(op, r);
        break;
    case STORE_EXISTS:
    case STORE_MGET:
    case STORE_MSET:
        bad = answer_multi(op, r);
        break;
    default:
        bad = answer_fields(res, r);
        if (!bad && op->op == STORE_DEL) {
            size_t n = op->nkeys;
            op->founds = xcalloc(n ? n : 1, 1);
            for (size_t i = 0; i < n && 10 + i < r->elements; i++) {
                int64_t d = 0;
                reply_i64(r->element[10 + i], &d);
                op->founds[i] = d != 0;
            }
            res->founds = op->founds;
            res->n_items = n;
        }
        break;
    }
    if (bad) {
        store_res_init(res);
        set_err(res, STORE_EIO, UNEXPECTED, NULL);
    }
}

int redis_feed(void *r, struct evbuffer *in)
{
    while (evbuffer_get_length(in)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        if (redisReaderFeed(r, v.iov_base, v.iov_len) != REDIS_OK)
            return -1;
        evbuffer_drain(in, v.iov_len);
    }
    return 0;
}
