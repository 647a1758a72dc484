/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics.c - renders /metrics: per-command counts from the command layer,
 * connection counts from the daemon and the engine's own statistics, as
 * Prometheus text exposition format 0.0.4.
 *
 * It formats and nothing else (the HTTP front end, http.c, serves the text
 * and counts its own Idempotency-Key outcomes).
 * Times are in seconds as Prometheus recommends; the engine counts fsync
 * latency in microseconds and recovery in nanoseconds, so those values are
 * printed as exact decimals (integer part, '.', fraction without trailing
 * zeros) rather than through a float, which keeps bucket labels identical
 * from one scrape to the next.  docs/http.md lists every metric.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include "cmd.h"
#include "events.h"
#include "tally.h"

/* "# HELP" and "# TYPE" lines that open one metric family. */
static void metrics_family(struct buf *out, const char *name,
                           const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample without labels. */
static void metrics_u64(struct buf *out, const char *name, const char *type,
                        const char *help, uint64_t v)
{
    metrics_family(out, name, type, help);
    buf_printf(out, "%s %" PRIu64 "\n", name, v);
}

/* v / 10^decimals as an exact decimal: "0.000512", "3", "2147.483648". */
static void metrics_scaled(struct buf *out, uint64_t v, unsigned decimals)
{
    uint64_t div = 1;
    for (unsigned i = 0; i < decimals; i++)
        div *= 10;
    uint64_t frac = v % div;
    buf_addu64(out, v / div);
    if (frac == 0)
        return;
    while (frac % 10 == 0) { /* drop trailing zeros, keep leading ones */
        frac /= 10;
        decimals--;
    }
    buf_printf(out, ".%0*" PRIu64, (int)decimals, frac);
}

/* A histogram from the engine's power-of-two buckets (tally.h: bucket i
 * counts 2^(i-1) < v <= 2^i, bucket 0 counts v <= 1).  Prometheus buckets are
 * cumulative.  The last engine bucket is folded into +Inf only, because the
 * engine may clamp larger values into it and its bound would then lie.
 * decimals scales bounds and sum (6 turns microseconds into seconds). */
static void metrics_hist(struct buf *out, const char *name, const char *help,
                         const uint64_t *hist, uint64_t sum, unsigned decimals)
{
    uint64_t cum = 0;
    metrics_family(out, name, "histogram", help);
    for (int i = 0; i < TALLY_HIST_BUCKETS - 1; i++) {
        cum += hist[i];
        buf_printf(out, "%s_bucket{le=\"", name);
        metrics_scaled(out, UINT64_C(1) << i, decimals);
        buf_printf(out, "\"} %" PRIu64 "\n", cum);
    }
    cum += hist[TALLY_HIST_BUCKETS - 1];
    buf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    buf_printf(out, "%s_sum ", name);
    metrics_scaled(out, sum, decimals);
    buf_printf(out, "\n%s_count %" PRIu64 "\n", name, cum);
}

/* Calls or errors per protocol and command, every pair (zeros included) so
 * that a series exists before its first use and rate() works from there. */
static void metrics_commands(struct buf *out, const char *name,
                             const char *help,
                             const uint64_t (*n)[CMD_OP_COUNT])
{
    metrics_family(out, name, "counter", help);
    for (int p = 0; p < CMD_PROTO_COUNT; p++)
        for (int op = 0; op < CMD_OP_COUNT; op++)
            buf_printf(out, "%s{protocol=\"%s\",command=\"%s\"} %" PRIu64
                       "\n", name, cmd_proto_name((enum cmd_proto)p),
                       cmd_op_name((enum cmd_op)op), n[p][op]);
}

static const char *metrics_sync_name(tally_sync s)
{
    switch (s) {
    case TALLY_SYNC_ALWAYS: return "always";
    case TALLY_SYNC_EVERYSEC: return "everysec";
    case TALLY_SYNC_NO: return "no";
    }
    return "unknown";
}

/* Idempotency ids: the engine's table (shared by every protocol) and how
 * the HTTP front end's Idempotency-Key requests ended. */
static void metrics_once(struct buf *out, const tally_stats *st,
                         const struct metrics_idem *idem)
{
    static const char *const outcome[METRICS_IDEM_COUNT] = {
        [METRICS_IDEM_APPLIED] = "applied",
        [METRICS_IDEM_REPLAYED] = "replayed",
        [METRICS_IDEM_REUSED] = "reused",
        [METRICS_IDEM_INFLIGHT] = "inflight",
        [METRICS_IDEM_INVALID] = "invalid",
        [METRICS_IDEM_FAILED] = "failed",
    };

    metrics_u64(out, "tally_once_ids", "gauge",
                "Idempotency ids remembered (RESP .ONCE ids and HTTP "
                "Idempotency-Keys share one table; a remote store's: "
                "counted in the store, every instance's).", st->once_ids);
    metrics_u64(out, "tally_once_bytes", "gauge",
                "Heap the remembered idempotency ids take (a remote "
                "store's: the bytes of their records there).",
                st->once_bytes);
    metrics_u64(out, "tally_once_replays_total", "counter",
                "Requests answered with the recorded result of an earlier "
                "request with the same idempotency id, every protocol, "
                "since open (on a remote store: this instance's).",
                st->once_replays);
    metrics_family(out, "tally_http_idempotency_requests_total", "counter",
                   "HTTP requests with an Idempotency-Key, by how they "
                   "ended.");
    for (int i = 0; i < METRICS_IDEM_COUNT; i++)
        buf_printf(out, "tally_http_idempotency_requests_total{outcome=\"%s\"}"
                   " %" PRIu64 "\n", outcome[i], idem->n[i]);
}

/* The change-event hub: events released and dropped, subscribers, and
 * subscribers cut off for not reading (docs/events.md). */
static void metrics_events(struct buf *out, const struct events *hub)
{
    struct events_stats es;

    if (!hub)
        return;
    events_stats_get(hub, &es);
    metrics_u64(out, "tally_events_released_total", "counter",
                "Change events made durable and sent to subscribers.",
                es.released);
    metrics_u64(out, "tally_events_dropped_total", "counter",
                "Change events never sent because their sync failed.",
                es.dropped);
    metrics_u64(out, "tally_events_subscribers", "gauge",
                "Subscriptions to change events (SSE streams, and one for "
                "keyspace notifications while they are on).", es.subscribers);
    metrics_family(out, "tally_subscribers_cut_off_total", "counter",
                   "Subscribers disconnected past "
                   "--subscriber-output-limit, by protocol.");
    for (int p = 0; p < CMD_PROTO_COUNT; p++)
        buf_printf(out, "tally_subscribers_cut_off_total{proto=\"%s\"} %"
                   PRIu64 "\n", cmd_proto_name((enum cmd_proto)p),
                   es.cutoff[p]);
}

/* A label value with Prometheus's escapes (\\, \", \n). */
static void metrics_label(struct buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_addc(out, '\\');
        if (*v == '\n') {
            buf_adds(out, "\\n");
            continue;
        }
        buf_addc(out, *v);
    }
}

