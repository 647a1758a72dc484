/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * events.h - the change-event hub: every change the command layer makes
 * (key, new value or deleted/expired, operation, time) becomes one event,
 * and events reach subscribers only once the change is durable.
 *
 * The durability rule.  cmd.c records an event with the engine's ticket for
 * that change.  Recorded events wait in a FIFO (tickets never decrease in
 * it: one thread makes every change).  The daemon calls events_release()
 * from its durability notification with tally_durable(): events whose ticket
 * is durable get the next event id, enter the window and are handed to
 * every matching subscriber, in id order.  When the write path has failed,
 * events whose tickets can never be durable are dropped instead: no
 * subscriber ever sees a change a crash could take back.
 *
 * The window.  The last `window` released events stay in a ring so that a
 * subscriber that reconnects (SSE's Last-Event-ID) gets what it missed
 * without a gap, or learns that it is too far behind (events_replay).
 *
 * Nobody listening.  Until the first subscriber, or the first SSE stream
 * (events_keep_window), changes are counted and nothing more: no one could
 * be handed them.  Keyspace notifications subscribe only while
 * notify-keyspace-events is on (pubsub.c), so a tallyd without streams or
 * notifications pays nothing here per change.
 *
 * Event ids start at the wall clock in microseconds when the hub is made,
 * so ids keep increasing across restarts and a Last-Event-ID from before
 * one is simply "too old".  Everything here runs on the event-loop thread.
 * Subscribers: SSE (src/proto/http_events.c), RESP pub/sub's keyspace
 * notifications (pubsub.c).  docs/events.md describes both for users.
 */
#ifndef TALLY_EVENTS_H
#define TALLY_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "tally.h"

enum events_kind {
    EVENTS_VALUE = 0, /* the counter now holds value */
    EVENTS_DELETED,   /* removed by a command */
    EVENTS_EXPIRED    /* removed because its time to live ran out */
};

/* What happened, as SSE and keyspace notifications name it.  op_name() is
 * the command layer's word ("incrby", "set", "mset", "del", "getdel",
 * "expire", "persist", "expired"); redis_name() is the event Redis's keyspace
 * notifications use for the same change ("incrby", "set", "del", ...). */
enum events_op {
    EVENTS_OP_INCRBY = 0,
    EVENTS_OP_SET,
    EVENTS_OP_MSET,
    EVENTS_OP_DEL,
    EVENTS_OP_GETDEL,
    EVENTS_OP_EXPIRE,
    EVENTS_OP_PERSIST,
    EVENTS_OP_EXPIRED,
    EVENTS_OP_COUNT
};

struct events_event {
    uint64_t id;           /* 0 until released */
    tally_ticket ticket;   /* the change is durable once this is */
    int64_t time_ms;       /* wall clock when the change ran */
    enum events_kind kind;
    enum events_op op;
    int64_t value;         /* EVENTS_VALUE only */
    char *key;             /* owned by the hub; NUL after klen */
    size_t klen;
};

/* A subscriber's callback: ev is borrowed for the call.  It may call
 * events_unsubscribe() on any subscriber, itself included. */
typedef void (*events_fn)(void *arg, const struct events_event *ev);

struct events;
struct events_sub;

struct events_stats {
    uint64_t recorded;   /* changes noted */
    uint64_t released;   /* made durable and handed to subscribers */
    uint64_t dropped;    /* never released: their sync failed */
    uint64_t subscribers;
    uint64_t cutoff[CMD_PROTO_COUNT]; /* subscribers disconnected for not
                                         reading, by protocol */
};

/* A hub keeping the last `window` released events (0: none; replay then
 * always says "too far behind").  Caller frees with events_free(). */
struct events *events_new(size_t window);
void events_free(struct events *h);

/* Note one change (key copied, into a block the hub reuses).  A change is
 * held only while someone may be handed it: while the hub has a
 * subscriber, or at all times once events_keep_window() was called; else
 * it is only counted (events_stats.recorded). */
void events_record(struct events *h, const char *key, size_t klen,
                   enum events_kind kind, enum events_op op, int64_t value,
                   tally_ticket ticket);

/* Atomic batches (MULTI/EXEC, a script, HTTP's /v1/batch: cmd_batch_*).
 * Between begin and end, recorded events wait for the batch itself rather
 * than for the ticket each change got in memory: end gives them the
 * commit's ticket (0 on a store whose commit is the durability), or with
 * applied 0 (the batch was aborted, its commit refused, or its run
 * abandoned to be run again: none of its changes happened) drops them.
 * Batches do not
 * nest here (the command layer counts depth).  h may be NULL. */
#define EVENTS_TICKET_BATCH UINT64_MAX /* placeholder until the commit */
void events_batch_begin(struct events *h);
void events_batch_end(struct events *h, int applied, tally_ticket ticket);

/* Release what durable covers, or with failed set, drop what it does not
 * (the write path stopped: those tickets will never be durable).  h may be
 * NULL (no hub: nothing to do). */
void events_release(struct events *h, tally_ticket durable, int failed);

/* Subscribe fn to changes of the key key[0, klen) (exact) or of every key
 * starting with it (prefix; klen 0 is every key).  The key is copied.
 * Returns a handle for events_unsubscribe(). */
struct events_sub *events_subscribe(struct events *h, const char *key,
                                    size_t klen, int exact, events_fn fn,
                                    void *arg);
void events_unsubscribe(struct events *h, struct events_sub *s);

/* A client may come back with an event id (SSE's Last-Event-ID): from now
 * on every change is held and enters the window, subscribers or not, so
 * that a resume between two connections finds no gap.  Once set, for the
 * hub's life. */
void events_keep_window(struct events *h);

/* Hand sub (its filter) the released events with ids after `after`, in
 * order.  Returns 0, or -1 when the window no longer holds all of them
 * (nothing is handed over then: the caller resets the subscriber).  An
 * `after` beyond the last id is also -1 (an id from a future nobody saw). */
int events_replay(struct events *h, struct events_sub *sub, uint64_t after);

/* The id of the last released event (the one before the first id if none
 * was released yet). */
uint64_t events_last_id(const struct events *h);

void events_stats_get(const struct events *h, struct events_stats *out);
/* Count a subscriber of protocol p cut off past its output limit. */
void events_count_cutoff(struct events *h, enum cmd_proto p);

const char *events_op_name(enum events_op op);
const char *events_redis_name(enum events_op op);

#endif /* TALLY_EVENTS_H */
