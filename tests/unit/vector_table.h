/* SPDX-License-Identifier: MIT */
/* The golden vectors' manifest as C data (see vectors/gen_table.py). */
#ifndef KVC_TEST_VECTOR_TABLE_H
#define KVC_TEST_VECTOR_TABLE_H

#include <stdbool.h>
#include <stdint.h>

struct vector {
	const char *file;
	bool valid;
	const char *key;
	uint64_t file_size;
	const char *parse_meta_tag;
	/* valid entries */
	const char *fingerprint, *ctx_params_hash, *fingerprint_mode, *save_reason;
	int quant_byte, quant_bits;
	uint32_t context_size, hit_count, cached_token_count, token_count;
	uint64_t creation_time, last_used_time, payload_length, payload_offset;
	uint32_t payload_crc32c, prompt_length;
	long long first_token, last_token;
	const char *hostname, *writer_version, *save_reason_detail;
	int save_reason_detail_len;
	/* invalid entries */
	const char *error_tag, *detail_missing, *detail_expected_key, *detail_actual_key;
	uint64_t detail_stored, detail_actual;
};

#include "vectors_manifest.h"

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

#endif
