/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pg.c - the PostgreSQL store's connection and queue: store.h's operations
 * over one libpq connection, non-blocking and in pipeline mode, on the
 * caller's libevent loop.  pg_batch.c decides what one transaction holds and
 * computes the answers; pg_sql.c has the SQL; docs/postgresql.md the
 * promises.
 *
 * Life of an operation.  store_exec copies the request into a pg_op and
 * queues it; the first one of a loop pass makes the flush event active, so
 * the flush runs after every callback of that pass.  The flush builds one
 * batch from the queue and sends it as one implicit transaction (the
 * statements of one pipeline Sync): the coalesced increments, the locks of
 * the slow keys and ids; if there are slow operations it asks for those
 * rows (a Flush), runs the operations in C and sends the rows they leave;
 * then Sync, which commits.  Answers go out when the Sync's result arrives,
 * that is after the commit.  Meanwhile the next batch gathers in the queue:
 * one transaction is in flight at a time, so a read of a key with changes
 * in flight is served after their commit.
 *
 * Faults.  40001, 40P01 (and 23505, two instances creating one id) re-run
 * the batch after a jittered backoff, at most PG_RETRY_MAX times.  A
 * connection lost after the Sync of a batch that changes something was
 * sent: every operation of it gets STORE_EUNKNOWN.  Lost before: nothing
 * committed, STORE_EUNAVAIL.  While the connection is down every operation
 * fails at once with STORE_EUNAVAIL; a timer reconnects with backoff.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"
#include "pg_int.h"

#define PG_RETRY_MAX 10
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
#define PG_TICK_MS 1000      /* purge; info every PG_INFO_TICKS */
#define PG_INFO_TICKS 5
#define PG_SCAN_MAX 1000     /* rows of one SCAN page at most */
#define PG_EXP_MAX 64

enum pg_state { PG_DOWN = 0, PG_CONNECTING, PG_SETUP, PG_PREPARING, PG_READY };

/* What the next result of the pipeline belongs to. */
enum pg_exp { EXP_PREPARE, EXP_STMT, EXP_SYNC };

struct pg_store {
    struct store base;
    struct event_base *evb;
    char *uri;
    int sync_policy;
    PGconn *conn;
    enum pg_state state;
    int fd;
    struct event *ev_read, *ev_write;
    struct event *ev_flush, *ev_retry, *ev_reconnect, *ev_tick;
    int flush_armed;
    struct pg_opq queue;
    struct pg_batch *cur;     /* the batch in flight or waiting to re-run */
    int cur_synced;           /* its Sync was sent */
    int cur_phase1;           /* slow rows still to come before phase 2 */
    char cur_err[6];          /* its first SQLSTATE, "" if none */
    char cur_msg[120];
    struct { enum pg_exp what; enum pg_stmt stmt; } exp[PG_EXP_MAX];
    size_t exp_head, exp_n;
    int exp_got;              /* the head statement's result came */
    int backoff_ms;
    int64_t schema_version;
    char why[160];            /* ready() when not ready */
    struct buf arr[8];        /* parameter encodings */
    unsigned ticks;
    /* facts for info(), from PG_S_INFO */
    char synchronous_commit[32];
    char standby_names[128];
    int64_t sync_attached, standbys, in_recovery;
    int64_t clock_off_ms;     /* the database's clock minus ours */
    int purge_queued, info_queued;
    int send_failed;          /* libpq refused to queue a message */
    int closing;
    uint64_t n_batches, n_ops, n_retries, n_unknown, n_purged;
};

static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void conn_lost(struct pg_store *st, const char *why);
static void send_batch(struct pg_store *st);
static void sock_watch(struct pg_store *st, int want_write);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *sync_setting(int policy)
{
    return policy == TALLY_SYNC_ALWAYS ? "on" : "off";
}

/* ---- Operations ----------------------------------------------------------- */

