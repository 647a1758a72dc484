/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_int.h - what the files of the PostgreSQL store share: the queued
 * operation, the batch (one transaction) and its per-key and per-id state.
 * pg.c owns the connection, the queue and the operations' lives; pg_txn.c
 * sends a batch as one transaction and reads its rows back; pg_batch.c
 * decides which operations share a transaction and answers them from those
 * rows; pg_sql.c holds every SQL text and the array encoders.
 * Nothing here is thread-safe: the event loop's thread is the only user.
 */
#ifndef TALLY_STORE_PG_INT_H
#define TALLY_STORE_PG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>
#include <libpq-fe.h>

#include "pg.h"
#include "store.h"
#include "util.h"

struct pg_store;

/* Operations that are not the caller's: the store's own maintenance. */
enum pg_kind {
    PG_USER = 0,
    PG_PURGE,  /* delete a bounded batch of expired counters and ids */
    PG_INFO    /* refresh the durability facts and the clock offset */
};

/* One operation, from store_exec until its done() ran.  It owns copies of
 * every byte of the request (req points into mem) and the arrays its result
 * points to. */
struct pg_op {
    TAILQ_ENTRY(pg_op) link;
    enum pg_kind kind;
    struct store_req req;     /* pointers into mem, keyv, klenv, numv */
    char *mem;
    const char **keyv;
    size_t *klenv;
    int64_t *numv;
    store_done_fn done;
    void *arg;
    struct store_res res;     /* filled before done() */
    /* result arrays (MGET, DEL, SCAN), freed after done() */
    int64_t *values;
    unsigned char *founds;
    const char **rkeys;
    size_t *rklens;
    int64_t *rexp;
    char *rmem;
    /* batch scratch */
    int force_slow;           /* an earlier try overflowed the hot bound */
    int hot;                  /* answered from the coalesced statement */
    int64_t prefix;           /* hot: this key's deltas summed up to here */
    size_t hk;                /* hot: index in the batch's keys */
    struct store_batch *xact; /* a store batch's commit (pg_xact.c): its
                                 keys in req.keys, its operations run
                                 and checked by pg_xact_apply; with
                                 req.once its id recorded with answer */
    int once_read;            /* once_answer: read req.once's record */
    int64_t queued_us;        /* when it joined the queue (pg_mono_us) */
    const void *answer;       /* the commit's answer (the xact's copy) */
    size_t alen;
};

TAILQ_HEAD(pg_opq, pg_op);

/* A key of a batch.  Hot keys take only coalesced increments (and plain
 * reads after one); slow keys take everything else and are answered by
 * pg_batch_apply() from their locked state.  A batch never has a key in
 * both sets (pg_batch_build cuts the batch instead). */
struct pg_key {
    const char *k;
    size_t klen;
    int hot, slow, write;
    int64_t sum, minp, maxp;  /* hot: sum of deltas, its lowest and highest
                                 running value (0 included) */
    /* state from the database, then as pg_batch_apply leaves it */
    int got;                  /* a row came back */
    int exists;
    int64_t n, expire_at;     /* expire_at 0: none */
};

/* An idempotency id of a batch. */
struct pg_id {
    const char *id;
    size_t len;
    int live;                 /* a record (from the database or this batch) */
    int dirty;                /* write it back */
    uint64_t fp;
    struct store_res res;     /* rc, found, value, expire_at, n */
    char *answer;             /* a whole batch's (owned), NULL: none */
    size_t alen;
};

struct pg_batch {
    struct pg_opq ops;        /* submission order */
    size_t nops;
    struct pg_key *keys;
    size_t nkeys, capkeys;
    uint32_t *index;          /* open addressing over keys, 0: empty */
    size_t indexcap;
    struct pg_id *ids;
    size_t nids, capids;
    struct pg_op *barrier;    /* a batch of its own: SCAN, COUNT, ... */
    int has_hot, has_slow, writes;
    int64_t now_ms;           /* the database's clock (latest row) */
    int attempt;              /* re-runs after 40001/40P01/23505 */
    int64_t sent_us;          /* when it was last sent (pg_mono_us) */
};

