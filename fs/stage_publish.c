/* SPDX-License-Identifier: MIT */
/*
 * Publishing a staging file: the store's pipeline plus the mount's books
 * (publish_stage: metrics, index, errors), and the requests that publish
 * or drop a staging name: rename to <key>.kvc, link(2) (the states they
 * lead to are in the diagram at the head of stage_writers.c), rename to
 * another staging name, unlink. When a writer the kernel serves directly
 * may still write the file, what is published is a copy of it
 * (publish_copy). Calls into stage.c, never into stage_writers.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stage_internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

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

/* stage->lock held. */
static bool still_as_prepared(struct staging *stage)
{
	struct stat now;

	return (stage->prepared_valid || stage->prepared_refused) &&
	       fstat(stage->tmp.fd, &now) == 0 && same_file_state(&now, &stage->prepared);
}

/*
 * Does anyone but this daemon still hold the temp open for writing? The
 * kernel holds a file of its own on the temp for each passthrough open of
 * it (and for a shared mapping), and drops it at the close that ends that
 * open, before the RELEASE that tells us so is even sent. A write lease can
 * be taken only on a file that no other open file description holds (for
 * writing, nor for reading where the kernel counts readers): taken and
 * given back at once, it asks the kernel that question without waiting for
 * any RELEASE. Where leases are not available the answer is "maybe".
 */
static bool others_may_write(int fd)
{
	if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0)
		return true;
	(void)fcntl(fd, F_SETLEASE, F_UNLCK);
	return false;
}

/*
 * Could a write through a descriptor of the staging file still change the
 * temp after it became a slab? Writes on the daemon's path are refused
 * once it is published (staging_write), so only a passthrough writer
 * counts: one whose close was not seen yet certainly, one that was closed
 * (FLUSH seen, RELEASE not yet) only if the kernel still holds the temp
 * open for it (a dup of the descriptor, a shared mapping). Stage lock held,
 * so no open attaches meanwhile (each open counts itself first).
 */
bool staging_kernel_may_write(struct kvcfs *fs, struct staging *stage)
{
	bool open_writer, closed_writer;

	if (!atomic_load(&stage->bypass))
		return false;
	fs_lock(fs);
	open_writer = stage->flushed_writers < stage->writers;
	closed_writer = stage->writers > 0;
	fs_unlock(fs);
	if (open_writer)
		return true;
	return closed_writer && others_may_write(stage->tmp.fd);
}

/*
 * On the daemon's path a rename of a file still open for writing publishes
 * the file itself (later writes get EPERM), but its bytes were never
 * synced by a close: the fdatasync would run under the directory's lock.
 * Bounded like a copy: above copy_max, EBUSY until it is closed. Stage
 * lock held.
 */
static bool open_and_unsynced_too_big(struct kvcfs *fs, struct staging *stage)
{
	struct stat st;
	bool open_writer;

	if ((stage->tmp.synced && !atomic_load(&stage->dirty)) || fstat(stage->tmp.fd, &st) < 0 ||
	    (uint64_t)st.st_size <= fs->opts.copy_max)
		return false;
	fs_lock(fs);
	open_writer = stage->flushed_writers < stage->writers;
	fs_unlock(fs);
	if (!open_writer)
		return false;
	g_free(stage->error);
	stage->error = g_strdup_printf("busy: the file is still open for writing, and its %lld "
				       "unsynced bytes exceed copy_max (%" G_GUINT64_FORMAT
				       " bytes): close it before the rename or link",
				       (long long)st.st_size, fs->opts.copy_max);
	stage->refused = false;
	return true;
}

/* Why the stage cannot be published now, or 0. Stage lock held. */
static int publish_precheck(struct kvcfs *fs, struct staging *stage, unsigned flags)
{
	if (stage->published || stage->tmp.fd < 0)
		return -EBADF;
	/* A writer's open counts itself (fs->lock) before it attaches to
	 * the temp (stage lock, stage_writers.c): one not counted now finds
	 * the stage published and is refused. */
	if ((flags & PUBLISH_NO_WRITER) && staging_kernel_may_write(fs, stage))
		return PUBLISH_WRITER_CAME;
	if (exceeds_budget(fs, stage))
		return -ENOSPC;
	if ((flags & PUBLISH_NO_WRITER) && open_and_unsynced_too_big(fs, stage))
		return -EBUSY;
	return 0;
}

