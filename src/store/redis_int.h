/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_int.h - what the files of the Redis store share.  redis.c owns the
 * connection, the queue of operations and their lives; redis_ops.c turns a
 * store_req into one command and its reply into a store_res; redis_lua.c
 * holds the scripts.  Only the event loop's thread uses any of it.
 */
#ifndef TALLY_STORE_REDIS_INT_H
#define TALLY_STORE_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store.h"
#include "util.h"

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
    REDIS_S_COUNT_ALL
};
#define REDIS_S_NONE (-1)
extern const char *const redis_lua_text[REDIS_S_COUNT_ALL];

/* What a reply on the connection belongs to. */
enum redis_kind {
    R_USER = 0,  /* a caller's operation */
    R_AUTH, R_SELECT, R_CFG, R_INFO, R_LOAD, /* the handshake */
    R_WAIT, R_WAITAOF
};

/* One command, from store_exec (or the handshake) until its reply is read
 * and, for R_USER, its done() ran.  It owns its formatted bytes and the
 * arrays its result points to. */
struct redis_op {
    TAILQ_ENTRY(redis_op) link;
    enum redis_kind kind;
    enum store_opk op;
    int script;               /* REDIS_S_*, or REDIS_S_NONE */
    int writes;               /* may change something: a lost reply is
                                 STORE_EUNKNOWN */
    int held;                 /* answered, waiting for its batch's WAIT */
    size_t nkeys;
    char *cmd;                /* RESP bytes (redisFormatCommandArgv) */
    size_t cmdlen;
    store_done_fn done;
    void *arg;
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
                                 expiries, 2 delete */
    uint64_t pages;           /* pages answered */
    uint64_t page_cursor;     /* the next page's SCAN cursor; 0: done */
    uint64_t page_n, page_nx;
    double page_ttl_sum;      /* ms left, summed (only an average needs it) */
};

TAILQ_HEAD(redis_opq, redis_op);

/* redis_ops.c */
struct redis_keys {
    const char *prefix;
    size_t plen;
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
/* One formatted command from argv (caller frees *out with free()). */
size_t redis_format(char **out, int argc, const char **argv,
                    const size_t *lens);

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
