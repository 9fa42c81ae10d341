/* SPDX-License-Identifier: MIT */
/*
 * Reads of verified slabs: serve only bytes that passed verification.
 *
 * A slab is verified when it is opened, but the backing file is an ordinary
 * file that something else can truncate or rewrite while it is open. Each
 * read therefore compares the file's size and ctime with what they were
 * after verification, before and after it reads: a changed size fails the
 * read with EIO; a changed ctime (another mount counting a hit, or a
 * rewrite in place) makes the read verify the whole file again first,
 * unless it is the ctime of this mount's own last hit write. A change
 * between the check and the read is seen by the check after it, and the
 * read is done again on the re-verified file. Re-verified, the file must
 * hold the payload the open verified (its CRC and length): another valid
 * slab of the key written over it in place makes every later read EIO,
 * so a reader never stitches two slabs together. Replacing the file by
 * rename is harmless: the descriptor keeps the verified inode.
 *
 * What this cannot see: a write that lands within one tick of the
 * filesystem's timestamps (ext4: a jiffy) of the check before a read
 * leaves the ctime as it was, so that read may mix old and new bytes.
 * docs/contract.md says so: slabs are never to be rewritten in place.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

void verified_record(struct handle *h, const struct stat *st, const struct kvc_meta *meta)
{
	h->verified = *st;
	h->verified_payload_crc = meta->payload_crc32c;
	h->verified_payload_len = meta->payload_length;
	pthread_mutex_init(&h->verify_lock, NULL);
	h->verify_lock_live = true;
}

/* Is the file still as verified (re-verifying it if only its ctime moved)?
 * *now gets the state the answer is about. */
static int still_verified(struct kvcfs *fs, struct handle *h, struct stat *now)
{
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat after;
	int rc = 0;

	if (fstat(h->fd, now) < 0)
		return -errno;
	pthread_mutex_lock(&h->verify_lock);
	if (now->st_size != h->verified.st_size) {
		rc = -EIO;
	} else if (!same_time(&now->st_ctim, &h->verified.st_ctim)) {
		/* Our own hit write on another open changes only the header's
		 * counters: no need to read the payload again for that. */
		if (index_is_verified(h->tier_index, &h->key, now)) {
			h->verified = *now;
		} else {
			struct key_lock *no_hits = hits_hold_off(fs, &h->key);
			bool same_payload = false;

			if (fstat(h->fd, now) == 0 &&
			    kvc_verify_fd(h->fd, 0, &h->key, &meta, &err) == 0) {
				same_payload = meta.payload_crc32c == h->verified_payload_crc &&
					       meta.payload_length == h->verified_payload_len;
				kvc_meta_clear(&meta);
			}
			if (!same_payload || fstat(h->fd, &after) < 0 ||
			    after.st_size != now->st_size || !same_time(&after.st_ctim, &now->st_ctim))
				rc = -EIO; /* invalid, another slab, or written while verified */
			else
				h->verified = *now;
			hits_resume(fs, no_hits);
		}
	}
	pthread_mutex_unlock(&h->verify_lock);
	return rc;
}

static void refused(struct kvcfs *fs, struct handle *h)
{
	char hex[KVC_KEY_HEX_LEN + 1];

	kvc_key_to_hex(&h->key, hex);
	atomic_fetch_add(&fs->metrics.changed_under_readers, 1);
	fuse_log(FUSE_LOG_WARNING, "kvcfs: slab %s changed behind an open reader; read refused\n",
		 hex);
}

void reply_verified_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct stat checked, after;
	size_t n;
	ssize_t got = -1;
	char *buf;
	int rc = 0;

	if ((uint64_t)off >= h->length) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	n = size < h->length - (uint64_t)off ? size : (size_t)(h->length - (uint64_t)off);
	buf = g_malloc(n ? n : 1);
	/* Check, read, check again: the bytes are served only if the file
	 * was the verified one before and after they were read. */
	for (int attempt = 0; attempt < 3; attempt++) {
		rc = still_verified(fs, h, &checked);
		if (rc < 0)
			break;
		do
			got = pread(h->fd, buf, n, (off_t)(h->base + (uint64_t)off));
		while (got < 0 && errno == EINTR);
		if (got < 0) {
			rc = -errno;
			break;
		}
		if (fstat(h->fd, &after) < 0) {
			rc = -errno;
			break;
		}
		rc = -EIO;
		if (after.st_size == checked.st_size && same_time(&after.st_ctim, &checked.st_ctim)) {
			rc = (size_t)got == n ? 0 : -EIO;
			break;
		}
	}
	if (rc == -EIO)
		refused(fs, h);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, n);
	g_free(buf);
}

void verified_release(struct handle *h)
{
	if (h->verify_lock_live)
		pthread_mutex_destroy(&h->verify_lock);
}
