/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmd.c - the command layer (cmd.h): what every counter operation means,
 * whichever front end asked.  It checks authentication, limits and flag
 * combinations, turns each request into one store operation (store.h),
 * turns store codes into cmd statuses, records change events from what the
 * store says it did, and counts calls and errors per protocol and
 * operation.  It never formats a reply: src/proto/ maps each status onto
 * its own wire text.  The store does the reading and writing, atomically
 * (src/store/engine.c for the embedded engine); glob matching and number
 * parsing live in glob.c, the re-run of requests on a store that answers
 * later in replay.c.
 *
 * Nothing here blocks on a sync (SAVE excepted, which is a blocking command
 * by definition): every store result carries a ticket, an error's too,
 * and callers hold the reply until store_durable() reaches res->ticket.
 * For the same reason a repeat of an idempotency id whose first request is
 * not durable yet is CMD_ERR_INFLIGHT rather than a wait (it shows nothing
 * a crash could take back: the retry it asks for is then a first attempt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "events.h"
#include "glob.h"
#include "script.h"
#include "util.h"

/* How many counters KEYS asks the store for per scan step. */
#define KEYS_STEP 1024
/* SCAN's COUNT when the request leaves it at 0, as Redis's default. */
#define SCAN_DEFAULT_COUNT 10

void cmd_init(struct cmd_ctx *ctx, struct store *store, const char *password,
              size_t passlen, const struct cmd_serverinfo *info)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->store = store;
    /* An empty password means none, as Redis's requirepass "" does: nobody
     * could be locked out by a blank line in a config file. */
    ctx->password = passlen ? password : NULL;
    ctx->passlen = passlen;
    ctx->info = info;
}

void cmd_fini(struct cmd_ctx *ctx)
{
    cmd_scripts_free(ctx);
}

int cmd_script_busy_for(const struct cmd_ctx *ctx,
                        const struct cmd_session *s)
{
    return ctx->script_busy && ctx->busy_session != s;
}

int cmd_authorized(const struct cmd_ctx *ctx, const struct cmd_session *s)
{
    return ctx->password == NULL || s->authed;
}

/* A store code as a status (the detail came with the result). */
static enum cmd_status from_store(int rc)
{
    switch (rc) {
    case STORE_OK: return CMD_OK;
    case STORE_NOTFOUND: return CMD_NOTFOUND;
    case STORE_NOTSET: return CMD_NOTSET;
    case STORE_EINVAL: return CMD_ERR_ARGS;
    case STORE_EKEYLEN: return CMD_ERR_KEYLEN;
    case STORE_EOVERFLOW: return CMD_ERR_OVERFLOW;
    case STORE_EEXPIRE: return CMD_ERR_EXPIRE;
    case STORE_EIDREUSED: return CMD_ERR_IDREUSED;
    case STORE_EINFLIGHT: return CMD_ERR_INFLIGHT;
    case STORE_EIDLEN: return CMD_ERR_IDLEN;
    case STORE_ENOSPC: return CMD_ERR_DISKFULL;
    case STORE_EFAILED: return CMD_ERR_WRITEFAIL;
    case STORE_ENOTDURABLE: return CMD_ERR_NOTDURABLE;
    case STORE_EBUSY: return CMD_ERR_BUSY;
    case STORE_EUNAVAIL: return CMD_ERR_UNAVAILABLE;
    case STORE_EUNKNOWN: return CMD_ERR_UNKNOWN;
    case STORE_EUNSUPPORTED: return CMD_ERR_UNSUPPORTED;
    case STORE_ECONFLICT: return CMD_ERR_UNAVAILABLE; /* nothing applied */
    default: return CMD_ERR_IO;
    }
}

static void take_ticket(struct cmd_res *res, tally_ticket t)
{
    if (t > res->ticket)
        res->ticket = t;
}

/* Run one store operation for the request being served (ctx->cur):
 * 0 with *r filled and its ticket and detail taken into res, or 1 if the
 * store answers later (the caller returns CMD_PENDING). */
static int call(struct cmd_ctx *ctx, const struct store_req *sr,
                struct store_res *r, struct cmd_res *res)
{
    const struct store_ops *ops = ctx->store->ops;

    /* The engine (sync_only) straight to its exec, as cmd_store_call
     * would: this is every request's path, two calls fewer. */
    if (ops->sync_only)
        ops->exec(ctx->store, sr, r, NULL, NULL);
    else if (cmd_store_call(ctx, ctx->cur, sr, r))
        return 1;
    take_ticket(res, r->ticket); /* also an error's: it may show state */
    if (r->detail[0])
        memcpy(res->detail, r->detail, sizeof res->detail);
    return 0;
}

/* Note one change for the event hub; it leaves once t is durable. */
static void changed(struct cmd_ctx *ctx, const char *key, size_t klen,
                    enum events_kind kind, enum events_op op, int64_t value,
                    tally_ticket t)
{
    /* Inside a batch every run records its events again: an abandoned run
     * drops them with its batch (cmd_batch_commit), so they count once. */
    if (ctx->events && (!ctx->echo || ctx->batch_depth))
        events_record(ctx->events, key, klen, kind, op, value, t);
}

static int key_ok(size_t klen) { return klen <= TALLY_KEY_MAX; }

