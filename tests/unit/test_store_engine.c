/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_engine.c - the embedded engine as a store (src/store/engine.c):
 * every composite operation the command layer and the memcached front end
 * used to make of two engine calls is one store operation with the same
 * outcome (SET's conditions and memcached cas, incr/decr on a miss and the
 * decr floor, EXPIRE's conditions), expiries are resolved on the engine's
 * clock, DEL says which keys existed, SCAN hands back its page, and every
 * call completes at once with a ticket.  A real engine in a temporary
 * directory with a fake clock.
 */
#include "engine_testutil.h"

#include "engine.h"

static int64_t fake_now = 1700000000000;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

struct fx {
    tally *db;
    struct store_engine se;
    struct store *st;
};

static void open_fx(struct fx *f, void **state)
{
    tally_options o;

    tally_options_init(&o);
    o.sync = TALLY_SYNC_NO;
    o.clock_ms = fake_clock;
    f->db = tt_open(TT_DIR(state), &o);
    store_engine_init(&f->se, f->db);
    f->st = &f->se.base;
}

static void close_fx(struct fx *f)
{
    store_close(f->st);
    tt_close(f->db);
}

/* Run req; it must complete at once.  Returns res.rc. */
static int run(struct fx *f, const struct store_req *req,
               struct store_res *res)
{
    assert_int_equal(store_exec(f->st, req, res, NULL, NULL), STORE_DONE);
    return res->rc;
}

static int set(struct fx *f, const char *k, int64_t v, unsigned flags,
               int64_t cmp, struct store_res *res)
{
    struct store_req q = {.op = STORE_SET, .key = k, .klen = strlen(k),
                          .num = v, .flags = flags, .cmp = cmp,
                          .xmode = STORE_X_NONE};
    memset(res, 0, sizeof *res);
    return run(f, &q, res);
}

static int incr(struct fx *f, const char *k, int64_t d, unsigned flags,
                struct store_res *res)
{
    struct store_req q = {.op = STORE_INCRBY, .key = k, .klen = strlen(k),
                          .num = d, .flags = flags};
    memset(res, 0, sizeof *res);
    return run(f, &q, res);
}

static int64_t value_of(struct fx *f, const char *k, int *found)
{
    struct store_req q = {.op = STORE_GET, .key = k, .klen = strlen(k)};
    struct store_res r = {0};
    run(f, &q, &r);
    *found = r.found;
    return r.value;
}

static void set_conditions_and_cas_are_one_operation(void **state)
{
    struct fx f;
    struct store_res r;
    int found;

    open_fx(&f, state);
    assert_int_equal(set(&f, "a", 5, STORE_F_XX, 0, &r), STORE_NOTSET);
    assert_false(r.found);
    assert_int_equal(set(&f, "a", 5, STORE_F_NX, 0, &r), STORE_OK);
    assert_true(r.ticket > 0);
    assert_int_equal(set(&f, "a", 6, STORE_F_NX | STORE_F_GET, 0, &r),
                     STORE_NOTSET);
    assert_true(r.found);
    assert_int_equal(r.value, 5);
    /* memcached cas: only if present and equal to what the client saw. */
    assert_int_equal(set(&f, "a", 7, STORE_F_IFEQ, 4, &r), STORE_NOTSET);
    assert_true(r.found);
    assert_int_equal(set(&f, "missing", 7, STORE_F_IFEQ, 0, &r), STORE_NOTSET);
    assert_false(r.found);
    assert_int_equal(set(&f, "a", 7, STORE_F_IFEQ | STORE_F_GET, 5, &r),
                     STORE_OK);
    assert_int_equal(r.value, 5); /* the old one, with GET */
    assert_int_equal(value_of(&f, "a", &found), 7);
    close_fx(&f);
}

static void incr_mustexist_and_floor0_as_memcached(void **state)
{
    struct fx f;
    struct store_res r;
    int found;

    open_fx(&f, state);
    assert_int_equal(incr(&f, "m", 1, STORE_F_MUSTEXIST, &r), STORE_NOTFOUND);
    value_of(&f, "m", &found);
    assert_false(found); /* not created */
    assert_int_equal(set(&f, "m", 3, 0, 0, &r), STORE_OK);
    assert_int_equal(incr(&f, "m", -10, STORE_F_FLOOR0 | STORE_F_MUSTEXIST,
                          &r), STORE_OK);
    assert_int_equal(r.value, 0);
    assert_int_equal(incr(&f, "m", -1, STORE_F_FLOOR0, &r), STORE_OK);
    assert_int_equal(r.value, 0);
    /* A counter already below 0 stays as it is. */
    assert_int_equal(set(&f, "n", -4, 0, 0, &r), STORE_OK);
    assert_int_equal(incr(&f, "n", -1, STORE_F_FLOOR0, &r), STORE_OK);
    assert_int_equal(r.value, -4);
    assert_int_equal(incr(&f, "n", INT64_MAX, 0, &r), STORE_OK);
    assert_int_equal(incr(&f, "n", INT64_MAX, 0, &r), STORE_EOVERFLOW);
    close_fx(&f);
}

static void expiry_resolved_on_the_engine_clock(void **state)
{
    struct fx f;
    struct store_res r = {0};
    struct store_req q = {.op = STORE_SET, .key = "t", .klen = 1, .num = 1,
                          .xmode = STORE_X_REL, .expire = 1000};
    int found;

    open_fx(&f, state);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.expire_at, fake_now + 1000);
    assert_int_equal(r.expire_set, fake_now + 1000);
    assert_false(r.expired);
    struct store_req g = {.op = STORE_GET, .key = "t", .klen = 1};
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &g, &r), STORE_OK);
    assert_int_equal(r.now_ms, fake_now); /* for TTL-left */
    assert_int_equal(r.expire_at - r.now_ms, 1000);
    /* A time at or before now deletes, and says so. */
    q.xmode = STORE_X_ABS;
    q.expire = fake_now;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_true(r.expired);
    value_of(&f, "t", &found);
    assert_false(found);
    /* Out of range is refused, nothing changed. */
    q.xmode = STORE_X_REL;
    q.expire = INT64_MAX;
    assert_int_equal(run(&f, &q, &r), STORE_EEXPIRE);
    /* INCRBY's fixed window: the expiry only when it creates. */
    struct store_req w = {.op = STORE_INCRBY, .key = "w", .klen = 1, .num = 1,
                          .xmode = STORE_X_REL_IFNEW, .expire = 500};
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &w, &r), STORE_OK);
    assert_int_equal(r.expire_set, fake_now + 500);
    fake_now += 100;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &w, &r), STORE_OK);
    assert_int_equal(r.expire_set, 0); /* kept, not set */
    assert_int_equal(r.expire_at, fake_now + 400);
    close_fx(&f);
}

