/* SPDX-License-Identifier: MIT */
/*
 * Parsing the metadata of a KVC v1 file without touching its payload.
 *
 * The checks, their order and their outcomes follow the reference parser so
 * that a file gets the same verdict and the same error tag from both. Every
 * length is checked against the file size before anything is allocated or
 * read, so a hostile length field can cost no more than the file is long.
 */
#include <stdlib.h>
#include <string.h>

#include <kvc/format.h>

#include "bytes.h"
#include "format_tlv.h"
#include "key_internal.h"

struct seen {
	bool fingerprint, fingerprint_mode, quant_type, ctx_params_hash, tokens;
	const uint8_t *token_bytes; /* the last token_ids value, u32 LE as hashed */
	uint32_t token_len;
	unsigned flags;
};

static int read_at(const struct kvc_source *src, void *buf, size_t len,
		   uint64_t off, struct kvc_err *err)
{
	return src->read_at(src->ctx, buf, len, off, err);
}

/* An error about one offending byte: the byte is also kept in err->stored. */
static int byte_error(struct kvc_err *err, enum kvc_tag tag, const char *what,
		      uint8_t byte)
{
	kvc_err_set(err, tag, "%s byte %u", what, byte);
	if (err != NULL)
		err->stored = byte;
	return -1;
}

static int parse_header(const uint8_t *h, struct kvc_meta *meta, struct kvc_err *err)
{
	struct kvc_fixed f;

	if (memcmp(h, "KVC", 3) != 0)
		return kvc_err_set(err, KVC_E_BAD_HEADER, "bad magic %02x%02x%02x",
				   h[0], h[1], h[2]);
	kvc_fixed_decode(h, &f);
	meta->version = f.version;
	if (meta->version != KVC_VERSION)
		return byte_error(err, KVC_E_UNSUPPORTED_VERSION, "format version", h[3]);
	meta->quant_bits = f.quant_bits;
	meta->save_reason = f.save_reason;
	if (kvc_save_reason_name(meta->save_reason) == NULL)
		return byte_error(err, KVC_E_UNKNOWN_SAVE_REASON, "save_reason", h[5]);
	meta->cached_token_count = f.cached_token_count;
	meta->hit_count = f.hit_count;
	meta->context_size = f.context_size;
	meta->creation_time = f.creation_time;
	meta->last_used_time = f.last_used_time;
	meta->payload_byte_count = f.payload_byte_count;
	meta->payload_offset = f.payload_offset;
	meta->payload_length = f.payload_length;
	meta->payload_crc32c = f.payload_crc32c;
	return 0;
}

static int blob_set(struct kvc_blob *b, const uint8_t *v, uint32_t len,
		    struct kvc_err *err)
{
	char *copy = malloc((size_t)len + 1);

	if (copy == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "TLV value of %u bytes", len);
	if (len > 0)
		memcpy(copy, v, len);
	copy[len] = '\0';
	free(b->data); /* a repeated tag: the last one wins, as in the reference */
	b->data = copy;
	b->len = len;
	b->present = true;
	return 0;
}

static int store_tokens(struct kvc_meta *meta, const uint8_t *v, uint32_t len,
			struct kvc_err *err)
{
	uint32_t n = len / 4;
	uint32_t *tokens = malloc(n ? (size_t)n * 4 : 1);

	if (tokens == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "%u token ids", n);
	for (uint32_t i = 0; i < n; i++)
		tokens[i] = get_le32(v + 4 * i);
	free(meta->tokens);
	meta->tokens = tokens;
	meta->n_tokens = n;
	return 0;
}

static int store_text(uint8_t tag, const uint8_t *v, uint32_t len,
		      struct kvc_meta *meta, struct kvc_err *err)
{
	for (size_t i = 0; i < TLV_TEXT_COUNT; i++)
		if (tlv_texts[i].tag == tag)
			return blob_set((struct kvc_blob *)((char *)meta + tlv_texts[i].meta_offset),
					v, len, err);
	return 0;
}

/* One record. Known tags with the wrong length are ignored like unknown
 * ones (the reference does the same), so the file later fails missing_tlv. */
