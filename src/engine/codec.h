/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * codec.h - bytes <-> records and file headers of the log and snapshot
 * files.  The format is spelled out at the top of codec.c and in
 * docs/format.md.  Pure functions over buffers: no I/O, no allocation.
 */
#ifndef ENGINE_CODEC_H
#define ENGINE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CODEC_FILE_HDR 32          /* file header bytes */
#define CODEC_REC_HDR 8            /* crc + len */
#define CODEC_MAX_BODY (1u << 20)  /* longest record body */
#define CODEC_VERSION 4           /* written: 4 added IDEMA */
#define CODEC_VERSION_MIN 1       /* oldest still read: 1 has no PUTX */
#define CODEC_VERSION_FRAMED 3    /* logs of this version on hold frames;
                                     1 and 2 hold bare records */

/* Record types. */
#define CODEC_PUT 1
#define CODEC_DEL 2
#define CODEC_BATCH 3
#define CODEC_END 4
#define CODEC_IDEM 6 /* an idempotency id and the outcome of its request */
#define CODEC_PUTX 5 /* a PUT with an expiry; decoded as CODEC_PUT with
                        op.expire set */
#define CODEC_IDEMA 7 /* an IDEM that keeps its request's whole answer (a
                         batch's, version 4); decoded as CODEC_IDEM with
                         idem.answer set */

/* File kinds. */
#define CODEC_LOG 0
#define CODEC_SNAP 1

/* Results of codec_decode. */
#define CODEC_OK 0
#define CODEC_ZERO 1      /* an all-zero record header: the end of the data */
#define CODEC_ESHORT (-1) /* the record runs past the end of the buffer */
#define CODEC_ELEN (-2)   /* len is 0 or above CODEC_MAX_BODY */
#define CODEC_ECRC (-3)   /* checksum mismatch */
#define CODEC_EBODY (-4)  /* checksum fine but the body is malformed */
#define CODEC_ETYPE (-5)  /* checksum fine, type unknown (a newer format) */

/* One PUT or DEL (also a sub-record of a BATCH).  When a batch iterator
 * meets an IDEM, type is CODEC_IDEM and the rest is in a codec_idem. */
struct codec_op {
    int type;             /* CODEC_PUT or CODEC_DEL (or CODEC_IDEM) */
    const void *key;
    size_t klen;
    int64_t value;        /* PUT only */
    int64_t expire;       /* PUT only: absolute Unix ms, 0 for none (a
                             nonzero one is encoded as a PUTX) */
};

/* One IDEM: an idempotency id and what its first request answered. */
struct codec_idem {
    const void *id;
    size_t idlen;         /* 1..TALLY_ID_MAX */
    uint64_t fp;          /* the request's fingerprint */
    int64_t created_ms;   /* wall-clock ms of the first request */
    int32_t code;         /* its outcome: TALLY_OK or TALLY_NOTFOUND */
    int64_t value;        /* its outcome value */
    const void *answer;   /* NULL, or the answer an IDEMA keeps (code and
                             value are then 0) */
    size_t alen;          /* 1..TALLY_ANSWER_MAX bytes of it */
};

/* A decoded record; key and body point into the decoded buffer. */
struct codec_rec {
    int type;
    struct codec_op op;          /* PUT, DEL */
    struct codec_idem idem;      /* IDEM */
    uint32_t n;                  /* BATCH: number of sub-records */
    const unsigned char *body;   /* BATCH: the sub-records */
    size_t blen;
    uint64_t end_count;          /* END: PUT records in the snapshot */
};

/* Write a file header of kind CODEC_LOG/CODEC_SNAP into out[32]. */
void codec_header(unsigned char *out, int kind, uint64_t lsn, uint32_t hint);
/* Check a header: returns 0 (filling *lsn and *hint, either may be NULL),
 * TALLY_EVERSION for a larger version, else TALLY_ECORRUPT with *why set.
 * codec_header_version gives the version of a header that checked out. */
int codec_header_check(const unsigned char *p, size_t n, int kind,
                       uint64_t *lsn, uint32_t *hint, const char **why);
uint32_t codec_header_version(const unsigned char *p);
/* Rewrite the version of the header at out (and its CRC): for tools and
 * tests that build version-1 or -2 (unframed) logs. */
void codec_header_set_version(unsigned char *out, uint32_t version);

/* ---- Frames (log files of versions 3 and 4) ----
 * Every write of the log (one pwrite of a group-commit batch, and the final
 * write of a clean close) is one frame: a 36-byte frame header, then the
 * records it covers.  The header says how much was written, what had been
 * fdatasync'd before the write, and how many of its 512-byte sectors are
 * zero as written, which is what lets recovery tell a write cut short from
 * damage to data that reached the disk (docs/format.md, recover.c). */
#define CODEC_FRAME_HDR 36
#define CODEC_FRAME_MAX (64u << 20) /* most payload bytes in one frame */
#define CODEC_SECTOR 512            /* the device's atomic write unit */
#define CODEC_FRAME_CLOSE 1u        /* flag: written last by a clean close */

