/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics.h - the daemon's statistics as Prometheus text (exposition format
 * 0.0.4), served by the HTTP front end at /metrics.
 *
 * metrics.c only formats: it reads cmd_stats, cmd_serverinfo, the
 * statistics the caller got from cmd_stats() and the HTTP front end's
 * idempotency counts and appends
 * text to a buffer; it never touches a socket.
 * docs/http.md lists every metric.
 */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include <stdint.h>

#include "tally.h"
#include "util.h"

struct cmd_ctx;

/* The Content-Type of what metrics_render() writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* How the HTTP front end's requests with an Idempotency-Key ended, as the
 * command layer answered them (cmd_stats counts calls and errors per
 * operation only, not by status, so http_counter.c counts these itself).  The
 * labels are metrics_idem_name()'s. */
enum metrics_idem_outcome {
    METRICS_IDEM_APPLIED = 0, /* first request: applied and recorded */
    METRICS_IDEM_REPLAYED,    /* repeat: the first one's answer again */
    METRICS_IDEM_REUSED,      /* key sent with another request: 422 */
    METRICS_IDEM_INFLIGHT,    /* first one not durable yet: 409 */
    METRICS_IDEM_INVALID,     /* malformed, empty or too long key: 400 */
    METRICS_IDEM_FAILED,      /* any other error; the key stays unused */
    METRICS_IDEM_COUNT
};

struct metrics_idem {
    uint64_t n[METRICS_IDEM_COUNT];
};

/* Append the whole exposition for ctx, the statistics st (cmd_stats: the
 * caller asks for them, since a remote store answers later) and the HTTP
 * front end's idempotency counts (all borrowed) to out. */
void metrics_render(struct buf *out, const struct cmd_ctx *ctx,
                    const tally_stats *st, const struct metrics_idem *idem);

#endif /* TALLY_METRICS_H */
