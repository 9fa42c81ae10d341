/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_RESCAN_H
#define KVCFS_RESCAN_H

#include <pthread.h>
#include <stdbool.h>

struct kvcfs;

/* The background rescan of the backing root (shared roots change under us). */
struct kvcfs_rescanner {
	pthread_t thread;     /* valid while running */
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* signalled by rescanner_stop; guarded by lock */
	bool running;         /* set and cleared by the main thread only */
	bool stop;            /* guarded by lock */
};

/* Re-read the backing root into the index, then evict if needed.
 * Returns 0 or -errno. */
int rescan_now(struct kvcfs *fs);

/* Start the periodic rescan (none when rescan_interval is 0); stop it and
 * wait for it. */
int rescanner_start(struct kvcfs *fs);
void rescanner_stop(struct kvcfs *fs);

#endif
