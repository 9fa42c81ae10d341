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

/* The directory of the mount a request names as parent: 0 and *dir, or
 * the errno (the payload view and .kvcfs hold no names to change). */
int parent_dir(struct kvcfs *fs, fuse_ino_t parent, struct kdir **dir)
{
	struct node_view v;

	if (node_held(fs, parent, &v) == NULL)
		return -ENOENT;
	if (!node_kind_is_cache_dir(v.kind))
		return node_kind_is_dir(v.kind) ? -EPERM : -ENOTDIR;
	*dir = v.dir;
	return 0;
}

/* A rename of what is not a staging file: a directory, or a slab. */
static int rename_other(struct kvcfs *fs, struct kdir *dir, const char *name,
			struct kdir *newdir, const char *newname, unsigned flags)
{
	struct kvc_key key;
	int e;
	enum name_class cls = classify_name(name, dir == fs->root_dir, &key, &e);

	if (cls == NAME_INVALID)
		return -e;
	if (cls == NAME_RESERVED)
		return -EPERM;
	if (cls == NAME_SLAB)
		/* Published slabs are immutable; into another directory, a
		 * slab must be published there (mv copies after EXDEV). */
		return !kvc_store_name_taken(dir->store, name) ? -ENOENT
		       : newdir != dir ? -EXDEV : -EPERM;
	return dir_rename(fs, dir, name, newdir, newname, flags);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kdir *dir, *newdir;
	int rc;

	rc = parent_dir(fs, parent, &dir);
	if (rc == 0)
		rc = parent_dir(fs, newparent, &newdir);
	if (rc == 0 && (flags & ~(unsigned)RENAME_NOREPLACE))
		rc = -EINVAL;
	if (rc == 0)
		rc = access_may_rename(fs, req, dir, name, newdir, newname);
	/* A directory moved to another parent changes its "..": write
	 * permission on it, as on a local filesystem. */
	if (rc == 0 && newdir != dir && names_a_dir(fs, dir, name))
		rc = access_may_move_dir(fs, req, dir, name);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* A staging file stays in its directory: its bytes are a temp of
	 * that directory's backing one (mv copies after EXDEV). */
	if (newdir == dir)
		rc = staging_rename(fs, dir, name, newname, flags, fuse_req_ctx(req)->uid);
	else
		rc = staging_is_named(fs, dir, name) ? -EXDEV : -ENOENT;
	if (rc == -ENOENT)
		rc = rename_other(fs, dir, name, newdir, newname, flags);
	fuse_reply_err(req, -rc);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kvc_key key;
	struct kvc_err err;
	struct kdir *dir;
	int e;
	enum name_class cls;

	if ((e = parent_dir(fs, parent, &dir)) < 0 ||
	    (e = access_may_remove(fs, req, dir, name)) < 0) {
		fuse_reply_err(req, -e);
		return;
	}
	if (staging_unlink(fs, dir, name) == 0) {
		fuse_reply_err(req, 0);
		return;
	}
	cls = classify_name(name, dir == fs->root_dir, &key, &e);
	switch (cls) {
	case NAME_INVALID:
		fuse_reply_err(req, e);
		return;
	case NAME_RESERVED:
		fuse_reply_err(req, EISDIR);
		return;
	case NAME_STAGING:
		fuse_reply_err(req, names_a_dir(fs, dir, name) ? EISDIR : ENOENT);
		return;
	case NAME_SLAB:
		break;
	}
	if (!kvc_store_name_taken(dir->store, name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs->opts.read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (kvc_store_delete(dir->store, &key, &err) < 0) {
		fuse_reply_err(req, kvc_err_to_errno(&err));
		return;
	}
	index_remove(&dir->index, &key);
	forget_slab_entries(fs, dir, &key, FORGET_FROM_DIR_REQUEST);
	fuse_reply_err(req, 0);
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

/* Only link(staging, "<key>.kvc") is allowed, in the staging file's own
 * directory: it publishes (stage_publish.c). */
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node *slab;
	struct kdir *dir;
	int rc = parent_dir(fs, newparent, &dir);

	if (rc == 0)
		rc = access_may_add(fs, req, dir);
	if (rc == 0)
		rc = staging_link(fs, ino, dir, newname, &slab, fuse_req_ctx(req)->uid);
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
