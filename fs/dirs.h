/* SPDX-License-Identifier: MIT */
/* Directories of the mount (dirs.c, ops_mkdir.c). Included through
 * kvcfs.h, which declares what it uses. */
#ifndef KVCFS_DIRS_H
#define KVCFS_DIRS_H

#include <glib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

#include "index.h"

/*
 * One directory of the mount and of the backing root, which mirrors it:
 * its own key namespace, with its own descriptor (kvc_store), its own
 * index (one budget over all of them: evict.c), staging names and the
 * inodes of its keys. The root is one too (fs->root_dir).
 *
 * A directory is known by its backing directory's identity (device and
 * inode), so a rename, here or on another host, keeps it. It lives while
 * the dirs table holds it (until rmdir, or a rescan finds it gone) and
 * while anything refers to it: its node, the nodes and stages in it, a
 * worker's snapshot.
 */
struct kdir {
	/* Set when made, never changed: */
	struct kvc_store *store;   /* its backing directory */
	fuse_ino_t ino;            /* its node (the root's: INO_ROOT) */
	dev_t backing_dev;
	ino_t backing_ino;
	struct kvcfs_index index;  /* its slabs; its own lock */
	atomic_uint refs;
	/* Guarded by kvcfs.lock: */
	struct kdir *parent;       /* NULL for the root; holds a reference */
	char *name;                /* its name in parent ("" for the root) */
	bool gone;                 /* out of the dirs table: removed */
	fuse_ino_t payload_ino;    /* payload/<path>: its node, 0 until looked up */
	struct tier_part *local;   /* its part of the local tier (-o local),
				    * NULL until made; set once (local_parts.c) */
	GHashTable *staging;       /* name → node, this mount's named staging files */
	GHashTable *slab_nodes;    /* key → NODE_SLAB node, so a key keeps its inode */
	GHashTable *payload_nodes; /* key → NODE_PAYLOAD node */
};

/* dirs.c. The root's directory, at start (the store is the backing
 * root's, kept by the caller). */
void dirs_init(struct kvcfs *fs);
void dirs_destroy(struct kvcfs *fs);
struct kdir *kdir_ref(struct kdir *d);
/* Drop a reference: kdir_unref without fs->lock (a last one closes the
 * directory), kdir_unref_locked with it (the close waits for fs_unlock). */
void kdir_unref(struct kvcfs *fs, struct kdir *d);
void kdir_unref_locked(struct kvcfs *fs, struct kdir *d);
/* For fs_unlock: free one whose last reference went under the lock. */
void kdir_free(struct kvcfs *fs, struct kdir *d);
/* The directory name names in parent, if it is one: 0 and *out (a new
 * reference), -ENOENT (nothing, or not a directory), -ENOSPC (more than
 * dirs_max known), or another -errno. Takes fs->lock. */
int kdir_lookup(struct kvcfs *fs, struct kdir *parent, const char *name, struct kdir **out);
/* Does name in parent hold directory d now (one fstatat)? */
bool kdir_named(const struct kdir *d, struct kdir *parent, const char *name);
/* Does name in dir name a directory of the mount (one fstatat)? */
bool names_a_dir(struct kvcfs *fs, struct kdir *dir, const char *name);
/* Its node, referenced once more for the kernel (nlookup++). fs->lock held. */
struct node *kdir_node(struct kvcfs *fs, struct kdir *d);
/* Its payload view's directory node, made if needed; nlookup++. fs->lock held. */
struct node *kdir_payload_node(struct kvcfs *fs, struct kdir *d);
/* The directories below the root on the way to d, d itself unless
 * without_d, each referenced: give back with dirs_snapshot_free. */
GPtrArray *kdir_way(struct kvcfs *fs, struct kdir *d, bool without_d);
/* "a/b" from the root ("" for the root); g_free. Takes fs->lock. */
char *kdir_path(struct kvcfs *fs, struct kdir *d);
/* d is removed (rmdir, or gone from the backing root): out of the table.
 * fs->lock held. */
void kdir_forget(struct kvcfs *fs, struct kdir *d);
/* Every known directory, each referenced once (kdir_unref each, then
 * g_ptr_array_unref). Takes fs->lock. */
GPtrArray *dirs_snapshot(struct kvcfs *fs);
void dirs_snapshot_free(struct kvcfs *fs, GPtrArray *all);
/* Read the whole tree of the backing root: every directory in it is
 * looked up, so start-up and rescans know it (at most dirs_max). The set
 * of directories reached, the root too, each referenced: give it back
 * with dirs_reached_free. */
GHashTable *dirs_discover(struct kvcfs *fs);
/* Forget the directories removed from the backing root (by another host,
 * or behind the mount): their descriptors' link counts say so. Only
 * those: a walk that did not reach a directory proves nothing (it may
 * have moved under the walk). Takes fs->lock; not held. */
void dirs_forget_removed(struct kvcfs *fs);
void dirs_reached_free(struct kvcfs *fs, GHashTable *reached);
/* The slab this mount published last, pinned against eviction: one over
 * the whole tree (a pin per directory would let slabs spread over
 * directories escape the budget). The one before loses its pin. */
void dirs_set_recent(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key);
/* Slabs and bytes over every directory. */
void dirs_totals(struct kvcfs *fs, uint64_t *bytes, uint64_t *count);

#endif
