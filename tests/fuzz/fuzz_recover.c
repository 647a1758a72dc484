/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_recover.c - libFuzzer target: recovery (tally_open over src/engine/
 * recover.c, codec.c, db.c, once.c) opening a data directory built from the
 * input.  Whatever the files hold, tally_open must end in a clean open or a
 * clean refusal (TALLY_ECORRUPT or TALLY_EVERSION with a message), never a
 * crash, and an open database must serve only what valid records say.
 *
 * The first input byte chooses one of two modes.
 *
 * Raw (bit 0 set): the rest is split into a snapshot file and a log file:
 * a byte says which exist (bits 0, 1) and which get a valid 32-byte header
 * in front (bits 2, 3; bit 4: a version 2 log header, bare records rather
 * than format 3 frames), so that mutations reach the records; then the
 * snapshot's LSN S (8 bytes, big-endian; the log is named for S too, or 0
 * without a snapshot), the snapshot's size (2 bytes) and the header's
 * sizing hint (1 byte); the rest is the files' bytes.
 * After a clean open, every counter served must be a (key, value) that some
 * record with a valid checksum in those files holds, found by decoding at
 * every offset, so that nothing which fails its CRC is ever served.
 *
 * Structured (bit 0 clear): the input describes a snapshot (PUT, PUTX and
 * IDEM records, END), one or two log files (PUT, PUTX, DEL, BATCH, IDEM
 * records; the expiries lie days ahead, so the counters stay served) and
 * optional damage to one file: truncation, one flipped byte, zeros over a
 * range, or zeros appended (reserved log space).  The target writes the
 * files itself with the engine's encoders and correct CRCs, and keeps the
 * counters after the snapshot and after each log record (a model).  Then:
 *   - undamaged files, or zeros appended to a log, must open, with exactly
 *     the model's final counters;
 *   - damage to the snapshot or to a log that is not the newest must be
 *     refused (zeros after a log's data excepted: they are reserved space);
 *   - a flipped byte in the newest log's header or in any record but its
 *     last must be refused: valid data follows it, so it is no torn write;
 *   - other damage to the newest log may be refused, but an open database
 *     must serve exactly the counters
 *     after the records wholly before the first damaged byte: recovery may
 *     drop a torn tail, never keep a damaged record or lose one before it;
 *     and cutting that log at 32 bytes or more, or zeroing it from there to
 *     its end, must open (a torn tail is not corruption) unless the cut-off
 *     part holds a valid record, which the recovery rule treats as
 *     corruption (docs/format.md).
 * After every clean open: tally_scan and tally_get agree with each other
 * and with tally_count; a change made then survives close and reopen on top
 * of exactly what was served, so that recovery leaves a log one can append
 * to.
 *
 * Seeds: tests/fuzz/corpus/recover/ (gen_corpus.c writes some from real
 * engine files).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codec.h"
#include "fuzz_env.h"
#include "fuzz_files.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- Reading the input ------------------------------------------------ */

struct rd {
    const uint8_t *p;
    size_t n;
};

static unsigned get8(struct rd *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t get64(struct rd *r)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | get8(r);
    return v;
}

/* ---- The model: counters over a small key space ----------------------- */

/* Keys of 1 to 4 letters from "abcd", so that records collide often. */
#define NKEYS (4 + 16 + 64 + 256)

struct state {
    unsigned char has[NKEYS];
    int64_t v[NKEYS];
};

static size_t key_of(unsigned b, char key[4])
{
    size_t len = 1 + b % 4;
    unsigned x = b / 4;

    for (size_t i = 0; i < len; i++, x /= 4)
        key[i] = (char)('a' + x % 4);
    return len;
}

/* The slot of key[0, n), or -1 for a key outside the space. */
static int slot(const char *key, size_t n)
{
    static const int base[5] = {0, 0, 4, 20, 84};
    int x = 0;

    if (n < 1 || n > 4)
        return -1;
    for (size_t i = n; i-- > 0;) {
        if (key[i] < 'a' || key[i] > 'd')
            return -1;
        x = x * 4 + (key[i] - 'a');
    }
    return base[n] + x;
}

/* ---- Files ------------------------------------------------------------ */

struct file {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct file *f, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (f->n + n > f->cap) {
        f->cap = (f->n + n) * 2;
        f->p = xrealloc(f->p, f->cap);
    }
    memcpy(f->p + f->n, p, n);
    f->n += n;
}

static void name_of(char out[40], const char *prefix, uint64_t lsn)
{
    snprintf(out, 40, "%s-%016" PRIx64 ".tly", prefix, lsn);
}

static void write_file(const char *dir, const char *prefix, uint64_t lsn,
                       const struct file *f)
{
    char name[40];

    name_of(name, prefix, lsn);
    fz_write_file(dir, name, f->p, f->n);
}

/* Does a valid record start anywhere in p[from, n)? */
static int has_valid_record(const unsigned char *p, size_t n, size_t from)
{
    struct codec_rec r;
    size_t used, claimed;
    const char *why;

    for (size_t i = from; i + CODEC_REC_HDR < n; i++)
        if (codec_decode(p + i, n - i, &r, &used, &claimed, &why) ==
            CODEC_OK)
            return 1;
    return 0;
}

/* ---- What an open database serves ------------------------------------- */

struct served {
    struct buf keys;  /* each key: u16 length, bytes */
    size_t n;
    int64_t *v;
    size_t cap;
};

static int collect(void *arg, const void *key, size_t klen, int64_t value)
{
    struct served *s = arg;
    uint16_t l = (uint16_t)klen;

    FZ_CHECK(klen <= TALLY_KEY_MAX, "served a %zu-byte key", klen);
    buf_add(&s->keys, &l, 2);
    buf_add(&s->keys, key, klen);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = value;
    return 0;
}

/* Walk the whole table into s, checking that tally_get agrees with every
 * counter the scan shows and that the distinct keys number tally_count.
 * A scan may show a counter twice (tally.h); the repeat is dropped. */
static void serve(tally *db, struct served *s)
{
    uint64_t cursor = 0;
    tally_ticket t;

    memset(s, 0, sizeof *s);
    do {
        FZ_CHECK(tally_scan(db, cursor, NULL, 0, 64, collect, s, &cursor,
                            &t) == TALLY_OK, "tally_scan");
    } while (cursor != 0);

    size_t kept = 0, off = 0, w = 0;
    struct buf uniq = BUF_INIT;
    for (size_t i = 0; i < s->n; i++) {
        uint16_t l;
        memcpy(&l, s->keys.p + off, 2);
        const char *k = s->keys.p + off + 2;
        int64_t v;
        FZ_CHECK(tally_get(db, k, l, &v, &t) == TALLY_OK &&
                     v == s->v[i], "tally_get disagrees with tally_scan");
        int dup = 0;
        for (size_t j = 0, o = 0; j < kept && !dup; j++) {
            uint16_t m;
            memcpy(&m, uniq.p + o, 2);
            dup = m == l && memcmp(uniq.p + o + 2, k, l) == 0;
            o += 2 + (size_t)m;
        }
        if (!dup) {
            buf_add(&uniq, s->keys.p + off, 2 + (size_t)l);
            s->v[w++] = s->v[i];
            kept++;
        }
        off += 2 + (size_t)l;
    }
    buf_free(&s->keys);
    s->keys = uniq;
    s->n = kept;
    FZ_CHECK(tally_count(db) == s->n, "tally_count %" PRIu64 ", scan %zu",
             tally_count(db), s->n);
}

static void served_free(struct served *s)
{
    buf_free(&s->keys);
    free(s->v);
}

/* Did the open database serve exactly st? */
static int served_is(const struct served *s, const struct state *st)
{
    size_t want = 0, off = 0;

    for (int i = 0; i < NKEYS; i++)
        want += st->has[i];
    if (want != s->n)
        return 0;
    for (size_t i = 0; i < s->n; i++) {
        uint16_t l;
        memcpy(&l, s->keys.p + off, 2);
        int k = slot(s->keys.p + off + 2, l);
        if (k < 0 || !st->has[k] || st->v[k] != s->v[i])
            return 0;
        off += 2 + (size_t)l;
    }
    return 1;
}

static tally *try_open(const char *dir, int *rc, char *err)
{
    tally_options o;
    tally *db = NULL;

    tally_options_init(&o);
    o.snapshot_min_log = UINT64_MAX;
    *rc = tally_open(dir, &o, &db, err);
    FZ_CHECK(*rc == TALLY_OK || *rc == TALLY_ECORRUPT ||
                 *rc == TALLY_EVERSION,
             "tally_open ended in %d (%s): neither open nor a clean refusal",
             *rc, err);
    FZ_CHECK(*rc == TALLY_OK || (err[0] && memchr(err, 0, TALLY_ERRMAX)),
             "refusal %d without a message", *rc);
    FZ_CHECK((*rc == TALLY_OK) == (db != NULL), "handle after %d", *rc);
    return db;
}

/* Cut the newest log of dir after its last record.  The engine reserves
 * log space 2 MiB at a time, and recovery's byte-wise check that the
 * reserved space is all zeros costs tens of milliseconds under the
 * fuzzer's instrumentation; zeros after a log's data are tested on their
 * own (D_APPEND below). */
static void trim_newest_log(const char *dir)
{
    char name[40] = "", path[128];
    struct dirent *de;
    DIR *d = opendir(dir);

    FZ_CHECK(d != NULL, "opendir %s", dir);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "log-", 4) == 0 &&
            strlen(de->d_name) == 24 && strcmp(de->d_name + 20, ".tly") == 0 &&
            strcmp(de->d_name, name) > 0)
            snprintf(name, sizeof name, "%s", de->d_name);
    closedir(d);
    FZ_CHECK(name[0], "no log file after a clean close");
    snprintf(path, sizeof path, "%s/%s", dir, name);

    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    FZ_CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
    unsigned char *p = xmalloc((size_t)st.st_size + 1);
    FZ_CHECK(pread(fd, p, (size_t)st.st_size, 0) == st.st_size, "read");
    size_t off = fz_data_end(p, (size_t)st.st_size);
    static const unsigned char zero[65536];
    for (size_t i = off; i < (size_t)st.st_size; i += sizeof zero) {
        size_t n = (size_t)st.st_size - i;
        FZ_CHECK(memcmp(p + i, zero, n < sizeof zero ? n : sizeof zero) == 0,
                 "%s holds more than zeros after its last record", name);
    }
    if (off < (size_t)st.st_size)
        FZ_CHECK(ftruncate(fd, (off_t)off) == 0, "ftruncate %s", path);
    free(p);
    close(fd);
}

