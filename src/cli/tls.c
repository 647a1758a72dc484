/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tls.c - `tally --tls`: the online commands over TLS.  Debian 12's hiredis
 * (0.14) has no TLS, so the client runs it itself on the socket hiredis
 * connected: OpenSSL carries the bytes, hiredis still formats the commands
 * (redisFormatCommandArgv) and parses the replies (the context's reader).
 * The server's certificate must chain to --cacert (or the system's CAs) and
 * name the host connected to (-H: a DNS name or an IP address);
 * --cert/--key present a client certificate for --tls-auth-clients.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli.h"

/* The reason of the last OpenSSL failure, or of the system call's. */
static const char *tls_why(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "%s", errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
    return buf;
}

SSL *cli_tls_open(redisContext *c, const struct cli_opts *o)
{
    char why[256];
    struct in6_addr ip;
    SSL *ssl = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        cli_error("cannot create a TLS context: %s", tls_why(why, sizeof why));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((o->cacert ? SSL_CTX_load_verify_locations(ctx, o->cacert, NULL)
                   : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        cli_error("--cacert %s: %s", o->cacert ? o->cacert : "(system)",
                  tls_why(why, sizeof why));
        goto fail;
    }
    if (o->cert && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
                    SSL_CTX_use_PrivateKey_file(ctx, o->key ? o->key : o->cert,
                                                SSL_FILETYPE_PEM) != 1 ||
                    SSL_CTX_check_private_key(ctx) != 1)) {
        cli_error("--cert %s / --key %s: %s", o->cert, o->key ? o->key : o->cert,
                  tls_why(why, sizeof why));
        goto fail;
    }
    if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, c->fd) != 1) {
        cli_error("cannot start TLS: %s", tls_why(why, sizeof why));
        goto fail;
    }
    /* The certificate must name what we connected to. */
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    int is_ip = inet_pton(AF_INET, o->host, &ip) == 1 ||
                inet_pton(AF_INET6, o->host, &ip) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, o->host) != 1
              : (SSL_set_tlsext_host_name(ssl, o->host) != 1 ||
                 X509_VERIFY_PARAM_set1_host(param, o->host, 0) != 1)) {
        cli_error("cannot check the certificate against %s", o->host);
        goto fail;
    }
    errno = 0;
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            cli_error("TLS to %s:%d: the server's certificate was refused: %s",
                      o->host, o->port, X509_verify_cert_error_string(v));
        else
            cli_error("TLS to %s:%d failed: %s", o->host, o->port,
                      tls_why(why, sizeof why));
        goto fail;
    }
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    return ssl;
fail:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

redisReply *cli_tls_call(SSL *ssl, redisContext *c, int argc, const char **argv,
                         const size_t *lens)
{
    /* why is what c->errstr holds: a longer reason would be cut anyway. */
    char *cmd = NULL, buf[16 * 1024], why[sizeof c->errstr];
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    void *reply = NULL;

    if (len < 0) {
        snprintf(c->errstr, sizeof c->errstr, "out of memory");
        return NULL;
    }
    for (int off = 0; off < len;) {
        errno = 0;
        int n = SSL_write(ssl, cmd + off, len - off);
        if (n <= 0) {
            c->err = REDIS_ERR_IO;
            snprintf(c->errstr, sizeof c->errstr, "%s", tls_why(why, sizeof why));
            free(cmd);
            return NULL;
        }
        off += n;
    }
    free(cmd);
    while (redisReaderGetReply(c->reader, &reply) == REDIS_OK && !reply) {
        errno = 0;
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) {
            /* EAGAIN: SO_RCVTIMEO (--timeout) ran out; conn_call() says so. */
            int e = errno;
            c->err = REDIS_ERR_IO;
            snprintf(c->errstr, sizeof c->errstr, "%s", tls_why(why, sizeof why));
            errno = e;
            return NULL;
        }
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            break;
    }
    if (!reply) {
        c->err = REDIS_ERR_PROTOCOL;
        snprintf(c->errstr, sizeof c->errstr, "%s", c->reader->errstr);
    }
    return reply;
}

void cli_tls_close(SSL *ssl)
{
    if (!ssl)
        return;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
}