/* Written since the last try, or by the kernel directly (unseen): then
 * nothing checked before counts, unless the temp is exactly as its last
 * close checked it (prepare_for_publish). Stage lock held. */
static void clear_stale_checks(struct staging *stage)
{
	if (atomic_exchange(&stage->dirty, false) ||
	    (atomic_load(&stage->bypass) && !still_as_prepared(stage))) {
		stage->prepared_valid = false;
		stage->prepared_refused = false;
		stage->tmp.synced = false;
		stage->tmp.verified = false;
	}
}

/* The store's pipeline on the stage's temp, and the stage's record of the
 * outcome: published (and where its bytes are now), or why not
 * (user.kvcfs.error). Stage lock held. */
static int store_publish(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
			 unsigned flags, struct kvc_meta *meta,
			 enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	bool as_link = flags & PUBLISH_AS_LINK;
	int keep_fd = -1;
	int rc = 0;

	/* Refused at its close and unchanged since: the same verdict, without
	 * reading the file again. (Sealing changes it: then it is checked.) */
	if (stage->prepared_refused && !stage->seal) {
		*err = stage->prepared_err;
		rc = -1;
	}
	if (rc == 0)
		rc = seal_if_asked(stage, err);

	/* A link leaves the staging name naming the published file, a close
	 * that publishes may leave a dup of the descriptor open, and readers
	 * of the staging file read on after a rename: keep the file open for
	 * their reads (the pipeline closes the temp). */
	if (rc == 0 && (as_link || staging_read_after_publish(fs, stage)) &&
	    (keep_fd = dup(stage->tmp.fd)) < 0)
		rc = kvc_err_sys(err, errno, "dup of temp %s", stage->tmp.name);
	if (rc == 0)
		rc = (flags & PUBLISH_EXCLUSIVE)
			     ? kvc_store_publish_exclusive(stage->dir->store, &stage->tmp, key, meta,
							   outcome, err)
			     : as_link ? kvc_store_publish_no_adopt(stage->dir->store, &stage->tmp, key,
								  meta, outcome, err)
				       : kvc_store_publish(stage->dir->store, &stage->tmp, key, meta,
							   outcome, err);
	g_free(stage->error);
	stage->error = NULL;
	stage->refused = rc < 0 && kvc_tag_is_format_error(err->tag);
	if (rc == 0) {
		stage->published = true;
		stage->published_key = *key;
		stage->published_fd = keep_fd;
		stage->adopted = *outcome == KVC_PUBLISH_ADOPTED;
		/* The backing root has it (or another writer's slab of the
		 * key); now the local tier's copy, from this host's bytes. */
		local_tier_stage_published(fs, stage, key, *outcome != KVC_PUBLISH_ADOPTED);
		if (keep_fd < 0)
			staging_quota_release(fs, stage);
	} else {
		stage->error = g_strdup_printf("%s: %s", kvc_tag_name(err->tag), err->detail);
		if (keep_fd >= 0)
			close(keep_fd);
	}
	return rc;
}

/* A failed publish, after the stage's lock: the key may be evicted again;
 * a final refusal of the content is counted, any other failure but a slab
 * already there is logged. Returns the errno for the caller. */
static int publish_failed(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			  bool final, const struct kvc_err *err)
{
	index_publishing(&dir->index, key, false);
	if (kvc_tag_is_format_error(err->tag)) {
		if (final)
			atomic_fetch_add(&fs->metrics.rejected, 1);
	} else if (err->tag != KVC_E_EXISTS) {
		log_limited("kvcfs: publish failed: %s\n", err->detail);
	}
	return -kvc_err_to_errno(err);
}

/* The worker keeps the budget: it is woken only when the tree is over it
 * now. A wake for every publish cost a switch to the worker and back per
 * publish, for a check that found nothing to do. Two publishes racing both
 * add their bytes before they look, so the later one sees the excess. */
static void keep_budget(struct kvcfs *fs)
{
	uint64_t bytes, count;

	if (fs->opts.max_size == 0 || fs->opts.read_only)
		return;
	dirs_totals(fs, &bytes, &count);
	if (bytes > fs->opts.max_size)
		maintenance_want_evict(fs);
}

/* A publish that stored the slab (or adopted one), after the stage's lock:
 * its metrics and its place in the index. */