/* True if every key of a multi-key request is within the limit, so that a
 * request is refused whole instead of half done. */
static int keys_ok(const struct cmd_req *req)
{
    for (size_t i = 0; i < req->nkeys; i++)
        if (!key_ok(req->klens[i]))
            return 0;
    return 1;
}

int64_t cmd_now_ms(const struct cmd_ctx *ctx)
{
    return store_now_ms(ctx->store);
}

/* DEBT: outside a request, so a store that answers later gives zeros
 * here; INFO through cmd_exec (a CMD_DBSIZE with expiries) removes it. */
void cmd_keyspace(struct cmd_ctx *ctx, uint64_t *keys, uint64_t *expires,
                  int64_t *avg_ttl_ms)
{
    struct store_req sr = {.op = STORE_COUNT, .flags = STORE_F_EXPIRES};
    struct store_res r;

    store_res_init(&r);
    cmd_store_call(ctx, NULL, &sr, &r);
    *keys = r.rc == STORE_OK ? r.n : 0;
    *expires = r.rc == STORE_OK ? r.expires_n : 0;
    *avg_ttl_ms = r.rc == STORE_OK ? r.avg_ttl_ms : 0;
}

const char *cmd_store_name(const struct cmd_ctx *ctx)
{
    return ctx->store->ops->name;
}

size_t cmd_store_info(const struct cmd_ctx *ctx, struct store_info_kv *kv,
                      size_t max)
{
    return store_info(ctx->store, kv, max);
}

int cmd_ready(const struct cmd_ctx *ctx, char *why, size_t n)
{
    return store_ready(ctx->store, why, n);
}

int cmd_engine_stats(const struct cmd_ctx *ctx, tally_stats *st)
{
    return store_stats(ctx->store, st);
}

static int has_expire(const struct cmd_req *req)
{
    return (req->flags & (CMD_F_PX | CMD_F_PXAT)) != 0;
}

/* What the store is told about req's expiry; none when it names none.
 * The store resolves a TTL on its own clock (store.h "Expiry"). */
static enum store_xmode xmode_of(const struct cmd_req *req,
                                 enum store_xmode none)
{
    int ifnew;

    if (!(req->flags & (CMD_F_PX | CMD_F_PXAT)))
        return none; /* the common case first: no expiry named */
    ifnew = req->op == CMD_INCRBY && (req->flags & CMD_F_TTL_IFNEW);
    if (req->flags & CMD_F_PXAT)
        return ifnew ? STORE_X_ABS_IFNEW : STORE_X_ABS;
    if (req->flags & CMD_F_PX)
        return ifnew ? STORE_X_REL_IFNEW : STORE_X_REL;
    return none;
}

/* The expiry a change gave the counter, as the events see it: 0 none, 1
 * already past (the counter was deleted at once), else the time. */
static int64_t event_expiry(const struct store_res *r)
{
    return r->expired ? 1 : r->expire_set;
}

/* The events of a SET (or INCRBY: op) that gave the counter expiry x (0
 * none, 1 already past): as Redis 7 notifies them, the change, then
 * "expire" if it carries one, then "expired" at once if that time had
 * passed. */
static void set_changed(struct cmd_ctx *ctx, const struct cmd_req *req,
                        enum events_op op, int64_t value, int64_t x,
                        tally_ticket t)
{
    changed(ctx, req->key, req->klen, EVENTS_VALUE, op, value, t);
    if (x)
        changed(ctx, req->key, req->klen, EVENTS_VALUE, EVENTS_OP_EXPIRE,
                value, t);
    if (x == 1)
        changed(ctx, req->key, req->klen, EVENTS_EXPIRED, EVENTS_OP_EXPIRED, 0,
                t);
}

/* The event of EXPIRE, PERSIST or GETEX that set the expiry to when (0:
 * removed it; past: the counter was deleted): "expire", "persist", or
 * "del", as Redis 7 notifies an EXPIRE into the past. */
static void expiry_changed(struct cmd_ctx *ctx, const char *key, size_t klen,
                           int64_t when, int past, int64_t value,
                           tally_ticket t)
{
    if (past)
        changed(ctx, key, klen, EVENTS_DELETED, EVENTS_OP_DEL, 0, t);
    else
        changed(ctx, key, klen, EVENTS_VALUE,
                when ? EVENTS_OP_EXPIRE : EVENTS_OP_PERSIST, value, t);
}

void cmd_note_expired(struct cmd_ctx *ctx, const void *key, size_t klen,
                      tally_ticket t)
{
    changed(ctx, key, klen, EVENTS_EXPIRED, EVENTS_OP_EXPIRED, 0, t);
}

/* GET, and GETDEL, which deletes what it shows: found/value/expire_at. */
static enum cmd_status do_get(struct cmd_ctx *ctx, const struct cmd_req *req,
                              struct cmd_res *res)
{
    struct store_req sr = {.op = req->op == CMD_GETDEL ? STORE_GETDEL
                                                       : STORE_GET,
                           .key = req->key, .klen = req->klen,
                           .cmp = req->cmp};
    struct store_res r;

