/*
 * cmd.h - the command layer: what each counter command means, whatever the
 * protocol.
 *
 * Front ends (src/proto: RESP, HTTP, memcached) turn bytes into a struct
 * cmd_req, call cmd_exec(), and turn the struct cmd_res that comes back into
 * their own reply.  This layer owns the meaning of every operation, its
 * limits, authentication and per-command statistics; it never writes wire
 * bytes and never touches a socket.  Storage is libtally (include/tally.h).
 *
 * The durability rule lives in the result: every cmd_res carries a ticket and
 * the caller must not let the reply leave before tally_durable() reaches it
 * (src/server holds replies for that).  Errors too: every result that
 * depends on state carries the ticket of that state, whatever its status
 * (CMD_ERR_OVERFLOW shows a value, CMD_ERR_IDREUSED an id; NOTFOUND,
 * NOTSET, EXISTS and DEL's count show reads).  An error that shows no
 * state has ticket 0, so holding every reply by res->ticket costs nothing.
 *
 * Exactly once: a front end that receives an idempotency id with a change
 * (RESP's INCRBY.ONCE, an HTTP Idempotency-Key header) puts it in
 * req->once/oncelen and sends the request as usual.  CMD_INCRBY, CMD_SET
 * (no flags), CMD_DEL (one key) and CMD_GETDEL accept one.  The first
 * request with an id is applied; a repeat of the same request gets the
 * first one's result with res->replayed = 1 and applies nothing;
 * CMD_ERR_IDREUSED means the id came with another request,
 * CMD_ERR_INFLIGHT that the first is not durable yet (ask the client to
 * retry shortly), CMD_ERR_IDLEN that the id is empty or too long.  The
 * engine side is in include/tally.h ("Exactly-once changes").
 */
#ifndef TALLY_CMD_H
#define TALLY_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

/* Which front end a request came from (statistics and INFO only). */
enum cmd_proto { CMD_PROTO_RESP = 0, CMD_PROTO_HTTP, CMD_PROTO_MEMCACHE,
                 CMD_PROTO_COUNT };

enum cmd_op {
    CMD_GET = 0, /* key -> value or NOTFOUND */
    CMD_INCRBY,  /* key, num = delta -> value (a missing counter starts at 0) */
    CMD_SET,     /* key, num = value, flags CMD_F_NX/XX/GET -> OK, NOTSET;
                    with CMD_F_GET: found/value hold the old value */
    CMD_GETDEL,  /* key -> old value or NOTFOUND; deletes */
    CMD_DEL,     /* keys[nkeys] -> n = how many existed; atomic */
    CMD_EXISTS,  /* keys[nkeys] -> n = how many exist (repeats count again) */
    CMD_MGET,    /* keys[nkeys] -> values[i], founds[i] (caller's arrays) */
    CMD_MSET,    /* keys[nkeys], nums[nkeys]; atomic */
    CMD_DBSIZE,  /* -> n = number of counters */
    CMD_SCAN,    /* cursor, match (glob, may be empty), count -> item() per
                    counter, n = next cursor (0 when done) */
    CMD_KEYS,    /* match (glob) -> item() per counter; the whole table */
    CMD_SAVE,    /* write a snapshot now (blocks) */
    CMD_BGSAVE,  /* start a background snapshot; BUSY if one is running */
    CMD_AUTH,    /* pass, passlen -> OK, or ERR_WRONGPASS / ERR_NOPASS */
    CMD_OP_COUNT
};

/* Flags for CMD_SET. */
#define CMD_F_NX 0x1  /* only if the counter does not exist */
#define CMD_F_XX 0x2  /* only if it exists */
#define CMD_F_GET 0x4 /* report the old value (found/value) */

enum cmd_status {
    CMD_OK = 0,
    CMD_NOTFOUND,       /* result: no such counter */
    CMD_NOTSET,         /* result: the NX/XX condition was not met */
    CMD_ERR_NOTINT,     /* a number is not a decimal int64 (front ends
                           report this for arguments they parse with
                           cmd_parse_i64) */
    CMD_ERR_OVERFLOW,   /* increment would leave int64; nothing changed */
    CMD_ERR_KEYLEN,     /* key longer than TALLY_KEY_MAX */
    CMD_ERR_ARGS,       /* malformed request (bad count, odd MSET ...) */
    CMD_ERR_NOAUTH,     /* a password is set and the session has not
                           authenticated */
    CMD_ERR_WRONGPASS,  /* AUTH with the wrong password */
    CMD_ERR_NOPASS,     /* AUTH but no password is configured */
    CMD_ERR_WRITEFAIL,  /* the write path stopped (fsync failed) */
    CMD_ERR_DISKFULL,   /* disk full: change refused, nothing changed */
    CMD_ERR_NOTDURABLE, /* read of a value a failed sync may have lost */
    CMD_ERR_BUSY,       /* a snapshot is already running */
    CMD_ERR_IO,         /* SAVE or another I/O failed; see detail */
    CMD_ERR_IDREUSED,   /* idempotency id already used for a different
                           request; nothing changed */
    CMD_ERR_INFLIGHT,   /* the first request with this id is not durable
                           yet; nothing changed, retry shortly */
    CMD_ERR_IDLEN,      /* idempotency id empty or over TALLY_ID_MAX bytes */
    CMD_STATUS_COUNT
};

/* Daemon-wide facts that INFO, stats and /metrics report.  The daemon owns
 * and updates it; the command layer and front ends only read it. */
struct cmd_serverinfo {
    int64_t start_unix;        /* when tallyd started */
    int pid;
    int port, http_port, memcache_port;
    uint64_t connected_clients;
    uint64_t total_connections;
    uint64_t rejected_connections; /* refused over maxclients */
    uint64_t maxclients;
    const char *dir;           /* data directory */
    const char *version;
};

