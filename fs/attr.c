/* SPDX-License-Identifier: MIT */
/* What stat(2) shows for each kind of node. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

/* Header times are u64 and may be absurd (the vectors use 2^64-1); the
 * kernel wants a signed time. */
static time_t clamp_time(uint64_t t)
{
	return t > (uint64_t)INT64_MAX ? (time_t)INT64_MAX : (time_t)t;
}

static void fill_slab(struct stat *st, const struct stat *real, uint64_t created,
		      uint64_t last_used)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = real->st_uid;
	st->st_gid = real->st_gid;
	st->st_size = real->st_size;
	st->st_blocks = real->st_blocks;
	st->st_blksize = real->st_blksize;
	st->st_mtim.tv_sec = clamp_time(created);
	st->st_atim.tv_sec = clamp_time(last_used);
	st->st_ctim = real->st_ctim;
}

/* A descriptor of the file an open handle of node reads (dup'd: the
 * handle may be released meanwhile), and its payload length; -1: none.
 * Rare (a name that went while open): a walk of the open files. */
static int open_file_of(struct kvcfs *fs, struct node *node, uint64_t *length)
{
	GHashTableIter it;
	gpointer key;
	int fd = -1;

	fs_lock(fs);
	g_hash_table_iter_init(&it, fs->open_files);
	while (fd < 0 && g_hash_table_iter_next(&it, &key, NULL)) {
		const struct handle *h = key;

		if (h->node == node && h->fd >= 0 && h->stage == NULL) {
			fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
			*length = h->length;
		}
	}
	fs_unlock(fs);
	return fd;
}

int attr_of_open_slab(struct kvcfs *fs, struct node *node, bool payload_view, struct stat *st)
{
	uint8_t head[KVC_FIXED_SIZE];
	struct kvc_fixed f;
	struct stat real;
	uint64_t length = 0;
	int fd = open_file_of(fs, node, &length), rc = -ENOENT;

	if (fd < 0)
		return rc;
	if (fstat(fd, &real) == 0 && pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
	    kvc_fixed_is_v1(head)) {
		kvc_fixed_decode(head, &f);
		fill_slab(st, &real, f.creation_time, f.last_used_time);
		if (payload_view)
			st->st_size = (off_t)length;
		rc = 0;
	}
	close(fd);
	return rc;
}