    store_res_init(&r);
    if (req->op == CMD_GETDEL && (req->flags & CMD_F_IFEQ))
        sr.flags = STORE_F_IFEQ;
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    res->found = r.rc == STORE_OK || r.rc == STORE_NOTSET;
    res->value = res->found ? r.value : 0;
    res->expire_at = res->found ? r.expire_at : 0;
    if (r.rc == STORE_OK && req->op == CMD_GETDEL)
        changed(ctx, req->key, req->klen, EVENTS_DELETED, EVENTS_OP_GETDEL, 0,
                r.ticket);
    return from_store(r.rc);
}

/* SET with its conditions and expiry: one store operation, so the read
 * behind NX/XX/GET/KEEPTTL and the write are one atomic step. */
static enum cmd_status do_set(struct cmd_ctx *ctx, const struct cmd_req *req,
                              struct cmd_res *res)
{
    unsigned cond = req->flags & (CMD_F_NX | CMD_F_XX);
    int keep = (req->flags & CMD_F_KEEPTTL) != 0;
    struct store_req sr = {.op = STORE_SET, .key = req->key,
                           .klen = req->klen, .num = req->num,
                           .expire = req->expire};
    struct store_res r;

    store_res_init(&r);
    if (cond == (CMD_F_NX | CMD_F_XX) || (keep && has_expire(req)) ||
        (req->flags & (CMD_F_PX | CMD_F_PXAT)) == (CMD_F_PX | CMD_F_PXAT) ||
        ((req->flags & CMD_F_IFEQ) && (req->flags & CMD_F_NX)))
        return CMD_ERR_ARGS;
    sr.flags = (req->flags & CMD_F_NX ? STORE_F_NX : 0) |
               (req->flags & CMD_F_XX ? STORE_F_XX : 0) |
               (req->flags & CMD_F_GET ? STORE_F_GET : 0) |
               (req->flags & CMD_F_IFEQ ? STORE_F_IFEQ : 0);
    sr.cmp = req->cmp;
    sr.xmode = keep ? STORE_X_KEEP : xmode_of(req, STORE_X_NONE);
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    /* With GET, value/found show the old counter; expire_at the new one. */
    res->found = r.found;
    res->value = r.value;
    res->expire_at = r.expire_at;
    if (r.rc != STORE_OK)
        return from_store(r.rc);
    set_changed(ctx, req, EVENTS_OP_SET, req->num, event_expiry(&r), r.ticket);
    return CMD_OK;
}

/* A plain INCRBY (INCR, DECR: no flags) on a store with store_ops.incr:
 * do_incr without a store_req, for every request's most common path. */
static enum cmd_status incr_plain(struct cmd_ctx *ctx,
                                  const struct cmd_req *req,
                                  struct cmd_res *res)
{
    struct store_res r; /* incr sets what is read below, nothing else */

    ctx->store->ops->incr(ctx->store, req->key, req->klen, req->num, &r);
    take_ticket(res, r.ticket); /* also an error's: it may show state */
    res->value = r.value;
    res->expire_at = r.expire_at;
    if (r.rc != STORE_OK) {
        memcpy(res->detail, r.detail, sizeof res->detail);
        return from_store(r.rc);
    }
    res->found = 1;
    set_changed(ctx, req, EVENTS_OP_INCRBY, r.value, 0, r.ticket);
    return CMD_OK;
}

/* INCRBY, keeping the expiry or setting it (always, or if it creates). */
static enum cmd_status do_incr(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    struct store_req sr = {.op = STORE_INCRBY, .key = req->key,
                           .klen = req->klen, .num = req->num,
                           .xmode = xmode_of(req, STORE_X_KEEP),
                           .expire = req->expire};
    struct store_res r;

    store_res_init(&r);
    sr.flags = (req->flags & CMD_F_MUSTEXIST ? STORE_F_MUSTEXIST : 0) |
               (req->flags & CMD_F_FLOOR0 ? STORE_F_FLOOR0 : 0);
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    res->value = r.value;
    res->expire_at = r.expire_at;
    if (r.rc != STORE_OK)
        return from_store(r.rc);
    res->found = 1;
    set_changed(ctx, req, EVENTS_OP_INCRBY, r.value, event_expiry(&r),
                r.ticket);
    return CMD_OK;
}

/* EXPIRE, PERSIST, TTL and GETEX: a read (TTL, a plain GETEX) or one
 * STORE_EXPIRE that checks the conditions and changes the expiry. */
static enum cmd_status do_ttl_op(struct cmd_ctx *ctx,
                                 const struct cmd_req *req,
                                 struct cmd_res *res)
{
    unsigned f = req->flags;
    struct store_req sr = {.op = STORE_EXPIRE, .key = req->key,
                           .klen = req->klen, .expire = req->expire};
    struct store_res r;
    enum cmd_status st;

