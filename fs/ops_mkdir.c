/* SPDX-License-Identifier: MIT */
/*
 * Directories as names: mkdir, rmdir, rename of a directory, and a
 * directory's mode, owner and times. Each is done on the backing
 * directory, which is the truth (another host sees it at once), with the
 * caller's permissions checked first (access.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Why name may not be made a directory of dir (an errno), or 0. */
static int dir_name_refused(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	struct kvc_key key;
	int e;
	enum name_class cls = classify_name(name, dir == fs->root_dir, &key, &e);

	if (cls == NAME_INVALID)
		return e;
	if (cls == NAME_RESERVED)
		return EEXIST; /* payload/ and .kvcfs/ are there */
	/* A key's name, or one the store keeps for its temps: never a
	 * directory (the store would take it for junk under a slab's name). */
	if (!dir_name_ok(name, dir == fs->root_dir))
		return cls == NAME_SLAB && kvc_store_name_taken(dir->store, name) ? EEXIST : EPERM;
	return staging_is_named(fs, dir, name) ? EEXIST : 0;
}

/* The new directory is its maker's, as on a local filesystem: owner and
 * group (the parent's group when that is set-group-ID, with the bit), and
 * exactly the mode asked (the kernel applied the umask; the daemon's own
 * must not apply too). */
