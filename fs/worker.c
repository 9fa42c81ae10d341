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

/* One directory's slabs, read again into its index. */
static int rescan_dir(struct kdir *d)
{
	GHashTable *fresh = index_new_table();
	struct kvc_scan_stats st;
	struct kvc_err err;

	if (kvc_store_scan(d->store, collect, fresh, &st, &err) < 0) {
		g_hash_table_destroy(fresh);
		return -kvc_err_to_errno(&err);
	}
	index_replace(&d->index, fresh);
	return 0;
}

int rescan_now(struct kvcfs *fs)
{
	GHashTable *reached = dirs_discover(fs);
	GHashTableIter it;
	gpointer d;
	int rc = 0;

	g_hash_table_iter_init(&it, reached);
	while (g_hash_table_iter_next(&it, &d, NULL)) {
		int one = rescan_dir(d);
		if (d == fs->root_dir && one < 0)
			rc = one;
	}
	/* Directories removed (here behind the mount, or on another host)
	 * are forgotten. */
	dirs_forget_removed(fs);
	dirs_reached_free(fs, reached);
	atomic_fetch_add(&fs->metrics.rescans, 1);
	local_tier_reconcile(fs); /* copies of keys gone from the root go */
	return rc;
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

	dirs_totals(fs, &bytes, &count);
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

/* When the worker's periodic work is due (CLOCK_MONOTONIC). */
struct timers {
	struct timespec rescan;  /* unused with -o rescan=0 */
	struct timespec alive;   /* the live temps' keep-alive (staging_keep_alive) */
};

static void due_in(struct timespec *due, unsigned seconds)
{
	clock_gettime(CLOCK_MONOTONIC, due);
	due->tv_sec += seconds;
}

/* A quarter of the sweep's grace: another host never sees a live temp as
 * idle for longer than that. */
static unsigned alive_interval(const struct kvcfs *fs)
{
	return fs->opts.sweep_grace / 4 > 0 ? fs->opts.sweep_grace / 4 : 1;
}

static bool passed(const struct timespec *due)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > due->tv_sec || (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec);
}

/* The next timer to wake for: rescans unless -o rescan=0, the keep-alive
 * unless read-only (no temps then); at least one of them. */
static const struct timespec *earliest(const struct kvcfs *fs, const struct timers *t)
{
	bool rescans = fs->opts.rescan_interval > 0, alive = !fs->opts.read_only;

	if (!alive)
		return &t->rescan;
	if (!rescans)
		return &t->alive;
	if (t->rescan.tv_sec != t->alive.tv_sec)
		return t->rescan.tv_sec < t->alive.tv_sec ? &t->rescan : &t->alive;
	return t->rescan.tv_nsec < t->alive.tv_nsec ? &t->rescan : &t->alive;
}

/* What one pass of the worker does, taken under its lock. */
struct pass {
	bool rescan;          /* asked for, or the interval is up */
	bool evict;
	bool keep_alive;      /* the live temps' keep-alive is due */
	GSList *waiters;      /* opens of .kvcfs/rescan to answer after it */
	GQueue *verify;       /* keys of adopted slabs to verify */
};

/* Waits for work (or a timer); false when stopping. With m->lock held;
 * returns with it held and the pass taken. */
static bool next_pass(struct kvcfs *fs, struct kvcfs_maintenance *m, struct timers *t,
		      struct pass *p)
{
	bool timed_out = false;

	while (!m->stop && !m->evict_wanted && m->rescan_waiters == NULL &&
	       g_queue_is_empty(m->verify_wanted) && !timed_out) {
		if (fs->opts.read_only && fs->opts.rescan_interval == 0)
			pthread_cond_wait(&m->wake, &m->lock);
		else
			timed_out = pthread_cond_timedwait(&m->wake, &m->lock,
							   earliest(fs, t)) == ETIMEDOUT;
	}
	if (m->stop)
		return false;
	p->waiters = m->rescan_waiters;
	p->rescan = p->waiters != NULL ||
		    (timed_out && fs->opts.rescan_interval > 0 && passed(&t->rescan));
	p->keep_alive = timed_out && !fs->opts.read_only && passed(&t->alive);
	p->evict = m->evict_wanted || p->rescan;
	p->verify = m->verify_wanted;
	m->verify_wanted = g_queue_new();
	m->rescan_waiters = NULL;
	m->evict_wanted = false;
	m->busy = true;
	return true;
}

static void run_pass(struct kvcfs *fs, struct pass *p, struct timers *t)
{
	int rc = 0;
	struct verify_request *r;

	while ((r = g_queue_pop_head(p->verify)) != NULL) {
		evict_verify_key(fs, r->dir, &r->key);
		kdir_unref(fs, r->dir);
		g_free(r);
	}
	g_queue_free(p->verify);
	if (p->rescan) {
		rc = rescan_now(fs);
		due_in(&t->rescan, fs->opts.rescan_interval);
	}
	if (p->keep_alive) {
		staging_keep_alive(fs);
		due_in(&t->alive, alive_interval(fs));
	}
	if (p->evict)
		evict_all(fs);
	answer_waiters(fs, p->waiters, rc);
}

static void *maintenance_main(void *arg)
{
	struct kvcfs *fs = arg;
	struct kvcfs_maintenance *m = &fs->maintenance;
	struct timers t;
	struct pass p;

	due_in(&t.rescan, fs->opts.rescan_interval);
	due_in(&t.alive, alive_interval(fs));
	pthread_mutex_lock(&m->lock);
	while (next_pass(fs, m, &t, &p)) {
		pthread_mutex_unlock(&m->lock);
		run_pass(fs, &p, &t);
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
	for (struct verify_request *r; (r = g_queue_pop_head(m->verify_wanted)) != NULL;) {
		kdir_unref(fs, r->dir);
		g_free(r);
	}
	g_queue_free(m->verify_wanted);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	m->running = false;
}

