/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cli.h - what the pieces of `tally`, the command-line client, share.
 *
 * main.c parses the global options and dispatches; online.c runs the
 * commands that talk to a running tallyd over the Redis protocol (hiredis);
 * offline.c runs the tools that open a stopped server's data directory with
 * libtally; out.c owns how keys and counters are printed (escaped for people,
 * JSON with a lossless encoding for programs).  docs/cli.md is the user's
 * description of all of it, including the exit codes below.
 */
#ifndef TALLY_CLI_H
#define TALLY_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util.h"

/* Exit codes a shell script can test. */
#define CLI_EXIT_OK 0       /* done */
#define CLI_EXIT_NOTFOUND 1 /* get or del of a counter that does not exist */
#define CLI_EXIT_ERROR 2    /* bad usage, connection, server or I/O error,
                               busy data directory; corrupt one (but for
                               check and repair: CLI_EXIT_CORRUPT) */
/* check's (and repair's without --yes) verdicts beside CLI_EXIT_OK: */
#define CLI_EXIT_TORN 1     /* a torn log tail that opening would cut; no
                               acknowledged change is lost */
#define CLI_EXIT_CORRUPT 3  /* acknowledged data is damaged: opening
                               refuses, `repair --yes` would lose data */

/* Everything the global options and the environment decided. */
struct cli_opts {
    const char *host;     /* -H, TALLY_HOST; default 127.0.0.1 */
    int port;             /* -p, TALLY_PORT; default 7379 */
    const char *password; /* -a, TALLY_PASSWORD; NULL: do not AUTH */
    int timeout_ms;       /* --timeout; connect and per-reply limit, 0: none */
    int json;             /* --json: one JSON document (or JSON lines) */
    int tls;              /* --tls */
    const char *cacert;   /* --cacert: CAs the server's certificate must
                             chain to; NULL: the system's */
    const char *cert;     /* --cert, --key: a client certificate, or NULL */
    const char *key;
};

/* A subcommand: argv[0] is its name, the arguments follow. */
struct cli_cmd {
    const char *name;
    int online; /* 1: talks to tallyd; 0: opens a data directory */
    int (*run)(const struct cli_opts *o, int argc, char **argv);
    const char *usage; /* one line: "get KEY" */
    const char *help;  /* what it does, its output and exit codes */
};

/* ---- tls.c: the online commands over TLS ------------------------------- */

struct redisContext;
struct redisReply;
struct ssl_st;

/* Start TLS on c's connected socket as o asks (--cacert, --cert, --key; the
 * certificate must name o->host).  Returns the connection (caller frees with
 * cli_tls_close), or NULL after printing why. */
struct ssl_st *cli_tls_open(struct redisContext *c, const struct cli_opts *o);
/* redisCommandArgv over ssl: the reply (caller frees with freeReplyObject),
 * or NULL with c->err and c->errstr set (errno EAGAIN after a timeout). */
struct redisReply *cli_tls_call(struct ssl_st *ssl, struct redisContext *c,
                                int argc, const char **argv, const size_t *lens);
void cli_tls_close(struct ssl_st *ssl);

/* ---- main.c ----------------------------------------------------------- */

/* Print "tally: <message>" on stderr; returns CLI_EXIT_ERROR so callers can
 * `return cli_error(...)`. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print the usage line of cmd on stderr and return CLI_EXIT_ERROR. */
int cli_usage_error(const struct cli_cmd *cmd);

/* Look a subcommand up by name; NULL if there is none. */
const struct cli_cmd *cli_find(const char *name);

/* Parse a decimal int64 as Redis does (optional '-', digits without leading
 * zeros, nothing else, no overflow, no "-0").  Returns 0 and sets *out,
 * or -1 leaving *out untouched. */
int cli_parse_i64(const char *s, int64_t *out);

/* Parse a duration for --ttl: a positive integer with an optional unit,
 * ms, s (the default), m, h or d ("90", "1500ms", "10m").  Returns 0 and
 * sets *ms, or -1 leaving it untouched. */
