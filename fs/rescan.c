/* SPDX-License-Identifier: MIT */
/* Re-reading the backing root into the index: on request (.kvcfs/rescan)
 * and every rescan_interval seconds, since other mounts sharing the root
 * add and remove slabs under us. */
#include <errno.h>
#include <time.h>

#include "kvcfs.h"

static void collect(void *ctx, const struct kvc_key *key, const struct kvc_meta *meta)
{
	uint64_t created = meta->creation_time, last_used = meta->last_used_time;

	index_clamp_future(&created, &last_used);
	index_table_put(ctx, key, meta->file_size, meta->hit_count, last_used, created);
}

int rescan_now(struct kvcfs *fs)
{
	GHashTable *fresh = index_new_table();
	struct kvc_scan_stats st;
	struct kvc_err err;

	if (kvc_store_scan(fs->store, collect, fresh, &st, &err) < 0) {
		g_hash_table_destroy(fresh);
		return -kvc_err_to_errno(&err);
	}
	index_replace(&fs->index, fresh);
	atomic_fetch_add(&fs->metrics.rescans, 1);
	local_tier_reconcile(fs); /* copies of keys gone from the root go */
	evict_if_needed(fs);
	return 0;
}

static void *rescanner_main(void *arg)
{
	struct kvcfs *fs = arg;
	struct kvcfs_rescanner *r = &fs->rescanner;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += fs->opts.rescan_interval;
		if (pthread_cond_timedwait(&r->wake, &r->lock, &until) == ETIMEDOUT && !r->stop) {
			pthread_mutex_unlock(&r->lock);
			rescan_now(fs);
			pthread_mutex_lock(&r->lock);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int rescanner_start(struct kvcfs *fs)
{
	struct kvcfs_rescanner *r = &fs->rescanner;

	if (fs->opts.rescan_interval == 0)
		return 0;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->stop = false;
	if (pthread_create(&r->thread, NULL, rescanner_main, fs) != 0)
		return -1;
	r->running = true;
	return 0;
}

void rescanner_stop(struct kvcfs *fs)
{
	struct kvcfs_rescanner *r = &fs->rescanner;

	if (!r->running)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	r->running = false;
}