    store_res_init(&r);
    if (((f & CMD_F_NX) && (f & (CMD_F_XX | CMD_F_GT | CMD_F_LT))) ||
        ((f & CMD_F_GT) && (f & CMD_F_LT)) ||
        (req->op == CMD_EXPIRE && !has_expire(req)) ||
        ((f & CMD_F_PX) && (f & CMD_F_PXAT)) ||
        ((f & CMD_F_PERSIST) && has_expire(req)))
        return CMD_ERR_ARGS;
    if (req->op == CMD_TTL ||
        (req->op == CMD_GETEX && !has_expire(req) && !(f & CMD_F_PERSIST))) {
        sr.op = STORE_GET;
    } else if (req->op == CMD_EXPIRE) {
        sr.xmode = xmode_of(req, STORE_X_NONE);
        sr.flags = (f & CMD_F_NX ? STORE_F_NX : 0) |
                   (f & CMD_F_XX ? STORE_F_XX : 0) |
                   (f & CMD_F_GT ? STORE_F_GT : 0) |
                   (f & CMD_F_LT ? STORE_F_LT : 0);
    } else { /* PERSIST, GETEX with an expiry or PERSIST */
        sr.xmode = xmode_of(req, STORE_X_NONE);
    }
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    st = from_store(r.rc);
    res->found = r.rc == STORE_OK;
    res->value = res->found ? r.value : 0;
    res->expire_at = res->found ? r.expire_at : 0;
    if (st != CMD_OK)
        return st == CMD_NOTFOUND && req->op != CMD_GETEX &&
                       req->op != CMD_TTL ? CMD_OK : st;
    if (req->op == CMD_TTL) {
        res->ttl_ms = res->expire_at ? res->expire_at - r.now_ms : -1;
        return CMD_OK;
    }
    if (r.n == 1) {
        res->n = 1;
        res->expire_at = r.expired ? 0 : r.expire_set;
        expiry_changed(ctx, req->key, req->klen, r.expire_set, r.expired,
                       res->value, r.ticket);
    }
    return CMD_OK;
}

/* EXISTS and MGET (into the caller's res->values/founds). */
static enum cmd_status do_multi(struct cmd_ctx *ctx, const struct cmd_req *req,
                                struct cmd_res *res)
{
    struct store_req sr = {.op = req->op == CMD_MGET ? STORE_MGET
                                                     : STORE_EXISTS,
                           .nkeys = req->nkeys, .keys = req->keys,
                           .klens = req->klens};
    struct store_res r;

    store_res_init(&r);
    if (req->nkeys == 0)
        return CMD_ERR_ARGS;
    if (!keys_ok(req))
        return CMD_ERR_KEYLEN;
    if (req->op == CMD_MGET) {
        r.values = res->values;
        r.founds = res->founds;
    }
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    if (req->op == CMD_EXISTS)
        res->n = r.n;
    return from_store(r.rc);
}

/* DEL and MSET: one atomic change each, so a refused one changed nothing
 * and a crash keeps all of it or none.  With events, the store also says
 * which of a DEL's keys existed. */
static enum cmd_status do_batch(struct cmd_ctx *ctx, const struct cmd_req *req,
                                struct cmd_res *res)
{
    struct store_req sr = {.op = req->op == CMD_DEL ? STORE_DEL : STORE_MSET,
                           .nkeys = req->nkeys, .keys = req->keys,
                           .klens = req->klens, .nums = req->nums};
    struct store_res r;
    unsigned char *gone = NULL;

    store_res_init(&r);
    if (req->nkeys == 0)
        return CMD_ERR_ARGS;
    if (!keys_ok(req))
        return CMD_ERR_KEYLEN;
    if (req->op == CMD_DEL && ctx->events)
        r.founds = gone = xcalloc(req->nkeys, 1);
    if (call(ctx, &sr, &r, res)) {
        free(gone);
        return CMD_PENDING;
    }
    if (req->op == CMD_DEL)
        res->n = r.n;
    if (r.rc != STORE_OK) {
        free(gone);
        return from_store(r.rc);
    }
    for (size_t i = 0; i < req->nkeys; i++)
        if (req->op == CMD_MSET)
            changed(ctx, req->keys[i], req->klens[i], EVENTS_VALUE,
                    EVENTS_OP_MSET, req->nums[i], r.ticket);
        else if (gone && gone[i])
            changed(ctx, req->keys[i], req->klens[i], EVENTS_DELETED,
                    EVENTS_OP_DEL, 0, r.ticket);
    free(gone);
    return CMD_OK;
}

/* SCAN (one step from req->cursor) and KEYS (every step): the store steps
 * over keys with the glob's literal prefix, the glob filters here.  If the
 * caller's callback stops a SCAN early, n is the cursor it started from:
 * repeating that step shows some counters twice, which SCAN allows, and
 * loses none. */
static enum cmd_status do_scan(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    char prefix[TALLY_KEY_MAX];
    struct store_req sr = {.op = STORE_SCAN, .prefix = prefix};
    int all = glob_matches_all(req->match, req->matchlen);

    if (!all)
        sr.plen = glob_literal_prefix(req->match, req->matchlen, prefix,
                                      sizeof prefix);
    sr.cursor = req->op == CMD_SCAN ? req->cursor : 0;
    sr.count = req->op == CMD_KEYS ? KEYS_STEP
               : req->count       ? req->count
                                  : SCAN_DEFAULT_COUNT;
    do {
        struct store_res r;

        store_res_init(&r);
        if (call(ctx, &sr, &r, res))
            return CMD_PENDING;
        if (r.rc != STORE_OK)
            return from_store(r.rc);
        for (size_t i = 0; i < r.n_items; i++) {
            const char *k = r.keys[i];
            size_t kl = r.klens[i];
            int stop;
            if (!all && !cmd_glob_match(req->match, req->matchlen, k, kl))
                continue;
            if (req->flags & CMD_F_ITEMX)
                stop = res->itemx ? res->itemx(res->item_ctx, k, kl,
                                               r.values[i], r.expires[i])
                                  : 0;
            else
                stop = res->item ? res->item(res->item_ctx, k, kl,
                                             r.values[i])
                                 : 0;
            if (stop) {
                res->n = req->op == CMD_SCAN ? req->cursor : 0;
                return CMD_OK;
            }
        }
        sr.cursor = r.n;
    } while (req->op == CMD_KEYS && sr.cursor != 0);
    res->n = sr.cursor;
    return CMD_OK;
}

