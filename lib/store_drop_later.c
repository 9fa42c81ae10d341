/* SPDX-License-Identifier: MIT */
/*
 * Second opinions before destroying anything. A file that fails
 * verification is removed only if it still fails after the store's recheck
 * delay and is still the same file: on a shared filesystem a valid slab
 * another host just published can look truncated for a moment.
 *
 * The delayed removals run on one worker thread per store, started on the
 * first one, from a bounded queue: a directory full of invalid files costs
 * one thread and a fixed amount of memory, and a removal that does not fit
 * is skipped (the next load or scan of the file asks again). The worker is
 * stopped and joined by kvc_store_close, which drops what is still queued:
 * nothing runs against a closed store.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_internal.h"

struct drop_job {
	char name[256];
	bool has_key;
	struct kvc_key key;
	struct stat st;
	struct timespec due; /* CLOCK_MONOTONIC */
};

/* 1: valid, 0: invalid, -1: could not tell (gone, I/O error). */
static int judge(struct kvc_store *store, const char *name, const struct kvc_key *key,
		 struct stat *st)
{
	struct kvc_meta meta;
	struct kvc_err err;
	int fd, rc;

	if (store_open_ro(store, name, &fd, st, &err) < 0)
		return -1;
	rc = kvc_verify_fd(fd, KVC_PARSE_LIGHT, key, &meta, &err);
	close(fd);
	if (rc == 0) {
		kvc_meta_clear(&meta);
		return 1;
	}
	return kvc_tag_is_format_error(err.tag) && err.tag != KVC_E_UNSUPPORTED_VERSION ? 0 : -1;
}

static void drop_if_still_invalid(struct kvc_store *store, const struct drop_job *job)
{
	struct stat now;

	if (judge(store, job->name, job->has_key ? &job->key : NULL, &now) == 0 &&
	    now.st_dev == job->st.st_dev && now.st_ino == job->st.st_ino)
		store_unlink_if_same(store, job->name, &job->st);
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *dropper_main(void *arg)
{
	struct kvc_store *store = arg;
	struct store_dropper *d = &store->dropper;

	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct timespec now;
		struct drop_job job;

		if (d->count == 0) {
			pthread_cond_wait(&d->wake, &d->lock);
			continue;
		}
		/* Every job waits the same delay, so the oldest is due first. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (before(&now, &d->ring[d->head].due)) {
			pthread_cond_timedwait(&d->wake, &d->lock, &d->ring[d->head].due);
			continue;
		}
		job = d->ring[d->head];
		d->head = (d->head + 1) % STORE_DROP_QUEUE_MAX;
		d->count--;
		pthread_mutex_unlock(&d->lock);
		drop_if_still_invalid(store, &job);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

void store_dropper_init(struct kvc_store *store)
{
	struct store_dropper *d = &store->dropper;
	pthread_condattr_t attr;

	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &attr);
	pthread_condattr_destroy(&attr);
}

void store_dropper_stop(struct kvc_store *store)
{
	struct store_dropper *d = &store->dropper;
	bool running;

	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	d->not_done += d->count;
	d->count = 0;
	running = d->running;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	if (running)
		pthread_join(d->thread, NULL);
	g_free(d->ring);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
}

/* Under d->lock: the worker and its queue, made on first use. */
static bool dropper_ready(struct kvc_store *store)
{
	struct store_dropper *d = &store->dropper;

	if (d->running)
		return true;
	if (d->ring == NULL)
		d->ring = g_new0(struct drop_job, STORE_DROP_QUEUE_MAX);
	d->running = pthread_create(&d->thread, NULL, dropper_main, store) == 0;
	return d->running;
}

void store_drop_later(struct kvc_store *store, const char *name,
		      const struct kvc_key *key, const struct stat *st)
{
	struct store_dropper *d = &store->dropper;
	struct drop_job *job;

	if (store->read_only)
		return;
	if (store->recheck_delay_ms <= 0) {
		store_unlink_if_same(store, name, st);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (d->stopping || d->count == STORE_DROP_QUEUE_MAX || !dropper_ready(store)) {
		d->not_done++;
		pthread_mutex_unlock(&d->lock);
		return;
	}
	job = &d->ring[(d->head + d->count) % STORE_DROP_QUEUE_MAX];
	memset(job, 0, sizeof(*job));
	g_strlcpy(job->name, name, sizeof(job->name));
	job->has_key = key != NULL;
	if (key != NULL)
		job->key = *key;
	job->st = *st;
	clock_gettime(CLOCK_MONOTONIC, &job->due);
	job->due.tv_sec += store->recheck_delay_ms / 1000;
	job->due.tv_nsec += (long)(store->recheck_delay_ms % 1000) * 1000000L;
	if (job->due.tv_nsec >= 1000000000L) {
		job->due.tv_sec++;
		job->due.tv_nsec -= 1000000000L;
	}
	d->count++;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
}

uint64_t kvc_store_drops_skipped(struct kvc_store *store)
{
	struct store_dropper *d = &store->dropper;
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->not_done;
	pthread_mutex_unlock(&d->lock);
	return n;
}
