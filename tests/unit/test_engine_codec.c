/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_engine_codec.c - unit tests of the engine's record and header codec
 * (src/engine/codec.c) and its CRC32C (crc32c.c): round trips of every
 * record type, every truncation of a record, every flipped bit, unknown
 * types, malformed bodies behind a valid checksum, and header checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "crc32c.h"
#include "tally.h"

static void crc32c_matches_the_standard_check_value(void **state)
{
    unsigned char buf[1000];

    (void)state;
    /* The check value of CRC-32C over "123456789" (RFC 3720 B.4). */
    assert_int_equal(crc32c_extend(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c_sw_extend(0, "123456789", 9), 0xe3069283u);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t n = 0; n < sizeof(buf); n += 37) {
        assert_int_equal(crc32c_extend(0, buf, n), crc32c_sw_extend(0, buf, n));
        /* Continuing a CRC equals computing it in one go. */
        assert_int_equal(crc32c_extend(crc32c_extend(0, buf, n / 2), buf + n / 2,
                                       n - n / 2),
                         crc32c_extend(0, buf, n));
    }
}

/* Decode p[0..n) expecting one valid record of n bytes. */
static struct codec_rec decode_ok(const unsigned char *p, size_t n)
{
    struct codec_rec r;
    size_t used = 0, claimed;
    const char *why = NULL;

    assert_int_equal(codec_decode(p, n, &r, &used, &claimed, &why), CODEC_OK);
    assert_int_equal(used, n);
    return r;
}

static void put_and_del_round_trip(void **state)
{
    unsigned char buf[CODEC_REC_HDR + 11 + TALLY_KEY_MAX], key[TALLY_KEY_MAX];
    struct codec_op op;
    struct codec_rec r;
    size_t n;
    int64_t values[] = {0, 1, -1, INT64_MAX, INT64_MIN};

    (void)state;
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)i; /* binary, with NULs */
    for (size_t klen = 0; klen <= TALLY_KEY_MAX; klen += klen < 20 ? 1 : 201) {
        for (size_t v = 0; v < 5; v++) {
            op = (struct codec_op){CODEC_PUT, key, klen, values[v], 0};
            n = codec_op(buf, &op);
            assert_int_equal(n, codec_put_size(klen));
            r = decode_ok(buf, n);
            assert_int_equal(r.type, CODEC_PUT);
            assert_int_equal(r.op.klen, klen);
            assert_true(r.op.value == values[v]);
            if (klen)
                assert_memory_equal(r.op.key, key, klen);
        }
        op = (struct codec_op){CODEC_DEL, key, klen, 0, 0};
        n = codec_op(buf, &op);
        assert_int_equal(n, codec_del_size(klen));
        r = decode_ok(buf, n);
        assert_int_equal(r.type, CODEC_DEL);
        assert_int_equal(r.op.klen, klen);
        if (klen)
            assert_memory_equal(r.op.key, key, klen);
    }
}

static void put_layout_is_the_documented_one(void **state)
{
    unsigned char buf[64];
    struct codec_op op = {CODEC_PUT, "ab", 2, -2, 0};
    size_t n = codec_op(buf, &op);

    (void)state;
    assert_int_equal(n, 8 + 1 + 2 + 8 + 2);
    assert_int_equal(codec_get32(buf + 4), 13);      /* len */
    assert_int_equal(buf[8], 1);                     /* type PUT */
    assert_int_equal(buf[9] | buf[10] << 8, 2);      /* klen */
    assert_true((int64_t)codec_get64(buf + 11) == -2); /* value */
    assert_memory_equal(buf + 19, "ab", 2);
    assert_int_equal(codec_get32(buf), crc32c_extend(0, buf + 4, 4 + 13));
}

static size_t make_batch(unsigned char *buf, uint32_t *n)
{
    struct codec_op ops[3] = {{CODEC_PUT, "x", 1, 7, 0},
                              {CODEC_DEL, "yy", 2, 0, 0},
                              {CODEC_PUT, "", 0, -9, 0}};
    size_t pos = CODEC_BATCH_HDR;

    for (int i = 0; i < 3; i++)
        pos += codec_batch_add(buf + pos, &ops[i]);
    codec_batch_close(buf, pos, 3);
    *n = 3;
    return pos;
}