static struct pg_op *op_new(const struct store_req *r, store_done_fn done,
                            void *arg)
{
    struct pg_op *op = xcalloc(1, sizeof *op);
    op->req = *r;
    op->done = done;
    op->arg = arg;
    size_t need = r->klen + r->plen + r->oncelen + 3;
    int multi = r->op == STORE_DEL || r->op == STORE_EXISTS ||
                r->op == STORE_MGET || r->op == STORE_MSET;
    if (multi)
        for (size_t i = 0; i < r->nkeys; i++)
            need += r->klens[i];
    char *p = op->mem = xmalloc(need);
    if (r->key) {
        memcpy(p, r->key, r->klen);
        op->req.key = p;
        p += r->klen;
    }
    if (r->prefix) {
        memcpy(p, r->prefix, r->plen);
        op->req.prefix = p;
        p += r->plen;
    }
    if (r->once) {
        memcpy(p, r->once, r->oncelen);
        op->req.once = p;
        p += r->oncelen;
    }
    if (multi) {
        size_t n = r->nkeys ? r->nkeys : 1;
        op->keyv = xcalloc(n, sizeof *op->keyv);
        op->klenv = xcalloc(n, sizeof *op->klenv);
        for (size_t i = 0; i < r->nkeys; i++) {
            memcpy(p, r->keys[i], r->klens[i]);
            op->keyv[i] = p;
            op->klenv[i] = r->klens[i];
            p += r->klens[i];
        }
        op->req.keys = op->keyv;
        op->req.klens = op->klenv;
        if (r->op == STORE_MSET) {
            op->numv = xcalloc(n, sizeof *op->numv);
            memcpy(op->numv, r->nums, r->nkeys * sizeof *op->numv);
            op->req.nums = op->numv;
        }
    } else {
        op->req.keys = NULL;
        op->req.klens = NULL;
        op->req.nums = NULL;
    }
    return op;
}

static void op_free(struct pg_op *op)
{
    free(op->mem);
    free(op->keyv);
    free(op->klenv);
    free(op->numv);
    free(op->values);
    free(op->founds);
    free(op->rkeys);
    free(op->rklens);
    free(op->rexp);
    free(op->rmem);
    free(op);
}

/* Hand the result to the caller (the store's maintenance has none) and
 * free the op, which must be on no list. */
static void op_finish(struct pg_store *st, struct pg_op *op)
{
    if (op->kind == PG_PURGE)
        st->purge_queued = 0;
    else if (op->kind == PG_INFO)
        st->info_queued = 0;
    else
        op->done(op->arg, &op->res);
    op_free(op);
}

static void op_fail(struct pg_store *st, struct pg_op *op, int rc,
                    const char *detail)
{
    free(op->values);
    free(op->founds);
    op->values = NULL;
    op->founds = NULL;
    memset(&op->res, 0, sizeof op->res);
    op->res.rc = rc;
    op->res.now_ms = wall_ms() + st->clock_off_ms;
    snprintf(op->res.detail, sizeof op->res.detail, "%s", detail);
    op_finish(st, op);
}

static void fail_list(struct pg_store *st, struct pg_opq *q, int rc,
                      const char *detail)
{
    struct pg_op *op;
    while ((op = TAILQ_FIRST(q))) {
        TAILQ_REMOVE(q, op, link);
        if (rc == STORE_EUNKNOWN && pg_op_writes(op))
            st->n_unknown++;
        op_fail(st, op, rc == STORE_EUNKNOWN && !pg_op_writes(op)
                            ? STORE_EUNAVAIL : rc, detail);
    }
}

static void enqueue(struct pg_store *st, struct pg_op *op)
{
    TAILQ_INSERT_TAIL(&st->queue, op, link);
    if (!st->flush_armed) {
        st->flush_armed = 1;
        event_active(st->ev_flush, EV_TIMEOUT, 0);
    }
}

static void enqueue_own(struct pg_store *st, enum pg_kind kind)
{
    struct store_req r = {.op = STORE_COUNT};
    struct pg_op *op = op_new(&r, NULL, NULL);
    op->kind = kind;
    enqueue(st, op);
}

/* ---- The pipeline ---------------------------------------------------------- */

static void exp_push(struct pg_store *st, enum pg_exp what, enum pg_stmt s)
{
    size_t i = (st->exp_head + st->exp_n++) % PG_EXP_MAX;
    st->exp[i].what = what;
    st->exp[i].stmt = s;
}

static void exp_pop(struct pg_store *st)
{
    st->exp_head = (st->exp_head + 1) % PG_EXP_MAX;
    st->exp_n--;
    st->exp_got = 0;
}

