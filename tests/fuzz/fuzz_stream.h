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
 * ticket beyond the engine's head, and a front end that asked to close gets
 * no further input.
 */
#ifndef FUZZ_STREAM_H
#define FUZZ_STREAM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fuzz_env.h"
#include "proto.h"
#include "util.h"

/* Run data[0, size) through ops on a fresh database.  front is the front
 * end's listener state (NULL for RESP); proto names it for the statistics. */
static inline void fz_stream_run(const struct proto_ops *ops, void *front,
                                 enum cmd_proto proto, const uint8_t *data,
                                 size_t size)
{
    static const struct cmd_serverinfo info = {
        .start_unix = 1700000000, .pid = 1, .port = 7379, .http_port = 7380,
        .memcache_port = 11211, .maxclients = 10000, .version = "fuzz"};
    struct proto_limits lim = PROTO_LIMITS_DEFAULT;
    struct cmd_serverinfo in = info;
    struct cmd_session s = {1, proto, 0};
    struct buf pending = BUF_INIT, reply = BUF_INIT;
    struct cmd_ctx ctx;
    char dir[64];
    uint32_t rnd;
    size_t pos;
    int open = 1;

    if (size == 0)
        return;
    if (data[0] & 2) {
        lim.max_args = 8;
        lim.max_bulk = 64;
        lim.max_request = 512;
    }
    rnd = (uint32_t)(data[0] >> 2) * 2654435761u + 1;
    data++;
    size--;

    fz_dir_make(dir);
    tally *db = fz_open(dir);
    in.dir = dir;
    cmd_init(&ctx, db, (data[-1] & 1) ? "pw" : NULL, (data[-1] & 1) ? 2 : 0,
             &in);
    void *conn = ops->conn_new(front, &ctx, &s, &lim, "127.0.0.1:5555");

    for (pos = 0; pos < size && open;) {
        /* The next piece: 1 to 64 bytes, or all that is left. */
        rnd ^= rnd << 13;
        rnd ^= rnd >> 17;
        rnd ^= rnd << 5;
        size_t piece = (rnd & 0x40) ? size - pos : 1 + (rnd & 0x3f);
        if (piece > size - pos)
            piece = size - pos;
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
            buf_clear(&reply);
            if (used == 0)
                break; /* wait for more bytes */
            buf_consume(&pending, used);
        }
    }
    ops->conn_free(conn);
    buf_free(&pending);
    buf_free(&reply);
    FZ_CHECK(tally_close(db) == TALLY_OK, "tally_close");
    fz_dir_remove(dir);
}

#endif /* FUZZ_STREAM_H */