static int metrics_is_number(const char *v)
{
    if (!*v)
        return 0;
    for (; *v; v++)
        if (*v < '0' || *v > '9')
            return 0;
    return 1;
}

/* What the store says of itself (store.h store_info): numbers as gauges
 * (tally_store_ready ...), words as labels of tally_store_info. */
static void metrics_store(struct buf *out, const struct cmd_ctx *ctx)
{
    struct store_info_kv kv[STORE_INFO_MAX];
    size_t n = cmd_store_info(ctx, kv, STORE_INFO_MAX), labels = 0;

    metrics_family(out, "tally_store_info", "gauge",
                   "Always 1; labels name the store that holds the counters "
                   "and what a committed change survives.");
    buf_adds(out, "tally_store_info{");
    for (size_t i = 0; i < n; i++) {
        if (metrics_is_number(kv[i].value))
            continue;
        buf_printf(out, "%s%s=\"", labels++ ? "," : "", kv[i].name);
        metrics_label(out, kv[i].value);
        buf_addc(out, '"');
    }
    buf_adds(out, "} 1\n");
    for (size_t i = 0; i < n; i++) {
        char name[96];
        if (!metrics_is_number(kv[i].value))
            continue;
        snprintf(name, sizeof name, "tally_%s", kv[i].name);
        metrics_family(out, name, "gauge", "Reported by the store.");
        buf_printf(out, "%s %s\n", name, kv[i].value);
    }
}

