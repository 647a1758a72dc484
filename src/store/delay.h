/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * delay.h - the test store (delay.c): inner's operations, answered on a
 * later pass of base's loop in a shuffled order.  For tests and the hidden
 * `tallyd --store delay+engine:DIR`, never for production.
 */
#ifndef TALLY_STORE_DELAY_H
#define TALLY_STORE_DELAY_H

#include "store.h"

struct event_base;

/* A delay store over inner (borrowed; it must outlive the new store),
 * shuffling with seed.  Returns 0 with *out (close with store_close), or
 * -1 (*out NULL). */
int store_delay_open(struct event_base *base, struct store *inner,
                     uint64_t seed, struct store **out);

/* How many operations it has run on inner so far. */
uint64_t store_delay_ops(const struct store *st);

#endif /* TALLY_STORE_DELAY_H */
