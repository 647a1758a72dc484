/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_admin.c - the RESP connection and server commands that have no
 * counter behind them: HELLO, CLIENT, COMMAND, INFO and CONFIG.  They
 * answer what clients and tools (redis-cli, redis-benchmark, redis-py) ask
 * before or beside their real work, in Redis 7's reply shapes and texts.
 * The facts they report come from the command layer (cmd_serverinfo,
 * cmd_stats) and the engine (tally_stats_get); nothing here is invented:
 * a Redis field tally has no value for is left out rather than faked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "resp_int.h"

/* A subcommand of CLIENT, COMMAND or CONFIG. */
struct sub {
    const char *name; /* lower case */
    int arity;        /* counted from the parent's name, as Redis does */
    resp_handler fn;
};

/* Find and run argv[1] among subs, with Redis's errors for an unknown
 * subcommand ("Try CLIENT HELP.") and a wrong count ('client|setname'). */
static void run_sub(struct resp_conn *c, const char *parent,
                    const struct sub *subs, size_t n)
{
    const struct resp_args *a = &c->args;
    int argc = (int)a->argc;

    for (size_t i = 0; i < n; i++) {
        if (!resp_arg_is(c, 1, subs[i].name))
            continue;
        if ((subs[i].arity > 0 && argc != subs[i].arity) ||
            (subs[i].arity < 0 && argc < -subs[i].arity)) {
            char full[64];
            snprintf(full, sizeof full, "%s|%s", parent, subs[i].name);
            resp_err_arity(c, full);
            return;
        }
        c->s->last_sub = subs[i].name;
        subs[i].fn(c);
        return;
    }
    char up[16];
    size_t k = 0;
    for (; parent[k] && k + 1 < sizeof up; k++)
        up[k] = (char)(parent[k] >= 'a' && parent[k] <= 'z' ? parent[k] - 32
                                                            : parent[k]);
    up[k] = 0;
    resp_error(&c->out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
               (int)(a->argl[1] < 128 ? a->argl[1] : 128), a->argv[1], up);
}

static void reply_help(struct resp_conn *c, const char *const *lines)
{
    size_t n = 0;

    while (lines[n])
        n++;
    resp_array(&c->out, n);
    for (size_t i = 0; i < n; i++)
        resp_simple(&c->out, lines[i]);
}

/* ---- HELLO and CLIENT --------------------------------------------------- */

/* Set the connection's name as CLIENT SETNAME and HELLO SETNAME do: printable
 * ASCII without spaces, or empty to clear it.  Returns 0, or -1 with the
 * error written. */
