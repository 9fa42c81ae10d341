/* SPDX-License-Identifier: MIT */
/* Changing names: rename (which publishes), unlink, and what is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kvcfs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static bool slab_exists(struct kvcfs *fs, const char *name)
{
	return faccessat(kvc_store_dirfd(fs->store), name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The name stops naming the staging file; the file lives while open. */
static void drop_staging_name(struct kvcfs *fs, struct node *node)
{
	g_hash_table_remove(fs->staging, node->name);
	g_free(node->name);
	node->name = NULL;
	node->stage->publish_on_close = false;
	node_unref(fs, node, 0, 0);
}

static int rename_to_slab(struct kvcfs *fs, struct node *src, const char *newname,
			  const struct kvc_key *key, unsigned flags)
{
	int rc;

	if ((flags & RENAME_NOREPLACE) && slab_exists(fs, newname))
		return -EEXIST;
	rc = publish_stage(fs, src->stage, key, true);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->lock);
	src->stage->publish_on_close = false;
	node_became_slab(fs, src, key);
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

static int rename_staging(struct kvcfs *fs, struct node *src, const char *newname,
			  unsigned flags)
{
	struct node *dst;

	pthread_mutex_lock(&fs->lock);
	dst = g_hash_table_lookup(fs->staging, newname);
	if (dst == src) {
		pthread_mutex_unlock(&fs->lock);
		return 0;
	}
	if (dst != NULL && (flags & RENAME_NOREPLACE)) {
		pthread_mutex_unlock(&fs->lock);
		return -EEXIST;
	}
	if (dst != NULL)
		drop_staging_name(fs, dst);
	g_hash_table_remove(fs->staging, src->name);
	g_free(src->name);
	src->name = g_strdup(newname);
	src->stage->publish_on_close = false;
	g_hash_table_insert(fs->staging, src->name, src);
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kvc_key key, src_key;
	struct node *src;
	int rc, e;
	enum name_class cls;

	if (parent != INO_ROOT || newparent != INO_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	cls = classify_name(newname, &key, &e);
	if (cls == NAME_INVALID || cls == NAME_RESERVED) {
		fuse_reply_err(req, cls == NAME_RESERVED ? EPERM : e);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	src = g_hash_table_lookup(fs->staging, name);
	if (src != NULL)
		src->nlookup++; /* hold it across the unlocked publish */
	pthread_mutex_unlock(&fs->lock);
	if (src == NULL) {
		enum name_class src_cls = classify_name(name, &src_key, &e);
		if (src_cls == NAME_INVALID)
			rc = -e;
		else if (src_cls == NAME_RESERVED ||
			 (src_cls == NAME_SLAB && slab_exists(fs, name)))
			rc = -EPERM; /* published slabs are immutable */
		else
			rc = -ENOENT;
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (cls == NAME_SLAB)
		rc = rename_to_slab(fs, src, newname, &key, flags);
	else
		rc = rename_staging(fs, src, newname, flags);
	pthread_mutex_lock(&fs->lock);
	node_unref(fs, src, 1, 0);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -rc);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kvc_key key;
	struct kvc_err err;
	struct node *node;
	int e;
	enum name_class cls;

	if (parent != INO_ROOT) {
		fuse_reply_err(req, parent == INO_PAYLOAD_DIR || parent == INO_META_DIR ? EPERM : ENOTDIR);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	node = g_hash_table_lookup(fs->staging, name);
	if (node != NULL)
		drop_staging_name(fs, node);
	pthread_mutex_unlock(&fs->lock);
	if (node != NULL) {
		fuse_reply_err(req, 0);
		return;
	}
	cls = classify_name(name, &key, &e);
	switch (cls) {
	case NAME_INVALID:
		fuse_reply_err(req, e);
		return;
	case NAME_RESERVED:
		fuse_reply_err(req, EISDIR);
		return;
	case NAME_STAGING:
		fuse_reply_err(req, ENOENT);
		return;
	case NAME_SLAB:
		break;
	}
	if (!slab_exists(fs, name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs->opts.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (kvc_store_delete(fs->store, &key, &err) < 0) {
		fuse_reply_err(req, kvc_err_to_errno(&err));
		return;
	}
	index_remove(&fs->index, &key);
	forget_slab_entries(fs, &key, FORGET_FROM_ROOT_REQUEST);
	fuse_reply_err(req, 0);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)name;
	fuse_reply_err(req, parent == INO_ROOT ? EPERM : ENOTDIR);
}

/* The namespace is flat and holds only slabs and staging files. */
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EPERM);
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct statvfs st;

	(void)ino;
	if (fstatvfs(kvc_store_dirfd(fs->store), &st) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}
