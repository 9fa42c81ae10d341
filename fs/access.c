/* SPDX-License-Identifier: MIT */
/*
 * Who may do what on the mount: Unix permissions, as a local filesystem
 * checks them.
 *
 * The mount root is the backing root: it shows that directory's owner,
 * group and mode (attr.c), and creating, renaming or removing a name in it
 * needs write and search permission on it, with the sticky bit honoured.
 * Slabs show 0444 and their backing file's owner; staging files their
 * creator and the mode they were created with.
 *
 * Two checkers, one rule:
 * - the kernel, with default_permissions (on unless -o
 *   no_default_permissions): it checks every open, lookup, setattr and
 *   xattr request against the attributes we report, with the caller's full
 *   credentials;
 * - kvcfs itself, here. Changes to the namespace (create, rename, link,
 *   unlink) are always checked here too, against the backing root's mode
 *   and the current owner of the name, as they are now (the kernel's view
 *   may be a cached one, or know nothing of a slab another mount just
 *   published under a rename's target); they are what could poison the
 *   cache or destroy it. Everything else is checked here only without
 *   default_permissions.
 *
 * kvcfs knows a caller by its fsuid, fsgid and supplementary groups (read
 * from /proc); uid 0 is the only privileged caller it recognises (the
 * kernel, with default_permissions, also honours capabilities).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

#define MAY_READ 4
#define MAY_WRITE 2
#define MAY_EXEC 1
#define MAX_GROUPS 256

/* The credentials of one request's caller; supplementary groups are read
 * only when a check needs them. */
struct caller {
	fuse_req_t req;
	uid_t uid;
	gid_t gid;
	int ngroups;  /* -1: not read yet */
	gid_t groups[MAX_GROUPS];
};

static void caller_of(fuse_req_t req, struct caller *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	c->req = req;
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	c->ngroups = -1;
}

