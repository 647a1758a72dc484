/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_proto_resp.c - the Redis protocol front end (src/proto/resp*.c)
 * driven through resp_ops.handle() over a real engine in a temporary
 * directory, as the daemon drives it: every command's reply bytes (Redis
 * 7's texts), pipelined input, every split point of requests, malformed
 * and oversized input (error text and PROTO_CLOSE), RESP3 after HELLO 3,
 * AUTH, and the .ONCE commands (idempotency ids).  Each reply's ticket is
 * waited on with tally_wait() before the reply is looked at.  This program
 * holds the engine's sync thread (sync_gate.h) in one case to
 * see a repeat of an id whose first request is still in flight.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd.h"
#include "resp.h"
#include "resp_int.h"

#include "cmd_fixture.h"
#include "sync_gate.h"

struct fx {
    struct cmdfx c;
    struct proto_limits lim;
    struct resp_front *front; /* the command index, as fronts.c makes it */
    void *conn;
    struct buf out;
    unsigned flags; /* PROTO_* of everything handled since the last send */
};

static int fx_open(void **state, const char *password)
{
    struct fx *f = xcalloc(1, sizeof *f);
    const struct cmd_serverinfo info = {.version = "9.9.9-test",
                                        .port = 7379, .maxclients = 100};
    struct proto_limits lim = PROTO_LIMITS_DEFAULT;

    if (cmdfx_open(&f->c, "resp", CMD_PROTO_RESP, password, &info) != 0) {
        free(f);
        return -1;
    }
    f->c.s.id = 42;
    f->lim = lim;
    f->front = resp_front_new();
    f->conn = resp_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim,
                                "127.0.0.1:5555");
    *state = f;
    return 0;
}

static int setup(void **state) { return fx_open(state, NULL); }
static int setup_pass(void **state) { return fx_open(state, "sekret"); }

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc;

    resp_ops.conn_free(f->conn);
    resp_front_free(f->front);
    buf_free(&f->out);
    rc = cmdfx_close(&f->c);
    free(f);
    return rc;
}

/* Hand in[0, len) to the front end as the daemon does: one request per
 * call until nothing complete is left.  Waits for every ticket, checks it
 * names a real log position, and returns how many bytes were taken. */
static size_t feed(struct fx *f, const char *in, size_t len)
{
    size_t off = 0;

    while (off < len) {
        struct proto_out o = {&f->out, 0, 0};
        size_t n = resp_ops.handle(f->conn, in + off, len - off, &o);
        if (n == 0)
            break;
        assert_true(n <= len - off);
        assert_true(o.ticket <= tally_head(f->c.db));
        assert_int_equal(tally_wait(f->c.db, o.ticket), TALLY_OK);
        f->flags |= o.flags;
        off += n;
        if (o.flags & PROTO_CLOSE)
            break;
    }
    return off;
}

/* Send a whole request (or several) and return the reply text. */
static const char *send(struct fx *f, const char *in)
{
    buf_clear(&f->out);
    f->flags = 0;
    assert_int_equal(feed(f, in, strlen(in)), strlen(in));
    return f->out.p ? f->out.p : "";
}

/* Check one exchange; on a mismatch show both sides. */
#define EXPECT(f, in, want) assert_string_equal(send(f, in), want)

static void test_ping_echo_select_quit(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "PING\r\n", "+PONG\r\n");
    EXPECT(f, "*1\r\n$4\r\nping\r\n", "+PONG\r\n");
    EXPECT(f, "*2\r\n$4\r\nPiNg\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n");
    EXPECT(f, "ping a b\r\n",
           "-ERR wrong number of arguments for 'ping' command\r\n");
    EXPECT(f, "echo \"a b\"\r\n", "$3\r\na b\r\n");
    EXPECT(f, "echo\r\n",
           "-ERR wrong number of arguments for 'echo' command\r\n");
    EXPECT(f, "select 0\r\n", "+OK\r\n");
    EXPECT(f, "select 1\r\n", "-ERR DB index is out of range\r\n");
    EXPECT(f, "select x\r\n",
           "-ERR value is not an integer or out of range\r\n");
    assert_int_equal(f->flags, 0);
    EXPECT(f, "quit\r\n", "+OK\r\n");
    assert_int_equal(f->flags, PROTO_CLOSE);
}

static void test_counter_commands(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "incr c\r\n", ":1\r\n");
    EXPECT(f, "incrby c 10\r\n", ":11\r\n");
    EXPECT(f, "decr c\r\n", ":10\r\n");
    EXPECT(f, "decrby c 15\r\n", ":-5\r\n");
    EXPECT(f, "get c\r\n", "$2\r\n-5\r\n");
    EXPECT(f, "get nokey\r\n", "$-1\r\n");
    EXPECT(f, "incrby c x\r\n",
           "-ERR value is not an integer or out of range\r\n");
    EXPECT(f, "incrby c 01\r\n",
           "-ERR value is not an integer or out of range\r\n");
    EXPECT(f, "incr\r\n",
           "-ERR wrong number of arguments for 'incr' command\r\n");
    EXPECT(f, "set m 9223372036854775807\r\n", "+OK\r\n");
    EXPECT(f, "incr m\r\n", "-ERR increment or decrement would overflow\r\n");
    EXPECT(f, "decrby m -9223372036854775808\r\n",
           "-ERR decrement would overflow\r\n");
    EXPECT(f, "get m\r\n", "$19\r\n9223372036854775807\r\n");
    EXPECT(f, "getset m 1\r\n", "$19\r\n9223372036854775807\r\n");
    EXPECT(f, "getdel m\r\n", "$1\r\n1\r\n");
    EXPECT(f, "getdel m\r\n", "$-1\r\n");
    EXPECT(f, "getset m 2\r\n", "$-1\r\n");
    assert_int_equal(f->c.ctx.stats.errors[CMD_PROTO_RESP][CMD_INCRBY], 4);
}

