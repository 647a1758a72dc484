/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * http_batch.c - POST /v1/batch: several counter operations as one atomic,
 * durable change (docs/http.md "Batches").  The body is
 *   {"ops": [{"op": "increment", "key": "a", "by": 5},
 *            {"op": "decrement", "key": "b"},
 *            {"op": "set", "key": "c", "value": 7},
 *            {"op": "delete", "key": "d"},
 *            {"op": "get", "key": "a"}]}
 * Every operation is checked before any runs (a 400 names the first bad
 * one).  They then run in order through cmd_exec inside one command-layer
 * batch (cmd_batch_begin, the mechanism MULTI/EXEC and scripts use), so a
 * "get" sees the earlier operations' writes; if one fails (an overflow,
 * say) the whole batch is undone and the answer is that operation's
 * problem: all or nothing.  Otherwise the answer lists one result per
 * operation and waits, like every answer, for the batch's single log
 * record to be durable.
 *
 * With an Idempotency-Key header the whole batch is applied once
 * (cmd_batch_once): its answer, the exact bytes of the 200's body, is
 * recorded with the key and a fingerprint of the operations inside the
 * batch's one log record, and a retry with the same key and operations
 * gets those bytes back with "Idempotent-Replayed: true", running nothing.
 * The fingerprint folds each operation's name with the fingerprint a single
 * request of it would have (cmd_once_fingerprint), so it compares what the
 * operations do, not how the body was spelt.  An answer over
 * TALLY_ANSWER_MAX bytes cannot be kept: such a batch is refused (413) and
 * nothing is applied.  A batch that fails records nothing, as a single
 * change does.
 */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "util.h"

#define HTTP_BATCH_MAX_OPS 1000
#define HTTP_BATCH_MAX_BODY (256 * 1024)

enum batch_op { B_INCR, B_DECR, B_SET, B_DEL, B_GET };

struct batch_item {
    enum batch_op op;
    const char *key; /* into the parsed JSON document */
    size_t klen;
    int64_t num;
};

static const char *const op_names[] = {"increment", "decrement", "set",
                                       "delete", "get"};

/* Parse one {"op": ..., "key": ..., "by"|"value": n}.  Returns NULL or
 * what is wrong with it. */
static const char *parse_item(json_t *o, struct batch_item *it)
{
    json_t *op = json_object_get(o, "op"), *key = json_object_get(o, "key");
    json_t *by, *value;
    size_t members = 2, i;

    if (!json_is_object(o))
        return "must be an object";
    if (!json_is_string(op))
        return "needs \"op\": increment, decrement, set, delete or get";
    for (i = 0; i < 5 && strcmp(json_string_value(op), op_names[i]); i++)
        ;
    if (i == 5)
        return "has an unknown \"op\" (increment, decrement, set, delete or "
               "get)";
    it->op = (enum batch_op)i;
    if (!json_is_string(key))
        return "needs \"key\", a string";
    it->key = json_string_value(key);
    it->klen = json_string_length(key);
    by = json_object_get(o, "by");
    value = json_object_get(o, "value");
    it->num = 1;
    if (it->op == B_INCR || it->op == B_DECR) {
        if (by && !json_is_integer(by))
            return "has a \"by\" that is not a JSON integer";
        if (by) {
            it->num = json_integer_value(by);
            members++;
        }
        if (it->op == B_DECR && it->num == INT64_MIN)
            return "decrements by -9223372036854775808";
    } else if (it->op == B_SET) {
        if (!json_is_integer(value))
            return "needs \"value\", a JSON integer";
        it->num = json_integer_value(value);
        members++;
    }
    if (json_object_size(o) != members)
        return "has an unknown member";
    return NULL;
}

/* The command request item it stands for (pointers into it). */
static void item_req(const struct batch_item *it, struct cmd_req *c)
{
    memset(c, 0, sizeof *c);
    c->key = it->key;
    c->klen = it->klen;
    switch (it->op) {
    case B_INCR: case B_DECR:
        c->op = CMD_INCRBY;
        c->num = it->op == B_DECR ? -it->num : it->num;
        break;
    case B_SET:
        c->op = CMD_SET;
        c->num = it->num;
        break;
    case B_DEL:
        c->op = CMD_DEL;
        c->nkeys = 1;
        c->keys = &c->key;
        c->klens = &c->klen;
        break;
    default:
        c->op = CMD_GET;
        break;
    }
}

