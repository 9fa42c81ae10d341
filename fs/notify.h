/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_NOTIFY_H
#define KVCFS_NOTIFY_H

#include <glib.h>
#include <pthread.h>

struct fuse_session;

/*
 * Kernel cache invalidations, sent from a thread of their own: libfuse
 * forbids sending them from inside a related request, and a request
 * handler is exactly where we learn that an entry went stale.
 */
struct kvcfs_notifier {
	/* Set by notifier_start before any request is served, cleared by
	 * notifier_stop after the last one: read without a lock. */
	struct fuse_session *se;
	GAsyncQueue *queue;   /* GLib's own lock; a leaf */
	pthread_t thread;
	bool running;
};

int notifier_start(struct kvcfs_notifier *n, struct fuse_session *se);
void notifier_stop(struct kvcfs_notifier *n);
/* Forget the kernel's dentry for name in directory parent (async). */
void notify_inval_entry(struct kvcfs_notifier *n, uint64_t parent, const char *name);

#endif
