/* SPDX-License-Identifier: MIT */
/* Token lists from the command line and from files: untrusted input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "tokens.h"

int tokens_parse_list(const char *text, uint32_t **out, size_t *n_out)
{
	g_auto(GStrv) parts = NULL;
	size_t n;
	uint32_t *tokens;

	if (text[0] == '\0') {
		*out = g_new(uint32_t, 1);
		*n_out = 0;
		return 0;
	}
	parts = g_strsplit(text, ",", -1);
	n = g_strv_length(parts);
	tokens = g_new(uint32_t, n);
	for (size_t i = 0; i < n; i++) {
		char *end;
		const char *s = g_strstrip(parts[i]);
		guint64 v;
		errno = 0;
		v = g_ascii_strtoull(s, &end, 10);
		if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 ||
		    v > UINT32_MAX) {
			fprintf(stderr, "kvc: token '%s' is not an integer 0..4294967295\n", s);
			g_free(tokens);
			return -1;
		}
		tokens[i] = (uint32_t)v;
	}
	*out = tokens;
	*n_out = n;
	return 0;
}

int tokens_decode_le32(const uint8_t *data, size_t len, uint32_t **out, size_t *n_out)
{
	uint32_t *tokens;

	if (len % 4 != 0)
		return -1;
	tokens = g_new(uint32_t, len / 4 + 1);
	for (size_t i = 0; i < len / 4; i++) {
		const uint8_t *p = data + 4 * i;
		tokens[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
			    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	}
	*out = tokens;
	*n_out = len / 4;
	return 0;
}

int tokens_read_file(const char *path, uint32_t **out, size_t *n_out)
{
	g_autofree char *data = NULL;
	struct kvc_err err;
	size_t len;

	if (input_read_capped(path, TOKENS_FILE_MAX_BYTES, &data, &len, &err) < 0) {
		fprintf(stderr, "kvc: --tokens-file: %s\n", err.detail);
		return -1;
	}
	if (tokens_decode_le32((const uint8_t *)data, len, out, n_out) < 0) {
		fprintf(stderr, "kvc: %s: %zu bytes is not a whole number of u32 token ids\n",
			path, len);
		return -1;
	}
	return 0;
}
