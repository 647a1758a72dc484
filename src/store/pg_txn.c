/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg_txn.c - one batch as one PostgreSQL transaction on the pipeline: send
 * its statements (pg_sql.c), read their rows into the batch, run the slow
 * operations between the two phases (pg_batch.c), answer everything at the
 * Sync, re-run after 40001/40P01/23505.  pg.c owns the connection and calls
 * pg_on_stmt/pg_on_sync as results arrive; the top of pg.c tells the whole
 * story.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"
/* ---- The pipeline ---------------------------------------------------------- */

void pg_exp_push(struct pg_store *st, enum pg_exp what, enum pg_stmt s)
{
    size_t i = (st->exp_head + st->exp_n++) % PG_EXP_MAX;
    st->exp[i].what = what;
    st->exp[i].stmt = s;
}

void pg_exp_pop(struct pg_store *st)
{
    st->exp_head = (st->exp_head + 1) % PG_EXP_MAX;
    st->exp_n--;
    st->exp_got = 0;
}

/* Send what libpq buffered; watch for writability if it could not. */
int pg_pump(struct pg_store *st)
{
    int r = PQflush(st->conn);
    if (r < 0 || st->send_failed) {
        st->send_failed = 0;
        pg_conn_lost(st, PQerrorMessage(st->conn));
        return -1;
    }
    pg_sock_watch(st, r == 1);
    return 0;
}

static void send_stmt(struct pg_store *st, enum pg_stmt s, int nparams,
                      const char *const *params)
{
    if (!PQsendQueryPrepared(st->conn, pg_sql_name[s], nparams, params, NULL,
                             NULL, 1)) {
        st->send_failed = 1; /* pg_pump() closes the connection */
        return;
    }
    pg_exp_push(st, EXP_STMT, s);
}

static void send_sync(struct pg_store *st)
{
    if (PQpipelineSync(st->conn))
        pg_exp_push(st, EXP_SYNC, 0);
    else
        st->send_failed = 1;
    st->cur_synced = 1;
}

