/* SPDX-License-Identifier: MIT */
/* Looking names up, forgetting inodes, and their attributes. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

static void reply_entry(fuse_req_t req, struct kvcfs *fs, struct node *node, bool staging_name)
{
	struct fuse_entry_param e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = attr_of_node(fs, node, &e.attr, &e.attr_timeout);
	if (rc < 0) {
		fs_lock(fs);
		node_unref(fs, node, 1, 0);
		fs_unlock(fs);
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = node->ino;
	e.entry_timeout = entry_timeout_of(fs, node, e.attr_timeout);
	/* Found under a staging name: a rename may make the node a slab
	 * before this reply is read, and the name must then not stay cached
	 * pointing at it (an open of the name would open the slab). */
	if (staging_name)
		e.entry_timeout = e.attr_timeout = 0;
	fuse_reply_entry(req, &e);
}

void reply_node_entry(fuse_req_t req, struct kvcfs *fs, struct node *node)
{
	reply_entry(req, fs, node, false);
}

/*
 * A key with no slab. The kernel may remember the miss for negative_timeout
 * seconds: a model server probing prefixes asks for the same missing keys
 * again and again. Publishes through this mount replace the negative entry
 * at once (rename and create go through the kernel's dentry); a slab that
 * another mount publishes shows within negative_timeout.
 */
static void reply_miss(fuse_req_t req, struct kvcfs *fs, struct kdir *dir,
		       const struct kvc_err *err, const struct kvc_key *key)
{
	struct fuse_entry_param e;
	bool creating = false;

	if (err->tag != KVC_E_NOT_FOUND) {
		fuse_reply_err(req, kvc_err_to_errno(err));
		return;
	}
	if (key != NULL) {
		atomic_fetch_add(&fs->metrics.misses, 1);
		local_tier_key_gone(fs, dir, key); /* the backing root has no such slab */
		/* Being written in this mount: it appears at the writer's
		 * close, and the miss must not outlive that. */
		fs_lock(fs);
		creating = staging_creating(fs, key);
		fs_unlock(fs);
	}
	if (fs->opts.negative_timeout <= 0 || creating) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = 0;
	e.entry_timeout = fs->opts.negative_timeout;
	fuse_reply_entry(req, &e);
}

static struct node *fixed_node(struct kvcfs *fs, fuse_ino_t ino)
{
	struct node *node;

	fs_lock(fs);
	node = node_get(fs, ino);
	node->nlookup++;
	fs_unlock(fs);
	return node;
}

/*
 * The key's node, if open handles of it read another file than the one
 * the name holds now (the key was removed and published again), stops
 * being the key's node: the name gets a new inode, so the kernel never
 * mixes the two files' sizes and pages. fs->lock held.
 */
static void node_for_file(struct kvcfs *node_fs, GHashTable *table, const struct kvc_key *key,
			  const struct stat *now)
{
	struct node *node = g_hash_table_lookup(table, key);

	if (node != NULL && node->open_count > 0 && node->served_ino != 0 &&
	    (node->served_dev != now->st_dev || node->served_ino != now->st_ino ||
	     node->served_size != now->st_size))
		node_leave_key(node_fs, node);
}

/* A subdirectory of dir named name, for its listing (payload_view: its
 * payload view's directory): 0 when replied. */
static int reply_subdir(fuse_req_t req, struct kvcfs *fs, struct kdir *dir, const char *name,
			bool payload_view)
{
	struct kdir *sub;
	struct node *node;
	int rc;

	if (!dir_name_ok(name, dir == fs->root_dir))
		return -ENOENT;
	rc = kdir_lookup(fs, dir, name, &sub);
	if (rc == -ENOSPC) {
		/* Beyond dirs_max: not shown (contract.md). */
		log_limited("kvcfs: more than dirs_max=%u directories: %s is not shown\n",
			    fs->opts.dirs_max, name);
		return -ENOENT;
	}
	if (rc < 0)
		return rc;
	fs_lock(fs);
	node = payload_view ? kdir_payload_node(fs, sub) : kdir_node(fs, sub);
	fs_unlock(fs);
	kdir_unref(fs, sub);
	if (node == NULL)
		return -ENOENT; /* removed just now */
	reply_node_entry(req, fs, node);
	return 0;
}

