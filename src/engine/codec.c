/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * codec.c - the on-disk format of log and snapshot files, byte by byte
 * (also in docs/format.md, which tests rely on).  Pure encoding and
 * decoding; log.c, snap.c and recover.c do the I/O.
 *
 * All integers little-endian.  CRC = CRC32C (Castagnoli), initial ~0, final
 * xor ~0 (crc32c.c).
 *
 * File header, 32 bytes, in both kinds of file:
 *    0  8  magic "TALLYLOG" (log) or "TALLYSNP" (snapshot)
 *    8  4  u32 format version = 4 (1 to 3 are still read: 1 has no PUTX,
 *            1 and 2 have no frames, 3 has no IDEMA; larger:
 *            TALLY_EVERSION)
 *   12  4  u32 flags = 0
 *   16  8  u64 LSN: log = LSN of the file's first record byte;
 *                   snapshot = S, the LSN replay starts from
 *   24  4  u32 log: 0; snapshot: counters when it began (a sizing hint,
 *                   saturating at 2^32-1)
 *   28  4  u32 CRC of bytes 0..27
 *
 * Record, in both kinds of file:
 *    0  4  u32 CRC of bytes 4 .. 8+len-1 (the length field and the body)
 *    4  4  u32 len = body length, 1 .. 1 MiB
 *    8 len body: u8 type, then
 *          1 PUT:   u16 klen, i64 value, key[klen]
 *          2 DEL:   u16 klen, key[klen]
 *          3 BATCH: u32 n, then n x (u32 sublen, sub-body of type PUT,
 *                   PUTX, DEL, IDEM or IDEMA) -- applied atomically
 *          4 END:   u64 number of PUT, PUTX, IDEM and IDEMA records in
 *                   this snapshot (snapshot only, the last record)
 *          6 IDEM:  u16 idlen (1..256), u64 fingerprint, i64 created_ms
 *                   (wall clock, ms since 1970), i32 outcome code (0 ok,
 *                   1 not found), i64 outcome value, id[idlen] -- an
 *                   idempotency id and what its first request answered;
 *                   standalone (a snapshot's ids, a once-change that changed
 *                   no counter) or inside a BATCH beside the change it
 *                   records, so both survive a crash or neither does
 *          5 PUTX:  u16 klen, i64 value, i64 expire (Unix ms of the wall
 *                   clock, 1 .. 2^48-1), key[klen] -- a PUT whose counter
 *                   expires at that absolute time (version 2); recovery
 *                   drops a counter whose time has passed.  Expiry writes
 *                   no record: the time is already here
 *          7 IDEMA: u16 idlen (1..256), u64 fingerprint, i64 created_ms,
 *                   u32 alen (1..TALLY_ANSWER_MAX), id[idlen], answer[alen]
 *                   -- an idempotency id with the whole answer its first
 *                   request got (an HTTP batch's body), kept so that a
 *                   retry gets it back byte for byte; inside the BATCH of
 *                   the changes it answers, or standalone in a snapshot
 *                   (version 4: an older engine refuses the file's version
 *                   instead of calling the sub-record malformed)
 *          8..255 reserved; a record with a valid CRC and such a type
 *                   means a newer format (TALLY_EVERSION)
 *
 * Frame, in log files of version 3 (versions 1 and 2 hold bare records):
 *    0  4  magic "TLYF"
 *    4  4  u32 len: payload bytes after this header, 0 .. 64 MiB; the
 *          payload is whole records
 *    8  8  u64 LSN of this header's first byte (its own position)
 *   16  8  u64 synced: every LSN below it had been fdatasync'd before this
 *          frame was written (<= the frame's LSN)
 *   24  4  u32 zeros: how many of the pieces that the file's 512-byte
 *          sectors cut the frame (header and payload) into are all zero as
 *          written
 *   28  4  u32 flags: 1 = CLOSE, the last write of a clean close (len 0,
 *          synced = its own LSN)
 *   32  4  u32 CRC of bytes 0..31
 * One frame is one write(2) of the log: the sync thread's batch (or, for a
 * batch that a rotation splits, each file's part of it).  Recovery's rule
 * for a bad frame (torn write or corruption) is in recover.c and
 * docs/format.md.
 *
 * An LSN is a byte position in the logical stream of frames and records
 * (file headers not counted); a record's ticket is the LSN just past its
 * end.  After the last frame a log holds zeros (space reserved ahead), so
 * a frame header (versions 1, 2: record header) of zero bytes marks the end of
 * the data.
 *
 * A record is valid when len is in range, the record fits in the file, the
 * CRC matches and the body parses exactly (klen consistent with len, an
 * IDEM body 31 + idlen bytes, an IDEMA body 23 + idlen + alen, a BATCH's
 * sub-records filling it exactly).  What an invalid one means
 * (torn tail or corruption) is decided by recover.c, which sees the file.
 */
#include "codec.h"

#include <string.h>

#include "crc32c.h"
#include "tally.h"

static const char log_magic[8] = {'T', 'A', 'L', 'L', 'Y', 'L', 'O', 'G'};
static const char snap_magic[8] = {'T', 'A', 'L', 'L', 'Y', 'S', 'N', 'P'};
static const char frame_magic[4] = {'T', 'L', 'Y', 'F'};

/* Little-endian integers.  On a little-endian host each is one unaligned
 * load or store (memcpy, which the compiler turns into a move), the byte
 * loops being a dozen instructions per field on the path of every change;
 * elsewhere the loops spell the format out. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CODEC_LE_HOST 1
#else
#define CODEC_LE_HOST 0
#endif

void codec_put32(unsigned char *p, uint32_t v)
{
    if (CODEC_LE_HOST) {
        memcpy(p, &v, 4);
        return;
    }
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void codec_put64(unsigned char *p, uint64_t v)
{
    if (CODEC_LE_HOST) {
        memcpy(p, &v, 8);
        return;
    }
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t codec_get32(const unsigned char *p)
{
    uint32_t v = 0;

    if (CODEC_LE_HOST) {
        memcpy(&v, p, 4);
        return v;
    }
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t codec_get64(const unsigned char *p)
{
    uint64_t v = 0;

    if (CODEC_LE_HOST) {
        memcpy(&v, p, 8);
        return v;
    }
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

void codec_header(unsigned char *out, int kind, uint64_t lsn, uint32_t hint)
{
    memcpy(out, kind == CODEC_SNAP ? snap_magic : log_magic, 8);
    codec_put32(out + 8, CODEC_VERSION);
    codec_put32(out + 12, 0);
    codec_put64(out + 16, lsn);
    codec_put32(out + 24, kind == CODEC_SNAP ? hint : 0);
    codec_put32(out + 28, crc32c_extend(0, out, 28));
}

int codec_header_check(const unsigned char *p, size_t n, int kind,
                       uint64_t *lsn, uint32_t *hint, const char **why)
{
    if (n < CODEC_FILE_HDR) {
        *why = "file shorter than its 32-byte header";
        return TALLY_ECORRUPT;
    }
    if (memcmp(p, kind == CODEC_SNAP ? snap_magic : log_magic, 8) != 0) {
        *why = "bad magic";
        return TALLY_ECORRUPT;
    }
    if (codec_get32(p + 28) != crc32c_extend(0, p, 28)) {
        *why = "header checksum mismatch";
        return TALLY_ECORRUPT;
    }
    if (codec_get32(p + 8) > CODEC_VERSION) {
        *why = "written by a newer format version";
        return TALLY_EVERSION;
    }
    if (codec_get32(p + 8) < CODEC_VERSION_MIN || codec_get32(p + 12) != 0) {
        *why = "unknown version or flags";
        return TALLY_ECORRUPT;
    }
    if (lsn)
        *lsn = codec_get64(p + 16);
    if (hint)
        *hint = codec_get32(p + 24);
    return 0;
}

uint32_t codec_header_version(const unsigned char *p)
{
    return codec_get32(p + 8);
}

void codec_header_set_version(unsigned char *out, uint32_t version)
{
    codec_put32(out + 8, version);
    codec_put32(out + 28, crc32c_extend(0, out, 28));
}

void codec_frame_open(unsigned char *out, uint64_t lsn)
{
    memset(out, 0, CODEC_FRAME_HDR);
    memcpy(out, frame_magic, 4);
    codec_put64(out + 8, lsn);
}

void codec_frame_set_len(unsigned char *out, uint32_t len)
{
    codec_put32(out + 4, len);
}

uint32_t codec_frame_len(const unsigned char *p)
{
    return codec_get32(p + 4);
}

uint32_t codec_zero_sectors(const unsigned char *p, size_t n,
                            uint64_t file_off)
{
    uint32_t zeros = 0;
    size_t at = 0, piece, i;

    while (at < n) {
        piece = CODEC_SECTOR - (size_t)((file_off + at) % CODEC_SECTOR);
        if (piece > n - at)
            piece = n - at;
        /* Records start with a checksum, so a piece that holds data almost
         * always shows it in its first bytes. */
        for (i = 0; i < piece && !p[at + i]; i++)
            ;
        zeros += i == piece;
        at += piece;
    }
    return zeros;
}

