/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config.c - tallyd's command-line flags: parsing, checking and --help.
 * Every setting the daemon has is a flag; defaults are those in the help
 * text below.  The result is a struct conf that main.c turns into engine
 * options, listeners and the command layer's password.  A --config file
 * (conffile.c) is read as flags placed before the command line's, through
 * the same option table, so every flag works there with no code of its own.
 */
#include "server.h"

#include "pubsub.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: tallyd [options]\n"
    "tally's daemon: durable named 64-bit counters over the Redis protocol,\n"
    "HTTP/JSON and the memcached text protocol.\n"
    "\n"
    "  --config FILE          read settings from FILE first, one 'name value'\n"
    "                         a line (names as these flags); flags win over it\n"
    "  --dir DIR              data directory (default ./data; created if missing;\n"
    "                         unused with a postgresql:// or redis:// --store)\n"
    "  --store URI            where counters live: postgresql://... or\n"
    "                         postgres://... (any libpq URI), redis://[user:\n"
    "                         password@]host:port[/db], redis+cluster://\n"
    "                         host:port[,host:port...]; default: the engine\n"
    "                         on --dir\n"
    "  --store-prefix P       redis store: prefix of every key (default tally:)\n"
    "  --store-wait-replicas N  redis store: after each batch of writes WAIT\n"
    "                         for N replicas (default 0: none)\n"
    "  --store-tls-ca-file F  rediss:// store: the CA its certificate chains to\n"
    "                         (default: the system's)\n"
    "  --store-tls-cert-file F, --store-tls-key-file F  rediss:// store: a\n"
    "                         client certificate and its key\n"
    "  --bind ADDR            address to listen on (default 127.0.0.1)\n"
    "  --port N               Redis protocol port (default 7379; 0 = off, with\n"
    "                         a --tls-port)\n"
    "  --http-port N          HTTP/JSON port (default 7380; 0 = off)\n"
    "  --memcache-port N      memcached text protocol port (default 0 = off)\n"
    "  --fsync POLICY         always (default): a reply means fsync'd;\n"
    "                         everysec: written to the OS, fsync each second;\n"
    "                         no: written to the OS, the OS syncs\n"
    "  --requirepass PASS     clients must AUTH with PASS\n"
    "  --password-file FILE   the same, PASS being FILE's first line\n"
    "  --maxclients N         stream connections at most (default 10000)\n"
    "  --log-level LEVEL      error, warn, info (default) or debug; logs go to stderr\n"
    "  --allow-flush          allow memcached flush_all and RESP FLUSHDB and\n"
    "                         FLUSHALL (refused by default)\n"
    "  --snapshot-min-log N   log bytes since the last snapshot that start an\n"
    "                         automatic one (default: the engine's, 64 MiB)\n"
    "  --idempotency-ttl T    how long an idempotency id (Idempotency-Key,\n"
    "                         INCRBY.ONCE) is remembered: seconds, or with a\n"
    "                         unit s, m, h or d (default 24h)\n"
    "  --spin on|off          under --fsync always, poll instead of sleeping\n"
    "                         for waits the engine measures to be a few us\n"
    "                         (a fast device's fsync, a client's next request\n"
    "                         right after its reply); longer waits are slept\n"
    "                         through either way (default on)\n"
    "  --http-cors-origin O   an origin (scheme://host[:port]) whose pages may\n"
    "                         change counters and read answers from a browser;\n"
    "                         repeat it or give a comma list; '*' (any origin)\n"
    "                         only with a password (default: none)\n"
    "  --http-allowed-host H  a name the HTTP Host header may carry, any port;\n"
    "                         repeat it or give a comma list.  Always allowed:\n"
    "                         localhost, 127.0.0.1, [::1], and, when --bind is\n"
    "                         not loopback, any IP address.  '*': any name (no\n"
    "                         protection against DNS rebinding)\n"
    "  --tls-port N           RESP over TLS (default 0 = off; beside --port)\n"
    "  --https-port N         the HTTP/JSON API over TLS (default 0 = off)\n"
    "  --memcache-tls-port N  memcached over TLS (default 0 = off)\n"
    "  --tls-cert-file FILE   the server's certificate chain (PEM)\n"
    "  --tls-key-file FILE    its private key (PEM)\n"
    "  --tls-ca-cert-file F   CA certificates that client certificates must\n"
    "                         chain to (PEM)\n"
    "  --tls-ca-cert-dir DIR  the same, as an OpenSSL hashed directory\n"
    "  --tls-auth-clients M   yes (default): clients need a certificate of the\n"
    "                         CA; optional: checked if sent; no: not asked\n"
    "  --tls-protocols P      TLSv1.2 and/or TLSv1.3 (default both)\n"
    "  --tls-ciphers LIST     TLS 1.2 ciphers, OpenSSL's syntax (default\n"
    "                         OpenSSL's)\n"
    "  --busy-reply-threshold MS  while a script runs longer, other clients\n"
    "                         get -BUSY and SCRIPT KILL is taken (default 5000)\n"
    "  --events-window N      change events kept for SSE clients that reconnect\n"
    "                         with Last-Event-ID (default 65536; 0 = none)\n"
    "  --notify-keyspace-events CLASSES\n"
    "                         Redis keyspace notifications over pub/sub, with\n"
    "                         Redis's class letters, e.g. KEA (default: off)\n"
    "  --subscriber-output-limit N\n"
    "                         unsent bytes a pub/sub or SSE subscriber may have\n"
    "                         before it is disconnected (default 8388608)\n"
    "  --events-keepalive S   seconds between SSE keep-alive comments (default 15)\n"
    "  --help, --version\n"
    "\n"
    "SIGTERM or SIGINT: stop accepting, answer requests in flight, sync, exit 0.\n"
    "SIGHUP: reread --config FILE's log-level and maxclients, and the TLS\n"
    "certificates and keys.\n";