static bool in_group(struct caller *c, gid_t gid)
{
	if (gid == c->gid)
		return true;
	if (c->ngroups < 0) {
		/* Fails when the caller is in a pid namespace we cannot see
		 * into, or gone: then only its primary group counts. */
		int n = fuse_req_getgroups(c->req, MAX_GROUPS, c->groups);
		c->ngroups = n < 0 ? 0 : n > MAX_GROUPS ? MAX_GROUPS : n;
	}
	for (int i = 0; i < c->ngroups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/* generic_permission() without ACLs. */
static int may(struct caller *c, const struct stat *st, int mask)
{
	unsigned bits;

	if (c->uid == 0)
		return 0;
	if (c->uid == st->st_uid)
		bits = (st->st_mode >> 6) & 7;
	else if (in_group(c, st->st_gid))
		bits = (st->st_mode >> 3) & 7;
	else
		bits = st->st_mode & 7;
	return ((int)bits & mask) == mask ? 0 : -EACCES;
}

static int dir_stat(struct kdir *dir, struct stat *st)
{
	return fstat(kvc_store_dirfd(dir->store), st) < 0 ? -errno : 0;
}

/* Write and search permission on a directory, for a change of its names. */
static int may_change_dir(struct kvcfs *fs, struct caller *c, struct kdir *dir,
			  struct stat *dst)
{
	int rc = dir_stat(dir, dst);

	if (rc < 0)
		return rc;
	if (fs->opts.read_only)
		return -EROFS;
	return may(c, dst, MAY_WRITE | MAY_EXEC);
}

/* Who owns what name names now, in dir: a staging file's creator, a slab's
 * backing file's owner, a directory's owner. false when it names nothing. */
static bool owner_of_name(struct kvcfs *fs, struct kdir *dir, const char *name, uid_t *uid)
{
	struct node *node;
	struct stat st;
	bool found = false;

	fs_lock(fs);
	node = g_hash_table_lookup(dir->staging, name);
	if (node != NULL) {
		*uid = node->stage->uid;
		found = true;
	}
	fs_unlock(fs);
	if (found)
		return true;
	if (fstatat(kvc_store_dirfd(dir->store), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	*uid = st.st_uid;
	return true;
}

/* The sticky bit: only the name's owner, the directory's owner or root may
 * remove or replace it. */
static int may_remove_name(struct kvcfs *fs, struct caller *c, struct kdir *dir,
			   const struct stat *dst, const char *name)
{
	uid_t owner;

	if (!(dst->st_mode & S_ISVTX) || c->uid == 0 || c->uid == dst->st_uid)
		return 0;
	if (!owner_of_name(fs, dir, name, &owner))
		return 0; /* nothing to remove: the handler says ENOENT */
	return owner == c->uid ? 0 : -EPERM;
}

int access_may_add(struct kvcfs *fs, fuse_req_t req, struct kdir *dir)
{
	struct caller c;
	struct stat dst;

	caller_of(req, &c);
	return may_change_dir(fs, &c, dir, &dst);
}

int access_may_remove(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name)
{
	struct caller c;
	struct stat dst;
	int rc;

	caller_of(req, &c);
	rc = may_change_dir(fs, &c, dir, &dst);
	return rc < 0 ? rc : may_remove_name(fs, &c, dir, &dst, name);
}

int access_may_rename(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name,
		      struct kdir *newdir, const char *newname)
{
	struct caller c;
	struct stat dst, newdst;
	int rc;

	caller_of(req, &c);
	rc = may_change_dir(fs, &c, dir, &dst);
	if (rc == 0)
		rc = may_remove_name(fs, &c, dir, &dst, name);
	if (rc == 0 && newdir != dir)
		rc = may_change_dir(fs, &c, newdir, &newdst);
	else
		newdst = dst;
	if (rc == 0)
		rc = may_remove_name(fs, &c, newdir, &newdst, newname); /* replacing it */
	return rc;
}

int access_may_move_dir(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name)
{
	struct caller c;
	struct stat st;

	(void)fs;
	caller_of(req, &c);
	if (fstatat(kvc_store_dirfd(dir->store), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return may(&c, &st, MAY_WRITE);
}

/* Search permission on every directory on the way to the node: the root
 * and each directory from it down to the one the node is in (the
 * directory itself, or a payload view's, is the node's own check). The
 * kernel's cached entries skip lookups, so a lookup's check is not
 * enough: a directory closed to others closes everything below it. */
static int may_reach(struct kvcfs *fs, struct caller *c, fuse_ino_t ino)
{
	struct node_view v;
	struct stat st;
	GPtrArray *way;
	int rc;

	if (ino == INO_ROOT)
		return 0;
	rc = dir_stat(fs->root_dir, &st);
	if (rc == 0)
		rc = may(c, &st, MAY_EXEC);
	if (rc < 0 || node_held(fs, ino, &v) == NULL || v.dir == NULL)
		return rc;
	way = kdir_way(fs, v.dir, v.kind == NODE_DIR || v.kind == NODE_PAYLOAD_DIR);
	for (guint i = 0; i < way->len && rc == 0; i++) {
		rc = dir_stat(g_ptr_array_index(way, i), &st);
		if (rc == 0)
			rc = may(c, &st, MAY_EXEC);
	}
	dirs_snapshot_free(fs, way);
	return rc;
}

static int may_node(struct kvcfs *fs, struct caller *c, fuse_ino_t ino, struct stat *st,
		    int mask)
{
	struct node *node = node_held(fs, ino, NULL);
	int rc;

	if (node == NULL)
		return -ENOENT;
	rc = may_reach(fs, c, ino);
	if (rc == 0)
		rc = attr_of_node(fs, node, st, NULL);
	if (rc == 0)
		rc = may(c, st, mask);
	return rc;
}

/* The checks the kernel makes itself under default_permissions. */
static int may_unless_kernel_checks(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct caller c;
	struct stat st;

	if (fs->access.kernel_checks)
		return 0;
	caller_of(req, &c);
	return may_node(fs, &c, ino, &st, mask);
}

int access_may_lookup(struct kvcfs *fs, fuse_req_t req, fuse_ino_t parent)
{
	return may_unless_kernel_checks(fs, req, parent, MAY_EXEC);
}

int access_may_open(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int flags)
{
	int mask = 0;

	if ((flags & O_ACCMODE) != O_WRONLY)
		mask |= MAY_READ;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		mask |= MAY_WRITE;
	return may_unless_kernel_checks(fs, req, ino, mask);
}

int access_may(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct caller c;
	struct stat st;
	int rc;

	caller_of(req, &c);
	rc = may_node(fs, &c, ino, &st, mask & (R_OK | W_OK | X_OK));
	if (rc == 0 && (mask & W_OK) && fs->opts.read_only)
		rc = -EROFS;
	return rc;
}

int access_may_setattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino,
		       const struct stat *attr, int to_set)
{
	const int times = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME;
	const int times_now = FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;
	struct caller c;
	struct stat st;
	bool owner;
	int rc;

	if (fs->access.kernel_checks)
		return 0;
	caller_of(req, &c);
	rc = may_node(fs, &c, ino, &st, 0);
	if (rc < 0)
		return rc;
	owner = c.uid == 0 || c.uid == st.st_uid;
	if ((to_set & FUSE_SET_ATTR_MODE) && !owner)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_UID) && c.uid != 0 && attr->st_uid != st.st_uid)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) && c.uid != 0 && attr->st_gid != st.st_gid &&
	    !(owner && in_group(&c, attr->st_gid)))
		return -EPERM;
	/* Explicit times are the owner's to set; "now" anyone's who may
	 * write the file. */
	if ((to_set & times) && !(to_set & times_now) && !owner)
		return -EPERM;
	if ((to_set & times_now) && !owner && may(&c, &st, MAY_WRITE) < 0)
		return -EACCES;
	return (to_set & FUSE_SET_ATTR_SIZE) ? may(&c, &st, MAY_WRITE) : 0;
}

int access_may_xattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, bool set)
{
	return may_unless_kernel_checks(fs, req, ino, set ? MAY_WRITE : MAY_READ);
}

