/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * offline.c - the tools that work on a stopped server's data directory with
 * libtally directly: check, dump, restore and repair.
 *
 * Each takes the engine's lock on the directory (tally_open, tally_check and
 * tally_repair all do), so a tallyd running on it makes them fail at once
 * with TALLY_ELOCKED, reported as exit 2.  check reports one of three
 * verdicts (clean, torn tail, corrupt) as exit 0, 1 or 3 (cli.h).  The dump
 * format is out.c's JSON line per counter, with the absolute expiry
 * ("expires_at", Unix ms) of a counter that has one; restore reads it back,
 * checking the whole input before it writes anything.  Verifying and
 * cutting files is the engine's business
 * (tally_check, tally_repair); this file only reports what they say.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tally.h"

/* Limits on one tally_mset while restoring: big enough that the batches
 * cost little, small enough to stay well inside the engine's limit on one
 * log record (1 MiB, which tally.h does not state).  RESTORE_OP_COST is a
 * generous guess at a counter's bytes in a record beside its key. */
#define RESTORE_BATCH 1024
#define RESTORE_BATCH_BYTES (512u * 1024)
#define RESTORE_OP_COST 64

/* What the command line of an offline tool holds. */
struct dir_args {
    const char *dir; /* --dir */
    int yes;         /* --yes (repair only) */
};

/* Parse "--dir DIR" (or --dir=DIR) and, where allow_yes, "--yes".  Returns
 * 0, or CLI_EXIT_ERROR after printing the usage. */
static int parse_dir_args(int argc, char **argv, int allow_yes,
                          struct dir_args *a)
{
    const struct cli_cmd *cmd = cli_find(argv[0]);

    a->dir = NULL;
    a->yes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            a->dir = argv[++i];
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            a->dir = argv[i] + 6;
        else if (allow_yes && strcmp(argv[i], "--yes") == 0)
            a->yes = 1;
        else
            return cli_usage_error(cmd);
    }
    if (!a->dir || !*a->dir)
        return cli_usage_error(cmd);
    return 0;
}

/* Report that a tool could not use dir: a lock held by someone else gets the
 * advice to stop the server.  Returns CLI_EXIT_ERROR. */
static int dir_error(const char *tool, const char *dir, int code,
                     const char *detail)
{
    if (code == TALLY_ELOCKED)
        return cli_error("%s: %s is in use by another process (is tallyd "
                         "running on it? stop it first)", tool, dir);
    /* The engine's messages mostly name the file at fault already. */
    if (detail && *detail && strstr(detail, dir))
        return cli_error("%s: %s", tool, detail);
    if (detail && *detail)
        return cli_error("%s: %s: %s", tool, dir, detail);
    return cli_error("%s: %s: %s", tool, dir, tally_strerror(code));
}

/* Engine warnings (a torn tail cut while opening, ...) go to stderr. */
static void log_stderr(void *ctx, int level, const char *msg)
{
    static const char *const names[] = {"error", "warning", "info"};

    if (level > TALLY_LOG_WARN)
        return;
    cli_error("%s: %s: %s", (const char *)ctx,
              names[level >= 0 && level <= 2 ? level : 0], msg);
}

/* Open dir for a tool: no automatic snapshots (a tool's writes are its own
 * business), engine warnings on stderr.  Returns the handle, or NULL after a
 * message. */
static tally *open_dir(const char *tool, const char *dir, int create,
                       tally_sync sync)
{
    tally_options opts;
    char err[TALLY_ERRMAX] = "";
    tally *db;

    tally_options_init(&opts);
    opts.create = create;
    opts.sync = sync;
    opts.snapshot_min_log = UINT64_MAX;
    opts.log = log_stderr;
    opts.log_ctx = (void *)tool;
    int rc = tally_open(dir, &opts, &db, err);
    if (rc != TALLY_OK) {
        dir_error(tool, dir, rc, err);
        return NULL;
    }
    return db;
}

