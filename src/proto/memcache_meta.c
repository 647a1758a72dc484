/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcache_meta.c - the memcached meta commands mg, ms, md and ma, as
 * memcached 1.6 speaks them (its doc/protocol.txt, proto_text.c): parsing
 * their flag tokens, wording their errors (each command its own way, as
 * memcached does) and encoding their replies with the flags echoed in request
 * order.  mn, the tokenizer, framing and dispatch are in memcache.c; the
 * helpers both files use (replies, the command layer, the read-compare-change
 * steps shared with cas, incr and decr) are declared in memcache_int.h.
 * T and N's TTL become the counter's expiry through the command layer, and
 * t shows the seconds left on the command layer's clock; counters carry no
 * client flags, so F and the proxy hints P and L are parsed and checked but
 * change nothing (docs/memcache.md).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cmd.h"
#include "memcache_int.h"

#define MC_META_MAX_FLAGS 20 /* memcached's MFLAG_MAX_OPT_LENGTH */
#define MC_OPAQUE_MAX 32    /* memcached's MFLAG_MAX_OPAQUE_LENGTH */

/* ---- Flags ------------------------------------------------------------- */

/* Which meta parse failure happened; each command words them its own way, as
 * memcached does. */
enum mc_meta_err { MF_OK, MF_INVALID, MF_DUP, MF_BADTOKEN, MF_BADMODE,
                   MF_BADFLAGS, MF_OPAQUE, MF_TOOMANY };

struct mc_meta {
    const struct mc_tok *flags; /* the flag tokens, in request order */
    size_t nflags;
    uint64_t seen;              /* bit (c - 'A') for each flag given */
    uint64_t delta, initial, cas;
    char mode;
    struct mc_exp ttl, viv;     /* T's and N's exptime */
    /* What t shows: the expiry before the change a T (or, on a counter
     * this request created, an N) makes, and after it; t shows the one in
     * force at its place in the request, as memcached does. */
    int64_t exp_before, exp_after;
    int created;                /* ma made the counter (N) */
};

static int meta_has(const struct mc_meta *m, char f)
{
    return (m->seen >> (f - 'A')) & 1;
}

/* Parse flag tokens t[0, n) that may use the letters in `allowed`.  As in
 * memcached's _meta_flag_preparse, an unknown or repeated flag ends the
 * parse at once, while a bad number is noted and the parse goes on, so a
 * later unknown flag is what gets reported ("mg k T 5": invalid flag). */
static enum mc_meta_err mc_meta_parse(const struct mc_tok *t, size_t n,
                                      const char *allowed, struct mc_meta *m)
{
    enum mc_meta_err bad = MF_OK;
    memset(m, 0, sizeof *m);
    m->flags = t;
    m->nflags = n;
    m->delta = 1;
    if (n > MC_META_MAX_FLAGS)
        return MF_TOOMANY;
    for (size_t i = 0; i < n; i++) {
        char f = t[i].p[0];
        const char *arg = t[i].p + 1;
        size_t alen = t[i].len - 1;
        uint64_t u;
        if (f < 'A' || f > 'z' || !strchr(allowed, f))
            return MF_INVALID;
        if (meta_has(m, f))
            return MF_DUP;
        m->seen |= 1ULL << (f - 'A');
        switch (f) {
        case 'T': case 'N':
            if (mc_parse_exptime(arg, alen, f == 'T' ? &m->ttl : &m->viv) < 0)
                bad = MF_BADTOKEN;
            break;
        case 'D': case 'J': case 'C':
            if (mc_parse_u64(arg, alen, &u) < 0)
                bad = MF_BADTOKEN;
            else
                *(f == 'D' ? &m->delta : f == 'J' ? &m->initial : &m->cas) = u;
            break;
        case 'F':
            /* memcached words a bad F only when no other number was bad. */
            if (mc_parse_u64(arg, alen, &u) < 0 && bad == MF_OK)
                bad = MF_BADFLAGS;
            break;
        case 'M':
            if (alen != 1)
                return MF_BADMODE;
            m->mode = arg[0];
            break;
        case 'O':
            if (alen > MC_OPAQUE_MAX)
                return MF_OPAQUE;
            break;
        }
    }
    return bad;
}

