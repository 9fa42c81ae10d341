/* SPDX-License-Identifier: MIT */
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "notify.h"

struct inval {
	struct inval *next;
	uint64_t parent;
	char name[]; /* empty name: the stop marker */
};

static struct inval *pop(struct kvcfs_notifier *n)
{
	struct inval *iv;

	pthread_mutex_lock(&n->lock);
	while (n->head == NULL)
		pthread_cond_wait(&n->wake, &n->lock);
	iv = n->head;
	n->head = iv->next;
	if (n->head == NULL)
		n->tail = NULL;
	pthread_mutex_unlock(&n->lock);
	return iv;
}

static void *notifier_main(void *arg)
{
	struct kvcfs_notifier *n = arg;

	for (;;) {
		struct inval *iv = pop(n);
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
	n->head = n->tail = NULL;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->wake, NULL);
	if (pthread_create(&n->thread, NULL, notifier_main, n) != 0) {
		pthread_cond_destroy(&n->wake);
		pthread_mutex_destroy(&n->lock);
		return -1;
	}
	n->running = true;
	return 0;
}

static void push(struct kvcfs_notifier *n, uint64_t parent, const char *name)
{
	size_t len = strlen(name);
	struct inval *iv = g_malloc(sizeof(*iv) + len + 1);

	iv->next = NULL;
	iv->parent = parent;
	memcpy(iv->name, name, len + 1);
	pthread_mutex_lock(&n->lock);
	if (n->tail != NULL)
		n->tail->next = iv;
	else
		n->head = iv;
	n->tail = iv;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
}

void notifier_stop(struct kvcfs_notifier *n)
{
	if (!n->running)
		return;
	push(n, 0, "");
	pthread_join(n->thread, NULL);
	/* The stop marker was the last thing queued: nothing is left. */
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
	n->running = false;
}

void notify_inval_entry(struct kvcfs_notifier *n, uint64_t parent, const char *name)
{
	if (n->running && name[0] != '\0')
		push(n, parent, name);
}
