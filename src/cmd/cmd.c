/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmd.c - the command layer (cmd.h): what every counter operation means,
 * whichever front end asked.  It checks authentication and limits, runs the
 * operation on libtally, turns engine codes into cmd statuses, combines the
 * engine's tickets into the one ticket a reply must wait for, and counts
 * calls and errors per protocol and operation.  It never formats a reply:
 * src/proto/ maps each status onto its own wire text.  Glob matching and
 * number parsing live in glob.c.
 *
 * Every engine call is made with a ticket pointer, so nothing here blocks on
 * a sync (SAVE excepted, which is a blocking command by definition); callers
 * hold the reply until tally_durable() reaches res->ticket.  Every engine
 * ticket is taken, an error's too: an overflow or a reused idempotency id
 * shows state that may still be syncing (include/tally.h), and NOTSET,
 * EXISTS, MGET and a DEL that found nothing show reads.  For the same
 * reason a repeat of an idempotency id whose first request is not durable
 * yet is CMD_ERR_INFLIGHT rather than a wait (it shows nothing a crash
 * could take back: the retry it asks for is then a first attempt).
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "events.h"
#include "glob.h"
#include "script.h"
#include "util.h"

/* How many counters KEYS asks the engine for per scan step. */
#define KEYS_STEP 1024
/* SCAN's COUNT when the request leaves it at 0, as Redis's default. */
#define SCAN_DEFAULT_COUNT 10

void cmd_init(struct cmd_ctx *ctx, tally *db, const char *password,
              size_t passlen, const struct cmd_serverinfo *info)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->db = db;
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

/* Turn an engine code into a status, keeping the engine's detail for the
 * codes whose message says more than the status name. */
static enum cmd_status from_tally(struct cmd_ctx *ctx, struct cmd_res *res,
                                  int rc)
{
    enum cmd_status st;

    switch (rc) {
    case TALLY_OK: return CMD_OK;
    case TALLY_NOTFOUND: return CMD_NOTFOUND;
    case TALLY_EINVAL: return CMD_ERR_ARGS;
    case TALLY_EKEYLEN: return CMD_ERR_KEYLEN;
    case TALLY_EOVERFLOW: return CMD_ERR_OVERFLOW;
    case TALLY_EBUSY: return CMD_ERR_BUSY;
    case TALLY_EIDREUSED: return CMD_ERR_IDREUSED;
    case TALLY_EINFLIGHT: return CMD_ERR_INFLIGHT;
    case TALLY_EIDLEN: return CMD_ERR_IDLEN;
    case TALLY_ENOSPC: st = CMD_ERR_DISKFULL; break;
    case TALLY_EFAILED: st = CMD_ERR_WRITEFAIL; break;
    case TALLY_ENOTDURABLE: st = CMD_ERR_NOTDURABLE; break;
    default: st = CMD_ERR_IO; break;
    }
    const char *msg = tally_errmsg(ctx->db);
    if (!msg || !*msg)
        msg = tally_strerror(rc);
    /* Keep the detail on one line: front ends put it inside an error reply
     * that ends at the first line break. */
    size_t n = 0;
    for (; msg[n] && n + 1 < sizeof res->detail; n++)
        res->detail[n] = (msg[n] == '\r' || msg[n] == '\n') ? ' ' : msg[n];
    res->detail[n] = 0;
    return st;
}

static void take_ticket(struct cmd_res *res, tally_ticket t)
{
    if (t > res->ticket)
        res->ticket = t;
}

