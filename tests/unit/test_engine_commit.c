/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_commit.c - the commit path's batching (tally_cork and
 * tally_uncork, include/tally.h): a corked change is not written or synced
 * until uncork, and everything corked together shares one write and one
 * fdatasync; a cork never makes a blocking call or tally_wait wait; under
 * everysec and no, uncork writes the batch on the caller's thread, moves
 * durable at once without signalling the notify fd, and the once-a-second
 * fdatasync still happens; a failed write in uncork stops the write path as
 * one on the sync thread does.  tally_uncork_inline writes and fdatasyncs
 * the batch on the caller's thread under always too, leaves it to a busy
 * sync thread, and stops the write path when its fdatasync fails.  pwrite
 * is replaced at the libc boundary (and fdatasync by sync_gate.h) so a case
 * can make the log's writes and syncs fail or wait.
 * With tally_options.spin_us, the sync thread's poll for the next batch
 * takes a hand-over at once, is bounded, and happens only after small
 * batches.
 */
#include "engine_testutil.h"
#include "sync_gate.h"

#include <limits.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>

static int write_failing; /* [atomic] the next pwrite calls fail with EIO */

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (__atomic_load_n(&write_failing, __ATOMIC_ACQUIRE)) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

static int teardown(void **state)
{
    __atomic_store_n(&write_failing, 0, __ATOMIC_RELEASE);
    sync_gate(0, 0); /* a failed case may leave the syncs held */
    return tt_fx_teardown(state);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Fail unless the process uses at most max_ms of CPU while it sleeps ms. */
static void idles(long ms, long max_ms, const char *after)
{
    struct timespec c0, c1;

    assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0), 0);
    sleep_ms(ms);
    assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1), 0);
    long used = (c1.tv_sec - c0.tv_sec) * 1000 +
                (c1.tv_nsec - c0.tv_nsec) / 1000000;
    if (used > max_ms)
        fail_msg("the process used %ld ms of CPU in %ld ms %s", used, ms,
                 after);
}

static tally *open_sync(const char *dir, tally_sync sync)
{
    tally_options o;

    tt_options(&o, NULL);
    o.sync = sync;
    return tt_open(dir, &o);
}

/* Is the notify fd readable within ms?  Drains it if so. */
static int notified(tally *db, int ms)
{
    struct pollfd p = {tally_notify_fd(db), POLLIN, 0};
    uint64_t v;

    if (poll(&p, 1, ms) != 1)
        return 0;
    assert_int_equal(read(p.fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    return 1;
}

static uint64_t syncs(tally *db)
{
    tally_stats st;

    tally_stats_get(db, &st);
    return st.syncs;
}

/* Of syncs(), the ones tally_uncork_inline ran on its caller's thread. */
static uint64_t inline_syncs(tally *db)
{
    tally_stats st;

    tally_stats_get(db, &st);
    return st.inline_syncs;
}

static tally_ticket incr_async(tally *db, const char *key, int64_t delta)
{
    tally_ticket t = 0;
    int rc = tally_incr(db, key, strlen(key), delta, NULL, &t);

    if (rc != TALLY_OK)
        fail_msg("tally_incr(%s) = %d (%s)", key, rc, tally_strerror(rc));
    return t;
}

/* A thread in tally_wait, so a case can see whether it returns. */
struct waiter {
    tally *db;
    tally_ticket t;
    int rc;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;

    w->rc = tally_wait(w->db, w->t);
    return NULL;
}

/* Join th within 10 s, failing the case (not hanging) if it is stuck. */
static void join_within(pthread_t th)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    if (pthread_timedjoin_np(th, NULL, &ts) != 0)
        fail_msg("a waiter was still waiting after 10 s: the cork held it");
}

/* ---- always ------------------------------------------------------------- */

static void corked_change_is_not_synced_until_uncork(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    uint64_t before = syncs(db);

    tally_cork(db);
    tally_ticket t = incr_async(db, "a", 1);
    /* Unless the cork holds it, the sync thread commits this in well under
     * 200 ms. */
    sleep_ms(200);
    assert_true(tally_durable(db) < t);
    assert_int_equal(syncs(db), before);
    assert_false(notified(db, 0));
    assert_int_equal(tally_uncork(db), 0); /* always: the sync thread's job */
    assert_true(notified(db, 10000));
    assert_true(tally_durable(db) >= t);
    assert_int_equal(syncs(db), before + 1);
    tt_close(db);
}

static void one_pass_shares_one_fdatasync(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    tally_stats st0, st1;
    tally_ticket t = 0;
    char key[16];

    tally_stats_get(db, &st0);
    tally_cork(db);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        t = incr_async(db, key, i);
    }
    assert_int_equal(tally_uncork(db), 0);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    tally_stats_get(db, &st1);
    assert_int_equal(st1.syncs - st0.syncs, 1);
    assert_int_equal(st1.batch_sum - st0.batch_sum, 100);
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "k99"), 99);
    tt_close(db);
}

