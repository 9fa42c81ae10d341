/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 (FIPS 180-4). Keys are short (tens to thousands of bytes) and a
 * start-up scan derives one per slab, so per-call cost matters more than
 * bulk speed: no allocation, and the x86 SHA extensions when present.
 */
#include <pthread.h>
#include <string.h>

#include "sha256.h"

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

typedef void (*compress_fn)(uint32_t h[8], const uint8_t *blocks, size_t n);

static inline uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void compress_portable(uint32_t h[8], const uint8_t *p, size_t n)
{
	for (; n > 0; n--, p += 64) {
		uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3];
		uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];

		for (int i = 0; i < 16; i++)
			w[i] = load_be32(p + 4 * i);
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		for (int i = 0; i < 64; i++) {
			uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
				      ((e & f) ^ (~e & g)) + K[i] + w[i];
			uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
				      ((a & b) ^ (a & c) ^ (b & c));
			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
		h[5] += f;
		h[6] += g;
		h[7] += hh;
	}
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/*
 * The SHA extensions keep the state as two vectors, ABEF and CDGH, and do
 * two rounds per sha256rnds2. Message words for group g+1 are finished
 * (msg2) while group g runs, and started (msg1) three groups ahead.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void compress_shani(uint32_t h[8], const uint8_t *p, size_t n)
{
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
	__m128i tmp = _mm_loadu_si128((const __m128i *)&h[0]);   /* a b c d */
	__m128i st1 = _mm_loadu_si128((const __m128i *)&h[4]);   /* e f g h */
	__m128i st0;

	tmp = _mm_shuffle_epi32(tmp, 0xB1);                     /* b a d c */
	st1 = _mm_shuffle_epi32(st1, 0x1B);                     /* h g f e */
	st0 = _mm_alignr_epi8(tmp, st1, 8);                     /* ABEF */
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);                  /* CDGH */

	for (; n > 0; n--, p += 64) {
		__m128i save0 = st0, save1 = st1, msg[4];

		for (int i = 0; i < 4; i++)
			msg[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
		for (int g = 0; g < 16; g++) {
			__m128i cur = msg[g % 4];
			__m128i m = _mm_add_epi32(cur, _mm_loadu_si128((const __m128i *)&K[4 * g]));
			st1 = _mm_sha256rnds2_epu32(st1, st0, m);
			if (g >= 3 && g <= 14) {
				__m128i t = _mm_alignr_epi8(cur, msg[(g + 3) % 4], 4);
				msg[(g + 1) % 4] = _mm_add_epi32(msg[(g + 1) % 4], t);
				msg[(g + 1) % 4] = _mm_sha256msg2_epu32(msg[(g + 1) % 4], cur);
			}
			m = _mm_shuffle_epi32(m, 0x0E);
			st0 = _mm_sha256rnds2_epu32(st0, st1, m);
			if (g >= 1 && g <= 12)
				msg[(g + 3) % 4] = _mm_sha256msg1_epu32(msg[(g + 3) % 4], cur);
		}
		st0 = _mm_add_epi32(st0, save0);
		st1 = _mm_add_epi32(st1, save1);
	}

	tmp = _mm_shuffle_epi32(st0, 0x1B);                     /* FEBA */
	st1 = _mm_shuffle_epi32(st1, 0xB1);                     /* DCHG */
	st0 = _mm_blend_epi16(tmp, st1, 0xF0);                  /* DCBA */
	st1 = _mm_alignr_epi8(st1, tmp, 8);                     /* HGFE */
	_mm_storeu_si128((__m128i *)&h[0], st0);
	_mm_storeu_si128((__m128i *)&h[4], st1);
}

static compress_fn detect(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return NULL;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_SHA))
		return NULL;
	return compress_shani;
}
#else
static compress_fn detect(void)
{
	return NULL;
}
#endif

static compress_fn chosen = compress_portable, detected;
static const char *chosen_name = "portable";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	detected = detect();
	if (detected != NULL) {
		chosen = detected;
		chosen_name = "sha-ni";
	}
}

const char *kvc_sha256_impl_name(void)
{
	pthread_once(&once, choose);
	return chosen_name;
}

void kvc_sha256_force_portable(int on)
{
	pthread_once(&once, choose);
	chosen = on || detected == NULL ? compress_portable : detected;
}

void kvc_sha256_init(struct kvc_sha256 *ctx)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	pthread_once(&once, choose);
	memcpy(ctx->h, iv, sizeof(iv));
	ctx->bytes = 0;
	ctx->buffered = 0;
}

void kvc_sha256_update(struct kvc_sha256 *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;

	ctx->bytes += len;
	if (ctx->buffered > 0) {
		size_t take = 64 - ctx->buffered < len ? 64 - ctx->buffered : len;
		memcpy(ctx->buf + ctx->buffered, p, take);
		ctx->buffered += take;
		p += take;
		len -= take;
		if (ctx->buffered < 64)
			return;
		chosen(ctx->h, ctx->buf, 1);
		ctx->buffered = 0;
	}
	if (len >= 64) {
		chosen(ctx->h, p, len / 64);
		p += len & ~(size_t)63;
		len &= 63;
	}
	memcpy(ctx->buf, p, len);
	ctx->buffered = len;
}

void kvc_sha256_final(const struct kvc_sha256 *ctx, uint8_t out[32])
{
	struct kvc_sha256 c = *ctx; /* final does not consume: prefix walks */
	uint8_t pad[72] = { 0x80 };
	uint64_t bits = c.bytes * 8;
	size_t padlen = (c.buffered < 56 ? 56 : 120) - c.buffered;

	for (int i = 0; i < 8; i++)
		pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
	kvc_sha256_update(&c, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(c.h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(c.h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(c.h[i] >> 8);
		out[4 * i + 3] = (uint8_t)c.h[i];
	}
}