static void expire_conditions_and_persist(void **state)
{
    struct fx f;
    struct store_res r;
    struct store_req q = {.op = STORE_EXPIRE, .key = "e", .klen = 1,
                          .xmode = STORE_X_REL, .expire = 1000,
                          .flags = STORE_F_XX};

    open_fx(&f, state);
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_NOTFOUND);
    set(&f, "e", 1, 0, 0, &r);
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 0); /* XX: it has none */
    q.flags = STORE_F_NX;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.expire_set, fake_now + 1000);
    q.flags = STORE_F_GT;
    q.expire = 500;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.expire_at, fake_now + 1000); /* the one before */
    q.flags = STORE_F_LT;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 1);
    q.flags = 0;
    q.xmode = STORE_X_NONE; /* PERSIST */
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.expire_set, 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 0); /* nothing left to remove */
    close_fx(&f);
}

static void del_reports_each_existing_key_once(void **state)
{
    struct fx f;
    struct store_res r;
    const char *keys[] = {"x", "y", "x", "z"};
    size_t klens[] = {1, 1, 1, 1};
    unsigned char founds[4];
    struct store_req q = {.op = STORE_DEL, .nkeys = 4, .keys = keys,
                          .klens = klens};

    open_fx(&f, state);
    set(&f, "x", 1, 0, 0, &r);
    set(&f, "z", 1, 0, 0, &r);
    memset(&r, 0, sizeof r);
    r.founds = founds;
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(founds[0], 1);
    assert_int_equal(founds[1], 0);
    assert_int_equal(founds[2], 0); /* a repeat counts once */
    assert_int_equal(founds[3], 1);
    close_fx(&f);
}

static void scan_pages_by_prefix_and_count_and_flush(void **state)
{
    struct fx f;
    struct store_res r;
    char k[16];
    size_t seen = 0;
    struct store_req q = {.op = STORE_SCAN, .prefix = "p:", .plen = 2,
                          .count = 7};

    open_fx(&f, state);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "p:%d", i);
        set(&f, k, i, 0, 0, &r);
        snprintf(k, sizeof k, "q:%d", i);
        set(&f, k, i, 0, 0, &r);
    }
    do {
        memset(&r, 0, sizeof r);
        assert_int_equal(run(&f, &q, &r), STORE_OK);
        for (size_t i = 0; i < r.n_items; i++) {
            char num[16] = {0};
            assert_true(r.klens[i] > 2 && r.klens[i] < sizeof num &&
                        memcmp(r.keys[i], "p:", 2) == 0);
            memcpy(num, r.keys[i] + 2, r.klens[i] - 2);
            assert_int_equal(r.values[i], atoi(num));
        }
        seen += r.n_items;
        q.cursor = r.n;
    } while (q.cursor != 0);
    assert_true(seen >= 50);
    struct store_req c = {.op = STORE_COUNT, .flags = STORE_F_EXPIRES};
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &c, &r), STORE_OK);
    assert_int_equal(r.n, 100);
    assert_int_equal(r.expires_n, 0);
    assert_true(r.ticket > 0); /* waits for what it counted */
    struct store_req fl = {.op = STORE_FLUSH};
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &fl, &r), STORE_OK);
    assert_int_equal(r.n, 100);
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &c, &r), STORE_OK);
    assert_int_equal(r.n, 0);
    close_fx(&f);
}

