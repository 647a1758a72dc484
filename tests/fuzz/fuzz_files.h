/*
 * fuzz_files.h - reading the engine's own files in the targets that see
 * its internals (fuzz_recover.c) and in gen_corpus.c, which cuts the files
 * the engine wrote into seeds.  The format is src/engine/codec.c's.
 */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <stddef.h>

#include "codec.h"

/* Where the valid records of a log or snapshot file p[0, n) end: the
 * offset after the last record that decodes, walking from the header.  A
 * log's reserved zeros, or whatever breaks the walk, lie after it. */
static inline size_t fz_data_end(const unsigned char *p, size_t n)
{
    size_t off = CODEC_FILE_HDR;

    while (off < n) {
        struct codec_rec r;
        size_t used, claimed;
        const char *why;
        if (codec_decode(p + off, n - off, &r, &used, &claimed, &why) !=
            CODEC_OK)
            break;
        off += used;
    }
    return off < n ? off : n;
}

#endif /* FUZZ_FILES_H */
