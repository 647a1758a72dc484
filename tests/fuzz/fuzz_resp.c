/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_resp.c - libFuzzer target: the whole RESP front end (src/proto/resp*.c
 * through resp_ops.handle(), the command layer and a real engine in a fresh
 * directory), fed the input in pieces as a connection would deliver it
 * (fuzz_stream.h: the first byte chooses password, limits and piece sizes).
 * Seeds: tests/fuzz/corpus/resp/, real pipelines of every command family.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_stream.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Made once and kept, as tallyd keeps it for its life. */
    static struct resp_front *front;

    if (!front)
        front = resp_front_new();
    fz_stream_run(&resp_ops, front, CMD_PROTO_RESP, data, size);
    return 0;
}
