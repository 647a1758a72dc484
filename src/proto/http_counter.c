/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_counter.c - the counter endpoints of the HTTP front end:
 * GET/HEAD/PUT/DELETE /v1/counters/{key}, POST .../increment,
 * .../decrement and .../expire, and the listing GET /v1/counters.  It turns the key, the
 * JSON body, the Idempotency-Key header and the list query into a struct
 * cmd_req, runs it with cmd_exec() and builds the JSON answer, which
 * http_finish() (http_reply.c) holds until it is durable.
 *
 * Keys are one path segment, percent-decoded, so any byte (a '/' as %2F)
 * can be addressed.  A key that is not valid UTF-8 is shown as "key_b64"
 * (standard base64) instead of "key".
 *
 * Exactly once: an Idempotency-Key header on POST, PUT or DELETE (the IETF
 * httpapi draft "The Idempotency-Key HTTP Header Field") becomes the
 * command's idempotency id (req.once), the same id space as RESP's .ONCE
 * commands.  The engine records the first outcome; a replay is encoded
 * exactly like the first answer, marked "Idempotent-Replayed: true", and
 * waits for the first request's ticket like any answer.  Outcomes are
 * counted in struct metrics_idem for /metrics.
 *
 * Expiry: PUT, increment and decrement take "ttl_ms" or "expires_at" (RFC
 * 3339 or Unix ms) and pass it on as the client wrote it (CMD_F_PX or
 * CMD_F_PXAT); increment and decrement also take "ttl_if_new"
 * (CMD_F_TTL_IFNEW, the fixed window in one change); POST .../expire sets
 * or (null) removes one.  Answers show "expires_at" in RFC 3339.  Routing
 * is in http.c; docs/http.md describes the API.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "util.h"

/* Bodies up to this size are parsed; larger ones get a problem+json 413.
 * Ours are a few bytes ({"by": 5}); evhttp refuses bodies over its own hard
 * limit (http.c) before we see them. */
#define HTTP_MAX_BODY (64 * 1024)

#define HTTP_LIST_DEFAULT 100
#define HTTP_LIST_MAX 1000
/* SCAN calls one list request may make: each visits a bounded slice of the
 * table, so this bounds the work (and loop stall) one request causes. */
#define HTTP_LIST_CALLS 16

#define HTTP_IDEM_KEY "Idempotency-Key" /* request header */

/* ---- Encoding --------------------------------------------------------- */

/* Standard base64 with padding (RFC 4648 section 4). */
static void http_base64(const unsigned char *p, size_t n, struct buf *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        buf_addc(out, tab[v >> 18 & 63]);
        buf_addc(out, tab[v >> 12 & 63]);
        buf_addc(out, i + 1 < n ? tab[v >> 6 & 63] : '=');
        buf_addc(out, i + 2 < n ? tab[v & 63] : '=');
    }
}

/* {"key": ..., "value": v}, or {"key_b64": ...} when the key is not valid
 * UTF-8 (JSON strings cannot carry arbitrary bytes), with "expires_at" (RFC
 * 3339, UTC, ms) when expire_at (Unix ms) is not 0. */
json_t *http_counter_json(const char *key, size_t klen, int64_t v,
                          int64_t expire_at)
{
    json_t *o = json_object();
    json_t *s = json_stringn(key, klen); /* NULL: not valid UTF-8 */
    if (s) {
        json_object_set_new(o, "key", s);
    } else {
        struct buf b = BUF_INIT;
        http_base64((const unsigned char *)key, klen, &b);
        json_object_set_new(o, "key_b64", json_stringn(b.p ? b.p : "", b.len));
        buf_free(&b);
    }
    json_object_set_new(o, "value", json_integer(v));
    if (expire_at)
        json_object_set_new(o, "expires_at", http_rfc3339(expire_at));
    return o;
}

void http_counter_body(struct evhttp_request *req, const char *key,
                       size_t klen, int64_t v, int64_t expire_at)
{
    char text[TALLY_KEY_MAX + 128];
    size_t n = http_json_counter(text, sizeof text, key, klen, v, expire_at);
    if (!n) {
        http_json_body(req, http_counter_json(key, klen, v, expire_at),
                       HTTP_JSON);
        return;
    }
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_add(out, text, n);
    http_ctype(req, HTTP_JSON);
}

