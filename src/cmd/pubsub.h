/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pubsub.h - publish/subscribe channels and Redis keyspace notifications,
 * whatever protocol carries them.
 *
 * A client (one subscribing connection) subscribes to channels and glob
 * patterns; pubsub_publish() hands a message to every client subscribed to
 * the channel and to every pattern that matches it, each through the
 * client's callback.  Keyspace notifications are messages the broker
 * publishes itself for every change the event hub (events.h) releases, so
 * they too are sent only once the change is durable: with K on,
 * `__keyspace@0__:<key>` carries the event name; with E on,
 * `__keyevent@0__:<event>` carries the key.  Which classes are on is
 * Redis's notify-keyspace-events string (pubsub_set_notify).  The wire side
 * (RESP frames) is src/proto/resp_pubsub.c.  Everything here runs on the
 * event-loop thread.
 */
#ifndef TALLY_PUBSUB_H
#define TALLY_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

struct events;
struct pubsub;
struct pubsub_client;

/* A message for a client: pattern is NULL for a channel subscription, else
 * the pattern that matched.  All borrowed for the call.  The callback must
 * not subscribe or unsubscribe anything; it may mark its client for closing
 * and free it later (pubsub_client_free() outside a callback). */
typedef void (*pubsub_fn)(void *arg, const char *pattern, size_t patlen,
                          const char *chan, size_t chanlen, const char *msg,
                          size_t msglen);

/* A broker publishing keyspace notifications for hub's events (borrowed,
 * may be NULL: no notifications).  Caller frees with pubsub_free(), after
 * every client. */
struct pubsub *pubsub_new(struct events *hub);
void pubsub_free(struct pubsub *ps);

/* Set which notifications are sent from Redis's class letters (K E g $ l s
 * h z x e t m d n A, as notify-keyspace-events reads them; "" turns them
 * off).  Returns 0, or -1 for a letter Redis does not know (nothing
 * changed).  Without K or E nothing is sent, as in Redis. */
int pubsub_set_notify(struct pubsub *ps, const char *classes, size_t len);
/* Only check classes as pubsub_set_notify() reads them: 0 or -1. */
int pubsub_notify_valid(const char *classes, size_t len);
/* The current setting as Redis's CONFIG GET words it, into out (32 bytes). */
void pubsub_notify_string(const struct pubsub *ps, char *out);

/* A client whose messages go to fn(arg, ...).  Free with
 * pubsub_client_free(), which unsubscribes everything. */
struct pubsub_client *pubsub_client_new(struct pubsub *ps, pubsub_fn fn,
                                        void *arg);
void pubsub_client_free(struct pubsub_client *cl);

/* Subscribe or unsubscribe one channel (pattern: one glob pattern).  Return
 * 1 if that changed anything, 0 if it already was (was not) subscribed. */
int pubsub_subscribe(struct pubsub_client *cl, const char *name, size_t len,
                     int pattern);
int pubsub_unsubscribe(struct pubsub_client *cl, const char *name, size_t len,
                       int pattern);
/* How many channels (pattern 0) or patterns (1) cl is subscribed to, and the
 * i-th of them (for UNSUBSCRIBE without arguments). */
size_t pubsub_client_count(const struct pubsub_client *cl, int pattern);
const char *pubsub_client_name(const struct pubsub_client *cl, int pattern,
                               size_t i, size_t *len);

/* Hand msg to the subscribers of chan.  Returns how many received it. */
uint64_t pubsub_publish(struct pubsub *ps, const char *chan, size_t chanlen,
                        const char *msg, size_t msglen);

/* PUBSUB: call fn for each channel with at least one subscriber that
 * matches glob pat (NULL or empty: all). */
void pubsub_channels(const struct pubsub *ps, const char *pat, size_t patlen,
                     void (*fn)(void *arg, const char *chan, size_t len),
                     void *arg);
/* Subscribers of one channel; distinct patterns subscribed to. */
uint64_t pubsub_numsub(const struct pubsub *ps, const char *chan, size_t len);
uint64_t pubsub_numpat(const struct pubsub *ps);

#endif /* TALLY_PUBSUB_H */