/* ---- Replies ----------------------------------------------------------- */

/* What a meta reply shows besides its code and the O and k flags. */
#define MR_ITEM 0x1  /* the c f s t flags describe `value` */
#define MR_DATA 0x2  /* "VA <len> ...", then the value as a data block */
#define MR_CAS0 0x4  /* c shows 0: memcached's answer when nothing stored */

/* What an HD reply that describes a counter shows: its item flags, and the
 * value itself as a data block when v was asked for. */
static unsigned mr_value(const struct mc_meta *m)
{
    return MR_ITEM | (meta_has(m, 'v') ? MR_DATA : 0);
}

/* Append a meta reply: "<code><flags>\r\n", or "VA <len><flags>\r\n<v>\r\n"
 * with MR_DATA.  The flags come back in request order. */
static void mc_meta_reply(struct mc_req *r, const char *code,
                          const struct mc_meta *m, const struct mc_tok *key,
                          unsigned what, int64_t value)
{
    struct buf *b = r->out->buf;
    char num[24];
    size_t nlen = i64_to_dec(value, num);
    int64_t shown = m->exp_before;
    if (what & MR_DATA)
        buf_printf(b, "VA %zu", nlen);
    else
        buf_adds(b, code);
    for (size_t i = 0; i < m->nflags; i++) {
        const struct mc_tok *f = &m->flags[i];
        switch (f->p[0]) {
        case 'O':
            buf_addc(b, ' ');
            buf_add(b, f->p, f->len);
            break;
        case 'k':
            buf_add(b, " k", 2);
            buf_add(b, key->p, key->len);
            break;
        case 'c':
            if (what & MR_ITEM)
                buf_printf(b, " c%" PRIu64, mc_cas_of(value));
            else if (what & MR_CAS0)
                buf_add(b, " c0", 3);
            break;
        case 'f':
            if (what & MR_ITEM)
                buf_add(b, " f0", 3);
            break;
        case 's':
            if (what & MR_ITEM)
                buf_printf(b, " s%zu", nlen);
            break;
        case 'T':
            shown = m->exp_after;
            break;
        case 'N':
            if (m->created)
                shown = m->exp_after;
            break;
        case 't':
            if (what & MR_ITEM)
                buf_printf(b, " t%" PRId64, mc_ttl_left(r, shown));
            break;
        }
    }
    buf_add(b, "\r\n", 2);
    if (what & MR_DATA) {
        buf_add(b, num, nlen);
        buf_add(b, "\r\n", 2);
    }
}

/* ---- Commands ---------------------------------------------------------- */

/* The common head of mg, md, ma: key present and short enough, flags parsed.
 * Returns 0, or -1 after replying with the error. */
static int mc_meta_head(struct mc_req *r, const struct mc_tok *t, size_t n,
                        const char *allowed, int same_words,
                        struct mc_meta *m)
{
    if (n < 2) {
        mc_reply(r, "ERROR");
        return -1;
    }
    if (t[1].len > MC_KEY_MAX) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return -1;
    }
    enum mc_meta_err e = n > MC_MAX_TOKENS
                             ? MF_TOOMANY
                             : mc_meta_parse(t + 2, n - 2, allowed, m);
    switch (e) {
    case MF_OK:
        MC_COUNT(r, cmd_meta);
        return 0;
    case MF_TOOMANY:
        mc_reply(r, "CLIENT_ERROR options flags are too long");
        return -1;
    case MF_OPAQUE:
        mc_reply(r, "CLIENT_ERROR opaque token too long");
        return -1;
    case MF_BADMODE:
        if (t[0].p[1] == 'a') {
            mc_reply(r, "CLIENT_ERROR invalid mode for ma M token");
            return -1;
        }
        break;
    default:
        break;
    }
    if (same_words)
        mc_reply(r, "CLIENT_ERROR invalid or duplicate flag");
    else if (e == MF_INVALID)
        mc_reply(r, "CLIENT_ERROR invalid flag");
    else if (e == MF_DUP)
        mc_reply(r, "CLIENT_ERROR duplicate flag");
    else
        mc_reply(r, "CLIENT_ERROR bad token in command line format");
    return -1;
}

