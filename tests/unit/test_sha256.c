/* SPDX-License-Identifier: MIT */
/* libkvc's SHA-256 (libcrypto underneath) gives the known answers of
 * FIPS 180-4 and agrees with glib's on every length and split, and a
 * peek at a prefix leaves the hash going. */
#include <errno.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include <kvc/key.h>

#include "sha256.h"

static void digest_hex(const void *data, size_t len, char out[65])
{
	struct kvc_sha256 c;
	uint8_t d[32];

	assert_true(kvc_sha256_init(&c));
	assert_true(kvc_sha256_update(&c, data, len));
	assert_true(kvc_sha256_final(&c, d));
	kvc_hex_encode(d, 32, out);
}

static void check_known_answers(void)
{
	char hex[65];

	digest_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	digest_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	digest_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void check_against_glib(void)
{
	size_t max = 5000;
	uint8_t *buf = malloc(max);

	srand(5);
	for (size_t i = 0; i < max; i++)
		buf[i] = (uint8_t)rand();
	for (size_t len = 0; len < max; len += 1 + len / 16) {
		char ours[65];
		gchar *theirs = g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf, len);
		struct kvc_sha256 c;
		uint8_t d[32];
		size_t off = 0;

		digest_hex(buf, len, ours);
		assert_string_equal(ours, theirs);
		/* the same bytes fed in random pieces */
		assert_true(kvc_sha256_init(&c));
		while (off < len) {
			size_t n = (size_t)rand() % 130;
			if (n > len - off)
				n = len - off;
			assert_true(kvc_sha256_update(&c, buf + off, n));
			off += n;
		}
		assert_true(kvc_sha256_final(&c, d));
		kvc_hex_encode(d, 32, ours);
		assert_string_equal(ours, theirs);
		g_free(theirs);
	}
	free(buf);
}

static void test_known_answers(void **state)
{
	(void)state;
	check_known_answers();
}

static void test_against_glib(void **state)
{
	(void)state;
	check_against_glib();
}

/* The digest of each prefix on the way, as the prefix-key walk takes them. */
static void test_peek(void **state)
{
	static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	struct kvc_sha256 c;
	uint8_t d[32];
	char hex[65], want[65];

	(void)state;
	assert_true(kvc_sha256_init(&c));
	for (size_t len = 0; len < 56; len++) {
		assert_true(kvc_sha256_peek(&c, d));
		kvc_hex_encode(d, 32, hex);
		digest_hex(msg, len, want);
		assert_string_equal(hex, want);
		assert_true(kvc_sha256_update(&c, msg + len, 1));
	}
	assert_true(kvc_sha256_final(&c, d));
	kvc_hex_encode(d, 32, hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* libcrypto's context allocation, made to fail from the nth call on
 * (0: never), as an exhausted allocator would. */
EVP_MD_CTX *__real_EVP_MD_CTX_new(void);
EVP_MD_CTX *__wrap_EVP_MD_CTX_new(void);
static int ctx_calls_left;

EVP_MD_CTX *__wrap_EVP_MD_CTX_new(void)
{
	if (ctx_calls_left > 0 && --ctx_calls_left == 0)
		return NULL;
	return __real_EVP_MD_CTX_new();
}

/* Out of memory is an error the caller sees, never an abort: the key
 * functions return -1 with ENOMEM, and a prefix walk that fails half way
 * returns nothing. */
static void test_allocation_failure_is_an_error(void **state)
{
	uint32_t tokens[40] = { 0 };
	struct kvc_key_input in = { .tokens = tokens, .n_tokens = 40 };
	struct kvc_key key, keys[8];
	size_t lens[8];
	struct kvc_sha256 c;

	(void)state;
	ctx_calls_left = 1;
	assert_false(kvc_sha256_init(&c));
	ctx_calls_left = 1;
	errno = 0;
	assert_int_equal(kvc_key_compute(&in, &key), -1);
	assert_int_equal(errno, ENOMEM);
	/* The walk's own context, then the third peek's copy. */
	ctx_calls_left = 4;
	assert_int_equal(kvc_prefix_keys(&in, 10, 1, lens, keys), -1);
	assert_int_equal(errno, ENOMEM);
	ctx_calls_left = 0;
	assert_int_equal(kvc_key_compute(&in, &key), 0);
	assert_int_equal(kvc_prefix_keys(&in, 10, 1, lens, keys), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_against_glib),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_allocation_failure_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
