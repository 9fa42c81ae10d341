/* SPDX-License-Identifier: MIT */
#ifndef KVC_CLI_TOKENS_H
#define KVC_CLI_TOKENS_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include <kvc/format.h>

/* A token file holds at most as many ids as a slab may carry. */
#define TOKENS_FILE_MAX_BYTES ((size_t)KVC_MAX_TOKENS * 4)

/* "1,2,3" → token ids (g_malloc'd). Prints a one-line error, returns -1. */
int tokens_parse_list(const char *text, uint32_t **out, size_t *n_out);
/* u32 little-endian ids; -1 if len is not a multiple of 4. */
int tokens_decode_le32(const uint8_t *data, size_t len, uint32_t **out, size_t *n_out);
/* A regular file of u32 little-endian ids, at most TOKENS_FILE_MAX_BYTES.
 * Prints a one-line error, returns -1. */
int tokens_read_file(const char *path, uint32_t **out, size_t *n_out);

#endif