static void blocking_change_while_corked_does_not_wait(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);

    tally_cork(db);
    tally_ticket t = incr_async(db, "a", 1);
    /* NULL ticket: returns once durable, which includes the change before. */
    alarm(10);
    assert_int_equal(tt_incr(db, "b", 2), 2);
    alarm(0);
    assert_true(tally_durable(db) >= t);
    assert_true(tally_durable(db) == tally_head(db));
    assert_int_equal(tally_uncork(db), 0);
    tt_close(db);
}

static void wait_from_another_thread_while_corked(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    pthread_t th;

    tally_cork(db);
    struct waiter w = {db, incr_async(db, "a", 1), 1};
    assert_int_equal(pthread_create(&th, NULL, wait_main, &w), 0);
    join_within(th);
    assert_int_equal(w.rc, TALLY_OK);
    assert_true(tally_durable(db) >= w.t);
    assert_int_equal(tally_uncork(db), 0);
    tt_close(db);
}

static void snapshot_while_corked_goes_ahead(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);

    tally_cork(db);
    incr_async(db, "a", 5);
    alarm(10);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    alarm(0);
    incr_async(db, "a", 1);
    assert_int_equal(tally_uncork(db), 0);
    assert_int_equal(tally_wait(db, tally_head(db)), TALLY_OK);
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 6);
    tt_close(db);
}

static void close_while_corked_syncs_everything(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);

    tally_cork(db);
    incr_async(db, "a", 7);
    tt_close(db);
    db = tt_open(TT_DIR(state), NULL);
    assert_int_equal(tt_get(db, "a"), 7);
    tt_close(db);
}

static void uncork_with_nothing_queued(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);

    tally_cork(db);
    assert_int_equal(tally_uncork(db), 0);
    assert_int_equal(tally_uncork(db), 0); /* not corked: harmless */
    tt_close(db);
}

/* ---- tally_uncork_inline ------------------------------------------------- */

static void always_uncork_inline_syncs_on_the_callers_thread(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    uint64_t before;
    tally_ticket t;

    while (notified(db, 0))
        ;
    before = syncs(db);
    tally_cork(db);
    incr_async(db, "a", 3);
    t = incr_async(db, "b", 4);
    assert_int_equal(tally_uncork_inline(db), 1);
    assert_true(tally_durable(db) >= t); /* no wait */
    assert_false(notified(db, 0));       /* the caller knows already */
    assert_int_equal(syncs(db), before + 1);
    assert_int_equal(inline_syncs(db), 1);
    assert_int_equal(sync_gate_tid(), (pid_t)syscall(SYS_gettid));
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 3);
    assert_int_equal(tt_get(db, "b"), 4);
    tt_close(db);
}

static void uncork_inline_leaves_a_busy_token_to_the_sync_thread(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    tally_ticket t0, t;

    /* The sync thread takes this change and waits in its fdatasync, with
     * the write token. */
    sync_gate(1, 0);
    t0 = incr_async(db, "a", 1);
    for (int i = 0; i < 1000 && sync_gate_waiters() == 0; i++)
        sleep_ms(10);
    assert_int_equal(sync_gate_waiters(), 1);
    tally_cork(db);
    t = incr_async(db, "a", 1);
    assert_int_equal(tally_uncork_inline(db), 0); /* handed over */
    assert_int_equal(inline_syncs(db), 0);
    assert_true(tally_durable(db) < t0);
    sync_gate(0, 0);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    assert_true(notified(db, 10000));
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 2);
    tt_close(db);
}

