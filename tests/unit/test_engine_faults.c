/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_faults.c - the engine under resource faults: a full disk
 * (emulated with RLIMIT_FSIZE in a forked child, which works without
 * privileges; SIGXFSZ is ignored so the write fails with EFBIG instead of
 * killing the process); an fsync that fails with EIO, injected at the libc
 * boundary (this program defines fdatasync and fsync, and the engine, linked
 * in statically, calls these instead of libc's: the engine sees exactly what
 * a failing device would give it, and needs no test hook); and a data
 * directory already locked by this process or by another.  Each case runs in
 * a fresh temporary directory; crashes are in test_engine_crash.c.
 */
#include "engine_testutil.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* ---- Disk full ----------------------------------------------------------
 * The child fills the log with changes to one 1 KiB key (so the engine's
 * reserved space runs out after a few thousand records) under a file size
 * limit just above what is already on disk, and reports to the parent. */

#define BIGKEY 1024
#define HEADROOM (256 << 10) /* bytes allowed beyond the largest file */

typedef struct enospc_report {
    int64_t acked;     /* value of the big key acknowledged last */
    int64_t final;     /* its value when the child closed */
    uint64_t accepted; /* changes accepted before ENOSPC */
    int snapshot_rc;   /* tally_snapshot under the limit */
    char why[TALLY_ERRMAX + 64]; /* empty, or what went wrong in the child:
                                    room for a whole engine error message */
} enospc_report;

static void big_key(uint8_t key[BIGKEY])
{
    for (int i = 0; i < BIGKEY; i++)
        key[i] = (uint8_t)('a' + i % 26);
}

static off_t largest_file(const char *dir)
{
    char names[TT_FILES][TT_NAME], path[PATH_MAX];
    int n = tt_list(dir, "", "", names, TT_FILES);
    off_t max = 0;
    for (int i = 0; i < n; i++) {
        tt_path(path, dir, names[i]);
        off_t sz = tt_file_size(path);
        if (sz > max)
            max = sz;
    }
    return max;
}

