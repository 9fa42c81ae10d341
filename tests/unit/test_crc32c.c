/* SPDX-License-Identifier: MIT */
/* CRC-32C: every implementation agrees with a bit-by-bit reference. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/mman.h>
#include <unistd.h>

#include <kvc/crc32c.h>

#include "crc_tracker.h"

/* The definition, one bit at a time: slow and obviously right. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void test_check_value(void **state)
{
	(void)state;
	assert_int_equal(kvc_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kvc_crc32c_portable(0, "123456789", 9), 0xE3069283u);
	if (kvc_crc32c_isal() != NULL)
		assert_int_equal(kvc_crc32c_isal()(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kvc_crc32c(0, "", 0), 0);
	/* Continuing from a previous result, as the stream callers do. */
	assert_int_equal(kvc_crc32c(kvc_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static uint8_t *random_buf(size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len + 64);

	srand(seed);
	for (size_t i = 0; i < len + 64; i++)
		buf[i] = (uint8_t)rand();
	return buf;
}

/* Lengths around block boundaries of fast CRC code (folding by 64, 128,
 * 256 bytes, lanes of 3 x 256 and 3 x 8192), random lengths, and every
 * alignment of the start. */
static void test_lengths_and_alignments(void **state)
{
	static const size_t fixed[] = { 0, 1, 7, 8, 9, 255, 256, 767, 768, 769,
					24575, 24576, 24577, 25344, 49152 + 768 + 7,
					1 << 20 };
	size_t max = 1 << 20;
	uint8_t *buf = random_buf(max, 42);
	kvc_crc32c_fn hw = kvc_crc32c_isal();

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		for (size_t align = 0; align < 8; align++) {
			uint32_t want = crc32c_bitwise(0, buf + align, fixed[i]);
			assert_int_equal(kvc_crc32c_portable(0, buf + align, fixed[i]), want);
			assert_int_equal(kvc_crc32c(0, buf + align, fixed[i]), want);
			if (hw != NULL)
				assert_int_equal(hw(0, buf + align, fixed[i]), want);
		}
	srand(7);
	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)rand() % 70000, align = (size_t)rand() % 64;
		uint32_t want = crc32c_bitwise(0, buf + align, len);
		assert_int_equal(kvc_crc32c_portable(0, buf + align, len), want);
		if (hw != NULL)
			assert_int_equal(hw(0, buf + align, len), want);
	}
	free(buf);
}

/* ISA-L and the portable code agree on random buffers, lengths, alignments
 * and starting values (the previous CRC of a stream). */
static void test_isal_matches_portable(void **state)
{
	size_t max = 1 << 18;
	uint8_t *buf = random_buf(max, 23);
	kvc_crc32c_fn isal = kvc_crc32c_isal();

	(void)state;
	if (isal == NULL)
		skip();
	srand(29);
	for (int round = 0; round < 3000; round++) {
		/* Mostly short lengths, where code paths switch; some long. */
		size_t len = round % 10 == 0 ? (size_t)rand() % (max - 64)
					     : (size_t)rand() % 2048;
		size_t align = (size_t)rand() % 64;
		uint32_t seed = round % 2 ? (uint32_t)rand() * 2654435761u : 0;
		assert_int_equal(isal(seed, buf + align, len),
				 kvc_crc32c_portable(seed, buf + align, len));
	}
	free(buf);
}

/* CRC of n zero bytes without touching n bytes: doubling by combine. */
static uint32_t crc_of_zeros(uint64_t n)
{
	static const uint8_t zeros[4096];
	uint32_t crc = 0, block = kvc_crc32c_portable(0, zeros, sizeof(zeros));
	uint64_t block_len = sizeof(zeros);

	crc = kvc_crc32c_portable(0, zeros, (size_t)(n % block_len));
	for (n /= block_len; n > 0; n >>= 1) {
		/* Zeros commute, so the pieces may be joined in any order. */
		if (n & 1)
			crc = kvc_crc32c_combine(crc, block, block_len);
		block = kvc_crc32c_combine(block, block, block_len);
		block_len *= 2;
	}
	return crc;
}

/* ISA-L takes an int length: a buffer past 2 GiB (and past 4 GiB, where
 * even an unsigned 32-bit length wraps) must go in pieces. The
 * zero pages of an anonymous mapping cost no memory to read. */
static void test_longer_than_int(void **state)
{
	size_t len = ((size_t)1 << 32) + 4099;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);

	(void)state;
	if (map == MAP_FAILED)
		skip();
	assert_int_equal(crc_of_zeros(9), kvc_crc32c_portable(0, (const uint8_t[9]){ 0 }, 9));
	assert_int_equal(kvc_crc32c(0, map, len), crc_of_zeros(len));
	munmap(map, len);
}

