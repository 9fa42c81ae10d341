/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_NOTIFY_H
#define KVCFS_NOTIFY_H

#include <glib.h>
#include <pthread.h>

struct fuse_session;
struct inval;

/*
 * Kernel cache invalidations, sent from a thread of their own: libfuse
 * forbids sending them from inside a related request, and a request
 * handler is exactly where we learn that an entry went stale.
 */
struct kvcfs_notifier {
	/* Set by notifier_start before any request is served, cleared by
	 * notifier_stop after the last one: read without a lock. */
	struct fuse_session *se;
	/* The queue, oldest first: a leaf lock (pthread's, which the
	 * sanitizers see, unlike GLib 2.74's futex-based ones). */
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* something was queued */
	struct inval *head, *tail; /* guarded by lock */
	pthread_t thread;
	bool running;
};

int notifier_start(struct kvcfs_notifier *n, struct fuse_session *se);
void notifier_stop(struct kvcfs_notifier *n);
/* Forget the kernel's dentry for name in directory parent (async). */
void notify_inval_entry(struct kvcfs_notifier *n, uint64_t parent, const char *name);

#endif