static void enospc_child(const char *dir, enospc_report *r)
{
    uint8_t key[BIGKEY];
    tally *db = NULL;
    tally_options o;
    char err[TALLY_ERRMAX] = "";
    int64_t v = 0;
    big_key(key);
    tt_options(&o, NULL);
    int rc = tally_open(dir, &o, &db, err);
    CHILD_CHECK(r, rc == TALLY_OK, "open: %d: %s", rc, err);
    rc = tally_set(db, "other", 5, 7, NULL);
    CHILD_CHECK(r, rc == TALLY_OK, "set other: %d", rc);

    struct rlimit lim;
    signal(SIGXFSZ, SIG_IGN);
    CHILD_CHECK(r, getrlimit(RLIMIT_FSIZE, &lim) == 0, "getrlimit");
    struct rlimit low = {(rlim_t)(largest_file(dir) + HEADROOM), lim.rlim_max};
    CHILD_CHECK(r, setrlimit(RLIMIT_FSIZE, &low) == 0, "setrlimit");

    /* Changes in flight, waited for in groups, until one is refused. */
    tally_ticket t = 0, last = 0;
    uint64_t limit_ops = 2 * (uint64_t)low.rlim_cur / BIGKEY + 100000;
    for (;;) {
        rc = tally_incr(db, key, BIGKEY, 1, &v, &t);
        if (rc != TALLY_OK)
            break;
        r->accepted++;
        last = t;
        if (r->accepted % 64 == 0) {
            rc = tally_wait(db, last);
            CHILD_CHECK(r, rc == TALLY_OK, "wait after %" PRIu64 " changes: %d (%s)",
                        r->accepted, rc, tally_errmsg(db));
            r->acked = v;
        }
        CHILD_CHECK(r, r->accepted < limit_ops,
                    "no TALLY_ENOSPC after %" PRIu64 " changes under a %llu byte "
                    "file size limit", r->accepted, (unsigned long long)low.rlim_cur);
    }
    CHILD_CHECK(r, rc == TALLY_ENOSPC, "refused with %d (%s), want TALLY_ENOSPC: %s",
                rc, tally_strerror(rc), tally_errmsg(db));
    CHILD_CHECK(r, tally_health(db) == TALLY_ENOSPC, "health %d", tally_health(db));
    rc = tally_wait(db, last); /* everything accepted still becomes durable */
    CHILD_CHECK(r, rc == TALLY_OK, "wait after ENOSPC: %d (%s)", rc, tally_errmsg(db));
    r->acked = (int64_t)r->accepted;

    /* The refused change is not visible; reads and other keys go on; every
     * other change is refused too, with nothing changed. */
    rc = tally_get(db, key, BIGKEY, &v, NULL);
    CHILD_CHECK(r, rc == TALLY_OK && v == r->acked,
                "after ENOSPC the key reads %d/%" PRId64 ", want %" PRId64, rc, v,
                r->acked);
    rc = tally_get(db, "other", 5, &v, NULL);
    CHILD_CHECK(r, rc == TALLY_OK && v == 7, "other reads %d/%" PRId64, rc, v);
    /* (A key as big as the counter's: a small change may still fit in the
     * slack the log keeps for a frame header and the clean-close mark.) */
    uint8_t newkey[BIGKEY];
    memset(newkey, 'n', sizeof(newkey));
    rc = tally_set(db, newkey, BIGKEY, 1, &t);
    CHILD_CHECK(r, rc == TALLY_ENOSPC, "a new key under ENOSPC: %d", rc);
    rc = tally_get(db, newkey, BIGKEY, &v, NULL);
    CHILD_CHECK(r, rc == TALLY_NOTFOUND, "the refused new key reads %d", rc);
    rc = tally_incr(db, key, BIGKEY, 1, &v, NULL);
    CHILD_CHECK(r, rc == TALLY_ENOSPC, "blocking incr under ENOSPC: %d", rc);
    CHILD_CHECK(r, tally_count(db) == 2, "count %" PRIu64, tally_count(db));

    /* A snapshot is small enough to fit under a file size limit, but the
     * fresh log it starts may not be: either way it must end cleanly and
     * change no value. */
    r->snapshot_rc = tally_snapshot(db);
    CHILD_CHECK(r, r->snapshot_rc == TALLY_OK || r->snapshot_rc == TALLY_ENOSPC ||
                       r->snapshot_rc == TALLY_EIO,
                "snapshot under the limit: %d", r->snapshot_rc);
    rc = tally_get(db, key, BIGKEY, &v, NULL);
    CHILD_CHECK(r, rc == TALLY_OK && v == r->acked, "after the snapshot: %d", rc);

    /* Room again: changes are accepted again (the engine may need a few
     * tries to notice). */
    CHILD_CHECK(r, setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit back");
    for (int i = 0; i < 100; i++) {
        rc = tally_incr(db, key, BIGKEY, 1, &v, NULL);
        if (rc != TALLY_ENOSPC)
            break;
        usleep(10000);
    }
    CHILD_CHECK(r, rc == TALLY_OK && v == r->acked + 1,
                "after the limit was lifted: %d/%" PRId64, rc, v);
    CHILD_CHECK(r, tally_health(db) == TALLY_OK, "health stays %d", tally_health(db));
    r->final = v;
    rc = tally_close(db);
    CHILD_CHECK(r, rc == TALLY_OK, "close: %d", rc);
}

static void enospc_refuses_the_change_and_keeps_what_was_acknowledged(void **state)
{
    const char *dir = TT_DIR(state);
    int fds[2];
    enospc_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        enospc_child(dir, &r);
        _exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = 0, n;
    while (got < (ssize_t)sizeof(r) &&
           (n = read(fds[0], (char *)&r + got, sizeof(r) - (size_t)got)) > 0)
        got += n;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got, sizeof(r));
    if (r.why[0])
        fail_msg("disk full (child, %" PRIu64 " changes accepted): %s", r.accepted,
                 r.why);
    print_message("enospc: %" PRIu64 " changes of a 1 KiB key accepted under "
                  "the limit; snapshot under it: %d (%s)\n",
                  r.accepted, r.snapshot_rc, tally_strerror(r.snapshot_rc));

    /* Without the limit: everything acknowledged is there, nothing more. */
    uint8_t key[BIGKEY];
    int64_t v;
    big_key(key);
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tally_get(db, key, BIGKEY, &v, NULL), TALLY_OK);
    assert_int_equal(v, r.final);
    assert_int_equal(tt_get(db, "other"), 7);
    uint8_t newkey[BIGKEY];
    memset(newkey, 'n', sizeof(newkey));
    assert_int_equal(tally_get(db, newkey, BIGKEY, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tally_count(db), 2);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_close(db);
    db = tt_open(dir, NULL);
    assert_int_equal(tally_get(db, key, BIGKEY, &v, NULL), TALLY_OK);
    assert_int_equal(v, r.final);
    tt_close(db);
}