static void lookup_in_dir(fuse_req_t req, struct kvcfs *fs, struct kdir *dir, const char *name)
{
	bool in_root = dir == fs->root_dir;
	struct kvc_key key;
	struct kvc_slab_info info;
	struct kvc_err err;
	struct node *node;
	int e;
	enum name_class cls = classify_name(name, in_root, &key, &e);

	if (cls == NAME_INVALID) {
		fuse_reply_err(req, e);
		return;
	}
	if (cls == NAME_RESERVED) {
		reply_node_entry(req, fs, fixed_node(fs, strcmp(name, PAYLOAD_DIR_NAME) == 0
							  ? INO_PAYLOAD_DIR : INO_META_DIR));
		return;
	}
	/* Only staging names are in the table: a <key>.kvc being written is
	 * not found by name until it is published (stage_writers.c). */
	fs_lock(fs);
	node = cls == NAME_STAGING ? g_hash_table_lookup(dir->staging, name) : NULL;
	if (node != NULL)
		node->nlookup++;
	fs_unlock(fs);
	if (node != NULL) {
		reply_entry(req, fs, node, true);
		return;
	}
	if (cls != NAME_SLAB) {
		/* A directory, or a miss, which can be cached as long as a
		 * slab's: staging names exist only in this mount, and every
		 * change to them goes through this kernel. */
		struct kvc_err missing = { .tag = KVC_E_NOT_FOUND };
		e = reply_subdir(req, fs, dir, name, false);
		if (e == -ENOENT)
			reply_miss(req, fs, dir, &missing, NULL);
		else if (e < 0)
			fuse_reply_err(req, -e);
		return;
	}
	if (kvc_store_stat(dir->store, &key, &info, &err) < 0) {
		reply_miss(req, fs, dir, &err, &key);
		return;
	}
	if (info.header_ok)
		/* A slab another mount published, or one the index missed. */
		index_note(&dir->index, &key, (uint64_t)info.st.st_size, info.hit_count,
			   info.last_used_time, info.creation_time);
	fs_lock(fs);
	node_for_file(fs, dir->slab_nodes, &key, &info.st);
	node = node_for_key(fs, dir, NODE_SLAB, &key);
	fs_unlock(fs);
	reply_node_entry(req, fs, node);
}

