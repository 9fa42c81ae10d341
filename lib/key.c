/* SPDX-License-Identifier: MIT */
/* Cache keys: SHA-256 over what identifies a KV state, and prefix keys. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include <kvc/key.h>

#include "key_internal.h"
#include "sha256.h"

/* What a key is: SHA-256(fingerprint || quant_byte || ctx_params_hash ||
 * tokens as u32 LE). This and feed_tokens are its only definition. */
static bool feed_header(struct kvc_sha256 *sum, const uint8_t fingerprint[32],
			uint8_t quant_byte, const uint8_t ctx_params_hash[32])
{
	return kvc_sha256_update(sum, fingerprint, 32) && kvc_sha256_update(sum, &quant_byte, 1) &&
	       kvc_sha256_update(sum, ctx_params_hash, 32);
}

/* Tokens are hashed as u32 LE; encode in chunks so no copy of the whole
 * token list is made. */
static bool feed_tokens(struct kvc_sha256 *sum, const uint32_t *tokens, size_t n)
{
	uint8_t buf[4 * 256];

	while (n > 0) {
		size_t chunk = n < 256 ? n : 256;
		for (size_t i = 0; i < chunk; i++) {
			uint32_t t = tokens[i];
			buf[4 * i] = (uint8_t)t;
			buf[4 * i + 1] = (uint8_t)(t >> 8);
			buf[4 * i + 2] = (uint8_t)(t >> 16);
			buf[4 * i + 3] = (uint8_t)(t >> 24);
		}
		if (!kvc_sha256_update(sum, buf, 4 * chunk))
			return false;
		tokens += chunk;
		n -= chunk;
	}
	return true;
}

/* A hash that failed part way: nothing of it is returned. */
static int hash_failed(struct kvc_sha256 *sum)
{
	kvc_sha256_abandon(sum);
	errno = ENOMEM;
	return -1;
}

int kvc_key_compute(const struct kvc_key_input *in, struct kvc_key *out)
{
	struct kvc_sha256 sum;

	if (!kvc_sha256_init(&sum))
		return errno = ENOMEM, -1;
	if (!feed_header(&sum, in->fingerprint, in->quant_byte, in->ctx_params_hash) ||
	    !feed_tokens(&sum, in->tokens, in->n_tokens))
		return hash_failed(&sum);
	return kvc_sha256_final(&sum, out->bytes) ? 0 : (errno = ENOMEM, -1);
}

int kvc_key_of_le_tokens(const uint8_t fingerprint[32], uint8_t quant_byte,
			 const uint8_t ctx_params_hash[32], const uint8_t *tokens_le,
			 size_t tokens_le_len, struct kvc_key *out)
{
	struct kvc_sha256 sum;

	if (!kvc_sha256_init(&sum))
		return errno = ENOMEM, -1;
	if (!feed_header(&sum, fingerprint, quant_byte, ctx_params_hash) ||
	    !kvc_sha256_update(&sum, tokens_le, tokens_le_len))
		return hash_failed(&sum);
	return kvc_sha256_final(&sum, out->bytes) ? 0 : (errno = ENOMEM, -1);
}

size_t kvc_prefix_key_count(size_t n_tokens, size_t stride, size_t min_len)
{
	size_t count = 0;

	if (stride == 0)
		stride = 1;
	for (size_t len = stride; len <= n_tokens; len += stride)
		if (len >= min_len)
			count++;
	if (n_tokens >= min_len && (n_tokens % stride != 0 || n_tokens == 0))
		count++;
	return count;
}

ssize_t kvc_prefix_keys(const struct kvc_key_input *in, size_t stride,
			size_t min_len, size_t *lens, struct kvc_key *keys)
{
	struct kvc_sha256 sum;
	uint8_t unused[32];
	size_t done = 0, filled = 0;

	if (stride == 0)
		stride = 1;
	if (!kvc_sha256_init(&sum))
		return errno = ENOMEM, -1;
	if (!feed_header(&sum, in->fingerprint, in->quant_byte, in->ctx_params_hash))
		return hash_failed(&sum);
	for (;;) {
		size_t next = done + stride;
		if (next > in->n_tokens)
			next = in->n_tokens;
		if (!feed_tokens(&sum, in->tokens + done, next - done))
			return hash_failed(&sum);
		done = next;
		if (done >= min_len && (done % stride == 0 || done == in->n_tokens)) {
			/* peek works on a copy of the state, so the walk goes
			 * on from here: one pass for every prefix. */
			if (!kvc_sha256_peek(&sum, keys[filled].bytes))
				return hash_failed(&sum);
			lens[filled++] = done;
		}
		if (done == in->n_tokens)
			break;
	}
	/* Frees the walk's context. */
	return kvc_sha256_final(&sum, unused) ? (ssize_t)filled : (errno = ENOMEM, -1);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool kvc_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len)
{
	if (hex_len != 2 * out_len)
		return false;
	for (size_t i = 0; i < out_len; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

void kvc_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

void kvc_key_to_hex(const struct kvc_key *key, char out[KVC_KEY_HEX_LEN + 1])
{
	kvc_hex_encode(key->bytes, KVC_KEY_BYTES, out);
}

bool kvc_key_from_hex(const char *hex, size_t len, struct kvc_key *out)
{
	/* Published names are lowercase only: "ABC…" and "abc…" must not
	 * name two different files for one key. */
	if (len != KVC_KEY_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (hex[i] >= 'A' && hex[i] <= 'F')
			return false;
	return kvc_hex_decode(hex, len, out->bytes, KVC_KEY_BYTES);
}

bool kvc_key_from_slab_name(const char *name, struct kvc_key *key)
{
	struct kvc_key scratch;

	if (strlen(name) != KVC_SLAB_NAME_LEN ||
	    strcmp(name + KVC_KEY_HEX_LEN, ".kvc") != 0)
		return false;
	return kvc_key_from_hex(name, KVC_KEY_HEX_LEN, key ? key : &scratch);
}

void kvc_key_slab_name(const struct kvc_key *key, char out[KVC_SLAB_NAME_LEN + 1])
{
	kvc_key_to_hex(key, out);
	memcpy(out + KVC_KEY_HEX_LEN, ".kvc", 5);
}

bool kvc_key_equal(const struct kvc_key *a, const struct kvc_key *b)
{
	return memcmp(a->bytes, b->bytes, KVC_KEY_BYTES) == 0;
}

static const char *const quant_names[] = {
	"f32",     "f16",     "q4_0",   "q4_1",    "q5_0",    "q5_1",
	"q8_0",    "q4_k_m",  "q4_k_s", "q5_k_m",  "q5_k_s",  "q6_k",
	"q8_k",    "q2_k",    "q3_k_s", "q3_k_m",  "q3_k_l",  "iq2_xxs",
	"iq2_xs",  "iq2_s",   "iq2_m",  "iq3_xxs", "iq3_xs",  "iq3_s",
	"iq3_m",   "iq1_s",   "iq1_m",  "iq4_nl",  "iq4_xs",  "bf16",
};

int kvc_quant_byte(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(quant_names); i++)
		if (strcmp(quant_names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *kvc_quant_name(uint8_t byte)
{
	return byte < G_N_ELEMENTS(quant_names) ? quant_names[byte] : NULL;
}
