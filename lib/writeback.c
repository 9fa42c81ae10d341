/* SPDX-License-Identifier: MIT */
/*
 * Early writeback for temps that are filled slowly (through the mount): the
 * publish's fdatasync then finds most of the bytes already on disk. One
 * helper thread per process takes the requests, each with its own dup of
 * the descriptor so the temp may be closed meanwhile.
 */
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "writeback.h"

struct request {
	int fd;
	uint64_t off;
	uint64_t len;
};

static GAsyncQueue *queue;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool running;

static void *writeback_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct request *r = g_async_queue_pop(queue);
		sync_file_range(r->fd, (off_t)r->off, (off_t)r->len, SYNC_FILE_RANGE_WRITE);
		close(r->fd);
		g_free(r);
	}
	return NULL;
}

static void start(void)
{
	pthread_t thread;
	pthread_attr_t attr;

	queue = g_async_queue_new();
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	running = pthread_create(&thread, &attr, writeback_main, NULL) == 0;
	pthread_attr_destroy(&attr);
}

void kvc_writeback_start(int fd, uint64_t off, uint64_t len)
{
	struct request *r;
	int copy;

	pthread_once(&once, start);
	if (!running)
		return; /* a hint only: the publish's fdatasync does the rest */
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0)
		return;
	r = g_new(struct request, 1);
	r->fd = copy;
	r->off = off;
	r->len = len;
	g_async_queue_push(queue, r);
}