int attr_of_slab(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
		 bool payload_view, struct stat *st)
{
	struct kvc_slab_info info;
	struct kvc_err err;

	if (!payload_view) {
		/* The times are in the header, and the index has read it: one
		 * fstatat instead of an open and a read, for ls -l of many. */
		char name[KVC_SLAB_NAME_LEN + 1];
		uint64_t created, last_used;
		struct stat real;

		kvc_key_slab_name(key, name);
		if (fstatat(kvc_store_dirfd(dir->store), name, &real, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (S_ISREG(real.st_mode) &&
		    index_times(&dir->index, key, (uint64_t)real.st_size, &created, &last_used)) {
			fill_slab(st, &real, created, last_used);
			st->st_nlink += links_to(fs, key, &real);
			return 0;
		}
	}
	if (kvc_store_stat(dir->store, key, &info, &err) < 0)
		return -kvc_err_to_errno(&err);
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = payload_view ? 1 : 1 + links_to(fs, key, &info.st);
	st->st_uid = info.st.st_uid;
	st->st_gid = info.st.st_gid;
	st->st_size = info.st.st_size;
	if (payload_view)
		st->st_size = info.header_ok && info.payload_length <= (uint64_t)info.st.st_size
				      ? (off_t)info.payload_length : 0;
	st->st_blocks = info.st.st_blocks;
	st->st_blksize = info.st.st_blksize;
	st->st_mtim.tv_sec = clamp_time(info.creation_time);
	st->st_atim.tv_sec = clamp_time(info.last_used_time);
	st->st_ctim = info.st.st_ctim;
	return 0;
}

/* perm 0: the backing directory's own mode, read now (so a chmod of it
 * shows, and is what the kernel checks, within the directory's attribute
 * timeout); the kernel's write check on -o ro answers EROFS anyway, but ls
 * should not show writable bits. */
static void attr_of_dir(struct kvcfs *fs, struct kdir *dir, mode_t perm, struct stat *st)
{
	struct stat root;

	memset(st, 0, sizeof(*st));
	if (fstat(kvc_store_dirfd(dir->store), &root) == 0) {
		st->st_uid = root.st_uid;
		st->st_gid = root.st_gid;
		st->st_atim = root.st_atim;
		st->st_mtim = root.st_mtim;
		st->st_ctim = root.st_ctim;
		if (perm == 0)
			perm = root.st_mode & (fs->opts.read_only ? 07555 : 07777);
	}
	if (perm == 0)
		perm = 0700; /* the directory is gone: only its owner may try */
	st->st_mode = S_IFDIR | perm;
	st->st_nlink = 2;
	if (dir != fs->root_dir && root.st_nlink >= 2)
		st->st_nlink = root.st_nlink; /* 2 + its subdirectories */
	st->st_size = 4096;
}

/* While handles of a slab node are open, its size is the size of the
 * file they read, whatever the name holds by now: the kernel clamps reads
 * at the size it was last told. */
static void size_as_served(struct kvcfs *fs, struct node *node, struct stat *st)
{
	fs_lock(fs);
	if (node->open_count > 0 && node->served_ino != 0)
		st->st_size = node->served_size;
	fs_unlock(fs);
}

static double timeout_of(const struct kvcfs *fs, enum node_kind kind)
{
	switch (kind) {
	case NODE_SLAB:
	case NODE_PAYLOAD:
		/* Immutable content: only the hit count, the last use and other
		 * mounts' deletes can make a cached stat stale. */
		return fs->opts.entry_timeout;
	case NODE_STAGING:
	case NODE_METRICS:
	case NODE_REFUSALS:
	case NODE_RESCAN:
		return 0.0;
	default:
		return 1.0;
	}
}

/* LINKED, and the slab's name is gone since (rm, eviction): the staging
 * name still names the file, as any name of a hard link does after the
 * other is removed, and reads still get it (published_fd). */
static int linked_file_attr(struct staging *stage, struct stat *st)
{
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published_fd >= 0)
		rc = fstat(stage->published_fd, st) < 0 ? -errno : 0;
	pthread_rwlock_unlock(&stage->lock);
	if (rc == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	}
	return rc;
}

/* A staging name that link(2) published, and whose file the key's name
 * still holds (staging_names_the_slab: the caller asked), is that slab's
 * other name (links.c): the inode number of the key's node, or 0 when the
 * kernel knows no such node. */
static fuse_ino_t ino_of_linked_slab(struct kvcfs *fs, struct staging *stage,
				     const struct kvc_key *key)
{
	struct node *slab;
	fuse_ino_t ino = 0;

	fs_lock(fs);
	slab = g_hash_table_lookup(stage->dir->slab_nodes, key);
	if (slab != NULL && stage->link_counted)
		ino = slab->ino;
	fs_unlock(fs);
	return ino;
}

int staging_attr(struct kvcfs *fs, struct staging *stage, struct stat *st)
{
	struct stat real;
	bool published;
	struct kvc_key key;
	int rc = 0;

	pthread_rwlock_rdlock(&stage->lock);
	published = stage->published;
	key = stage->published_key;
	if (!published && stage->tmp.fd < 0)
		rc = -ENOENT; /* discarded: only the kernel still remembers it */
	else if (!published && fstat(stage->tmp.fd, &real) < 0)
		rc = -EIO;
	pthread_rwlock_unlock(&stage->lock);
	/* Published a moment ago and about to become the slab's node: it
	 * looks like the slab already. */
	if (published) {
		/* The slab's other name while the key holds its file; once
		 * the slab went or another took the key, its own file, as any
		 * hard link is after the other name goes. */
		if (staging_names_the_slab(fs, stage, &key)) {
			rc = attr_of_slab(fs, stage->dir, &key, false, st);
			if (rc != -ENOENT) {
				st->st_ino = rc == 0 ? ino_of_linked_slab(fs, stage, &key) : 0;
				return rc;
			}
		}
		rc = linked_file_attr(stage, st);
		st->st_ino = 0;
		return rc;
	}
	if (rc < 0)
		return rc;
	*st = real;
	fs_lock(fs);
	st->st_mode = S_IFREG | (stage->mode & 07777);
	st->st_uid = stage->uid;
	st->st_gid = stage->gid;
	fs_unlock(fs);
	st->st_nlink = 1;
	st->st_ino = 0; /* the node's own */
	return 0;
}

double entry_timeout_of(struct kvcfs *fs, struct node *node, double attr_timeout)
{
	bool payload_view;

	fs_lock(fs);
	payload_view = node->kind == NODE_PAYLOAD;
	fs_unlock(fs);
	/* payload/<key> is not cached by name: rm of the slab (a request on
	 * the root) cannot invalidate it synchronously without risking a wait
	 * on a lookup in payload/ (forget.c), so each path walk asks. */
	return payload_view ? 0 : attr_timeout;
}

int attr_of_node(struct kvcfs *fs, struct node *node, struct stat *st, double *timeout)
{
	struct node_view v;
	bool gone;
	int rc = 0;

	fs_lock(fs);
	v.kind = node->kind;
	v.key = node->key;
	v.stage = node->stage;
	v.dir = node->dir;
	gone = v.dir != NULL && v.dir->gone;
	fs_unlock(fs);
	switch (v.kind) {
	case NODE_ROOT:
		attr_of_dir(fs, fs->root_dir, 0, st);
		break;
	case NODE_DIR:
		if (gone)
			rc = -ENOENT; /* removed */
		else
			attr_of_dir(fs, v.dir, 0, st);
		break;
	case NODE_PAYLOAD_DIR:
		if (v.dir == fs->root_dir) {
			attr_of_dir(fs, v.dir, 0555, st);
		} else {
			/* payload/<path> is searched and read as <path> is (its
			 * slabs must not be reachable around a closed mode),
			 * and written never. */
			attr_of_dir(fs, v.dir, 0, st);
			st->st_mode = S_IFDIR | (st->st_mode & 0555);
		}
		break;
	case NODE_META_DIR:
		attr_of_dir(fs, fs->root_dir, 0555, st);
		break;
	case NODE_METRICS: {
		size_t len;
		g_free(metrics_render(fs, &len));
		attr_of_dir(fs, fs->root_dir, 0444, st);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)len;
		break;
	}
	case NODE_REFUSALS:
		/* Anyone may read it, and sees the lines of their own uid;
		 * its size depends on who reads, so it is made at open. */
		attr_of_dir(fs, fs->root_dir, 0444, st);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 0;
		break;
	case NODE_RESCAN:
		/* Reading it makes the daemon re-read the backing root: the
		 * mount's owner's (the daemon's user) only. */
		attr_of_dir(fs, fs->root_dir, 0400, st);
		st->st_mode = S_IFREG | 0400;
		st->st_uid = geteuid();
		st->st_gid = getegid();
		st->st_nlink = 1;
		st->st_size = 0; /* made when read */
		break;
	case NODE_SLAB:
		rc = attr_of_slab(fs, v.dir, &v.key, false, st);
		if (rc == 0)
			size_as_served(fs, node, st);
		break;
	case NODE_PAYLOAD:
		rc = attr_of_slab(fs, v.dir, &v.key, true, st);
		break;
	case NODE_STAGING:
		rc = staging_attr(fs, v.stage, st);
		break;
	}
	/* A staging name may be a slab's other name (ino_of_linked_slab). */
	if (rc == 0 && (v.kind != NODE_STAGING || st->st_ino == 0))
		st->st_ino = node->ino;
	if (timeout != NULL)
		*timeout = timeout_of(fs, v.kind);
	/* Two names of one file: the count drops with a request on the other
	 * name, which the kernel does not know to be this inode. */
	if (timeout != NULL && rc == 0 && v.kind == NODE_SLAB && st->st_nlink > 1)
		*timeout = 0;
	return rc;
}
