/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tls.c - TLS for every front end, with OpenSSL: the server's SSL_CTX (made
 * from --tls-cert-file, --tls-key-file, --tls-ca-cert-file/--tls-ca-cert-dir,
 * --tls-auth-clients, --tls-protocols, --tls-ciphers), rebuilt on SIGHUP,
 * and the two ways connections use it:
 *   - stream connections (RESP on --tls-port, memcached on
 *     --memcache-tls-port): conn.c calls tls_read() and tls_write() where it
 *     would call read(2) and send(2); they behave like those calls on a
 *     non-blocking socket (EAGAIN when the TLS layer must wait for the
 *     socket), so the durability hold, backpressure and limits above them
 *     are the very code that serves plain sockets;
 *   - HTTPS (--https-port): evhttp asks tls_http_bev() for a
 *     bufferevent_openssl per connection.
 * A reload builds a new context and swaps it in only if every file loads;
 * connections already open keep the context they started with (OpenSSL
 * counts references), so none is dropped.  A bad file keeps the old one and
 * the log says why.
 */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct tls {
    SSL_CTX *ctx;              /* for new connections */
};

struct tls_conn {
    SSL *ssl;
    struct slog *log;
    const char *peer;          /* borrowed from the connection */
    int failed;                /* the handshake or a record failed */
};

/* The last OpenSSL error queued on this thread, as text, and clear the rest. */
static void ssl_error(char *out, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, out, n);
    else
        snprintf(out, n, "%s", errno ? strerror(errno) : "unknown TLS error");
    ERR_clear_error();
}

/* "TLSv1.2 TLSv1.3" into the lowest and highest versions allowed. */
static int parse_protocols(const char *s, int *lo, int *hi, char *err)
{
    static const struct { const char *name; int v; } names[] = {
        {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION}};
    char copy[128];
    *lo = *hi = 0;
    snprintf(copy, sizeof copy, "%s", s);
    for (char *save, *t = strtok_r(copy, " ,", &save); t;
         t = strtok_r(NULL, " ,", &save)) {
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcasecmp(t, names[i].name) == 0)
                break;
        if (i == sizeof names / sizeof names[0]) {
            snprintf(err, 256, "--tls-protocols: '%s' is not TLSv1.2 or "
                     "TLSv1.3 (older versions are not offered)", t);
            return -1;
        }
        if (!*lo || names[i].v < *lo)
            *lo = names[i].v;
        if (names[i].v > *hi)
            *hi = names[i].v;
    }
    if (!*lo) {
        snprintf(err, 256, "--tls-protocols names no protocol");
        return -1;
    }
    return 0;
}

