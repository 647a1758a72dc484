/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * out.c - how `tally` prints keys and counters, and reads keys back.
 *
 * Keys are arbitrary bytes, so neither output may pass them through blindly:
 * for people a key that is not plain printable ASCII is quoted and escaped
 * (so a key holding a newline or a terminal escape cannot fake a line or
 * repaint the screen); for programs a key goes into JSON as "key" when it is
 * valid UTF-8 (jansson escapes control characters) and as "key_b64", standard
 * base64, when it is not, so that `tally dump` and `tally restore` round-trip
 * every key exactly.  docs/cli.md describes both encodings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* True if the key can be shown without quotes: no byte a terminal would
 * interpret, no space (list output separates key and value by one), no quote
 * or backslash (they would make quoted and unquoted keys ambiguous). */
static int key_is_plain(const unsigned char *k, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] <= ' ' || k[i] >= 0x7f || k[i] == '"' || k[i] == '\\')
            return 0;
    return 1;
}

void out_key_human(struct buf *b, const void *key, size_t klen)
{
    const unsigned char *k = key;

    if (key_is_plain(k, klen)) {
        buf_add(b, k, klen);
        return;
    }
    buf_addc(b, '"');
    for (size_t i = 0; i < klen; i++) {
        unsigned char c = k[i];
        switch (c) {
        case '"': buf_adds(b, "\\\""); break;
        case '\\': buf_adds(b, "\\\\"); break;
        case '\n': buf_adds(b, "\\n"); break;
        case '\r': buf_adds(b, "\\r"); break;
        case '\t': buf_adds(b, "\\t"); break;
        default:
            if (c < ' ' || c >= 0x7f)
                buf_printf(b, "\\x%02x", c);
            else
                buf_addc(b, (char)c);
        }
    }
    buf_addc(b, '"');
}

/* Append the base64 encoding of src[0, n) to b. */
static void b64_encode(struct buf *b, const unsigned char *src, size_t n)
{
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        char q[4] = {b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                     b64_alphabet[(v >> 6) & 63], b64_alphabet[v & 63]};
        buf_add(b, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)src[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)src[i + 1] << 8;
        char q[4] = {b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                     i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=', '='};
        buf_add(b, q, 4);
    }
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Decode canonical base64 (padded, no whitespace, unused bits zero) from
 * s[0, n) onto b.  Returns 0, or -1 with b holding a partial result. */
static int b64_decode(struct buf *b, const char *s, size_t n)
{
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
        int v[4];
        if (pad && !last)
            return -1;
        for (int j = 0; j < 4 - pad; j++)
            if ((v[j] = b64_value(s[i + j])) < 0)
                return -1;
        for (int j = 4 - pad; j < 4; j++)
            v[j] = 0;
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char o[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                              (unsigned char)w};
        /* Nonzero leftover bits mean a second spelling of the same bytes;
         * refuse it so that every key has exactly one encoding. */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
            return -1;
        buf_add(b, o, (size_t)(3 - pad));
    }
    return 0;
}

void out_json_key(json_t *obj, const void *key, size_t klen)
{
    /* json_stringn refuses invalid UTF-8 (and accepts NUL bytes, which it
     * writes as \u0000), which is exactly the line between the encodings. */
    json_t *s = json_stringn(key, klen);

    if (s) {
        json_object_set_new(obj, "key", s);
        return;
    }
    struct buf b = BUF_INIT;
    b64_encode(&b, key, klen);
    json_object_set_new(obj, "key_b64", json_stringn(b.p ? b.p : "", b.len));
    buf_free(&b);
}

int out_json_key_parse(json_t *obj, struct buf *key, const char **why)
{
    json_t *k = json_object_get(obj, "key");
    json_t *k64 = json_object_get(obj, "key_b64");

    if (k && k64) {
        *why = "both \"key\" and \"key_b64\" are given";
        return -1;
    }
    if (!k && !k64) {
        *why = "neither \"key\" nor \"key_b64\" is given";
        return -1;
    }
    if (!json_is_string(k ? k : k64)) {
        *why = k ? "\"key\" is not a string" : "\"key_b64\" is not a string";
        return -1;
    }
    if (k) {
        buf_add(key, json_string_value(k), json_string_length(k));
        return 0;
    }
    if (b64_decode(key, json_string_value(k64), json_string_length(k64)) < 0) {
        *why = "\"key_b64\" is not canonical base64";
        return -1;
    }
    return 0;
}

int out_json(json_t *v)
{
    /* Flags 0: one line, with a space after ':' and ','; UTF-8 kept as it is
     * (JSON allows it) and control characters escaped. */
    int rc = json_dumpf(v, stdout, 0);
    json_decref(v);
    if (rc < 0 || putchar('\n') == EOF)
        return -1;
    return 0;
}

int out_counter(int json, const void *key, size_t klen, int64_t value,
                int64_t expire_ms)
{
    if (json) {
        json_t *o = json_object();
        out_json_key(o, key, klen);
        json_object_set_new(o, "value", json_integer(value));
        if (expire_ms)
            json_object_set_new(o, "expires_at", json_integer(expire_ms));
        return out_json(o);
    }
    struct buf b = BUF_INIT;
    out_key_human(&b, key, klen);
    buf_addc(&b, ' ');
    buf_addi64(&b, value);
    buf_addc(&b, '\n');
    int rc = fwrite(b.p, 1, b.len, stdout) == b.len ? 0 : -1;
    buf_free(&b);
    return rc;
}

void out_items_add(struct out_items *l, const void *key, size_t klen,
                   int64_t value, int64_t expire_ms)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    struct out_item *it = &l->v[l->n];
    it->key = xmalloc(klen);
    if (klen)
        memcpy(it->key, key, klen);
    it->klen = klen;
    it->value = value;
    it->expire_ms = expire_ms;
    it->seq = l->n++;
}

static int item_cmp(const void *a, const void *b)
{
    const struct out_item *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = n ? memcmp(x->key, y->key, n) : 0;

    if (c)
        return c;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t out_items_sort(struct out_items *l, struct buf *first_dup)
{
    size_t kept = 0;

    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, item_cmp);
    for (size_t i = 0; i < l->n; i++) {
        struct out_item *it = &l->v[i];
        /* Copies of a key sit side by side now, the newest last. */
        if (i + 1 < l->n && it->klen == it[1].klen &&
            memcmp(it->key, it[1].key, it->klen) == 0) {
            /* A printed key is never empty (the empty key is ""), so an
             * empty buffer means no duplicate was named yet. */
            if (first_dup && first_dup->len == 0)
                out_key_human(first_dup, it->key, it->klen);
            free(it->key);
            continue;
        }
        l->v[kept++] = *it;
    }
    size_t dropped = l->n - kept;
    l->n = kept;
    return dropped;
}

int out_items_print(struct out_items *l, int json)
{
    out_items_sort(l, NULL);
    for (size_t i = 0; i < l->n; i++)
        if (out_counter(json, l->v[i].key, l->v[i].klen, l->v[i].value,
                        l->v[i].expire_ms))
            return -1;
    return 0;
}

void out_items_free(struct out_items *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int out_finish(void)
{
    if (fflush(stdout) == EOF || ferror(stdout))
        return cli_error("cannot write the output: %m");
    return CLI_EXIT_OK;
}