/* Send what libpq buffered; watch for writability if it could not. */
static int pump(struct pg_store *st)
{
    int r = PQflush(st->conn);
    if (r < 0 || st->send_failed) {
        st->send_failed = 0;
        conn_lost(st, PQerrorMessage(st->conn));
        return -1;
    }
    sock_watch(st, r == 1);
    return 0;
}

static void send_stmt(struct pg_store *st, enum pg_stmt s, int nparams,
                      const char *const *params)
{
    if (!PQsendQueryPrepared(st->conn, pg_sql_name[s], nparams, params, NULL,
                             NULL, 1)) {
        st->send_failed = 1; /* pump() closes the connection */
        return;
    }
    exp_push(st, EXP_STMT, s);
}

static void send_sync(struct pg_store *st)
{
    if (PQpipelineSync(st->conn))
        exp_push(st, EXP_SYNC, 0);
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
            j++;
        }
        pg_arr_bytea(&st->arr[0], ik, il, ni);
        for (int c = 0; c < 6; c++)
            pg_arr_i64(&st->arr[1 + c], col[c], NULL, ni);
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)TALLY_ONCE_TTL_DEFAULT);
        const char *p[8] = {st->arr[0].p, st->arr[1].p, st->arr[2].p,
                            st->arr[3].p, st->arr[4].p, st->arr[5].p,
                            st->arr[6].p, ttl};
        send_stmt(st, PG_S_IDSAVE, 8, p);
        for (int c = 0; c < 6; c++)
            free(col[c]);
        free(ik);
        free(il);
    }
    free(wk); free(wl); free(dk); free(dl); free(wn); free(we); free(wnull);
    send_sync(st);
}

static void send_batch(struct pg_store *st)
{
    struct pg_batch *b = st->cur;
    st->cur_synced = 0;
    st->cur_phase1 = 0;
    st->cur_err[0] = 0;
    st->cur_msg[0] = 0;
    st->n_batches++;
    if (b->barrier) {
        send_barrier(st, b->barrier);
    } else {
        if (b->has_hot)
            send_hot(st, b);
        send_keys(st, b, PG_S_LOCK, sel_lock);
        send_keys(st, b, PG_S_READ, sel_read);
        send_ids(st, b);
    }
    if (st->cur_phase1)
        PQsendFlushRequest(st->conn);
    else
        send_sync(st);
    pump(st);
}

/* Start the next batch if none is in flight. */
static void kick(struct pg_store *st)
{
    if (st->state != PG_READY || st->cur || TAILQ_EMPTY(&st->queue))
        return;
    st->cur = pg_batch_build(&st->queue);
    st->n_ops += st->cur->nops;
    send_batch(st);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
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
    st->clock_off_ms = now - wall_ms();
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    if (PQgetlength(r, row, col) == 4)
        return pg_get_i32(PQgetvalue(r, row, col));
    return pg_get_i64(PQgetvalue(r, row, col));
}

static void rows_keys(struct pg_store *st, struct pg_batch *b, const PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        size_t ki = pg_batch_key(b, PQgetvalue(r, i, 0),
                                 (size_t)PQgetlength(r, i, 0));
        int64_t now = col_i64(r, i, 3), exp = col_i64(r, i, 2);
        note_now(st, b, now);
        /* NULL: no expiry (0 here); a time at or before now (a
         * placeholder's 0 too): no counter */
        if (ki == SIZE_MAX || (!PQgetisnull(r, i, 2) && exp <= now))
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
    int64_t now = m ? col_i64(r, 0, 4) : wall_ms() + st->clock_off_ms;
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
        res->now_ms = wall_ms() + st->clock_off_ms;
        break;
    case PG_S_PURGE:
        if (one) {
            st->n_purged += (uint64_t)col_i64(r, 0, 0);
            note_now(st, NULL, col_i64(r, 0, 2));
        }
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

static void on_stmt(struct pg_store *st, enum pg_stmt s, const PGresult *r)
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
            rows_keys(st, b, r);
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
        pump(st);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state == PG_READY && st->cur)
        send_batch(st);
}

static int retryable(const char *code)
{
    return !strcmp(code, "40001") || !strcmp(code, "40P01") ||
           !strcmp(code, "23505");
}

