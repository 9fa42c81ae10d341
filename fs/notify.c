/* SPDX-License-Identifier: MIT */
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "notify.h"

struct inval {
	uint64_t parent;
	char name[]; /* empty name: the stop marker */
};

static void *notifier_main(void *arg)
{
	struct kvcfs_notifier *n = arg;

	for (;;) {
		struct inval *iv = g_async_queue_pop(n->queue);
		bool stop = iv->name[0] == '\0';
		if (!stop)
			/* ENOENT (nothing cached) is the common, harmless answer. */
			fuse_lowlevel_notify_inval_entry(n->se, iv->parent, iv->name,
							 strlen(iv->name));
		g_free(iv);
		if (stop)
			return NULL;
	}
}

int notifier_start(struct kvcfs_notifier *n, struct fuse_session *se)
{
	n->se = se;
	n->queue = g_async_queue_new();
	if (pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
		g_async_queue_unref(n->queue);
		n->queue = NULL;
		return -1;
	}
	n->running = true;
	return 0;
}

static void push(struct kvcfs_notifier *n, uint64_t parent, const char *name)
{
	size_t len = strlen(name);
	struct inval *iv = g_malloc(sizeof(*iv) + len + 1);

	iv->parent = parent;
	memcpy(iv->name, name, len + 1);
	g_async_queue_push(n->queue, iv);
}

void notifier_stop(struct kvcfs_notifier *n)
{
	if (!n->running)
		return;
	push(n, 0, "");
	pthread_join(n->thread, NULL);
	g_async_queue_unref(n->queue);
	n->running = false;
}

void notify_inval_entry(struct kvcfs_notifier *n, uint64_t parent, const char *name)
{
	if (n->running && name[0] != '\0')
		push(n, parent, name);
}
