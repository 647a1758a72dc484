/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * counter.c - the smallest use of libtally: open a data directory, add to
 * one counter, print its new value.  Uses the blocking API (NULL tickets),
 * so the value is printed only once the change is durable (fsync'd, under
 * the default policy).
 *
 *   counter <dir> <name> [delta]      delta defaults to 1
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"

int main(int argc, char **argv)
{
    char err[TALLY_ERRMAX], *end;
    int64_t delta = 1, value;
    tally *db;
    int rc;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s <dir> <name> [delta]\n", argv[0]);
        return 2;
    }
    if (argc == 4) {
        errno = 0;
        delta = strtoll(argv[3], &end, 10);
        if (errno || *end || end == argv[3]) {
            fprintf(stderr, "%s: not an integer: %s\n", argv[0], argv[3]);
            return 2;
        }
    }
    rc = tally_open(argv[1], NULL, &db, err);
    if (rc != TALLY_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], tally_strerror(rc), err);
        return 1;
    }
    rc = tally_incr(db, argv[2], strlen(argv[2]), delta, &value, NULL);
    if (rc != TALLY_OK)
        fprintf(stderr, "%s: %s: %s\n", argv[0], tally_strerror(rc),
                tally_errmsg(db));
    else
        printf("%" PRId64 "\n", value);
    if (tally_close(db) != TALLY_OK && rc == TALLY_OK)
        rc = TALLY_EIO;
    return rc == TALLY_OK ? 0 : 1;
}
