/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_proto_memcache.c - unit tests of the memcached front end
 * (src/proto/memcache.c).
 *
 * Each test drives mc_ops.handle exactly as the daemon does (all unconsumed
 * bytes in, one request out per call, wait when it consumes nothing) over a
 * real libtally database in a temporary directory and the real command
 * layer, and compares the bytes that come back.  Expected replies were
 * checked byte for byte against memcached 1.6.18 wherever memcached has an
 * answer (tests/e2e/test_memcache.py repeats that comparison live).  Inputs
 * are also fed split at every byte and from a buffer that ends where mapped
 * memory ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd.h"
#include "memcache.h"
#include "memcache_int.h"
#include "tally.h"

#include "cmd_fixture.h"

struct fx {
    struct cmdfx c;
    struct proto_limits lim;
    struct mc_front *front;
    void *conn;
    struct buf out;
    unsigned flags;        /* PROTO_* seen so far */
    tally_ticket ticket;   /* highest ticket seen */
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    const struct cmd_serverinfo info = {
        .pid = 4242, .version = "9.9.9-test", .start_unix = 1,
        .maxclients = 77, .connected_clients = 3, .total_connections = 5};
    struct mc_options o = {0};

    if (cmdfx_open(&f->c, "mc", CMD_PROTO_MEMCACHE, NULL, &info) != 0) {
        free(f);
        return -1;
    }
    f->lim = (struct proto_limits)PROTO_LIMITS_DEFAULT;
    f->front = mc_front_new(&o);
    f->conn = mc_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim,
                              "127.0.0.1:1");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mc_ops.conn_free(f->conn);
    mc_front_free(f->front);
    buf_free(&f->out);
    assert_int_equal(cmdfx_close(&f->c), 0);
    free(f);
    return 0;
}

/* Hand the daemon's pending bytes to handle() until it wants more or closes;
 * what is left unconsumed stays at the front of *pend. */
static void pump(struct fx *f, struct buf *pend)
{
    while (pend->len > 0) {
        struct proto_out o = {&f->out, 0, 0};
        size_t before = f->out.len;
        size_t used = mc_ops.handle(f->conn, pend->p, pend->len, &o);
        if (used == 0) {
            assert_int_equal(f->out.len, before); /* no reply while waiting */
            return;
        }
        assert_true(used <= pend->len);
        f->flags |= o.flags;
        if (o.ticket > f->ticket)
            f->ticket = o.ticket;
        assert_true(o.ticket <= tally_head(f->c.db));
        buf_consume(pend, used);
        if (o.flags & PROTO_CLOSE) /* the daemon reads no further */
            return;
    }
}

/* Feed in[0, len) in one piece; returns the replies (NUL-terminated, owned
 * by the fixture until the next call). */
static const char *feedn(struct fx *f, const char *in, size_t len)
{
    struct buf pend = BUF_INIT;
    buf_clear(&f->out);
    f->flags = 0;
    buf_add(&pend, in, len);
    pump(f, &pend);
    buf_free(&pend);
    buf_addc(&f->out, 0);
    f->out.len--;
    return f->out.p;
}

static const char *feed(struct fx *f, const char *in)
{
    return feedn(f, in, strlen(in));
}

#define EXPECT(f, in, want) assert_string_equal(feed((f), (in)), (want))

/* ---- Retrieval and storage ---------------------------------------------- */

static void test_get_missing_and_present(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "get a\r\n", "END\r\n");
    EXPECT(f, "set a 0 0 2\r\n10\r\n", "STORED\r\n");
    EXPECT(f, "get a\r\n", "VALUE a 0 2\r\n10\r\nEND\r\n");
    EXPECT(f, "get a nope a\r\n",
           "VALUE a 0 2\r\n10\r\nVALUE a 0 2\r\n10\r\nEND\r\n");
    EXPECT(f, "  get   a  \r\n", "VALUE a 0 2\r\n10\r\nEND\r\n");
    EXPECT(f, "get a\n", "VALUE a 0 2\r\n10\r\nEND\r\n");
    EXPECT(f, "get\r\n", "ERROR\r\n");
}

static void test_set_reply_waits_for_its_ticket(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set t 0 0 1\r\n1\r\n", "STORED\r\n");
    assert_true(f->ticket > 0);
    assert_int_equal(f->ticket, tally_head(f->c.db));
}

/* A store that counts the operations it forwards to the engine store. */
struct counting {
    struct store base;
    struct store *inner;
    struct store_ops ops;
    unsigned n;
};

static int counting_exec(struct store *st, const struct store_req *req,
                         struct store_res *res, store_done_fn done, void *arg)
{
    struct counting *c = (struct counting *)st;
    c->n++;
    return store_exec(c->inner, req, res, done, arg);
}

