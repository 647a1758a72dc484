/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmd.h - the command layer: what each counter command means, whatever the
 * protocol.
 *
 * Front ends (src/proto: RESP, HTTP, memcached) turn bytes into a struct
 * cmd_req, call cmd_exec(), and turn the struct cmd_res that comes back into
 * their own reply.  This layer owns the meaning of every operation, its
 * limits, authentication and per-command statistics; it never writes wire
 * bytes and never touches a socket.  Counters live in a store
 * (src/store/store.h: the engine, PostgreSQL).
 *
 * The durability rule lives in the result: every cmd_res carries a ticket and
 * the caller must not let the reply leave before store_durable() reaches it
 * (src/server holds replies for that).  Errors too: every result that
 * depends on state carries the ticket of that state, whatever its status
 * (CMD_ERR_OVERFLOW shows a value, CMD_ERR_IDREUSED an id; NOTFOUND,
 * NOTSET, EXISTS and DEL's count show reads).  An error that shows no
 * state has ticket 0, so holding every reply by res->ticket costs nothing.
 *
 * Exactly once: a front end that receives an idempotency id with a change
 * (RESP's INCRBY.ONCE, an HTTP Idempotency-Key header) puts it in
 * req->once/oncelen and sends the request as usual.  CMD_INCRBY (also with
 * an expiry), CMD_SET (no flags but CMD_F_PX/PXAT), CMD_DEL (one key) and
 * CMD_GETDEL accept one.  The first request with an id is applied; a repeat of the same request gets the
 * first one's result with res->replayed = 1 and applies nothing;
 * CMD_ERR_IDREUSED means the id came with another request,
 * CMD_ERR_INFLIGHT that the first is not durable yet (ask the client to
 * retry shortly), CMD_ERR_IDLEN that the id is empty or too long.  The
 * engine side is in include/tally.h ("Exactly-once changes").
 *
 * Expiry.  A front end passes an expiry as the client wrote it and lets
 * this layer resolve it: CMD_F_PX means req->expire is a TTL in ms from now
 * (Redis EX/PX/SETEX, memcached exptime up to 30 days, HTTP ttl_ms; the
 * front end multiplies seconds by 1000 and reports CMD_ERR_EXPIRE itself if
 * that overflows), CMD_F_PXAT that it is an absolute Unix time in ms (Redis
 * EXAT/PXAT/EXPIREAT, memcached exptime above 30 days, HTTP expires_at).
 * The store adds its clock (store.h "Expiry") to a TTL and refuses a
 * result outside 1..TALLY_EXPIRE_MAX or an overflow with CMD_ERR_EXPIRE
 * (Redis's "invalid expire time in '<cmd>' command").  A TTL of zero or
 * below, or an absolute time at or before now, deletes the counter, as in
 * Redis 7 (front ends that must refuse a non-positive TTL instead, as
 * Redis's SET EX 0 does, check that while parsing).  Which ops take what:
 *   CMD_SET     CMD_F_PX / CMD_F_PXAT set the expiry, CMD_F_KEEPTTL keeps
 *               the counter's, neither clears it (Redis: a plain SET clears
 *               the TTL); combines with NX/XX/GET.
 *   CMD_INCRBY  keeps the expiry unless CMD_F_PX / CMD_F_PXAT is given: then
 *               it sets it, or with CMD_F_TTL_IFNEW sets it only when this
 *               increment creates the counter (HTTP's and memcached ma N's
 *               fixed window in one atomic change).
 *   CMD_EXPIRE  CMD_F_PX / CMD_F_PXAT required; conditions CMD_F_NX (only
 *               if it has no expiry), CMD_F_XX (only if it has one),
 *               CMD_F_GT / CMD_F_LT (only if later / earlier than the
 *               current one, none counting as infinitely late), Redis 7
 *               rules; NX with XX, GT or LT, or GT with LT, is
 *               CMD_ERR_ARGS.
 *   CMD_GETEX   optional CMD_F_PX / CMD_F_PXAT, or CMD_F_PERSIST.
 * Every result that shows a counter also carries its expiry in
 * res->expire_at (Unix ms, 0 for none) so front ends can report it.
 */
#ifndef TALLY_CMD_H
#define TALLY_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
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
    CMD_EXPIRE,  /* key, expire + CMD_F_PX/PXAT, flags NX/XX/GT/LT -> n = 1
                    if the expiry was set (or the counter deleted because
                    it is in the past), 0 if the counter is missing or the
                    condition failed */
    CMD_PERSIST, /* key -> n = 1 if an expiry was removed, else 0 */
    CMD_TTL,     /* key -> NOTFOUND, or OK with expire_at (0: none) and
                    ttl_ms (ms left, -1 for none) */
    CMD_GETEX,   /* key, optional expire + CMD_F_PX/PXAT or CMD_F_PERSIST
                    -> value (before an expiry in the past deletes it) or
                    NOTFOUND */
    CMD_OP_COUNT
};

/* Flags for CMD_SET (and CMD_EXPIRE: NX, XX, GT, LT). */
#define CMD_F_NX 0x1  /* only if the counter does not exist (EXPIRE: only
                         if it has no expiry) */
#define CMD_F_XX 0x2  /* only if it exists (EXPIRE: only if it has one) */
#define CMD_F_GET 0x4 /* report the old value (found/value) */
/* Expiry flags (see "Expiry" above). */
#define CMD_F_PX 0x8          /* req->expire: ms from now */
#define CMD_F_PXAT 0x10       /* req->expire: absolute Unix ms */
#define CMD_F_KEEPTTL 0x20    /* SET: keep the counter's expiry */
#define CMD_F_PERSIST 0x40    /* GETEX: remove the expiry */
#define CMD_F_GT 0x80         /* EXPIRE: only if later than the current */
#define CMD_F_LT 0x100        /* EXPIRE: only if earlier than the current */
#define CMD_F_TTL_IFNEW 0x200 /* INCRBY: the expiry only if it creates */
#define CMD_F_ITEMX 0x400     /* SCAN, KEYS: call res->itemx (which also
                                 gets each expiry) instead of res->item */
