/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_page.c - what the HTTP front end serves to look at rather than to
 * program against: the SVG badge of one counter and the dashboard's files.
 *
 * The badge (GET /v1/counters/{key}/badge.svg?label=&color=) is shields.io's
 * flat style: a grey label box and a coloured value box.  The label
 * defaults to the key; both texts are escaped for XML, and the colour is
 * one of a few names or 3 or 6 hex digits, so nothing a query carries can
 * end up as markup.  Its value waits until durable like any read.
 *
 * The dashboard (GET / and /ui/...) is plain HTML, CSS and JavaScript from
 * src/proto/dashboard/, embedded in the binary at build time (page_files.h);
 * it talks to the API like any other client and holds no data itself.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "page_files.h"
#include "util.h"

/* ---- Badge ------------------------------------------------------------ */

#define BADGE_TEXT_MAX 64 /* characters of a label or value shown */

static const struct {
    const char *name, *hex;
} badge_colors[] = {
    {"brightgreen", "4c1"}, {"green", "97ca00"}, {"yellowgreen", "a4a61d"},
    {"yellow", "dfb317"},   {"orange", "fe7d37"}, {"red", "e05d44"},
    {"blue", "007ec6"},     {"lightgrey", "9f9f9f"}, {"grey", "555"},
    {"gray", "555"},        {"informational", "007ec6"},
    {"success", "4c1"},     {"important", "fe7d37"}, {"critical", "e05d44"},
};

/* The colour as "#hex", from a name or 3/6 hex digits (with or without a
 * '#'); anything else is the default blue. */
static void badge_color(const char *q, char out[8])
{
    size_t n;

    snprintf(out, 8, "#007ec6");
    if (!q)
        return;
    for (size_t i = 0; i < sizeof badge_colors / sizeof badge_colors[0]; i++)
        if (strcmp(q, badge_colors[i].name) == 0) {
            snprintf(out, 8, "#%s", badge_colors[i].hex);
            return;
        }
    if (*q == '#')
        q++;
    n = strlen(q);
    if (n != 3 && n != 6)
        return;
    for (size_t i = 0; i < n; i++)
        if (hex_digit(q[i]) < 0)
            return;
    snprintf(out, 8, "#%s", q);
}

/* Append s[0, n) escaped for XML text and attributes, at most
 * BADGE_TEXT_MAX characters; returns how many characters were shown (for
 * the width).  Bytes that are not valid UTF-8, and control characters,
 * which XML 1.0 cannot carry, become '?'. */
static size_t badge_text(struct buf *b, const char *s, size_t n)
{
    size_t shown = 0;
    json_t *utf8 = json_stringn(s, n); /* NULL: not valid UTF-8 */

    for (size_t i = 0; i < n && shown < BADGE_TEXT_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 && utf8) {
            buf_addc(b, (char)c);
            if ((c & 0xc0) != 0x80)
                shown++;
            continue;
        }
        shown++;
        switch (c) {
        case '&': buf_adds(b, "&amp;"); break;
        case '<': buf_adds(b, "&lt;"); break;
        case '>': buf_adds(b, "&gt;"); break;
        case '"': buf_adds(b, "&quot;"); break;
        case '\'': buf_adds(b, "&apos;"); break;
        default: buf_addc(b, c < 0x20 || c >= 0x80 ? '?' : (char)c); break;
        }
    }
    json_decref(utf8);
    return shown;
}

