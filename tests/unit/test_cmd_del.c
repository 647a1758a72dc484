/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmd_del.c - a multi-key DEL through the command layer is one atomic
 * change: all of its deletes happen or none does, whether the disk is full
 * or the process dies while the change is being written.
 *
 * Disk full: a forked child fills the log under RLIMIT_FSIZE (as
 * test_engine_faults.c does; SIGXFSZ is ignored), then lowers the limit to
 * a few bytes past the end of the data, room for some small DEL records but
 * not all of them, and runs DEL over many keys.  Crash: the log is cut at
 * every byte offset inside the DEL's bytes, as a torn write would leave it,
 * and each cut directory is recovered.  Both use a real engine in a
 * temporary directory (engine_testutil.h).
 */
#include "engine_testutil.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "cmd.h"
#include "engine.h"

#define NDEL 200     /* keys one DEL names */
#define ROOM 100     /* bytes left after the data: a few DEL records */

static void del_key(char out[8], int i)
{
    snprintf(out, 8, "d%03d", i);
}

/* Set d000.. d<n-1> to 1 (one blocking MSET). */
static void set_keys(tally *db, int n)
{
    char names[NDEL][8];
    const void *keys[NDEL];
    size_t klens[NDEL];
    int64_t vals[NDEL];
    for (int i = 0; i < n; i++) {
        del_key(names[i], i);
        keys[i] = names[i];
        klens[i] = strlen(names[i]);
        vals[i] = 1;
    }
    assert_int_equal(tally_mset(db, (size_t)n, keys, klens, vals, NULL),
                     TALLY_OK);
}

static int count_keys(tally *db, int n)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        char k[8];
        del_key(k, i);
        found += tt_exists(db, k);
    }
    return found;
}

/* DEL d000.. d<n-1> through cmd_exec; returns the status, res filled. */
static enum cmd_status del_keys(tally *db, int n, struct cmd_res *res)
{
    static char names[NDEL][8];
    static const char *keys[NDEL];
    static size_t klens[NDEL];
    struct cmd_ctx ctx;
    struct cmd_session s = {.id = 1, .proto = CMD_PROTO_RESP};
    for (int i = 0; i < n; i++) {
        del_key(names[i], i);
        keys[i] = names[i];
        klens[i] = strlen(names[i]);
    }
    struct cmd_req req = {.op = CMD_DEL, .nkeys = (size_t)n, .keys = keys,
                          .klens = klens};
    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, NULL, 0, NULL);
    memset(res, 0, sizeof *res);
    return cmd_exec(&ctx, &s, &req, res);
}

/* ---- Disk full ----------------------------------------------------------- */

struct full_report {
    int status;      /* the DEL's cmd status */
    int left;        /* d-keys still there afterwards */
    char why[300];   /* empty, or what went wrong in the child */
};

static void full_child(const char *dir, struct full_report *r)
{
    struct rlimit lim;
    struct cmd_res res;
    tally *db = tt_open(dir, NULL);
    const char *why;

    set_keys(db, NDEL);
    /* Room for ROOM more bytes: a few 15-byte DEL records, not NDEL. */
    why = tt_fill_disk(db, dir, ROOM, &lim);
    CHILD_CHECK(r, why == NULL, "%s", why);
    r->status = del_keys(db, NDEL, &res);
    r->left = count_keys(db, NDEL);
    CHILD_CHECK(r, setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit back");
    tt_close(db);
}

static void refused_multi_del_on_a_full_disk_deletes_nothing(void **state)
{
    const char *dir = TT_DIR(state);
    struct full_report *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof *r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        full_child(dir, r);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (r->why[0])
        fail_msg("child: %s", r->why);
    /* The DEL was refused as a whole and deleted nothing, in memory ... */
    assert_int_equal(r->status, CMD_ERR_DISKFULL);
    assert_int_equal(r->left, NDEL);
    /* ... and on disk. */
    tally *db = tt_open(dir, NULL);
    assert_int_equal(count_keys(db, NDEL), NDEL);
    tt_close(db);
    munmap(r, sizeof *r);
}

/* ---- Crash --------------------------------------------------------------- */

#define NCRASH 8 /* keys of the DEL cut at every byte */

static void multi_del_cut_at_any_byte_recovers_all_or_none(void **state)
{
    const char *dir = TT_DIR(state);
    char logname[TT_NAME], path[PATH_MAX];
    uint64_t start = 0;
    struct cmd_res res;
    tt_image im;
    tally *db = tt_open(dir, NULL);

    set_keys(db, NCRASH);
    tally_ticket before = tally_head(db);
    assert_int_equal(del_keys(db, NCRASH, &res), CMD_OK);
    assert_int_equal(res.n, NCRASH);
    assert_int_equal(tally_wait(db, res.ticket), TALLY_OK);
    tally_ticket after = tally_head(db);
    tt_close(db);
    assert_true(tt_newest(dir, "log-", logname, &start));
    tt_image_load(&im, dir);
    /* Every length of the DEL's bytes a crash could leave on disk. */
    for (tally_ticket cut = before; cut <= after; cut++) {
        tt_image_restore(&im, dir);
        tt_path(path, dir, logname);
        assert_int_equal(truncate(path, (off_t)(TT_HDR + (cut - start))), 0);
        db = tt_open(dir, NULL);
        int left = count_keys(db, NCRASH);
        tt_close(db);
        if (left != (cut == after ? 0 : NCRASH))
            fail_msg("log cut %" PRIu64 " bytes into the DEL's %" PRIu64
                     ": %d of %d keys left, want all or none",
                     cut - before, after - before, left, NCRASH);
    }
    tt_image_free(&im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            refused_multi_del_on_a_full_disk_deletes_nothing, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            multi_del_cut_at_any_byte_recovers_all_or_none, tt_fx_setup,
            tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
