/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mem.h - libtally's allocation wrapper.  Every allocation in the engine goes
 * through these; on out-of-memory they print one line to stderr and abort, so
 * callers need not check.  The layers above use src/util's xmalloc; the
 * engine keeps its own so that libtally links alone.
 */
#ifndef ENGINE_MEM_H
#define ENGINE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s);

#endif /* ENGINE_MEM_H */
