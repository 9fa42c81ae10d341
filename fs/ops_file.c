/* SPDX-License-Identifier: MIT */
/* Opening, reading, writing and closing files: which kind of file a
 * request is for decides where it goes (staging.c, open_slab.c, verified.c). */
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

/* req: the release's, or NULL when the open's reply failed. */
static void handle_release(struct kvcfs *fs, struct handle *h, fuse_req_t req)
{
	passthrough_detach(fs, req, h);
	if (h->fd >= 0)
		close(h->fd);
	if (h->pins)
		index_closed(&fs->index, &h->key);
	if (h->pins && h->tier_index != &fs->index)
		index_closed(h->tier_index, &h->key);
	verified_release(h);
	if (h->stage != NULL)
		staging_release(fs, h);
	pthread_mutex_lock(&fs->lock);
	g_hash_table_remove(fs->open_files, h);
	node_unref(fs, h->node, 0, 1);
	pthread_mutex_unlock(&fs->lock);
	g_free(h->text);
	g_free(h);
}

static void reply_open_handle(fuse_req_t req, struct kvcfs *fs, struct handle *h,
			      struct fuse_file_info *fi)
{
	pthread_mutex_lock(&fs->lock);
	g_hash_table_add(fs->open_files, h);
	pthread_mutex_unlock(&fs->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_release(fs, h, NULL); /* the opener went away */
}

static int open_text(struct kvcfs *fs, const struct node_view *v, struct handle *h,
		     struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	if (v->kind == NODE_METRICS) {
		h->text = metrics_render(fs, &h->text_len);
	} else {
		uint64_t bytes, count;
		int rc = rescan_now(fs);
		if (rc < 0)
			return rc;
		index_totals(&fs->index, &bytes, &count);
		h->text = g_strdup_printf("slabs %" G_GUINT64_FORMAT "\nbytes %" G_GUINT64_FORMAT "\n",
					  count, bytes);
		h->text_len = strlen(h->text);
	}
	fi->direct_io = 1; /* its size changes between stat and read */
	return 0;
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
	h = g_new0(struct handle, 1);
	h->fd = -1;
	h->node = node;
	/* Counted before the open is decided: whether it may go passthrough
	 * depends on every other open of the node (passthrough.c). */
	pthread_mutex_lock(&fs->lock);
	node->open_count++;
	pthread_mutex_unlock(&fs->lock);
	switch (v.kind) {
	case NODE_METRICS:
	case NODE_RESCAN:
		rc = open_text(fs, &v, h, fi);
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
		/* Whatever the open got before it failed. */
		passthrough_detach(fs, req, h);
		if (h->fd >= 0)
			close(h->fd);
		if (h->pins)
			index_closed(&fs->index, &h->key);
		verified_release(h);
		g_free(h->text);
		g_free(h);
		pthread_mutex_lock(&fs->lock);
		node_unref(fs, node, 0, 1);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_open_handle(req, fs, h, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	int rc;

	if (parent != INO_ROOT) {
		fuse_reply_err(req, parent == INO_PAYLOAD_DIR || parent == INO_META_DIR ? EPERM : ENOTDIR);
		return;
	}
	if ((rc = access_may_add(fs, req)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->opts.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	staging_create(req, name, mode, fi);
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
		n = hits_write_header(kvcfs_of(req), &h->key, h->fd, buf, size, off);
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

/*
 * close(2) returns before its RELEASE reaches us, and an unmount right then
 * aborts the connection: the kernel drops the RELEASEs still queued (a FUSE
 * mount that is not fuseblk gets no DESTROY to wait for them). Those opens
 * are released here, once no request can come any more, as their RELEASE
 * would have: a refused cp's temp goes, nothing is left open.
 */
void handles_release_lost(struct kvcfs *fs)
{
	GList *files, *dirs;

	pthread_mutex_lock(&fs->lock);
	files = g_hash_table_get_keys(fs->open_files);
	dirs = g_hash_table_get_keys(fs->open_dirs);
	g_hash_table_steal_all(fs->open_files);
	g_hash_table_steal_all(fs->open_dirs);
	pthread_mutex_unlock(&fs->lock);
	for (GList *l = files; l != NULL; l = l->next)
		handle_release(fs, l->data, NULL);
	for (GList *l = dirs; l != NULL; l = l->next)
		g_ptr_array_unref(l->data);
	g_list_free(files);
	g_list_free(dirs);
}
