/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_snapwalk.c - the snapshot's walk over the counters in slab
 * order (table.c table_walk_step, snap.c): it shows every counter that
 * stays in its slot for the whole walk exactly once, across freed slots,
 * slots moved to a bigger class by an expiry, chunk tails and resizes of
 * the bucket array; and a snapshot lists counters in the order they were
 * allocated, reading memory in sequence, where it used to follow the hash
 * order (two or three cache misses per counter, 10 ms of CPU per
 * tally_step slice at 10M counters); and tally_step stops after about
 * 0.5 ms whatever its budget.
 */
#include "engine_testutil.h"

#include "engine.h"
#include "table.h"

#define SEED 0x0123456789abcdefULL

/* Keys of varied lengths, so that slots of several size classes share the
 * chunks and chunk tails come in many sizes. */
static size_t mkkey(char *buf, unsigned i)
{
    return (size_t)sprintf(buf, "w:%u:%.*s", i, (int)(i % 37), "abcdefghij"
                           "abcdefghijabcdefghijabcdefghij");
}

static struct table_entry *insert(struct table *t, unsigned i)
{
    char k[64];
    size_t n = mkkey(k, i);
    struct table_entry *e = table_insert(t, table_hash(t->seed, k, n), k, n);

    e->value = i;
    return e;
}

static void remove_key(struct table *t, unsigned i)
{
    char k[64];
    size_t n = mkkey(k, i);

    assert_int_equal(table_remove(t, table_hash(t->seed, k, n), k, n), 1);
}

/* How many times the walk showed each key (by the value, its index). */
struct seen {
    unsigned *count;
    unsigned n;
};

static int count_entry(void *ctx, const struct table_entry *e)
{
    struct seen *s = ctx;

    assert_true(e->value >= 0 && (uint64_t)e->value < s->n);
    s->count[e->value]++;
    return 0;
}

/* Give counter i an expiry, which moves it to a slot of the next class
 * unless its slot has room already; returns whether it moved. */
static int move_key(struct table *t, unsigned i)
{
    char k[64];
    size_t n = mkkey(k, i);
    uint64_t h = table_hash(t->seed, k, n);
    struct table_entry *e = table_find(t, h, k, n), *was = e;

    assert_non_null(e);
    table_set_expire(t, h, &e, (int64_t)1 << 40);
    return e != was;
}

static void walk_shows_every_stable_counter_exactly_once(void **state)
{
    enum { N = 60000 };
    struct table t;
    struct table_walk w;
    struct seen s = {calloc(2 * N, sizeof(unsigned)), 2 * N};
    unsigned char *touched = calloc(N, 1);
    unsigned i, extra = N, steps = 0, victim, moved = 0;
    int stop, done = 0, resized = 0;

    (void)state;
    assert_non_null(s.count);
    assert_non_null(touched);
    table_init(&t, SEED, 0);
    for (i = 0; i < N; i++)
        insert(&t, i);
    /* Free slots in the middle of chunks before the walk begins. */
    for (i = 0; i < N; i += 3) {
        remove_key(&t, i);
        touched[i] = 2;
    }
    table_walk_begin(&t, &w);
    while (!done) {
        done = table_walk_step(&t, &w, 50, count_entry, &s, &stop);
        assert_int_equal(stop, 0);
        /* Meanwhile: new counters (reusing the freed slots, and in new
         * chunks), counters removed, counters that get an expiry and so
         * move to a slot of the next class, and growths of the bucket
         * array. */
        for (i = 0; i < 40 && extra < 2 * N; i++)
            insert(&t, extra++);
        resized |= t.h.ob != NULL;
        victim = (steps * 7919u) % N;
        if (!touched[victim]) {
            if (steps % 2) {
                remove_key(&t, victim);
                touched[victim] = 1;
            } else {
                moved += move_key(&t, victim);
                touched[victim] = 3;
            }
        }
        steps++;
    }
    assert_true(steps > N / 50 / 2);
    assert_true(resized);
    assert_true(moved > 100);
    for (i = 0; i < N; i++) {
        if (touched[i] == 2)
            assert_int_equal(s.count[i], 0);
        else if (touched[i] == 1)
            assert_true(s.count[i] <= 1);
        else if (touched[i] == 3) /* in its old slot and its new one */
            assert_true(s.count[i] <= 2);
        else
            assert_int_equal(s.count[i], 1);
    }
    for (i = N; i < extra; i++)
        assert_true(s.count[i] <= 1);
    free(touched);
    free(s.count);
    table_free(&t);
}