/* Feeding a stream in pieces gives the CRC of the whole. */
static void test_incremental(void **state)
{
	size_t len = 100000;
	uint8_t *buf = random_buf(len, 3);
	uint32_t whole = crc32c_bitwise(0, buf, len);

	(void)state;
	srand(11);
	for (int round = 0; round < 50; round++) {
		uint32_t crc = 0;
		size_t off = 0;
		while (off < len) {
			size_t n = (size_t)rand() % 30000;
			if (n > len - off)
				n = len - off;
			crc = kvc_crc32c(crc, buf + off, n);
			off += n;
		}
		assert_int_equal(crc, whole);
	}
	free(buf);
}

/* crc(A || B) from crc(A), crc(B) and |B|, for every kind of length. */
static void test_combine(void **state)
{
	size_t len = 300000;
	uint8_t *buf = random_buf(len, 9);
	uint32_t whole = crc32c_bitwise(0, buf, len);

	(void)state;
	srand(13);
	for (int round = 0; round < 200; round++) {
		size_t cut = (size_t)rand() % (len + 1);
		uint32_t a = kvc_crc32c(0, buf, cut), b = kvc_crc32c(0, buf + cut, len - cut);
		assert_int_equal(kvc_crc32c_combine(a, b, len - cut), whole);
	}
	assert_int_equal(kvc_crc32c_combine(0x12345678u, 0, 0), 0x12345678u);
	free(buf);
}

/* crc(A || n zeros) from crc(A) alone, as a hole of a sparse file is
 * checked: equal to reading the zeros, for lengths around every power of
 * two up to 16 MiB. */
static void test_zeros(void **state)
{
	size_t max = 16u << 20;
	uint8_t *zeros = calloc(max + 1, 1), *head = random_buf(1000, 3);
	uint32_t a = kvc_crc32c(0, head, 1000);

	(void)state;
	assert_non_null(zeros);
	for (size_t len = 1; len <= max; len <<= 1) {
		for (size_t d = len > 1 ? len - 1 : len; d <= len + 1 && d <= max; d++) {
			assert_int_equal(kvc_crc32c_zeros(a, d), kvc_crc32c(a, zeros, d));
			assert_int_equal(kvc_crc32c_zeros(0, d), kvc_crc32c(0, zeros, d));
		}
	}
	assert_int_equal(kvc_crc32c_zeros(a, 0), a);
	free(zeros);
	free(head);
}

/* The tracker vouches for a range exactly when recorded writes tile it,
 * in any order, and gives the CRC a full read would. */
static void test_tracker(void **state)
{
	char path[] = "/tmp/kvc-tracker-XXXXXX";
	int fd = mkstemp(path);
	size_t len = 5 << 20, chunk = 1 << 20;
	uint8_t *buf = random_buf(len, 17);
	struct kvc_crc_tracker *t = kvc_crc_tracker_new();
	size_t order[5] = { 3, 0, 4, 1, 2 };
	uint32_t crc;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
	for (size_t i = 0; i < 5; i++) {
		size_t at = order[i] * chunk;
		kvc_crc_tracker_add(t, fd, at, buf + at, chunk);
		if (i < 4) /* a gap remains */
			assert_int_equal(kvc_crc_tracker_crc(t, fd, 0, len, &crc), -1);
	}
	for (uint64_t start = 0; start < len; start += 777777) {
		assert_int_equal(kvc_crc_tracker_crc(t, fd, start, len - start, &crc), 0);
		assert_int_equal(crc, crc32c_bitwise(0, buf + start, len - start));
	}
	/* A range ending inside a write: cannot vouch. */
	assert_int_equal(kvc_crc_tracker_crc(t, fd, 0, len - 10, &crc), -1);
	/* Rewriting bytes already recorded breaks it for good... */
	kvc_crc_tracker_add(t, fd, 100, buf, 10);
	assert_int_equal(kvc_crc_tracker_crc(t, fd, 0, len, &crc), -1);
	/* ...until a truncate to zero starts over. */
	kvc_crc_tracker_truncate(t, 0);
	kvc_crc_tracker_add(t, fd, 0, buf, len);
	assert_int_equal(kvc_crc_tracker_crc(t, fd, 0, len, &crc), 0);
	assert_int_equal(crc, crc32c_bitwise(0, buf, len));
	kvc_crc_tracker_free(t);
	close(fd);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_lengths_and_alignments),
		cmocka_unit_test(test_isal_matches_portable),
		cmocka_unit_test(test_longer_than_int),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_combine),
		cmocka_unit_test(test_zeros),
		cmocka_unit_test(test_tracker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
