/* SPDX-License-Identifier: MIT */
/* Asking the background worker (maintenance.h) for work: a flag or a queued
 * open under the worker's lock, and a signal. Nothing here waits. */
#include <errno.h>

#include "kvcfs.h"
#include "maintenance_internal.h"

void maintenance_want_evict(struct kvcfs *fs)
{
	struct kvcfs_maintenance *m = &fs->maintenance;

	if (!m->running)
		return;
	pthread_mutex_lock(&m->lock);
	m->evict_wanted = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
}

void maintenance_want_verify(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key)
{
	struct kvcfs_maintenance *m = &fs->maintenance;
	struct verify_request *r;

	if (!m->running)
		return;
	pthread_mutex_lock(&m->lock);
	if (g_queue_get_length(m->verify_wanted) < MAINTENANCE_VERIFY_MAX) {
		r = g_new(struct verify_request, 1);
		r->dir = kdir_ref(dir);
		r->key = *key;
		g_queue_push_tail(m->verify_wanted, r);
		pthread_cond_signal(&m->wake);
	}
	pthread_mutex_unlock(&m->lock);
}

bool maintenance_pending(struct kvcfs *fs)
{
	struct kvcfs_maintenance *m = &fs->maintenance;
	bool pending;

	if (!m->running)
		return false;
	pthread_mutex_lock(&m->lock);
	pending = m->busy || m->evict_wanted || m->rescan_waiters != NULL ||
		  !g_queue_is_empty(m->verify_wanted);
	pthread_mutex_unlock(&m->lock);
	return pending;
}

int maintenance_rescan_and_reply(struct kvcfs *fs, fuse_req_t req, struct handle *h,
				 const struct fuse_file_info *fi)
{
	struct kvcfs_maintenance *m = &fs->maintenance;
	struct rescan_waiter *w = g_new0(struct rescan_waiter, 1);

	w->req = req;
	w->h = h;
	w->fi = *fi;
	pthread_mutex_lock(&m->lock);
	if (m->running && !m->stop) {
		m->rescan_waiters = g_slist_prepend(m->rescan_waiters, w);
		w = NULL;
		pthread_cond_signal(&m->wake);
	}
	pthread_mutex_unlock(&m->lock);
	if (w == NULL)
		return 0;
	g_free(w); /* shutting down */
	return -ESHUTDOWN;
}
