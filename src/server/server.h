/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * server.h - the daemon's one process-wide struct and the functions its files
 * share.  tallyd is split by job: config.c (flags), log.c (stderr lines),
 * conn.c (listeners and stream connections), outbox.c (holding replies until
 * they are durable, and the proto_waiter for HTTP), fronts.c (which front
 * ends exist and how they are started) and main.c (lifecycle, timers,
 * signals).  Everything here runs on the event-loop thread except the logger
 * (docs/threading.md).
 */
#ifndef TALLY_SERVER_H
#define TALLY_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "cmd.h"
#include "engine.h"
#include "proto.h"
#include "tally.h"
#include "util.h"

/* ---- Logging (log.c) ---------------------------------------------------- */

#define SLOG_ERROR TALLY_LOG_ERROR
#define SLOG_WARN TALLY_LOG_WARN
#define SLOG_INFO TALLY_LOG_INFO
#define SLOG_DEBUG 3

#define SLOG_SLOTS 32 /* call sites tracked for rate limiting */

/* One slot per recently seen error or warning call site (hashed). */
struct slog_slot {
    uint64_t key;        /* format string address or message hash */
    int64_t last_ms;     /* when it was last printed */
    uint64_t suppressed; /* lines dropped since */
};

struct slog {
    int level;                    /* print lines at or below this level */
    pthread_mutex_t mu;           /* guards slots and the write to stderr:
                                     the engine logs from its own threads */
    struct slog_slot slots[SLOG_SLOTS];
};

void slog_init(struct slog *l, int level);
void slog_free(struct slog *l);
/* Print one line "TIME LEVEL message" on stderr.  Errors and warnings from
 * one call site are printed at most once a second; the next one printed says
 * how many were dropped. */
