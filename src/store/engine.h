/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * engine.h - the embedded engine (libtally on --dir) as a struct store.
 * The handle stays the caller's: the daemon opens it (it also runs the
 * engine's steps and its notify fd) and closes it after store_close().
 * Every operation completes at once (STORE_DONE) with a log ticket.
 */
#ifndef TALLY_STORE_ENGINE_H
#define TALLY_STORE_ENGINE_H

#include "store.h"

/* SCAN's answer: arrays the store owns and reuses, valid until the next
 * SCAN on the store. */
struct store_engine_scan {
    const char **keys;
    size_t *klens;
    int64_t *values;
    int64_t *expires;
    size_t n, cap;
    char *bytes;                /* the keys' bytes, back to back */
    size_t blen, bcap;
};

struct store_engine {
    struct store base;          /* base.ops, base.db (borrowed) */
    struct store_engine_scan scan;
};

/* Set up se over db (borrowed; it must outlive se). */
void store_engine_init(struct store_engine *se, tally *db);

#endif /* TALLY_STORE_ENGINE_H */
