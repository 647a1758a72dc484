/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sync_gate.h - fdatasync under a unit test's control, at the libc
 * boundary (as test_engine_faults.c does): a test program that includes
 * this defines fdatasync, and libtally, linked in statically, calls it
 * instead of libc's.  While the gate is held, every fdatasync waits, so
 * changes stay in flight (not durable); while failing, it fails with EIO.
 * Otherwise it goes to the kernel.  It also tells how many wait at the
 * gate and which thread called last.  Include it in one .c file only.
 */
#ifndef SYNC_GATE_H
#define SYNC_GATE_H

#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t sync_gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_gate_cv = PTHREAD_COND_INITIALIZER;
static int sync_gate_held, sync_gate_failing; /* [sync_gate_mu] */
static int sync_gate_waiting;                 /* [sync_gate_mu] */
static pid_t sync_gate_last_tid;              /* [sync_gate_mu] */

int fdatasync(int fd);
int fdatasync(int fd)
{
    int fail;

    pthread_mutex_lock(&sync_gate_mu);
    sync_gate_last_tid = (pid_t)syscall(SYS_gettid);
    sync_gate_waiting++;
    while (sync_gate_held)
        pthread_cond_wait(&sync_gate_cv, &sync_gate_mu);
    sync_gate_waiting--;
    fail = sync_gate_failing;
    pthread_mutex_unlock(&sync_gate_mu);
    if (fail) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* Hold (1) or release (0) every fdatasync; make them fail (1) or not. */
static __attribute__((unused)) void sync_gate(int hold, int fail)
{
    pthread_mutex_lock(&sync_gate_mu);
    sync_gate_held = hold;
    sync_gate_failing = fail;
    pthread_cond_broadcast(&sync_gate_cv);
    pthread_mutex_unlock(&sync_gate_mu);
}

/* How many fdatasyncs wait at the gate now. */
static __attribute__((unused)) int sync_gate_waiters(void)
{
    int n;

    pthread_mutex_lock(&sync_gate_mu);
    n = sync_gate_waiting;
    pthread_mutex_unlock(&sync_gate_mu);
    return n;
}

/* The thread id of the last fdatasync's caller (0: none yet). */
static __attribute__((unused)) pid_t sync_gate_tid(void)
{
    pid_t t;

    pthread_mutex_lock(&sync_gate_mu);
    t = sync_gate_last_tid;
    pthread_mutex_unlock(&sync_gate_mu);
    return t;
}

#endif /* SYNC_GATE_H */
