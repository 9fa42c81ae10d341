/* SPDX-License-Identifier: MIT */
/* Key derivation inside libkvc; the public side is kvc/key.h. */
#ifndef KVC_KEY_INTERNAL_H
#define KVC_KEY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <kvc/key.h>

/*
 * The key of tokens already encoded as u32 LE, as they lie in a slab's
 * token_ids TLV: the parser hashes them in place, without decoding. The
 * same function as kvc_key_compute(), which encodes them first.
 */
int kvc_key_of_le_tokens(const uint8_t fingerprint[32], uint8_t quant_byte,
			 const uint8_t ctx_params_hash[32], const uint8_t *tokens_le,
			 size_t tokens_le_len, struct kvc_key *out) __attribute__((warn_unused_result));

#endif
