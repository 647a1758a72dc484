/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcache.c - the memcached text protocol front end: connections, framing,
 * the tokenizer and dispatch, and the classic commands (get, gets, gat, gats,
 * set, add, replace, cas, delete, incr, decr, touch, stats, version,
 * verbosity, flush_all, quit), as memcached 1.6 speaks them (its
 * doc/protocol.txt, proto_text.c).  The meta commands (mg, ms, md, ma; mn is
 * answered here) live in memcache_meta.c; what the two files share, among
 * them the read-compare-change steps below, is declared in memcache_int.h.
 *
 * This file only tokenizes lines, frames data blocks and encodes replies; what
 * a change means, its limits and its durability come from the command layer
 * (src/cmd) through cmd_exec().  Values are signed 64-bit counters, so data
 * blocks must be decimal integers and every VALUE carries flags 0; the rules
 * that map memcached's unsigned items onto durable counters (decr floors,
 * overflow, cas uniques) are spelled out in docs/memcache.md.  An exptime
 * becomes the counter's durable expiry (mc_parse_exptime); the command layer
 * resolves it and decides what it means.
 *
 * Framing: one request is a line ended by "\n" (a "\r" before it is dropped),
 * tokens separated by single or repeated spaces; storage commands (set, cas,
 * ms, ...) are followed by <bytes> of data and "\r\n".  A line is at most
 * MC_LINE_MAX bytes, except get/gets/gat/gats lines (large multigets), which
 * may use the daemon's max_request.  handle() is a pure function of the bytes
 * it is given plus one piece of connection state: how many bytes of a refused
 * oversized data block are still to be discarded.
 */
#define _GNU_SOURCE
#include "memcache.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "memcache_int.h"

#define MC_LINE_MAX 2048    /* memcached closes a connection whose line grows
                               past this without a newline (multigets aside) */
#define MC_FLUSH_BATCH 512  /* keys per CMD_DEL while flushing: a DEL is one
                               log record of at most 1 MiB, and 512 keys of
                               TALLY_KEY_MAX bytes fit in one */

/* ---- Listener-wide state (struct mc_front: memcache_int.h) ------------- */

struct mc_front *mc_front_new(const struct mc_options *opts)
{
    struct mc_front *f = xcalloc(1, sizeof *f);
    f->opts = *opts;
    return f;
}

void mc_front_free(struct mc_front *f) { free(f); }

/* ---- Connections and the tokenizer ------------------------------------- */

static void *mc_conn_new(void *front, struct cmd_ctx *ctx,
                         struct cmd_session *s, const struct proto_limits *lim,
                         const char *peer)
{
    struct mc_conn *c = xcalloc(1, sizeof *c);
    c->front = front;
    c->ctx = ctx;
    c->s = s;
    c->lim = *lim;
    return c;
}

static void mc_conn_free(void *conn)
{
    free(conn);
}

/* Split line[0, len) at spaces into at most max tokens.  Returns the number
 * of tokens, or max + 1 if there were more (the rest is not looked at). */
static size_t mc_tokenize(const char *line, size_t len, struct mc_tok *t,
                          size_t max)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (n == max)
            return max + 1;
        t[n].p = line + start;
        t[n].len = i - start;
        n++;
    }
    return n;
}

static int tok_is(const struct mc_tok *t, const char *s)
{
    size_t n = strlen(s);
    return t->len == n && memcmp(t->p, s, n) == 0;
}

/* ---- Numbers (shared with memcache_meta.c) -----------------------------
 *
 * memcached reads every number of a command line with C's strtoull or strtol
 * inside its safe_strtoull/safe_strtoul/safe_strtol (util.c), and tally takes
 * exactly the tokens those take, on a 64-bit system: optional leading white
 * space (a space would have ended the token, so \t \n \v \f \r), one optional
 * '+' or '-', at least one decimal digit (leading zeros are fine), no
 * overflow of 64 bits, then the token's end, a NUL (where memcached's string
 * ends) or white space (what follows is ignored).  So "+5", "05", "\t5" and
 * "5\r" are numbers; "-+5", "--5", "0x5", "5x" and "" are not.  An unsigned
 * number's '-' negates it modulo 2^64 as strtoull does, and memcached refuses
 * the result only when it is 2^63 or more: "-0" is 0 and "-5" is refused. */

static int mc_isspace(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' ||
           ch == '\r';
}

/* Read s[0, len) as strtoull would and memcached's wrappers check: *mag
 * gets the digits' value and *neg the sign.  0, or -1 if it is no number. */
static int mc_scan(const char *s, size_t len, uint64_t *mag, int *neg)
{
    size_t i = 0, digits;
    uint64_t v = 0;

    while (i < len && mc_isspace(s[i]))
        i++;
    *neg = i < len && s[i] == '-';
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (digits = i; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1; /* ERANGE */
        v = v * 10 + d;
    }
    if (i == digits || (i < len && s[i] != '\0' && !mc_isspace(s[i])))
        return -1;
    *mag = v;
    return 0;
}

int mc_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t mag;
    int neg;
    if (mc_scan(s, len, &mag, &neg) < 0)
        return -1;
    uint64_t v = neg ? 0 - mag : mag;
    /* safe_strtoull's test, which looks for a '-' anywhere in the token. */
    if (v > (uint64_t)INT64_MAX && memchr(s, '-', len))
        return -1;
    *out = v;
    return 0;
}