enum {
    OPT_DIR = 256, OPT_BIND, OPT_PORT, OPT_HTTP_PORT, OPT_MC_PORT, OPT_FSYNC,
    OPT_PASS, OPT_PASSFILE, OPT_MAXCLIENTS, OPT_LOGLEVEL, OPT_FLUSH,
    OPT_SNAPMIN, OPT_ONCE_TTL, OPT_SPIN, OPT_CORS, OPT_HOSTS, OPT_TLS_PORT,
    OPT_HTTPS_PORT, OPT_MC_TLS_PORT, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA,
    OPT_TLS_CADIR, OPT_TLS_AUTH, OPT_TLS_PROTOS, OPT_TLS_CIPHERS, OPT_CONFIG,
    OPT_BUSY, OPT_EVWINDOW, OPT_NOTIFY, OPT_SUBLIMIT, OPT_KEEPALIVE,
    OPT_STORE, OPT_STORE_PREFIX, OPT_STORE_WAIT, OPT_STORE_TLS_CA,
    OPT_STORE_TLS_CERT, OPT_STORE_TLS_KEY,
    OPT_HELP, OPT_VERSION
};

static const struct option options[] = {
    {"dir", required_argument, NULL, OPT_DIR},
    {"bind", required_argument, NULL, OPT_BIND},
    {"port", required_argument, NULL, OPT_PORT},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"memcache-port", required_argument, NULL, OPT_MC_PORT},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"requirepass", required_argument, NULL, OPT_PASS},
    {"password-file", required_argument, NULL, OPT_PASSFILE},
    {"maxclients", required_argument, NULL, OPT_MAXCLIENTS},
    {"log-level", required_argument, NULL, OPT_LOGLEVEL},
    {"allow-flush", no_argument, NULL, OPT_FLUSH},
    {"snapshot-min-log", required_argument, NULL, OPT_SNAPMIN},
    {"idempotency-ttl", required_argument, NULL, OPT_ONCE_TTL},
    {"spin", required_argument, NULL, OPT_SPIN},
    {"http-cors-origin", required_argument, NULL, OPT_CORS},
    {"http-allowed-host", required_argument, NULL, OPT_HOSTS},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"https-port", required_argument, NULL, OPT_HTTPS_PORT},
    {"memcache-tls-port", required_argument, NULL, OPT_MC_TLS_PORT},
    {"tls-cert-file", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key-file", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca-cert-file", required_argument, NULL, OPT_TLS_CA},
    {"tls-ca-cert-dir", required_argument, NULL, OPT_TLS_CADIR},
    {"tls-auth-clients", required_argument, NULL, OPT_TLS_AUTH},
    {"tls-protocols", required_argument, NULL, OPT_TLS_PROTOS},
    {"tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"busy-reply-threshold", required_argument, NULL, OPT_BUSY},
    {"events-window", required_argument, NULL, OPT_EVWINDOW},
    {"notify-keyspace-events", required_argument, NULL, OPT_NOTIFY},
    {"subscriber-output-limit", required_argument, NULL, OPT_SUBLIMIT},
    {"events-keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"store", required_argument, NULL, OPT_STORE},
    {"store-prefix", required_argument, NULL, OPT_STORE_PREFIX},
    {"store-wait-replicas", required_argument, NULL, OPT_STORE_WAIT},
    {"store-tls-ca-file", required_argument, NULL, OPT_STORE_TLS_CA},
    {"store-tls-cert-file", required_argument, NULL, OPT_STORE_TLS_CERT},
    {"store-tls-key-file", required_argument, NULL, OPT_STORE_TLS_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char *const sync_names[] = {"always", "everysec", "no"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const onoff_names[] = {"off", "on"};
static const char *const tls_auth_names[] = {"no", "optional", "yes"};

const char *conf_tls_auth_name(int a)
{
    return (unsigned)a < 3 ? tls_auth_names[a] : "?";
}

const char *conf_sync_name(tally_sync s)
{
    return (unsigned)s < 3 ? sync_names[s] : "?";
}

const char *conf_level_name(int level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

const struct option *conf_options(size_t *n)
{
    *n = sizeof options / sizeof options[0] - 1;
    return options;
}

/* Parse a decimal in [lo, hi] into *out.  Returns 0 or -1. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A duration ("90", "90s", "15m", "24h", "7d") into milliseconds, at least
 * one second and at most ten years.  Returns 0, or -1. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct { char unit; uint64_t ms; } units[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    char num[32];
    size_t n = strlen(s);
    uint64_t mult = 1000, v;

    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, s, n + 1);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (num[n - 1] == units[i].unit) {
            mult = units[i].ms;
            num[n - 1] = 0;
            break;
        }
    if (parse_u64(num, 1, 10ull * 366 * 86400000 / mult, &v) < 0)
        return -1;
    *out = v * mult;
    return 0;
}

/* Index of s in names[n], or -1. */
static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Read the first line of path (without its line ending) into c->password. */
static int read_password(struct conf *c, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, 256, "--password-file %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    int rc = 0;
    if (n < 0) {
        snprintf(err, 256, "--password-file %s: %s", path,
                 ferror(f) ? strerror(errno) : "the file is empty");
        rc = -1;
        goto done;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    if (n == 0) {
        snprintf(err, 256, "--password-file %s: the first line is empty", path);
        rc = -1;
        goto done;
    }
    /* Passwords are text (as Redis's requirepass and --requirepass): one
     * holding a NUL is most likely a binary file given by mistake, and
     * would be cut short by every C string on the way. */
    if (memchr(line, '\0', (size_t)n)) {
        snprintf(err, 256, "--password-file %s: the first line holds a NUL "
                 "byte; a password must be text", path);
        rc = -1;
        goto done;
    }
    free(c->password);
    c->password = xstrdup(line);
    c->passlen = (size_t)n;
done:
    free(line);
    fclose(f);
    return rc;
}

/* Whether item (lower case, trimmed, not empty) is an origin as browsers
 * send it: scheme "://" host [":" port], nothing after.  Returns 0, or -1
 * with the reason in err. */
static int check_origin(char *item, char *err)
{
    const char *sep = strstr(item, "://");
    size_t sl = sep ? (size_t)(sep - item) : 0;
    if (strcmp(item, "*") == 0)
        return 0;
    if (strcmp(item, "null") == 0) {
        snprintf(err, 256, "--http-cors-origin: 'null' is the origin of any "
                 "sandboxed or local page and cannot be allowed");
        return -1;
    }
    if (!sep || sl == 0 || strspn(item, "abcdefghijklmnopqrstuvwxyz"
                                        "0123456789+.-") != sl ||
        sep[3] == '\0' || strpbrk(sep + 3, "/?#@ \t")) {
        snprintf(err, 256, "--http-cors-origin '%.100s' is not an origin: "
                 "write scheme://host[:port], no path, no trailing '/'", item);
        return -1;
    }
    return 0;
}

/* Whether item (lower case, trimmed, not empty) is a host name or address
 * without a port: what --http-allowed-host takes.  One trailing dot is
 * dropped ("name." is "name", as the Host check sees it).  Returns 0, or
 * -1 with the reason in err. */
static int check_host(char *item, char *err)
{
    size_t n = strlen(item);
    if (strcmp(item, "*") == 0)
        return 0;
    if (n > 1 && item[n - 1] == '.')
        item[--n] = '\0';
    int ipv6 = item[0] == '[';
    if (ipv6 ? n < 3 || item[n - 1] != ']' || strcspn(item + 1, "[]") != n - 2
             : strpbrk(item, ":[]") != NULL) {
        snprintf(err, 256, "--http-allowed-host '%.100s': give a name or "
                 "address without a port (any port is allowed), an IPv6 "
                 "address in brackets", item);
        return -1;
    }
    if (strpbrk(item, "/?#@ \t")) {
        snprintf(err, 256, "--http-allowed-host '%.100s' is not a host name",
                 item);
        return -1;
    }
    return 0;
}

/* Add each comma-separated item of arg, trimmed and lower-cased, to the list
 * *v (*n items) after check() accepts it.  Returns 0, or -1 with a message
 * in err (the items before the bad one stay in the list). */
static int add_list(char ***v, size_t *n, const char *flag, const char *arg,
                    int (*check)(char *, char *), char *err)
{
    for (const char *p = arg;; p++) {
        size_t len = strcspn(p, ",");
        const char *q = p, *end = p + len;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        while (end > q && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == q) {
            snprintf(err, 256, "%s wants a value (or a comma list without "
                     "empty items), not '%.100s'", flag, arg);
            return -1;
        }
        char *item = xmalloc((size_t)(end - q) + 1);
        for (size_t i = 0; q + i < end; i++)
            item[i] = (char)(q[i] >= 'A' && q[i] <= 'Z' ? q[i] + 32 : q[i]);
        item[end - q] = '\0';
        if (check(item, err) < 0) {
            free(item);
            return -1;
        }
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = item;
        p += len;
        if (*p == '\0')
            return 0;
    }
}

static int set_port(int *port, const char *flag, const char *arg, int allow0,
                    char *err)
{
    uint64_t v;
    if (parse_u64(arg, allow0 ? 0 : 1, 65535, &v) < 0) {
        snprintf(err, 256, "%s wants a port number%s, not '%s'", flag,
                 allow0 ? " (0 = off)" : "", arg);
        return -1;
    }
    *port = (int)v;
    return 0;
}

static int parse_flags(struct conf *c, int argc, char **argv, char *err)
{
    memset(c, 0, sizeof *c);
    c->dir = "./data";
    c->bind = "127.0.0.1";
    c->port = 7379;
    c->http_port = 7380;
    c->memcache_port = 0;
    c->sync = TALLY_SYNC_ALWAYS;
    c->maxclients = 10000;
    c->log_level = SLOG_INFO;
    c->spin = 1;
    c->tls_auth = CONF_TLS_AUTH_YES; /* as Redis's tls-auth-clients */
    c->tls_protocols = "TLSv1.2 TLSv1.3";
    c->events_window = 65536;
    c->sub_limit = 8 * 1024 * 1024;

    /* From here on argc/argv are the file's settings, then the command's. */
    if (conffile_expand(c, argc, argv, err) < 0)
        return -1;
    argc = c->file->nargs;
    argv = c->file->args;
    optind = 1;
    opterr = 0;
    int opt, i, idx = 0;
    uint64_t v;
    while ((opt = getopt_long(argc, argv, "", options, &idx)) != -1) {
        conffile_note(c, opt == '?' ? -1 : idx, optarg, optind);
        switch (opt) {
        case OPT_DIR:
            if (!*optarg)
                goto bad_value;
            c->dir = optarg;
            break;
        case OPT_BIND:
            c->bind = optarg;
            break;
        case OPT_PORT:
            if (set_port(&c->port, "--port", optarg, 1, err) < 0)
                return -1;
            break;
        case OPT_HTTP_PORT:
            if (set_port(&c->http_port, "--http-port", optarg, 1, err) < 0)
                return -1;
            break;
        case OPT_MC_PORT:
            if (set_port(&c->memcache_port, "--memcache-port", optarg, 1, err) < 0)
                return -1;
            break;
        case OPT_FSYNC:
            if ((i = lookup(optarg, sync_names, 3)) < 0)
                goto bad_value;
            c->sync = (tally_sync)i;
            break;
        case OPT_PASS:
            if (!*optarg)
                goto bad_value;
            free(c->password);
            c->password = xstrdup(optarg);
            c->passlen = strlen(optarg);
            break;
        case OPT_PASSFILE:
            if (read_password(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_MAXCLIENTS:
            if (parse_u64(optarg, 1, 1000000, &c->maxclients) < 0)
                goto bad_value;
            break;
        case OPT_BUSY:
            if (parse_u64(optarg, 1, 3600000, &c->busy_ms) < 0)
                goto bad_value;
            break;
        case OPT_LOGLEVEL:
            if ((i = lookup(optarg, level_names, 4)) < 0)
                goto bad_value;
            c->log_level = i;
            break;
        case OPT_FLUSH:
            c->allow_flush = 1;
            break;
        case OPT_SNAPMIN:
            if (parse_u64(optarg, 1, UINT64_MAX, &v) < 0)
                goto bad_value;
            c->snapshot_min_log = v;
            break;
        case OPT_ONCE_TTL:
            if (parse_duration_ms(optarg, &c->once_ttl_ms) < 0)
                goto bad_value;
            break;
        case OPT_SPIN:
            if ((c->spin = lookup(optarg, onoff_names, 2)) < 0)
                goto bad_value;
            break;
        case OPT_CORS:
            if (add_list(&c->cors_origins, &c->ncors, "--http-cors-origin",
                         optarg, check_origin, err) < 0)
                return -1;
            break;
        case OPT_HOSTS:
            if (add_list(&c->allowed_hosts, &c->nhosts, "--http-allowed-host",
                         optarg, check_host, err) < 0)
                return -1;
            break;
        case OPT_TLS_PORT:
            if (set_port(&c->tls_port, "--tls-port", optarg, 1, err) < 0)
                return -1;
            break;
        case OPT_HTTPS_PORT:
            if (set_port(&c->https_port, "--https-port", optarg, 1, err) < 0)
                return -1;
            break;
        case OPT_MC_TLS_PORT:
            if (set_port(&c->memcache_tls_port, "--memcache-tls-port", optarg,
                         1, err) < 0)
                return -1;
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY:
        case OPT_TLS_CA:
        case OPT_TLS_CADIR:
        case OPT_TLS_CIPHERS:
            if (!*optarg)
                goto bad_value;
            *(opt == OPT_TLS_CERT ? &c->tls_cert : opt == OPT_TLS_KEY ? &c->tls_key
              : opt == OPT_TLS_CA ? &c->tls_ca_file : opt == OPT_TLS_CADIR
              ? &c->tls_ca_dir : &c->tls_ciphers) = optarg;
            break;
        case OPT_TLS_AUTH:
            if ((c->tls_auth = lookup(optarg, tls_auth_names, 3)) < 0)
                goto bad_value;
            break;
        case OPT_TLS_PROTOS:
            c->tls_protocols = optarg; /* checked by tls.c */
            break;
        case OPT_CONFIG:
            if (conffile_check_arg(c, optarg, err) < 0)
                return -1;
            break;
        case OPT_EVWINDOW:
            if (parse_u64(optarg, 0, 16 * 1024 * 1024, &c->events_window) < 0)
                goto bad_value;
            break;
        case OPT_NOTIFY:
            if (pubsub_notify_valid(optarg, strlen(optarg)) < 0)
                goto bad_value;
            c->notify = optarg;
            break;
        case OPT_SUBLIMIT:
            if (parse_u64(optarg, 1024, UINT64_MAX / 2, &c->sub_limit) < 0)
                goto bad_value;
            break;
        case OPT_KEEPALIVE:
            if (parse_u64(optarg, 1, 3600, &v) < 0)
                goto bad_value;
            c->keepalive_ms = (int)v * 1000;
            break;
        case OPT_STORE:
            /* The scheme is checked by stores_open(), which knows them. */
            c->store = *optarg ? optarg : NULL;
            /* The hidden test store names its directory itself. */
            if (!strncmp(optarg, "delay+engine:", 13) && optarg[13])
                c->dir = optarg + 13;
            break;
        case OPT_STORE_PREFIX:
            c->store_prefix = optarg;
            break;
        case OPT_STORE_TLS_CA:
            c->store_tls_ca = optarg;
            break;
        case OPT_STORE_TLS_CERT:
            c->store_tls_cert = optarg;
            break;
        case OPT_STORE_TLS_KEY:
            c->store_tls_key = optarg;
            break;
        case OPT_STORE_WAIT:
            if (parse_u64(optarg, 0, 1000, &v) < 0)
                goto bad_value;
            c->store_wait_replicas = (int)v;
            break;
        case OPT_HELP:
            fputs(usage, stdout);
            return 1;
        case OPT_VERSION:
            printf("tallyd %s (git %s)\n", TALLY_VERSION, version_git_rev);
            return 1;
        default:
            if (optopt)
                snprintf(err, 256, "%s needs a value", argv[optind - 1]);
            else
                snprintf(err, 256, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    conffile_note(c, -1, NULL, 0);
    if (optind < argc) {
        snprintf(err, 256, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    const int ports[] = {c->port, c->http_port, c->memcache_port,
                         c->tls_port, c->https_port, c->memcache_tls_port};
    for (size_t a = 0; a < 6; a++)
        for (size_t b = a + 1; b < 6; b++)
            if (ports[a] && ports[a] == ports[b]) {
                snprintf(err, 256, "--port, --http-port, --memcache-port, "
                         "--tls-port, --https-port and --memcache-tls-port "
                         "must differ");
                return -1;
            }
    if (!c->port && !c->tls_port) {
        snprintf(err, 256, "--port 0 (no plain RESP) needs a --tls-port");
        return -1;
    }
    if ((c->tls_port || c->https_port || c->memcache_tls_port) &&
        (!c->tls_cert || !c->tls_key)) {
        snprintf(err, 256, "a TLS port needs --tls-cert-file and --tls-key-file");
        return -1;
    }
    if ((c->tls_port || c->https_port || c->memcache_tls_port) &&
        c->tls_auth != CONF_TLS_AUTH_NO && !c->tls_ca_file && !c->tls_ca_dir) {
        snprintf(err, 256, "--tls-auth-clients %s needs --tls-ca-cert-file or "
                 "--tls-ca-cert-dir (or --tls-auth-clients no)",
                 tls_auth_names[c->tls_auth]);
        return -1;
    }
    for (size_t k = 0; k < c->ncors; k++)
        if (strcmp(c->cors_origins[k], "*") == 0 && !c->password) {
            /* Any page could then change counters from a visitor's
             * browser; a password is what a foreign page cannot know. */
            snprintf(err, 256, "--http-cors-origin '*' needs a password "
                     "(--requirepass or --password-file)");
            return -1;
        }
    return 0;
bad_value:
    snprintf(err, 256, "bad value '%s' for --%s", optarg, options[idx].name);
    return -1;
}

/* Free list[n] and its strings. */
static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int conf_parse(struct conf *c, int argc, char **argv, char *err)
{
    int rc = parse_flags(c, argc, argv, err);
    if (rc < 0)
        conffile_locate(c, err);
    return rc;
}

void conf_free(struct conf *c)
{
    free(c->password);
    c->password = NULL;
    free_list(c->cors_origins, c->ncors);
    c->cors_origins = NULL;
    c->ncors = 0;
    free_list(c->allowed_hosts, c->nhosts);
    c->allowed_hosts = NULL;
    c->nhosts = 0;
    conffile_free(c);
}