static void count_ops(struct fx *f, struct counting *c)
{
    memset(c, 0, sizeof *c);
    c->inner = f->c.ctx.store;
    c->ops = *c->inner->ops;
    c->ops.exec = counting_exec;
    c->base.ops = &c->ops;
    c->base.db = c->inner->db;
    f->c.ctx.store = &c->base;
}

/* Regression: cas, incr, decr and md C were a read and then a change (two
 * engine calls, atomic only because one thread owned the engine); each is
 * now one store operation, so it stays atomic on a shared database. */
static void test_cas_incr_decr_md_are_one_store_operation(void **state)
{
    struct fx *f = *state;
    struct counting c;
    char line[128];
    unsigned long long cas;

    EXPECT(f, "set c 0 0 1\r\n7\r\n", "STORED\r\n");
    const char *r = feed(f, "gets c\r\n");
    assert_int_equal(sscanf(r, "VALUE c 0 1 %llu\r\n7\r\nEND\r\n", &cas), 1);
    count_ops(f, &c);
    snprintf(line, sizeof line, "cas c 0 0 1 %llu\r\n8\r\n", cas);
    EXPECT(f, line, "STORED\r\n");
    assert_int_equal(c.n, 1);
    EXPECT(f, line, "EXISTS\r\n");
    assert_int_equal(c.n, 2);
    EXPECT(f, "incr c 5\r\n", "13\r\n");
    assert_int_equal(c.n, 3);
    EXPECT(f, "decr c 100\r\n", "0\r\n");
    assert_int_equal(c.n, 4);
    EXPECT(f, "incr nope 1\r\n", "NOT_FOUND\r\n");
    assert_int_equal(c.n, 5);
    EXPECT(f, "decr c 18446744073709551615\r\n", "0\r\n");
    assert_int_equal(c.n, 6);
    /* md with C: delete only if the unique still matches. */
    snprintf(line, sizeof line, "md c C%llu\r\n",
             (unsigned long long)mc_cas_of(0) + 1);
    EXPECT(f, line, "EX\r\n");
    assert_int_equal(c.n, 7);
    snprintf(line, sizeof line, "md c C%llu\r\n",
             (unsigned long long)mc_cas_of(0));
    EXPECT(f, line, "HD\r\n");
    assert_int_equal(c.n, 8);
    EXPECT(f, line, "NF\r\n");
    assert_int_equal(c.n, 9);
    f->c.ctx.store = c.inner;
}

static void test_gets_cas_round_trip(void **state)
{
    struct fx *f = *state;
    char line[128];
    unsigned long long cas;
    EXPECT(f, "set c 0 0 1\r\n7\r\n", "STORED\r\n");
    const char *r = feed(f, "gets c\r\n");
    assert_int_equal(sscanf(r, "VALUE c 0 1 %llu\r\n7\r\nEND\r\n", &cas), 1);
    /* The unique depends on the value only: read again, same unique. */
    snprintf(line, sizeof line, "VALUE c 0 1 %llu\r\n7\r\nEND\r\n", cas);
    EXPECT(f, "gets c\r\n", line);
    snprintf(line, sizeof line, "cas c 0 0 1 %llu\r\n8\r\n", cas + 1);
    EXPECT(f, line, "EXISTS\r\n");
    snprintf(line, sizeof line, "cas c 0 0 1 %llu\r\n8\r\n", cas);
    EXPECT(f, line, "STORED\r\n");
    EXPECT(f, line, "EXISTS\r\n"); /* the value moved on */
    EXPECT(f, "cas nope 0 0 1 1\r\n1\r\n", "NOT_FOUND\r\n");
    EXPECT(f, "cas c 0 0 1 x\r\n", "CLIENT_ERROR bad command line format\r\n");
    EXPECT(f, "gat 100 c\r\n", "VALUE c 0 1\r\n8\r\nEND\r\n");
    EXPECT(f, "gats x c\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
}

/* 2,592,000 s (30 days) is the longest relative exptime; its milliseconds
 * do not fit 32 bits, which once made it an absolute time in 1970. */
static void test_thirty_day_exptime_is_relative(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set a 0 2592000 1\r\n1\r\nmg a t v\r\n",
           "STORED\r\nVA 1 t2592000\r\n1\r\n");
    EXPECT(f, "set a 0 2592001 1\r\n1\r\nmg a t v\r\n",
           "STORED\r\nEN\r\n");
    EXPECT(f, "set a 0 4294967296 1\r\n1\r\nmg a t v\r\n",
           "STORED\r\nVA 1 t-1\r\n1\r\n");
}

