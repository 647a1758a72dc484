/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main.c - `tally`'s entry point: global options, the environment, usage
 * text and the table of subcommands.
 *
 * Global options come before the command and nothing after the command is
 * taken for one, so that keys and numbers such as "-5" or "--json" pass
 * through as they are ("--" also ends the options).  The subcommands live in
 * online.c (over the Redis protocol) and offline.c (on a data directory);
 * docs/cli.md is the manual.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tally.h"
#include "version.h"

static const struct cli_cmd cmds[] = {
    {"get", 1, cli_get, "get KEY",
     "Print the counter's value.  Exit 1 if it does not exist.\n"
     "--json: {\"key\": \"KEY\", \"value\": N}.\n"},
    {"incr", 1, cli_incr, "incr KEY [BY] [--ttl DURATION]",
     "Add BY (default 1, may be negative) to the counter, creating it at 0,\n"
     "and print the new value.  --json: {\"key\": \"KEY\", \"value\": N}.\n"
     "--ttl: give the counter that expiry if it has none (a fixed window:\n"
     "the first incr opens it, later ones count in it); DURATION is a\n"
     "number with ms, s (default), m, h or d.\n"},
    {"decr", 1, cli_decr, "decr KEY [BY]",
     "Subtract BY (default 1) from the counter, creating it at 0, and print\n"
     "the new value.  --json: {\"key\": \"KEY\", \"value\": N}.\n"},
    {"set", 1, cli_set, "set KEY VALUE [--ttl DURATION]",
     "Set the counter to VALUE (a signed 64-bit integer), creating it.\n"
     "Without --ttl it has no expiry afterwards; with it, it expires after\n"
     "DURATION (a number with ms, s (default), m, h or d).\n"
     "Prints OK.  --json: {\"key\": \"KEY\", \"value\": VALUE}.\n"},
    {"del", 1, cli_del, "del KEY",
     "Delete the counter.  Exit 1 if it did not exist.\n"
     "--json: {\"deleted\": true} (or false, with exit 1).\n"},
    {"list", 1, cli_list, "list [PREFIX]",
     "Print every counter whose key starts with PREFIX (all of them without\n"
     "one) as \"KEY VALUE\" lines, sorted by key.  Keys that are not plain\n"
     "printable ASCII are printed in double quotes with C escapes.\n"
     "--json: one {\"key\": ..., \"value\": N} object per line, the same format\n"
     "as `tally dump` (so its output can be fed to `tally restore`).\n"},
    {"info", 1, cli_info, "info [SECTION]",
     "Print the server's INFO text.  --json: one object of its fields\n"
     "(integers as numbers, everything else as strings).\n"},
    {"ping", 1, cli_ping, "ping",
     "Check that the server answers: prints PONG.  --json: {\"pong\": true}.\n"},
    {"check", 0, cli_check, "check --dir DIR",
     "Verify every file in the data directory of a stopped server without\n"
     "changing anything.  Exit 0 with a summary if it is sound (it counts\n"
     "the counters that have expired but are not purged yet); exit 1 if\n"
     "only a torn log tail (a write a crash cut short, never acknowledged)\n"
     "would be cut on open; exit 3 naming the file and byte offset if\n"
     "acknowledged data is damaged (open refuses); exit 2 if it cannot check.\n"
     "--json: {\"ok\": BOOL, \"status\": \"clean|torn|corrupt\", \"report\": ...}.\n"},
    {"dump", 0, cli_dump, "dump --dir DIR",
     "Print every counter of a stopped server's data directory as a JSON line\n"
     "{\"key\": \"KEY\", \"value\": N}, sorted by key; a key that is not valid\n"
     "UTF-8 is written {\"key_b64\": \"BASE64\", \"value\": N} instead, and a\n"
     "counter that expires has \"expires_at\": UNIX_MS too.  Opening the\n"
     "directory recovers it as tallyd would (a torn log tail is cut).\n"},
    {"restore", 0, cli_restore, "restore --dir DIR  < DUMP",
     "Load a dump (JSON lines, as written by `tally dump`) into a data\n"
     "directory that holds no counters (created if missing).  The whole input\n"
     "is checked before anything is written; then every counter is written,\n"
     "with its expiry, and a snapshot taken (a counter whose expiry has\n"
     "passed is skipped).  Prints the number of counters restored.  A\n"
     "directory that already holds counters is refused (exit 2); after any\n"
     "failure (exit 2) remove the directory and run it again.\n"},
    {"repair", 0, cli_repair, "repair --dir DIR [--yes]",
     "Make a damaged data directory open again by cutting the log at its\n"
     "first bad record (later log files are renamed *.corrupt) or rebuilding\n"
     "a damaged snapshot from its valid records.  This can lose counters, so\n"
     "without --yes it only says what is wrong and changes nothing (exit\n"
     "codes as check's); with --yes it says how many records it dropped.\n"},
};