static int set_name(struct resp_conn *c, struct buf *dst, const char *what,
                    const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '!' || p[i] > '~') {
            resp_error(&c->out, "ERR %s cannot contain spaces, newlines or "
                                "special characters.", what);
            return -1;
        }
    }
    buf_clear(dst);
    buf_add(dst, p, n);
    resp_session_sync(c);
    return 0;
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]] */
void resp_cmd_hello(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    int64_t ver = 0;
    size_t j = 1, auth = 0, name = 0;

    if (a->argc >= 2) {
        if (cmd_parse_i64(a->argv[1], a->argl[1], &ver) != 0) {
            resp_error(&c->out, "ERR Protocol version is not an integer or "
                                "out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            resp_error(&c->out, "NOPROTO unsupported protocol version");
            return;
        }
        j = 2;
    }
    for (; j < a->argc; j++) {
        size_t more = a->argc - 1 - j;
        if (resp_arg_is(c, j, "auth") && more >= 2) {
            auth = j + 1;
            j += 2;
        } else if (resp_arg_is(c, j, "setname") && more >= 1) {
            name = ++j;
        } else {
            resp_error(&c->out, "ERR Syntax error in HELLO option '%.*s'",
                       (int)(a->argl[j] < 128 ? a->argl[j] : 128), a->argv[j]);
            return;
        }
    }
    if (auth && resp_auth(c, a->argv[auth], a->argl[auth], a->argv[auth + 1],
                          a->argl[auth + 1]) != 0)
        return;
    if (!cmd_authorized(c->ctx, c->s)) {
        resp_error(&c->out, "NOAUTH HELLO must be called with the client "
                            "already authenticated, otherwise the HELLO AUTH "
                            "<user> <pass> option can be used to authenticate "
                            "the client and select the RESP protocol version "
                            "at the same time");
        return;
    }
    if (name && set_name(c, &c->name, "Client names", a->argv[name],
                         a->argl[name]) != 0)
        return;
    if (ver) {
        c->out.resp3 = ver == 3;
        resp_session_sync(c);
    }
    resp_map(&c->out, 7);
    resp_bulks(&c->out, "server");
    resp_bulks(&c->out, "redis");
    resp_bulks(&c->out, "version");
    resp_bulks(&c->out, RESP_REDIS_VERSION);
    resp_bulks(&c->out, "proto");
    resp_int(&c->out, c->out.resp3 ? 3 : 2);
    resp_bulks(&c->out, "id");
    resp_int(&c->out, (int64_t)c->s->id);
    resp_bulks(&c->out, "mode");
    resp_bulks(&c->out, "standalone");
    resp_bulks(&c->out, "role");
    resp_bulks(&c->out, "master");
    resp_bulks(&c->out, "modules");
    resp_array(&c->out, 0);
}

static void client_id(struct resp_conn *c)
{
    resp_int(&c->out, (int64_t)c->s->id);
}

static void client_getname(struct resp_conn *c)
{
    if (c->name.len)
        resp_bulk(&c->out, c->name.p, c->name.len);
    else
        resp_null(&c->out);
}

static void client_setname(struct resp_conn *c)
{
    if (set_name(c, &c->name, "Client names", c->args.argv[2],
                 c->args.argl[2]) == 0)
        resp_simple(&c->out, "OK");
}

/* CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; redis-py 5 sends it on
 * connect and ignores a failure, but answering keeps logs clean). */
static void client_setinfo(struct resp_conn *c)
{
    const struct resp_args *a = &c->args;
    struct buf *dst;
    const char *what;

    if (resp_arg_is(c, 2, "lib-name")) {
        dst = &c->libname;
        what = "lib-name";
    } else if (resp_arg_is(c, 2, "lib-ver")) {
        dst = &c->libver;
        what = "lib-ver";
    } else {
        resp_error(&c->out, "ERR Unrecognized option '%.*s'",
                   (int)(a->argl[2] < 128 ? a->argl[2] : 128), a->argv[2]);
        return;
    }
    if (set_name(c, dst, what, a->argv[3], a->argl[3]) == 0)
        resp_simple(&c->out, "OK");
}

static void client_help(struct resp_conn *c)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME", "    Return the name of the current connection.",
        "ID", "    Return the ID of the current connection.",
        "INFO", "    Return information about the current client connection.",
        "KILL <ip:port>", "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are: ID <client-id>, TYPE <normal|pubsub>,",
        "    USER default, ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO),",
        "    MAXAGE <seconds>.",
        "LIST [TYPE <normal|pubsub>] [ID <client-id> [<client-id> ...]]",
        "    Return information about client connections.",
        "SETNAME <name>", "    Assign the name <name> to the current connection.",
        "SETINFO <LIB-NAME|LIB-VER> <value>",
        "    Set client library name or version.",
        "HELP", "    Print this help.", NULL};
    reply_help(c, lines);
}

/* CLIENT NO-EVICT on|off: tally evicts nothing, so either holds. */
static void client_onoff(struct resp_conn *c)
{
    if (resp_arg_is(c, 2, "on") || resp_arg_is(c, 2, "off"))
        resp_simple(&c->out, "OK");
    else
        resp_error(&c->out, "ERR syntax error");
}

void resp_cmd_client(struct resp_conn *c)
{
    static const struct sub subs[] = {
        {"id", 2, client_id},           {"getname", 2, client_getname},
        {"setname", 3, client_setname}, {"setinfo", 4, client_setinfo},
        {"info", 2, resp_client_info},  {"help", 2, client_help},
        {"list", -2, resp_client_list}, {"kill", -3, resp_client_kill},
        {"no-evict", 3, client_onoff},
    };
    run_sub(c, "client", subs, sizeof subs / sizeof subs[0]);
}

/* ---- COMMAND ------------------------------------------------------------ */

/* One COMMAND entry in Redis 7's ten-element shape: name, arity, flags,
 * first key, last key, key step, ACL categories, tips, key specs and
 * subcommands (the last four empty: tally has no ACLs or key specs). */
