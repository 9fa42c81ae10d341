/* SPDX-License-Identifier: MIT */
#ifndef KVC_KEY_H
#define KVC_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVC_KEY_BYTES 32
#define KVC_KEY_HEX_LEN 64
/* "<64 hex>.kvc" */
#define KVC_SLAB_NAME_LEN (KVC_KEY_HEX_LEN + 4)

struct kvc_key {
	uint8_t bytes[KVC_KEY_BYTES];
};

/* What the key is derived from. */
struct kvc_key_input {
	uint8_t fingerprint[32];
	uint8_t quant_byte;
	uint8_t ctx_params_hash[32];
	const uint32_t *tokens;
	size_t n_tokens;
};

/* SHA-256(fingerprint || quant_byte || ctx_params_hash || tokens as u32 LE).
 * 0, or -1 with errno ENOMEM when libcrypto cannot allocate (nothing else
 * fails). Here and below, a result may not be ignored. */
int kvc_key_compute(const struct kvc_key_input *in, struct kvc_key *out)
	__attribute__((warn_unused_result));

/*
 * Keys of every prefix tokens[0..len) whose len is a multiple of stride
 * (and >= min_len), plus the full length, in one pass over the tokens.
 * lens[] and keys[] must hold kvc_prefix_key_count() entries; they are
 * filled in increasing length. Returns the number filled, or -1 with errno
 * ENOMEM.
 */
size_t kvc_prefix_key_count(size_t n_tokens, size_t stride, size_t min_len);
ssize_t kvc_prefix_keys(const struct kvc_key_input *in, size_t stride,
			size_t min_len, size_t *lens, struct kvc_key *keys)
	__attribute__((warn_unused_result));

/* Lowercase hex; out must hold 65 bytes. */
void kvc_key_to_hex(const struct kvc_key *key, char out[KVC_KEY_HEX_LEN + 1]);
/* Accepts exactly 64 lowercase hex digits (the published name form). */
bool kvc_key_from_hex(const char *hex, size_t len, struct kvc_key *out);
/* True if name is exactly "<64 lowercase hex>.kvc"; fills key if non-NULL. */
bool kvc_key_from_slab_name(const char *name, struct kvc_key *key);
/* "<hex>.kvc"; out must hold KVC_SLAB_NAME_LEN + 1 bytes. */
void kvc_key_slab_name(const struct kvc_key *key, char out[KVC_SLAB_NAME_LEN + 1]);
bool kvc_key_equal(const struct kvc_key *a, const struct kvc_key *b);

/* Generic hex helpers: any case accepted on input; lowercase output. */
bool kvc_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t out_len);
void kvc_hex_encode(const uint8_t *in, size_t len, char *out /* 2*len+1 */);

/* Quant names <-> bytes (the SPEC's table). Returns -1 / NULL if unknown. */
int kvc_quant_byte(const char *name);
const char *kvc_quant_name(uint8_t byte);

#ifdef __cplusplus
}
#endif
#endif