void codec_frame_seal(unsigned char *out, uint64_t file_off, uint64_t synced,
                      uint32_t flags)
{
    size_t total = CODEC_FRAME_HDR + codec_frame_len(out);

    codec_put64(out + 16, synced);
    codec_put32(out + 28, flags);
    /* The header is never zero (magic), so counting it before the count is
     * filled in gives the same answer as counting it afterwards. */
    codec_put32(out + 24, codec_zero_sectors(out, total, file_off));
    codec_put32(out + 32, crc32c_extend(0, out, 32));
}

int codec_frame_check(const unsigned char *p, size_t avail,
                      struct codec_frame *f, const char **why)
{
    static const unsigned char zero[CODEC_FRAME_HDR];

    if (memcmp(p, zero, avail < CODEC_FRAME_HDR ? avail : CODEC_FRAME_HDR) ==
        0)
        return CODEC_ZERO;
    if (avail < CODEC_FRAME_HDR) {
        *why = "frame header runs past the end of the file";
        return CODEC_ESHORT;
    }
    if (memcmp(p, frame_magic, 4) != 0 ||
        codec_get32(p + 32) != crc32c_extend(0, p, 32)) {
        *why = "frame header checksum mismatch";
        return CODEC_ECRC;
    }
    f->len = codec_get32(p + 4);
    f->lsn = codec_get64(p + 8);
    f->synced = codec_get64(p + 16);
    f->zeros = codec_get32(p + 24);
    f->flags = codec_get32(p + 28);
    if (f->len > CODEC_FRAME_MAX || f->synced > f->lsn ||
        (f->flags & ~CODEC_FRAME_CLOSE) ||
        ((f->flags & CODEC_FRAME_CLOSE) && f->len != 0)) {
        *why = "malformed frame header";
        return CODEC_ELEN;
    }
    return CODEC_OK;
}