static int key_cmp(const void *a, const void *b)
{
    const struct pg_key *x = *(const struct pg_key *const *)a;
    const struct pg_key *y = *(const struct pg_key *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int id_cmp(const void *a, const void *b)
{
    const struct pg_id *x = *(const struct pg_id *const *)a;
    const struct pg_id *y = *(const struct pg_id *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The keys of b for which sel() holds, sorted, as a bytea[] literal in
 * st->arr[slot]; how many. */
static size_t keys_param(struct pg_store *st, struct pg_batch *b, int slot,
                         int (*sel)(const struct pg_key *), struct pg_key ***out)
{
    struct pg_key **v = xcalloc(b->nkeys + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < b->nkeys; i++)
        if (sel(&b->keys[i]))
            v[n++] = &b->keys[i];
    qsort(v, n, sizeof *v, key_cmp);
    const char **kv = xcalloc(n + 1, sizeof *kv);
    size_t *lv = xcalloc(n + 1, sizeof *lv);
    for (size_t i = 0; i < n; i++) {
        kv[i] = v[i]->k;
        lv[i] = v[i]->klen;
    }
    pg_arr_bytea(&st->arr[slot], kv, lv, n);
    free(kv);
    free(lv);
    *out = v;
    return n;
}

static int sel_hot(const struct pg_key *k) { return k->hot; }
static int sel_lock(const struct pg_key *k) { return k->slow && k->write; }
static int sel_read(const struct pg_key *k) { return k->slow && !k->write; }
static int sel_lock_all(const struct pg_key *k) { return k->hot || sel_lock(k); }

static void send_hot(struct pg_store *st, struct pg_batch *b)
{
    struct pg_key **v;
    size_t n = keys_param(st, b, 0, sel_hot, &v);
    int64_t *sums = xcalloc(n + 1, sizeof *sums);
    /* Every live value must lie in [INT64_MIN + B, INT64_MAX - B] where B
     * is the largest running distance from the start of any key. */
    __int128 bound = 0;
    for (size_t i = 0; i < n; i++) {
        sums[i] = v[i]->sum;
        if (v[i]->maxp > bound)
            bound = v[i]->maxp;
        if (-(__int128)v[i]->minp > bound)
            bound = -(__int128)v[i]->minp;
    }
    pg_arr_i64(&st->arr[1], sums, NULL, n);
    __int128 lo = (__int128)INT64_MIN + bound, hi = (__int128)INT64_MAX - bound;
    buf_clear(&st->arr[2]);
    buf_clear(&st->arr[3]);
    if (lo > hi) { /* no live value can take it: all go the slow way */
        lo = 1;
        hi = 0;
    }
    buf_addi64(&st->arr[2], (int64_t)lo);
    buf_addi64(&st->arr[3], (int64_t)hi);
    const char *p[4] = {st->arr[0].p, st->arr[1].p, st->arr[2].p, st->arr[3].p};
    send_stmt(st, PG_S_HOT, 4, p);
    free(sums);
    free(v);
}

static void send_keys(struct pg_store *st, struct pg_batch *b, enum pg_stmt s,
                      int (*sel)(const struct pg_key *))
{
    struct pg_key **v;
    size_t n = keys_param(st, b, 0, sel, &v);
    free(v);
    if (!n)
        return;
    const char *p[1] = {st->arr[0].p};
    send_stmt(st, s, 1, p);
    st->cur_phase1++;
}

static void send_ids(struct pg_store *st, struct pg_batch *b)
{
    if (!b->nids)
        return;
    struct pg_id **v = xcalloc(b->nids, sizeof *v);
    const char **kv = xcalloc(b->nids, sizeof *kv);
    size_t *lv = xcalloc(b->nids, sizeof *lv);
    for (size_t i = 0; i < b->nids; i++)
        v[i] = &b->ids[i];
    qsort(v, b->nids, sizeof *v, id_cmp);
    for (size_t i = 0; i < b->nids; i++) {
        kv[i] = v[i]->id;
        lv[i] = v[i]->len;
    }
    pg_arr_bytea(&st->arr[0], kv, lv, b->nids);
    const char *p[1] = {st->arr[0].p};
    send_stmt(st, PG_S_IDS, 1, p);
    st->cur_phase1++;
    free(v);
    free(kv);
    free(lv);
}

static void send_barrier(struct pg_store *st, struct pg_op *op)
{
    char a[24], c[24];
    const char *p[2] = {a, c};
    switch (op->kind) {
    case PG_PURGE:
        snprintf(a, sizeof a, "%d", PG_PURGE_LIMIT);
        send_stmt(st, PG_S_PURGE, 1, p);
        return;
    case PG_INFO:
        send_stmt(st, PG_S_INFO, 0, NULL);
        return;
    default:
        break;
    }
    switch (op->req.op) {
    case STORE_SCAN: {
        size_t count = op->req.count ? op->req.count : 10;
        if (count > PG_SCAN_MAX)
            count = PG_SCAN_MAX;
        uint64_t cur = op->req.cursor > INT64_MAX ? 0 : op->req.cursor;
        snprintf(a, sizeof a, "%llu", (unsigned long long)cur);
        snprintf(c, sizeof c, "%zu", count + 1);
        send_stmt(st, PG_S_SCAN, 2, p);
        break;
    }
    case STORE_COUNT:
        send_stmt(st, PG_S_COUNT, 0, NULL);
        break;
    default: /* STORE_FLUSH */
        send_stmt(st, PG_S_FLUSH, 0, NULL);
        break;
    }
}

/* Phase 2 of a batch with slow operations: run them over the rows and send
 * what they leave, then Sync. */
static void send_writeback(struct pg_store *st, struct pg_batch *b)
{
    pg_batch_apply(b);
    size_t nw = 0, nd = 0;
    const char **wk = xcalloc(b->nkeys + 1, sizeof *wk);
    size_t *wl = xcalloc(b->nkeys + 1, sizeof *wl);
    const char **dk = xcalloc(b->nkeys + 1, sizeof *dk);
    size_t *dl = xcalloc(b->nkeys + 1, sizeof *dl);
    int64_t *wn = xcalloc(b->nkeys + 1, sizeof *wn);
    int64_t *we = xcalloc(b->nkeys + 1, sizeof *we);
    unsigned char *wnull = xcalloc(b->nkeys + 1, 1);
    for (size_t i = 0; i < b->nkeys; i++) {
        const struct pg_key *k = &b->keys[i];
        if (!sel_lock(k))
            continue;
        if (k->exists) {
            wk[nw] = k->k;
            wl[nw] = k->klen;
            wn[nw] = k->n;
            we[nw] = k->expire_at;
            wnull[nw] = k->expire_at == 0;
            nw++;
        } else {
            dk[nd] = k->k;
            dl[nd] = k->klen;
            nd++;
        }
    }
    if (nw) {
        pg_arr_bytea(&st->arr[0], wk, wl, nw);
        pg_arr_i64(&st->arr[1], wn, NULL, nw);
        pg_arr_i64(&st->arr[2], we, wnull, nw);
        const char *p[3] = {st->arr[0].p, st->arr[1].p, st->arr[2].p};
        send_stmt(st, PG_S_WRITE, 3, p);
    }
    if (nd) {
        pg_arr_bytea(&st->arr[0], dk, dl, nd);
        const char *p[1] = {st->arr[0].p};
        send_stmt(st, PG_S_DELETE, 1, p);
    }
    size_t ni = 0;
    for (size_t i = 0; i < b->nids; i++)
        ni += (size_t)b->ids[i].dirty;
    if (ni) {
        const char **ik = xcalloc(ni, sizeof *ik);
        size_t *il = xcalloc(ni, sizeof *il);
        const char **ak = xcalloc(ni, sizeof *ak);
        size_t *al = xcalloc(ni, sizeof *al);
        int64_t *col[6];
        for (int c = 0; c < 6; c++)
            col[c] = xcalloc(ni, sizeof **col);
        size_t j = 0;
        for (size_t i = 0; i < b->nids; i++) {
            const struct pg_id *e = &b->ids[i];
            if (!e->dirty)
                continue;
            ik[j] = e->id;
            il[j] = e->len;
            col[0][j] = (int64_t)e->fp;
            col[1][j] = e->res.rc;
            col[2][j] = e->res.found;
            col[3][j] = e->res.value;
            col[4][j] = e->res.expire_at;
            col[5][j] = (int64_t)e->res.n;
            ak[j] = e->answer ? e->answer : "";
            al[j] = e->answer ? e->alen : 0;
            j++;
        }
        pg_arr_bytea(&st->arr[0], ik, il, ni);
        for (int c = 0; c < 6; c++)
            pg_arr_i64(&st->arr[1 + c], col[c], NULL, ni);
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)st->once_ttl_ms);
        pg_arr_bytea(&st->arr[7], ak, al, ni);
        const char *p[9] = {st->arr[0].p, st->arr[1].p, st->arr[2].p,
                            st->arr[3].p, st->arr[4].p, st->arr[5].p,
                            st->arr[6].p, ttl, st->arr[7].p};
        send_stmt(st, PG_S_IDSAVE, 9, p);
        for (int c = 0; c < 6; c++)
            free(col[c]);
        free(ik);
        free(il);
        free(ak);
        free(al);
    }
    free(wk); free(wl); free(dk); free(dl); free(wn); free(we); free(wnull);
    send_sync(st);
}

/* Send b: as cur (nothing in flight: the per-batch state is reset), or
 * behind the batch in flight (a hot-only batch, whose statement and Sync
 * leave together, so that state stays cur's). */
static void send_batch(struct pg_store *st, struct pg_batch *b, int behind)
{
    if (!behind) {
        st->cur_synced = 0;
        st->cur_phase1 = 0;
        st->cur_err[0] = 0;
        st->cur_msg[0] = 0;
    }
    st->n_batches++;
    b->sent_us = pg_mono_us();
    if (b->barrier) {
        send_barrier(st, b->barrier);
    } else {
        /* Rows are locked in one order everywhere, so that instances never
         * deadlock: every counter of the batch in key order (one
         * statement), then every id in id order.  A batch with slow keys
         * therefore locks its hot keys too, first, with the slow ones. */
        if (b->has_slow)
            send_keys(st, b, PG_S_LOCK, sel_lock_all);
        if (b->has_hot)
            send_hot(st, b);
        send_keys(st, b, PG_S_READ, sel_read);
        send_ids(st, b);
    }
    st->cyc.round_trips += 1 + (st->cur_phase1 > 0);
    if (st->cur_phase1)
        PQsendFlushRequest(st->conn);
    else if (b->has_slow) /* slow operations of no key (DEL of none) */
        send_writeback(st, b);
    else
        send_sync(st);
    pg_stall_arm(st);
    pg_pump(st);
}

static size_t queued_reach(const struct pg_store *st, size_t n)
{
    size_t k = 0;
    const struct pg_op *op;
    TAILQ_FOREACH(op, &st->queue, link)
        if (++k >= n)
            break;
    return k;
}

/* Wait (the hold timer armed for us from now, at most PG_HOLD_MAX_US) for
 * as many operations as the last batch answered; 1: hold the queue. */
static int hold_for(struct pg_store *st, int64_t us)
{
    if (!st->expect || st->hold_over ||
        queued_reach(st, st->expect) >= st->expect || us <= 0)
        return 0;
    if (!st->hold_since_us)
        st->hold_since_us = pg_mono_us();
    if (!evtimer_pending(st->ev_hold, NULL)) {
        if (us > PG_HOLD_MAX_US)
            us = PG_HOLD_MAX_US;
        struct timeval tv = {0, (suseconds_t)us};
        evtimer_add(st->ev_hold, &tv);
    }
    return 1;
}

/* Group commit's wait.  Callers answered by a commit mostly ask again at
 * once (a client with one request in flight), but their requests come back
 * over a few loop passes, and sending the first of them alone would split
 * the next transaction in two: on a hot row that is a commit (an fsync)
 * more for the same increments.  So an idle pipeline waits until as many
 * operations are queued as the last batch answered, or for half of the
 * last commit's time (PG_HOLD_MAX_US at most), whichever comes first.  At
 * one client nothing waits (one answered, one queued); callers that do not
 * come back cost at most that half commit, as PostgreSQL's commit_delay
 * does.  1: hold the queue (the timer is armed). */
static int hold_back(struct pg_store *st)
{
    return hold_for(st, st->commit_us / 2);
}

/* Take the next batch off the queue and send it, as cur or behind it. */
static void start(struct pg_store *st, int behind)
{
    struct pg_batch *b = pg_batch_build(&st->queue, behind);
    if (!b->nops) { /* behind: the queue's head is not a hot operation */
        pg_batch_free(b);
        return;
    }
    evtimer_del(st->ev_hold);
    st->hold_over = 0;
    /* The steps of one cycle: ops queued while the last batch was in
     * flight start gathering when it was answered.  A batch sent behind
     * another gathers while that one commits, so there the steps overlap. */
    int64_t now = pg_mono_us(), first = TAILQ_FIRST(&b->ops)->queued_us;
    int64_t answered = st->answered_us;
    if (st->answered_us && first > st->answered_us)
        st->cyc.turnaround += first - st->answered_us;
    else if (st->answered_us)
        first = st->answered_us;
    st->cyc.gather += now - first;
    if (st->hold_since_us)
        st->cyc.hold += now - st->hold_since_us;
    st->hold_since_us = 0;
    st->answered_us = 0;
    st->n_ops += b->nops;
    if (behind) {
        st->behind = b;
        st->n_behind++;
    } else {
        if (answered) /* PostgreSQL had nothing of ours meanwhile */
            st->idle_us += (now - answered - st->idle_us) / 8;
        st->cur = b;
    }
    send_batch(st, b, behind);
}

/* A second transaction behind the one in flight.  On a hot row the cycle
 * is the commit (the WAL flush) plus the time PostgreSQL has nothing of
 * ours: the answers reaching tallyd, the replies, the clients' next
 * requests, the gathering and the send (idle_us).  A batch of coalesced
 * increments sent once cur's Sync is out waits in the backend's socket and
 * runs the moment cur commits, so that idle time leaves the cycle; but it
 * splits the callers into two groups, each commit carrying half of them.
 * With N callers one batch in flight gives N / (commit + idle), two give
 * N / max(commit + idle of N/2, 2 commits): a gain only while idle exceeds
 * the commit, so a batch goes behind only then (both averaged; measured on
 * the team machine under load the commit was the longer, 3-6 ms against
 * 2-4, INFO store_pg_time_*).  It gathers until as many operations are
 * queued as the last batch answered, or until three quarters of cur's
 * expected commit time (the last one's) have passed: later would leave the
 * backend idle, sooner would split the callers further.  Only hot
 * operations go behind (their statement and Sync leave together); anything
 * else waits for the pipeline to drain, so a read still waits for every
 * change in flight, and none goes while cur waits to re-run. */
static void kick_behind(struct pg_store *st)
{
    int gain = st->behind_mode ? st->behind_mode > 0
                               : st->idle_us > st->commit_avg_us;
    if (!gain || st->behind || st->rerun || !st->cur_synced ||
        evtimer_pending(st->ev_retry, NULL))
        return;
    int64_t left = st->cur->sent_us + st->commit_us * 3 / 4 - pg_mono_us();
    if (hold_for(st, left))
        return;
    start(st, 1);
}

/* Start the next batch: as cur if none is in flight (and hold_back() lets
 * it go), else behind it (kick_behind). */
static void kick(struct pg_store *st)
{
    if (st->state != PG_READY || TAILQ_EMPTY(&st->queue))
        return;
    if (st->cur)
        kick_behind(st);
    else if (!hold_back(st))
        start(st, 0);
}

void pg_hold_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    st->hold_over = 1;
    kick(st);
}

void pg_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    st->flush_armed = 0;
    kick(st);
}

