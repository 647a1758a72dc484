/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * conffile.c - tallyd's configuration file (--config FILE), CONFIG GET and
 * CONFIG SET, and rereading the file on SIGHUP.
 *
 * The file is redis.conf's format: one setting a line, its name (a long flag
 * without "--", any case) and one value, separated by blanks.  A line whose
 * first non-blank byte is '#' is a comment; blank lines are skipped.  A value
 * with blanks in it is quoted: "..." takes the escapes \", \\, \n, \r, \t,
 * \b, \a and \xHH; '...' takes \' and nothing else.  A flag that takes no
 * value (allow-flush) takes yes or no.  A closing quote must end the token.
 *
 * Nothing here knows what a setting means.  Each line becomes one element
 * "--name=value" of an argv that holds the file's settings first and then
 * the command line's, and config.c's getopt loop reads that: every flag in
 * the option table works in the file with no code of its own, a value is
 * checked by the same code wherever it came from, the command line wins
 * because it comes later, and an error names the file's line because we
 * know which element came from which line.
 *
 * Which settings may change at run time (CONFIG SET, SIGHUP) is the table
 * `runtime` below: log-level, maxclients and notify-keyspace-events.  Everything else is read once
 * at start (ports, directory, fsync policy, password, ...) and refused.
 */
#include "server.h"

#include "pubsub.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERRMAX 256

/* Flags that are not settings. */
static int not_a_setting(const char *name)
{
    return !strcmp(name, "config") || !strcmp(name, "help") ||
           !strcmp(name, "version");
}

/* ---- Reading the file ------------------------------------------------------ */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Split line into at most three tokens (a third means too many), Redis's
 * sdssplitargs rules.  Tokens are written into buf (as long as line) and
 * ntok set.  Returns 0, or -1 with why set. */
static int split_line(const char *line, char *buf, char **tok, int *ntok,
                      const char **why)
{
    const char *p = line;
    char *o = buf;
    *ntok = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return 0;
        if (*ntok == 3)
            return 0;
        tok[(*ntok)++] = o;
        char q = (*p == '"' || *p == '\'') ? *p++ : 0;
        for (;;) {
            if (!q) {
                if (!*p || *p == ' ' || *p == '\t')
                    break;
                *o++ = *p++;
            } else if (!*p) {
                *why = "unbalanced quotes";
                return -1;
            } else if (*p == q) {
                p++;
                if (*p && *p != ' ' && *p != '\t') {
                    *why = "a closing quote must be followed by a blank";
                    return -1;
                }
                break;
            } else if (*p == '\\' && q == '\'' && p[1] == '\'') {
                *o++ = '\'';
                p += 2;
            } else if (*p == '\\' && q == '"' && p[1]) {
                int h1, h2;
                p++;
                if (*p == 'x' && (h1 = hexval(p[1])) >= 0 &&
                    (h2 = hexval(p[2])) >= 0) {
                    if (!(h1 | h2)) {
                        *why = "a value cannot hold a NUL byte";
                        return -1;
                    }
                    *o++ = (char)(h1 * 16 + h2);
                    p += 3;
                    continue;
                }
                switch (*p) {
                case 'n': *o++ = '\n'; break;
                case 'r': *o++ = '\r'; break;
                case 't': *o++ = '\t'; break;
                case 'b': *o++ = '\b'; break;
                case 'a': *o++ = '\a'; break;
                default: *o++ = *p; break; /* \" \\ and any other */
                }
                p++;
            } else {
                *o++ = *p++;
            }
        }
        *o++ = 0;
    }
}

