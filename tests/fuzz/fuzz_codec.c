/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_codec.c - libFuzzer target: the engine's record and header decoder
 * (codec_decode(), codec_batch_next_idem() and codec_header_check() in
 * src/engine/codec.c).
 *
 * The first input byte chooses the mode.  Bit 0 clear: the rest is decoded
 * as it stands, record after record as recovery walks a file (almost every
 * mutation then fails its checksum, which is the point: the checks must
 * hold for any bytes).  Bit 0 set: the rest is a record body, sealed with
 * its correct length and CRC32C first, so that mutations reach the body
 * parsers (PUT, PUTX, DEL, IDEM, BATCH and its sub-records, END).  Properties:
 *   - a record decoded as valid lies inside the buffer and encodes back,
 *     through the engine's own encoders, to exactly the bytes it came from
 *     (so nothing the decoder accepts is read differently from how it was
 *     written, and no two encodings decode alike);
 *   - iterating a valid batch yields exactly its count of sub-records;
 *   - a current-version snapshot header that checks out encodes back to
 *     itself.
 * Seeds: tests/fuzz/corpus/codec/ (records cut from files the engine
 * wrote: see gen_corpus.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "crc32c.h"
#include "fuzz_env.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode r back into out (room for `used` bytes); returns its size. */
static size_t encode(const struct codec_rec *r, unsigned char *out)
{
    struct codec_op op;
    struct codec_idem idem;
    size_t off = 0, pos = CODEC_BATCH_HDR;
    uint32_t n = 0;

    switch (r->type) {
    case CODEC_PUT:
    case CODEC_DEL:
        return codec_op(out, &r->op);
    case CODEC_IDEM:
        return codec_idem(out, &r->idem);
    case CODEC_END:
        return codec_end(out, r->end_count);
    case CODEC_BATCH:
        while (codec_batch_next_idem(r, &off, &op, &idem)) {
            pos += op.type == CODEC_IDEM ? codec_batch_add_idem(out + pos, &idem)
                                         : codec_batch_add(out + pos, &op);
            n++;
        }
        FZ_CHECK(n == r->n, "batch iterated %u of %u sub-records", n, r->n);
        codec_batch_close(out, pos, n);
        return pos;
    }
    FZ_CHECK(0, "record of type %d decoded as valid", r->type);
    return 0;
}

static void walk(const unsigned char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        struct codec_rec r;
        size_t used = 0, claimed = 0;
        const char *why = NULL;
        int rc = codec_decode(p + off, n - off, &r, &used, &claimed, &why);

        if (rc == CODEC_ZERO)
            return;
        FZ_CHECK(claimed >= 1 || n - off == 0, "claimed %zu", claimed);
        if (rc != CODEC_OK) {
            FZ_CHECK(rc >= CODEC_ETYPE && rc <= CODEC_ESHORT && why,
                     "code %d without a reason", rc);
            return;
        }
        FZ_CHECK(used >= CODEC_REC_HDR + 1 && used <= n - off,
                 "record of %zu bytes at offset %zu of %zu", used, off, n);
        unsigned char *back = xmalloc(used);
        size_t m = encode(&r, back);
        FZ_CHECK(m == used && memcmp(back, p + off, used) == 0,
                 "type %d record of %zu bytes encodes back to %zu different "
                 "bytes", r.type, used, m);
        free(back);
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t lsn;
    uint32_t hint;
    const char *why;

    if (size == 0)
        return 0;
    if (data[0] & 1) {
        size_t blen = size - 1;
        unsigned char *rec = xmalloc(CODEC_REC_HDR + blen);

        memcpy(rec + CODEC_REC_HDR, data + 1, blen);
        codec_put32(rec + 4, (uint32_t)blen);
        codec_put32(rec, crc32c_extend(0, rec + 4, 4 + blen));
        walk(rec, CODEC_REC_HDR + blen);
        free(rec);
        return 0;
    }
    data++;
    size--;
    unsigned char *copy = xmalloc(size ? size : 1);
    memcpy(copy, data, size);
    walk(copy, size);
    /* A version 1 header checks out too, but is written as the current. */
    if (codec_header_check(copy, size, CODEC_SNAP, &lsn, &hint, &why) == 0 &&
        codec_get32(copy + 8) == CODEC_VERSION) {
        unsigned char hdr[CODEC_FILE_HDR];
        codec_header(hdr, CODEC_SNAP, lsn, hint);
        FZ_CHECK(memcmp(hdr, copy, CODEC_FILE_HDR) == 0,
                 "a snapshot header that checks out encodes differently");
    }
    codec_header_check(copy, size, CODEC_LOG, &lsn, NULL, &why);
    free(copy);
    return 0;
}