static int store_tlv(uint8_t tag, const uint8_t *v, uint32_t len,
		     struct kvc_meta *meta, struct seen *seen, struct kvc_err *err)
{
	switch (tag) {
	case TLV_FINGERPRINT:
		if (len == 32) {
			memcpy(meta->fingerprint, v, 32);
			seen->fingerprint = true;
		}
		return 0;
	case TLV_FINGERPRINT_MODE:
		if (len == 1) {
			if (kvc_fingerprint_mode_name(v[0]) == NULL)
				return byte_error(err, KVC_E_UNKNOWN_FINGERPRINT_MODE,
						  "fingerprint_mode", v[0]);
			meta->fingerprint_mode = v[0];
			seen->fingerprint_mode = true;
		}
		return 0;
	case TLV_QUANT_TYPE:
		if (len == 1) {
			if (kvc_quant_name(v[0]) == NULL)
				return byte_error(err, KVC_E_UNKNOWN_QUANT_BYTE, "quant",
						  v[0]);
			meta->quant_byte = v[0];
			seen->quant_type = true;
		}
		return 0;
	case TLV_CTX_PARAMS_HASH:
		if (len == 32) {
			memcpy(meta->ctx_params_hash, v, 32);
			seen->ctx_params_hash = true;
		}
		return 0;
	case TLV_HOSTNAME:
	case TLV_WRITER_VERSION:
	case TLV_SAVE_REASON_DETAIL:
		return seen->flags & KVC_PARSE_LIGHT ? 0 : store_text(tag, v, len, meta, err);
	case TLV_TOKEN_IDS:
		if (len % 4 == 0) {
			if (!(seen->flags & KVC_PARSE_LIGHT) && store_tokens(meta, v, len, err) < 0)
				return -1;
			meta->n_tokens = len / 4;
			seen->tokens = true;
			seen->token_bytes = v;
			seen->token_len = len;
		}
		return 0;
	case TLV_TOKEN_ID_COUNT: /* informational; the ids are canonical */
	default:                 /* forward compatible: skip unknown tags */
		return 0;
	}
}

static int decode_tlvs(const uint8_t *tlv, uint32_t len, struct kvc_meta *meta,
		       struct seen *seen, struct kvc_err *err)
{
	uint32_t pos = 0;

	while (pos < len) {
		uint32_t vlen;
		if (len - pos < TLV_RECORD_OVERHEAD)
			return kvc_err_set(err, KVC_E_BAD_TLV,
					   "TLV record header cut at offset %u of %u", pos, len);
		vlen = get_le32(tlv + pos + 1);
		if (vlen > len - pos - TLV_RECORD_OVERHEAD)
			return kvc_err_set(err, KVC_E_BAD_TLV,
					   "TLV tag 0x%02x length %u runs past the section end",
					   tlv[pos], vlen);
		if (store_tlv(tlv[pos], tlv + pos + TLV_RECORD_OVERHEAD, vlen, meta, seen, err) < 0)
			return -1;
		pos += TLV_RECORD_OVERHEAD + vlen;
	}
	return 0;
}

static int check_consistency(const struct kvc_meta *meta, uint64_t tlv_end,
			     const struct seen *seen, struct kvc_err *err)
{
	uint64_t size = meta->file_size;
	static const char *const names[] = {
		"fingerprint", "fingerprint_mode", "quant_type", "ctx_params_hash", "tokens",
	};
	const bool present[] = {
		seen->fingerprint, seen->fingerprint_mode, seen->quant_type,
		seen->ctx_params_hash, seen->tokens,
	};

	if (meta->payload_length != meta->payload_byte_count)
		return kvc_err_set(err, KVC_E_PAYLOAD_LENGTH_MISMATCH,
				   "trailer payload_length %llu, header payload_byte_count %llu",
				   (unsigned long long)meta->payload_length,
				   (unsigned long long)meta->payload_byte_count);
	/* Overflow-safe forms of size < offset + length and size != … */
	if (meta->payload_offset > size || meta->payload_length > size - meta->payload_offset)
		return kvc_err_set(err, KVC_E_TRUNCATED,
				   "payload [%llu, +%llu) ends past the file size %llu",
				   (unsigned long long)meta->payload_offset,
				   (unsigned long long)meta->payload_length,
				   (unsigned long long)size);
	if (size - meta->payload_offset != meta->payload_length)
		return kvc_err_set(err, KVC_E_TRAILING_BYTES,
				   "%llu bytes after the payload",
				   (unsigned long long)(size - meta->payload_offset -
							meta->payload_length));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!present[i])
			return kvc_err_set(err, KVC_E_MISSING_TLV, "missing TLV %s", names[i]);
	/* Stricter than the reference, which never writes such a file: a
	 * payload that overlaps the metadata is not something we will serve. */
	if (meta->payload_offset < tlv_end)
		return kvc_err_set(err, KVC_E_BAD_TRAILER,
				   "payload_offset %llu lies inside the metadata (ends at %llu)",
				   (unsigned long long)meta->payload_offset,
				   (unsigned long long)tlv_end);
	/* Bytes between metadata and payload are covered by no check, so
	 * their amount is bounded: they cannot hide a second file. */
	if (meta->payload_offset - tlv_end > KVC_MAX_PAYLOAD_GAP)
		return kvc_err_set(err, KVC_E_BAD_TRAILER,
				   "%llu bytes between the metadata (ends at %llu) and the payload; at most %u",
				   (unsigned long long)(meta->payload_offset - tlv_end),
				   (unsigned long long)tlv_end, KVC_MAX_PAYLOAD_GAP);
	return 0;
}