/* The option named name (any case), or -1. */
static int find_option(const struct option *opts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(opts[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Append one setting of line `line` as "--name=value" (or "--name"). */
static void add_setting(struct conffile *cf, int line, const char *name,
                        const char *value)
{
    size_t n = strlen(name) + (value ? strlen(value) + 1 : 0) + 3;
    char *arg = xmalloc(n);
    snprintf(arg, n, "--%s%s%s", name, value ? "=" : "", value ? value : "");
    cf->args = xrealloc(cf->args, (size_t)(cf->nfile + 2) * sizeof *cf->args);
    cf->lines = xrealloc(cf->lines, (size_t)(cf->nfile + 1) * sizeof *cf->lines);
    cf->args[1 + cf->nfile] = arg;
    cf->lines[cf->nfile++] = line;
}

/* Read cf->path into cf->args[1..] and cf->lines.  Returns 0, or -1 with
 * "FILE:LINE: why" (or "FILE: why") in err. */
static int read_file(struct conffile *cf, char *err)
{
    size_t nopts;
    const struct option *opts = conf_options(&nopts);
    FILE *f = fopen(cf->path, "r");
    if (!f) {
        snprintf(err, ERRMAX, "--config %s: %s", cf->path, strerror(errno));
        return -1;
    }
    char *line = NULL, *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = -1;
    const char *why = NULL;
    char whybuf[160];

    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (strlen(line) != (size_t)len) {
            why = "a NUL byte in the line";
            goto bad_line;
        }
        const char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        char *tok[3];
        int ntok;
        buf = xrealloc(buf, (size_t)len + 1);
        if (split_line(p, buf, tok, &ntok, &why) < 0)
            goto bad_line;
        int i = find_option(opts, nopts, tok[0]);
        if (i < 0 || not_a_setting(opts[i].name)) {
            snprintf(whybuf, sizeof whybuf, i < 0 ? "unknown setting '%.80s'"
                     : "'%.80s' cannot be set in a configuration file", tok[0]);
            why = whybuf;
            goto bad_line;
        }
        if (ntok != 2) {
            snprintf(whybuf, sizeof whybuf, ntok < 2 ? "'%s' needs a value"
                     : "'%s' takes one value (quote a value with blanks)",
                     opts[i].name);
            why = whybuf;
            goto bad_line;
        }
        if (opts[i].has_arg == no_argument) {
            if (strcasecmp(tok[1], "yes") && strcasecmp(tok[1], "no")) {
                snprintf(whybuf, sizeof whybuf, "'%s' wants yes or no, not "
                         "'%.80s'", opts[i].name, tok[1]);
                why = whybuf;
                goto bad_line;
            }
            if (strcasecmp(tok[1], "yes") == 0)
                add_setting(cf, lineno, opts[i].name, NULL);
        } else {
            add_setting(cf, lineno, opts[i].name, tok[1]);
        }
    }
    if (ferror(f)) {
        snprintf(err, ERRMAX, "--config %s: %s", cf->path, strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;
bad_line:
    snprintf(err, ERRMAX, "%s:%d: %s", cf->path, lineno, why);
done:
    free(line);
    free(buf);
    fclose(f);
    return rc;
}

/* ---- Parsing: config.c's hooks --------------------------------------------- */

/* --config's value in argv (the first; a second one is an error), or NULL.
 * Returns 0 or -1 with err set. */
static int find_config_arg(int argc, char **argv, const char **path, char *err)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, ERRMAX, "--config needs a value");
                return -1;
            }
            v = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            v = a + 9;
        }
        if (!v)
            continue;
        if (*path) {
            snprintf(err, ERRMAX, "--config given twice");
            return -1;
        }
        if (!*v) {
            snprintf(err, ERRMAX, "--config needs a file name");
            return -1;
        }
        *path = v;
    }
    return 0;
}

int conffile_expand(struct conf *c, int argc, char **argv, char *err)
{
    struct conffile *cf = xcalloc(1, sizeof *cf);
    c->file = cf;
    c->argc = argc;
    c->argv = argv;
    conf_options(&cf->nopts);
    cf->given = xcalloc(cf->nopts, sizeof *cf->given);
    cf->args = xcalloc(1, sizeof *cf->args);
    if (find_config_arg(argc, argv, &cf->path, err) < 0)
        return -1;
    if (cf->path && read_file(cf, err) < 0)
        return -1;
    /* argv[0], the file's flags (added above), then the command line's. */
    cf->args = xrealloc(cf->args, (size_t)(cf->nfile + argc + 1) * sizeof *cf->args);
    cf->args[0] = argv[0];
    for (int i = 1; i < argc; i++)
        cf->args[cf->nfile + i] = argv[i];
    cf->nargs = cf->nfile + (argc > 0 ? argc : 1);
    cf->args[cf->nargs] = NULL;
    return 0;
}