/* ---- A failing fsync ----------------------------------------------------
 * While fail_syncs is set, every fdatasync and fsync in this process fails
 * with EIO (the engine's sync thread calls them; so does nothing else in the
 * test while it is set).  Otherwise they go straight to the kernel. */
static int fail_syncs;   /* [atomic] */
static int failed_syncs; /* [atomic] calls refused so far */
/* Finer: fail the fdatasync of a log file other than the first one
 * (log-0000000000000000.tly), and hold the fsync of a snapshot's temp file
 * until released, counting the calls held. */
static int fail_newer_logs; /* [atomic] */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_snap, held_snap; /* [hold_mu] */
static int held_nice;            /* [hold_mu] the holding thread's nice */
/* And hold, or fail, the fdatasync of the first log (log_presync's). */
static int hold_log0, held_log0; /* [hold_mu] */
static int fail_log0;            /* [atomic] */

/* Does fd name a file whose name starts with prefix and ends with suffix? */
static int fd_is(int fd, const char *prefix, const char *suffix)
{
    char link[64], path[PATH_MAX];
    const char *base;
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    if ((n = readlink(link, path, sizeof(path) - 1)) < 0)
        return 0;
    path[n] = 0;
    base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    return strncmp(base, prefix, strlen(prefix)) == 0 &&
           strlen(base) >= strlen(suffix) &&
           strcmp(base + strlen(base) - strlen(suffix), suffix) == 0;
}

static int sync_or_fail(long nr, int fd)
{
    if (__atomic_load_n(&fail_syncs, __ATOMIC_ACQUIRE) ||
        (nr == SYS_fdatasync &&
         __atomic_load_n(&fail_newer_logs, __ATOMIC_ACQUIRE) &&
         fd_is(fd, "log-", ".tly") &&
         !fd_is(fd, "log-0000000000000000", ".tly"))) {
        __atomic_fetch_add(&failed_syncs, 1, __ATOMIC_RELAXED);
        errno = EIO;
        return -1;
    }
    if (nr == SYS_fdatasync && fd_is(fd, "log-0000000000000000", ".tly")) {
        if (__atomic_load_n(&fail_log0, __ATOMIC_ACQUIRE)) {
            __atomic_fetch_add(&failed_syncs, 1, __ATOMIC_RELAXED);
            errno = EIO;
            return -1;
        }
        pthread_mutex_lock(&hold_mu);
        if (hold_log0) {
            held_log0++;
            held_nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
            pthread_cond_broadcast(&hold_cv);
        }
        while (hold_log0)
            pthread_cond_wait(&hold_cv, &hold_mu);
        pthread_mutex_unlock(&hold_mu);
    }
    if (nr == SYS_fsync && fd_is(fd, "snap-", ".tmp")) {
        pthread_mutex_lock(&hold_mu);
        held_snap++;
        held_nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
        pthread_cond_broadcast(&hold_cv);
        while (hold_snap)
            pthread_cond_wait(&hold_cv, &hold_mu);
        pthread_mutex_unlock(&hold_mu);
    }
    return (int)syscall(nr, fd);
}