/* A JSON string for a message that should be UTF-8 but may hold a file name
 * that is not: such bytes are escaped as out_key_human does. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);

    if (!j) {
        struct buf b = BUF_INIT;
        out_key_human(&b, s, strlen(s));
        j = json_string(b.p);
        buf_free(&b);
    }
    return j;
}

/* Print a verdict of check (tally_check's TALLY_OK, TALLY_TORN or
 * TALLY_ECORRUPT): {"ok": .., "status": "clean"|"torn"|"corrupt",
 * "report": ..} with --json, else the report on stdout when the directory
 * opens and on stderr when it does not.  Returns the verdict's exit code. */
static int print_verdict(const struct cli_opts *o, const char *tool, int rc,
                         const char *report)
{
    int ok = rc != TALLY_ECORRUPT;

    if (o->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "ok", json_boolean(ok));
        json_object_set_new(obj, "status",
                            json_string(rc == TALLY_OK     ? "clean"
                                        : rc == TALLY_TORN ? "torn"
                                                           : "corrupt"));
        json_object_set_new(obj, "report", json_text(report));
        if (out_json(obj))
            return CLI_EXIT_ERROR;
    } else if (ok) {
        printf("%s\n", report);
    } else {
        cli_error("%s: %s", tool, report);
    }
    return rc == TALLY_OK ? CLI_EXIT_OK
           : rc == TALLY_TORN ? CLI_EXIT_TORN : CLI_EXIT_CORRUPT;
}

/* Is rc one of tally_check's three verdicts (not a failure to check)? */
static int is_verdict(int rc)
{
    return rc == TALLY_OK || rc == TALLY_TORN || rc == TALLY_ECORRUPT;
}

int cli_check(const struct cli_opts *o, int argc, char **argv)
{
    struct dir_args a;
    char report[TALLY_ERRMAX] = "";
    int rc;

    if ((rc = parse_dir_args(argc, argv, 0, &a)))
        return rc;
    rc = tally_check(a.dir, report);
    if (is_verdict(rc))
        return print_verdict(o, "check", rc, report);
    return dir_error("check", a.dir, rc, report);
}

int cli_repair(const struct cli_opts *o, int argc, char **argv)
{
    struct dir_args a;
    char report[TALLY_ERRMAX] = "";
    int rc, code;

    if ((rc = parse_dir_args(argc, argv, 1, &a)))
        return rc;
    if (!a.yes) {
        /* Say what is wrong and what --yes would do, but touch nothing. */
        rc = tally_check(a.dir, report);
        if (!is_verdict(rc))
            return dir_error("repair", a.dir, rc, report);
        code = print_verdict(o, "repair", rc, report);
        if (rc == TALLY_TORN)
            cli_error("repair: nothing changed; the torn tail holds no "
                      "acknowledged change and opening cuts it anyway");
        else if (rc == TALLY_ECORRUPT)
            cli_error("repair: nothing changed; run `tally repair --dir %s "
                      "--yes` to cut the damage (the intact records it "
                      "names are lost)", a.dir);
        return code;
    }
    rc = tally_repair(a.dir, report);
    if (rc != TALLY_OK)
        return dir_error("repair", a.dir, rc, report);
    return print_verdict(o, "repair", TALLY_OK, report);
}

/* Called by tally_scanx for every counter. */
static int dump_one(void *ctx, const void *key, size_t klen, int64_t value,
                    int64_t expire_ms)
{
    out_items_add(ctx, key, klen, value, expire_ms);
    return 0;
}

int cli_dump(const struct cli_opts *o, int argc, char **argv)
{
    struct out_items items = OUT_ITEMS_INIT;
    struct dir_args a;
    uint64_t cursor = 0;
    tally *db;
    int rc;

    if ((rc = parse_dir_args(argc, argv, 0, &a)))
        return rc;
    if (!(db = open_dir("dump", a.dir, 0, TALLY_SYNC_ALWAYS)))
        return CLI_EXIT_ERROR;
    /* Nobody else can change the database while we hold it, so one pass
     * sees every counter exactly once; sorting makes dumps comparable. */
    do {
        rc = tally_scanx(db, cursor, NULL, 0, 4096, dump_one, &items, &cursor,
                         NULL);
        if (rc != TALLY_OK) {
            rc = dir_error("dump", a.dir, rc, tally_errmsg(db));
            goto done;
        }
    } while (cursor);
    if (out_items_print(&items, 1))
        rc = cli_error("dump: cannot write the output: %m");
done:
    out_items_free(&items);
    int crc = tally_close(db);
    if (crc != TALLY_OK && !rc)
        rc = dir_error("dump", a.dir, crc, NULL);
    return rc;
}

