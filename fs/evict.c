/* SPDX-License-Identifier: MIT */
/* Keeping the backing root within its byte budget. */
#include <errno.h>
#include <time.h>

#include "kvcfs.h"

static pthread_mutex_t evicting = PTHREAD_MUTEX_INITIALIZER;

void evict_if_needed(struct kvcfs *fs)
{
	struct eviction_candidate *order;
	uint64_t bytes, count;
	size_t n;

	if (fs->opts.max_size == 0 || fs->opts.read_only)
		return;
	index_totals(&fs->index, &bytes, &count);
	if (bytes <= fs->opts.max_size)
		return;
	/* One evictor at a time: two would both see the same excess and
	 * evict twice as much as needed. */
	pthread_mutex_lock(&evicting);
	order = index_eviction_order(&fs->index, &n);
	for (size_t i = 0; i < n; i++) {
		struct kvc_err err;
		index_totals(&fs->index, &bytes, &count);
		if (bytes <= fs->opts.low_watermark)
			break;
		/* Opened since the order was taken: it stays. */
		if (index_is_pinned(&fs->index, &order[i].key))
			continue;
		if (kvc_store_delete(fs->store, &order[i].key, &err) < 0) {
			fuse_log(FUSE_LOG_ERR, "kvcfs: evicting: %s\n", err.detail);
			continue;
		}
		index_remove(&fs->index, &order[i].key);
		forget_slab_entries(fs, &order[i].key, FORGET_LATER);
		atomic_fetch_add(&fs->metrics.evictions, 1);
	}
	pthread_mutex_unlock(&evicting);
	g_free(order);
}

static void collect(void *ctx, const struct kvc_key *key, const struct kvc_meta *meta)
{
	index_table_put(ctx, key, meta->file_size, meta->hit_count, meta->last_used_time,
			meta->creation_time);
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