/* A change on the open database survives close and reopen, on top of
 * exactly what was served. */
static void reopen_check(const char *dir, tally *db, const struct served *s)
{
    static const char key[] = "fuzz-after-open";
    char err[TALLY_ERRMAX] = "";
    int64_t v;
    int rc;

    FZ_CHECK(tally_incr(db, key, sizeof key - 1, 7, &v, NULL) == TALLY_OK,
             "a change after recovery failed: %s", tally_errmsg(db));
    FZ_CHECK(tally_close(db) == TALLY_OK, "tally_close");
    trim_newest_log(dir);
    db = try_open(dir, &rc, err);
    FZ_CHECK(rc == TALLY_OK, "reopen after recovery and one change: %s",
             err);
    struct served again;
    serve(db, &again);
    FZ_CHECK(again.n == s->n + 1, "%zu counters before, %zu after reopen",
             s->n, again.n);
    FZ_CHECK(tally_get(db, key, sizeof key - 1, &v, NULL) == TALLY_OK &&
                 v == 7, "the change after recovery was lost");
    size_t off = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint16_t l;
        int64_t w;
        memcpy(&l, s->keys.p + off, 2);
        FZ_CHECK(tally_get(db, s->keys.p + off + 2, l, &w, NULL) ==
                         TALLY_OK && w == s->v[i],
                 "a counter changed across reopen");
        off += 2 + (size_t)l;
    }
    served_free(&again);
    FZ_CHECK(tally_close(db) == TALLY_OK, "tally_close");
}

