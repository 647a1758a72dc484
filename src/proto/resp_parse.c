/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_parse.c - the RESP tokenizer: one request from a byte buffer into an
 * argument vector, as a pure function (it never reads a socket and keeps no
 * state between calls, so the daemon can hand it whatever has arrived).
 *
 * Two request forms, told apart by the first byte, as Redis does:
 *
 *   '*'   an array of bulk strings (what every client library sends):
 *           *<n>\r\n  then n times  $<len>\r\n<len bytes>\r\n
 *         n and len are decimal as cmd_parse_i64() reads them.  n <= 0
 *         carries no command.  Headers are refused when they run past
 *         RESP_HDR_MAX bytes without a CRLF, when a count is not a number,
 *         or when it breaks a limit; a bulk's limit is checked on its header,
 *         before its bytes arrive.  Unlike Redis, the two bytes after a
 *         bulk's data must be CRLF (Redis skips them unchecked).
 *   else  an inline command: one line ending in \n (a \r before it is
 *         dropped), split on blanks with Redis's sdssplitargs() rules:
 *         "double quotes" with \n \r \t \b \a \xHH and \<any> escapes,
 *         'single quotes' with \' only; a closing quote must be followed by
 *         a blank or the end of the line.  A line is at most RESP_INLINE_MAX
 *         bytes (Redis's PROTO_INLINE_MAX_SIZE) and max_request.
 *
 * Both forms keep the same argument limits, said once in argc_refusal()
 * and bulk_refusal() below: max_args and max_bulk, and Redis's tighter ones
 * before AUTH (RESP_UNAUTH_MAX_ARGS, RESP_UNAUTH_MAX_BULK).  An array is
 * checked on its headers, an inline line as each argument is split off.
 *
 * Every refusal comes with Redis's own "ERR Protocol error: ..." text, and
 * the caller closes the connection after sending it, as Redis does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_int.h"

/* Longest "*<n>" or "$<len>" header Redis would still wait on; a count is
 * at most 20 digits and a sign, so 32 bytes without a CRLF is garbage. */
#define RESP_HDR_MAX 32
_Static_assert(RESP_HDR_MAX >= 1 + 18 + 1,
               "header()'s one pass needs the '*' or '$', 18 digits and CR "
               "in view");

/* The longest inline line, its newline included (Redis's
 * PROTO_INLINE_MAX_SIZE): an inline request needs no more, and a stranger
 * must not make the server buffer a megabyte while it waits for a newline. */
#define RESP_INLINE_MAX (64 * 1024)

void resp_args_free(struct resp_args *a)
{
    free(a->argv);
    free(a->argl);
    buf_free(&a->scratch);
    memset(a, 0, sizeof *a);
}

static void args_reserve(struct resp_args *a, size_t n)
{
    if (n <= a->cap)
        return;
    size_t cap = a->cap ? a->cap : 8;
    while (cap < n)
        cap *= 2;
    a->argv = xrealloc(a->argv, cap * sizeof *a->argv);
    a->argl = xrealloc(a->argl, cap * sizeof *a->argl);
    a->cap = cap;
}

static ssize_t fail(char *err, const char *msg)
{
    snprintf(err, RESP_ERRMAX, "ERR Protocol error: %s", msg);
    return -1;
}

/* Why a request may not carry n arguments, or NULL if it may. */
static const char *argc_refusal(const struct proto_limits *lim, int authed,
                                int64_t n)
{
    if (!authed && n > RESP_UNAUTH_MAX_ARGS)
        return "unauthenticated multibulk length";
    if ((uint64_t)n > lim->max_args)
        return "invalid multibulk length";
    return NULL;
}

/* Why one argument may not be n bytes long, or NULL if it may. */
static const char *bulk_refusal(const struct proto_limits *lim, int authed,
                                int64_t n)
{
    if (n < 0 || (uint64_t)n > lim->max_bulk)
        return "invalid bulk length";
    if (!authed && n > RESP_UNAUTH_MAX_BULK)
        return "unauthenticated bulk length";
    return NULL;
}

/* Read the number of the header line at in[pos] ('*' or '$' already
 * checked).  Returns 1 with *num and *next (the byte after its CRLF) set,
 * 0 if the line is not complete, -1 if it is too long (no CRLF within
 * RESP_HDR_MAX bytes), -2 if it is not a number or not ended by CRLF.
 * Out of line, so that header() inlines without the register saves its
 * calls need. */
static __attribute__((noinline)) int header_slow(const char *in, size_t len,
                                                 size_t pos, int64_t *num,
                                                 size_t *next)
{
    size_t avail = len - pos;
    size_t look = avail < RESP_HDR_MAX ? avail : RESP_HDR_MAX;
    const char *r = memchr(in + pos, '\r', look);

    if (!r)
        return avail >= RESP_HDR_MAX ? -1 : 0;
    size_t cr = (size_t)(r - in);
    if (cr + 1 >= len)
        return 0; /* the '\n' has not arrived */
    if (in[cr + 1] != '\n')
        return -2;
    if (cmd_parse_i64(in + pos + 1, cr - pos - 1, num) != 0)
        return -2;
    *next = cr + 2;
    return 1;
}

/* header_slow's answer, the usual header (1 to 18 digits, no sign, no
 * leading zero, then CRLF) read here in one pass, inlined: memchr and
 * cmd_parse_i64 for each of a request's three headers cost an INCR over
 * 120 instructions (callgrind).  What this takes header_slow would decide
 * the same way (the first CR is the one after the digits, within
 * RESP_HDR_MAX, and 18 digits cannot overflow); the rest it decides. */
static inline int header(const char *in, size_t len, size_t pos,
                         int64_t *num, size_t *next)
{
    const char *p = in + pos + 1, *end = in + len, *q = p;
    uint64_t v = 0;

    while (q < end && q - p < 18 && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    if (q > p && *p != '0' && end - q >= 2 && q[0] == '\r' && q[1] == '\n') {
        *num = (int64_t)v;
        *next = (size_t)(q + 2 - in);
        return 1;
    }
    return header_slow(in, len, pos, num, next);
}

static ssize_t parse_array(const char *in, size_t len,
                           const struct proto_limits *lim, int authed,
                           struct resp_args *a, char *err)
{
    int64_t n;
    size_t pos;
    const char *why;
    int rc = header(in, len, 0, &n, &pos);

    if (rc == 0)
        return 0;
    if (rc == -1)
        return fail(err, "too big mbulk count string");
    if (rc == -2 || n > INT32_MAX)
        return fail(err, "invalid multibulk length");
    a->argc = 0;
    if (n <= 0)
        return (ssize_t)pos;
    if ((why = argc_refusal(lim, authed, n)) != NULL)
        return fail(err, why);
    args_reserve(a, (size_t)n);
    for (size_t i = 0; i < (size_t)n; i++) {
        int64_t blen;

        if (pos >= len)
            return 0;
        if (in[pos] != '$') {
            snprintf(err, RESP_ERRMAX,
                     "ERR Protocol error: expected '$', got '%c'", in[pos]);
            return -1;
        }
        rc = header(in, len, pos, &blen, &pos);
        if (rc == 0)
            return 0;
        if (rc == -1)
            return fail(err, "too big bulk count string");
        if (rc == -2)
            return fail(err, "invalid bulk length");
        if ((why = bulk_refusal(lim, authed, blen)) != NULL)
            return fail(err, why);
        /* Refuse an oversized request on its headers, before buffering. */
        if (pos + (size_t)blen + 2 > lim->max_request)
            return fail(err, "too big request");
        if (len - pos < (size_t)blen + 2)
            return 0;
        if (in[pos + blen] != '\r' || in[pos + blen + 1] != '\n')
            return fail(err, "expected CRLF after bulk data");
        a->argv[i] = in + pos;
        a->argl[i] = (size_t)blen;
        pos += (size_t)blen + 2;
    }
    a->argc = (size_t)n;
    return (ssize_t)pos;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
           ch == '\v' || ch == '\f';
}

/* Split p[0, n) into a, resolving quotes into a->scratch.  The resolved
 * text is never longer than the line, so scratch is sized once and the
 * argument pointers into it stay valid.  Returns 0 or -1 with err set. */
static int split_inline(const char *p, size_t n,
                        const struct proto_limits *lim, int authed,
                        struct resp_args *a, char *err)
{
    size_t i = 0;
    const char *why;
    char *w;

    buf_clear(&a->scratch);
    buf_reserve(&a->scratch, n);
    w = a->scratch.p;
    a->argc = 0;
    for (;;) {
        int inq = 0, insq = 0, done = 0;
        char *start = w;

        while (i < n && is_blank(p[i]))
            i++;
        if (i == n)
            return 0;
        while (!done) {
            int end = i >= n;
            char ch = end ? 0 : p[i];

            if (inq) {
                if (ch == '\\' && i + 3 < n && p[i + 1] == 'x' &&
                    hex_digit(p[i + 2]) >= 0 && hex_digit(p[i + 3]) >= 0) {
                    *w++ = (char)(hex_digit(p[i + 2]) * 16 + hex_digit(p[i + 3]));
                    i += 3;
                } else if (ch == '\\' && i + 1 < n) {
                    char e = p[++i];
                    *w++ = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t'
                         : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
                } else if (ch == '"' && !end) {
                    if (i + 1 < n && !is_blank(p[i + 1]))
                        goto unbalanced;
                    done = 1;
                } else if (end) {
                    goto unbalanced;
                } else {
                    *w++ = ch;
                }
            } else if (insq) {
                if (ch == '\\' && i + 1 < n && p[i + 1] == '\'') {
                    i++;
                    *w++ = '\'';
                } else if (ch == '\'' && !end) {
                    if (i + 1 < n && !is_blank(p[i + 1]))
                        goto unbalanced;
                    done = 1;
                } else if (end) {
                    goto unbalanced;
                } else {
                    *w++ = ch;
                }
            } else if (end || ch == ' ' || ch == '\n' || ch == '\r' ||
                       ch == '\t') {
                done = 1;
            } else if (ch == '"') {
                inq = 1;
            } else if (ch == '\'') {
                insq = 1;
            } else {
                *w++ = ch;
            }
            if (!end)
                i++;
        }
        why = argc_refusal(lim, authed, (int64_t)a->argc + 1);
        if (!why)
            why = bulk_refusal(lim, authed, (int64_t)(w - start));
        if (why) {
            fail(err, why);
            return -1;
        }
        args_reserve(a, a->argc + 1);
        a->argv[a->argc] = start;
        a->argl[a->argc] = (size_t)(w - start);
        a->argc++;
    }
unbalanced:
    fail(err, "unbalanced quotes in request");
    return -1;
}

static ssize_t parse_inline(const char *in, size_t len,
                            const struct proto_limits *lim, int authed,
                            struct resp_args *a, char *err)
{
    size_t max = lim->max_request < RESP_INLINE_MAX ? lim->max_request
                                                    : RESP_INLINE_MAX;
    size_t look = len < max ? len : max;
    const char *nl = memchr(in, '\n', look);
    size_t n;

    if (!nl)
        return len >= max ? fail(err, "too big inline request") : 0;
    n = (size_t)(nl - in);
    if (n && in[n - 1] == '\r')
        n--;
    if (split_inline(in, n, lim, authed, a, err) != 0)
        return -1;
    return (ssize_t)(nl - in) + 1;
}

ssize_t resp_parse(const char *in, size_t len, const struct proto_limits *lim,
                   int authed, struct resp_args *a, char *err)
{
    a->argc = 0;
    if (len == 0)
        return 0;
    if (in[0] == '*')
        return parse_array(in, len, lim, authed, a, err);
    return parse_inline(in, len, lim, authed, a, err);
}
