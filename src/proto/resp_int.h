/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_int.h - what the files of the RESP front end share among themselves
 * (resp.c: connections, dispatch and the counter commands; resp_parse.c:
 * the tokenizer; resp_reply.c: reply encoding; resp_admin.c: the
 * connection and server commands).  Nothing here is seen outside
 * src/proto/resp*.c; the daemon sees only resp_ops (resp.h).
 */
#ifndef TALLY_RESP_INT_H
#define TALLY_RESP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cmd.h"
#include "proto.h"
#include "util.h"

/* The Redis version tally answers to in HELLO and INFO: its replies and
 * error texts follow Redis 7, and clients choose features by this number. */
#define RESP_REDIS_VERSION "7.0.0"

/* ---- Tokenizer (resp_parse.c) ----------------------------------------- */

/* Redis's limits for a connection that has not authenticated yet, so that a
 * stranger cannot make the server buffer much (networking.c). */
#define RESP_UNAUTH_MAX_ARGS 10
#define RESP_UNAUTH_MAX_BULK 16384

/* One request's arguments.  argv[i] points into the input buffer (RESP
 * arrays) or into scratch (inline commands, whose quotes and escapes are
 * resolved), so they are valid until the next resp_parse() on the same
 * struct or until the input moves. */
struct resp_args {
    size_t argc;
    const char **argv;
    size_t *argl;
    size_t cap;         /* room in argv/argl */
    struct buf scratch; /* resolved inline arguments */
};

/* Free what resp_parse() allocated in a (back to all zero). */
void resp_args_free(struct resp_args *a);

/* Tokenize one request from in[0, len): a RESP array of bulk strings or an
 * inline command line.  Returns the bytes it takes (> 0) with a filled in;
 * argc may be 0 for input that carries no command (an empty line, "*0").
 * Returns 0 if the request is not complete yet (a is then meaningless).
 * Returns -1 if the input breaks the protocol or a limit: err (at least
 * RESP_ERRMAX bytes) then holds the reply text without its "-", e.g.
 * "ERR Protocol error: invalid bulk length".  A bulk longer than the limits
 * is refused as soon as its header is seen.  authed == 0 applies Redis's
 * tighter limits for unauthenticated connections. */
#define RESP_ERRMAX 128
ssize_t resp_parse(const char *in, size_t len, const struct proto_limits *lim,
                   int authed, struct resp_args *a, char *err);

/* ---- Replies (resp_reply.c) ------------------------------------------- */

/* Where a reply is written and how: RESP2 or RESP3 (after HELLO 3). */
struct resp_out {
    struct buf *b;
    int resp3;
};

void resp_simple(struct resp_out *o, const char *s);     /* +s */
void resp_error(struct resp_out *o, const char *fmt, ...) /* -text; \r\n
                                                             become spaces */
    __attribute__((format(printf, 2, 3)));
void resp_int(struct resp_out *o, int64_t v);            /* :v */
void resp_bulk(struct resp_out *o, const void *p, size_t n); /* $n */
void resp_bulks(struct resp_out *o, const char *s);      /* a C string */
void resp_bulk_i64(struct resp_out *o, int64_t v);       /* decimal */
void resp_null(struct resp_out *o);                      /* $-1 or _ */
void resp_array(struct resp_out *o, size_t n);           /* *n */
void resp_map(struct resp_out *o, size_t n);   /* %n, or *2n in RESP2 */
void resp_set(struct resp_out *o, size_t n);   /* ~n, or *n in RESP2 */
void resp_verbatim(struct resp_out *o, const char *txt, size_t n); /* =txt:
                                                  in RESP3, bulk in RESP2 */

/* ---- Connection state and commands (resp.c, resp_admin.c) ------------- */

struct resp_conn {
    const struct resp_front *front; /* borrowed: the command index */
    struct cmd_ctx *ctx;          /* borrowed */
    struct cmd_session *s;        /* borrowed, the daemon's */
    struct proto_limits lim;
    char peer[64];
    int64_t created_unix;
    struct buf name;              /* CLIENT SETNAME */
    struct buf libname, libver;   /* CLIENT SETINFO */
    struct resp_args args;        /* the request being handled */
    struct resp_out out;          /* its reply */
    tally_ticket ticket;          /* what the reply waits for */
    unsigned flags;               /* PROTO_* for the daemon */
    /* Multi-key request arrays, max_args long, reused. */
    const char **keys;
    size_t *klens;
    int64_t *nums;
    unsigned char *founds;
    struct buf tmp;               /* SCAN/KEYS items, INFO text */
    /* Pub/sub (resp_pubsub.c): the broker's client once the connection
     * subscribed to anything, and how messages reach the socket. */
    struct pubsub_client *sub;
    struct proto_push push;
    int push_failed;              /* push said the connection is closing */
    struct buf msg;               /* one message being encoded */
};

