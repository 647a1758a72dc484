/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcache_int.h - what the two files of the memcached front end share
 * (memcache.c: connections, framing, the tokenizer and dispatch, the classic
 * commands and stats; memcache_meta.c: the meta commands mg, ms, md, ma and
 * their flags).  Nothing here is seen outside src/proto/memcache*.c; the
 * daemon sees only mc_ops and mc_front_new/free (memcache.h).
 *
 * Everything below is defined in memcache.c except the meta commands at the
 * end.  The replies these helpers write follow memcached 1.6's proto_text.c.
 */
#ifndef TALLY_MEMCACHE_INT_H
#define TALLY_MEMCACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "memcache.h"
#include "proto.h"
#include "util.h"

#define MC_KEY_MAX 250      /* memcached's KEY_MAX_LENGTH */
#define MC_MAX_TOKENS 24    /* memcached's MAX_TOKENS, command included */

/* ---- Listener-wide state ----------------------------------------------
 *
 * memcached's "stats" reports hits and misses per command, which neither the
 * command layer nor the engine count, and must add up across every
 * connection of the listener: they live in the struct mc_front the daemon
 * makes with mc_front_new() and hands to every connection.  Counters are
 * bumped with relaxed atomic adds, so a daemon running front ends on several
 * threads would need no lock. */
struct mc_counters {
    uint64_t cmd_get, cmd_set, cmd_flush, cmd_touch, cmd_meta;
    uint64_t get_hits, get_misses;
    uint64_t delete_hits, delete_misses;
    uint64_t incr_hits, incr_misses, decr_hits, decr_misses;
    uint64_t cas_hits, cas_misses, cas_badval;
    uint64_t touch_hits, touch_misses;
    uint64_t total_items; /* successful stores and autovivifications */
    uint64_t auth_cmds, auth_errors;
};

struct mc_front {
    struct mc_options opts;
    struct mc_counters n;
};

/* r is the struct mc_req being answered.  A request a store answers later
 * runs more than once (cmd.h "Asynchronous stores"): a count is taken in
 * the run that waits (before its store call) or in the final one (after
 * it), never in both, so each request counts once. */
#define MC_RERUN(r) \
    (cmd_pending((r)->c->s) || cmd_store_replaying((r)->c->s))
#define MC_COUNT(r, field) MC_COUNT_N(r, field, 1)
#define MC_COUNT_N(r, field, k) \
    ((void)(MC_RERUN(r) ? 0 : __atomic_fetch_add(&(r)->c->front->n.field, \
                                                  (k), __ATOMIC_RELAXED)))
#define MC_READ(r, field) \
    __atomic_load_n(&(r)->c->front->n.field, __ATOMIC_RELAXED)

/* ---- Connections and requests ------------------------------------------ */

struct mc_conn {
    struct mc_front *front;  /* the listener's, borrowed */
    struct cmd_ctx *ctx;     /* borrowed from the daemon */
    struct cmd_session *s;   /* borrowed */
    struct proto_limits lim;
    uint64_t swallow;        /* bytes of a refused data block still to drop */
};

/* A slice of the input line. */
struct mc_tok {
    const char *p;
    size_t len;
};

/* One request being answered. */
struct mc_req {
    struct mc_conn *c;
    struct proto_out *out;
    int noreply;             /* classic noreply: no reply bytes at all */
};

/* ---- Numbers ----------------------------------------------------------- */

/* The numbers of a command line, taken exactly as memcached 1.6 takes them
 * (memcache.c spells the rule out).  Each returns 0, or -1 with *out
 * unspecified. */
int mc_parse_u64(const char *s, size_t len, uint64_t *out); /* safe_strtoull,
                           also flags: memcached truncates them, tally ignores
                           them */
int mc_parse_i64(const char *s, size_t len, int64_t *out);  /* safe_strtol:
                           exptime, TTL tokens, flush_all's delay */
/* The <bytes> of a storage line (set, cas, ms, ...): a signed number as
 * mc_parse_i64 reads it, from 0 to INT32_MAX - 2 as memcached checks it. */
int mc_parse_datalen(const struct mc_tok *t, uint64_t *out);

/* The cas unique shown for a counter holding v (see memcache.c). */
uint64_t mc_cas_of(int64_t v);

/* ---- Expiry ------------------------------------------------------------ */

/* An expiry in the command layer's terms (cmd.h, "Expiry"): flags 0 for
 * none, CMD_F_PX with expire in ms from now, or CMD_F_PXAT with expire in
 * Unix ms.  The command layer resolves it on the engine's clock; this front
 * end only translates what the client wrote. */
struct mc_exp {
    unsigned flags;
    int64_t expire;
};

/* memcached's exptime (protocol.txt, "Expiration times") as an mc_exp: 0
 * never; 1 to 2,592,000 (30 days) seconds from now; above that a Unix time
 * in seconds; negative: already expired (a TTL below zero, which deletes).
 * memcached reads it as a 64-bit decimal and keeps the low 32 bits as a
 * signed number, and so does this.  Returns 0, or -1 (not a number) with *e
 * untouched. */
int mc_parse_exptime(const char *s, size_t len, struct mc_exp *e);

/* The seconds left that memcached's t flag shows for an expiry at expire_at
 * (Unix ms, on the command layer's clock): -1 for none (0), rounded up so
 * that "T60" reads back as 60, and 0 once it has passed. */
