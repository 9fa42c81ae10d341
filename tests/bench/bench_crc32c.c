/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C throughput against this core's memory read bandwidth, on a buffer
 * much larger than the caches: the CRC should be limited by memory, not by
 * arithmetic (goal: ratio >= 0.8).
 */
#include <stdint.h>
#include <string.h>

#include <kvc/crc32c.h>

#include "bench.h"

/* Memory read bandwidth: the cheapest work that touches every byte. Four
 * independent sums keep the adds off the critical path. */
static uint64_t __attribute__((noinline)) read_all(const uint64_t *p, size_t n)
{
	uint64_t a = 0, b = 0, c = 0, d = 0;

	for (size_t i = 0; i + 4 <= n; i += 4) {
		a += p[i];
		b += p[i + 1];
		c += p[i + 2];
		d += p[i + 3];
	}
	return a ^ b ^ c ^ d;
}

int main(void)
{
	size_t mib = (size_t)bench_env("KVC_BENCH_CRC_MIB", 512);
	int rounds = (int)bench_env("KVC_BENCH_ROUNDS", 7);
	size_t len = mib << 20;
	uint64_t *buf = malloc(len);
	double t_read[64], t_crc[64], t_port[64];
	volatile uint64_t sink = 0;

	if (buf == NULL || rounds > 64)
		return 1;
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = i * 0x9E3779B97F4A7C15ull;
	for (int r = 0; r < rounds; r++) {
		double t0 = bench_now();
		sink ^= read_all(buf, len / 8);
		double t1 = bench_now();
		sink ^= kvc_crc32c(0, buf, len);
		double t2 = bench_now();
		sink ^= kvc_crc32c_portable(0, buf, len / 8); /* slow: an eighth */
		double t3 = bench_now();
		t_read[r] = t1 - t0;
		t_crc[r] = t2 - t1;
		t_port[r] = (t3 - t2) * 8;
	}
	double read = bench_median(t_read, rounds), crc = bench_median(t_crc, rounds);
	double port = bench_median(t_port, rounds);
	double gb = (double)len / 1e9;
	printf("crc32c (%s): %.2f GB/s; memory read: %.2f GB/s; portable: %.2f GB/s; %zu MiB x %d rounds\n",
	       kvc_crc32c_impl_name(), gb / crc, gb / read, gb / port, mib, rounds);
	printf("ratio crc32c/memory-read: %.2f (goal >= 0.80)%s\n", read / crc,
	       kvc_crc32c_isal() == NULL ? " [built without ISA-L]" : "");
	free(buf);
	return (int)(sink & 0); /* keep the sums */
}