/* payload/<path>/<key>: a slab's payload, or a directory's payload view. */
static void lookup_in_payload_dir(fuse_req_t req, struct kvcfs *fs, struct kdir *dir,
				  const char *name)
{
	struct kvc_key key;
	struct kvc_slab_info info;
	struct kvc_err err;
	struct node *node;
	int rc;

	if (strlen(name) > 255) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (!kvc_key_from_hex(name, strlen(name), &key)) {
		rc = reply_subdir(req, fs, dir, name, true);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		return;
	}
	if (kvc_store_stat(dir->store, &key, &info, &err) < 0) {
		reply_miss(req, fs, dir, &err, &key);
		return;
	}
	fs_lock(fs);
	node_for_file(fs, dir->payload_nodes, &key, &info.st);
	node = node_for_key(fs, dir, NODE_PAYLOAD, &key);
	fs_unlock(fs);
	reply_node_entry(req, fs, node);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view v;
	int rc = access_may_lookup(fs, req, parent);

	if (rc == 0 && node_held(fs, parent, &v) == NULL)
		rc = -ENOENT;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	switch (v.kind) {
	case NODE_ROOT:
	case NODE_DIR:
		lookup_in_dir(req, fs, v.dir, name);
		return;
	case NODE_PAYLOAD_DIR:
		lookup_in_payload_dir(req, fs, v.dir, name);
		return;
	case NODE_META_DIR:
		if (strcmp(name, METRICS_NAME) == 0)
			reply_node_entry(req, fs, fixed_node(fs, INO_METRICS));
		else if (strcmp(name, RESCAN_NAME) == 0)
			reply_node_entry(req, fs, fixed_node(fs, INO_RESCAN));
		else if (strcmp(name, REFUSALS_NAME) == 0)
			reply_node_entry(req, fs, fixed_node(fs, INO_REFUSALS));
		else
			fuse_reply_err(req, strlen(name) > 255 ? ENAMETOOLONG : ENOENT);
		return;
	default:
		fuse_reply_err(req, ENOTDIR);
	}
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node *node;

	fs_lock(fs);
	node = node_get(fs, ino);
	if (node != NULL)
		node_unref(fs, node, nlookup, 0);
	fs_unlock(fs);
	fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct kvcfs *fs = kvcfs_of(req);

	fs_lock(fs);
	for (size_t i = 0; i < count; i++) {
		struct node *node = node_get(fs, forgets[i].ino);
		if (node != NULL)
			node_unref(fs, node, forgets[i].nlookup, 0);
	}
	fs_unlock(fs);
	fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view v;
	struct node *node = node_held(fs, ino, &v);
	struct stat st;
	double timeout;
	int rc;

	if (node == NULL) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = attr_of_node(fs, node, &st, &timeout);
	/* fstat of an open slab whose name went (rm, eviction): the file its
	 * opens read, as on a local filesystem (the kernel names no handle
	 * for fstat). */
	(void)fi;
	if (rc == -ENOENT && (v.kind == NODE_SLAB || v.kind == NODE_PAYLOAD)) {
		rc = attr_of_open_slab(fs, node, v.kind == NODE_PAYLOAD, &st);
		timeout = 0;
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view v;
	struct node *node = node_held(fs, ino, &v);
	struct handle *h = NULL;
	int rc = 0;

	if (node == NULL) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fi != NULL && !node_kind_is_dir(v.kind))
		h = (struct handle *)(uintptr_t)fi->fh;
	if (h == NULL || !h->writable)
		rc = access_may_setattr(fs, req, ino, attr, to_set);
	if (rc < 0) {
		/* nothing changed */
	} else if (h != NULL && h->stage != NULL && h->writable) {
		/* ftruncate or futimens of a writer: its own stage. The reply
		 * shows the node as it is, so a slab's inode keeps its size. */
		rc = staging_setattr(fs, h->stage, attr, to_set);
	} else if (staging_arm_writers(fs, node, attr, to_set)) {
		rc = 0; /* the O_TRUNC of a writer over this node */
	} else if (v.kind == NODE_STAGING && (to_set & FUSE_SET_ATTR_SIZE) &&
		   staging_in_flight(fs, v.stage)) {
		/* A <key>.kvc being created has no name yet: a truncate by name
		 * (its writer's own ftruncate names its handle) is someone
		 * else's. Times and mode (cp -a's futimens names no handle)
		 * change no byte. */
		rc = -ENOENT;
	} else if (v.kind == NODE_STAGING) {
		rc = staging_setattr(fs, v.stage, attr, to_set);
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		/* Published slabs are immutable; directories have no size. */
		rc = node_kind_is_dir(v.kind) ? -EISDIR : -EPERM;
	} else if (v.kind == NODE_DIR) {
		/* A directory's mode, owner and times are its backing
		 * directory's (the permission checks were made above). */
		rc = dir_setattr(fs, v.dir, attr, to_set);
	}
	/* chmod, chown and utimes on anything else succeed and change
	 * nothing, so cp -a and rsync -a can copy into and out of a mount. */
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op_getattr(req, ino, NULL);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fuse_reply_err(req, -access_may(kvcfs_of(req), req, ino, mask));
}
