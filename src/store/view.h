/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * view.h - a store batch's private view of the keys it touched, and every
 * single-key and multi-key store operation (store.h) run in C over it.  A
 * remote store that checks its batches at commit (the Redis store's
 * redis_xact.c) reads each key once, records here what it read, runs the
 * batch's operations over the view so later ones see earlier ones' writes,
 * and at commit checks the read states and writes the final ones.  The
 * view knows nothing of any store: no I/O, no clock of its own (now_ms is
 * the caller's, the store's clock).
 *
 * DEBT: pg_batch.c's pg_batch_run (do_incr, do_set, do_expire, do_multi)
 * holds the same semantics over its struct pg_key, for the PostgreSQL
 * store's transactions and batches; pg_xact.c and pg_batch_apply could run
 * over a struct view instead, which removes the second copy (left for the
 * PostgreSQL branches, which were changing those files at the time).  The
 * delay store (delay.c) replays its batches on the engine and has no copy.
 */
#ifndef TALLY_STORE_VIEW_H
#define TALLY_STORE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One key of the view. */
struct view_key {
    char *k;                   /* owned copy */
    size_t klen;
    int read;                  /* its state was read (view_read) */
    /* What was read: the state the commit checks is still there. */
    int was;                   /* it existed */
    int64_t was_n, was_x;      /* value, expiry (Unix ms, 0 none) */
    /* Its state as the batch's operations so far left it. */
    int exists;
    int64_t n, expire_at;
    int dirty;                 /* an operation wrote it (maybe back to the
                                  state read) */
};

struct view {
    struct view_key *keys;     /* in the order first touched */
    size_t n, cap;
    int64_t now_ms;            /* the store's clock for the next view_run */
};

void view_init(struct view *v);
/* Free the keys (v may be init'ed again). */
void view_free(struct view *v);
/* The key's index, or SIZE_MAX. */
size_t view_find(const struct view *v, const char *k, size_t klen);
/* The key's index, added (copied, not read yet) if new. */
size_t view_add(struct view *v, const char *k, size_t klen);
/* Key ki was read: it exists (value n, expiry x) or not. */
void view_read(struct view *v, size_t ki, int exists, int64_t n, int64_t x);

/* The keys an operation names: its key, or keys[nkeys] (DEL, EXISTS,
 * MGET, MSET); SCAN, COUNT and FLUSH name none. */
size_t view_req_nkeys(const struct store_req *r);
const char *view_req_key(const struct store_req *r, size_t i, size_t *klen);
/* Read-ahead (store_ops.batch_prefetch): call fn for each key r names
 * that a batch may read ahead of r's exec; none when r is an operation a
 * batch refuses (SCAN, COUNT, FLUSH, an idempotency id), and no key over
 * TALLY_KEY_MAX (its exec fails without reading). */
void view_req_each_key(const struct store_req *r,
                       void (*fn)(void *arg, const char *k, size_t klen),
                       void *arg);

/* Run r over the view (every key it names added and read before), as the
 * engine would run it (engine.c), at v->now_ms.  *res is filled from
 * store_res_init; for MGET and DEL the per-key arrays go into values and
 * founds (the caller's, r->nkeys each; NULL where the operation has none)
 * and res points at them.  Idempotency ids and SCAN, COUNT, FLUSH, SAVE:
 * STORE_EUNSUPPORTED, nothing changed.  Returns res->rc. */
int view_run(struct view *v, const struct store_req *r, struct store_res *res,
             int64_t *values, unsigned char *founds);

#endif /* TALLY_STORE_VIEW_H */
