/* SPDX-License-Identifier: MIT */
/*
 * Early writeback for staging files that the kernel writes itself
 * (passthrough). On the daemon's path every write passes through kvcfs,
 * which starts writeback as the bytes arrive (lib/writeback.c), so the
 * fdatasync at close finds most of a large slab on disk already. With
 * passthrough kvcfs sees no write, and the close paid for the whole file:
 * about half of a 1 GiB cp + mv. So while such a file has a writer, a
 * thread looks at its temp's size every WATCH_INTERVAL_MS and starts
 * writeback of what was added since (sync_file_range, which does not wait
 * for the disk).
 *
 * Each watched temp is a dup of its descriptor, owned here: the staging
 * file may be published or discarded meanwhile without this thread ever
 * touching a closed or reused descriptor. The stage's address is only a
 * name for the entry, never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

#define WATCH_INTERVAL_MS 20
/* Smaller growth waits for the next look: one request per few MiB. */
#define WRITEBACK_MIN_BYTES ((off_t)4 << 20)

struct watched {
	int fd;         /* our own dup of the temp's descriptor */
	off_t started;  /* writeback was started up to here */
};

static void watched_free(gpointer p)
{
	struct watched *w = p;

	close(w->fd);
	g_free(w);
}

static void start_writeback(struct watched *w)
{
	struct stat st;

	if (fstat(w->fd, &st) < 0 || st.st_size < w->started + WRITEBACK_MIN_BYTES)
		return;
	sync_file_range(w->fd, w->started, st.st_size - w->started, SYNC_FILE_RANGE_WRITE);
	w->started = st.st_size;
}

static void *watcher_main(void *arg)
{
	struct stage_writeback *wb = arg;

	pthread_mutex_lock(&wb->lock);
	while (!wb->stopping) {
		GHashTableIter it;
		gpointer value;
		struct timespec next;

		if (g_hash_table_size(wb->temps) == 0) {
			pthread_cond_wait(&wb->wake, &wb->lock);
			continue;
		}
		/* Held across the calls: they only queue writeback, and the
		 * callers of watch and forget are never in a hurry. */
		g_hash_table_iter_init(&it, wb->temps);
		while (g_hash_table_iter_next(&it, NULL, &value))
			start_writeback(value);
		clock_gettime(CLOCK_MONOTONIC, &next);
		next.tv_nsec += WATCH_INTERVAL_MS * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wb->wake, &wb->lock, &next);
	}
	pthread_mutex_unlock(&wb->lock);
	return NULL;
}

void stage_writeback_start(struct stage_writeback *wb)
{
	pthread_condattr_t monotonic;

	pthread_mutex_init(&wb->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&wb->wake, &monotonic);
	pthread_condattr_destroy(&monotonic);
	wb->temps = g_hash_table_new_full(NULL, NULL, NULL, watched_free);
	wb->stopping = false;
	/* Without the thread, passthrough writes are flushed at close, as
	 * before: slower, never wrong. */
	wb->running = pthread_create(&wb->thread, NULL, watcher_main, wb) == 0;
}

void stage_writeback_stop(struct stage_writeback *wb)
{
	if (wb->temps == NULL)
		return;
	pthread_mutex_lock(&wb->lock);
	wb->stopping = true;
	pthread_cond_signal(&wb->wake);
	pthread_mutex_unlock(&wb->lock);
	if (wb->running)
		pthread_join(wb->thread, NULL);
	g_hash_table_destroy(wb->temps);
	wb->temps = NULL;
	pthread_cond_destroy(&wb->wake);
	pthread_mutex_destroy(&wb->lock);
}

void stage_writeback_watch(struct stage_writeback *wb, const struct staging *stage, int fd)
{
	struct watched *w;
	int copy;

	if (wb->temps == NULL || !wb->running)
		return;
	pthread_mutex_lock(&wb->lock);
	if (!g_hash_table_contains(wb->temps, stage) &&
	    (copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		w = g_new0(struct watched, 1);
		w->fd = copy;
		g_hash_table_insert(wb->temps, (gpointer)stage, w);
		pthread_cond_signal(&wb->wake);
	}
	pthread_mutex_unlock(&wb->lock);
}

void stage_writeback_forget(struct stage_writeback *wb, const struct staging *stage)
{
	if (wb->temps == NULL)
		return;
	pthread_mutex_lock(&wb->lock);
	g_hash_table_remove(wb->temps, stage);
	pthread_mutex_unlock(&wb->lock);
}