/* ---- Results -------------------------------------------------------------- */

static void note_now(struct pg_store *st, struct pg_batch *b, int64_t now)
{
    if (b && now > b->now_ms)
        b->now_ms = now;
    st->clock_off_ms = now - pg_wall_ms();
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    if (PQgetlength(r, row, col) == 4)
        return pg_get_i32(PQgetvalue(r, row, col));
    return pg_get_i64(PQgetvalue(r, row, col));
}

/* Rows of counters; only those of hot keys for the hot statement, of slow
 * keys for the others (PG_S_LOCK returns the hot keys too). */
static void rows_keys(struct pg_store *st, struct pg_batch *b, const PGresult *r,
                      int hot)
{
    for (int i = 0; i < PQntuples(r); i++) {
        size_t ki = pg_batch_key(b, PQgetvalue(r, i, 0),
                                 (size_t)PQgetlength(r, i, 0));
        int64_t now = col_i64(r, i, 3), exp = col_i64(r, i, 2);
        note_now(st, b, now);
        /* NULL: no expiry (0 here); a time at or before now (a
         * placeholder's 0 too): no counter */
        if (ki == SIZE_MAX || b->keys[ki].hot != hot ||
            (!PQgetisnull(r, i, 2) && exp <= now))
            continue;
        struct pg_key *k = &b->keys[ki];
        k->got = 1;
        k->n = col_i64(r, i, 1);
        k->expire_at = exp;
    }
}