static void publish_succeeded(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			      enum kvc_publish_outcome outcome, struct kvc_meta *meta)
{
	atomic_fetch_add(outcome == KVC_PUBLISH_ADOPTED ? &fs->metrics.adopted
							: &fs->metrics.publishes, 1);
	if (meta->file_size > 0) /* 0: deleted by someone right after */
		index_put(&dir->index, key, meta->file_size, meta->hit_count,
			  meta->last_used_time, meta->creation_time);
	/* Never evict what was just stored (whatever its header says of its
	 * last use): it stays pinned until this mount publishes another. */
	dirs_set_recent(fs, dir, key);
	index_publishing(&dir->index, key, false);
	kvc_meta_clear(meta);
	if (outcome == KVC_PUBLISH_ADOPTED)
		maintenance_want_verify(fs, dir, key); /* kept after a header check */
	keep_budget(fs);
}

/* Blocks (fdatasync, link, a directory fsync under the stage's lock):
 * never under fs->lock. */
int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  unsigned flags)
{
	bool final = flags & PUBLISH_FINAL;
	uint64_t started = metrics_now_ns();
	enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
	struct kvc_meta meta;
	struct kvc_err err;
	int rc;

	fs_assert_unlocked();
	if (fs->opts.read_only)
		return -EROFS;
	pthread_rwlock_wrlock(&stage->lock);
	rc = publish_precheck(fs, stage, flags);
	if (rc != 0) {
		pthread_rwlock_unlock(&stage->lock);
		return rc;
	}
	clear_stale_checks(stage);
	/* No eviction may pick this key while its publish is under way. */
	index_publishing(&stage->dir->index, key, true);
	rc = store_publish(fs, stage, key, flags, &meta, &outcome, &err);
	pthread_rwlock_unlock(&stage->lock);

	atomic_fetch_add(&fs->metrics.publish_ns, metrics_now_ns() - started);
	atomic_fetch_add(&fs->metrics.publish_count, 1);
	if (rc < 0)
		return publish_failed(fs, stage->dir, key, final, &err);
	publish_succeeded(fs, stage->dir, key, outcome, &meta);
	return 0;
}

/* Why the stage was not published, for user.kvcfs.error; refused: on its
 * content (else on a condition). Takes the stage's lock. */
static void set_stage_error(struct staging *stage, char *why, bool refused)
{
	pthread_rwlock_wrlock(&stage->lock);
	g_free(stage->error);
	stage->error = why;
	stage->refused = refused;
	pthread_rwlock_unlock(&stage->lock);
}

/*
 * The copy is made inside the rename, under the kernel's lock of the
 * directory: it is bounded by -o copy_max, and checked against the budget
 * before a byte is copied. 0, or the errno with *why.
 */
static int copy_allowed(struct kvcfs *fs, uint64_t size, char **why)
{
	if (fs->opts.max_size > 0 && size > fs->opts.max_size) {
		*why = g_strdup_printf("no_space: a slab of %" G_GUINT64_FORMAT
				       " bytes exceeds the budget of %" G_GUINT64_FORMAT " bytes",
				       size, fs->opts.max_size);
		return -ENOSPC;
	}
	if (size > fs->opts.copy_max) {
		*why = g_strdup_printf("busy: the file is still open for writing, and a copy of its %"
				       G_GUINT64_FORMAT " bytes would exceed copy_max (%"
				       G_GUINT64_FORMAT " bytes): close every descriptor of it "
				       "before the rename or link", size, fs->opts.copy_max);
		return -EBUSY;
	}
	return 0;
}

