/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * page_files.h - the dashboard's files, embedded in the binary at build
 * time: page_files.c is generated in the build directory from
 * src/proto/dashboard/ by dashboard/embed.cmake.  http_page.c serves them.
 */
#ifndef TALLY_PAGE_FILES_H
#define TALLY_PAGE_FILES_H

#include <stddef.h>

struct page_file {
    const char *path;          /* "/" or "/ui/app.js" */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* len bytes (and a NUL after them) */
    size_t len;
};

extern const struct page_file page_files[];
extern const size_t page_nfiles;

#endif /* TALLY_PAGE_FILES_H */