static void walk_of_an_empty_table_is_done_at_once(void **state)
{
    struct table t;
    struct table_walk w;
    struct seen s = {NULL, 0};
    int stop;

    (void)state;
    table_init(&t, SEED, 0);
    table_walk_begin(&t, &w);
    assert_int_equal(table_walk_step(&t, &w, 10, count_entry, &s, &stop), 1);
    insert(&t, 0);
    remove_key(&t, 0);
    table_walk_begin(&t, &w);
    assert_int_equal(table_walk_step(&t, &w, 10, count_entry, &s, &stop), 1);
    table_free(&t);
}

/* After mass deletes most slots are free: a step passes over at most
 * 8 * count + 64 slots, so it stays short however many free ones come in
 * a row, and the walk still shows every entry left. */
static void walk_over_mostly_free_slots_takes_bounded_steps(void **state)
{
    enum { N = 100000 };
    struct table t;
    struct table_walk w;
    struct seen s = {calloc(N, sizeof(unsigned)), N};
    unsigned i, steps = 0;
    int stop;

    (void)state;
    assert_non_null(s.count);
    table_init(&t, SEED, 0);
    for (i = 0; i < N; i++)
        insert(&t, i);
    for (i = 0; i < N; i++)
        if (i % 100 != 0)
            remove_key(&t, i);
    table_walk_begin(&t, &w);
    while (!table_walk_step(&t, &w, 1, count_entry, &s, &stop))
        steps++;
    /* 1,000 entries 100 slots apart, at most 72 slots a step. */
    assert_true(steps > N / 72);
    for (i = 0; i < N; i++)
        assert_int_equal(s.count[i], i % 100 == 0);
    free(s.count);
    table_free(&t);
}

/* The regression.  A snapshot's PUT records come in the order the
 * counters' slots were allocated (here: the order they were set), not in
 * hash order. */
static void snapshot_lists_counters_in_slab_order_not_hash_order(void **state)
{
    enum { N = 20000 };
    tally_options o;
    tally *db;
    char k[32], name[TT_NAME], path[PATH_MAX];
    tt_bytes b = {0};
    size_t off = TT_HDR;
    long len;
    unsigned i, puts = 0;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    db = tt_open(TT_DIR(state), &o);
    for (i = 0; i < N; i++) {
        sprintf(k, "s:%u", i);
        tt_set(db, k, i);
    }
    assert_int_equal(tally_snapshot(db), TALLY_OK);
    assert_true(tt_newest(TT_DIR(state), "snap-", name, NULL));
    tt_path(path, TT_DIR(state), name);
    assert_int_equal(tt_read_file(path, &b), 0);
    while ((len = tt_next_record(b.p, b.len, off)) > 0) {
        const uint8_t *r = b.p + off + 8;

        if (r[0] == TT_PUT) {
            assert_int_equal((int64_t)tt_get_le(r + 3, 8), puts);
            puts++;
        }
        off += (size_t)len;
    }
    assert_int_equal(puts, N);
    tt_free(&b);
    tt_close(db);
}

/* The regression of the deadline: a tally_step with a budget far above
 * what fits in its half millisecond (tallyd's 4096 can take longer when
 * memory is cold or the machine busy) returns with the snapshot still
 * walking and more work reported, instead of walking it all in one call;
 * later calls finish it. */
