/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C of a concatenation from the CRCs of its parts. Appending n zero
 * bytes is a linear map of the CRC register, a 32x32 matrix over GF(2);
 * its powers for n = 1, 2, 4, … bytes come from repeated squaring, so a
 * shift by any length costs O(log n) matrix products.
 */
#include <kvc/crc32c.h>

#define POLY 0x82F63B78u

static uint32_t times(const uint32_t mat[32], uint32_t vec)
{
	uint32_t sum = 0;

	for (int i = 0; vec != 0; i++, vec >>= 1)
		if (vec & 1)
			sum ^= mat[i];
	return sum;
}

static void square(uint32_t out[32], const uint32_t mat[32])
{
	for (int i = 0; i < 32; i++)
		out[i] = times(mat, mat[i]);
}

uint32_t kvc_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t a[32], b[32];

	if (len2 == 0)
		return crc1;
	/* b: one zero bit. Column i is where bit i of the register goes. */
	b[0] = POLY;
	for (int i = 1; i < 32; i++)
		b[i] = 1u << (i - 1);
	square(a, b); /* two zero bits */
	square(b, a); /* four */
	/* a and b take turns holding the operator for 8·2^k zero bits. */
	for (;;) {
		square(a, b);
		if (len2 & 1)
			crc1 = times(a, crc1);
		len2 >>= 1;
		if (len2 == 0)
			break;
		square(b, a);
		if (len2 & 1)
			crc1 = times(b, crc1);
		len2 >>= 1;
		if (len2 == 0)
			break;
	}
	return crc1 ^ crc2;
}

/* The register is the CRC inverted; zero bytes move it by the same linear
 * map combine applies, with nothing to add. */
uint32_t kvc_crc32c_zeros(uint32_t crc_a, uint64_t len)
{
	return ~kvc_crc32c_combine(~crc_a, 0, len);
}
