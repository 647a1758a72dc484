/*
 * metrics.h - the daemon's statistics as Prometheus text (exposition format
 * 0.0.4), served by the HTTP front end at /metrics.
 *
 * metrics.c only formats: it reads cmd_stats, cmd_serverinfo and
 * tally_stats_get() and appends text to a buffer; it never touches a socket.
 * docs/http.md lists every metric.
 */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include "util.h"

struct cmd_ctx;

/* The Content-Type of what metrics_render() writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Append the whole exposition for ctx (borrowed) to out. */
void metrics_render(struct buf *out, const struct cmd_ctx *ctx);

#endif /* TALLY_METRICS_H */