/* A command handler: c->args holds the request (argv[0] is the name). */
typedef void (*resp_handler)(struct resp_conn *c);

/* Flags of a command table entry. */
#define RESP_NOAUTH 0x1  /* may run before AUTH (AUTH, HELLO, QUIT) */
#define RESP_NOQUEUE 0x2 /* runs at once inside MULTI (EXEC, WATCH...) */
#define RESP_NOMULTI 0x4 /* refused inside MULTI (SAVE, SHUTDOWN) */
/* Pipelined look-ahead (proto_ops.ahead, cmd.h "Pipelined look-ahead"):
 * the command, with argc words (0: any number), is one cmd_exec of op,
 * which the front end may run ahead.  The op and argc ride in the flags. */
#define RESP_AHEADF 0x8
#define RESP_AHEAD(op, argc)                                                  \
    (RESP_AHEADF | (unsigned)(op) << 8 | (unsigned)(argc) << 16)
#define RESP_AHEAD_OP(fl) ((enum cmd_op)((fl) >> 8 & 0xff))
#define RESP_AHEAD_ARGC(fl) ((size_t)((fl) >> 16 & 0xff))

struct resp_command {
    const char *name;  /* lower case, as Redis's error texts spell it */
    int arity;         /* Redis's convention: n exactly, -n at least n */
    unsigned flags;    /* RESP_* */
    resp_handler fn;
    const char *doc_flags; /* COMMAND's flags, space-separated */
    int first, last, step; /* COMMAND's key positions */
};

/* The command table (resp.c) and its size. */
extern const struct resp_command resp_commands[];
extern const size_t resp_ncommands;

/* The table entry named name[0, n), any case, or NULL (f's index). */
const struct resp_command *resp_lookup(const struct resp_front *f,
                                       const char *name, size_t n);

/* Case-insensitive compare of an argument with a lower-case word. */
int resp_arg_is(const struct resp_conn *c, size_t i, const char *word);

/* Look up and run the request in c->args (resp.c): Redis's checks, then
 * the handler, or the MULTI queue. */
void resp_dispatch(struct resp_conn *c);

/* The error reply for a command-layer error status (resp.c). */
void resp_reply_status(struct resp_conn *c, const struct cmd_res *res);

/* Transactions (resp_multi.c).  intercept queues the request (or refuses
 * it) while the session is in MULTI and returns 1, else returns 0; flag
 * marks a queue-time error. */
int resp_multi_intercept(struct resp_conn *c, const struct resp_command *cmd);
void resp_multi_flag(struct resp_conn *c);
/* An EXEC refused for its arity inside MULTI discards the transaction with
 * Redis's "EXECABORT ... because of:" reply; returns 1 if it did. */
int resp_multi_exec_refused(struct resp_conn *c,
                            const struct resp_command *cmd);
void resp_cmd_multi(struct resp_conn *c);
void resp_cmd_exec(struct resp_conn *c);
void resp_cmd_discard(struct resp_conn *c);
void resp_cmd_watch(struct resp_conn *c);
void resp_cmd_unwatch(struct resp_conn *c);

/* Scripts (resp_script.c). */
void resp_cmd_eval(struct resp_conn *c);
void resp_cmd_script(struct resp_conn *c);
void resp_cmd_function(struct resp_conn *c);
/* While another session's script is busy: answer -BUSY (anything but
 * SCRIPT KILL and SHUTDOWN) and return 1. */
int resp_script_busy(struct resp_conn *c, const struct resp_command *cmd);
/* SHUTDOWN's part (after its syntax check) while another session's script
 * is busy: without NOSAVE answer -BUSY and return 1; with it, stop the
 * script, undoing its writes, and return 0 (go on stopping). */
int resp_script_shutdown(struct resp_conn *c, int nosave);