int mc_parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t mag;
    int neg;
    if (mc_scan(s, len, &mag, &neg) < 0 ||
        mag > (uint64_t)INT64_MAX + (uint64_t)neg)
        return -1; /* strtol's ERANGE */
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int mc_parse_datalen(const struct mc_tok *t, uint64_t *out)
{
    int64_t v;
    /* memcached's own range check after safe_strtol (INT_MAX - 2, so that
     * the length and its CRLF fit an int). */
    if (mc_parse_i64(t->p, t->len, &v) < 0 || v < 0 || v > INT32_MAX - 2)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* memcached's REALTIME_MAXDELTA: the longest exptime taken as relative. */
#define MC_EXPTIME_MAXDELTA (60 * 60 * 24 * 30)

int mc_parse_exptime(const char *s, size_t len, struct mc_exp *e)
{
    int64_t l;
    if (mc_parse_i64(s, len, &l) < 0)
        return -1;
    /* memcached's safe_strtol stores strtol's long in an int32_t, so what
     * does not fit wraps (4294967296 is 0: never); so does it here. */
    int32_t t = (int32_t)(uint32_t)(uint64_t)l;
    if (t == 0) {
        e->flags = 0;
        e->expire = 0;
    } else if (t < 0) {
        /* memcached stores the item already expired; the command layer
         * deletes on a TTL at or below zero, which reads the same. */
        e->flags = CMD_F_PX;
        e->expire = -1;
    } else {
        e->flags = t <= MC_EXPTIME_MAXDELTA ? CMD_F_PX : CMD_F_PXAT;
        e->expire = (int64_t)t * 1000;
    }
    return 0;
}

int64_t mc_ttl_left(struct mc_req *r, int64_t expire_at)
{
    if (expire_at == 0)
        return -1;
    int64_t left = expire_at - cmd_now_ms(r->c->ctx);
    return left <= 0 ? 0 : (left + 999) / 1000;
}

/* The cas unique of a value.  There is no per-change version to show (the
 * engine's tickets are positions in a log shared by all counters), so the
 * unique is derived from the value alone: a bijective 64-bit mix, so two
 * values never share one.  Comparing it compares the value, which is exactly
 * what a read-modify-write of a counter needs (docs/memcache.md). */
uint64_t mc_cas_of(int64_t v)
{
    uint64_t x = (uint64_t)v ^ 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- Replies and the command layer (shared) ---------------------------- */

void mc_reply(struct mc_req *r, const char *line)
{
    if (r->noreply)
        return;
    buf_adds(r->out->buf, line);
    buf_add(r->out->buf, "\r\n", 2);
}

enum cmd_status mc_exec(struct mc_req *r, const struct cmd_req *req,
                        struct cmd_res *res)
{
    memset(res, 0, sizeof *res);
    cmd_exec(r->c->ctx, r->c->s, req, res);
    if (res->ticket > r->out->ticket)
        r->out->ticket = res->ticket;
    return res->status;
}

/* The one place a command-layer error becomes a memcached error line. */
void mc_reply_status(struct mc_req *r, const struct cmd_res *res)
{
    struct buf *b = r->out->buf;
    if (r->noreply)
        return;
    switch (res->status) {
    case CMD_ERR_NOAUTH:
        buf_adds(b, "CLIENT_ERROR unauthenticated");
        break;
    case CMD_ERR_OVERFLOW:
        buf_adds(b, "CLIENT_ERROR increment or decrement would overflow "
                    "a signed 64-bit counter");
        break;
    case CMD_ERR_NOTINT:
        buf_adds(b, "CLIENT_ERROR cannot increment or decrement "
                    "non-numeric value");
        break;
    case CMD_ERR_KEYLEN: case CMD_ERR_ARGS:
        buf_adds(b, "CLIENT_ERROR bad command line format");
        break;
    case CMD_ERR_WRITEFAIL:
        buf_adds(b, "SERVER_ERROR writes refused: a sync to disk failed "
                    "(see the server log)");
        break;
    case CMD_ERR_DISKFULL:
        buf_adds(b, "SERVER_ERROR disk full: change refused");
        break;
    case CMD_ERR_NOTDURABLE:
        buf_adds(b, "SERVER_ERROR value is not durable after a failed sync");
        break;
    case CMD_ERR_UNAVAILABLE:
        buf_printf(b, "SERVER_ERROR store unavailable, nothing changed%s%s",
                   res->detail[0] ? ": " : "", res->detail);
        break;
    case CMD_ERR_UNKNOWN:
        buf_adds(b, "SERVER_ERROR outcome unknown: the connection to the "
                    "store was lost after the change was sent");
        break;
    case CMD_ERR_UNSUPPORTED:
        buf_printf(b, "SERVER_ERROR %s", res->detail[0]
                                             ? res->detail
                                             : "not supported by this store");
        break;
    default:
        buf_printf(b, "SERVER_ERROR %s%s%s", cmd_status_name(res->status),
                   res->detail[0] ? " " : "", res->detail);
        break;
    }
    buf_add(b, "\r\n", 2);
}

enum cmd_status mc_get(struct mc_req *r, const struct mc_tok *key,
                       struct cmd_res *res)
{
    struct cmd_req q = {.op = CMD_GET, .key = key->p, .klen = key->len};
    return mc_exec(r, &q, res);
}

enum cmd_status mc_set(struct mc_req *r, const struct mc_tok *key, int64_t v,
                       unsigned flags, const struct mc_exp *e,
                       struct cmd_res *res)
{
    struct cmd_req q = {.op = CMD_SET, .key = key->p, .klen = key->len,
                        .num = v, .flags = flags};
    if (e) {
        q.flags |= e->flags;
        q.expire = e->expire;
    }
    return mc_exec(r, &q, res);
}

enum cmd_status mc_touch(struct mc_req *r, const struct mc_tok *key,
                         const struct mc_exp *e, struct cmd_res *res)
{
    struct cmd_req q = {.op = CMD_GETEX, .key = key->p, .klen = key->len,
                        .flags = e->flags ? e->flags : CMD_F_PERSIST,
                        .expire = e->expire};
    return mc_exec(r, &q, res);
}

enum cmd_status mc_one_key(struct mc_req *r, enum cmd_op op,
                           const struct mc_tok *key, struct cmd_res *res)
{
    const char *keys[1] = {key->p};
    size_t klens[1] = {key->len};
    struct cmd_req q = {.op = op, .nkeys = 1, .keys = keys, .klens = klens};
    return mc_exec(r, &q, res);
}

/* ---- Read, compare, change: cas, incr, decr, ms, md, ma (shared) ------ */

/* Each of these is one store operation (a SET only if the counter holds
 * the value the client saw, an INCRBY that must find the counter and, for
 * decr, stops at 0), so it stays atomic with many tallyd instances on one
 * database, not only because one thread runs this daemon's requests. */

/* The value whose cas unique is u: mc_cas_of undone step by step (each
 * xor-shift and each odd multiplier has an inverse), so a cas names the
 * value it expects. */
int64_t mc_value_of(uint64_t u)
{
    uint64_t x = u;
    x ^= (x >> 31) ^ (x >> 62);
    x *= 0x319642b2d24d8ec3ULL; /* inverse of 0x94d049bb133111eb */
    x ^= (x >> 27) ^ (x >> 54);
    x *= 0x96de1b173f119089ULL; /* inverse of 0xbf58476d1ce4e5b9 */
    x ^= (x >> 30) ^ (x >> 60);
    return (int64_t)(x ^ 0x9e3779b97f4a7c15ULL);
}

enum mc_rmw mc_cas_check(struct mc_req *r, const struct mc_tok *key,
                         const uint64_t *want_cas, struct cmd_res *res)
{
    enum cmd_status st = mc_get(r, key, res);
    if (st == CMD_NOTFOUND)
        return MC_RMW_NOTFOUND;
    if (st != CMD_OK)
        return MC_RMW_ERR;
    if (want_cas && mc_cas_of(res->value) != *want_cas)
        return MC_RMW_EXISTS;
    return MC_RMW_OK;
}

/* Set key to v only if it holds `expect`: the outcome of one SET with
 * CMD_F_IFEQ (flags and e as for mc_set). */
static enum mc_rmw mc_set_ifeq(struct mc_req *r, const struct mc_tok *key,
                               int64_t v, int64_t expect, unsigned flags,
                               const struct mc_exp *e, struct cmd_res *res)
{
    struct cmd_req q = {.op = CMD_SET, .key = key->p, .klen = key->len,
                        .num = v, .cmp = expect, .flags = flags | CMD_F_IFEQ};
    if (e) {
        q.flags |= e->flags;
        q.expire = e->expire;
    }
    switch (mc_exec(r, &q, res)) {
    case CMD_OK: return MC_RMW_OK;
    case CMD_NOTSET: return res->found ? MC_RMW_EXISTS : MC_RMW_NOTFOUND;
    default: return MC_RMW_ERR;
    }
}

enum mc_rmw mc_store_cas(struct mc_req *r, const struct mc_tok *key,
                         int64_t v, unsigned flags, const struct mc_exp *e,
                         uint64_t unique, struct cmd_res *res)
{
    enum mc_rmw o = mc_set_ifeq(r, key, v, mc_value_of(unique), flags, e,
                                res);
    if (o == MC_RMW_NOTFOUND)
        MC_COUNT(r, cas_misses);
    else if (o == MC_RMW_EXISTS)
        MC_COUNT(r, cas_badval);
    else if (o == MC_RMW_OK)
        MC_COUNT(r, cas_hits);
    return o;
}

/* How many times mc_arith reads again when the counter changed between its
 * read and its compare-and-set (only for a delta INCRBY cannot carry). */
#define MC_ARITH_TRIES 8

/* Apply delta to key: incr adds (an overflow is an error, not a wrap), decr
 * subtracts but never takes a counter below 0, and leaves a counter that is
 * already negative as it is.  If want_cas is set the change happens only if
 * the counter's cas unique equals *want_cas.  On MC_RMW_OK *value holds the
 * new value; on MC_RMW_ERR res holds the command layer's status. */
enum mc_rmw mc_arith(struct mc_req *r, const struct mc_tok *key, int incr,
                     uint64_t delta, const uint64_t *want_cas, int64_t *value,
                     struct cmd_res *res)
{
    if (!want_cas && (!incr || delta <= (uint64_t)INT64_MAX)) {
        /* One INCRBY: the floor holds any decr delta past INT64_MAX too. */
        struct cmd_req q = {.op = CMD_INCRBY, .key = key->p,
                            .klen = key->len,
                            .num = incr ? (int64_t)delta
                                 : delta > (uint64_t)INT64_MAX
                                     ? -INT64_MAX : -(int64_t)delta,
                            .flags = CMD_F_MUSTEXIST |
                                     (incr ? 0 : CMD_F_FLOOR0)};
        enum cmd_status st = mc_exec(r, &q, res);
        if (st == CMD_NOTFOUND)
            return MC_RMW_NOTFOUND;
        if (st != CMD_OK)
            return MC_RMW_ERR;
        *value = res->value;
        return MC_RMW_OK;
    }
    /* A cas, or an incr past INT64_MAX that only a negative counter can
     * take: read, compute, and write only if the counter still holds what
     * was read (one compare-and-set, keeping the expiry). */
    for (int tries = 0;; tries++) {
        enum mc_rmw o = mc_cas_check(r, key, want_cas, res);
        if (o != MC_RMW_OK)
            return o;
        int64_t v = res->value, n;
        if (incr) {
            __int128 sum = (__int128)v + (__int128)delta;
            if (sum > INT64_MAX) {
                res->status = CMD_ERR_OVERFLOW;
                return MC_RMW_ERR;
            }
            n = (int64_t)sum;
        } else {
            n = v <= 0 ? v : delta < (uint64_t)v ? v - (int64_t)delta : 0;
        }
        if (n == v) {
            *value = v;
            return MC_RMW_OK;
        }
        o = mc_set_ifeq(r, key, n, v, CMD_F_KEEPTTL, NULL, res);
        if (o == MC_RMW_OK)
            *value = n;
        if (o != MC_RMW_EXISTS || want_cas || tries + 1 == MC_ARITH_TRIES)
            return o;
    }
}

void mc_count_arith(struct mc_req *r, int incr, int hit)
{
    if (incr && hit)
        MC_COUNT(r, incr_hits);
    else if (incr)
        MC_COUNT(r, incr_misses);
    else if (hit)
        MC_COUNT(r, decr_hits);
    else
        MC_COUNT(r, decr_misses);
}

/* ---- Data blocks (shared) ---------------------------------------------- */

/* MC_DATA_OK: the block is whole, *data points at it and *used covers line,
 * data and "\r\n".  MC_DATA_MORE: wait.  MC_DATA_BAD: not followed by
 * "\r\n"; *used still skips it, as memcached does.  MC_DATA_SWALLOW: larger
 * than the daemon accepts; *used covers the line only and the connection
 * drops the block as it arrives. */
enum mc_data mc_frame(struct mc_conn *c, const char *in, size_t len,
                      size_t linelen, uint64_t bytes, const char **data,
                      size_t *used)
{
    if (bytes > c->lim.max_bulk) {
        c->swallow = bytes + 2;
        *used = linelen;
        return MC_DATA_SWALLOW;
    }
    if (len - linelen < bytes + 2)
        return MC_DATA_MORE;
    *data = in + linelen;
    *used = linelen + bytes + 2;
    if (memcmp(*data + bytes, "\r\n", 2) != 0)
        return MC_DATA_BAD;
    return MC_DATA_OK;
}

int mc_data_refused(struct mc_req *r, enum mc_data d)
{
    if (d == MC_DATA_SWALLOW) {
        mc_reply(r, "SERVER_ERROR object too large for cache");
        return 1;
    }
    if (d == MC_DATA_BAD) {
        mc_reply(r, "CLIENT_ERROR bad data chunk");
        return 1;
    }
    return 0;
}

/* ---- Classic commands -------------------------------------------------- */

/* One "VALUE <key> 0 <bytes> [<cas>]" block of a get-family reply. */
static void mc_value(struct buf *b, const char *key, size_t klen, int64_t v,
                     int cas)
{
    char num[24];
    size_t nlen = i64_to_dec(v, num);
    buf_add(b, "VALUE ", 6);
    buf_add(b, key, klen);
    buf_printf(b, " 0 %zu", nlen);
    if (cas)
        buf_printf(b, " %" PRIu64, mc_cas_of(v));
    buf_add(b, "\r\n", 2);
    buf_add(b, num, nlen);
    buf_add(b, "\r\n", 2);
}

/* The next space-separated key of [*p, end), *p moved past it. */
static struct mc_tok mc_next_key(const char **p, const char *end)
{
    struct mc_tok key = {*p, 0};
    while (*p < end && **p != ' ')
        (*p)++;
    key.len = (size_t)(*p - key.p);
    while (*p < end && **p == ' ')
        (*p)++;
    return key;
}

/* get, gets: every key in one CMD_MGET, so a multiget is one store
 * operation (one round trip on a remote store, run once however many keys
 * it names) rather than one per key.  Returns the hits; 0 with an error
 * reply written if the store failed. */
static uint64_t mc_multiget(struct mc_req *r, const char *p, const char *end,
                            size_t nkeys, int cas, int *failed)
{
    const char **keys = xmalloc(nkeys * sizeof *keys);
    size_t *klens = xmalloc(nkeys * sizeof *klens);
    int64_t *values = xmalloc(nkeys * sizeof *values);
    unsigned char *founds = xmalloc(nkeys);
    uint64_t hits = 0;

    for (size_t i = 0; i < nkeys; i++) {
        struct mc_tok key = mc_next_key(&p, end);
        keys[i] = key.p;
        klens[i] = key.len;
    }
    struct cmd_req q = {.op = CMD_MGET, .nkeys = nkeys, .keys = keys,
                        .klens = klens};
    struct cmd_res res;
    memset(&res, 0, sizeof res);
    res.values = values;
    res.founds = founds;
    cmd_exec(r->c->ctx, r->c->s, &q, &res);
    if (res.ticket > r->out->ticket)
        r->out->ticket = res.ticket;
    *failed = res.status != CMD_OK;
    if (*failed) {
        mc_reply_status(r, &res);
    } else {
        for (size_t i = 0; i < nkeys; i++)
            if (founds[i]) {
                hits++;
                mc_value(r->out->buf, keys[i], klens[i], values[i], cas);
            }
    }
    free(keys);
    free(klens);
    free(values);
    free(founds);
    return hits;
}

/* gat, gats: a touch per key (each changes that key's expiry). */
static uint64_t mc_multitouch(struct mc_req *r, const char *p,
                              const char *end, const struct mc_exp *exp,
                              int cas, int *failed)
{
    struct buf *b = r->out->buf;
    size_t mark = b->len;
    uint64_t hits = 0;
    *failed = 0;
    while (p < end) {
        struct mc_tok key = mc_next_key(&p, end);
        struct cmd_res res;
        enum cmd_status st = mc_touch(r, &key, exp, &res);
        if (st == CMD_NOTFOUND)
            continue;
        if (st != CMD_OK) {
            b->len = mark;
            mc_reply_status(r, &res);
            *failed = 1;
            return 0;
        }
        hits++;
        mc_value(b, key.p, key.len, res.value, cas);
    }
    return hits;
}

/* get, gets, gat, gats: line tokens t[0, n) may hold only the first
 * MC_MAX_TOKENS keys, so keys are walked straight from the line. */
static void mc_cmd_get(struct mc_req *r, const char *line, size_t len,
                       int cas, int touch)
{
    struct mc_tok t[3];
    size_t n = mc_tokenize(line, len, t, 3);
    size_t first = touch ? 2 : 1;
    if (n < 2) {
        mc_reply(r, "ERROR");
        return;
    }
    struct mc_exp exp = {0, 0};
    if (touch && mc_parse_exptime(t[1].p, t[1].len, &exp) < 0) {
        mc_reply(r, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    if (n <= first) { /* "gat <exptime>" without keys, as memcached has it */
        mc_reply(r, "END");
        return;
    }
    const char *p = t[first].p, *end = line + len;
    size_t nkeys = 0;
    /* Check every key before any work, so an error leaves no half reply. */
    for (const char *q = p; q < end; nkeys++) {
        struct mc_tok key = mc_next_key(&q, end);
        if (key.len > MC_KEY_MAX) {
            mc_reply(r, "CLIENT_ERROR bad command line format");
            return;
        }
    }
    int failed;
    uint64_t hits = touch ? mc_multitouch(r, p, end, &exp, cas, &failed)
                          : mc_multiget(r, p, end, nkeys, cas, &failed);
    if (failed)
        return;
    uint64_t misses = nkeys - hits;
    buf_add(r->out->buf, "END\r\n", 5);
    MC_COUNT_N(r, cmd_get, hits + misses);
    MC_COUNT_N(r, get_hits, hits);
    MC_COUNT_N(r, get_misses, misses);
    if (touch) {
        MC_COUNT_N(r, cmd_touch, hits + misses);
        MC_COUNT_N(r, touch_hits, hits);
        MC_COUNT_N(r, touch_misses, misses);
    }
}

enum mc_store { MC_SET, MC_ADD, MC_REPLACE, MC_CAS, MC_APPEND, MC_PREPEND };

/* memcached -Y style login: while a password is set and the session has not
 * authenticated, "set" carries "<username> <password>" as its data (the user
 * name is ignored; the part after the first space, or all of it, is the
 * password). */
static void mc_auth(struct mc_req *r, const char *data, size_t n)
{
    const char *sp = memchr(data, ' ', n);
    struct cmd_req q = {.op = CMD_AUTH};
    struct cmd_res res;
    q.pass = sp ? sp + 1 : data;
    q.passlen = sp ? n - (size_t)(sp + 1 - data) : n;
    MC_COUNT(r, auth_cmds);
    if (mc_exec(r, &q, &res) == CMD_OK) {
        mc_reply(r, "STORED");
    } else {
        MC_COUNT(r, auth_errors);
        mc_reply(r, "CLIENT_ERROR authentication failure");
    }
}

/* set/add/replace/append/prepend <key> <flags> <exptime> <bytes> [noreply]
 * and cas <key> <flags> <exptime> <bytes> <unique> [noreply].  Returns bytes
 * consumed, 0 to wait for the data block. */
static size_t mc_cmd_store(struct mc_req *r, const struct mc_tok *t, size_t n,
                           enum mc_store kind, const char *in, size_t len,
                           size_t linelen)
{
    size_t want = kind == MC_CAS ? 6 : 5;
    uint64_t flags, bytes, unique = 0;
    struct mc_exp exp;
    if (n != want && n != want + 1) {
        mc_reply(r, "ERROR");
        return linelen;
    }
    r->noreply = n == want + 1 && tok_is(&t[n - 1], "noreply");
    if (t[1].len > MC_KEY_MAX ||
        mc_parse_u64(t[2].p, t[2].len, &flags) < 0 ||
        mc_parse_exptime(t[3].p, t[3].len, &exp) < 0 ||
        mc_parse_datalen(&t[4], &bytes) < 0 ||
        (kind == MC_CAS && mc_parse_u64(t[5].p, t[5].len, &unique) < 0)) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return linelen;
    }
    const char *data;
    size_t used;
    enum mc_data framed = mc_frame(r->c, in, len, linelen, bytes, &data,
                                   &used);
    if (framed == MC_DATA_MORE) {
        r->noreply = 0;
        return 0;
    }
    if (mc_data_refused(r, framed))
        return used;
    if (kind == MC_SET && !cmd_authorized(r->c->ctx, r->c->s)) {
        mc_auth(r, data, (size_t)bytes);
        return used;
    }
    MC_COUNT(r, cmd_set);
    if (kind == MC_APPEND || kind == MC_PREPEND) {
        mc_reply(r, "CLIENT_ERROR append and prepend are not supported on "
                 "counters");
        return used;
    }
    int64_t v;
    if (cmd_parse_i64(data, (size_t)bytes, &v) < 0) {
        mc_reply(r, "CLIENT_ERROR bad data chunk");
        return used;
    }
    struct cmd_res res;
    unsigned f = kind == MC_ADD ? CMD_F_NX
               : kind == MC_REPLACE ? CMD_F_XX : 0;
    if (kind == MC_CAS) {
        switch (mc_store_cas(r, &t[1], v, 0, &exp, unique, &res)) {
        case MC_RMW_NOTFOUND:
            mc_reply(r, "NOT_FOUND");
            return used;
        case MC_RMW_EXISTS:
            mc_reply(r, "EXISTS");
            return used;
        case MC_RMW_ERR:
            mc_reply_status(r, &res);
            return used;
        case MC_RMW_OK:
            MC_COUNT(r, total_items);
            mc_reply(r, "STORED");
            return used;
        }
    }
    enum cmd_status st = mc_set(r, &t[1], v, f, &exp, &res);
    if (st == CMD_OK) {
        MC_COUNT(r, total_items);
        mc_reply(r, "STORED");
    } else if (st == CMD_NOTSET) {
        mc_reply(r, "NOT_STORED");
    } else {
        mc_reply_status(r, &res);
    }
    return used;
}

/* The head shared by "<cmd> <key> <arg> [noreply]" lines (incr, decr,
 * touch): right token count, noreply noted, key short enough.  Returns 0, or
 * -1 after replying. */
static int mc_key_arg_head(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    if (n != 3 && n != 4) {
        mc_reply(r, "ERROR");
        return -1;
    }
    r->noreply = n == 4 && tok_is(&t[3], "noreply");
    if (t[1].len > MC_KEY_MAX) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return -1;
    }
    return 0;
}

/* incr|decr <key> <delta> [noreply] */
static void mc_cmd_arith(struct mc_req *r, const struct mc_tok *t, size_t n,
                         int incr)
{
    uint64_t delta;
    if (mc_key_arg_head(r, t, n) < 0)
        return;
    if (mc_parse_u64(t[2].p, t[2].len, &delta) < 0) {
        mc_reply(r, "CLIENT_ERROR invalid numeric delta argument");
        return;
    }
    struct cmd_res res;
    int64_t v;
    switch (mc_arith(r, &t[1], incr, delta, NULL, &v, &res)) {
    case MC_RMW_OK: {
        char num[24];
        num[i64_to_dec(v, num)] = 0;
        mc_count_arith(r, incr, 1);
        mc_reply(r, num);
        break;
    }
    case MC_RMW_NOTFOUND:
        mc_count_arith(r, incr, 0);
        mc_reply(r, "NOT_FOUND");
        break;
    case MC_RMW_EXISTS: /* no cas asked for: cannot happen */
    case MC_RMW_ERR:
        mc_reply_status(r, &res);
        break;
    }
}

/* delete <key> [0] [noreply]: the "0" is a hold time memcached still takes
 * for old clients when it is zero. */
static void mc_cmd_delete(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    if (n < 2 || n > 4) {
        mc_reply(r, "ERROR");
        return;
    }
    r->noreply = n > 2 && tok_is(&t[n - 1], "noreply");
    int zero = n > 2 && tok_is(&t[2], "0");
    if (t[1].len > MC_KEY_MAX) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return;
    }
    if ((n == 3 && !zero && !r->noreply) || (n == 4 && !(zero && r->noreply))) {
        mc_reply(r, "CLIENT_ERROR bad command line format.  "
                 "Usage: delete <key> [noreply]");
        return;
    }
    struct cmd_res res;
    if (mc_one_key(r, CMD_DEL, &t[1], &res) != CMD_OK) {
        mc_reply_status(r, &res);
    } else if (res.n) {
        MC_COUNT(r, delete_hits);
        mc_reply(r, "DELETED");
    } else {
        MC_COUNT(r, delete_misses);
        mc_reply(r, "NOT_FOUND");
    }
}

/* touch <key> <exptime> [noreply]: a new expiry (0: none) for a counter
 * that exists, its value untouched. */
static void mc_cmd_touch(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    struct mc_exp exp;
    if (mc_key_arg_head(r, t, n) < 0)
        return;
    if (mc_parse_exptime(t[2].p, t[2].len, &exp) < 0) {
        mc_reply(r, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    struct cmd_res res;
    MC_COUNT(r, cmd_touch);
    enum cmd_status st = mc_touch(r, &t[1], &exp, &res);
    if (st == CMD_OK) {
        MC_COUNT(r, touch_hits);
        mc_reply(r, "TOUCHED");
    } else if (st == CMD_NOTFOUND) {
        MC_COUNT(r, touch_misses);
        mc_reply(r, "NOT_FOUND");
    } else {
        mc_reply_status(r, &res);
    }
}

/* Keys collected for flush_all: each is a size_t length, then the bytes. */
static int mc_collect_key(void *ctx, const char *key, size_t klen,
                          int64_t value)
{
    struct buf *keys = ctx;
    buf_add(keys, &klen, sizeof klen);
    buf_add(keys, key, klen);
    return 0;
}

/* flush_all [0] [noreply]: deletes every counter, through the command layer,
 * and answers once all the deletions are durable.  Refused unless the daemon
 * was started with --allow-flush; a nonzero delay is refused too (tally would
 * have to remember a pending flush across restarts). */
static void mc_cmd_flush(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    if (n > 3) {
        mc_reply(r, "ERROR");
        return;
    }
    r->noreply = n > 1 && tok_is(&t[n - 1], "noreply");
    if (!r->c->front->opts.allow_flush) {
        mc_reply(r, "CLIENT_ERROR flush_all not allowed");
        return;
    }
    if (n > 1 && !tok_is(&t[1], "noreply")) {
        int64_t delay;
        if (mc_parse_i64(t[1].p, t[1].len, &delay) < 0) {
            mc_reply(r, "CLIENT_ERROR invalid exptime argument");
            return;
        }
        if (delay != 0) {
            mc_reply(r, "CLIENT_ERROR flush_all with a delay is not supported");
            return;
        }
    }
    MC_COUNT(r, cmd_flush);
    struct buf keys = BUF_INIT;
    struct cmd_req q = {.op = CMD_KEYS};
    struct cmd_res res;
    memset(&res, 0, sizeof res);
    res.item = mc_collect_key;
    res.item_ctx = &keys;
    cmd_exec(r->c->ctx, r->c->s, &q, &res);
    if (res.ticket > r->out->ticket)
        r->out->ticket = res.ticket;
    if (res.status != CMD_OK) {
        mc_reply_status(r, &res);
        goto cleanup;
    }
    const char **kp = xmalloc(MC_FLUSH_BATCH * sizeof *kp);
    size_t *kl = xmalloc(MC_FLUSH_BATCH * sizeof *kl);
    size_t off = 0;
    while (off < keys.len) {
        size_t k = 0;
        while (off < keys.len && k < MC_FLUSH_BATCH) {
            memcpy(&kl[k], keys.p + off, sizeof *kl);
            kp[k] = keys.p + off + sizeof *kl;
            off += sizeof *kl + kl[k];
            k++;
        }
        struct cmd_req d = {.op = CMD_DEL, .nkeys = k, .keys = kp,
                            .klens = kl};
        if (mc_exec(r, &d, &res) != CMD_OK)
            break;
    }
    free(kp);
    free(kl);
    if (res.status != CMD_OK)
        mc_reply_status(r, &res);
    else
        mc_reply(r, "OK");
cleanup:
    buf_free(&keys);
}

static void stat_u64(struct buf *b, const char *name, uint64_t v)
{
    buf_printf(b, "STAT %s %" PRIu64 "\r\n", name, v);
}

/* stats: memcached's general-purpose statistics, the ones that mean something
 * for durable counters, then a few of tally's own (prefixed tally_). */
static void mc_cmd_stats(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    if (n > 1) {
        /* memcached answers a subcommand it does not know with ERROR; tally
         * knows none of them (settings, slabs, items describe a cache). */
        mc_reply(r, "ERROR");
        return;
    }
    const struct cmd_serverinfo *info = r->c->ctx->info;
    struct buf *b = r->out->buf;
    tally_stats st;
    struct rusage ru;
    struct cmd_keyspace ks;
    time_t now = time(NULL);
    /* A store that answers later runs stats again once it has: this run's
     * reply is dropped (the daemon sees the session pending). */
    if (cmd_stats(r->c->ctx, r->c->s, &st, &ks) == CMD_PENDING)
        return;
    stat_u64(b, "pid", info ? (uint64_t)info->pid : (uint64_t)getpid());
    stat_u64(b, "uptime", info && now > info->start_unix
                              ? (uint64_t)(now - info->start_unix) : 0);
    stat_u64(b, "time", (uint64_t)now);
    buf_printf(b, "STAT version %s\r\n",
               info && info->version ? info->version : TALLY_VERSION);
    stat_u64(b, "pointer_size", 8 * sizeof(void *));
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        buf_printf(b, "STAT rusage_user %ld.%06ld\r\n",
                   (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
        buf_printf(b, "STAT rusage_system %ld.%06ld\r\n",
                   (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    }
    if (info) {
        stat_u64(b, "max_connections", info->maxclients);
        stat_u64(b, "curr_connections", info->connected_clients);
        stat_u64(b, "total_connections", info->total_connections);
        stat_u64(b, "rejected_connections", info->rejected_connections);
    }
    static const struct { const char *name; size_t off; } rows[] = {
#define ROW(f) {#f, offsetof(struct mc_counters, f)}
        ROW(cmd_get), ROW(cmd_set), ROW(cmd_flush), ROW(cmd_touch),
        ROW(cmd_meta), ROW(get_hits), ROW(get_misses), ROW(delete_misses),
        ROW(delete_hits), ROW(incr_misses), ROW(incr_hits), ROW(decr_misses),
        ROW(decr_hits), ROW(cas_misses), ROW(cas_hits), ROW(cas_badval),
        ROW(touch_hits), ROW(touch_misses), ROW(auth_cmds), ROW(auth_errors),
#undef ROW
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const uint64_t *f =
            (const uint64_t *)((const char *)&r->c->front->n + rows[i].off);
        stat_u64(b, rows[i].name, __atomic_load_n(f, __ATOMIC_RELAXED));
    }
    /* Counters are never evicted.  Expired ones are removed by the engine
     * (on access, by its active expiry cycle, or when it opens the
     * directory): that is memory reclaimed from expired entries, memcached's
     * "reclaimed" (on a remote store: those this instance saw expire).
     * curr_items and tally_expires are exact (expired counters are not
     * counted). */
    stat_u64(b, "evictions", 0);
    stat_u64(b, "reclaimed", st.expired);
    stat_u64(b, "curr_items", ks.keys);
    stat_u64(b, "total_items", MC_READ(r, total_items));
    stat_u64(b, "tally_expires", ks.expires);
    stat_u64(b, "tally_avg_ttl_ms",
             ks.avg_ttl_ms > 0 ? (uint64_t)ks.avg_ttl_ms : 0);
    stat_u64(b, "tally_durable", st.durable);
    stat_u64(b, "tally_head", st.head);
    stat_u64(b, "tally_changes", st.changes);
    stat_u64(b, "tally_syncs", st.syncs);
    stat_u64(b, "tally_log_bytes", st.log_bytes);
    stat_u64(b, "tally_snapshot_bytes", st.snapshot_bytes);
    buf_printf(b, "STAT tally_fsync %s\r\n",
               st.sync == TALLY_SYNC_ALWAYS ? "always"
               : st.sync == TALLY_SYNC_EVERYSEC ? "everysec" : "no");
    buf_add(b, "END\r\n", 5);
}

/* verbosity <level> [noreply]: accepted for compatibility; the daemon's log
 * level is set at start (--log-level), not per memcached connection. */
static void mc_cmd_verbosity(struct mc_req *r, const struct mc_tok *t,
                             size_t n)
{
    uint64_t level;
    if (n != 2 && n != 3) {
        mc_reply(r, "ERROR");
        return;
    }
    r->noreply = tok_is(&t[n - 1], "noreply");
    if (mc_parse_u64(t[1].p, t[1].len, &level) < 0) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return;
    }
    mc_reply(r, "OK");
}

/* ---- Dispatch ---------------------------------------------------------- */

/* Does line[0, len), whose command tally does not know, look like an HTTP
 * request line ("GET / HTTP/1.0", "DELETE HTTP/1.1")?  memcached's rule
 * (proto_text.c): its last token begins with "HTTP/".  A web page can make
 * a browser send such a request to this port, and the lines of its body
 * would then run as commands (cross-protocol scripting), so the answer is
 * to hang up at once, without a reply and without reading further. */
static int mc_looks_like_http(const char *line, size_t len)
{
    size_t end = len, start;
    while (end > 0 && line[end - 1] == ' ')
        end--;
    for (start = end; start > 0 && line[start - 1] != ' '; start--)
        ;
    return end - start >= 5 && memcmp(line + start, "HTTP/", 5) == 0;
}

/* Hang up on an HTTP request line (see above).  Returns the bytes consumed:
 * all of them, so nothing after it runs. */
static size_t mc_hang_up_on_http(struct proto_out *out, size_t len)
{
    out->flags |= PROTO_ATTACK | PROTO_CLOSE;
    return len;
}

/* A get-family line may grow past MC_LINE_MAX (a large multiget). */
static int mc_is_multiget(const char *in, size_t len)
{
    size_t i = 0;
    while (i < len && i < 100 && in[i] == ' ')
        i++;
    return (len - i >= 4 && (!memcmp(in + i, "get ", 4) ||
                             !memcmp(in + i, "gat ", 4))) ||
           (len - i >= 5 && (!memcmp(in + i, "gets ", 5) ||
                             !memcmp(in + i, "gats ", 5)));
}

static size_t mc_handle(void *conn, const char *in, size_t len,
                        struct proto_out *out)
{
    struct mc_conn *c = conn;
    struct mc_req r = {c, out, 0};
    if (c->swallow) {
        size_t n = len < c->swallow ? len : (size_t)c->swallow;
        c->swallow -= n;
        return n;
    }
    size_t cap = len < MC_LINE_MAX ? len : MC_LINE_MAX;
    const char *nl = memchr(in, '\n', cap);
    if (!nl && len > MC_LINE_MAX && mc_is_multiget(in, len)) {
        cap = len < c->lim.max_request ? len : c->lim.max_request;
        nl = memchr(in, '\n', cap);
        if (!nl && len < c->lim.max_request)
            return 0;
    }
    if (!nl) {
        if (len <= MC_LINE_MAX)
            return 0;
        /* memcached just closes here; saying why first costs nothing. */
        buf_adds(out->buf, "CLIENT_ERROR line too long\r\n");
        out->flags |= PROTO_CLOSE;
        return len;
    }
    size_t linelen = (size_t)(nl - in) + 1;
    size_t l = linelen - 1;
    if (l && in[l - 1] == '\r')
        l--;

    struct mc_tok t[MC_MAX_TOKENS];
    size_t n = mc_tokenize(in, l, t, MC_MAX_TOKENS);
    if (n == 0) {
        mc_reply(&r, "ERROR");
        return linelen;
    }
    const struct mc_tok *cmd = &t[0];
    if (tok_is(cmd, "quit")) {
        out->flags |= PROTO_CLOSE;
        return linelen;
    }
    int is_set = tok_is(cmd, "set");
    if (!is_set && !cmd_authorized(c->ctx, c->s)) {
        /* Before login only set and quit are commands, so memcached's HTTP
         * rule applies to every other line: hanging up also keeps a web
         * page from guessing the password through a body of set lines. */
        if (mc_looks_like_http(in, l))
            return mc_hang_up_on_http(out, len);
        mc_reply(&r, "CLIENT_ERROR unauthenticated");
        return linelen;
    }
    /* Storage commands frame a data block. */
    static const struct { const char *name; enum mc_store kind; } stores[] = {
        {"set", MC_SET}, {"add", MC_ADD}, {"replace", MC_REPLACE},
        {"cas", MC_CAS}, {"append", MC_APPEND}, {"prepend", MC_PREPEND},
    };
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++)
        if (tok_is(cmd, stores[i].name))
            return mc_cmd_store(&r, t, n, stores[i].kind, in, len, linelen);
    if (tok_is(cmd, "ms"))
        return mc_cmd_ms(&r, t, n, in, len, linelen);

    if (tok_is(cmd, "get"))
        mc_cmd_get(&r, in, l, 0, 0);
    else if (tok_is(cmd, "gets"))
        mc_cmd_get(&r, in, l, 1, 0);
    else if (tok_is(cmd, "gat"))
        mc_cmd_get(&r, in, l, 0, 1);
    else if (tok_is(cmd, "gats"))
        mc_cmd_get(&r, in, l, 1, 1);
    else if (n > MC_MAX_TOKENS && cmd->len != 2)
        mc_reply(&r, "ERROR"); /* no classic command takes that many */
    else if (tok_is(cmd, "incr"))
        mc_cmd_arith(&r, t, n, 1);
    else if (tok_is(cmd, "decr"))
        mc_cmd_arith(&r, t, n, 0);
    else if (tok_is(cmd, "delete"))
        mc_cmd_delete(&r, t, n);
    else if (tok_is(cmd, "touch"))
        mc_cmd_touch(&r, t, n);
    else if (tok_is(cmd, "mg"))
        mc_cmd_mg(&r, t, n);
    else if (tok_is(cmd, "ma"))
        mc_cmd_ma(&r, t, n);
    else if (tok_is(cmd, "md"))
        mc_cmd_md(&r, t, n);
    else if (tok_is(cmd, "mn"))
        mc_reply(&r, "MN");
    else if (tok_is(cmd, "version"))
        buf_printf(out->buf, "VERSION %s\r\n",
                   c->ctx->info && c->ctx->info->version
                       ? c->ctx->info->version : TALLY_VERSION);
    else if (tok_is(cmd, "stats"))
        mc_cmd_stats(&r, t, n);
    else if (tok_is(cmd, "flush_all"))
        mc_cmd_flush(&r, t, n);
    else if (tok_is(cmd, "verbosity"))
        mc_cmd_verbosity(&r, t, n);
    else if (mc_looks_like_http(in, l))
        return mc_hang_up_on_http(out, len);
    else
        mc_reply(&r, "ERROR");
    return linelen;
}

/* proto_ops.ahead (cmd.h "Pipelined look-ahead"): "get <keys>" (one MGET)
 * and "incr|decr <key> <delta> [noreply]" by what one INCRBY takes
 * (mc_arith); the line's length, else 0.  Everything else, gets and the
 * storage commands with their data blocks among them, waits its turn. */
static size_t mc_ahead(void *conn, const char *in, size_t len)
{
    struct mc_conn *c = conn;
    size_t cap = len < MC_LINE_MAX ? len : MC_LINE_MAX;
    const char *nl;
    struct mc_tok t[MC_MAX_TOKENS];
    size_t n, linelen, l;
    uint64_t delta;

    if (c->swallow || !cmd_authorized(c->ctx, c->s) ||
        !(nl = memchr(in, '\n', cap)))
        return 0;
    linelen = (size_t)(nl - in) + 1;
    l = linelen - 1;
    if (l && in[l - 1] == '\r')
        l--;
    n = mc_tokenize(in, l, t, MC_MAX_TOKENS);
    if (n >= 2 && n <= MC_MAX_TOKENS && tok_is(&t[0], "get"))
        return cmd_ahead_ok(c->ctx, CMD_MGET) ? linelen : 0;
    if ((n == 3 || n == 4) &&
        (tok_is(&t[0], "incr") || tok_is(&t[0], "decr")) &&
        mc_parse_u64(t[2].p, t[2].len, &delta) == 0 &&
        (t[0].p[0] == 'd' || delta <= (uint64_t)INT64_MAX))
        return cmd_ahead_ok(c->ctx, CMD_INCRBY) ? linelen : 0;
    return 0;
}

const struct proto_ops mc_ops = {
    .name = "memcache",
    .conn_new = mc_conn_new,
    .conn_free = mc_conn_free,
    .handle = mc_handle,
    .ahead = mc_ahead,
};
