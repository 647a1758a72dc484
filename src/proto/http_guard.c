/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_guard.c - what the HTTP front end lets a web browser do: the Host
 * check against DNS rebinding, Origin checks on changes, CORS (preflights
 * and response headers) for the origins the operator lists, and the rule
 * that a change must be sent as application/json.
 *
 * The threat is a page in the user's browser on another origin.  It can
 * send "simple" requests (a form post, a fetch with text/plain) without
 * asking, and through a name that it rebinds to 127.0.0.1 it can even read
 * the answers.  So: a Host that is not one of the server's own names is a
 * 421; a change that carries a foreign Origin (or Sec-Fetch-Site:
 * cross-site) is a 403; a change must say Content-Type: application/json,
 * which no simple request can, so a cross-origin page must pass a CORS
 * preflight first, and only --http-cors-origin origins do.  Requests with no
 * Origin (curl, servers) are not a browser's and pass.  http.c calls these
 * checks in order (http_int.h); docs/http.md, "Browsers", is the contract.
 */
#include "http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* What a preflight allows a page to send, and how long it may cache that. */
#define HTTP_CORS_HEADERS "Authorization, Content-Type, Idempotency-Key"
#define HTTP_CORS_MAX_AGE "600"
/* Response headers a page on an allowed origin may read besides the
 * CORS-safelisted ones. */
#define HTTP_CORS_EXPOSE HTTP_IDEM_REPLAYED ", Retry-After"

/* Host names a loopback listener always answers to. */
static const char *const http_loopback_names[] = {"localhost", "127.0.0.1",
                                                  "[::1]"};

/* Where a request says it comes from. */
enum http_origin {
    HTTP_O_NONE,   /* no Origin header: not a browser's cross-origin call */
    HTTP_O_OWN,    /* tally's own origin: http:// or https:// and its Host */
    HTTP_O_LISTED, /* in --http-cors-origin, or any with "*" */
    HTTP_O_OTHER   /* any other origin, "null" included */
};

static const char *http_header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static void http_out(struct evhttp_request *req, const char *name,
                     const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

/* True if list[n] holds a "*" entry: the check it configures is off. */
static int http_has_star(const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0)
            return 1;
    return 0;
}

void http_guard_init(struct http_guard *g, const struct http_options *opt,
                     const char *bind)
{
    memset(g, 0, sizeof *g);
    g->loopback = http_bind_is_loopback(bind);
    if (!opt)
        return;
    g->origins = opt->cors_origins;
    g->norigins = opt->ncors;
    g->any_origin = http_has_star(opt->cors_origins, opt->ncors);
    g->hosts = opt->allowed_hosts;
    g->nhosts = opt->nhosts;
    g->any_host = http_has_star(opt->allowed_hosts, opt->nhosts);
}

int http_bind_is_loopback(const char *bind)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!bind)
        return 0;
    if (strcasecmp(bind, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, bind, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, bind, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

/* ---- Host ------------------------------------------------------------- */

/* The name in a Host value ("name", "name:port", "[v6]:port"): its length
 * in *n, without the port and without one trailing dot.  Returns 0, or -1
 * if the value is not of that shape. */
static int http_host_name(const char *host, size_t *n)
{
    const char *end;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end)
            return -1;
        end++;
    } else {
        end = host + strcspn(host, ":");
    }
    if (*end == ':') {
        for (const char *p = end + 1; *p; p++)
            if (*p < '0' || *p > '9')
                return -1;
    } else if (*end) {
        return -1;
    }
    *n = (size_t)(end - host);
    if (*n > 0 && host[*n - 1] == '.')
        (*n)--;
    return *n ? 0 : -1;
}

