/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * recover.c - turning a data directory back into a table: the LOCK file,
 * recovery at open, and the offline tools tally_check (verify, change
 * nothing) and tally_repair (cut at the first bad record).  All three walk
 * the files the same way (recover_dir); the mode decides what an anomaly
 * does.  Record layout is in codec.c; the rules below are docs/format.md's.
 *
 * Recovery: remove temp files (*.tmp); load the newest snapshot, verifying
 * every record and its END count (any failure refuses, naming the file and
 * offset), ids past their retention left out (once.c); remove older
 * snapshots and the log files wholly before it; replay
 * the log files from the one holding S through db_apply, the function live
 * changes use, checking that each file starts where the previous one's valid
 * data ended (a gap refuses, naming the missing range).  A log of format
 * version 2 is walked frame by frame, each record applied once checked,
 * and a bad frame judged by tail.c: a torn write (only possible in the
 * newest log) is cut at its first bad record, its frame shortened to the
 * records before it (ftruncate, fdatasync) with a warning, anything else is corruption, refused with the
 * file, offset, why it was acknowledged and what repair would drop.  A
 * version-1 or -2 log keeps its rule (walk_records), and such a newest log
 * gets a framed log after it.  Recovery reads each file once
 * through mmap, so its cost follows the snapshot size plus the log written
 * since it (a snapshot is taken whenever the log outgrows the last one), not
 * the whole history.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "mem.h"

#define MODE_OPEN 0
#define MODE_CHECK 1
#define MODE_REPAIR 2

struct rfile {
    uint64_t lsn;
    char name[40];
};

struct rlist {
    struct rfile *v;
    size_t n, cap;
};

/* One recovery pass: what it found and what it says. */
struct rscan {
    tally *db;
    int mode;
    struct rlist logs, snaps, tmps;
    char *msg;                 /* error (open) or report, TALLY_ERRMAX */
    char note[TALLY_ERRMAX];   /* what was (or would be) cut or removed */
    int dir_changed;           /* fsync the directory at the end */
    int cut;                   /* repair cut a log: later ones go aside */
    int torn;                  /* a torn tail was (or would be) cut */
    int closed;                /* the newest log ends with a CLOSE frame */
    int newest_old;            /* ... or is of a version before
                                  CODEC_VERSION (1 and 2: unframed) */
    int newest_fd;             /* open: the newest log, kept for appends */
    uint64_t newest_start, newest_size;
};

struct mfile {
    int fd;
    unsigned char *p;
    size_t n;       /* the file's size (after a cut, its new size) */
    size_t maplen;  /* bytes mapped */
};

static void add_note(struct rscan *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_note(struct rscan *rs, const char *fmt, ...)
{
    size_t l = strlen(rs->note);
    va_list ap;

    if (l && l + 2 < sizeof(rs->note)) {
        memcpy(rs->note + l, "; ", 3);
        l += 2;
    }
    va_start(ap, fmt);
    vsnprintf(rs->note + l, sizeof(rs->note) - l, fmt, ap);
    va_end(ap);
}

static int fail(struct rscan *rs, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct rscan *rs, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (rs->msg)
        vsnprintf(rs->msg, TALLY_ERRMAX, fmt, ap);
    va_end(ap);
    return code;
}

int recover_lock(int dirfd, const char *dir, int *fdp, char *err)
{
    char buf[32];
    ssize_t n;
    int fd = openat(dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    *fdp = -1;
    if (fd < 0) {
        if (err)
            snprintf(err, TALLY_ERRMAX, "%s/LOCK: %s", dir, strerror(errno));
        return TALLY_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;

        n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        close(fd);
        if (err && e == EWOULDBLOCK)
            snprintf(err, TALLY_ERRMAX,
                     "%s is in use: locked by process %s", dir,
                     buf[0] ? buf : "(unknown pid)");
        else if (err)
            snprintf(err, TALLY_ERRMAX, "%s/LOCK: %s", dir, strerror(e));
        return e == EWOULDBLOCK ? TALLY_ELOCKED : TALLY_EIO;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        if (err)
            snprintf(err, TALLY_ERRMAX, "%s/LOCK: %s", dir, strerror(errno));
        close(fd);
        return TALLY_EIO;
    }
    *fdp = fd;
    return 0;
}

int recover_parse_name(const char *s, const char *prefix, const char *ext,
                      uint64_t *lsn)
{
    size_t pl = strlen(prefix), i;
    uint64_t v = 0;
    char c;

    if (strlen(s) != pl + 1 + 16 + 1 + strlen(ext) ||
        strncmp(s, prefix, pl) != 0 || s[pl] != '-' || s[pl + 17] != '.' ||
        strcmp(s + pl + 18, ext) != 0)
        return 0;
    for (i = 0; i < 16; i++) {
        c = s[pl + 1 + i];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint64_t)(c - 'a' + 10);
        else
            return 0;
    }
    *lsn = v;
    return 1;
}

static void rlist_add(struct rlist *l, uint64_t lsn, const char *name)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = mem_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n].lsn = lsn;
    /* Only names recover_parse_name() accepted get here, and those are 25
     * bytes at most; one that did not fit would not be ours. */
    if (snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name) >=
        (int)sizeof(l->v[l->n].name))
        return;
    l->n++;
}