/* The Sync of the batch in flight came back: it committed (or, after an
 * error, rolled back). */
static void on_sync(struct pg_store *st)
{
    struct pg_batch *b = st->cur;
    if (!b)
        return;
    if (st->cur_err[0]) {
        if (retryable(st->cur_err) && b->attempt < PG_RETRY_MAX) {
            int ms = 1 << (b->attempt < 7 ? b->attempt : 7);
            int us = ms * 500 + rand() % (ms * 1000 + 1); /* 0.5x..1.5x */
            b->attempt++;
            st->n_retries++;
            pg_batch_reset(b);
            struct timeval tv = {us / 1000000, us % 1000000};
            evtimer_add(st->ev_retry, &tv);
            return;
        }
        char d[160];
        snprintf(d, sizeof d, "postgresql: %.110s (SQLSTATE %s%s)", st->cur_msg,
                 st->cur_err, b->attempt ? ", after retries" : "");
        st->cur = NULL;
        fail_list(st, &b->ops, STORE_EIO, d);
        pg_batch_free(b);
        kick(st);
        return;
    }
    if (b->has_hot)
        pg_batch_answer_hot(b, &st->queue);
    st->cur = NULL;
    struct pg_op *op;
    while ((op = TAILQ_FIRST(&b->ops))) {
        TAILQ_REMOVE(&b->ops, op, link);
        if (op->res.now_ms == 0)
            op->res.now_ms = b->now_ms ? b->now_ms : wall_ms() + st->clock_off_ms;
        op_finish(st, op);
    }
    pg_batch_free(b);
    kick(st);
}

/* ---- Connection ------------------------------------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    if (st->state != PG_READY)
        return;
    st->ticks++;
    if (!st->purge_queued) {
        st->purge_queued = 1;
        enqueue_own(st, PG_PURGE);
    }
    if (st->ticks % PG_INFO_TICKS == 0 && !st->info_queued) {
        st->info_queued = 1;
        enqueue_own(st, PG_INFO);
    }
}

static void set_why(struct pg_store *st, const char *why)
{
    snprintf(st->why, sizeof st->why, "postgresql: %s", why);
    for (char *p = st->why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(st->why);
    while (n && st->why[n - 1] == ' ')
        st->why[--n] = 0;
}

static void drop_conn(struct pg_store *st)
{
    if (st->ev_read)
        event_free(st->ev_read);
    if (st->ev_write)
        event_free(st->ev_write);
    st->ev_read = st->ev_write = NULL;
    st->fd = -1;
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    st->exp_n = 0;
    st->exp_head = 0;
    st->exp_got = 0;
    evtimer_del(st->ev_retry);
}

static void schedule_reconnect(struct pg_store *st)
{
    int ms = st->backoff_ms;
    ms = ms / 2 + rand() % (ms / 2 + 1);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(st->ev_reconnect, &tv);
    st->backoff_ms = st->backoff_ms * 2 > PG_BACKOFF_MAX_MS
                         ? PG_BACKOFF_MAX_MS : st->backoff_ms * 2;
}

static void conn_lost(struct pg_store *st, const char *why)
{
    if (st->state == PG_DOWN)
        return;
    set_why(st, why && *why ? why : "connection lost");
    if (!st->closing)
        fprintf(stderr, "tallyd: %s; reconnecting\n", st->why);
    struct pg_batch *b = st->cur;
    int synced = st->cur_synced && !evtimer_pending(st->ev_retry, NULL);
    drop_conn(st);
    st->state = PG_DOWN;
    st->cur = NULL;
    if (b) {
        char d[160];
        if (synced && b->writes) {
            snprintf(d, sizeof d, "%.80s; the change may or may not have been "
                     "applied (retry with an idempotency id)", st->why);
            fail_list(st, &b->ops, STORE_EUNKNOWN, d);
        } else {
            fail_list(st, &b->ops, STORE_EUNAVAIL, st->why);
        }
        pg_batch_free(b);
    }
    fail_list(st, &st->queue, STORE_EUNAVAIL, st->why);
    if (!st->closing)
        schedule_reconnect(st);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg);

/* Watch the connection's socket (libpq may change it while connecting to
 * several hosts): always for reading when ready, for writing on demand. */