/* Read-compare-change in one atomic store operation (memcached). */
#define CMD_F_IFEQ 0x800      /* SET, GETDEL: only if the counter exists
                                 and holds req->cmp (cas, md C); else
                                 NOTSET (SET: found says whether it
                                 exists; GETDEL: NOTFOUND if it does not) */
#define CMD_F_MUSTEXIST 0x1000 /* INCRBY: NOTFOUND instead of creating */
#define CMD_F_FLOOR0 0x2000   /* INCRBY: a result below 0 becomes 0, a
                                 counter already below 0 stays (decr) */
#define CMD_F_NOEXPIRY 0x4000 /* GET, plain INCRBY: the front end shows no
                                 expiry (res->expire_at may be 0), so a
                                 remote store may skip reading it (RESP) */

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
    CMD_ERR_EXPIRE,     /* expiry out of range (Redis: "invalid expire
                           time in '<cmd>' command"); nothing changed */
    /* Transactions (multi.c; "Transactions" below). */
    CMD_ERR_NESTED,     /* MULTI inside MULTI */
    CMD_ERR_NOMULTI,    /* EXEC or DISCARD without MULTI */
    CMD_ERR_WATCHMULTI, /* WATCH inside MULTI */
    CMD_ERR_EXECABORT,  /* EXEC after a queue-time error: nothing ran */
    CMD_ERR_INBATCH,    /* an idempotency id inside a transaction or
                           script (its outcome cannot be undone) */
    CMD_ERR_DENIED,     /* refused by the configuration (FLUSH without
                           --allow-flush) */
    CMD_ERR_SCRIPTBUSY, /* another session's script has run past
                           busy-reply-threshold (Redis's -BUSY) */
    /* Stores (store.h). */
    CMD_ERR_UNAVAILABLE, /* the store cannot be reached now; nothing
                            changed: retry (RESP -TRYAGAIN, HTTP 503,
                            memcached SERVER_ERROR) */
    CMD_ERR_UNKNOWN,    /* the store lost its connection after the change
                           was sent: it may or may not have happened (a
                           retry with an idempotency id resolves it) */
    CMD_ERR_UNSUPPORTED, /* this store cannot do that (SAVE, or a command
                            that needs an atomic batch, on a store without
                            batches); detail names the store */
    CMD_PENDING,        /* not a result: the store answers later.  The
                           front end's reply to this request is dropped and
                           the request is run again when the daemon is
                           woken ("Asynchronous stores" below) */
    CMD_STATUS_COUNT
};

/* Daemon-wide facts that INFO, stats and /metrics report.  The daemon owns
 * and updates it; the command layer and front ends only read it. */
/* The daemon's settings, for RESP's CONFIG GET and CONFIG SET: filled by
 * tallyd (src/server/conffile.c); absent in a process without settings. */
enum cmd_config_status {
    CMD_CONFIG_OK = 0,
    CMD_CONFIG_UNKNOWN,        /* no such setting */
    CMD_CONFIG_IMMUTABLE,      /* only at start: file or command line */
    CMD_CONFIG_BADVALUE,       /* reason in err */
};

struct cmd_config {
    void *self;
    size_t count;              /* settings, named by index 0..count-1 */
    /* The name of setting i (lower case, as its flag without "--"); its
     * value as the daemon uses it is written into out (n bytes). */
    const char *(*get)(void *self, size_t i, char *out, size_t n);
    /* Change a setting now: a cmd_config_status, with the reason in err
     * (256 bytes) for CMD_CONFIG_BADVALUE. */
    int (*set)(void *self, const char *name, const char *value, char *err);
};

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
    const char *git_rev;       /* the build's git revision, or "unknown" */
    const struct cmd_config *config; /* CONFIG GET/SET, or NULL */
    const struct cmd_clients *clients; /* CLIENT LIST/KILL, or NULL */
};

/* ---- Connected clients (clients.c) -------------------------------------
 *
 * The daemon owns the connections; the command layer sees them only
 * through this provider (cmd_serverinfo.clients), so CLIENT LIST and
 * CLIENT KILL work without knowing how a connection is kept.  Only stream
 * connections (RESP, memcached) are clients: an HTTP request is not one. */

