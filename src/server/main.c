/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main.c - tallyd's lifecycle: parse flags, open (and recover) the database,
 * start the event loop with its listeners, timers and signal handlers, say
 * "ready", and on SIGTERM/SIGINT (or a client's SHUTDOWN) stop accepting,
 * answer what is in flight once durable, sync and exit 0.
 *
 * All process-wide state is the one struct server created here and passed
 * down by pointer (server.h); nothing is global.  The event loop is the only
 * thread that runs commands; the engine syncs on its own thread and wakes the
 * loop through tally_notify_fd() (docs/threading.md).
 */
#include "server.h"
#include "version.h"
#include "script.h"

#include "events.h"
#include "pubsub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SRV_TICK_BUSY_MS 10     /* background snapshot work in progress */
#define SRV_TICK_IDLE_MS 100    /* looking for an automatic snapshot */
#define SRV_STEP_BUDGET 4096    /* counters per tally_step() slice: of a
                                   snapshot, and of active expiry's sample
                                   of the counters with a TTL (it asks for
                                   the busy tick while a quarter of a
                                   sample had expired) */
#define SRV_STOP_GRACE_MS 10000 /* clients that will not read, at shutdown */
#define SRV_SPIN_PAYS_US 10     /* a wait shorter than this is cheaper to
                                   poll through than to sleep through: a
                                   sleep and wake-up of a thread cost 3-4 us
                                   of CPU and 6-9 us of latency on the team
                                   machine, more on a virtual CPU that went
                                   idle (measured with an eventfd ping-pong
                                   between two threads) */

int64_t srv_now_ms(void)
{
    return srv_now_us() / 1000;
}

int64_t srv_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void srv_step(struct server *srv)
{
    if (!srv->db)
        return;
    int r = tally_step(srv->db, SRV_STEP_BUDGET);
    if (r < 0) {
        slog(&srv->log, SLOG_ERROR,
             "background snapshot failed (%s: %s); nothing is lost, the log "
             "stays authoritative; check free space in %s", tally_strerror(r),
             tally_errmsg(srv->db), srv->conf.dir);
        r = 0;
    }
    srv->step_pending = r;
}

void srv_shutdown(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    event_active(srv->stop_ev, EV_TIMEOUT, 0);
}

/* Tell the service manager state (notify.c); a failure is logged, once. */
static void tell_manager(struct server *srv, const char *state)
{
    if (notify_send(state) < 0)
        slog(&srv->log, SLOG_WARN, "cannot notify the service manager on "
             "$NOTIFY_SOCKET: %s; a Type=notify unit will time out",
             strerror(errno));
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    tell_manager(srv, "STOPPING=1");
    slog(&srv->log, SLOG_INFO, "shutting down: %llu clients connected; "
         "answering requests in flight, then syncing",
         (unsigned long long)srv->info.connected_clients);
    srv->stop_deadline_ms = srv_now_ms() + SRV_STOP_GRACE_MS;
    conn_listeners_close(srv);
    fronts_quiesce(srv);
    conn_drain_all(srv);
}

/* SIGHUP (systemctl reload): reread --config FILE (conffile.c).  Without a
 * handler the default action would end the process. */
static void on_hangup(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    char state[64];
    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%lld",
             (long long)srv_now_us());
    tell_manager(srv, state);
    slog(&srv->log, SLOG_INFO, "received SIGHUP");
    conffile_reload(srv);
    tls_reload(srv);
    tell_manager(srv, "READY=1");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    slog(&srv->log, SLOG_INFO, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_shutdown(srv);
}

/* While stopping: leave the loop once every reply is out. */
static void check_stopped(struct server *srv)
{
    if (srv->conns && srv_now_ms() >= srv->stop_deadline_ms) {
        slog(&srv->log, SLOG_WARN, "closing clients that did not read their "
             "replies within %d s", SRV_STOP_GRACE_MS / 1000);
        conn_close_all(srv);
    }
    if (srv->conns)
        return;
    if (srv->outbox.nheap && srv->db) {
        /* HTTP responses still wait on a sync that is under way; the engine
         * finishes it well within a tick, so block for it rather than
         * answer them with an error. */
        if (srv_now_ms() < srv->stop_deadline_ms)
            return;
        tally_wait(srv->db, tally_head(srv->db));
        outbox_release(srv);
    }
    /* Released responses, and 503s to requests that came in meanwhile, are
     * only in evhttp's buffers: it writes them on a later pass of the loop,
     * and freeing it first would close those connections unanswered. */
    if (fronts_unanswered(srv) && srv_now_ms() < srv->stop_deadline_ms)
        return;
    srv->done = 1;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    /* Called even when no snapshot is known to run: an automatic one starts
     * inside a change, and an idle tally_step() costs next to nothing. */
    srv_step(srv);
    if (srv->stopping)
        check_stopped(srv);
    int ms = srv->step_pending || srv->stopping ? SRV_TICK_BUSY_MS : SRV_TICK_IDLE_MS;
    struct timeval tv = {0, ms * 1000};
    if (event_add(srv->tick_ev, &tv) < 0)
        slog(&srv->log, SLOG_ERROR, "cannot re-arm the background timer");
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    /* A safety net for the notify fd: health changes (disk full, and full
     * again no more) are also noticed here. */
    outbox_release(srv);
}

/* Thousands of clients need thousands of descriptors. */
static void raise_nofile(struct server *srv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            slog(&srv->log, SLOG_WARN, "cannot raise the open file limit: %s",
                 strerror(errno));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < srv->conf.maxclients + 64)
        slog(&srv->log, SLOG_WARN, "open file limit %llu is below --maxclients "
             "%llu plus room for the data files; raise ulimit -n",
             (unsigned long long)rl.rlim_cur,
             (unsigned long long)srv->conf.maxclients);
}