size_t codec_put_size(size_t klen)
{
    return CODEC_REC_HDR + 11 + klen;
}

size_t codec_putx_size(size_t klen)
{
    return CODEC_REC_HDR + 19 + klen;
}

size_t codec_op_size(const struct codec_op *op)
{
    if (op->type == CODEC_DEL)
        return codec_del_size(op->klen);
    return op->expire ? codec_putx_size(op->klen) : codec_put_size(op->klen);
}

size_t codec_del_size(size_t klen)
{
    return CODEC_REC_HDR + 3 + klen;
}

/* Body bytes of an IDEM before its id, and of an IDEMA. */
#define IDEM_FIXED 31
#define IDEMA_FIXED 23

size_t codec_idem_size(size_t idlen)
{
    return CODEC_REC_HDR + IDEM_FIXED + idlen;
}

size_t codec_idema_size(size_t idlen, size_t alen)
{
    return CODEC_REC_HDR + IDEMA_FIXED + idlen + alen;
}

size_t codec_batch_op_size(size_t klen, int type)
{
    return 4 + (type == CODEC_PUT     ? 11
                : type == CODEC_PUTX  ? 19
                : type == CODEC_IDEM  ? IDEM_FIXED
                : type == CODEC_IDEMA ? IDEMA_FIXED
                                      : 3) +
           klen;
}

