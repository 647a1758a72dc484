/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_json.c - the counter answer {"key":"k","value":10} written straight
 * into a buffer, without building a jansson tree: the one body nearly every
 * counter request answers with, and the costliest part of tally's own share
 * of an HTTP increment when it went through jansson (an object, two or three
 * members, a dump through a callback, five allocations and frees).
 *
 * The bytes are exactly those http_counter_json() dumped with JSON_COMPACT
 * (http_counter.c) followed by the newline http_json_body() adds:
 *
 *   {"key":"<key>","value":<v>}\n
 *   {"key":"<key>","value":<v>,"expires_at":"2026-12-01T12:00:00.000Z"}\n
 *
 * Only keys whose every byte is printable ASCII other than '"' and '\\' are
 * written here: jansson writes those as they are.  Any other key (one that
 * needs an escape, UTF-8, or "key_b64") is left to jansson, so the two can
 * never disagree on an escape; tests/unit/test_proto_http_json.c compares
 * the bytes with jansson's for every byte value and edge of the numbers.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

size_t http_rfc3339_text(int64_t ms, char out[HTTP_RFC3339_MAX])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return 0;
    int n = snprintf(out, HTTP_RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return n > 0 && n < HTTP_RFC3339_MAX ? (size_t)n : 0;
}

/* Append n bytes at *o, keeping within end; returns the new position, or
 * NULL once out of room. */
static char *put(char *o, const char *end, const void *p, size_t n)
{
    if (!o || (size_t)(end - o) < n)
        return NULL;
    memcpy(o, p, n);
    return o + n;
}

#define PUT_LIT(o, end, s) put(o, end, s, sizeof s - 1)

size_t http_json_counter(char *out, size_t cap, const char *key, size_t klen,
                         int64_t v, int64_t expire_at)
{
    const char *end = out + cap;
    char num[24];
    char when[HTTP_RFC3339_MAX];
    size_t wlen = 0;

    for (size_t i = 0; i < klen; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    if (expire_at && !(wlen = http_rfc3339_text(expire_at, when)))
        return 0;

    char *o = PUT_LIT(out, end, "{\"key\":\"");
    o = put(o, end, key, klen);
    o = PUT_LIT(o, end, "\",\"value\":");
    o = put(o, end, num, i64_to_dec(v, num));
    if (expire_at) {
        o = PUT_LIT(o, end, ",\"expires_at\":\"");
        o = put(o, end, when, wlen);
        o = PUT_LIT(o, end, "\"");
    }
    o = PUT_LIT(o, end, "}\n");
    return o ? (size_t)(o - out) : 0;
}
