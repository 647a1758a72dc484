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

/* Big zeroed arrays (the hash tables' buckets, htab.c).  From MEM_MAP_MIN
 * bytes up they are mapped on their own: they come zeroed without a memset
 * (calloc would clear tens of MB at once when the heap reuses memory) and
 * can be given back a piece at a time, so freeing one never costs a long
 * munmap.  Smaller ones come from the heap. */
#define MEM_MAP_MIN ((size_t)1 << 20)
/* n zeroed bytes; free with mem_unmap(p, n, done). */
void *mem_zmap(size_t n);
/* Give back the whole pages of p's first upto bytes not given back yet
 * (those before done); returns the new done (unchanged for a heap block).
 * The caller must not touch p's first done bytes again. */
size_t mem_unmap_prefix(void *p, size_t n, size_t done, size_t upto);
/* Free a mem_zmap(n) block whose first done bytes were given back. */
void mem_unmap(void *p, size_t n, size_t done);

#endif /* ENGINE_MEM_H */
