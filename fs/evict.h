/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_EVICT_H
#define KVCFS_EVICT_H

#include <pthread.h>
#include <stdbool.h>

struct kvcfs;

/* The background rescan of the backing root (shared roots change under us). */
struct kvcfs_rescanner {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool running;
	bool stop;
};

/*
 * If the index holds more than max_size bytes, evict slabs in eviction
 * order (index.h) until it holds at most the low watermark. Slabs that are
 * open, or were this mount's last publish, are never chosen; a slab that
 * vanished meanwhile is just dropped from the index.
 */
void evict_if_needed(struct kvcfs *fs);

/* Re-read the backing root into the index, then evict if needed.
 * Returns 0 or -errno. */
int rescan_now(struct kvcfs *fs);

int rescanner_start(struct kvcfs *fs);
void rescanner_stop(struct kvcfs *fs);

#endif