static void batch_round_trip(void **state)
{
    unsigned char buf[256];
    uint32_t n;
    size_t len = make_batch(buf, &n), off = 0;
    struct codec_rec r = decode_ok(buf, len);
    struct codec_op op;

    (void)state;
    assert_int_equal(r.type, CODEC_BATCH);
    assert_int_equal(r.n, 3);
    assert_true(codec_batch_next(&r, &off, &op));
    assert_int_equal(op.type, CODEC_PUT);
    assert_true(op.value == 7 && op.klen == 1 && memcmp(op.key, "x", 1) == 0);
    assert_true(codec_batch_next(&r, &off, &op));
    assert_int_equal(op.type, CODEC_DEL);
    assert_true(op.klen == 2 && memcmp(op.key, "yy", 2) == 0);
    assert_true(codec_batch_next(&r, &off, &op));
    assert_true(op.type == CODEC_PUT && op.klen == 0 && op.value == -9);
    assert_false(codec_batch_next(&r, &off, &op));
}

static void end_round_trip(void **state)
{
    unsigned char buf[CODEC_END_SIZE];
    struct codec_rec r;

    (void)state;
    assert_int_equal(codec_end(buf, 123456789012ULL), CODEC_END_SIZE);
    r = decode_ok(buf, CODEC_END_SIZE);
    assert_int_equal(r.type, CODEC_END);
    assert_true(r.end_count == 123456789012ULL);
}

/* Every proper prefix of a record is "runs past the end", never valid. */
static void every_truncation_is_short(void **state)
{
    unsigned char buf[256];
    uint32_t n;
    size_t len = make_batch(buf, &n), used, claimed;
    struct codec_rec r;
    const char *why;

    (void)state;
    for (size_t cut = 1; cut < len; cut++) {
        why = NULL;
        assert_int_equal(codec_decode(buf, cut, &r, &used, &claimed, &why),
                         CODEC_ESHORT);
        assert_non_null(why);
        assert_int_equal(claimed, cut < CODEC_REC_HDR ? cut : len);
    }
    assert_int_equal(codec_decode(buf, 0, &r, &used, &claimed, &why),
                     CODEC_ZERO);
}

/* Flipping any bit of any byte makes the record invalid. */
static void every_flipped_bit_is_caught(void **state)
{
    unsigned char buf[256];
    uint32_t n;
    size_t len = make_batch(buf, &n), used, claimed;
    struct codec_rec r;
    const char *why;
    int rc;

    (void)state;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (unsigned char)(1u << bit);
            rc = codec_decode(buf, len, &r, &used, &claimed, &why);
            assert_true(rc == CODEC_ECRC || rc == CODEC_ELEN ||
                        rc == CODEC_ESHORT);
            buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    decode_ok(buf, len);
}

/* Seal a hand-made body with a correct len and CRC. */
static size_t seal(unsigned char *buf, const unsigned char *body, size_t blen)
{
    memcpy(buf + 8, body, blen);
    codec_put32(buf + 4, (uint32_t)blen);
    codec_put32(buf, crc32c_extend(0, buf + 4, 4 + blen));
    return 8 + blen;
}

static void unknown_type_is_a_newer_version(void **state)
{
    unsigned char buf[64], body[] = {8, 1, 0, 'k'};
    size_t used, claimed, n = seal(buf, body, sizeof(body));
    struct codec_rec r;
    const char *why = NULL;

    (void)state;
    assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                     CODEC_ETYPE);
    assert_non_null(why);
}

/* A PUT with an expiry is a PUTX (type 5) and decodes as a PUT with it;
 * an expiry of 0 or past 2^48-1 behind a valid CRC is a malformed body. */
static void putx_round_trip_and_range(void **state)
{
    unsigned char buf[64];
    struct codec_op op = {CODEC_PUT, "ab", 2, -2, 1700000000123};
    struct codec_rec r;
    size_t used, claimed, n = codec_op(buf, &op);
    const char *why = NULL;

    (void)state;
    assert_int_equal(n, codec_putx_size(2));
    assert_int_equal(n, codec_op_size(&op));
    assert_int_equal(buf[8], CODEC_PUTX);
    assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                     CODEC_OK);
    assert_int_equal(r.type, CODEC_PUT);
    assert_int_equal(r.op.value, -2);
    assert_int_equal(r.op.expire, 1700000000123);
    assert_memory_equal(r.op.key, "ab", 2);
    op.expire = 0;
    assert_int_equal(codec_op(buf, &op), codec_put_size(2));
    assert_int_equal(buf[8], CODEC_PUT);
    for (int bad = 0; bad < 2; bad++) {
        unsigned char body[19 + 1] = {CODEC_PUTX, 1, 0};
        codec_put64(body + 11, bad ? (uint64_t)1 << 48 : 0);
        body[19] = 'k';
        n = seal(buf, body, sizeof(body));
        assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                         CODEC_EBODY);
    }
}