static void test_add_replace_noreply(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\n",
           "STORED\r\nNOT_STORED\r\n");
    EXPECT(f, "replace b 0 0 1\r\n1\r\nreplace a 0 0 1\r\n3\r\nget a b\r\n",
           "NOT_STORED\r\nSTORED\r\nVALUE a 0 1\r\n3\r\nEND\r\n");
    EXPECT(f, "set a 0 0 2 noreply\r\n-4\r\nget a\r\n",
           "VALUE a 0 2\r\n-4\r\nEND\r\n");
    /* A sixth token that is not "noreply" is ignored, as memcached does. */
    EXPECT(f, "set a 5 0 1 2\r\n1\r\nget a\r\n",
           "STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
    /* Flags are accepted and ignored; a negative exptime stores a counter
     * that has already expired, as memcached does. */
    EXPECT(f, "set a 4294967295 0 1\r\n2\r\nget a\r\n",
           "STORED\r\nVALUE a 0 1\r\n2\r\nEND\r\n");
    EXPECT(f, "set a 0 -1 1\r\n2\r\nget a\r\n", "STORED\r\nEND\r\n");
}

static void test_set_refuses_non_integers(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set a 0 0 3\r\nabc\r\n", "CLIENT_ERROR bad data chunk\r\n");
    EXPECT(f, "set a 0 0 0\r\n\r\n", "CLIENT_ERROR bad data chunk\r\n");
    EXPECT(f, "set a 0 0 2\r\n01\r\n", "CLIENT_ERROR bad data chunk\r\n");
    EXPECT(f, "set a 0 0 19\r\n9223372036854775808\r\n",
           "CLIENT_ERROR bad data chunk\r\n");
    EXPECT(f, "set a 0 0 20\r\n-9223372036854775808\r\nget a\r\n",
           "STORED\r\nVALUE a 0 20\r\n-9223372036854775808\r\nEND\r\n");
    EXPECT(f, "append a 0 0 1\r\n1\r\nprepend a 0 0 1\r\n1\r\nmn\r\n",
           "CLIENT_ERROR append and prepend are not supported on counters\r\n"
           "CLIENT_ERROR append and prepend are not supported on counters\r\n"
           "MN\r\n");
}

static void test_data_block_of_wrong_length(void **state)
{
    struct fx *f = *state;
    /* memcached skips <bytes>+2 and reads on from there. */
    EXPECT(f, "set a 0 0 3\r\n10\r\nget a\r\n",
           "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    EXPECT(f, "set a 0 0 1\r\n10\r\nget a\r\n",
           "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n");
    EXPECT(f, "set a 0 0 5 noreply\r\n12\r\nmn\r\n", "ERROR\r\n");
    EXPECT(f, "set a 0 0 x\r\n10\r\n",
           "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT(f, "set a 0 0 -1\r\nmn\r\n",
           "CLIENT_ERROR bad command line format\r\nMN\r\n");
    EXPECT(f, "set a 0 0\r\n", "ERROR\r\n");
    EXPECT(f, "set a 0 0 1 noreply extra\r\n1\r\n", "ERROR\r\nERROR\r\n");
    EXPECT(f, "set a x 0 1\r\n1\r\n",
           "CLIENT_ERROR bad command line format\r\nERROR\r\n");
}

static void test_oversized_block_is_swallowed(void **state)
{
    struct fx *f = *state;
    struct buf pend = BUF_INIT;
    f->lim.max_bulk = 16;
    mc_ops.conn_free(f->conn);
    f->conn = mc_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    buf_clear(&f->out);
    buf_adds(&pend, "set big 0 0 40\r\n0123456789");
    pump(f, &pend);
    buf_adds(&pend, "012345678901234567890123456789\r\nget big\r\n");
    pump(f, &pend);
    assert_int_equal(pend.len, 0);
    buf_addc(&f->out, 0);
    assert_string_equal(f->out.p, "SERVER_ERROR object too large for cache\r\n"
                                  "END\r\n");
    buf_free(&pend);
}

/* ---- Arithmetic ---------------------------------------------------------- */

static void test_incr_decr(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "incr n 1\r\ndecr n 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n");
    EXPECT(f, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\n",
           "STORED\r\n15\r\n0\r\n");
    EXPECT(f, "incr n\r\nincr n x\r\nincr n -1\r\nincr n 1x\r\n",
           "ERROR\r\nCLIENT_ERROR invalid numeric delta argument\r\n"
           "CLIENT_ERROR invalid numeric delta argument\r\n"
           "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT(f, "incr n 18446744073709551616\r\n",
           "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT(f, "incr n 1 noreply\r\nincr n 1 2\r\nincr n 1 noreply x\r\n",
           "2\r\nERROR\r\n");
    EXPECT(f, "decr n 18446744073709551615\r\n", "0\r\n");
}

static void test_incr_past_int64_max_is_refused(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set m 0 0 19\r\n9223372036854775806\r\nincr m 1\r\n",
           "STORED\r\n9223372036854775807\r\n");
    EXPECT(f, "incr m 1\r\nget m\r\n",
           "CLIENT_ERROR increment or decrement would overflow a signed "
           "64-bit counter\r\nVALUE m 0 19\r\n9223372036854775807\r\nEND\r\n");
    EXPECT(f, "incr m 18446744073709551615\r\n",
           "CLIENT_ERROR increment or decrement would overflow a signed "
           "64-bit counter\r\n");
    /* A delta above INT64_MAX still fits a negative counter. */
    EXPECT(f, "set m 0 0 20\r\n-9223372036854775808\r\n"
              "incr m 18446744073709551615\r\n",
           "STORED\r\n9223372036854775807\r\n");
}

