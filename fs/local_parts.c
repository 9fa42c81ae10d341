/* SPDX-License-Identifier: MIT */
/*
 * The local tier's part of each directory of the mount (local_tier.h).
 *
 * The root's copies are in the tier's directory itself, as before
 * directories; a subdirectory's in the tier's d-<dev>-<ino>, named by its
 * backing directory's identity (device and inode), which a rename, here or
 * on another host, keeps: the copies follow their directory without being
 * moved. A part is made when its directory first needs one (an open or a
 * publish there), and goes with its directory: when the directory was
 * removed, so are its copies. At start-up, parts of directories that are
 * gone since are emptied and removed; the others are indexed.
 *
 * The tier's directory belongs to this mount alone, so everything in a
 * part is this mount's: a copy, or a temp of a fetch or publish.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

#define PART_NAME_MAX 64

static void part_name(dev_t dev, ino_t ino, char out[PART_NAME_MAX])
{
	snprintf(out, PART_NAME_MAX, "d-%" PRIx64 "-%" PRIx64, (uint64_t)dev, (uint64_t)ino);
}

static bool part_name_parse(const char *name, uint64_t *dev, uint64_t *ino)
{
	char check[PART_NAME_MAX];

	if (sscanf(name, "d-%" SCNx64 "-%" SCNx64, dev, ino) != 2)
		return false;
	part_name((dev_t)*dev, (ino_t)*ino, check);
	return strcmp(check, name) == 0;
}

/* Remove every copy and temp in the part's directory (nothing else is
 * ever there), then the directory. Nobody uses the part any more. */