void conffile_note(struct conf *c, int idx, const char *value, int at)
{
    struct conffile *cf = c->file;
    cf->at = at;
    if (idx < 0 || (size_t)idx >= cf->nopts)
        return;
    free(cf->given[idx]);
    cf->given[idx] = xstrdup(value ? value : "yes");
}

int conffile_check_arg(const struct conf *c, const char *value, char *err)
{
    /* getopt also takes an abbreviation such as --conf, which
     * find_config_arg() did not look for. */
    if (!c->file->path || strcmp(value, c->file->path) != 0) {
        snprintf(err, ERRMAX, "spell --config out in full, once");
        return -1;
    }
    return 0;
}

void conffile_locate(const struct conf *c, char *err)
{
    const struct conffile *cf = c->file;
    /* getopt has moved past the flag it returned: its index is at - 1. */
    if (!cf || cf->at - 1 < 1 || cf->at - 1 > cf->nfile)
        return;
    char msg[ERRMAX];
    snprintf(msg, sizeof msg, "%s", err);
    int k = snprintf(err, ERRMAX, "%s:%d: ", cf->path, cf->lines[cf->at - 2]);
    if (k > 0 && k < ERRMAX) {
        size_t m = strlen(msg), room = (size_t)(ERRMAX - k - 1);
        memcpy(err + k, msg, m < room ? m : room);
        err[k + (m < room ? m : room)] = 0;
    }
}

void conffile_free(struct conf *c)
{
    struct conffile *cf = c->file;
    if (!cf)
        return;
    for (int i = 0; i < cf->nfile; i++)
        free(cf->args[1 + i]);
    for (size_t i = 0; i < cf->nopts; i++)
        free(cf->given[i]);
    free(cf->given);
    free(cf->args);
    free(cf->lines);
    free(cf);
    c->file = NULL;
}

/* ---- The effective values: CONFIG GET ---------------------------------------- */

/* A duration in ms, in the largest unit that says it exactly. */
static void format_ms(uint64_t ms, char *out, size_t n)
{
    static const struct { char unit; uint64_t ms; } units[] = {
        {'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].ms == 0) {
            snprintf(out, n, "%llu%c", (unsigned long long)(ms / units[i].ms),
                     units[i].unit);
            return;
        }
    snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
}

/* list[n] as "a,b,c", cut to fit out[n]. */
static void join(char *const *list, size_t nlist, char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < nlist && len < n; i++) {
        int k = snprintf(out + len, n - len, "%s%s", i ? "," : "", list[i]);
        if (k < 0)
            break;
        len += (size_t)k;
    }
}

/* The value setting `name` has in c, as the daemon uses it, defaults
 * included.  The password is not shown, only whether there is one. */
