/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log.c - tallyd's log: one line per message on stderr,
 * "2026-11-24T13:00:00.123Z LEVEL message", written with a single write(2) so
 * lines from the event loop and the engine's threads never interleave.
 * Errors and warnings are rate-limited per call site (a disk that keeps
 * failing must not flood the log): at most one line a second, and the next
 * line printed says how many were dropped.  The engine's messages arrive
 * through slog_engine() from its own threads, hence the mutex.
 */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOG_LINE 1024
#define SLOG_INTERVAL_MS 1000

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void slog_init(struct slog *l, int level)
{
    memset(l, 0, sizeof *l);
    l->level = level;
    pthread_mutex_init(&l->mu, NULL);
}

void slog_free(struct slog *l) { pthread_mutex_destroy(&l->mu); }

void slog_set_level(struct slog *l, int level)
{
    __atomic_store_n(&l->level, level, __ATOMIC_RELAXED);
}

/* Decide under l->mu whether a line keyed by key is printed now.  Returns
 * the number of lines dropped since the last one printed, or -1 to drop this
 * one. */
static int64_t limit_locked(struct slog *l, uint64_t key, int64_t now_ms)
{
    struct slog_slot *s = &l->slots[(key ^ (key >> 17)) % SLOG_SLOTS];
    if (s->key == key && now_ms - s->last_ms < SLOG_INTERVAL_MS) {
        s->suppressed++;
        return -1;
    }
    /* A different call site hashing here evicts the old one: it only loses
     * the count of lines it dropped, never a line. */
    uint64_t dropped = s->key == key ? s->suppressed : 0;
    s->key = key;
    s->last_ms = now_ms;
    s->suppressed = 0;
    return (int64_t)dropped;
}

static void emit(struct slog *l, int level, uint64_t key, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    pthread_mutex_lock(&l->mu);
    int64_t dropped = 0;
    if (level <= SLOG_WARN)
        dropped = limit_locked(l, key, now_ms);
    if (dropped < 0) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[SLOG_LINE + 96];
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(line + n, sizeof line - n, ".%03ldZ %s %s",
                     (long)(ts.tv_nsec / 1000000), level_names[level], msg);
    n = m < 0 ? n : n + (size_t)m;
    if (n > sizeof line - 40)
        n = sizeof line - 40;
    if (dropped > 0)
        n += (size_t)snprintf(line + n, sizeof line - n,
                              " (%lld similar lines dropped)", (long long)dropped);
    line[n++] = '\n';
    /* stderr may be a pipe a supervisor reads; retry short writes so a line
     * is never cut in two, but give up on errors: there is nowhere else to
     * report them. */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&l->mu);
}

void slog(struct slog *l, int level, const char *fmt, ...)
{
    if (level > __atomic_load_n(&l->level, __ATOMIC_RELAXED))
        return;
    char msg[SLOG_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(l, level, (uint64_t)(uintptr_t)fmt, msg);
}

void slog_engine(void *arg, int level, const char *msg)
{
    struct slog *l = arg;
    if (level < SLOG_ERROR || level > SLOG_DEBUG ||
        level > __atomic_load_n(&l->level, __ATOMIC_RELAXED))
        return;
    /* The engine's messages come pre-formatted, so the call site is not
     * known: key on the text up to the first digit, which groups "fsync of
     * log-3 failed" with "fsync of log-4 failed" (FNV-1a). */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = msg; *p && (*p < '0' || *p > '9'); p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    emit(l, level, h, msg);
}
