/* SPDX-License-Identifier: MIT */
/* Directory listings: a snapshot per opendir, served by offset. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

struct dir_entry {
	char *name;
	fuse_ino_t ino;
	mode_t type;
};

static void entry_free(gpointer p)
{
	struct dir_entry *e = p;

	g_free(e->name);
	g_free(e);
}

static void add(GPtrArray *list, const char *name, fuse_ino_t ino, mode_t type)
{
	struct dir_entry *e = g_new(struct dir_entry, 1);

	e->name = g_strdup(name);
	e->ino = ino;
	e->type = type;
	g_ptr_array_add(list, e);
}

/* readdir shows an inode number but no lookup happens; a nonzero stand-in
 * derived from the key keeps tools that skip d_ino == 0 happy. */
static fuse_ino_t listing_ino(const struct kvc_key *key, bool payload)
{
	uint64_t v;

	memcpy(&v, key->bytes, sizeof(v));
	return (v >> 2) | (1ull << 62) | (payload ? 1ull << 61 : 0);
}

/* Slabs from the backing root itself, so other writers' slabs appear. */
static int add_backing_slabs(struct kvcfs *fs, GPtrArray *list, bool payload_view)
{
	struct kvc_store_dir *dir;
	struct kvc_err err;
	const char *name;

	if (kvc_store_dir_open(fs->store, &dir, &err) < 0)
		return -kvc_err_to_errno(&err);
	while ((name = kvc_store_dir_next(dir, NULL)) != NULL) {
		struct kvc_key key;
		if (!kvc_key_from_slab_name(name, &key))
			continue;
		if (payload_view) {
			char hex[KVC_KEY_HEX_LEN + 1];
			kvc_key_to_hex(&key, hex);
			add(list, hex, listing_ino(&key, true), S_IFREG);
		} else {
			add(list, name, listing_ino(&key, false), S_IFREG);
		}
	}
	kvc_store_dir_close(dir);
	return 0;
}

static void add_staging(struct kvcfs *fs, GPtrArray *list)
{
	GHashTableIter it;
	gpointer name, value;

	fs_lock(fs);
	g_hash_table_iter_init(&it, fs->staging);
	/* Staging names only: a <key>.kvc being written has no name until it
	 * is published (staging), so nothing here is listed twice. */
	while (g_hash_table_iter_next(&it, &name, &value))
		add(list, name, ((struct node *)value)->ino, S_IFREG);
	fs_unlock(fs);
}

/* A listing is a copy of the directory, held until releasedir: charged to
 * its opener's share of handles (staging_quota.c). */