/* A new context from c's files.  Returns it, or NULL with err set. */
static SSL_CTX *ctx_new(const struct conf *c, char *err)
{
    char why[200];
    int lo, hi;
    if (parse_protocols(c->tls_protocols, &lo, &hi, err) < 0)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(why, sizeof why);
        snprintf(err, 256, "cannot create a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* conn.c may call SSL_write again with the rest of a buffer that moved
     * (it grows), and takes partial writes as send(2)'s. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (c->tls_ciphers && SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
        snprintf(err, 256, "--tls-ciphers '%s': no cipher OpenSSL knows",
                 c->tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        ssl_error(why, sizeof why);
        snprintf(err, 256, "--tls-cert-file %s: %s", c->tls_cert, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(why, sizeof why);
        snprintf(err, 256, "--tls-key-file %s: %s", c->tls_key, why);
        goto fail;
    }
    if ((c->tls_ca_file || c->tls_ca_dir) &&
        SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, c->tls_ca_dir) != 1) {
        ssl_error(why, sizeof why);
        snprintf(err, 256, "--tls-ca-cert-%s %s: %s",
                 c->tls_ca_file ? "file" : "dir",
                 c->tls_ca_file ? c->tls_ca_file : c->tls_ca_dir, why);
        goto fail;
    }
    if (c->tls_auth != CONF_TLS_AUTH_NO) {
        int mode = SSL_VERIFY_PEER;
        if (c->tls_auth == CONF_TLS_AUTH_YES)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        if (c->tls_ca_file) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls_ca_file);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_wanted(const struct conf *c)
{
    return c->tls_port || c->https_port || c->memcache_tls_port;
}

int tls_init(struct server *srv, char *err)
{
    if (!tls_wanted(&srv->conf))
        return 0;
    SSL_CTX *ctx = ctx_new(&srv->conf, err);
    if (!ctx)
        return -1;
    srv->tls = xcalloc(1, sizeof *srv->tls);
    srv->tls->ctx = ctx;
    return 0;
}

void tls_reload(struct server *srv)
{
    char err[256];
    if (!srv->tls)
        return;
    SSL_CTX *ctx = ctx_new(&srv->conf, err);
    if (!ctx) {
        slog(&srv->log, SLOG_ERROR, "SIGHUP: TLS not reloaded, new connections "
             "keep the certificates loaded before: %s", err);
        return;
    }
    SSL_CTX_free(srv->tls->ctx); /* connections still using it hold a ref */
    srv->tls->ctx = ctx;
    slog(&srv->log, SLOG_INFO, "SIGHUP: TLS certificates and keys reloaded "
         "from %s and %s", srv->conf.tls_cert, srv->conf.tls_key);
}

void tls_free(struct server *srv)
{
    if (!srv->tls)
        return;
    SSL_CTX_free(srv->tls->ctx);
    free(srv->tls);
    srv->tls = NULL;
}

/* ---- Stream connections (conn.c) ----------------------------------------- */

struct tls_conn *tls_conn_new(struct server *srv, int fd, const char *peer)
{
    SSL *ssl = SSL_new(srv->tls->ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        fprintf(stderr, "tallyd: out of memory creating a TLS connection\n");
        abort();
    }
    SSL_set_accept_state(ssl);
    struct tls_conn *t = xcalloc(1, sizeof *t);
    t->ssl = ssl;
    t->log = &srv->log;
    t->peer = peer;
    return t;
}

/* Map an SSL_read/SSL_write result that is not a byte count onto read(2)'s
 * conventions: 0 for the peer's close, -1 with errno EAGAIN (wait for the
 * socket), EPIPE or EPROTO (with the reason logged). */
static ssize_t io_result(struct tls_conn *t, int rc, const char *op)
{
    int e = SSL_get_error(t->ssl, rc);
    char why[200];
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        /* DEBT: a read that wants the socket writable (a handshake message
         * larger than the empty send buffer of a new socket) waits for the
         * next readable event instead; never seen with certificates of a
         * few KiB. */
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!errno)
            return 0;
        ERR_clear_error();
        return -1;
    default:
        ssl_error(why, sizeof why);
        if (!t->failed)
            slog(t->log, SLOG_INFO, "TLS %s with client %s failed: %s", op,
                 t->peer, why);
        t->failed = 1;
        errno = EPROTO;
        return -1;
    }
}

ssize_t tls_read(struct tls_conn *t, void *p, size_t n)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read(t->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    return rc > 0 ? rc : io_result(t, rc, SSL_is_init_finished(t->ssl)
                                               ? "read" : "handshake");
}

ssize_t tls_write(struct tls_conn *t, const void *p, size_t n)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write(t->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    return rc > 0 ? rc : io_result(t, rc, "write");
}

int tls_pending(const struct tls_conn *t)
{
    return SSL_has_pending(t->ssl);
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    /* One close_notify, best effort: the socket is closed right after. */
    if (!t->failed && SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
}

/* ---- HTTPS (evhttp) ---------------------------------------------------------- */

struct bufferevent *tls_http_bev(struct event_base *base, void *arg)
{
    struct server *srv = arg;
    SSL *ssl = SSL_new(srv->tls->ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev)
        /* Clients such as curl may close without a close_notify. */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
