/* SPDX-License-Identifier: MIT */
/*
 * Opening a slab or its payload view for reading: it is verified before the
 * open succeeds. A full verification reads the whole file, so a re-open of
 * the very file this mount verified before, unchanged since (same inode and
 * size, and the ctime our own hit write left), only re-reads its header;
 * and its pages in the kernel's cache stay valid (keep_cache).
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

/*
 * Verification reads the whole slab anyway; when this open is the node's
 * only one, the bytes it reads go on into the kernel's page cache for the
 * node (notify_store), so the reader that asked gets them from memory
 * instead of through the daemon a second time. Nobody can read those pages
 * before the open returns (no other handle exists), and if verification
 * fails they are dropped before it does.
 */
struct store_ctx {
	struct fuse_session *se;
	fuse_ino_t ino;
	uint64_t off;
	bool ok;
};

static void store_chunk(void *arg, const void *data, size_t len)
{
	struct store_ctx *c = arg;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].mem = (void *)data;
	if (c->ok && fuse_lowlevel_notify_store(c->se, c->ino, (off_t)c->off, &bv, 0) != 0)
		c->ok = false;
	c->off += len;
}

/* The bytes before the payload, as they are after this open's hit write. */
static void store_header(struct kvcfs *fs, struct node *node, int fd, uint64_t len)
{
	struct store_ctx c = { fs->notifier.se, node->ino, 0, true };
	uint8_t *buf = g_malloc(len ? len : 1);

	if (pread(fd, buf, len, 0) == (ssize_t)len)
		store_chunk(&c, buf, len);
	else
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, 0, (off_t)len);
	g_free(buf);
}

static int verify_storing(struct kvcfs *fs, struct node *node, bool payload_view, int fd,
			  const struct stat *st, const struct kvc_key *key, struct kvc_meta *meta,
			  struct kvc_err *err)
{
	struct store_ctx c = { fs->notifier.se, node->ino, 0, true };
	struct kvc_fd_head head;
	struct kvc_source src;
	struct kvc_meta first;
	int rc;

	/* The payload now; the slab view's header after the hit is counted
	 * in it (store_header). */
	kvc_source_from_fd_head(&src, &head, fd, (uint64_t)st->st_size);
	if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, &first, err) < 0)
		return -1;
	c.off = payload_view ? 0 : first.payload_offset;
	kvc_meta_clear(&first);
	kvc_source_from_fd(&src, &fd, (uint64_t)st->st_size);
	rc = kvc_verify(&src, KVC_PARSE_LIGHT, key, meta, store_chunk, &c, err);
	if (rc < 0 || !c.ok)
		/* Unverified or partial pages must not stay cached. */
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, 0, 0);
	return rc;
}

static int load(struct kvcfs *fs, struct node *node, bool payload_view, int *fd,
		struct kvc_meta *meta, bool *reused, bool *stored, struct kvc_err *err)
{
	const struct kvc_key *key = &node->key;
	struct kvc_fd_head head;
	struct kvc_source src;
	struct stat st;
	bool alone;

	*stored = false;
	if (kvc_store_open_slab(fs->store, key, fd, &st, err) < 0)
		return -1;
	*reused = index_is_verified(&fs->index, key, &st);
	if (*reused) {
		kvc_source_from_fd_head(&src, &head, *fd, (uint64_t)st.st_size);
		if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, meta, err) == 0)
			return 0;
	} else {
		pthread_mutex_lock(&fs->lock);
		alone = node->open_count == 0 && !node->storing && fs->notifier.running;
		if (alone)
			node->storing = true;
		pthread_mutex_unlock(&fs->lock);
		if (alone) {
			int rc = verify_storing(fs, node, payload_view, *fd, &st, key, meta, err);
			pthread_mutex_lock(&fs->lock);
			node->storing = false;
			pthread_mutex_unlock(&fs->lock);
			*stored = rc == 0;
			if (rc == 0)
				return 0;
		} else if (kvc_verify_fd(*fd, KVC_PARSE_LIGHT, key, meta, err) == 0) {
			return 0;
		}
	}
	close(*fd);
	/* A corrupt slab would fail every reader forever: drop it, but only
	 * the file judged, and never one of a newer format. */
	if (kvc_tag_is_format_error(err->tag) && err->tag != KVC_E_UNSUPPORTED_VERSION)
		kvc_store_drop_corrupt(fs->store, key, &st);
	return -1;
}

static int refuse(struct kvcfs *fs, const struct kvc_key *key, const struct kvc_err *err)
{
	char hex[KVC_KEY_HEX_LEN + 1];

	if (err->tag == KVC_E_NOT_FOUND)
		return -ENOENT;
	if (!kvc_tag_is_format_error(err->tag))
		return -kvc_err_to_errno(err);
	if (err->tag != KVC_E_UNSUPPORTED_VERSION) {
		kvc_key_to_hex(key, hex);
		atomic_fetch_add(&fs->metrics.corrupt_dropped, 1);
		index_remove(&fs->index, key);
		forget_slab_entries(fs, key, FORGET_FROM_FILE_REQUEST);
		fuse_log(FUSE_LOG_WARNING, "kvcfs: dropped corrupt slab %s: %s: %s\n", hex,
			 kvc_tag_name(err->tag), err->detail);
	}
	return -EIO;
}

int open_slab(struct kvcfs *fs, struct node *node, bool payload_view,
	      struct handle *h, struct fuse_file_info *fi)
{
	const struct kvc_key *key = &node->key;
	bool stored;
	uint64_t started = metrics_now_ns();
	uint64_t now = (uint64_t)time(NULL);
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat st;
	bool reused;
	int fd, rc;

	rc = load(fs, node, payload_view, &fd, &meta, &reused, &stored, &err);
	atomic_fetch_add(&fs->metrics.load_ns, metrics_now_ns() - started);
	atomic_fetch_add(&fs->metrics.load_count, 1);
	if (rc < 0)
		return refuse(fs, key, &err);
	atomic_fetch_add(&fs->metrics.hits, 1);
	if (reused)
		atomic_fetch_add(&fs->metrics.reopens_unverified, 1);
	if (!fs->opts.read_only) {
		uint32_t hits = meta.hit_count == UINT32_MAX ? UINT32_MAX : meta.hit_count + 1;
		/* Best effort: a failed hit write costs a hit count, not a read. */
		if (kvc_store_touch(fs->store, key, hits, now, &err) == 0) {
			meta.hit_count = hits;
			meta.last_used_time = now;
		}
	}
	index_put(&fs->index, key, meta.file_size, meta.hit_count, meta.last_used_time,
		  meta.creation_time);
	if (stored && !payload_view)
		store_header(fs, node, fd, meta.payload_offset);
	if (fstat(fd, &st) == 0)
		index_set_verified(&fs->index, key, &st);
	index_opened(&fs->index, key);
	h->pins = true;
	h->key = *key;
	h->fd = fd;
	h->base = payload_view ? meta.payload_offset : 0;
	h->length = payload_view ? meta.payload_length : meta.file_size;
	kvc_meta_clear(&meta);
	/* The kernel's cached pages are this file's only if we served this
	 * very file before or stored them just now; otherwise let it drop them. */
	fi->keep_cache = reused || stored;
	return verified_record(h);
}
