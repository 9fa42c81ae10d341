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
	struct kdir *sub;          /* a subdirectory (kept by the listing) */
};

/* A listing is a copy of the directory made at opendir, held until
 * releasedir. */
struct listing {
	GPtrArray *entries;        /* struct dir_entry */
	enum node_kind kind;       /* of the directory listed */
	struct kdir *dir;          /* its directory (not for .kvcfs) */
	GPtrArray *subs;           /* struct kdir *, referenced */
};

static void entry_free(gpointer p)
{
	struct dir_entry *e = p;

	g_free(e->name);
	g_free(e);
}

static struct dir_entry *add(struct listing *list, const char *name, fuse_ino_t ino, mode_t type)
{
	struct dir_entry *e = g_new0(struct dir_entry, 1);

	e->name = g_strdup(name);
	e->ino = ino;
	e->type = type;
	g_ptr_array_add(list->entries, e);
	return e;
}

/* readdir shows an inode number but no lookup happens; a nonzero stand-in
 * derived from the key keeps tools that skip d_ino == 0 happy. */
static fuse_ino_t listing_ino(const struct kvc_key *key, bool payload)
{
	uint64_t v;

	memcpy(&v, key->bytes, sizeof(v));
	return (v >> 2) | (1ull << 62) | (payload ? 1ull << 61 : 0);
}

/* The backing directory's slabs, so other writers' slabs appear, and its
 * subdirectories (looked up: the mount knows them from now on). */
static int add_backing_names(struct kvcfs *fs, struct listing *list, bool payload_view)
{
	bool in_root = list->dir == fs->root_dir;
	struct kvc_store_dir *dir;
	struct kvc_err err;
	unsigned char type;
	const char *name;

	if (kvc_store_dir_open(list->dir->store, &dir, &err) < 0)
		return -kvc_err_to_errno(&err);
	while ((name = kvc_store_dir_next(dir, &type)) != NULL) {
		struct kvc_key key;
		struct kdir *sub;
		if (kvc_key_from_slab_name(name, &key)) {
			if (payload_view) {
				char hex[KVC_KEY_HEX_LEN + 1];
				kvc_key_to_hex(&key, hex);
				add(list, hex, listing_ino(&key, true), S_IFREG);
			} else {
				add(list, name, listing_ino(&key, false), S_IFREG);
			}
			continue;
		}
		if ((type != DT_DIR && type != DT_UNKNOWN) || !dir_name_ok(name, in_root) ||
		    kdir_lookup(fs, list->dir, name, &sub) < 0)
			continue;
		g_ptr_array_add(list->subs, sub);
		add(list, name, payload_view ? listing_ino(&(struct kvc_key){ { 0 } }, true) + 1 +
							list->subs->len
					     : sub->ino, S_IFDIR)->sub = sub;
	}
	kvc_store_dir_close(dir);
	return 0;
}

static void add_staging(struct kvcfs *fs, struct listing *list)
{
	GHashTableIter it;
	gpointer name, value;

	fs_lock(fs);
	g_hash_table_iter_init(&it, list->dir->staging);
	/* Staging names only: a <key>.kvc being written has no name until it
	 * is published (staging), so nothing here is listed twice. */
	while (g_hash_table_iter_next(&it, &name, &value))
		add(list, name, ((struct node *)value)->ino, S_IFREG);
	fs_unlock(fs);
}

static void listing_free(struct kvcfs *fs, struct listing *list)
{
	for (guint i = 0; i < list->subs->len; i++)
		kdir_unref(fs, g_ptr_array_index(list->subs, i));
	g_ptr_array_unref(list->subs);
	g_ptr_array_unref(list->entries);
	if (list->dir != NULL)
		kdir_unref(fs, list->dir);
	g_free(list);
}

/* A listing is charged to its opener's share of handles (staging_quota.c). */
void listing_release(struct kvcfs *fs, struct listing *list)
{
	gpointer opener;
	bool counted;

	fs_lock(fs);
	counted = g_hash_table_lookup_extended(fs->open_dirs, list, NULL, &opener);
	g_hash_table_remove(fs->open_dirs, list);
	fs_unlock(fs);
	if (counted)
		open_quota_give(fs, GPOINTER_TO_UINT(opener));
	listing_free(fs, list);
}

