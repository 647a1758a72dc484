/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_memcache.c - libFuzzer target: the memcached front end, classic and
 * meta commands (src/proto/memcache*.c through mc_ops.handle(), the command
 * layer and a real engine in a fresh directory), fed the input in pieces as
 * a connection would deliver it (fuzz_stream.h: the first byte chooses
 * password, limits and piece sizes).  flush_all is allowed, so that it runs
 * too.  Seeds: tests/fuzz/corpus/memcache/, sessions of both dialects.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_stream.h"
#include "memcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A listener per input, so that "stats" starts from zero each time. */
    struct mc_options o = {.allow_flush = 1};
    struct mc_front *front = mc_front_new(&o);

    fz_stream_run(&mc_ops, front, CMD_PROTO_MEMCACHE, data, size);
    mc_front_free(front);
    return 0;
}
