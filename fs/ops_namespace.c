/* SPDX-License-Identifier: MIT */
/* Changing names: rename and link (which publish), unlink, and what is
 * refused. */
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

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kvc_key src_key;
	int rc, e;
	enum name_class src_cls;

	if (parent != INO_ROOT || newparent != INO_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((rc = access_may_rename(fs, req, name, newname)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = staging_rename(fs, name, newname, flags, fuse_req_ctx(req)->uid);
	if (rc == -ENOENT) {
		src_cls = classify_name(name, &src_key, &e);
		if (src_cls == NAME_INVALID)
			rc = -e;
		else if (src_cls == NAME_RESERVED ||
			 (src_cls == NAME_SLAB && kvc_store_name_taken(fs->store, name)))
			rc = -EPERM; /* published slabs are immutable */
	}
	fuse_reply_err(req, -rc);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kvc_key key;
	struct kvc_err err;
	int e;
	enum name_class cls;

	if (parent != INO_ROOT) {
		fuse_reply_err(req, parent == INO_PAYLOAD_DIR || parent == INO_META_DIR ? EPERM : ENOTDIR);
		return;
	}
	if ((e = access_may_remove(fs, req, name)) < 0) {
		fuse_reply_err(req, -e);
		return;
	}
	if (staging_unlink(fs, name) == 0) {
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
	if (!kvc_store_name_taken(fs->store, name)) {
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

/* Only link(staging, "<key>.kvc") is allowed: it publishes (stage_publish.c). */
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node *slab;
	int rc;

	if (newparent != INO_ROOT) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = access_may_add(fs, req);
	if (rc == 0)
		rc = staging_link(fs, ino, newname, &slab, fuse_req_ctx(req)->uid);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_node_entry(req, fs, slab);
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
