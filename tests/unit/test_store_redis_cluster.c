/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_store_redis_cluster.c - the hash slot the cluster store routes an
 * operation by (src/store/redis_cluster.c): Redis Cluster's own slot of
 * the Redis key redis_ops.c writes, for any bytes a key may hold, without
 * a server.  The values named below are what `CLUSTER KEYSLOT` answered
 * on Redis 7.0.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis_int.h"

static const struct redis_keys kp = {"tally:", 6, 0};
static char sha[REDIS_S_COUNT_ALL][41];

/* Redis's keyHashSlot() over a whole Redis key, written apart from the
 * code under test: CRC16-CCITT (XMODEM) of the hash tag, or of the key. */
static int reference_slot(const char *k, size_t n)
{
    size_t s, e, from = 0, to = n;
    uint16_t crc = 0;

    for (s = 0; s < n && k[s] != '{'; s++)
        ;
    if (s < n) {
        for (e = s + 1; e < n && k[e] != '}'; e++)
            ;
        if (e < n && e > s + 1) {
            from = s + 1;
            to = e;
        }
    }
    for (size_t i = from; i < to; i++) {
        crc ^= (uint16_t)((unsigned char)k[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc & 16383;
}

/* The first key of a formatted GET: "*4\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>
 * \r\n$1\r\n1\r\n$N\r\nKEY\r\n". */
static void formatted_key(const struct store_req *req, char *out, size_t *n)
{
    struct redis_op op;
    const char *p;
    int i;

    memset(&op, 0, sizeof op);
    assert_int_equal(redis_op_format(&kp, sha, 1000, req, &op), STORE_OK);
    p = op.cmd;
    for (i = 0; i < 7; i++) /* past *4, $7, EVALSHA, $40, sha, $1, 1 */
        p = strstr(p, "\r\n") + 2;
    *n = (size_t)strtoul(p + 1, NULL, 10);
    p = strstr(p, "\r\n") + 2;
    memcpy(out, p, *n);
    free(op.cmd);
}

static void slots_are_what_redis_cluster_says(void **state)
{
    (void)state;
    assert_int_equal(reference_slot("123456789", 9), 12739);
    assert_int_equal(reference_slot("foo", 3), 12182);
    /* tally:{page:home}, tally:{%} (the empty key), and a key whose
     * braces and '%' are escaped: x{a%7Bb%25%7D}. */
    assert_int_equal(redis_cluster_slot("page:home", 9), 14217);
    assert_int_equal(redis_cluster_slot("", 0), 13511);
    assert_int_equal(redis_cluster_slot("a{b%}", 5), 13569);
}

static void the_slot_is_that_of_the_key_redis_ops_writes(void **state)
{
    static const char alphabet[] = "ab{}%7BD:\0x";
    char key[16], rkey[128];
    size_t n;

    (void)state;
    srand(12);
    for (int t = 0; t < 5000; t++) {
        struct store_req req;
        size_t klen = (size_t)(rand() % 8);
        for (size_t i = 0; i < klen; i++)
            key[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        memset(&req, 0, sizeof req);
        req.op = STORE_GET;
        req.key = key;
        req.klen = klen;
        formatted_key(&req, rkey, &n);
        assert_int_equal(redis_cluster_slot(key, klen),
                         reference_slot(rkey, n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slots_are_what_redis_cluster_says),
        cmocka_unit_test(the_slot_is_that_of_the_key_redis_ops_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