/* Keys and server commands (resp_keys.c). */
void resp_cmd_flush(struct resp_conn *c);
void resp_cmd_type(struct resp_conn *c);
void resp_cmd_touch(struct resp_conn *c);
void resp_cmd_rename(struct resp_conn *c);
void resp_cmd_copy(struct resp_conn *c);
void resp_cmd_randomkey(struct resp_conn *c);
void resp_cmd_object(struct resp_conn *c);
void resp_cmd_memory(struct resp_conn *c);
void resp_cmd_wait(struct resp_conn *c);
void resp_cmd_lastsave(struct resp_conn *c);
void resp_cmd_time(struct resp_conn *c);
void resp_cmd_not_integer(struct resp_conn *c);

/* The wrong-arity error, worded as Redis 7 words it. */
void resp_err_arity(struct resp_conn *c, const char *name);

/* Redis's reply to a non-integer argument, and tally's to a non-integer
 * SET/MSET value, with the reason added. */
#define ERR_NOTINT "ERR value is not an integer or out of range"
#define ERR_NOTINT_VALUE \
    ERR_NOTINT " (tally stores signed 64-bit integer counters only)"

/* resp.c's helpers for the handlers in other files: run a request through
 * the command layer (taking its ticket, answering its errors; returns the
 * status), parse argument i as an int64 (answering errtext and counting
 * the refusal against op; 0 or -1), start a single-key request from
 * argv[1], take a .ONCE command's id (1 if it is one), answer
 * "ERR syntax error". */
enum cmd_status resp_run(struct resp_conn *c, const struct cmd_req *req,
                         struct cmd_res *res);
int resp_arg_i64(struct resp_conn *c, size_t i, enum cmd_op op,
                 const char *errtext, int64_t *v);
void resp_single_key(struct resp_conn *c, struct cmd_req *req,
                     enum cmd_op op);
int resp_take_once(struct resp_conn *c, struct cmd_req *req);
void resp_err_syntax(struct resp_conn *c);

/* SET and the expiry commands (resp_expire.c). */
void resp_cmd_set(struct resp_conn *c);     /* SET, GETSET, SET.ONCE */
void resp_cmd_setex(struct resp_conn *c);   /* SETEX, PSETEX */
void resp_cmd_getex(struct resp_conn *c);
void resp_cmd_expire(struct resp_conn *c);  /* [P]EXPIRE[AT] */
void resp_cmd_ttl(struct resp_conn *c);     /* [P]TTL, [P]EXPIRETIME */
void resp_cmd_persist(struct resp_conn *c);
/* The options of INCRBY.ONCE and DECRBY.ONCE after the id into req:
 * 0, or -1 with the error answered. */
int resp_once_ttl(struct resp_conn *c, struct cmd_req *req);
/* "ERR invalid expire time in '<command>' command", as Redis words it. */
void resp_err_expire(struct resp_conn *c);

/* The connection and server commands (resp_admin.c). */
void resp_cmd_hello(struct resp_conn *c);
void resp_cmd_client(struct resp_conn *c);
/* CLIENT LIST, INFO and KILL (resp_clients.c). */
void resp_client_list(struct resp_conn *c);
void resp_client_info(struct resp_conn *c);
void resp_client_kill(struct resp_conn *c);
/* Copy the connection's name, library and protocol into its session, where
 * CLIENT LIST reads them. */
void resp_session_sync(struct resp_conn *c);
void resp_cmd_command(struct resp_conn *c);
void resp_cmd_info(struct resp_conn *c);
void resp_cmd_config(struct resp_conn *c);

/* Pub/sub (resp_pubsub.c).  SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE and
 * PUNSUBSCRIBE share one handler. */
void resp_cmd_subscribe(struct resp_conn *c);
void resp_cmd_publish(struct resp_conn *c);
void resp_cmd_pubsub(struct resp_conn *c);
/* RESP2 subscriber mode: 0 if cmd may run now, else -1 after the error. */
int resp_pubsub_allowed(struct resp_conn *c, const struct resp_command *cmd);
/* PING's reply in RESP2 subscriber mode; 0 if not in that mode. */
int resp_pubsub_ping(struct resp_conn *c);
void resp_pubsub_free(struct resp_conn *c);

/* Run AUTH's check through the command layer for HELLO and AUTH.  user may
 * be NULL (the one-argument form).  Returns 0 when authenticated; otherwise
 * the error reply is written and -1 returned. */
int resp_auth(struct resp_conn *c, const char *user, size_t ulen,
              const char *pass, size_t plen);

#endif /* TALLY_RESP_INT_H */
