/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp_reply.c - RESP reply encoding.  Each function appends one reply (or
 * the header of an aggregate) to o->b; the RESP2/RESP3 difference is kept
 * here so the commands never spell wire bytes:
 *
 *   simple  +text\r\n           error  -text\r\n      integer  :n\r\n
 *   bulk    $len\r\n<bytes>\r\n  array  *n\r\n        null     $-1 | _
 *   map     %n\r\n (RESP3) or *2n\r\n (RESP2)        set ~n | *n
 *   verbatim  =len\r\ntxt:<text>\r\n (RESP3) or a bulk (RESP2)
 */
#include <stdarg.h>
#include <string.h>

#include "resp_int.h"

static void add_line(struct resp_out *o, char type, const char *s, size_t n)
{
    buf_reserve(o->b, n + 3);
    buf_addc(o->b, type);
    buf_add(o->b, s, n);
    buf_add(o->b, "\r\n", 2);
}

static void add_len(struct resp_out *o, char type, uint64_t n)
{
    char tmp[24];
    add_line(o, type, tmp, u64_to_dec(n, tmp));
}

void resp_simple(struct resp_out *o, const char *s)
{
    add_line(o, '+', s, strlen(s));
}

void resp_error(struct resp_out *o, const char *fmt, ...)
{
    va_list ap;
    size_t start = o->b->len;

    buf_addc(o->b, '-');
    va_start(ap, fmt);
    buf_vprintf(o->b, fmt, ap);
    va_end(ap);
    /* An error is one line; a client's bytes quoted in it (an unknown
     * command's name, say) must not end it early.  Redis does the same. */
    for (size_t i = start; i < o->b->len; i++)
        if (o->b->p[i] == '\r' || o->b->p[i] == '\n')
            o->b->p[i] = ' ';
    buf_add(o->b, "\r\n", 2);
}

void resp_int(struct resp_out *o, int64_t v)
{
    char tmp[24];
    add_line(o, ':', tmp, i64_to_dec(v, tmp));
}

void resp_bulk(struct resp_out *o, const void *p, size_t n)
{
    add_len(o, '$', n);
    buf_add(o->b, p, n);
    buf_add(o->b, "\r\n", 2);
}

void resp_bulks(struct resp_out *o, const char *s)
{
    resp_bulk(o, s, strlen(s));
}

void resp_bulk_i64(struct resp_out *o, int64_t v)
{
    char tmp[24];
    resp_bulk(o, tmp, i64_to_dec(v, tmp));
}

void resp_null(struct resp_out *o)
{
    buf_add(o->b, o->resp3 ? "_\r\n" : "$-1\r\n", o->resp3 ? 3 : 5);
}

void resp_array(struct resp_out *o, size_t n) { add_len(o, '*', n); }

void resp_map(struct resp_out *o, size_t n)
{
    if (o->resp3)
        add_len(o, '%', n);
    else
        add_len(o, '*', 2 * (uint64_t)n);
}

void resp_set(struct resp_out *o, size_t n)
{
    add_len(o, o->resp3 ? '~' : '*', n);
}

void resp_verbatim(struct resp_out *o, const char *txt, size_t n)
{
    if (!o->resp3) {
        resp_bulk(o, txt, n);
        return;
    }
    add_len(o, '=', n + 4);
    buf_add(o->b, "txt:", 4);
    buf_add(o->b, txt, n);
    buf_add(o->b, "\r\n", 2);
}
