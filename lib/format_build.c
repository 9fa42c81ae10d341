/* SPDX-License-Identifier: MIT */
/* Writing the prefix of a KVC v1 file exactly as the reference writer does. */
#include <stdlib.h>
#include <string.h>

#include <kvc/format.h>

#include "bytes.h"
#include "format_tlv.h"

struct cursor {
	uint8_t *p;
};

static void put_bytes(struct cursor *c, const void *data, size_t len)
{
	if (len > 0)
		memcpy(c->p, data, len);
	c->p += len;
}

static void put_u8(struct cursor *c, uint8_t v)
{
	*c->p++ = v;
}

static void put_u32(struct cursor *c, uint32_t v)
{
	put_le32(c->p, v);
	c->p += 4;
}

static void put_u64(struct cursor *c, uint64_t v)
{
	put_le64(c->p, v);
	c->p += 8;
}

static void put_tlv(struct cursor *c, uint8_t tag, const void *v, uint32_t len)
{
	put_u8(c, tag);
	put_u32(c, len);
	put_bytes(c, v, len);
}

static const struct kvc_blob *text_of(const struct kvc_meta *meta, size_t i)
{
	return (const struct kvc_blob *)((const char *)meta + tlv_texts[i].meta_offset);
}

static bool text_present(const struct kvc_meta *meta, size_t i)
{
	/* The reference omits these TLVs when the value is empty. */
	return text_of(meta, i)->present && text_of(meta, i)->len > 0;
}

/* The enumerations and sizes the prefix will carry, checked; the TLV
 * section's length in *tlv_len. */
static int check_buildable(const struct kvc_meta *meta, uint64_t prompt_len, uint64_t *tlv_len,
			   struct kvc_err *err)
{
	if (kvc_save_reason_name(meta->save_reason) == NULL)
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT,
				   "save_reason %u is not 0..5", meta->save_reason);
	if (kvc_fingerprint_mode_name(meta->fingerprint_mode) == NULL)
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT,
				   "fingerprint_mode %u is not 0..2", meta->fingerprint_mode);
	if (kvc_quant_name(meta->quant_byte) == NULL)
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT,
				   "quant byte %u is not in the quant table", meta->quant_byte);
	if (meta->n_tokens > KVC_MAX_TOKENS)
		return kvc_err_set(err, KVC_E_TOO_LARGE, "%u tokens is too many",
				   meta->n_tokens);
	if (prompt_len > KVC_MAX_PROMPT)
		return kvc_err_set(err, KVC_E_TOO_LARGE, "prompt of %llu bytes is too long",
				   (unsigned long long)prompt_len);
	*tlv_len = (TLV_RECORD_OVERHEAD + 32) * 2 + (TLV_RECORD_OVERHEAD + 1) * 2 +
		   (TLV_RECORD_OVERHEAD + 4) + TLV_RECORD_OVERHEAD + 4ull * meta->n_tokens;
	for (size_t i = 0; i < TLV_TEXT_COUNT; i++)
		if (text_present(meta, i))
			*tlv_len += TLV_RECORD_OVERHEAD + (uint64_t)text_of(meta, i)->len;
	if (*tlv_len > KVC_MAX_TLV_SECTION)
		return kvc_err_set(err, KVC_E_TOO_LARGE, "TLV section of %llu bytes is too long",
				   (unsigned long long)*tlv_len);
	return 0;
}

/* Header (48 bytes) and trailer (24), as the reference writes them. */
static void put_fixed(struct cursor *c, const struct kvc_meta *meta, uint64_t payload_length,
		      uint32_t payload_crc32c, uint64_t total)
{
	put_bytes(c, "KVC", 3);
	put_u8(c, KVC_VERSION);
	put_u8(c, meta->quant_bits);
	put_u8(c, meta->save_reason);
	put_u8(c, 0);
	put_u8(c, 0);
	put_u32(c, meta->n_tokens);
	put_u32(c, meta->hit_count);
	put_u32(c, meta->context_size);
	put_u32(c, 0);
	put_u64(c, meta->creation_time);
	put_u64(c, meta->last_used_time);
	put_u64(c, payload_length);

	put_u64(c, total);
	put_u64(c, payload_length);
	put_u32(c, payload_crc32c);
	put_u32(c, 0);
}

/* Required TLVs in tag order, then the texts that are present. */
static void put_tlvs(struct cursor *c, const struct kvc_meta *meta, uint64_t tlv_len)
{
	put_u32(c, (uint32_t)tlv_len);
	put_tlv(c, TLV_FINGERPRINT, meta->fingerprint, 32);
	put_tlv(c, TLV_FINGERPRINT_MODE, &meta->fingerprint_mode, 1);
	put_tlv(c, TLV_QUANT_TYPE, &meta->quant_byte, 1);
	put_tlv(c, TLV_CTX_PARAMS_HASH, meta->ctx_params_hash, 32);
	put_u8(c, TLV_TOKEN_ID_COUNT);
	put_u32(c, 4);
	put_u32(c, meta->n_tokens);
	put_u8(c, TLV_TOKEN_IDS);
	put_u32(c, 4 * meta->n_tokens);
	for (uint32_t i = 0; i < meta->n_tokens; i++)
		put_u32(c, meta->tokens[i]);
	for (size_t i = 0; i < TLV_TEXT_COUNT; i++)
		if (text_present(meta, i))
			put_tlv(c, (uint8_t)tlv_texts[i].tag, text_of(meta, i)->data,
				text_of(meta, i)->len);
}

int kvc_build_prefix(const struct kvc_meta *meta, uint64_t payload_length,
		     uint32_t payload_crc32c, uint8_t **out, size_t *out_len,
		     struct kvc_err *err)
{
	uint64_t prompt_len = meta->prompt.present ? meta->prompt.len : 0, tlv_len = 0, total;
	struct cursor c;
	uint8_t *buf;

	if (check_buildable(meta, prompt_len, &tlv_len, err) < 0)
		return -1;
	total = KVC_FIXED_SIZE + 4 + prompt_len + 4 + tlv_len;
	buf = malloc(total);
	if (buf == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "prefix of %llu bytes",
				   (unsigned long long)total);
	c.p = buf;
	put_fixed(&c, meta, payload_length, payload_crc32c, total);
	put_u32(&c, (uint32_t)prompt_len);
	put_bytes(&c, meta->prompt.data, prompt_len);
	put_tlvs(&c, meta, tlv_len);
	*out = buf;
	*out_len = (size_t)total;
	return 0;
}
