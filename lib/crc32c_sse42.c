/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C with the SSE4.2 crc32 instruction, three independent lanes.
 *
 * One crc32q has a latency of three cycles but a throughput of one per
 * cycle, so a single dependency chain runs at a third of the unit's speed.
 * We split a block into three equal lanes, run them interleaved, and join
 * them: the register update is linear, so
 *     crc(A || B) = shift(crc(A), |B|) ^ crc_from_zero(B)
 * where shift() feeds |B| zero bytes. For a fixed |B| shift() is a linear
 * map of the 32-bit register, applied as four 256-entry tables built once.
 */
#include <pthread.h>
#include <string.h>

#include <kvc/crc32c.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>

#define LANE_LONG 8192
#define LANE_SHORT 256

struct shift_table {
	uint32_t t[4][256];
};

static struct shift_table shift_long, shift_short;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2")))
static uint32_t feed_zeros(uint32_t reg, size_t len)
{
	uint64_t r = reg;

	for (size_t i = 0; i < len / 8; i++)
		r = _mm_crc32_u64(r, 0);
	return (uint32_t)r;
}

static void build_shift(struct shift_table *st, size_t len)
{
	uint32_t column[32];

	for (int bit = 0; bit < 32; bit++)
		column[bit] = feed_zeros(1u << bit, len);
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t v = 0;
			for (int j = 0; j < 8; j++)
				if (b & (1u << j))
					v ^= column[8 * k + j];
			st->t[k][b] = v;
		}
}

static void build_tables(void)
{
	build_shift(&shift_long, LANE_LONG);
	build_shift(&shift_short, LANE_SHORT);
}

static inline uint32_t apply_shift(const struct shift_table *st, uint32_t reg)
{
	return st->t[0][reg & 0xff] ^ st->t[1][(reg >> 8) & 0xff] ^
	       st->t[2][(reg >> 16) & 0xff] ^ st->t[3][reg >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

__attribute__((target("sse4.2")))
static uint32_t three_lanes(uint32_t reg, const uint8_t **pp, size_t *lenp,
			    size_t lane, const struct shift_table *st)
{
	const uint8_t *p = *pp;
	size_t len = *lenp;

	while (len >= 3 * lane) {
		uint64_t c0 = reg, c1 = 0, c2 = 0;
		for (size_t i = 0; i < lane; i += 8) {
			c0 = _mm_crc32_u64(c0, load64(p + i));
			c1 = _mm_crc32_u64(c1, load64(p + lane + i));
			c2 = _mm_crc32_u64(c2, load64(p + 2 * lane + i));
		}
		reg = apply_shift(st, (uint32_t)c0) ^ (uint32_t)c1;
		reg = apply_shift(st, reg) ^ (uint32_t)c2;
		p += 3 * lane;
		len -= 3 * lane;
	}
	*pp = p;
	*lenp = len;
	return reg;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t reg = ~crc;

	pthread_once(&tables_once, build_tables);
	/* Align so the long loop's loads do not straddle cache lines. */
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		reg = _mm_crc32_u8(reg, *p++);
		len--;
	}
	reg = three_lanes(reg, &p, &len, LANE_LONG, &shift_long);
	reg = three_lanes(reg, &p, &len, LANE_SHORT, &shift_short);
	{
		uint64_t r = reg;
		while (len >= 8) {
			r = _mm_crc32_u64(r, load64(p));
			p += 8;
			len -= 8;
		}
		reg = (uint32_t)r;
	}
	while (len--)
		reg = _mm_crc32_u8(reg, *p++);
	return ~reg;
}

kvc_crc32c_fn kvc_crc32c_hw(void)
{
	unsigned int eax, ebx, ecx, edx;

	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		return NULL;
	return (ecx & bit_SSE4_2) ? crc32c_sse42 : NULL;
}

#else

kvc_crc32c_fn kvc_crc32c_hw(void)
{
	return NULL;
}

#endif
