/* SPDX-License-Identifier: MIT */
/* Telling the kernel that what it cached of a slab's names is stale. */
#include "kvcfs.h"

/*
 * Always through the notifier's thread, never from the request: the kernel
 * locks the parent directory to invalidate an entry, and a request thread
 * that waited for that could wait for a lookup which waits for a request
 * thread (with -s or -o threads=1, for the only one). A request on a
 * directory (unlink) leaves its entry to the kernel, which is updating
 * it anyway; the payload view's entry goes a moment later, and an open of
 * it meanwhile finds no slab (ENOENT).
 */
void forget_slab_entries(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			 enum forget_context from)
{
	char name[KVC_SLAB_NAME_LEN + 1];
	fuse_ino_t payload_ino;

	fs_lock(fs);
	payload_ino = dir->payload_ino;
	fs_unlock(fs);
	kvc_key_slab_name(key, name);
	if (from != FORGET_FROM_DIR_REQUEST)
		notify_inval_entry(&fs->notifier, dir->ino, name);
	name[KVC_KEY_HEX_LEN] = '\0';
	if (payload_ino != 0)
		notify_inval_entry(&fs->notifier, payload_ino, name);
}