static void test_once_commands(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "incrby.once c 5 id1\r\n", ":5\r\n");
    EXPECT(f, "incrby.once c 5 id1\r\n", ":5\r\n"); /* a replay */
    EXPECT(f, "INCRBY.ONCE c 5 id1\r\n", ":5\r\n");
    EXPECT(f, "decrby.once c -5 id1\r\n", ":5\r\n"); /* the same delta */
    EXPECT(f, "incrby c 1\r\n", ":6\r\n");
    EXPECT(f, "incrby.once c 5 id1\r\n", ":5\r\n"); /* as the first */
    EXPECT(f, "incrby.once c 6 id1\r\n",
           "-ERR idempotency id was already used for a different request; "
           "nothing was applied\r\n");
    EXPECT(f, "decrby.once c 2 id2\r\n", ":4\r\n");
    EXPECT(f, "get c\r\n", "$1\r\n4\r\n");

    EXPECT(f, "set.once k 7 s1\r\n", "+OK\r\n");
    EXPECT(f, "set k 8\r\n", "+OK\r\n");
    EXPECT(f, "set.once k 7 s1\r\n", "+OK\r\n");
    EXPECT(f, "get k\r\n", "$1\r\n8\r\n");
    EXPECT(f, "set.once k 9 s1\r\n",
           "-ERR idempotency id was already used for a different request; "
           "nothing was applied\r\n");

    EXPECT(f, "getdel.once k g1\r\n", "$1\r\n8\r\n");
    EXPECT(f, "set k 1\r\n", "+OK\r\n");
    EXPECT(f, "getdel.once k g1\r\n", "$1\r\n8\r\n");
    EXPECT(f, "del.once k d1\r\n", ":1\r\n");
    EXPECT(f, "set k 2\r\n", "+OK\r\n");
    EXPECT(f, "del.once k d1\r\n", ":1\r\n");
    EXPECT(f, "get k\r\n", "$1\r\n2\r\n");
    EXPECT(f, "del.once nokey d2\r\n", ":0\r\n");
    EXPECT(f, "getdel.once nokey g2\r\n", "$-1\r\n");

    /* Arguments: arity, numbers, id length, the DECRBY corner. */
    EXPECT(f, "incrby.once c 5\r\n",
           "-ERR wrong number of arguments for 'incrby.once' command\r\n");
    EXPECT(f, "set.once k 1\r\n",
           "-ERR wrong number of arguments for 'set.once' command\r\n");
    EXPECT(f, "del.once a b c\r\n",
           "-ERR wrong number of arguments for 'del.once' command\r\n");
    EXPECT(f, "incrby.once c x id3\r\n",
           "-ERR value is not an integer or out of range\r\n");
    EXPECT(f, "set.once k x id3\r\n",
           "-ERR value is not an integer or out of range (tally stores "
           "signed 64-bit integer counters only)\r\n");
    EXPECT(f, "decrby.once c -9223372036854775808 id3\r\n",
           "-ERR decrement would overflow\r\n");
    EXPECT(f, "*4\r\n$11\r\nincrby.once\r\n$1\r\nc\r\n$1\r\n1\r\n$0\r\n"
              "\r\n",
           "-ERR idempotency id must be 1 to 256 bytes\r\n");
    char big[400];
    snprintf(big, sizeof big, "incrby.once c 1 %0257d\r\n", 0);
    EXPECT(f, big, "-ERR idempotency id must be 1 to 256 bytes\r\n");
    EXPECT(f, "get c\r\n", "$1\r\n4\r\n");
    /* Ids are binary-safe. */
    static const char nul1[] = "*4\r\n$11\r\nincrby.once\r\n$1\r\nc\r\n"
                               "$1\r\n1\r\n$3\r\na\0b\r\n";
    static const char nul2[] = "*4\r\n$11\r\nincrby.once\r\n$1\r\nc\r\n"
                               "$1\r\n1\r\n$3\r\na\0c\r\n";
    for (int i = 0; i < 2; i++) {
        buf_clear(&f->out);
        assert_int_equal(feed(f, nul1, sizeof nul1 - 1), sizeof nul1 - 1);
        assert_int_equal(feed(f, nul2, sizeof nul2 - 1), sizeof nul2 - 1);
        assert_string_equal(f->out.p, ":5\r\n:6\r\n");
    }
    assert_int_equal(tally_once_count(f->c.db), 9);
}

/* A repeat while the first request is not durable: TRYAGAIN, a Redis
 * error prefix clients treat as retryable. */
static void test_once_in_flight_is_tryagain(void **state)
{
    struct fx *f = *state;
    const char *req = "incrby.once c 1 fly\r\n";
    struct proto_out o1 = {&f->out, 0, 0}, o2 = {&f->out, 0, 0};

    buf_clear(&f->out);
    sync_gate(1, 0);
    assert_int_equal(resp_ops.handle(f->conn, req, strlen(req), &o1),
                     strlen(req));
    assert_true(o1.ticket > tally_durable(f->c.db));
    assert_int_equal(resp_ops.handle(f->conn, req, strlen(req), &o2),
                     strlen(req));
    sync_gate(0, 0);
    assert_int_equal(tally_wait(f->c.db, o1.ticket), TALLY_OK);
    assert_string_equal(f->out.p,
                        ":1\r\n-TRYAGAIN the first request with this "
                        "idempotency id is not durable yet; retry "
                        "shortly\r\n");
    EXPECT(f, req, ":1\r\n");
}