static int fill_listing(struct kvcfs *fs, struct listing *list, fuse_ino_t ino)
{
	int rc = 0;

	add(list, ".", ino, S_IFDIR);
	add(list, "..", INO_ROOT, S_IFDIR);
	switch (list->kind) {
	case NODE_ROOT:
		add(list, PAYLOAD_DIR_NAME, INO_PAYLOAD_DIR, S_IFDIR);
		add(list, META_DIR_NAME, INO_META_DIR, S_IFDIR);
		/* fall through */
	case NODE_DIR:
		rc = add_backing_names(fs, list, false);
		add_staging(fs, list);
		break;
	case NODE_PAYLOAD_DIR:
		rc = add_backing_names(fs, list, true);
		break;
	case NODE_META_DIR:
		add(list, METRICS_NAME, INO_METRICS, S_IFREG);
		add(list, RESCAN_NAME, INO_RESCAN, S_IFREG);
		add(list, REFUSALS_NAME, INO_REFUSALS, S_IFREG);
		break;
	default:
		rc = -ENOTDIR;
	}
	return rc;
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	uid_t opener = fuse_req_ctx(req)->uid;
	struct listing *list;
	struct node_view v;
	bool gone = false;
	int rc = access_may_opendir(fs, req, ino);

	if (rc == 0 && node_held(fs, ino, &v) == NULL)
		rc = -ENOENT;
	if (rc == 0) {
		fs_lock(fs);
		gone = v.dir != NULL && v.dir->gone;
		fs_unlock(fs);
		rc = gone ? -ENOENT : open_quota_take(fs, opener);
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	list = g_new0(struct listing, 1);
	list->entries = g_ptr_array_new_with_free_func(entry_free);
	list->subs = g_ptr_array_new();
	list->kind = v.kind;
	list->dir = v.kind != NODE_META_DIR && v.dir != NULL ? kdir_ref(v.dir) : NULL;
	rc = fill_listing(fs, list, ino);
	if (rc < 0) {
		listing_free(fs, list);
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
		listing_release(fs, list);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	listing_release(kvcfs_of(req), (struct listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * readdir with attributes: ls -l, find and du on 10,000 slabs then cost one
 * request per batch of entries instead of a lookup per entry. Every entry
 * returned with an inode counts as a lookup the kernel will forget.
 */
static bool entry_param(struct kvcfs *fs, const struct listing *list, const struct dir_entry *d,
			struct fuse_entry_param *e)
{
	struct kvc_key key;
	struct node *node = NULL;
	bool staging = false;
	int err;

	memset(e, 0, sizeof(*e));
	if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
		return false;
	/* A directory listed at opendir may have moved since: its inode goes
	 * out under the name only if the name still holds it (else the
	 * kernel would move its entry back to the old name, and paths
	 * through that name would lead into it where it is now). */
	if (d->sub != NULL && !kdir_named(d->sub, list->dir, d->name))
		return false;
	fs_lock(fs);
	if (d->sub != NULL) {
		node = list->kind == NODE_PAYLOAD_DIR ? kdir_payload_node(fs, d->sub)
						      : kdir_node(fs, d->sub);
	} else if (list->kind == NODE_PAYLOAD_DIR) {
		if (kvc_key_from_hex(d->name, strlen(d->name), &key))
			node = node_for_key(fs, list->dir, NODE_PAYLOAD, &key);
	} else if (node_kind_is_cache_dir(list->kind) &&
		   classify_name(d->name, list->kind == NODE_ROOT, &key, &err) == NAME_SLAB) {
		node = node_for_key(fs, list->dir, NODE_SLAB, &key);
	} else if (node_kind_is_cache_dir(list->kind)) {
		/* A staging name as listed: only if it still names that file
		 * (renamed since, its node may be a slab's now). */
		staging = true;
		node = g_hash_table_lookup(list->dir->staging, d->name);
		if (node != NULL && node->ino != d->ino)
			node = NULL;
		if (node != NULL)
			node->nlookup++;
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
	if (staging) /* as in a lookup of one (ops_entry.c) */
		e->entry_timeout = e->attr_timeout = 0;
	return true;
}

/* Add one entry at offset i; false when the buffer is full. */
static bool add_entry(fuse_req_t req, struct kvcfs *fs, const struct listing *list, bool plus,
		      const struct dir_entry *d, guint i, char **p, size_t *left)
{
	struct fuse_entry_param e;
	bool counted = false;
	size_t need;

	if (plus)
		counted = entry_param(fs, list, d, &e);
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

static void reply_listing(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
			  bool plus)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct listing *listing = (struct listing *)(uintptr_t)fi->fh;
	GPtrArray *list = listing->entries;
	size_t left = size;
	char *buf, *p;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = g_malloc(size ? size : 1);
	p = buf;
	for (guint i = (guint)off; off < (off_t)list->len && i < list->len; i++)
		if (!add_entry(req, fs, listing, plus, g_ptr_array_index(list, i), i, &p, &left))
			break;
	fuse_reply_buf(req, buf, size - left);
	g_free(buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	(void)ino;
	reply_listing(req, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	reply_listing(req, size, off, fi, true);
}