static void command_entry(struct resp_conn *c, const struct resp_command *cmd)
{
    const char *f = cmd->doc_flags;
    size_t nflags = 0;

    for (const char *p = f; *p; p++)
        if ((p == f || p[-1] == ' ') && *p != ' ')
            nflags++;
    resp_array(&c->out, 10);
    resp_bulks(&c->out, cmd->name);
    resp_int(&c->out, cmd->arity);
    resp_set(&c->out, nflags);
    while (*f) {
        size_t n = strcspn(f, " ");
        if (n) {
            char word[32];
            snprintf(word, sizeof word, "%.*s", (int)n, f);
            resp_simple(&c->out, word);
        }
        f += n + (f[n] == ' ');
    }
    resp_int(&c->out, cmd->first);
    resp_int(&c->out, cmd->last);
    resp_int(&c->out, cmd->step);
    resp_set(&c->out, 0);
    resp_set(&c->out, 0);
    resp_array(&c->out, 0);
    resp_array(&c->out, 0);
}

static void command_all(struct resp_conn *c)
{
    resp_array(&c->out, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands; i++)
        command_entry(c, &resp_commands[i]);
}

static void command_count(struct resp_conn *c)
{
    resp_int(&c->out, (int64_t)resp_ncommands);
}

/* COMMAND INFO [name ...]: all without names, null for unknown ones. */
static void command_info(struct resp_conn *c)
{
    if (c->args.argc == 2) {
        command_all(c);
        return;
    }
    resp_array(&c->out, c->args.argc - 2);
    for (size_t i = 2; i < c->args.argc; i++) {
        const struct resp_command *cmd =
            resp_lookup(c->front, c->args.argv[i], c->args.argl[i]);
        if (cmd)
            command_entry(c, cmd);
        else
            resp_null(&c->out);
    }
}

/* COMMAND DOCS: tally keeps no documentation in the server, so the map is
 * empty; redis-cli then simply shows no argument hints. */
static void command_docs(struct resp_conn *c) { resp_map(&c->out, 0); }

static void command_list(struct resp_conn *c)
{
    if (c->args.argc != 2) { /* FILTERBY needs ACL categories tally lacks */
        resp_error(&c->out, "ERR syntax error");
        return;
    }
    resp_array(&c->out, resp_ncommands);
    for (size_t i = 0; i < resp_ncommands; i++)
        resp_bulks(&c->out, resp_commands[i].name);
}

static void command_help(struct resp_conn *c)
{
    static const char *const lines[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)", "    Return details about all commands.",
        "COUNT", "    Return the total number of commands.",
        "DOCS [<command-name> ...]", "    Return documentation (none in tally).",
        "INFO [<command-name> ...]", "    Return details about commands.",
        "LIST", "    Return the names of all commands.",
        "HELP", "    Print this help.", NULL};
    reply_help(c, lines);
}

void resp_cmd_command(struct resp_conn *c)
{
    static const struct sub subs[] = {
        {"count", 2, command_count}, {"info", -2, command_info},
        {"docs", -2, command_docs},  {"list", -2, command_list},
        {"help", 2, command_help},
    };
    if (c->args.argc == 1)
        command_all(c);
    else
        run_sub(c, "command", subs, sizeof subs / sizeof subs[0]);
}

/* ---- CONFIG GET and SET ---------------------------------------------------- */

static const char *sync_name(tally_sync s)
{
    return s == TALLY_SYNC_ALWAYS ? "always"
           : s == TALLY_SYNC_EVERYSEC ? "everysec" : "no";
}

/* The Redis parameters CONFIG GET knows, with what tally really does: no
 * Redis save points (snapshots follow the log's size), an append-only log
 * that is always on, the fsync policy, one database.  The daemon's own
 * settings (info->config, named as its flags) follow them; they include
 * dir, port and maxclients, the last three here, which are shown from here
 * only when there is no info->config. */
static const char *const config_names[] = {
    "save", "appendonly", "appendfsync", "databases", "dir", "port",
    "maxclients",
};
#define CONFIG_N (sizeof config_names / sizeof config_names[0])
#define CONFIG_REDIS_ONLY 4

static void config_value(struct resp_conn *c, size_t i, char *out, size_t n)
{
    const struct cmd_serverinfo *info = c->ctx->info;
    tally_stats st;

    switch (i) {
    case 0: snprintf(out, n, "%s", ""); break;
    case 1: snprintf(out, n, "yes"); break;
    case 2:
        cmd_engine_stats(c->ctx, &st);
        snprintf(out, n, "%s", sync_name(st.sync));
        break;
    case 3: snprintf(out, n, "1"); break;
    case 4: snprintf(out, n, "%s", info && info->dir ? info->dir : ""); break;
    case 5: snprintf(out, n, "%d", info ? info->port : 0); break;
    default:
        snprintf(out, n, "%llu",
                 (unsigned long long)(info ? info->maxclients : 0));
        break;
    }
}