/* Parse one dump line into *key, *value and *expire_ms (0 when it has no
 * "expires_at").  Returns 0, or -1 with a reason in why (whylen bytes). */
static int restore_parse(const char *line, size_t len, struct buf *key,
                         int64_t *value, int64_t *expire_ms, char *why,
                         size_t whylen)
{
    json_error_t jerr;
    const char *kwhy = NULL;
    json_t *j = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
                           &jerr);
    int rc = -1;

    if (!j) {
        snprintf(why, whylen, "not JSON: %s (column %d)", jerr.text,
                 jerr.column);
        return -1;
    }
    json_t *v = json_object_get(j, "value");
    json_t *x = json_object_get(j, "expires_at");
    if (!json_is_object(j))
        snprintf(why, whylen, "not a JSON object");
    else if (out_json_key_parse(j, key, &kwhy) < 0)
        snprintf(why, whylen, "%s", kwhy);
    else if (key->len > TALLY_KEY_MAX)
        snprintf(why, whylen, "the key has %zu bytes, more than %d", key->len,
                 TALLY_KEY_MAX);
    else if (!json_is_integer(v))
        snprintf(why, whylen, "\"value\" is missing or not an integer");
    else if (x && (!json_is_integer(x) || json_integer_value(x) < 1 ||
                   json_integer_value(x) > TALLY_EXPIRE_MAX))
        snprintf(why, whylen, "\"expires_at\" is not Unix milliseconds "
                              "(an integer from 1 to %lld)",
                 (long long)TALLY_EXPIRE_MAX);
    else if (json_object_size(j) != 2u + (x != NULL))
        snprintf(why, whylen, "unknown fields (want only \"key\" or "
                              "\"key_b64\", \"value\" and perhaps "
                              "\"expires_at\")");
    else
        rc = 0;
    if (rc == 0) {
        *value = json_integer_value(v);
        *expire_ms = x ? json_integer_value(x) : 0;
    }
    json_decref(j);
    return rc;
}

/* Read the whole dump on f into items, stopping at the first bad line.
 * Returns 0 or CLI_EXIT_ERROR after a message naming the line. */
static int restore_read(FILE *f, struct out_items *items)
{
    struct buf key = BUF_INIT;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;

    while ((n = getline(&line, &cap, f)) >= 0) {
        char why[256];
        int64_t value, expire_ms;
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue; /* blank lines are allowed, e.g. a trailing one */
        buf_clear(&key);
        if (restore_parse(line, (size_t)n, &key, &value, &expire_ms, why,
                          sizeof why)) {
            rc = cli_error("restore: line %zu of the input: %s; nothing "
                           "written", lineno, why);
            goto done;
        }
        out_items_add(items, key.p ? key.p : "", key.len, value, expire_ms);
    }
    if (ferror(f))
        rc = cli_error("restore: cannot read the input: %m; nothing written");
done:
    free(line);
    buf_free(&key);
    return rc;
}

/* How many of items have no expiry or one after now. */
static size_t restore_live(const struct out_items *items, int64_t now)
{
    size_t n = 0;

    for (size_t i = 0; i < items->n; i++)
        n += items->v[i].expire_ms == 0 || items->v[i].expire_ms > now;
    return n;
}

/* Write items into db, then snapshot: counters without an expiry in atomic
 * batches, those with one each with its absolute expiry (tally_mset takes
 * none); one whose expiry has passed is skipped (*skipped counts them).
 * Returns 0 or CLI_EXIT_ERROR after a message. */
