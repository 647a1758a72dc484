/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * glob.h - helpers inside the command layer for MATCH patterns (glob.c).
 * The matcher itself, cmd_glob_match(), is public in cmd.h because front
 * ends use it too (RESP's CONFIG GET).
 */
#ifndef TALLY_CMD_GLOB_H
#define TALLY_CMD_GLOB_H

#include <stddef.h>

/* True if the pattern selects every key (NULL, empty or a lone "*"). */
int glob_matches_all(const char *pat, size_t plen);

/* Copy the literal bytes a pattern starts with (up to its first *, ? or [,
 * with \ escapes resolved) into out, at most outmax bytes; returns how many.
 * Every key the pattern matches starts with them, so the engine may scan by
 * that prefix and leave the rest of the pattern to cmd_glob_match(). */
size_t glob_literal_prefix(const char *pat, size_t plen, char *out,
                           size_t outmax);

#endif /* TALLY_CMD_GLOB_H */