static void uncork_inline_fdatasync_failure_stops_the_write_path(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    tally_ticket t0, t;

    tally_cork(db);
    t0 = incr_async(db, "a", 1);
    assert_int_equal(tally_uncork_inline(db), 1);
    while (notified(db, 0))
        ;
    tally_cork(db);
    t = incr_async(db, "a", 1);
    sync_gate(0, 1);
    assert_int_equal(tally_uncork_inline(db), TALLY_EFAILED);
    sync_gate(0, 0);
    assert_int_equal(tally_health(db), TALLY_EFAILED);
    assert_true(notified(db, 0)); /* a failure is always signalled */
    assert_true(tally_durable(db) >= t0);
    assert_true(tally_durable(db) < t); /* written, but never synced */
    assert_int_equal(tally_wait(db, t), TALLY_EFAILED);
    assert_int_equal(tally_incr(db, "a", 1, 1, NULL, &t), TALLY_EFAILED);
    assert_non_null(strstr(tally_errmsg(db), "fdatasync"));
    assert_int_equal(tally_close(db), TALLY_EFAILED);
    db = tt_open(TT_DIR(state), NULL);
    /* The refused change was written before its fdatasync failed, so the
     * file may hold it: at least the acknowledged one is there. */
    assert_true(tt_get(db, "a") >= 1);
    tt_close(db);
}

static void everysec_uncork_inline_only_writes(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);
    uint64_t before = syncs(db);
    tally_ticket t;

    /* Let the tick for this write pass first, as everysec_uncork_writes_...
     * does, so that none is due while the syncs are held below. */
    tt_incr(db, "warm", 1);
    for (int i = 0; i < 300 && syncs(db) == before; i++)
        sleep_ms(10);
    assert_int_equal(syncs(db), before + 1);
    sleep_ms(100);
    /* An fdatasync on this thread would wait here, and the alarm end it. */
    sync_gate(1, 0);
    tally_cork(db);
    t = incr_async(db, "a", 2);
    alarm(10);
    assert_int_equal(tally_uncork_inline(db), 1);
    alarm(0);
    assert_true(tally_durable(db) >= t);
    assert_int_equal(inline_syncs(db), 0); /* written, not synced */
    sync_gate(0, 0);
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 2);
    tt_close(db);
}

/* ---- everysec and no ------------------------------------------------------ */

static void everysec_uncork_writes_and_publishes_at_once(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);
    uint64_t before;
    tally_ticket t;

    /* Let the tick for this write pass first: while the sync thread
     * fdatasyncs it holds the write token, and uncork would (rightly) leave
     * the batch to it. */
    before = syncs(db);
    tt_incr(db, "warm", 1);
    for (int i = 0; i < 300 && syncs(db) == before; i++)
        sleep_ms(10);
    assert_int_equal(syncs(db), before + 1);
    sleep_ms(100); /* and let it give the token back */
    while (notified(db, 0))
        ;
    before = syncs(db);
    tally_cork(db);
    t = incr_async(db, "a", 3);
    sleep_ms(50);
    assert_true(tally_durable(db) < t); /* corked: not even written */
    assert_int_equal(tally_uncork(db), 1);
    assert_true(tally_durable(db) >= t); /* no wait, no thread wake-up */
    assert_false(notified(db, 0));       /* the caller knows already */
    /* The sync thread still fdatasyncs what was written within ~1 s. */
    for (int i = 0; i < 300 && syncs(db) == before; i++)
        sleep_ms(10);
    assert_int_equal(syncs(db), before + 1);
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 3);
    tt_close(db);
}

static void no_policy_uncork_writes_at_once(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_NO);
    char name[TT_NAME], path[PATH_MAX];
    tt_bytes log = {0};
    uint64_t start = 0;

    tally_cork(db);
    tally_ticket h0 = tally_head(db);
    tally_ticket t = incr_async(db, "a", 4);
    assert_int_equal(tally_uncork(db), 1);
    assert_true(tally_durable(db) >= t);
    /* It is in the file (the OS's), not only in this process: a valid
     * frame of t - h0 bytes at offset 32 + h0 - start of the only log,
     * holding one record. */
    assert_true(tt_newest(TT_DIR(state), "log-", name, &start));
    tt_path(path, TT_DIR(state), name);
    assert_int_equal(tt_read_file(path, &log), 0);
    assert_int_equal(tt_next_frame(log.p, log.len, TT_HDR + (h0 - start)),
                     (long)(t - h0));
    assert_int_equal(tt_next_record(log.p, log.len,
                                    TT_HDR + (h0 - start) + TT_FRAME),
                     (long)(t - h0 - TT_FRAME));
    tt_free(&log);
    tt_close(db);
}