/* Compare a password in time that does not depend on where it first
 * differs from the configured one, so timing cannot guess it byte by byte.
 * Every protocol's login (RESP AUTH and HELLO AUTH, HTTP's bearer token,
 * memcached's set) reaches it through CMD_AUTH, and nothing else compares a
 * password.  The loop runs over the configured length whatever was sent;
 * the empty asm tells the compiler it cannot know diff, so it cannot stop
 * the loop early once a byte differs. */
static int pass_equal(const char *want, size_t wlen, const char *got,
                      size_t glen)
{
    unsigned diff = wlen != glen;

    for (size_t i = 0; i < wlen; i++) {
        diff |= (unsigned char)want[i] ^
                (unsigned char)(glen ? got[i % glen] : 0);
        __asm__ volatile("" : "+r"(diff));
    }
    return diff == 0;
}

enum cmd_status cmd_login(const struct cmd_ctx *ctx, struct cmd_session *s,
                          const char *pass, size_t passlen)
{
    if (ctx->password == NULL)
        return CMD_ERR_NOPASS;
    if (!pass_equal(ctx->password, ctx->passlen, pass, passlen))
        return CMD_ERR_WRONGPASS;
    s->authed = 1;
    return CMD_OK;
}

static enum cmd_status do_auth(struct cmd_ctx *ctx, struct cmd_session *s,
                               const struct cmd_req *req)
{
    return cmd_login(ctx, s, req->pass, req->passlen);
}

