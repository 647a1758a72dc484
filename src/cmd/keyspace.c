/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * keyspace.c - the key-level commands client libraries send (cmd.h
 * "Keyspace"): RENAME/RENAMENX and COPY (atomic, keeping the TTL),
 * FLUSHDB/FLUSHALL (only with --allow-flush) and RANDOMKEY.  Each is made
 * of the ordinary requests (GET, SET, DEL, SCAN) through cmd_exec, so
 * statistics, WATCH and durability tickets work as for any request, and
 * the multi-step ones run inside one atomic batch, their reads too.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cmd.h"
#include "util.h"

/* How many keys FLUSH deletes per DEL: one batch record stays small. */
#define FLUSH_CHUNK 512

/* A step's ticket into the command's, and the first step's detail that
 * says more (a store's CROSSSLOT, unavailable, ...) for its error reply. */
static void keep_ticket(struct cmd_res *into, const struct cmd_res *from)
{
    if (from->ticket > into->ticket)
        into->ticket = from->ticket;
    if (!into->detail[0] && from->detail[0])
        memcpy(into->detail, from->detail, sizeof into->detail);
}

/* Read key into *r (value, expire_at). */
static enum cmd_status get(struct cmd_ctx *ctx, struct cmd_session *s,
                           const char *key, size_t klen, struct cmd_res *r,
                           struct cmd_res *res)
{
    struct cmd_req req = {.op = CMD_GET, .key = key, .klen = klen};
    enum cmd_status st = cmd_exec(ctx, s, &req, r);

    keep_ticket(res, r);
    return st;
}

/* Write value (and the absolute expiry, 0 for none) to key, then delete
 * del (NULL: nothing), in one batch. */
static enum cmd_status put_move(struct cmd_ctx *ctx, struct cmd_session *s,
                                const char *key, size_t klen, int64_t value,
                                int64_t expire_at, const char *del,
                                size_t dlen, struct cmd_res *res)
{
    struct cmd_req set = {.op = CMD_SET, .key = key, .klen = klen,
                          .num = value,
                          .flags = expire_at ? CMD_F_PXAT : 0,
                          .expire = expire_at};
    const char *keys[1] = {del};
    size_t klens[1] = {dlen};
    struct cmd_req rm = {.op = CMD_DEL, .nkeys = 1, .keys = keys,
                         .klens = klens};
    struct cmd_res r;
    enum cmd_status st;

    cmd_batch_begin(ctx, s);
    st = cmd_exec(ctx, s, &set, &r);
    keep_ticket(res, &r);
    if (st == CMD_OK && del) {
        st = cmd_exec(ctx, s, &rm, &r);
        keep_ticket(res, &r);
    }
    enum cmd_status cst = cmd_batch_commit(ctx, s, res);
    return st != CMD_OK ? st : cst;
}

/* End the batch RENAME or COPY ran its reads and writes in (so that a
 * store that checks a batch at its commit, PostgreSQL with another
 * instance changing src meanwhile, checks the reads too): commit what
 * ended CMD_OK, abort the rest (nothing was written).  Without batches the
 * body runs alone and its write refuses. */
static enum cmd_status in_batch(struct cmd_ctx *ctx, struct cmd_session *s,
                                enum cmd_status st, struct cmd_res *res)
{
    enum cmd_status cst;

    if (st != CMD_OK) {
        cmd_batch_abort(ctx, s);
        return st;
    }
    cst = cmd_batch_commit(ctx, s, res);
    return cst != CMD_OK ? cst : st;
}

static enum cmd_status rename_body(struct cmd_ctx *ctx, struct cmd_session *s,
                                   const char *src, size_t slen,
                                   const char *dst, size_t dlen, int nx,
                                   struct cmd_res *res)
{
    struct cmd_res r;
    enum cmd_status st;

    if ((st = get(ctx, s, src, slen, &r, res)) != CMD_OK)
        return st;
    if (slen == dlen && memcmp(src, dst, slen) == 0)
        return nx ? CMD_NOTSET : CMD_OK;
    if (nx) {
        struct cmd_res d;
        st = get(ctx, s, dst, dlen, &d, res);
        if (st == CMD_OK)
            return CMD_NOTSET;
        if (st != CMD_NOTFOUND)
            return st;
    }
    return put_move(ctx, s, dst, dlen, r.value, r.expire_at, src, slen,
                    res);
}

enum cmd_status cmd_rename(struct cmd_ctx *ctx, struct cmd_session *s,
                           const char *src, size_t slen, const char *dst,
                           size_t dlen, int nx, struct cmd_res *res)
{
    enum cmd_status st;

    memset(res, 0, sizeof *res);
    if (!cmd_batches_ok(ctx))
        return rename_body(ctx, s, src, slen, dst, dlen, nx, res);
    cmd_batch_begin(ctx, s);
    st = rename_body(ctx, s, src, slen, dst, dlen, nx, res);
    return in_batch(ctx, s, st, res);
}