/* ---- Parsing ---------------------------------------------------------- */

/* Percent-decode s[0, n) onto out; with plus, '+' means a space (query
 * strings).  Returns 0, or -1 at a '%' not followed by two hex digits (out
 * then holds a prefix of the result). */
int http_unescape(const char *s, size_t n, int plus, struct buf *out)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            buf_addc(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            buf_addc(out, plus && s[i] == '+' ? ' ' : s[i]);
        }
    }
    return 0;
}

/* ---- Times ------------------------------------------------------------ */

/* The latest expires_at accepted: 9999-12-31T23:59:59.999Z, the last
 * instant RFC 3339's four-digit year can write. */
#define HTTP_EXPIRE_AT_MAX INT64_C(253402300799999)

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t http_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n decimal digits at s as a number, or -1 if one is not a digit. */
static int http_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* An RFC 3339 date-time ("2026-12-01T12:00:00Z", "...T12:00:00.250+01:00";
 * 't' and 'z' may be lower case) as Unix ms.  Digits of a fraction beyond
 * the millisecond are dropped.  Returns 0, or -1 if s[0, n) is not one. */
static int http_parse_rfc3339(const char *s, size_t n, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
        return -1;
    int y = http_digits(s, 4), mo = http_digits(s + 5, 2);
    int d = http_digits(s + 8, 2), h = http_digits(s + 11, 2);
    int mi = http_digits(s + 14, 2), sec = http_digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 ||
        h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return -1;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -1;
    size_t i = 19;
    int frac = 0;
    if (i < n && s[i] == '.') {
        int digits = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 3)
                frac = frac * 10 + (s[i] - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    int64_t off = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = http_digits(s + i + 1, 2), om = http_digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (s[i] == '-' ? -1 : 1) * (oh * 60 + om) * 60;
    } else {
        return -1;
    }
    int64_t secs = http_days_from_civil(y, mo, d) * 86400 + h * 3600 +
                   mi * 60 + sec - off;
    *ms = secs * 1000 + frac;
    return 0;
}

json_t *http_rfc3339(int64_t ms)
{
    char out[HTTP_RFC3339_MAX];
    if (!http_rfc3339_text(ms, out))
        return json_integer(ms); /* cannot happen for a valid expiry */
    return json_string(out);
}

/* The member "ttl_ms" or "expires_at" (v) into b.  Returns 0, or -1 after
 * sending a 400. */
static int http_body_ttl(struct evhttp_request *req, const char *mname,
                         json_t *v, unsigned allow, struct http_body *b)
{
    int ttl = mname[0] == 't';
    if (json_is_null(v) && (allow & HB_CLEAR)) {
        b->clear = 1;
        return 0;
    }
    if (ttl) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            http_bad(req, "\"ttl_ms\" must be a positive integer: the "
                     "milliseconds until the counter expires%s",
                     allow & HB_CLEAR ? ", or null for none" : "");
            return -1;
        }
        b->exp_flags = CMD_F_PX;
        b->expire = json_integer_value(v);
        return 0;
    }
    int64_t at = 0;
    if (json_is_integer(v)) {
        at = json_integer_value(v);
    } else if (!json_is_string(v) ||
               http_parse_rfc3339(json_string_value(v), json_string_length(v),
                                  &at) != 0) {
        http_bad(req, "\"expires_at\" must be an RFC 3339 date-time "
                 "(\"2026-12-01T12:00:00Z\") or Unix milliseconds%s",
                 allow & HB_CLEAR ? ", or null for none" : "");
        return -1;
    }
    if (at < 1 || at > HTTP_EXPIRE_AT_MAX) {
        http_bad(req, "\"expires_at\" must lie between 1970-01-01T00:00:00."
                 "001Z and 9999-12-31T23:59:59.999Z");
        return -1;
    }
    b->exp_flags = CMD_F_PXAT;
    b->expire = at;
    return 0;
}

