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

#include <event2/event.h>

#include "cmd.h"
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
/* tally_options.log: the engine's warnings and errors, from any thread. */
void slog_engine(void *l, int level, const char *msg);

/* ---- Flags (config.c) ---------------------------------------------------- */

struct conf {
    const char *dir;           /* data directory (borrowed from argv) */
    const char *bind;          /* address every listener binds */
    int port;                  /* RESP */
    int http_port;             /* 0: off */
    int memcache_port;         /* 0: off */
    tally_sync sync;
    char *password;            /* NULL: none; owned */
    size_t passlen;
    uint64_t maxclients;       /* stream connections at most */
    int log_level;             /* SLOG_* */
    int allow_flush;           /* memcached flush_all */
    uint64_t snapshot_min_log; /* 0: the engine's default */
    uint64_t once_ttl_ms;      /* idempotency id retention; 0: default */
    int spin;                  /* poll briefly around syncs (main.c) */
    char **cors_origins;       /* --http-cors-origin, lower case; owned */
    size_t ncors;
    char **allowed_hosts;      /* --http-allowed-host, lower case; owned */
    size_t nhosts;
};

/* Parse argv into *c.  Returns 0 to run, 1 if --help or --version was printed
 * (exit 0), or -1 with a message in err (256 bytes; exit 2).  On failure *c
 * holds only what conf_free() can release. */
int conf_parse(struct conf *c, int argc, char **argv, char *err);
void conf_free(struct conf *c);
const char *conf_sync_name(tally_sync s);

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
    const char *reject;        /* sent to a client over --maxclients */
    int fd;                    /* -1: closed */
    int port;                  /* as bound (useful when asked for 0) */
    struct event *ev;          /* readable: accept */
    struct event *resume;      /* timer restarting accepts after EMFILE */
};

struct conn {
    struct server *srv;
    struct listener *ln;
    int fd;
    struct event *rev, *wev;
    void *proto;               /* the front end's state for this stream */
    struct cmd_session session;
    char peer[64];
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
/* Write what may leave.  Returns 0, or -1 if the connection was closed (and
 * freed) meanwhile, after a write error or because it was closing. */
int conn_flush(struct conn *c);
/* Stop reading from every connection; close each once its replies are out. */
void conn_drain_all(struct server *srv);
/* Close every connection now (the shutdown deadline passed). */
void conn_close_all(struct server *srv);

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
/* Event callback for tally_notify_fd(); arg is the server. */
void outbox_on_notify(evutil_socket_t fd, short what, void *arg);
/* Fill srv->waiter (the struct proto_waiter given to the HTTP front end). */
void outbox_waiter_init(struct server *srv);
void outbox_free(struct outbox *ob);

/* ---- Front ends (fronts.c) ----------------------------------------------- */

struct http_front;
struct mc_front;

/* Start the memcached and HTTP front ends the flags ask for.  Returns 0 or -1
 * with err (256 bytes) set. */
int fronts_start(struct server *srv, char *err);
/* Shutdown begins: the HTTP front end stops accepting connections and
 * requests (the stream listeners are closed by conn_listeners_close). */
void fronts_quiesce(struct server *srv);
void fronts_stop(struct server *srv);

/* ---- The server (main.c) ------------------------------------------------- */

#define SRV_MAX_LISTENERS 2

struct server {
    struct conf conf;
    struct slog log;
    tally *db;
    struct cmd_ctx cmd;
    struct cmd_serverinfo info;
    struct proto_limits limits;
    size_t max_input;          /* raw buffered input per connection */
    struct event_base *base;
    struct listener listeners[SRV_MAX_LISTENERS];
    size_t nlisteners;
    struct http_front *http;
    struct mc_front *mc;
    struct proto_waiter waiter;
    struct outbox outbox;
    struct conn *conns;        /* every open stream connection */
    struct conn *runq, *runq_tail; /* connections with input to run */
    size_t nrunq;
    struct conn *ranq;         /* ran in this pass, to be written */
    int corked;                /* tally_cork is in force: never sleep */
    unsigned cork_passes;      /* passes since it was */
    uint64_t next_session;
    struct event *notify_ev;   /* tally_notify_fd() readable */
    struct event *tick_ev;     /* background snapshot work */
    struct event *house_ev;    /* once a second */
    struct event *sig_ev[2];   /* SIGTERM, SIGINT */
    struct event *stop_ev;     /* activated to begin a graceful shutdown */
    int step_pending;          /* tally_step() said more work is pending */
    int stopping;
    int done;                  /* leave the event loop */
    int64_t stop_deadline_ms;  /* force close after this (monotonic) */
};

/* Begin a graceful shutdown (SIGTERM, or a client's SHUTDOWN).  Safe to call
 * from inside any callback: the work runs from the event loop. */
void srv_shutdown(struct server *srv);
/* Run a slice of background snapshot work if one is pending. */
void srv_step(struct server *srv);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t srv_now_ms(void);
int64_t srv_now_us(void);

#endif /* TALLY_SERVER_H */
