/* SPDX-License-Identifier: MIT */
/*
 * The stage as an object: the writer-unique temp in the backing root that
 * holds a file's bytes while it is written (kvc_tmp_create). Made, freed
 * and discarded here; its bytes read, written, synced, truncated and
 * checked before a publish; its attributes; and the request to seal it
 * (user.kvcfs.seal). Who may write it and when it publishes is
 * stage_writers.c (with the state diagram); publishing is stage_publish.c.
 * This file calls neither.
 *
 * Locks: a stage's rwlock is held shared by writes into the temp and
 * exclusive by a publish or a discard; the fields that say where the stage
 * is in its life (publish_on_close, writers, mode) are under fs->lock,
 * which is never held while waiting for a stage's lock (kvcfs.h).
 */
#include <errno.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "stage_internal.h"

/* Hand the temp to who the stage says owns it, so that the slab it becomes
 * is theirs in the backing root. Only root can; the first refusal (a root
 * without CAP_CHOWN, a network filesystem squashing root) turns it off. */
static void chown_temp(struct kvcfs *fs, int fd, uid_t uid, gid_t gid)
{
	if (!atomic_load(&fs->access.chown_temps) || fd < 0)
		return;
	if (fchown(fd, uid, gid) == 0 || errno != EPERM)
		return;
	if (atomic_exchange(&fs->access.chown_temps, false))
		fuse_log(FUSE_LOG_WARNING,
			 "kvcfs: the backing root refuses chown (EPERM): from now on new slabs "
			 "belong to uid %u, not to their publisher\n", (unsigned)geteuid());
}

void stage_set_owner(struct kvcfs *fs, fuse_req_t req, struct staging *stage)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat root;

	stage->uid = ctx->uid;
	/* A set-group-ID directory gives new files its group, as on any
	 * local filesystem (and as the backing filesystem does to the temp). */
	stage->gid = fstat(kvc_store_dirfd(stage->dir->store), &root) == 0 &&
				     (root.st_mode & S_ISGID)
			     ? root.st_gid : ctx->gid;
	/* A daemon that hands slabs to their publishers is root, whose hit
	 * writes need no write bit: the publisher gets a slab they cannot
	 * rewrite in place in the backing root. (Set before the stage is
	 * visible.) */
	stage->tmp.read_only_slab = atomic_load(&fs->access.chown_temps);
	chown_temp(fs, stage->tmp.fd, stage->uid, stage->gid);
}

void stage_follow_chown(struct kvcfs *fs, struct staging *stage)
{
	uid_t uid;
	gid_t gid;

	fs_lock(fs);
	uid = stage->uid;
	gid = stage->gid;
	fs_unlock(fs);
	chown_temp(fs, stage->tmp.fd, uid, gid);
}

struct staging *staging_new(struct kdir *dir)
{
	struct staging *stage = g_new0(struct staging, 1);

	stage->dir = kdir_ref(dir);
	pthread_rwlock_init(&stage->lock, NULL);
	stage->tmp.fd = -1;
	stage->published_fd = -1;
	stage->local_tmp.fd = -1;
	return stage;
}

/* May block (closing or unlinking the temp): never under fs->lock, which
 * is why fs_unlock frees what was dropped under it only after it. */
void staging_free(struct kvcfs *fs, struct staging *stage)
{
	fs_assert_unlocked();
	if (stage == NULL)
		return;
	staging_quota_release(fs, stage);
	if (!stage->published)
		kvc_store_abort_tmp(stage->dir->store, &stage->tmp);
	else if (stage->tmp.fd >= 0)
		close(stage->tmp.fd);
	if (stage->published_fd >= 0)
		close(stage->published_fd);
	local_tier_stage_end(fs, stage);
	pthread_rwlock_destroy(&stage->lock);
	g_free(stage->error);
	kdir_unref(fs, stage->dir);
	g_free(stage);
}

bool stage_is_empty(struct staging *stage)
{
	struct stat st;
	bool empty;

	pthread_rwlock_rdlock(&stage->lock);
	empty = stage->tmp.fd >= 0 && fstat(stage->tmp.fd, &st) == 0 && st.st_size == 0;
	pthread_rwlock_unlock(&stage->lock);
	return empty;
}

/* No name and no handle: the bytes can never be published; give their
 * space back now rather than when the kernel forgets the inode. */
void staging_discard(struct kvcfs *fs, struct staging *stage)
{
	pthread_rwlock_wrlock(&stage->lock);
	if (!stage->published)
		kvc_store_abort_tmp(stage->dir->store, &stage->tmp);
	if (stage->published_fd >= 0) { /* kept for readers, and none is left */
		close(stage->published_fd);
		stage->published_fd = -1;
	}
	local_tier_stage_end(fs, stage);
	pthread_rwlock_unlock(&stage->lock);
	staging_quota_release(fs, stage);
}

