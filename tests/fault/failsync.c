/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * failsync.c - an LD_PRELOAD shim that makes tallyd's fsync and fdatasync
 * slow or failing on demand, so the black-box tests (tests/e2e/test_faults.py)
 * can check what the real daemon does when the disk stalls or breaks; the
 * engine's unit tests do the same inside one process (tests/unit/sync_gate.h).
 *
 * Control: $TALLY_FAULT_DIR names a directory the test owns.  On every call:
 *   - if $TALLY_FAULT_DIR/slow exists, sleep the number of microseconds
 *     written in it (decimal; write it to a temp file and rename it in, so a
 *     half-written number is never read) before anything else;
 *   - then, if $TALLY_FAULT_DIR/fail exists, fail with EIO without calling
 *     the kernel, as a disk that lost a write-back would;
 *   - otherwise call the real function.
 * The order matters: a sync that is sleeping when "fail" appears fails when it
 * wakes, which is how a test makes a sync that is already in flight fail.
 * Without $TALLY_FAULT_DIR the calls go straight through; with it, an idle
 * directory costs one open(2) and one access(2) per sync.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once by fs_init (under fs_once) and only read afterwards: the real
 * functions and the two control paths ("" when $TALLY_FAULT_DIR is unset or
 * too long, which disables the faults). */
static struct {
    int (*real_fsync)(int);
    int (*real_fdatasync)(int);
    char slow[PATH_MAX];
    char fail[PATH_MAX];
} fs;
static pthread_once_t fs_once = PTHREAD_ONCE_INIT;

static void fs_init(void)
{
    const char *dir = getenv("TALLY_FAULT_DIR");

    fs.real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    fs.real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (!fs.real_fsync || !fs.real_fdatasync) {
        /* Nothing sensible can run without them. */
        fprintf(stderr, "failsync: dlsym: %s\n", dlerror());
        abort();
    }
    if (!dir || !*dir)
        return;
    int n1 = snprintf(fs.slow, sizeof fs.slow, "%s/slow", dir);
    int n2 = snprintf(fs.fail, sizeof fs.fail, "%s/fail", dir);
    if (n1 < 0 || (size_t)n1 >= sizeof fs.slow || n2 < 0 ||
        (size_t)n2 >= sizeof fs.fail) {
        fprintf(stderr, "failsync: TALLY_FAULT_DIR too long; no faults\n");
        fs.slow[0] = fs.fail[0] = 0;
    }
}

/* Microseconds in the slow file, 0 if it does not exist; a file that holds
 * no number is reported on stderr (the daemon's log) and counts as 0, so a
 * test that meant to slow syncs down sees the line and no delay. */
static uint64_t slow_us(void)
{
    char text[32];
    int fd = open(fs.slow, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "failsync: %s is empty or unreadable\n", fs.slow);
        return 0;
    }
    text[n] = 0;
    char *end;
    errno = 0;
    unsigned long long us = strtoull(text, &end, 10);
    if (errno || end == text || (*end && *end != '\n')) {
        fprintf(stderr, "failsync: %s does not hold a number\n", fs.slow);
        return 0;
    }
    return us;
}

/* Sleep us microseconds, resuming after signals. */
static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* 0 to go on to the real call, or -1 with errno EIO to fail it.  errno is
 * left as it was when the call goes on. */
static int fs_gate(void)
{
    int saved = errno;

    pthread_once(&fs_once, fs_init);
    if (!fs.slow[0])
        return 0;
    uint64_t us = slow_us();
    if (us)
        sleep_us(us);
    if (access(fs.fail, F_OK) == 0) {
        errno = EIO;
        return -1;
    }
    errno = saved;
    return 0;
}

int fsync(int fd)
{
    if (fs_gate() < 0)
        return -1;
    return fs.real_fsync(fd);
}

int fdatasync(int fd)
{
    if (fs_gate() < 0)
        return -1;
    return fs.real_fdatasync(fd);
}
