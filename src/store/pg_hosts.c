/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_hosts.c - the PostgreSQL store's connection parameters, and which host
 * of a list a connect starts with.  libpq tries the hosts of a URI in order
 * and goes on to the next one only when a host fails; one that accepts and
 * never answers holds the attempt, and the non-blocking connect applies no
 * connect_timeout of its own.  pg.c's connect timer then gives up on the
 * host, and the next attempt starts with the one after it: the list is
 * rotated (host, hostaddr and port together), so every host is still tried,
 * the silent one last.  pg.c owns the connection and its timers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* Options whose values are per-host lists. */
static int is_list(const char *kw)
{
    return !strcmp(kw, "host") || !strcmp(kw, "hostaddr") ||
           !strcmp(kw, "port");
}

/* Elements of a comma-separated list (an empty string is one). */
static size_t list_len(const char *v)
{
    size_t n = 1;
    for (; *v; v++)
        n += *v == ',';
    return n;
}

/* Element i of list v into out (n bytes), "" if there is none. */
static void list_item(const char *v, size_t i, char *out, size_t n)
{
    while (i && *v) {
        if (*v++ == ',')
            i--;
    }
    size_t len = i ? 0 : strcspn(v, ",");
    if (len >= n)
        len = n - 1;
    memcpy(out, v, len);
    out[len] = 0;
}

/* v rotated left by k elements (a list of one stays as it is); caller frees. */
static char *list_rotate(const char *v, size_t k)
{
    size_t n = list_len(v), len = strlen(v);
    char *out = xmalloc(len + 2);
    if (n < 2) {
        memcpy(out, v, len + 1);
        return out;
    }
    k %= n;
    const char *p = v;
    for (size_t i = 0; i < k; i++)
        p = strchr(p, ',') + 1;
    size_t tail = len - (size_t)(p - v);
    memcpy(out, p, tail);
    if (k) {
        out[tail] = ',';
        memcpy(out + tail + 1, v, (size_t)(p - v) - 1);
    }
    out[len] = 0;
    return out;
}

int pg_hosts_parse(struct pg_hosts *h, const char *uri, char *err, size_t n)
{
    char *perr = NULL;
    memset(h, 0, sizeof *h);
    PQconninfoOption *opts = PQconninfoParse(uri, &perr);
    if (!opts) {
        snprintf(err, n, "postgresql: %s", perr ? perr : "bad URI");
        PQfreemem(perr);
        return -1;
    }
    size_t m = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        m += o->val != NULL;
    h->kw = xcalloc(m + 1, sizeof *h->kw);
    h->val = xcalloc(m + 1, sizeof *h->val);
    h->timeout_ms = PG_ANSWER_TIMEOUT_MS;
    h->nhosts = 1;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        h->kw[h->n] = xstrdup(o->keyword);
        h->val[h->n] = xstrdup(o->val);
        if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr")) {
            size_t l = list_len(o->val);
            if (l > h->nhosts)
                h->nhosts = l;
        }
        /* libpq's own reading: seconds, below 2 taken as 2, 0 none. */
        if (!strcmp(o->keyword, "connect_timeout") && atoi(o->val) > 0)
            h->timeout_ms = (atoi(o->val) < 2 ? 2 : atoi(o->val)) * 1000;
        h->n++;
    }
    PQconninfoFree(opts);
    return 0;
}

void pg_hosts_free(struct pg_hosts *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->kw[i]);
        free(h->val[i]);
    }
    free(h->kw);
    free(h->val);
    memset(h, 0, sizeof *h);
}

char *pg_hosts_value(const struct pg_hosts *h, const char *kw)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->kw[i], kw))
            return is_list(kw) ? list_rotate(h->val[i], h->first)
                               : xstrdup(h->val[i]);
    return NULL;
}

PGconn *pg_hosts_connect(const struct pg_hosts *h)
{
    const char **kw = xcalloc(h->n + 1, sizeof *kw);
    char **val = xcalloc(h->n + 1, sizeof *val);
    for (size_t i = 0; i < h->n; i++) {
        kw[i] = h->kw[i];
        val[i] = pg_hosts_value(h, h->kw[i]);
    }
    PGconn *c = PQconnectStartParams(kw, (const char *const *)val, 0);
    for (size_t i = 0; i < h->n; i++)
        free(val[i]);
    free(kw);
    free(val);
    return c;
}

void pg_hosts_skip(struct pg_hosts *h, const char *host, const char *port)
{
    if (h->nhosts < 2)
        return;
    const char *hosts = NULL, *addrs = NULL, *ports = NULL;
    for (size_t i = 0; i < h->n; i++) {
        if (!strcmp(h->kw[i], "host"))
            hosts = h->val[i];
        else if (!strcmp(h->kw[i], "hostaddr"))
            addrs = h->val[i];
        else if (!strcmp(h->kw[i], "port"))
            ports = h->val[i];
    }
    /* Which of this attempt's hosts (in its rotated order) was being
     * tried: the first whose name (or address) and port match. */
    size_t at = 0;
    for (size_t i = 0; host && i < h->nhosts; i++) {
        char hn[256] = "", ha[64] = "", pn[16] = "";
        size_t j = (h->first + i) % h->nhosts;
        if (hosts)
            list_item(hosts, list_len(hosts) < 2 ? 0 : j, hn, sizeof hn);
        if (addrs)
            list_item(addrs, list_len(addrs) < 2 ? 0 : j, ha, sizeof ha);
        if (ports)
            list_item(ports, list_len(ports) < 2 ? 0 : j, pn, sizeof pn);
        if ((!strcmp(host, hn) || !strcmp(host, ha)) &&
            (!ports || !port || !*pn || !strcmp(port, pn))) {
            at = i;
            break;
        }
    }
    h->first = (h->first + at + 1) % h->nhosts;
}