struct staging *stage_for_writer(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, mode_t mode,
				 int *rc)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	struct staging *stage;
	struct kvc_err err;

	/* Counted before its descriptor exists: a user over the bound never
	 * costs the daemon one. */
	*rc = staging_quota_take(fs, uid);
	if (*rc < 0)
		return NULL;
	stage = staging_new(dir);
	atomic_store(&stage->quota_counted, true);
	stage->quota_uid = uid;
	if (kvc_tmp_create(dir->store, "stage", &stage->tmp, &err) < 0) {
		*rc = -kvc_err_to_errno(&err);
		staging_free(fs, stage);
		return NULL;
	}
	local_tier_stage_begin(fs, stage);
	atomic_store(&stage->replacing, true);
	stage->mode = mode & 07777;
	stage_set_owner(fs, req, stage);
	return stage;
}

ssize_t staging_read(struct handle *h, void *buf, size_t size, off_t off)
{
	ssize_t n;
	int fd;

	pthread_rwlock_rdlock(&h->stage->lock);
	/* Linked: the staging name reads the published file. */
	fd = h->stage->tmp.fd >= 0 ? h->stage->tmp.fd : h->stage->published_fd;
	n = fd < 0 ? (errno = EBADF, -1) : pread(fd, buf, size, off);
	if (n < 0)
		n = -errno;
	pthread_rwlock_unlock(&h->stage->lock);
	return n;
}

ssize_t staging_write(struct handle *h, const void *buf, size_t size, off_t off)
{
	struct staging *stage = h->stage;
	ssize_t n;

	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0 || !atomic_load(&stage->replacing)) {
		/* The bytes already became a slab, or this would write into
		 * one: a slab is immutable. */
		n = -EPERM;
	} else {
		n = pwrite(stage->tmp.fd, buf, size, off);
		atomic_store(&stage->dirty, true);
		if (n > 0) {
			kvc_tmp_note_write(&stage->tmp, (uint64_t)off, buf, (size_t)n);
			local_tier_stage_write(stage, (uint64_t)off, buf, (size_t)n);
		}
		if (n < 0) {
			n = -errno;
			if (errno == ENOSPC || errno == EDQUOT || errno == EIO)
				atomic_store(&stage->write_error, errno);
		}
	}
	pthread_rwlock_unlock(&stage->lock);
	return n;
}

int staging_fsync(struct handle *h, int datasync)
{
	int rc = 0;

	pthread_rwlock_rdlock(&h->stage->lock);
	if (h->stage->tmp.fd >= 0 &&
	    (datasync ? fdatasync(h->stage->tmp.fd) : fsync(h->stage->tmp.fd)) < 0)
		rc = -errno;
	pthread_rwlock_unlock(&h->stage->lock);
	return rc;
}

int truncate_for_open(struct staging *stage)
{
	int rc = 0;

	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0)
		rc = -EPERM;
	else if (ftruncate(stage->tmp.fd, 0) < 0)
		rc = -errno;
	else
		kvc_tmp_note_truncate(&stage->tmp, 0);
	if (rc == 0)
		local_tier_stage_truncate(stage, 0);
	atomic_store(&stage->dirty, true);
	pthread_rwlock_unlock(&stage->lock);
	return rc;
}

/*
 * The last writer of a named staging file closed it: flush and verify it
 * now, against the key its content names, so that the rename (or link)
 * that publishes it holds the kernel's lock on the directory only for the
 * link and the directory fsync, not for reading a large slab back. The
 * state of the temp before and after is kept: the publish trusts this work
 * only if the temp is still exactly so (a write through the kernel directly,
 * with passthrough, moves its ctime).
 */
void prepare_for_publish(struct staging *stage)
{
	struct kvc_err err;
	struct stat before;

	bool ok;

	pthread_rwlock_wrlock(&stage->lock);
	stage->prepared_valid = false;
	stage->prepared_refused = false;
	if (!stage->published && stage->tmp.fd >= 0 && fstat(stage->tmp.fd, &before) == 0) {
		if (atomic_exchange(&stage->dirty, false) || atomic_load(&stage->bypass)) {
			stage->tmp.synced = false;
			stage->tmp.verified = false;
		}
		ok = kvc_tmp_prepare(&stage->tmp, &err) == 0;
		if (fstat(stage->tmp.fd, &stage->prepared) == 0 &&
		    same_file_state(&before, &stage->prepared)) {
			/* Valid, or refused on its content: either way the
			 * verdict holds while the file stays exactly so, and a
			 * rename need not read it again under the directory's
			 * lock. */
			stage->prepared_valid = ok;
			stage->prepared_refused = !ok && kvc_tag_is_format_error(err.tag);
			stage->prepared_err = err;
		}
	}
	pthread_rwlock_unlock(&stage->lock);
}