/* pg_batch.c */
struct pg_batch *pg_batch_new(void);
void pg_batch_free(struct pg_batch *b);
/* Move operations from the head of q into a new batch, as many as may
 * share one transaction (see the rules at the top of pg_batch.c); with
 * hot_only only coalesced increments (and the GETs after them), which may
 * be none. */
struct pg_batch *pg_batch_build(struct pg_opq *q, int hot_only);
/* Forget everything learned from the database (before a re-run). */
void pg_batch_reset(struct pg_batch *b);
/* The key's index, or SIZE_MAX. */
size_t pg_batch_key(const struct pg_batch *b, const char *k, size_t klen);
/* Run the slow operations in submission order over the state rows gave. */
void pg_batch_apply(struct pg_batch *b);
/* Answer the hot operations from the coalesced statement's rows; those of
 * keys that came back without a row (the overflow bound) are moved, in
 * order, to the front of q with force_slow set. */
void pg_batch_answer_hot(struct pg_batch *b, struct pg_opq *q);
/* Does this op change anything? */
int pg_op_writes(const struct pg_op *op);
/* The keys an operation touches: one, or req.keys. */
size_t pg_op_nkeys(const struct pg_op *op);
const char *pg_op_key(const struct pg_op *op, size_t i, size_t *klen);
/* The key's index, added (as no kind yet) if missing; may move b->keys. */
size_t pg_batch_key_add(struct pg_batch *b, const char *k, size_t klen);
/* Run one operation over the batch's key state (they must be in it). */
void pg_batch_run(struct pg_batch *b, struct pg_op *op);

/* pg_xact.c: store batches (MULTI/EXEC, scripts, ...), checked at commit */
int pg_xact_begin(struct store *s, unsigned attempt,
                  struct store_batch **out);
int pg_xact_exec(struct pg_store *st, const struct store_req *req,
                 struct store_res *res, store_done_fn done, void *arg);
int pg_xact_commit(struct store *s, struct store_batch *b,
                   struct store_res *res, store_done_fn done, void *arg);
void pg_xact_abort(struct store *s, struct store_batch *b);
/* store_ops.batch_prefetch: read req's keys into b's view ahead of its
 * exec. */
void pg_xact_prefetch(struct store *s, struct store_batch *b,
                      const struct store_req *req);
/* store_ops.batch_commit_once: the commit, with the id checked and
 * recorded with its answer in the commit's own transaction. */
int pg_xact_commit_once(struct store *s, struct store_batch *b,
                        const struct store_req *req, const void *answer,
                        size_t alen, struct store_res *res,
                        store_done_fn done, void *arg);
/* The commit op's turn in pg_batch_apply, over the locked rows. */
void pg_xact_apply(struct pg_batch *b, struct pg_op *op);

/* pg_sql.c: SQL texts (one prepared statement each) and encoders. */
enum pg_stmt {
    PG_S_HOT = 0,  /* coalesced increments */
    PG_S_LOCK,     /* lock-or-create the slow keys written */
    PG_S_READ,     /* read the slow keys only read */
    PG_S_IDS,      /* lock-or-create the ids */
    PG_S_WRITE,    /* write back the slow keys */
    PG_S_DELETE,   /* delete the slow keys that end absent */
    PG_S_IDSAVE,   /* write back the ids */
    PG_S_SCAN,
    PG_S_COUNT,
    PG_S_FLUSH,
    PG_S_PURGE,
    PG_S_INFO,
    PG_S_COUNT_ALL
};
extern const char *const pg_sql_text[PG_S_COUNT_ALL];
extern const char *const pg_sql_name[PG_S_COUNT_ALL];
extern const char pg_sql_schema[];
#define PG_SCHEMA_VERSION 2
#define PG_PURGE_LIMIT 1000   /* rows per purge statement */

/* Text-format array literals: '{"\\x6869",...}', '{1,NULL,...}'. */
void pg_arr_bytea(struct buf *b, const char *const *v, const size_t *lens,
                  size_t n);
void pg_arr_i64(struct buf *b, const int64_t *v, const unsigned char *null,
                size_t n);
/* Binary-format result fields. */
int64_t pg_get_i64(const char *p);
int32_t pg_get_i32(const char *p);