static void malformed_bodies_behind_a_valid_crc(void **state)
{
    static const unsigned char bodies[][16] = {
        {1, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'k'}, /* PUT klen 5, 1 key byte */
        {2, 9, 0, 'k'},                         /* DEL klen past the body */
        {3, 2, 0, 0, 0, 4, 0, 0, 0, 2, 1, 0, 'k'}, /* BATCH n=2, one sub */
        {3, 1, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0}, /* BATCH holding a BATCH */
        {4, 1, 2, 3},                           /* END too short */
    };
    static const size_t lens[] = {12, 4, 13, 13, 4};
    unsigned char buf[64];
    size_t used, claimed, n;
    struct codec_rec r;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        n = seal(buf, bodies[i], lens[i]);
        assert_int_equal(codec_decode(buf, n, &r, &used, &claimed, &why),
                         CODEC_EBODY);
    }
}

static void length_out_of_range(void **state)
{
    unsigned char buf[16] = {0};
    size_t used, claimed;
    struct codec_rec r;
    const char *why;

    (void)state;
    buf[0] = 1; /* a nonzero header with len 0 */
    assert_int_equal(codec_decode(buf, sizeof(buf), &r, &used, &claimed, &why),
                     CODEC_ELEN);
    codec_put32(buf + 4, CODEC_MAX_BODY + 1);
    assert_int_equal(codec_decode(buf, sizeof(buf), &r, &used, &claimed, &why),
                     CODEC_ELEN);
    assert_int_equal(claimed, CODEC_REC_HDR);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(codec_decode(buf, sizeof(buf), &r, &used, &claimed, &why),
                     CODEC_ZERO);
}

static void headers(void **state)
{
    unsigned char h[CODEC_FILE_HDR];
    uint64_t lsn;
    uint32_t hint;
    const char *why;

    (void)state;
    codec_header(h, CODEC_SNAP, 0x1122334455667788ULL, 42);
    assert_memory_equal(h, "TALLYSNP", 8);
    assert_int_equal(codec_header_check(h, sizeof(h), CODEC_SNAP, &lsn, &hint,
                                        &why), 0);
    assert_true(lsn == 0x1122334455667788ULL && hint == 42);
    /* The wrong kind, a short file, a flipped bit: corrupt. */
    assert_int_equal(codec_header_check(h, sizeof(h), CODEC_LOG, &lsn, &hint,
                                        &why), TALLY_ECORRUPT);
    assert_int_equal(codec_header_check(h, 31, CODEC_SNAP, &lsn, &hint, &why),
                     TALLY_ECORRUPT);
    for (size_t i = 0; i < sizeof(h); i++) {
        h[i] ^= 0x10;
        assert_int_not_equal(codec_header_check(h, sizeof(h), CODEC_SNAP, &lsn,
                                                &hint, &why), 0);
        h[i] ^= 0x10;
    }
    /* A log header carries no hint. */
    codec_header(h, CODEC_LOG, 7, 42);
    assert_memory_equal(h, "TALLYLOG", 8);
    assert_int_equal(codec_get32(h + 24), 0);
    /* A larger version with a valid CRC: a newer format. */
    codec_put32(h + 8, CODEC_VERSION + 1);
    codec_put32(h + 28, crc32c_extend(0, h, 28));
    assert_int_equal(codec_header_check(h, sizeof(h), CODEC_LOG, &lsn, &hint,
                                        &why), TALLY_EVERSION);
}

/* Sector pieces: the intersections with the file's 512-byte sectors. */
static void zero_sector_pieces(void **state)
{
    (void)state;
    unsigned char b[2048];
    memset(b, 1, sizeof(b));
    assert_int_equal(codec_zero_sectors(b, sizeof(b), 0), 0);
    memset(b, 0, sizeof(b));
    assert_int_equal(codec_zero_sectors(b, 512, 0), 1);
    assert_int_equal(codec_zero_sectors(b, 512, 100), 2); /* 412 + 100 */
    assert_int_equal(codec_zero_sectors(b, 2048, 1), 5);
    assert_int_equal(codec_zero_sectors(b, 0, 7), 0);
    b[411] = 1; /* the last byte of the first piece at offset 100 */
    assert_int_equal(codec_zero_sectors(b, 512, 100), 1);
    b[411] = 0;
    b[412] = 1; /* the first byte of the second */
    assert_int_equal(codec_zero_sectors(b, 512, 100), 1);
}

/* A frame seals and checks; every flipped bit of its header is caught; a
 * header that claims what it cannot is malformed. */