/* ---- Raw mode ---------------------------------------------------------- */

/* Is (key, value) held by a PUT with a valid checksum somewhere in f? */
static int put_in(const struct file *f, const char *key, size_t klen,
                  int64_t value)
{
    for (size_t i = 0; i + CODEC_REC_HDR < f->n; i++) {
        struct codec_rec r;
        struct codec_op op;
        size_t used, claimed, off = 0;
        const char *why;

        if (codec_decode(f->p + i, f->n - i, &r, &used, &claimed, &why) !=
            CODEC_OK)
            continue;
        if (r.type == CODEC_PUT && r.op.klen == klen &&
            r.op.value == value && memcmp(r.op.key, key, klen) == 0)
            return 1;
        if (r.type == CODEC_BATCH)
            while (codec_batch_next(&r, &off, &op))
                if (op.type == CODEC_PUT && op.klen == klen &&
                    op.value == value && memcmp(op.key, key, klen) == 0)
                    return 1;
    }
    return 0;
}

static void raw(const char *dir, struct rd *in)
{
    unsigned cfg = get8(in);
    uint64_t lsn = get64(in);
    size_t split = get8(in) << 8;
    struct file snap = {0}, log = {0};
    unsigned char hdr[CODEC_FILE_HDR];
    char err[TALLY_ERRMAX] = "";
    int rc;

    split |= get8(in);
    uint32_t hint = get8(in);
    if (split > in->n)
        split = in->n;
    if (cfg & 4) {
        codec_header(hdr, CODEC_SNAP, lsn, hint);
        put(&snap, hdr, sizeof hdr);
    }
    put(&snap, in->p, split);
    if (cfg & 8) {
        codec_header(hdr, CODEC_LOG, (cfg & 1) ? lsn : 0, 0);
        if (cfg & 16) /* bare records instead of frames */
            codec_header_set_version(hdr, 2);
        put(&log, hdr, sizeof hdr);
    }
    put(&log, in->p + split, in->n - split);
    if (cfg & 1)
        write_file(dir, "snap", lsn, &snap);
    if (cfg & 2)
        write_file(dir, "log", (cfg & 1) ? lsn : 0, &log);

    tally *db = try_open(dir, &rc, err);
    if (db) {
        struct served s;
        size_t off = 0;

        serve(db, &s);
        for (size_t i = 0; i < s.n; i++) {
            uint16_t l;
            memcpy(&l, s.keys.p + off, 2);
            const char *k = s.keys.p + off + 2;
            FZ_CHECK(((cfg & 1) && put_in(&snap, k, l, s.v[i])) ||
                         ((cfg & 2) && put_in(&log, k, l, s.v[i])),
                     "served a value no valid record holds");
            off += 2 + (size_t)l;
        }
        reopen_check(dir, db, &s);
        served_free(&s);
    }
    free(snap.p);
    free(log.p);
}