static void everysec_uncork_write_failure_stops_the_write_path(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);
    tally_ticket t0, t;

    tally_cork(db);
    t0 = incr_async(db, "a", 1);
    assert_int_equal(tally_uncork(db), 1);
    tally_cork(db);
    t = incr_async(db, "a", 1);
    __atomic_store_n(&write_failing, 1, __ATOMIC_RELEASE);
    assert_int_equal(tally_uncork(db), TALLY_EFAILED);
    __atomic_store_n(&write_failing, 0, __ATOMIC_RELEASE);
    assert_int_equal(tally_health(db), TALLY_EFAILED);
    assert_true(notified(db, 0)); /* a failure is always signalled */
    assert_true(tally_durable(db) >= t0);
    assert_true(tally_durable(db) < t);
    assert_int_equal(tally_wait(db, t), TALLY_EFAILED);
    assert_int_equal(tally_incr(db, "a", 1, 1, NULL, &t), TALLY_EFAILED);
    assert_non_null(strstr(tally_errmsg(db), "write of the log"));
    assert_int_equal(tally_close(db), TALLY_EFAILED);
    db = tt_open(TT_DIR(state), NULL);
    assert_int_equal(tt_get(db, "a"), 1); /* the durable change only */
    tt_close(db);
}

/* Regression: the everysec deadline was computed on CLOCK_MONOTONIC but
 * waited for on a CLOCK_REALTIME condition variable, so the timed wait
 * returned at once and the sync thread spun on a core for as long as
 * written data waited for its fdatasync. */
static void everysec_sync_thread_sleeps_until_its_tick(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);

    tt_incr(db, "a", 1); /* written, its fdatasync up to ~1 s away */
    idles(500, 100, "of idling");
    tt_close(db);
}

/* ---- spinning (spin_us) -------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static tally *open_spinning(const char *dir, unsigned spin_us)
{
    tally_options o;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_ALWAYS;
    o.spin_us = spin_us;
    return tt_open(dir, &o);
}

/* A spinning sync thread takes the next hand-over at once: with a 3 s spin
 * a change made during the spin is durable long before the spin ends (a
 * spin that missed hand-overs would sleep only after it). */
static void spinning_sync_thread_takes_the_next_batch(void **state)
{
    tally *db = open_spinning(TT_DIR(state), 3000000);
    tally_ticket t;

    assert_int_equal(tally_sync_estimate_us(db), 0);
    tt_incr(db, "a", 1); /* a batch of one: the sync thread spins now */
    assert_true(tally_sync_estimate_us(db) > 0);
    for (int i = 0; i < 5; i++) {
        long t0 = now_ms();
        tally_cork(db);
        t = incr_async(db, "a", 1);
        assert_int_equal(tally_uncork(db), 0);
        while (tally_durable(db) < t)
            assert_true(notified(db, 10000));
        if (now_ms() - t0 > 1500)
            fail_msg("a hand-over during the spin waited %ld ms",
                     now_ms() - t0);
    }
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "a"), 6);
    tt_close(db);
}

/* The spin is bounded: after one small batch and a 200 ms spin the handle
 * goes idle; in 1 s the process uses about 200 ms of CPU, not 1 s. */
static void spin_is_bounded(void **state)
{
    tally *db = open_spinning(TT_DIR(state), 200000);

    tt_incr(db, "a", 1);
    idles(1000, 600, "after one change with a 200 ms spin");
    tt_close(db);
}

/* No spin after a big batch (busy clients need the cores): 100 changes in
 * one pass, then the handle is idle at once despite a 1 s spin_us. */
static void no_spin_after_a_big_batch(void **state)
{
    tally *db = open_spinning(TT_DIR(state), 1000000);
    tally_ticket t = 0;
    char key[16];

    tt_incr(db, "warm", 1);
    sleep_ms(1100); /* its spin is over */
    tally_cork(db);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        t = incr_async(db, key, 1);
    }
    assert_int_equal(tally_uncork(db), 0);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    idles(500, 100, "after a batch of 100 changes");
    tt_close(db);
}

/* No spin when the hand-overs come late: a client sending a change every
 * 150 ms, each awaited, with a 100 ms spin_us.  The sync thread used to
 * spin after every one of those small batches (up to 100 ms of CPU each:
 * 450 ms in all measured on the team machine); once one hand-over came
 * later than spin_us after the publish before it, it sleeps at once. */
static void no_spin_when_hand_overs_come_late(void **state)
{
    tally *db = open_spinning(TT_DIR(state), 100000);
    struct timespec c0, c1;
    long used;

    tt_incr(db, "a", 1);
    assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0), 0);
    for (int i = 0; i < 10; i++) {
        sleep_ms(150);
        tt_incr(db, "a", 1);
    }
    assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1), 0);
    used = (c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000;
    if (used > 300)
        fail_msg("the process used %ld ms of CPU for 10 changes 150 ms apart "
                 "with a 100 ms spin", used);
    assert_int_equal(tt_get(db, "a"), 11);
    tt_close(db);
}