/* Write the body of a PUT, PUTX or DEL at p; returns its length. */
static size_t op_body(unsigned char *p, const struct codec_op *op)
{
    p[0] = (unsigned char)op->type;
    put16(p + 1, (uint16_t)op->klen);
    if (op->type == CODEC_PUT && op->expire) {
        p[0] = CODEC_PUTX;
        codec_put64(p + 3, (uint64_t)op->value);
        codec_put64(p + 11, (uint64_t)op->expire);
        memcpy(p + 19, op->key, op->klen);
        return 19 + op->klen;
    }
    if (op->type == CODEC_PUT) {
        codec_put64(p + 3, (uint64_t)op->value);
        memcpy(p + 11, op->key, op->klen);
        return 11 + op->klen;
    }
    memcpy(p + 3, op->key, op->klen);
    return 3 + op->klen;
}

/* Write the body of an IDEM, or of an IDEMA if idem->answer is set, at p;
 * returns its length. */
static size_t idem_body(unsigned char *p, const struct codec_idem *idem)
{
    if (idem->answer) {
        p[0] = CODEC_IDEMA;
        put16(p + 1, (uint16_t)idem->idlen);
        codec_put64(p + 3, idem->fp);
        codec_put64(p + 11, (uint64_t)idem->created_ms);
        codec_put32(p + 19, (uint32_t)idem->alen);
        memcpy(p + IDEMA_FIXED, idem->id, idem->idlen);
        memcpy(p + IDEMA_FIXED + idem->idlen, idem->answer, idem->alen);
        return IDEMA_FIXED + idem->idlen + idem->alen;
    }
    p[0] = CODEC_IDEM;
    put16(p + 1, (uint16_t)idem->idlen);
    codec_put64(p + 3, idem->fp);
    codec_put64(p + 11, (uint64_t)idem->created_ms);
    codec_put32(p + 19, (uint32_t)idem->code);
    codec_put64(p + 23, (uint64_t)idem->value);
    memcpy(p + IDEM_FIXED, idem->id, idem->idlen);
    return IDEM_FIXED + idem->idlen;
}

/* Fill in len and CRC of a record whose body is already at out + 8. */
static size_t seal(unsigned char *out, size_t blen)
{
    codec_put32(out + 4, (uint32_t)blen);
    codec_put32(out, crc32c_extend(0, out + 4, 4 + blen));
    return CODEC_REC_HDR + blen;
}

size_t codec_op(unsigned char *out, const struct codec_op *op)
{
    return seal(out, op_body(out + CODEC_REC_HDR, op));
}

size_t codec_idem(unsigned char *out, const struct codec_idem *idem)
{
    return seal(out, idem_body(out + CODEC_REC_HDR, idem));
}

size_t codec_end(unsigned char *out, uint64_t count)
{
    out[CODEC_REC_HDR] = CODEC_END;
    codec_put64(out + CODEC_REC_HDR + 1, count);
    return seal(out, 9);
}

size_t codec_batch_add(unsigned char *out, const struct codec_op *op)
{
    size_t n = op_body(out + 4, op);

    codec_put32(out, (uint32_t)n);
    return 4 + n;
}

size_t codec_batch_add_idem(unsigned char *out, const struct codec_idem *idem)
{
    size_t n = idem_body(out + 4, idem);

    codec_put32(out, (uint32_t)n);
    return 4 + n;
}

void codec_batch_close(unsigned char *out, size_t total, uint32_t n)
{
    out[CODEC_REC_HDR] = CODEC_BATCH;
    codec_put32(out + CODEC_REC_HDR + 1, n);
    seal(out, total - CODEC_REC_HDR);
}

