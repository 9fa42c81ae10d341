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
	struct request *next;
	int fd;
	uint64_t off;
	uint64_t len;
};

/* The requests, oldest first, under a pthread mutex (the sanitizers see
 * it, unlike GLib 2.74's futex-based locks). A leaf lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued = PTHREAD_COND_INITIALIZER;
static struct request *head, *tail;   /* guarded by lock */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool running;                  /* set once, by start() */

static struct request *next_request(void)
{
	struct request *r;

	pthread_mutex_lock(&lock);
	while (head == NULL)
		pthread_cond_wait(&queued, &lock);
	r = head;
	head = r->next;
	if (head == NULL)
		tail = NULL;
	pthread_mutex_unlock(&lock);
	return r;
}

static void *writeback_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct request *r = next_request();
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
	r->next = NULL;
	r->fd = copy;
	r->off = off;
	r->len = len;
	pthread_mutex_lock(&lock);
	if (tail != NULL)
		tail->next = r;
	else
		head = r;
	tail = r;
	pthread_cond_signal(&queued);
	pthread_mutex_unlock(&lock);
}
