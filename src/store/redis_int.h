/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_int.h - what the files of the Redis store share.  redis.c owns the
 * connection, the queue of operations and their lives; redis_ops.c turns a
 * store_req into one command and its reply into a store_res; redis_lua.c
 * holds the scripts; redis_xact.c runs store batches over a view (view.c)
 * and commits each with one script.  Only the event loop's thread uses any of it.
 */
#ifndef TALLY_STORE_REDIS_INT_H
#define TALLY_STORE_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store.h"
#include "util.h"
#include "redis.h"

struct redisReply;

/* The scripts (redis_lua.c), loaded by SCRIPT LOAD at connect and called
 * by EVALSHA. */
enum redis_script {
    REDIS_S_INCR = 0,
    REDIS_S_SET,
    REDIS_S_GETDEL,
    REDIS_S_DEL,
    REDIS_S_GET,
    REDIS_S_EXPIRE,
    REDIS_S_SCAN,
    REDIS_S_COUNT,
    REDIS_S_COMMIT, /* a batch's commit (redis_xact.c) */
    REDIS_S_ONCE,   /* a whole batch's id record, read (once_answer) */
    REDIS_S_COUNT_ALL
};
#define REDIS_S_NONE (-1)
extern const char *const redis_lua_text[REDIS_S_COUNT_ALL];

/* What a reply on the connection belongs to. */
enum redis_kind {
    R_USER = 0,  /* a caller's operation */
    R_AUTH, R_SELECT, R_CFG, R_INFO, R_LOAD, /* the handshake */
    R_WAIT, R_WAITAOF,
    R_RAW,       /* a cluster's own query: the reply goes to op->raw */
    R_ASKING     /* ASKING before an op sent after an ASK redirect */
};

/* One command, from store_exec (or the handshake) until its reply is read
 * and, for R_USER, its done() ran.  It owns its formatted bytes and the
 * arrays its result points to. */
struct redis_op {
    TAILQ_ENTRY(redis_op) link;
    enum redis_kind kind;
    enum store_opk op;
    int script;               /* REDIS_S_*, or REDIS_S_NONE */
    int native;               /* GET or INCRBY as Redis's own command,
                                 not a script (store_req.value_only) */
    int writes;               /* may change something: a lost reply is
                                 STORE_EUNKNOWN */
    int held;                 /* answered, waiting for its batch's WAIT */
    /* A cluster's (redis_cluster.c): the key's hash slot (-1: none),
     * ASKING first, how many redirects it followed and how many times it
     * was sent again after TRYAGAIN/CLUSTERDOWN, when to try again and
     * when to give up (Unix ms, 0: not set). */
    int slot, asking, redirects, retries;
    int64_t retry_at, deadline;
    void (*raw)(void *arg, const struct redisReply *r); /* R_RAW: r NULL
                                                            when lost */
    size_t nkeys;
    char *cmd;                /* RESP bytes (redisFormatCommandArgv) */
    size_t cmdlen;
    store_done_fn done;
    void *arg;
    uint64_t order;           /* store_req.order: kept in order with the
                                 ops of the same caller (store.h) */
    struct store_res res;
    int64_t *values;          /* MGET, SCAN */
    unsigned char *founds;    /* MGET, DEL */
    const char **rkeys;       /* SCAN */
    size_t *rklens;
    int64_t *rexp;
    char *rmem;
    /* COUNT, FLUSH: one command per SCAN page (redis_op_next), and the
     * sums of the pages answered so far */
    int page_mode;            /* the script's mode: 0 count, 1 with the
                                 expiries, 2 delete, 3 as 1 with the id
                                 records (STORE_F_ONCE) */
    uint64_t pages;           /* pages answered */
    uint64_t page_cursor;     /* the next page's SCAN cursor; 0: done */
    uint64_t page_n, page_nx, page_ids, page_idb;
    double page_ttl_sum;      /* ms left, summed (only an average needs it) */
    /* cmd when it fits (a native GET or INCRBY on a key of a few dozen
     * bytes): an allocation less per request; redis_op_free knows. */
    char cmd_here[128];
};

TAILQ_HEAD(redis_opq, redis_op);

/* redis_ops.c */
struct redis_keys {
    const char *prefix;
    size_t plen;
    int cluster;              /* a batch's id record beside its first
                                 counter (redis_ops.c, the key layout) */
};
/* Format req into op->cmd (and set op's kind, script, writes, nkeys).
 * Returns STORE_OK, or a STORE_E* code with nothing allocated. */
int redis_op_format(const struct redis_keys *kp, char sha[][41],
                    uint64_t once_ttl_ms, const struct store_req *req,
                    struct redis_op *op);