/* ---- Structured mode --------------------------------------------------- */

#define MAX_LOG_RECS 32

enum damage { D_NONE, D_CUT, D_FLIP, D_ZERO, D_APPEND };

/* One generated op; applies it to st. */
static void gen_op(struct rd *in, struct codec_op *op, char key[4],
                   int allow_del, struct state *st)
{
    unsigned b = get8(in);

    memset(op, 0, sizeof *op);
    op->type = allow_del && (b & 0x80) ? CODEC_DEL : CODEC_PUT;
    op->klen = key_of(b & 0x7f, key);
    op->key = key;
    op->value = op->type == CODEC_PUT ? (int64_t)get64(in) : 0;
    /* Sometimes an expiry (a PUTX), ten days ahead: still served. */
    if (op->type == CODEC_PUT && (get8(in) & 1))
        op->expire = (int64_t)time(NULL) * 1000 + 10LL * 86400 * 1000;
    int k = slot(key, op->klen);
    st->has[k] = op->type == CODEC_PUT;
    st->v[k] = op->value;
}

static void gen_idem(struct rd *in, struct codec_idem *idem, char id[8])
{
    unsigned b = get8(in);

    for (int i = 0; i < 8; i++)
        id[i] = (char)('0' + (b >> (i % 4)) % 10);
    idem->id = id;
    idem->idlen = 1 + b % 8;
    idem->fp = get64(in);
    idem->created_ms = (int64_t)time(NULL) * 1000; /* kept for 24 h */
    idem->code = (b & 0x40) ? TALLY_NOTFOUND : TALLY_OK;
    idem->value = (int64_t)get64(in);
    /* Half of them a batch's id with its answer (an IDEMA). */
    idem->answer = (b & 0x80) ? "answer:" : NULL;
    idem->alen = (b & 0x80) ? 1 + b % 7 : 0;
}