/* Data ranges only: a hole stays a hole in the copy. */
static int copy_data(int from, int to, uint64_t size)
{
	loff_t in = 0, out;

	while ((uint64_t)in < size) {
		loff_t data = lseek(from, in, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		hole = lseek(from, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > size)
			hole = (loff_t)size;
		in = out = data;
		while (in < hole) {
			ssize_t n = copy_file_range(from, &in, to, &out, (size_t)(hole - in), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
		}
	}
	return 0;
}

/* The stage's file: its temp, or once published the file kept open for
 * its readers (-1: none). Stage lock held. */
static int stage_file_fd(const struct staging *stage)
{
	return stage->tmp.fd >= 0 ? stage->tmp.fd : stage->published_fd;
}

/* Is the file, as it is now, small enough to copy (or read) inside the
 * rename, and within the budget? *why says why not. */
static int open_file_allowed(struct kvcfs *fs, struct staging *stage, char **why)
{
	struct stat st;
	int rc;

	pthread_rwlock_rdlock(&stage->lock);
	rc = stage_file_fd(stage) < 0 || fstat(stage_file_fd(stage), &st) < 0 ? -EIO : 0;
	pthread_rwlock_unlock(&stage->lock);
	return rc < 0 ? rc : copy_allowed(fs, (uint64_t)st.st_size, why);
}

/* The temp's bytes, as they are now, into a temp of their own. */
static int copy_temp(struct staging *from, struct staging *to)
{
	struct kvc_err err;
	struct stat st;
	int rc;

	pthread_rwlock_rdlock(&from->lock);
	rc = stage_file_fd(from) < 0 || fstat(stage_file_fd(from), &st) < 0 ? -EIO : 0;
	if (rc == 0 && kvc_tmp_create(to->dir->store, "stage", &to->tmp, &err) < 0)
		rc = -kvc_err_to_errno(&err);
	to->tmp.read_only_slab = from->tmp.read_only_slab;
	if (rc == 0)
		rc = copy_data(stage_file_fd(from), to->tmp.fd, (uint64_t)st.st_size);
	if (rc == 0 && ftruncate(to->tmp.fd, st.st_size) < 0)
		rc = -errno;
	pthread_rwlock_unlock(&from->lock);
	return rc;
}

/*
 * A rename or link while a writer can still write the file through the
 * kernel: that writer's later bytes must never land in the slab, so what
 * is published is a copy of the file as it is now. The writer goes on
 * writing its own temp, which is dropped at its close.
 */
/*
 * The key already holds a valid slab and the file's bytes, as they are
 * now, are one too: a rename keeps the existing slab (first writer wins),
 * so nothing needs copying, syncing or linking. 1: so (counted as adopted);
 * 0: not; < 0: the bytes are refused (user.kvcfs.error says why).
 */
static int adopt_in_place(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key)
{
	struct kvc_meta meta;
	struct kvc_err err;
	int rc;

	index_publishing(&stage->dir->index, key, true);
	pthread_rwlock_wrlock(&stage->lock);
	clear_stale_checks(stage);
	rc = kvc_store_would_adopt(stage->dir->store, &stage->tmp, key, &meta, &err);
	pthread_rwlock_unlock(&stage->lock);
	if (rc < 0) {
		set_stage_error(stage, g_strdup_printf("%s: %s", kvc_tag_name(err.tag), err.detail),
				kvc_tag_is_format_error(err.tag));
		return publish_failed(fs, stage->dir, key, true, &err);
	}
	if (rc == 0) {
		index_publishing(&stage->dir->index, key, false);
		return 0;
	}
	publish_succeeded(fs, stage->dir, key, KVC_PUBLISH_ADOPTED, &meta);
	return 1;
}

static int publish_copy(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
			unsigned flags)
{
	struct staging *copy;
	char *why = NULL;
	int rc;

	/* Bounded before anything is read: the adoption below reads the
	 * file in place, the copy copies it. */
	rc = open_file_allowed(fs, stage, &why);
	if (why != NULL)
		set_stage_error(stage, why, false);
	if (rc == 0 && !(flags & (PUBLISH_AS_LINK | PUBLISH_EXCLUSIVE)))
		rc = adopt_in_place(fs, stage, key);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	copy = staging_new(stage->dir);
	rc = copy_temp(stage, copy);
	if (rc == 0) {
		copy->seal = staging_seal_requested(stage);
		/* The slab is its publisher's, as the file itself would have
		 * been (in a sticky root, theirs to remove and publish again). */
		fs_lock(fs);
		copy->uid = stage->uid;
		copy->gid = stage->gid;
		fs_unlock(fs);
		stage_follow_chown(fs, copy);
		rc = publish_stage(fs, copy, key, flags);
		if (rc == 0)
			atomic_fetch_add(&fs->metrics.publish_copies, 1);
	}
	if (rc < 0 && copy->error != NULL)
		set_stage_error(stage, g_strdup(copy->error), copy->refused);
	staging_free(fs, copy);
	return rc;
}

/* Publish a named staging file by rename or link: the file itself, or a
 * copy of it when a writer may still write it (*copied). */
static int publish_named(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
			 unsigned flags, bool *copied)
{
	int rc = publish_stage(fs, stage, key, flags | PUBLISH_NO_WRITER);

	*copied = rc == PUBLISH_WRITER_CAME;
	if (*copied)
		rc = publish_copy(fs, stage, key, flags);
	return rc;
}

void stage_report_refusal(struct kvcfs *fs, struct staging *stage, uid_t who, const char *name,
			  const struct kvc_key *key, int rc)
{
	char slab_name[KVC_SLAB_NAME_LEN + 1];
	char *why, *path, *shown = NULL;

	if (rc >= 0 || rc == -EEXIST) /* EEXIST: link(2)'s answer, not a refusal */
		return;
	pthread_rwlock_rdlock(&stage->lock);
	why = g_strdup(stage->error);
	pthread_rwlock_unlock(&stage->lock);
	/* Below the root, the name is shown with its directory's path. */
	path = kdir_path(fs, stage->dir);
	if (path[0] != '\0') {
		if (name == NULL)
			kvc_key_slab_name(key, slab_name);
		shown = g_strdup_printf("%s/%s", path, name != NULL ? name : slab_name);
	}
	refusals_record(fs, who, shown != NULL ? shown : name, key, -rc,
			why != NULL ? why : strerror(-rc));
	g_free(shown);
	g_free(path);
	g_free(why);
}

/* The name stops naming the staging file; the file lives while open.
 * fs->lock held. */
static void drop_name(struct kvcfs *fs, struct node *node)
{
	node_drop_staging_name(fs, node);
	node_unref(fs, node, 0, 0);
}

/* Does the key's name hold the very file the stage published (and not
 * another writer's slab that its publish adopted, or one published after
 * that slab was removed)? */
bool staging_names_the_slab(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key)
{
	(void)fs;
	char name[KVC_SLAB_NAME_LEN + 1];
	struct stat mine, slab;
	bool adopted;
	int rc = 1;

	pthread_rwlock_rdlock(&stage->lock);
	adopted = stage->adopted;
	if (stage->published_fd >= 0)
		rc = fstat(stage->published_fd, &mine);
	pthread_rwlock_unlock(&stage->lock);
	if (adopted || rc < 0)
		return false;
	if (rc > 0) /* its file was closed at the publish: it is the slab's */
		return true;
	kvc_key_slab_name(key, name);
	return fstatat(kvc_store_dirfd(stage->dir->store), name, &slab, AT_SYMLINK_NOFOLLOW) == 0 &&
	       slab.st_dev == mine.st_dev && slab.st_ino == mine.st_ino;
}

/* The node, which names its slab now, keeps the file open only for the
 * handles still reading it: with none, its descriptor goes now. */
static void release_if_unread(struct kvcfs *fs, struct staging *stage)
{
	bool unread;

	fs_lock(fs);
	unread = stage->openers == 0;
	fs_unlock(fs);
	if (!unread)
		return;
	pthread_rwlock_wrlock(&stage->lock);
	if (stage->published_fd >= 0) {
		close(stage->published_fd);
		stage->published_fd = -1;
	}
	pthread_rwlock_unlock(&stage->lock);
	staging_quota_release(fs, stage);
}

/*
 * A staging name that link(2) published, renamed or linked to its key
 * again after that slab went (rm, eviction) or was replaced: its bytes,
 * still valid, are published again as a copy (the file itself, unlinked
 * everywhere, cannot be given a name), bounded like any copy. A key that
 * meanwhile holds another valid slab keeps it: EEXIST for a link, success
 * for a rename.
 */
static int publish_linked_again(struct kvcfs *fs, struct staging *stage,
				const struct kvc_key *key, unsigned flags, bool as_rename)
{
	int rc = publish_copy(fs, stage, key, (flags & ~PUBLISH_NO_WRITER) | PUBLISH_AS_LINK);

	return as_rename && rc == -EEXIST ? 0 : rc;
}

static int rename_to_slab(struct kvcfs *fs, struct node *src, const struct kvc_key *key,
			  unsigned flags, uid_t who)
{
	char newname[KVC_SLAB_NAME_LEN + 1];
	struct kvc_key published_key;
	bool published, copied, named;
	char *shown;
	int rc;

	pthread_rwlock_rdlock(&src->stage->lock);
	published = src->stage->published;
	published_key = src->stage->published_key;
	pthread_rwlock_unlock(&src->stage->lock);
	if (published && !kvc_key_equal(&published_key, key))
		return -EBADMSG; /* linked before, as another key: not the content's */
	fs_lock(fs);
	shown = g_strdup(src->name);
	fs_unlock(fs);
	if (published) {
		/* Linked before (LINKED): if the name still holds that file,
		 * the kernel moves this node to it, and it becomes the slab's
		 * node, as after any rename to a key. */
		named = staging_names_the_slab(fs, src->stage, key);
		rc = named ? 0 : publish_linked_again(fs, src->stage, key, PUBLISH_FINAL | flags,
						     true);
		copied = !named;
	} else {
		/* RENAME_NOREPLACE: anything under the name (another mount's
		 * slab published a moment ago included) is EEXIST, decided by
		 * link(2). */
		kvc_key_slab_name(key, newname);
		if ((flags & RENAME_NOREPLACE) &&
		    kvc_store_name_taken(src->stage->dir->store, newname)) {
			g_free(shown);
			return -EEXIST;
		}
		rc = publish_named(fs, src->stage, key,
				   PUBLISH_FINAL | ((flags & RENAME_NOREPLACE) ? PUBLISH_EXCLUSIVE : 0),
				   &copied);
		named = rc == 0 && !copied && staging_names_the_slab(fs, src->stage, key);
	}
	stage_report_refusal(fs, src->stage, who, shown, key, rc);
	g_free(shown);
	if (rc < 0)
		return rc;
	fs_lock(fs);
	if (named) {
		node_became_slab(fs, src, key);
		src->cache_suspect = true; /* the staged bytes */
	} else {
		/* What the key holds is not this file (a copy of it, or
		 * another writer's slab that was kept): this node stays the
		 * file its handles read, without a name (it goes at its last
		 * close), and never becomes the key's inode, whose pages must
		 * be the slab's. The kernel's entry for the key, which now
		 * points here, is revalidated at once (a staging entry is never
		 * cached) and finds the slab's own node. */
		node_drop_staging_name(fs, src);
	}
	fs_unlock(fs);
	if (named)
		release_if_unread(fs, src->stage);
	return 0;
}

static int rename_to_staging(struct kvcfs *fs, struct node *src, const char *newname,
			     unsigned flags)
{
	struct node *dst;
	int rc = 0;

	fs_lock(fs);
	dst = g_hash_table_lookup(src->dir->staging, newname);
	if (dst == src || src->name == NULL)
		goto out; /* renamed onto itself, or unlinked meanwhile */
	if (dst != NULL && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if (dst != NULL)
		drop_name(fs, dst);
	g_hash_table_remove(src->dir->staging, src->name);
	g_free(src->name);
	src->name = g_strdup(newname);
	g_hash_table_insert(src->dir->staging, src->name, src);
out:
	fs_unlock(fs);
	return rc;
}

int staging_rename(struct kvcfs *fs, struct kdir *dir, const char *name, const char *newname,
		   unsigned flags, uid_t who)
{
	struct kvc_key key;
	struct node *src;
	int rc, e;
	enum name_class cls = classify_name(newname, dir == fs->root_dir, &key, &e);

	if (cls == NAME_INVALID || cls == NAME_RESERVED)
		return cls == NAME_RESERVED ? -EPERM : -e;
	fs_lock(fs);
	src = g_hash_table_lookup(dir->staging, name);
	if (src != NULL)
		src->nlookup++; /* hold it across the unlocked publish */
	fs_unlock(fs);
	if (src == NULL)
		return -ENOENT;
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (cls == NAME_SLAB)
		rc = rename_to_slab(fs, src, &key, flags, who);
	else if (names_a_dir(fs, dir, newname))
		rc = (flags & RENAME_NOREPLACE) ? -EEXIST : -EISDIR;
	else
		rc = rename_to_staging(fs, src, newname, flags);
	fs_lock(fs);
	node_unref(fs, src, 1, 0);
	fs_unlock(fs);
	return rc;
}

bool staging_is_named(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	bool named;

	fs_lock(fs);
	named = g_hash_table_contains(dir->staging, name);
	fs_unlock(fs);
	return named;
}

int staging_unlink(struct kvcfs *fs, struct kdir *dir, const char *name)
{
	struct node *node;
	bool orphaned = false;
	struct staging *stage = NULL;

	fs_lock(fs);
	node = g_hash_table_lookup(dir->staging, name);
	if (node != NULL) {
		stage = node->stage;
		/* Nobody has it open: its bytes can go now, even though
		 * the kernel may remember the inode a while longer. */
		orphaned = node->open_count == 0;
		node->nlookup++;
		drop_name(fs, node);
	}
	fs_unlock(fs);
	if (node == NULL)
		return -ENOENT;
	if (orphaned)
		staging_discard(fs, stage);
	fs_lock(fs);
	node_unref(fs, node, 1, 0);
	fs_unlock(fs);
	return 0;
}

/* The staging node of a link(2), held (nlookup++) when it can publish. */
static int link_source(struct kvcfs *fs, fuse_ino_t ino, struct kdir *newdir, struct node **out)
{
	struct node *node;
	int rc = 0;

	fs_lock(fs);
	node = node_get(fs, ino);
	if (node == NULL)
		rc = -ENOENT;
	else if (node->kind != NODE_STAGING || node->stage->publish_on_close)
		rc = -EPERM; /* a slab, a directory, or a <key>.kvc in flight */
	else if (node->name == NULL)
		rc = -ENOENT; /* unlinked: link(2) of a deleted file */
	else if (node->dir != newdir)
		rc = -EXDEV; /* its bytes are in another directory's backing one */
	else
		node->nlookup++;
	fs_unlock(fs);
	*out = node;
	return rc;
}

/* The file a staging file published by link(2) still names. */
static bool linked_file(struct staging *stage, struct stat *st)
{
	bool ok;

	pthread_rwlock_rdlock(&stage->lock);
	ok = stage->published_fd >= 0 && fstat(stage->published_fd, st) == 0;
	pthread_rwlock_unlock(&stage->lock);
	return ok;
}

/*
 * link(2) is how many programs publish (the format's reference server,
 * maildir-style writers, kvc build): the same pipeline as rename, and the
 * same answer as link(2) gives when the name is taken. A valid slab of the
 * key already there is the EEXIST of link(2), after which such a program
 * checks and adopts the existing file itself; the staging file stays.
 */
int staging_link(struct kvcfs *fs, fuse_ino_t ino, struct kdir *newdir, const char *newname,
		 struct node **slab, uid_t who)
{
	struct kvc_key key, published_key;
	struct node *src;
	struct stat file;
	bool published, copied = false, linked;
	int rc, e;
	enum name_class cls = classify_name(newname, newdir == fs->root_dir, &key, &e);

	if (cls == NAME_INVALID)
		return -e;
	if (cls != NAME_SLAB)
		return -EPERM; /* hard links are a way to publish, nothing else */
	rc = link_source(fs, ino, newdir, &src);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&src->stage->lock);
	published = src->stage->published;
	published_key = src->stage->published_key;
	pthread_rwlock_unlock(&src->stage->lock);
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (published && !kvc_key_equal(&published_key, &key))
		rc = -EPERM; /* linked before, as another key */
	else if (published) /* linked before: the name is its, or must be again */
		rc = staging_names_the_slab(fs, src->stage, &key)
			     ? -EEXIST : publish_linked_again(fs, src->stage, &key, PUBLISH_FINAL, false);
	else
		/* With a writer the kernel serves directly still holding the
		 * file, what is linked is a copy: the staging name then goes
		 * on naming the writer's own file, not the slab. */
	{
		char *shown;

		fs_lock(fs);
		shown = g_strdup(src->name);
		fs_unlock(fs);
		rc = publish_named(fs, src->stage, &key, PUBLISH_FINAL | PUBLISH_AS_LINK, &copied);
		stage_report_refusal(fs, src->stage, who, shown, &key, rc);
		g_free(shown);
	}
	linked = rc == 0 && !published && !copied && linked_file(src->stage, &file);
	fs_lock(fs);
	if (rc == 0) {
		*slab = node_for_key(fs, newdir, NODE_SLAB, &key);
		/* Whatever the kernel cached of an older file of the key. */
		(*slab)->cache_suspect = true;
	}
	if (linked && src->name != NULL) /* two names of one file now */
		links_add(fs, src->stage, &key, &file);
	node_unref(fs, src, 1, 0);
	fs_unlock(fs);
	return rc;
}