static const char usage_text[] =
    "usage: tally [-H HOST] [-p PORT] [-a PASSWORD] [--timeout SECS] [--json]\n"
    "             [--tls [--cacert FILE] [--cert FILE --key FILE]] COMMAND [ARGS]\n"
    "\n"
    "Online commands (talk to a running tallyd over the Redis protocol):\n"
    "%s"
    "Offline commands (open a stopped server's data directory):\n"
    "%s"
    "\n"
    "Options (before COMMAND):\n"
    "  -H, --host HOST      server address (TALLY_HOST; default 127.0.0.1)\n"
    "  -p, --port PORT      server port (TALLY_PORT; default 7379)\n"
    "  -a, --password PASS  AUTH with PASS (TALLY_PASSWORD; the environment\n"
    "                       keeps it out of `ps`)\n"
    "      --timeout SECS   give up on a connect or a reply after SECS\n"
    "                       (default 10; 0 waits for ever)\n"
    "      --json           print JSON instead of text\n"
    "      --tls            talk TLS (tallyd --tls-port); the server's\n"
    "                       certificate must name HOST and chain to:\n"
    "      --cacert FILE    these CAs (PEM; default the system's)\n"
    "      --cert FILE      a client certificate (PEM), with\n"
    "      --key FILE       its key (default: in the --cert file)\n"
    "  -h, --help           this text; `tally COMMAND --help` for one command\n"
    "      --version        print the version\n"
    "\n"
    "Exit status: 0 ok, 1 not found (get, del), 2 error (usage, connection,\n"
    "server error reply, corrupt or busy data directory); messages go to\n"
    "stderr.\n";

int cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("tally: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_ERROR;
}

int cli_usage_error(const struct cli_cmd *cmd)
{
    fprintf(stderr, "usage: tally [OPTIONS] %s\n", cmd->usage);
    return CLI_EXIT_ERROR;
}

const struct cli_cmd *cli_find(const char *name)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

int cli_parse_i64(const char *s, int64_t *out)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    char *end;

    /* strtoll alone would accept spaces, a '+', leading zeros and an empty
     * string; the server (like Redis) takes none of them, nor "-0". */
    if (*d < '0' || *d > '9' || (d[0] == '0' && (d[1] || d != s)))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_duration(const char *s, int64_t *ms)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
        {"d", 86400000},
    };
    size_t digits = strspn(s, "0123456789");
    char num[24];
    int64_t n;

    if (digits == 0 || digits >= sizeof num)
        return -1;
    memcpy(num, s, digits);
    num[digits] = 0;
    if (cli_parse_i64(num, &n) < 0 || n == 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s + digits, units[i].unit) != 0)
            continue;
        if (n > INT64_MAX / units[i].ms)
            return -1;
        *ms = n * units[i].ms;
        return 0;
    }
    return -1;
}

static void print_usage(FILE *f)
{
    struct buf on = BUF_INIT, off = BUF_INIT;

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        buf_printf(cmds[i].online ? &on : &off, "  tally %s\n", cmds[i].usage);
    fprintf(f, usage_text, on.p, off.p);
    buf_free(&on);
    buf_free(&off);
}

static void print_cmd_help(const struct cli_cmd *cmd)
{
    printf("usage: tally [OPTIONS] %s\n\n%s\n"
           "Exit status: 0 ok, 1 not found (get, del), 2 error.\n",
           cmd->usage, cmd->help);
}