/* One connection as CLIENT LIST shows it; every pointer is borrowed for the
 * duration of the callback. */
struct cmd_client {
    const struct cmd_session *session; /* id, name, last command, ... */
    const char *addr;         /* peer "ip:port" */
    const char *laddr;        /* local "ip:port" */
    int fd;
    int64_t age_s;            /* since it connected */
    int64_t idle_s;           /* since its last request */
    uint64_t qbuf;            /* input bytes buffered, not yet run */
    uint64_t qbuf_free;       /* room left in the input buffer */
    uint64_t obl;             /* reply bytes not yet written (held ones
                                 included) */
    uint64_t omem;            /* memory of the reply buffer */
    uint64_t tot_mem;         /* the connection's buffers and state */
    const char *events;       /* "r", "w", "rw" or "": what it waits for */
    int killed;               /* killed, closing as soon as it can */
};

struct cmd_ctx;

typedef int (*cmd_client_fn)(void *arg, const struct cmd_client *cl);

struct cmd_clients {
    void *self;
    /* Call fn for every open connection, newest first; a nonzero return
     * stops the walk and is returned. */
    int (*each)(void *self, cmd_client_fn fn, void *arg);
    /* Close connection id.  The caller's own connection (caller->id == id)
     * is closed after its current reply is written; any other at once,
     * dropping replies it has not written, held ones included.  Returns 1,
     * or 0 if there is no such connection. */
    int (*kill)(void *self, uint64_t id, const struct cmd_session *caller);
};

/* CLIENT KILL's filters, all of which must match; zero/NULL fields match
 * everything. */
enum cmd_client_type {
    CMD_CLIENT_ANY = 0,
    CMD_CLIENT_NORMAL,
    CMD_CLIENT_PUBSUB,        /* subscribed to a channel or pattern */
    CMD_CLIENT_NONE,          /* master, replica: tally has none */
};

struct cmd_client_filter {
    uint64_t id;              /* 0: any */
    const char *addr, *laddr; /* exact "ip:port", or NULL */
    size_t addrlen, laddrlen;
    enum cmd_client_type type;
    int64_t maxage;           /* > 0: only those older than this (s) */
    int skipme;               /* leave the caller's own connection alone */
};

/* Redis's client type names (normal, master, replica/slave, pubsub) to
 * *out; -1 for an unknown one. */
int cmd_client_type_parse(const char *s, size_t n, enum cmd_client_type *out);
/* What type the session is now (never CMD_CLIENT_ANY). */
enum cmd_client_type cmd_client_type_of(const struct cmd_session *s);
/* How many channels (pattern 0) or patterns (1) it is subscribed to. */
size_t cmd_client_subs(const struct cmd_session *s, int pattern);
/* Does cl pass f (caller is the connection asking)? */
int cmd_client_match(const struct cmd_client_filter *f,
                     const struct cmd_client *cl,
                     const struct cmd_session *caller);
/* Walk the clients (CMD_ERR_DENIED when there is no provider, in a
 * process without connections). */
enum cmd_status cmd_clients_each(const struct cmd_ctx *ctx, cmd_client_fn fn,
                                 void *arg);
/* Kill every client f matches; *killed counts them.  CMD_OK or
 * CMD_ERR_DENIED (no provider; *killed is 0). */
enum cmd_status cmd_clients_kill(const struct cmd_ctx *ctx,
                                 const struct cmd_client_filter *f,
                                 const struct cmd_session *caller,
                                 uint64_t *killed);

/* Per-connection (or per-request, for HTTP) state the layer needs. */
struct cmd_session {
    uint64_t id;              /* unique, set by the daemon */
    enum cmd_proto proto;
    int authed;               /* set by a successful CMD_AUTH */
    struct cmd_multi *multi;  /* MULTI and WATCH state (multi.c), NULL when
                                 none; freed by cmd_session_end */
    /* What CLIENT LIST shows that only the front end knows; it keeps these
     * current (pointers into its own state, NULL/0 when none). */
    const char *name;         /* CLIENT SETNAME */
    size_t namelen;
    const char *libname, *libver; /* CLIENT SETINFO */
    size_t libnamelen, libverlen;
    const char *last_cmd;     /* static: the last command's name, or NULL */
    const char *last_sub;     /* static: its subcommand (CLIENT LIST's
                                 "list"), or NULL */
    int resp;                 /* RESP version spoken, 0: not RESP */
    const struct pubsub_client *sub; /* its subscriptions (pubsub.h), or
                                        NULL */
    /* Asynchronous stores (replay.c): the request's logged store results,
     * NULL until the store first answers later; wake(wake_arg, s) is the
     * daemon's, called when a pending result has come (run the request
     * again).  Freed by cmd_session_end. */
    struct cmd_replay *replay;
    void (*wake)(void *wake_arg, struct cmd_session *s);
    void *wake_arg;
};