static void test_decr_of_negative_counter_leaves_it(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set neg 0 0 2\r\n-5\r\ndecr neg 3\r\nget neg\r\n",
           "STORED\r\n-5\r\nVALUE neg 0 2\r\n-5\r\nEND\r\n");
    EXPECT(f, "incr neg 7\r\n", "2\r\n");
    EXPECT(f, "decr neg 1\r\ndecr neg 9\r\ndecr neg 9\r\n", "1\r\n0\r\n0\r\n");
}

/* ---- Other classic commands ------------------------------------------ */

static void test_delete_and_touch(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "set a 0 0 1\r\n1\r\ndelete a\r\ndelete a\r\n",
           "STORED\r\nDELETED\r\nNOT_FOUND\r\n");
    EXPECT(f, "delete a noreply\r\ndelete a 0\r\ndelete a 0 noreply\r\n"
              "delete a 1\r\ndelete a x\r\ndelete\r\n",
           "NOT_FOUND\r\n"
           "CLIENT_ERROR bad command line format.  "
           "Usage: delete <key> [noreply]\r\n"
           "CLIENT_ERROR bad command line format.  "
           "Usage: delete <key> [noreply]\r\nERROR\r\n");
    EXPECT(f, "touch a 0\r\nset a 0 0 1\r\n1\r\ntouch a 10\r\ntouch a x\r\n"
              "touch a\r\ntouch a 1 noreply\r\nmn\r\n",
           "NOT_FOUND\r\nSTORED\r\nTOUCHED\r\n"
           "CLIENT_ERROR invalid exptime argument\r\nERROR\r\nMN\r\n");
}

static void test_version_verbosity_mn_quit(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "version\r\nverbosity 1\r\nverbosity\r\nverbosity x\r\n"
              "verbosity 1 noreply\r\nverbosity 1 2 3\r\nmn\r\n",
           "VERSION 9.9.9-test\r\nOK\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\nERROR\r\nMN\r\n");
    EXPECT(f, "mn\r\nquit\r\nget a\r\n", "MN\r\n");
    assert_true(f->flags & PROTO_CLOSE);
    EXPECT(f, "quit extra\r\n", "");
    assert_true(f->flags & PROTO_CLOSE);
}