static void sock_watch(struct pg_store *st, int want_write)
{
    int fd = PQsocket(st->conn);
    if (fd != st->fd) {
        if (st->ev_read)
            event_free(st->ev_read);
        if (st->ev_write)
            event_free(st->ev_write);
        st->ev_read = event_new(st->evb, fd, EV_READ | EV_PERSIST, sock_cb, st);
        st->ev_write = event_new(st->evb, fd, EV_WRITE, sock_cb, st);
        st->fd = fd;
    }
    event_add(st->ev_read, NULL);
    if (want_write)
        event_add(st->ev_write, NULL);
    else
        event_del(st->ev_write);
}

static void setup_prepare(struct pg_store *st)
{
    if (!PQenterPipelineMode(st->conn)) {
        conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    for (int s = 0; s < PG_S_COUNT_ALL; s++) {
        if (!PQsendPrepare(st->conn, pg_sql_name[s], pg_sql_text[s], 0, NULL)) {
            conn_lost(st, PQerrorMessage(st->conn));
            return;
        }
        exp_push(st, EXP_PREPARE, (enum pg_stmt)s);
    }
    if (!PQpipelineSync(st->conn)) {
        conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    exp_push(st, EXP_SYNC, 0);
    st->state = PG_PREPARING;
    pump(st);
}

/* Results of the schema script (a simple query). */
static void setup_results(struct pg_store *st)
{
    while (!PQisBusy(st->conn)) {
        PGresult *r = PQgetResult(st->conn);
        if (!r) {
            if (st->schema_version > PG_SCHEMA_VERSION) {
                char d[120];
                snprintf(d, sizeof d, "schema version %lld is newer than this "
                         "tallyd's (%d): upgrade tallyd",
                         (long long)st->schema_version, PG_SCHEMA_VERSION);
                conn_lost(st, d);
                return;
            }
            setup_prepare(st);
            return;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_FATAL_ERROR) {
            char d[160];
            snprintf(d, sizeof d, "creating the schema: %s",
                     PQresultErrorMessage(r));
            PQclear(r);
            while ((r = PQgetResult(st->conn)))
                PQclear(r);
            conn_lost(st, d);
            return;
        }
        if (rs == PGRES_TUPLES_OK && PQnfields(r) == 1 && PQntuples(r) == 1 &&
            !strcmp(PQfname(r, 0), "max"))
            st->schema_version = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

static void connected(struct pg_store *st)
{
    if (PQsetnonblocking(st->conn, 1)) {
        conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    struct buf q = BUF_INIT;
    buf_printf(&q, "SET client_min_messages TO warning;"
               "SET synchronous_commit TO %s;"
               "SET application_name TO 'tallyd';%s",
               sync_setting(st->sync_policy), pg_sql_schema);
    int ok = PQsendQuery(st->conn, q.p);
    buf_free(&q);
    if (!ok) {
        conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    st->schema_version = 0;
    st->state = PG_SETUP;
    pump(st);
}

static void connect_poll(struct pg_store *st)
{
    switch (PQconnectPoll(st->conn)) {
    case PGRES_POLLING_READING:
        sock_watch(st, 0);
        break;
    case PGRES_POLLING_WRITING:
        sock_watch(st, 1);
        break;
    case PGRES_POLLING_OK:
        connected(st);
        break;
    default:
        conn_lost(st, PQerrorMessage(st->conn));
        break;
    }
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    st->conn = PQconnectStart(st->uri);
    if (!st->conn || PQstatus(st->conn) == CONNECTION_BAD) {
        st->state = PG_CONNECTING; /* so that conn_lost reschedules */
        conn_lost(st, st->conn ? PQerrorMessage(st->conn) : "out of memory");
        return;
    }
    st->state = PG_CONNECTING;
    st->fd = -1;
    connect_poll(st);
}

/* Results of the pipeline, as far as they have come. */
static void pipeline_results(struct pg_store *st)
{
    while (st->conn && st->exp_n && !PQisBusy(st->conn)) {
        PGresult *r = PQgetResult(st->conn);
        size_t h = st->exp_head;
        if (!r) {
            if (!st->exp_got)
                break;
            exp_pop(st);
            continue;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            if (st->exp[h].what != EXP_SYNC) {
                conn_lost(st, "pipeline out of step");
                return;
            }
            exp_pop(st);
            if (st->state == PG_PREPARING) {
                st->state = PG_READY;
                st->why[0] = 0;
                st->backoff_ms = PG_BACKOFF_MIN_MS;
                fprintf(stderr, "tallyd: postgresql: connected to %s:%s\n",
                        PQhost(st->conn), PQport(st->conn));
                st->info_queued = 1;
                enqueue_own(st, PG_INFO);
            } else {
                on_sync(st);
            }
            continue;
        }
        st->exp_got = 1;
        if (st->exp[h].what == EXP_PREPARE) {
            if (rs == PGRES_FATAL_ERROR) {
                char d[160];
                snprintf(d, sizeof d, "preparing %s: %s",
                         pg_sql_name[st->exp[h].stmt], PQresultErrorMessage(r));
                PQclear(r);
                conn_lost(st, d);
                return;
            }
        } else if (st->exp[h].what == EXP_STMT) {
            on_stmt(st, st->exp[h].stmt, r);
        }
        PQclear(r);
    }
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_store *st = arg;
    switch (st->state) {
    case PG_CONNECTING:
        connect_poll(st);
        return;
    case PG_DOWN:
        return;
    default:
        break;
    }
    if ((what & EV_WRITE) && pump(st) < 0)
        return;
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(st->conn)) {
        conn_lost(st, PQerrorMessage(st->conn));
        return;
    }
    if (st->state == PG_SETUP)
        setup_results(st);
    else
        pipeline_results(st);
    if (st->conn && PQstatus(st->conn) == CONNECTION_BAD)
        conn_lost(st, PQerrorMessage(st->conn));
}

/* ---- store_ops ------------------------------------------------------------ */

static int pg_exec(struct store *s, const struct store_req *req,
                   struct store_res *res, store_done_fn done, void *arg)
{
    struct pg_store *st = (struct pg_store *)s;
    memset(res, 0, sizeof *res);
    res->now_ms = wall_ms() + st->clock_off_ms;
    int multi = req->op == STORE_DEL || req->op == STORE_EXISTS ||
                req->op == STORE_MGET || req->op == STORE_MSET;
    if (req->op == STORE_SAVE || req->op == STORE_BGSAVE ||
        req->op >= STORE_OPK_COUNT) {
        res->rc = STORE_EUNSUPPORTED;
        snprintf(res->detail, sizeof res->detail,
                 "postgresql: snapshots are the database's (pg_dump, base backups)");
        return STORE_DONE;
    }
    if (req->oncelen > TALLY_ID_MAX) {
        res->rc = STORE_EIDLEN;
        return STORE_DONE;
    }
    if (!multi && req->op != STORE_SCAN && req->op != STORE_COUNT &&
        req->op != STORE_FLUSH && req->klen > TALLY_KEY_MAX)
        res->rc = STORE_EKEYLEN;
    for (size_t i = 0; multi && i < req->nkeys; i++)
        if (req->klens[i] > TALLY_KEY_MAX)
            res->rc = STORE_EKEYLEN;
    if (res->rc)
        return STORE_DONE;
    if (st->state != PG_READY) {
        res->rc = STORE_EUNAVAIL;
        snprintf(res->detail, sizeof res->detail, "%s",
                 st->why[0] ? st->why : "postgresql: connecting");
        return STORE_DONE;
    }
    enqueue(st, op_new(req, done, arg));
    return STORE_PENDING;
}

static tally_ticket pg_durable(const struct store *s)
{
    return UINT64_MAX;
}

static int64_t pg_now_ms(const struct store *s)
{
    const struct pg_store *st = (const struct pg_store *)s;
    return wall_ms() + st->clock_off_ms;
}

static int pg_ready(const struct store *s, char *why, size_t n)
{
    const struct pg_store *st = (const struct pg_store *)s;
    if (st->state == PG_READY)
        return 1;
    snprintf(why, n, "%s", st->why[0] ? st->why : "postgresql: connecting");
    return 0;
}

static size_t pg_info(const struct store *s, struct store_info_kv *kv,
                      size_t max)
{
    const struct pg_store *st = (const struct pg_store *)s;
    static const char *const states[] = {"down", "connecting", "connecting",
                                         "connecting", "ready"};
    size_t n = 0;
#define KV(nm, ...)                                                        \
    do {                                                                   \
        if (n < max) {                                                     \
            kv[n].name = nm;                                               \
            snprintf(kv[n].value, sizeof kv[n].value, __VA_ARGS__);        \
            n++;                                                           \
        }                                                                  \
    } while (0)
    int configured = st->standby_names[0] != 0;
    KV("store", "postgresql");
    KV("store_state", "%s", states[st->state]);
    if (st->state != PG_READY)
        KV("store_reason", "%.120s", st->why[0] ? st->why : "connecting");
    KV("store_durability", "synchronous_commit=%s, %s",
       st->synchronous_commit[0] ? st->synchronous_commit
                                 : sync_setting(st->sync_policy),
       !configured ? "no synchronous standby configured"
       : st->sync_attached ? "synchronous standby attached"
                           : "synchronous standby configured but NOT attached");
    KV("store_pg_synchronous_commit", "%s", st->synchronous_commit[0]
           ? st->synchronous_commit : sync_setting(st->sync_policy));
    KV("store_pg_synchronous_standby_names", "%s", st->standby_names);
    KV("store_pg_sync_standby_configured", "%d", configured);
    KV("store_pg_sync_standbys_attached", "%lld", (long long)st->sync_attached);
    KV("store_pg_standbys", "%lld", (long long)st->standbys);
    if (st->conn && st->state == PG_READY)
        KV("store_pg_server", "%s:%s", PQhost(st->conn), PQport(st->conn));
    KV("store_pg_schema_version", "%lld", (long long)st->schema_version);
    KV("store_pg_transactions", "%llu", (unsigned long long)st->n_batches);
    KV("store_pg_ops", "%llu", (unsigned long long)st->n_ops);
    KV("store_pg_retries", "%llu", (unsigned long long)st->n_retries);
    KV("store_pg_unknown_outcomes", "%llu", (unsigned long long)st->n_unknown);
    KV("store_pg_purged", "%llu", (unsigned long long)st->n_purged);
#undef KV
    return n;
}

static void pg_close(struct store *s)
{
    struct pg_store *st = (struct pg_store *)s;
    st->closing = 1;
    if (st->state != PG_DOWN)
        conn_lost(st, "store closed");
    drop_conn(st);
    event_free(st->ev_flush);
    event_free(st->ev_retry);
    event_free(st->ev_reconnect);
    event_free(st->ev_tick);
    for (size_t i = 0; i < sizeof st->arr / sizeof st->arr[0]; i++)
        buf_free(&st->arr[i]);
    free(st->uri);
    free(st);
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .exec = pg_exec,
    .batch_begin = NULL, /* DEBT: MULTI/EXEC and scripts need an interactive
                            transaction on a dedicated connection */
    .batch_commit = NULL,
    .batch_abort = NULL,
    .durable = pg_durable,
    .now_ms = pg_now_ms,
    .ready = pg_ready,
    .info = pg_info,
    .close = pg_close,
};

int store_pg_open(struct event_base *base, const char *uri, int fsync_policy,
                  struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &perr);
    if (!opts) {
        snprintf(err, errlen, "postgresql: %s", perr ? perr : "bad URI");
        PQfreemem(perr);
        return -1;
    }
    PQconninfoFree(opts);
    struct pg_store *st = xcalloc(1, sizeof *st);
    st->base.ops = &pg_ops;
    st->evb = base;
    st->uri = xstrdup(uri);
    st->sync_policy = fsync_policy;
    st->fd = -1;
    st->backoff_ms = PG_BACKOFF_MIN_MS;
    TAILQ_INIT(&st->queue);
    st->ev_flush = event_new(base, -1, 0, flush_cb, st);
    st->ev_retry = evtimer_new(base, retry_cb, st);
    st->ev_reconnect = evtimer_new(base, reconnect_cb, st);
    st->ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, st);
    struct timeval tv = {PG_TICK_MS / 1000, (PG_TICK_MS % 1000) * 1000};
    event_add(st->ev_tick, &tv);
    set_why(st, "connecting");
    st->state = PG_CONNECTING;
    reconnect_cb(-1, 0, st);
    *out = &st->base;
    return 0;
}
