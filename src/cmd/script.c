/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * script.c - Lua scripts (script.h) on Debian's Lua 5.1, the version Redis
 * embeds, so scripts written for Redis (unpack, number semantics) run
 * unchanged.
 *
 * One Lua state per command context, made on first use.  A script is
 * compiled once as a function (chunk name "@user_script", so errors read
 * "user_script:1: ..." as in Redis) and kept in a registry table keyed by
 * its SHA-1; SCRIPT FLUSH closes the state.  The sandbox is Redis's: only
 * the base, table, string and math libraries are opened, without dofile,
 * loadfile, require, os, io or debug (nor getfenv, setfenv and rawset,
 * which would get round the guard below);
 * every script runs with an environment that refuses new globals and
 * names a missing global as an error (Redis 7's messages).  Debian's Lua
 * has no read-only tables, so a script can still change the contents of a
 * library table such as string (known debt: Redis 7 refuses that too).
 *
 * redis.call/pcall go to the front end (host->call), which runs the
 * command like any client's; the reply comes back through the
 * cmd_script_reply_* builder below.  A script runs inside one engine batch
 * (cmd_batch_begin/commit), so its writes are one atomic durable record.
 *
 * Time limit: a count hook checks the clock every 10,000 instructions.
 * Past busy-reply-threshold, as in Redis, the script goes on but the
 * daemon is given the loop every few ms (ctx->busy_poll) to answer other
 * clients -BUSY (cmd_exec refuses their requests meanwhile) and to take
 * SCRIPT KILL, which stops a script that has not written; one that has
 * written runs to its end.  Without a busy_poll (an embedding program) a
 * script past the limit that has not written is stopped instead.  SHUTDOWN
 * NOSAVE stops any busy script, written or not (Redis lets it through and
 * exits): its batch is then undone, since nothing of it reached the log,
 * and it has no reply (cmd_script_kill_nosave).
 *
 * On a store that answers later a script is run again from its start each
 * time one of its store calls pends (docs/store.md, the re-run design), and
 * its calls are answered from the replay log.  So every run must ask the
 * same: math.random is seeded per request with a seed the first run logs
 * (cmd_replay_value), TIME inside a script is logged the same way (the
 * front end's), and redis.log lines are held until the run that finishes,
 * so each is written once.  A script that still asks something else on a
 * re-run (it read a clock of its own making) gets an error and its batch
 * applies nothing (replay.c).  A run stops at its first call that pends
 * (an error raised at the call and again by the hook, past any pcall):
 * what it would do after is dropped anyway.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script.h"
#include "util.h"

#define HOOK_EVERY 10000
#define DEFAULT_LIMIT_MS 5000
#define MAX_REPLY_DEPTH 64

struct cmd_scripts {
    lua_State *L;
    unsigned limit_ms;
    /* The run in progress (one at a time: the loop thread's). */
    const struct cmd_script_host *host;
    struct cmd_ctx *ctx;
    int readonly;
    uint64_t t0_ms;
    uint64_t writes0;
    int killed;
    int kill;              /* SCRIPT KILL asked for it */
    int discard;           /* ... and SHUTDOWN NOSAVE: undo its writes */
    uint64_t last_poll_ms; /* the last busy_poll */
    const struct cmd_session *session;
    /* redis.log lines of a run that may be run again (a store that answers
     * later): "<level><line>\0" each, written once the run finishes. */
    int hold_log;
    struct buf held;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- Building a command's reply as a Lua value ------------------------ */

struct cmd_script_reply {
    lua_State *L;
    int depth;
    struct {
        size_t left;
        int idx;
    } f[MAX_REPLY_DEPTH];
};

/* A complete value is on top: put it in the array being built, closing
 * every array it completes. */
static void place(struct cmd_script_reply *r)
{
    while (r->depth > 0) {
        int d = r->depth - 1;
        lua_rawseti(r->L, -2, ++r->f[d].idx);
        if (--r->f[d].left > 0)
            return;
        r->depth--;
    }
}

void cmd_script_reply_int(struct cmd_script_reply *r, int64_t v)
{
    lua_pushnumber(r->L, (lua_Number)v);
    place(r);
}

void cmd_script_reply_bulk(struct cmd_script_reply *r, const char *p,
                           size_t n)
{
    lua_pushlstring(r->L, p, n);
    place(r);
}

void cmd_script_reply_nil(struct cmd_script_reply *r)
{
    lua_pushboolean(r->L, 0); /* Redis: a nil reply is false in Lua */
    place(r);
}

static void one_field(struct cmd_script_reply *r, const char *field,
                      const char *p, size_t n)
{
    lua_newtable(r->L);
    lua_pushstring(r->L, field);
    lua_pushlstring(r->L, p, n);
    lua_settable(r->L, -3);
    place(r);
}

void cmd_script_reply_status(struct cmd_script_reply *r, const char *p,
                             size_t n)
{
    one_field(r, "ok", p, n);
}

void cmd_script_reply_error(struct cmd_script_reply *r, const char *p,
                            size_t n)
{
    one_field(r, "err", p, n);
}

void cmd_script_reply_array(struct cmd_script_reply *r, size_t n)
{
    lua_createtable(r->L, n < 1024 ? (int)n : 1024, 0);
    if (n == 0 || r->depth == MAX_REPLY_DEPTH) {
        place(r); /* deeper than any tally reply: left empty */
        return;
    }
    r->f[r->depth].left = n;
    r->f[r->depth].idx = 0;
    r->depth++;
}

/* ---- The redis library ------------------------------------------------ */

static struct cmd_scripts *self(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* Raise {err = msg} (what redis.call raises; the error handler adds where). */
static int raise_err(lua_State *L, const char *msg)
{
    lua_newtable(L);
    lua_pushstring(L, "err");
    lua_pushstring(L, msg);
    lua_settable(L, -3);
    return lua_error(L);
}

/* A Lua number as a command argument: the shortest decimal that reads
 * back as the same double (Redis uses its fpconv_dtoa). */
static size_t number_arg(lua_Number v, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%.15g", v);

    if (strtod(out, NULL) != v)
        n = snprintf(out, cap, "%.17g", v);
    return (size_t)n;
}

static int call(lua_State *L, int raise)
{
    struct cmd_scripts *sc = self(L);
    int argc = lua_gettop(L);
    const char **argv;
    size_t *argl;
    char (*nums)[32];
    struct cmd_script_reply r = {L, 0, {{0, 0}}};

    if (argc == 0)
        return raise_err(L, "ERR Please specify at least one argument for "
                            "this redis lib call");
    argv = xcalloc((size_t)argc, sizeof *argv);
    argl = xcalloc((size_t)argc, sizeof *argl);
    nums = xcalloc((size_t)argc, sizeof *nums);
    for (int i = 0; i < argc; i++) {
        int t = lua_type(L, i + 1);
        if (t == LUA_TNUMBER) {
            argl[i] = number_arg(lua_tonumber(L, i + 1), nums[i], 32);
            argv[i] = nums[i];
        } else if (t == LUA_TSTRING) {
            argv[i] = lua_tolstring(L, i + 1, &argl[i]);
        } else {
            free(argv);
            free(argl);
            free(nums);
            return raise_err(L, "ERR Lua redis lib command arguments must be "
                                "strings or integers");
        }
    }
    sc->host->call(sc->host->arg, (size_t)argc, argv, argl, sc->readonly,
                   &r);
    free(argv);
    free(argl);
    free(nums);
    if (sc->session && cmd_pending(sc->session)) {
        /* The store answers later: this run is abandoned and the script
         * runs again from its start; stop it here (and in the hook, past
         * a pcall). */
        lua_pushstring(L, "the store answers later: run again");
        return lua_error(L);
    }
    if (raise && lua_istable(L, -1)) {
        lua_getfield(L, -1, "err");
        int is_err = lua_isstring(L, -1);
        lua_pop(L, 1);
        if (is_err)
            return lua_error(L);
    }
    return 1;
}

static int l_call(lua_State *L) { return call(L, 1); }
static int l_pcall(lua_State *L) { return call(L, 0); }

static int field_reply(lua_State *L, const char *field)
{
    luaL_checkstring(L, 1);
    lua_newtable(L);
    lua_pushstring(L, field);
    lua_pushvalue(L, 1);
    lua_settable(L, -3);
    return 1;
}

static int l_error_reply(lua_State *L) { return field_reply(L, "err"); }
static int l_status_reply(lua_State *L) { return field_reply(L, "ok"); }

static int l_sha1hex(lua_State *L)
{
    size_t n;
    const char *s;
    char hex[41];

    if (lua_gettop(L) != 1)
        return luaL_error(L, "wrong number of arguments");
    s = lua_tolstring(L, 1, &n);
    cmd_sha1_hex(s ? s : "", s ? n : 0, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* redis.log(level, ...): the arguments joined by spaces, to the daemon's
 * log (ctx->log): LOG_DEBUG and LOG_VERBOSE at debug, LOG_NOTICE at info,
 * LOG_WARNING at warn. */
static int l_log(lua_State *L)
{
    static const int levels[] = {3, 3, TALLY_LOG_INFO, TALLY_LOG_WARN};
    struct cmd_scripts *sc = self(L);
    int argc = lua_gettop(L), level;
    struct buf b = BUF_INIT;

    if (argc < 2)
        return luaL_error(L, "redis.log() requires two arguments or more.");
    if (!lua_isnumber(L, 1) || lua_tonumber(L, 1) < 0 ||
        lua_tonumber(L, 1) > 3)
        return luaL_error(L, "Invalid debug level.");
    level = levels[(int)lua_tonumber(L, 1)];
    if (!sc->ctx || !sc->ctx->log)
        return 0;
    if (sc->hold_log)
        buf_addc(&b, (char)('0' + level));
    buf_adds(&b, "script: ");
    for (int i = 2; i <= argc; i++) {
        size_t n = 0;
        const char *s = lua_tolstring(L, i, &n);
        if (i > 2)
            buf_addc(&b, ' ');
        if (s)
            buf_add(&b, s, n);
    }
    if (sc->hold_log)
        buf_add(&sc->held, b.p, b.len + 1); /* with its NUL */
    else
        sc->ctx->log(sc->ctx->log_ctx, level, b.p);
    buf_free(&b);
    return 0;
}

/* The held redis.log lines: written if the run finished, else dropped
 * (the next run writes them again). */
static void release_log(struct cmd_scripts *sc, struct cmd_ctx *ctx,
                        int finished)
{
    for (size_t off = 0; finished && off < sc->held.len;) {
        const char *line = (const char *)sc->held.p + off;
        size_t len = strlen(line);
        ctx->log(ctx->log_ctx, line[0] - '0', line + 1);
        off += len + 1;
    }
    buf_clear(&sc->held);
    sc->hold_log = 0;
}

/* The error handler every script runs under: Redis's shape, a table
 * {err = "ERR <message>" (a string error gets "ERR "), source, line}. */
static int on_error(lua_State *L)
{
    lua_Debug ar;
    int have = lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar);

    if (have && ar.what && strcmp(ar.what, "C") == 0)
        have = lua_getstack(L, 2, &ar) && lua_getinfo(L, "Sl", &ar);
    if (!lua_istable(L, 1)) {
        const char *msg = lua_tostring(L, 1);
        lua_newtable(L);
        lua_pushstring(L, "err");
        lua_pushfstring(L, "ERR %s", msg ? msg : "execution failure");
        lua_settable(L, -3);
        lua_replace(L, 1);
    }
    if (have && ar.currentline > 0) {
        lua_pushstring(L, "source");
        lua_pushstring(L, ar.source);
        lua_settable(L, 1);
        lua_pushstring(L, "line");
        lua_pushinteger(L, ar.currentline);
        lua_settable(L, 1);
    }
    lua_settop(L, 1);
    return 1;
}

#define BUSY_POLL_MS 5 /* how often a busy script lets others be told */

static void hook(lua_State *L, lua_Debug *ar)
{
    struct cmd_scripts *sc;
    struct cmd_ctx *ctx;
    uint64_t now = now_ms();

    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, "tally_self");
    sc = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (sc && sc->session && cmd_pending(sc->session)) {
        lua_pushstring(L, "the store answers later: run again");
        lua_error(L);
    }
    if (!sc || now - sc->t0_ms < sc->limit_ms)
        return;
    ctx = sc->ctx;
    if (!ctx->busy_poll) {
        /* Nobody can send SCRIPT KILL: stop one that has not written. */
        if (ctx->writes != sc->writes0)
            return;
        sc->killed = 1;
        lua_pushfstring(L, "script ran longer than busy-reply-threshold "
                           "(%d ms) without writing and was stopped",
                        (int)sc->limit_ms);
        lua_error(L);
    }
    if (!ctx->script_busy) {
        ctx->script_busy = 1;
        ctx->busy_session = sc->session;
    }
    if (now - sc->last_poll_ms >= BUSY_POLL_MS) {
        sc->last_poll_ms = now;
        ctx->busy_poll(ctx->busy_arg);
    }
    if (sc->kill) {
        sc->killed = 1;
        lua_pushstring(L, "Script killed by user with SCRIPT KILL...");
        lua_error(L);
    }
}

enum cmd_status cmd_script_kill_nosave(struct cmd_ctx *ctx)
{
    struct cmd_scripts *sc = ctx->scripts;

    if (!ctx->script_busy || !sc)
        return CMD_NOTFOUND;
    sc->kill = 1;
    sc->discard = 1;
    return CMD_OK;
}

enum cmd_status cmd_script_kill(struct cmd_ctx *ctx)
{
    struct cmd_scripts *sc = ctx->scripts;

    if (!ctx->script_busy || !sc)
        return CMD_NOTFOUND;
    if (ctx->writes != sc->writes0)
        return CMD_NOTSET;
    sc->kill = 1;
    return CMD_OK;
}

/* Globals: reading a missing one or creating one is an error (Redis 7). */
static int env_index(lua_State *L)
{
    const char *name = lua_tostring(L, 2);

    if (name && strcmp(name, "_G") == 0) { /* not a way round the guard */
        lua_pushvalue(L, 1);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    luaL_where(L, 1);
    lua_pushfstring(L, "Script attempted to access nonexistent global "
                       "variable '%s'", name ? name : "?");
    lua_concat(L, 2);
    return lua_error(L);
}

static int env_newindex(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushstring(L, "Attempt to modify a readonly table");
    lua_concat(L, 2);
    return lua_error(L);
}

static void open_state(struct cmd_scripts *sc)
{
    static const luaL_Reg libs[] = {{"", luaopen_base},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {NULL, NULL}};
    /* Files, and the ways round the environment guard. */
    static const char *const removed[] = {"dofile",  "loadfile", "require",
                                          "module",  "getfenv",  "setfenv",
                                          "rawset",  NULL};
    static const struct {
        const char *name;
        lua_CFunction fn;
    } api[] = {{"call", l_call},
               {"pcall", l_pcall},
               {"error_reply", l_error_reply},
               {"status_reply", l_status_reply},
               {"sha1hex", l_sha1hex},
               {"log", l_log}};
    lua_State *L = luaL_newstate();

    if (!L) {
        fprintf(stderr, "tally: out of memory creating the Lua state\n");
        abort();
    }
    for (const luaL_Reg *l = libs; l->func; l++) {
        lua_pushcfunction(L, l->func);
        lua_pushstring(L, l->name);
        lua_call(L, 1, 0);
    }
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_newtable(L);
    for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
        lua_pushlightuserdata(L, sc);
        lua_pushcclosure(L, api[i].fn, 1);
        lua_setfield(L, -2, api[i].name);
    }
    for (int i = 0; i < 4; i++) {
        static const char *const levels[] = {"LOG_DEBUG", "LOG_VERBOSE",
                                             "LOG_NOTICE", "LOG_WARNING"};
        lua_pushinteger(L, i);
        lua_setfield(L, -2, levels[i]);
    }
    lua_setglobal(L, "redis");
    /* The scripts' environment: an empty table whose reads fall through to
     * the real globals and whose writes fail. */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_pushcclosure(L, env_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "tally_env");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "tally_scripts");
    lua_pushlightuserdata(L, sc);
    lua_setfield(L, LUA_REGISTRYINDEX, "tally_self");
    sc->L = L;
}

/* The context's script state, without (state_too 0) or with its Lua
 * state. */
static struct cmd_scripts *get_state(struct cmd_ctx *ctx, int state_too)
{
    if (!ctx->scripts) {
        ctx->scripts = xcalloc(1, sizeof *ctx->scripts);
        ctx->scripts->limit_ms = DEFAULT_LIMIT_MS;
    }
    if (state_too && !ctx->scripts->L)
        open_state(ctx->scripts);
    return ctx->scripts;
}

static struct cmd_scripts *scripts(struct cmd_ctx *ctx)
{
    return get_state(ctx, 1);
}

void cmd_script_set_limit(struct cmd_ctx *ctx, unsigned ms)
{
    get_state(ctx, 0)->limit_ms = ms ? ms : DEFAULT_LIMIT_MS;
}

void cmd_script_flush(struct cmd_ctx *ctx)
{
    if (ctx->scripts && ctx->scripts->L) {
        lua_close(ctx->scripts->L);
        ctx->scripts->L = NULL;
    }
}

void cmd_scripts_free(struct cmd_ctx *ctx)
{
    cmd_script_flush(ctx);
    if (ctx->scripts)
        buf_free(&ctx->scripts->held);
    free(ctx->scripts);
    ctx->scripts = NULL;
}

/* Push the compiled function named sha (40 lower-case hex), or nil. */
static void get_script(lua_State *L, const char *sha)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "tally_scripts");
    lua_getfield(L, -1, sha);
    lua_remove(L, -2);
}

/* Compile body as sha's function.  Returns 0, or -1 with the error
 * message (Redis's words) on the stack. */
static int compile(lua_State *L, const char *body, size_t len,
                   const char *sha)
{
    if (luaL_loadbuffer(L, body, len, "@user_script") != 0) {
        lua_pushfstring(L, "ERR Error compiling script (new function): %s",
                        lua_tostring(L, -1));
        lua_remove(L, -2);
        return -1;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "tally_env");
    lua_setfenv(L, -2);
    lua_getfield(L, LUA_REGISTRYINDEX, "tally_scripts");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, sha);
    lua_pop(L, 2);
    return 0;
}

