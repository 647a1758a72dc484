/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_stream.h - drives a stream front end (struct proto_ops, proto.h) the
 * way src/server/conn.c does, for fuzz_resp.c and fuzz_memcache.c: a real
 * engine in a fresh directory, the command layer over it, one connection,
 * and the input arriving in pieces.
 *
 * The first input byte configures the run (bit 0: the server has a
 * password, "pw"; bit 1: tight limits, so that the limit paths are reached
 * with small inputs; bits 2-7 seed the piece sizes); the rest is the byte
 * stream.  Each piece is appended to what is pending and handle() is called
 * until it asks for more, as the daemon does.  Every call gets an exact-size
 * copy of the pending bytes, so that a read past `len` is a heap overflow
 * AddressSanitizer reports, not a read of stale buffer bytes.
 *
 * Properties checked besides "no crash, no leak, no undefined behaviour":
 * handle() never consumes more than it was given, a reply never waits for a
 * ticket beyond the engine's head, a front end that asked to close gets no
 * further input, and the same stream delivered all at once, on a fresh
 * database, gets byte for byte the same replies (a front end must not care
 * how its input was cut).  That last check is skipped for sessions whose
 * replies depend on the clock, a background thread or the table's hash
 * seed (the words in `unsteady` below), and a reply that follows an
 * expiry may differ twice before it counts.
 */
#ifndef FUZZ_STREAM_H
#define FUZZ_STREAM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "engine.h"
#include "fuzz_env.h"
#include "proto.h"
#include "util.h"

/* One connection's run over data[0, size) on a fresh database; every reply
 * is appended to *replies.  piece_seed 0 delivers everything at once. */
static inline void fz_stream_once(const struct proto_ops *ops, void *front,
                                  enum cmd_proto proto, unsigned cfg,
                                  uint32_t piece_seed, const uint8_t *data,
                                  size_t size, struct buf *replies)
{
    static const struct cmd_serverinfo info = {
        .start_unix = 1700000000, .pid = 1, .port = 7379, .http_port = 7380,
        .memcache_port = 11211, .maxclients = 10000, .version = "fuzz"};
    struct proto_limits lim = PROTO_LIMITS_DEFAULT;
    struct cmd_serverinfo in = info;
    struct cmd_session s = {.id = 1, .proto = proto};
    struct buf pending = BUF_INIT, reply = BUF_INIT;
    struct cmd_ctx ctx;
    uint32_t rnd = piece_seed;
    char dir[64];
    int open = 1;

    if (cfg & 2) {
        lim.max_args = 8;
        lim.max_bulk = 64;
        lim.max_request = 512;
    }
    fz_dir_make(dir);
    tally *db = fz_open(dir);
    in.dir = "/var/lib/tally"; /* shown only (CONFIG GET dir), and the same
                                  in both runs */
    struct store_engine se;
    store_engine_init(&se, db);
    cmd_init(&ctx, &se.base, (cfg & 1) ? "pw" : NULL, (cfg & 1) ? 2 : 0, &in);
    void *conn = ops->conn_new(front, &ctx, &s, &lim, "127.0.0.1:5555");

    for (size_t pos = 0; pos < size && open;) {
        /* The next piece: 1 to 64 bytes, or all that is left. */
        size_t piece = size - pos;
        if (rnd) {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 17;
            rnd ^= rnd << 5;
            if (!(rnd & 0x40) && 1 + (rnd & 0x3f) < piece)
                piece = 1 + (rnd & 0x3f);
        }
        buf_add(&pending, data + pos, piece);
        pos += piece;
        while (pending.len > 0 && open) {
            char *copy = xmalloc(pending.len);
            memcpy(copy, pending.p, pending.len);
            struct proto_out out = {&reply, 0, 0};
            size_t used = ops->handle(conn, copy, pending.len, &out);
            free(copy);
            FZ_CHECK(used <= pending.len, "%s consumed %zu of %zu bytes",
                     ops->name, used, pending.len);
            FZ_CHECK(out.ticket <= tally_head(db),
                     "%s: reply waits for ticket %llu beyond head %llu",
                     ops->name, (unsigned long long)out.ticket,
                     (unsigned long long)tally_head(db));
            if (out.flags & (PROTO_CLOSE | PROTO_SHUTDOWN))
                open = 0;
            buf_add(replies, reply.p, reply.len);
            buf_clear(&reply);
            if (used == 0)
                break; /* wait for more bytes */
            buf_consume(&pending, used);
        }
    }
    ops->conn_free(conn);
    cmd_session_end(&ctx, &s); /* MULTI and WATCH state */
    cmd_fini(&ctx);            /* scripts' Lua state, once EVAL made one */
    store_close(&se.base);     /* SCAN's arrays */
    buf_free(&pending);
    buf_free(&reply);
    FZ_CHECK(tally_close(db) == TALLY_OK, "tally_close");
    fz_dir_remove(dir);
}