static void tally_step_stops_after_half_a_millisecond_whatever_the_budget(
    void **state)
{
    enum { N = 200000 };
    tally_options o;
    tally *db;
    char k[32];
    unsigned i, calls = 0;
    int rc;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    o.snapshot_min_log = UINT64_MAX;
    db = tt_open(TT_DIR(state), &o);
    tt_fill(db, "t:", N);
    assert_int_equal(tally_snapshot_begin(db), TALLY_OK);
    assert_int_equal(tally_step(db, UINT32_MAX), 1);
    assert_int_equal(db->snap.running, 1); /* still walking */
    assert_true(db->snap.puts < N);
    while ((rc = tally_step(db, UINT32_MAX)) == 1)
        calls++;
    assert_int_equal(rc, 0);
    assert_int_equal(db->snap.running, 0);
    assert_true(calls > 2);
    db = tt_reopen(db, TT_DIR(state));
    for (i = 0; i < N; i += 777) {
        sprintf(k, "t:%u", i);
        assert_int_equal(tt_get(db, k), i);
    }
    tt_close(db);
}

/* An aborted batch puts a counter back without a log record, and may put
 * it in another slot: here K (6-byte key, a 32-byte slot with no room for
 * an expiry) gets an expiry inside the batch, which moves it to the free
 * 40-byte slot that J left behind the walk, and the abort leaves it there.
 * The walk, not yet at K's old slot, would never show K, and the log after
 * S has nothing of it: after the snapshot replaced the old log, K was
 * lost.  Every counter an abort puts back is now shown to the walk. */
static void counter_moved_by_an_aborted_batch_during_a_walk_survives(
    void **state)
{
    enum { N = 50000 };
    tally_options o;
    tally *db;
    struct table_entry *k, *was;
    uint64_t h;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    o.snapshot_min_log = UINT64_MAX;
    db = tt_open(TT_DIR(state), &o);
    tt_set(db, "jjjjjjjjjjjjjj", 1); /* 14 bytes: a 40-byte slot, first */
    tt_fill(db, "f:", N);
    tt_set(db, "kkkkkk", 42); /* last */
    assert_int_equal(tally_snapshot_begin(db), TALLY_OK);
    assert_int_equal(tally_step(db, 1000), 1);
    assert_int_equal(db->snap.running, 1);
    assert_true(db->snap.puts < N); /* past J, not at K yet */
    assert_int_equal(tally_del(db, "jjjjjjjjjjjjjj", 14, NULL), TALLY_OK);
    h = table_hash(db->table.seed, "kkkkkk", 6);
    was = table_find(&db->table, h, "kkkkkk", 6);
    assert_int_equal(tally_batch_begin(db), TALLY_OK);
    assert_int_equal(tally_expire(db, "kkkkkk", 6, (int64_t)1 << 46, NULL),
                     TALLY_OK);
    tally_batch_abort(db);
    k = table_find(&db->table, h, "kkkkkk", 6);
    assert_ptr_not_equal(k, was); /* it did move */
    assert_int_equal(table_expire_of(k), 0);
    while (db->snap.running)
        assert_true(tally_step(db, 1000) >= 0);
    db = tt_reopen(db, TT_DIR(state));
    assert_int_equal(tt_get(db, "kkkkkk"), 42);
    assert_false(tt_exists(db, "jjjjjjjjjjjjjj"));
    assert_int_equal(tt_get(db, "f:49999"), 49999);
    tt_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(walk_shows_every_stable_counter_exactly_once),
        cmocka_unit_test(walk_of_an_empty_table_is_done_at_once),
        cmocka_unit_test(walk_over_mostly_free_slots_takes_bounded_steps),
        cmocka_unit_test_setup_teardown(
            snapshot_lists_counters_in_slab_order_not_hash_order,
            tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            tally_step_stops_after_half_a_millisecond_whatever_the_budget,
            tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            counter_moved_by_an_aborted_batch_during_a_walk_survives,
            tt_fx_setup, tt_fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
