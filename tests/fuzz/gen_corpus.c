/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * gen_corpus.c - writes the seed corpora of tests/fuzz/corpus/<target>/:
 * log and snapshot files the engine itself wrote (for fuzz_codec and
 * fuzz_recover), structured recovery inputs that reach each kind of damage,
 * and the hand-written protocol sessions of the front-end targets.
 *
 * Usage: gen_corpus DIR (DIR/<target>/ must exist).  It is built beside the
 * targets (TALLY_FUZZ=ON) and run by hand when the input formats change
 * (tests/fuzz/README.md); its output is checked in, and the regression
 * inputs beside it are not touched.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "fuzz_env.h"
#include "fuzz_files.h"
#include "util.h"

static const char *out_dir;

static void seed(const char *target, const char *name, const void *p,
                 size_t n)
{
    char dir[256];

    snprintf(dir, sizeof dir, "%s/%s", out_dir, target);
    fz_write_file(dir, name, p, n);
}

/* A file of the data directory, cut after its last valid record (a log's
 * reserved zeros would only bloat the corpus). */
static struct buf read_trimmed(const char *dir, const char *prefix)
{
    struct buf b = BUF_INIT;
    char path[256];
    struct dirent *de;
    DIR *d = opendir(dir);

    FZ_CHECK(d != NULL, "opendir %s", dir);
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
            strstr(de->d_name, ".tly"))
            break;
    FZ_CHECK(de != NULL, "no %s file in %s", prefix, dir);
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    closedir(d);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    FZ_CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
    buf_reserve(&b, (size_t)st.st_size);
    FZ_CHECK(read(fd, b.p, (size_t)st.st_size) == st.st_size, "read");
    close(fd);
    b.len = fz_data_end((unsigned char *)b.p, (size_t)st.st_size);
    return b;
}

static uint64_t header_lsn(const struct buf *f)
{
    return codec_get64((const unsigned char *)f->p + 16);
}

/* Every record of f as a raw and as a sealed fuzz_codec seed. */
static void codec_seeds(const char *tag, const struct buf *f)
{
    size_t off = CODEC_FILE_HDR;
    int i = 0;
    char name[64];
    struct buf s = BUF_INIT;

    for (; off < f->len; i++) {
        struct codec_rec r;
        struct codec_frame fr;
        size_t used, claimed;
        const char *why;
        if (codec_frame_check((const unsigned char *)f->p + off,
                              f->len - off, &fr, &why) == CODEC_OK) {
            off += CODEC_FRAME_HDR; /* a framed log: the records inside */
            i--;
            continue;
        }
        if (codec_decode((const unsigned char *)f->p + off, f->len - off, &r,
                         &used, &claimed, &why) != CODEC_OK)
            break;
        buf_clear(&s);
        buf_addc(&s, 0);
        buf_add(&s, f->p + off, used);
        snprintf(name, sizeof name, "%s-rec%d", tag, i);
        seed("codec", name, s.p, s.len);
        s.p[CODEC_REC_HDR] = 1; /* sealed: mode byte, then the body */
        snprintf(name, sizeof name, "%s-body%d", tag, i);
        seed("codec", name, s.p + CODEC_REC_HDR, s.len - CODEC_REC_HDR);
        off += used;
    }
    buf_clear(&s);
    buf_addc(&s, 0);
    buf_add(&s, f->p + CODEC_FILE_HDR, f->len - CODEC_FILE_HDR);
    snprintf(name, sizeof name, "%s-records", tag);
    seed("codec", name, s.p, s.len);
    buf_clear(&s);
    buf_addc(&s, 0);
    buf_add(&s, f->p, CODEC_FILE_HDR);
    snprintf(name, sizeof name, "%s-header", tag);
    seed("codec", name, s.p, s.len);
    buf_free(&s);
}

/* A raw fuzz_recover seed: snapshot (may be empty) and log as they are. */
static void raw_seed(const char *name, const struct buf *snap,
                     const struct buf *log, uint64_t s)
{
    struct buf b = BUF_INIT;

    buf_addc(&b, 1);
    buf_addc(&b, snap->len ? 3 : 2);
    for (int i = 7; i >= 0; i--)
        buf_addc(&b, (char)(s >> (8 * i)));
    buf_addc(&b, (char)(snap->len >> 8));
    buf_addc(&b, (char)snap->len);
    buf_addc(&b, 0);
    buf_add(&b, snap->p, snap->len);
    buf_add(&b, log->p, log->len);
    seed("recover", name, b.p, b.len);
    buf_free(&b);
}

