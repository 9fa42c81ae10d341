/* SPDX-License-Identifier: MIT */
/* Open handles: made by open and create, answered, and released by RELEASE,
 * by a failed open or create, or at exit. One path for all of them, so
 * that whatever an open took (a descriptor, index pins of both tiers, a
 * passthrough reference, a stage) is given back the same way. */
#include <unistd.h>

#include "kvcfs.h"

struct handle *handle_new(struct kvcfs *fs, struct node *node)
{
	struct handle *h = g_new0(struct handle, 1);

	h->fd = -1;
	h->node = node;
	fs_lock(fs);
	node->open_count++;
	fs_unlock(fs);
	return h;
}

void handle_release(struct kvcfs *fs, struct handle *h, fuse_req_t req)
{
	passthrough_detach(fs, req, h);
	if (h->fd >= 0)
		close(h->fd);
	if (h->fd_counted)
		open_quota_give(fs, h->fd_uid);
	if (h->pins)
		index_closed(&h->node->dir->index, &h->key);
	if (h->pins && h->tier_index != NULL && h->tier_index != &h->node->dir->index)
		index_closed(h->tier_index, &h->key);
	verified_release(h);
	if (h->stage != NULL)
		staging_release(fs, h);
	fs_lock(fs);
	g_hash_table_remove(fs->open_files, h);
	node_unref(fs, h->node, 0, 1);
	fs_unlock(fs);
	g_free(h->text);
	g_free(h);
}

void handle_reply_open(fuse_req_t req, struct kvcfs *fs, struct handle *h,
		       struct fuse_file_info *fi)
{
	fs_lock(fs);
	g_hash_table_add(fs->open_files, h);
	fs_unlock(fs);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_release(fs, h, NULL); /* the opener went away */
}

/*
 * close(2) returns before its RELEASE reaches us, and an unmount right then
 * aborts the connection: the kernel drops the RELEASEs still queued (a FUSE
 * mount that is not fuseblk gets no DESTROY to wait for them). Those opens
 * are released here, once no request can come any more, as their RELEASE
 * would have: a refused cp's temp goes, nothing is left open.
 */
void handles_release_lost(struct kvcfs *fs)
{
	GList *files, *dirs;

	fs_lock(fs);
	files = g_hash_table_get_keys(fs->open_files);
	dirs = g_hash_table_get_keys(fs->open_dirs);
	g_hash_table_steal_all(fs->open_files);
	g_hash_table_steal_all(fs->open_dirs);
	fs_unlock(fs);
	for (GList *l = files; l != NULL; l = l->next)
		handle_release(fs, l->data, NULL);
	for (GList *l = dirs; l != NULL; l = l->next)
		listing_release(fs, l->data);
	g_list_free(files);
	g_list_free(dirs);
}