/* Parse the body as a JSON object whose members may be `name` (an integer;
 * NULL: none), the expiry members `allow` names, and nothing else.  An
 * empty body is {}.  `name` is required if `required`; with HB_CLEAR a TTL
 * member is.  Returns 0, or -1 after sending a 400 or 413 problem (*b then
 * holds what was parsed so far). */
int http_body_parse(struct evhttp_request *req, const char *name,
                    int required, unsigned allow, struct http_body *b)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *example = name ? name : "ttl_ms";
    if (len > HTTP_MAX_BODY) {
        http_problem(req, 413, "too-large", "Content too large",
                     "the body has %zu bytes; at most %d are accepted", len,
                     HTTP_MAX_BODY);
        return -1;
    }
    if (len == 0) {
        if (!required)
            return 0;
        http_bad(req, "the body must be a JSON object like {\"%s\": 10}",
                 example);
        return -1;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            http_bad(req, "\"%s\" must be between -9223372036854775808 and "
                     "9223372036854775807", example);
        else
            http_bad(req, "the body is not valid JSON: %s (line %d, column "
                     "%d)", jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = -1, has_num = 0, has_ttl = 0, has_at = 0;
    const char *mname;
    json_t *v;
    if (!json_is_object(doc)) {
        http_bad(req, "the body must be a JSON object like {\"%s\": 10}",
                 example);
        goto done;
    }
    json_object_foreach(doc, mname, v) {
        if (name && strcmp(mname, name) == 0) {
            if (json_is_integer(v)) {
                b->num = json_integer_value(v);
                has_num = 1;
                continue;
            }
            if (json_is_real(v))
                http_bad(req, "\"%s\" must be an integer (no fraction, no "
                         "exponent)", name);
            else
                http_bad(req, "\"%s\" must be a JSON integer", name);
            goto done;
        }
        if ((allow & HB_TTL) && (strcmp(mname, "ttl_ms") == 0 ||
                                 strcmp(mname, "expires_at") == 0)) {
            if (http_body_ttl(req, mname, v, allow, b) != 0)
                goto done;
            *(mname[0] == 't' ? &has_ttl : &has_at) = 1;
            continue;
        }
        if ((allow & HB_IFNEW) && strcmp(mname, "ttl_if_new") == 0) {
            if (!json_is_boolean(v)) {
                http_bad(req, "\"ttl_if_new\" must be true or false");
                goto done;
            }
            b->if_new = json_is_true(v);
            continue;
        }
        http_bad(req, "unknown member in the body; only %s%s%s%s are "
                 "accepted", name ? "\"" : "", name ? name : "",
                 name ? "\"" : "",
                 !(allow & HB_TTL) ? "" : (allow & HB_IFNEW)
                     ? ", \"ttl_ms\", \"expires_at\", \"ttl_if_new\""
                     : name ? ", \"ttl_ms\", \"expires_at\""
                            : "\"ttl_ms\", \"expires_at\"");
        goto done;
    }
    if (has_ttl && has_at) {
        http_bad(req, "give \"ttl_ms\" or \"expires_at\", not both");
    } else if (required && name && !has_num) {
        http_bad(req, "the body must hold \"%s\", an integer", name);
    } else if ((allow & HB_CLEAR) && !has_ttl && !has_at) {
        http_bad(req, "the body must hold \"ttl_ms\" or \"expires_at\" "
                 "(null for no expiry)");
    } else if (b->if_new && !b->exp_flags) {
        http_bad(req, "\"ttl_if_new\" needs \"ttl_ms\" or \"expires_at\"");
    } else {
        rc = 0;
    }
done:
    json_decref(doc);
    return rc;
}

/* ---- The Idempotency-Key header --------------------------------------- */

/* A 400 for a malformed Idempotency-Key header. */
static void http_idem_bad(struct evhttp_request *req, const char *why)
{
    http_problem(req, 400, "bad-idempotency-key", "Bad idempotency key",
                 "%s", why);
}

/* Read the request's Idempotency-Key into id.  The draft defines the field
 * as an RFC 8941 sf-string ("abc", quotes included): a value that opens
 * with '"' is parsed as one and the id is what the quotes hold, with \" and
 * \\ unescaped.  Any other value is the id as it stands, since most
 * clients send the bare form (Stripe's convention), so `abc` and `"abc"`
 * name the same id.  Returns 0 with *has = 0 (no header; id untouched) or
 * *has = 1 (id holds the bytes), or -1 after sending a 400 problem (two such
 * headers, a malformed quoted string; id then holds a prefix).  An empty or
 * too long id is left to the command layer (CMD_ERR_IDLEN). */
int http_idem_key(struct evhttp_request *req, struct buf *id, int *has)
{
    const struct evkeyvalq *hd = evhttp_request_get_input_headers(req);
    const char *v = NULL;

    *has = 0;
    for (const struct evkeyval *kv = hd->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, HTTP_IDEM_KEY) != 0)
            continue;
        if (v) {
            /* Two keys name no single request; guessing could apply it
             * under a key the client will not retry with. */
            http_idem_bad(req, "the Idempotency-Key header is given more "
                          "than once; send exactly one");
            return -1;
        }
        v = kv->value;
    }
    if (!v)
        return 0;
    *has = 1;
    if (*v != '"') {
        buf_adds(id, v);
        return 0;
    }
    for (const char *p = v + 1;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\0') {
            http_idem_bad(req, "the quoted Idempotency-Key has no closing "
                          "quote");
            return -1;
        }
        if (ch == '"') {
            if (p[1] == '\0')
                return 0;
            http_idem_bad(req, "nothing may follow the closing quote of the "
                          "Idempotency-Key (parameters are not accepted)");
            return -1;
        }
        if (ch == '\\') {
            ch = (unsigned char)*++p;
            if (ch != '"' && ch != '\\') {
                http_idem_bad(req, "in a quoted Idempotency-Key a backslash "
                              "may only escape '\"' or '\\'");
                return -1;
            }
        } else if (ch < 0x20 || ch > 0x7e) {
            http_idem_bad(req, "a quoted Idempotency-Key holds printable "
                          "ASCII only; send other bytes unquoted");
            return -1;
        }
        buf_addc(id, (char)ch);
    }
}