static void dir_release(struct kvcfs *fs, GPtrArray *list)
{
	gpointer opener;
	bool counted;

	fs_lock(fs);
	counted = g_hash_table_lookup_extended(fs->open_dirs, list, NULL, &opener);
	g_hash_table_remove(fs->open_dirs, list);
	fs_unlock(fs);
	if (counted)
		open_quota_give(fs, GPOINTER_TO_UINT(opener));
	g_ptr_array_unref(list);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	uid_t opener = fuse_req_ctx(req)->uid;
	GPtrArray *list;
	int rc = access_may_opendir(fs, req, ino);

	if (rc == 0)
		rc = open_quota_take(fs, opener);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	list = g_ptr_array_new_with_free_func(entry_free);
	add(list, ".", ino, S_IFDIR);
	add(list, "..", INO_ROOT, S_IFDIR);
	switch (ino) {
	case INO_ROOT:
		add(list, PAYLOAD_DIR_NAME, INO_PAYLOAD_DIR, S_IFDIR);
		add(list, META_DIR_NAME, INO_META_DIR, S_IFDIR);
		rc = add_backing_slabs(fs, list, false);
		add_staging(fs, list);
		break;
	case INO_PAYLOAD_DIR:
		rc = add_backing_slabs(fs, list, true);
		break;
	case INO_META_DIR:
		add(list, METRICS_NAME, INO_METRICS, S_IFREG);
		add(list, RESCAN_NAME, INO_RESCAN, S_IFREG);
		add(list, REFUSALS_NAME, INO_REFUSALS, S_IFREG);
		break;
	default:
		rc = -ENOTDIR;
	}
	if (rc < 0) {
		g_ptr_array_unref(list);
		open_quota_give(fs, opener);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)list;
	fs_lock(fs);
	g_hash_table_insert(fs->open_dirs, list, GUINT_TO_POINTER(opener));
	fs_unlock(fs);
	/* Not delivered (the opener was interrupted): no releasedir will come
	 * for it. */
	if (fuse_reply_open(req, fi) != 0)
		dir_release(fs, list);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_release(kvcfs_of(req), (GPtrArray *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * readdir with attributes: ls -l, find and du on 10,000 slabs then cost one
 * request per batch of entries instead of a lookup per entry. Every entry
 * returned with an inode counts as a lookup the kernel will forget.
 */
static bool entry_param(struct kvcfs *fs, const struct dir_entry *d, fuse_ino_t dir,
			struct fuse_entry_param *e)
{
	struct kvc_key key;
	struct node *node = NULL;
	int err;

	memset(e, 0, sizeof(*e));
	if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
		return false;
	fs_lock(fs);
	if (dir == INO_PAYLOAD_DIR) {
		if (kvc_key_from_hex(d->name, strlen(d->name), &key))
			node = node_for_key(fs, NODE_PAYLOAD, &key);
	} else if (dir == INO_ROOT && classify_name(d->name, &key, &err) == NAME_SLAB &&
		   g_hash_table_lookup(fs->staging, d->name) == NULL) {
		node = node_for_key(fs, NODE_SLAB, &key);
	} else {
		node = node_get(fs, d->ino);
		if (node != NULL)
			node->nlookup++;
	}
	fs_unlock(fs);
	if (node == NULL)
		return false;
	if (attr_of_node(fs, node, &e->attr, &e->attr_timeout) < 0) {
		fs_lock(fs);
		node_unref(fs, node, 1, 0);
		fs_unlock(fs);
		return false;
	}
	e->ino = node->ino;
	e->entry_timeout = entry_timeout_of(fs, node, e->attr_timeout);
	return true;
}

/* Add one entry at offset i; false when the buffer is full. */
static bool add_entry(fuse_req_t req, struct kvcfs *fs, fuse_ino_t dir, bool plus,
		      const struct dir_entry *d, guint i, char **p, size_t *left)
{
	struct fuse_entry_param e;
	bool counted = false;
	size_t need;

	if (plus)
		counted = entry_param(fs, d, dir, &e);
	if (!counted) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = d->ino;
		e.attr.st_mode = d->type;
	}
	need = plus ? fuse_add_direntry_plus(req, *p, *left, d->name, &e, (off_t)i + 1)
		    : fuse_add_direntry(req, *p, *left, d->name, &e.attr, (off_t)i + 1);
	if (need > *left) {
		if (counted) { /* not sent: the kernel will not forget it */
			struct node *node;
			fs_lock(fs);
			node = node_get(fs, e.ino);
			if (node != NULL)
				node_unref(fs, node, 1, 0);
			fs_unlock(fs);
		}
		return false;
	}
	*p += need;
	*left -= need;
	return true;
}

static void reply_listing(fuse_req_t req, fuse_ino_t dir, size_t size, off_t off,
			  struct fuse_file_info *fi, bool plus)
{
	struct kvcfs *fs = kvcfs_of(req);
	GPtrArray *list = (GPtrArray *)(uintptr_t)fi->fh;
	size_t left = size;
	char *buf, *p;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = g_malloc(size ? size : 1);
	p = buf;
	for (guint i = (guint)off; off < (off_t)list->len && i < list->len; i++)
		if (!add_entry(req, fs, dir, plus, g_ptr_array_index(list, i), i, &p, &left))
			break;
	fuse_reply_buf(req, buf, size - left);
	g_free(buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	reply_listing(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	reply_listing(req, ino, size, off, fi, true);
}