int fdatasync(int fd)
{
    return sync_or_fail(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    return sync_or_fail(SYS_fsync, fd);
}

/* A case that sets fail_syncs ends with it cleared, even when it fails. */
static int fsync_teardown(void **state)
{
    __atomic_store_n(&fail_syncs, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fail_newer_logs, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fail_log0, 0, __ATOMIC_RELEASE);
    pthread_mutex_lock(&hold_mu);
    hold_snap = 0;
    hold_log0 = 0;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    return tt_fx_teardown(state);
}

/* Under TALLY_SYNC_ALWAYS, a failed fsync stops the write path: the change
 * it was for fails and every later one is refused with TALLY_EFAILED, reads of
 * durable values go on, a value whose last change never became durable reads
 * TALLY_ENOTDURABLE, and after a reopen everything acknowledged is there. */
static void failed_fsync_stops_writes_and_keeps_what_was_acknowledged(void **state)
{
    const char *dir = TT_DIR(state);
    tt_log log = TT_LOG_INIT;
    tally_options o;
    int64_t v = -1;
    tt_options(&o, &log);
    tally *db = tt_open(dir, &o);
    tt_set(db, "durable", 1);
    tt_set(db, "a", 1);
    tally_ticket before = tally_durable(db), t = 0;

    /* A change in flight when the fsync fails: accepted, never durable. */
    __atomic_store_n(&fail_syncs, 1, __ATOMIC_RELEASE);
    assert_int_equal(tally_incr(db, "inflight", 8, 5, &v, &t), TALLY_OK);
    int rc = tally_wait(db, t);
    if (rc != TALLY_EFAILED)
        fail_msg("wait while fsync fails = %d (%s), want TALLY_EFAILED "
                 "(%d fsyncs refused)", rc, tally_strerror(rc),
                 __atomic_load_n(&failed_syncs, __ATOMIC_RELAXED));
    assert_true(__atomic_load_n(&failed_syncs, __ATOMIC_RELAXED) > 0);
    assert_int_equal(tally_health(db), TALLY_EFAILED);
    assert_int_equal(tally_incr(db, "a", 1, 1, &v, NULL), TALLY_EFAILED);
    assert_true(tally_durable(db) >= before);
    assert_true(tally_durable(db) < t);
    assert_true(strlen(tally_errmsg(db)) > 0);
    assert_true(log.errors >= 1); /* said once, where it happened */

    /* The notify fd tells an event loop that the write path failed. */
    struct pollfd pfd = {tally_notify_fd(db), POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 1000), 1);

    /* Every change is refused, nothing changes; durable reads go on. */
    assert_int_equal(tally_set(db, "b", 1, 1, NULL), TALLY_EFAILED);
    assert_int_equal(tally_set(db, "b", 1, 1, &t), TALLY_EFAILED);
    assert_int_equal(tally_del(db, "durable", 7, NULL), TALLY_EFAILED);
    assert_int_equal(tally_get(db, "b", 1, &v, NULL), TALLY_NOTFOUND);
    assert_int_equal(tt_get(db, "durable"), 1);
    assert_int_equal(tt_get(db, "a"), 1);
    assert_int_equal(tally_get(db, "inflight", 8, &v, NULL), TALLY_ENOTDURABLE);
    assert_int_equal(tally_get(db, "inflight", 8, &v, &t), TALLY_ENOTDURABLE);
    assert_int_equal(tally_snapshot(db), TALLY_EFAILED);
    rc = tally_close(db);
    __atomic_store_n(&fail_syncs, 0, __ATOMIC_RELEASE);
    assert_true(rc < 0); /* the final sync could not succeed either */

    /* The acknowledged values are there, the refused changes are not; the
     * change in flight was never acknowledged, so it may be either way. */
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "durable"), 1);
    assert_int_equal(tt_get(db, "a"), 1);
    assert_false(tt_exists(db, "b"));
    assert_true(!tt_exists(db, "inflight") || tt_get(db, "inflight") == 5);
    assert_int_equal(tt_incr(db, "durable", 1), 2);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "durable"), 2);
    tt_close(db);
}

static int held_nice_now(void)
{
    int nice;

    pthread_mutex_lock(&hold_mu);
    nice = held_nice;
    pthread_mutex_unlock(&hold_mu);
    return nice;
}

/* The nice value of the engine's background threads, seen from the
 * thread that calls it (log.c job_yield_cpu). */
static int nicer_than_here(void)
{
    int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));

    return base + 10 > 19 ? 19 : base + 10;
}

/* A snapshot's last steps (the fsync of its file, hundreds of MB at
 * millions of counters, the rename, the old log's removal) run beside the
 * commits, not in front of them: while the fsync of the snapshot's file is
 * held, changes still become durable (under ALWAYS: each one fdatasynced).
 * Before they had a thread of their own, the sync thread did them between
 * two batches, and every reply waited that long. */