static void part_remove(int local_root, const char *name)
{
	int fd = openat(local_root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *it = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *d;

	if (it == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(it)) != NULL) {
		struct kvc_key key;
		char host[65];
		long pid;
		if (kvc_key_from_slab_name(d->d_name, &key) ||
		    kvc_tmp_name_parse(d->d_name, host, &pid))
			(void)unlinkat(dirfd(it), d->d_name, 0);
	}
	closedir(it);
	if (unlinkat(local_root, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		fuse_log(FUSE_LOG_WARNING, "kvcfs: local tier: %s of a removed directory left: %s\n",
			 name, strerror(errno));
}

static void part_close(struct tier_part *part)
{
	index_destroy(&part->index);
	kvc_store_close(part->store);
	g_free(part);
}

/* Open (making it if needed) the part of the directory with this
 * identity, its copies indexed. NULL if it cannot be had. */
static struct tier_part *part_open(struct kvcfs *fs, dev_t dev, ino_t ino)
{
	int root = kvc_store_dirfd(fs->local->root.store);
	struct tier_part *part;
	struct kvc_scan_stats scan;
	struct kvc_sweep_stats sweep;
	char name[PART_NAME_MAX];
	struct kvc_err err;
	char *path;
	int fd;

	part_name(dev, ino, name);
	if (mkdirat(root, name, 0700) < 0 && errno != EEXIST)
		return NULL;
	fd = openat(root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	part = g_new0(struct tier_part, 1);
	path = g_strdup_printf("%s/%s", kvc_store_root(fs->local->root.store), name);
	if (kvc_store_open_sub(fs->local->root.store, fd, path, &part->store, &err) < 0) {
		g_free(path);
		g_free(part);
		close(fd);
		return NULL;
	}
	g_free(path);
	index_init(&part->index, fs->opts.hit_credit);
	/* Copies from before (a restart): indexed; temps: ours, dead. */
	(void)kvc_store_sweep(part->store, 0, &sweep, &err);
	(void)kvc_store_scan(part->store, index_put_scanned, &part->index, &scan, &err);
	return part;
}

struct tier_part *local_part_of(struct kvcfs *fs, struct kdir *dir, bool make)
{
	struct tier_part *part, *made;
	bool gone;

	if (fs->local == NULL)
		return NULL;
	if (dir == fs->root_dir)
		return &fs->local->root;
	fs_lock(fs);
	part = dir->local;
	gone = dir->gone;
	fs_unlock(fs);
	if (part != NULL || !make || gone)
		return part;
	made = part_open(fs, dir->backing_dev, dir->backing_ino);
	if (made == NULL)
		return NULL;
	fs_lock(fs);
	if (dir->local == NULL && !dir->gone) {
		dir->local = made;
		made = NULL;
	}
	part = dir->local;
	fs_unlock(fs);
	if (made != NULL)
		part_close(made); /* another request made it first, or it went */
	return part;
}

void local_parts_start(struct kvcfs *fs)
{
	int root = kvc_store_dirfd(fs->local->root.store);
	GPtrArray *stale = g_ptr_array_new_with_free_func(g_free);
	struct kvc_store_dir *it;
	struct kvc_err err;
	unsigned char type;
	const char *name;

	if (kvc_store_dir_open(fs->local->root.store, &it, &err) < 0)
		return;
	while ((name = kvc_store_dir_next(it, &type)) != NULL) {
		struct kdir *d = NULL;
		uint64_t dev, ino;
		GHashTableIter dirs;
		gpointer value;
		if ((type != DT_DIR && type != DT_UNKNOWN) || !part_name_parse(name, &dev, &ino))
			continue;
		fs_lock(fs);
		g_hash_table_iter_init(&dirs, fs->dirs);
		while (d == NULL && g_hash_table_iter_next(&dirs, NULL, &value)) {
			struct kdir *k = value;
			if ((uint64_t)k->backing_dev == dev && (uint64_t)k->backing_ino == ino &&
			    k != fs->root_dir)
				d = kdir_ref(k);
		}
		fs_unlock(fs);
		if (d == NULL) {
			g_ptr_array_add(stale, g_strdup(name));
			continue;
		}
		(void)local_part_of(fs, d, true);
		kdir_unref(fs, d);
	}
	kvc_store_dir_close(it);
	for (guint i = 0; i < stale->len; i++)
		part_remove(root, g_ptr_array_index(stale, i));
	g_ptr_array_free(stale, TRUE);
}

void local_part_free(struct kvcfs *fs, struct kdir *dir)
{
	struct tier_part *part = dir->local;
	char name[PART_NAME_MAX];

	if (part == NULL)
		return;
	dir->local = NULL;
	pthread_mutex_lock(&fs->local->recent_lock);
	if (fs->local->recent == part)
		fs->local->recent = NULL;
	pthread_mutex_unlock(&fs->local->recent_lock);
	part_close(part);
	if (dir->gone) {
		part_name(dir->backing_dev, dir->backing_ino, name);
		part_remove(kvc_store_dirfd(fs->local->root.store), name);
	}
}

GArray *local_parts_all(struct kvcfs *fs)
{
	GArray *all = g_array_new(FALSE, FALSE, sizeof(struct local_part_ref));
	struct local_part_ref r = { &fs->local->root, NULL };
	GHashTableIter it;
	gpointer value;

	g_array_append_val(all, r);
	fs_lock(fs);
	g_hash_table_iter_init(&it, fs->dirs);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct kdir *d = value;
		if (d->local == NULL)
			continue;
		r.part = d->local;
		r.dir = kdir_ref(d);
		g_array_append_val(all, r);
	}
	fs_unlock(fs);
	return all;
}

void local_parts_free(struct kvcfs *fs, GArray *parts)
{
	for (guint i = 0; i < parts->len; i++) {
		struct kdir *d = g_array_index(parts, struct local_part_ref, i).dir;
		if (d != NULL)
			kdir_unref(fs, d);
	}
	g_array_free(parts, TRUE);
}

void local_parts_set_recent(struct kvcfs *fs, struct tier_part *part, const struct kvc_key *key)
{
	struct local_tier *t = fs->local;

	pthread_mutex_lock(&t->recent_lock);
	if (t->recent != NULL && t->recent != part)
		index_clear_recent(&t->recent->index);
	index_set_recent(&part->index, key);
	t->recent = part;
	pthread_mutex_unlock(&t->recent_lock);
}
