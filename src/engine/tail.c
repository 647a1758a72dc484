/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tail.c - telling a write cut short by a crash from damage to data that
 * reached the disk, in a log file of format version 2 (framed: codec.c).
 * Pure functions over a mapped file: recover.c does the I/O and decides,
 * by mode, what a verdict does (cut, refuse, report).  docs/format.md
 * states the rule and the failure model; in short:
 *
 * The device may tear only the last write in flight, and only by leaving
 * some of its 512-byte sectors unwritten (any subset, in any order: 4 KiB
 * pages are unions of sectors), or by leaving the file shorter than the
 * write's end.  A sector it wrote holds what was written, and a write that
 * fdatasync returned from stays as it was, unless the medium rots.  Every
 * write is one frame (or a few, back to back), whose header says what had
 * been synced before it and how many of its sector pieces are zero as
 * written.  So a bad frame at X is a torn write iff
 *   - it lies in the newest log file, and
 *   - no valid frame after it says that X was synced before it was written
 *     (a CLOSE frame says that of everything before it), and
 *   - it shows a missing part: the file ends inside it, or more of its
 *     sector pieces are zero than its header says were written as zeros
 *     (when the header itself is unreadable: a piece of the header is zero).
 * Anything else is corruption of acknowledged data.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "engine.h"

static int zero_bytes(const unsigned char *p, size_t n)
{
    while (n && !*p) {
        p++;
        n--;
    }
    return n == 0;
}

int tail_frame(const unsigned char *p, size_t n, uint64_t lsn, size_t off,
               struct codec_frame *fr, struct tail_damage *d,
               tail_apply_fn apply, void *ctx)
{
    struct codec_rec r;
    size_t at, end, used, claimed;
    const char *why = "";
    int rc;

    memset(d, 0, sizeof(*d));
    d->at = d->cut = off;
    rc = codec_frame_check(p + off, n - off, fr, &why);
    d->frame = *fr;
    if (rc == CODEC_ZERO) {
        if (zero_bytes(p + off, n - off))
            return TAIL_END;
        d->why = "zeroed frame header followed by data";
        return TAIL_BAD;
    }
    if (rc != CODEC_OK) {
        d->why = why;
        return TAIL_BAD;
    }
    d->header_ok = 1;
    if (fr->lsn != lsn + (off - CODEC_FILE_HDR)) {
        d->header_ok = 0; /* sound checksum, wrong place: not a tear */
        d->why = "frame LSN does not match its position";
        return TAIL_BAD;
    }
    if (fr->len > n - off - CODEC_FRAME_HDR) {
        d->past_eof = 1;
        d->why = "frame runs past the end of the file";
        return TAIL_BAD;
    }
    end = off + CODEC_FRAME_HDR + fr->len;
    for (at = off + CODEC_FRAME_HDR; at < end; at += used) {
        rc = codec_decode(p + at, end - at, &r, &used, &claimed, &why);
        d->at = at;
        if (rc == CODEC_ETYPE) {
            d->why = why;
            return TAIL_VERSION;
        }
        if (rc == CODEC_OK && r.type == CODEC_END)
            why = "END record in a log";
        else if (rc == CODEC_ZERO)
            why = "zeroed record inside a frame";
        if (rc != CODEC_OK || r.type == CODEC_END) {
            d->why = why;
            d->claimed = claimed;
            return TAIL_BAD;
        }
        if (apply)
            apply(ctx, &r, lsn + (at + used - CODEC_FILE_HDR));
        d->records++;
    }
    d->at = off;
    return TAIL_OK;
}

/* Is there a valid frame whose header starts at h? */
static int frame_at(const unsigned char *p, size_t n, uint64_t lsn, size_t h,
                    struct codec_frame *fr)
{
    const char *why;

    return codec_frame_check(p + h, n - h, fr, &why) == CODEC_OK &&
           fr->lsn == lsn + (h - CODEC_FILE_HDR) &&
           fr->len <= n - h - CODEC_FRAME_HDR;
}

/* Look past the bad frame at x for valid frames: the first that says x was
 * synced before it was written goes to *vouch (0 if none), and the intact
 * records of all of them to d->lost_records. */
static void scan_after(const unsigned char *p, size_t n, uint64_t lsn,
                       size_t x, struct tail_damage *d, size_t *vouch,
                       struct codec_frame *vf)
{
    struct codec_frame fr;
    struct tail_damage sub;
    const unsigned char *hit;
    size_t h = x + 1;

    *vouch = 0;
    while (h + CODEC_FRAME_HDR <= n &&
           (hit = memmem(p + h, n - h, "TLYF", 4)) != NULL) {
        h = (size_t)(hit - p);
        if (!frame_at(p, n, lsn, h, &fr)) {
            h++;
            continue;
        }
        if (!*vouch && fr.synced > lsn + (x - CODEC_FILE_HDR)) {
            *vouch = h;
            *vf = fr;
        }
        tail_frame(p, n, lsn, h, &fr, &sub, NULL, NULL);
        d->lost_records += sub.records;
        h += CODEC_FRAME_HDR + fr.len;
    }
}

void tail_judge(const unsigned char *p, size_t n, uint64_t lsn, int newest,
                struct tail_damage *d)
{
    struct codec_frame vf;
    struct codec_rec r;
    size_t x = d->cut, vouch, at, end, used, claimed;
    const char *why;

    /* A cut at x drops the bad frame's records before the defect, those
     * after it that still check out, and those of every later frame. */
    d->lost_records = d->records;
    if (d->header_ok && !d->past_eof) {
        end = x + CODEC_FRAME_HDR + d->frame.len;
        for (at = d->at + d->claimed;
             at < end && codec_decode(p + at, end - at, &r, &used, &claimed,
                                      &why) == CODEC_OK;
             at += used)
            d->lost_records++;
    }
    scan_after(p, n, lsn, x, d, &vouch, &vf);
    d->torn = 0;
    if (!newest) {
        snprintf(d->proof, sizeof(d->proof), "not the newest log file, so "
                 "it was synced before the next one began");
        return;
    }
    if (vouch) {
        snprintf(d->proof, sizeof(d->proof), "acknowledged data: %s at "
                 "offset %zu was written after it was synced",
                 (vf.flags & CODEC_FRAME_CLOSE) ? "the clean-close mark"
                                                : "the frame",
                 vouch);
        return;
    }
    if (d->past_eof || x + CODEC_FRAME_HDR > n) {
        d->torn = 1; /* the file ends inside the last write */
        return;
    }
    if (d->header_ok) {
        if (codec_zero_sectors(p + x, CODEC_FRAME_HDR + d->frame.len, x) >
            d->frame.zeros) {
            d->torn = 1; /* a sector of the last write is missing */
            return;
        }
        snprintf(d->proof, sizeof(d->proof), "not a torn write: every "
                 "sector of the frame at offset %zu holds data", x);
        return;
    }
    /* An unreadable header: torn only if one of its sectors is missing. */
    if (codec_zero_sectors(p + x, CODEC_FRAME_HDR, x) > 0) {
        d->torn = 1;
        return;
    }
    snprintf(d->proof, sizeof(d->proof), "not a torn write: no sector of "
             "the frame header at offset %zu is missing", x);
}
