/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_crash.c - nothing acknowledged is lost, nothing is counted
 * twice, whenever the process dies.  A forked child opens a fresh data
 * directory and increments a few counters as fast as it can through the
 * asynchronous API (many changes in flight, group commit), plus atomic
 * two-key batches; before each burst it tells the parent, through a pipe,
 * what it is about to attempt, and after each burst what is durable.  The
 * parent SIGKILLs it at a random moment, recovers the directory itself and
 * checks every counter against those two bounds.  Deltas are positive and
 * derived from (seed, key, index), so a value names exactly which prefix of
 * the increments it holds.  An iteration kills 1 to 4 children in turn on the
 * same directory, each going on from where recovery left the last, so later
 * kills land in directories with a history (older snapshots, several log
 * files) and sometimes during recovery itself.
 *
 * TALLY_CRASH_KILLS sets the number of kills (default 200); each uses its own
 * seed, printed on failure; TALLY_CRASH_SEED=<seed> replays one.  Some
 * iterations make snapshots frequent so kills also land while a snapshot is
 * written and the log rotates; the sync policy varies too (a SIGKILL loses
 * nothing the OS was given, so "durable" holds under every policy).
 */
#include "engine_testutil.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define NKEYS 4          /* incremented counters k0..k3 */
#define PAIR NKEYS       /* index of the m1/m2 pair set by tally_mset */
#define NTRACK (NKEYS + 1)
#define BURST 16         /* changes a burst at most */
#define WINDOW 256       /* changes in flight at most */

/* Child to parent; 16 bytes, written whole (well under PIPE_BUF, so a
 * message is never torn by the kill). */
enum { MSG_READY = 1, MSG_ATTEMPT, MSG_DURABLE, MSG_FAIL };
typedef struct msg {
    uint32_t type;
    uint32_t key; /* 0..NKEYS-1, PAIR; for MSG_FAIL the line of the failure */
    uint64_t n;   /* changes to key attempted / durable; MSG_FAIL: the code */
} msg;

/* What one round (one child, one kill) does, all derived from the
 * iteration's seed and the round. */
typedef struct plan {
    uint64_t seed;
    int round;
    tally_sync sync;
    uint64_t snapshot_min_log; /* small in some iterations */
    int explicit_snapshots;    /* the child also starts snapshots itself */
    int kill_early;            /* count the delay from fork, not from open */
    unsigned delay_us;
    uint64_t start[NTRACK];    /* changes per key already durable */
} plan;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* The delta of the n-th increment (n >= 1) of key k: 1..1000. */
static int64_t delta_of(uint64_t seed, int k, uint64_t n)
{
    uint64_t s = seed ^ ((uint64_t)k << 56) ^ (n * 0xD1B54A32D192ED03u);
    return (int64_t)(splitmix(&s) % 1000) + 1;
}

static void make_plan(plan *p, uint64_t seed, int round)
{
    uint64_t r = seed ^ ((uint64_t)round * 0x9E3779B97F4A7C15u);
    p->seed = seed;
    p->round = round;
    unsigned pick = (unsigned)(splitmix(&r) % 10);
    p->sync = pick < 6 ? TALLY_SYNC_ALWAYS
              : pick < 8 ? TALLY_SYNC_EVERYSEC : TALLY_SYNC_NO;
    static const uint64_t small[] = {256, 1024, 4096, 32768};
    p->snapshot_min_log = splitmix(&r) % 2 ? small[splitmix(&r) % 4] : UINT64_MAX;
    p->explicit_snapshots = splitmix(&r) % 4 == 0;
    p->kill_early = splitmix(&r) % 10 == 0;
    p->delay_us = 2000 + (unsigned)(splitmix(&r) % 48000);
}

static void keyname(char out[8], int k)
{
    snprintf(out, 8, "k%d", k & 7);
}

/* The sum of the first n deltas of key k. */
static int64_t prefix_sum(uint64_t seed, int k, uint64_t n)
{
    int64_t s = 0;
    for (uint64_t m = 1; m <= n; m++)
        s += delta_of(seed, k, m);
    return s;
}

/* ---- The child --------------------------------------------------------- */

static void send_msgs(int fd, const msg *m, size_t n)
{
    size_t len = n * sizeof(msg);
    if (n && write(fd, m, len) != (ssize_t)len)
        _exit(4); /* the parent went away */
}

#define CHILD_FAIL(fd, code)                                                 \
    do {                                                                     \
        msg f_ = {MSG_FAIL, __LINE__, (uint64_t)(int64_t)(code)};            \
        send_msgs(fd, &f_, 1);                                               \
        _exit(3);                                                            \
    } while (0)