static void once_applies_first_and_replays_repeat(void **state)
{
    struct fx f;
    struct store_res r = {0};
    struct store_req q = {.op = STORE_INCRBY, .key = "o", .klen = 1, .num = 3,
                          .once = "id1", .oncelen = 3, .fingerprint = 42};

    open_fx(&f, state);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_int_equal(r.value, 3);
    assert_false(r.replayed);
    tally_wait(f.db, r.ticket);
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_OK);
    assert_true(r.replayed);
    assert_int_equal(r.value, 3);
    q.fingerprint = 43;
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &q, &r), STORE_EIDREUSED);
    close_fx(&f);
}

static void batch_commits_as_one_and_abort_undoes(void **state)
{
    struct fx f;
    struct store_res r;
    struct store_batch *b;
    int found;

    open_fx(&f, state);
    assert_true(store_has_batch(f.st));
    assert_int_equal(f.st->ops->batch_begin(f.st, 0, &b), STORE_OK);
    incr(&f, "b", 1, 0, &r);
    incr(&f, "b", 1, 0, &r);
    f.st->ops->batch_abort(f.st, b);
    value_of(&f, "b", &found);
    assert_false(found);
    assert_int_equal(f.st->ops->batch_begin(f.st, 0, &b), STORE_OK);
    incr(&f, "b", 2, 0, &r);
    memset(&r, 0, sizeof r);
    assert_int_equal(f.st->ops->batch_commit(f.st, b, &r, NULL, NULL),
                     STORE_DONE);
    assert_int_equal(r.rc, STORE_OK);
    assert_true(r.ticket > 0);
    assert_int_equal(value_of(&f, "b", &found), 2);
    close_fx(&f);
}

/* store_ops.incr, the plain INCRBY without a store_req: what exec's
 * STORE_INCRBY gives, ticket included (an error's too), and a detail that
 * is "" for codes that have none, whatever the buffer held before. */
static void incr_op_is_exec_plain_incrby_with_its_ticket(void **state)
{
    struct fx f;
    struct store_res r;
    int64_t at = fake_now + 60000;
    struct store_req ttl = {.op = STORE_SET, .key = "t", .klen = 1, .num = 1,
                            .xmode = STORE_X_ABS, .expire = at};
    tally_ticket set_t;

    open_fx(&f, state);
    assert_non_null(f.st->ops->incr);
    memset(&r, 'x', sizeof r);
    assert_int_equal(f.st->ops->incr(f.st, "i", 1, 5, &r), STORE_OK);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.value, 5);
    assert_int_equal(r.expire_at, 0);
    assert_true(r.ticket > 0);
    assert_int_equal(r.ticket, tally_head(f.db));
    assert_int_equal(incr(&f, "i", -7, 0, &r), STORE_OK); /* exec agrees */
    assert_int_equal(r.value, -2);
    /* A counter's expiry is kept and shown. */
    memset(&r, 0, sizeof r);
    assert_int_equal(run(&f, &ttl, &r), STORE_OK);
    memset(&r, 'x', sizeof r);
    assert_int_equal(f.st->ops->incr(f.st, "t", 1, 2, &r), STORE_OK);
    assert_int_equal(r.value, 3);
    assert_int_equal(r.expire_at, at);
    /* Overflow shows big's value: the SET's ticket, no detail. */
    set(&f, "big", INT64_MAX, 0, 0, &r);
    set_t = r.ticket;
    memset(&r, 'x', sizeof r);
    assert_int_equal(f.st->ops->incr(f.st, "big", 3, 1, &r), STORE_EOVERFLOW);
    assert_int_equal(r.rc, STORE_EOVERFLOW);
    assert_int_equal(r.ticket, set_t);
    assert_string_equal(r.detail, "");
    close_fx(&f);
}

static void ready_info_and_stats_say_engine(void **state)
{
    struct fx f;
    struct store_info_kv kv[8];
    char why[128];
    tally_stats s;

    open_fx(&f, state);
    assert_true(store_ready(f.st, why, sizeof why));
    size_t n = store_info(f.st, kv, 8);
    assert_true(n >= 2);
    assert_string_equal(kv[0].name, "store");
    assert_string_equal(kv[0].value, "engine");
    assert_int_equal(store_stats(f.st, &s), 0);
    assert_int_equal(s.sync, TALLY_SYNC_NO);
    assert_int_equal(store_now_ms(f.st), fake_now);
    assert_true(f.st->ops->sync_only);
    close_fx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            set_conditions_and_cas_are_one_operation, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            incr_mustexist_and_floor0_as_memcached, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(expiry_resolved_on_the_engine_clock,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(expire_conditions_and_persist,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(del_reports_each_existing_key_once,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            scan_pages_by_prefix_and_count_and_flush, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(once_applies_first_and_replays_repeat,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(batch_commits_as_one_and_abort_undoes,
                                        tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            incr_op_is_exec_plain_incrby_with_its_ticket, tt_fx_setup,
            tt_fx_teardown),
        cmocka_unit_test_setup_teardown(ready_info_and_stats_say_engine,
                                        tt_fx_setup, tt_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
