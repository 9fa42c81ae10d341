/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 through libcrypto's EVP interface, which picks the CPU's SHA
 * extensions itself. A start-up scan derives one key per slab, so the
 * algorithm is fetched once rather than looked up by every init. Each
 * call can fail (libcrypto allocates a context per hash): the caller gets
 * false, never an abort, and the context is freed on every path.
 */
#include <pthread.h>

#include "sha256.h"

/* Set once under fetch_once, read-only afterwards (NULL: unavailable). */
static EVP_MD *sha256_md;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

bool kvc_sha256_init(struct kvc_sha256 *sum)
{
	pthread_once(&fetch_once, fetch);
	sum->ctx = sha256_md != NULL ? EVP_MD_CTX_new() : NULL;
	if (sum->ctx != NULL && EVP_DigestInit_ex2(sum->ctx, sha256_md, NULL))
		return true;
	EVP_MD_CTX_free(sum->ctx);
	sum->ctx = NULL;
	return false;
}

bool kvc_sha256_update(struct kvc_sha256 *sum, const void *data, size_t len)
{
	return len == 0 || EVP_DigestUpdate(sum->ctx, data, len);
}

bool kvc_sha256_final(struct kvc_sha256 *sum, uint8_t out[32])
{
	bool ok = EVP_DigestFinal_ex(sum->ctx, out, NULL);

	EVP_MD_CTX_free(sum->ctx);
	sum->ctx = NULL;
	return ok;
}

void kvc_sha256_abandon(struct kvc_sha256 *sum)
{
	EVP_MD_CTX_free(sum->ctx);
	sum->ctx = NULL;
}

bool kvc_sha256_peek(const struct kvc_sha256 *sum, uint8_t out[32])
{
	struct kvc_sha256 copy = { .ctx = EVP_MD_CTX_new() };

	if (copy.ctx == NULL || !EVP_MD_CTX_copy_ex(copy.ctx, sum->ctx)) {
		kvc_sha256_abandon(&copy);
		return false;
	}
	return kvc_sha256_final(&copy, out);
}