/* Parse an IDEMA body of exactly n bytes. */
static int idema_parse(const unsigned char *b, size_t n,
                       struct codec_idem *idem)
{
    size_t idlen, alen;

    if (n < IDEMA_FIXED)
        return -1;
    idlen = get16(b + 1);
    alen = codec_get32(b + 19);
    if (idlen == 0 || idlen > TALLY_ID_MAX || alen == 0 ||
        alen > TALLY_ANSWER_MAX || n != IDEMA_FIXED + idlen + alen)
        return -1;
    idem->id = b + IDEMA_FIXED;
    idem->idlen = idlen;
    idem->fp = codec_get64(b + 3);
    idem->created_ms = (int64_t)codec_get64(b + 11);
    idem->code = TALLY_OK;
    idem->value = 0;
    idem->answer = b + IDEMA_FIXED + idlen;
    idem->alen = alen;
    return 0;
}

/* Parse an IDEM (or IDEMA) body of exactly n bytes. */
static int idem_parse(const unsigned char *b, size_t n,
                      struct codec_idem *idem)
{
    size_t idlen;
    int32_t code;

    if (n >= 1 && b[0] == CODEC_IDEMA)
        return idema_parse(b, n, idem);
    if (n < IDEM_FIXED || b[0] != CODEC_IDEM)
        return -1;
    idlen = get16(b + 1);
    code = (int32_t)codec_get32(b + 19);
    if (n != IDEM_FIXED + idlen || idlen == 0 || idlen > TALLY_ID_MAX ||
        (code != TALLY_OK && code != TALLY_NOTFOUND))
        return -1;
    idem->id = b + IDEM_FIXED;
    idem->idlen = idlen;
    idem->fp = codec_get64(b + 3);
    idem->created_ms = (int64_t)codec_get64(b + 11);
    idem->code = code;
    idem->value = (int64_t)codec_get64(b + 23);
    idem->answer = NULL;
    idem->alen = 0;
    return 0;
}

/* Parse a PUT, PUTX or DEL body of exactly n bytes (a PUTX gives type
 * CODEC_PUT with expire set). */
static int op_parse(const unsigned char *b, size_t n, struct codec_op *op)
{
    size_t klen;

    if (n < 3 || (b[0] != CODEC_PUT && b[0] != CODEC_DEL &&
                  b[0] != CODEC_PUTX))
        return -1;
    klen = get16(b + 1);
    op->type = b[0] == CODEC_DEL ? CODEC_DEL : CODEC_PUT;
    op->klen = klen;
    op->expire = 0;
    if (b[0] == CODEC_PUTX) {
        if (n != 19 + klen)
            return -1;
        op->value = (int64_t)codec_get64(b + 3);
        op->expire = (int64_t)codec_get64(b + 11);
        op->key = b + 19;
        if (op->expire <= 0 || op->expire > TALLY_EXPIRE_MAX)
            return -1;
    } else if (b[0] == CODEC_PUT) {
        if (n != 11 + klen)
            return -1;
        op->value = (int64_t)codec_get64(b + 3);
        op->key = b + 11;
    } else {
        if (n != 3 + klen)
            return -1;
        op->value = 0;
        op->key = b + 3;
    }
    return op->klen > TALLY_KEY_MAX ? -1 : 0;
}

/* Parse a sub-record of a batch: a PUT or DEL into *op, or an IDEM into
 * *idem (op->type CODEC_IDEM, the id and outcome value in op too). */
static int sub_parse(const unsigned char *b, size_t n, struct codec_op *op,
                     struct codec_idem *idem)
{
    if (n < 1 || (b[0] != CODEC_IDEM && b[0] != CODEC_IDEMA))
        return op_parse(b, n, op);
    if (idem_parse(b, n, idem) != 0)
        return -1;
    op->type = CODEC_IDEM;
    op->key = idem->id;
    op->klen = idem->idlen;
    op->value = idem->value;
    return 0;
}

