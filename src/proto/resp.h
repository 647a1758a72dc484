/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * resp.h - the Redis protocol front end (RESP2, and RESP3 after HELLO 3).
 *
 * resp_ops is the struct proto_ops the daemon drives (proto.h): it tokenizes
 * requests (arrays of bulk strings, and inline commands), maps each Redis
 * command onto the command layer (src/cmd) and encodes the result with Redis's
 * own reply and error texts.  Connection-level commands (PING, HELLO, CLIENT,
 * INFO, ...) are answered here.
 */
#ifndef TALLY_RESP_H
#define TALLY_RESP_H

#include "proto.h"

extern const struct proto_ops resp_ops;

/* What the RESP listeners share: the index of the command table, by name.
 * The daemon makes one (fronts.c) and hands it to conn_listen() as the
 * front of every RESP listener; free it after the last connection. */
struct resp_front;
struct resp_front *resp_front_new(void);
void resp_front_free(struct resp_front *f);

#endif /* TALLY_RESP_H */
