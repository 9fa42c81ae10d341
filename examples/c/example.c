/* SPDX-License-Identifier: MIT */
/*
 * A C program using libkvc (found with pkg-config) against a kvcfs mount:
 * frame a state blob as a KVC v1 slab, publish it by write + rename,
 * find the longest cached prefix of a token list, restore it.
 *
 *   cc example.c $(pkg-config --cflags --libs libkvc) -o example
 *   ./example MOUNT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kvc/kvc.h>

static int write_file(const char *path, const void *a, size_t alen, const void *b, size_t blen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -1;
	if (write(fd, a, alen) != (ssize_t)alen || write(fd, b, blen) != (ssize_t)blen) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int main(int argc, char **argv)
{
	enum { N_TOKENS = 600, STRIDE = 128, SAVED = 512, STATE = 128 * 1024 };
	uint32_t tokens[N_TOKENS];
	uint8_t *state = malloc(STATE), *prefix, *back;
	struct kvc_meta m = { 0 };
	struct kvc_key_input in = { 0 };
	struct kvc_key key, keys[N_TOKENS / STRIDE + 2];
	size_t lens[N_TOKENS / STRIDE + 2], prefix_len;
	ssize_t n;
	char name[KVC_SLAB_NAME_LEN + 1], staging[4096], final[4096], payload[4096];
	struct kvc_err err;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MOUNT\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < N_TOKENS; i++)
		tokens[i] = 5000u + (uint32_t)i;
	for (int i = 0; i < STATE; i++)
		state[i] = (uint8_t)(i * 13);

	/* The slab: metadata, then the payload; the key is derived from it. */
	memset(m.fingerprint, 0x5a, 32);
	memset(m.ctx_params_hash, 0xa5, 32);
	m.quant_byte = (uint8_t)kvc_quant_byte("q8_0");
	m.quant_bits = 8;
	m.save_reason = KVC_SAVE_COLD;
	m.creation_time = m.last_used_time = 1767225600;
	m.tokens = tokens;
	m.n_tokens = SAVED;
	if (kvc_build_prefix(&m, STATE, kvc_crc32c(0, state, STATE), &prefix, &prefix_len, &err) < 0) {
		fprintf(stderr, "build: %s\n", err.detail);
		return 1;
	}
	if (kvc_meta_key(&m, &key) < 0) {
		perror("key");
		return 1;
	}
	kvc_key_slab_name(&key, name);

	/* Publish through the mount: write a staging file, rename to the key. */
	snprintf(staging, sizeof(staging), "%s/c-example.part", argv[1]);
	snprintf(final, sizeof(final), "%s/%s", argv[1], name);
	if (write_file(staging, prefix, prefix_len, state, STATE) < 0 || rename(staging, final) < 0) {
		perror("publish");
		return 1;
	}
	printf("published %s\n", name);

	/* Longest cached prefix: keys of every stride-aligned prefix in one
	 * pass, probed longest first. */
	memcpy(in.fingerprint, m.fingerprint, 32);
	memcpy(in.ctx_params_hash, m.ctx_params_hash, 32);
	in.quant_byte = m.quant_byte;
	in.tokens = tokens;
	in.n_tokens = N_TOKENS;
	n = kvc_prefix_keys(&in, STRIDE, 1, lens, keys);
	if (n < 0) {
		perror("prefix keys");
		return 1;
	}
	for (size_t i = (size_t)n; i-- > 0;) {
		struct stat st;
		char probe[4096], probe_name[KVC_SLAB_NAME_LEN + 1];
		kvc_key_slab_name(&keys[i], probe_name);
		snprintf(probe, sizeof(probe), "%s/%s", argv[1], probe_name);
		if (stat(probe, &st) == 0) {
			printf("longest cached prefix: %zu of %d tokens\n", lens[i], N_TOKENS);
			if (lens[i] != SAVED || !kvc_key_equal(&keys[i], &key))
				return 1;
			break;
		}
		if (i == 0)
			return 1;
	}

	/* Restore the payload, validated by kvcfs before the open succeeded. */
	name[KVC_KEY_HEX_LEN] = '\0';
	snprintf(payload, sizeof(payload), "%s/payload/%s", argv[1], name);
	back = malloc(STATE + 1);
	int fd = open(payload, O_RDONLY);
	if (fd < 0 || read(fd, back, STATE + 1) != STATE || memcmp(back, state, STATE) != 0) {
		fprintf(stderr, "restore failed: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	printf("restored %d bytes, identical\n", STATE);
	unlink(final);
	free(back);
	free(prefix);
	free(state);
	return 0;
}