/* Check that a BATCH body holds exactly n well-formed sub-records. */
static int batch_parse(const unsigned char *b, size_t blen,
                       struct codec_rec *r, const char **why)
{
    size_t off = 5, sub;
    uint32_t i;
    struct codec_op op;
    struct codec_idem idem;

    if (blen < 5) {
        *why = "batch record too short";
        return CODEC_EBODY;
    }
    r->n = codec_get32(b + 1);
    for (i = 0; i < r->n; i++) {
        if (blen - off < 4 || (sub = codec_get32(b + off)) > blen - off - 4) {
            *why = "batch sub-record runs past the record";
            return CODEC_EBODY;
        }
        if (sub_parse(b + off + 4, sub, &op, &idem) != 0) {
            *why = "malformed batch sub-record";
            return CODEC_EBODY;
        }
        off += 4 + sub;
    }
    if (off != blen) {
        *why = "bytes after the last batch sub-record";
        return CODEC_EBODY;
    }
    r->body = b + 5;
    r->blen = blen - 5;
    return CODEC_OK;
}

int codec_decode(const unsigned char *p, size_t avail, struct codec_rec *r,
                 size_t *used, size_t *claimed, const char **why)
{
    static const unsigned char zero[CODEC_REC_HDR];
    size_t len;
    const unsigned char *b;

    *claimed = avail < CODEC_REC_HDR ? avail : CODEC_REC_HDR;
    if (avail < CODEC_REC_HDR) {
        if (memcmp(p, zero, avail) == 0)
            return CODEC_ZERO;
        *why = "record header runs past the end of the file";
        return CODEC_ESHORT;
    }
    if (memcmp(p, zero, CODEC_REC_HDR) == 0)
        return CODEC_ZERO;
    len = codec_get32(p + 4);
    if (len == 0 || len > CODEC_MAX_BODY) {
        *why = "record length out of range";
        return CODEC_ELEN;
    }
    *claimed = CODEC_REC_HDR + len;
    if (len > avail - CODEC_REC_HDR) {
        *why = "record runs past the end of the file";
        return CODEC_ESHORT;
    }
    if (codec_get32(p) != crc32c_extend(0, p + 4, 4 + len)) {
        *why = "checksum mismatch";
        return CODEC_ECRC;
    }
    b = p + CODEC_REC_HDR;
    memset(r, 0, sizeof(*r));
    r->type = b[0];
    *used = CODEC_REC_HDR + len;
    switch (b[0]) {
    case CODEC_PUT:
    case CODEC_PUTX:
    case CODEC_DEL:
        if (op_parse(b, len, &r->op) != 0) {
            *why = "malformed record body";
            return CODEC_EBODY;
        }
        r->type = r->op.type; /* a PUTX is a PUT with an expiry */
        return CODEC_OK;
    case CODEC_IDEM:
    case CODEC_IDEMA:
        if (idem_parse(b, len, &r->idem) != 0) {
            *why = "malformed idempotency record";
            return CODEC_EBODY;
        }
        r->type = CODEC_IDEM; /* an IDEMA is an IDEM with an answer */
        return CODEC_OK;
    case CODEC_BATCH:
        return batch_parse(b, len, r, why);
    case CODEC_END:
        if (len != 9) {
            *why = "malformed end record";
            return CODEC_EBODY;
        }
        r->end_count = codec_get64(b + 1);
        return CODEC_OK;
    default:
        *why = "unknown record type (written by a newer version?)";
        return CODEC_ETYPE;
    }
}

int codec_batch_next_idem(const struct codec_rec *r, size_t *off,
                          struct codec_op *op, struct codec_idem *idem)
{
    size_t sub;

    if (*off >= r->blen)
        return 0;
    sub = codec_get32(r->body + *off);
    if (sub_parse(r->body + *off + 4, sub, op, idem) != 0)
        return 0; /* cannot happen: codec_decode checked the batch */
    *off += 4 + sub;
    return 1;
}

int codec_batch_next(const struct codec_rec *r, size_t *off,
                     struct codec_op *op)
{
    struct codec_idem idem;

    return codec_batch_next_idem(r, off, op, &idem);
}