/* tally_options.expired: an "expired" change event (nothing before the
 * command layer's hub exists: recovery). */
static void on_expired(void *arg, const void *key, size_t klen,
                       tally_ticket t)
{
    struct server *srv = arg;

    cmd_note_expired(&srv->cmd, key, klen, t);
}

static int open_db(struct server *srv)
{
    tally_options opts;
    tally_options_init(&opts);
    opts.sync = srv->conf.sync;
    opts.spin_us = srv->conf.spin ? SRV_SPIN_PAYS_US : 0;
    opts.log = slog_engine;
    opts.log_ctx = &srv->log;
    opts.expired = on_expired;
    opts.expired_ctx = srv;
    if (srv->conf.snapshot_min_log)
        opts.snapshot_min_log = srv->conf.snapshot_min_log;
    if (srv->conf.once_ttl_ms)
        opts.once_ttl_ms = srv->conf.once_ttl_ms;
    char err[TALLY_ERRMAX] = "";
    int rc = tally_open(srv->conf.dir, &opts, &srv->db, err);
    if (rc == TALLY_ELOCKED) {
        slog(&srv->log, SLOG_ERROR, "data directory %s is in use by another "
             "process (%s); stop it first or pick another --dir",
             srv->conf.dir, err);
        return -1;
    }
    if (rc < 0) {
        slog(&srv->log, SLOG_ERROR, "cannot open data directory %s: %s (%s)%s",
             srv->conf.dir, tally_strerror(rc), err,
             rc == TALLY_ECORRUPT ? "; inspect it with 'tally check', and "
             "'tally repair' cuts the damage at the cost of data" : "");
        return -1;
    }
    return 0;
}

static int setup_loop(struct server *srv)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return -1;
    /* Only the loop thread touches the base: skip libevent's locking. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    /* epoll_ctl once per descriptor and pass, with the pass's net change:
     * evhttp stops reading a connection while its request waits and turns
     * reading and writing on and off around each response, which without
     * the changelist was four epoll_ctl calls per HTTP request (two with
     * it, as http_reply.c writes released responses at once).  libevent's caveat, descriptors shared through dup(), does not
     * apply: tallyd never dups a socket. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    srv->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!srv->base) {
        slog(&srv->log, SLOG_ERROR, "cannot create the event loop");
        return -1;
    }
    struct event_base *b = srv->base;
    /* Edge-triggered, so the eventfd need not be read (outbox_on_notify).
     * Without the engine (a remote store) a timer that never fires stands
     * in, so the checks below stay one list. */
    srv->notify_ev = srv->db ? event_new(b, tally_notify_fd(srv->db),
                                         EV_READ | EV_PERSIST | EV_ET,
                                         outbox_on_notify, srv)
                             : evtimer_new(b, outbox_on_notify, srv);
    srv->tick_ev = evtimer_new(b, on_tick, srv);
    srv->house_ev = event_new(b, -1, EV_PERSIST, on_housekeeping, srv);
    srv->stop_ev = event_new(b, -1, 0, on_stop, srv);
    srv->sig_ev[0] = evsignal_new(b, SIGTERM, on_signal, srv);
    srv->sig_ev[1] = evsignal_new(b, SIGINT, on_signal, srv);
    srv->hup_ev = evsignal_new(b, SIGHUP, on_hangup, srv);
    struct timeval tick = {0, SRV_TICK_IDLE_MS * 1000}, second = {1, 0};
    if (!srv->notify_ev || !srv->tick_ev || !srv->house_ev || !srv->stop_ev ||
        !srv->sig_ev[0] || !srv->sig_ev[1] || !srv->hup_ev ||
        event_add(srv->notify_ev, NULL) < 0 || event_add(srv->tick_ev, &tick) < 0 ||
        event_add(srv->house_ev, &second) < 0 ||
        event_add(srv->sig_ev[0], NULL) < 0 || event_add(srv->sig_ev[1], NULL) < 0 ||
        event_add(srv->hup_ev, NULL) < 0) {
        slog(&srv->log, SLOG_ERROR, "cannot set up the event loop's events");
        return -1;
    }
    return 0;
}