static void effective(const struct conf *c, const char *name,
                      const char *given, char *out, size_t n)
{
    tally_options defaults;
    if (!strcmp(name, "dir"))
        snprintf(out, n, "%s", c->dir);
    else if (!strcmp(name, "bind"))
        snprintf(out, n, "%s", c->bind);
    else if (!strcmp(name, "port"))
        snprintf(out, n, "%d", c->port);
    else if (!strcmp(name, "http-port"))
        snprintf(out, n, "%d", c->http_port);
    else if (!strcmp(name, "memcache-port"))
        snprintf(out, n, "%d", c->memcache_port);
    else if (!strcmp(name, "fsync"))
        snprintf(out, n, "%s", conf_sync_name(c->sync));
    else if (!strcmp(name, "requirepass"))
        snprintf(out, n, "%s", c->password ? "(set)" : "");
    else if (!strcmp(name, "maxclients"))
        snprintf(out, n, "%llu", (unsigned long long)c->maxclients);
    else if (!strcmp(name, "log-level"))
        snprintf(out, n, "%s", conf_level_name(c->log_level));
    else if (!strcmp(name, "allow-flush"))
        snprintf(out, n, "%s", c->allow_flush ? "yes" : "no");
    else if (!strcmp(name, "snapshot-min-log")) {
        tally_options_init(&defaults);
        snprintf(out, n, "%llu", (unsigned long long)(c->snapshot_min_log
                 ? c->snapshot_min_log : defaults.snapshot_min_log));
    } else if (!strcmp(name, "idempotency-ttl"))
        format_ms(c->once_ttl_ms ? c->once_ttl_ms : TALLY_ONCE_TTL_DEFAULT,
                  out, n);
    else if (!strcmp(name, "spin"))
        snprintf(out, n, "%s", c->spin ? "on" : "off");
    else if (!strcmp(name, "tls-port"))
        snprintf(out, n, "%d", c->tls_port);
    else if (!strcmp(name, "https-port"))
        snprintf(out, n, "%d", c->https_port);
    else if (!strcmp(name, "memcache-tls-port"))
        snprintf(out, n, "%d", c->memcache_tls_port);
    else if (!strcmp(name, "tls-auth-clients"))
        snprintf(out, n, "%s", conf_tls_auth_name(c->tls_auth));
    else if (!strcmp(name, "tls-protocols"))
        snprintf(out, n, "%s", c->tls_protocols);
    else if (!strcmp(name, "http-cors-origin"))
        join(c->cors_origins, c->ncors, out, n);
    else if (!strcmp(name, "http-allowed-host"))
        join(c->allowed_hosts, c->nhosts, out, n);
    else if (!strcmp(name, "events-window"))
        snprintf(out, n, "%llu", (unsigned long long)c->events_window);
    else if (!strcmp(name, "subscriber-output-limit"))
        snprintf(out, n, "%llu", (unsigned long long)c->sub_limit);
    else if (!strcmp(name, "store"))
        snprintf(out, n, "%s", c->store ? "(set)" : ""); /* may hold a
                                                           password */
    else if (!strcmp(name, "events-keepalive"))
        snprintf(out, n, "%d",
                 (c->keepalive_ms ? c->keepalive_ms : 15000) / 1000);
    else
        /* DEBT: a flag without a case here shows the value it was given, or
         * "" for its default; a case that formats its field removes that. */
        snprintf(out, n, "%s", given ? given : "");
}

/* The settings, in the option table's order, skip the flags that are not. */
static const char *config_get(void *self, size_t i, char *out, size_t n)
{
    struct server *srv = self;
    size_t nopts;
    const struct option *opts = conf_options(&nopts);
    for (size_t k = 0; k < nopts; k++) {
        if (not_a_setting(opts[k].name))
            continue;
        if (i-- == 0) {
            if (!strcmp(opts[k].name, "notify-keyspace-events") && n >= 32)
                pubsub_notify_string(srv->pubsub, out); /* as Redis says it */
            else
                effective(&srv->conf, opts[k].name, srv->conf.file->given[k],
                          out, n);
            return opts[k].name;
        }
    }
    return NULL;
}

/* ---- What may change at run time: CONFIG SET and SIGHUP ---------------------- */

/* Copy setting `name` from `from` into the running server.  Returns 0, or -1
 * if it cannot change at run time. */
static int apply(struct server *srv, const char *name, const struct conf *from)
{
    if (!strcmp(name, "log-level")) {
        srv->conf.log_level = from->log_level;
        slog_set_level(&srv->log, from->log_level);
    } else if (!strcmp(name, "maxclients")) {
        /* Clients over a lowered limit stay; new ones are refused. */
        srv->conf.maxclients = from->maxclients;
        srv->info.maxclients = from->maxclients;
    } else if (!strcmp(name, "notify-keyspace-events")) {
        /* The letters were checked by conf_parse. */
        const char *v = from->notify ? from->notify : "";
        pubsub_set_notify(srv->pubsub, v, strlen(v));
    } else {
        return -1;
    }
    return 0;
}

