/* SPDX-License-Identifier: MIT */
/* Opening, reading, writing and closing files: which kind of file a
 * request is for decides where it goes (stage*.c, open_slab.c, verified.c). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/* .kvcfs/metrics: the text is made at open. .kvcfs/rescan: only the
 * mount's owner (or root) may make the daemon re-read the backing root,
 * and the worker does it and answers the open (1: not answered here). */
static int open_text(struct kvcfs *fs, fuse_req_t req, const struct node_view *v,
		     struct handle *h, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	fi->direct_io = 1; /* its size changes between stat and read */
	if (v->kind == NODE_METRICS) {
		h->text = metrics_render(fs, &h->text_len);
		return 0;
	}
	if (v->kind == NODE_REFUSALS) { /* each reader sees its own */
		h->text = refusals_render(fs, ctx->uid, &h->text_len);
		return 0;
	}
	if (ctx->uid != 0 && ctx->uid != geteuid())
		return -EACCES;
	return maintenance_rescan_and_reply(fs, req, h, fi) < 0 ? -ESHUTDOWN : 1;
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view v;
	struct node *node = node_held(fs, ino, &v);
	struct handle *h;
	int acc = fi->flags & O_ACCMODE, rc = 0;

	if (node == NULL || (rc = access_may_open(fs, req, ino, fi->flags)) < 0) {
		fuse_reply_err(req, node == NULL ? ENOENT : -rc);
		return;
	}
	/* Counted before the open is decided: whether it may go passthrough
	 * depends on every other open of the node (passthrough.c). */
	h = handle_new(fs, node);
	/* Every handle holds a descriptor or a buffer (a slab's file, a
	 * staging file whose name may go, a .kvcfs/ text): counted in the
	 * opener's share first (staging_quota.c). */
	h->fd_uid = fuse_req_ctx(req)->uid;
	rc = open_quota_take(fs, h->fd_uid);
	h->fd_counted = rc == 0;
	if (rc < 0) {
		handle_release(fs, h, req);
		fuse_reply_err(req, -rc);
		return;
	}
	switch (v.kind) {
	case NODE_METRICS:
	case NODE_REFUSALS:
	case NODE_RESCAN:
		rc = open_text(fs, req, &v, h, fi);
		if (rc > 0)
			return; /* the worker answers */
		break;
	case NODE_SLAB:
		if (acc == O_RDONLY && !(fi->flags & O_TRUNC)) {
			rc = open_slab(fs, node, &v.key, false, h, fi);
			if (rc == 0) /* verified: the kernel may read it itself */
				rc = passthrough_open_mode(fs, req, node,
							   fi->direct_io ? -1 : h->fd, h, fi);
		} else if (acc == O_RDWR && !(fi->flags & (O_TRUNC | O_APPEND)) &&
			   !fs->opts.read_only) {
			/* A program counting its own hits: its writes may
			 * change only the header's counters (hits.c), so
			 * they must all reach the daemon (set before the
			 * open decides how reads are served). The kernel
			 * takes no such open beside a passthrough one. */
			h->header_writes = true;
			fi->direct_io = 1; /* no page cache: no shared mapping */
			rc = open_slab(fs, node, &v.key, false, h, fi);
			if (rc == 0)
				rc = passthrough_open_mode(fs, req, node, -1, h, fi);
		}
		else if (acc == O_WRONLY && !(fi->flags & O_APPEND))
			rc = staging_open_private(fs, req, &v.key, node, h, fi);
		else
			rc = -EPERM; /* published slabs are immutable */
		break;
	case NODE_PAYLOAD:
		rc = acc == O_RDONLY ? open_slab(fs, node, &v.key, true, h, fi) : -EPERM;
		break;
	case NODE_STAGING:
		rc = staging_open(fs, req, node, &v, h, fi);
		break;
	default:
		rc = -EISDIR;
	}
	if (rc < 0) {
		handle_release(fs, h, req); /* whatever the open got before it failed */
		fuse_reply_err(req, -rc);
		return;
	}
	handle_reply_open(req, fs, h, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct fuse_entry_param e;
	struct kdir *dir;
	struct handle *h;
	int rc = parent_dir(fs, parent, &dir);

	if (rc == 0)
		rc = access_may_add(fs, req, dir);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->opts.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = staging_create(fs, req, dir, name, mode, fi, &e, &h);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* The creator went away: no handle and no lookup for the
		 * kernel to forget. */
		struct node *node = h->node;

		handle_release(fs, h, NULL);
		fs_lock(fs);
		node_unref(fs, node, 1, 0);
		fs_unlock(fs);
	}
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
		ssize_t n = staging_read(h, buf, size, off);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
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
	ssize_t n;

	(void)ino;
	if (h->header_writes) {
		n = hits_write_header(kvcfs_of(req), h, buf, size, off);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_write(req, (size_t)n);
		return;
	}
	if (h->stage == NULL || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = staging_write(h, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct handle *h = handle_of(fi);

	(void)ino;
	passthrough_closed(fs, h);
	fuse_reply_err(req, -staging_flush(fs, h));
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	(void)ino;
	fuse_reply_err(req, h->stage != NULL ? -staging_fsync(h, datasync) : 0);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_release(kvcfs_of(req), handle_of(fi), req);
	fuse_reply_err(req, 0);
}
