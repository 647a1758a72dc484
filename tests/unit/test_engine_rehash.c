/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_rehash.c - incremental resizing of the engine's hash tables
 * (src/engine/htab.c under table.c and once.c): no insert or removal moves
 * more than a few buckets; lookups, inserts, deletes and expiry while a
 * resize runs; shrinking after mass deletes without flapping at the
 * boundary; a scan spanning growth and shrink sees every stable key; random
 * operations against a reference model; the idempotency table likewise;
 * snapshot and recovery with a resize in progress; memory per counter.
 */
#include "engine_testutil.h"

#include "engine.h"
#include "htab.h"
#include "once.h"
#include "table.h"

#define SEED 0x0123456789abcdefULL

static size_t mkkey(char *buf, const char *prefix, unsigned i)
{
    return (size_t)sprintf(buf, "%s%u", prefix, i);
}

static struct table_entry *find(struct table *t, const char *prefix,
                                unsigned i)
{
    char k[32];
    size_t n = mkkey(k, prefix, i);

    return table_find(t, table_hash(t->seed, k, n), k, n);
}

static struct table_entry *insert(struct table *t, const char *prefix,
                                  unsigned i)
{
    char k[32];
    size_t n = mkkey(k, prefix, i);

    return table_insert(t, table_hash(t->seed, k, n), k, n);
}

static int remove_key(struct table *t, const char *prefix, unsigned i)
{
    char k[32];
    size_t n = mkkey(k, prefix, i);

    return table_remove(t, table_hash(t->seed, k, n), k, n);
}

static int resizing(const struct table *t)
{
    return t->h.ob != NULL;
}

/* The regression: a growth used to rehash the whole table inside the insert
 * that crossed the load, tens of ms at millions of counters.  Now each
 * insert and removal moves at most TABLE_STEP (2) non-empty buckets and
 * passes at most 10 empty ones per bucket it may move. */
static void no_change_moves_more_than_a_few_buckets(void **state)
{
    struct table t;
    uint64_t before, growths = 0;
    unsigned i;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 300000; i++) {
        int was = resizing(&t);
        before = was ? t.h.ridx : 0;
        insert(&t, "k:", i)->value = i;
        if (!was && resizing(&t)) {
            growths++;
            /* The insert that began it moved nothing yet. */
            assert_int_equal(t.h.ridx, 0);
        } else if (was && resizing(&t)) {
            assert_true(t.h.ridx - before <= 2 + 2 * 10);
        }
    }
    assert_true(growths >= 14); /* 16 buckets to 512 Ki */
    for (i = 0; i < 300000; i++) {
        int was = resizing(&t);
        before = was ? t.h.ridx : 0;
        assert_int_equal(remove_key(&t, "k:", i), 1);
        if (was && resizing(&t))
            assert_true(t.h.ridx - before <= 2 + 2 * 10);
    }
    table_free(&t);
}

/* Every key stays findable at every point of a growth, inserts and deletes
 * land where later lookups find them, and the count stays exact. */
static void lookups_inserts_deletes_during_a_resize(void **state)
{
    struct table t;
    unsigned i, n = 0, j, steps = 0;

    (void)state;
    table_init(&t, SEED, 0);
    while (!resizing(&t) || table_buckets(&t) < 65536) {
        insert(&t, "k:", n)->value = n + 1;
        n++;
    }
    /* A growth to 64 Ki buckets runs: old and new arrays both hold keys. */
    while (resizing(&t)) {
        insert(&t, "k:", n)->value = n + 1;
        n++;
        i = steps * 7 % n;
        assert_int_equal(remove_key(&t, "k:", i), 1);
        assert_null(find(&t, "k:", i));
        insert(&t, "k:", i)->value = i + 1;
        if (steps++ % 512 == 0) {
            for (j = 0; j < n; j++)
                assert_int_equal(find(&t, "k:", j)->value, j + 1);
            assert_null(find(&t, "x:", steps));
        }
    }
    assert_true(steps > 1000); /* it really was spread over many changes */
    assert_int_equal(t.count, n);
    for (i = 0; i < n; i++)
        assert_int_equal(find(&t, "k:", i)->value, i + 1);
    table_free(&t);
}