/* ---- The store (pg.c) and its pipeline (pg_txn.c) ----------------------- */

#define PG_RETRY_MAX 10
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
#define PG_TICK_MS 1000      /* purge; info every PG_INFO_TICKS */
#define PG_INFO_TICKS 5
#define PG_SCAN_MAX 1000     /* rows of one SCAN page at most */
#define PG_EXP_MAX 64
#define PG_CONNECT_WAIT_MS 2000 /* how long ops wait for a connect under way */
#define PG_ANSWER_TIMEOUT_MS 10000 /* a connect, or a transaction in flight,
                                     without a byte from the server for so
                                     long is given up (the URI's
                                     connect_timeout, if set, instead) */
#define PG_HOLD_MAX_US 2000  /* the longest an idle pipeline waits for the
                                callers of the last batch, and the longest
                                a batch behind one in flight gathers
                                (pg_txn.c) */

/* The URI as libpq parsed it, and the host a connect starts with
 * (pg_hosts.c). */
struct pg_hosts {
    char **kw, **val;         /* the options the URI set */
    size_t n;
    size_t nhosts;            /* hosts in its list (1 if none given) */
    size_t first;             /* the next connect starts with this one */
    int timeout_ms;           /* PG_ANSWER_TIMEOUT_MS or connect_timeout */
};

/* Parse uri; 0, or -1 with why in err (*h then holds nothing). */
int pg_hosts_parse(struct pg_hosts *h, const char *uri, char *err, size_t n);
void pg_hosts_free(struct pg_hosts *h);
/* The value the next connect gives option kw (host, hostaddr and port
 * rotated to start at h->first), or NULL if the URI set none; caller
 * frees. */
char *pg_hosts_value(const struct pg_hosts *h, const char *kw);
/* PQconnectStartParams with those values. */
PGconn *pg_hosts_connect(const struct pg_hosts *h);
/* A connect got no answer from host:port (PQhost, PQport; NULL: unknown):
 * start the next one with the host after it. */
void pg_hosts_skip(struct pg_hosts *h, const char *host, const char *port);

/* The connection, from nothing to serving. */
enum pg_state { PG_DOWN = 0, PG_CONNECTING, PG_SETUP, PG_PREPARING, PG_READY };

/* What the next result of the pipeline belongs to. */
enum pg_exp { EXP_PREPARE, EXP_STMT, EXP_SYNC };