static void rows_ids(struct pg_store *st, struct pg_batch *b, const PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        size_t len = (size_t)PQgetlength(r, i, 0);
        int64_t now = col_i64(r, i, 8);
        note_now(st, b, now);
        for (size_t j = 0; j < b->nids; j++) {
            struct pg_id *e = &b->ids[j];
            if (e->len != len || memcmp(e->id, id, len))
                continue;
            e->live = col_i64(r, i, 7) > now;
            e->fp = (uint64_t)col_i64(r, i, 1);
            memset(&e->res, 0, sizeof e->res);
            e->res.rc = (int)col_i64(r, i, 2);
            e->res.found = (int)col_i64(r, i, 3);
            e->res.value = col_i64(r, i, 4);
            e->res.expire_at = col_i64(r, i, 5);
            e->res.n = (uint64_t)col_i64(r, i, 6);
            free(e->answer);
            e->answer = NULL;
            e->alen = (size_t)PQgetlength(r, i, 9);
            if (e->alen) {
                e->answer = xmalloc(e->alen);
                memcpy(e->answer, PQgetvalue(r, i, 9), e->alen);
            }
        }
    }
}

static void rows_scan(struct pg_store *st, struct pg_op *op, const PGresult *r)
{
    size_t count = op->req.count ? op->req.count : 10;
    if (count > PG_SCAN_MAX)
        count = PG_SCAN_MAX;
    size_t m = (size_t)PQntuples(r), take = m;
    uint64_t next = 0;
    if (m > count) {
        /* Row count is the first of the next page; a page never splits
         * rows of one h, so that the cursor (an h) resumes exactly. */
        next = (uint64_t)col_i64(r, (int)count, 3);
        take = count;
        while (take && (uint64_t)col_i64(r, (int)take - 1, 3) == next)
            take--;
        if (!take) { /* count rows of one h: a 2^-63 chance */
            take = count;
            next++;
        }
    }
    size_t bytes = 0;
    for (size_t i = 0; i < take; i++)
        bytes += (size_t)PQgetlength(r, (int)i, 0);
    op->rkeys = xcalloc(take + 1, sizeof *op->rkeys);
    op->rklens = xcalloc(take + 1, sizeof *op->rklens);
    op->rexp = xcalloc(take + 1, sizeof *op->rexp);
    op->values = xcalloc(take + 1, sizeof *op->values);
    op->rmem = xmalloc(bytes + 1);
    char *p = op->rmem;
    size_t n = 0;
    int64_t now = m ? col_i64(r, 0, 4) : pg_wall_ms() + st->clock_off_ms;
    if (m)
        note_now(st, NULL, now);
    for (size_t i = 0; i < take; i++) {
        const char *k = PQgetvalue(r, (int)i, 0);
        size_t klen = (size_t)PQgetlength(r, (int)i, 0);
        int64_t exp = col_i64(r, (int)i, 2);
        if (exp && exp <= now)
            continue;
        if (klen < op->req.plen || memcmp(k, op->req.prefix, op->req.plen))
            continue;
        memcpy(p, k, klen);
        op->rkeys[n] = p;
        op->rklens[n] = klen;
        op->values[n] = col_i64(r, (int)i, 1);
        op->rexp[n] = exp;
        p += klen;
        n++;
    }
    struct store_res *res = &op->res;
    res->n_items = n;
    res->keys = op->rkeys;
    res->klens = op->rklens;
    res->values = op->values;
    res->expires = op->rexp;
    res->n = next;
    res->now_ms = now;
}