/* The SVG for label and value (both raw). */
static void badge_svg(struct buf *out, const char *label, size_t llen,
                      const char *value, const char *color)
{
    struct buf l = BUF_INIT, v = BUF_INIT;
    /* Verdana 11px averages about 7px a character; 10px padding a side. */
    size_t lw = badge_text(&l, label, llen) * 7 + 10;
    size_t vw = badge_text(&v, value, strlen(value)) * 7 + 10;
    size_t w = lw + vw;

    buf_printf(out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%zu\" height=\"20\" "
        "role=\"img\" aria-label=\"%s: %s\"><title>%s: %s</title>"
        "<linearGradient id=\"s\" x2=\"0\" y2=\"100%%\"><stop offset=\"0\" "
        "stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" "
        "stop-opacity=\".1\"/></linearGradient>"
        "<clipPath id=\"r\"><rect width=\"%zu\" height=\"20\" rx=\"3\" "
        "fill=\"#fff\"/></clipPath><g clip-path=\"url(#r)\">"
        "<rect width=\"%zu\" height=\"20\" fill=\"#555\"/>"
        "<rect x=\"%zu\" width=\"%zu\" height=\"20\" fill=\"%s\"/>"
        "<rect width=\"%zu\" height=\"20\" fill=\"url(#s)\"/></g>"
        "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,"
        "DejaVu Sans,sans-serif\" font-size=\"11\">"
        "<text x=\"%zu\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
        "<text x=\"%zu\" y=\"14\">%s</text>"
        "<text x=\"%zu\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
        "<text x=\"%zu\" y=\"14\">%s</text></g></svg>\n",
        w, l.p, v.p, l.p, v.p, w, lw, lw, vw, color, w, lw / 2, l.p, lw / 2,
        l.p, lw + vw / 2, v.p, lw + vw / 2, v.p);
    buf_free(&l);
    buf_free(&v);
}

void http_badge(struct http_front *h, struct evhttp_request *req,
                struct cmd_session *s, const char *seg, size_t seglen)
{
    struct buf key = BUF_INIT, svg = BUF_INIT;
    struct evkeyvalq q;
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct cmd_req c = {.op = CMD_GET};
    struct cmd_res res = {0};
    char color[8], value[24];

    TAILQ_INIT(&q);
    if (http_unescape(seg, seglen, 0, &key) != 0 ||
        evhttp_parse_query_str(qs ? qs : "", &q) != 0) {
        http_bad(req, "bad percent-encoding in the key or the query");
        goto done;
    }
    c.key = key.p ? key.p : "";
    c.klen = key.len;
    cmd_exec(h->ctx, s, &c, &res);
    if (res.status == CMD_NOTFOUND)
        res.status = CMD_OK; /* a counter nobody counted yet shows 0 */
    if (res.status == CMD_OK) {
        const char *label = evhttp_find_header(&q, "label");
        badge_color(evhttp_find_header(&q, "color"), color);
        value[i64_to_dec(res.value, value)] = 0;
        badge_svg(&svg, label ? label : c.key, label ? strlen(label) : c.klen,
                  value, color);
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        evbuffer_add(evhttp_request_get_output_buffer(req), svg.p, svg.len);
        http_ctype(req, "image/svg+xml; charset=utf-8");
        /* Short-lived: embedded in pages and READMEs (and behind image
         * proxies such as GitHub's), yet a count should look current. */
        evhttp_add_header(out, "Cache-Control", "public, max-age=10");
        /* Opened on its own, the SVG must not run anything. */
        evhttp_add_header(out, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'");
        evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    }
    http_finish(h, req, &res, 200);
done:
    evhttp_clear_headers(&q);
    buf_free(&key);
    buf_free(&svg);
}

/* ---- Dashboard -------------------------------------------------------- */

static const struct page_file *page_find(const char *path)
{
    for (size_t i = 0; i < page_nfiles; i++)
        if (strcmp(page_files[i].path, path) == 0)
            return &page_files[i];
    return NULL;
}

int http_page_exists(const char *path)
{
    return page_find(path) != NULL;
}

void http_page(struct evhttp_request *req, const char *path)
{
    const struct page_file *f = page_find(path);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    evbuffer_add(evhttp_request_get_output_buffer(req), f->data, f->len);
    http_ctype(req, f->type);
    /* The page loads nothing from anywhere else and may not be framed. */
    evhttp_add_header(out, "Content-Security-Policy",
                      "default-src 'self'; img-src 'self' data:; "
                      "frame-ancestors 'none'; base-uri 'none'; "
                      "form-action 'none'");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    evhttp_add_header(out, "Cache-Control", "no-cache");
    http_send(req, 200);
}