static int read_section_length(const struct kvc_source *src, uint64_t off,
			       uint32_t *len, const char *what, struct kvc_err *err)
{
	uint8_t b[4];

	if (src->size < off || src->size - off < 4)
		return kvc_err_set(err, KVC_E_BAD_LENGTH_PREFIXED_SECTION,
				   "%s length field at offset %llu is past the end of the file",
				   what, (unsigned long long)off);
	if (read_at(src, b, 4, off, err) < 0)
		return -1;
	*len = get_le32(b);
	if (src->size - off - 4 < *len)
		return kvc_err_set(err, KVC_E_BAD_LENGTH_PREFIXED_SECTION,
				   "%s section of %u bytes at offset %llu runs past the end of the file (%llu bytes)",
				   what, *len, (unsigned long long)off,
				   (unsigned long long)src->size);
	return 0;
}

static int parse_prompt(const struct kvc_source *src, unsigned flags,
			struct kvc_meta *meta, struct kvc_err *err)
{
	uint32_t len;

	if (read_section_length(src, KVC_FIXED_SIZE, &len, "prompt", err) < 0)
		return -1;
	meta->prompt_offset = KVC_FIXED_SIZE + 4;
	meta->prompt_length = len;
	if (!(flags & KVC_PARSE_PROMPT))
		return 0;
	if (len > KVC_MAX_PROMPT)
		return kvc_err_set(err, KVC_E_TOO_LARGE, "prompt of %u bytes exceeds %u",
				   len, KVC_MAX_PROMPT);
	meta->prompt.data = malloc((size_t)len + 1);
	if (meta->prompt.data == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "prompt of %u bytes", len);
	if (read_at(src, meta->prompt.data, len, meta->prompt_offset, err) < 0)
		return -1;
	meta->prompt.data[len] = '\0';
	meta->prompt.len = len;
	meta->prompt.present = true;
	return 0;
}

/* The key from the token bytes as they lie in the file: they are already
 * the u32 LE encoding the key hashes, so nothing is converted. */
static int derive_key(struct kvc_meta *meta, const struct seen *seen, struct kvc_err *err)
{
	if (kvc_key_of_le_tokens(meta->fingerprint, meta->quant_byte, meta->ctx_params_hash,
				 seen->token_bytes, seen->token_len, &meta->key) < 0)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "SHA-256 of the key");
	meta->has_key = true;
	return 0;
}

int kvc_parse_meta(const struct kvc_source *src, unsigned flags,
		   struct kvc_meta *meta, struct kvc_err *err)
{
	uint8_t fixed[KVC_FIXED_SIZE];
	struct seen seen = { .flags = flags };
	uint64_t tlv_off;
	uint32_t tlv_len;
	const uint8_t *tlv = NULL;
	uint8_t *tlv_copy = NULL;
	int rc = -1;

	memset(meta, 0, sizeof(*meta));
	meta->file_size = src->size;

	if (src->size < KVC_HEADER_SIZE)
		return kvc_err_set(err, KVC_E_BAD_HEADER, "file of %llu bytes is shorter than the header",
				   (unsigned long long)src->size);
	if (read_at(src, fixed, src->size < KVC_FIXED_SIZE ? KVC_HEADER_SIZE : KVC_FIXED_SIZE,
		    0, err) < 0)
		goto out;
	/* The header is judged before the trailer's presence, as the
	 * reference does: a short file with a bad magic is bad_header. */
	if (parse_header(fixed, meta, err) < 0)
		goto out;
	if (src->size < KVC_FIXED_SIZE) {
		kvc_err_set(err, KVC_E_BAD_TRAILER, "file of %llu bytes ends inside the trailer",
			    (unsigned long long)src->size);
		goto out;
	}
	if (parse_prompt(src, flags, meta, err) < 0)
		goto out;

	tlv_off = meta->prompt_offset + meta->prompt_length;
	if (read_section_length(src, tlv_off, &tlv_len, "TLV", err) < 0)
		goto out;
	if (tlv_len > KVC_MAX_TLV_SECTION) {
		kvc_err_set(err, KVC_E_TOO_LARGE, "TLV section of %u bytes exceeds %u",
			    tlv_len, KVC_MAX_TLV_SECTION);
		goto out;
	}
	if (src->view_at != NULL)
		tlv = src->view_at(src->ctx, tlv_len, tlv_off + 4);
	if (tlv == NULL) {
		tlv = tlv_copy = malloc(tlv_len ? tlv_len : 1);
		if (tlv_copy == NULL) {
			kvc_err_set(err, KVC_E_NO_MEMORY, "TLV section of %u bytes", tlv_len);
			goto out;
		}
		if (read_at(src, tlv_copy, tlv_len, tlv_off + 4, err) < 0)
			goto out;
	}
	if (decode_tlvs(tlv, tlv_len, meta, &seen, err) < 0)
		goto out;
	rc = check_consistency(meta, tlv_off + 4 + tlv_len, &seen, err);
	if (rc == 0)
		rc = derive_key(meta, &seen, err);
out:
	free(tlv_copy);
	if (rc < 0)
		kvc_meta_clear(meta);
	return rc;
}