static void test_flush_all_refused_unless_allowed(void **state)
{
    struct fx *f = *state;
    struct mc_options o = {.allow_flush = 1};
    EXPECT(f, "set a 0 0 1\r\n1\r\nflush_all\r\nflush_all noreply\r\nget a\r\n",
           "STORED\r\nCLIENT_ERROR flush_all not allowed\r\n"
           "VALUE a 0 1\r\n1\r\nEND\r\n");
    mc_ops.conn_free(f->conn);
    mc_front_free(f->front);
    f->front = mc_front_new(&o);
    f->conn = mc_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    char line[64];
    for (int i = 0; i < 3000; i++) { /* more than one batch of deletions */
        snprintf(line, sizeof line, "set k%d 0 0 1 noreply\r\n1\r\n", i);
        EXPECT(f, line, "");
    }
    assert_int_equal(tally_count(f->c.db), 3001);
    EXPECT(f, "flush_all 10\r\nflush_all x\r\n",
           "CLIENT_ERROR flush_all with a delay is not supported\r\n"
           "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT(f, "flush_all\r\nget a k1\r\n", "OK\r\nEND\r\n");
    assert_int_equal(tally_count(f->c.db), 0);
    EXPECT(f, "flush_all 0 noreply\r\nmn\r\n", "MN\r\n");
}

/* The value of "STAT <name> " in a stats reply, or -1. */
static long long stat_of(const char *r, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "STAT %s ", name);
    const char *p = strstr(r, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static void test_stats_count_hits_and_misses(void **state)
{
    struct fx *f = *state;
    char before[4096];
    snprintf(before, sizeof before, "%s", feed(f, "stats\r\n"));
    feed(f, "set s 0 0 1\r\n1\r\nget s nope\r\nincr s 1\r\nincr nope 1\r\n"
            "decr s 1\r\ndelete nope\r\ntouch s 0\r\n");
    const char *r = feed(f, "stats\r\n");
    assert_int_equal(stat_of(r, "pid"), 4242);
    assert_int_equal(stat_of(r, "max_connections"), 77);
    assert_int_equal(stat_of(r, "curr_connections"), 3);
    assert_int_equal(stat_of(r, "total_connections"), 5);
    assert_int_equal(stat_of(r, "curr_items"), (long long)tally_count(f->c.db));
    assert_non_null(strstr(r, "STAT version 9.9.9-test\r\n"));
    static const char *const one[] = {"cmd_set", "get_hits", "get_misses",
        "incr_hits", "incr_misses", "decr_hits", "delete_misses",
        "touch_hits", "cmd_touch", "total_items"};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        assert_int_equal(stat_of(r, one[i]) - stat_of(before, one[i]), 1);
    assert_int_equal(stat_of(r, "cmd_get") - stat_of(before, "cmd_get"), 2);
    assert_true(stat_of(r, "uptime") > 0);
    assert_true(strlen(r) > 5 && !strcmp(r + strlen(r) - 5, "END\r\n"));
    EXPECT(f, "stats settings\r\n", "ERROR\r\n");
}

/* ---- Meta commands ------------------------------------------------------- */

static void test_meta_get(void **state)
{
    struct fx *f = *state;
    char want[256];
    EXPECT(f, "set n 0 0 1\r\n5\r\nmg n\r\nmg n v\r\n",
           "STORED\r\nHD\r\nVA 1\r\n5\r\n");
    const char *r = feed(f, "mg n v k c f s t\r\n");
    unsigned long long cas;
    assert_int_equal(sscanf(r, "VA 1 kn c%llu f0 s1 t-1\r\n5\r\n", &cas), 1);
    snprintf(want, sizeof want, "VALUE n 0 1 %llu\r\n5\r\nEND\r\n", cas);
    EXPECT(f, "gets n\r\n", want);
    EXPECT(f, "mg missing v\r\nmg missing v q\r\nmg n v q Oabc k\r\n"
              "mg missing v q Oabc\r\nmg miss v Oab k\r\nmn\r\n",
           "EN\r\nVA 1 Oabc kn\r\n5\r\nEN Oab kmiss\r\nMN\r\n");
    EXPECT(f, "mg\r\nmg n zz\r\nmg n v v\r\nmg n Tx\r\nmg n T30 u P L\r\n",
           "ERROR\r\nCLIENT_ERROR invalid flag\r\n"
           "CLIENT_ERROR duplicate flag\r\n"
           "CLIENT_ERROR bad token in command line format\r\nHD\r\n");
    EXPECT(f, "mg n O123456789012345678901234567890123\r\n",
           "CLIENT_ERROR opaque token too long\r\n");
}

static void test_meta_arithmetic(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "ma x\r\nma x N0\r\nma x v\r\nma x N0 J10 v\r\n",
           "NF\r\nHD\r\nVA 1\r\n1\r\nVA 1\r\n2\r\n");
    EXPECT(f, "ma y N0 J10 v D5 MI\r\nma y v D3 MD\r\nma y v D100 M-\r\n",
           "VA 2\r\n10\r\nVA 1\r\n7\r\nVA 1\r\n0\r\n");
    /* q hides a change to an existing counter, not an autovivification. */
    EXPECT(f, "ma y v M+ q\r\nma y q\r\nma z N0 q\r\nma nf q Oop\r\nmn\r\n",
           "HD\r\nNF Oop\r\nMN\r\n");
    const char *r = feed(f, "ma y v t c k Oop\r\n");
    unsigned long long cas;
    assert_int_equal(sscanf(r, "VA 1 t-1 c%llu ky Oop\r\n3\r\n", &cas), 1);
    char line[128];
    snprintf(line, sizeof line, "ma y C%llu v\r\nma y C%llu v\r\n", cas, cas);
    EXPECT(f, line, "VA 1\r\n4\r\nEX\r\n");
    EXPECT(f, "ma nf Dx\r\nma nf MX\r\nma nf Jx N0\r\nma nf Z\r\nma\r\n",
           "CLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid mode for ma M token\r\n"
           "CLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid or duplicate flag\r\nERROR\r\n");
    EXPECT(f, "ma big N0 J9223372036854775808\r\n",
           "CLIENT_ERROR increment or decrement would overflow a signed "
           "64-bit counter\r\n");
}

static void test_meta_set_and_delete(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "ms m 2\r\n10\r\nms m 2 q\r\n12\r\nms m 2 ME\r\n13\r\n"
              "ms m2 2 MR\r\n14\r\nms m 2 MR q\r\n15\r\nmg m v\r\nmn\r\n",
           "HD\r\nNS\r\nNS\r\nVA 2\r\n15\r\nMN\r\n");
    EXPECT(f, "ms m S2\r\n10\r\nms m\r\n",
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\n");
    /* Once the length is known the block is consumed, even if refused. */
    EXPECT(f, "ms a 1 Z\r\n1\r\nms a 1 MX\r\n1\r\nms a 1 Fx\r\n1\r\n"
              "ms a 1 Cx\r\n1\r\nms a 1 q q\r\n1\r\nms m 3\r\n10\r\nmn\r\n",
           "CLIENT_ERROR invalid flag\r\n"
           "CLIENT_ERROR invalid mode for ms M token\r\n"
           "CLIENT_ERROR bad command line format\r\n"
           "CLIENT_ERROR bad token in command line format\r\n"
           "CLIENT_ERROR duplicate flag\r\n"
           "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    EXPECT(f, "ms m 1 C1 c Oo k\r\n4\r\nms e 1 C5\r\n1\r\nms m 1\r\nx\r\n",
           "EX c0 Oo km\r\nNF\r\nCLIENT_ERROR bad data chunk\r\n");
    const char *r = feed(f, "ms m 1 c\r\n3\r\n");
    unsigned long long cas;
    assert_int_equal(sscanf(r, "HD c%llu\r\n", &cas), 1);
    char line[160];
    snprintf(line, sizeof line, "md m C%llu Oz k\r\nmd m C%llu q\r\nmd m q\r\n"
             "ms m 1 C%llu\r\n5\r\nmn\r\n", cas + 1, cas, cas);
    EXPECT(f, line, "EX Oz km\r\nNF\r\nNF\r\nMN\r\n");
    EXPECT(f, "md m\r\nms m 1\r\n1\r\nmd m k\r\nmd m I\r\nmd\r\n",
           "NF\r\nHD\r\nHD km\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "ERROR\r\n");
}

/* ---- Bad input ----------------------------------------------------------- */

static void test_bad_lines(void **state)
{
    struct fx *f = *state;
    char k251[252], line[600];
    memset(k251, 'k', 251);
    k251[251] = 0;
    EXPECT(f, "foo\r\nGET a\r\n\r\nget\ta\r\n",
           "ERROR\r\nERROR\r\nERROR\r\nERROR\r\n");
    snprintf(line, sizeof line, "get %s\r\n", k251);
    EXPECT(f, line, "CLIENT_ERROR bad command line format\r\n");
    snprintf(line, sizeof line, "get a %s b\r\n", k251);
    EXPECT(f, line, "CLIENT_ERROR bad command line format\r\n");
    snprintf(line, sizeof line, "set %s 0 0 1\r\n1\r\n", k251);
    EXPECT(f, line, "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    snprintf(line, sizeof line, "incr %s 1\r\nmg %s v\r\n", k251, k251);
    EXPECT(f, line, "CLIENT_ERROR bad command line format\r\n"
                    "CLIENT_ERROR bad command line format\r\n");
    /* A key of exactly 250 bytes is fine. */
    snprintf(line, sizeof line, "set %s 0 0 1\r\n1\r\n", k251 + 1);
    EXPECT(f, line, "STORED\r\n");
    assert_false(f->flags & PROTO_CLOSE);
}

static void test_line_too_long_closes(void **state)
{
    struct fx *f = *state;
    struct buf pend = BUF_INIT;
    char big[3000];
    memset(big, 'x', sizeof big);
    /* Up to the limit, a line without a newline is waited for. */
    buf_add(&pend, big, 2048);
    buf_clear(&f->out);
    pump(f, &pend);
    assert_int_equal(pend.len, 2048);
    assert_int_equal(f->out.len, 0);
    buf_add(&pend, big, 1);
    pump(f, &pend);
    buf_addc(&f->out, 0);
    assert_string_equal(f->out.p, "CLIENT_ERROR line too long\r\n");
    assert_true(f->flags & PROTO_CLOSE);
    buf_free(&pend);
    /* A multiget may be longer. */
    struct buf g = BUF_INIT;
    buf_adds(&g, "get");
    for (int i = 0; i < 2000; i++)
        buf_adds(&g, " k");
    buf_adds(&g, "\r\nmn\r\n");
    assert_string_equal(feedn(f, g.p, g.len), "END\r\nMN\r\n");
    assert_false(f->flags & PROTO_CLOSE);
    buf_free(&g);
}

static void test_too_many_tokens(void **state)
{
    struct fx *f = *state;
    EXPECT(f, "incr a 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\r\n",
           "ERROR\r\n");
    EXPECT(f, "mg a v v v v v v v v v v v v v v v v v v v v v v v v\r\n",
           "CLIENT_ERROR options flags are too long\r\n");
}

/* ---- Every split of the input, and input that ends where memory does --- */

static const char script[] =
    "delete s1\r\ndelete s2\r\nset s1 0 0 2\r\n42\r\nadd s2 0 0 1\r\n7\r\n"
    "incr s1 8\r\ndecr s2 9 noreply\r\nget s1 s2 s3\r\ngets s2\r\n"
    "set bad 0 0 3\r\nab\r\n\r\nms s3 2 T0 k\r\n-3\r\nma s3 v D4\r\n"
    "mg s3 v s\r\nmd s3 q\r\ntouch s1 0\r\nbogus\r\nmn\r\n";

static void test_every_split(void **state)
{
    struct fx *f = *state;
    char whole[1024];
    feed(f, script); /* from here on every run starts from the same state */
    snprintf(whole, sizeof whole, "%s", feed(f, script));
    assert_true(strlen(whole) > 50);
    size_t n = strlen(script);
    for (size_t cut = 1; cut < n; cut++) {
        struct buf pend = BUF_INIT;
        buf_clear(&f->out);
        buf_add(&pend, script, cut);
        pump(f, &pend);
        buf_add(&pend, script + cut, n - cut);
        pump(f, &pend);
        assert_int_equal(pend.len, 0);
        buf_addc(&f->out, 0);
        assert_string_equal(f->out.p, whole);
        buf_free(&pend);
    }
    /* And one byte at a time. */
    struct buf pend = BUF_INIT;
    buf_clear(&f->out);
    for (size_t i = 0; i < n; i++) {
        buf_addc(&pend, script[i]);
        pump(f, &pend);
    }
    buf_addc(&f->out, 0);
    assert_string_equal(f->out.p, whole);
    buf_free(&pend);
}

static void test_input_ending_at_a_guard_page(void **state)
{
    struct fx *f = *state;
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    size_t n = strlen(script);
    /* Every prefix of the script, placed so its last byte is the last
     * readable one: handle() must never look past len. */
    for (size_t k = 1; k <= n; k++) {
        char *in = mem + page - k;
        memcpy(in, script, k);
        size_t off = 0;
        while (off < k) {
            struct proto_out o = {&f->out, 0, 0};
            size_t used = mc_ops.handle(f->conn, in + off, k - off, &o);
            if (!used)
                break;
            off += used;
        }
    }
    munmap(mem, 2 * (size_t)page);
}

/* ---- Authentication ------------------------------------------------------ */

static void test_password_login_through_set(void **state)
{
    struct fx *f = *state;
    mc_ops.conn_free(f->conn);
    cmd_init(&f->c.ctx, &f->c.se.base, "sesame", 6, &f->c.info);
    f->conn = mc_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    EXPECT(f, "get a\r\nincr a 1\r\nmg a v\r\n",
           "CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\n"
           "CLIENT_ERROR unauthenticated\r\n");
    EXPECT(f, "set a 0 0 10\r\nuser wrong\r\n",
           "CLIENT_ERROR authentication failure\r\n");
    EXPECT(f, "set a 0 0 11\r\nuser sesame\r\nset a 0 0 1\r\n3\r\nget a\r\n",
           "STORED\r\nSTORED\r\nVALUE a 0 1\r\n3\r\nEND\r\n");
}

/* ---- Cross-protocol attacks and numbers (issue 8) ---------------------- */

/* A web page can make a browser send HTTP to the memcached port; memcached
 * hangs up, without a reply, on an unknown command whose last token begins
 * with "HTTP/", and nothing after it may run. */
static void test_http_request_lines_hang_up(void **state)
{
    struct fx *f = *state;
    static const char *const attacks[] = {
        "GET / HTTP/1.0\r\n",
        "PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1\r\n",
        "DELETE HTTP/1.1\r\n",
        "POST / HTTP/1.1\r\nHost: evil\r\n\r\nincr k 1\r\n",
        "OPTIONS * HTTP/2  \r\n",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        EXPECT(f, attacks[i], "");
        assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    }
    EXPECT(f, "set k 0 0 1\r\n5\r\nGET / HTTP/1.0\r\nincr k 1\r\n",
           "STORED\r\n");
    assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    /* A command tally knows is that command; lower-case http/ is no HTTP. */
    EXPECT(f, "get / HTTP/1.0\r\nFOO http/1.1\r\nFOO HTTPX\r\nget k\r\n",
           "END\r\nERROR\r\nERROR\r\nVALUE k 0 1\r\n5\r\nEND\r\n");
    assert_int_equal(f->flags, 0);
}

/* Before login as well: a body of set lines must not get to guess the
 * password. */
static void test_http_request_hangs_up_before_login(void **state)
{
    struct fx *f = *state;
    mc_ops.conn_free(f->conn);
    cmd_init(&f->c.ctx, &f->c.se.base, "sesame", 6, &f->c.info);
    f->conn = mc_ops.conn_new(f->front, &f->c.ctx, &f->c.s, &f->lim, "x");
    EXPECT(f, "POST / HTTP/1.1\r\nset a 0 0 11\r\nuser sesame\r\n", "");
    assert_int_equal(f->flags, PROTO_ATTACK | PROTO_CLOSE);
    assert_int_equal(f->c.s.authed, 0);
}

struct num_case {
    const char *tok;
    int ok;        /* memcached 1.6.18 takes it */
    int64_t value; /* what it reads, if ok */
};

/* Numbers used to be read with a '+' and a '-' stripped separately, so
 * "-+5" was 5.  These are what memcached's safe_strtoull and safe_strtol
 * make of each token (checked against memcached 1.6.18; the e2e test
 * test_wire_attacks.py repeats the comparison live). */
static void test_numbers_read_as_memcached_reads_them(void **state)
{
    struct fx *f = *state;
    static const struct num_case delta[] = { /* incr: safe_strtoull */
        {"5", 1, 5}, {"+5", 1, 5}, {"05", 1, 5}, {"\t5", 1, 5},
        {"5\t", 1, 5}, {"\v5", 1, 5}, {"5\r", 1, 5}, {"-0", 1, 0},
        {"+0", 1, 0}, {"-18446744073709551615", 1, 1},
        {"-5", 0, 0}, {"-+5", 0, 0}, {"+-5", 0, 0}, {"--5", 0, 0},
        {"++5", 0, 0}, {"0x5", 0, 0}, {"5x", 0, 0}, {"+", 0, 0},
        {"-", 0, 0}, {"\t", 0, 0}, {"18446744073709551616", 0, 0},
    };
    static const struct num_case exptime[] = { /* touch: safe_strtol */
        {"5", 1, 0}, {"+5", 1, 0}, {"-5", 1, 0}, {"05", 1, 0},
        {"\t-5", 1, 0}, {"-0", 1, 0}, {"9223372036854775807", 1, 0},
        {"-9223372036854775808", 1, 0},
        {"-+5", 0, 0}, {"+-5", 0, 0}, {"--5", 0, 0}, {"5x", 0, 0},
        {"9223372036854775808", 0, 0}, {"-9223372036854775809", 0, 0},
        {"18446744073709551615", 0, 0},
    };
    char line[128], want[64];

    for (size_t i = 0; i < sizeof delta / sizeof delta[0]; i++) {
        EXPECT(f, "set n 0 0 1\r\n0\r\n", "STORED\r\n");
        snprintf(line, sizeof line, "incr n %s\r\n", delta[i].tok);
        if (delta[i].ok)
            snprintf(want, sizeof want, "%lld\r\n", (long long)delta[i].value);
        else
            snprintf(want, sizeof want,
                     "CLIENT_ERROR invalid numeric delta argument\r\n");
        assert_string_equal(feed(f, line), want);
    }
    for (size_t i = 0; i < sizeof exptime / sizeof exptime[0]; i++) {
        /* A negative exptime (or one whose low 32 bits are) deletes n. */
        EXPECT(f, "set n 0 0 1\r\n0\r\n", "STORED\r\n");
        snprintf(line, sizeof line, "touch n %s\r\n", exptime[i].tok);
        assert_string_equal(feed(f, line), exptime[i].ok
                            ? "TOUCHED\r\n"
                            : "CLIENT_ERROR invalid exptime argument\r\n");
    }
    /* Flags are read as safe_strtoul reads them, which on a 64-bit system
     * takes 64 bits (memcached then truncates them; tally ignores them). */
    EXPECT(f, "set n 4294967296 0 1\r\n1\r\nset n -0 +0 +1\r\n2\r\n"
              "set n -+1 0 1\r\n3\r\nset n 0 -+1 1\r\n3\r\n"
              "set n 0 0 -+1\r\n3\r\nset n 0 0 -1\r\n3\r\nget n\r\n",
           "STORED\r\nSTORED\r\n"
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "CLIENT_ERROR bad command line format\r\nERROR\r\n"
           "VALUE n 0 1\r\n2\r\nEND\r\n");
    /* The meta commands' number flags use the same readers. */
    EXPECT(f, "ma n D-+5\r\nma n D+5 v\r\nmg n v T-+5\r\nmg n v T+5\r\n"
              "ms n 1 F4294967296\r\n7\r\nms n +1 T+5\r\n8\r\nmg n v\r\n",
           "CLIENT_ERROR invalid or duplicate flag\r\nVA 1\r\n7\r\n"
           "CLIENT_ERROR bad token in command line format\r\nVA 1\r\n7\r\n"
           "HD\r\nHD\r\nVA 1\r\n8\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_get_missing_and_present),
        T(test_set_reply_waits_for_its_ticket),
        T(test_gets_cas_round_trip),
        T(test_cas_incr_decr_md_are_one_store_operation),
        T(test_add_replace_noreply),
        T(test_thirty_day_exptime_is_relative),
        T(test_set_refuses_non_integers),
        T(test_data_block_of_wrong_length),
        T(test_oversized_block_is_swallowed),
        T(test_incr_decr),
        T(test_incr_past_int64_max_is_refused),
        T(test_decr_of_negative_counter_leaves_it),
        T(test_delete_and_touch),
        T(test_version_verbosity_mn_quit),
        T(test_flush_all_refused_unless_allowed),
        T(test_stats_count_hits_and_misses),
        T(test_meta_get),
        T(test_meta_arithmetic),
        T(test_meta_set_and_delete),
        T(test_bad_lines),
        T(test_line_too_long_closes),
        T(test_too_many_tokens),
        T(test_every_split),
        T(test_input_ending_at_a_guard_page),
        T(test_password_login_through_set),
        T(test_http_request_lines_hang_up),
        T(test_http_request_hangs_up_before_login),
        T(test_numbers_read_as_memcached_reads_them),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
