/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 through libcrypto's EVP interface, which picks the CPU's SHA
 * extensions itself. A start-up scan derives one key per slab, so the
 * algorithm is fetched once rather than looked up by every init.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "sha256.h"

/* Set once under fetch_once, read-only afterwards. */
static EVP_MD *sha256_md;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fail(const char *what)
{
	fprintf(stderr, "libkvc: SHA-256: %s failed\n", what);
	abort();
}

static void fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (sha256_md == NULL)
		fail("EVP_MD_fetch");
}

static EVP_MD_CTX *new_ctx(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		fail("EVP_MD_CTX_new");
	return ctx;
}

void kvc_sha256_init(struct kvc_sha256 *sum)
{
	pthread_once(&fetch_once, fetch);
	sum->ctx = new_ctx();
	if (!EVP_DigestInit_ex2(sum->ctx, sha256_md, NULL))
		fail("EVP_DigestInit_ex2");
}

void kvc_sha256_update(struct kvc_sha256 *sum, const void *data, size_t len)
{
	if (len > 0 && !EVP_DigestUpdate(sum->ctx, data, len))
		fail("EVP_DigestUpdate");
}

void kvc_sha256_final(struct kvc_sha256 *sum, uint8_t out[32])
{
	if (!EVP_DigestFinal_ex(sum->ctx, out, NULL))
		fail("EVP_DigestFinal_ex");
	EVP_MD_CTX_free(sum->ctx);
	sum->ctx = NULL;
}

void kvc_sha256_peek(const struct kvc_sha256 *sum, uint8_t out[32])
{
	struct kvc_sha256 copy = { .ctx = new_ctx() };

	if (!EVP_MD_CTX_copy_ex(copy.ctx, sum->ctx))
		fail("EVP_MD_CTX_copy_ex");
	kvc_sha256_final(&copy, out);
}
