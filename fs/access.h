/* SPDX-License-Identifier: MIT */
/* Who may do what (access.c), and what stat shows (attr.c). Included
 * through kvcfs.h, which declares what it uses. */
#ifndef KVCFS_ACCESS_H
#define KVCFS_ACCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

/* Who may do what (access.c). Set before serving; chown_temps may be
 * turned off once, lock-free. */
struct kvcfs_access {
	bool kernel_checks;        /* default_permissions: the kernel checks
				    * modes first; kvcfs re-checks only
				    * changes to the root's names */
	atomic_bool chown_temps;   /* running as root: temps (so slabs) are
				    * chowned to their creator */
};

/* access.c: Unix permissions against the caller's credentials; each
 * returns 0, or -EACCES, -EPERM (sticky bit, ownership) or -EROFS. */
void access_init(struct kvcfs *fs);           /* before serving; says what is off */
/* Always checked (the kernel's view may be stale): a new name in a
 * directory, a removed one, and a rename (its target counts as removed if
 * it exists). */
int access_may_add(struct kvcfs *fs, fuse_req_t req, struct kdir *dir);
int access_may_remove(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name);
int access_may_rename(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name,
		      struct kdir *newdir, const char *newname);
/* Write permission on the directory name in dir, to move it to another
 * parent. */
int access_may_move_dir(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name);
/* Checked only without default_permissions (the kernel checks them with). */
int access_may_lookup(struct kvcfs *fs, fuse_req_t req, fuse_ino_t parent);
int access_may_opendir(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino);
int access_may_open(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int flags);
int access_may_setattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino,
		       const struct stat *attr, int to_set);
int access_may_xattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, bool set);
/* access(2): mask of R_OK, W_OK, X_OK on ino, always checked. */
int access_may(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int mask);
/* A new stage's owner (its creator; its directory's group if that is
 * set-group-ID),
 * and its temp chowned to match when running as root. */
void stage_set_owner(struct kvcfs *fs, fuse_req_t req, struct staging *stage);
/* After a chown of a staging file: its temp follows (stage lock held). */
void stage_follow_chown(struct kvcfs *fs, struct staging *stage);


/* attr.c */
/* What stat shows for node, and how long the kernel may cache it. */
int attr_of_node(struct kvcfs *fs, struct node *node, struct stat *st, double *timeout);
/* How long the kernel may cache node's name (attr_timeout: its stat's). */
double entry_timeout_of(struct kvcfs *fs, struct node *node, double attr_timeout);
/* stat of a slab or payload node whose name went while it is open: the
 * file its opens read (they go on reading it); -ENOENT when none is. */
int attr_of_open_slab(struct kvcfs *fs, struct node *node, bool payload_view, struct stat *st);
int attr_of_slab(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
		 bool payload_view, struct stat *st);

#endif
