/* SPDX-License-Identifier: MIT */
/* The mount's directories: each one a key namespace over a directory of
 * the backing root (dirs.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

struct dir_id {
	dev_t dev;
	ino_t ino;
};

static guint dir_id_hash(gconstpointer p)
{
	const struct dir_id *id = p;

	return g_int64_hash(&(gint64){ (gint64)id->ino }) ^ (guint)id->dev;
}

static gboolean dir_id_equal(gconstpointer a, gconstpointer b)
{
	const struct dir_id *x = a, *y = b;

	return x->dev == y->dev && x->ino == y->ino;
}

static struct kdir *kdir_alloc(struct kvcfs *fs, struct kvc_store *store, const struct stat *st)
{
	struct kdir *d = g_new0(struct kdir, 1);

	d->store = store;
	d->backing_dev = st->st_dev;
	d->backing_ino = st->st_ino;
	index_init(&d->index, fs->opts.hit_credit);
	atomic_init(&d->refs, 1);
	d->name = g_strdup("");
	d->staging = g_hash_table_new(g_str_hash, g_str_equal);
	d->slab_nodes = g_hash_table_new(index_key_hash, index_key_equal);
	d->payload_nodes = g_hash_table_new(index_key_hash, index_key_equal);
	return d;
}

/* Its last reference went: nothing refers to it any more. Closing its
 * store stops the store's dropper thread: never under fs->lock. */
void kdir_free(struct kvcfs *fs, struct kdir *d)
{
	fs_assert_unlocked();
	local_part_free(fs, d);
	if (d->parent != NULL)
		kdir_unref(fs, d->parent);
	index_destroy(&d->index);
	g_hash_table_destroy(d->staging);
	g_hash_table_destroy(d->slab_nodes);
	g_hash_table_destroy(d->payload_nodes);
	if (d != fs->root_dir)
		kvc_store_close(d->store);
	g_free(d->name);
	g_free(d);
}

void dirs_init(struct kvcfs *fs)
{
	struct stat st = { 0 };
	struct dir_id *id = g_new(struct dir_id, 1);
	struct kdir *root;
	struct rlimit rl;

	/* Each directory holds a descriptor, out of the share the daemon
	 * keeps for itself (staging_quota.c keeps a quarter). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    rl.rlim_max / 8 < fs->opts.dirs_max)
		fs->opts.dirs_max = rl.rlim_max / 8 > 1 ? (unsigned)(rl.rlim_max / 8) : 1;
	(void)fstat(kvc_store_dirfd(fs->store), &st);
	root = kdir_alloc(fs, fs->store, &st);
	root->ino = INO_ROOT;
	root->payload_ino = INO_PAYLOAD_DIR;
	fs->root_dir = root;
	pthread_mutex_init(&fs->recent_lock, NULL);
	/* The fixed nodes of the root and payload/ (nodes_init made them)
	 * are the root's; they are never freed, and hold no reference. */
	node_get(fs, INO_ROOT)->dir = root;
	node_get(fs, INO_PAYLOAD_DIR)->dir = root;
	fs->dirs = g_hash_table_new_full(dir_id_hash, dir_id_equal, g_free, NULL);
	fs->dirs_gone = g_ptr_array_new();
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	g_hash_table_insert(fs->dirs, id, kdir_ref(root));
}

/* At exit, once no request runs: every directory, whoever still holds it
 * (the nodes are gone by now). */
void dirs_destroy(struct kvcfs *fs)
{
	GHashTableIter it;
	gpointer value;

	/* First those nothing refers to any more (a parent they free on the
	 * way is one of the table's, or another removed one); then the
	 * table's, each let go of its parent before any is freed. */
	if (fs->recent_dir != NULL)
		kdir_unref_locked(fs, fs->recent_dir);
	fs->recent_dir = NULL;
	pthread_mutex_destroy(&fs->recent_lock);
	for (guint i = 0; i < fs->dirs_gone->len; i++)
		kdir_free(fs, g_ptr_array_index(fs->dirs_gone, i));
	g_ptr_array_free(fs->dirs_gone, TRUE);
	fs->dirs_gone = NULL;
	g_hash_table_iter_init(&it, fs->dirs);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct kdir *d = value;
		if (d->parent != NULL)
			kdir_unref(fs, d->parent);
		d->parent = NULL;
	}
	g_hash_table_iter_init(&it, fs->dirs);
	while (g_hash_table_iter_next(&it, NULL, &value))
		kdir_free(fs, value);
	g_hash_table_destroy(fs->dirs);
}

