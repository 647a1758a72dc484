/*
 * test_engine_faults.c - the engine under resource faults: a full disk
 * (emulated with RLIMIT_FSIZE in a forked child, which works without
 * privileges; SIGXFSZ is ignored so the write fails with EFBIG instead of
 * killing the process) and a data directory already locked by this process
 * or by another.  Each case runs in a fresh temporary directory.  An fsync
 * that fails cannot be injected here without a hook in the engine or a
 * device mapper, so it is not tested (see the report that came with this
 * file); crashes are in test_engine_crash.c.
 */
#include "engine_testutil.h"

#include <signal.h>
#include <sys/resource.h>
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
    char why[400];     /* empty, or what went wrong in the child */
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

#define CHILD_CHECK(r, cond, ...)                                          \
    do {                                                                   \
        if (!(cond)) {                                                     \
            snprintf((r)->why, sizeof((r)->why), __VA_ARGS__);             \
            return;                                                        \
        }                                                                  \
    } while (0)

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
    rc = tally_set(db, "new", 3, 1, &t);
    CHILD_CHECK(r, rc == TALLY_ENOSPC, "a new key under ENOSPC: %d", rc);
    rc = tally_get(db, "new", 3, &v, NULL);
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
    assert_false(tt_exists(db, "new"));
    assert_int_equal(tally_count(db), 2);
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    tt_close(db);
    db = tt_open(dir, NULL);
    assert_int_equal(tally_get(db, key, BIGKEY, &v, NULL), TALLY_OK);
    assert_int_equal(v, r.final);
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
        T(second_open_in_this_process_is_refused),
        T(open_while_another_process_holds_it_is_refused),
        T(lock_of_a_killed_process_is_released),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