static int rfile_cmp(const void *a, const void *b)
{
    const struct rfile *x = a, *y = b;

    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

static int list_dir(struct rscan *rs)
{
    int fd = dup(rs->db->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    uint64_t lsn;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return fail(rs, TALLY_EIO, "%s: %s", rs->db->dir, strerror(errno));
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        if (recover_parse_name(de->d_name, "log", "tly", &lsn))
            rlist_add(&rs->logs, lsn, de->d_name);
        else if (recover_parse_name(de->d_name, "snap", "tly", &lsn))
            rlist_add(&rs->snaps, lsn, de->d_name);
        else if (recover_parse_name(de->d_name, "snap", "tmp", &lsn) ||
                 recover_parse_name(de->d_name, "log", "tmp", &lsn))
            rlist_add(&rs->tmps, lsn, de->d_name);
    }
    closedir(d);
    if (rs->logs.n)
        qsort(rs->logs.v, rs->logs.n, sizeof(struct rfile), rfile_cmp);
    if (rs->snaps.n)
        qsort(rs->snaps.v, rs->snaps.n, sizeof(struct rfile), rfile_cmp);
    return 0;
}

static int mfile_open(struct rscan *rs, const char *name, int writable,
                      struct mfile *m)
{
    struct stat st;

    m->p = NULL;
    m->n = 0;
    m->fd = openat(rs->db->dirfd, name,
                   (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (m->fd < 0 || fstat(m->fd, &st) != 0)
        goto ioerr;
    m->n = m->maplen = (size_t)st.st_size;
    if (m->n == 0)
        return 0;
    m->p = mmap(NULL, m->n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, m->fd, 0);
    if (m->p == MAP_FAILED) {
        m->p = NULL;
        goto ioerr;
    }
    return 0;
ioerr:
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    return fail(rs, TALLY_EIO, "%s/%s: %s", rs->db->dir, name,
                strerror(errno));
}

static void mfile_close(struct mfile *m, int keep_fd)
{
    if (m->p)
        munmap(m->p, m->maplen);
    if (!keep_fd && m->fd >= 0)
        close(m->fd);
    m->p = NULL;
}

static int all_zero(const unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* n less the zeros that end p[0, n): the bytes that hold data, as opposed
 * to log space reserved ahead and never written. */
static size_t data_len(const unsigned char *p, size_t n)
{
    while (n && !p[n - 1])
        n--;
    return n;
}

static void remove_file(struct rscan *rs, const char *name)
{
    if (unlinkat(rs->db->dirfd, name, 0) == 0)
        rs->dir_changed = 1;
}

/* Move a log aside during repair. */
static void set_aside(struct rscan *rs, const char *name)
{
    char to[64];

    snprintf(to, sizeof(to), "%s.corrupt", name);
    if (renameat(rs->db->dirfd, name, rs->db->dirfd, to) == 0) {
        rs->dir_changed = 1;
        add_note(rs, "moved %s aside as %s", name, to);
    }
}

/* Cut a log file at off and make the cut durable. */
static int cut_file(struct rscan *rs, int fd, const char *name, size_t off)
{
    if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0)
        return fail(rs, TALLY_EIO, "%s/%s: cannot cut at offset %zu: %s",
                    rs->db->dir, name, off, strerror(errno));
    return 0;
}

/* Load the snapshot named f into the (fresh) table.  On corruption: refuse,
 * or (repair) rebuild it from the records before the bad one. */
static int load_snapshot(struct rscan *rs, const struct rfile *f)
{
    tally *db = rs->db;
    struct mfile m;
    struct codec_rec r;
    struct stat st;
    size_t off = CODEC_FILE_HDR, used, claimed;
    uint64_t lsn, puts = 0;
    uint32_t hint = 0;
    const char *why = "";
    int rc, code = TALLY_ECORRUPT;

    if ((rc = mfile_open(rs, f->name, 0, &m)) != 0)
        return rc;
    rc = codec_header_check(m.p, m.n, CODEC_SNAP, &lsn, &hint, &why);
    if (rc == 0 && lsn != f->lsn) {
        rc = TALLY_ECORRUPT;
        why = "header LSN does not match the file name";
    }
    table_init(&db->table, db->table.seed, rc == 0 ? hint : 0);
    if (rc != 0) {
        off = 0;
        code = rc;
        goto bad;
    }
    for (;;) {
        rc = codec_decode(m.p + off, m.n - off, &r, &used, &claimed, &why);
        if (rc == CODEC_OK && (r.type == CODEC_PUT || r.type == CODEC_IDEM)) {
            db_apply_rec(db, &r, f->lsn);
            puts++;
            off += used;
            continue;
        }
        if (rc == CODEC_OK && r.type == CODEC_END) {
            if (r.end_count != puts) {
                why = "END record count does not match the PUT and IDEM "
                      "records";
                goto bad;
            }
            if (off + used != m.n) {
                off += used;
                why = "data after the END record";
                goto bad;
            }
            break;
        }
        if (rc == CODEC_OK)
            why = "unexpected record type in a snapshot";
        else if (rc == CODEC_ZERO)
            why = "missing END record";
        else if (rc == CODEC_ETYPE)
            code = TALLY_EVERSION;
        goto bad;
    }
    fstat(m.fd, &st);
    db->snap_time = st.st_mtime;
    db->snap_bytes = m.n;
    db->snap_lsn = f->lsn;
    mfile_close(&m, 0);
    return 0;
bad:
    mfile_close(&m, 0);
    if (code == TALLY_EVERSION)
        return fail(rs, code, "%s/%s: bad record at offset %zu: %s", db->dir,
                    f->name, off, why);
    if (rs->mode != MODE_REPAIR)
        return fail(rs, code, "%s/%s: bad record at offset %zu: %s; `tally "
                    "repair` would rebuild the snapshot from the %" PRIu64
                    " valid records before it, dropping the rest", db->dir,
                    f->name, off, why, puts);
    add_note(rs, "rebuilt %s from its %" PRIu64 " valid records (bad at "
             "offset %zu: %s)", f->name, puts, off, why);
    rc = snap_write_table(db->dirfd, &db->table, &db->once, f->lsn, rs->msg);
    if (rc == 0) {
        rs->dir_changed = 1;
        db->snap_lsn = f->lsn;
    }
    return rc;
}

/* Does a valid record start anywhere inside p[1..n)?  A bad length field
 * claims an extent that swallows the records after it; those still check
 * out, which a torn write can never leave behind. */
static int holds_valid_record(const unsigned char *p, size_t n)
{
    struct codec_rec r;
    size_t i, used, claimed;
    const char *why;

    for (i = 1; i + CODEC_REC_HDR < n; i++)
        if (codec_decode(p + i, n - i, &r, &used, &claimed, &why) == CODEC_OK)
            return 1;
    return 0;
}

/* Version 1 and 2 (unframed) logs: walk the records from the header on, applying
 * each, up to the end of the data or the first bad record, which *d then
 * describes, judged by the version-1 rule (format.md): in the newest log,
 * a bad record with only zeros after its own claimed extent and no valid
 * record inside that extent is a torn tail.  *offp gets where the valid
 * data ends.  Returns 0, or TALLY_EVERSION with the message set. */
static int walk_records(struct rscan *rs, const struct rfile *f,
                        const struct mfile *m, int newest, size_t *offp,
                        struct tail_damage *d)
{
    tally *db = rs->db;
    struct codec_rec r;
    size_t off = CODEC_FILE_HDR, used, claimed, tail;
    const char *why = "";
    int rc;

    for (;;) {
        rc = codec_decode(m->p + off, m->n - off, &r, &used, &claimed, &why);
        if (rc == CODEC_OK && r.type != CODEC_END) {
            db_apply_rec(db, &r, f->lsn + (off + used - CODEC_FILE_HDR));
            db->recovered_records++;
            off += used;
            continue;
        }
        break;
    }
    *offp = off;
    memset(d, 0, sizeof(*d));
    d->at = d->cut = off;
    if (rc == CODEC_ZERO && all_zero(m->p + off, m->n - off))
        return 0; /* the end of the data */
    if (rc == CODEC_ETYPE)
        return fail(rs, TALLY_EVERSION, "%s/%s: bad record at offset %zu: %s",
                    db->dir, f->name, off, why);
    d->why = rc == CODEC_ZERO ? "zeroed record header followed by data"
             : rc == CODEC_OK ? "END record in a log" : why;
    tail = claimed < m->n - off ? claimed : m->n - off;
    d->torn = rc != CODEC_EBODY && rc != CODEC_OK && rc != CODEC_ZERO &&
              newest && all_zero(m->p + off + tail, m->n - off - tail) &&
              !holds_valid_record(m->p + off, tail);
    if (!d->torn)
        snprintf(d->proof, sizeof(d->proof), "%s", newest
                 ? "not a torn write: data follows it, or its checksum holds"
                 : "not the newest log file, so it was synced before the "
                   "next one began");
    return 0;
}

/* tail_apply_fn for recovery: replay one record. */
static void apply_record(void *ctx, const struct codec_rec *r, uint64_t lsn)
{
    tally *db = ctx;

    db_apply_rec(db, r, lsn);
    db->recovered_records++;
}

/* Version 2 (framed) logs: walk the frames, applying the records of each
 * valid one, up to the end of the data or the first bad frame, which *d
 * then describes, judged by tail_judge.  *offp gets where the valid data
 * ends; *closed is set if the data ends with a CLOSE frame.  Returns 0, or
 * TALLY_EVERSION with the message set. */
static int walk_frames(struct rscan *rs, const struct rfile *f,
                       const struct mfile *m, int newest, size_t *offp,
                       int *closed, struct tail_damage *d)
{
    tally *db = rs->db;
    struct codec_frame fr;
    size_t off = CODEC_FILE_HDR;
    int rc;

    *closed = 0;
    for (;;) {
        /* One pass: each record is applied once checked.  If the frame
         * turns out bad, those before the defect stay applied: open and
         * repair keep them (shorten_frame), check only reports. */
        rc = tail_frame(m->p, m->n, f->lsn, off, &fr, d, apply_record, db);
        if (rc == TAIL_END) {
            d->why = NULL;
            break;
        }
        if (rc == TAIL_VERSION)
            return fail(rs, TALLY_EVERSION, "%s/%s: bad record at offset %zu: "
                        "%s", db->dir, f->name, d->at, d->why);
        if (rc == TAIL_BAD) {
            tail_judge(m->p, m->n, f->lsn, newest, d);
            break;
        }
        *closed = (fr.flags & CODEC_FRAME_CLOSE) != 0;
        off += CODEC_FRAME_HDR + fr.len;
    }
    *offp = off;
    return 0;
}

/* The bad frame at d->cut holds d->records valid records (applied) before
 * the defect at d->at: rewrite the frame's header to cover just them, and
 * move d->cut to d->at, where the log is then cut (open: a torn write;
 * repair: any damage). */
static int shorten_frame(struct rscan *rs, const struct rfile *f,
                         const struct mfile *m, struct tail_damage *d)
{
    tally *db = rs->db;
    size_t n = d->at - d->cut;
    unsigned char *copy;
    int rc;

    copy = mem_alloc(n);
    memcpy(copy, m->p + d->cut, n);
    codec_frame_set_len(copy, (uint32_t)(n - CODEC_FRAME_HDR));
    codec_frame_seal(copy, d->cut, d->frame.synced, d->frame.flags);
    rc = log_pwrite_all(m->fd, copy, CODEC_FRAME_HDR, (off_t)d->cut);
    free(copy);
    if (rc != 0)
        return fail(rs, TALLY_EIO, "%s/%s: cannot rewrite the frame at "
                    "offset %zu: %s", db->dir, f->name, d->cut, strerror(-rc));
    d->lost_records -= d->records;
    d->cut = d->at;
    return 0;
}

/* Replay one log file from its start.  *end gets the LSN where its valid
 * data ends.  newest: the last log file, where a torn tail may be cut. */
static int replay_log(struct rscan *rs, const struct rfile *f, int newest,
                      uint64_t *end)
{
    tally *db = rs->db;
    struct mfile m;
    struct tail_damage d;
    size_t off = CODEC_FILE_HDR, lost;
    uint64_t lsn;
    const char *why = "";
    size_t frame_off;
    uint32_t version;
    int rc, closed = 0, unframed, keep, writable = newest && rs->mode != MODE_CHECK;

    if ((rc = mfile_open(rs, f->name, writable || rs->mode == MODE_REPAIR,
                         &m)) != 0)
        return rc;
    rc = codec_header_check(m.p, m.n, CODEC_LOG, &lsn, NULL, &why);
    if (rc == 0 && lsn != f->lsn) {
        rc = TALLY_ECORRUPT;
        why = "header LSN does not match the file name";
    }
    if (rc != 0) {
        mfile_close(&m, 0);
        if (rs->mode == MODE_REPAIR && rc != TALLY_EVERSION) {
            set_aside(rs, f->name);
            rs->cut = 1;
            *end = f->lsn;
            return 0;
        }
        return fail(rs, rc, "%s/%s: bad header at offset 0: %s", db->dir,
                    f->name, why);
    }
    version = codec_header_version(m.p);
    unframed = version < CODEC_VERSION_FRAMED;
    rc = unframed ? walk_records(rs, f, &m, newest, &off, &d)
                  : walk_frames(rs, f, &m, newest, &off, &closed, &d);
    if (rc != 0 || !d.why)
        goto out;
    /* Only what held data counts: the zeros after it are reserved space. */
    /* The valid records before the defect in a bad frame are kept: a cut
     * (by open for a torn write, or by repair) shortens the frame to them
     * and goes where the defect starts. */
    frame_off = d.cut;
    keep = !unframed && d.records > 0;
    if (keep && (rs->mode == MODE_OPEN ? d.torn : rs->mode == MODE_REPAIR)) {
        if ((rc = shorten_frame(rs, f, &m, &d)) != 0)
            goto out;
        off = d.cut;
    } else if (keep) {
        d.cut = d.at; /* where the cut would go */
        d.lost_records -= d.records;
    }
    lost = data_len(m.p + d.cut, m.n - d.cut);
    if (d.torn) {
        db->torn_bytes += lost;
        rs->torn = 1;
        if (rs->mode == MODE_CHECK) {
            add_note(rs, "torn tail in %s at offset %zu (%zu bytes: %s) would "
                     "be cut; no acknowledged change is lost", f->name, d.cut,
                     lost, d.why);
            goto out;
        }
        db_log(&db->opts, TALLY_LOG_WARN, "%s/%s: torn tail at offset "
               "%zu (%zu bytes: %s) cut off", db->dir, f->name, d.cut,
               lost, d.why);
        add_note(rs, "cut a torn tail in %s at offset %zu (%zu bytes)",
                 f->name, d.cut, lost);
        if ((rc = cut_file(rs, m.fd, f->name, d.cut)) != 0)
            goto out;
        m.n = d.cut; /* the file's new size */
        goto out;
    }
    if (rs->mode != MODE_REPAIR) {
        char in[48] = "";
        if (frame_off != d.at)
            snprintf(in, sizeof(in), " (in the write at offset %zu)",
                     frame_off);
        rc = fail(rs, TALLY_ECORRUPT, "%s/%s: bad record at offset %zu%s: "
                  "%s; %s; `tally repair` would cut the log at offset %zu, "
                  "dropping the damage and %s%" PRIu64 " intact records "
                  "(%zu bytes)",
                  db->dir, f->name, d.at, in, d.why, d.proof, d.cut,
                  unframed ? "the rest: at least " : "", d.lost_records, lost);
        goto out;
    }
    add_note(rs, "cut %s at offset %zu (%s at offset %zu), losing %" PRIu64
             " intact records (%zu bytes)", f->name, d.cut, d.why, d.at,
             d.lost_records, lost);
    rc = cut_file(rs, m.fd, f->name, d.cut);
    m.n = d.cut;
    rs->cut = 1;
    closed = 0;
out:
    *end = f->lsn + (off - CODEC_FILE_HDR);
    if (rc == 0 && newest) {
        rs->newest_old = version < CODEC_VERSION;
        rs->closed = closed && !d.why; /* no torn write after the mark */
        if (closed)
            db->closed_at = *end; /* the data ends with it (after a cut) */
    }
    if (rc == 0 && newest && rs->mode == MODE_OPEN) {
        rs->newest_fd = m.fd;
        rs->newest_start = f->lsn;
        rs->newest_size = m.n;
        mfile_close(&m, 1);
    } else {
        mfile_close(&m, 0);
    }
    return rc;
}

/* Is the newest log an empty file whose creation a crash cut short? */
static int torn_creation(struct rscan *rs, const struct rfile *f)
{
    struct mfile m;
    int torn;

    if (mfile_open(rs, f->name, 0, &m) != 0)
        return 0;
    torn = all_zero(m.p, m.n) && (m.n < CODEC_FILE_HDR || m.n == 0 ||
                                  all_zero(m.p, CODEC_FILE_HDR));
    mfile_close(&m, 0);
    return torn;
}

/* Create the first log file of a directory at LSN lsn. */
static int create_log(struct rscan *rs, uint64_t lsn)
{
    tally *db = rs->db;
    unsigned char hdr[CODEC_FILE_HDR];
    char name[40];
    int fd, rc;

    log_name(name, "log", lsn, "tly");
    codec_header(hdr, CODEC_LOG, lsn, 0);
    fd = openat(db->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                0644);
    if (fd < 0)
        return fail(rs, errno == ENOSPC ? TALLY_ENOSPC : TALLY_EIO,
                    "%s/%s: %s", db->dir, name, strerror(errno));
    rc = log_pwrite_all(fd, hdr, sizeof(hdr), 0);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    if (rc != 0) {
        close(fd);
        return fail(rs, rc == -ENOSPC ? TALLY_ENOSPC : TALLY_EIO,
                    "%s/%s: %s", db->dir, name, strerror(-rc));
    }
    rs->dir_changed = 1;
    rs->newest_fd = fd;
    rs->newest_start = lsn;
    rs->newest_size = CODEC_FILE_HDR;
    return 0;
}

/* Replay the logs from S on.  *end gets the LSN where valid data ends. */
static int replay_logs(struct rscan *rs, uint64_t s, uint64_t *end)
{
    tally *db = rs->db;
    struct rlist *l = &rs->logs;
    size_t first, i;
    uint64_t expect;
    int rc;

    *end = s;
    /* A newest log whose header never reached the disk held nothing. */
    if (l->n > 0 && torn_creation(rs, &l->v[l->n - 1])) {
        rs->torn = 1;
        if (rs->mode == MODE_CHECK) {
            add_note(rs, "empty %s would be removed", l->v[l->n - 1].name);
        } else {
            db_log(&db->opts, TALLY_LOG_WARN, "%s/%s: removed a log file "
                   "whose creation was cut short", db->dir,
                   l->v[l->n - 1].name);
            remove_file(rs, l->v[l->n - 1].name);
        }
        l->n--;
    }
    if (l->n == 0)
        return 0;
    if (l->v[0].lsn > s) {
        if (rs->mode == MODE_REPAIR) {
            for (i = 0; i < l->n; i++)
                set_aside(rs, l->v[i].name);
            l->n = 0;
            return 0;
        }
        return fail(rs, TALLY_ECORRUPT, "%s: missing log range [%" PRIu64
                    ", %" PRIu64 "): no log file from %016" PRIx64,
                    db->dir, s, l->v[0].lsn, s);
    }
    for (first = 0; first + 1 < l->n && l->v[first + 1].lsn <= s; first++)
        if (rs->mode != MODE_CHECK)
            remove_file(rs, l->v[first].name); /* wholly before S */
    expect = l->v[first].lsn;
    for (i = first; i < l->n; i++) {
        if (rs->cut) {
            set_aside(rs, l->v[i].name);
            continue;
        }
        if (l->v[i].lsn != expect) {
            if (rs->mode == MODE_REPAIR) {
                rs->cut = 1;
                set_aside(rs, l->v[i].name);
                continue;
            }
            return fail(rs, TALLY_ECORRUPT, "%s: missing log range [%" PRIu64
                        ", %" PRIu64 ") before %s", db->dir, expect,
                        l->v[i].lsn, l->v[i].name);
        }
        rc = replay_log(rs, &l->v[i], i + 1 == l->n, &expect);
        if (rc != 0)
            return rc;
        db->log_files++;
    }
    db->log_base = l->v[first].lsn;
    *end = expect;
    return 0;
}

static int recover_dir(tally *db, int mode, char *msg)
{
    struct rscan rs;
    uint64_t seed, s = 0, end;
    size_t i;
    int rc;

    memset(&rs, 0, sizeof(rs));
    rs.db = db;
    rs.mode = mode;
    rs.msg = msg;
    rs.newest_fd = -1;
    db->closed_at = UINT64_MAX;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = log_now_ns() ^ ((uint64_t)getpid() << 32);
    db->table.seed = seed;
    once_init(&db->once, seed);
    if ((rc = list_dir(&rs)) != 0)
        goto out;
    for (i = 0; i < rs.tmps.n && mode != MODE_CHECK; i++)
        remove_file(&rs, rs.tmps.v[i].name);
    if (rs.snaps.n > 0) {
        if ((rc = load_snapshot(&rs, &rs.snaps.v[rs.snaps.n - 1])) != 0)
            goto out;
        s = rs.snaps.v[rs.snaps.n - 1].lsn;
        for (i = 0; i + 1 < rs.snaps.n && mode != MODE_CHECK; i++)
            remove_file(&rs, rs.snaps.v[i].name);
    } else {
        table_init(&db->table, seed, 0);
    }
    db->log_base = s;
    if ((rc = replay_logs(&rs, s, &end)) != 0)
        goto out;
    db->head = db->durable = end;
    if (mode == MODE_OPEN && rs.newest_fd >= 0 && rs.newest_old) {
        /* Frames are never appended to an unframed log, nor records of this
         * version to an older one (a version-3 reader would take an IDEMA
         * for damage): a new log starts where its data ends (replacing it
         * if it holds none), and the old one stays until a snapshot makes
         * it obsolete. */
        close(rs.newest_fd);
        rs.newest_fd = -1;
        if (end == rs.newest_start)
            db->log_files--;
    }
    if (mode == MODE_OPEN && rs.newest_fd < 0) {
        if ((rc = create_log(&rs, end)) != 0)
            goto out;
        db->log_files++;
    }
    /* The sync thread starts with everything up to end counted as synced,
     * and every frame it writes will say so: make it true.  (After a
     * process crash, the last writes may be in the page cache only.) */
    if (mode == MODE_OPEN && fdatasync(rs.newest_fd) != 0) {
        rc = fail(&rs, TALLY_EIO, "%s: fdatasync of the newest log: %s",
                  db->dir, strerror(errno));
        goto out;
    }
    if (rs.dir_changed && log_fsync_dir(db->dirfd) != 0) {
        rc = fail(&rs, TALLY_EIO, "%s: fsync of the directory: %s", db->dir,
                  strerror(errno));
        goto out;
    }
    if (mode == MODE_CHECK) {
        /* Counters whose expiry has passed are still in the files; open
         * purges them.  Say how many, and leave them out of the count. */
        uint64_t n = db->table.count, lsn = 0;
        table_expire_all(&db->table, tally_now_ms(db), &lsn, NULL, NULL);
        if (n > db->table.count)
            add_note(&rs, "%" PRIu64 " expired counters not yet purged (open "
                     "removes them)", n - db->table.count);
    }
    if (mode == MODE_OPEN) {
        db->res_fd = rs.newest_fd;
        rs.newest_fd = -1;
        db->res_start = rs.newest_start;
        db->res_end = rs.newest_start + (rs.newest_size - CODEC_FILE_HDR);
    } else if (msg) {
        size_t l = (size_t)snprintf(
            msg, TALLY_ERRMAX, "%s: %" PRIu64 " counters, %s%s, %" PRIu64
            " log files, %" PRIu64 " log records replayed",
            mode == MODE_REPAIR ? "repaired" : rs.torn ? "torn tail" : "ok",
            db->table.count,
            rs.snaps.n ? "snapshot " : "no snapshot",
            rs.snaps.n ? rs.snaps.v[rs.snaps.n - 1].name : "",
            db->log_files, db->recovered_records);
        if (rs.closed && l < TALLY_ERRMAX)
            l += (size_t)snprintf(msg + l, TALLY_ERRMAX - l,
                                  ", closed cleanly");
        if (l >= TALLY_ERRMAX)
            l = TALLY_ERRMAX - 1;
        if (rs.note[0] && l + 3 < TALLY_ERRMAX) {
            memcpy(msg + l, "; ", 2);
            l += 2;
            size_t n = strnlen(rs.note, TALLY_ERRMAX - l - 1);
            memcpy(msg + l, rs.note, n);
            msg[l + n] = 0;
        }
    }
    if (mode == MODE_CHECK && rs.torn)
        rc = TALLY_TORN;
out:
    if (rs.newest_fd >= 0)
        close(rs.newest_fd);
    free(rs.logs.v);
    free(rs.snaps.v);
    free(rs.tmps.v);
    return rc;
}

int recover_open(tally *db, char *err)
{
    return recover_dir(db, MODE_OPEN, err);
}

/* check and repair: lock, recover into a scratch handle, unlock. */
static int offline(const char *dir, int mode, char *report)
{
    tally *db = mem_calloc(1, sizeof(*db));
    int rc, lockfd = -1;

    db->dir = mem_strdup(dir);
    db->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (db->dirfd < 0) {
        if (report)
            snprintf(report, TALLY_ERRMAX, "%s: %s", dir, strerror(errno));
        rc = TALLY_EIO;
        goto out;
    }
    if ((rc = recover_lock(db->dirfd, dir, &lockfd, report)) != 0)
        goto out;
    rc = recover_dir(db, mode, report);
    table_free(&db->table);
    once_free(&db->once);
out:
    if (lockfd >= 0)
        close(lockfd);
    if (db->dirfd >= 0)
        close(db->dirfd);
    free(db->dir);
    free(db);
    return rc;
}

int tally_check(const char *dir, char *report)
{
    return offline(dir, MODE_CHECK, report);
}

int tally_repair(const char *dir, char *report)
{
    return offline(dir, MODE_REPAIR, report);
}