/* Note one change for the event hub; it leaves once t is durable. */
static void changed(struct cmd_ctx *ctx, const char *key, size_t klen,
                    enum events_kind kind, enum events_op op, int64_t value,
                    tally_ticket t)
{
    if (ctx->events)
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

/* Read one counter into res (found/value/expire_at), taking its ticket. */
static enum cmd_status get_one(struct cmd_ctx *ctx, const char *key,
                               size_t klen, struct cmd_res *res)
{
    tally_ticket t = 0;
    int64_t v = 0, x = 0;
    int rc = tally_getx(ctx->db, key, klen, &v, &x, &t);

    take_ticket(res, t);
    if (rc < 0)
        return from_tally(ctx, res, rc);
    res->found = rc == TALLY_OK;
    res->value = res->found ? v : 0;
    res->expire_at = res->found ? x : 0;
    return res->found ? CMD_OK : CMD_NOTFOUND;
}

int64_t cmd_now_ms(const struct cmd_ctx *ctx)
{
    return tally_now_ms(ctx->db);
}

void cmd_keyspace(struct cmd_ctx *ctx, uint64_t *keys, uint64_t *expires,
                  int64_t *avg_ttl_ms)
{
    *expires = tally_expires(ctx->db, avg_ttl_ms);
    *keys = tally_count(ctx->db);
}

/* The absolute expiry a request names (CMD_F_PX: now + ms, CMD_F_PXAT: as
 * given) into *when, which may be at or before now (or negative): the
 * caller then deletes.  CMD_ERR_EXPIRE on overflow or past
 * TALLY_EXPIRE_MAX. */
static enum cmd_status resolve_expire(struct cmd_ctx *ctx,
                                      const struct cmd_req *req,
                                      int64_t *when)
{
    int64_t now = tally_now_ms(ctx->db);

    if (req->flags & CMD_F_PXAT)
        *when = req->expire;
    else if (__builtin_add_overflow(now, req->expire, when))
        return CMD_ERR_EXPIRE;
    return *when > TALLY_EXPIRE_MAX ? CMD_ERR_EXPIRE : CMD_OK;
}

/* What the engine is given for an expiry `when`: when itself, or 1 (long
 * past) for one at or before now, which makes the engine delete. */
static int64_t engine_expire(struct cmd_ctx *ctx, int64_t when)
{
    return when <= tally_now_ms(ctx->db) ? 1 : when;
}

static int has_expire(const struct cmd_req *req)
{
    return (req->flags & (CMD_F_PX | CMD_F_PXAT)) != 0;
}

/* The events of a SET (or INCRBY: op) that gave the counter expiry x as the
 * engine was given it (0 none, 1 already past): as Redis 7 notifies them,
 * the change, then "expire" if it carries one, then "expired" at once if
 * that time had passed. */
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
 * removed it): "expire", "persist", or for a time already past "del", as
 * Redis 7 notifies an EXPIRE into the past. */