/* The value of an option given as "--name VALUE", "--name=VALUE" or "-x
 * VALUE"; advances *i past it.  NULL (and a message) if it is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *arg)
{
    const char *eq = strchr(arg, '=');

    if (arg[1] == '-' && eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        cli_error("option %s needs a value (try tally --help)", arg);
        return NULL;
    }
    return argv[++*i];
}

static int opt_is(const char *arg, const char *shrt, const char *lng)
{
    size_t n = strlen(lng);

    if (shrt && strcmp(arg, shrt) == 0)
        return 1;
    return strncmp(arg, lng, n) == 0 && (arg[n] == 0 || arg[n] == '=');
}

/* Parse a port number in [1, 65535] from s; what names where it came from
 * for the message.  Returns 0 or CLI_EXIT_ERROR. */
static int parse_port(const char *s, const char *what, int *port)
{
    int64_t v;

    if (cli_parse_i64(s, &v) < 0 || v < 1 || v > 65535)
        return cli_error("%s: bad port \"%s\" (want 1 to 65535)", what, s);
    *port = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    struct cli_opts o = {.host = "127.0.0.1", .port = 7379, .timeout_ms = 10000};
    const char *env;
    int i;

    if ((env = getenv("TALLY_HOST")) && *env)
        o.host = env;
    if ((env = getenv("TALLY_PORT")) && *env &&
        parse_port(env, "TALLY_PORT", &o.port))
        return CLI_EXIT_ERROR;
    if ((env = getenv("TALLY_PASSWORD")) && *env)
        o.password = env;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (opt_is(a, "-h", "--help")) {
            print_usage(stdout);
            return out_finish();
        } else if (strcmp(a, "--version") == 0) {
            printf("tally %s (git %s)\n", TALLY_VERSION, version_git_rev);
            return out_finish();
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (opt_is(a, "-H", "--host")) {
            if (!(v = opt_value(argc, argv, &i, a)))
                return CLI_EXIT_ERROR;
            o.host = v;
        } else if (opt_is(a, "-p", "--port")) {
            if (!(v = opt_value(argc, argv, &i, a)) ||
                parse_port(v, a, &o.port))
                return CLI_EXIT_ERROR;
        } else if (opt_is(a, "-a", "--password")) {
            if (!(v = opt_value(argc, argv, &i, a)))
                return CLI_EXIT_ERROR;
            o.password = v;
        } else if (opt_is(a, NULL, "--timeout")) {
            int64_t secs;
            if (!(v = opt_value(argc, argv, &i, a)))
                return CLI_EXIT_ERROR;
            if (cli_parse_i64(v, &secs) < 0 || secs < 0 || secs > 86400)
                return cli_error("--timeout: bad number of seconds \"%s\"", v);
            o.timeout_ms = (int)secs * 1000;
        } else if (strcmp(a, "--tls") == 0) {
            o.tls = 1;
        } else if (opt_is(a, NULL, "--cacert") || opt_is(a, NULL, "--cert") ||
                   opt_is(a, NULL, "--key")) {
            if (!(v = opt_value(argc, argv, &i, a)))
                return CLI_EXIT_ERROR;
            *(opt_is(a, NULL, "--cacert") ? &o.cacert
              : opt_is(a, NULL, "--cert") ? &o.cert : &o.key) = v;
            o.tls = 1;
        } else {
            cli_error("unknown option %s", a);
            print_usage(stderr);
            return CLI_EXIT_ERROR;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return CLI_EXIT_ERROR;
    }

    const struct cli_cmd *cmd = cli_find(argv[i]);
    if (!cmd) {
        cli_error("unknown command \"%s\" (try tally --help)", argv[i]);
        return CLI_EXIT_ERROR;
    }
    /* Only the first argument can ask for help, so that a key spelled
     * "--help" stays reachable as `tally get -- --help`. */
    if (i + 1 < argc &&
        (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0)) {
        print_cmd_help(cmd);
        return out_finish();
    }
    if (i + 1 < argc && strcmp(argv[i + 1], "--") == 0) {
        argv[i + 1] = argv[i]; /* drop the "--": the command name moves up */
        i++;
    }
    int rc = cmd->run(&o, argc - i, argv + i);
    int out = out_finish();
    return rc ? rc : out;
}
