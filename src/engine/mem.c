/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mem.c - the engine's allocation wrapper (see mem.h): out-of-memory is not
 * a condition the engine can recover from halfway through a change, so it
 * aborts here, in one place, instead of being checked at every call.
 */
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void mem_die(size_t n)
{
    fprintf(stderr, "libtally: out of memory allocating %zu bytes\n", n);
    abort();
}

void *mem_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        mem_die(n);
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        mem_die(n * size);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        mem_die(n);
    return q;
}

char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(mem_alloc(n), s, n);
}

void *mem_zmap(size_t n)
{
    void *p;

    if (n < MEM_MAP_MIN)
        return mem_calloc(n, 1);
    p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0);
    if (p == MAP_FAILED)
        mem_die(n);
    return p;
}

size_t mem_unmap_prefix(void *p, size_t n, size_t done, size_t upto)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    if (n < MEM_MAP_MIN)
        return done;
    upto &= ~(page - 1);
    if (upto <= done)
        return done;
    /* Cannot fail on a range of our own mapping but by running out of
     * mappings, and then the pages stay until mem_unmap: harmless. */
    if (munmap((char *)p + done, upto - done) != 0)
        return done;
    return upto;
}

void mem_unmap(void *p, size_t n, size_t done)
{
    if (!p)
        return;
    if (n < MEM_MAP_MIN) {
        free(p);
        return;
    }
    if (done < n)
        munmap((char *)p + done, n - done);
}