static int give_to_maker(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, int fd,
			 mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat parent;
	bool setgid = fstat(kvc_store_dirfd(dir->store), &parent) == 0 &&
		      (parent.st_mode & S_ISGID);

	if (atomic_load(&fs->access.chown_temps) &&
	    fchown(fd, ctx->uid, setgid ? parent.st_gid : ctx->gid) < 0)
		return -errno;
	if (fchmod(fd, (mode & 07777) | (setgid ? S_ISGID : 0)) < 0)
		return -errno;
	return 0;
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kdir *dir, *made = NULL;
	struct node *node = NULL;
	int rc = parent_dir(fs, parent, &dir), fd;

	if (rc == 0 && fs->opts.read_only)
		rc = -EROFS;
	if (rc == 0)
		rc = access_may_add(fs, req, dir);
	if (rc == 0)
		rc = -dir_name_refused(fs, dir, name);
	if (rc == 0 && mkdirat(kvc_store_dirfd(dir->store), name, 0700) < 0)
		rc = -errno;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* Made 0700, handed over, then opened to the mount: nobody else
	 * can put anything in it before its maker owns it. */
	fd = openat(kvc_store_dirfd(dir->store), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	rc = fd < 0 ? -errno : give_to_maker(fs, req, dir, fd, mode);
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		rc = kdir_lookup(fs, dir, name, &made);
	if (rc == 0) {
		fs_lock(fs);
		node = kdir_node(fs, made);
		fs_unlock(fs);
		kdir_unref(fs, made);
		rc = node == NULL ? -ENOENT : 0;
	}
	if (rc < 0) {
		/* Not given to its maker, or more than dirs_max: not made. */
		(void)unlinkat(kvc_store_dirfd(dir->store), name, AT_REMOVEDIR);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_node_entry(req, fs, node);
}

/* The payload view's entry of a directory that went or moved: forgotten
 * by the notifier's thread (forget.c says why never here). */
static void forget_payload_entry(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	fuse_ino_t payload_ino;

	fs_lock(fs);
	payload_ino = dir->payload_ino;
	fs_unlock(fs);
	if (payload_ino != 0)
		notify_inval_entry(&fs->notifier, payload_ino, name);
}

/* What a name that is no directory of the mount answers to rmdir. */
static int not_a_dir(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	struct kvc_key key;
	int e;

	if (classify_name(name, dir == fs->root_dir, &key, &e) == NAME_INVALID)
		return -e;
	return staging_is_named(fs, dir, name) || kvc_store_name_taken(dir->store, name)
		       ? -ENOTDIR : -ENOENT;
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct kdir *dir, *sub = NULL;
	bool staging;
	int rc = parent_dir(fs, parent, &dir);

	if (rc == 0)
		rc = access_may_remove(fs, req, dir, name);
	if (rc == 0 && dir == fs->root_dir &&
	    (strcmp(name, PAYLOAD_DIR_NAME) == 0 || strcmp(name, META_DIR_NAME) == 0))
		rc = -EPERM;
	if (rc == 0 && !dir_name_ok(name, dir == fs->root_dir))
		rc = not_a_dir(fs, dir, name);
	if (rc == 0 && (rc = kdir_lookup(fs, dir, name, &sub)) == -ENOSPC)
		rc = -ENOENT; /* beyond dirs_max: not shown */
	else if (rc == -ENOENT)
		rc = not_a_dir(fs, dir, name);
	if (rc == 0 && fs->opts.read_only)
		rc = -EROFS;
	if (rc == 0) {
		/* Its staging files are names only this mount knows. */
		fs_lock(fs);
		staging = g_hash_table_size(sub->staging) > 0;
		fs_unlock(fs);
		if (staging)
			rc = -ENOTEMPTY;
	}
	/* The backing directory must be empty: slabs, subdirectories and
	 * the temps of files still being written (or still open after
	 * their names went) all keep it. */
	if (rc == 0 && unlinkat(kvc_store_dirfd(dir->store), name, AT_REMOVEDIR) < 0)
		rc = errno == EEXIST ? -ENOTEMPTY : -errno;
	if (rc == 0) {
		fs_lock(fs);
		kdir_forget(fs, sub);
		fs_unlock(fs);
		forget_payload_entry(fs, dir, name);
	}
	if (sub != NULL)
		kdir_unref(fs, sub);
	fuse_reply_err(req, -rc);
}

int dir_rename(struct kvcfs *fs, struct kdir *dir, const char *name, struct kdir *newdir,
	       const char *newname, unsigned flags)
{
	struct kdir *moved = NULL, *replaced = NULL;
	bool target_is_dir;
	int rc;

	if (!names_a_dir(fs, dir, name))
		return -ENOENT;
	if (fs->opts.read_only)
		return -EROFS;
	rc = -dir_name_refused(fs, newdir, newname);
	if (rc == -EEXIST && staging_is_named(fs, newdir, newname))
		rc = (flags & RENAME_NOREPLACE) ? -EEXIST : -ENOTDIR;
	if (rc < 0)
		return rc;
	target_is_dir = names_a_dir(fs, newdir, newname);
	/* A directory it replaces must hold no staging file of this mount
	 * (their temps would keep the backing one non-empty anyway). */
	if (target_is_dir && kdir_lookup(fs, newdir, newname, &replaced) == 0) {
		bool staging;
		fs_lock(fs);
		staging = g_hash_table_size(replaced->staging) > 0;
		fs_unlock(fs);
		if (staging) {
			kdir_unref(fs, replaced);
			return -ENOTEMPTY;
		}
	}
	if (renameat2(kvc_store_dirfd(dir->store), name, kvc_store_dirfd(newdir->store), newname,
		      flags & RENAME_NOREPLACE) < 0)
		rc = errno == EEXIST && !(flags & RENAME_NOREPLACE) ? -ENOTEMPTY : -errno;
	if (rc == 0 && replaced != NULL) {
		fs_lock(fs);
		kdir_forget(fs, replaced);
		fs_unlock(fs);
	}
	if (replaced != NULL)
		kdir_unref(fs, replaced);
	if (rc < 0)
		return rc;
	/* Where it is now (its identity did not change). */
	if (kdir_lookup(fs, newdir, newname, &moved) == 0)
		kdir_unref(fs, moved);
	forget_payload_entry(fs, dir, name);
	return 0;
}

int dir_setattr(struct kvcfs *fs, struct kdir *dir, const struct stat *attr, int to_set)
{
	int fd = kvc_store_dirfd(dir->store);

	if (fs->opts.read_only)
		return -EROFS;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchown(fd, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
		   (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1) < 0)
		return -errno;
	if ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0)
		return -errno;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (to_set & FUSE_SET_ATTR_ATIME)
			times[0] = (to_set & FUSE_SET_ATTR_ATIME_NOW)
					   ? (struct timespec){ .tv_nsec = UTIME_NOW } : attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME)
			times[1] = (to_set & FUSE_SET_ATTR_MTIME_NOW)
					   ? (struct timespec){ .tv_nsec = UTIME_NOW } : attr->st_mtim;
		if (futimens(fd, times) < 0)
			return -errno;
	}
	return 0;
}
