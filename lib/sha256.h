/* SPDX-License-Identifier: MIT */
/* SHA-256 for cache keys: a plain struct context, so a prefix walk can copy
 * the state at each stride boundary for free. Internal to libkvc. */
#ifndef KVC_SHA256_H
#define KVC_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct kvc_sha256 {
	uint32_t h[8];
	uint64_t bytes;
	uint8_t buf[64];
	size_t buffered;
};

void kvc_sha256_init(struct kvc_sha256 *ctx);
void kvc_sha256_update(struct kvc_sha256 *ctx, const void *data, size_t len);
void kvc_sha256_final(const struct kvc_sha256 *ctx, uint8_t out[32]);
/* "sha-ni" or "portable" */
const char *kvc_sha256_impl_name(void);
/* For tests: force the portable path (1) or the default choice (0). */
void kvc_sha256_force_portable(int on);

#endif