/* Mass deletes shrink the bucket array, incrementally, down to a load
 * between 1/4 and 1/2; a count going back and forth at the boundary does
 * not resize back and forth. */
static void shrinks_after_mass_deletes_without_flapping(void **state)
{
    struct table t;
    uint64_t peak, size, resizes = 0;
    unsigned i, j, spread = 0;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 200000; i++)
        insert(&t, "k:", i);
    while (table_rehash_step(&t, 1000))
        ;
    peak = table_buckets(&t);
    for (i = 0; i < 199000; i++) {
        assert_int_equal(remove_key(&t, "k:", i), 1);
        if (resizing(&t) && table_buckets(&t) < peak)
            spread++;
    }
    while (table_rehash_step(&t, 1000))
        ;
    assert_true(spread > 100);
    /* A real shrink, to a load between 1/4 and 1/2. */
    assert_true(table_buckets(&t) <= 4 * 1024);
    assert_true(table_buckets(&t) >= 2 * t.count);
    for (i = 199000; i < 200000; i++)
        assert_non_null(find(&t, "k:", i));
    /* Back and forth across the shrink point (count = buckets / 8) by 32
     * keys: one shrink at most, not one per crossing. */
    while (t.count > table_buckets(&t) / 8 + 16)
        remove_key(&t, "k:", 200000 - (unsigned)t.count);
    size = table_buckets(&t);
    for (i = 0; i < 200; i++) {
        for (j = 0; j < 32; j++)
            remove_key(&t, "k:", 199999 - j);
        for (j = 0; j < 32; j++)
            insert(&t, "k:", 199999 - j);
        if (table_buckets(&t) != size) {
            resizes++;
            size = table_buckets(&t);
        }
    }
    assert_true(resizes <= 1);
    /* And across the growth point (count = buckets): one growth at most. */
    while (t.count < table_buckets(&t) - 16)
        insert(&t, "g:", (unsigned)t.count);
    size = table_buckets(&t);
    resizes = 0;
    for (i = 0; i < 200; i++) {
        for (j = 0; j < 32; j++)
            insert(&t, "o:", j);
        for (j = 0; j < 32; j++)
            remove_key(&t, "o:", j);
        if (table_buckets(&t) != size) {
            resizes++;
            size = table_buckets(&t);
        }
    }
    assert_true(resizes <= 1);
    table_free(&t);
}

/* Issue 15: deleting 90 % of a million counters through the API shrinks
 * the bucket array (to a load between 1/4 and 1/2) and gives its memory
 * back, and no tally_del is slow: none moves more than a few buckets or
 * gives back more than one piece of the old array.  (Work per call, not
 * the CPU clock: on a shared machine the clock also charges the call with
 * other tenants' interrupts.) */
static void deleting_90_percent_of_1m_counters_shrinks_in_small_steps(
    void **state)
{
    enum { N = 1000000, CORK = 1000 };
    tt_fx *f = *state;
    tally_options o;
    tally *db;
    struct htab *h;
    char k[32];
    size_t klen;
    uint64_t peak, peak_mem, before, mem, deletes_resizing = 0;
    unsigned i;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    o.snapshot_min_log = UINT64_MAX; /* the table alone */
    db = tt_open(f->dir, &o);
    h = &db->table.h;
    tt_fill(db, "d:", N);
    while (tally_step(db, 4096) == 1)
        ;
    peak = table_buckets(&db->table);
    peak_mem = htab_memory(h);
    assert_true(peak >= N);
    for (i = 0; i < N / 10 * 9; i++) {
        int was = h->ob != NULL;

        before = was ? h->ridx : 0;
        mem = htab_memory(h);
        if (i % CORK == 0)
            tally_cork(db);
        klen = (size_t)sprintf(k, "d:%u", i);
        assert_int_equal(tally_del(db, k, klen, NULL), TALLY_OK);
        if (i % CORK == CORK - 1)
            assert_true(tally_uncork(db) >= 0);
        if (was && h->ob) {
            deletes_resizing++;
            assert_true(h->ridx - before <= 2 + 2 * 10);
        }
        /* At most one piece of the old array given back per call. */
        if (htab_memory(h) < mem)
            assert_true(mem - htab_memory(h) <= (512u << 10));
    }
    while (tally_step(db, 4096) == 1)
        ;
    assert_true(deletes_resizing > 1000); /* spread over many calls */
    assert_int_equal(tally_count(db), N / 10);
    assert_true(table_buckets(&db->table) < peak / 2);
    assert_true(table_buckets(&db->table) >= 2 * db->table.count);
    assert_true(table_buckets(&db->table) <= 4 * db->table.count);
    assert_true(htab_memory(h) <= peak_mem / 2);
    for (i = N / 10 * 9; i < N; i += 997) {
        sprintf(k, "d:%u", i);
        assert_int_equal(tt_get(db, k), i);
    }
    tt_close(db);
}

