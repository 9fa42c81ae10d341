/* SPDX-License-Identifier: MIT */
/*
 * fs->lock, the leaf lock of the node tables (the lock order is in
 * kvcfs.h). Nothing blocks under it: what a request drops under it and
 * what then needs closing or unlinking (a staging file whose last name and
 * reference went) is queued on fs->stages_gone and freed by fs_unlock
 * after the lock is released, with fs->free_stage (staging_free: set by
 * main, so that this lowest layer calls no layer above it). Debug builds also check that no code that
 * may block (staging_free, a publish, a verification) runs with the lock
 * held by the same thread.
 */
#include <assert.h>

#include "kvcfs.h"

static _Thread_local bool holding_fs_lock;

void fs_lock(struct kvcfs *fs)
{
	pthread_mutex_lock(&fs->lock);
	holding_fs_lock = true;
}

void fs_unlock(struct kvcfs *fs)
{
	gpointer *gone = NULL, *dirs = NULL;
	gsize n = 0, n_dirs = 0;

	if (fs->stages_gone->len > 0)
		gone = g_ptr_array_steal(fs->stages_gone, &n);
	if (fs->dirs_gone != NULL && fs->dirs_gone->len > 0)
		dirs = g_ptr_array_steal(fs->dirs_gone, &n_dirs);
	holding_fs_lock = false;
	pthread_mutex_unlock(&fs->lock);
	for (gsize i = 0; i < n; i++)
		fs->free_stage(fs, gone[i]);
	g_free(gone);
	for (gsize i = 0; i < n_dirs; i++)
		kdir_free(fs, dirs[i]);
	g_free(dirs);
}

void fs_assert_unlocked(void)
{
	assert(!holding_fs_lock);
}
