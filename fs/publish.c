/* SPDX-License-Identifier: MIT */
/* Publishing a staging file: the store's pipeline plus the mount's books. */
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

/* A slab bigger than the whole budget is refused rather than flushing
 * every other slab out to make room for it. */
static bool exceeds_budget(struct kvcfs *fs, struct staging *stage)
{
	struct stat st;

	if (fs->opts.max_size == 0 || fstat(stage->tmp.fd, &st) < 0 ||
	    (uint64_t)st.st_size <= fs->opts.max_size)
		return false;
	g_free(stage->error);
	stage->error = g_strdup_printf("no_space: a slab of %lld bytes exceeds the budget of %" G_GUINT64_FORMAT " bytes",
				       (long long)st.st_size, fs->opts.max_size);
	stage->refused = false;
	return true;
}

/* The writer asked kvcfs to fill in the payload's CRC (user.kvcfs.seal):
 * done before the pipeline validates the rest. Stage lock held. */
static int seal_if_asked(struct staging *stage, struct kvc_err *err)
{
	if (!stage->seal)
		return 0;
	return kvc_tmp_seal(&stage->tmp, err);
}

/* A <key>.kvc waiting for its close (stage->lock held; fs->lock is a leaf). */
static bool in_flight(struct kvcfs *fs, struct staging *stage)
{
	bool yes;

	fs_lock(fs);
	yes = stage->publish_on_close;
	fs_unlock(fs);
	return yes;
}

/* stage->lock held. */
static bool still_as_prepared(struct staging *stage)
{
	struct stat now;

	return stage->prepared_valid && fstat(stage->tmp.fd, &now) == 0 &&
	       same_file_state(&now, &stage->prepared);
}

int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  unsigned flags)
{
	bool final = flags & PUBLISH_FINAL, as_link = flags & PUBLISH_AS_LINK;
	int keep_fd = -1;
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
	/* A writer's open counts itself (fs->lock) before it attaches to
	 * the temp (stage lock, staging.c): one not counted now finds the
	 * stage published and is refused. */
	if ((flags & PUBLISH_NO_WRITER) && staging_kernel_may_write(fs, stage)) {
		pthread_rwlock_unlock(&stage->lock);
		return PUBLISH_WRITER_CAME;
	}
	if (exceeds_budget(fs, stage)) {
		pthread_rwlock_unlock(&stage->lock);
		return -ENOSPC;
	}
	/* Written since the last try, or by the kernel directly (unseen):
	 * then nothing checked before counts, unless the temp is exactly as
	 * its last close checked it (prepare_for_publish). */
	if (atomic_exchange(&stage->dirty, false) ||
	    (atomic_load(&stage->bypass) && !still_as_prepared(stage))) {
		stage->prepared_valid = false;
		stage->tmp.synced = false;
		stage->tmp.verified = false;
	}
	/* No eviction may pick this key while its publish is under way. */
	index_publishing(&fs->index, key, true);
	rc = seal_if_asked(stage, &err);
	/* A link leaves the staging name naming the published file, and a
	 * close that publishes may leave a dup of the descriptor open: keep
	 * the file open for their reads (the pipeline closes the temp). */
	if (rc == 0 && (as_link || in_flight(fs, stage)) && (keep_fd = dup(stage->tmp.fd)) < 0)
		rc = kvc_err_sys(&err, errno, "dup of temp %s", stage->tmp.name);
	if (rc == 0)
		rc = as_link ? kvc_store_publish_no_adopt(fs->store, &stage->tmp, key, &meta,
							  &outcome, &err)
			     : kvc_store_publish(fs->store, &stage->tmp, key, &meta, &outcome, &err);
	g_free(stage->error);
	stage->error = NULL;
	stage->refused = rc < 0 && kvc_tag_is_format_error(err.tag);
	if (rc == 0) {
		stage->published = true;
		stage->published_key = *key;
		stage->published_fd = keep_fd;
		/* The backing root has it (or another writer's slab of the
		 * key); now the local tier's copy, from this host's bytes. */
		local_tier_stage_published(fs, stage, key, outcome != KVC_PUBLISH_ADOPTED);
	} else {
		stage->error = g_strdup_printf("%s: %s", kvc_tag_name(err.tag), err.detail);
		if (keep_fd >= 0)
			close(keep_fd);
	}
	pthread_rwlock_unlock(&stage->lock);

	atomic_fetch_add(&fs->metrics.publish_ns, metrics_now_ns() - started);
	atomic_fetch_add(&fs->metrics.publish_count, 1);
	if (rc < 0) {
		index_publishing(&fs->index, key, false);
		if (kvc_tag_is_format_error(err.tag)) {
			if (final)
				atomic_fetch_add(&fs->metrics.rejected, 1);
		} else if (err.tag != KVC_E_EXISTS) {
			fuse_log(FUSE_LOG_ERR, "kvcfs: publish failed: %s\n", err.detail);
		}
		return -kvc_err_to_errno(&err);
	}
	atomic_fetch_add(outcome == KVC_PUBLISH_ADOPTED ? &fs->metrics.adopted
							: &fs->metrics.publishes, 1);
	if (meta.file_size > 0) /* 0: deleted by someone right after */
		index_put(&fs->index, key, meta.file_size, meta.hit_count, meta.last_used_time,
			  meta.creation_time);
	/* Never evict what was just stored (whatever its header says of its
	 * last use): it stays pinned until this mount publishes another. */
	index_set_recent(&fs->index, key);
	index_publishing(&fs->index, key, false);
	kvc_meta_clear(&meta);
	maintenance_want_evict(fs); /* the worker keeps the budget */
	return 0;
}
