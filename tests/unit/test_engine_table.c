/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_table.c - unit tests of the engine's in-memory table
 * (src/engine/table.c): insert, lookup and delete with binary keys, growth,
 * the reverse-binary scan seeing every key while the table doubles between
 * calls, prefix scans, the per-call bound, slab reuse and memory per entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table.h"

#define SEED 0x0123456789abcdefULL

static size_t mkkey(char *buf, const char *prefix, unsigned i)
{
    return (size_t)sprintf(buf, "%s%u", prefix, i);
}

static struct table_entry *find(struct table *t, const void *k, size_t n)
{
    return table_find(t, table_hash(t->seed, k, n), k, n);
}

static void insert_find_remove(void **state)
{
    struct table t;
    struct table_entry *e;
    const char bin[] = {'a', 0, 'b', 0};

    (void)state;
    table_init(&t, SEED, 0);
    assert_null(find(&t, "a", 1));
    e = table_insert(&t, table_hash(SEED, "a", 1), "a", 1);
    e->value = 5;
    e = table_insert(&t, table_hash(SEED, bin, 4), bin, 4);
    e->value = 6;
    e = table_insert(&t, table_hash(SEED, "", 0), "", 0);
    e->value = 7;
    assert_int_equal(t.count, 3);
    assert_int_equal(find(&t, "a", 1)->value, 5);
    assert_int_equal(find(&t, bin, 4)->value, 6);
    assert_null(find(&t, bin, 3)); /* a prefix is another key */
    assert_int_equal(find(&t, "", 0)->value, 7);
    assert_int_equal(table_remove(&t, table_hash(SEED, bin, 4), bin, 4), 1);
    assert_int_equal(table_remove(&t, table_hash(SEED, bin, 4), bin, 4), 0);
    assert_null(find(&t, bin, 4));
    assert_int_equal(t.count, 2);
    table_free(&t);
}

static void grows_and_keeps_every_key(void **state)
{
    struct table t;
    char k[32];
    size_t n;
    unsigned i;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 100000; i++) {
        n = mkkey(k, "key:", i);
        table_insert(&t, table_hash(SEED, k, n), k, n)->value = i;
        assert_true(t.count <= table_buckets(&t)); /* load stays at most 1 */
    }
    assert_true(table_buckets(&t) >= 100000 && table_buckets(&t) <= 2 * 131072);
    for (i = 0; i < 100000; i++) {
        n = mkkey(k, "key:", i);
        assert_int_equal(find(&t, k, n)->value, i);
    }
    for (i = 0; i < 100000; i += 2) {
        n = mkkey(k, "key:", i);
        assert_int_equal(table_remove(&t, table_hash(SEED, k, n), k, n), 1);
    }
    assert_int_equal(t.count, 50000);
    for (i = 0; i < 100000; i++) {
        n = mkkey(k, "key:", i);
        assert_true((find(&t, k, n) != NULL) == (i % 2 == 1));
    }
    table_free(&t);
}

static void hash_depends_on_the_seed(void **state)
{
    (void)state;
    assert_true(table_hash(1, "counter", 7) != table_hash(2, "counter", 7));
    assert_true(table_hash(1, "counter", 7) == table_hash(1, "counter", 7));
    assert_true(table_hash(1, "counter", 7) != table_hash(1, "counteR", 7));
    /* Every length path (0..40 bytes) differs by the last byte. */
    char a[40] = {0}, b[40] = {0};
    for (size_t n = 1; n < sizeof(a); n++) {
        b[n - 1] = 1;
        assert_true(table_hash(9, a, n) != table_hash(9, b, n));
        b[n - 1] = 0;
    }
}

struct seen {
    unsigned char *hit; /* by key number */
    size_t calls, shown;
};

static int mark(void *ctx, const struct table_entry *e)
{
    struct seen *s = ctx;
    char k[32];

    memcpy(k, e->key, table_klen(e));
    k[table_klen(e)] = 0;
    s->hit[strtoul(strchr(k, ':') + 1, NULL, 10)] = 1;
    s->shown++;
    return 0;
}

/* A key present for the whole scan is seen, however much the table grows
 * between calls. */
