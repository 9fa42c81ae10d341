/* SPDX-License-Identifier: MIT */
#ifndef KVC_TEST_UTIL_H
#define KVC_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Read a whole file (test data only); aborts the test on failure. */
uint8_t *read_whole(const char *path, size_t *len);
/* Path of a vector file: $KVC_VECTORS/<rel>. */
char *vector_path(const char *rel);
/* A new empty directory under $TMPDIR; remove with rm_rf. */
char *make_temp_dir(void);
void rm_rf(const char *dir);
/* Number of directory entries other than . and .. */
int count_entries(const char *dir);

#endif