/* True if flag a comes before flag b in the request (both given). */
static int meta_before(const struct mc_meta *m, char a, char b)
{
    for (size_t i = 0; i < m->nflags; i++) {
        if (m->flags[i].p[0] == a)
            return 1;
        if (m->flags[i].p[0] == b)
            return 0;
    }
    return 0;
}

/* mg <key> <flags>*: v k c q O s f t T, plus u, which changes nothing for a
 * counter that has no LRU, and P and L (proxy hints).  T sets the expiry
 * (T0 removes it) and t shows the seconds left, -1 for none. */
void mc_cmd_mg(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    struct mc_meta m;
    struct cmd_res res;
    if (mc_meta_head(r, t, n, "vkcqOsftTuPL", 0, &m) < 0)
        return;
    int touch = meta_has(&m, 'T');
    enum cmd_status st;
    if (touch && meta_has(&m, 't') && meta_before(&m, 't', 'T')) {
        /* t before T shows the expiry the T replaces. */
        st = mc_get(r, &t[1], &res);
        if (st != CMD_OK && st != CMD_NOTFOUND) {
            mc_reply_status(r, &res);
            return;
        }
        m.exp_before = res.expire_at;
    }
    st = touch ? mc_touch(r, &t[1], &m.ttl, &res) : mc_get(r, &t[1], &res);
    MC_COUNT(r, cmd_get);
    if (touch)
        MC_COUNT(r, cmd_touch);
    if (st == CMD_NOTFOUND) {
        MC_COUNT(r, get_misses);
        if (touch)
            MC_COUNT(r, touch_misses);
        if (!meta_has(&m, 'q'))
            mc_meta_reply(r, "EN", &m, &t[1], 0, 0);
    } else if (st != CMD_OK) {
        mc_reply_status(r, &res);
    } else {
        MC_COUNT(r, get_hits);
        if (touch)
            MC_COUNT(r, touch_hits);
        else
            m.exp_before = res.expire_at;
        m.exp_after = res.expire_at;
        mc_meta_reply(r, "HD", &m, &t[1], mr_value(&m), res.value);
    }
}

/* ma <key> <flags>*: N J D T M q O k v t c C (and P L). q hides the reply of
 * a change to an existing counter, but not of an autovivification, nor
 * NF/NS/EX: memcached 1.6 does exactly that.  The change keeps the
 * counter's expiry; T then sets a new one (T0 removes it).  A counter
 * created by N gets N's TTL, or T's when T comes after N (memcached applies
 * them in request order): one atomic change, the fixed window's start. */
