/* SPDX-License-Identifier: MIT */
/*
 * kvc_store_scan (index every slab from its prefix) of many small slabs
 * against the least a scanner must do: list the directory and read each
 * file's first 4 KiB (goal: time ratio <= 1.5).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <kvc/kvc.h>

#include "bench.h"

static void make_slabs(const char *dir, int count)
{
	uint8_t payload[1024];
	uint32_t tokens[64];
	struct kvc_meta m = { 0 };
	struct kvc_err err;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	memset(m.fingerprint, 3, 32);
	memset(m.ctx_params_hash, 4, 32);
	m.tokens = tokens;
	m.n_tokens = 64;
	for (int n = 0; n < count; n++) {
		uint8_t *prefix;
		size_t plen;
		struct kvc_key key;
		char name[KVC_SLAB_NAME_LEN + 1];
		for (int i = 0; i < 64; i++)
			tokens[i] = (uint32_t)(n * 64 + i);
		kvc_build_prefix(&m, sizeof(payload), kvc_crc32c(0, payload, sizeof(payload)),
				 &prefix, &plen, &err);
		if (kvc_meta_key(&m, &key) < 0) {
			perror("key");
			exit(1);
		}
		kvc_key_slab_name(&key, name);
		int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, prefix, plen) != (ssize_t)plen ||
		    write(fd, payload, sizeof(payload)) != (ssize_t)sizeof(payload)) {
			perror("make slab");
			exit(1);
		}
		close(fd);
		free(prefix);
	}
	close(dirfd);
}

static double raw_scan(const char *dir, uint64_t *files)
{
	double t0 = bench_now();
	DIR *d = opendir(dir);
	int dfd = dirfd(d);
	struct dirent *de;
	char buf[4096];

	*files = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		int fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && pread(fd, buf, sizeof(buf), 0) > 0)
			(*files)++;
		close(fd);
	}
	closedir(d);
	return bench_now() - t0;
}

static double kvc_scan(struct kvc_store *store, uint64_t *slabs)
{
	struct kvc_scan_stats st;
	struct kvc_err err;
	double t0 = bench_now();

	if (kvc_store_scan(store, NULL, NULL, &st, &err) < 0)
		exit(1);
	*slabs = st.slabs;
	return bench_now() - t0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	int count = (int)bench_env("KVC_BENCH_SCAN_SLABS", 100000);
	int rounds = (int)bench_env("KVC_BENCH_ROUNDS", 5);
	struct kvc_store_config cfg = { .root = dir };
	struct kvc_store *store;
	struct kvc_err err;
	double t_raw[64], t_kvc[64], cold_raw = 0, cold_kvc = 0;
	uint64_t files = 0, slabs = 0;

	if (rounds > 64)
		return 1;
	make_slabs(dir, count);
	if (kvc_store_open(&cfg, &store, &err) < 0)
		return 1;
	if (bench_drop_caches()) {
		cold_raw = raw_scan(dir, &files);
		bench_drop_caches();
		cold_kvc = kvc_scan(store, &slabs);
	}
	for (int r = 0; r < rounds; r++) {
		t_raw[r] = raw_scan(dir, &files);
		t_kvc[r] = kvc_scan(store, &slabs);
	}
	if (files != (uint64_t)count || slabs != (uint64_t)count) {
		fprintf(stderr, "scan saw %llu files, %llu slabs of %d\n",
			(unsigned long long)files, (unsigned long long)slabs, count);
		return 1;
	}
	double raw = bench_median(t_raw, rounds), kvc = bench_median(t_kvc, rounds);
	printf("scan %d slabs (warm cache): kvc %.3f s, raw readdir+open+4KiB read %.3f s; %d rounds\n",
	       count, kvc, raw, rounds);
	printf("ratio scan time kvc/raw (warm): %.2f (goal <= 1.5)\n", kvc / raw);
	if (cold_raw > 0)
		printf("ratio scan time kvc/raw (cold, page cache dropped): %.2f (%.3f s vs %.3f s)\n",
		       cold_kvc / cold_raw, cold_kvc, cold_raw);
	kvc_store_close(store);
	return 0;
}
