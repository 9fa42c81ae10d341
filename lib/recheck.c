/* SPDX-License-Identifier: MIT */
/*
 * Second opinions before destroying anything. A file that fails
 * verification is removed only if it still fails after the store's recheck
 * delay and is still the same file: on a shared filesystem a valid slab
 * another host just published can look truncated for a moment.
 */
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_internal.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

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

bool store_valid_after_delay(struct kvc_store *store, const char *name,
			     const struct kvc_key *key)
{
	struct stat st;

	if (store->recheck_delay_ms <= 0)
		return false;
	sleep_ms(store->recheck_delay_ms);
	return judge(store, name, key, &st) == 1;
}

struct drop_job {
	struct kvc_store *store;
	char name[256];
	bool has_key;
	struct kvc_key key;
	struct stat st;
};

static void *drop_later(void *arg)
{
	struct drop_job *job = arg;
	struct stat now;

	sleep_ms(job->store->recheck_delay_ms);
	if (judge(job->store, job->name, job->has_key ? &job->key : NULL, &now) == 0 &&
	    now.st_dev == job->st.st_dev && now.st_ino == job->st.st_ino)
		store_unlink_if_same(job->store, job->name, &job->st);
	g_free(job);
	return NULL;
}

void store_drop_if_still_invalid(struct kvc_store *store, const char *name,
				 const struct kvc_key *key, const struct stat *st)
{
	struct drop_job *job;
	pthread_attr_t attr;
	pthread_t thread;

	if (store->read_only)
		return;
	if (store->recheck_delay_ms <= 0) {
		store_unlink_if_same(store, name, st);
		return;
	}
	/* The store must outlive its helper threads: kvcfs keeps its store
	 * for the life of the process, and a library user who closes it early
	 * loses only the removal. */
	job = g_new0(struct drop_job, 1);
	job->store = store;
	g_strlcpy(job->name, name, sizeof(job->name));
	job->has_key = key != NULL;
	if (key != NULL)
		job->key = *key;
	job->st = *st;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, drop_later, job) != 0)
		g_free(job);
	pthread_attr_destroy(&attr);
}
