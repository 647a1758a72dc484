/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_http.c - libFuzzer target: the HTTP front end's request parsing
 * (src/proto/http_counter.c through http_int.h): percent-decoding of a key's
 * path segment, the list query string, the Idempotency-Key header and the
 * JSON bodies of PUT, increment/decrement and expire (jansson underneath).
 *
 * Input: a mode byte, then four fields separated by NUL bytes: a path
 * segment, a query string, Idempotency-Key values (one header per line),
 * and the body (the rest, NULs included).  Mode bits 0-1: whose body it is
 * (0 and 3: PUT, 1: increment or decrement, 2: expire, each with the
 * members its route accepts); bit 2: the header name is spelled in lower
 * case.  Each parser gets a request of its
 * own, built with evhttp_request_new() as evhttp would hand it over; one
 * that refuses sends a problem, which without a connection frees the
 * request.  Properties, beyond "no crash, leak or undefined behaviour":
 *   - a decoded segment percent-encoded again decodes to itself, and is
 *     never longer than what it came from;
 *   - an accepted query's limit is 1..1000 (or the default);
 *   - an accepted Idempotency-Key id, quoted again as an sf-string, reads
 *     back as the same id;
 *   - an accepted body, written back as JSON from what was parsed (the
 *     number, ttl_ms or expires_at, ttl_if_new), parses the same.
 * Seeds: tests/fuzz/corpus/http/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "fuzz_env.h"
#include "http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next NUL-terminated field of data[*pos, size), or the rest. */
static char *field(const uint8_t *data, size_t size, size_t *pos, size_t *n,
                   int last)
{
    const uint8_t *p = data + *pos;
    const uint8_t *z = last ? NULL : memchr(p, 0, size - *pos);
    size_t len = z ? (size_t)(z - p) : size - *pos;
    char *s = xmalloc(len + 1);

    memcpy(s, p, len);
    s[len] = 0;
    *pos += len + (z != NULL);
    *n = len;
    return s;
}

static void check_unescape(const char *seg, size_t n)
{
    struct buf out = BUF_INIT, again = BUF_INIT, enc = BUF_INIT;

    if (http_unescape(seg, n, 0, &out) == 0) {
        FZ_CHECK(out.len <= n, "decoded %zu bytes into %zu", n, out.len);
        for (size_t i = 0; i < out.len; i++)
            buf_printf(&enc, "%%%02X", (unsigned char)out.p[i]);
        FZ_CHECK(http_unescape(enc.p, enc.len, 0, &again) == 0 &&
                     again.len == out.len &&
                     memcmp(again.p, out.p, out.len) == 0,
                 "a re-encoded segment decodes differently");
    }
    buf_clear(&out);
    http_unescape(seg, n, 1, &out); /* the query form */
    buf_free(&out);
    buf_free(&again);
    buf_free(&enc);
}

static void check_query(const char *q)
{
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    struct http_listq lq = {BUF_INIT, 100, 0};

    if (http_list_query(req, q, &lq) == 0) {
        FZ_CHECK(lq.limit >= 1 && lq.limit <= 1000, "limit %llu accepted",
                 (unsigned long long)lq.limit);
        evhttp_request_free(req);
    }
    buf_free(&lq.prefix);
}

/* An Idempotency-Key request with one header per line of vals. */
static struct evhttp_request *idem_request(const char *name, char *vals)
{
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    struct evkeyvalq *hd = evhttp_request_get_input_headers(req);

    for (char *line = vals, *nl; line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        evhttp_add_header(hd, name, line); /* evhttp refuses some values */
    }
    return req;
}