static void lower_sha(const char *sha, size_t len, char out[41])
{
    size_t i;

    for (i = 0; i < 40 && i < len; i++)
        out[i] = (char)(sha[i] >= 'A' && sha[i] <= 'F' ? sha[i] + 32 : sha[i]);
    out[i] = 0;
}

int cmd_script_exists(struct cmd_ctx *ctx, const char *sha, size_t len)
{
    lua_State *L = scripts(ctx)->L;
    char name[41];
    int found;

    if (len != 40)
        return 0;
    lower_sha(sha, len, name);
    get_script(L, name);
    found = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return found;
}

enum cmd_status cmd_script_load(struct cmd_ctx *ctx, const char *body,
                                size_t len, char sha[41],
                                const struct cmd_script_host *host)
{
    lua_State *L = scripts(ctx)->L;
    size_t n;
    const char *msg;

    cmd_sha1_hex(body, len, sha);
    if (cmd_script_exists(ctx, sha, 40))
        return CMD_OK;
    if (compile(L, body, len, sha) == 0)
        return CMD_OK;
    msg = lua_tolstring(L, -1, &n);
    host->out_error(host->arg, msg, n);
    lua_pop(L, 1);
    return CMD_ERR_ARGS;
}

/* Set KEYS or ARGV (in the real globals) to argv[0, n). */
static void set_array(lua_State *L, const char *name, const char *const *argv,
                      const size_t *argl, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushlstring(L, argv[i], argl[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setglobal(L, name);
}

/* The value on top of the stack as the script's result (Redis's rules). */
static void emit(lua_State *L, const struct cmd_script_host *h, int depth)
{
    size_t n = 0;
    const char *s;

    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, -1, &n);
        h->out_bulk(h->arg, s, n);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1))
            h->out_int(h->arg, 1);
        else
            h->out_nil(h->arg);
        return;
    case LUA_TNUMBER:
        h->out_int(h->arg, (int64_t)lua_tonumber(L, -1));
        return;
    case LUA_TTABLE:
        break;
    default:
        h->out_nil(h->arg);
        return;
    }
    lua_getfield(L, -1, "err");
    if (lua_isstring(L, -1)) {
        s = lua_tolstring(L, -1, &n);
        h->out_error(h->arg, s, n);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "ok");
    if (lua_isstring(L, -1)) {
        s = lua_tolstring(L, -1, &n);
        h->out_status(h->arg, s, n);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    /* An array, up to the first nil. */
    for (n = 0;; n++) {
        lua_rawgeti(L, -1, (int)n + 1);
        int end = lua_isnil(L, -1);
        lua_pop(L, 1);
        if (end)
            break;
    }
    if (depth >= MAX_REPLY_DEPTH) {
        h->out_nil(h->arg);
        return;
    }
    h->out_array(h->arg, n);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        emit(L, h, depth + 1);
        lua_pop(L, 1);
    }
}

