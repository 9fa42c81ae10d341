/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_EVICT_H
#define KVCFS_EVICT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>



struct kvcfs;
struct kvcfs_index;
struct kvc_store;
struct kdir;

/* One directory under a budget: one of the mount's (dir set: its slabs
 * are the mount's names, and the kernel's entries of an evicted one are
 * forgotten), or the local tier (local_tier.c). */
struct evict_part {
	struct kvc_store *store;
	struct kvcfs_index *index;
	struct kdir *dir;         /* NULL: the local tier */
};

/* Directories kept within one budget together: the mount's whole tree,
 * or the local tier. Set before use, never changed. */
struct evict_scope {
	const struct evict_part *parts;
	size_t n_parts;
	uint64_t max_size;        /* 0: no budget */
	uint64_t low_watermark;
	atomic_uint_fast64_t *evictions; /* counted here */
};

/*
 * If the index holds more than max_size bytes, evict slabs in eviction
 * order (index.h) until it holds at most the low watermark. Slabs that are
 * open, or were this mount's last publish, are never chosen; a slab that
 * vanished meanwhile is just dropped from the index. Before any eviction,
 * a slab larger than max_size goes first and the slabs that will stay are
 * verified (evict.c says why).
 */
void evict_if_needed(struct kvcfs *fs);
/* Verify the backing root's slab of key once (the index remembers it); a
 * corrupt one is dropped after the store's recheck delay. */
void evict_verify_key(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key);
/* The same for any scope. */
void evict_scope_if_needed(struct kvcfs *fs, const struct evict_scope *s);

#endif