void http_idem_count(struct http_front *h, const struct cmd_res *res)
{
    enum metrics_idem_outcome o;
    switch (res->status) {
    case CMD_OK:
    case CMD_NOTFOUND:
        o = res->replayed ? METRICS_IDEM_REPLAYED : METRICS_IDEM_APPLIED;
        break;
    case CMD_ERR_IDREUSED: o = METRICS_IDEM_REUSED; break;
    case CMD_ERR_INFLIGHT: o = METRICS_IDEM_INFLIGHT; break;
    case CMD_ERR_IDLEN: o = METRICS_IDEM_INVALID; break;
    default: o = METRICS_IDEM_FAILED; break;
    }
    h->idem.n[o]++;
}

/* ---- The list query --------------------------------------------------- */

/* A decimal in [0, max], digits only.  Returns 0, or -1. */
static int http_parse_u64(const char *s, size_t n, uint64_t max,
                          uint64_t *out)
{
    uint64_t v;
    if (cmd_parse_u64(s, n, &v) < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parse "prefix=..&limit=..&cursor=.." (any order, each at most once, no
 * other names).  Returns 0, or -1 after sending a 400 problem. */
int http_list_query(struct evhttp_request *req, const char *q,
                    struct http_listq *lq)
{
    struct buf name = BUF_INIT, val = BUF_INIT;
    unsigned seen = 0;
    int rc = -1;
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t nl = eq ? (size_t)(eq - q) : n;
        buf_clear(&name);
        buf_clear(&val);
        if (n == 0)
            goto next; /* "a=1&&b=2" */
        if (http_unescape(q, nl, 1, &name) != 0 ||
            (eq && http_unescape(eq + 1, n - nl - 1, 1, &val) != 0)) {
            http_bad(req, "bad percent-encoding in the query string");
            goto done;
        }
        unsigned bit;
        if (name.len == 6 && memcmp(name.p, "prefix", 6) == 0) {
            bit = 1;
            buf_add(&lq->prefix, val.p, val.len);
        } else if (name.len == 5 && memcmp(name.p, "limit", 5) == 0) {
            bit = 2;
            if (http_parse_u64(val.p, val.len, HTTP_LIST_MAX, &lq->limit) ||
                lq->limit == 0) {
                http_bad(req, "limit must be an integer from 1 to %d",
                         HTTP_LIST_MAX);
                goto done;
            }
        } else if (name.len == 6 && memcmp(name.p, "cursor", 6) == 0) {
            bit = 4;
            if (http_parse_u64(val.p, val.len, UINT64_MAX, &lq->cursor)) {
                http_bad(req, "cursor must be a value returned by an "
                         "earlier page");
                goto done;
            }
        } else {
            http_bad(req, "unknown query parameter; accepted: prefix, "
                     "limit, cursor");
            goto done;
        }
        if (seen & bit) {
            http_bad(req, "a query parameter is given twice");
            goto done;
        }
        seen |= bit;
    next:
        q += n + (q[n] == '&');
    }
    rc = 0;
done:
    buf_free(&name);
    buf_free(&val);
    return rc;
}

/* ---- Endpoints -------------------------------------------------------- */

/* One counter route: GET, PUT, DELETE on the key, POST increment or
 * decrement, or POST expire.  PUT, increment and decrement take an
 * expiry (ttl_ms or expires_at; increment and decrement also ttl_if_new),
 * expire sets or (null) removes one.  The changes but expire take an
 * Idempotency-Key; GET and HEAD are safe anyway and ignore one, and so does
 * expire, whose cmd_op takes none (an expires_at makes it idempotent by
 * itself). */
void http_counter(struct http_front *h, struct evhttp_request *req,
                  struct cmd_session *s, enum http_route r, const char *seg,
                  size_t seglen)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct buf key = BUF_INIT, id = BUF_INIT;
    struct cmd_req c = {0};
    struct cmd_res res = {0};
    struct http_body b = {0};
    int ok_code = 200;

    if (http_unescape(seg, seglen, 0, &key) != 0) {
        http_bad(req, "bad percent-encoding in the key: '%%' must be "
                 "followed by two hex digits");
        goto done;
    }
    c.key = key.p;
    c.klen = key.len;
    if (r == HTTP_R_INCR || r == HTTP_R_DECR) {
        b.num = 1;
        if (http_body_parse(req, "by", 0, HB_TTL | HB_IFNEW, &b) != 0)
            goto done;
        int64_t by = b.num;
        if (r == HTTP_R_DECR && by == INT64_MIN) {
            http_bad(req, "\"by\" must be above -9223372036854775808 for a "
                     "decrement");
            goto done;
        }
        /* decrement by n is increment by -n, fingerprint included, as
         * DECRBY.ONCE k n is INCRBY.ONCE k -n over RESP. */
        c.op = CMD_INCRBY;
        c.num = r == HTTP_R_DECR ? -by : by;
        c.flags = b.exp_flags | (b.if_new ? CMD_F_TTL_IFNEW : 0);
        c.expire = b.expire;
    } else if (r == HTTP_R_EXPIRE) {
        if (http_body_parse(req, NULL, 1, HB_TTL | HB_CLEAR, &b) != 0)
            goto done;
        c.op = CMD_GETEX;
        c.flags = b.clear ? CMD_F_PERSIST : b.exp_flags;
        c.expire = b.expire;
    } else if (m == EVHTTP_REQ_PUT) {
        /* No expiry in the body leaves none (Redis's SET). */
        if (http_body_parse(req, "value", 1, HB_TTL, &b) != 0)
            goto done;
        c.op = CMD_SET;
        c.num = b.num;
        c.flags = b.exp_flags;
        c.expire = b.expire;
    } else if (m == EVHTTP_REQ_DELETE) {
        c.op = CMD_DEL;
        c.nkeys = 1;
        c.keys = &c.key;
        c.klens = &c.klen;
        ok_code = 204;
    } else {
        c.op = CMD_GET;
    }

    if (c.op != CMD_GET && c.op != CMD_GETEX) {
        int has;
        if (http_idem_key(req, &id, &has) != 0) {
            h->idem.n[METRICS_IDEM_INVALID]++;
            goto done;
        }
        if (has) {
            c.once = id.p ? id.p : ""; /* an empty key is still a key */
            c.oncelen = id.len;
        }
    }

    cmd_exec(h->ctx, s, &c, &res);
    if (c.once)
        http_idem_count(h, &res);
    if (res.status == CMD_OK && c.op == CMD_DEL && res.n == 0)
        res.status = CMD_NOTFOUND; /* the absence is a result: it waits */
    if (res.status == CMD_OK && c.op != CMD_DEL) {
        /* A replay's value is the first request's (the engine's record),
         * so its body is the first answer's byte for byte. */
        int64_t v = c.op == CMD_SET ? c.num : res.value;
        /* The engine records only the value with an idempotency id, so a
         * replay could not show the first answer's expiry: a change sent
         * with an Idempotency-Key shows none, first time or replay (GET
         * shows it). */
        int64_t x = c.once ? 0 : res.expire_at;
        http_counter_body(req, c.key, c.klen, v, x);
    }
    if (res.replayed)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          HTTP_IDEM_REPLAYED, "true");
    http_finish(h, req, &res, ok_code);