struct seen {
    unsigned char *hit; /* by key number, for "old:" keys */
    size_t shown;
};

static int mark(void *ctx, const struct table_entry *e)
{
    struct seen *s = ctx;
    char k[32];

    memcpy(k, e->key, table_klen(e));
    k[table_klen(e)] = 0;
    if (strncmp(k, "old:", 4) == 0)
        s->hit[strtoul(k + 4, NULL, 10)] = 1;
    s->shown++;
    return 0;
}

/* A key present for the whole scan is returned, while the table grows
 * many times and then shrinks many times between calls, cursors passed
 * back in later, some calls made with a resize running. */
static void scan_spanning_growth_and_shrink_sees_every_stable_key(void **st)
{
    struct table t;
    struct seen s = {calloc(1000, 1), 0};
    uint64_t cursor = 0, peak = 0, low, mid_resize = 0;
    unsigned i, next = 0, gone = 0, calls = 0;
    int stop, shrinking = 0;

    (void)st;
    table_init(&t, SEED, 0);
    for (i = 0; i < 1000; i++)
        insert(&t, "old:", i);
    do {
        cursor = table_scan(&t, cursor, 3, NULL, 0, mark, &s, &stop);
        calls++;
        mid_resize += resizing(&t);
        if (!shrinking) {
            for (i = 0; i < 300; i++)
                insert(&t, "new:", next++);
            if (next >= 150000)
                shrinking = 1;
        } else {
            for (i = 0; i < 400 && gone < next; i++)
                assert_int_equal(remove_key(&t, "new:", gone++), 1);
        }
        if (table_buckets(&t) > peak)
            peak = table_buckets(&t);
    } while (cursor != 0);
    low = table_buckets(&t);
    assert_true(peak >= 128 * 1024);     /* it grew ... */
    assert_true(shrinking && low < peak / 4); /* ... and shrank */
    assert_true(mid_resize > 10);
    assert_true(calls > 100);
    for (i = 0; i < 1000; i++)
        assert_true(s.hit[i]);
    free(s.hit);
    table_free(&t);
}

/* Random inserts, updates, deletes and lookups, in phases that grow and
 * shrink the table several times, checked against a plain array. */
static void random_operations_match_a_reference_model(void **state)
{
    enum { KEYS = 40000 };
    struct table t;
    int64_t *ref = calloc(KEYS, sizeof(*ref)); /* 0: absent, else value */
    uint64_t count = 0, rng = 88172645463325252ULL, resizes = 0, size;
    struct table_entry *e;
    unsigned op, k, phase;

    (void)state;
    table_init(&t, SEED, 0);
    size = table_buckets(&t);
    for (op = 0; op < 2000000; op++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        k = (unsigned)(rng >> 20) % KEYS;
        phase = (op / 200000) % 2; /* 0: mostly inserts, 1: mostly deletes */
        e = find(&t, "r:", k);
        assert_true((e != NULL) == (ref[k] != 0));
        if (e)
            assert_int_equal(e->value, ref[k]);
        if ((rng & 15) < (phase ? 1u : 12u)) {
            if (!e) {
                e = insert(&t, "r:", k);
                count++;
            }
            e->value = ref[k] = (int64_t)(rng >> 40) + 1;
        } else if (e) {
            assert_int_equal(remove_key(&t, "r:", k), 1);
            ref[k] = 0;
            count--;
        }
        assert_int_equal(t.count, count);
        if (table_buckets(&t) != size) {
            resizes++;
            size = table_buckets(&t);
        }
    }
    assert_true(resizes >= 6); /* grown and shrunk repeatedly */
    for (k = 0; k < KEYS; k++)
        assert_true((find(&t, "r:", k) != NULL) == (ref[k] != 0));
    free(ref);
    table_free(&t);
}