typedef struct inflight {
    tally_ticket t;
    int key;
    uint64_t n;
} inflight;

/* Runs until killed.  Every result is checked here too (the value an
 * increment returns must be the sum of its prefix), so a wrong in-memory
 * answer is reported as MSG_FAIL rather than blamed on recovery. */
static void child_run(const char *dir, const plan *p, int fd)
{
    tally_options o;
    tally *db = NULL;
    char err[TALLY_ERRMAX];
    tally_options_init(&o);
    o.sync = p->sync;
    o.snapshot_min_log = p->snapshot_min_log;
    int rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_OK)
        CHILD_FAIL(fd, rc);
    msg ready = {MSG_READY, 0, 0};
    send_msgs(fd, &ready, 1);

    uint64_t rng = p->seed ^ 0xC0FFEE ^ (uint64_t)p->round, attempted[NTRACK],
             acked[NTRACK], told[NTRACK];
    int64_t sum[NKEYS];
    memcpy(attempted, p->start, sizeof(attempted));
    memcpy(acked, p->start, sizeof(acked));
    memcpy(told, p->start, sizeof(told));
    for (int k = 0; k < NKEYS; k++)
        sum[k] = prefix_sum(p->seed, k, p->start[k]);
    static inflight q[WINDOW];
    size_t qhead = 0, qlen = 0;
    for (uint64_t burst = 0;; burst++) {
        int ops[BURST], nops = 1 + (int)(splitmix(&rng) % BURST);
        uint64_t want[NTRACK];
        memcpy(want, attempted, sizeof(want));
        for (int i = 0; i < nops; i++) {
            ops[i] = (int)(splitmix(&rng) % (NKEYS + 1));
            want[ops[i]]++;
        }
        msg m[NTRACK];
        size_t nm = 0;
        for (int k = 0; k < NTRACK; k++)
            if (want[k] != attempted[k])
                m[nm++] = (msg){MSG_ATTEMPT, (uint32_t)k, want[k]};
        send_msgs(fd, m, nm);

        for (int i = 0; i < nops; i++) {
            int k = ops[i];
            uint64_t n = ++attempted[k];
            tally_ticket t = 0;
            if (k < NKEYS) {
                char name[8];
                int64_t v = 0, d = delta_of(p->seed, k, n);
                keyname(name, k);
                rc = tally_incr(db, name, strlen(name), d, &v, &t);
                sum[k] += d;
                if (rc != TALLY_OK)
                    CHILD_FAIL(fd, rc);
                if (v != sum[k])
                    CHILD_FAIL(fd, v);
            } else {
                const void *keys[2] = {"m1", "m2"};
                size_t klens[2] = {2, 2};
                int64_t vals[2] = {(int64_t)n, (int64_t)n};
                rc = tally_mset(db, 2, keys, klens, vals, &t);
                if (rc != TALLY_OK)
                    CHILD_FAIL(fd, rc);
            }
            if (qlen == WINDOW) { /* wait for the oldest to make room */
                rc = tally_wait(db, q[qhead].t);
                if (rc != TALLY_OK)
                    CHILD_FAIL(fd, rc);
            }
            tally_ticket durable = tally_durable(db);
            while (qlen > 0 && q[qhead].t <= durable) {
                acked[q[qhead].key] = q[qhead].n;
                qhead = (qhead + 1) % WINDOW;
                qlen--;
            }
            q[(qhead + qlen++) % WINDOW] = (inflight){t, k, n};
        }

        nm = 0;
        for (int k = 0; k < NTRACK; k++)
            if (acked[k] != told[k]) {
                m[nm++] = (msg){MSG_DURABLE, (uint32_t)k, acked[k]};
                told[k] = acked[k];
            }
        send_msgs(fd, m, nm);

        if (p->explicit_snapshots && burst % 64 == 0) {
            rc = tally_snapshot_begin(db);
            if (rc != TALLY_OK && rc != TALLY_EBUSY)
                CHILD_FAIL(fd, rc);
        }
        if (p->explicit_snapshots && (rc = tally_step(db, 32)) < 0)
            CHILD_FAIL(fd, rc);
    }
}

/* ---- The parent -------------------------------------------------------- */

typedef struct bounds {
    uint64_t attempted[NTRACK];
    uint64_t acked[NTRACK];
    int ready;
    int failed_line;       /* the child's own check failed, at this line */
    int64_t failed_code;
} bounds;