/* Run one item; fills res and, for a result, adds its JSON to out. */
static enum cmd_status run_item(struct http_front *h, struct cmd_session *s,
                                const struct batch_item *it, json_t *out,
                                struct cmd_res *res, tally_ticket *ticket)
{
    struct cmd_req c;
    json_t *o;

    item_req(it, &c);
    cmd_exec(h->ctx, s, &c, res);
    if (res->ticket > *ticket)
        *ticket = res->ticket;
    if (res->status >= CMD_ERR_NOTINT)
        return res->status;
    o = json_object();
    json_object_set_new(o, "op", json_string(op_names[it->op]));
    json_object_set_new(o, "key", json_stringn(it->key, it->klen));
    if (it->op == B_DEL)
        json_object_set_new(o, "deleted", json_boolean(res->n > 0));
    else if (it->op == B_GET && res->status == CMD_NOTFOUND)
        json_object_set_new(o, "value", json_null());
    else
        json_object_set_new(o, "value",
                            json_integer(it->op == B_SET ? c.num
                                                         : res->value));
    json_array_append_new(out, o);
    return CMD_OK;
}

/* One batch being run: its items, and what running them gave. */
struct batch_run {
    struct http_front *h;
    struct cmd_session *s;
    const struct batch_item *items;
    size_t n;
    int item_failed;      /* an item failed: */
    size_t failed;        /* which one */
    struct cmd_res res;   /* that item's result */
    tally_ticket ticket;  /* the latest ticket the items showed */
    char *body;           /* the answer: the 200's body, JSON + "\n" */
    size_t blen;
    int too_large;        /* the answer is over TALLY_ANSWER_MAX */
};

/* Run every item in order (inside an open batch) and encode the answer;
 * stops at the first that fails (br->failed, br->res). */
static enum cmd_status run_all(struct batch_run *br)
{
    json_t *results = json_array(), *doc;
    enum cmd_status st = CMD_OK;
    char *text;

    for (br->failed = 0; br->failed < br->n && st == CMD_OK; br->failed++)
        st = run_item(br->h, br->s, &br->items[br->failed], results,
                      &br->res, &br->ticket);
    if (st != CMD_OK) {
        br->item_failed = 1;
        br->failed--;
        json_decref(results);
        return st;
    }
    doc = json_object();
    json_object_set_new(doc, "results", results);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) {
        /* Only allocation fails here; abort like xmalloc does. */
        fprintf(stderr, "tally: out of memory encoding an HTTP response\n");
        abort();
    }
    br->blen = strlen(text) + 1;
    br->body = xmalloc(br->blen);
    memcpy(br->body, text, br->blen - 1);
    br->body[br->blen - 1] = '\n';
    free(text);
    return CMD_OK;
}

/* cmd_batch_fn for a batch with an Idempotency-Key. */
static enum cmd_status run_once(void *arg, const void **answer, size_t *alen)
{
    struct batch_run *br = arg;
    enum cmd_status st = run_all(br);

    if (st != CMD_OK)
        return st;
    if (br->blen > TALLY_ANSWER_MAX) {
        br->too_large = 1;
        return CMD_ERR_ARGS;
    }
    *answer = br->body;
    *alen = br->blen;
    return CMD_OK;
}

/* The fingerprint of a batch: each operation's name and the fingerprint
 * the same request would have on its own. */
static uint64_t batch_fingerprint(const struct batch_item *items, size_t n)
{
    uint64_t h = tally_once_hash(TALLY_ONCE_HASH_INIT, "batch", 5);
    unsigned char le[9];
    struct cmd_req c;

    for (size_t i = 0; i < n; i++) {
        uint64_t f;
        item_req(&items[i], &c);
        f = cmd_once_fingerprint(&c);
        le[0] = (unsigned char)items[i].op;
        for (int b = 0; b < 8; b++)
            le[1 + b] = (unsigned char)(f >> (8 * b));
        h = tally_once_hash(h, le, sizeof le);
    }
    return h;
}