static const char *const runtime[] = {"log-level", "maxclients",
                                      "notify-keyspace-events"};

static int is_runtime(const char *name)
{
    for (size_t i = 0; i < sizeof runtime / sizeof runtime[0]; i++)
        if (!strcmp(name, runtime[i]))
            return 1;
    return 0;
}

static void remember(struct conf *c, int idx, const char *value)
{
    free(c->file->given[idx]);
    c->file->given[idx] = value ? xstrdup(value) : NULL;
}

static int config_set(void *self, const char *name, const char *value,
                      char *err)
{
    struct server *srv = self;
    size_t nopts;
    const struct option *opts = conf_options(&nopts);
    int i = find_option(opts, nopts, name);
    if (i < 0 || not_a_setting(opts[i].name))
        return CMD_CONFIG_UNKNOWN;
    if (!is_runtime(opts[i].name))
        return CMD_CONFIG_IMMUTABLE;

    /* Check the value with the very code that checks the flag. */
    size_t n = strlen(opts[i].name) + strlen(value) + 4;
    char *flag = xmalloc(n);
    snprintf(flag, n, "--%s=%s", opts[i].name, value);
    char prog[] = "tallyd";
    char *argv[] = {prog, flag, NULL};
    struct conf tmp;
    int rc = conf_parse(&tmp, 2, argv, err);
    if (rc == 0) {
        apply(srv, opts[i].name, &tmp);
        remember(&srv->conf, i, value);
        slog(&srv->log, SLOG_INFO, "CONFIG SET %s %s", opts[i].name, value);
    }
    conf_free(&tmp);
    free(flag);
    return rc == 0 ? CMD_CONFIG_OK : CMD_CONFIG_BADVALUE;
}

void conffile_serve(struct server *srv)
{
    size_t nopts, count = 0;
    const struct option *opts = conf_options(&nopts);
    for (size_t k = 0; k < nopts; k++)
        count += !not_a_setting(opts[k].name);
    srv->config = (struct cmd_config){
        .self = srv, .count = count, .get = config_get, .set = config_set};
    srv->info.config = &srv->config;
}

static int same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

void conffile_reload(struct server *srv)
{
    struct conf *c = &srv->conf;
    char err[ERRMAX] = "";
    if (!c->file->path) {
        slog(&srv->log, SLOG_INFO, "SIGHUP: no --config file, nothing to reread");
        return;
    }
    struct conf next;
    if (conf_parse(&next, c->argc, c->argv, err) != 0) {
        slog(&srv->log, SLOG_ERROR, "SIGHUP: %s; every setting stays as it "
             "was: fix the file and send SIGHUP again", err[0] ? err :
             "--help or --version on the command line");
        conf_free(&next);
        return;
    }
    size_t nopts;
    const struct option *opts = conf_options(&nopts);
    int changed = 0;
    char old_value[512], new_value[512];
    for (size_t k = 0; k < nopts; k++) {
        const char *was = c->file->given[k], *now = next.file->given[k];
        if (not_a_setting(opts[k].name))
            continue;
        /* The last value given says most; the value in force also catches
         * an earlier line of a flag that adds to a list. */
        effective(c, opts[k].name, was, old_value, sizeof old_value);
        effective(&next, opts[k].name, now, new_value, sizeof new_value);
        if (same(was, now) && !strcmp(old_value, new_value))
            continue;
        changed++;
        if (is_runtime(opts[k].name)) {
            /* Said before it applies: a quieter level would hide it. */
            slog(&srv->log, SLOG_INFO, "SIGHUP: %s is now %s", opts[k].name,
                 now ? now : "its default");
            apply(srv, opts[k].name, &next);
            remember(c, (int)k, now);
        } else {
            slog(&srv->log, SLOG_WARN, "SIGHUP: %s changed in %s; it takes "
                 "effect at the next start", opts[k].name, c->file->path);
        }
    }
    if (!changed)
        slog(&srv->log, SLOG_INFO, "SIGHUP: %s reread, nothing changed",
             c->file->path);
    conf_free(&next);
}
