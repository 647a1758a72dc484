/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_files.h - reading the engine's own files in the targets that see
 * its internals (fuzz_recover.c) and in gen_corpus.c, which cuts the files
 * the engine wrote into seeds.  The format is src/engine/codec.c's.
 */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <stddef.h>
#include <string.h>

#include "codec.h"

/* Where the valid data of a log or snapshot file p[0, n) ends: the offset
 * after the last record that decodes, walking from the header, or in a
 * framed log (format 3) after the last frame that checks out with all its
 * records.  A log's reserved zeros, or whatever breaks the walk, lie after
 * it. */
static inline size_t fz_data_end(const unsigned char *p, size_t n)
{
    size_t off = CODEC_FILE_HDR;
    int framed = n >= CODEC_FILE_HDR && memcmp(p, "TALLYLOG", 8) == 0 &&
                 codec_header_version(p) >= CODEC_VERSION_FRAMED;

    while (off < n) {
        struct codec_rec r;
        struct codec_frame f;
        size_t used, claimed, end;
        const char *why;
        if (!framed) {
            if (codec_decode(p + off, n - off, &r, &used, &claimed, &why) !=
                CODEC_OK)
                break;
            off += used;
            continue;
        }
        if (codec_frame_check(p + off, n - off, &f, &why) != CODEC_OK ||
            f.len > n - off - CODEC_FRAME_HDR)
            break;
        end = off + CODEC_FRAME_HDR + f.len;
        for (size_t o = off + CODEC_FRAME_HDR; o < end; o += used)
            if (codec_decode(p + o, end - o, &r, &used, &claimed, &why) !=
                CODEC_OK)
                return off;
        off = end;
    }
    return off < n ? off : n;
}

#endif /* FUZZ_FILES_H */