/* Counted by cmd_exec() for every request. */
struct cmd_stats {
    uint64_t calls[CMD_PROTO_COUNT][CMD_OP_COUNT];
    uint64_t errors[CMD_PROTO_COUNT][CMD_OP_COUNT]; /* status >= ERR */
};

struct events;
struct pubsub;

struct cmd_ctx {
    struct store *store;            /* borrowed: where counters live */
    struct events *events;          /* borrowed, may be NULL: every change
                                       is recorded there (events.h) */
    struct pubsub *pubsub;          /* borrowed, may be NULL (pubsub.h) */
    const char *password;           /* NULL: no authentication */
    size_t passlen;
    const struct cmd_serverinfo *info; /* borrowed, may be NULL */
    struct cmd_stats stats;
    struct cmd_watch_table *watch; /* watched keys (multi.c), NULL when
                                      none is watched */
    unsigned batch_depth;     /* open cmd_batch_begin calls */
    /* What this instance saw, for a store whose statistics are not the
     * engine's (cmd_stats): counters the store reported expired
     * (cmd_note_expired), and requests answered as idempotent replays. */
    uint64_t expired_seen;
    uint64_t once_replays;
    int readahead;            /* running MULTI's queue: a run abandoned
                                 for the store still lets it read the
                                 keys of the commands after (replay.c) */
    uint64_t writes;          /* requests that changed something (a
                                 script's time limit asks "has it
                                 written?") */
    struct cmd_scripts *scripts; /* the Lua state and loaded scripts
                                    (script.c), NULL until first used */
    int allow_flush;          /* FLUSHDB/FLUSHALL allowed (--allow-flush) */
    /* Where scripts' redis.log lines go (levels TALLY_LOG_*, 3 for debug);
     * NULL drops them.  Set by the daemon after cmd_init. */
    void (*log)(void *log_ctx, int level, const char *msg);
    void *log_ctx;
    /* Scripts past busy-reply-threshold (script.c): busy_poll(busy_arg) is
     * called every few ms so the daemon can answer other clients (they get
     * CMD_ERR_SCRIPTBUSY from cmd_exec, or their front end's -BUSY) and
     * take SCRIPT KILL; NULL: nobody is served and such a script that has
     * not written is stopped instead.  busy_session is the session whose
     * script runs, while script_busy is set. */
    void (*busy_poll)(void *busy_arg);
    void *busy_arg;
    int script_busy;
    const struct cmd_session *busy_session;
    /* The session whose request cmd_exec runs now (store calls are logged
     * for it, replay.c); NULL between requests. */
    struct cmd_session *cur;
    int echo;                 /* the last store result came from the log
                                 and its request's effects (events,
                                 statistics, WATCH) were counted on an
                                 earlier run: do not count them again */
    int batch_refused;        /* the open batch cannot run on this store:
                                 everything in it is CMD_ERR_UNSUPPORTED */
    struct store_batch *sync_batch; /* the open batch on a store that is
                                 sync_only (the replay log keeps the
                                 others, replay.c) */
};

struct cmd_req {
    enum cmd_op op;
    const char *key;          /* single-key ops */
    size_t klen;
    int64_t num;              /* INCRBY delta, SET value */
    int64_t cmp;              /* SET, GETDEL with CMD_F_IFEQ: the value
                                 expected */
    unsigned flags;           /* CMD_F_* */
    int64_t expire;           /* with CMD_F_PX: ms from now; with
                                 CMD_F_PXAT: Unix ms (see "Expiry") */
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

/* Called per counter for SCAN and KEYS; nonzero stops the walk.  The x
 * form also gets the counter's expiry (Unix ms, 0 for none). */
typedef int (*cmd_item_fn)(void *ctx, const char *key, size_t klen,
                           int64_t value);
typedef int (*cmd_itemx_fn)(void *ctx, const char *key, size_t klen,
                            int64_t value, int64_t expire_at);

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
    cmd_itemx_fn itemx;       /* or this one, with CMD_F_ITEMX (read only
                                 then) */
    void *item_ctx;
    char detail[160];         /* extra words for ERR_IO and friends, or "" */
    int replayed;             /* a repeat of a request with the same
                                 idempotency id: the first one's result */
    int64_t expire_at;        /* the counter's expiry shown (Unix ms), 0 for
                                 none (GET, INCRBY, SET, GETEX, TTL, EXPIRE) */
    int64_t ttl_ms;           /* TTL: ms left, -1 for no expiry */
};

/* Set up ctx over an open store (borrowed).  password may be NULL. */
void cmd_init(struct cmd_ctx *ctx, struct store *store, const char *password,
              size_t passlen, const struct cmd_serverinfo *info);

/* Free what the context made for itself (the Lua state of scripts). */
void cmd_fini(struct cmd_ctx *ctx);

