/* SPDX-License-Identifier: MIT */
/* The background worker itself (maintenance.h): its thread, a rescan, an
 * eviction pass, and the answers to the opens of .kvcfs/rescan. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "kvcfs.h"
#include "maintenance_internal.h"

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
	local_tier_reconcile(fs); /* copies of keys gone from the root go */
	return 0;
}

static void evict_all(struct kvcfs *fs)
{
	evict_if_needed(fs);
	local_tier_evict(fs);
}

/* The opens that asked for this rescan, answered with what it found. */
static void answer_waiters(struct kvcfs *fs, GSList *waiters, int rc)
{
	uint64_t bytes, count;

	index_totals(&fs->index, &bytes, &count);
	for (GSList *l = waiters; l != NULL; l = l->next) {
		struct rescan_waiter *w = l->data;

		if (rc < 0) {
			handle_release(fs, w->h, NULL);
			fuse_reply_err(w->req, -rc);
		} else {
			w->h->text = g_strdup_printf("slabs %" PRIu64 "\nbytes %" PRIu64 "\n",
						     count, bytes);
			w->h->text_len = strlen(w->h->text);
			handle_reply_open(w->req, fs, w->h, &w->fi);
		}
		g_free(w);
	}
	g_slist_free(waiters);
}

static void next_interval(struct kvcfs *fs, struct timespec *due)
{
	clock_gettime(CLOCK_MONOTONIC, due);
	due->tv_sec += fs->opts.rescan_interval;
}

/* What one pass of the worker does, taken under its lock. */
struct pass {
	bool rescan;          /* asked for, or the interval is up */
	bool evict;
	GSList *waiters;      /* opens of .kvcfs/rescan to answer after it */
	GQueue *verify;       /* keys of adopted slabs to verify */
};

/* Waits for work (or the rescan interval); false when stopping. With
 * m->lock held; returns with it held and the pass taken. */
static bool next_pass(struct kvcfs *fs, struct kvcfs_maintenance *m, struct timespec *due,
		      struct pass *p)
{
	bool timed_out = false;

	while (!m->stop && !m->evict_wanted && m->rescan_waiters == NULL &&
	       g_queue_is_empty(m->verify_wanted) && !timed_out) {
		if (fs->opts.rescan_interval == 0)
			pthread_cond_wait(&m->wake, &m->lock);
		else
			timed_out = pthread_cond_timedwait(&m->wake, &m->lock, due) == ETIMEDOUT;
	}
	if (m->stop)
		return false;
	p->waiters = m->rescan_waiters;
	p->rescan = p->waiters != NULL || timed_out;
	p->evict = m->evict_wanted || p->rescan;
	p->verify = m->verify_wanted;
	m->verify_wanted = g_queue_new();
	m->rescan_waiters = NULL;
	m->evict_wanted = false;
	m->busy = true;
	return true;
}

static void run_pass(struct kvcfs *fs, struct pass *p, struct timespec *due)
{
	int rc = 0;
	gpointer key;

	while ((key = g_queue_pop_head(p->verify)) != NULL) {
		evict_verify_key(fs, key);
		g_free(key);
	}
	g_queue_free(p->verify);
	if (p->rescan) {
		rc = rescan_now(fs);
		next_interval(fs, due);
	}
	if (p->evict)
		evict_all(fs);
	answer_waiters(fs, p->waiters, rc);
}

static void *maintenance_main(void *arg)
{
	struct kvcfs *fs = arg;
	struct kvcfs_maintenance *m = &fs->maintenance;
	struct timespec due;
	struct pass p;

	next_interval(fs, &due);
	pthread_mutex_lock(&m->lock);
	while (next_pass(fs, m, &due, &p)) {
		pthread_mutex_unlock(&m->lock);
		run_pass(fs, &p, &due);
		pthread_mutex_lock(&m->lock);
		m->busy = false;
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int maintenance_start(struct kvcfs *fs)
{
	struct kvcfs_maintenance *m = &fs->maintenance;
	pthread_condattr_t monotonic;

	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
	m->verify_wanted = g_queue_new();
	m->stop = false;
	if (pthread_create(&m->thread, NULL, maintenance_main, fs) != 0)
		return -1;
	m->running = true;
	return 0;
}

void maintenance_stop(struct kvcfs *fs)
{
	struct kvcfs_maintenance *m = &fs->maintenance;
	GSList *waiters;

	if (!m->running)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	waiters = m->rescan_waiters;
	m->rescan_waiters = NULL;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	answer_waiters(fs, waiters, -ESHUTDOWN);
	g_queue_free_full(m->verify_wanted, g_free);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	m->running = false;
}

