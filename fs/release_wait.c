/* SPDX-License-Identifier: MIT */
/*
 * Waiting for the RELEASE that trails a close(2).
 *
 * close(2) returns once the FLUSH is answered; the kernel sends the RELEASE
 * afterwards, in the background. So `cp f x && mv x <key>.kvc`, or a reader
 * that closes a slab right before something writes over it, reaches kvcfs
 * while the closed file still looks open: a rename would publish a copy of
 * a file nobody writes any more, an open that the kernel cannot put beside
 * a passthrough open would fail with ETXTBSY. A handle that has been closed
 * once (its FLUSH was seen) is released in a moment, unless a dup of the
 * descriptor lives on; the request waits that long for it, and no longer:
 * a dup may stay open for as long as it likes.
 *
 * Such a dup is anyone's to keep, and every open or rename over its file
 * would then hold a request thread for the whole wait: enough of them at
 * once would leave no thread to answer anyone else (or the RELEASEs). So
 * at most half of the threads wait at a time; a request that finds no free
 * slot goes on as if the wait had timed out (ETXTBSY, a published copy).
 * Single-threaded, nothing waits: the RELEASE could not come meanwhile.
 */
#include <errno.h>
#include <time.h>

#include "kvcfs.h"

#define RELEASE_WAIT_NS (200 * 1000 * 1000L)

void release_wait_init(struct kvcfs *fs, unsigned threads)
{
	fs->release_wait_slots = threads / 2;
}

void release_wait_while(struct kvcfs *fs, bool (*waiting)(const void *), const void *arg)
{
	struct timespec deadline;

	if (!waiting(arg) || fs->release_waiters >= fs->release_wait_slots)
		return;
	fs->release_waiters++;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_nsec += RELEASE_WAIT_NS;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (waiting(arg) &&
	       pthread_cond_timedwait(&fs->handle_released, &fs->lock, &deadline) != ETIMEDOUT)
		;
	fs->release_waiters--;
}

void release_seen(struct kvcfs *fs)
{
	pthread_cond_broadcast(&fs->handle_released);
}
