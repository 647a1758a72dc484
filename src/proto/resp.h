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

#endif /* TALLY_RESP_H */
