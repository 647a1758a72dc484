/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * glob.c - the two pieces of text handling every front end must agree on:
 * decimal int64 parsing exactly as Redis's string2ll() does it, and glob
 * matching exactly as Redis's stringmatchlen() does it (MATCH in SCAN and
 * KEYS), plus the literal prefix of a glob that cmd.c hands the engine so a
 * prefix scan can skip most of the table.
 *
 * Both routines are bounded by the lengths they are given and never read a
 * byte past them (Redis's own versions lean on the NUL that ends an sds
 * string; ours are given slices of a network buffer that has none).
 */
#include <stdint.h>
#include <string.h>

#include "cmd.h"
#include "glob.h"

/* The longest decimal int64 is "-9223372036854775808", 20 bytes; string2ll
 * refuses anything of 21 bytes or more before looking at it. */
#define I64_STR_MAX 21

int cmd_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cmd_parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v;

    if (len == 0 || len >= I64_STR_MAX)
        return -1;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 0;
    }
    if (s[0] == '-') {
        neg = 1;
        if (++i == len)
            return -1;
    }
    /* The first digit must be 1-9: "0" alone was handled above, so leading
     * zeros, "-0" and "+1" are all refused, as Redis does. */
    if (s[i] < '1' || s[i] > '9')
        return -1;
    v = (uint64_t)(s[i++] - '0');
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - d)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        /* Negate in unsigned arithmetic: -(2^63) has no positive twin. */
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;
}

/*
 * The matcher follows stringmatchlen_impl() of Redis 7 case by case,
 * including its quirks (an unclosed '[' set runs to the end of the pattern;
 * "[a-]" is the range a..']'), so that a pattern selects the same keys here
 * as there.  Two deliberate differences: bytes compare as unsigned (Redis
 * compares signed chars, which makes ranges over bytes >= 0x80 odd), and the
 * end of the pattern is found by its length, never by a NUL.  *skip is
 * Redis's skipLongerMatches: once the rest of a pattern after a '*' fails at
 * every position, no earlier '*' can help, which keeps patterns like
 * "a*a*a*a*b" from taking exponential time.
 */
static int glob_match(const unsigned char *p, size_t plen,
                      const unsigned char *s, size_t slen, int *skip,
                      int depth)
{
    if (depth > 1000) /* Redis's guard against abusive patterns */
        return 0;
    while (plen && slen) {
        switch (p[0]) {
        case '*':
            while (plen > 1 && p[1] == '*') {
                p++;
                plen--;
            }
            if (plen == 1)
                return 1;
            while (slen) {
                if (glob_match(p + 1, plen - 1, s, slen, skip, depth + 1))
                    return 1;
                if (*skip)
                    return 0;
                s++;
                slen--;
            }
            *skip = 1;
            return 0;
        case '?':
            s++;
            slen--;
            break;
        case '[': {
            int negate, match = 0;

            p++;
            plen--;
            negate = plen && p[0] == '^';
            if (negate) {
                p++;
                plen--;
            }
            for (;;) {
                if (plen == 0) {
                    /* Unclosed set: step back so the advance below lands
                     * exactly on the end of the pattern. */
                    p--;
                    plen++;
                    break;
                }
                if (p[0] == '\\' && plen >= 2) {
                    p++;
                    plen--;
                    if (p[0] == s[0])
                        match = 1;
                } else if (p[0] == ']') {
                    break;
                } else if (plen >= 3 && p[1] == '-') {
                    unsigned lo = p[0], hi = p[2];
                    if (lo > hi) {
                        unsigned t = lo;
                        lo = hi;
                        hi = t;
                    }
                    if (s[0] >= lo && s[0] <= hi)
                        match = 1;
                    p += 2;
                    plen -= 2;
                } else if (p[0] == s[0]) {
                    match = 1;
                }
                p++;
                plen--;
            }
            if (negate)
                match = !match;
            if (!match)
                return 0;
            s++;
            slen--;
            break;
        }
        case '\\':
            if (plen >= 2) {
                p++;
                plen--;
            }
            /* fall through */
        default:
            if (p[0] != s[0])
                return 0;
            s++;
            slen--;
            break;
        }
        p++;
        plen--;
        if (slen == 0) {
            /* Trailing stars match the empty rest of the string. */
            while (plen && p[0] == '*') {
                p++;
                plen--;
            }
            break;
        }
    }
    return plen == 0 && slen == 0;
}

int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen)
{
    int skip = 0;
    return glob_match((const unsigned char *)pat, plen,
                      (const unsigned char *)str, slen, &skip, 0);
}

int glob_matches_all(const char *pat, size_t plen)
{
    /* Redis's SCAN and KEYS treat a lone "*" as "no pattern", which also
     * lets it match the empty key (the matcher itself would not). */
    return pat == NULL || plen == 0 || (plen == 1 && pat[0] == '*');
}

size_t glob_literal_prefix(const char *pat, size_t plen, char *out,
                           size_t outmax)
{
    size_t n = 0;

    for (size_t i = 0; i < plen && n < outmax; i++) {
        char c = pat[i];
        if (c == '*' || c == '?' || c == '[')
            break;
        if (c == '\\') {
            /* An escaped byte is literal; a trailing '\' matches itself. */
            if (i + 1 < plen)
                c = pat[++i];
        }
        out[n++] = c;
    }
    return n;
}