static void frame_round_trip(void **state)
{
    (void)state;
    unsigned char f[CODEC_FRAME_HDR + 600];
    struct codec_frame fr;
    const char *why;
    memset(f, 0, sizeof(f));
    codec_frame_open(f, 1000);
    memset(f + CODEC_FRAME_HDR + 100, 7, 500); /* 100 zero bytes first */
    codec_frame_set_len(f, 600);
    assert_int_equal(codec_frame_len(f), 600);
    codec_frame_seal(f, 32 + 1000, 900, 0);
    assert_int_equal(codec_frame_check(f, sizeof(f), &fr, &why), CODEC_OK);
    assert_int_equal(fr.lsn, 1000);
    assert_int_equal(fr.len, 600);
    assert_int_equal(fr.synced, 900);
    assert_int_equal(fr.flags, 0);
    /* At file offset 1032 the frame's pieces are [1032,1536), [1536,1668):
     * the payload's zeros lie in the first, behind the header. */
    assert_int_equal(fr.zeros, codec_zero_sectors(f, sizeof(f), 1032));
    assert_int_equal(codec_frame_check(f, CODEC_FRAME_HDR - 1, &fr, &why),
                     CODEC_ESHORT);
    for (size_t i = 0; i < CODEC_FRAME_HDR * 8; i++) {
        f[i / 8] ^= (unsigned char)(1u << (i % 8));
        assert_int_not_equal(codec_frame_check(f, sizeof(f), &fr, &why),
                             CODEC_OK);
        f[i / 8] ^= (unsigned char)(1u << (i % 8));
    }
    unsigned char z[CODEC_FRAME_HDR] = {0};
    assert_int_equal(codec_frame_check(z, sizeof(z), &fr, &why), CODEC_ZERO);
    assert_int_equal(codec_frame_check(z, 5, &fr, &why), CODEC_ZERO);
    /* synced past the frame's own LSN, a CLOSE with a payload, an unknown
     * flag: malformed behind a valid checksum. */
    codec_frame_seal(f, 1032, 1001, 0);
    assert_int_equal(codec_frame_check(f, sizeof(f), &fr, &why), CODEC_ELEN);
    codec_frame_seal(f, 1032, 1000, CODEC_FRAME_CLOSE);
    assert_int_equal(codec_frame_check(f, sizeof(f), &fr, &why), CODEC_ELEN);
    codec_frame_seal(f, 1032, 1000, 2);
    assert_int_equal(codec_frame_check(f, sizeof(f), &fr, &why), CODEC_ELEN);
    codec_frame_set_len(f, 0);
    codec_frame_seal(f, 1032, 1000, CODEC_FRAME_CLOSE);
    assert_int_equal(codec_frame_check(f, sizeof(f), &fr, &why), CODEC_OK);
    assert_int_equal(fr.flags, CODEC_FRAME_CLOSE);
}

/* Version 4 is written; 1 to 3 are read; 5 is newer. */
static void header_versions(void **state)
{
    (void)state;
    unsigned char h[CODEC_FILE_HDR];
    uint64_t lsn;
    const char *why;
    codec_header(h, CODEC_LOG, 5, 0);
    assert_int_equal(codec_header_version(h), CODEC_VERSION);
    assert_int_equal(CODEC_VERSION, 4);
    for (uint32_t v = CODEC_VERSION_MIN; v < CODEC_VERSION; v++) {
        codec_header_set_version(h, v);
        assert_int_equal(codec_header_check(h, sizeof(h), CODEC_LOG, &lsn,
                                            NULL, &why), 0);
        assert_int_equal(codec_header_version(h), v);
    }
    codec_header_set_version(h, 0);
    assert_int_equal(codec_header_check(h, sizeof(h), CODEC_LOG, &lsn, NULL,
                                        &why), TALLY_ECORRUPT);
    codec_header_set_version(h, CODEC_VERSION + 1);
    assert_int_equal(codec_header_check(h, sizeof(h), CODEC_LOG, &lsn, NULL,
                                        &why), TALLY_EVERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_matches_the_standard_check_value),
        cmocka_unit_test(put_and_del_round_trip),
        cmocka_unit_test(put_layout_is_the_documented_one),
        cmocka_unit_test(batch_round_trip),
        cmocka_unit_test(end_round_trip),
        cmocka_unit_test(every_truncation_is_short),
        cmocka_unit_test(every_flipped_bit_is_caught),
        cmocka_unit_test(unknown_type_is_a_newer_version),
        cmocka_unit_test(putx_round_trip_and_range),
        cmocka_unit_test(malformed_bodies_behind_a_valid_crc),
        cmocka_unit_test(length_out_of_range),
        cmocka_unit_test(headers),
        cmocka_unit_test(zero_sector_pieces),
        cmocka_unit_test(frame_round_trip),
        cmocka_unit_test(header_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
