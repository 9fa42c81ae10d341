/* SPDX-License-Identifier: MIT */
/* Telling the kernel that what it cached of a slab's names is stale. */
#include "kvcfs.h"

void forget_slab_entries(struct kvcfs *fs, const struct kvc_key *key, enum forget_context from)
{
	char name[KVC_SLAB_NAME_LEN + 1];

	/* The kernel locks the parent directory to invalidate an entry, so
	 * only a request that holds no directory lock may wait for it; the
	 * others queue it. A request on the root (unlink) leaves the root's
	 * entry to the kernel, which is updating it anyway. */
	kvc_key_slab_name(key, name);
	if (from == FORGET_FROM_FILE_REQUEST)
		notify_inval_entry_now(&fs->notifier, INO_ROOT, name);
	else if (from == FORGET_LATER)
		notify_inval_entry(&fs->notifier, INO_ROOT, name);
	name[KVC_KEY_HEX_LEN] = '\0';
	if (from == FORGET_LATER)
		notify_inval_entry(&fs->notifier, INO_PAYLOAD_DIR, name);
	else
		notify_inval_entry_now(&fs->notifier, INO_PAYLOAD_DIR, name);
}
