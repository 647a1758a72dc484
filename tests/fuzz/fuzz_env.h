/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_env.h - what the libFuzzer targets in tests/fuzz/ share: a fresh,
 * flat data directory per input (on tmpfs when there is one, so that the
 * engine's fsyncs cost nothing), removed again without forking a shell, and
 * a check that turns a broken property into a crash libFuzzer reports.
 *
 * Every input starts from an empty directory, so a crash reproduces from its
 * input alone (tests/fuzz/README.md).  Everything here is static inline; the
 * unit tests' fixture (tests/unit/cmd_fixture.h) does the same job with
 * system("rm -rf"), which is too slow to run thousands of times a second.
 */
#ifndef FUZZ_ENV_H
#define FUZZ_ENV_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tally.h"

/* A property the target asserts: print what broke and abort, which
 * libFuzzer reports as a crash and saves the input for. */
#define FZ_CHECK(cond, ...)                                                 \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,          \
                    __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* Make a fresh directory tally-fuzz-XXXXXX in dir (64 bytes), under
 * $TALLY_FUZZ_TMP if set (run.sh points it at a directory of its own, which
 * it removes afterwards, so that a crash leaves nothing behind), else on
 * /dev/shm, else /tmp.  Aborts on failure: a fuzz run without a directory
 * means nothing. */
static inline void fz_dir_make(char dir[64])
{
    const char *base = getenv("TALLY_FUZZ_TMP");
    int n;

    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    n = snprintf(dir, 64, "%s/tally-fuzz-XXXXXX", base);
    FZ_CHECK(n > 0 && n < 64, "TALLY_FUZZ_TMP too long: %s", base);
    FZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s", dir);
}

/* Remove dir and the files in it (engine directories are flat). */
static inline void fz_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    FZ_CHECK(d != NULL, "opendir %s", dir);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    FZ_CHECK(rmdir(dir) == 0, "rmdir %s", dir);
}

/* Write n bytes at p to dir/name, creating or replacing it. */
static inline void fz_write_file(const char *dir, const char *name,
                                 const void *p, size_t n)
{
    char path[128];
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FZ_CHECK(fd >= 0, "open %s", path);
    FZ_CHECK(n == 0 || write(fd, p, n) == (ssize_t)n, "write %s", path);
    close(fd);
}

/* Open a database in dir with TALLY_SYNC_ALWAYS (the default, so that the
 * hand-offs of the durable path run too) and no automatic snapshots. */
static inline tally *fz_open(const char *dir)
{
    tally_options o;
    tally *db = NULL;
    char err[TALLY_ERRMAX];
    int rc;

    tally_options_init(&o);
    o.snapshot_min_log = UINT64_MAX;
    rc = tally_open(dir, &o, &db, err);
    FZ_CHECK(rc == TALLY_OK, "tally_open %s: %s", dir, err);
    return db;
}

#endif /* FUZZ_ENV_H */