/* The error table on top as the error reply Redis 7 gives a failed
 * script: "<err> script: <sha>, on <source>:<line>." */
static void emit_error(lua_State *L, const struct cmd_script_host *h,
                       const char *sha)
{
    struct buf b = BUF_INIT;
    const char *msg;

    if (!lua_istable(L, -1)) {
        msg = lua_tostring(L, -1);
        buf_printf(&b, "ERR %s", msg ? msg : "execution failure");
    } else {
        lua_getfield(L, -1, "err");
        msg = lua_tostring(L, -1);
        buf_adds(&b, msg ? msg : "ERR unknown error");
        lua_pop(L, 1);
        lua_getfield(L, -1, "source");
        lua_getfield(L, -2, "line");
        if (lua_isstring(L, -2) && lua_isnumber(L, -1))
            buf_printf(&b, " script: %s, on %s:%d.", sha, lua_tostring(L, -2),
                       (int)lua_tointeger(L, -1));
        lua_pop(L, 2);
    }
    h->out_error(h->arg, b.p, b.len);
    buf_free(&b);
}

enum cmd_status cmd_eval(struct cmd_ctx *ctx, struct cmd_session *s,
                         const char *script,
                         size_t slen, int by_sha, int readonly, size_t nkeys,
                         size_t nargs, const char *const *argv,
                         const size_t *argl,
                         const struct cmd_script_host *host,
                         struct cmd_res *res)
{
    struct cmd_scripts *sc = scripts(ctx);
    lua_State *L = sc->L;
    char sha[41];
    enum cmd_status st;
    int rc, readahead;