static void take(bounds *b, const msg *m)
{
    if (m->type == MSG_READY) {
        b->ready = 1;
    } else if (m->type == MSG_FAIL) {
        b->failed_line = (int)m->key;
        b->failed_code = (int64_t)m->n;
    } else if (m->key < NTRACK) {
        uint64_t *slot = m->type == MSG_ATTEMPT ? b->attempted : b->acked;
        if (m->n > slot[m->key])
            slot[m->key] = m->n;
    }
}

/* Read what is there (until timeout_ms passes; -1: until EOF).  Returns 0
 * at EOF, 1 otherwise. */
static int drain(int fd, bounds *b, int timeout_ms, msg *part, size_t *plen)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0)
        return 1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0)
        return 0;
    assert_true(n > 0 || errno == EINTR);
    for (ssize_t i = 0; i < n; i++) {
        ((char *)part)[(*plen)++] = buf[i];
        if (*plen == sizeof(msg)) {
            take(b, part);
            *plen = 0;
        }
    }
    return 1;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct totals {
    int kills;
    uint64_t acked;        /* changes acknowledged before the kills */
    int torn;              /* recoveries that cut a torn tail */
    int with_snapshot;     /* recoveries that started from a snapshot */
    uint64_t recovery_ns;  /* summed */
} totals;

/* Does value equal the sum of the first m deltas of key k, for some m in
 * [lo, hi]?  (The sums grow strictly, so at most one m fits.) */
static int is_prefix_sum(uint64_t seed, int k, int64_t value, uint64_t lo,
                         uint64_t hi, uint64_t *m_out)
{
    int64_t s = 0;
    for (uint64_t m = 0; m <= hi; m++) {
        if (m > 0)
            s += delta_of(seed, k, m);
        if (m >= lo && s == value) {
            *m_out = m;
            return 1;
        }
        if (s > value)
            return 0;
    }
    return 0;
}

/* Fail the test naming the seed that replays it. */
static void crash_fail(const plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void crash_fail(const plan *p, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    fail_msg("crash seed %" PRIu64 ", round %d (replay: TALLY_CRASH_SEED=%"
             PRIu64 "): %s", p->seed, p->round, p->seed, why);
    abort(); /* fail_msg does not return; this tells the compiler */
}

/* Recover dir and hold every counter to the bounds; then one more change
 * per counter must survive a clean reopen.  Sets next[] to the changes per
 * key now durable, for the next round. */
static void verify(const char *dir, const plan *p, const bounds *b, totals *tot,
                   uint64_t next[NTRACK])
{
    tally_options o;
    tally *db = NULL;
    tally_stats st;
    char err[TALLY_ERRMAX] = "";
    tally_options_init(&o);
    o.snapshot_min_log = UINT64_MAX;
    int rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_OK)
        crash_fail(p, "recovery failed: %d (%s): %s", rc, tally_strerror(rc), err);
    tally_stats_get(db, &st);
    tot->torn += st.torn_bytes > 0;
    tot->with_snapshot += st.snapshot_bytes > 0;
    tot->recovery_ns += st.recovery_ns;

    int64_t after[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        char name[8];
        int64_t v = 0;
        uint64_t m;
        keyname(name, k);
        rc = tally_get(db, name, strlen(name), &v, NULL);
        if (rc == TALLY_NOTFOUND)
            v = 0;
        else if (rc != TALLY_OK)
            crash_fail(p, "get %s: %d", name, rc);
        if (!is_prefix_sum(p->seed, k, v, b->acked[k], b->attempted[k], &m)) {
            uint64_t held;
            int prefix = is_prefix_sum(p->seed, k, v, 0, UINT64_MAX / 2, &held);
            crash_fail(p, "%s = %" PRId64 ": %s%" PRIu64 " increments, but %"
                       PRIu64 " were acknowledged and %" PRIu64 " attempted",
                       name, v, prefix ? "the sum of " : "not the sum of any "
                       "prefix of the ", prefix ? held : 0, b->acked[k],
                       b->attempted[k]);
        }
        tot->acked += b->acked[k] - p->start[k];
        next[k] = m + 1;
        after[k] = v + delta_of(p->seed, k, m + 1);
        assert_int_equal(tally_incr(db, name, strlen(name),
                                    delta_of(p->seed, k, m + 1), NULL, NULL),
                         TALLY_OK);
    }
    int64_t m1 = 0, m2 = 0;
    int r1 = tally_get(db, "m1", 2, &m1, NULL), r2 = tally_get(db, "m2", 2, &m2, NULL);
    if (r1 != r2 || m1 != m2)
        crash_fail(p, "mset torn: m1 %d/%" PRId64 ", m2 %d/%" PRId64, r1, m1, r2, m2);
    if ((uint64_t)m1 < b->acked[PAIR] || (uint64_t)m1 > b->attempted[PAIR])
        crash_fail(p, "m1 = %" PRId64 " outside %" PRIu64 "..%" PRIu64, m1,
                   b->acked[PAIR], b->attempted[PAIR]);
    tot->acked += b->acked[PAIR] - p->start[PAIR];
    next[PAIR] = (uint64_t)m1;
    rc = tally_close(db);
    if (rc != TALLY_OK)
        crash_fail(p, "close after recovery: %d", rc);

    db = NULL;
    rc = tally_open(dir, &o, &db, err);
    if (rc != TALLY_OK)
        crash_fail(p, "second open failed: %d: %s", rc, err);
    for (int k = 0; k < NKEYS; k++) {
        char name[8];
        int64_t v = 0;
        keyname(name, k);
        assert_int_equal(tally_get(db, name, strlen(name), &v, NULL), TALLY_OK);
        if (v != after[k])
            crash_fail(p, "%s = %" PRId64 " after a clean reopen, want %" PRId64,
                       name, v, after[k]);
    }
    assert_int_equal(tally_close(db), TALLY_OK);
}