static void gone_cb(void *ctx, const void *key, size_t klen, uint64_t lsn)
{
    (void)key;
    (void)klen;
    (void)lsn;
    (*(unsigned *)ctx)++;
}

/* Active expiry removing counters while a resize runs (its removals move
 * buckets too, and may begin a shrink): the expired ones are gone, the
 * others all found. */
static void expiry_during_a_resize(void **state)
{
    struct table t;
    struct table_entry *e;
    uint64_t maxlsn = 0, h;
    unsigned i, n = 0, gone = 0, mid = 0;
    char k[32];
    size_t kn;

    (void)state;
    table_init(&t, SEED, 0);
    while (!resizing(&t) || table_buckets(&t) < 131072) {
        kn = mkkey(k, "x:", n);
        h = table_hash(SEED, k, kn);
        e = table_insert(&t, h, k, kn);
        e->value = n;
        if (n % 4 != 0) /* three in four expire at 1000 */
            table_set_expire(&t, h, &e, 1000);
        n++;
    }
    while (table_expire_step(&t, 2000, 256, &maxlsn, gone_cb, &gone) > 0)
        mid += resizing(&t);
    assert_true(mid > 0); /* some expiry ran during the growth */
    table_expire_all(&t, 2000, &maxlsn, gone_cb, &gone);
    assert_int_equal(gone, n - (n + 3) / 4);
    assert_int_equal(t.count, (n + 3) / 4);
    for (i = 0; i < n; i++) {
        e = find(&t, "x:", i);
        if (i % 4 == 0)
            assert_true(e && e->value == i);
        else
            assert_null(e);
    }
    table_free(&t);
}

/* 16-byte keys at one million counters: memory per counter is what it was
 * before incremental resizing (48.04 bytes of slab plus 8.39 of bucket
 * array at a load of 0.95: 56.43 bytes, measured with main at f06a163)
 * once the resize is done.  While one runs the old array is kept too: at
 * most 24 bytes of arrays per counter, right after a doubling. */
static void memory_per_counter_did_not_grow(void **state)
{
    struct table t;
    char k[17];
    unsigned i;
    double per, peak = 0;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 1000000; i++) {
        snprintf(k, sizeof(k), "%016u", i);
        table_insert(&t, table_hash(SEED, k, 16), k, 16);
        if (i > 100000 && i % 1000 == 0) {
            per = (double)table_memory(&t) / t.count;
            if (per > peak)
                peak = per;
        }
    }
    while (table_rehash_step(&t, 4096))
        ;
    per = (double)table_memory(&t) / t.count;
    print_message("memory per counter: %.1f bytes (peak while resizing "
                  "%.1f)\n", per, peak);
    assert_true(per <= 56.5);
    assert_true(peak <= 48.1 + 3 * 8);
    table_free(&t);
}

/* ---- The idempotency table ---------------------------------------------- */

static struct once_entry *once_put(struct once_table *o, unsigned i,
                                   int64_t created)
{
    char id[32];
    struct codec_idem idem = {id, mkkey(id, "id-", i), i, created, 0, i,
                              NULL, 0};

    return once_add(o, &idem, i + 1);
}

static struct once_entry *once_get(struct once_table *o, unsigned i)
{
    char id[32];

    return once_find(o, id, mkkey(id, "id-", i));
}

/* Ids are found while the table grows (incrementally) and while expiry
 * shrinks it, and the array is given back when the last id expires. */