int cli_parse_duration(const char *s, int64_t *ms);

/* ---- online.c: over the Redis protocol ------------------------------- */

int cli_get(const struct cli_opts *o, int argc, char **argv);
int cli_incr(const struct cli_opts *o, int argc, char **argv);
int cli_decr(const struct cli_opts *o, int argc, char **argv);
int cli_set(const struct cli_opts *o, int argc, char **argv);
int cli_del(const struct cli_opts *o, int argc, char **argv);
int cli_list(const struct cli_opts *o, int argc, char **argv);
int cli_info(const struct cli_opts *o, int argc, char **argv);
int cli_ping(const struct cli_opts *o, int argc, char **argv);

/* ---- offline.c: on a stopped server's directory ---------------------- */

int cli_check(const struct cli_opts *o, int argc, char **argv);
int cli_dump(const struct cli_opts *o, int argc, char **argv);
int cli_restore(const struct cli_opts *o, int argc, char **argv);
int cli_repair(const struct cli_opts *o, int argc, char **argv);

/* ---- out.c: printing keys and counters ------------------------------- */

/* Append key for a person to read: as it is when every byte is printable
 * ASCII other than space, '"' and '\'; otherwise in double quotes with C
 * escapes (\n, \t, \", \\, \xHH for the rest).  "" for the empty key. */
void out_key_human(struct buf *b, const void *key, size_t klen);

/* Print one counter: "key value\n" (key as out_key_human), or with json a
 * JSON line {"key": "...", "value": N}, the key as "key_b64" (base64) when
 * it is not valid UTF-8, and "expires_at" (Unix ms) when expire_ms is not
 * 0 (the text form does not show it).  Returns 0, or -1 if stdout
 * failed. */
int out_counter(int json, const void *key, size_t klen, int64_t value,
                int64_t expire_ms);

/* Print a JSON value as one line on stdout and drop the caller's reference
 * to it (takes ownership).  Returns 0 or -1 if stdout failed. */
int out_json(json_t *v);

/* Add key to obj as "key" (a JSON string) when it is valid UTF-8, else as
 * "key_b64" (standard base64 with padding). */
void out_json_key(json_t *obj, const void *key, size_t klen);

/* Read the key back from an object written by out_json_key.  Returns 0 and
 * appends the key's bytes to *key, or -1 with a reason in why (a static
 * string). */
int out_json_key_parse(json_t *obj, struct buf *key, const char **why);

/* A list of counters, sorted by key before they are printed (list, dump) or
 * written (restore). */
struct out_item {
    char *key; /* owned */
    size_t klen;
    int64_t value;
    int64_t expire_ms; /* absolute expiry, Unix ms; 0: none */
    size_t seq; /* order of arrival, so that the newest of duplicates wins */
};

struct out_items {
    struct out_item *v;
    size_t n, cap;
};
#define OUT_ITEMS_INIT {NULL, 0, 0}

/* Add a counter (the key is copied) with its expiry (Unix ms; 0: none). */
void out_items_add(struct out_items *l, const void *key, size_t klen,
                   int64_t value, int64_t expire_ms);

/* Sort by key (bytewise, shorter first on a tie) and keep one item per key,
 * the one added last (SCAN may report a key twice).  Returns how many items
 * were dropped; first_dup (may be NULL, else empty) then gets the first
 * dropped key as out_key_human prints it. */
size_t out_items_sort(struct out_items *l, struct buf *first_dup);

/* out_items_sort, then out_counter for each item.  Returns 0, or -1 if
 * stdout failed. */
int out_items_print(struct out_items *l, int json);

/* Free the items; back to OUT_ITEMS_INIT. */
void out_items_free(struct out_items *l);

/* Flush stdout and report a failure to write it (a full disk, a closed
 * pipe).  Returns 0 or CLI_EXIT_ERROR. */
int out_finish(void);

#endif /* TALLY_CLI_H */
