/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * version.h - what tallyd and tally say about the build they are: the release
 * (TALLY_VERSION, from tally_version.h, generated from the top CMakeLists.txt)
 * and the git revision the sources were at when built (version_git_rev,
 * written at each build by cmake/gitrev.cmake).  Used by --version, INFO
 * server and /metrics; not part of libtally.
 */
#ifndef TALLY_VERSION_INFO_H
#define TALLY_VERSION_INFO_H

#include "tally_version.h"

/* The abbreviated commit ("3f2a9c0d1e4b"), with "-dirty" if tracked files had
 * changes, or "unknown" when built outside git. */
extern const char version_git_rev[];

#endif /* TALLY_VERSION_INFO_H */