static void test_set_options(void **state)
{
    struct fx *f = *state;
    const char *notint = "-ERR value is not an integer or out of range "
                         "(tally stores signed 64-bit integer counters "
                         "only)\r\n";

    EXPECT(f, "set k 1\r\n", "+OK\r\n");
    EXPECT(f, "set k abc\r\n", notint);
    EXPECT(f, "set k 1.5\r\n", notint);
    EXPECT(f, "set k 2 nx\r\n", "$-1\r\n");
    EXPECT(f, "set k 2 xx\r\n", "+OK\r\n");
    EXPECT(f, "set k 3 NX GET\r\n", "$1\r\n2\r\n"); /* not set, old shown */
    EXPECT(f, "set k 3 xx get\r\n", "$1\r\n2\r\n");
    EXPECT(f, "set new 3 xx get\r\n", "$-1\r\n");
    EXPECT(f, "set new 3 nx get\r\n", "$-1\r\n");
    EXPECT(f, "get new\r\n", "$1\r\n3\r\n");
    EXPECT(f, "set k 1 nx xx\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k 1 xx nx\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k 1 foo\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k 1 ex\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k 1 ex 10 px 10\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k\r\n",
           "-ERR wrong number of arguments for 'set' command\r\n");
    EXPECT(f, "get k\r\n", "$1\r\n3\r\n");
    /* Expiry options (regression: they were refused, "counters never
     * expire"). */
    EXPECT(f, "set k 1 ex 10\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":10\r\n");
    EXPECT(f, "set k 2 keepttl\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":10\r\n");
    EXPECT(f, "set k 1 PX 10000 keepttl\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "set k 1 ex 0\r\n",
           "-ERR invalid expire time in 'set' command\r\n");
    EXPECT(f, "SET k 1 EX 9999999999999999\r\n",
           "-ERR invalid expire time in 'set' command\r\n");
    EXPECT(f, "set k 1 ex abc\r\n",
           "-ERR value is not an integer or out of range\r\n");
    EXPECT(f, "set k 3\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":-1\r\n");
}

/* INCRBY.ONCE, DECRBY.ONCE and SET.ONCE with an expiry after the id: SET's
 * option parser and Redis's texts for its mistakes; a refused request uses
 * no id and creates nothing. */
static void test_once_ttl_options(void **state)
{
    struct fx *f = *state;
    static const char *const syntax[] = {
        "incrby.once c 1 id ex\r\n",
        "incrby.once c 1 id nx\r\n",
        "incrby.once c 1 id ex 10 px 10\r\n",
        "incrby.once c 1 id keepttl\r\n",
        "incrby.once c 1 id xx ex 10\r\n",
        "incrby.once c 1 id get\r\n",
        "decrby.once c 1 id px 10 foo\r\n",
        "set.once c 1 id nx\r\n",
        "set.once c 1 id get\r\n",
        "set.once c 1 id ex 10 keepttl\r\n",
        "set.once c 1 id keepttl px 10\r\n",
    };

    for (size_t i = 0; i < sizeof syntax / sizeof *syntax; i++)
        EXPECT(f, syntax[i], "-ERR syntax error\r\n");
    EXPECT(f, "incrby.once c 1 id ex 0\r\n",
           "-ERR invalid expire time in 'incrby.once' command\r\n");
    EXPECT(f, "INCRBY.ONCE c 1 id EX -5 NX\r\n",
           "-ERR invalid expire time in 'incrby.once' command\r\n");
    EXPECT(f, "incrby.once c 1 id exat 9999999999999999\r\n",
           "-ERR invalid expire time in 'incrby.once' command\r\n");
    EXPECT(f, "decrby.once c 1 id px 0\r\n",
           "-ERR invalid expire time in 'decrby.once' command\r\n");
    EXPECT(f, "set.once c 1 id pxat 0\r\n",
           "-ERR invalid expire time in 'set.once' command\r\n");
    EXPECT(f, "incrby.once c 1 id px abc\r\n",
           "-ERR value is not an integer or out of range\r\n");
    /* Options first, then the expiry, then the number, as SET. */
    EXPECT(f, "incrby.once c x id px 0\r\n",
           "-ERR invalid expire time in 'incrby.once' command\r\n");
    EXPECT(f, "exists c\r\n", ":0\r\n");

    /* The id was not used: it works, and sets the expiry. */
    EXPECT(f, "incrby.once c 1 id ex 100\r\n", ":1\r\n");
    EXPECT(f, "ttl c\r\n", ":100\r\n");
    EXPECT(f, "incrby.once c 1 id EX 100\r\n", ":1\r\n"); /* a replay */
    EXPECT(f, "incrby.once c 1 id px 100000\r\n", ":1\r\n"); /* the same */
    EXPECT(f, "incrby.once c 1 id ex 200\r\n",
           "-ERR idempotency id was already used for a different request; "
           "nothing was applied\r\n");
    EXPECT(f, "incrby.once c 1 id\r\n",
           "-ERR idempotency id was already used for a different request; "
           "nothing was applied\r\n");
    /* NX: the expiry only when the increment creates the counter. */
    EXPECT(f, "incrby.once c 1 id2 ex 50 nx\r\n", ":2\r\n");
    EXPECT(f, "ttl c\r\n", ":100\r\n");
    EXPECT(f, "decrby.once n 1 id3 NX PX 50000\r\n", ":-1\r\n");
    EXPECT(f, "ttl n\r\n", ":50\r\n");
    /* Without NX it sets it; with none it keeps it, as today. */
    EXPECT(f, "incrby.once c 1 id4 ex 30\r\n", ":3\r\n");
    EXPECT(f, "ttl c\r\n", ":30\r\n");
    EXPECT(f, "incrby.once c 1 id5\r\n", ":4\r\n");
    EXPECT(f, "ttl c\r\n", ":30\r\n");

    /* SET.ONCE: an expiry, KEEPTTL, or none (which clears it, as SET). */
    EXPECT(f, "set.once k 7 s1 px 20000\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":20\r\n");
    EXPECT(f, "set.once k 8 s2 keepttl\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":20\r\n");
    EXPECT(f, "get k\r\n", "$1\r\n8\r\n");
    EXPECT(f, "set.once k 8 s2\r\n",
           "-ERR idempotency id was already used for a different request; "
           "nothing was applied\r\n");
    EXPECT(f, "set.once k 9 s3\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":-1\r\n");
}

/* The expiry commands' replies and Redis 7's error texts (more, against a
 * real redis-server, in tests/e2e/test_resp_expire.py). */
static void test_expiry_commands(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "setex k 100 5\r\n", "+OK\r\n");
    EXPECT(f, "ttl k\r\n", ":100\r\n");
    EXPECT(f, "pttl nokey\r\n", ":-2\r\n");
    EXPECT(f, "expire k 10 nx gt\r\n",
           "-ERR NX and XX, GT or LT options at the same time are not "
           "compatible\r\n");
    EXPECT(f, "expire k 10 gt lt\r\n",
           "-ERR GT and LT options at the same time are not compatible\r\n");
    EXPECT(f, "expire k 10 foo\r\n", "-ERR Unsupported option foo\r\n");
    EXPECT(f, "expire k 9999999999999999\r\n",
           "-ERR invalid expire time in 'expire' command\r\n");
    EXPECT(f, "pexpire k 9223372036854775000\r\n",
           "-ERR invalid expire time in 'pexpire' command\r\n");
    EXPECT(f, "expire k 50 gt\r\n", ":0\r\n");
    EXPECT(f, "expire k 50 lt\r\n", ":1\r\n");
    EXPECT(f, "expire nokey 50\r\n", ":0\r\n");
    EXPECT(f, "persist k\r\n", ":1\r\n");
    EXPECT(f, "persist k\r\n", ":0\r\n");
    EXPECT(f, "expiretime k\r\n", ":-1\r\n");
    EXPECT(f, "psetex k 0 1\r\n",
           "-ERR invalid expire time in 'psetex' command\r\n");
    EXPECT(f, "getex k persist ex 10\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "getex nokey ex 0\r\n", "$-1\r\n");
    EXPECT(f, "getex k ex 0\r\n",
           "-ERR invalid expire time in 'getex' command\r\n");
    EXPECT(f, "getex k px 5000\r\n", "$1\r\n5\r\n");
    EXPECT(f, "ttl k\r\n", ":5\r\n");
    EXPECT(f, "getex k exat 1\r\n", "$1\r\n5\r\n");
    EXPECT(f, "exists k\r\n", ":0\r\n");
    EXPECT(f, "set k 7\r\n", "+OK\r\n");
    EXPECT(f, "expire k -1\r\n", ":1\r\n");
    EXPECT(f, "get k\r\n", "$-1\r\n");
}

static void test_multi_key_commands(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "mset a 1 b 2\r\n", "+OK\r\n");
    EXPECT(f, "mset a 1 b\r\n",
           "-ERR wrong number of arguments for 'mset' command\r\n");
    EXPECT(f, "mset a 1 b x\r\n",
           "-ERR value is not an integer or out of range (tally stores "
           "signed 64-bit integer counters only)\r\n");
    EXPECT(f, "mget a b c\r\n", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
    EXPECT(f, "exists a a c\r\n", ":2\r\n");
    EXPECT(f, "dbsize\r\n", ":2\r\n");
    EXPECT(f, "del a c\r\n", ":1\r\n");
    EXPECT(f, "del\r\n", "-ERR wrong number of arguments for 'del' command\r\n");
    EXPECT(f, "mget\r\n",
           "-ERR wrong number of arguments for 'mget' command\r\n");
    EXPECT(f, "dbsize x\r\n",
           "-ERR wrong number of arguments for 'dbsize' command\r\n");
    EXPECT(f, "keys *\r\n", "*1\r\n$1\r\nb\r\n");
    EXPECT(f, "keys a*\r\n", "*0\r\n");
}

static void test_key_over_limit(void **state)
{
    struct fx *f = *state;
    char req[2048];
    const char *want = "-ERR key is too long (tally allows at most 1024 "
                       "bytes)\r\n";

    snprintf(req, sizeof req, "*2\r\n$4\r\nincr\r\n$1025\r\n%01025d\r\n", 0);
    EXPECT(f, req, want);
    snprintf(req, sizeof req, "*2\r\n$4\r\nincr\r\n$1024\r\n%01024d\r\n", 0);
    EXPECT(f, req, ":1\r\n");
}

static void test_scan(void **state)
{
    struct fx *f = *state;
    char req[64], cursor[32] = "0";
    int seen = 0, steps = 0;

    EXPECT(f, "scan x\r\n", "-ERR invalid cursor\r\n");
    EXPECT(f, "scan 0 count 0\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "scan 0 count x\r\n",
           "-ERR value is not an integer or out of range\r\n");
    EXPECT(f, "scan 0 match\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "scan 0 foo bar\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "scan 0\r\n", "*2\r\n$1\r\n0\r\n*0\r\n");
    EXPECT(f, "set user:1 1\r\n", "+OK\r\n");
    EXPECT(f, "set other 1\r\n", "+OK\r\n");
    EXPECT(f, "scan 0 match user:* count 1000\r\n",
           "*2\r\n$1\r\n0\r\n*1\r\n$6\r\nuser:1\r\n");
    EXPECT(f, "scan 0 type hash\r\n", "*2\r\n$1\r\n0\r\n*0\r\n");
    EXPECT(f, "scan 0 type string match o*\r\n",
           "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
    for (int i = 0; i < 50; i++) {
        snprintf(req, sizeof req, "incr k%d\r\n", i);
        send(f, req);
    }
    /* Walk with COUNT 3 until the cursor comes back to 0. */
    do {
        snprintf(req, sizeof req, "scan %s match k* count 3\r\n", cursor);
        const char *r = send(f, req);
        const char *p;
        size_t n;
        assert_true(sscanf(r, "*2\r\n$%zu\r\n", &n) == 1);
        p = strstr(r, "\r\n") + 2;
        p = strstr(p, "\r\n") + 2;
        snprintf(cursor, sizeof cursor, "%.*s", (int)n, p);
        p = strstr(p, "\r\n*") + 3;
        seen += atoi(p);
        assert_true(++steps < 1000);
    } while (strcmp(cursor, "0") != 0);
    assert_true(seen >= 50); /* at least once each; repeats allowed */
}

static void test_unknown_command_wording(void **state)
{
    struct fx *f = *state;
    char big[400], want[400];

    EXPECT(f, "foo a b\r\n", "-ERR unknown command 'foo', with args "
                             "beginning with: 'a' 'b' \r\n");
    EXPECT(f, "foo\r\n", "-ERR unknown command 'foo', with args beginning "
                         "with: \r\n");
    /* A line break inside an argument cannot end the error early. */
    EXPECT(f, "*2\r\n$3\r\nfoo\r\n$4\r\na\r\nb\r\n",
           "-ERR unknown command 'foo', with args beginning with: 'a  b' \r\n");
    /* Arguments are quoted up to about 128 bytes, as Redis cuts them. */
    memset(big, 'x', 200);
    memcpy(big, "foo ", 4);
    strcpy(big + 200, "\r\n");
    snprintf(want, sizeof want, "-ERR unknown command 'foo', with args "
                                "beginning with: '%.128s' \r\n", big + 4);
    EXPECT(f, big, want);
}

/* resp_lookup's index folds bytes with | 0x20 before hashing (resp.c):
 * every command is still found in any case, and only by its whole name. */
static void test_command_names_match_in_any_case_and_whole(void **state)
{
    struct fx *f = *state;
    char name[64];

    const struct resp_front *fr = f->front;

    for (size_t i = 0; i < resp_ncommands; i++) {
        const char *cn = resp_commands[i].name;
        size_t n = strlen(cn);
        assert_true(n > 0 && n + 1 < sizeof name);
        for (size_t j = 0; j < n; j++)
            name[j] = (char)(cn[j] >= 'a' && cn[j] <= 'z' ? cn[j] - 32 : cn[j]);
        assert_ptr_equal(resp_lookup(fr, name, n), &resp_commands[i]);
        assert_ptr_equal(resp_lookup(fr, cn, n), &resp_commands[i]);
        /* Neither a prefix nor a longer name, nor one with a NUL inside. */
        assert_ptr_not_equal(resp_lookup(fr, cn, n - 1), &resp_commands[i]);
        memcpy(name, cn, n);
        name[n] = 'x';
        assert_ptr_not_equal(resp_lookup(fr, name, n + 1), &resp_commands[i]);
        name[n] = 0;
        assert_ptr_not_equal(resp_lookup(fr, name, n + 1), &resp_commands[i]);
        /* The same first letter is not enough, nor a byte that hashes
         * like a letter ('@' | 0x20 is '`', next to 'a'). */
        name[n - 1] = '#';
        assert_null(resp_lookup(fr, name, n));
        memcpy(name, cn, n);
        name[0] = '@';
        assert_null(resp_lookup(fr, name, n));
    }
    assert_null(resp_lookup(fr, "", 0));
    EXPECT(f, "InCr c\r\n", ":1\r\n");
    EXPECT(f, "`ncr c\r\n", "-ERR unknown command '`ncr', with args "
                             "beginning with: 'c' \r\n");
}

static void test_admin_commands(void **state)
{
    struct fx *f = *state;
    const char *r;

    EXPECT(f, "client id\r\n", ":42\r\n");
    EXPECT(f, "client getname\r\n", "$-1\r\n");
    EXPECT(f, "client setname app\r\n", "+OK\r\n");
    EXPECT(f, "client getname\r\n", "$3\r\napp\r\n");
    EXPECT(f, "client setname \"a b\"\r\n",
           "-ERR Client names cannot contain spaces, newlines or special "
           "characters.\r\n");
    EXPECT(f, "client setinfo lib-name redis-py\r\n", "+OK\r\n");
    EXPECT(f, "client setinfo lib-ver 5.0.1\r\n", "+OK\r\n");
    EXPECT(f, "client setinfo foo bar\r\n",
           "-ERR Unrecognized option 'foo'\r\n");
    EXPECT(f, "client foo\r\n",
           "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n");
    EXPECT(f, "client getname x\r\n",
           "-ERR wrong number of arguments for 'client|getname' command\r\n");
    EXPECT(f, "client\r\n",
           "-ERR wrong number of arguments for 'client' command\r\n");
    r = send(f, "client info\r\n");
    assert_non_null(strstr(r, "id=42 addr=127.0.0.1:5555 laddr= fd=-1 name=app "));
    assert_non_null(strstr(r, "lib-name=redis-py lib-ver=5.0.1\n\r\n"));

    EXPECT(f, "config get save\r\n", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    EXPECT(f, "config get appendonly\r\n",
           "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n");
    EXPECT(f, "CONFIG GET APPEND*\r\n",
           "*4\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n$11\r\nappendfsync\r\n"
           "$6\r\nalways\r\n");
    EXPECT(f, "config get save save sa?e\r\n",
           "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    EXPECT(f, "config get nosuch\r\n", "*0\r\n");
    /* Without the daemon's settings (cmd_serverinfo.config) nothing can be
     * set; tests/e2e/test_config.py covers CONFIG SET against tallyd. */
    EXPECT(f, "config set save x\r\n",
           "-ERR Unknown option or number of arguments for CONFIG SET - "
           "'save'\r\n");
    EXPECT(f, "config set\r\n",
           "-ERR wrong number of arguments for 'config|set' command\r\n");
    EXPECT(f, "config get\r\n",
           "-ERR wrong number of arguments for 'config|get' command\r\n");

    r = send(f, "command count\r\n");
    assert_true(r[0] == ':' && atoi(r + 1) >= 25);
    r = send(f, "command info get nosuch\r\n");
    assert_string_equal(r, "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n"
                           "+fast\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n"
                           "$-1\r\n");
    r = send(f, "command\r\n");
    assert_true(strncmp(r, "*", 1) == 0 && strstr(r, "$6\r\nincrby\r\n"));
    EXPECT(f, "command docs\r\n", "*0\r\n");
    EXPECT(f, "command docs get\r\n", "*0\r\n");
    EXPECT(f, "command foo\r\n",
           "-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n");
}

static void test_info(void **state)
{
    struct fx *f = *state;
    const char *r;

    send(f, "incr a\r\n");
    r = send(f, "info\r\n");
    assert_true(r[0] == '$');
    assert_non_null(strstr(r, "# Server\r\nredis_version:7.0.0\r\n"));
    assert_non_null(strstr(r, "tally_version:9.9.9-test\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n# Clients\r\n"));
    assert_non_null(strstr(r, "aof_enabled:1\r\n"));
    assert_non_null(strstr(r, "tally_sync:always\r\n"));
    assert_non_null(strstr(r, "total_commands_processed:1\r\n"));
    assert_non_null(strstr(r, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0"));
    assert_null(strstr(r, "cmdstat_"));
    r = send(f, "info keyspace\r\n");
    assert_string_equal(r, "$44\r\n# Keyspace\r\ndb0:keys=1,expires=0,"
                           "avg_ttl=0\r\n\r\n");
    r = send(f, "info commandstats\r\n");
    assert_non_null(strstr(r, "cmdstat_incrby:calls=1,failed_calls=0,"
                              "calls_resp=1,calls_http=0,calls_memcache=0"));
    EXPECT(f, "info nosuch\r\n", "$0\r\n\r\n");
}

static void test_save_bgsave(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "bgsave x\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "save\r\n", "+OK\r\n");
    EXPECT(f, "bgsave\r\n", "+Background saving started\r\n");
    while (tally_step(f->c.db, 1000) > 0)
        ;
}

static void test_shutdown(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "shutdown foo\r\n", "-ERR syntax error\r\n");
    EXPECT(f, "shutdown abort\r\n", "-ERR No shutdown in progress.\r\n");
    assert_int_equal(f->flags, 0);
    EXPECT(f, "shutdown nosave\r\n", "");
    assert_int_equal(f->flags, PROTO_SHUTDOWN | PROTO_CLOSE);
}

static void test_pipelined_requests_one_at_a_time(void **state)
{
    struct fx *f = *state;
    const char *in = "incr p\r\n*2\r\n$4\r\nincr\r\n$1\r\np\r\nget p\r\n";
    struct proto_out o = {&f->out, 0, 0};
    size_t n;

    buf_clear(&f->out);
    /* handle() takes exactly one request per call. */
    n = resp_ops.handle(f->conn, in, strlen(in), &o);
    assert_int_equal(n, 8);
    assert_string_equal(f->out.p, ":1\r\n");
    assert_int_equal(tally_wait(f->c.db, o.ticket), TALLY_OK);
    EXPECT(f, in + 8, ":2\r\n$1\r\n2\r\n");
    /* Empty lines and empty arrays carry no command and get no reply. */
    EXPECT(f, "\r\n\r\n  \r\n*0\r\n*-1\r\nping\r\n", "+PONG\r\n");
}

/* The requests every split test runs, with their replies in a fresh db. */
static const char *const split_reqs[] = {
    "*3\r\n$6\r\nincrby\r\n$3\r\nkey\r\n$2\r\n10\r\n",
    "incrby key 5\r\n",
    "*2\r\n$3\r\nget\r\n$3\r\nkey\r\n",
    "echo \"a\\x41\\n\"\n",
    "echo 'b\\'c'\r\n",
    "*3\r\n$3\r\nset\r\n$0\r\n\r\n$1\r\n7\r\n",
    "*1\r\n$4\r\nPING\r\n",
};
static const char *const split_replies[] = {
    ":10\r\n", ":15\r\n", "$2\r\n15\r\n", "$3\r\naA\n\r\n", "$3\r\nb'c\r\n",
    "+OK\r\n", "+PONG\r\n",
};

static void test_every_split_point(void **state)
{
    struct fx *f = *state;

    for (size_t r = 0; r < sizeof split_reqs / sizeof split_reqs[0]; r++) {
        const char *in = split_reqs[r];
        size_t len = strlen(in);
        for (size_t k = 0; k < len; k++) {
            /* Copy into an exact-size allocation so ASan catches any read
             * past the bytes handed in. */
            char *part = xmalloc(k ? k : 1);
            struct proto_out o = {&f->out, 0, 0};
            memcpy(part, in, k);
            buf_clear(&f->out);
            assert_int_equal(resp_ops.handle(f->conn, part, k, &o), 0);
            assert_int_equal(f->out.len, 0);
            assert_int_equal(o.flags, 0);
            free(part);
        }
        assert_string_equal(send(f, in), split_replies[r]);
    }
}

/* A pipeline arriving one byte at a time gives the same replies as the same
 * bytes arriving at once. */
static void test_pipeline_byte_by_byte(void **state)
{
    struct fx *f = *state;
    const char *in = "*2\r\n$4\r\nincr\r\n$1\r\nz\r\nincr z\r\n"
                     "get z\r\nmget z \"q q\"\r\n";
    const char *want = ":1\r\n:2\r\n$1\r\n2\r\n*2\r\n$1\r\n2\r\n$-1\r\n";
    size_t len = strlen(in), have = 0, used = 0;

    buf_clear(&f->out);
    for (have = 1; have <= len; have++)
        used += feed(f, in + used, have - used);
    assert_int_equal(used, len);
    assert_string_equal(f->out.p, want);
}

struct bad {
    const char *in;
    const char *err;
};

static void expect_closed(struct fx *f, const char *in, size_t len,
                          const char *err)
{
    struct proto_out o = {&f->out, 0, 0};
    size_t n;

    buf_clear(&f->out);
    n = resp_ops.handle(f->conn, in, len, &o);
    assert_int_equal(n, len);
    assert_true(o.flags & PROTO_CLOSE);
    assert_string_equal(f->out.p ? f->out.p : "", err);
}

static void test_malformed_input_closes(void **state)
{
    struct fx *f = *state;
    static const struct bad cases[] = {
        {"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\rx", "-ERR Protocol error: invalid multibulk length\r\n"},
        /* What the headers' one-pass reading (resp_parse.c header) leaves
         * to the careful way: a leading zero or sign, a long number. */
        {"*01\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\r\n$04\r\nping\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$-0\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$100000000000000000\r\n", /* 18 digits */
         "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$9223372036854775808\r\n", /* 2^63 */
         "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n+ping\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
        {"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$4\r\npingXX", "-ERR Protocol error: expected CRLF after "
                               "bulk data\r\n"},
        {"*11111111111111111111111111111111111\r\n",
         "-ERR Protocol error: too big mbulk count string\r\n"},
        {"*1\r\n$11111111111111111111111111111111111\r\n",
         "-ERR Protocol error: too big bulk count string\r\n"},
        {"ping \"a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
        {"ping 'a\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
        {"ping \"a\"b\r\n",
         "-ERR Protocol error: unbalanced quotes in request\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_closed(f, cases[i].in, strlen(cases[i].in), cases[i].err);
}

static void test_limits_close_before_the_bytes_arrive(void **state)
{
    struct fx *f = *state;
    char hdr[64];
    char *line;
    size_t n;

    /* A bulk over max_bulk is refused on its header alone. */
    n = (size_t)snprintf(hdr, sizeof hdr, "*2\r\n$3\r\nget\r\n$%zu\r\n",
                         f->lim.max_bulk + 1);
    expect_closed(f, hdr, n, "-ERR Protocol error: invalid bulk length\r\n");
    /* Exactly max_bulk is fine (and then too long a key for the engine). */
    n = (size_t)snprintf(hdr, sizeof hdr, "*2\r\n$3\r\nget\r\n$%zu\r\n",
                         f->lim.max_bulk);
    struct proto_out o = {&f->out, 0, 0};
    assert_int_equal(resp_ops.handle(f->conn, hdr, n, &o), 0);
    /* More arguments than max_args. */
    n = (size_t)snprintf(hdr, sizeof hdr, "*%zu\r\n", f->lim.max_args + 1);
    expect_closed(f, hdr, n, "-ERR Protocol error: invalid multibulk length\r\n");
    /* A request whose headers add up past max_request. */
    f->lim.max_request = 100; /* conn_new copied the limits: reopen */
    resp_ops.conn_free(f->conn);
    f->conn = resp_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    expect_closed(f, "*2\r\n$3\r\nget\r\n$95\r\n",
                  strlen("*2\r\n$3\r\nget\r\n$95\r\n"),
                  "-ERR Protocol error: too big request\r\n");
    /* An inline line longer than max_request without a newline. */
    line = xmalloc(101);
    memset(line, 'a', 101);
    struct proto_out o2 = {&f->out, 0, 0};
    buf_clear(&f->out);
    assert_int_equal(resp_ops.handle(f->conn, line, 99, &o2), 0);
    expect_closed(f, line, 101,
                  "-ERR Protocol error: too big inline request\r\n");
    free(line);
    /* Too many inline arguments. */
    f->lim.max_args = 3;
    resp_ops.conn_free(f->conn);
    f->conn = resp_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    EXPECT(f, "del a b\r\n", ":0\r\n");
    expect_closed(f, "del a b c\r\n", strlen("del a b c\r\n"),
                  "-ERR Protocol error: invalid multibulk length\r\n");
}

/* The tokenizer must never read past the bytes it is given: put a request
 * right before an unmapped page and hand it every prefix. */
static void test_input_ending_at_a_guard_page(void **state)
{
    struct fx *f = *state;
    long pg = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static const char *const reqs[] = {
        "*2\r\n$4\r\necho\r\n$3\r\nabc\r\n", "echo \"\\x4", "echo 'a\\",
        "*1\r\n$4\r\nping\r", "*1\r", "ping"};

    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pg, (size_t)pg, PROT_NONE), 0);
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
        size_t len = strlen(reqs[r]);
        for (size_t k = 1; k <= len; k++) {
            char *p = map + pg - k;
            struct proto_out o = {&f->out, 0, 0};
            memcpy(p, reqs[r], k);
            buf_clear(&f->out);
            size_t used = resp_ops.handle(f->conn, p, k, &o);
            assert_true(used == 0 || used == k);
        }
    }
    munmap(map, (size_t)pg * 2);
}

static void test_resp3_after_hello_3(void **state)
{
    struct fx *f = *state;
    const char *hello3 =
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0"
        "\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:42\r\n$4\r\nmode\r\n$10\r\n"
        "standalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

    EXPECT(f, "hello 4\r\n", "-NOPROTO unsupported protocol version\r\n");
    EXPECT(f, "hello x\r\n",
           "-ERR Protocol version is not an integer or out of range\r\n");
    EXPECT(f, "hello 3 auth\r\n", "-ERR Syntax error in HELLO option 'auth'\r\n");
    EXPECT(f, "hello 3 setname\r\n",
           "-ERR Syntax error in HELLO option 'setname'\r\n");
    EXPECT(f, "get nokey\r\n", "$-1\r\n"); /* still RESP2 */
    EXPECT(f, "hello 3\r\n", hello3);
    EXPECT(f, "get nokey\r\n", "_\r\n");
    EXPECT(f, "mget nokey\r\n", "*1\r\n_\r\n");
    EXPECT(f, "set k 1 nx\r\n", "+OK\r\n");
    EXPECT(f, "set k 1 nx\r\n", "_\r\n");
    EXPECT(f, "config get save\r\n", "%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
    EXPECT(f, "info keyspace\r\n",
           "=48\r\ntxt:# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n\r\n");
    EXPECT(f, "command docs\r\n", "%0\r\n");
    EXPECT(f, "hello 2 setname me\r\n",
           "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n"
           "7.0.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:42\r\n$4\r\nmode\r\n"
           "$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\n"
           "modules\r\n*0\r\n");
    EXPECT(f, "client getname\r\n", "$2\r\nme\r\n");
    EXPECT(f, "get nokey\r\n", "$-1\r\n");
}

static void test_auth_without_password(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "auth x\r\n",
           "-ERR AUTH <password> called without any password configured for "
           "the default user. Are you sure your configuration is "
           "correct?\r\n");
    EXPECT(f, "auth default x\r\n", "+OK\r\n"); /* default is nopass */
    EXPECT(f, "auth u x\r\n",
           "-WRONGPASS invalid username-password pair or user is "
           "disabled.\r\n");
    EXPECT(f, "auth a b c\r\n", "-ERR syntax error\r\n");
}

static void test_auth_with_password(void **state)
{
    struct fx *f = *state;
    const char *wrong = "-WRONGPASS invalid username-password pair or user "
                        "is disabled.\r\n";
    const char *noauth = "-NOAUTH Authentication required.\r\n";

    EXPECT(f, "incr a\r\n", noauth);
    EXPECT(f, "ping\r\n", noauth);
    EXPECT(f, "client id\r\n", noauth);
    EXPECT(f, "config get save\r\n", noauth);
    /* Redis 7 checks the command and its arity before authentication. */
    EXPECT(f, "foo\r\n", "-ERR unknown command 'foo', with args beginning "
                         "with: \r\n");
    EXPECT(f, "incr\r\n",
           "-ERR wrong number of arguments for 'incr' command\r\n");
    EXPECT(f, "hello 3\r\n",
           "-NOAUTH HELLO must be called with the client already "
           "authenticated, otherwise the HELLO AUTH <user> <pass> option "
           "can be used to authenticate the client and select the RESP "
           "protocol version at the same time\r\n");
    EXPECT(f, "auth nope\r\n", wrong);
    EXPECT(f, "auth default nope\r\n", wrong);
    EXPECT(f, "auth someone sekret\r\n", wrong);
    EXPECT(f, "hello 3 auth default nope\r\n", wrong);
    assert_int_equal(f->c.s.authed, 0);
    /* Before AUTH, Redis's tighter request limits apply. */
    expect_closed(f, "*11\r\n", strlen("*11\r\n"),
                  "-ERR Protocol error: unauthenticated multibulk length\r\n");
    expect_closed(f, "*2\r\n$4\r\nauth\r\n$16385\r\n",
                  strlen("*2\r\n$4\r\nauth\r\n$16385\r\n"),
                  "-ERR Protocol error: unauthenticated bulk length\r\n");
    const char *r = send(f, "hello 3 auth default sekret\r\n");
    assert_true(r[0] == '%');
    assert_int_equal(f->c.s.authed, 1);
    EXPECT(f, "incr a\r\n", ":1\r\n");
    EXPECT(f, "get b\r\n", "_\r\n");
    EXPECT(f, "auth sekret\r\n", "+OK\r\n");
}

static void test_auth_one_argument_then_quit(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "auth sekret\r\n", "+OK\r\n");
    EXPECT(f, "incr a\r\n", ":1\r\n");
    EXPECT(f, "quit\r\n", "+OK\r\n");
    assert_int_equal(f->flags, PROTO_CLOSE);
}

/* ---- Cross-protocol attacks and inline limits (issue 8) --------------- */

/* A web page can make a browser POST to the RESP port; the body's lines
 * must not run.  "POST" or "Host:" as a command name hangs up at once, with
 * no reply, and takes the rest of the buffer with it. */
static void test_http_post_body_does_not_run(void **state)
{
    struct fx *f = *state;
    static const char *const attacks[] = {
        "POST / HTTP/1.1\r\nHost: evil\r\n\r\nINCR k\r\n",
        "post /x HTTP/1.0\r\nINCR k\r\n",
        "Host: evil\r\nINCR k\r\n",
        "HOST: evil\r\nINCR k\r\n",
        "*1\r\n$4\r\nPOST\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n",
        "*2\r\n$5\r\nhost:\r\n$4\r\nevil\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n",
    };

    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        EXPECT(f, attacks[i], "");
        assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    }
    /* What came before it in the same buffer ran and is answered. */
    EXPECT(f, "SET a 1\r\nPOST / HTTP/1.1\r\nINCR a\r\n", "+OK\r\n");
    assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    /* GET is a command, so an HTTP GET line is a wrong-arity error and the
     * Host: line that follows it hangs up. */
    EXPECT(f, "GET / HTTP/1.1\r\nHost: evil\r\nINCR k\r\n",
           "-ERR wrong number of arguments for 'get' command\r\n");
    assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    /* "Host" without its colon, and POST as an argument, are not HTTP. */
    EXPECT(f, "echo POST\r\n", "$4\r\nPOST\r\n");
    EXPECT(f, "host\r\n", "-ERR unknown command 'host', with args beginning "
                          "with: \r\n");
    assert_int_equal(f->flags, 0);
    EXPECT(f, "get k\r\nget a\r\n", "$-1\r\n$1\r\n1\r\n");
}

/* Before AUTH too: no NOAUTH reply, a hang-up. */
static void test_http_post_hangs_up_before_auth(void **state)
{
    struct fx *f = *state;

    EXPECT(f, "POST / HTTP/1.1\r\nAUTH sekret\r\nINCR k\r\n", "");
    assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    assert_int_equal(f->c.s.authed, 0);
}

/* Inline commands used to skip the limits for unauthenticated clients: a
 * stranger could send 1,024 arguments on a 1 MiB line. */
static void test_inline_unauthenticated_limits(void **state)
{
    struct fx *f = *state;
    char *big = xcalloc(1, 16400);

    EXPECT(f, "auth 1 2 3 4 5 6 7 8 9\r\n",
           "-ERR syntax error\r\n"); /* 10 arguments are fine */
    expect_closed(f, "auth 1 2 3 4 5 6 7 8 9 10\r\n",
                  strlen("auth 1 2 3 4 5 6 7 8 9 10\r\n"),
                  "-ERR Protocol error: unauthenticated multibulk length\r\n");
    memcpy(big, "auth ", 5);
    memset(big + 5, 'a', 16385);
    memcpy(big + 5 + 16385, "\r\n", 2);
    expect_closed(f, big, 5 + 16385 + 2,
                  "-ERR Protocol error: unauthenticated bulk length\r\n");
    /* 16384 bytes is Redis's limit, not over it. */
    memcpy(big + 5 + 16384, "\r\n", 2);
    big[5 + 16384 + 2] = 0;
    EXPECT(f, big, "-WRONGPASS invalid username-password pair or user is "
                   "disabled.\r\n");
    /* A quoted argument counts by what it resolves to. */
    memcpy(big, "auth \"", 6);
    memset(big + 6, 'a', 16383);
    memcpy(big + 6 + 16383, "\\x41\"\r\n", 7);
    assert_int_equal(strlen("\\x41\""), 5);
    big[6 + 16383 + 7] = 0;
    EXPECT(f, big, "-WRONGPASS invalid username-password pair or user is "
                   "disabled.\r\n");
    free(big);
    assert_int_equal(f->c.s.authed, 0);
}

/* An inline argument over max_bulk was accepted (only arrays checked it). */
static void test_inline_argument_over_max_bulk(void **state)
{
    struct fx *f = *state;

    f->lim.max_bulk = 8; /* conn_new copied the limits: reopen */
    resp_ops.conn_free(f->conn);
    f->conn = resp_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    EXPECT(f, "echo 12345678\r\n", "$8\r\n12345678\r\n");
    expect_closed(f, "echo 123456789\r\n", strlen("echo 123456789\r\n"),
                  "-ERR Protocol error: invalid bulk length\r\n");
}

/* An inline line could grow to max_request (1 MiB) before it was refused;
 * Redis stops at 64 KiB. */
static void test_inline_line_capped_at_64_kib(void **state)
{
    struct fx *f = *state;
    size_t max = 64 * 1024;
    char *line = xmalloc(max + 1);
    struct proto_out o = {&f->out, 0, 0};

    assert_true(f->lim.max_request > max);
    memset(line, 'a', max + 1);
    buf_clear(&f->out);
    assert_int_equal(resp_ops.handle(f->conn, line, max - 1, &o), 0);
    expect_closed(f, line, max,
                  "-ERR Protocol error: too big inline request\r\n");
    /* A line of exactly 64 KiB, its newline included, is still read. */
    memcpy(line, "echo ", 5);
    line[max - 1] = '\n';
    buf_clear(&f->out);
    assert_int_equal(resp_ops.handle(f->conn, line, max, &o), max);
    assert_memory_equal(f->out.p, "$65530\r\n", 8);
    free(line);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TP(fn) cmocka_unit_test_setup_teardown(fn, setup_pass, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping_echo_select_quit),
        T(test_counter_commands),
        T(test_once_commands),
        T(test_once_ttl_options),
        T(test_once_in_flight_is_tryagain),
        T(test_set_options),
        T(test_expiry_commands),
        T(test_multi_key_commands),
        T(test_key_over_limit),
        T(test_scan),
        T(test_unknown_command_wording),
        T(test_command_names_match_in_any_case_and_whole),
        T(test_admin_commands),
        T(test_info),
        T(test_save_bgsave),
        T(test_shutdown),
        T(test_pipelined_requests_one_at_a_time),
        T(test_every_split_point),
        T(test_pipeline_byte_by_byte),
        T(test_malformed_input_closes),
        T(test_limits_close_before_the_bytes_arrive),
        T(test_input_ending_at_a_guard_page),
        T(test_resp3_after_hello_3),
        T(test_auth_without_password),
        TP(test_auth_with_password),
        TP(test_auth_one_argument_then_quit),
        T(test_http_post_body_does_not_run),
        TP(test_http_post_hangs_up_before_auth),
        TP(test_inline_unauthenticated_limits),
        T(test_inline_argument_over_max_bulk),
        T(test_inline_line_capped_at_64_kib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