/* Name and value of parameter i: config_names first, then the daemon's. */
static const char *config_param(struct resp_conn *c, size_t i, char *val,
                                size_t n)
{
    const struct cmd_config *cf = c->ctx->info ? c->ctx->info->config : NULL;
    size_t nredis = cf ? CONFIG_REDIS_ONLY : CONFIG_N;
    if (i < nredis) {
        config_value(c, i, val, n);
        return config_names[i];
    }
    return cf->get(cf->self, i - nredis, val, n);
}

/* CONFIG GET pattern [pattern ...]: names matched case-insensitively as
 * globs, each at most once, as a map (a flat array in RESP2). */
static void config_get(struct resp_conn *c)
{
    const struct cmd_config *cf = c->ctx->info ? c->ctx->info->config : NULL;
    size_t nparams = cf ? CONFIG_REDIS_ONLY + cf->count : CONFIG_N;
    unsigned char *hit = xcalloc(nparams, 1);
    size_t nhit = 0;
    struct buf pat = BUF_INIT;
    char val[512];

    for (size_t j = 2; j < c->args.argc; j++) {
        buf_clear(&pat);
        for (size_t k = 0; k < c->args.argl[j]; k++) {
            char ch = c->args.argv[j][k];
            buf_addc(&pat, (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch));
        }
        for (size_t i = 0; i < nparams; i++) {
            const char *name = config_param(c, i, val, sizeof val);
            if (!hit[i] && cmd_glob_match(pat.p, pat.len, name, strlen(name))) {
                hit[i] = 1;
                nhit++;
            }
        }
    }
    buf_free(&pat);
    resp_map(&c->out, nhit);
    for (size_t i = 0; i < nparams; i++) {
        if (!hit[i])
            continue;
        resp_bulks(&c->out, config_param(c, i, val, sizeof val));
        resp_bulks(&c->out, val);
    }
    free(hit);
}

/* CONFIG SET parameter value: one at a time, and only what the daemon says
 * may change while it runs; Redis's errors otherwise. */
