/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util.h - small helpers shared by the layers above the engine: an
 * allocation wrapper that aborts on out-of-memory (so callers need not check)
 * and a growable byte buffer that front ends encode replies into.  The engine
 * (src/engine) keeps its own copy of the wrapper so that libtally stands
 * alone.
 */
#ifndef TALLY_UTIL_H
#define TALLY_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Allocation: never return NULL; print a line and abort instead. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* A growable byte buffer.  p is NUL-terminated when cap > 0 (not counted in
 * len), so text can be printed straight from it. */
struct buf {
    char *p;
    size_t len, cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_free(struct buf *b);                /* back to BUF_INIT */
void buf_reserve(struct buf *b, size_t more); /* room for `more` bytes */
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s); /* a C string */
void buf_addc(struct buf *b, char c);
void buf_addi64(struct buf *b, int64_t v);   /* decimal */
void buf_addu64(struct buf *b, uint64_t v);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_consume(struct buf *b, size_t n);   /* drop n bytes from the front */
static inline void buf_clear(struct buf *b) { b->len = 0; if (b->cap) b->p[0] = 0; }

/* The value of one hexadecimal digit (either case), or -1. */
static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Write v in decimal to out (at least 21 bytes); returns the length. */
size_t u64_to_dec(uint64_t v, char *out);
size_t i64_to_dec(int64_t v, char *out);

#endif /* TALLY_UTIL_H */