/* The purge's rows: the keys of the counters it deleted, kept in the op
 * for their "expired" events once the purge has committed (pg_op_finish),
 * then the counts and the clock. */
static void rows_purged(struct pg_store *st, struct pg_op *op,
                        const PGresult *r)
{
    size_t m = (size_t)PQntuples(r), bytes = 0, n = 0;
    for (size_t i = 0; i < m; i++)
        bytes += (size_t)PQgetlength(r, (int)i, 0);
    free(op->rkeys); /* an earlier try's, re-run after 40P01 */
    free(op->rklens);
    free(op->rmem);
    op->rkeys = xcalloc(m + 1, sizeof *op->rkeys);
    op->rklens = xcalloc(m + 1, sizeof *op->rklens);
    op->rmem = xmalloc(bytes + 1);
    char *p = op->rmem;
    for (size_t i = 0; i < m; i++) {
        if (PQgetisnull(r, (int)i, 0)) {
            st->n_purged += (uint64_t)col_i64(r, (int)i, 1);
            note_now(st, NULL, col_i64(r, (int)i, 3));
            continue;
        }
        size_t klen = (size_t)PQgetlength(r, (int)i, 0);
        memcpy(p, PQgetvalue(r, (int)i, 0), klen);
        op->rkeys[n] = p;
        op->rklens[n++] = klen;
        p += klen;
    }
    op->res.keys = op->rkeys;
    op->res.klens = op->rklens;
    op->res.n_items = n;
}