/* ---- Asynchronous stores (replay.c) -------------------------------------
 *
 * A store may answer after the loop pass that asked (store.h).  The layer
 * then returns CMD_PENDING from cmd_exec (and from everything built on it)
 * and the request is re-run, not resumed: the front end stops serving the
 * connection at that request without consuming its bytes, the daemon
 * drops the reply bytes written for it, and once the session's wake()
 * runs it hands the same bytes to the front end again.  Store call i of
 * the new run gets logged result i, so nothing is applied twice, and the
 * front end encodes the reply as usual.  Statistics, events and WATCH see
 * only final results.  On the engine nothing is logged and CMD_PENDING
 * never happens.
 *
 * Read-ahead: inside EXEC, once a queued command's call pends, the run is
 * abandoned but the commands after it are still run, and their store calls
 * (never submitted) hand their keys to the store's batch_prefetch.  So an
 * EXEC over n counters the batch has not read costs two round trips, not
 * n.  Only MULTI's queue does it: its keys are fixed, while a script's
 * later keys may depend on the answer it waits for.  A script reads its
 * declared KEYS ahead instead, once its first call waits
 * (cmd_store_batch_prefetch): a script that keeps to them, as Redis asks,
 * takes about two round trips too.
 *
 * Pipelined look-ahead: while the first request of a connection's
 * pipeline waits for a store that is `ordered` (store.h: Redis), the daemon
 * runs the requests behind it that make one store call and show nothing
 * before it (the front end picks them by name, proto_ops.ahead; the layer
 * says yes by op, cmd_ahead_ok), each with a replay log of its own
 * (cmd_replay_swap), so their calls go out in the same loop pass as one
 * pipeline.  Their runs are abandoned like any pending one; replies are
 * made by the in-order re-runs, each once the one before it has answered,
 * so replies, statistics, events and WATCH see them in the client's order.
 * Every call carries its session's id as store_req.order: the store applies
 * them in that order, refusing a retry that would apply behind a later
 * call (NOSCRIPT, LOADING).  Only one call each: a request with a second
 * call to make would send it behind the calls of the requests after it.
 * A request run ahead that answers without waiting (a refused argument, a
 * store that is down) keeps its reply until its turn.
 * DEBT: PostgreSQL and a Redis Cluster are not ordered, so a pipeline there
 * still has one call in flight per connection (a round trip per request).
 * What would remove it: PostgreSQL's coalescing keeping one session's
 * calls in order (pg_batch.c), and a cluster keeping order per node with
 * its redirects (MOVED, ASK, TRYAGAIN) sent again in order. */

/* 1 if the request being served on s waits for the store: drop its reply,
 * keep its bytes, run it again after wake(). */
int cmd_pending(const struct cmd_session *s);
/* The request is finished (its bytes consumed): forget its logged results.
 * Cheap when there are none; call it after every request. */
void cmd_request_done(struct cmd_session *s);
/* Store operations of s still in flight (their done() has not run). */
unsigned cmd_inflight(const struct cmd_session *s);
/* One store call for the request s is serving (NULL s: a call outside any
 * request, which must complete at once): 0 with *res filled (from the log
 * on a re-run), or 1 if it pends (the caller returns CMD_PENDING). */
int cmd_store_call(struct cmd_ctx *ctx, struct cmd_session *s,
                   const struct store_req *req, struct store_res *res);
/* A store batch for the request s is serving (cmd_batch_* use them; the
 * replay log keeps the batch across re-runs, replay.c).  On a store that
 * is sync_only, or with s NULL, the handle is the caller's *sync_batch.
 * begin: a STORE_* code (logged: a re-run does not begin again).  commit:
 * 0 with *res filled, or 1 if it pends.  abort: nothing in a run that is
 * being abandoned (the batch stays open for the re-run). */
#define CMD_CONFLICT_MAX 16 /* re-runs after STORE_ECONFLICT at most */
int cmd_store_batch_begin(struct cmd_ctx *ctx, struct cmd_session *s,
                          struct store_batch **sync_batch);
int cmd_store_batch_commit(struct cmd_ctx *ctx, struct cmd_session *s,
                           struct store_batch *sync_batch,
                           struct store_res *res);
void cmd_store_batch_abort(struct cmd_ctx *ctx, struct cmd_session *s,
                           struct store_batch *sync_batch);
/* While a call of the open batch of the request s is serving pends, let
 * the batch read key too, ahead of the re-run's calls that will name it
 * (a script's declared KEYS; "Read-ahead" above).  Nothing otherwise, or
 * on a store without batch_prefetch or that is sync_only; no result,
 * nothing logged. */
void cmd_store_batch_prefetch(struct cmd_ctx *ctx, struct cmd_session *s,
                              const char *key, size_t klen);
/* A whole batch under one id (cmd_batch_once): the store's once_answer
 * (0 with *res filled, res->answer in the log's memory until the request
 * is done; or 1 if it pends), and its batch_commit_once (as commit).  A
 * conflict of such a batch runs the request again from before its
 * once_answer, so the re-run asks again whether the id got recorded. */
int cmd_store_once_answer(struct cmd_ctx *ctx, struct cmd_session *s,
                          const struct store_req *req, struct store_res *res);
int cmd_store_batch_commit_once(struct cmd_ctx *ctx, struct cmd_session *s,
                                struct store_batch *sync_batch,
                                const struct store_req *req,
                                const void *answer, size_t alen,
                                struct store_res *res);
