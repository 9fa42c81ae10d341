/* SPDX-License-Identifier: MIT */
/* SHA-256 for cache keys, from OpenSSL's libcrypto. Internal to libkvc. */
#ifndef KVC_SHA256_H
#define KVC_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* One hash in progress. A successful kvc_sha256_init() is ended by exactly
 * one kvc_sha256_final() or kvc_sha256_abandon(), which free it. */
struct kvc_sha256 {
	EVP_MD_CTX *ctx;
};

/* Each returns false when libcrypto fails (out of memory): init then holds
 * nothing; after a failed update the caller abandons the hash. */
bool kvc_sha256_init(struct kvc_sha256 *sum) __attribute__((warn_unused_result));
bool kvc_sha256_update(struct kvc_sha256 *sum, const void *data, size_t len)
	__attribute__((warn_unused_result));
/* The digest of everything fed so far; sum goes on (prefix walks). */
bool kvc_sha256_peek(const struct kvc_sha256 *sum, uint8_t out[32])
	__attribute__((warn_unused_result));
/* The digest, and the context is freed (also when it fails). */
bool kvc_sha256_final(struct kvc_sha256 *sum, uint8_t out[32])
	__attribute__((warn_unused_result));
void kvc_sha256_abandon(struct kvc_sha256 *sum);

#endif