/* tally_sync_eta_us: nothing on its way, UINT_MAX; once a hand-over was
 * measured, an estimate that counts down from the hand-over. */
static void sync_eta_counts_down_from_the_hand_over(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_ALWAYS);
    tally_ticket t;
    unsigned eta;

    assert_int_equal(tally_sync_eta_us(db), UINT_MAX);
    tt_incr(db, "a", 1);
    assert_int_equal(tally_sync_eta_us(db), UINT_MAX); /* nothing in flight */
    tally_cork(db);
    t = incr_async(db, "a", 1);
    assert_int_equal(tally_uncork(db), 0);
    eta = tally_sync_eta_us(db);
    /* In flight or already durable (then nothing is on its way). */
    assert_true(eta != UINT_MAX || tally_durable(db) >= t);
    assert_int_equal(tally_wait(db, t), TALLY_OK);
    assert_int_equal(tally_sync_eta_us(db), UINT_MAX);
    tt_close(db);
}

/* Many passes of corked changes under everysec, with a thread in
 * tally_wait, the once-a-second tick and snapshots (rotation, job) in the
 * middle: the write token passes between the threads without a record lost
 * or reordered (TSan checks the hand-over). */
struct chaser {
    tally *db;
    int stop; /* [atomic] */
    int rc;
};

static void *chase_main(void *arg)
{
    struct chaser *c = arg;

    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE) && c->rc == TALLY_OK)
        c->rc = tally_wait(c->db, tally_head(c->db));
    return NULL;
}

static void everysec_passes_with_ticks_and_snapshots(void **state)
{
    tally *db = open_sync(TT_DIR(state), TALLY_SYNC_EVERYSEC);
    struct chaser c = {db, 0, TALLY_OK};
    int64_t want[50] = {0};
    struct timespec t0, now;
    pthread_t th;
    char key[16];
    int pass = 0, wrote = 0;

    assert_int_equal(pthread_create(&th, NULL, chase_main, &c), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        tally_cork(db);
        for (int i = 0; i < 10; i++) {
            int k = (pass * 10 + i) % 50;
            snprintf(key, sizeof(key), "k%d", k);
            incr_async(db, key, k + 1);
            want[k] += k + 1;
        }
        if (pass % 500 == 250) {
            int sr = tally_snapshot_begin(db);
            assert_true(sr == TALLY_OK || sr == TALLY_EBUSY);
        }
        assert_true(tally_step(db, 64) >= 0);
        int rc = tally_uncork(db);
        assert_true(rc == 0 || rc == 1);
        wrote += rc;
        pass++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < 2 || pass < 2000);
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(tally_wait(db, tally_head(db)), TALLY_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(c.rc, TALLY_OK);
    assert_true(wrote > 0); /* the loop thread did write some batches */
    assert_true(syncs(db) >= 2); /* ticks (and rotations) did sync */
    while (tally_step(db, 4096) == 1)
        sleep_ms(1);
    tally_stats st;
    tally_stats_get(db, &st);
    assert_true(st.snapshots >= 1);
    db = tt_reopen(db, TT_DIR(state));
    for (int k = 0; k < 50; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        assert_int_equal(tt_get(db, key), want[k]);
    }
    tt_close(db);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tt_fx_setup, teardown)
    const struct CMUnitTest tests[] = {
        T(corked_change_is_not_synced_until_uncork),
        T(one_pass_shares_one_fdatasync),
        T(blocking_change_while_corked_does_not_wait),
        T(wait_from_another_thread_while_corked),
        T(snapshot_while_corked_goes_ahead),
        T(close_while_corked_syncs_everything),
        T(uncork_with_nothing_queued),
        T(always_uncork_inline_syncs_on_the_callers_thread),
        T(uncork_inline_leaves_a_busy_token_to_the_sync_thread),
        T(uncork_inline_fdatasync_failure_stops_the_write_path),
        T(everysec_uncork_inline_only_writes),
        T(everysec_uncork_writes_and_publishes_at_once),
        T(no_policy_uncork_writes_at_once),
        T(everysec_uncork_write_failure_stops_the_write_path),
        T(everysec_sync_thread_sleeps_until_its_tick),
        T(everysec_passes_with_ticks_and_snapshots),
        T(spinning_sync_thread_takes_the_next_batch),
        T(spin_is_bounded),
        T(no_spin_after_a_big_batch),
        T(no_spin_when_hand_overs_come_late),
        T(sync_eta_counts_down_from_the_hand_over),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