void mc_cmd_ma(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    struct mc_meta m;
    struct cmd_res res;
    int64_t v;
    if (mc_meta_head(r, t, n, "NJDTMqOkvtcCPL", 1, &m) < 0)
        return;
    int incr;
    switch (m.mode) {
    case 0: case 'I': case 'i': case '+': incr = 1; break;
    case 'D': case 'd': case '-': incr = 0; break;
    default:
        mc_reply(r, "CLIENT_ERROR invalid mode for ma M token");
        return;
    }
    switch (mc_arith(r, &t[1], incr, m.delta,
                     meta_has(&m, 'C') ? &m.cas : NULL, &v, &res)) {
    case MC_RMW_OK:
        mc_count_arith(r, incr, 1);
        m.exp_before = m.exp_after = res.expire_at;
        if (meta_has(&m, 'T')) {
            /* Two changes, each durable before the reply leaves; a crash
             * between them keeps the increment with the old expiry.
             * DEBT: not atomic on a shared database either; an INCRBY
             * that can also clear the expiry (T0) in store.h removes it. */
            if (mc_touch(r, &t[1], &m.ttl, &res) != CMD_OK) {
                mc_reply_status(r, &res);
                return;
            }
            m.exp_after = res.expire_at;
        }
        if (!meta_has(&m, 'q'))
            mc_meta_reply(r, "HD", &m, &t[1], mr_value(&m), v);
        return;
    case MC_RMW_EXISTS:
        mc_meta_reply(r, "EX", &m, &t[1], 0, 0);
        return;
    case MC_RMW_ERR:
        mc_reply_status(r, &res);
        return;
    case MC_RMW_NOTFOUND:
        break;
    }
    if (!meta_has(&m, 'N')) {
        mc_count_arith(r, incr, 0);
        mc_meta_reply(r, "NF", &m, &t[1], 0, 0);
        return;
    }
    if (m.initial > (uint64_t)INT64_MAX) {
        res.status = CMD_ERR_OVERFLOW;
        mc_reply_status(r, &res);
        return;
    }
    const struct mc_exp *e = meta_has(&m, 'T') && meta_before(&m, 'N', 'T')
                                 ? &m.ttl : &m.viv;
    enum cmd_status st = mc_set(r, &t[1], (int64_t)m.initial, CMD_F_NX, e,
                                &res);
    m.created = st == CMD_OK;
    m.exp_after = res.expire_at;
    if (st == CMD_NOTSET) {
        mc_meta_reply(r, "NS", &m, &t[1], 0, 0);
    } else if (st != CMD_OK) {
        mc_reply_status(r, &res);
    } else {
        MC_COUNT(r, total_items);
        mc_meta_reply(r, "HD", &m, &t[1], mr_value(&m),
                      (int64_t)m.initial);
    }
}

/* md <key> <flags>*: C k O q T (and P L).  I (mark stale) has no meaning for
 * a counter and is refused as an invalid flag. */
void mc_cmd_md(struct mc_req *r, const struct mc_tok *t, size_t n)
{
    struct mc_meta m;
    struct cmd_res res;
    if (mc_meta_head(r, t, n, "CkOqTPL", 1, &m) < 0)
        return;
    if (meta_has(&m, 'C')) {
        /* Delete only if it still holds the value the unique names: one
         * store operation, atomic on a shared database. */
        struct cmd_req q = {.op = CMD_GETDEL, .key = t[1].p,
                            .klen = t[1].len, .flags = CMD_F_IFEQ,
                            .cmp = mc_value_of(m.cas)};
        switch (mc_exec(r, &q, &res)) {
        case CMD_OK:
            MC_COUNT(r, delete_hits);
            if (!meta_has(&m, 'q'))
                mc_meta_reply(r, "HD", &m, &t[1], 0, 0);
            return;
        case CMD_NOTFOUND:
            MC_COUNT(r, delete_misses);
            mc_meta_reply(r, "NF", &m, &t[1], 0, 0);
            return;
        case CMD_NOTSET:
            MC_COUNT(r, delete_misses);
            mc_meta_reply(r, "EX", &m, &t[1], 0, 0);
            return;
        default:
            mc_reply_status(r, &res);
            return;
        }
    }
    if (mc_one_key(r, CMD_DEL, &t[1], &res) != CMD_OK) {
        mc_reply_status(r, &res);
    } else if (res.n) {
        MC_COUNT(r, delete_hits);
        if (!meta_has(&m, 'q'))
            mc_meta_reply(r, "HD", &m, &t[1], 0, 0);
    } else {
        MC_COUNT(r, delete_misses);
        mc_meta_reply(r, "NF", &m, &t[1], 0, 0);
    }
}

/* ms <key> <datalen> <flags>*: c C F k O q T M(S E R; A and P refused)
 * (and P L).  T is the stored counter's exptime.  Once <datalen> is known the data block is always consumed,
 * even when the flags are refused.  Returns bytes consumed, 0 to wait. */