/* Free op (from malloc) and everything it owns. */
void redis_op_free(struct redis_op *op);
/* Fill op->res from the reply to its command. */
void redis_op_answer(const struct redis_keys *kp, struct redis_op *op,
                     const struct redisReply *r);
/* After redis_op_answer: 1 if op has another command to send (the next
 * SCAN page of COUNT or FLUSH, now in op->cmd; op->res holds the sums so
 * far), 0 if op->res is its result. */
int redis_op_next(const struct redis_keys *kp, char sha[][41],
                  struct redis_op *op);
/* The commit script of a batch over view v (redis_xact.c) into op->cmd:
 * every key v read checked against its state read, then every key it
 * wrote written, in one EVALSHA (sets op's kind, script, writes). */
struct view;
struct redis_once {            /* a whole batch's id with its answer */
    const struct store_req *req;
    const void *answer;
    size_t alen;
    uint64_t ttl_ms;
};
void redis_op_format_commit(const struct redis_keys *kp, char sha[][41],
                            const struct view *v,
                            const struct redis_once *once,
                            struct redis_op *op);
/* The read of a whole batch's id record (REDIS_S_ONCE) into op->cmd; its
 * answer is once_answer's (res->answer in op->rmem). */
void redis_op_format_once(const struct redis_keys *kp, char sha[][41],
                          const struct store_req *req, struct redis_op *op);
struct evbuffer;
/* Hand every byte of in to the reply reader r (a void * to keep hiredis
 * out of this header) and drain it: 0, or -1 on a protocol error.  Both
 * connections, the store's and the notifications', read this way. */
int redis_feed(void *r, struct evbuffer *in);
/* One formatted command from argv (caller frees *out with free()). */
size_t redis_format(char **out, int argc, const char **argv,
                    const size_t *lens);
/* Decode ESC(key) (s[0, n): a counter's Redis key without PREFIX{ and })
 * in place; returns the key's length. */
size_t redis_unesc(char *s, size_t n);

/* ---- redis_notify.c: "expired" events from keyspace notifications ----- */
struct redis_notify; /* its connection, subscribed to the expired events */
struct redis_notify_cfg {
    struct event_base *evb;
    const char *host, *user, *pass; /* copied; user, pass may be NULL */
    int port, db;
    struct ssl_ctx_st *tls;    /* borrowed, NULL: plain TCP */
    const char *prefix;        /* the store's key prefix (copied) */
    /* Called on the loop for each counter Redis expired; key (unescaped)
     * is valid only during the call. */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *ctx;
};
/* Connects in the background (and again with backoff when lost); close
 * with redis_notify_close (NULL is allowed). */
struct redis_notify *redis_notify_open(const struct redis_notify_cfg *cfg);
void redis_notify_close(struct redis_notify *nt);
/* Run fn(ctx, arg) once every notification Redis published before now
 * has been reported (a PING on the subscribed connection; its answer comes
 * after them), or once the connection is lost or closed: 0.  -1 (fn not
 * taken) when not subscribed: nothing is waited for. */
int redis_notify_barrier(struct redis_notify *nt,
                         void (*fn)(void *ctx, void *arg), void *ctx,
                         void *arg);
/* INFO's word for it: "on", "off: why", "unknown: why", "connecting". */
const char *redis_notify_state(const struct redis_notify *nt);
/* Expired counters reported since open. */
uint64_t redis_notify_seen(const struct redis_notify *nt);
/* The notify-keyspace-events flags cur plus E and x, into out; 1 if any
 * was missing (a CONFIG SET is needed), 0 if cur has both (A includes x). */
int redis_notify_flags(const char *cur, char *out, size_t n);
/* If k[0, n) is a counter's key PREFIX{ESC(KEY)} under kp's prefix (not
 * an id record), KEY into out (3 * TALLY_KEY_MAX + 2 bytes) and *outlen,
 * 0; else -1. */
int redis_notify_key(const struct redis_keys *kp, const char *k, size_t n,
                     char *out, size_t *outlen);

/* ---- redis.c for redis_cluster.c: one connection as a node ------------ */
struct redis_store; /* one connection and its queues (redis.c) */
struct event_base;
struct ssl_ctx_st;  /* OpenSSL's SSL_CTX */
struct redis_node_cfg {
    const char *host;
    int port;
    const char *user, *pass;   /* AUTH, or NULL */
    struct ssl_ctx_st *tls;    /* borrowed; NULL: plain TCP */
    const char *prefix;
    int sync_policy, wait_replicas, wait_timeout_ms;
    uint64_t once_ttl_ms;
    /* Instead of answering, the node hands back (takes ownership of) an
     * op that a redirect or cluster error refused (r: that reply) or that
     * it had not sent, or only read with, when its connection went (r
     * NULL); and says when its connection came up or went down. */
    void (*back)(void *parent, struct redis_store *node, struct redis_op *op,
                 const struct redisReply *r);
    void (*state)(void *parent, struct redis_store *node, int up);
    void *parent;
    /* Non-NULL: the node also subscribes to its own "expired" events
     * (redis_notify.c), reported here; a cluster's masters each expire
     * their own keys. */
    void (*expired)(void *ctx, const void *key, size_t klen);
    void *expired_ctx;
};
/* A connection to one node, connecting in the background; close it with
 * its base.ops->close (the ops still queued on it then fail). */