static void expiry_changed(struct cmd_ctx *ctx, const char *key, size_t klen,
                           int64_t when, int64_t now, int64_t value,
                           tally_ticket t)
{
    if (when && when <= now)
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

/* SET with its conditions and expiry.  The read and the write run back to
 * back on one handle, which only one thread uses, so nothing can slip in
 * between. */
static enum cmd_status do_set(struct cmd_ctx *ctx, const struct cmd_req *req,
                              struct cmd_res *res)
{
    unsigned cond = req->flags & (CMD_F_NX | CMD_F_XX);
    int keep = (req->flags & CMD_F_KEEPTTL) != 0;
    tally_ticket t = 0;
    int64_t x = 0;
    enum cmd_status st;
    int rc;

    if (cond == (CMD_F_NX | CMD_F_XX) || (keep && has_expire(req)) ||
        (req->flags & (CMD_F_PX | CMD_F_PXAT)) == (CMD_F_PX | CMD_F_PXAT))
        return CMD_ERR_ARGS;
    if (has_expire(req)) {
        if ((st = resolve_expire(ctx, req, &x)) != CMD_OK)
            return st;
        x = engine_expire(ctx, x);
    }
    if (cond || keep || (req->flags & CMD_F_GET)) {
        st = get_one(ctx, req->key, req->klen, res);
        if (st != CMD_OK && st != CMD_NOTFOUND)
            return st;
        if ((cond == CMD_F_NX && res->found) ||
            (cond == CMD_F_XX && !res->found))
            return CMD_NOTSET;
        if (keep)
            x = res->expire_at;
    }
    rc = tally_setx(ctx->db, req->key, req->klen, req->num, x, &t);
    take_ticket(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(ctx, res, rc);
    set_changed(ctx, req, EVENTS_OP_SET, req->num, x, t);
    /* With GET, value/found show the old counter; expire_at the new one. */
    res->expire_at = x > tally_now_ms(ctx->db) ? x : 0;
    return CMD_OK;
}

/* INCRBY, keeping the expiry or setting it (always, or if it creates). */
static enum cmd_status do_incr(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    tally_ticket t = 0;
    int mode = TALLY_TTL_KEEP;
    int64_t x = 0;
    enum cmd_status st;
    int rc;

    if (has_expire(req)) {
        if ((st = resolve_expire(ctx, req, &x)) != CMD_OK)
            return st;
        x = engine_expire(ctx, x);
        mode = req->flags & CMD_F_TTL_IFNEW ? TALLY_TTL_IFNEW : TALLY_TTL_SET;
    }
    rc = tally_incrx(ctx->db, req->key, req->klen, req->num, mode, x,
                     &res->value, &res->expire_at, &t);
    take_ticket(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(ctx, res, rc);
    res->found = 1;
    /* IFNEW sets the expiry only if this increment created the counter. */
    set_changed(ctx, req, EVENTS_OP_INCRBY, res->value,
                mode == TALLY_TTL_SET || res->expire_at == x ? x : 0, t);
    return CMD_OK;
}

/* EXPIRE's conditions (Redis 7): may an expiry `when` replace `cur` (0 for
 * none, which counts as later than any time)? */
static int expire_allowed(unsigned flags, int64_t cur, int64_t when)
{
    if ((flags & CMD_F_NX) && cur)
        return 0;
    if ((flags & CMD_F_XX) && !cur)
        return 0;
    if ((flags & CMD_F_GT) && (!cur || when <= cur))
        return 0;
    if ((flags & CMD_F_LT) && cur && when >= cur)
        return 0;
    return 1;
}

/* EXPIRE, PERSIST, TTL and GETEX: read the counter, then change its expiry
 * if the operation and its conditions say so. */
static enum cmd_status do_ttl_op(struct cmd_ctx *ctx,
                                 const struct cmd_req *req,
                                 struct cmd_res *res)
{
    unsigned f = req->flags;
    int64_t when = 0, now;
    tally_ticket t = 0;
    enum cmd_status st;
    int rc;

    if (((f & CMD_F_NX) && (f & (CMD_F_XX | CMD_F_GT | CMD_F_LT))) ||
        ((f & CMD_F_GT) && (f & CMD_F_LT)) ||
        (req->op == CMD_EXPIRE && !has_expire(req)) ||
        ((f & CMD_F_PX) && (f & CMD_F_PXAT)) ||
        ((f & CMD_F_PERSIST) && has_expire(req)))
        return CMD_ERR_ARGS;
    if (has_expire(req) && (st = resolve_expire(ctx, req, &when)) != CMD_OK)
        return st;
    st = get_one(ctx, req->key, req->klen, res);
    if (st != CMD_OK)
        return st == CMD_NOTFOUND && req->op != CMD_GETEX &&
                       req->op != CMD_TTL ? CMD_OK : st;
    now = tally_now_ms(ctx->db);
    switch (req->op) {
    case CMD_TTL:
        res->ttl_ms = res->expire_at ? res->expire_at - now : -1;
        return CMD_OK;
    case CMD_EXPIRE:
        if (!expire_allowed(f, res->expire_at, when))
            return CMD_OK;
        break;
    case CMD_PERSIST:
        if (!res->expire_at)
            return CMD_OK;
        when = 0;
        break;
    default: /* CMD_GETEX */
        if (!has_expire(req) && !((f & CMD_F_PERSIST) && res->expire_at))
            return CMD_OK;
        break;
    }
    rc = tally_expire(ctx->db, req->key, req->klen,
                      when ? engine_expire(ctx, when) : 0, &t);
    take_ticket(res, t); /* also an error's: it may show state */
    if (rc < 0)
        return from_tally(ctx, res, rc);
    res->n = 1;
    res->expire_at = when > now ? when : 0;
    expiry_changed(ctx, req->key, req->klen, when, now, res->value, t);
    return CMD_OK;
}

static enum cmd_status do_getdel(struct cmd_ctx *ctx,
                                 const struct cmd_req *req,
                                 struct cmd_res *res)
{
    tally_ticket t = 0;
    enum cmd_status st = get_one(ctx, req->key, req->klen, res);
    int rc;

    if (st != CMD_OK)
        return st;
    rc = tally_del(ctx->db, req->key, req->klen, &t);
    take_ticket(res, t);
    if (rc < 0)
        return from_tally(ctx, res, rc);
    changed(ctx, req->key, req->klen, EVENTS_DELETED, EVENTS_OP_GETDEL, 0, t);
    return CMD_OK;
}

/* EXISTS and MGET: one read per key, tickets combined. */
static enum cmd_status do_multi(struct cmd_ctx *ctx, const struct cmd_req *req,
                                struct cmd_res *res)
{
    if (req->nkeys == 0)
        return CMD_ERR_ARGS;
    if (!keys_ok(req))
        return CMD_ERR_KEYLEN;
    for (size_t i = 0; i < req->nkeys; i++) {
        tally_ticket t = 0;
        int64_t v = 0;
        int rc = tally_get(ctx->db, req->keys[i], req->klens[i], &v, &t);
        take_ticket(res, t);
        if (rc < 0)
            return from_tally(ctx, res, rc);
        if (req->op == CMD_MGET) {
            res->values[i] = rc == TALLY_OK ? v : 0;
            res->founds[i] = rc == TALLY_OK;
        } else if (rc == TALLY_OK) {
            res->n++;
        }
    }
    return CMD_OK;
}

/* Which of a DEL's keys it will delete, for their events: those that
 * exist now, each once (the handle is this thread's, so nothing changes
 * between this look and the DEL).  Caller frees. */
static unsigned char *deleted_keys(struct cmd_ctx *ctx,
                                   const struct cmd_req *req)
{
    unsigned char *gone = xcalloc(req->nkeys, 1);

    for (size_t i = 0; i < req->nkeys; i++) {
        tally_ticket t = 0;
        int64_t v;
        size_t j = 0;
        while (j < i && !(req->klens[j] == req->klens[i] &&
                          memcmp(req->keys[j], req->keys[i], req->klens[i]) == 0))
            j++;
        gone[i] = j == i && tally_get(ctx->db, req->keys[i], req->klens[i],
                                      &v, &t) == TALLY_OK;
    }
    return gone;
}

/* DEL and MSET: one atomic change each (tally_mdel, tally_mset), so a
 * refused one changed nothing and a crash keeps all of it or none. */
static enum cmd_status do_batch(struct cmd_ctx *ctx, const struct cmd_req *req,
                                struct cmd_res *res)
{
    const void *const *keys = (const void *const *)req->keys;
    unsigned char *gone = NULL;
    tally_ticket t = 0;
    int rc;

    if (req->nkeys == 0)
        return CMD_ERR_ARGS;
    if (!keys_ok(req))
        return CMD_ERR_KEYLEN;
    if (req->op == CMD_DEL && ctx->events)
        gone = deleted_keys(ctx, req);
    rc = req->op == CMD_DEL
             ? tally_mdel(ctx->db, req->nkeys, keys, req->klens, &res->n, &t)
             : tally_mset(ctx->db, req->nkeys, keys, req->klens, req->nums,
                          &t);
    take_ticket(res, t);
    if (rc < 0) {
        free(gone);
        return from_tally(ctx, res, rc);
    }
    for (size_t i = 0; i < req->nkeys; i++)
        if (req->op == CMD_MSET)
            changed(ctx, req->keys[i], req->klens[i], EVENTS_VALUE,
                    EVENTS_OP_MSET, req->nums[i], t);
        else if (gone && gone[i])
            changed(ctx, req->keys[i], req->klens[i], EVENTS_DELETED,
                    EVENTS_OP_DEL, 0, t);
    free(gone);
    return CMD_OK;
}

/* What SCAN and KEYS hand the engine's scan: the caller's callback behind
 * the glob filter. */
struct scan_filter {
    const char *pat;
    size_t plen;
    int all;
    cmd_item_fn fn;
    cmd_itemx_fn fnx;
    void *ctx;
};

static int scan_visit(void *arg, const void *key, size_t klen, int64_t value,
                      int64_t expire_ms)
{
    struct scan_filter *f = arg;

    if (!f->all && !cmd_glob_match(f->pat, f->plen, key, klen))
        return 0;
    if (f->fnx)
        return f->fnx(f->ctx, key, klen, value, expire_ms);
    return f->fn ? f->fn(f->ctx, key, klen, value) : 0;
}

/* SCAN (one step from req->cursor) and KEYS (every step).  If the caller's
 * callback stops a SCAN early, n is the cursor it started from: repeating
 * that step shows some counters twice, which SCAN allows, and loses none. */
static enum cmd_status do_scan(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    char prefix[TALLY_KEY_MAX];
    struct scan_filter f = {req->match, req->matchlen, 0, NULL, NULL,
                            res->item_ctx};
    size_t plen = 0;
    uint64_t cursor = req->op == CMD_SCAN ? req->cursor : 0;

    if (req->flags & CMD_F_ITEMX)
        f.fnx = res->itemx;
    else
        f.fn = res->item;
    f.all = glob_matches_all(req->match, req->matchlen);
    if (!f.all)
        plen = glob_literal_prefix(req->match, req->matchlen, prefix,
                                   sizeof prefix);
    do {
        tally_ticket t = 0;
        uint64_t next = 0;
        size_t count = req->op == CMD_KEYS ? KEYS_STEP
                       : req->count       ? req->count
                                          : SCAN_DEFAULT_COUNT;
        int rc = tally_scanx(ctx->db, cursor, prefix, plen, count,
                             scan_visit, &f, &next, &t);
        take_ticket(res, t);
        if (rc < 0)
            return from_tally(ctx, res, rc);
        if (rc > 0) { /* stopped by the caller */
            res->n = req->op == CMD_SCAN ? req->cursor : 0;
            return CMD_OK;
        }
        cursor = next;
    } while (req->op == CMD_KEYS && cursor != 0);
    res->n = cursor;
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
    else if (rc == TALLY_OK && req->op == CMD_GETDEL)
        changed(ctx, req->key, req->klen, EVENTS_DELETED, EVENTS_OP_GETDEL, 0,
                t);
    else if (rc == TALLY_OK)
        changed(ctx, req->keys[0], req->klens[0], EVENTS_DELETED,
                EVENTS_OP_DEL, 0, t);
}

/* A change with an idempotency id: the engine's once-forms.  Only the
 * plain forms take one (SET's conditions and MSET would need the condition
 * or every key in the fingerprint and the outcome; not needed yet). */
static enum cmd_status do_once(struct cmd_ctx *ctx, const struct cmd_req *req,
                               struct cmd_res *res)
{
    tally_once once = {req->once, req->oncelen, cmd_once_fingerprint(req)};
    tally_ticket t = 0;
    int64_t x = 0;
    enum cmd_status st;
    int rc, mode = TALLY_TTL_KEEP;

    if (has_expire(req)) {
        if ((req->flags & CMD_F_PX) && (req->flags & CMD_F_PXAT))
            return CMD_ERR_ARGS;
        if ((st = resolve_expire(ctx, req, &x)) != CMD_OK)
            return st;
        x = engine_expire(ctx, x);
        mode = req->flags & CMD_F_TTL_IFNEW ? TALLY_TTL_IFNEW : TALLY_TTL_SET;
    }
    switch (req->op) {
    case CMD_INCRBY:
        rc = tally_incrx_once(ctx->db, &once, req->key, req->klen, req->num,
                              mode, x, &res->value, &res->replayed, &t);
        res->found = rc == TALLY_OK;
        break;
    case CMD_SET:
        if ((req->flags & ~(unsigned)(CMD_F_PX | CMD_F_PXAT | CMD_F_KEEPTTL)) ||
            ((req->flags & CMD_F_KEEPTTL) && has_expire(req)))
            return CMD_ERR_ARGS;
        /* KEEPTTL as do_set: the read and the write on one handle. */
        if (req->flags & CMD_F_KEEPTTL) {
            st = get_one(ctx, req->key, req->klen, res);
            if (st != CMD_OK && st != CMD_NOTFOUND)
                return st;
            x = res->expire_at;
        }
        rc = tally_setx_once(ctx->db, &once, req->key, req->klen, req->num, x,
                             &res->replayed, &t);
        break;
    case CMD_GETDEL:
        rc = tally_del_once(ctx->db, &once, req->key, req->klen, &res->value,
                            &res->replayed, &t);
        res->found = rc == TALLY_OK;
        break;
    case CMD_DEL:
        if (req->nkeys != 1)
            return CMD_ERR_ARGS;
        if (!key_ok(req->klens[0]))
            return CMD_ERR_KEYLEN;
        rc = tally_del_once(ctx->db, &once, req->keys[0], req->klens[0],
                            NULL, &res->replayed, &t);
        res->n = rc == TALLY_OK;
        break;
    default:
        return CMD_ERR_ARGS;
    }
    take_ticket(res, t); /* also EIDREUSED's: the first request's */
    if (rc < 0)
        return from_tally(ctx, res, rc);
    if (!res->replayed)
        once_changed(ctx, req, res, rc, x, t);
    /* GETDEL answers a miss as NOTFOUND; DEL's miss is n = 0. */
    return rc == TALLY_NOTFOUND && req->op == CMD_GETDEL ? CMD_NOTFOUND
                                                         : CMD_OK;
}

/* The single-key operations share one check and one dispatch. */
static enum cmd_status run(struct cmd_ctx *ctx, struct cmd_session *s,
                           const struct cmd_req *req, struct cmd_res *res)
{
    int rc;

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
        return tally_batch_is_open(ctx->db) ? CMD_ERR_INBATCH
                                            : do_once(ctx, req, res);
    switch (req->op) {
    case CMD_GET:
        return get_one(ctx, req->key, req->klen, res);
    case CMD_INCRBY:
        return do_incr(ctx, req, res);
    case CMD_SET:
        return do_set(ctx, req, res);
    case CMD_GETDEL:
        return do_getdel(ctx, req, res);
    case CMD_DEL: case CMD_MSET:
        return do_batch(ctx, req, res);
    case CMD_EXISTS: case CMD_MGET:
        return do_multi(ctx, req, res);
    case CMD_DBSIZE:
        /* The count may include a creation or deletion still being synced;
         * waiting for everything so far keeps the number from being taken
         * back by a crash. */
        res->n = tally_count(ctx->db);
        take_ticket(res, tally_head(ctx->db));
        return CMD_OK;
    case CMD_SCAN: case CMD_KEYS:
        return do_scan(ctx, req, res);
    case CMD_SAVE:
        rc = tally_snapshot(ctx->db);
        return rc < 0 ? from_tally(ctx, res, rc) : CMD_OK;
    case CMD_BGSAVE:
        rc = tally_snapshot_begin(ctx->db);
        return rc < 0 ? from_tally(ctx, res, rc) : CMD_OK;
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

enum cmd_status cmd_exec(struct cmd_ctx *ctx, struct cmd_session *s,
                         const struct cmd_req *req, struct cmd_res *res)
{
    res->status = CMD_OK;
    res->ticket = 0;
    res->found = 0;
    res->value = 0;
    res->n = 0;
    res->replayed = 0;
    res->expire_at = 0;
    res->ttl_ms = -1;
    res->detail[0] = 0;
    if (req->op < 0 || req->op >= CMD_OP_COUNT)
        res->status = CMD_ERR_ARGS;
    else if (req->op != CMD_AUTH && !cmd_authorized(ctx, s))
        res->status = CMD_ERR_NOAUTH;
    else if (cmd_script_busy_for(ctx, s))
        res->status = CMD_ERR_SCRIPTBUSY;
    else
        res->status = run(ctx, s, req, res);
    cmd_multi_touch(ctx, req, res);
    count(ctx, s, req->op, res->status);
    return res->status;
}

void cmd_batch_begin(struct cmd_ctx *ctx)
{
    if (ctx->batch_depth++ == 0) {
        tally_batch_begin(ctx->db); /* cannot fail: none is open */
        events_batch_begin(ctx->events);
    }
}

enum cmd_status cmd_batch_commit(struct cmd_ctx *ctx, struct cmd_res *res)
{
    tally_ticket t = 0;
    int rc;

    if (ctx->batch_depth == 0 || --ctx->batch_depth > 0)
        return CMD_OK; /* the outer batch commits */
    rc = tally_batch_commit(ctx->db, &t);
    /* The batch's events leave with its record, or never if it failed. */
    events_batch_end(ctx->events, rc < 0 ? 0 : t);
    take_ticket(res, t);
    return rc < 0 ? from_tally(ctx, res, rc) : CMD_OK;
}

void cmd_batch_abort(struct cmd_ctx *ctx)
{
    if (ctx->batch_depth > 0 && --ctx->batch_depth == 0) {
        tally_batch_abort(ctx->db);
        events_batch_end(ctx->events, 0);
    }
}

enum cmd_status cmd_batch_once(struct cmd_ctx *ctx, struct cmd_session *s,
                               const tally_once *once, cmd_batch_fn body,
                               void *arg, struct cmd_res *res,
                               const void **answer, size_t *alen)
{
    tally_ticket t = 0;
    enum cmd_status st;
    int rc;

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
    rc = tally_once_answer(ctx->db, once, answer, alen, &t);
    take_ticket(res, t); /* also EIDREUSED's: the first request's */
    if (rc == TALLY_OK) {
        res->replayed = 1;
        return CMD_OK;
    }
    if (rc != TALLY_NOTFOUND)
        return res->status = from_tally(ctx, res, rc);
    cmd_batch_begin(ctx);
    if ((st = body(arg, answer, alen)) != CMD_OK) {
        cmd_batch_abort(ctx);
        return res->status = st;
    }
    ctx->batch_depth = 0;
    rc = tally_batch_commit_once(ctx->db, once, *answer, *alen, &t);
    events_batch_end(ctx->events, rc < 0 ? 0 : t);
    take_ticket(res, t);
    return res->status = rc < 0 ? from_tally(ctx, res, rc) : CMD_OK;
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
    };
    return st >= 0 && st < CMD_STATUS_COUNT ? names[st] : "unknown";
}