/* Does data[0, size) name a command whose reply depends on the clock, on
 * a background thread (uptime, connection ages, a BGSAVE still running),
 * on the table's random hash seed (the order of SCAN and KEYS), or on how
 * fast the run went (an expiry a millisecond ahead, an idempotency id
 * still in flight)?  An expiry in whole
 * seconds ticks over between two runs at most once: the retries in
 * fz_stream_run absorb it. */
static inline int fz_unsteady(const uint8_t *data, size_t size)
{
    static const char *const unsteady[] = {
        "info", "client", "stats", "save", "time", "hello", "scan", "keys",
        /* expiries in milliseconds, or at an instant that may be now */
        "px", "pexpire", "pttl", "exat", "expireat",
        /* a repeated id is TRYAGAIN until the sync thread made it durable */
        "once"};

    for (size_t w = 0; w < sizeof unsteady / sizeof unsteady[0]; w++) {
        size_t n = strlen(unsteady[w]);
        for (size_t i = 0; i + n <= size; i++)
            if (strncasecmp((const char *)data + i, unsteady[w], n) == 0)
                return 1;
    }
    return 0;
}

/* Run data[0, size) through ops twice: in pieces, then all at once, and
 * compare the replies.  front is the front end's listener state (NULL for
 * RESP); proto names it for the statistics. */
static inline void fz_stream_run(const struct proto_ops *ops, void *front,
                                 enum cmd_proto proto, const uint8_t *data,
                                 size_t size)
{
    struct buf pieces = BUF_INIT, whole = BUF_INIT;

    if (size == 0)
        return;
    unsigned cfg = data[0];
    uint32_t seed = (uint32_t)(cfg >> 2) * 2654435761u + 1;
    int steady = !fz_unsteady(data + 1, size - 1);
    /* An expiry can tick over (a TTL in seconds, a counter that expires)
     * between two runs; a front end that cares how its input was cut
     * differs every time, so three differing attempts are needed. */
    for (int attempt = 0; attempt < 3; attempt++) {
        buf_clear(&pieces);
        buf_clear(&whole);
        fz_stream_once(ops, front, proto, cfg, seed, data + 1, size - 1,
                       &pieces);
        if (!steady)
            break;
        fz_stream_once(ops, front, proto, cfg, 0, data + 1, size - 1, &whole);
        if (pieces.len == whole.len &&
            (whole.len == 0 || memcmp(pieces.p, whole.p, whole.len) == 0))
            break;
        if (getenv("TALLY_FUZZ_DUMP")) { /* README.md: reproducing */
            fprintf(stderr, "---- in pieces:\n");
            fwrite(pieces.p, 1, pieces.len, stderr);
            fprintf(stderr, "\n---- all at once:\n");
            fwrite(whole.p, 1, whole.len, stderr);
            fprintf(stderr, "\n----\n");
        }
        FZ_CHECK(attempt < 2, "%s answers differently when the input comes "
                 "in pieces (%zu reply bytes) than all at once (%zu)",
                 ops->name, pieces.len, whole.len);
    }
    buf_free(&pieces);
    buf_free(&whole);
}

#endif /* FUZZ_STREAM_H */