static void once_table_grows_and_shrinks_incrementally(void **state)
{
    struct once_table o;
    unsigned i, n = 100000, mid = 0;
    uint64_t peak;

    (void)state;
    once_init(&o, SEED);
    for (i = 0; i < n; i++) {
        once_put(&o, i, i < n / 2 ? 1000 : 5000);
        if (o.h.ob) {
            mid++;
            assert_true(once_get(&o, i / 2) && once_get(&o, i / 2)->value ==
                        (int64_t)(i / 2));
        }
    }
    assert_true(mid > 1000);
    while (once_rehash_step(&o, 1000))
        ;
    peak = htab_size(&o.h);
    assert_true(peak >= n && peak <= 2 * 131072);
    /* Expire the first half, 8 at a time, as requests do. */
    while (once_expire(&o, 3000, 1000, 8))
        if (o.h.ob)
            assert_non_null(once_get(&o, n - 1));
    assert_int_equal(o.count, n / 2);
    for (i = 0; i < n; i++)
        assert_true((once_get(&o, i) != NULL) == (i >= n / 2));
    for (i = n / 2; i < n - 100; i++)
        once_expire(&o, 3000 + 4000, 1000, 1);
    while (once_rehash_step(&o, 1000))
        ;
    assert_true(htab_size(&o.h) < peak / 8);
    for (i = n - 100; i < n; i++)
        assert_non_null(once_get(&o, i));
    once_expire(&o, 100000, 1000, UINT32_MAX);
    assert_null(o.h.b); /* empty: nothing kept */
    assert_int_equal(once_memory(&o), 0);
    once_free(&o);
}

/* ---- Snapshot and recovery ---------------------------------------------- */

/* A fuzzy snapshot written a slice at a time (tally_step) while the counter
 * table grows, and another while it shrinks, each slice also moving
 * buckets: reopening from the snapshot plus the log gives every counter its
 * last value, and none that was deleted. */
static void snapshot_and_recovery_with_a_resize_in_progress(void **state)
{
    tt_fx *f = *state;
    tally_options o;
    tally *db;
    char k[32];
    unsigned i, n = 0, slices = 0, mid = 0;
    int rc;

    tt_options(&o, NULL);
    o.sync = TALLY_SYNC_NO;
    db = tt_open(f->dir, &o);
    while (!db->table.h.ob || table_buckets(&db->table) < 65536) {
        mkkey(k, "c:", n++);
        tt_set(db, k, n);
    }
    assert_int_equal(tally_snapshot_begin(db), TALLY_OK);
    do {
        mid += db->table.h.ob != NULL;
        mkkey(k, "c:", n++);
        tt_set(db, k, n);
        rc = tally_step(db, 64);
        assert_true(rc >= 0);
        slices++;
    } while (db->snap.running);
    assert_true(mid > 10 && slices > 100);
    /* Now shrink: delete most, with another snapshot walking meanwhile. */
    assert_int_equal(tally_snapshot_begin(db), TALLY_OK);
    for (i = 0; i < n - 1000; i++) {
        mkkey(k, "c:", i);
        assert_int_equal(tally_del(db, k, strlen(k), NULL), TALLY_OK);
        if (i % 16 == 0)
            assert_true(tally_step(db, 64) >= 0);
    }
    while (db->snap.running)
        assert_true(tally_step(db, 64) >= 0);
    assert_true(table_buckets(&db->table) < 65536 / 4);
    db = tt_reopen(db, f->dir);
    assert_int_equal(db->table.count, 1000);
    for (i = 0; i < n; i++) {
        mkkey(k, "c:", i);
        if (i < n - 1000)
            assert_false(tt_exists(db, k));
        else
            assert_int_equal(tt_get(db, k), i + 1);
    }
    tt_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_change_moves_more_than_a_few_buckets),
        cmocka_unit_test(lookups_inserts_deletes_during_a_resize),
        cmocka_unit_test(shrinks_after_mass_deletes_without_flapping),
        cmocka_unit_test(scan_spanning_growth_and_shrink_sees_every_stable_key),
        cmocka_unit_test(random_operations_match_a_reference_model),
        cmocka_unit_test(expiry_during_a_resize),
        cmocka_unit_test(memory_per_counter_did_not_grow),
        cmocka_unit_test(once_table_grows_and_shrinks_incrementally),
        cmocka_unit_test_setup_teardown(
            deleting_90_percent_of_1m_counters_shrinks_in_small_steps,
            tt_fx_setup, tt_fx_teardown),
        cmocka_unit_test_setup_teardown(
            snapshot_and_recovery_with_a_resize_in_progress, tt_fx_setup,
            tt_fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