static void rows_barrier(struct pg_store *st, struct pg_op *op, enum pg_stmt s,
                         const PGresult *r)
{
    struct store_res *res = &op->res;
    int one = PQntuples(r) > 0;
    switch (s) {
    case PG_S_SCAN:
        rows_scan(st, op, r);
        break;
    case PG_S_COUNT:
        if (!one)
            break;
        res->n = (uint64_t)col_i64(r, 0, 0);
        res->expires_n = (uint64_t)col_i64(r, 0, 1);
        res->avg_ttl_ms = col_i64(r, 0, 2);
        res->now_ms = col_i64(r, 0, 3);
        note_now(st, NULL, res->now_ms);
        break;
    case PG_S_FLUSH:
        if (one)
            res->n = (uint64_t)col_i64(r, 0, 0);
        res->now_ms = pg_wall_ms() + st->clock_off_ms;
        break;
    case PG_S_PURGE:
        rows_purged(st, op, r);
        break;
    case PG_S_INFO:
        if (!one)
            break;
        snprintf(st->synchronous_commit, sizeof st->synchronous_commit, "%.*s",
                 PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
        snprintf(st->standby_names, sizeof st->standby_names, "%.*s",
                 PQgetlength(r, 0, 1), PQgetvalue(r, 0, 1));
        st->sync_attached = col_i64(r, 0, 2);
        st->standbys = col_i64(r, 0, 3);
        st->in_recovery = col_i64(r, 0, 4);
        note_now(st, NULL, col_i64(r, 0, 5));
        break;
    default:
        break;
    }
}

void pg_on_stmt(struct pg_store *st, enum pg_stmt s, const PGresult *r)
{
    struct pg_batch *b = st->cur;
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_FATAL_ERROR) {
        if (!st->cur_err[0]) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(st->cur_err, sizeof st->cur_err, "%s", code ? code : "XX000");
            snprintf(st->cur_msg, sizeof st->cur_msg, "%s",
                     PQresultErrorMessage(r));
            char *nl = strchr(st->cur_msg, '\n');
            if (nl)
                *nl = 0;
        }
    } else if (rs == PGRES_TUPLES_OK && b) {
        if (s == PG_S_HOT || s == PG_S_LOCK || s == PG_S_READ)
            rows_keys(st, b, r, s == PG_S_HOT);
        else if (s == PG_S_IDS)
            rows_ids(st, b, r);
        else if (b->barrier)
            rows_barrier(st, b->barrier, s, r);
    }
    if (b && (s == PG_S_LOCK || s == PG_S_READ || s == PG_S_IDS) &&
        st->cur_phase1 && --st->cur_phase1 == 0) {
        if (st->cur_err[0])
            send_sync(st);
        else
            send_writeback(st, b);
        pg_pump(st);
    }
}

