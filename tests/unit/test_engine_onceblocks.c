/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_onceblocks.c - the table of idempotency ids' storage (once.c,
 * once.h): entries carved from a queue of blocks instead of one malloc
 * each, freed a block at a time as expiry pops them; the hash each entry
 * keeps for resizes; an answer bigger than a block; a snapshot's walk while
 * expiry frees blocks under it; and the fingerprint hash, which is on disk
 * and so must stay FNV-1a byte for byte.  No sockets, no files.
 */
#include "engine_testutil.h"

#include "engine.h"
#include "htab.h"
#include "once.h"

#define SEED 0x0123456789abcdefULL

static size_t mkid(char *buf, unsigned i)
{
    return (size_t)sprintf(buf, "id-%u", i);
}

static struct once_entry *put(struct once_table *o, unsigned i,
                              int64_t created, const void *answer,
                              size_t alen)
{
    char id[32];
    struct codec_idem idem = {id, mkid(id, i), 1000 + i, created, 0, i,
                              answer, alen};

    return once_add(o, &idem, i + 1);
}

static struct once_entry *get(struct once_table *o, unsigned i)
{
    char id[32];

    return once_find(o, id, mkid(id, i));
}

/* Every field of entry i as put() wrote it. */
static void assert_entry(const struct once_entry *e, unsigned i)
{
    char id[32];
    size_t n = mkid(id, i);

    assert_non_null(e);
    assert_int_equal(e->idlen, n);
    assert_memory_equal(e->id, id, n);
    assert_int_equal(e->fp, 1000 + i);
    assert_int_equal(e->value, i);
    assert_int_equal(e->ticket, i + 1);
}

/* 30,000 ids fill many blocks; expiring the older half gives back about
 * half the memory (whole blocks), the rest are all still there with their
 * fields, and the last expiry gives back everything. */
static void ids_span_blocks_and_expired_blocks_are_freed(void **state)
{
    struct once_table o;
    unsigned i, n = 30000;
    uint64_t full, half;

    (void)state;
    once_init(&o, SEED);
    for (i = 0; i < n; i++)
        put(&o, i, i < n / 2 ? 1000 : 5000, NULL, 0);
    while (once_rehash_step(&o, 1000))
        ;
    full = once_memory(&o) - htab_memory(&o.h);
    /* 60 bytes of header and an id of 4-8 bytes, 8-aligned: 72 each, and a
     * block's header now and then; no malloc header per id. */
    assert_true(full <= (uint64_t)n * 72 + 65536);
    assert_true(full >= (uint64_t)n * 64);
    assert_int_equal(once_expire(&o, 3000, 1000, UINT32_MAX), 0);
    assert_int_equal(o.count, n / 2);
    half = once_memory(&o) - htab_memory(&o.h);
    assert_true(half <= full / 2 + 65536 && half + 65536 >= full / 2);
    for (i = 0; i < n; i++) {
        if (i < n / 2)
            assert_null(get(&o, i));
        else
            assert_entry(get(&o, i), i);
    }
    /* The FIFO is intact across blocks: oldest first. */
    i = n / 2;
    for (const struct once_entry *e = o.head; e; e = e->fnext)
        assert_entry(e, i++);
    assert_int_equal(i, n);
    once_expire(&o, 100000, 1000, UINT32_MAX);
    assert_null(o.h.b);
    assert_null(o.bhead);
    assert_int_equal(once_memory(&o), 0);
    /* Usable again after it emptied. */
    assert_entry(put(&o, 7, 1000, NULL, 0), 7);
    assert_entry(get(&o, 7), 7);
    once_free(&o);
}

/* A batch's answer of TALLY_ANSWER_MAX bytes does not fit a block: it gets
 * one of its own, between small ids, and comes back whole. */
static void an_answer_bigger_than_a_block_is_kept_whole(void **state)
{
    struct once_table o;
    unsigned char *big = malloc(TALLY_ANSWER_MAX);
    struct once_entry *e;

    (void)state;
    for (size_t i = 0; i < TALLY_ANSWER_MAX; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    once_init(&o, SEED);
    for (unsigned i = 0; i < 1000; i++)
        put(&o, i, 1000, i == 500 ? big : (const void *)"ans", i == 500 ? TALLY_ANSWER_MAX : 3);
    e = get(&o, 500);
    assert_entry(e, 500);
    assert_int_equal(e->alen, TALLY_ANSWER_MAX);
    assert_memory_equal(e->id + e->idlen, big, TALLY_ANSWER_MAX);
    assert_true(once_memory(&o) >= TALLY_ANSWER_MAX + 999 * 72);
    for (unsigned i = 0; i < 1000; i++) {
        e = get(&o, i);
        assert_entry(e, i);
        if (i != 500)
            assert_memory_equal(e->id + e->idlen, "ans", 3);
    }
    /* Popped one by one, through the big block and past it. */
    for (unsigned i = 0; i < 1000; i++) {
        assert_entry(o.head, i);
        assert_int_equal(once_expire(&o, 3000, 1000, 1), i < 999);
    }
    assert_int_equal(once_memory(&o), 0);
    once_free(&o);
    free(big);
}

/* A snapshot's walk over ids while expiry pops them and frees their
 * blocks: it returns only live ids, oldest first (ASan checks that nothing
 * freed is read). */
static void walk_while_expiry_frees_blocks(void **state)
{
    struct once_table o;
    const struct once_entry *e;
    unsigned i, n = 20000, next = 0, seen = 0;

    (void)state;
    once_init(&o, SEED);
    for (i = 0; i < n; i++)
        put(&o, i, 1000 + i, NULL, 0);
    once_walk_begin(&o);
    for (int64_t now = 2000;; now += 3) {
        /* Expire ids created before now - 1000: three a turn. */
        once_expire(&o, now, 1000, UINT32_MAX);
        if (!(e = once_walk_next(&o)))
            break;
        assert_true(e->value >= now - 1000 - 1000);
        assert_true((unsigned)e->value >= next);
        next = (unsigned)e->value + 1;
        assert_entry(e, (unsigned)e->value);
        seen++;
    }
    assert_true(seen > 1000 && seen < n);
    once_free(&o);
}

/* The fingerprint hash is on disk in every IDEM record: it must stay
 * FNV-1a 64 whatever the loop does, for every length and split. */
static uint64_t fnv1a_ref(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void fingerprint_hash_is_fnv1a_on_every_length(void **state)
{
    unsigned char b[64];

    (void)state;
    assert_int_equal(tally_once_hash(TALLY_ONCE_HASH_INIT, "", 0),
                     0xcbf29ce484222325ULL);
    assert_int_equal(tally_once_hash(TALLY_ONCE_HASH_INIT, "a", 1),
                     0xaf63dc4c8601ec8cULL);
    assert_int_equal(tally_once_hash(TALLY_ONCE_HASH_INIT, "foobar", 6),
                     0x85944171f73967e8ULL);
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(b); n++)
        for (size_t cut = 0; cut <= n; cut++)
            assert_int_equal(
                tally_once_hash(tally_once_hash(TALLY_ONCE_HASH_INIT, b, cut),
                                b + cut, n - cut),
                fnv1a_ref(TALLY_ONCE_HASH_INIT, b, n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_span_blocks_and_expired_blocks_are_freed),
        cmocka_unit_test(an_answer_bigger_than_a_block_is_kept_whole),
        cmocka_unit_test(walk_while_expiry_frees_blocks),
        cmocka_unit_test(fingerprint_hash_is_fnv1a_on_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