static int http_name_eq(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* True if name[0, n) is an IPv4 address or a bracketed IPv6 address.  A
 * page can reach such a Host only from a URL naming that address, whose
 * origin is this server itself, so rebinding cannot use one. */
static int http_ip_literal(const char *name, size_t n)
{
    char a[INET6_ADDRSTRLEN + 2];
    unsigned char bin[sizeof(struct in6_addr)];
    if (n >= sizeof a)
        return 0;
    if (name[0] == '[') {
        if (n < 3)
            return 0;
        memcpy(a, name + 1, n - 2);
        a[n - 2] = '\0';
        return inet_pton(AF_INET6, a, bin) == 1;
    }
    memcpy(a, name, n);
    a[n] = '\0';
    return inet_pton(AF_INET, a, bin) == 1;
}

/* Whether this server answers to the name in host. */
static int http_host_allowed(const struct http_guard *g, const char *host)
{
    size_t n;
    if (g->any_host)
        return 1;
    if (http_host_name(host, &n) != 0)
        return 0;
    for (size_t i = 0; i < sizeof http_loopback_names /
                               sizeof http_loopback_names[0]; i++)
        if (http_name_eq(host, n, http_loopback_names[i]))
            return 1;
    for (size_t i = 0; i < g->nhosts; i++)
        if (http_name_eq(host, n, g->hosts[i]))
            return 1;
    return !g->loopback && http_ip_literal(host, n);
}

int http_guard_host(const struct http_guard *g, struct evhttp_request *req)
{
    const char *host = http_header(req, "Host");
    /* HTTP/1.0 may omit Host; a browser never does. */
    if (!host || http_host_allowed(g, host))
        return 0;
    http_problem(req, 421, "host-not-allowed", "Misdirected request",
                 "this server does not answer to the Host '%.200s' (a page "
                 "that rebinds its own name to this address would come this "
                 "way); an operator who serves this name adds it with "
                 "--http-allowed-host", host);
    return -1;
}

/* ---- Origin and CORS -------------------------------------------------- */

/* Whether origin is scheme + "://" + host for http or https. */
static int http_origin_is_host(const char *origin, const char *host)
{
    static const char *const schemes[] = {"http://", "https://"};
    if (!host)
        return 0;
    for (size_t i = 0; i < 2; i++) {
        size_t sl = strlen(schemes[i]);
        if (strncasecmp(origin, schemes[i], sl) == 0 &&
            strcasecmp(origin + sl, host) == 0)
            return 1;
    }
    return 0;
}

/* Classify the request's Origin; *origin gets the header (NULL if none). */
static enum http_origin http_origin_of(const struct http_guard *g,
                                       struct evhttp_request *req,
                                       const char **origin)
{
    const char *o = http_header(req, "Origin");
    *origin = o;
    if (!o)
        return HTTP_O_NONE;
    /* The Host was checked first, so an origin naming it is this server
     * (unless the operator turned the Host check off). */
    if (http_origin_is_host(o, http_header(req, "Host")))
        return HTTP_O_OWN;
    if (g->any_origin)
        return HTTP_O_LISTED;
    for (size_t i = 0; i < g->norigins; i++)
        if (strcasecmp(o, g->origins[i]) == 0)
            return HTTP_O_LISTED;
    return HTTP_O_OTHER;
}

void http_guard_cors(const struct http_guard *g, struct evhttp_request *req,
                     int public_route)
{
    const char *origin;
    enum http_origin k = http_origin_of(g, req, &origin);
    /* Caches must not serve one origin's answer to another. */
    http_out(req, "Vary", "Origin");
    if (k == HTTP_O_LISTED || k == HTTP_O_OWN) {
        http_out(req, "Access-Control-Allow-Origin", origin);
        http_out(req, "Access-Control-Expose-Headers", HTTP_CORS_EXPOSE);
    } else if (public_route) {
        /* Without Access-Control-Allow-Credentials: no cookies either. */
        http_out(req, "Access-Control-Allow-Origin", "*");
    }
}

void http_guard_options(const struct http_guard *g,
                        struct evhttp_request *req, const char *allow)
{
    const char *origin;
    enum http_origin k = http_origin_of(g, req, &origin);
    http_out(req, "Allow", allow);
    if (k == HTTP_O_OTHER) {
        http_problem(req, 403, "origin-not-allowed", "Origin not allowed",
                     "origin '%.200s' may not call this server from a "
                     "browser: it is not listed with --http-cors-origin",
                     origin);
        return;
    }
    if (k != HTTP_O_NONE) {
        http_out(req, "Vary", "Origin");
        http_out(req, "Access-Control-Allow-Origin", origin);
        http_out(req, "Access-Control-Allow-Methods", allow);
        http_out(req, "Access-Control-Allow-Headers", HTTP_CORS_HEADERS);
        http_out(req, "Access-Control-Max-Age", HTTP_CORS_MAX_AGE);
        /* Chrome asks this before a public page may call a private or
         * loopback address (Private Network Access); a listed origin may. */
        const char *pna = http_header(req,
                                      "Access-Control-Request-Private-Network");
        if (pna && strcasecmp(pna, "true") == 0)
            http_out(req, "Access-Control-Allow-Private-Network", "true");
    }
    http_send(req, 204);
}

/* ---- Changes ---------------------------------------------------------- */

/* True if a Content-Type value is application/json, parameters aside. */
static int http_is_json(const char *ct)
{
    static const char want[] = HTTP_JSON;
    ct += strspn(ct, " \t");
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == sizeof want - 1 && strncasecmp(ct, want, n) == 0;
}

int http_guard_change(const struct http_guard *g, struct evhttp_request *req)
{
    const char *origin;
    enum http_origin k = http_origin_of(g, req, &origin);
    const char *site = http_header(req, "Sec-Fetch-Site");
    int cross = site && strcasecmp(site, "cross-site") == 0;

    if (k == HTTP_O_OTHER) {
        http_problem(req, 403, "origin-not-allowed", "Origin not allowed",
                     "changes from origin '%.200s' are refused: it is "
                     "neither this server's own origin nor listed with "
                     "--http-cors-origin; the counter was not changed",
                     origin);
        return -1;
    }
    if (cross && k != HTTP_O_LISTED) {
        http_problem(req, 403, "origin-not-allowed", "Origin not allowed",
                     "Sec-Fetch-Site: cross-site: changes from another "
                     "site's page are refused unless its Origin is listed "
                     "with --http-cors-origin; the counter was not changed");
        return -1;
    }

    const char *ct = http_header(req, "Content-Type");
    size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (ct && !http_is_json(ct)) {
        http_problem(req, 415, "unsupported-media-type",
                     "Unsupported media type",
                     "a change needs Content-Type: application/json, not "
                     "'%.100s' (so that a page on another origin must pass "
                     "a CORS preflight first); the counter was not changed",
                     ct);
        return -1;
    }
    if (!ct && (body || origin || site)) {
        http_problem(req, 415, "unsupported-media-type",
                     "Unsupported media type",
                     "%s needs Content-Type: application/json; the counter "
                     "was not changed",
                     body ? "a change with a body"
                          : "a change from a browser (it sent Origin or "
                            "Sec-Fetch-Site), even one without a body,");
        return -1;
    }
    return 0;
}
