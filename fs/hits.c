/* SPDX-License-Identifier: MIT */
/*
 * Counting hits. Every successful open of a slab adds one to the hit count
 * in its header (offset 12), and eviction orders slabs by it. The count is
 * a read-modify-write of the file, so two opens of one key at once would
 * each read n and write n + 1: one lock per key (striped by the key's hash)
 * makes the opens of this mount count exactly. Mounts on other hosts that
 * share the root are not serialised with ours: their counts can still
 * overlap (documented in docs/guide.md).
 */
#include <errno.h>
#include <unistd.h>

#include "kvcfs.h"

static pthread_mutex_t *hit_lock(struct kvcfs *fs, const struct kvc_key *key)
{
	return &fs->hit_locks[index_key_hash(key) % G_N_ELEMENTS(fs->hit_locks)];
}

void hits_init(struct kvcfs *fs)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fs->hit_locks); i++)
		pthread_mutex_init(&fs->hit_locks[i], NULL);
}

void hits_destroy(struct kvcfs *fs)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fs->hit_locks); i++)
		pthread_mutex_destroy(&fs->hit_locks[i]);
}

int hits_count_one(struct kvcfs *fs, const struct kvc_key *key, int fd, uint64_t now,
		   uint32_t *count)
{
	pthread_mutex_t *lock = hit_lock(fs, key);
	uint8_t raw[4];
	uint32_t hits;
	struct kvc_err err;
	int rc;

	pthread_mutex_lock(lock);
	if (pread(fd, raw, sizeof(raw), KVC_OFF_HIT_COUNT) != (ssize_t)sizeof(raw)) {
		pthread_mutex_unlock(lock);
		return -EIO;
	}
	hits = (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 |
	       (uint32_t)raw[3] << 24;
	if (hits < UINT32_MAX)
		hits++;
	rc = kvc_store_touch(fs->store, key, hits, now, &err);
	pthread_mutex_unlock(lock);
	if (rc < 0)
		return -kvc_err_to_errno(&err);
	*count = hits;
	return 0;
}