static void scan_sees_every_key_across_resizes(void **state)
{
    struct table t;
    struct seen s = {calloc(200000, 1), 0, 0};
    char k[32];
    size_t n;
    uint64_t cursor = 0, mask0;
    unsigned i, next = 1000;
    int stop;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 1000; i++) {
        n = mkkey(k, "old:", i);
        table_insert(&t, table_hash(SEED, k, n), k, n);
    }
    mask0 = table_buckets(&t) - 1;
    do {
        cursor = table_scan(&t, cursor, 10, "old:", 4, mark, &s, &stop);
        s.calls++;
        /* Grow the table between calls with keys the scan need not see. */
        for (i = 0; i < 200 && next < 200000; i++, next++) {
            n = mkkey(k, "new:", next);
            table_insert(&t, table_hash(SEED, k, n), k, n);
        }
    } while (cursor != 0);
    /* It really did double a few times. */
    assert_true(table_buckets(&t) - 1 > 8 * mask0);
    for (i = 0; i < 1000; i++)
        assert_true(s.hit[i]);
    free(s.hit);
    table_free(&t);
}

static void prefix_scan_and_bound(void **state)
{
    struct table t;
    struct seen s = {calloc(20000, 1), 0, 0};
    char k[32];
    size_t n, before;
    uint64_t cursor = 0;
    unsigned i;
    int stop;

    (void)state;
    table_init(&t, SEED, 0);
    for (i = 0; i < 20000; i++) {
        n = mkkey(k, i % 100 == 0 ? "hit:" : "miss:", i);
        table_insert(&t, table_hash(SEED, k, n), k, n);
    }
    do {
        before = s.shown;
        cursor = table_scan(&t, cursor, 5, "hit:", 4, mark, &s, &stop);
        /* At most about count per call (a chain is never split). */
        assert_true(s.shown - before <= 5 + 4);
        s.calls++;
    } while (cursor != 0);
    assert_int_equal(s.shown, 200);
    for (i = 0; i < 20000; i += 100)
        assert_true(s.hit[i]);
    /* Few matches: each call visits at most 10 * count + 16 buckets, so it
     * takes many calls to walk 32768 buckets. */
    assert_true(s.calls >= (table_buckets(&t)) / (10 * 5 + 16));
    free(s.hit);
    table_free(&t);
}

static int stop_at_first(void *ctx, const struct table_entry *e)
{
    (void)ctx;
    (void)e;
    return 42;
}

static void callback_stops_the_scan(void **state)
{
    struct table t;
    int stop = 0;

    (void)state;
    table_init(&t, SEED, 0);
    table_insert(&t, table_hash(SEED, "a", 1), "a", 1);
    table_scan(&t, 0, 10, NULL, 0, stop_at_first, NULL, &stop);
    assert_int_equal(stop, 42);
    table_free(&t);
}

/* 16-byte keys: 48 bytes of slab each, plus 8-16 bytes of bucket array. */
static void memory_per_entry(void **state)
{
    struct table t;
    char k[17];
    unsigned i;
    size_t slab;

    (void)state;
    table_init(&t, SEED, 100000);
    for (i = 0; i < 100000; i++) {
        snprintf(k, sizeof(k), "%016u", i);
        table_insert(&t, table_hash(SEED, k, 16), k, 16);
    }
    slab = t.slab_bytes;
    assert_true(slab / 100000 <= 49);
    /* Freed entries are reused by keys of the same size class. */
    for (i = 0; i < 50000; i++) {
        snprintf(k, sizeof(k), "%016u", i);
        table_remove(&t, table_hash(SEED, k, 16), k, 16);
    }
    for (i = 0; i < 50000; i++) {
        snprintf(k, sizeof(k), "x%015u", i);
        table_insert(&t, table_hash(SEED, k, 16), k, 16);
    }
    assert_int_equal(t.slab_bytes, slab);
    table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(insert_find_remove),
        cmocka_unit_test(grows_and_keeps_every_key),
        cmocka_unit_test(hash_depends_on_the_seed),
        cmocka_unit_test(scan_sees_every_key_across_resizes),
        cmocka_unit_test(prefix_scan_and_bound),
        cmocka_unit_test(callback_stops_the_scan),
        cmocka_unit_test(memory_per_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