static void config_set(struct resp_conn *c)
{
    const struct cmd_config *cf = c->ctx->info ? c->ctx->info->config : NULL;
    const struct resp_args *a = &c->args;
    char name[64], value[512], why[256] = "", msg[400];

    if (a->argc != 4) {
        resp_error(&c->out, "ERR CONFIG SET takes one parameter and its value "
                            "at a time here");
        return;
    }
    snprintf(name, sizeof name, "%.*s", (int)a->argl[2], a->argv[2]);
    for (char *p = name; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    int known = a->argl[2] < sizeof name && !memchr(a->argv[2], 0, a->argl[2]);
    int ok = a->argl[3] < sizeof value && !memchr(a->argv[3], 0, a->argl[3]);
    snprintf(value, sizeof value, "%.*s", (int)a->argl[3], a->argv[3]);
    int st = !cf || !known ? CMD_CONFIG_UNKNOWN
             : !ok ? CMD_CONFIG_BADVALUE
             : cf->set(cf->self, name, value, why);
    switch (st) {
    case CMD_CONFIG_OK:
        resp_simple(&c->out, "OK");
        return;
    case CMD_CONFIG_UNKNOWN:
        snprintf(msg, sizeof msg, "ERR Unknown option or number of arguments "
                 "for CONFIG SET - '%s'", name);
        break;
    case CMD_CONFIG_IMMUTABLE:
        snprintf(msg, sizeof msg, "ERR CONFIG SET failed (possibly related to "
                 "argument '%s') - can't set immutable config", name);
        break;
    default:
        snprintf(msg, sizeof msg, "ERR CONFIG SET failed (possibly related to "
                 "argument '%s') - %s", name, why[0] ? why : "bad value");
        break;
    }
    resp_error(&c->out, "%s", msg);
}

static void config_help(struct resp_conn *c)
{
    static const char *const lines[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <parameter> <value>",
        "    Set a parameter that may change at run time (log-level, maxclients).",
        "HELP", "    Print this help.", NULL};
    reply_help(c, lines);
}

void resp_cmd_config(struct resp_conn *c)
{
    static const struct sub subs[] = {
        {"get", -3, config_get}, {"set", -4, config_set},
        {"help", 2, config_help},
    };
    run_sub(c, "config", subs, sizeof subs / sizeof subs[0]);
}

/* ---- INFO ----------------------------------------------------------------- */

enum { SEC_SERVER, SEC_CLIENTS, SEC_PERSISTENCE, SEC_STATS, SEC_STORE,
       SEC_KEYSPACE, SEC_COMMANDSTATS, SEC_COUNT };
static const char *const sec_names[SEC_COUNT] = {
    "server", "clients", "persistence", "stats", "store", "keyspace",
    "commandstats"};
static const char *const sec_titles[SEC_COUNT] = {
    "Server", "Clients", "Persistence", "Stats", "Store", "Keyspace",
    "Commandstats"};

static void info_section(struct resp_conn *c, struct buf *t, int sec,
                         const tally_stats *st, const struct cmd_keyspace *ks)
{
    const struct cmd_serverinfo *info = c->ctx->info;
    const struct cmd_stats *cs = &c->ctx->stats;
    int64_t now = (int64_t)time(NULL);
    int64_t up = info && info->start_unix ? now - info->start_unix : 0;
    uint64_t calls = 0, errors = 0;

    for (int p = 0; p < CMD_PROTO_COUNT; p++)
        for (int o = 0; o < CMD_OP_COUNT; o++) {
            calls += cs->calls[p][o];
            errors += cs->errors[p][o];
        }
    switch (sec) {
    case SEC_SERVER:
        buf_printf(t, "redis_version:%s\r\nredis_git_sha1:%s\r\n"
                      "redis_mode:standalone\r\ntally_version:%s\r\n"
                      "tally_git_revision:%s\r\narch_bits:%d\r\n",
                   RESP_REDIS_VERSION,
                   info && info->git_rev ? info->git_rev : "unknown",
                   info && info->version ? info->version : TALLY_VERSION,
                   info && info->git_rev ? info->git_rev : "unknown",
                   (int)(8 * sizeof(void *)));
        if (info)
            buf_printf(t, "process_id:%d\r\ntcp_port:%d\r\nhttp_port:%d\r\n"
                          "memcache_port:%d\r\nuptime_in_seconds:%lld\r\n"
                          "uptime_in_days:%lld\r\ndir:%s\r\n",
                       info->pid, info->port, info->http_port,
                       info->memcache_port, (long long)up,
                       (long long)(up / 86400), info->dir ? info->dir : "");
        break;
    case SEC_CLIENTS:
        if (info)
            buf_printf(t, "connected_clients:%llu\r\nmaxclients:%llu\r\n",
                       (unsigned long long)info->connected_clients,
                       (unsigned long long)info->maxclients);
        break;
    case SEC_PERSISTENCE:
        buf_printf(
            t,
            "loading:0\r\naof_enabled:1\r\naof_last_write_status:%s\r\n"
            "rdb_bgsave_in_progress:%d\r\nrdb_last_save_time:%lld\r\n"
            "tally_sync:%s\r\ntally_health:%s\r\ntally_head:%llu\r\n"
            "tally_durable:%llu\r\ntally_log_bytes:%llu\r\n"
            "tally_snapshot_bytes:%llu\r\ntally_snapshots:%llu\r\n"
            "tally_syncs:%llu\r\ntally_inline_syncs:%llu\r\n"
            "tally_changes:%llu\r\n"
            "tally_avg_sync_us:%llu\r\ntally_avg_batch:%llu\r\n"
            "tally_recovery_us:%llu\r\ntally_recovered_records:%llu\r\n"
            "tally_torn_bytes:%llu\r\n",
            st->health == TALLY_OK ? "ok" : "err", st->snapshot_running,
            (long long)st->last_snapshot_unix, sync_name(st->sync),
            st->health == TALLY_OK ? "ok" : tally_strerror(st->health),
            (unsigned long long)st->head, (unsigned long long)st->durable,
            (unsigned long long)st->log_bytes,
            (unsigned long long)st->snapshot_bytes,
            (unsigned long long)st->snapshots, (unsigned long long)st->syncs,
            (unsigned long long)st->inline_syncs,
            (unsigned long long)st->changes,
            (unsigned long long)(st->syncs ? st->sync_us_sum / st->syncs : 0),
            (unsigned long long)(st->syncs ? st->batch_sum / st->syncs : 0),
            (unsigned long long)(st->recovery_ns / 1000),
            (unsigned long long)st->recovered_records,
            (unsigned long long)st->torn_bytes);
        buf_printf(t, "tally_once_ids:%llu\r\ntally_once_bytes:%llu\r\n"
                      "tally_once_replays:%llu\r\n",
                   (unsigned long long)st->once_ids,
                   (unsigned long long)st->once_bytes,
                   (unsigned long long)st->once_replays);
        break;
    case SEC_STATS:
        if (info)
            buf_printf(t, "total_connections_received:%llu\r\n"
                          "rejected_connections:%llu\r\n",
                       (unsigned long long)info->total_connections,
                       (unsigned long long)info->rejected_connections);
        buf_printf(t, "total_commands_processed:%llu\r\n"
                      "total_error_replies:%llu\r\n"
                      "expired_keys:%llu\r\n",
                   (unsigned long long)calls, (unsigned long long)errors,
                   (unsigned long long)st->expired);
        break;
    case SEC_STORE: {
        /* What the store says of itself (store.h store_info): which one,
         * what a committed change survives, whether it can serve. */
        struct store_info_kv kv[STORE_INFO_MAX];
        size_t n = cmd_store_info(c->ctx, kv, STORE_INFO_MAX);
        for (size_t i = 0; i < n; i++)
            buf_printf(t, "%s:%s\r\n", kv[i].name, kv[i].value);
        break;
    }
    case SEC_KEYSPACE:
        /* Exact: counters whose time has passed are not counted. */
        if (ks->keys) /* Redis lists only databases holding keys */
            buf_printf(t, "db0:keys=%llu,expires=%llu,avg_ttl=%lld\r\n",
                       (unsigned long long)ks->keys,
                       (unsigned long long)ks->expires,
                       (long long)ks->avg_ttl_ms);
        break;
    case SEC_COMMANDSTATS:
        for (int o = 0; o < CMD_OP_COUNT; o++) {
            uint64_t n = 0, e = 0;
            for (int p = 0; p < CMD_PROTO_COUNT; p++) {
                n += cs->calls[p][o];
                e += cs->errors[p][o];
            }
            if (!n)
                continue;
            buf_printf(t, "cmdstat_%s:calls=%llu,failed_calls=%llu",
                       cmd_op_name(o), (unsigned long long)n,
                       (unsigned long long)e);
            for (int p = 0; p < CMD_PROTO_COUNT; p++)
                buf_printf(t, ",calls_%s=%llu", cmd_proto_name(p),
                           (unsigned long long)cs->calls[p][o]);
            buf_adds(t, "\r\n");
        }
        break;
    }
}

/* INFO [section ...]: the default sections without arguments or with
 * "default", all of them with "all" or "everything"; unknown names add
 * nothing, as in Redis. */
void resp_cmd_info(struct resp_conn *c)
{
    int want[SEC_COUNT] = {0};
    struct buf *t = &c->tmp;
    tally_stats st;
    struct cmd_keyspace ks = {0};
    int n = 0;

    if (c->args.argc == 1)
        for (int s = 0; s < SEC_KEYSPACE + 1; s++)
            want[s] = 1;
    for (size_t j = 1; j < c->args.argc; j++) {
        int all = resp_arg_is(c, j, "all") || resp_arg_is(c, j, "everything");
        int def = resp_arg_is(c, j, "default");
        for (int s = 0; s < SEC_COUNT; s++)
            if (all || (def && s <= SEC_KEYSPACE) ||
                resp_arg_is(c, j, sec_names[s]))
                want[s] = 1;
    }
    /* A store that answers later runs INFO again once it has (cmd_stats):
     * this run's reply is dropped. */
    if (cmd_stats(c->ctx, c->s, &st, want[SEC_KEYSPACE] ? &ks : NULL) ==
        CMD_PENDING)
        return;
    buf_clear(t);
    for (int s = 0; s < SEC_COUNT; s++) {
        if (!want[s])
            continue;
        if (n++)
            buf_adds(t, "\r\n");
        buf_printf(t, "# %s\r\n", sec_titles[s]);
        info_section(c, t, s, &st, &ks);
    }
    resp_verbatim(&c->out, t->p ? t->p : "", t->len);
}