struct pg_store {
    struct store base;
    struct event_base *evb;
    char *uri;
    struct pg_hosts hosts;
    int sync_policy;
    uint64_t once_ttl_ms;     /* ids are kept so long (never 0) */
    int behind_mode;          /* store_pg_opts.behind */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *expired_ctx;        /* store_pg_opts */
    PGconn *conn;
    enum pg_state state;
    int fd;
    struct event *ev_read, *ev_write;
    struct event *ev_flush, *ev_retry, *ev_reconnect, *ev_tick;
    struct event *ev_wait;    /* ops queued while connecting give up */
    struct event *ev_hold;    /* the group-commit wait is over (pg_txn.c) */
    struct event *ev_connect; /* a connect got no answer in time */
    struct event *ev_stall;   /* the batch in flight got none in time */
    int hold_over;            /* it fired: send what has gathered */
    size_t expect;            /* callers the last batch answered */
    int64_t commit_us;        /* how long the last one took, from its send
                                 (or the answer of the one ahead of it) to
                                 its Sync's result */
    int flush_armed;
    struct pg_opq queue;
    struct pg_batch *cur;     /* the batch in flight or waiting to re-run */
    struct pg_batch *behind;  /* coalesced increments sent behind cur, once
                                 cur's Sync was sent (pg_txn.c kick_behind):
                                 its results come after cur's */
    struct pg_batch *rerun;   /* cur failed with 40001/40P01 while behind
                                 was in flight: it runs again once behind
                                 is answered */
    int cur_synced;           /* its Sync was sent */
    int cur_phase1;           /* slow rows still to come before phase 2 */
    char cur_err[6];          /* its first SQLSTATE, "" if none */
    char cur_msg[120];
    struct { enum pg_exp what; enum pg_stmt stmt; } exp[PG_EXP_MAX];
    size_t exp_head, exp_n;
    int exp_got;              /* the head statement's result came */
    int backoff_ms;
    int64_t schema_version;
    char why[160];            /* ready() when not ready */
    struct buf arr[8];        /* parameter encodings */
    unsigned ticks;
    /* facts for info(), from PG_S_INFO */
    char synchronous_commit[32];
    char standby_names[128];
    int64_t sync_attached, standbys, in_recovery;
    int64_t clock_off_ms;     /* the database's clock minus ours */
    int purge_queued, info_queued;
    int send_failed;          /* libpq refused to queue a message */
    int closing;
    uint64_t n_batches, n_ops, n_retries, n_unknown, n_purged;
    uint64_t n_behind;        /* batches sent behind one in flight */
    uint64_t n_xact_commits, n_xact_conflicts; /* store batches (pg_xact.c) */
    /* Where a transaction's cycle goes (pg_txn.c), summed over the batches
     * answered since start, in us; INFO store_pg_time_*. */
    struct pg_cycle {
        int64_t gather;       /* its first op queued -> sent (hold included) */
        int64_t hold;         /* hold_back() kept it waiting */
        int64_t commit;       /* sent -> its Sync's result read */
        int64_t answer;       /* running its callers' completions */
        int64_t turnaround;   /* the last batch answered -> this one's first
                                 op queued (replies out, clients' next
                                 requests in), 0 if it was queued before */
        uint64_t round_trips; /* waits for the server: 1, 2 with slow ops */
    } cyc;
    int64_t hold_since_us;    /* hold_back() began to wait, 0: it does not */
    int64_t commit_avg_us;    /* commit_us, averaged (1/8 per batch) */
    int64_t idle_us;          /* how long PostgreSQL had nothing of ours
                                 between two batches (answer to the next
                                 send), averaged the same way */
    int64_t answered_us;      /* the last batch's callers were answered */
};

/* pg.c: the connection and the operations' lives */
int64_t pg_wall_ms(void);
int64_t pg_mono_us(void);                  /* CLOCK_MONOTONIC */
/* A copy of r (every byte it points to) as an op; free with pg_op_free. */
struct pg_op *pg_op_new(const struct store_req *r, store_done_fn done,
                        void *arg);
void pg_op_free(struct pg_op *op);
/* Queue op (STORE_PENDING), or fail it at once (STORE_DONE, *res says
 * why, op freed) while the connection is down. */
int pg_submit(struct pg_store *st, struct pg_op *op, struct store_res *res);
const char *pg_sync_setting(int policy);  /* synchronous_commit's value */
void pg_op_finish(struct pg_store *st, struct pg_op *op); /* done(), free */
/* Fail every op of q with rc (STORE_EUNKNOWN only for ops that write). */
void pg_fail_list(struct pg_store *st, struct pg_opq *q, int rc,
                  const char *detail);
void pg_enqueue_own(struct pg_store *st, enum pg_kind kind);
/* Drop the connection: fail what is in flight and queued, reconnect. */
void pg_conn_lost(struct pg_store *st, const char *why);
void pg_sock_watch(struct pg_store *st, int want_write);
/* (Re)start the wait for the server's next bytes while a batch is in
 * flight; stop it when none is. */
void pg_stall_arm(struct pg_store *st);
void pg_stall_stop(struct pg_store *st);

/* pg_txn.c: sending batches, reading their rows */
void pg_exp_push(struct pg_store *st, enum pg_exp what, enum pg_stmt s);
void pg_exp_pop(struct pg_store *st);
int pg_pump(struct pg_store *st);      /* PQflush; -1: connection lost */
void pg_on_stmt(struct pg_store *st, enum pg_stmt s, const PGresult *r);
void pg_on_sync(struct pg_store *st);  /* the batch's Sync came back */
void pg_flush_cb(evutil_socket_t fd, short what, void *arg);
void pg_retry_cb(evutil_socket_t fd, short what, void *arg);
void pg_hold_cb(evutil_socket_t fd, short what, void *arg);

#endif /* TALLY_STORE_PG_INT_H */