void slog(struct slog *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Change the level at run time (CONFIG SET log-level, SIGHUP); the engine's
 * threads read it too. */
void slog_set_level(struct slog *l, int level);
/* tally_options.log: the engine's warnings and errors, from any thread. */
void slog_engine(void *l, int level, const char *msg);

/* ---- Stores (stores.c) --------------------------------------------------- */

struct server;

struct conf;
/* 1 if what --store names needs the engine on --dir opened (no --store,
 * the delay test store), 0 for a remote store, which leaves --dir alone
 * (srv->db stays NULL). */
int stores_need_engine(const struct conf *c);
/* Open what --store names into srv->store (after the loop exists).
 * Returns 0, or -1 with err (256 bytes) set. */
int stores_open(struct server *srv, char *err);
/* Close it, unless it is the engine (closed with the handle). */
void stores_close(struct server *srv);

/* ---- Flags (config.c) ---------------------------------------------------- */

struct conf {
    const char *dir;           /* data directory (borrowed from argv) */
    const char *store;         /* --store URI (borrowed), NULL: the engine */
    const char *store_prefix;  /* --store-prefix (borrowed), NULL: default */
    int store_wait_replicas;   /* --store-wait-replicas; 0: none */
    const char *store_tls_ca;  /* --store-tls-*-file (borrowed), or NULL */
    const char *store_tls_cert;
    const char *store_tls_key;
    const char *bind;          /* address every listener binds */
    int port;                  /* RESP */
    int http_port;             /* 0: off */
    int memcache_port;         /* 0: off */
    tally_sync sync;
    char *password;            /* NULL: none; owned */
    size_t passlen;
    uint64_t maxclients;       /* stream connections at most */
    uint64_t busy_ms;          /* --busy-reply-threshold; 0: default */
    int log_level;             /* SLOG_* */
    int allow_flush;           /* memcached flush_all */
    uint64_t snapshot_min_log; /* 0: the engine's default */
    uint64_t once_ttl_ms;      /* idempotency id retention; 0: default */
    int spin;                  /* poll briefly around syncs (main.c) */
    char **cors_origins;       /* --http-cors-origin, lower case; owned */
    size_t ncors;
    char **allowed_hosts;      /* --http-allowed-host, lower case; owned */
    size_t nhosts;
    int tls_port;              /* RESP over TLS; 0: off */
    int https_port;            /* 0: off */
    int memcache_tls_port;     /* 0: off */
    const char *tls_cert, *tls_key; /* PEM files (borrowed) */
    const char *tls_ca_file, *tls_ca_dir; /* client CAs, or NULL */
    int tls_auth;              /* CONF_TLS_AUTH_* */
    const char *tls_protocols; /* "TLSv1.2 TLSv1.3" */
    const char *tls_ciphers;   /* NULL: OpenSSL's default */
    int argc;                  /* the command line, kept for a reload */
    char **argv;
    struct conffile *file;     /* --config's settings and what was given;
                                  owned (conffile.c) */
    uint64_t events_window;    /* --events-window: events kept for resume */
    const char *notify;        /* --notify-keyspace-events (borrowed) */
    uint64_t sub_limit;        /* --subscriber-output-limit, bytes */
    int keepalive_ms;          /* --events-keepalive, SSE comments */
};

/* Parse argv into *c.  Returns 0 to run, 1 if --help or --version was printed
 * (exit 0), or -1 with a message in err (256 bytes; exit 2).  On failure *c
 * holds only what conf_free() can release. */
int conf_parse(struct conf *c, int argc, char **argv, char *err);
void conf_free(struct conf *c);
const char *conf_sync_name(tally_sync s);
const char *conf_level_name(int level);
enum { CONF_TLS_AUTH_NO, CONF_TLS_AUTH_OPTIONAL, CONF_TLS_AUTH_YES };
const char *conf_tls_auth_name(int a);
/* The getopt table every flag is in (n entries, without the end marker). */
struct option;
const struct option *conf_options(size_t *n);

/* ---- The configuration file (conffile.c) ---------------------------------- */

/* What conf_parse() got: --config FILE's settings turned into flags, then the
 * command line, and for every option of the table the value last given. */
struct conffile {
    const char *path;          /* --config FILE (borrowed), or NULL */
    char **args;               /* argv[0], "--name=value" per setting of the
                                  file, the rest of argv: what getopt reads */
    int nargs;
    int nfile;                 /* args[1..nfile] came from the file */
    int *lines;                /* line of args[1 + i] in the file */
    char **given;              /* per option: value last given (owned) */
    size_t nopts;
    int at;                    /* while parsing: index in args of the flag
                                  being handled, else 0 */
};

/* Find --config in argv, read the file and fill c->file (owned by c) with
 * the flags getopt is to read.  Returns 0, or -1 with "FILE:LINE: why" in err
 * (256 bytes). */
int conffile_expand(struct conf *c, int argc, char **argv, char *err);
/* The flag at args[at - 1] is being handled: option index idx (-1: not an
 * option, or parsing ended) with value (NULL for one without). */
void conffile_note(struct conf *c, int idx, const char *value, int at);
/* --config's value as getopt saw it must be the one expand() read.  Returns
 * 0 or -1 with err set. */
int conffile_check_arg(const struct conf *c, const char *value, char *err);
/* Prefix err with "FILE:LINE: " if the flag that failed came from the file. */
void conffile_locate(const struct conf *c, char *err);
void conffile_free(struct conf *c);

/* ---- Connections (conn.c) ------------------------------------------------ */

/* A reply that may not leave yet: the bytes of out up to `end` wait for
 * tally_durable() >= ticket. */
struct mark {
    tally_ticket ticket;
    size_t end;
};

struct server;

struct listener {
    struct server *srv;
    const struct proto_ops *ops;
    enum cmd_proto proto;
    void *front;               /* the front end's listener state, or NULL */
    const char *reject;        /* sent to a client over --maxclients, or
                                  NULL (TLS: it would not be understood) */
    int tls;                   /* connections speak TLS (tls.c) */
    int fd;                    /* -1: closed */
    int port;                  /* as bound (useful when asked for 0) */
    struct event *ev;          /* readable: accept */
    struct event *resume;      /* timer restarting accepts after EMFILE */
};

struct tls_conn;

struct conn {
    struct server *srv;
    struct listener *ln;
    int fd;
    struct tls_conn *tls;      /* NULL: plain TCP */
    struct event *rev, *wev;
    void *proto;               /* the front end's state for this stream */
    struct cmd_session session;
    char peer[64];
    char local[64];            /* our end, "ip:port" (CLIENT LIST laddr) */
    int64_t created_ms;        /* srv_now_ms() at accept */
    int64_t active_ms;         /* srv_now_ms() at its last request */
    struct buf in;             /* bytes read, not yet handled */
    struct buf out;            /* replies; [0, sent) is already written */
    size_t sent;
    /* The durability hold (outbox.c).  While nmarks > 0, out[ready, len)
     * waits: marks[mhead..] in order, tickets strictly increasing, the last
     * one ending at out.len.  A mark may cover no bytes (a change whose
     * reply was suppressed): it still holds every reply after it.  While
     * nmarks == 0 all of out may leave. */
    size_t ready;
    struct mark *marks;
    size_t mhead, nmarks, mcap;
    struct conn *prev, *next;   /* every connection (server.conns) */
    struct conn *wprev, *wnext; /* connections holding replies */
    struct conn *rprev, *rnext; /* connections with input to run */
    struct conn *fprev, *fnext; /* ran this pass, replies not yet written */
    unsigned waiting : 1;      /* on the holding list */
    unsigned queued : 1;       /* on the run queue */
    unsigned ran : 1;          /* on the ran list */
    unsigned wpending : 1;     /* wev is added: the socket was full */
    unsigned reading : 1;      /* rev is added */
    unsigned rpaused : 1;      /* not reading: too much unsent output */
    unsigned backlog : 1;      /* requests in `in` not yet run */
    unsigned eof : 1;          /* the peer will send nothing more */
    unsigned closing : 1;      /* close once out is all written */
    unsigned killed : 1;       /* CLIENT KILL: close at the next flush,
                                  written or not */
    unsigned storewait : 1;    /* its first request waits for the store
                                  (cmd.h "Asynchronous stores"): not run,
                                  not read, until the session's wake() */
    /* The requests behind the first that ran while it waits (conn.c,
     * cmd.h "Pipelined look-ahead"): a ring of CONN_AHEAD slots, NULL
     * until first needed; nahead of them from ahead_first, in order. */
    struct conn_ahead *ahead;
    unsigned ahead_first, nahead;
    unsigned ahead_done;       /* the first request is the first slot's,
                                  answered already: served from there */
};

/* Bind and listen on conf.bind:port for ops; reject is what a client over
 * --maxclients is told.  Returns 0 or -1 with err (256 bytes) set. */
int conn_listen(struct server *srv, const struct proto_ops *ops, void *front,
                enum cmd_proto proto, int port, const char *reject, char *err);
void conn_listeners_close(struct server *srv);
/* Run the requests read in this loop iteration (and those left over from
 * the last one), then write the replies that may leave.  Called once per
 * event-loop iteration, after every callback, so all the changes read in one
 * iteration reach the engine back to back and share a sync. */
void conn_run(struct server *srv);
/* Open this pass's engine batch (tally_cork) unless it is open, for a
 * request that runs outside conn_run() (HTTP, on evhttp's callbacks); the
 * request is counted so that the next conn_run() keeps the batch open as it
 * does for a pass of stream requests, and closes it after a pass without. */
void conn_cork_request(struct server *srv);
/* Write what may leave.  Returns 0, or -1 if the connection was closed (and
 * freed) meanwhile, after a write error or because it was closing. */
int conn_flush(struct conn *c);
/* Answer the other connections while a script is busy (cmd_ctx.busy_poll). */
void conn_busy_poll(void *arg);
/* Stop reading from every connection; close each once its replies are out. */
void conn_drain_all(struct server *srv);
/* Close every connection now (the shutdown deadline passed). */
void conn_close_all(struct server *srv);
/* Fill srv->clients, the connection registry as the command layer sees it
 * (cmd.h "Connected clients"), and point srv->info.clients at it. */
void conn_clients_serve(struct server *srv);

/* ---- Pushing to subscribers (push.c) ----------------------------------- */

/* The struct proto_push a stream connection's front end gets: appends to
 * c->out and has it written on the next loop pass; past
 * conf.sub_limit unsent bytes the connection is cut off (counted in the
 * event hub's statistics for /metrics). */
struct proto_push conn_push_for(struct conn *c);

/* ---- The durability hold (outbox.c) -------------------------------------- */

struct owait {                 /* an HTTP response waiting for durability */
    tally_ticket ticket;
    uint64_t seq;              /* FIFO among equal tickets */
    proto_ready_fn fn;
    void *arg;
};

struct outbox {
    tally_ticket durable;      /* tally_durable() when last looked at */
    int health;                /* tally_health() when last looked at */
    struct conn *waiting;      /* connections holding replies */
    struct owait *heap;        /* min-heap on (ticket, seq) */
    size_t nheap, capheap;
    uint64_t seq;
};

/* The reply of one request now occupies c->out[start, out.len) and may leave
 * once ticket t is durable.  Called for every request, also one that wrote
 * nothing (start == out.len: memcached noreply, meta q): a change that is not
 * durable yet then keeps an empty mark, so whatever is answered after it
 * waits for it too.  Costs nothing when t is already durable. */
void outbox_hold(struct conn *c, size_t start, tally_ticket t);
/* How much of c->out may be written now. */
static inline size_t outbox_ready(const struct conn *c)
{
    return c->nmarks ? c->ready : c->out.len;
}
/* Take c off the holding list and drop its marks (it is being freed). */
void outbox_forget(struct conn *c);
/* The marks' offsets after n bytes were dropped from the front of c->out. */
void outbox_shift(struct conn *c, size_t n);
/* Read tally_durable() and tally_health() and release what they allow. */
void outbox_release(struct server *srv);
/* tally_durable(), or UINT64_MAX without the engine (srv->db NULL). */
tally_ticket outbox_engine_durable(const struct server *srv);
/* Event callback for tally_notify_fd(); arg is the server. */
void outbox_on_notify(evutil_socket_t fd, short what, void *arg);
/* Fill srv->waiter (the struct proto_waiter given to the HTTP front end). */
void outbox_waiter_init(struct server *srv);
void outbox_free(struct outbox *ob);

/* ---- Front ends (fronts.c) ----------------------------------------------- */

struct http_front;
struct mc_front;
struct resp_front;

/* Start the memcached and HTTP front ends the flags ask for.  Returns 0 or -1
 * with err (256 bytes) set. */
int fronts_start(struct server *srv, char *err);
/* Shutdown begins: the HTTP front end stops accepting connections and
 * requests (the stream listeners are closed by conn_listeners_close). */
void fronts_quiesce(struct server *srv);
/* True while an HTTP response is held or not yet written (fronts.c). */
int fronts_unanswered(const struct server *srv);
/* HTTP connections that have sent a request and are still open. */
unsigned fronts_http_conns(const struct server *srv);
void fronts_stop(struct server *srv);

/* ---- TLS (tls.c) ------------------------------------------------------------ */

/* Does c ask for any TLS port? */
int tls_wanted(const struct conf *c);
/* Build srv->tls from the flags if a TLS port is asked for.  Returns 0, or -1
 * with err (256 bytes) naming the file and OpenSSL's reason. */
int tls_init(struct server *srv, char *err);
/* SIGHUP: load the certificate, key and CAs again; a failure keeps the
 * ones in use and is logged. */
void tls_reload(struct server *srv);
void tls_free(struct server *srv);
/* A TLS server connection on fd (peer is borrowed, for the log). */
struct tls_conn *tls_conn_new(struct server *srv, int fd, const char *peer);
/* As read(2) and send(2) on a non-blocking socket: bytes, 0 at the peer's
 * close (read), or -1 with errno EAGAIN (wait for the socket) or another
 * error (EPROTO: the TLS layer failed; logged once). */
ssize_t tls_read(struct tls_conn *t, void *p, size_t n);
ssize_t tls_write(struct tls_conn *t, const void *p, size_t n);
/* Plaintext the TLS layer holds that no read has taken yet. */
int tls_pending(const struct tls_conn *t);
void tls_conn_free(struct tls_conn *t);
struct bufferevent;
/* evhttp's bufferevent callback for --https-port; arg is the server. */
struct bufferevent *tls_http_bev(struct event_base *base, void *arg);

/* ---- The service manager (notify.c) -------------------------------------- */

/* Send state ("READY=1", "STOPPING=1", ...) to $NOTIFY_SOCKET.  Returns 0
 * when sent, 1 when there is no $NOTIFY_SOCKET, -1 with errno set. */
int notify_send(const char *state);

/* ---- The server (main.c) ------------------------------------------------- */

#define SRV_MAX_LISTENERS 4

struct server {
    struct conf conf;
    struct slog log;
    tally *db;
    struct store_engine engine; /* the store over db (src/store/engine.h) */
    struct store *store;       /* where counters live: &engine.base, or
                                  what --store named (stores.c) */
    struct cmd_ctx cmd;
    struct cmd_serverinfo info;
    struct proto_limits limits;
    size_t max_input;          /* raw buffered input per connection */
    struct event_base *base;
    struct listener listeners[SRV_MAX_LISTENERS];
    size_t nlisteners;
    struct tls *tls;           /* the TLS context, or NULL (tls.c) */
    struct http_front *http;
    struct mc_front *mc;
    struct resp_front *resp;
    struct proto_waiter waiter;
    struct cmd_config config;  /* CONFIG GET/SET (conffile.c) */
    struct cmd_clients clients; /* CLIENT LIST/KILL (conn.c) */
    struct outbox outbox;
    struct events *events;     /* the change-event hub (src/cmd/events.h) */
    struct pubsub *pubsub;     /* pub/sub and keyspace notifications */
    struct conn *conns;        /* every open stream connection */
    struct conn *runq, *runq_tail; /* connections with input to run */
    size_t nrunq;
    struct conn *ranq;         /* ran in this pass, to be written */
    int corked;                /* tally_cork is in force: never sleep */
    unsigned cork_passes;      /* passes since it was */
    unsigned corked_others;    /* requests conn_cork_request() added since
                                  conn_run() last looked */
    uint64_t next_session;
    struct event *notify_ev;   /* tally_notify_fd() readable */
    struct event *tick_ev;     /* background snapshot work */
    struct event *house_ev;    /* once a second */
    struct event *sig_ev[2];   /* SIGTERM, SIGINT */
    struct event *hup_ev;      /* SIGHUP: reload */
    struct event *stop_ev;     /* activated to begin a graceful shutdown */
    int step_pending;          /* tally_step() said more work is pending */
    int stopping;
    int done;                  /* leave the event loop */
    int64_t stop_deadline_ms;  /* force close after this (monotonic) */
};

/* CONFIG GET/SET for the command layer (conffile.c): srv->config. */
void conffile_serve(struct server *srv);
/* SIGHUP: reread --config FILE and apply what may change at run time; a bad
 * file keeps every setting as it was and logs why. */
void conffile_reload(struct server *srv);

/* Begin a graceful shutdown (SIGTERM, or a client's SHUTDOWN).  Safe to call
 * from inside any callback: the work runs from the event loop. */
void srv_shutdown(struct server *srv);
/* Run a slice of background snapshot work if one is pending. */
void srv_step(struct server *srv);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t srv_now_ms(void);
int64_t srv_now_us(void);

#endif /* TALLY_SERVER_H */