/* With replies held for a sync under way and no request to run: poll for
 * durable (and for new input, with non-blocking passes) instead of sleeping
 * in epoll_wait, but only when the engine's measured model
 * (tally_sync_eta_us) says durable moves within SRV_SPIN_PAYS_US, and then
 * for at most that much past the expected time.  A longer wait is slept
 * through: polling it would cost more CPU than the wake-up it saves (an
 * fdatasync on a disk takes hundreds of microseconds), while a fast device
 * (fdatasync of a few microseconds) gets its replies without a wake-up.
 * Nothing is held when the server is idle, so it never polls then. */
static void poll_durable(struct server *srv)
{
    struct outbox *ob = &srv->outbox;
    if (!srv->db || !srv->conf.spin || srv->conf.sync != TALLY_SYNC_ALWAYS ||
        srv->stopping || !(ob->waiting || ob->nheap))
        return;
    unsigned eta = tally_sync_eta_us(srv->db);
    if (eta > SRV_SPIN_PAYS_US)
        return;
    int64_t end = srv_now_us() + eta + SRV_SPIN_PAYS_US;
    /* A request evhttp ran meanwhile has corked: the loop must uncork. */
    while ((ob->waiting || ob->nheap) && !srv->nrunq && !srv->corked &&
           !srv->done) {
        if (tally_durable(srv->db) > ob->durable ||
            tally_health(srv->db) != ob->health)
            outbox_release(srv);
        else if (event_base_loop(srv->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0)
            return;
        if (srv_now_us() >= end)
            return;
    }
}

static void say_ready(struct server *srv, int64_t t0)
{
    tally_stats st;
    memset(&st, 0, sizeof st);
    if (srv->db)
        tally_stats_get(srv->db, &st);
    char http[16] = "off", mc[16] = "off";
    if (srv->info.http_port)
        snprintf(http, sizeof http, "%d", srv->info.http_port);
    if (srv->info.memcache_port)
        snprintf(mc, sizeof mc, "%d", srv->info.memcache_port);
    if (!srv->db)
        slog(&srv->log, SLOG_INFO, "ready: counters on the %s store, --dir "
             "unused (started in %lld ms); %s resp port %d, http port %s, "
             "memcache port %s; fsync %s; pid %d", srv->store->ops->name,
             (long long)(srv_now_ms() - t0), srv->conf.bind, srv->info.port,
             http, mc, conf_sync_name(srv->conf.sync), srv->info.pid);
    else
        slog(&srv->log, SLOG_INFO,
             "ready: %llu counters, recovered %llu log records in %.1f ms "
             "(started in %lld ms); %s resp port %d, http port %s, memcache port "
             "%s; fsync %s; pid %d", (unsigned long long)st.counters,
             (unsigned long long)st.recovered_records, st.recovery_ns / 1e6,
             (long long)(srv_now_ms() - t0), srv->conf.bind, srv->info.port, http,
             mc, conf_sync_name(srv->conf.sync), srv->info.pid);
    const struct conf *c = &srv->conf;
    if (srv->tls)
        slog(&srv->log, SLOG_INFO, "TLS: resp port %d, https port %d, memcache "
             "port %d (0: off); client certificates: %s", c->tls_port,
             c->https_port, c->memcache_tls_port, conf_tls_auth_name(c->tls_auth));
    if (st.torn_bytes)
        slog(&srv->log, SLOG_WARN, "cut %llu bytes of a torn record off the "
             "log's tail (a write in flight when the process stopped)",
             (unsigned long long)st.torn_bytes);
    char state[160];
    snprintf(state, sizeof state, "READY=1\nMAINPID=%d\nSTATUS=ready: %llu "
             "counters, resp port %d", srv->info.pid,
             (unsigned long long)st.counters, srv->info.port);
    tell_manager(srv, state);
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

static void teardown(struct server *srv)
{
    conn_close_all(srv);
    conn_listeners_close(srv);
    fronts_stop(srv);
    /* After the connections: what is still in flight is answered to
     * sessions already gone, which frees what they left (replay.c). */
    stores_close(srv);
    pubsub_free(srv->pubsub);
    srv->pubsub = NULL;
    events_free(srv->events);
    srv->events = NULL;
    free_event(&srv->notify_ev);
    free_event(&srv->tick_ev);
    free_event(&srv->house_ev);
    free_event(&srv->stop_ev);
    free_event(&srv->sig_ev[0]);
    free_event(&srv->sig_ev[1]);
    free_event(&srv->hup_ev);
    if (srv->base)
        event_base_free(srv->base);
    outbox_free(&srv->outbox);
    tls_free(srv);
}

int main(int argc, char **argv)
{
    int64_t t0 = srv_now_ms();
    struct server *srv = xcalloc(1, sizeof *srv);
    char err[256] = "";
    int rc = conf_parse(&srv->conf, argc, argv, err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "tallyd: %s (see tallyd --help)\n", err);
        conf_free(&srv->conf);
        free(srv);
        return rc < 0 ? 2 : 0;
    }
    slog_init(&srv->log, srv->conf.log_level);
    /* Writes use MSG_NOSIGNAL, but libevent's and the engine's may not. */
    signal(SIGPIPE, SIG_IGN);
    /* The engine checks RLIMIT_FSIZE before growing a file, but the limit
     * can change between its check and the call (docs/durability.md). */
    signal(SIGXFSZ, SIG_IGN);
    raise_nofile(srv);

    int status = 1;
    /* A remote store leaves --dir alone (stores.c): srv->db stays NULL. */
    if (stores_need_engine(&srv->conf) && open_db(srv) < 0)
        goto out;
    srv->info.start_unix = time(NULL);
    srv->info.pid = (int)getpid();
    srv->info.maxclients = srv->conf.maxclients;
    srv->info.dir = srv->conf.dir;
    srv->info.version = TALLY_VERSION;
    srv->info.git_rev = version_git_rev;
    conffile_serve(srv);
    conn_clients_serve(srv);
    srv->limits = (struct proto_limits)PROTO_LIMITS_DEFAULT;
    srv->max_input = 2 * 1024 * 1024 + srv->limits.max_bulk;
    srv->outbox.durable = outbox_engine_durable(srv);
    srv->outbox.health = TALLY_OK;
    outbox_waiter_init(srv);
    store_engine_init(&srv->engine, srv->db);
    cmd_init(&srv->cmd, &srv->engine.base, srv->conf.password,
             srv->conf.passlen, &srv->info);
    cmd_script_set_limit(&srv->cmd, (unsigned)srv->conf.busy_ms);
    srv->cmd.allow_flush = srv->conf.allow_flush;
    srv->cmd.busy_poll = conn_busy_poll;
    srv->cmd.busy_arg = srv;
    srv->cmd.log = slog_engine;
    srv->cmd.log_ctx = &srv->log;
    srv->events = events_new(srv->conf.events_window);
    srv->pubsub = pubsub_new(srv->events);
    srv->cmd.events = srv->events;
    srv->cmd.pubsub = srv->pubsub;
    if (srv->conf.notify) /* checked by conf_parse */
        pubsub_set_notify(srv->pubsub, srv->conf.notify,
                          strlen(srv->conf.notify));

    if (setup_loop(srv) < 0)
        goto close_db;
    if (stores_open(srv, err) < 0) {
        slog(&srv->log, SLOG_ERROR, "%s", err);
        goto close_db;
    }
    srv->cmd.store = srv->store;
    if (tls_init(srv, err) < 0) {
        slog(&srv->log, SLOG_ERROR, "%s", err);
        goto close_db;
    }
    if (fronts_start(srv, err) < 0) {
        slog(&srv->log, SLOG_ERROR, "%s", err);
        goto close_db;
    }
    say_ready(srv, t0);
    while (!srv->done) {
        /* One iteration: wait for events (not if requests are still queued)
         * and run their callbacks; then run what the reads brought in.
         * EVLOOP_NONBLOCK alone would go on looping while any socket is
         * readable; with EVLOOP_ONCE it returns after one pass. */
        int flags = EVLOOP_ONCE |
                    (srv->nrunq || srv->corked ? EVLOOP_NONBLOCK : 0);
        if (event_base_loop(srv->base, flags) < 0) {
            slog(&srv->log, SLOG_ERROR, "the event loop failed");
            goto close_db;
        }
        conn_run(srv);
        /* Events whose ticket was durable when they were recorded (an
         * expiry found by a read or by tally_step) wait for no sync. */
        events_release(srv->events, srv->outbox.durable, 0);
        if (!srv->nrunq && !srv->corked)
            poll_durable(srv);
    }
    status = 0;
close_db:
    teardown(srv);
    cmd_fini(&srv->cmd);
    store_close(&srv->engine.base);
    rc = srv->db ? tally_close(srv->db) : 0;
    if (rc < 0) {
        slog(&srv->log, SLOG_ERROR, "final sync failed: %s (%s); changes "
             "acknowledged before were durable, later ones may be lost",
             tally_strerror(rc), srv->conf.dir);
        status = 1;
    } else if (status == 0) {
        slog(&srv->log, SLOG_INFO, "stopped: everything synced");
    }
out:
    conf_free(&srv->conf);
    slog_free(&srv->log);
    free(srv);
    return status;
}
