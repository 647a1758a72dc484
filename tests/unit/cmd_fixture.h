/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmd_fixture.h - the fixture shared by the unit tests that run the command
 * layer over a real engine (test_cmd_exec.c, test_cmd_once.c) and by those
 * that drive it through a front end (test_proto_resp.c,
 * test_proto_memcache.c): a fresh temporary data directory, a database
 * opened there with the default options, a cmd_ctx over it and one session.
 * A front end's own state (connection, output buffer, limits) stays in its
 * test file, whose fixture embeds struct cmdfx.
 *
 * Everything here is static inline.  Failures are returned rather than
 * asserted, so that cmocka setup and teardown functions can pass them on.
 */
#ifndef CMD_FIXTURE_H
#define CMD_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "engine.h"

struct cmdfx {
    char dir[64];               /* the temporary data directory */
    tally *db;
    struct store_engine se;     /* the store over db that ctx uses */
    struct cmd_ctx ctx;
    struct cmd_session s;       /* id 1, the proto given to cmdfx_open */
    struct cmd_serverinfo info; /* what ctx.info points at, if anything */
};

/* Remove dir and everything in it.  Returns 0 or -1. */
static inline int cmdfx_remove(const char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Make a fresh directory /tmp/tally-<tag>-XXXXXX, open a database in it and
 * set up the command layer over it with password (NULL: none) and a
 * session of the given protocol.  info NULL leaves ctx.info NULL, as for a
 * library caller without a daemon; otherwise *info is copied into c->info,
 * whose dir is set to the new directory, and ctx.info points at the copy.
 * Returns 0, or -1 with a message on stderr and nothing left behind. */
static inline int cmdfx_open(struct cmdfx *c, const char *tag,
                             enum cmd_proto proto, const char *password,
                             const struct cmd_serverinfo *info)
{
    char err[TALLY_ERRMAX];
    int n;

    memset(c, 0, sizeof *c);
    n = snprintf(c->dir, sizeof c->dir, "/tmp/tally-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= sizeof c->dir) {
        fprintf(stderr, "cmdfx_open: tag too long: %s\n", tag);
        return -1;
    }
    if (!mkdtemp(c->dir)) {
        perror("mkdtemp");
        return -1;
    }
    if (tally_open(c->dir, NULL, &c->db, err) != TALLY_OK) {
        fprintf(stderr, "tally_open: %s\n", err);
        cmdfx_remove(c->dir);
        return -1;
    }
    if (info) {
        c->info = *info;
        c->info.dir = c->dir;
    }
    store_engine_init(&c->se, c->db);
    cmd_init(&c->ctx, &c->se.base, password, password ? strlen(password) : 0,
             info ? &c->info : NULL);
    c->s.id = 1;
    c->s.proto = proto;
    return 0;
}

/* Close the database and remove its directory.  Returns 0, or -1 if either
 * failed; the handle is freed either way. */
static inline int cmdfx_close(struct cmdfx *c)
{
    int rc;

    store_close(&c->se.base);
    rc = tally_close(c->db) == TALLY_OK ? 0 : -1;

    c->db = NULL;
    if (cmdfx_remove(c->dir) != 0)
        rc = -1;
    return rc;
}

/* cmocka setup and teardown over a fixture of its own in *state: open one
 * (as cmdfx_open without a password or info) or close and free it.  Each
 * returns 0, or -1 with nothing left behind. */
static inline int cmdfx_setup(void **state, const char *tag,
                              enum cmd_proto proto)
{
    struct cmdfx *c = calloc(1, sizeof *c);

    if (!c || cmdfx_open(c, tag, proto, NULL, NULL) != 0) {
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static inline int cmdfx_teardown(void **state)
{
    struct cmdfx *c = *state;
    int rc = cmdfx_close(c);

    free(c);
    return rc;
}

#endif /* CMD_FIXTURE_H */
