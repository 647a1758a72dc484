/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_resp_parse.c - libFuzzer target: the RESP tokenizer alone
 * (resp_parse() in src/proto/resp_parse.c), over a pipeline of requests.
 *
 * The first input byte chooses authenticated or not (bit 0) and default or
 * tight limits (bit 1); the rest is tokenized request after request, as
 * the front end does, until the tokenizer asks for more or refuses.  Each
 * call gets an exact-size copy of what is left, so that a read past `len`
 * is an overflow AddressSanitizer reports.  Properties checked for every
 * complete request of n bytes:
 *   - 0 < n <= len, and every argument lies inside the input (arrays) or
 *     inside the tokenizer's scratch (inline commands);
 *   - the same bytes cut to n give the same request: what follows a request
 *     does not change it;
 *   - any shorter prefix is "need more" (0), never a different request or
 *     an error, so that a request split across reads parses as one.
 * Seeds: tests/fuzz/corpus/resp_parse/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_env.h"
#include "resp_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *p, size_t n, const char *base, size_t len)
{
    return n == 0 || (p >= base && p + n <= base + len);
}

/* Tokenize in[0, len) and check the properties above.  Returns the bytes
 * the request took, 0 or -1. */
static ssize_t one(const char *in, size_t len, const struct proto_limits *lim,
                   int authed, struct resp_args *a, struct resp_args *b)
{
    char err[RESP_ERRMAX];
    ssize_t n = resp_parse(in, len, lim, authed, a, err);

    FZ_CHECK(n >= -1 && n <= (ssize_t)len, "returned %zd for %zu bytes", n,
             len);
    if (n < 0)
        FZ_CHECK(memchr(err, 0, RESP_ERRMAX) != NULL &&
                     strncmp(err, "ERR Protocol error: ", 20) == 0,
                 "refusal without a protocol error text");
    if (n <= 0)
        return n;
    for (size_t i = 0; i < a->argc; i++)
        FZ_CHECK(inside(a->argv[i], a->argl[i], in, (size_t)n) ||
                     inside(a->argv[i], a->argl[i], a->scratch.p,
                            a->scratch.cap),
                 "argument %zu lies outside the request", i);

    /* The request alone, in an exact-size copy, parses the same. */
    char *cut = xmalloc((size_t)n);
    memcpy(cut, in, (size_t)n);
    ssize_t m = resp_parse(cut, (size_t)n, lim, authed, b, err);
    FZ_CHECK(m == n, "alone the request takes %zd bytes, not %zd", m, n);
    FZ_CHECK(b->argc == a->argc, "alone it has %zu arguments, not %zu",
             b->argc, a->argc);
    for (size_t i = 0; i < a->argc; i++)
        FZ_CHECK(a->argl[i] == b->argl[i] &&
                     memcmp(a->argv[i], b->argv[i], a->argl[i]) == 0,
                 "argument %zu differs when the request stands alone", i);

    /* Shorter prefixes are incomplete, never something else. */
    size_t cuts[2] = {(size_t)n - 1, (size_t)n / 2};
    for (int k = 0; k < 2; k++) {
        m = resp_parse(cut, cuts[k], lim, authed, b, err);
        FZ_CHECK(m == 0, "a %zu-byte prefix of a %zd-byte request gives %zd "
                 "(%s)", cuts[k], n, m, m < 0 ? err : "a request");
    }
    free(cut);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_limits lim = PROTO_LIMITS_DEFAULT;
    struct resp_args a = {0}, b = {0};
    int authed;

    if (size == 0)
        return 0;
    authed = data[0] & 1;
    if (data[0] & 2) {
        lim.max_args = 8;
        lim.max_bulk = 64;
        lim.max_request = 512;
    }
    data++;
    size--;
    for (size_t pos = 0; pos < size;) {
        char *rest = xmalloc(size - pos);
        memcpy(rest, data + pos, size - pos);
        ssize_t n = one(rest, size - pos, &lim, authed, &a, &b);
        free(rest);
        if (n <= 0)
            break;
        pos += (size_t)n;
    }
    resp_args_free(&a);
    resp_args_free(&b);
    return 0;
}
