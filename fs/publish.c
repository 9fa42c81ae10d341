/* SPDX-License-Identifier: MIT */
/* Publishing a staging file: the store's pipeline plus the mount's books. */
#include <errno.h>
#include <time.h>

#include "kvcfs.h"

int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  bool final)
{
	uint64_t started = metrics_now_ns();
	enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
	struct kvc_meta meta;
	struct kvc_err err;
	int rc;

	if (fs->opts.read_only)
		return -EROFS;
	pthread_rwlock_wrlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0) {
		pthread_rwlock_unlock(&stage->lock);
		return -EBADF;
	}
	if (atomic_exchange(&stage->dirty, false)) {
		stage->tmp.synced = false;
		stage->tmp.verified = false;
	}
	rc = kvc_store_publish(fs->store, &stage->tmp, key, &meta, &outcome, &err);
	g_free(stage->error);
	stage->error = NULL;
	stage->refused = rc < 0 && kvc_tag_is_format_error(err.tag);
	if (rc == 0)
		stage->published = true;
	else
		stage->error = g_strdup_printf("%s: %s", kvc_tag_name(err.tag), err.detail);
	pthread_rwlock_unlock(&stage->lock);

	atomic_fetch_add(&fs->metrics.publish_ns, metrics_now_ns() - started);
	atomic_fetch_add(&fs->metrics.publish_count, 1);
	if (rc < 0) {
		if (kvc_tag_is_format_error(err.tag)) {
			if (final)
				atomic_fetch_add(&fs->metrics.rejected, 1);
		} else {
			fuse_log(FUSE_LOG_ERR, "kvcfs: publish failed: %s\n", err.detail);
		}
		return -kvc_err_to_errno(&err);
	}
	atomic_fetch_add(outcome == KVC_PUBLISH_ADOPTED ? &fs->metrics.adopted
							: &fs->metrics.publishes, 1);
	index_put(&fs->index, key, meta.file_size, meta.hit_count, meta.last_used_time,
		  meta.creation_time);
	kvc_meta_clear(&meta);
	return 0;
}

void forget_slab_entries(struct kvcfs *fs, const struct kvc_key *key, bool in_root_request)
{
	char name[KVC_SLAB_NAME_LEN + 1];

	kvc_key_slab_name(key, name);
	if (!in_root_request)
		notify_inval_entry(&fs->notifier, INO_ROOT, name);
	name[KVC_KEY_HEX_LEN] = '\0';
	/* From a request on the root, the payload directory is unrelated and
	 * the kernel can take its lock: invalidate before replying, so the
	 * caller's next look at payload/ is already right. */
	if (in_root_request)
		notify_inval_entry_now(&fs->notifier, INO_PAYLOAD_DIR, name);
	else
		notify_inval_entry(&fs->notifier, INO_PAYLOAD_DIR, name);
}