static void snapshot_fsync_does_not_hold_up_commits(void **state)
{
    const char *dir = TT_DIR(state);
    char names[4][TT_NAME];
    tally_ticket t = 0;
    int64_t v;
    int rc;

    tally *db = tt_open(dir, NULL);
    tt_fill(db, "k", 5000);
    pthread_mutex_lock(&hold_mu);
    hold_snap = 1;
    held_snap = 0;
    pthread_mutex_unlock(&hold_mu);
    assert_int_equal(tally_snapshot_begin(db), TALLY_OK);
    /* Walk until the job holds in the snapshot's fsync. */
    for (;;) {
        rc = tally_step(db, 4096);
        assert_true(rc >= 0);
        pthread_mutex_lock(&hold_mu);
        int held = held_snap;
        pthread_mutex_unlock(&hold_mu);
        if (held)
            break;
        assert_int_equal(rc, 1);
        usleep(1000);
    }
    /* A wait that never ends fails the test instead of hanging it. */
    alarm(20);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(tally_incr(db, "during", 6, 1, &v, &t), TALLY_OK);
        assert_int_equal(tally_wait(db, t), TALLY_OK);
    }
    alarm(0);
    /* The job's thread runs nicer than this one, which the loop is. */
    assert_int_equal(held_nice_now(), nicer_than_here());
    assert_int_equal(tally_step(db, 4096), 1); /* still finishing */
    assert_int_equal(tt_list(dir, "snap-", ".tly", names, 4), 0);
    pthread_mutex_lock(&hold_mu);
    hold_snap = 0;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    while ((rc = tally_step(db, 4096)) == 1)
        usleep(1000);
    assert_int_equal(rc, 0);
    assert_int_equal(tt_list(dir, "snap-", ".tly", names, 4), 1);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "during"), 50);
    assert_int_equal(tt_get(db, "k4999"), 4999);
    tt_close(db);
}

/* Under NO the snapshot's own thread syncs the log up to the end of its
 * walk; when that fdatasync fails, the write path stops as it does when
 * the sync thread's fails, the snapshot is not published, and what was
 * acknowledged is there after a reopen. */
static void failed_fsync_of_a_snapshot_job_stops_writes(void **state)
{
    const char *dir = TT_DIR(state);
    tt_log log = TT_LOG_INIT;
    char names[4][TT_NAME];
    tally_options o;
    int64_t v;

    tt_options(&o, &log);
    o.sync = TALLY_SYNC_NO;
    tally *db = tt_open(dir, &o);
    tt_fill(db, "k", 1000);
    __atomic_store_n(&failed_syncs, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fail_newer_logs, 1, __ATOMIC_RELEASE);
    assert_int_equal(tally_snapshot(db), TALLY_EFAILED);
    assert_true(__atomic_load_n(&failed_syncs, __ATOMIC_RELAXED) > 0);
    /* The rotation to the second log went through; the job's sync failed. */
    assert_int_equal(tt_list(dir, "log-", ".tly", names, 4), 2);
    assert_int_equal(tt_list(dir, "snap-", ".tly", names, 4), 0);
    assert_int_equal(tt_list(dir, "snap-", ".tmp", names, 4), 0);
    assert_int_equal(tally_health(db), TALLY_EFAILED);
    assert_int_equal(tally_incr(db, "k1", 2, 1, &v, NULL), TALLY_EFAILED);
    assert_non_null(strstr(tally_errmsg(db), "fdatasync"));
    assert_true(log.errors >= 1);
    struct pollfd pfd = {tally_notify_fd(db), POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 1000), 1);
    (void)tally_close(db);
    __atomic_store_n(&fail_newer_logs, 0, __ATOMIC_RELEASE);
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "k999"), 999);
    assert_int_equal(tt_get(db, "k1"), 1);
    tt_close(db);
}

static int log0_held(void)
{
    int held;

    pthread_mutex_lock(&hold_mu);
    held = held_log0;
    pthread_mutex_unlock(&hold_mu);
    return held;
}

/* Changes under NO until an automatic snapshot is due (snapshot_min_log
 * is 64 KiB) and the fdatasync of the first log holds: returns how many. */