size_t mc_cmd_ms(struct mc_req *r, const struct mc_tok *t, size_t n,
                        const char *in, size_t len, size_t linelen)
{
    struct mc_meta m;
    uint64_t bytes;
    if (n < 2) {
        mc_reply(r, "ERROR");
        return linelen;
    }
    if (n < 3 || t[1].len > MC_KEY_MAX ||
        mc_parse_datalen(&t[2], &bytes) < 0) {
        mc_reply(r, "CLIENT_ERROR bad command line format");
        return linelen;
    }
    const char *data;
    size_t used;
    enum mc_data framed = mc_frame(r->c, in, len, linelen, bytes, &data,
                                   &used);
    if (framed == MC_DATA_MORE)
        return 0;
    enum mc_meta_err e = n > MC_MAX_TOKENS ? MF_TOOMANY
                       : mc_meta_parse(t + 3, n - 3, "cCFkOqTMPL", &m);
    static const char *const words[] = {
        [MF_INVALID] = "CLIENT_ERROR invalid flag",
        [MF_DUP] = "CLIENT_ERROR duplicate flag",
        [MF_BADTOKEN] = "CLIENT_ERROR bad token in command line format",
        [MF_BADMODE] = "CLIENT_ERROR invalid mode for ms M token",
        [MF_BADFLAGS] = "CLIENT_ERROR bad command line format",
        [MF_OPAQUE] = "CLIENT_ERROR opaque token too long",
        [MF_TOOMANY] = "CLIENT_ERROR options flags are too long",
    };
    if (e != MF_OK) {
        mc_reply(r, words[e]);
        return used;
    }
    unsigned f;
    switch (m.mode) {
    case 0: case 'S': case 's': f = 0; break;
    case 'E': case 'e': f = CMD_F_NX; break;
    case 'R': case 'r': f = CMD_F_XX; break;
    case 'A': case 'a': case 'P': case 'p':
        mc_reply(r, "CLIENT_ERROR append and prepend are not supported on "
                 "counters");
        return used;
    default:
        mc_reply(r, words[MF_BADMODE]);
        return used;
    }
    if (mc_data_refused(r, framed))
        return used;
    MC_COUNT(r, cmd_meta);
    MC_COUNT(r, cmd_set);
    int64_t v;
    struct cmd_res res;
    if (cmd_parse_i64(data, (size_t)bytes, &v) < 0) {
        mc_reply(r, "CLIENT_ERROR bad data chunk");
        return used;
    }
    if (meta_has(&m, 'C')) {
        /* Without T the store leaves no expiry, as memcached's ms does. */
        switch (mc_store_cas(r, &t[1], v, f, &m.ttl, m.cas, &res)) {
        case MC_RMW_NOTFOUND:
            mc_meta_reply(r, "NF", &m, &t[1], 0, 0);
            return used;
        case MC_RMW_EXISTS:
            mc_meta_reply(r, "EX", &m, &t[1], MR_CAS0, 0);
            return used;
        case MC_RMW_ERR:
            mc_reply_status(r, &res);
            return used;
        case MC_RMW_OK:
            MC_COUNT(r, total_items);
            if (!meta_has(&m, 'q'))
                mc_meta_reply(r, "HD", &m, &t[1], MR_ITEM, v);
            return used;
        }
    }
    /* Without T the store leaves no expiry, as memcached's ms does. */
    enum cmd_status st = mc_set(r, &t[1], v, f, &m.ttl, &res);
    if (st == CMD_OK) {
        MC_COUNT(r, total_items);
        if (!meta_has(&m, 'q'))
            mc_meta_reply(r, "HD", &m, &t[1], MR_ITEM, v);
    } else if (st == CMD_NOTSET) {
        mc_meta_reply(r, "NS", &m, &t[1], MR_CAS0, 0);
    } else {
        mc_reply_status(r, &res);
    }
    return used;
}