void pg_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state == PG_READY && st->cur) {
        send_batch(st, st->cur, 0);
        kick(st);
    }
}

static int retryable(const char *code)
{
    return !strcmp(code, "40001") || !strcmp(code, "40P01") ||
           !strcmp(code, "23505");
}

/* Re-run cur after a jittered backoff that doubles with its attempts. */
static void retry_arm(struct pg_store *st)
{
    int a = st->cur->attempt - 1;
    int ms = 1 << (a < 7 ? a : 7);
    int us = ms * 500 + rand() % (ms * 1000 + 1); /* 0.5x..1.5x */
    struct timeval tv = {us / 1000000, us % 1000000};
    evtimer_add(st->ev_retry, &tv);
}

/* cur is done with: the batch behind it (if any) becomes cur, its
 * statements and Sync all sent; with none, a batch waiting to re-run. */
static void promote(struct pg_store *st)
{
    st->cur = st->behind;
    st->behind = NULL;
    st->cur_synced = st->cur != NULL;
    st->cur_phase1 = 0;
    st->cur_err[0] = 0;
    st->cur_msg[0] = 0;
    if (st->cur) {
        /* PostgreSQL starts it now, when the one ahead has committed. */
        int64_t now = pg_mono_us();
        if (st->cur->sent_us < now)
            st->cur->sent_us = now;
    } else if (st->rerun) {
        st->cur = st->rerun;
        st->rerun = NULL;
        retry_arm(st);
    }
}