/* Append one generated log record to f; st becomes the state after it. */
static void gen_log_record(struct rd *in, struct file *f, struct state *st)
{
    unsigned char rec[512];
    struct codec_op op;
    struct codec_idem idem;
    char key[4], id[8];
    unsigned kind = get8(in);
    size_t n;

    switch (kind % 4) {
    case 0:
    case 1:
        gen_op(in, &op, key, 1, st);
        n = codec_op(rec, &op);
        break;
    case 2: {
        unsigned subs = kind / 4 % 5; /* 0..4, an empty batch too */
        size_t pos = CODEC_BATCH_HDR;
        for (unsigned i = 0; i < subs; i++) {
            if (get8(in) % 4 == 0) {
                gen_idem(in, &idem, id);
                pos += codec_batch_add_idem(rec + pos, &idem);
            } else {
                gen_op(in, &op, key, 1, st);
                pos += codec_batch_add(rec + pos, &op);
            }
        }
        codec_batch_close(rec, pos, subs);
        n = pos;
        break;
    }
    default:
        gen_idem(in, &idem, id);
        n = codec_idem(rec, &idem);
        break;
    }
    put(f, rec, n);
}

static void structured(const char *dir, struct rd *in)
{
    unsigned cfg = get8(in);
    int has_snap = cfg & 1, two_logs = (cfg >> 1) & 1;
    enum damage dmg = (enum damage)((cfg >> 2) % 5);
    unsigned target = (cfg >> 5) % 3; /* 0 newest log, 1 older, 2 snap */
    uint64_t s = has_snap ? (uint64_t)(get8(in) << 8 | get8(in)) : 0;
    struct state *m = xcalloc(MAX_LOG_RECS + 1, sizeof *m);
    struct file snap = {0}, recs = {0}, loga = {0}, logb = {0};
    size_t end[MAX_LOG_RECS + 1]; /* log stream offset after record i-1 */
    unsigned char buf[512];
    char err[TALLY_ERRMAX] = "";
    int rc;

    /* The snapshot: PUTs of distinct keys (as the engine writes them) and
     * ids, then END. */
    if (has_snap) {
        unsigned n = get8(in) % 16;
        uint64_t count = 0;
        codec_header(buf, CODEC_SNAP, s, n);
        put(&snap, buf, CODEC_FILE_HDR);
        for (unsigned i = 0; i < n; i++) {
            struct codec_op op;
            struct codec_idem idem;
            char key[4], id[8];
            if (get8(in) % 4 == 0) {
                gen_idem(in, &idem, id);
                put(&snap, buf, codec_idem(buf, &idem));
            } else {
                struct state tmp = m[0];
                gen_op(in, &op, key, 0, &tmp);
                if (m[0].has[slot(key, op.klen)])
                    continue; /* one record per counter */
                m[0] = tmp;
                put(&snap, buf, codec_op(buf, &op));
            }
            count++;
        }
        put(&snap, buf, codec_end(buf, count));
    }

    /* The log records, as one stream, and the state after each. */
    unsigned nrec = get8(in) % (MAX_LOG_RECS + 1);
    end[0] = 0;
    for (unsigned i = 0; i < nrec; i++) {
        m[i + 1] = m[i];
        gen_log_record(in, &recs, &m[i + 1]);
        end[i + 1] = recs.n;
    }
    /* Split them over one or two files. */
    unsigned k = two_logs ? get8(in) % (nrec + 1) : nrec;
    if (k == 0) { /* an older log always holds a record: its successor */
        two_logs = 0; /* starts where its data ends */
        k = nrec;
    }
    uint64_t lsn_b = s + end[k];
    /* Version 2 logs hold bare records (format 3 frames them), which keeps
     * the model's notion of "the records before the damage" simple. */
    codec_header(buf, CODEC_LOG, s, 0);
    codec_header_set_version(buf, 2);
    put(&loga, buf, CODEC_FILE_HDR);
    put(&loga, recs.p, end[k]);
    if (two_logs) {
        codec_header(buf, CODEC_LOG, lsn_b, 0);
        codec_header_set_version(buf, 2);
        put(&logb, buf, CODEC_FILE_HDR);
        put(&logb, recs.p + end[k], recs.n - end[k]);
    }
    struct file *newest = two_logs ? &logb : &loga;
    size_t newest_first = two_logs ? k : 0; /* its first record's index */
    struct file *hit = target == 2 && has_snap ? &snap
                       : target == 1 && two_logs ? &loga
                                                 : newest;

    /* The damage, and the first byte it changed (hit->n: none). */
    struct file orig = {0};
    put(&orig, hit->p, hit->n);
    size_t at = (size_t)(get8(in) << 8 | get8(in));
    size_t len = 1 + get8(in);
    switch (dmg) {
    case D_NONE:
        break;
    case D_CUT:
        hit->n = at % (hit->n + 1);
        break;
    case D_FLIP:
        if (hit->n)
            hit->p[at % hit->n] ^= (unsigned char)(1 + get8(in) % 255);
        break;
    case D_ZERO:
        if (hit->n) {
            at %= hit->n;
            memset(hit->p + at, 0, len < hit->n - at ? len : hit->n - at);
        }
        break;
    case D_APPEND:
        memset(buf, 0, len);
        put(hit, buf, len);
        break;
    }
    size_t first = 0;
    while (first < hit->n && first < orig.n && hit->p[first] == orig.p[first])
        first++;
    int damaged = hit->n != orig.n || first < hit->n;
    /* Zeros after a log's data are reserved space, not damage. */
    int zeros_after = hit != &snap && damaged && first >= orig.n &&
                      hit->n > orig.n;

    if (has_snap)
        write_file(dir, "snap", s, &snap);
    write_file(dir, "log", s, &loga);
    if (two_logs)
        write_file(dir, "log", lsn_b, &logb);

    /* What may happen. */
    struct state *want = NULL; /* an open must serve exactly this */
    int must_open = 0;
    if (!damaged || zeros_after) {
        want = &m[nrec];
        must_open = 1;
    } else if (hit == newest) {
        size_t j = newest_first, off = first < CODEC_FILE_HDR
                                            ? 0
                                            : first - CODEC_FILE_HDR;
        while (j < nrec && end[j + 1] - end[newest_first] <= off)
            j++;
        want = &m[j];
        /* A flipped byte is never a torn write, which leaves zeros or
         * nothing: in the header or in any record but the last, data that
         * checks out follows it, so it must be refused.  In the last record
         * it may pass for a torn tail. */
        if (dmg == D_FLIP && (first < CODEC_FILE_HDR || j + 1 < nrec))
            want = NULL;
        /* A cut, or zeros to the end, at a record boundary or inside one
         * is a torn tail; a whole log of zeros is a creation cut short. */
        int to_end = dmg == D_CUT ||
                     (dmg == D_ZERO && at + len >= orig.n);
        int all_zero = 1;
        for (size_t i = 0; i < hit->n && all_zero; i++)
            all_zero = hit->p[i] == 0;
        if (to_end && (first >= CODEC_FILE_HDR || all_zero))
            must_open = first < CODEC_FILE_HDR ||
                        !has_valid_record(hit->p, hit->n,
                                          CODEC_FILE_HDR +
                                              (end[j] - end[newest_first]) +
                                              1);
    }

    tally *db = try_open(dir, &rc, err);
    FZ_CHECK(db || !must_open, "refused files it must open: %s", err);
    if (db) {
        struct served sv;
        serve(db, &sv);
        FZ_CHECK(want != NULL, "opened despite damage to %s (dmg %d at %zu)",
                 hit == &snap ? "the snapshot"
                 : hit == newest ? "the newest log, not at its end"
                                 : "an older log",
                 dmg, first);
        FZ_CHECK(served_is(&sv, want), "served counters other than the "
                 "valid records before the damage say (dmg %d at %zu)", dmg,
                 first);
        reopen_check(dir, db, &sv);
        served_free(&sv);
    }
    free(m);
    free(snap.p);
    free(recs.p);
    free(loga.p);
    free(logb.p);
    free(orig.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd in = {data, size};
    char dir[64];

    if (size == 0)
        return 0;
    fz_dir_make(dir);
    if (get8(&in) & 1)
        raw(dir, &in);
    else
        structured(dir, &in);
    fz_dir_remove(dir);
    return 0;
}