static uint64_t hash_le(uint64_t h, uint64_t v, unsigned bytes)
{
    unsigned char le[8];

    for (unsigned i = 0; i < bytes; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    return tally_once_hash(h, le, bytes);
}

uint64_t cmd_once_fingerprint(const struct cmd_req *req)
{
    unsigned char tag = req->op == CMD_INCRBY   ? 'i'
                        : req->op == CMD_SET    ? 's'
                        : req->op == CMD_GETDEL ? 'g'
                                                : 'd';
    const char *key = req->key;
    size_t klen = req->klen;
    int64_t arg = req->op == CMD_INCRBY || req->op == CMD_SET ? req->num : 0;
    uint64_t h = tally_once_hash(TALLY_ONCE_HASH_INIT, &tag, 1);

    if (req->op == CMD_DEL && req->nkeys == 1) {
        key = req->keys[0];
        klen = req->klens[0];
    }
    h = hash_le(h, klen, 4);
    h = tally_once_hash(h, key, klen);
    h = hash_le(h, (uint64_t)arg, 8);
    h = hash_le(h, req->flags, 4);
    return has_expire(req) ? hash_le(h, (uint64_t)req->expire, 8) : h;
}

/* The event for a first (not replayed) once-form change. */
static void once_changed(struct cmd_ctx *ctx, const struct cmd_req *req,
                         const struct cmd_res *res, int rc, int64_t x,
                         tally_ticket t)
{
    if (req->op == CMD_INCRBY)
        set_changed(ctx, req, EVENTS_OP_INCRBY, res->value, x, t);
    else if (req->op == CMD_SET)
        set_changed(ctx, req, EVENTS_OP_SET, req->num, x, t);
    else if (rc == STORE_OK && req->op == CMD_GETDEL)
        changed(ctx, req->key, req->klen, EVENTS_DELETED, EVENTS_OP_GETDEL, 0,
                t);
    else if (rc == STORE_OK)
        changed(ctx, req->keys[0], req->klens[0], EVENTS_DELETED,
                EVENTS_OP_DEL, 0, t);
}

/* A change with an idempotency id: the store records the id in the same
 * atomic step.  Only the plain forms take one (SET's conditions and MSET
 * would need the condition or every key in the fingerprint and the
 * outcome; not needed yet). */
static enum cmd_status do_once(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    struct store_req sr = {.key = req->key, .klen = req->klen,
                           .num = req->num, .expire = req->expire,
                           .once = req->once, .oncelen = req->oncelen,
                           .fingerprint = cmd_once_fingerprint(req)};
    struct store_res r;

    store_res_init(&r);
    if (has_expire(req) && (req->flags & CMD_F_PX) &&
        (req->flags & CMD_F_PXAT))
        return CMD_ERR_ARGS;
    switch (req->op) {
    case CMD_INCRBY:
        sr.op = STORE_INCRBY;
        sr.xmode = xmode_of(req, STORE_X_KEEP);
        break;
    case CMD_SET:
        if ((req->flags & ~(unsigned)(CMD_F_PX | CMD_F_PXAT | CMD_F_KEEPTTL)) ||
            ((req->flags & CMD_F_KEEPTTL) && has_expire(req)))
            return CMD_ERR_ARGS;
        sr.op = STORE_SET;
        sr.xmode = req->flags & CMD_F_KEEPTTL ? STORE_X_KEEP
                                              : xmode_of(req, STORE_X_NONE);
        break;
    case CMD_GETDEL:
        if (req->flags & CMD_F_IFEQ)
            return CMD_ERR_ARGS; /* not in the fingerprint's outcome */
        sr.op = STORE_GETDEL;
        break;
    case CMD_DEL:
        if (req->nkeys != 1)
            return CMD_ERR_ARGS;
        if (!key_ok(req->klens[0]))
            return CMD_ERR_KEYLEN;
        sr.op = STORE_DEL;
        sr.nkeys = 1;
        sr.keys = req->keys;
        sr.klens = req->klens;
        break;
    default:
        return CMD_ERR_ARGS;
    }
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    res->replayed = r.replayed;
    res->found = r.found;
    res->value = r.value;
    res->expire_at = r.expire_at;
    if (req->op == CMD_DEL)
        res->n = r.n;
    if (r.rc < 0)
        return from_store(r.rc);
    if (!res->replayed)
        once_changed(ctx, req, res, r.rc, event_expiry(&r), r.ticket);
    /* GETDEL answers a miss as NOTFOUND; DEL's miss is n = 0. */
    return r.rc == STORE_NOTFOUND && req->op == CMD_GETDEL ? CMD_NOTFOUND
                                                           : CMD_OK;
}

/* An operation with no key: DBSIZE, SAVE, BGSAVE. */
static enum cmd_status do_plain(struct cmd_ctx *ctx, enum store_opk op,
                                struct cmd_res *res)
{
    struct store_req sr = {.op = op};
    struct store_res r;

    store_res_init(&r);
    if (call(ctx, &sr, &r, res))
        return CMD_PENDING;
    if (op == STORE_COUNT)
        res->n = r.n;
    return from_store(r.rc);
}

/* The single-key operations share one check and one dispatch. */
static enum cmd_status run(struct cmd_ctx *ctx, struct cmd_session *s,
                           const struct cmd_req *req, struct cmd_res *res)
{
    switch (req->op) {
    case CMD_GET: case CMD_INCRBY: case CMD_SET: case CMD_GETDEL:
    case CMD_EXPIRE: case CMD_PERSIST: case CMD_TTL: case CMD_GETEX:
        if (!key_ok(req->klen))
            return CMD_ERR_KEYLEN;
        break;
    default:
        break;
    }
    if (req->once)
        return ctx->batch_depth ? CMD_ERR_INBATCH : do_once(ctx, req, res);
    switch (req->op) {
    case CMD_GET: case CMD_GETDEL:
        return do_get(ctx, req, res);
    case CMD_INCRBY:
        /* Tested here, so the plain path pays for none of do_incr's. */
        if (!req->flags && ctx->store->ops->incr)
            return incr_plain(ctx, req, res);
        return do_incr(ctx, req, res);
    case CMD_SET:
        return do_set(ctx, req, res);
    case CMD_DEL: case CMD_MSET:
        return do_batch(ctx, req, res);
    case CMD_EXISTS: case CMD_MGET:
        return do_multi(ctx, req, res);
    case CMD_DBSIZE:
        return do_plain(ctx, STORE_COUNT, res);
    case CMD_SCAN: case CMD_KEYS:
        return do_scan(ctx, req, res);
    case CMD_SAVE:
        return do_plain(ctx, STORE_SAVE, res);
    case CMD_BGSAVE:
        return do_plain(ctx, STORE_BGSAVE, res);
    case CMD_AUTH:
        return do_auth(ctx, s, req);
    case CMD_EXPIRE: case CMD_PERSIST: case CMD_TTL: case CMD_GETEX:
        return do_ttl_op(ctx, req, res);
    case CMD_OP_COUNT:
        break;
    }
    return CMD_ERR_ARGS;
}

static void count(struct cmd_ctx *ctx, const struct cmd_session *s,
                  enum cmd_op op, enum cmd_status st)
{
    unsigned proto = s->proto < CMD_PROTO_COUNT ? s->proto : CMD_PROTO_RESP;

    if (op < 0 || op >= CMD_OP_COUNT)
        return;
    ctx->stats.calls[proto][op]++;
    if (st >= CMD_ERR_NOTINT)
        ctx->stats.errors[proto][op]++;
}

enum cmd_status cmd_refuse(struct cmd_ctx *ctx, const struct cmd_session *s,
                           enum cmd_op op, enum cmd_status st)
{
    count(ctx, s, op, st);
    return st;
}

/* Why a command that needs an atomic batch cannot run here, into detail. */
static enum cmd_status unsupported(const struct cmd_ctx *ctx, char *detail,
                                   size_t n)
{
    snprintf(detail, n, "not supported by the %s store",
             ctx->store->ops->name);
    return CMD_ERR_UNSUPPORTED;
}

int cmd_batches_ok(const struct cmd_ctx *ctx)
{
    return store_has_batch(ctx->store);
}

enum cmd_status cmd_exec(struct cmd_ctx *ctx, struct cmd_session *s,
                         const struct cmd_req *req, struct cmd_res *res)
{
    struct cmd_session *outer = ctx->cur;

    res->status = CMD_OK;
    res->ticket = 0;
    res->found = 0;
    res->value = 0;
    res->n = 0;
    res->replayed = 0;
    res->expire_at = 0;
    res->ttl_ms = -1;
    res->detail[0] = 0;
    ctx->cur = s;
    ctx->echo = 0;
    if (req->op < 0 || req->op >= CMD_OP_COUNT)
        res->status = CMD_ERR_ARGS;
    else if (req->op != CMD_AUTH && !cmd_authorized(ctx, s))
        res->status = CMD_ERR_NOAUTH;
    else if (cmd_script_busy_for(ctx, s))
        res->status = CMD_ERR_SCRIPTBUSY;
    else if (ctx->batch_refused)
        res->status = unsupported(ctx, res->detail, sizeof res->detail);
    else
        res->status = run(ctx, s, req, res);
    ctx->cur = outer;
    if (res->status == CMD_PENDING)
        return CMD_PENDING; /* counted, touched and recorded on the re-run */
    if (!ctx->echo) {
        cmd_multi_touch(ctx, req, res);
        count(ctx, s, req->op, res->status);
    }
    if (s->replay)
        cmd_replay_reported(s);
    ctx->echo = 0;
    return res->status;
}

void cmd_batch_begin(struct cmd_ctx *ctx, struct cmd_session *s)
{
    int rc;

    if (ctx->batch_depth++ == 0) {
        if (!cmd_batches_ok(ctx)) {
            /* Every request inside and the commit answer
             * CMD_ERR_UNSUPPORTED: nothing of the batch runs. */
            ctx->batch_refused = 1;
            return;
        }
        rc = cmd_store_batch_begin(ctx, s, &ctx->sync_batch);
        if (rc != STORE_OK) {
            ctx->batch_refused = 1; /* none is open: it cannot fail */
            return;
        }
        events_batch_begin(ctx->events);
    }
}

enum cmd_status cmd_batch_commit(struct cmd_ctx *ctx, struct cmd_session *s,
                                 struct cmd_res *res)
{
    struct store_res r;

    store_res_init(&r);
    if (ctx->batch_depth == 0 || --ctx->batch_depth > 0)
        return CMD_OK; /* the outer batch commits */
    if (ctx->batch_refused) {
        ctx->batch_refused = 0;
        return unsupported(ctx, res->detail, sizeof res->detail);
    }
    if (cmd_store_batch_commit(ctx, s, ctx->sync_batch, &r)) {
        events_batch_end(ctx->events, 0, 0); /* recorded again next run */
        return CMD_PENDING;
    }
    ctx->sync_batch = NULL;
    /* The batch's events leave with its record, or never if it failed. */
    events_batch_end(ctx->events, r.rc >= 0, r.ticket);
    take_ticket(res, r.ticket);
    if (r.rc < 0) {
        memcpy(res->detail, r.detail, sizeof res->detail);
        return from_store(r.rc);
    }
    return CMD_OK;
}

void cmd_batch_abort(struct cmd_ctx *ctx, struct cmd_session *s)
{
    if (ctx->batch_depth > 0 && --ctx->batch_depth == 0) {
        if (ctx->batch_refused) {
            ctx->batch_refused = 0;
            return;
        }
        cmd_store_batch_abort(ctx, s, ctx->sync_batch);
        ctx->sync_batch = NULL;
        events_batch_end(ctx->events, 0, 0);
    }
}

enum cmd_status cmd_batch_once(struct cmd_ctx *ctx, struct cmd_session *s,
                               const tally_once *once, cmd_batch_fn body,
                               void *arg, struct cmd_res *res,
                               const void **answer, size_t *alen)
{
    return cmd_batch_once_at(ctx, s, once, NULL, 0, body, arg, res, answer,
                             alen);
}

enum cmd_status cmd_batch_once_at(struct cmd_ctx *ctx, struct cmd_session *s,
                                  const tally_once *once, const char *key,
                                  size_t klen, cmd_batch_fn body, void *arg,
                                  struct cmd_res *res, const void **answer,
                                  size_t *alen)
{
    const struct store_ops *ops = ctx->store->ops;
    struct store_req sr = {.once = once->id, .oncelen = once->idlen,
                           .fingerprint = once->fingerprint,
                           .key = key, .klen = klen};
    struct store_res r;
    enum cmd_status st;

    res->status = CMD_OK;
    res->ticket = 0;
    res->replayed = 0;
    res->detail[0] = 0;
    /* A replay runs no cmd_exec, so it checks what cmd_exec would. */
    if (!cmd_authorized(ctx, s))
        return res->status = CMD_ERR_NOAUTH;
    if (cmd_script_busy_for(ctx, s))
        return res->status = CMD_ERR_SCRIPTBUSY;
    if (ctx->batch_depth > 0)
        return res->status = CMD_ERR_INBATCH;
    if (!cmd_batches_ok(ctx) || !ops->once_answer || !ops->batch_commit_once)
        return res->status = unsupported(ctx, res->detail,
                                         sizeof res->detail);
    /* On a store that answers later both calls are logged ones: a re-run
     * gets the first run's answers (replay.c). */
    store_res_init(&r);
    if (cmd_store_once_answer(ctx, s, &sr, &r))
        return res->status = CMD_PENDING;
    take_ticket(res, r.ticket); /* also EIDREUSED's: the first request's */
    if (r.rc == STORE_OK) {
        *answer = r.answer;
        *alen = r.alen;
        res->replayed = 1;
        return CMD_OK;
    }
    if (r.rc != STORE_NOTFOUND) {
        memcpy(res->detail, r.detail, sizeof res->detail);
        return res->status = from_store(r.rc);
    }
    cmd_batch_begin(ctx, s);
    if ((st = body(arg, answer, alen)) != CMD_OK) {
        cmd_batch_abort(ctx, s); /* an abandoned run keeps it */
        return res->status = st;
    }
    ctx->batch_depth = 0;
    if (ctx->batch_refused) {
        ctx->batch_refused = 0;
        return res->status = unsupported(ctx, res->detail,
                                         sizeof res->detail);
    }
    store_res_init(&r);
    if (cmd_store_batch_commit_once(ctx, s, ctx->sync_batch, &sr, *answer,
                                    *alen, &r)) {
        events_batch_end(ctx->events, 0, 0); /* recorded again next run */
        return res->status = CMD_PENDING;
    }
    ctx->sync_batch = NULL;
    events_batch_end(ctx->events, r.rc >= 0, r.ticket);
    take_ticket(res, r.ticket);
    if (r.rc < 0) {
        memcpy(res->detail, r.detail, sizeof res->detail);
        return res->status = from_store(r.rc);
    }
    return res->status = CMD_OK;
}

const char *cmd_op_name(enum cmd_op op)
{
    static const char *const names[CMD_OP_COUNT] = {
        [CMD_GET] = "get",       [CMD_INCRBY] = "incrby",
        [CMD_SET] = "set",       [CMD_GETDEL] = "getdel",
        [CMD_DEL] = "del",       [CMD_EXISTS] = "exists",
        [CMD_MGET] = "mget",     [CMD_MSET] = "mset",
        [CMD_DBSIZE] = "dbsize", [CMD_SCAN] = "scan",
        [CMD_KEYS] = "keys",     [CMD_SAVE] = "save",
        [CMD_BGSAVE] = "bgsave", [CMD_AUTH] = "auth",
        [CMD_EXPIRE] = "expire", [CMD_PERSIST] = "persist",
        [CMD_TTL] = "ttl",       [CMD_GETEX] = "getex",
    };
    return op >= 0 && op < CMD_OP_COUNT ? names[op] : "unknown";
}

const char *cmd_proto_name(enum cmd_proto p)
{
    static const char *const names[CMD_PROTO_COUNT] = {
        [CMD_PROTO_RESP] = "resp", [CMD_PROTO_HTTP] = "http",
        [CMD_PROTO_MEMCACHE] = "memcache",
    };
    return p >= 0 && p < CMD_PROTO_COUNT ? names[p] : "unknown";
}

const char *cmd_status_name(enum cmd_status st)
{
    static const char *const names[CMD_STATUS_COUNT] = {
        [CMD_OK] = "ok",
        [CMD_NOTFOUND] = "notfound",
        [CMD_NOTSET] = "notset",
        [CMD_ERR_NOTINT] = "notint",
        [CMD_ERR_OVERFLOW] = "overflow",
        [CMD_ERR_KEYLEN] = "keylen",
        [CMD_ERR_ARGS] = "args",
        [CMD_ERR_NOAUTH] = "noauth",
        [CMD_ERR_WRONGPASS] = "wrongpass",
        [CMD_ERR_NOPASS] = "nopass",
        [CMD_ERR_WRITEFAIL] = "writefail",
        [CMD_ERR_DISKFULL] = "diskfull",
        [CMD_ERR_NOTDURABLE] = "notdurable",
        [CMD_ERR_BUSY] = "busy",
        [CMD_ERR_IO] = "io",
        [CMD_ERR_IDREUSED] = "idreused",
        [CMD_ERR_INFLIGHT] = "inflight",
        [CMD_ERR_IDLEN] = "idlen",
        [CMD_ERR_EXPIRE] = "expire",
        [CMD_ERR_NESTED] = "nested",
        [CMD_ERR_NOMULTI] = "nomulti",
        [CMD_ERR_WATCHMULTI] = "watchmulti",
        [CMD_ERR_EXECABORT] = "execabort",
        [CMD_ERR_INBATCH] = "inbatch",
        [CMD_ERR_DENIED] = "denied",
        [CMD_ERR_SCRIPTBUSY] = "scriptbusy",
        [CMD_ERR_UNAVAILABLE] = "unavailable",
        [CMD_ERR_UNKNOWN] = "outcome_unknown",
        [CMD_ERR_UNSUPPORTED] = "unsupported",
        [CMD_PENDING] = "pending",
    };
    return st >= 0 && st < CMD_STATUS_COUNT ? names[st] : "unknown";
}