/* The Sync of the batch in flight came back: it committed (or, after an
 * error, rolled back). */
void pg_on_sync(struct pg_store *st)
{
    struct pg_batch *b = st->cur;
    if (!b)
        return;
    if (st->cur_err[0]) {
        if (retryable(st->cur_err) && b->attempt < PG_RETRY_MAX) {
            b->attempt++;
            st->n_retries++;
            pg_batch_reset(b);
            if (!st->behind) {
                retry_arm(st);
                return;
            }
            /* It runs again after the batch sent behind it (concurrent
             * operations of other callers: either serial order is valid),
             * and nothing new goes behind before it. */
            st->rerun = b;
            promote(st);
            return;
        }
        char d[160];
        snprintf(d, sizeof d, "postgresql: %.110s (SQLSTATE %s%s)", st->cur_msg,
                 st->cur_err, b->attempt ? ", after retries" : "");
        promote(st);
        st->expect = 0;
        pg_fail_list(st, &b->ops, STORE_EIO, d);
        pg_batch_free(b);
        kick(st);
        if (!st->cur)
            pg_stall_stop(st);
        return;
    }
    if (b->has_hot)
        pg_batch_answer_hot(b, &st->queue);
    int64_t t0 = pg_mono_us();
    st->commit_us = t0 - b->sent_us;
    st->commit_avg_us += (st->commit_us - st->commit_avg_us) / 8;
    st->cyc.commit += st->commit_us;
    promote(st);
    st->expect = 0;
    struct pg_op *op;
    /* The callers of the next batch: those answered now, and those that
     * came back while this one was in flight (without them the wait
     * would send before the last of the others, and they would miss
     * every batch by the same few). */
    TAILQ_FOREACH(op, &st->queue, link)
        st->expect += op->kind == PG_USER;
    while ((op = TAILQ_FIRST(&b->ops))) {
        TAILQ_REMOVE(&b->ops, op, link);
        st->expect += op->kind == PG_USER;
        if (op->res.now_ms == 0)
            op->res.now_ms = b->now_ms ? b->now_ms : pg_wall_ms() + st->clock_off_ms;
        pg_op_finish(st, op);
    }
    st->answered_us = pg_mono_us();
    st->cyc.answer += st->answered_us - t0;
    pg_batch_free(b);
    kick(st);
    if (!st->cur)
        pg_stall_stop(st);
}