/* One child on dir, killed; then recovery is checked.  Returns the changes
 * per key durable afterwards through next. */
static void crash_once(const char *dir, const plan *p, totals *tot,
                       uint64_t next[NTRACK])
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_run(dir, p, fds[1]);
        _exit(5);
    }
    close(fds[1]);

    bounds b;
    memset(&b, 0, sizeof(b));
    memcpy(b.attempted, p->start, sizeof(b.attempted));
    memcpy(b.acked, p->start, sizeof(b.acked));
    msg part;
    size_t plen = 0;
    uint64_t start = now_us();
    int open = 1;
    while (open && !p->kill_early && !b.ready && !b.failed_line &&
           now_us() - start < 10000000u)
        open = drain(fds[0], &b, 10, &part, &plen);
    if (!p->kill_early)
        start = now_us();
    while (open && !b.failed_line && now_us() - start < p->delay_us) {
        int left_ms = (int)((p->delay_us - (now_us() - start)) / 1000);
        open = drain(fds[0], &b, left_ms, &part, &plen);
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    while (drain(fds[0], &b, -1, &part, &plen))
        ;
    close(fds[0]);
    if (b.failed_line)
        crash_fail(p, "the child's own check failed at line %d (%" PRId64 ")",
                   b.failed_line, b.failed_code);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        crash_fail(p, "the child ended on its own (status %#x)", status);
    verify(dir, p, &b, tot, next);
    tot->kills++;
}

/* An iteration: up to `rounds` kills on one fresh directory. */
static void crash_iteration(uint64_t seed, int rounds, totals *tot)
{
    char dir[PATH_MAX];
    plan p;
    uint64_t next[NTRACK] = {0};
    tt_mkdtemp(dir);
    for (int round = 0; round < rounds; round++) {
        make_plan(&p, seed, round);
        memcpy(p.start, next, sizeof(p.start));
        crash_once(dir, &p, tot, next);
    }
    tt_rmtree(dir);
}

static void acknowledged_changes_survive_sigkill(void **state)
{
    const char *replay = getenv("TALLY_CRASH_SEED");
    const char *kills_env = getenv("TALLY_CRASH_KILLS");
    int kills = kills_env && *kills_env ? atoi(kills_env) : 200;
    uint64_t master = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    totals tot = {0, 0, 0, 0, 0};
    int iterations = 0;
    while (tot.kills < kills) {
        uint64_t seed = replay && *replay ? strtoull(replay, NULL, 0)
                                          : splitmix(&master);
        int rounds = 1 + (int)(seed % 4);
        if (replay && *replay)
            kills = rounds;
        else if (rounds > kills - tot.kills)
            rounds = kills - tot.kills;
        crash_iteration(seed, rounds, &tot);
        iterations++;
    }
    print_message("crash: %d kills survived (%d directories); %" PRIu64
                  " acknowledged changes checked; %d recoveries cut a torn "
                  "tail, %d began from a snapshot; mean recovery %.2f ms\n",
                  tot.kills, iterations, tot.acked, tot.torn, tot.with_snapshot,
                  tot.kills ? tot.recovery_ns / 1e6 / tot.kills : 0.0);
    assert_int_equal(tot.kills, kills);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(acknowledged_changes_survive_sigkill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