/* A database with a snapshot and a log after it, written by the engine. */
static void engine_seeds(void)
{
    static const char *keys[] = {"a", "b", "cc", "dddd", "visits:home"};
    char dir[64];
    tally_ticket t;
    int64_t v;
    int replayed;

    fz_dir_make(dir);
    tally *db = fz_open(dir);
    for (int i = 0; i < 5; i++)
        tally_incr(db, keys[i], strlen(keys[i]), i + 1, &v, &t);
    tally_set(db, "neg", 3, INT64_MIN, &t);
    tally_del(db, "b", 1, &t);
    tally_once once = {"req-1", 5, 42};
    tally_incr_once(db, &once, "a", 1, 10, &v, &replayed, &t);
    const void *mk[2] = {"m1", "m2"};
    size_t ml[2] = {2, 2};
    int64_t mv[2] = {7, -7};
    tally_mset(db, 2, mk, ml, mv, &t);
    tally_close(db);
    struct buf log0 = read_trimmed(dir, "log-"), none = BUF_INIT;
    raw_seed("raw-log-only", &none, &log0, 0);
    codec_seeds("log", &log0);

    db = fz_open(dir);
    FZ_CHECK(tally_snapshot(db) == TALLY_OK, "snapshot");
    tally_incr(db, "a", 1, -3, &v, &t);
    tally_del(db, "cc", 2, &t);
    tally_once once2 = {"req-2", 5, 43};
    tally_del_once(db, &once2, "m1", 2, &v, &replayed, &t);
    tally_close(db);
    struct buf snap = read_trimmed(dir, "snap-");
    struct buf log1 = read_trimmed(dir, "log-");
    raw_seed("raw-snap-log", &snap, &log1, header_lsn(&snap));
    codec_seeds("snap", &snap);
    fz_dir_remove(dir);
    buf_free(&log0);
    buf_free(&log1);
    buf_free(&snap);
}

/* Structured fuzz_recover seeds: one per configuration byte that matters
 * (snapshot, two logs, each damage, each target file), filled with
 * pseudo-random bytes for the records. */
static void structured_seeds(void)
{
    static const unsigned char cfgs[] = {
        0x00, 0x01, 0x03,       /* log only; snapshot; two logs */
        0x05, 0x07, 0x09, 0x0b, /* cut, flip in the newest log */
        0x0d, 0x0f, 0x11, 0x13, /* zeros over a range; zeros appended */
        0x2b, 0x33, 0x49, 0x51  /* the older log, the snapshot */
    };
    uint32_t x = 12345;
    char name[32];

    for (size_t i = 0; i < sizeof cfgs; i++) {
        unsigned char b[160];
        b[0] = 0;
        b[1] = cfgs[i];
        for (size_t j = 2; j < sizeof b; j++) {
            x = x * 1103515245u + 12345u;
            b[j] = (unsigned char)(x >> 16);
        }
        b[4] = 8;  /* snapshot records */
        snprintf(name, sizeof name, "structured-%02x", cfgs[i]);
        seed("recover", name, b, sizeof b);
    }
}

/* A seed written as a string literal, NULs allowed. */
struct text {
    const char *name;
    const char *s;
    size_t n;
};
#define T(name, lit) {name, lit, sizeof lit - 1}

static void text_seeds(const char *target, const struct text *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        seed(target, t[i].name, t[i].s, t[i].n);
}