static enum cmd_status copy_body(struct cmd_ctx *ctx, struct cmd_session *s,
                                 const char *src, size_t slen,
                                 const char *dst, size_t dlen, int replace,
                                 struct cmd_res *res)
{
    struct cmd_res r, d;
    enum cmd_status st;

    if ((st = get(ctx, s, src, slen, &r, res)) != CMD_OK)
        return st == CMD_NOTFOUND ? CMD_OK : st; /* n = 0 */
    if (!replace) {
        st = get(ctx, s, dst, dlen, &d, res);
        if (st == CMD_OK)
            return CMD_OK;
        if (st != CMD_NOTFOUND)
            return st;
    }
    st = put_move(ctx, s, dst, dlen, r.value, r.expire_at, NULL, 0, res);
    res->n = st == CMD_OK;
    return st;
}

enum cmd_status cmd_copy(struct cmd_ctx *ctx, struct cmd_session *s,
                         const char *src, size_t slen, const char *dst,
                         size_t dlen, int replace, struct cmd_res *res)
{
    enum cmd_status st, cst;

    memset(res, 0, sizeof *res);
    if (!cmd_batches_ok(ctx))
        return copy_body(ctx, s, src, slen, dst, dlen, replace, res);
    cmd_batch_begin(ctx, s);
    st = copy_body(ctx, s, src, slen, dst, dlen, replace, res);
    if ((cst = in_batch(ctx, s, st, res)) != st)
        res->n = 0; /* the commit failed: nothing copied */
    return cst;
}

/* What FLUSH's scan hands back: the keys of one step. */
struct flush_keys {
    char **keys;
    size_t *klens;
    size_t n, cap;
};

static int collect(void *arg, const char *key, size_t klen, int64_t value)
{
    struct flush_keys *k = arg;

    (void)value;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->keys = xrealloc(k->keys, k->cap * sizeof *k->keys);
        k->klens = xrealloc(k->klens, k->cap * sizeof *k->klens);
    }
    k->keys[k->n] = xmalloc(klen ? klen : 1);
    memcpy(k->keys[k->n], key, klen);
    k->klens[k->n++] = klen;
    return 0;
}

enum cmd_status cmd_flush(struct cmd_ctx *ctx, struct cmd_session *s,
                          struct cmd_res *res)
{
    struct flush_keys k = {0};
    struct cmd_req scan = {.op = CMD_KEYS};
    struct cmd_res r = {0};
    enum cmd_status st;

    memset(res, 0, sizeof *res);
    if (!cmd_authorized(ctx, s))
        return CMD_ERR_NOAUTH;
    if (!ctx->allow_flush)
        return CMD_ERR_DENIED;
    r.item = collect;
    r.item_ctx = &k;
    st = cmd_exec(ctx, s, &scan, &r);
    keep_ticket(res, &r);
    for (size_t i = 0; st == CMD_OK && i < k.n; i += FLUSH_CHUNK) {
        struct cmd_req del = {.op = CMD_DEL,
                              .nkeys = k.n - i < FLUSH_CHUNK ? k.n - i
                                                             : FLUSH_CHUNK,
                              .keys = (const char *const *)k.keys + i,
                              .klens = k.klens + i};
        st = cmd_exec(ctx, s, &del, &r);
        keep_ticket(res, &r);
        res->n += r.n;
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.keys[i]);
    free(k.keys);
    free(k.klens);
    cmd_multi_touch_all(ctx);
    return st;
}

/* RANDOMKEY's walk: the first counter a step shows. */
struct first_key {
    char *key;
    size_t cap, klen;
    int found;
};

static int take_first(void *arg, const char *key, size_t klen, int64_t value)
{
    struct first_key *f = arg;

    (void)value;
    f->klen = klen < f->cap ? klen : f->cap;
    memcpy(f->key, key, f->klen);
    f->found = 1;
    return 1;
}

enum cmd_status cmd_randomkey(struct cmd_ctx *ctx, struct cmd_session *s,
                              char *key, size_t cap, size_t *klen,
                              struct cmd_res *res)
{
    struct first_key f = {key, cap, 0, 0};
    struct cmd_req scan = {.op = CMD_SCAN, .count = 1};
    struct cmd_res r = {0};
    uint64_t start = 0;
    enum cmd_status st;

    memset(res, 0, sizeof *res);
    if (getrandom(&start, sizeof start, 0) != (ssize_t)sizeof start)
        start = (uint64_t)rand();
    r.item = take_first;
    r.item_ctx = &f;
    /* From a random cursor to the end, then from the start: a counter
     * somewhere is found unless there is none. */
    for (int pass = 0; pass < 2 && !f.found; pass++) {
        scan.cursor = pass == 0 ? start : 0;
        do {
            st = cmd_exec(ctx, s, &scan, &r);
            keep_ticket(res, &r);
            if (st != CMD_OK)
                return st;
            scan.cursor = r.n;
        } while (!f.found && scan.cursor != 0);
    }
    *klen = f.klen;
    return f.found ? CMD_OK : CMD_NOTFOUND;
}
