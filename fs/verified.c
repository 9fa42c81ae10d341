/* SPDX-License-Identifier: MIT */
/*
 * Reads of verified slabs: serve only bytes that passed verification.
 *
 * A slab is verified when it is opened, but the backing file is an ordinary
 * file that something else can truncate or rewrite while it is open. Each
 * read therefore compares the file's size and ctime with what they were
 * after verification: a changed size fails the read with EIO; a changed
 * ctime (another mount counting a hit, or a rewrite in place) makes the
 * read verify the whole file again first, unless it is the ctime of this
 * mount's own last hit write. Replacing the file by rename is
 * harmless: the descriptor keeps the verified inode.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

int verified_record(struct handle *h)
{
	struct stat st;

	if (fstat(h->fd, &st) < 0)
		return -errno;
	h->verified_size = st.st_size;
	h->verified_ctime = st.st_ctim;
	pthread_mutex_init(&h->verify_lock, NULL);
	h->verify_lock_live = true;
	return 0;
}

static int recheck(struct kvcfs *fs, struct handle *h)
{
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat st;
	int rc = 0;

	if (fstat(h->fd, &st) < 0)
		return -errno;
	pthread_mutex_lock(&h->verify_lock);
	if (st.st_size != h->verified_size) {
		rc = -EIO;
	} else if (!same_time(&st.st_ctim, &h->verified_ctime)) {
		/* Our own hit write on another open changes only the header's
		 * counters: no need to read the payload again for that. */
		if (index_is_verified(&fs->index, &h->key, &st))
			h->verified_ctime = st.st_ctim;
		else if (kvc_verify_fd(h->fd, 0, &h->key, &meta, &err) < 0) {
			rc = -EIO;
		} else {
			kvc_meta_clear(&meta);
			/* ctime as of before the check: a change during it is
			 * caught by the next read. */
			h->verified_ctime = st.st_ctim;
		}
	}
	pthread_mutex_unlock(&h->verify_lock);
	if (rc < 0) {
		char hex[KVC_KEY_HEX_LEN + 1];
		kvc_key_to_hex(&h->key, hex);
		atomic_fetch_add(&fs->metrics.changed_under_readers, 1);
		fuse_log(FUSE_LOG_WARNING, "kvcfs: slab %s changed behind an open reader; read refused\n",
			 hex);
	}
	return rc;
}

void reply_verified_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct kvcfs *fs = kvcfs_of(req);
	size_t n;
	ssize_t got;
	char *buf;
	int rc;

	if ((uint64_t)off >= h->length) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	n = size < h->length - (uint64_t)off ? size : (size_t)(h->length - (uint64_t)off);
	rc = recheck(fs, h);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	buf = g_malloc(n ? n : 1);
	do
		got = pread(h->fd, buf, n, (off_t)(h->base + (uint64_t)off));
	while (got < 0 && errno == EINTR);
	if (got < 0)
		fuse_reply_err(req, errno);
	else if ((size_t)got != n)
		fuse_reply_err(req, EIO); /* shrank between the check and the read */
	else
		fuse_reply_buf(req, buf, n);
	g_free(buf);
}

void verified_release(struct handle *h)
{
	if (h->verify_lock_live)
		pthread_mutex_destroy(&h->verify_lock);
}