struct codec_frame {
    uint64_t lsn;     /* LSN of the frame header's first byte */
    uint32_t len;     /* payload bytes (whole records) after the header */
    uint64_t synced;  /* every LSN below this was fdatasync'd before this
                         frame was written */
    uint32_t zeros;   /* sectors of the frame that are all zero as written */
    uint32_t flags;   /* CODEC_FRAME_CLOSE */
};

/* Start a frame at out (CODEC_FRAME_HDR bytes) for LSN lsn, payload empty. */
void codec_frame_open(unsigned char *out, uint64_t lsn);
/* Set the payload length of the frame at out. */
void codec_frame_set_len(unsigned char *out, uint32_t len);
/* The payload length of an opened or sealed frame at p. */
uint32_t codec_frame_len(const unsigned char *p);
/* Seal the frame at out, whose header and payload (already in place) will
 * be written at file offset file_off: fill in synced, flags, the zero
 * sector count and the header CRC. */
void codec_frame_seal(unsigned char *out, uint64_t file_off, uint64_t synced,
                      uint32_t flags);
/* Check the frame header at p (avail bytes readable): CODEC_OK with *f set,
 * CODEC_ZERO for all-zero bytes, CODEC_ESHORT if fewer than
 * CODEC_FRAME_HDR bytes are left, CODEC_ECRC (bad magic or checksum) or
 * CODEC_ELEN (a length above CODEC_FRAME_MAX, or synced past the frame)
 * with *why set. */
int codec_frame_check(const unsigned char *p, size_t avail,
                      struct codec_frame *f, const char **why);
/* How many of the pieces that the 512-byte sectors of the file cut
 * p[0, n) into (p lying at file offset file_off) are all zero. */
uint32_t codec_zero_sectors(const unsigned char *p, size_t n,
                            uint64_t file_off);

/* Encoded sizes, record header included. */
size_t codec_put_size(size_t klen);
size_t codec_putx_size(size_t klen);
size_t codec_op_size(const struct codec_op *op); /* PUT, PUTX or DEL */
size_t codec_del_size(size_t klen);
size_t codec_idem_size(size_t idlen);
size_t codec_idema_size(size_t idlen, size_t alen);
#define CODEC_END_SIZE (CODEC_REC_HDR + 9)
#define CODEC_BATCH_HDR (CODEC_REC_HDR + 5) /* before the first sub-record */
/* What one op adds to a batch (u32 sublen + sub-body); type CODEC_PUT,
 * CODEC_PUTX, CODEC_DEL or CODEC_IDEM (klen: the id's length), or
 * CODEC_IDEMA (klen: the id's and the answer's lengths added). */
size_t codec_batch_op_size(size_t klen, int type);

/* Encoders: write one record at out (room for its size), return its size.
 * codec_idem writes an IDEMA when idem->answer is set. */
size_t codec_op(unsigned char *out, const struct codec_op *op);
size_t codec_idem(unsigned char *out, const struct codec_idem *idem);
size_t codec_end(unsigned char *out, uint64_t count);

/* A batch is written as: pos = CODEC_BATCH_HDR; pos += codec_batch_add(out +
 * pos, op) per op; codec_batch_close(out, pos, n).  The caller keeps the
 * body within CODEC_MAX_BODY. */
size_t codec_batch_add(unsigned char *out, const struct codec_op *op);
size_t codec_batch_add_idem(unsigned char *out, const struct codec_idem *idem);
/* (codec_batch_add_idem too writes an IDEMA when idem->answer is set.) */
void codec_batch_close(unsigned char *out, size_t total, uint32_t n);

/* Decode the record at p (avail bytes readable).  Returns CODEC_OK with *r
 * and *used (the record's size) set, CODEC_ZERO, or a CODEC_E* code with
 * *why set; *claimed then holds the bytes the header claims (8 + len, or 8
 * when len is out of range).  A valid BATCH has been checked entirely. */
int codec_decode(const unsigned char *p, size_t avail, struct codec_rec *r,
                 size_t *used, size_t *claimed, const char **why);
/* Iterate a decoded BATCH: start with *off = 0; returns 1 with *op set, 0
 * after the last sub-record.  An IDEM sub-record gives op->type CODEC_IDEM
 * with the id in op->key/klen and the outcome value in op->value;
 * codec_batch_next_idem gives all of it in *idem. */
int codec_batch_next(const struct codec_rec *r, size_t *off,
                     struct codec_op *op);
int codec_batch_next_idem(const struct codec_rec *r, size_t *off,
                          struct codec_op *op, struct codec_idem *idem);

/* Little-endian helpers, shared by the file code. */
void codec_put32(unsigned char *p, uint32_t v);
void codec_put64(unsigned char *p, uint64_t v);
uint32_t codec_get32(const unsigned char *p);
uint64_t codec_get64(const unsigned char *p);

#endif /* ENGINE_CODEC_H */