int64_t mc_ttl_left(struct mc_req *r, int64_t expire_at);

/* ---- Replies and the command layer ------------------------------------- */

/* Append line and "\r\n" to the reply, unless the request said noreply. */
void mc_reply(struct mc_req *r, const char *line);

/* Append the memcached error line for the command layer's status in res. */
void mc_reply_status(struct mc_req *r, const struct cmd_res *res);

/* Run one request through the command layer (OUT res) and fold its ticket
 * into the reply's.  Returns res->status. */
enum cmd_status mc_exec(struct mc_req *r, const struct cmd_req *req,
                        struct cmd_res *res);

/* CMD_GET and CMD_SET (flags CMD_F_NX / CMD_F_XX / CMD_F_KEEPTTL) of one
 * key; OUT res.  mc_set gives the counter the expiry e, or none when e is
 * NULL or has no flags (a memcached store replaces the item, exptime
 * included). */
enum cmd_status mc_get(struct mc_req *r, const struct mc_tok *key,
                       struct cmd_res *res);
enum cmd_status mc_set(struct mc_req *r, const struct mc_tok *key, int64_t v,
                       unsigned flags, const struct mc_exp *e,
                       struct cmd_res *res);

/* touch, gat, mg T, ma T: give key the expiry e (no flags: remove it)
 * keeping its value, with CMD_GETEX; OUT res.  CMD_OK means the counter
 * existed (res->value holds it, res->expire_at the new expiry; an expiry
 * already past has deleted it after the read). */
enum cmd_status mc_touch(struct mc_req *r, const struct mc_tok *key,
                         const struct mc_exp *e, struct cmd_res *res);

/* CMD_DEL or CMD_EXISTS on one key: res->n says whether it existed. */
enum cmd_status mc_one_key(struct mc_req *r, enum cmd_op op,
                           const struct mc_tok *key, struct cmd_res *res);

/* ---- Read, compare, change: shared by cas, incr, decr, ms, md, ma ------ */

/* How a step that reads a counter, compares its cas unique and perhaps
 * changes it ended.  MC_RMW_ERR: res holds the command layer's status. */
enum mc_rmw { MC_RMW_OK, MC_RMW_NOTFOUND, MC_RMW_EXISTS, MC_RMW_ERR };

/* The value whose cas unique is u (mc_cas_of's inverse). */
int64_t mc_value_of(uint64_t u);

/* Read key and, if want_cas is set, compare its cas unique with *want_cas
 * (MC_RMW_EXISTS when they differ).  On MC_RMW_OK res->value holds the
 * counter.  Counts nothing. */
enum mc_rmw mc_cas_check(struct mc_req *r, const struct mc_tok *key,
                         const uint64_t *want_cas, struct cmd_res *res);

/* A store with a cas (cas, ms with C): key becomes v (flags and e as for
 * mc_set) only if its unique is `unique`, in one atomic SET; counted in
 * cas_hits, cas_misses or cas_badval. */
enum mc_rmw mc_store_cas(struct mc_req *r, const struct mc_tok *key,
                         int64_t v, unsigned flags, const struct mc_exp *e,
                         uint64_t unique, struct cmd_res *res);

/* incr (incr != 0) or decr of key by delta, memcached's way on a signed
 * counter; with want_cas, only if the unique matches.  The counter keeps its
 * expiry.  On MC_RMW_OK *value holds the new value and res->expire_at the
 * expiry.  Counts nothing (see mc_count_arith). */
enum mc_rmw mc_arith(struct mc_req *r, const struct mc_tok *key, int incr,
                     uint64_t delta, const uint64_t *want_cas, int64_t *value,
                     struct cmd_res *res);

/* Count an incr or decr hit (hit != 0) or miss. */
void mc_count_arith(struct mc_req *r, int incr, int hit);

/* ---- Data blocks ------------------------------------------------------- */

/* Where a data block stands relative to the bytes at hand. */
enum mc_data { MC_DATA_OK, MC_DATA_MORE, MC_DATA_SWALLOW, MC_DATA_BAD };

/* Frame the data block of `bytes` that follows a line of linelen bytes in
 * in[0, len): see memcache.c for what *data and *used hold per result. */
enum mc_data mc_frame(struct mc_conn *c, const char *in, size_t len,
                      size_t linelen, uint64_t bytes, const char **data,
                      size_t *used);

/* If d is MC_DATA_SWALLOW or MC_DATA_BAD, reply with memcached's error for
 * it and return 1; otherwise return 0 and reply nothing. */
int mc_data_refused(struct mc_req *r, enum mc_data d);

/* ---- Meta commands (memcache_meta.c) ----------------------------------- */

/* mg, md, ma: line tokens t[0, n), n possibly MC_MAX_TOKENS + 1 (too many). */
void mc_cmd_mg(struct mc_req *r, const struct mc_tok *t, size_t n);
void mc_cmd_md(struct mc_req *r, const struct mc_tok *t, size_t n);
void mc_cmd_ma(struct mc_req *r, const struct mc_tok *t, size_t n);

/* ms: the line is in[0, linelen), its data block follows in in[0, len).
 * Returns bytes consumed, 0 to wait for more. */
size_t mc_cmd_ms(struct mc_req *r, const struct mc_tok *t, size_t n,
                 const char *in, size_t len, size_t linelen);

#endif /* TALLY_MEMCACHE_INT_H */
