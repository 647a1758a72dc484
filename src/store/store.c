/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store.c - the calls the command layer makes on any store (store.h): thin
 * wrappers over its store_ops, so callers never test an optional op
 * themselves, and the one name table of STORE_* codes.
 */
#include <string.h>

#include "store.h"

int store_exec(struct store *st, const struct store_req *req,
               struct store_res *res, store_done_fn done, void *arg)
{
    return st->ops->exec(st, req, res, done, arg);
}

int store_has_batch(const struct store *st)
{
    return st->ops->batch_begin && st->ops->batch_commit &&
           st->ops->batch_abort;
}

tally_ticket store_durable(const struct store *st)
{
    return st->ops->durable ? st->ops->durable(st) : UINT64_MAX;
}

int64_t store_now_ms(const struct store *st)
{
    return st->ops->now_ms(st);
}

int store_ready(const struct store *st, char *why, size_t n)
{
    if (n)
        why[0] = 0;
    return st->ops->ready ? st->ops->ready(st, why, n) : 1;
}

size_t store_info(const struct store *st, struct store_info_kv *kv,
                  size_t max)
{
    return st->ops->info ? st->ops->info(st, kv, max) : 0;
}

int store_stats(const struct store *st, tally_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!st || !st->ops->stats)
        return -1;
    st->ops->stats(st, out);
    return 0;
}

const char *store_strerror(int rc)
{
    switch (rc) {
    case STORE_OK: return "ok";
    case STORE_NOTFOUND: return "not found";
    case STORE_NOTSET: return "condition not met";
    case STORE_EINVAL: return "bad request";
    case STORE_EKEYLEN: return "key too long";
    case STORE_EOVERFLOW: return "overflow";
    case STORE_EEXPIRE: return "expiry out of range";
    case STORE_EIDREUSED: return "idempotency id reused";
    case STORE_EINFLIGHT: return "first request with the id not durable yet";
    case STORE_EIDLEN: return "bad idempotency id length";
    case STORE_ENOSPC: return "disk full";
    case STORE_EFAILED: return "write path stopped";
    case STORE_ENOTDURABLE: return "value not durable";
    case STORE_EBUSY: return "busy";
    case STORE_EIO: return "I/O error";
    case STORE_EUNAVAIL: return "store unavailable";
    case STORE_EUNKNOWN: return "outcome unknown";
    case STORE_EUNSUPPORTED: return "not supported by this store";
    case STORE_ECONFLICT: return "batch conflicted with a concurrent change";
    default: return "unknown store code";
    }
}

void store_close(struct store *st)
{
    if (st && st->ops->close)
        st->ops->close(st);
}