/* A value that is not the store's but must be the same on every run of
 * s's request (a script's random seed, TIME inside a script), or an effect
 * that must happen once (PUBLISH inside MULTI): the first run logs *v and
 * gets 0; later runs get it back in *v and 1, as does a run being
 * abandoned (do not do the effect again; its reply is dropped anyway).
 * Always 0, and nothing kept, on a store that is sync_only.  amend: set
 * the value just logged (the effect's outcome, once it is known). */
int cmd_replay_value(struct cmd_ctx *ctx, struct cmd_session *s,
                     int64_t *v);
void cmd_replay_amend(struct cmd_ctx *ctx, struct cmd_session *s, int64_t v);
/* Pipelined look-ahead (above).  ahead_ok: 1 if a request that is one
 * cmd_exec of op, without an idempotency id, may run while the request
 * before it on s waits.  swap: s's calls go to replay log r from now (NULL:
 * a new one when first needed); returns the one it had, which the caller
 * keeps.  waiting: a call of r's request is still in flight.  drop: a log
 * the caller no longer keeps (a closed connection's), freed now or by its
 * last done(). */
int cmd_ahead_ok(const struct cmd_ctx *ctx, enum cmd_op op);
struct cmd_replay *cmd_replay_swap(struct cmd_session *s,
                                   struct cmd_replay *r);
int cmd_replay_waiting(const struct cmd_replay *r);
void cmd_replay_drop(struct cmd_replay *r);
/* 1 while a re-run of s's request is still returning logged results. */
int cmd_store_replaying(const struct cmd_session *s);
/* Detach s from its replay log (cmd_session_end does it): a call still in
 * flight then frees the log when its done() runs. */
void cmd_replay_end(struct cmd_session *s);
/* The session was copied to s (HTTP parks a request's session on the
 * heap): its replay log follows it. */
void cmd_session_moved(struct cmd_session *s);
/* cmd_exec finished with a final result: the log entries so far have had
 * their effects counted (later runs echo them silently). */
void cmd_replay_reported(struct cmd_session *s);

/* The store's name ("engine", "postgresql", ...). */
const char *cmd_store_name(const struct cmd_ctx *ctx);
/* Its facts for INFO's # Store and /metrics (store_info): at most max
 * pairs into kv; returns how many. */
size_t cmd_store_info(const struct cmd_ctx *ctx, struct store_info_kv *kv,
                      size_t max);
/* The store's readiness: 1, or 0 with why (one line) in why. */
int cmd_ready(const struct cmd_ctx *ctx, char *why, size_t n);
/* The engine's statistics into *st: 0, or -1 (zeroed) on another store. */
int cmd_engine_stats(const struct cmd_ctx *ctx, tally_stats *st);

/* The command layer's clock for expiry (the store's, store_now_ms): front
 * ends that report relative times (memcached's mg t) use it to agree with
 * what expire_at means. */
int64_t cmd_now_ms(const struct cmd_ctx *ctx);

/* What the store holds, for INFO, /metrics and memcached stats. */
struct cmd_keyspace {
    uint64_t keys;            /* live counters */
    uint64_t expires;         /* those with an expiry */
    int64_t avg_ttl_ms;       /* their mean remaining ms */
    uint64_t once_ids;        /* idempotency records (a remote store's; 0
                                 on the engine, whose tally_stats has them) */
    uint64_t once_bytes;      /* the bytes they take in the store */
};

/* Statistics for INFO, /metrics and memcached stats, asked for s's request
 * (a store that answers later is asked like any command's store call).
 *   The engine: *st is its own (tally_stats_get); ks, if not NULL, gets
 *     exact counts (expired counters are purged first).
 *   A remote store: one STORE_COUNT over the store fills ks and st's
 *     counters, expires, once_ids and once_bytes; st's expired and
 *     once_replays are what this instance saw since it started (other
 *     instances on the store count their own); the rest of *st, the
 *     engine's log and snapshots, is 0.
 * Returns CMD_OK, or CMD_PENDING: the store answers later, the front end
 * drops its reply and the request runs again when the session is woken, as
 * after cmd_exec (the counts then come from the replay log).  A store error
 * leaves the counts 0 (CMD_OK: statistics never fail a request). */
enum cmd_status cmd_stats(struct cmd_ctx *ctx, struct cmd_session *s,
                          tally_stats *st, struct cmd_keyspace *ks);

/* Run one request.  The caller fills res->values/founds (MGET) and
 * res->item/item_ctx (SCAN, KEYS) before the call; everything else in *res is
 * set by it.  Returns res->status.  Never fails for lack of memory (aborts). */
enum cmd_status cmd_exec(struct cmd_ctx *ctx, struct cmd_session *s,
                         const struct cmd_req *req, struct cmd_res *res);

/* Record that the engine removed key because its expiry passed (the
 * daemon's tally_options.expired calls it): an "expired" change event,
 * released once ticket t is durable. */
void cmd_note_expired(struct cmd_ctx *ctx, const void *key, size_t klen,
                      tally_ticket t);

/* Count a request that a front end refused before it could build a
 * cmd_req (an argument that cmd_parse_i64 rejects, say), so per-command
 * error statistics see it too.  Returns st. */