/* Put len bytes of JSON into the response body. */
static void body_bytes(struct evhttp_request *req, const void *p, size_t len)
{
    evbuffer_add(evhttp_request_get_output_buffer(req), p, len);
    http_ctype(req, HTTP_JSON);
}

/* Answer a batch that ran (or replayed, or failed) as br and res say. */
static void answer(struct batch_run *br, struct evhttp_request *req,
                   struct cmd_res *res, const void *body, size_t blen)
{
    if (br->too_large) {
        http_problem(req, 413, "too-large", "Content too large",
                     "the answer to this batch is %zu bytes; one sent with "
                     "an Idempotency-Key may answer at most %d, so that it "
                     "can be kept for a retry: send fewer operations per "
                     "batch; nothing was applied", br->blen,
                     TALLY_ANSWER_MAX);
        return;
    }
    if (res->status == CMD_OK) {
        body_bytes(req, body, blen);
        if (res->replayed)
            evhttp_add_header(evhttp_request_get_output_headers(req),
                              HTTP_IDEM_REPLAYED, "true");
    } else if (br->item_failed) {
        /* An operation failed: all or nothing, and the problem says which. */
        *res = br->res;
        snprintf(res->detail, sizeof res->detail,
                 "operation %zu (%s) failed, nothing was applied", br->failed,
                 op_names[br->items[br->failed].op]);
    }
    if (br->ticket > res->ticket)
        res->ticket = br->ticket;
    http_finish(br->h, req, res, 200);
}

void http_batch(struct http_front *h, struct evhttp_request *req,
                struct cmd_session *s)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in), n, i;
    struct batch_item *items = NULL;
    struct buf id = BUF_INIT;
    json_t *doc, *ops;
    json_error_t jerr;
    struct cmd_res res = {0};
    struct batch_run br = {0};
    int has = 0;

    if (http_idem_key(req, &id, &has) != 0) {
        h->idem.n[METRICS_IDEM_INVALID]++;
        buf_free(&id);
        return;
    }
    if (len > HTTP_BATCH_MAX_BODY) {
        http_problem(req, 413, "too-large", "Content too large",
                     "the body has %zu bytes; at most %d are accepted", len,
                     HTTP_BATCH_MAX_BODY);
        buf_free(&id);
        return;
    }
    doc = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                     JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        http_bad(req, "the body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        buf_free(&id);
        return;
    }
    ops = json_object_get(doc, "ops");
    if (!json_is_object(doc) || !json_is_array(ops) ||
        json_object_size(doc) != 1) {
        http_bad(req, "the body must be {\"ops\": [...]}, a list of "
                 "operations");
        goto done;
    }
    n = json_array_size(ops);
    if (n == 0 || n > HTTP_BATCH_MAX_OPS) {
        http_bad(req, "\"ops\" must hold 1 to %d operations",
                 HTTP_BATCH_MAX_OPS);
        goto done;
    }
    items = xcalloc(n, sizeof *items);
    for (i = 0; i < n; i++) {
        const char *why = parse_item(json_array_get(ops, i), &items[i]);
        if (why) {
            http_bad(req, "operation %zu %s", i, why);
            goto done;
        }
    }
    br = (struct batch_run){.h = h, .s = s, .items = items, .n = n};
    if (has) {
        tally_once once = {id.p ? id.p : "", id.len,
                           batch_fingerprint(items, n)};
        const void *body = NULL;
        size_t blen = 0;
        /* The first key places the id's record (a cluster: its slot). */
        cmd_batch_once_at(h->ctx, s, &once, items[0].key, items[0].klen,
                          run_once, &br, &res, &body, &blen);
        if (res.status != CMD_PENDING) /* counted on the run that answers */
            http_idem_count(h, &res);
        answer(&br, req, &res, body, blen);
    } else {
        cmd_batch_begin(h->ctx, s);
        res.status = run_all(&br);
        if (res.status != CMD_OK)
            cmd_batch_abort(h->ctx, s); /* all or nothing */
        else
            res.status = cmd_batch_commit(h->ctx, s, &res);
        answer(&br, req, &res, br.body, br.blen);
    }
done:
    free(br.body);
    free(items);
    buf_free(&id);
    json_decref(doc);
}