done:
    buf_free(&key);
    buf_free(&id);
}

struct http_items {
    json_t *arr;
    size_t n;
};

static int http_list_item(void *arg, const char *key, size_t klen,
                          int64_t value, int64_t expire_at)
{
    struct http_items *it = arg;
    json_array_append_new(it->arr,
                          http_counter_json(key, klen, value, expire_at));
    it->n++;
    return 0;
}

/* GET /v1/counters: SCAN with the prefix as a glob-escaped MATCH, calling
 * again until about `limit` items are found, the scan ends, or
 * HTTP_LIST_CALLS calls were made (a page may then be short, even empty, with
 * a cursor to go on from).  A call may return a few more than asked for (the
 * engine never splits a hash chain), so a page may hold a few more than
 * limit rather than drop items the cursor has passed. */
void http_list(struct http_front *h, struct evhttp_request *req,
               struct cmd_session *s)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct http_listq lq = {BUF_INIT, HTTP_LIST_DEFAULT, 0};
    struct buf glob = BUF_INIT;
    struct http_items it = {json_array(), 0};
    struct cmd_res res = {0};
    tally_ticket ticket = 0;

    if (http_list_query(req, q, &lq) != 0)
        goto done;
    if (lq.prefix.len > TALLY_KEY_MAX) {
        res.status = CMD_ERR_KEYLEN;
        http_finish(h, req, &res, 200);
        goto done;
    }
    for (size_t i = 0; i < lq.prefix.len; i++) {
        if (strchr("*?[]\\", lq.prefix.p[i]) && lq.prefix.p[i] != '\0')
            buf_addc(&glob, '\\');
        buf_addc(&glob, lq.prefix.p[i]);
    }
    buf_addc(&glob, '*');

    uint64_t cursor = lq.cursor;
    for (int calls = 0; calls < HTTP_LIST_CALLS; calls++) {
        struct cmd_req c = {.op = CMD_SCAN, .cursor = cursor,
                            .match = glob.p, .matchlen = glob.len,
                            .flags = CMD_F_ITEMX,
                            .count = (size_t)lq.limit - it.n};
        memset(&res, 0, sizeof res);
        res.itemx = http_list_item;
        res.item_ctx = &it;
        if (cmd_exec(h->ctx, s, &c, &res) != CMD_OK) {
            http_finish(h, req, &res, 200);
            goto done;
        }
        if (res.ticket > ticket)
            ticket = res.ticket;
        cursor = res.n;
        if (cursor == 0 || it.n >= lq.limit)
            break;
    }

    json_t *o = json_object();
    json_object_set(o, "items", it.arr);
    if (cursor) {
        char dec[24];
        dec[u64_to_dec(cursor, dec)] = '\0';
        json_object_set_new(o, "cursor", json_string(dec));
    } else {
        json_object_set_new(o, "cursor", json_null());
    }
    http_json_body(req, o, HTTP_JSON);
    res.ticket = ticket;
    http_finish(h, req, &res, 200);
done:
    json_decref(it.arr);
    buf_free(&glob);
    buf_free(&lq.prefix);
}
