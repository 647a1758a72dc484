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
 * An Idempotency-Key header is refused here for now: replaying a batch
 * would need its whole answer recorded beside the id, which the engine's
 * id records (one outcome value) cannot hold.
 */
#include "http_int.h"

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

/* Run one item; fills res and, for a result, adds its JSON to out. */
static enum cmd_status run_item(struct http_front *h, struct cmd_session *s,
                                const struct batch_item *it, json_t *out,
                                struct cmd_res *res, tally_ticket *ticket)
{
    struct cmd_req c = {.key = it->key, .klen = it->klen};
    json_t *o;

    switch (it->op) {
    case B_INCR: case B_DECR:
        c.op = CMD_INCRBY;
        c.num = it->op == B_DECR ? -it->num : it->num;
        break;
    case B_SET:
        c.op = CMD_SET;
        c.num = it->num;
        break;
    case B_DEL:
        c.op = CMD_DEL;
        c.nkeys = 1;
        c.keys = &c.key;
        c.klens = &c.klen;
        break;
    default:
        c.op = CMD_GET;
        break;
    }
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

void http_batch(struct http_front *h, struct evhttp_request *req,
                struct cmd_session *s)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in), n, i;
    struct batch_item *items = NULL;
    json_t *doc, *ops, *results;
    json_error_t jerr;
    struct cmd_res res = {0};
    tally_ticket ticket = 0;
    enum cmd_status st = CMD_OK;

    if (evhttp_find_header(evhttp_request_get_input_headers(req),
                           "Idempotency-Key")) {
        http_problem(req, 400, "bad-idempotency-key",
                     "Idempotency-Key not supported here",
                     "/v1/batch does not take an Idempotency-Key yet: send "
                     "the operations one by one with a key each, or retry "
                     "only what you can check");
        return;
    }
    if (len > HTTP_BATCH_MAX_BODY) {
        http_problem(req, 413, "too-large", "Content too large",
                     "the body has %zu bytes; at most %d are accepted", len,
                     HTTP_BATCH_MAX_BODY);
        return;
    }
    doc = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                     JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        http_bad(req, "the body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
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
    results = json_array();
    cmd_batch_begin(h->ctx);
    for (i = 0; i < n && st == CMD_OK; i++)
        st = run_item(h, s, &items[i], results, &res, &ticket);
    if (st != CMD_OK) {
        /* All or nothing: undo the operations before the failed one. */
        cmd_batch_abort(h->ctx);
        json_decref(results);
        snprintf(res.detail, sizeof res.detail,
                 "operation %zu (%s) failed, nothing was applied", i - 1,
                 op_names[items[i - 1].op]);
        res.status = st;
    } else {
        res.status = cmd_batch_commit(h->ctx, &res);
        json_t *body = json_object();
        json_object_set_new(body, "results", results);
        if (res.status == CMD_OK)
            http_json_body(req, body, HTTP_JSON);
        else
            json_decref(body);
    }
    if (ticket > res.ticket)
        res.ticket = ticket;
    http_finish(h, req, &res, 200);
done:
    free(items);
    json_decref(doc);
}
