/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * engine_testutil.h - helpers shared by the engine's black-box tests
 * (test_engine_recovery.c, test_engine_crash.c, test_engine_faults.c): temp
 * directories, whole-file I/O, and an independent writer and reader of the
 * on-disk format so that tests can build, inspect and damage files without
 * trusting the engine's own code.
 *
 * The format (docs/format.md; the engine implements exactly this), all
 * integers little-endian, checksums CRC32C:
 *   file header, 32 bytes: magic "TALLYLOG" or "TALLYSNP" (8), u32 version 1,
 *     u32 flags, u64 LSN (log: LSN of its first record byte; snapshot: S, where
 *     replay of the log starts), u32 count hint (snapshot), u32 CRC of 0..27.
 *   record: u32 CRC of (len field + body), u32 len (body bytes), body:
 *     u8 type; 1 PUT: u16 klen, i64 value, key; 2 DEL: u16 klen, key;
 *     3 BATCH: u32 n, n x (u32 sublen, PUT/DEL sub-body); 4 END: u64 count.
 *   After the last record a log holds zeros; 8 zero bytes mark the end.
 * Version 3 (what the engine writes) frames a log's records: every write is
 * a frame of a 36-byte header ("TLYF", u32 payload len, u64 LSN of the
 * header, u64 synced, u32 zero sector pieces, u32 flags (1 = CLOSE), u32
 * CRC of 0..31) and then its records; version 1 and 2 logs hold bare records.
 * A record's ticket is the LSN just past its end, so its file offset is
 * 32 + (LSN - the file's start LSN); frame headers count as LSN bytes.
 *
 * Everything here is static and marked unused: each test includes the header
 * and uses a part of it.  Failures abort the test through cmocka asserts.
 */
#ifndef ENGINE_TESTUTIL_H
#define ENGINE_TESTUTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, and the tests' fork/pipe/rlimit helpers */
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <tally.h>

#define TT_API static __attribute__((unused))

#define TT_HDR 32 /* bytes in a file header */
#define TT_FRAME 36 /* bytes in a frame header (version 2 logs) */
#define TT_SECTOR 512
#define TT_CLOSE 1 /* frame flag */
#define TT_PUT 1
#define TT_DEL 2
#define TT_BATCH 3
#define TT_END 4

/* ---- Growable bytes ----------------------------------------------------- */

typedef struct tt_bytes {
    uint8_t *p;
    size_t len, cap;
} tt_bytes;

TT_API void tt_free(tt_bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

TT_API void tt_put(tt_bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Little-endian integers, whatever the host's byte order. */
TT_API void tt_put_le(tt_bytes *b, uint64_t v, unsigned bytes)
{
    uint8_t le[8];
    for (unsigned i = 0; i < bytes; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    tt_put(b, le, bytes);
}

TT_API uint64_t tt_get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: slow but
 * obviously right, and independent of the engine's table or SSE4.2 code. */
TT_API uint32_t tt_crc32c(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ---- Writing the format ------------------------------------------------- */

/* The format version tally writes (docs/format.md): framed logs.
 * tt_file_header writes version 1, which every version must still read. */
#define TT_VERSION 4

TT_API void tt_file_header_v(tt_bytes *b, const char magic[8], uint64_t lsn,
                             uint32_t hint, uint32_t version)
{
    size_t at = b->len;
    tt_put(b, magic, 8);
    tt_put_le(b, version, 4);
    tt_put_le(b, 0, 4); /* flags */
    tt_put_le(b, lsn, 8);
    tt_put_le(b, hint, 4);
    tt_put_le(b, tt_crc32c(b->p + at, 28), 4);
}

/* A version 1 header (hand-made files test that version 1 is still read). */
TT_API void tt_file_header(tt_bytes *b, const char magic[8], uint64_t lsn,
                           uint32_t hint)
{
    tt_file_header_v(b, magic, lsn, hint, 1);
}

/* How many of the pieces that 512-byte file sectors cut p[0, n) (at file
 * offset off) into are all zero. */
TT_API uint32_t tt_zero_pieces(const uint8_t *p, size_t n, uint64_t off)
{
    uint32_t zeros = 0;
    for (size_t at = 0; at < n;) {
        size_t piece = TT_SECTOR - (size_t)((off + at) % TT_SECTOR), i;
        if (piece > n - at)
            piece = n - at;
        for (i = 0; i < piece && p[at + i] == 0; i++)
            ;
        zeros += i == piece;
        at += piece;
    }
    return zeros;
}

/* Append to the log file image b (header included, so b->len is the file
 * offset), whose first LSN is start, one frame holding recs. */
TT_API void tt_frame(tt_bytes *b, uint64_t start, const tt_bytes *recs,
                     uint64_t synced, uint32_t flags)
{
    size_t at = b->len;
    tt_put(b, "TLYF", 4);
    tt_put_le(b, recs->len, 4);
    tt_put_le(b, start + (at - TT_HDR), 8);
    tt_put_le(b, synced, 8);
    tt_put_le(b, 0, 4); /* zero pieces, below */
    tt_put_le(b, flags, 4);
    tt_put_le(b, 0, 4); /* CRC, below */
    tt_put(b, recs->p, recs->len);
    uint32_t z = tt_zero_pieces(b->p + at, TT_FRAME + recs->len, at);
    for (int i = 0; i < 4; i++)
        b->p[at + 24 + i] = (uint8_t)(z >> (8 * i));
    uint32_t crc = tt_crc32c(b->p + at, 32);
    for (int i = 0; i < 4; i++)
        b->p[at + 32 + i] = (uint8_t)(crc >> (8 * i));
}

/* Bodies, without the CRC and length in front (also BATCH sub-bodies). */
TT_API void tt_body_put(tt_bytes *b, const void *key, size_t klen, int64_t v)
{
    tt_put_le(b, TT_PUT, 1);
    tt_put_le(b, klen, 2);
    tt_put_le(b, (uint64_t)v, 8);
    tt_put(b, key, klen);
}

TT_API void tt_body_del(tt_bytes *b, const void *key, size_t klen)
{
    tt_put_le(b, TT_DEL, 1);
    tt_put_le(b, klen, 2);
    tt_put(b, key, klen);
}

/* Frame body as one record at the end of b. */
TT_API void tt_record(tt_bytes *b, const tt_bytes *body)
{
    tt_bytes framed = {0};
    tt_put_le(&framed, body->len, 4);
    tt_put(&framed, body->p, body->len);
    tt_put_le(b, tt_crc32c(framed.p, framed.len), 4);
    tt_put(b, framed.p, framed.len);
    tt_free(&framed);
}

TT_API void tt_rec_put(tt_bytes *b, const char *key, int64_t v)
{
    tt_bytes body = {0};
    tt_body_put(&body, key, strlen(key), v);
    tt_record(b, &body);
    tt_free(&body);
}

TT_API void tt_rec_del(tt_bytes *b, const char *key)
{
    tt_bytes body = {0};
    tt_body_del(&body, key, strlen(key));
    tt_record(b, &body);
    tt_free(&body);
}

TT_API void tt_rec_end(tt_bytes *b, uint64_t count)
{
    tt_bytes body = {0};
    tt_put_le(&body, TT_END, 1);
    tt_put_le(&body, count, 8);
    tt_record(b, &body);
    tt_free(&body);
}

/* ---- Reading the format --------------------------------------------------
 * tt_next_record() checks one record at off the way the format says:
 * returns its total size (8 + len) if its CRC holds, 0 at the end mark (8
 * zero bytes, or fewer than 8 bytes left), -1 if it is invalid. */
TT_API long tt_next_record(const uint8_t *p, size_t len, size_t off)
{
    if (len - off < 8)
        return 0;
    static const uint8_t zero[8];
    if (memcmp(p + off, zero, 8) == 0)
        return 0;
    uint64_t blen = tt_get_le(p + off + 4, 4);
    if (blen == 0 || blen > len - off - 8)
        return -1;
    if (tt_crc32c(p + off + 4, 4 + blen) != (uint32_t)tt_get_le(p + off, 4))
        return -1;
    return (long)(8 + blen);
}

/* The frame at off: its total size (36 + len) if its header checks out, 0
 * at zeros, -1 if it is invalid. */
TT_API long tt_next_frame(const uint8_t *p, size_t len, size_t off)
{
    static const uint8_t zero[TT_FRAME];
    if (len - off < TT_FRAME)
        return 0;
    if (memcmp(p + off, zero, TT_FRAME) == 0)
        return 0;
    if (memcmp(p + off, "TLYF", 4) != 0 ||
        tt_crc32c(p + off, 32) != (uint32_t)tt_get_le(p + off + 32, 4) ||
        tt_get_le(p + off + 4, 4) > len - off - TT_FRAME)
        return -1;
    return (long)(TT_FRAME + tt_get_le(p + off + 4, 4));
}

/* Checks a file header (version 1 .. TT_VERSION); returns its LSN field through
 * *lsn. */
TT_API int tt_header_ok(const uint8_t *p, size_t len, const char magic[8],
                        uint64_t *lsn)
{
    if (len < TT_HDR || memcmp(p, magic, 8) != 0 || tt_get_le(p + 8, 4) < 1 ||
        tt_get_le(p + 8, 4) > TT_VERSION ||
        tt_crc32c(p, 28) != (uint32_t)tt_get_le(p + 28, 4))
        return 0;
    if (lsn)
        *lsn = tt_get_le(p + 16, 8);
    return 1;
}

/* ---- Files and directories ---------------------------------------------- */

TT_API void tt_path(char out[PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    assert_true(n > 0 && n < PATH_MAX);
}

/* A fresh empty directory under $TMPDIR (or /tmp); fails the test if none. */
TT_API void tt_mkdtemp(char out[PATH_MAX])
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, PATH_MAX, "%s/tally-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(out));
}

TT_API int tt_rm_one(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf; a missing path is fine. */
TT_API void tt_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    assert_int_equal(nftw(path, tt_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Whole file into *out (replacing its contents); 0 or -errno. */
TT_API int tt_read_file(const char *path, tt_bytes *out)
{
    out->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        tt_put(out, chunk, (size_t)n);
    int err = n < 0 ? -errno : 0;
    close(fd);
    return err;
}

TT_API void tt_write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

TT_API void tt_write_bytes(const char *dir, const char *name, const tt_bytes *b)
{
    char path[PATH_MAX];
    tt_path(path, dir, name);
    tt_write_file(path, b->p, b->len);
}

TT_API off_t tt_file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Names in dir that start with prefix and end with suffix, sorted (so
 * log-/snap- names come in LSN order); returns how many, at most max. */
#define TT_NAME 256
TT_API int tt_cmp_names(const void *a, const void *b) { return strcmp(a, b); }

TT_API int tt_list(const char *dir, const char *prefix, const char *suffix,
                   char names[][TT_NAME], int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (l < pl + sl || l >= TT_NAME || strncmp(e->d_name, prefix, pl) != 0 ||
            strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        assert_true(n < max);
        memcpy(names[n++], e->d_name, l + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, TT_NAME, tt_cmp_names);
    return n;
}

/* The newest file "<prefix><16 hex>.tly" in dir: its name and LSN.  Returns 0
 * if there is none. */
TT_API int tt_newest(const char *dir, const char *prefix, char name[TT_NAME],
                     uint64_t *lsn)
{
    char names[64][TT_NAME];
    int n = tt_list(dir, prefix, ".tly", names, 64);
    if (n == 0)
        return 0;
    memcpy(name, names[n - 1], TT_NAME);
    if (lsn)
        *lsn = strtoull(name + strlen(prefix), NULL, 16);
    return 1;
}

/* The one record of the newest log file that spans tickets from..to (the
 * head before a change and its ticket), written by a write of its own:
 * asserts that from..to is exactly one frame holding exactly one record and
 * returns the record's type; *n (may be NULL) gets a BATCH's sub-record
 * count. */
TT_API int tt_record_between(const char *dir, uint64_t from, uint64_t to,
                             uint32_t *n)
{
    char name[TT_NAME], path[PATH_MAX];
    tt_bytes log = {0};
    uint64_t start = 0;

    assert_true(tt_newest(dir, "log-", name, &start));
    tt_path(path, dir, name);
    assert_int_equal(tt_read_file(path, &log), 0);
    size_t off = TT_HDR + (size_t)(from - start);
    assert_int_equal(tt_next_frame(log.p, log.len, off), (long)(to - from));
    off += TT_FRAME;
    assert_int_equal(tt_next_record(log.p, log.len, off),
                     (long)(to - from - TT_FRAME));
    int type = log.p[off + 8];
    if (n)
        *n = type == TT_BATCH ? (uint32_t)tt_get_le(log.p + off + 9, 4) : 0;
    tt_free(&log);
    return type;
}

/* A picture of every regular file in a directory, so that a test can put a
 * directory back after damaging it, or see that nothing changed.  Trailing
 * zeros (the log's reserved space) are kept as a size, not as bytes, so a log
 * preallocated to many MiB costs little to hold and to write back. */
#define TT_FILES 32
typedef struct tt_file {
    char name[TT_NAME];
    tt_bytes data; /* contents up to the last nonzero byte */
    off_t size;    /* the whole size; zeros after data */
} tt_file;

typedef struct tt_image {
    int n;
    tt_file f[TT_FILES]; /* sorted by name */
} tt_image;

TT_API void tt_image_free(tt_image *im)
{
    for (int i = 0; i < im->n; i++)
        tt_free(&im->f[i].data);
    im->n = 0;
}

TT_API void tt_image_load(tt_image *im, const char *dir)
{
    char names[TT_FILES][TT_NAME];
    int n = tt_list(dir, "", "", names, TT_FILES);
    memset(im, 0, sizeof(*im));
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;
        tt_path(path, dir, names[i]);
        /* LOCK holds no data; opening may create it, even when refused. */
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            strcmp(names[i], "LOCK") == 0)
            continue;
        tt_file *f = &im->f[im->n++];
        memcpy(f->name, names[i], TT_NAME);
        assert_int_equal(tt_read_file(path, &f->data), 0);
        f->size = (off_t)f->data.len;
        while (f->data.len > 0 && f->data.p[f->data.len - 1] == 0)
            f->data.len--;
    }
}

/* Make dir hold exactly the files of im (dir is emptied first). */
TT_API void tt_image_restore(const tt_image *im, const char *dir)
{
    tt_rmtree(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    for (int i = 0; i < im->n; i++) {
        const tt_file *f = &im->f[i];
        char path[PATH_MAX];
        tt_path(path, dir, f->name);
        tt_write_file(path, f->data.p, f->data.len);
        assert_int_equal(truncate(path, f->size), 0);
    }
}

TT_API int tt_image_equal(const tt_image *a, const tt_image *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const tt_file *x = &a->f[i], *y = &b->f[i];
        if (strcmp(x->name, y->name) != 0 || x->size != y->size ||
            x->data.len != y->data.len ||
            (x->data.len && memcmp(x->data.p, y->data.p, x->data.len) != 0))
            return 0;
    }
    return 1;
}

/* Flip bit `bit` of byte `off` of dir/name in place (twice puts it back). */
TT_API void tt_flip_bit(const char *dir, const char *name, size_t off, int bit)
{
    char path[PATH_MAX];
    uint8_t c;
    tt_path(path, dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    assert_int_equal(close(fd), 0);
}

/* The cmocka fixture: each case gets a fresh temporary directory, removed
 * afterwards (also when the case failed). */
typedef struct tt_fx {
    char dir[PATH_MAX];
} tt_fx;

TT_API int tt_fx_setup(void **state)
{
    tt_fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    tt_mkdtemp(f->dir);
    *state = f;
    return 0;
}

TT_API int tt_fx_teardown(void **state)
{
    tt_fx *f = *state;
    tt_rmtree(f->dir);
    free(f);
    return 0;
}

#define TT_DIR(state) (((tt_fx *)*(state))->dir)

/* In a forked child that reports to its parent through a struct with a
 * char array `why`: unless cond holds, write the message there and return
 * (cmocka's asserts cannot cross the fork). */
#define CHILD_CHECK(r, cond, ...)                                          \
    do {                                                                   \
        if (!(cond)) {                                                     \
            snprintf((r)->why, sizeof((r)->why), __VA_ARGS__);             \
            return;                                                        \
        }                                                                  \
    } while (0)

/* For a forked child (it changes the process's RLIMIT_FSIZE and ignores
 * SIGXFSZ): fill db's log with 1 KiB changes until the disk is "full",
 * then allow `room` bytes past the end of the data.  *saved gets the
 * limit to put back.  Returns NULL, or what went wrong. */
#include <signal.h>
#include <sys/resource.h>
TT_API const char *tt_fill_disk(tally *db, const char *dir, size_t room,
                                struct rlimit *saved)
{
    static uint8_t big[1024];
    char logname[TT_NAME], path[PATH_MAX];
    uint64_t start = 0;
    struct rlimit low;
    tally_ticket t = 0;
    int rc;

    memset(big, 'b', sizeof big);
    if (!tt_newest(dir, "log-", logname, &start))
        return "no log file";
    tt_path(path, dir, logname);
    signal(SIGXFSZ, SIG_IGN);
    if (getrlimit(RLIMIT_FSIZE, saved) != 0)
        return "getrlimit";
    low = (struct rlimit){(rlim_t)(tt_file_size(path) + (64 << 10)),
                          saved->rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &low) != 0)
        return "setrlimit";
    /* Until a 1 KiB change is refused: from then on the engine reserves
     * exactly what each change needs. */
    for (long i = 0;; i++) {
        rc = tally_set(db, big, sizeof big, i, &t);
        if (rc != TALLY_OK)
            break;
        if (i >= 100000)
            return "no ENOSPC";
    }
    if (rc != TALLY_ENOSPC)
        return "filling did not end in ENOSPC";
    if (tally_wait(db, tally_head(db)) != TALLY_OK)
        return "wait";
    low.rlim_cur = (rlim_t)(TT_HDR + (tally_head(db) - start) + room);
    if (setrlimit(RLIMIT_FSIZE, &low) != 0)
        return "setrlimit room";
    return NULL;
}

/* ---- Opening the engine ------------------------------------------------- */

/* Collects what the engine logs (it may call from its sync thread). */
typedef struct tt_log {
    pthread_mutex_t mu;
    int warnings, errors;
    char last[TALLY_ERRMAX];
} tt_log;

#define TT_LOG_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, ""}

TT_API void tt_log_fn(void *ctx, int level, const char *msg)
{
    tt_log *l = ctx;
    pthread_mutex_lock(&l->mu);
    if (level == TALLY_LOG_WARN)
        l->warnings++;
    else if (level == TALLY_LOG_ERROR)
        l->errors++;
    snprintf(l->last, sizeof(l->last), "%s", msg);
    pthread_mutex_unlock(&l->mu);
}

/* Defaults, but no automatic snapshots (so tests know what is in the log)
 * and logging into *log when it is not NULL. */
TT_API void tt_options(tally_options *o, tt_log *log)
{
    tally_options_init(o);
    o->snapshot_min_log = UINT64_MAX;
    if (log) {
        o->log = tt_log_fn;
        o->log_ctx = log;
    }
}

/* Open dir with opts (NULL: tt_options without a log), failing the test
 * with the engine's message if that does not work. */
TT_API tally *tt_open(const char *dir, const tally_options *opts)
{
    tally_options o;
    char err[TALLY_ERRMAX] = "";
    tally *db = NULL;
    if (!opts) {
        tt_options(&o, NULL);
        opts = &o;
    }
    int rc = tally_open(dir, opts, &db, err);
    if (rc != TALLY_OK)
        fail_msg("tally_open(%s) = %d (%s): %s", dir, rc, tally_strerror(rc),
                 err);
    assert_non_null(db);
    return db;
}

TT_API void tt_close(tally *db)
{
    int rc = tally_close(db);
    if (rc != TALLY_OK)
        fail_msg("tally_close = %d (%s)", rc, tally_strerror(rc));
}

/* Close db and open dir again with the defaults of tt_options. */
TT_API tally *tt_reopen(tally *db, const char *dir)
{
    tt_close(db);
    return tt_open(dir, NULL);
}

/* The value of a counter that must exist. */
TT_API int64_t tt_get(tally *db, const char *key)
{
    int64_t v = 0;
    int rc = tally_get(db, key, strlen(key), &v, NULL);
    if (rc != TALLY_OK)
        fail_msg("tally_get(%s) = %d (%s)", key, rc, tally_strerror(rc));
    return v;
}

TT_API int tt_exists(tally *db, const char *key)
{
    int64_t v;
    int rc = tally_get(db, key, strlen(key), &v, NULL);
    assert_true(rc == TALLY_OK || rc == TALLY_NOTFOUND);
    return rc == TALLY_OK;
}

TT_API void tt_set(tally *db, const char *key, int64_t v)
{
    int rc = tally_set(db, key, strlen(key), v, NULL);
    if (rc != TALLY_OK)
        fail_msg("tally_set(%s) = %d (%s)", key, rc, tally_strerror(rc));
}

/* Set n counters "<prefix><i>" = i (i from 0), a thousand per tally_mset:
 * millions of counters in seconds, also under the sanitizers. */
TT_API void tt_fill(tally *db, const char *prefix, unsigned n)
{
    enum { FILL = 1000 };
    static char k[FILL][32];
    const void *keys[FILL];
    size_t klens[FILL];
    int64_t values[FILL];
    unsigned i, j, m;

    for (i = 0; i < n; i += m) {
        m = n - i < FILL ? n - i : FILL;
        for (j = 0; j < m; j++) {
            klens[j] = (size_t)snprintf(k[j], sizeof(k[j]), "%s%u", prefix,
                                        i + j);
            keys[j] = k[j];
            values[j] = i + j;
        }
        int rc = tally_mset(db, m, keys, klens, values, NULL);
        if (rc != TALLY_OK)
            fail_msg("tally_mset = %d (%s)", rc, tally_strerror(rc));
    }
}

TT_API int64_t tt_incr(tally *db, const char *key, int64_t delta)
{
    int64_t v = 0;
    int rc = tally_incr(db, key, strlen(key), delta, &v, NULL);
    if (rc != TALLY_OK)
        fail_msg("tally_incr(%s) = %d (%s)", key, rc, tally_strerror(rc));
    return v;
}

/* ---- Finding records and naming offsets --------------------------------- */

/* Does msg name the file `name` and the byte offset off (in decimal or as
 * 0x hex)?  The name is blanked out first so that its hex digits cannot pass
 * for the offset. */
TT_API int tt_names_file_and_offset(const char *msg, const char *name, uint64_t off)
{
    char m[TALLY_ERRMAX];
    snprintf(m, sizeof(m), "%s", msg);
    char *at = strstr(m, name);
    if (!at)
        return 0;
    memset(at, ' ', strlen(name));
    for (char *p = m; *p; p++) {
        if (!isdigit((unsigned char)*p) || (p > m && isalnum((unsigned char)p[-1])))
            continue;
        char *end;
        int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
        uint64_t v = strtoull(p, &end, hex ? 16 : 10);
        if (v == off && !isalnum((unsigned char)*end))
            return 1;
        p = end - 1;
    }
    return 0;
}

TT_API void tt_assert_names(const char *msg, const char *name, uint64_t off)
{
    if (!tt_names_file_and_offset(msg, name, off))
        fail_msg("message does not name %s and offset %" PRIu64 ": \"%s\"",
                 name, off, msg);
}

/* Where the log record covering LSNs [from, to) lies: the log file holding it
 * (the newest whose start is <= from), its offset there, and its bytes. */
typedef struct tt_located {
    char name[TT_NAME];
    uint64_t start; /* the file's first LSN */
    size_t off;     /* file offset of the record */
    tt_bytes file;  /* the whole file */
} tt_located;

TT_API void tt_locate(const char *dir, tally_ticket from, tally_ticket to,
                   tt_located *loc)
{
    char names[TT_FILES][TT_NAME];
    int n = tt_list(dir, "log-", ".tly", names, TT_FILES);
    int found = -1;
    for (int i = 0; i < n; i++)
        if (strtoull(names[i] + 4, NULL, 16) <= from)
            found = i;
    if (found < 0) {
        fail_msg("no log file holds LSN %" PRIu64, (uint64_t)from);
        return; /* not reached: fail_msg jumps out */
    }
    memcpy(loc->name, names[found], TT_NAME);
    loc->start = strtoull(loc->name + 4, NULL, 16);
    loc->off = TT_HDR + (size_t)(from - loc->start);
    char path[PATH_MAX];
    tt_path(path, dir, loc->name);
    assert_int_equal(tt_read_file(path, &loc->file), 0);
    uint64_t hdr_lsn;
    assert_true(tt_header_ok(loc->file.p, loc->file.len, "TALLYLOG", &hdr_lsn));
    assert_int_equal(hdr_lsn, loc->start);
    assert_true(loc->off + (to - from) <= loc->file.len);
}


#endif /* ENGINE_TESTUTIL_H */