static unsigned change_until_log0_held(tally *db)
{
    unsigned n = 0;
    int64_t v;

    while (!log0_held()) {
        assert_int_equal(tally_incr(db, "n", 1, 1, &v, NULL), TALLY_OK);
        if (++n > 200000)
            fail_msg("no fdatasync of the first log after %u changes", n);
    }
    return n;
}

/* Under NO the log since the last snapshot is unsynced, and an automatic
 * snapshot's rotation must sync it: that fdatasync runs on a thread of
 * its own before the rotation is asked (log_presync), so the commits
 * behind the sync thread do not wait on it.  Held here, 50 changes are
 * still acknowledged meanwhile (on a rotation that synced on the sync
 * thread, the first waits forever and the alarm fails the test); the
 * rotation comes once it is released. */
static void old_log_is_synced_off_the_sync_thread(void **state)
{
    const char *dir = TT_DIR(state);
    char names[4][TT_NAME];
    tally_options o;
    tally_ticket t = 0;
    unsigned n;
    int64_t v;
    int rc;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    o.snapshot_min_log = 64u << 10;
    tally *db = tt_open(dir, &o);
    pthread_mutex_lock(&hold_mu);
    hold_log0 = 1;
    held_log0 = 0;
    pthread_mutex_unlock(&hold_mu);
    n = change_until_log0_held(db);
    assert_int_equal(held_nice_now(), nicer_than_here());
    alarm(20);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(tally_incr(db, "during", 6, 1, &v, &t), TALLY_OK);
        assert_int_equal(tally_wait(db, t), TALLY_OK);
    }
    alarm(0);
    assert_int_equal(tt_list(dir, "log-", ".tly", names, 4), 1);
    pthread_mutex_lock(&hold_mu);
    hold_log0 = 0;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
    /* A change after the thread ends rotates; the walk and the job
     * follow. */
    for (int i = 0; tt_list(dir, "snap-", ".tly", names, 4) == 0; i++) {
        if (i == 5000)
            fail_msg("no snapshot 5 s after the fdatasync was released");
        assert_int_equal(tally_incr(db, "n", 1, 1, &v, NULL), TALLY_OK);
        n++;
        rc = tally_step(db, 4096);
        assert_true(rc >= 0);
        usleep(1000);
    }
    while ((rc = tally_step(db, 4096)) == 1) /* the old log's removal */
        usleep(1000);
    assert_int_equal(rc, 0);
    assert_int_equal(tt_list(dir, "log-", ".tly", names, 4), 1);
    assert_true(strncmp(names[0], "log-0000000000000000", 20) != 0);
    db = tt_reopen(db, dir);
    assert_int_equal(tt_get(db, "during"), 50);
    assert_int_equal(tt_get(db, "n"), (int64_t)n);
    tt_close(db);
}

/* That fdatasync failing stops the write path as the sync thread's does:
 * the error is reported once, and the rotation's own fdatasync might not
 * see it.  No rotation follows; what was acknowledged is kept. */
static void failed_fsync_before_a_rotation_stops_writes(void **state)
{
    const char *dir = TT_DIR(state);
    tt_log log = TT_LOG_INIT;
    char names[4][TT_NAME];
    tally_options o;
    unsigned n = 0;
    int64_t v;
    int rc;

    tt_options(&o, &log);
    o.sync = TALLY_SYNC_NO;
    o.snapshot_min_log = 64u << 10;
    tally *db = tt_open(dir, &o);
    tt_set(db, "kept", 7);
    __atomic_store_n(&failed_syncs, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fail_log0, 1, __ATOMIC_RELEASE);
    while ((rc = tally_incr(db, "n", 1, 1, &v, NULL)) == TALLY_OK)
        if (++n > 200000)
            fail_msg("no failed fdatasync after %u changes", n);
    assert_int_equal(rc, TALLY_EFAILED);
    assert_true(__atomic_load_n(&failed_syncs, __ATOMIC_RELAXED) > 0);
    assert_int_equal(tally_health(db), TALLY_EFAILED);
    assert_non_null(strstr(tally_errmsg(db), "fdatasync"));
    assert_int_equal(tt_list(dir, "log-", ".tly", names, 4), 1);
    assert_int_equal(tt_list(dir, "snap-", ".tmp", names, 4), 0);
    (void)tally_close(db);
    /* Read after the close, which joins the presync's thread: it logs
     * after it moves health, which is what the refusal above saw. */
    assert_true(log.errors >= 1);
    __atomic_store_n(&fail_log0, 0, __ATOMIC_RELEASE);
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "kept"), 7);
    /* Under NO the changes acknowledged before the failure were written,
     * not synced; the process lived, so the page cache has them all.  The
     * refused change may be there too: it was in flight. */
    assert_in_range(tt_get(db, "n"), n, n + 1);
    tt_close(db);
}

