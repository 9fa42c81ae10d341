/* SPDX-License-Identifier: MIT */
/*
 * Group commit of the backing directory: a publish is durable once a
 * directory fsync that began after its link(2) has returned. Publishers
 * that link at about the same time can share one: each takes a ticket
 * after its link; whoever finds no fsync under way starts one covering
 * every ticket taken so far, and the others wait for the one that covers
 * theirs (an fsync already under way when a ticket was taken does not:
 * its holder waits for it, then for the next). Nothing a returned publish
 * promises is weakened; N publishers in flight cost about two fsyncs
 * instead of N. A failed fsync fails its caller, and the waiters it would
 * have covered try again themselves.
 */
#include <errno.h>
#include <unistd.h>

#include "store_internal.h"

void store_dir_sync_init(struct store_dir_sync *ds)
{
	pthread_mutex_init(&ds->lock, NULL);
	pthread_cond_init(&ds->done, NULL);
	ds->tickets = 0;
	ds->synced = 0;
	ds->syncing = false;
}

void store_dir_sync_destroy(struct store_dir_sync *ds)
{
	pthread_cond_destroy(&ds->done);
	pthread_mutex_destroy(&ds->lock);
}

static int fsync_retrying(int fd)
{
	while (fsync(fd) < 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

int store_fsync_dir(struct kvc_store *store, struct kvc_err *err)
{
	struct store_dir_sync *ds = &store->dir_sync;
	uint64_t mine, covers;
	int e = 0;

	pthread_mutex_lock(&ds->lock);
	mine = ++ds->tickets;
	while (ds->synced < mine && e == 0) {
		if (ds->syncing) {
			pthread_cond_wait(&ds->done, &ds->lock);
			continue;
		}
		ds->syncing = true;
		covers = ds->tickets;
		pthread_mutex_unlock(&ds->lock);
		e = fsync_retrying(store->dirfd);
		pthread_mutex_lock(&ds->lock);
		ds->syncing = false;
		if (e == 0 && covers > ds->synced)
			ds->synced = covers;
		pthread_cond_broadcast(&ds->done);
	}
	pthread_mutex_unlock(&ds->lock);
	if (e != 0)
		return kvc_err_sys(err, e, "fsync of backing directory %s", store->root);
	return 0;
}
