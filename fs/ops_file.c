/* SPDX-License-Identifier: MIT */
/* Opening, reading, writing and closing files. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static void handle_release(struct kvcfs *fs, struct handle *h);

static void reply_open_handle(fuse_req_t req, struct kvcfs *fs, struct node *node,
			      struct handle *h, struct fuse_file_info *fi)
{
	h->node = node;
	pthread_mutex_lock(&fs->lock);
	node->open_count++;
	pthread_mutex_unlock(&fs->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_release(fs, h); /* the opener went away */
}

/*
 * A writer of its own for <key>.kvc: cp (or any O_WRONLY|O_TRUNC open) onto a
 * published slab, or a second writer of a key someone is already writing.
 * The bytes are staged apart and published at close, where the first valid
 * slab of the key wins. Writers of one key never share a temp: many model
 * servers saving the same prefix at once must not interleave their bytes.
 */
static int open_private_stage(struct kvcfs *fs, const struct kvc_key *key,
			      struct handle *h, fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct staging *stage;
	struct kvc_err err;

	if (fs->opts.read_only)
		return -EROFS;
	stage = staging_new();
	if (kvc_tmp_create(fs->store, "stage", &stage->tmp, &err) < 0) {
		staging_free(fs, stage);
		return -kvc_err_to_errno(&err);
	}
	kvc_tmp_track(&stage->tmp);
	stage->publish_on_close = true;
	stage->target = *key;
	stage->writers = 1;
	stage->mode = 0444;
	stage->uid = ctx->uid;
	stage->gid = ctx->gid;
	h->stage = stage;
	h->owns_stage = true;
	h->writable = true;
	return 0;
}