/* A truncate (by name, or through a handle) of a named staging file that
 * no writer holds open: its bytes changed without a close to check them,
 * so they are checked here, in the request that changed them, and the
 * rename that publishes them does not verify under the directory's lock. */
static void prepare_if_closed(struct kvcfs *fs, struct staging *stage)
{
	bool closed;

	fs_lock(fs);
	closed = !stage->publish_on_close && stage->flushed_writers == stage->writers;
	fs_unlock(fs);
	if (closed)
		prepare_for_publish(stage);
}

static int set_times(struct staging *stage, const struct stat *attr, int to_set)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	return futimens(stage->tmp.fd, ts) < 0 ? -errno : 0;
}

int staging_setattr(struct kvcfs *fs, struct staging *stage, const struct stat *attr,
		    int to_set)
{
	struct stat before;
	bool as_checked;
	int rc = 0;

	pthread_rwlock_wrlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0) {
		rc = -EPERM;
		goto out;
	}
	/* A chmod, chown or touch changes no byte (mkstemp, fchmod, rename
	 * is the usual way to publish): what the last close checked still
	 * holds, though the change moves the temp's ctime. */
	as_checked = (stage->prepared_valid || stage->prepared_refused) &&
		     fstat(stage->tmp.fd, &before) == 0 &&
		     same_file_state(&before, &stage->prepared);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (ftruncate(stage->tmp.fd, attr->st_size) < 0) {
			rc = -errno;
			goto out;
		}
		kvc_tmp_note_truncate(&stage->tmp, (uint64_t)attr->st_size);
		local_tier_stage_truncate(stage, (uint64_t)attr->st_size);
		atomic_store(&stage->replacing, true);
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		      FUSE_SET_ATTR_MTIME_NOW))
		rc = set_times(stage, attr, to_set);
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		atomic_store(&stage->dirty, true);
	if (rc == 0) {
		fs_lock(fs);
		if (to_set & FUSE_SET_ATTR_MODE)
			stage->mode = attr->st_mode & 07777;
		if (to_set & FUSE_SET_ATTR_UID)
			stage->uid = attr->st_uid;
		if (to_set & FUSE_SET_ATTR_GID)
			stage->gid = attr->st_gid;
		fs_unlock(fs);
		if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
			stage_follow_chown(fs, stage);
	}
	if (rc == 0 && as_checked && !(to_set & FUSE_SET_ATTR_SIZE) &&
	    fstat(stage->tmp.fd, &stage->prepared) < 0) {
		stage->prepared_valid = false;
		stage->prepared_refused = false;
	}
out:
	pthread_rwlock_unlock(&stage->lock);
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		prepare_if_closed(fs, stage);
	return rc;
}


int staging_request_seal(struct staging *stage, bool on, int flags)
{
	int rc = 0;

	pthread_rwlock_wrlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0)
		rc = -EPERM; /* too late: sealing happens at publish */
	else if (on && (flags & XATTR_CREATE) && stage->seal)
		rc = -EEXIST;
	else if ((!on || (flags & XATTR_REPLACE)) && !stage->seal)
		rc = -ENODATA;
	else
		stage->seal = on;
	pthread_rwlock_unlock(&stage->lock);
	return rc;
}

bool staging_seal_requested(struct staging *stage)
{
	bool seal;

	pthread_rwlock_rdlock(&stage->lock);
	seal = stage->seal;
	pthread_rwlock_unlock(&stage->lock);
	return seal;
}

bool staging_in_flight(struct kvcfs *fs, struct staging *stage)
{
	bool in_flight;

	fs_lock(fs);
	in_flight = stage->publish_on_close;
	fs_unlock(fs);
	return in_flight;
}

bool staging_read_after_publish(struct kvcfs *fs, struct staging *stage)
{
	bool needed;

	fs_lock(fs);
	needed = stage->publish_on_close || stage->openers > 0;
	fs_unlock(fs);
	return needed;
}

void staging_free_all(struct kvcfs *fs)
{
	GHashTableIter it;
	gpointer value;

	g_hash_table_iter_init(&it, fs->nodes);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct node *node = value;

		staging_free(fs, node->stage);
		node->stage = NULL;
	}
}
