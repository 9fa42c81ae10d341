/* SPDX-License-Identifier: MIT */
/*
 * Remembering the CRC-32C of every write to a temp, so that publishing it
 * needs to read back only the bytes no write covered cleanly (at most the
 * part of one write before the payload starts). Writes may arrive out of
 * order (several FUSE threads); they are kept sorted. A write that overlaps
 * an earlier one means the bytes changed after their CRC was taken: the
 * tracker gives up and the publish reads everything, which is always right.
 *
 * It also starts writeback of what has been written, every few MiB, so the
 * publish's fdatasync finds little left to do.
 */
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <kvc/crc32c.h>

#include "crc_tracker.h"
#include "writeback.h"

#define WRITEBACK_STEP (8u << 20)

struct chunk {
	uint64_t off;
	uint64_t len;
	uint32_t crc;
};

struct kvc_crc_tracker {
	pthread_mutex_t lock;
	/* All below guarded by lock. */
	GArray *chunks;       /* sorted by off, disjoint */
	bool broken;          /* a rewrite seen: until a truncate to 0 */
	bool abandoned;       /* someone writes unseen: for good */
	uint64_t contiguous;  /* chunks cover [0, contiguous) without a gap */
	uint64_t flushed_to;  /* writeback started for [0, flushed_to) */
};

struct kvc_crc_tracker *kvc_crc_tracker_new(void)
{
	struct kvc_crc_tracker *t = g_new0(struct kvc_crc_tracker, 1);

	pthread_mutex_init(&t->lock, NULL);
	t->chunks = g_array_new(FALSE, FALSE, sizeof(struct chunk));
	return t;
}

void kvc_crc_tracker_free(struct kvc_crc_tracker *t)
{
	if (t == NULL)
		return;
	g_array_free(t->chunks, TRUE);
	pthread_mutex_destroy(&t->lock);
	g_free(t);
}

/* Index of the first chunk whose end is after off. */
static guint first_ending_after(GArray *a, uint64_t off)
{
	guint lo = 0, hi = a->len;

	while (lo < hi) {
		guint mid = (lo + hi) / 2;
		struct chunk *c = &g_array_index(a, struct chunk, mid);
		if (c->off + c->len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A chunk was inserted at index at: extend the gap-free prefix over it
 * and over the chunks after it that it joins. Each chunk is passed over
 * once in the tracker's life, so a long run of writes costs linear time. */
static void extend_contiguous(struct kvc_crc_tracker *t, guint at)
{
	for (guint i = at; i < t->chunks->len; i++) {
		struct chunk *c = &g_array_index(t->chunks, struct chunk, i);
		if (c->off > t->contiguous)
			break;
		if (c->off + c->len > t->contiguous)
			t->contiguous = c->off + c->len;
	}
}

/* Start writeback of the contiguous written prefix, in big steps. */
static void kick_writeback(struct kvc_crc_tracker *t, int fd)
{
	if (t->contiguous >= t->flushed_to + WRITEBACK_STEP) {
		kvc_writeback_start(fd, t->flushed_to, t->contiguous - t->flushed_to);
		t->flushed_to = t->contiguous;
	}
}

void kvc_crc_tracker_add(struct kvc_crc_tracker *t, int fd, uint64_t off,
			 const void *data, size_t len)
{
	struct chunk c = { off, len, 0 };
	guint at;

	if (len == 0)
		return;
	c.crc = kvc_crc32c(0, data, len); /* outside the lock: the costly part */
	pthread_mutex_lock(&t->lock);
	if (!t->broken) {
		at = first_ending_after(t->chunks, off);
		if (at < t->chunks->len &&
		    g_array_index(t->chunks, struct chunk, at).off < off + len)
			t->broken = true; /* rewritten: the CRCs no longer say anything */
		else {
			g_array_insert_val(t->chunks, at, c);
			extend_contiguous(t, at);
		}
	}
	if (fd >= 0)
		kick_writeback(t, fd);
	pthread_mutex_unlock(&t->lock);
}

void kvc_crc_tracker_truncate(struct kvc_crc_tracker *t, uint64_t size)
{
	pthread_mutex_lock(&t->lock);
	if (size == 0) {
		g_array_set_size(t->chunks, 0);
		t->broken = false;
		t->contiguous = 0;
		t->flushed_to = 0;
	} else {
		t->broken = true;
	}
	pthread_mutex_unlock(&t->lock);
}

void kvc_crc_tracker_abandon(struct kvc_crc_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	t->abandoned = true;
	pthread_mutex_unlock(&t->lock);
}

static int read_crc(int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
	uint8_t *buf = malloc(1u << 20);

	if (buf == NULL)
		return -1;
	while (len > 0) {
		size_t n = len < (1u << 20) ? (size_t)len : (1u << 20);
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got <= 0) {
			free(buf);
			return -1;
		}
		*crc = kvc_crc32c(*crc, buf, (size_t)got);
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	free(buf);
	return 0;
}

int kvc_crc_tracker_crc(struct kvc_crc_tracker *t, int fd, uint64_t off, uint64_t len,
			uint32_t *out)
{
	uint64_t at = off, end = off + len;
	uint32_t crc = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (t->broken || t->abandoned) {
		rc = -1;
		goto out;
	}
	for (guint i = first_ending_after(t->chunks, off); i < t->chunks->len && at < end; i++) {
		struct chunk *c = &g_array_index(t->chunks, struct chunk, i);
		if (c->off > at || c->off + c->len > end) {
			rc = -1; /* a gap, or bytes past the end: cannot vouch */
			goto out;
		}
		if (c->off < at) {
			/* The write that holds the start of the range: read the
			 * part of it that belongs to the range. */
			if (read_crc(fd, at, c->off + c->len - at, &crc) < 0) {
				rc = -1;
				goto out;
			}
		} else {
			crc = kvc_crc32c_combine(crc, c->crc, c->len);
		}
		at = c->off + c->len;
	}
	if (at != end)
		rc = -1;
out:
	pthread_mutex_unlock(&t->lock);
	if (rc == 0)
		*out = crc;
	return rc;
}