void metrics_render(struct buf *out, const struct cmd_ctx *ctx,
                    const tally_stats *stp, const struct metrics_idem *idem)
{
    const struct cmd_serverinfo *info = ctx->info;
    const tally_stats st = *stp;

    metrics_family(out, "tally_build_info", "gauge",
                   "Always 1; labels name the version, the git revision of "
                   "the build and the sync policy.");
    buf_printf(out, "tally_build_info{version=\"%s\",revision=\"%s\","
               "sync=\"%s\"} 1\n",
               info && info->version ? info->version : TALLY_VERSION,
               info && info->git_rev ? info->git_rev : "unknown",
               metrics_sync_name(st.sync));

    metrics_commands(out, "tally_commands_total",
                     "Commands run, by protocol and command.",
                     ctx->stats.calls);
    metrics_commands(out, "tally_command_errors_total",
                     "Commands that ended in an error status.",
                     ctx->stats.errors);

    if (info) {
        metrics_u64(out, "tally_connected_clients", "gauge",
                    "Open RESP and memcached connections.",
                    info->connected_clients);
        metrics_u64(out, "tally_connections_total", "counter",
                    "Connections accepted since start.",
                    info->total_connections);
        metrics_u64(out, "tally_rejected_connections_total", "counter",
                    "Connections refused over maxclients.",
                    info->rejected_connections);
        metrics_u64(out, "tally_start_time_seconds", "gauge",
                    "When tallyd started, Unix time.",
                    (uint64_t)info->start_unix);
    }

    metrics_u64(out, "tally_counters", "gauge",
                "Live counters (a remote store's: counted in the store, "
                "every instance's).", st.counters);
    metrics_u64(out, "tally_changes_total", "counter",
                "Changes applied since open.", st.changes);
    metrics_u64(out, "tally_log_head", "gauge",
                "Ticket of the newest change.", st.head);
    metrics_u64(out, "tally_log_durable", "gauge",
                "Ticket up to which changes are durable.", st.durable);
    metrics_u64(out, "tally_syncs_total", "counter",
                "fsync/fdatasync calls on the log.", st.syncs);
    metrics_u64(out, "tally_inline_syncs_total", "counter",
                "Of those, the ones the event loop ran itself, with one "
                "client alone.", st.inline_syncs);
    metrics_hist(out, "tally_sync_duration_seconds",
                 "Time one log sync took.", st.sync_us_hist, st.sync_us_sum,
                 6);
    metrics_hist(out, "tally_group_commit_batch_size",
                 "Changes made durable by one sync.", st.batch_hist,
                 st.batch_sum, 0);
    metrics_u64(out, "tally_log_bytes", "gauge", "Bytes in the log files.",
                st.log_bytes);
    metrics_u64(out, "tally_snapshot_bytes", "gauge",
                "Size of the current snapshot (0: none).", st.snapshot_bytes);
    metrics_u64(out, "tally_snapshots_total", "counter",
                "Snapshots written since open.", st.snapshots);
    metrics_u64(out, "tally_snapshot_running", "gauge",
                "1 while a background snapshot is being written.",
                st.snapshot_running ? 1 : 0);
    metrics_u64(out, "tally_last_snapshot_time_seconds", "gauge",
                "When the current snapshot was written, Unix time (0: none).",
                st.last_snapshot_unix > 0 ? (uint64_t)st.last_snapshot_unix
                                          : 0);

    metrics_family(out, "tally_recovery_duration_seconds", "gauge",
                   "Time opening the database spent recovering.");
    buf_adds(out, "tally_recovery_duration_seconds ");
    metrics_scaled(out, st.recovery_ns, 9);
    buf_addc(out, '\n');
    metrics_u64(out, "tally_recovered_records", "gauge",
                "Log records replayed at open.", st.recovered_records);
    metrics_u64(out, "tally_torn_bytes", "gauge",
                "Bytes cut off a torn log tail at open.", st.torn_bytes);

    metrics_once(out, &st, idem);
    metrics_events(out, ctx->events);

    metrics_u64(out, "tally_healthy", "gauge",
                "1 while changes are accepted, 0 after a failed fsync or "
                "while the disk is full.", st.health == TALLY_OK);
    metrics_family(out, "tally_health_code", "gauge",
                   "0, or the negative tally code that stops changes "
                   "(-7 disk full, -8 write path failed).");
    buf_printf(out, "tally_health_code %d\n", st.health);
    metrics_store(out, ctx);
}
