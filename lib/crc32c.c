/* SPDX-License-Identifier: MIT */
/* CRC-32C, portable slicing-by-8: the reference for tests, and the whole
 * implementation when ISA-L was not found at configure time. */
#include <pthread.h>
#include <string.h>

#include <kvc/crc32c.h>


#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t slice_table[8][256];
static pthread_once_t portable_once = PTHREAD_ONCE_INIT;

static void build_slice_table(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY_REFLECTED & (0u - (c & 1u)));
		slice_table[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int t = 1; t < 8; t++)
			slice_table[t][b] = (slice_table[t - 1][b] >> 8) ^
					    slice_table[0][slice_table[t - 1][b] & 0xff];
}

uint32_t kvc_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;

	pthread_once(&portable_once, build_slice_table);
	while (len >= 8) {
		uint64_t word;
		memcpy(&word, p, 8);
		/* The slab format is little-endian and so is every target we
		 * build for; a big-endian port must byte-swap here. */
		word ^= reg;
		reg = slice_table[7][word & 0xff] ^
		      slice_table[6][(word >> 8) & 0xff] ^
		      slice_table[5][(word >> 16) & 0xff] ^
		      slice_table[4][(word >> 24) & 0xff] ^
		      slice_table[3][(word >> 32) & 0xff] ^
		      slice_table[2][(word >> 40) & 0xff] ^
		      slice_table[1][(word >> 48) & 0xff] ^
		      slice_table[0][word >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		reg = (reg >> 8) ^ slice_table[0][(reg ^ *p++) & 0xff];
	return ~reg;
}

/* ISA-L when libkvc was built with it (chosen at configure time). */
uint32_t kvc_crc32c(uint32_t crc, const void *data, size_t len)
{
	kvc_crc32c_fn isal = kvc_crc32c_isal();

	return isal != NULL ? isal(crc, data, len) : kvc_crc32c_portable(crc, data, len);
}

const char *kvc_crc32c_impl_name(void)
{
	return kvc_crc32c_isal() != NULL ? "isa-l" : "portable";
}