static int open_staging(struct kvcfs *fs, struct node *node, struct handle *h, int flags)
{
	struct staging *stage = node->stage;
	int rc = 0;

	h->stage = stage;
	if ((flags & O_ACCMODE) == O_RDONLY)
		return 0;
	if (fs->opts.read_only)
		return -EROFS;
	pthread_mutex_lock(&fs->lock);
	stage->writers++;
	pthread_mutex_unlock(&fs->lock);
	h->writable = true;
	if (flags & O_TRUNC) {
		pthread_rwlock_rdlock(&stage->lock);
		if (stage->published || stage->tmp.fd < 0)
			rc = -EPERM;
		else if (ftruncate(stage->tmp.fd, 0) < 0)
			rc = -errno;
		else
			kvc_tmp_note_truncate(&stage->tmp, 0);
		atomic_store(&stage->dirty, true);
		pthread_rwlock_unlock(&stage->lock);
	}
	if (rc < 0) {
		pthread_mutex_lock(&fs->lock);
		stage->writers--;
		pthread_mutex_unlock(&fs->lock);
	}
	return rc;
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node *node = node_held(fs, ino);
	struct handle *h;
	int acc = fi->flags & O_ACCMODE, rc = 0;

	if (node == NULL) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	h = g_new0(struct handle, 1);
	h->fd = -1;
	switch (node->kind) {
	case NODE_METRICS:
		if (acc != O_RDONLY) {
			rc = -EACCES;
			break;
		}
		h->text = metrics_render(fs, &h->text_len);
		fi->direct_io = 1; /* its size changes between stat and read */
		break;
	case NODE_RESCAN:
		if (acc != O_RDONLY) {
			rc = -EACCES;
			break;
		}
		rc = rescan_now(fs);
		if (rc == 0) {
			uint64_t bytes, count;
			index_totals(&fs->index, &bytes, &count);
			h->text = g_strdup_printf("slabs %" G_GUINT64_FORMAT "\nbytes %" G_GUINT64_FORMAT "\n",
						  count, bytes);
			h->text_len = strlen(h->text);
			fi->direct_io = 1;
		}
		break;
	case NODE_SLAB:
		if (acc == O_RDONLY && !(fi->flags & O_TRUNC))
			rc = open_slab(fs, node, false, h, fi);
		else if (acc == O_WRONLY && (fi->flags & O_TRUNC) && !(fi->flags & O_APPEND))
			rc = open_private_stage(fs, &node->key, h, req);
		else
			rc = -EPERM; /* published slabs are immutable */
		break;
	case NODE_PAYLOAD:
		rc = acc == O_RDONLY ? open_slab(fs, node, true, h, fi) : -EPERM;
		break;
	case NODE_STAGING:
		if (node->stage->publish_on_close && acc != O_RDONLY)
			rc = open_private_stage(fs, &node->stage->target, h, req);
		else
			rc = open_staging(fs, node, h, fi->flags);
		break;
	default:
		rc = -EISDIR;
	}
	if (rc < 0) {
		g_free(h->text);
		g_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_open_handle(req, fs, node, h, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct staging *stage;
	struct node *node;
	struct handle *h;
	struct kvc_key key;
	struct kvc_err err;
	int rc;
	enum name_class cls;

	if (parent != INO_ROOT) {
		fuse_reply_err(req, parent == INO_PAYLOAD_DIR || parent == INO_META_DIR ? EPERM : ENOTDIR);
		return;
	}
	if (fs->opts.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	cls = classify_name(name, &key, &rc);
	if (cls == NAME_INVALID || cls == NAME_RESERVED) {
		fuse_reply_err(req, cls == NAME_RESERVED ? EEXIST : rc);
		return;
	}
	if (cls == NAME_SLAB && (fi->flags & O_EXCL) &&
	    faccessat(kvc_store_dirfd(fs->store), name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	stage = staging_new();
	if (kvc_tmp_create(fs->store, "stage", &stage->tmp, &err) < 0) {
		staging_free(fs, stage);
		fuse_reply_err(req, kvc_err_to_errno(&err));
		return;
	}
	kvc_tmp_track(&stage->tmp);
	stage->mode = mode & 07777;
	stage->uid = ctx->uid;
	stage->gid = ctx->gid;
	stage->publish_on_close = cls == NAME_SLAB;
	stage->target = key;

	pthread_mutex_lock(&fs->lock);
	node = g_hash_table_lookup(fs->staging, name);
	if (node != NULL) {
		/* Created meanwhile by someone else: O_EXCL says no, else the
		 * kernel would have opened it; either way it is not ours. */
		pthread_mutex_unlock(&fs->lock);
		staging_free(fs, stage);
		fuse_reply_err(req, EEXIST);
		return;
	}
	node = node_new(fs, NODE_STAGING);
	node->stage = stage;
	node->name = g_strdup(name);
	node->nlookup = 1;
	g_hash_table_insert(fs->staging, node->name, node);
	pthread_mutex_unlock(&fs->lock);

	h = g_new0(struct handle, 1);
	h->fd = -1;
	h->stage = stage;
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		h->writable = true;
		stage->writers = 1;
	}
	memset(&e, 0, sizeof(e));
	attr_of_node(fs, node, &e.attr);
	e.ino = node->ino;
	h->node = node;
	pthread_mutex_lock(&fs->lock);
	node->open_count++;
	pthread_mutex_unlock(&fs->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) != 0)
		handle_release(fs, h);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	(void)ino;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (h->text != NULL) {
		size_t o = (uint64_t)off < h->text_len ? (size_t)off : h->text_len;
		size_t n = size < h->text_len - o ? size : h->text_len - o;
		/* Reply from a copy: once the kernel has this reply it may send
		 * RELEASE, which frees h->text on another thread while this one
		 * is still returning from the write to /dev/fuse. */
		char *copy = g_memdup2(h->text + o, n);
		fuse_reply_buf(req, copy, n);
		g_free(copy);
		return;
	}
	if (h->stage != NULL) {
		char *buf = g_malloc(size ? size : 1);
		ssize_t n;
		pthread_rwlock_rdlock(&h->stage->lock);
		n = h->stage->tmp.fd < 0 ? (errno = EBADF, -1)
					 : pread(h->stage->tmp.fd, buf, size, off);
		pthread_rwlock_unlock(&h->stage->lock);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		g_free(buf);
		return;
	}
	reply_verified_read(req, h, size, off);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct staging *stage = h->stage;
	ssize_t n;

	(void)ino;
	if (stage == NULL || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0) {
		/* The bytes already became a slab: it is immutable now. */
		n = -1;
		errno = EPERM;
	} else {
		n = pwrite(stage->tmp.fd, buf, size, off);
		atomic_store(&stage->dirty, true);
		if (n > 0)
			kvc_tmp_note_write(&stage->tmp, (uint64_t)off, buf, (size_t)n);
		if (n < 0 && (errno == ENOSPC || errno == EDQUOT || errno == EIO))
			atomic_store(&stage->write_error, errno);
	}
	pthread_rwlock_unlock(&stage->lock);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)n);
}

/* After a publish of a file created as <key>.kvc (or written over a slab):
 * the inode is the slab's now; or the name goes at once, so a refused
 * close leaves nothing behind, while a later close (of a dup) may still
 * publish the bytes until release makes the refusal final. */
static void settle_publish(struct kvcfs *fs, struct handle *h, int rc, bool final)
{
	pthread_mutex_lock(&fs->lock);
	if (rc == 0) {
		h->stage->publish_on_close = false;
		if (!h->owns_stage)
			node_became_slab(fs, h->node, &h->stage->target);
	} else {
		if (final)
			h->stage->publish_on_close = false;
		if (!h->owns_stage && h->node->name != NULL) {
			g_hash_table_remove(fs->staging, h->node->name);
			g_free(h->node->name);
			h->node->name = NULL;
		}
	}
	pthread_mutex_unlock(&fs->lock);
}

/*
 * close(2) of a file created as <key>.kvc, or written over a slab: publish
 * once every writer has closed, here, so close() can report EBADMSG (release
 * comes later and its result reaches no one). A descriptor may be closed
 * while a dup of it lives on (dd does this), so a refusal here is not
 * final: a later close tries again, and release gives up for good.
 * A prefix of a slab is never a valid slab, so an early try cannot
 * publish a partial one.
 */
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct handle *h = handle_of(fi);
	struct staging *stage = h->stage;
	bool publish;
	int rc = 0;

	(void)ino;
	if (stage == NULL || !h->writable) {
		fuse_reply_err(req, 0);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	if (!h->flushed) {
		h->flushed = true;
		stage->flushed_writers++;
	}
	publish = stage->publish_on_close && stage->flushed_writers == stage->writers;
	pthread_mutex_unlock(&fs->lock);
	if (publish && atomic_load(&stage->write_error) != 0) {
		/* A write failed: close() says so, as a filesystem that writes
		 * back at close would, and the incomplete bytes never publish. */
		rc = -atomic_load(&stage->write_error);
		settle_publish(fs, h, rc, true);
	} else if (publish) {
		rc = publish_stage(fs, stage, &stage->target, false);
		settle_publish(fs, h, rc, false);
	}
	fuse_reply_err(req, -rc);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int rc = 0;

	(void)ino;
	if (h->stage != NULL) {
		pthread_rwlock_rdlock(&h->stage->lock);
		if (h->stage->tmp.fd >= 0 &&
		    (datasync ? fdatasync(h->stage->tmp.fd) : fsync(h->stage->tmp.fd)) < 0)
			rc = errno;
		pthread_rwlock_unlock(&h->stage->lock);
	}
	fuse_reply_err(req, rc);
}

static void handle_release(struct kvcfs *fs, struct handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->pins)
		index_closed(&fs->index, &h->key);
	verified_release(h);
	if (h->stage != NULL && h->writable) {
		bool last_try;
		pthread_mutex_lock(&fs->lock);
		h->stage->writers--;
		if (h->flushed)
			h->stage->flushed_writers--;
		last_try = h->stage->publish_on_close && h->stage->writers == 0;
		pthread_mutex_unlock(&fs->lock);
		if (last_try) {
			/* Bytes written since the last close's try get one more;
			 * then a refusal is final and nothing appears. */
			int rc = atomic_load(&h->stage->dirty)
					 ? publish_stage(fs, h->stage, &h->stage->target, false)
					 : -EBADMSG;
			if (rc < 0 && h->stage->refused)
				atomic_fetch_add(&fs->metrics.rejected, 1);
			settle_publish(fs, h, rc, true);
		}
	}
	if (h->owns_stage)
		staging_free(fs, h->stage);
	pthread_mutex_lock(&fs->lock);
	node_unref(fs, h->node, 0, 1);
	pthread_mutex_unlock(&fs->lock);
	g_free(h->text);
	g_free(h);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_release(kvcfs_of(req), handle_of(fi));
	fuse_reply_err(req, 0);
}