static void check_idem(const char *name, char *vals)
{
    struct evhttp_request *req = idem_request(name, vals);
    struct buf id = BUF_INIT, quoted = BUF_INIT, again = BUF_INIT;
    int has = 0;

    if (http_idem_key(req, &id, &has) != 0)
        goto out;
    evhttp_request_free(req);
    if (!has || id.len == 0 || memchr(id.p, 0, id.len))
        goto out;
    for (size_t i = 0; i < id.len; i++)
        if ((unsigned char)id.p[i] < 0x20 || (unsigned char)id.p[i] > 0x7e)
            goto out; /* only printable ids have a quoted form */
    buf_addc(&quoted, '"');
    for (size_t i = 0; i < id.len; i++) {
        if (id.p[i] == '"' || id.p[i] == '\\')
            buf_addc(&quoted, '\\');
        buf_addc(&quoted, id.p[i]);
    }
    buf_addc(&quoted, '"');
    buf_addc(&quoted, 0);
    req = idem_request(name, quoted.p);
    FZ_CHECK(http_idem_key(req, &again, &has) == 0 && has &&
                 again.len == id.len && memcmp(again.p, id.p, id.len) == 0,
             "the quoted form of an accepted id reads back differently");
    evhttp_request_free(req);
out:
    buf_free(&id);
    buf_free(&quoted);
    buf_free(&again);
}

static int parse_body(const char *name, int required, unsigned allow,
                      const void *p, size_t n, struct http_body *b)
{
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);

    evbuffer_add(evhttp_request_get_input_buffer(req), p, n);
    if (http_body_parse(req, name, required, allow, b) != 0)
        return -1;
    evhttp_request_free(req);
    return 0;
}

/* The body parsers' uses: PUT, increment and decrement, expire. */
static const struct {
    const char *name;
    int required;
    unsigned allow;
} routes[3] = {{"value", 1, HB_TTL},
               {"by", 0, HB_TTL | HB_IFNEW},
               {NULL, 1, HB_TTL | HB_CLEAR}};

/* Not a number a body gives: none was given. */
#define NO_NUM (INT64_MIN + 12345)

/* An accepted body, written back as JSON from what was parsed, parses the
 * same. */
static void check_body(unsigned route, const char *p, size_t n)
{
    const char *name = routes[route].name;
    int required = routes[route].required;
    unsigned allow = routes[route].allow;
    struct http_body b = {NO_NUM, 0, 0, 0, 0}, again = b;
    struct buf doc = BUF_INIT;

    if (parse_body(name, required, allow, p, n, &b) != 0)
        return;
    buf_addc(&doc, '{');
    if (b.num != NO_NUM)
        buf_printf(&doc, "\"%s\": %lld, ", name, (long long)b.num);
    if (b.clear)
        buf_adds(&doc, "\"ttl_ms\": null, ");
    else if (b.exp_flags)
        buf_printf(&doc, "\"%s\": %lld, ",
                   b.exp_flags == CMD_F_PX ? "ttl_ms" : "expires_at",
                   (long long)b.expire);
    if (b.if_new)
        buf_adds(&doc, "\"ttl_if_new\": true, ");
    if (doc.len > 1)
        doc.len -= 2; /* the last ", " */
    buf_addc(&doc, '}');
    FZ_CHECK(parse_body(name, required, allow, doc.p, doc.len, &again) == 0 &&
                 again.num == b.num && again.exp_flags == b.exp_flags &&
                 again.expire == b.expire && again.clear == b.clear &&
                 again.if_new == b.if_new,
             "%.*s does not read back as what it was written from",
             (int)doc.len, doc.p);
    buf_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 1, n;

    if (size == 0)
        return 0;
    unsigned mode = data[0];
    char *seg = field(data, size, &pos, &n, 0);
    check_unescape(seg, n);
    char *q = field(data, size, &pos, &n, 0);
    check_query(q);
    char *vals = field(data, size, &pos, &n, 0);
    check_idem(mode & 4 ? "idempotency-key" : "Idempotency-Key", vals);
    char *body = field(data, size, &pos, &n, 1);
    check_body((mode & 3) % 3, body, n);
    free(seg);
    free(q);
    free(vals);
    free(body);
    return 0;
}