static int restore_write(tally *db, const char *dir, struct out_items *items,
                         size_t *skipped)
{
    const void *keys[RESTORE_BATCH];
    size_t klens[RESTORE_BATCH];
    int64_t values[RESTORE_BATCH];
    int rc;

    *skipped = 0;
    for (size_t i = 0; i < items->n;) {
        size_t n = 0, bytes = 0;
        /* A key is at most TALLY_KEY_MAX bytes, so one always fits. */
        while (i < items->n && n < RESTORE_BATCH &&
               bytes + items->v[i].klen + RESTORE_OP_COST <= RESTORE_BATCH_BYTES) {
            const struct out_item *it = &items->v[i++];
            if (it->expire_ms) {
                tally_ticket t; /* the snapshot below makes it durable */
                if (it->expire_ms <= tally_now_ms(db))
                    ++*skipped;
                else if ((rc = tally_setx(db, it->key, it->klen, it->value,
                                          it->expire_ms, &t)) != TALLY_OK)
                    return dir_error("restore", dir, rc, tally_errmsg(db));
                continue;
            }
            keys[n] = it->key;
            klens[n] = it->klen;
            values[n] = it->value;
            bytes += klens[n++] + RESTORE_OP_COST;
        }
        if (n && (rc = tally_mset(db, n, keys, klens, values, NULL)) != TALLY_OK)
            return dir_error("restore", dir, rc, tally_errmsg(db));
    }
    /* The input named each key once, so anything but one counter per live
     * item means the engine lost or invented one: say so rather than report
     * success.  A counter may expire while this runs, hence the bounds. */
    int64_t before = tally_now_ms(db);
    uint64_t have = tally_count(db);
    int64_t after = tally_now_ms(db);
    if (have > restore_live(items, before) || have < restore_live(items, after))
        return cli_error("restore: wrote %zu counters but %s holds %llu",
                         items->n - *skipped, dir, (unsigned long long)have);
    /* The snapshot makes the restored state durable and compact in one file:
     * when it returns, a restart loads it without replaying the batches. */
    rc = tally_snapshot(db);
    if (rc != TALLY_OK)
        return dir_error("restore", dir, rc, tally_errmsg(db));
    return 0;
}

int cli_restore(const struct cli_opts *o, int argc, char **argv)
{
    struct out_items items = OUT_ITEMS_INIT;
    struct dir_args a;
    tally *db = NULL;
    size_t skipped = 0;
    int rc;

    if ((rc = parse_dir_args(argc, argv, 0, &a)))
        return rc;
    /* Check all of the input before touching the directory, so that a bad
     * dump leaves it as it was. */
    if ((rc = restore_read(stdin, &items)))
        goto done;
    struct buf dup = BUF_INIT;
    size_t dups = out_items_sort(&items, &dup);
    if (dups)
        rc = cli_error("restore: the input names %zu key(s) more than once, "
                       "the first %s (a dump names each key once); nothing "
                       "written", dups, dup.p);
    buf_free(&dup);
    if (rc)
        goto done;
    /* Writes are not synced one by one (TALLY_SYNC_NO): the snapshot at the
     * end is the one point that must be durable, and it is fsync'd. */
    if (!(db = open_dir("restore", a.dir, 1, TALLY_SYNC_NO))) {
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    uint64_t had = tally_count(db);
    if (had) {
        rc = cli_error("restore: %s already holds %llu counters (%s); restore "
                       "only into an empty directory", a.dir,
                       (unsigned long long)had, tally_strerror(TALLY_ENOTEMPTY));
        goto done;
    }
    if ((rc = restore_write(db, a.dir, &items, &skipped)))
        goto done;
    int crc = tally_close(db);
    db = NULL;
    if (crc != TALLY_OK) {
        rc = dir_error("restore", a.dir, crc, NULL);
        goto done;
    }
    uint64_t count = items.n - skipped;
    if (o->json) {
        json_t *obj = json_object();
        json_object_set_new(obj, "restored", json_integer((json_int_t)count));
        json_object_set_new(obj, "expired",
                            json_integer((json_int_t)skipped));
        if (out_json(obj))
            rc = CLI_EXIT_ERROR;
    } else if (skipped) {
        printf("restored %llu counters into %s (%zu more had expired and "
               "were skipped)\n", (unsigned long long)count, a.dir, skipped);
    } else {
        printf("restored %llu counters into %s\n", (unsigned long long)count,
               a.dir);
    }
done:
    if (db)
        tally_close(db);
    out_items_free(&items);
    return rc;
}
