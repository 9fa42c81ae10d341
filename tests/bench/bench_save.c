/* SPDX-License-Identifier: MIT */
/*
 * kvc_store save (write_tmp + publish) of a large payload against the raw
 * work it cannot avoid: write + fdatasync + link + unlink + directory fsync
 * of the same bytes, in the same directory (goal: ratio >= 0.95).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <kvc/kvc.h>

#include "bench.h"

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		p += n;
		len -= (size_t)n;
	}
}

static double raw_save(int dirfd, const uint8_t *prefix, size_t plen,
		       const uint8_t *payload, size_t len)
{
	double t0 = bench_now();
	int fd = openat(dirfd, "raw.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		die("open raw");
	write_all(fd, prefix, plen);
	write_all(fd, payload, len);
	if (fdatasync(fd) < 0 || linkat(dirfd, "raw.tmp", dirfd, "raw.kvc", 0) < 0 ||
	    unlinkat(dirfd, "raw.tmp", 0) < 0 || fsync(dirfd) < 0)
		die("raw publish");
	close(fd);
	double t = bench_now() - t0;
	unlinkat(dirfd, "raw.kvc", 0);
	return t;
}

static double kvc_save(struct kvc_store *store, const struct kvc_key *key,
		       const uint8_t *prefix, size_t plen, const uint8_t *payload, size_t len)
{
	struct iovec iov[2] = { { (void *)prefix, plen }, { (void *)payload, len } };
	struct kvc_tmp tmp = KVC_TMP_INIT;
	struct kvc_err err;
	double t0 = bench_now();

	if (kvc_store_write_tmp_bufs(store, key, iov, 2, &tmp, &err) < 0 ||
	    kvc_store_publish(store, &tmp, key, NULL, NULL, &err) < 0) {
		fprintf(stderr, "save: %s\n", err.detail);
		exit(1);
	}
	double t = bench_now() - t0;
	kvc_store_delete(store, key, &err);
	return t;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	size_t mib = (size_t)bench_env("KVC_BENCH_SAVE_MIB", 1024);
	int rounds = (int)bench_env("KVC_BENCH_ROUNDS", 5);
	size_t len = mib << 20;
	uint8_t *payload = malloc(len), *prefix;
	uint32_t tokens[512];
	struct kvc_meta m = { 0 };
	struct kvc_store_config cfg = { .root = dir };
	struct kvc_store *store;
	struct kvc_key key;
	struct kvc_err err;
	size_t plen;
	double t_raw[64], t_kvc[64];
	int dirfd;

	if (payload == NULL || rounds > 64)
		return 1;
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 131 + (i >> 12));
	for (int i = 0; i < 512; i++)
		tokens[i] = (uint32_t)i * 7;
	memset(m.fingerprint, 1, 32);
	memset(m.ctx_params_hash, 2, 32);
	m.quant_byte = 7;
	m.tokens = tokens;
	m.n_tokens = 512;
	if (kvc_build_prefix(&m, len, kvc_crc32c(0, payload, len), &prefix, &plen, &err) < 0)
		return 1;
	if (kvc_meta_key(&m, &key) < 0) {
		perror("key");
		return 1;
	}
	if (kvc_store_open(&cfg, &store, &err) < 0) {
		fprintf(stderr, "%s\n", err.detail);
		return 1;
	}
	dirfd = kvc_store_dirfd(store);
	for (int r = 0; r < rounds; r++) {
		/* Alternate the order so neither always runs on a warmer disk. */
		if (r % 2 == 0) {
			t_raw[r] = raw_save(dirfd, prefix, plen, payload, len);
			t_kvc[r] = kvc_save(store, &key, prefix, plen, payload, len);
		} else {
			t_kvc[r] = kvc_save(store, &key, prefix, plen, payload, len);
			t_raw[r] = raw_save(dirfd, prefix, plen, payload, len);
		}
	}
	double raw = bench_median(t_raw, rounds), kvc = bench_median(t_kvc, rounds);
	printf("save %zu MiB: kvc %.3f s (%.0f MB/s), raw write+fdatasync+link+dir fsync %.3f s (%.0f MB/s); %d rounds\n",
	       mib, kvc, (double)len / kvc / 1e6, raw, (double)len / raw / 1e6, rounds);
	printf("ratio save throughput kvc/raw: %.3f (goal >= 0.95)\n", raw / kvc);
	kvc_store_close(store);
	free(prefix);
	free(payload);
	return 0;
}