struct kdir *kdir_ref(struct kdir *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

void kdir_unref(struct kvcfs *fs, struct kdir *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		kdir_free(fs, d);
}

void kdir_unref_locked(struct kvcfs *fs, struct kdir *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		g_ptr_array_add(fs->dirs_gone, d); /* freed by fs_unlock */
}

/* Is d parent itself, or above it? fs->lock held. The chain ends at the
 * root: placing never makes a cycle (kdir_place). */
static bool kdir_above(const struct kdir *d, const struct kdir *parent)
{
	for (const struct kdir *p = parent; p != NULL; p = p->parent)
		if (p == d)
			return true;
	return false;
}

/* Where d is now: under parent, as name (a rename, here or on another
 * host, moved it). false, and nothing changed, when parent is d or below
 * it as far as the mount knows: what is known of the tree is older than
 * this lookup (another host moved both), and the next lookups from the
 * root set it right. fs->lock held. */
static bool kdir_place(struct kvcfs *fs, struct kdir *d, struct kdir *parent, const char *name)
{
	if (kdir_above(d, parent))
		return false;
	if (d->parent != parent) {
		if (d->parent != NULL)
			kdir_unref_locked(fs, d->parent);
		d->parent = kdir_ref(parent);
	}
	if (strcmp(d->name, name) != 0) {
		g_free(d->name);
		d->name = g_strdup(name);
	}
	return true;
}

static bool dirs_full(struct kvcfs *fs)
{
	bool full;

	fs_lock(fs);
	full = g_hash_table_size(fs->dirs) >= fs->opts.dirs_max;
	fs_unlock(fs);
	return full;
}

/* Directories removed from the backing root (by another host, or behind
 * the mount): their descriptors' link counts say so. Forgotten, so they
 * hold no place under dirs_max. */
void dirs_forget_removed(struct kvcfs *fs)
{
	GPtrArray *all = dirs_snapshot(fs);
	GPtrArray *removed = g_ptr_array_new();
	struct stat st;

	for (guint i = 0; i < all->len; i++) {
		struct kdir *d = g_ptr_array_index(all, i);
		int rc = fstat(kvc_store_dirfd(d->store), &st);
		if (d != fs->root_dir &&
		    ((rc == 0 && st.st_nlink == 0) ||
		     (rc < 0 && (errno == ENOENT || errno == ESTALE))))
			g_ptr_array_add(removed, d);
	}
	fs_lock(fs);
	for (guint i = 0; i < removed->len; i++)
		kdir_forget(fs, g_ptr_array_index(removed, i));
	fs_unlock(fs);
	g_ptr_array_free(removed, TRUE);
	dirs_snapshot_free(fs, all);
}

static struct kdir *dirs_find(struct kvcfs *fs, const struct stat *st)
{
	struct dir_id id = { st->st_dev, st->st_ino };

	return g_hash_table_lookup(fs->dirs, &id);
}

int kdir_lookup(struct kvcfs *fs, struct kdir *parent, const char *name, struct kdir **out)
{
	struct kvc_store *store;
	struct kvc_err err;
	struct kdir *d, *made;
	struct dir_id *id;
	struct stat st;
	char *path;
	int fd;

	/* A directory the mount knows costs one fstatat (every lookup and
	 * listing comes here); only a new one is opened. */
	if (fstatat(kvc_store_dirfd(parent->store), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	fs_lock(fs);
	d = dirs_find(fs, &st);
	/* The root below itself (moved there), or a cycle: not shown. */
	if (d != NULL && !kdir_place(fs, d, parent, name))
		d = fs->root_dir;
	if (d != NULL && d != fs->root_dir)
		kdir_ref(d);
	fs_unlock(fs);
	if (d == fs->root_dir)
		return -ENOENT;
	if (d != NULL) {
		*out = d;
		return 0;
	}
	/* O_DIRECTORY fails on anything else before opening it: a FIFO put
	 * under the name meanwhile cannot block here. The descriptor's
	 * identity is the one that counts from here on. */
	fd = openat(kvc_store_dirfd(parent->store), name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	path = kdir_path(fs, parent);
	{
		char *full = g_strdup_printf("%s/%s%s%s", kvc_store_root(fs->store), path,
					     path[0] != '\0' ? "/" : "", name);
		int rc = kvc_store_open_sub(fs->store, fd, full, &store, &err);
		g_free(full);
		g_free(path);
		if (rc < 0) {
			close(fd);
			return -ENOMEM;
		}
	}
	made = kdir_alloc(fs, store, &st);
	if (dirs_full(fs))
		dirs_forget_removed(fs);
	fs_lock(fs);
	d = dirs_find(fs, &st);
	if (d == NULL && g_hash_table_size(fs->dirs) >= fs->opts.dirs_max) {
		fs_unlock(fs);
		kdir_free(fs, made);
		return -ENOSPC;
	}
	if (d == NULL) {
		d = made;
		made = NULL;
		d->ino = node_new_in(fs, NODE_DIR, d)->ino;
		id = g_new(struct dir_id, 1);
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		g_hash_table_insert(fs->dirs, id, d); /* the table's reference */
	}
	if (d == fs->root_dir || !kdir_place(fs, d, parent, name)) {
		fs_unlock(fs); /* made meanwhile, where it cannot be */
		if (made != NULL)
			kdir_free(fs, made);
		return -ENOENT;
	}
	kdir_ref(d);
	fs_unlock(fs);
	if (made != NULL)
		kdir_free(fs, made); /* another request made it first */
	*out = d;
	return 0;
}

bool kdir_named(const struct kdir *d, struct kdir *parent, const char *name)
{
	struct stat st;

	return fstatat(kvc_store_dirfd(parent->store), name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode) && st.st_dev == d->backing_dev && st.st_ino == d->backing_ino;
}

bool names_a_dir(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	struct stat st;

	return dir_name_ok(name, dir == fs->root_dir) &&
	       fstatat(kvc_store_dirfd(dir->store), name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

struct node *kdir_node(struct kvcfs *fs, struct kdir *d)
{
	struct node *node = d->gone ? NULL : node_get(fs, d->ino);

	if (node != NULL)
		node->nlookup++;
	return node;
}

struct node *kdir_payload_node(struct kvcfs *fs, struct kdir *d)
{
	struct node *node = d->payload_ino != 0 ? node_get(fs, d->payload_ino) : NULL;

	if (node == NULL) {
		node = node_new_in(fs, NODE_PAYLOAD_DIR, d);
		d->payload_ino = node->ino;
	}
	node->nlookup++;
	return node;
}

GPtrArray *kdir_way(struct kvcfs *fs, struct kdir *d, bool without_d)
{
	GPtrArray *way = g_ptr_array_new();

	fs_lock(fs);
	for (struct kdir *p = without_d ? d->parent : d; p != NULL && p->parent != NULL;
	     p = p->parent)
		g_ptr_array_add(way, kdir_ref(p));
	fs_unlock(fs);
	return way;
}

char *kdir_path(struct kvcfs *fs, struct kdir *d)
{
	GString *path = g_string_new("");

	fs_lock(fs);
	for (; d != NULL && d->parent != NULL; d = d->parent) {
		if (path->len > 0)
			g_string_prepend_c(path, '/');
		g_string_prepend(path, d->name);
	}
	fs_unlock(fs);
	return g_string_free(path, FALSE);
}

void kdir_forget(struct kvcfs *fs, struct kdir *d)
{
	struct dir_id id = { d->backing_dev, d->backing_ino };
	struct node *node;

	if (d->gone || d == fs->root_dir)
		return;
	d->gone = true;
	g_hash_table_remove(fs->dirs, &id);
	/* Its node and payload view stay while the kernel holds them. */
	node = node_get(fs, d->ino);
	if (node != NULL)
		node_unref(fs, node, 0, 0);
	node = d->payload_ino != 0 ? node_get(fs, d->payload_ino) : NULL;
	if (node != NULL)
		node_unref(fs, node, 0, 0);
	kdir_unref_locked(fs, d); /* the table's */
}

GPtrArray *dirs_snapshot(struct kvcfs *fs)
{
	GPtrArray *all = g_ptr_array_new();
	GHashTableIter it;
	gpointer value;

	fs_lock(fs);
	g_hash_table_iter_init(&it, fs->dirs);
	while (g_hash_table_iter_next(&it, NULL, &value))
		g_ptr_array_add(all, kdir_ref(value));
	fs_unlock(fs);
	return all;
}

void dirs_snapshot_free(struct kvcfs *fs, GPtrArray *all)
{
	for (guint i = 0; i < all->len; i++)
		kdir_unref(fs, g_ptr_array_index(all, i));
	g_ptr_array_unref(all);
}

/* The subdirectories of d, as the mount shows them: looked up (so known),
 * each referenced (kdir_unref). */
static void add_subdirs(struct kvcfs *fs, struct kdir *d, GQueue *found)
{
	bool in_root = d == fs->root_dir;
	struct kvc_store_dir *it;
	struct kvc_err err;
	unsigned char type;
	const char *name;

	if (kvc_store_dir_open(d->store, &it, &err) < 0)
		return;
	while ((name = kvc_store_dir_next(it, &type)) != NULL) {
		struct kdir *sub;
		if ((type != DT_DIR && type != DT_UNKNOWN) || !dir_name_ok(name, in_root))
			continue;
		if (kdir_lookup(fs, d, name, &sub) == 0)
			g_queue_push_tail(found, sub);
	}
	kvc_store_dir_close(it);
}

GHashTable *dirs_discover(struct kvcfs *fs)
{
	GHashTable *reached = g_hash_table_new(NULL, NULL);
	GQueue queue = G_QUEUE_INIT;
	struct kdir *d;

	g_hash_table_add(reached, kdir_ref(fs->root_dir));
	add_subdirs(fs, fs->root_dir, &queue);
	while ((d = g_queue_pop_head(&queue)) != NULL) {
		/* A directory reached twice (moved under the walk) is walked
		 * once. */
		if (g_hash_table_contains(reached, d)) {
			kdir_unref(fs, d);
			continue;
		}
		g_hash_table_add(reached, d); /* with the reference */
		add_subdirs(fs, d, &queue);
	}
	return reached;
}

void dirs_reached_free(struct kvcfs *fs, GHashTable *reached)
{
	GHashTableIter it;
	gpointer d;

	g_hash_table_iter_init(&it, reached);
	while (g_hash_table_iter_next(&it, &d, NULL))
		kdir_unref(fs, d);
	g_hash_table_destroy(reached);
}

void dirs_set_recent(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key)
{
	struct kdir *before;

	pthread_mutex_lock(&fs->recent_lock);
	before = fs->recent_dir;
	if (before != NULL && before != dir)
		index_clear_recent(&before->index);
	index_set_recent(&dir->index, key);
	fs->recent_dir = kdir_ref(dir);
	pthread_mutex_unlock(&fs->recent_lock);
	if (before != NULL)
		kdir_unref(fs, before);
}

void dirs_totals(struct kvcfs *fs, uint64_t *bytes, uint64_t *count)
{
	GPtrArray *all = dirs_snapshot(fs);

	*bytes = *count = 0;
	for (guint i = 0; i < all->len; i++) {
		uint64_t b, c;
		index_totals(&((struct kdir *)g_ptr_array_index(all, i))->index, &b, &c);
		*bytes += b;
		*count += c;
	}
	dirs_snapshot_free(fs, all);
}