enum cmd_status cmd_refuse(struct cmd_ctx *ctx, const struct cmd_session *s,
                           enum cmd_op op, enum cmd_status st);

/* True while a script of another session than s has run past the
 * threshold: only SCRIPT KILL may run (front ends answer -BUSY). */
int cmd_script_busy_for(const struct cmd_ctx *ctx,
                        const struct cmd_session *s);

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
 * the flags (u32 LE), then, only when CMD_F_PX or CMD_F_PXAT is set, the
 * expire argument as sent (i64 LE; a TTL, not the time computed from it,
 * so a retry matches).  Fixed so that ids recorded on disk keep matching
 * across restarts and versions. */
uint64_t cmd_once_fingerprint(const struct cmd_req *req);

/* Glob match as Redis's MATCH does it (*, ?, [...], \ escapes), binary-safe.
 * Returns 1 on a match. */
int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen);

/* Stable lower-case names for metrics and logs ("incrby", "get", ...). */
const char *cmd_op_name(enum cmd_op op);
const char *cmd_proto_name(enum cmd_proto p);
const char *cmd_status_name(enum cmd_status st);

/* ---- Transactions (multi.c) -------------------------------------------
 *
 * Redis 7's MULTI/EXEC/DISCARD/WATCH/UNWATCH, for any front end.  The front
 * end keeps its own encoding of a queued request (RESP: the argument
 * vector) and hands it to the layer as bytes; at EXEC the layer gives each
 * back to a callback that runs it as usual (through cmd_exec), all inside
 * one atomic batch (include/tally.h "Atomic batches").  So a request's
 * argument errors show when it runs, as in Redis, while the errors the
 * front end finds at queue time (unknown command, wrong arity, NOAUTH, a
 * command not allowed in a transaction) go to cmd_multi_fail and make EXEC
 * answer CMD_ERR_EXECABORT.
 *
 * WATCH: every change cmd_exec makes to a watched key bumps that key's
 * version (one hash lookup per changed key, only while something is
 * watched); EXEC answers CMD_NOTSET (Redis's null reply) if a version moved
 * or a key that existed at WATCH time has expired or gone since, and then
 * runs nothing.  Its res->ticket covers the watched keys' state, which the
 * null reply reveals.  EXEC and DISCARD unwatch everything. */

/* MULTI: CMD_OK, or CMD_ERR_NESTED (which does not abort the one open). */
enum cmd_status cmd_multi(struct cmd_ctx *ctx, struct cmd_session *s);
/* 1 between MULTI and EXEC/DISCARD. */
int cmd_in_multi(const struct cmd_session *s);
/* Requests queued since MULTI, or -1 outside MULTI (CLIENT LIST's multi). */
int64_t cmd_multi_queued(const struct cmd_session *s);
/* Queue one request, copying len bytes of the front end's encoding. */
void cmd_multi_queue(struct cmd_session *s, const void *req, size_t len);
/* A queue-time error: the coming EXEC aborts. */
void cmd_multi_fail(struct cmd_session *s);
/* DISCARD: CMD_OK or CMD_ERR_NOMULTI. */
enum cmd_status cmd_discard(struct cmd_ctx *ctx, struct cmd_session *s);
/* WATCH n keys: CMD_OK, CMD_ERR_WATCHMULTI, CMD_ERR_KEYLEN (none watched). */
enum cmd_status cmd_watch(struct cmd_ctx *ctx, struct cmd_session *s,
                          size_t n, const char *const *keys,
                          const size_t *klens);
/* UNWATCH (also inside EXEC, where Redis queues it). */
void cmd_unwatch(struct cmd_ctx *ctx, struct cmd_session *s);

/* Runs one queued request (the bytes given to cmd_multi_queue). */
typedef void (*cmd_multi_run_fn)(void *arg, const void *req, size_t len);

/* EXEC.  Returns CMD_ERR_NOMULTI, CMD_ERR_EXECABORT, CMD_NOTSET (a watched
 * key changed: nothing ran), or CMD_OK after calling run(arg, ...) once
 * per queued request, in order, inside one batch; res->n is how many and
 * res->ticket the batch's ticket, which the whole reply must wait for.  If
 * the batch cannot be committed (disk full, write path failed) every
 * change is undone and the status says why: the front end then drops the
 * replies run() made and answers the error. */
enum cmd_status cmd_exec_multi(struct cmd_ctx *ctx, struct cmd_session *s,
                               cmd_multi_run_fn run, void *arg,
                               struct cmd_res *res);

/* The session is going away: drop its queue and watches. */
void cmd_session_end(struct cmd_ctx *ctx, struct cmd_session *s);

/* An atomic batch around any run of cmd_exec calls (EXEC, scripts, HTTP
 * batches); nested calls join the outer batch.  cmd_batch_commit returns
 * CMD_OK with res->ticket set (the caller holds its reply for it), or an
 * error status (detail in res) with every change of the batch undone. */
void cmd_batch_begin(struct cmd_ctx *ctx, struct cmd_session *s);
enum cmd_status cmd_batch_commit(struct cmd_ctx *ctx, struct cmd_session *s,
                                 struct cmd_res *res);