/* ---- The lock ----------------------------------------------------------- */

static void open_locked(const char *dir)
{
    tally *db = NULL;
    char err[TALLY_ERRMAX] = "";
    int rc = tally_open(dir, NULL, &db, err);
    if (rc != TALLY_ELOCKED) {
        if (db)
            tally_close(db);
        fail_msg("second open = %d (%s), want TALLY_ELOCKED: %s", rc,
                 tally_strerror(rc), err);
    }
    assert_null(db);
    assert_true(err[0] != 0);
    assert_int_equal(tally_check(dir, err), TALLY_ELOCKED);
    assert_true(err[0] != 0);
    assert_int_equal(tally_repair(dir, err), TALLY_ELOCKED);
}

static void second_open_in_this_process_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    tally *db = tt_open(dir, NULL);
    tt_set(db, "k", 1);
    open_locked(dir);
    open_locked(dir); /* a refused open must not have released the lock */
    assert_int_equal(tt_get(db, "k"), 1);
    tt_close(db);
    db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "k"), 1);
    tt_close(db);
}

/* A child opens the directory and holds it until told to close (or until
 * it is killed). */
static pid_t start_holder(const char *dir, int *tell, int *hear)
{
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c = 0, err[TALLY_ERRMAX];
        tally *db = NULL;
        close(up[0]);
        close(down[1]);
        if (tally_open(dir, NULL, &db, err) != TALLY_OK ||
            tally_set(db, "held", 4, 1, NULL) != TALLY_OK)
            _exit(2);
        if (write(up[1], "o", 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(3);
        _exit(tally_close(db) == TALLY_OK ? 0 : 4);
    }
    close(up[1]);
    close(down[0]);
    char c;
    assert_int_equal(read(up[0], &c, 1), 1);
    *tell = down[1];
    *hear = up[0];
    return pid;
}

static void open_while_another_process_holds_it_is_refused(void **state)
{
    const char *dir = TT_DIR(state);
    int tell, hear, status;
    pid_t pid = start_holder(dir, &tell, &hear);
    open_locked(dir);
    assert_int_equal(write(tell, "c", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(tell);
    close(hear);
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "held"), 1);
    tt_close(db);
}

static void lock_of_a_killed_process_is_released(void **state)
{
    const char *dir = TT_DIR(state);
    int tell, hear, status;
    pid_t pid = start_holder(dir, &tell, &hear);
    open_locked(dir);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(tell);
    close(hear);
    /* The LOCK file stays behind; it must not keep anyone out. */
    tally *db = tt_open(dir, NULL);
    assert_int_equal(tt_get(db, "held"), 1);
    tt_close(db);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tt_fx_setup, tt_fx_teardown)
    const struct CMUnitTest tests[] = {
        T(enospc_refuses_the_change_and_keeps_what_was_acknowledged),
        cmocka_unit_test_setup_teardown(
            failed_fsync_stops_writes_and_keeps_what_was_acknowledged,
            tt_fx_setup, fsync_teardown),
        cmocka_unit_test_setup_teardown(
            snapshot_fsync_does_not_hold_up_commits, tt_fx_setup,
            fsync_teardown),
        cmocka_unit_test_setup_teardown(
            failed_fsync_of_a_snapshot_job_stops_writes, tt_fx_setup,
            fsync_teardown),
        cmocka_unit_test_setup_teardown(
            old_log_is_synced_off_the_sync_thread, tt_fx_setup,
            fsync_teardown),
        cmocka_unit_test_setup_teardown(
            failed_fsync_before_a_rotation_stops_writes, tt_fx_setup,
            fsync_teardown),
        T(second_open_in_this_process_is_refused),
        T(open_while_another_process_holds_it_is_refused),
        T(lock_of_a_killed_process_is_released),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
