/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * script.h - Lua scripts as Redis 7 runs them (EVAL, EVALSHA, their _RO
 * forms, SCRIPT LOAD/EXISTS/FLUSH), in the command layer (script.c).
 *
 * A script calls commands only through its front end: redis.call() hands
 * the argument vector to host->call, which runs it exactly as if a client
 * had sent it (so through cmd_exec, never storage directly; only tally's
 * commands exist) and reports the reply through the cmd_script_reply_*
 * calls, which build the Lua value Redis would give the script.  The
 * script's own result goes back through the host's out_* calls, converted
 * by Redis's rules (numbers truncated to integers, a table up to its first
 * nil, {ok=...} a status, {err=...} an error, false a nil).
 *
 * All the writes of one script are one atomic batch (cmd_batch_begin/
 * commit, include/tally.h "Atomic batches"): res->ticket covers it and the
 * reply must wait for it.  A script that fails after writing keeps its
 * writes, as in Redis.  Scripts live in memory only (SCRIPT FLUSH, a
 * restart, forget them; clients reload them on NOSCRIPT).
 */
#ifndef TALLY_CMD_SCRIPT_H
#define TALLY_CMD_SCRIPT_H

#include "cmd.h"

/* The hex SHA-1 of n bytes (sha1.c): a script's name. */
void cmd_sha1_hex(const void *data, size_t n, char out[41]);

/* Building the Lua value of one command's reply (inside host->call).
 * array(n) is followed by its n elements. */
struct cmd_script_reply;
void cmd_script_reply_int(struct cmd_script_reply *r, int64_t v);
void cmd_script_reply_bulk(struct cmd_script_reply *r, const char *p,
                           size_t n);
void cmd_script_reply_nil(struct cmd_script_reply *r);
void cmd_script_reply_status(struct cmd_script_reply *r, const char *p,
                             size_t n);
void cmd_script_reply_error(struct cmd_script_reply *r, const char *p,
                            size_t n);
void cmd_script_reply_array(struct cmd_script_reply *r, size_t n);

/* What a front end provides for a script run.  call() must report exactly
 * one reply on r; readonly is set for EVAL_RO/EVALSHA_RO (the front end
 * refuses its write commands with Redis's text).  The out_* calls encode
 * the script's result; an out_array(n) is followed by n elements. */
struct cmd_script_host {
    void (*call)(void *arg, size_t argc, const char *const *argv,
                 const size_t *argl, int readonly,
                 struct cmd_script_reply *r);
    void (*out_int)(void *arg, int64_t v);
    void (*out_bulk)(void *arg, const char *p, size_t n);
    void (*out_nil)(void *arg);
    void (*out_status)(void *arg, const char *p, size_t n);
    void (*out_error)(void *arg, const char *p, size_t n);
    void (*out_array)(void *arg, size_t n);
    void *arg;
};

/* Run a script: its body (by_sha 0) or the SHA-1 of one loaded before
 * (by_sha 1), with nkeys keys then nargs arguments in argv/argl.  Returns
 * CMD_NOTFOUND for an unknown SHA-1 (Redis's NOSCRIPT; nothing was
 * written), CMD_NOTSET if SHUTDOWN NOSAVE stopped it (cmd_script_kill_nosave:
 * every change undone, and no reply: the front end closes the connection,
 * as Redis's exit does), or CMD_OK once the result (possibly an error reply: compile
 * and runtime errors are results) has gone through host->out_*; or, if
 * the batch of its writes cannot be committed, an error status with every
 * change undone (the front end then drops what out_* wrote). */
enum cmd_status cmd_eval(struct cmd_ctx *ctx, struct cmd_session *s,
                         const char *script,
                         size_t slen, int by_sha, int readonly, size_t nkeys,
                         size_t nargs, const char *const *argv,
                         const size_t *argl,
                         const struct cmd_script_host *host,
                         struct cmd_res *res);

/* SCRIPT LOAD: compile and remember body; sha gets its name.  Returns
 * CMD_OK, or CMD_ERR_ARGS after a compile error went to host->out_error. */
enum cmd_status cmd_script_load(struct cmd_ctx *ctx, const char *body,
                                size_t len, char sha[41],
                                const struct cmd_script_host *host);
/* SCRIPT EXISTS of one name: 1 or 0 (any case of hex digits). */
int cmd_script_exists(struct cmd_ctx *ctx, const char *sha, size_t len);
/* SCRIPT KILL (from another session, while a script is busy): CMD_OK,
 * the script stops at its next check with Redis's "Script killed" error;
 * CMD_NOTFOUND: none is running past the threshold (NOTBUSY);
 * CMD_NOTSET: it has written, so it cannot be stopped (UNKILLABLE). */
enum cmd_status cmd_script_kill(struct cmd_ctx *ctx);
/* SHUTDOWN NOSAVE (from another session, while a script is busy): CMD_OK,
 * the script stops at its next check even if it has written, and its
 * writes are undone (cmd_eval); CMD_NOTFOUND: none is busy. */
enum cmd_status cmd_script_kill_nosave(struct cmd_ctx *ctx);
/* SCRIPT FLUSH: forget every script. */
void cmd_script_flush(struct cmd_ctx *ctx);

/* Redis's busy-reply-threshold in ms (default 5000): how long a script
 * runs before others get -BUSY and SCRIPT KILL is accepted (see
 * script.c). */
void cmd_script_set_limit(struct cmd_ctx *ctx, unsigned ms);

/* Close the Lua state and free the scripts (cmd_fini). */
void cmd_scripts_free(struct cmd_ctx *ctx);

#endif /* TALLY_CMD_SCRIPT_H */