struct redis_store *redis_node_open(struct event_base *base,
                                    const struct redis_node_cfg *cfg);
struct store *redis_node_store(struct redis_store *node);
/* Queue op (takes ownership) for the node's next write. */
void redis_node_send(struct redis_store *node, struct redis_op *op);
/* 0 if the node is down (backing off before a reconnect). */
int redis_node_up(const struct redis_store *node);
/* 1 if its handshake is done and it is serving. */
int redis_node_serving(const struct redis_store *node);
/* 1 if nothing is queued on the node or waits for its answer. */
int redis_node_idle(const struct redis_store *node);
/* The SHA-1 of each script (redis_lua.c), as EVALSHA takes it. */
void redis_script_shas(char sha[][41]);

/* redis_cluster.c: redis+cluster://h1:p1,h2:p2 and rediss+cluster://
 * (store_redis_open_opts sends those URIs here). */
int redis_cluster_open(struct event_base *base, const char *uri,
                       int fsync_policy, const struct store_redis_opts *opts,
                       struct store **out, char *err, size_t errlen);
/* The hash slot (0..16383) of a counter's Redis key PREFIX{ESC(key)}. */
int redis_cluster_slot(const char *key, size_t klen);

/* redis_xact.c: store batches (store.h "Atomic batches"), for redis.c and
 * the cluster, each keeping one env for its batches. */
struct redis_xact_env {
    struct store *st;          /* reads and COUNT go through st->ops->exec */
    struct event_base *evb;    /* the conflict backoff's timer */
    const struct redis_keys *keys;
    char (*sha)[41];
    int cluster;               /* a batch's keys must share one slot */
    uint64_t once_ttl_ms;      /* a whole batch's id record's PX */
    /* Send the commit op: 0 (takes ownership; its done() comes later), or
     * the error in *res and nothing taken (the store is down). */
    int (*send)(struct store *st, struct redis_op *op, struct store_res *res);
    /* INFO: commits answered OK, and those that met a changed key */
    uint64_t n_commits, n_conflicts;
};
int redis_xact_begin(struct redis_xact_env *env, unsigned attempt,
                     struct store_batch **out);
/* An operation whose req->batch is set (store_ops.exec's contract). */
int redis_xact_exec(const struct store_req *req, struct store_res *res,
                    store_done_fn done, void *arg);
/* store_ops.batch_commit and batch_abort. */
int redis_xact_commit(struct store *st, struct store_batch *b,
                      struct store_res *res, store_done_fn done, void *arg);
void redis_xact_abort(struct store *st, struct store_batch *b);
/* store_ops.batch_prefetch: read req's keys into b's view ahead of its
 * exec (not on a cluster). */
void redis_xact_prefetch(struct store *st, struct store_batch *b,
                         const struct store_req *req);
/* store_ops.once_answer and batch_commit_once.  On a cluster the id's
 * record is in the slot of req->key, the batch's first counter (refused
 * without one): once_answer goes to that slot's master, and a batch whose
 * counters are in another slot is refused with CROSSSLOT. */
int redis_xact_once_answer(struct redis_xact_env *env,
                           const struct store_req *req,
                           struct store_res *res, store_done_fn done,
                           void *arg);
int redis_xact_commit_once(struct store *st, struct store_batch *b,
                           const struct store_req *req, const void *answer,
                           size_t alen, struct store_res *res,
                           store_done_fn done, void *arg);

/* redis_tls.c: rediss:// */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX and SSL */
struct ssl_st;
/* The client context (ca NULL: the system's CAs; cert NULL: none; key
 * NULL: in cert).  NULL with the reason in err. */
struct ssl_ctx_st *redis_tls_ctx(const char *ca, const char *cert,
                                 const char *key, char *err, size_t errlen);
/* One connection's SSL: SNI and the name checked are host's.  NULL: no
 * memory. */
struct ssl_st *redis_tls_ssl(struct ssl_ctx_st *ctx, const char *host);
/* Why a TLS connection failed (e: bufferevent_get_openssl_error's). */
void redis_tls_why(struct ssl_st *ssl, unsigned long e, char *buf, size_t n);

#endif /* TALLY_STORE_REDIS_INT_H */
