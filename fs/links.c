/* SPDX-License-Identifier: MIT */
/*
 * After link(2) publishes a staging file, its staging name and <key>.kvc
 * name one file, as on any filesystem: both show st_nlink 2 and one
 * st_ino (the key's inode), which the NFS-safe lock-file idiom (link, then
 * stat(tmp).st_nlink == 2) and find -samefile or rsync -H rely on. In the
 * backing root the temp's own name is gone by then, so the count is kept
 * here: for each key, the files (device and inode) that staging names of
 * this mount still name. A staging name counts only while the slab under
 * the key is still that file.
 */
#include <sys/stat.h>

#include "kvcfs.h"

struct linked_file {
	dev_t dev;
	ino_t ino;
};

void links_init(struct kvcfs *fs)
{
	fs->links = g_hash_table_new_full(index_key_hash, index_key_equal, g_free,
					  (GDestroyNotify)g_array_unref);
}

void links_destroy(struct kvcfs *fs)
{
	g_hash_table_destroy(fs->links);
}

void links_add(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
	       const struct stat *file)
{
	struct linked_file f = { file->st_dev, file->st_ino };
	GArray *files = g_hash_table_lookup(fs->links, key);

	if (stage->link_counted)
		return;
	if (files == NULL) {
		files = g_array_new(FALSE, FALSE, sizeof(struct linked_file));
		g_hash_table_insert(fs->links, g_memdup2(key, sizeof(*key)), files);
	}
	g_array_append_val(files, f);
	stage->link_counted = true;
	stage->link_key = *key;
	stage->link_file = f.ino;
	stage->link_dev = f.dev;
}

void links_remove(struct kvcfs *fs, struct staging *stage)
{
	GArray *files;

	if (stage == NULL || !stage->link_counted)
		return;
	stage->link_counted = false;
	files = g_hash_table_lookup(fs->links, &stage->link_key);
	if (files == NULL)
		return;
	for (guint i = 0; i < files->len; i++) {
		struct linked_file *f = &g_array_index(files, struct linked_file, i);
		if (f->dev == stage->link_dev && f->ino == stage->link_file) {
			g_array_remove_index_fast(files, i);
			break;
		}
	}
	if (files->len == 0)
		g_hash_table_remove(fs->links, &stage->link_key);
}

unsigned links_to(struct kvcfs *fs, const struct kvc_key *key, const struct stat *file)
{
	GArray *files;
	unsigned n = 0;

	fs_lock(fs);
	files = g_hash_table_lookup(fs->links, key);
	for (guint i = 0; files != NULL && i < files->len; i++) {
		struct linked_file *f = &g_array_index(files, struct linked_file, i);
		n += f->dev == file->st_dev && f->ino == file->st_ino;
	}
	fs_unlock(fs);
	return n;
}
