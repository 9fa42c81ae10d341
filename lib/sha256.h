/* SPDX-License-Identifier: MIT */
/* SHA-256 for cache keys, from OpenSSL's libcrypto. Internal to libkvc. */
#ifndef KVC_SHA256_H
#define KVC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* One hash in progress. Every kvc_sha256_init() is ended by exactly one
 * kvc_sha256_final(), which frees it. */
struct kvc_sha256 {
	EVP_MD_CTX *ctx;
};

/* Aborts when memory for a hash context cannot be had, as glib's
 * allocator does: keys have no error path. */
void kvc_sha256_init(struct kvc_sha256 *sum);
void kvc_sha256_update(struct kvc_sha256 *sum, const void *data, size_t len);
/* The digest of everything fed so far; sum goes on (prefix walks). */
void kvc_sha256_peek(const struct kvc_sha256 *sum, uint8_t out[32]);
/* The digest, and the context is freed. */
void kvc_sha256_final(struct kvc_sha256 *sum, uint8_t out[32]);

#endif
