/* SPDX-License-Identifier: MIT */
/* The fixed part of a slab (header and trailer): the one place that knows
 * where its fields are, for the parser and for code that reads or patches
 * a header without parsing the rest. */
#include <string.h>

#include <kvc/format.h>

#include "bytes.h"

#define OFF_CACHED_TOKENS 8
#define OFF_CONTEXT_SIZE 16
#define OFF_CREATION_TIME 24
#define OFF_PAYLOAD_BYTES 40
#define OFF_PAYLOAD_OFFSET 48
#define OFF_PAYLOAD_LENGTH 56

bool kvc_fixed_is_v1(const uint8_t *h)
{
	return memcmp(h, "KVC\x01", 4) == 0;
}

void kvc_fixed_decode(const uint8_t *h, struct kvc_fixed *out)
{
	out->version = h[3];
	out->quant_bits = h[4];
	out->save_reason = h[5];
	out->cached_token_count = get_le32(h + OFF_CACHED_TOKENS);
	out->hit_count = get_le32(h + KVC_OFF_HIT_COUNT);
	out->context_size = get_le32(h + OFF_CONTEXT_SIZE);
	out->creation_time = get_le64(h + OFF_CREATION_TIME);
	out->last_used_time = get_le64(h + KVC_OFF_LAST_USED);
	out->payload_byte_count = get_le64(h + OFF_PAYLOAD_BYTES);
	out->payload_offset = get_le64(h + OFF_PAYLOAD_OFFSET);
	out->payload_length = get_le64(h + OFF_PAYLOAD_LENGTH);
	out->payload_crc32c = get_le32(h + KVC_OFF_PAYLOAD_CRC32C);
}

void kvc_fixed_encode_use(uint8_t hit_count[4], uint8_t last_used[8], uint32_t hits,
			  uint64_t used)
{
	put_le32(hit_count, hits);
	put_le64(last_used, used);
}