int access_may_opendir(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino)
{
	return may_unless_kernel_checks(fs, req, ino, MAY_READ);
}

/* Is user_allow_other on a line of its own in /etc/fuse.conf? */
static bool fuse_conf_allows_other(void)
{
	char line[256];
	bool allowed = false;
	FILE *f = fopen("/etc/fuse.conf", "re");

	if (f == NULL)
		return false;
	while (!allowed && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, " \t\r\n")] = '\0';
		allowed = strcmp(line, "user_allow_other") == 0;
	}
	fclose(f);
	return allowed;
}

void access_init(struct kvcfs *fs)
{
	uid_t euid = geteuid();

	fs->access.kernel_checks = fs->opts.default_permissions;
	atomic_store(&fs->access.chown_temps, euid == 0 && !fs->opts.read_only);
	if (!fs->access.kernel_checks)
		fprintf(stderr, "kvcfs: default_permissions: off (-o no_default_permissions): "
				"kvcfs checks permissions itself; cached lookups and stat are "
				"not checked\n");
	if (euid == 0)
		return;
	/* What needs privilege, and is off: one line each. */
	fprintf(stderr, "kvcfs: publisher ownership: off (not root): slabs and temps belong "
			"to uid %u; stat shows staging files as their creator's\n", (unsigned)euid);
	if (!fs->opts.allow_other)
		fprintf(stderr, "kvcfs: allow_other: off (not given): only uid %u can use the "
				"mount\n", (unsigned)euid);
	else if (!fuse_conf_allows_other())
		fprintf(stderr, "kvcfs: allow_other: off: /etc/fuse.conf has no user_allow_other "
				"line, so fusermount3 will refuse this mount\n");
}