int main(int argc, char **argv)
{
    /* First byte of the stream targets: bit 0 password, bit 1 tight limits,
     * the rest the piece sizes (fuzz_stream.h). */
    static const struct text resp[] = {
        T("pipeline", "\x04*3\r\n$6\r\nINCRBY\r\n$1\r\na\r\n$2\r\n10\r\n"
                     "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n"
                     "*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$3\r\n-42\r\n"
                     "*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nz\r\n"
                     "*3\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nc\r\n"),
        T("inline", "\x08PING\r\nINCRBY k 5\r\nDECR k\r\nGET k\r\n"
                   "SET \"q k\" '7'\r\nEXISTS k \"q k\"\r\nECHO \"a\\x41\\n\"\r\n"),
        T("auth", "\x01*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
                 "*2\r\n$4\r\nINCR\r\n$1\r\na\r\nHELLO 3 AUTH default pw\r\n"),
        T("admin", "\x10HELLO 3\r\nCLIENT SETNAME fz\r\nCLIENT INFO\r\n"
                  "CLIENT LIST\r\nINFO\r\nCOMMAND COUNT\r\nCONFIG GET *\r\n"
                  "DBSIZE\r\nSELECT 0\r\nQUIT\r\n"),
        T("scan", "\x14MSET a 1 b 2 ab 3\r\nSCAN 0 MATCH a* COUNT 2\r\n"
                 "KEYS *\r\nGETDEL ab\r\nSET a 5 NX GET\r\nSET a 6 XX\r\n"
                 "INCRBY.ONCE id1 a 5\r\nINCRBY.ONCE id1 a 5\r\nSAVE\r\n"
                 "BGSAVE\r\nDBSIZE\r\n"),
        T("limits", "\x02*20\r\n$3\r\nDEL\r\n*2\r\n$100\r\n"),
        T("errors", "\x18*1\r\n$x\r\nGET\r\n"),
        T("expire", "\x04SET e 5 EX 100\r\nEXPIRE e 50 GT\r\nTTL e\r\n"
                    "PTTL e\r\nPERSIST e\r\nSET f 1 PX 1\r\nINCRBY e 2\r\n"
                    "PEXPIREAT e 99999999999999\r\nEXPIRETIME e\r\n"
                    "SET e 6 KEEPTTL\r\nEXPIRE e 0\r\nGET e\r\n"),
        T("overflow", "\x1cSET m 9223372036854775807\r\nINCR m\r\n"
                     "DECRBY m -9223372036854775808\r\nINCRBY m abc\r\n"),
    };
    static const struct text resp_parse[] = {
        T("array", "\x01*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n"),
        T("inline", "\x01SET \"a b\" 'c\\'d' e\\x41\r\nGET x\n"),
        T("empty", "\x01*0\r\n*-1\r\n\r\n \r\n"),
        T("unauth", "\x00*11\r\n$1\r\na\r\n"),
        T("tight", "\x03*9\r\n$1\r\na\r\n"),
        T("bulk", "\x01*1\r\n$0\r\n\r\n*1\r\n$-1\r\n"),
    };
    static const struct text memcache[] = {
        T("classic", "\x04set a 0 0 2\r\n10\r\nget a\r\nincr a 5\r\n"
                    "decr a 100\r\ngets a b\r\nadd a 0 0 1\r\n1\r\n"
                    "replace b 0 0 1\r\n2\r\nappend a 0 0 1\r\n3\r\n"
                    "delete a\r\ntouch a 10\r\nversion\r\nstats\r\n"),
        T("cas", "\x08set c 0 0 1\r\n5\r\ngets c\r\ncas c 0 0 1 1\r\n6\r\n"
                "gat 0 c\r\ngats 0 c\r\nflush_all\r\nverbosity 1\r\n"),
        T("meta", "\x0cms m 2\r\n42\r\nmg m v c t\r\nma m D5\r\n"
                 "ma m MD D100 N0 J7\r\nmg m v q\r\nmd m q\r\nmn\r\n"
                 "ms n 1 MA\r\n1\r\nmd n\r\n"),
        T("expire", "\x04set e 0 100 1\r\n5\r\nmg e v t\r\ntouch e 0\r\n"
                    "gat 50 e\r\nms f 1 T1\r\n2\r\nma g N100 J3 v t\r\n"
                    "set h 0 4294967296 1\r\n1\r\nset i 0 -1 1\r\n1\r\n"
                    "get h i\r\n"),
        T("noreply", "\x10set a 0 0 1 noreply\r\n5\r\nincr a 1 noreply\r\n"
                    "delete a noreply\r\nmn\r\n"),
        T("auth", "\x01get a\r\nset x 0 0 5\r\nu pw\r\nget a\r\n"),
        T("errors", "\x14set a 0 0 99999999999\r\nincr a -+5\r\n"
                   "get \r\nbogus\r\nmg\r\nquit\r\n"),
    };
    /* fuzz_http: mode byte, then path segment, query, Idempotency-Key
     * lines and body, separated by NULs (written with explicit lengths). */
    static const struct text http[] = {
        T("put", "\x00visits%3Ahome\0prefix=visits&limit=10\0abc-123\0"
                 "{\"value\": 42}"),
        T("incr", "\x01" "a%2Fb%20c\0cursor=5\0\"quoted\\\"id\"\0{\"by\": -7}"),
        T("plus", "\x05" "a+b\0prefix=a+b%21&limit=1000&cursor=0\0id1\nid2\0"
                  "{\"by\": 9223372036854775807}"),
        T("ttl", "\x00k\0\0\0{\"value\": 3, \"ttl_ms\": 60000}"),
        T("expire", "\x06k\0\0\0{\"expires_at\": \"2026-12-01T12:00:00.250+01:00\"}"),
        T("ifnew", "\x01k\0\0\0{\"by\": 2, \"ttl_ms\": 5, \"ttl_if_new\": true}"),
        T("bad", "\x01%zz\0limit=0&x=1\0\"open\0{\"value\": 1.5, \"x\": 1}"),
        T("empty", "\x00\0\0\0"),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    engine_seeds();
    structured_seeds();
    text_seeds("resp", resp, sizeof resp / sizeof resp[0]);
    text_seeds("resp_parse", resp_parse,
               sizeof resp_parse / sizeof resp_parse[0]);
    text_seeds("memcache", memcache, sizeof memcache / sizeof memcache[0]);
    text_seeds("http", http, sizeof http / sizeof http[0]);
    return 0;
}
