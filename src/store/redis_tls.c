/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * redis_tls.c - rediss:// for the Redis store: the OpenSSL context made once
 * at open (--store-tls-ca-file or the system's CAs, an optional client
 * certificate) and one SSL per connection that checks the certificate
 * names the host of the URI and sends it as SNI.  redis.c hands the SSL to
 * bufferevent_openssl; the bytes above it are the same as over TCP.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "redis_int.h"

/* OpenSSL's reason for the last failure, one line. */
static void last_error(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();

    if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "unknown reason");
    ERR_clear_error();
}

SSL_CTX *redis_tls_ctx(const char *ca, const char *cert, const char *key,
                       char *err, size_t errlen)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "no TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
            : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "--store-tls-ca-file %s: %s",
                 ca ? ca : "(system)", why);
        goto fail;
    }
    if (cert) {
        const char *k = key ? key : cert;
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            last_error(why, sizeof why);
            snprintf(err, errlen, "--store-tls-cert-file %s, "
                     "--store-tls-key-file %s: %s", cert, k, why);
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *redis_tls_ssl(SSL_CTX *ctx, const char *host)
{
    unsigned char ip[16];
    SSL *ssl = SSL_new(ctx);
    X509_VERIFY_PARAM *param;
    int ok;

    if (!ssl)
        return NULL;
    param = SSL_get0_param(ssl);
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
        ok = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1;
    else
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 &&
             X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

void redis_tls_why(SSL *ssl, unsigned long e, char *buf, size_t n)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (v != X509_V_OK) {
        snprintf(buf, n, "TLS: the server's certificate was refused: %s "
                 "(check --store-tls-ca-file)", X509_verify_cert_error_string(v));
        return;
    }
    if (e) {
        char s[160];
        ERR_error_string_n(e, s, sizeof s);
        snprintf(buf, n, "TLS: %s", s);
        return;
    }
    snprintf(buf, n, "TLS: connection closed during the handshake");
}