    res->ticket = 0;
    res->detail[0] = 0;
    if (by_sha)
        lower_sha(script, slen, sha);
    else
        cmd_sha1_hex(script, slen, sha);
    lua_pushcfunction(L, on_error);
    get_script(L, sha);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);
        if (by_sha)
            return CMD_NOTFOUND;
        if (compile(L, script, slen, sha) != 0) {
            size_t n;
            const char *msg = lua_tolstring(L, -1, &n);
            host->out_error(host->arg, msg, n);
            lua_pop(L, 1);
            return CMD_OK;
        }
        lua_pushcfunction(L, on_error);
        get_script(L, sha);
    }
    set_array(L, "KEYS", argv, argl, nkeys);
    set_array(L, "ARGV", argv + nkeys, argl + nkeys, nargs);
    sc->host = host;
    sc->ctx = ctx;
    sc->readonly = readonly;
    sc->t0_ms = now_ms();
    sc->writes0 = ctx->writes;
    sc->killed = 0;
    sc->kill = 0;
    sc->discard = 0;
    sc->last_poll_ms = 0;
    sc->session = s;
    if (!ctx->store->ops->sync_only) {
        /* The same random numbers on every run of this request. */
        int64_t seed = (int64_t)(now_ms() * 2654435761u);
        cmd_replay_value(ctx, s, &seed);
        srand((unsigned)seed); /* Lua 5.1's math.random is rand() */
        sc->hold_log = ctx->log != NULL;
    }
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_EVERY);
    cmd_batch_begin(ctx, s);
    /* Inside MULTI too, the keys of its calls are no read-ahead: they may
     * depend on the answer its run waits for (cmd.h "Read-ahead"). */
    readahead = ctx->readahead;
    ctx->readahead = 0;
    rc = lua_pcall(L, 0, 1, -2);
    ctx->readahead = readahead;
    /* Its declared KEYS are, once a call waits: the re-run finds them. */
    if (cmd_pending(s))
        for (size_t i = 0; i < nkeys; i++)
            cmd_store_batch_prefetch(ctx, s, argv[i], argl[i]);
    lua_sethook(L, NULL, 0, 0);
    ctx->script_busy = 0;
    ctx->busy_session = NULL;
    if (rc != 0)
        emit_error(L, host, sha);
    else
        emit(L, host, 0);
    lua_pop(L, 2); /* the result or error, and on_error */
    sc->host = NULL;
    if (sc->discard) {
        /* Stopped for SHUTDOWN NOSAVE: Redis exits with the script's
         * writes never propagated; here they were never logged. */
        cmd_batch_abort(ctx, s);
        release_log(sc, ctx, !cmd_pending(s));
        return CMD_NOTSET;
    }
    /* A script that failed after writing keeps its writes, as in Redis. */
    st = cmd_batch_commit(ctx, s, res);
    release_log(sc, ctx, st != CMD_PENDING);
    return st;
}
