/* SPDX-License-Identifier: MIT */
/* The inode table: what each inode number the kernel holds stands for. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

static void node_free(gpointer p)
{
	struct node *node = p;

	g_slist_free(node->unarmed_writers);
	g_free(node->name);
	g_free(node);
}

void nodes_init(struct kvcfs *fs)
{
	static const struct { fuse_ino_t ino; enum node_kind kind; } fixed[] = {
		{ INO_ROOT, NODE_ROOT },
		{ INO_PAYLOAD_DIR, NODE_PAYLOAD_DIR },
		{ INO_META_DIR, NODE_META_DIR },
		{ INO_METRICS, NODE_METRICS },
		{ INO_RESCAN, NODE_RESCAN },
		{ INO_REFUSALS, NODE_REFUSALS },
	};

	pthread_mutex_init(&fs->lock, NULL);
	fs->stages_gone = g_ptr_array_new();
	fs->nodes = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, node_free);
	fs->open_files = g_hash_table_new(NULL, NULL);
	fs->open_dirs = g_hash_table_new(NULL, NULL);
	fs->creating = g_hash_table_new_full(index_key_hash, index_key_equal, g_free, NULL);
	fs->next_ino = INO_FIRST_DYNAMIC;
	fs->orphan_backing_ids = g_array_new(FALSE, FALSE, sizeof(int));
	links_init(fs);
	for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
		struct node *node = g_new0(struct node, 1);
		node->ino = fixed[i].ino;
		node->kind = fixed[i].kind;
		node->nlookup = 1; /* never forgotten */
		g_hash_table_insert(fs->nodes, &node->ino, node);
	}
}

void nodes_destroy(struct kvcfs *fs)
{
	GHashTableIter it;
	gpointer value;

	/* The directories' references held by the nodes (dirs_destroy frees
	 * the rest). */
	g_hash_table_iter_init(&it, fs->nodes);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct node *node = value;
		if (node->ino >= INO_FIRST_DYNAMIC && node->dir != NULL)
			kdir_unref_locked(fs, node->dir);
		node->dir = NULL;
	}
	links_destroy(fs);
	g_hash_table_destroy(fs->creating);
	g_array_free(fs->orphan_backing_ids, TRUE);
	g_hash_table_destroy(fs->open_files);
	g_hash_table_destroy(fs->open_dirs);
	g_hash_table_destroy(fs->nodes);
	g_ptr_array_free(fs->stages_gone, TRUE);
	pthread_mutex_destroy(&fs->lock);
}

struct node *node_get(struct kvcfs *fs, fuse_ino_t ino)
{
	return g_hash_table_lookup(fs->nodes, &ino);
}

struct node *node_held(struct kvcfs *fs, fuse_ino_t ino, struct node_view *view)
{
	struct node *node;

	fs_lock(fs);
	node = node_get(fs, ino);
	if (node != NULL && view != NULL) {
		view->kind = node->kind;
		view->key = node->key;
		view->stage = node->stage;
		view->dir = node->dir;
	}
	fs_unlock(fs);
	return node;
}

struct node *node_new(struct kvcfs *fs, enum node_kind kind)
{
	struct node *node = g_new0(struct node, 1);

	node->ino = fs->next_ino++;
	node->kind = kind;
	g_hash_table_insert(fs->nodes, &node->ino, node);
	return node;
}

struct node *node_new_in(struct kvcfs *fs, enum node_kind kind, struct kdir *dir)
{
	struct node *node = node_new(fs, kind);

	node->dir = kdir_ref(dir);
	return node;
}

static GHashTable *key_table(struct kdir *dir, enum node_kind kind)
{
	return kind == NODE_SLAB ? dir->slab_nodes : dir->payload_nodes;
}

void node_leave_key(struct kvcfs *fs, struct node *node)
{
	GHashTable *table;

	(void)fs;
	if (node->kind != NODE_SLAB && node->kind != NODE_PAYLOAD)
		return;
	table = key_table(node->dir, node->kind);
	if (g_hash_table_lookup(table, &node->key) == node)
		g_hash_table_remove(table, &node->key);
}

struct node *node_for_key(struct kvcfs *fs, struct kdir *dir, enum node_kind kind,
			  const struct kvc_key *key)
{
	GHashTable *table = key_table(dir, kind);
	struct node *node = g_hash_table_lookup(table, key);

	if (node == NULL) {
		node = node_new_in(fs, kind, dir);
		node->key = *key;
		g_hash_table_insert(table, &node->key, node);
	}
	node->nlookup++;
	return node;
}

void node_drop_staging_name(struct kvcfs *fs, struct node *node)
{
	if (node->name == NULL)
		return;
	g_hash_table_remove(node->dir->staging, node->name);
	g_free(node->name);
	node->name = NULL;
	links_remove(fs, node->stage);
	/* Nameless, the file lives on only for its open handles, each
	 * charged to its opener: its creator's share is free again. */
	if (node->stage != NULL)
		staging_quota_release(fs, node->stage);
}

void node_became_slab(struct kvcfs *fs, struct node *node, const struct kvc_key *key)
{
	node_drop_staging_name(fs, node);
	node->kind = NODE_SLAB;
	node->key = *key;
	/* The kernel now knows this inode under the key's name; make it the
	 * key's inode for later lookups too. */
	g_hash_table_replace(node->dir->slab_nodes, &node->key, node);
}

void node_unref(struct kvcfs *fs, struct node *node, uint64_t nlookup, unsigned opens)
{
	node->nlookup -= nlookup < node->nlookup ? nlookup : node->nlookup;
	node->open_count -= opens < node->open_count ? opens : node->open_count;
	if (node->nlookup > 0 || node->open_count > 0 || node->ino < INO_FIRST_DYNAMIC)
		return;
	/* A directory's node lives as long as the directory (dirs.c). */
	if (node->kind == NODE_DIR && !node->dir->gone)
		return;
	if (node->kind == NODE_PAYLOAD_DIR) {
		if (!node->dir->gone)
			return;
		node->dir->payload_ino = 0;
	}
	if (node->stage != NULL) {
		/* Still named: the staging file lives on without a kernel
		 * reference, and a later lookup finds it by name. */
		if (node->name != NULL)
			return;
		g_ptr_array_add(fs->stages_gone, node->stage); /* freed by fs_unlock */
		node->stage = NULL;
	}
	node_leave_key(fs, node);
	/* Its backing id is closed at the next chance (passthrough.c). */
	if (node->backing_id > 0)
		g_array_append_val(fs->orphan_backing_ids, node->backing_id);
	if (node->dir != NULL)
		kdir_unref_locked(fs, node->dir);
	g_hash_table_remove(fs->nodes, &node->ino);
}