/* Per-connection (or per-request, for HTTP) state the layer needs. */
struct cmd_session {
    uint64_t id;              /* unique, set by the daemon */
    enum cmd_proto proto;
    int authed;               /* set by a successful CMD_AUTH */
};

/* Counted by cmd_exec() for every request. */
struct cmd_stats {
    uint64_t calls[CMD_PROTO_COUNT][CMD_OP_COUNT];
    uint64_t errors[CMD_PROTO_COUNT][CMD_OP_COUNT]; /* status >= ERR */
};

struct cmd_ctx {
    tally *db;                      /* borrowed */
    const char *password;           /* NULL: no authentication */
    size_t passlen;
    const struct cmd_serverinfo *info; /* borrowed, may be NULL */
    struct cmd_stats stats;
};

struct cmd_req {
    enum cmd_op op;
    const char *key;          /* single-key ops */
    size_t klen;
    int64_t num;              /* INCRBY delta, SET value */
    unsigned flags;           /* CMD_F_* */
    size_t nkeys;             /* DEL, EXISTS, MGET, MSET */
    const char *const *keys;
    const size_t *klens;
    const int64_t *nums;      /* MSET values */
    uint64_t cursor;          /* SCAN */
    const char *match;        /* SCAN, KEYS: glob; NULL or "" matches all */
    size_t matchlen;
    size_t count;             /* SCAN: about how many per call (0 = 10) */
    const char *pass;         /* AUTH */
    size_t passlen;
    const char *once;         /* idempotency id, or NULL for none (INCRBY,
                                 SET without flags, DEL of one key, GETDEL) */
    size_t oncelen;
};

/* Called per counter for SCAN and KEYS; nonzero stops the walk. */
typedef int (*cmd_item_fn)(void *ctx, const char *key, size_t klen,
                           int64_t value);

struct cmd_res {
    enum cmd_status status;
    tally_ticket ticket;      /* the reply may leave once durable (errors
                                 included: see the top of this file) */
    int found;                /* value holds a value */
    int64_t value;
    uint64_t n;               /* counts, DBSIZE, SCAN's next cursor */
    int64_t *values;          /* MGET: caller's nkeys-long arrays */
    unsigned char *founds;
    cmd_item_fn item;         /* SCAN, KEYS: caller's callback */
    void *item_ctx;
    char detail[160];         /* extra words for ERR_IO and friends, or "" */
    int replayed;             /* a repeat of a request with the same
                                 idempotency id: the first one's result */
};

/* Set up ctx over an open database (borrowed).  password may be NULL. */
void cmd_init(struct cmd_ctx *ctx, tally *db, const char *password,
              size_t passlen, const struct cmd_serverinfo *info);

/* Run one request.  The caller fills res->values/founds (MGET) and
 * res->item/item_ctx (SCAN, KEYS) before the call; everything else in *res is
 * set by it.  Returns res->status.  Never fails for lack of memory (aborts). */
enum cmd_status cmd_exec(struct cmd_ctx *ctx, struct cmd_session *s,
                         const struct cmd_req *req, struct cmd_res *res);

/* Count a request that a front end refused before it could build a
 * cmd_req (an argument that cmd_parse_i64 rejects, say), so per-command
 * error statistics see it too.  Returns st. */
enum cmd_status cmd_refuse(struct cmd_ctx *ctx, const struct cmd_session *s,
                           enum cmd_op op, enum cmd_status st);

/* True if the session may run commands (no password, or authenticated).
 * Front ends check it for their own connection-level commands. */
int cmd_authorized(const struct cmd_ctx *ctx, const struct cmd_session *s);

/* Authenticate s with pass (passlen bytes, compared in constant time) as
 * CMD_AUTH does, without counting a command: for a front end whose requests
 * carry credentials (HTTP's bearer token).  Returns CMD_OK (s->authed set),
 * CMD_ERR_WRONGPASS or CMD_ERR_NOPASS. */
enum cmd_status cmd_login(const struct cmd_ctx *ctx, struct cmd_session *s,
                          const char *pass, size_t passlen);

/* Parse a decimal int64 the way Redis does (no sign but '-', no spaces, no
 * leading zeros, nothing after).  Returns 0 and sets *out, or -1. */
int cmd_parse_i64(const char *s, size_t len, int64_t *out);

/* Parse an unsigned decimal: digits only (leading zeros allowed), at least
 * one, no more than UINT64_MAX.  For cursors, limits and lengths, which every
 * front end reads.  Returns 0 and sets *out, or -1. */
int cmd_parse_u64(const char *s, size_t len, uint64_t *out);

/* The fingerprint recorded with an idempotency id: tally_once_hash (64-bit
 * FNV-1a, unseeded) over, in order, one tag byte for the operation ('i'
 * INCRBY, 's' SET, 'd' DEL, 'g' GETDEL), the key's length (u32 LE), the
 * key, the argument (i64 LE: INCRBY's delta, SET's value, 0 otherwise) and
 * the flags (u32 LE).  Fixed so that ids recorded on disk keep matching
 * across restarts and versions. */
uint64_t cmd_once_fingerprint(const struct cmd_req *req);

/* Glob match as Redis's MATCH does it (*, ?, [...], \ escapes), binary-safe.
 * Returns 1 on a match. */
int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen);

/* Stable lower-case names for metrics and logs ("incrby", "get", ...). */
const char *cmd_op_name(enum cmd_op op);
const char *cmd_proto_name(enum cmd_proto p);
const char *cmd_status_name(enum cmd_status st);

#endif /* TALLY_CMD_H */