/* 1 if the store runs atomic batches (MULTI/EXEC, scripts, RENAME, COPY,
 * HTTP /v1/batch); otherwise those answer CMD_ERR_UNSUPPORTED. */
int cmd_batches_ok(const struct cmd_ctx *ctx);
/* Undo every change of the batch and close it (all or nothing, HTTP's
 * /v1/batch).  Only for an outermost batch: inside another one it closes
 * this level and the outer batch keeps the changes. */
void cmd_batch_abort(struct cmd_ctx *ctx, struct cmd_session *s);

/* What cmd_batch_once runs inside the batch: the batch's requests through
 * cmd_exec, then its answer (the front end's reply bytes, opaque here) in
 * *answer and *alen, valid until cmd_batch_once returns.  Returns CMD_OK,
 * or the status that fails the batch (then nothing is applied or
 * recorded). */
typedef enum cmd_status (*cmd_batch_fn)(void *arg, const void **answer,
                                        size_t *alen);

/* An atomic batch applied once under an idempotency id (HTTP's /v1/batch
 * with an Idempotency-Key; include/tally.h "A whole batch under one id").
 * once->fingerprint is the front end's hash of the batch's operations.
 *   - New id: body(arg, ...) inside one batch, committed with the id and
 *     the answer in its one record: CMD_OK, res->replayed 0.
 *   - Known id, same operations: body is not called; *answer and *alen get
 *     the first answer (borrowed until the next command), CMD_OK with
 *     res->replayed 1.
 *   - CMD_ERR_IDREUSED (another batch, or a single change, had the id),
 *     CMD_ERR_INFLIGHT (the first is not durable yet), CMD_ERR_IDLEN,
 *     CMD_ERR_INBATCH (inside another batch), body's status, or the
 *     commit's (CMD_ERR_DISKFULL, ...; CMD_ERR_ARGS for an answer over
 *     TALLY_ANSWER_MAX, which front ends check first): nothing applied.
 * res->ticket is what the answer (or the error) waits for. */
enum cmd_status cmd_batch_once(struct cmd_ctx *ctx, struct cmd_session *s,
                               const tally_once *once, cmd_batch_fn body,
                               void *arg, struct cmd_res *res,
                               const void **answer, size_t *alen);
/* cmd_batch_once, with key[0, klen) one counter of the batch (its first
 * operation's): it places the id's record on a store that keeps the record
 * beside the batch's counters (a Redis Cluster puts it in their hash slot,
 * docs/redis-store.md).  A retry must name the same key, as the same
 * operations do; key NULL: none (a cluster then refuses the batch). */
enum cmd_status cmd_batch_once_at(struct cmd_ctx *ctx, struct cmd_session *s,
                                  const tally_once *once, const char *key,
                                  size_t klen, cmd_batch_fn body, void *arg,
                                  struct cmd_res *res, const void **answer,
                                  size_t *alen);

/* Called by cmd_exec after every request: count it in ctx->writes if it
 * changed something, and bump the watched keys it changed. */
void cmd_multi_touch(struct cmd_ctx *ctx, const struct cmd_req *req,
                     const struct cmd_res *res);
/* Every watched key changed (a flush). */
void cmd_multi_touch_all(struct cmd_ctx *ctx);

/* ---- Keyspace (keyspace.c) ---------------------------------------------
 *
 * Commands made of the ordinary requests, so statistics, WATCH and
 * tickets follow; res->ticket covers everything they read and wrote. */

/* RENAME (nx 0) / RENAMENX (nx 1) src to dst, keeping the value and the
 * expiry, in one atomic batch.  CMD_NOTFOUND: no src; CMD_NOTSET: nx and
 * dst exists (or is src); CMD_OK: renamed. */
enum cmd_status cmd_rename(struct cmd_ctx *ctx, struct cmd_session *s,
                           const char *src, size_t slen, const char *dst,
                           size_t dlen, int nx, struct cmd_res *res);
/* COPY src to dst with its expiry: res->n = 1 if copied, 0 if src is
 * missing or dst exists and !replace.  The caller refuses src == dst. */
enum cmd_status cmd_copy(struct cmd_ctx *ctx, struct cmd_session *s,
                         const char *src, size_t slen, const char *dst,
                         size_t dlen, int replace, struct cmd_res *res);
/* FLUSHDB/FLUSHALL: delete every counter (in DELs of 512 keys, each one
 * atomic; not the whole flush).  CMD_ERR_DENIED unless ctx->allow_flush;
 * res->n = how many were deleted. */
enum cmd_status cmd_flush(struct cmd_ctx *ctx, struct cmd_session *s,
                          struct cmd_res *res);
/* RANDOMKEY: some counter's key into key[0, *klen) (at most cap bytes);
 * CMD_NOTFOUND if there is none. */
enum cmd_status cmd_randomkey(struct cmd_ctx *ctx, struct cmd_session *s,
                              char *key, size_t cap, size_t *klen,
                              struct cmd_res *res);

#endif /* TALLY_CMD_H */
