/* SPDX-License-Identifier: MIT */
/*
 * The lifecycle of a file being written, from create to publish or discard.
 *
 * Every staging file's bytes are in a writer-unique temp in the backing
 * root (kvc_tmp_create); a node in the mount stands for it. Its states:
 *
 *   create(name) ------------------> NAMED: listed, found by lookup, any
 *                                    access; rename to another name stays
 *                                    NAMED.
 *      rename(name, <key>.kvc) ----> publish (rename_to_slab):
 *            valid                    -> PUBLISHED: the node is the slab's
 *            refused                  -> stays NAMED, user.kvcfs.error says why
 *      unlink(name) ---------------> UNNAMED
 *
 *   create(<key>.kvc) -------------> UNNAMED + publish_on_close: invisible to
 *                                    lookup and readdir (a reader gets the
 *                                    published slab or ENOENT, never these
 *                                    bytes); each close once every writer
 *                                    has closed tries a publish:
 *            valid                    -> PUBLISHED
 *            refused at close         -> may still publish at a later close
 *                                        (a dup of the descriptor writes on)
 *            refused at release       -> DISCARDED
 *
 *   UNNAMED, last handle released --> DISCARDED: the temp is removed at once,
 *                                    whatever the kernel still remembers of
 *                                    the inode (it forgets it later).
 *   PUBLISHED: the temp's inode is <key>.kvc now; writes get EPERM.
 *
 *   NAMED, link(name, <key>.kvc) --> publish as for rename (staging_link),
 *                                    except that a valid slab already under
 *                                    <key>.kvc is not adopted:
 *            valid                    -> LINKED: the node stays the staging
 *                                        name's, published; the kernel gets
 *                                        the slab's node for <key>.kvc
 *            refused                  -> stays NAMED, user.kvcfs.error says why
 *            valid slab already there -> EEXIST, stays NAMED, nothing changed
 *   LINKED: both names exist, as after link(2). Through the staging name,
 *   reads return the published file (published_fd) and write opens get
 *   EPERM; unlink(name) removes only that name (-> UNNAMED, and the
 *   published file is closed when the kernel forgets the node). If the
 *   slab's name goes first (rm, eviction), the staging name still names
 *   the file (its attributes come from published_fd).
 *
 *   Any NAMED or UNNAMED stage not yet published: setxattr user.kvcfs.seal
 *   makes its publish fill in the payload's CRC first (kvc_tmp_seal).
 *
 *   O_WRONLY open of a published slab (cp onto it) -> a private stage of the
 *   handle, not yet replacing: the kernel sends the open's O_TRUNC as a
 *   truncate of the handle right after (FUSE_CAP_ATOMIC_O_TRUNC is off), and
 *   that makes it replacing, as UNNAMED + publish_on_close above. Without the
 *   truncate a write would be a write into a published slab: EPERM, and the
 *   close publishes nothing.
 *
 * Locks: a stage's rwlock is held shared by writes into the temp and
 * exclusive by a publish or a discard; the fields that say where the stage
 * is in its life (publish_on_close, writers, mode) are under fs->lock,
 * which is never held while waiting for a stage's lock (kvcfs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kvcfs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

struct staging *staging_new(void)
{
	struct staging *stage = g_new0(struct staging, 1);

	pthread_rwlock_init(&stage->lock, NULL);
	stage->tmp.fd = -1;
	stage->published_fd = -1;
	stage->local_tmp.fd = -1;
	return stage;
}

void staging_free(struct kvcfs *fs, struct staging *stage)
{
	if (stage == NULL)
		return;
	if (!stage->published)
		kvc_store_abort_tmp(fs->store, &stage->tmp);
	else if (stage->tmp.fd >= 0)
		close(stage->tmp.fd);
	if (stage->published_fd >= 0)
		close(stage->published_fd);
	local_tier_stage_end(fs, stage);
	pthread_rwlock_destroy(&stage->lock);
	g_free(stage->error);
	g_free(stage);
}

/* A writer of <key>.kvc starts (+1) or stops (-1) waiting for its close:
 * meanwhile a lookup's miss of the key is answered uncached, so that the
 * reader sees the slab as soon as the close publishes it. fs->lock held. */
static void count_creating(struct kvcfs *fs, const struct kvc_key *key, int delta)
{
	guint n = GPOINTER_TO_UINT(g_hash_table_lookup(fs->creating, key));

	if (delta > 0)
		g_hash_table_replace(fs->creating, g_memdup2(key, sizeof(*key)),
				     GUINT_TO_POINTER(n + 1));
	else if (n <= 1)
		g_hash_table_remove(fs->creating, key);
	else
		g_hash_table_replace(fs->creating, g_memdup2(key, sizeof(*key)),
				     GUINT_TO_POINTER(n - 1));
}

bool staging_in_flight(struct kvcfs *fs, struct staging *stage)
{
	bool in_flight;

	fs_lock(fs);
	in_flight = stage->publish_on_close;
	fs_unlock(fs);
	return in_flight;
}

bool staging_creating(struct kvcfs *fs, const struct kvc_key *key)
{
	return g_hash_table_contains(fs->creating, key);
}

/* No name and no handle: the bytes can never be published; give their
 * space back now rather than when the kernel forgets the inode. */
static void staging_discard(struct kvcfs *fs, struct staging *stage)
{
	pthread_rwlock_wrlock(&stage->lock);
	if (!stage->published)
		kvc_store_abort_tmp(fs->store, &stage->tmp);
	local_tier_stage_end(fs, stage);
	pthread_rwlock_unlock(&stage->lock);
}

static struct staging *stage_for_writer(struct kvcfs *fs, fuse_req_t req, mode_t mode,
					struct kvc_err *err)
{
	struct staging *stage = staging_new();

	if (kvc_tmp_create(fs->store, "stage", &stage->tmp, err) < 0) {
		staging_free(fs, stage);
		return NULL;
	}
	local_tier_stage_begin(fs, stage);
	atomic_store(&stage->replacing, true);
	stage->mode = mode & 07777;
	access_stage_owner(fs, req, stage);
	return stage;
}

/*
 * A writer of its own for <key>.kvc: cp (or any O_WRONLY|O_TRUNC open) onto a
 * published slab, or a second writer of a key someone is already writing.
 * The bytes are staged apart and published at close, where the first valid
 * slab of the key wins. Writers of one key never share a temp: many model
 * servers saving the same prefix at once must not interleave their bytes.
 */
int staging_open_private(struct kvcfs *fs, fuse_req_t req, const struct kvc_key *key,
			 struct node *over, struct handle *h, struct fuse_file_info *fi)
{
	struct staging *stage;
	struct kvc_err err;
	int rc;

	if (fs->opts.read_only)
		return -EROFS;
	rc = passthrough_open_mode(fs, req, over, -1, h, fi);
	if (rc < 0)
		return rc; /* open in passthrough: the kernel takes no writer */
	stage = stage_for_writer(fs, req, 0444, &err);
	if (stage == NULL)
		return -kvc_err_to_errno(&err);
	kvc_tmp_track(&stage->tmp); /* the daemon sees every write */
	atomic_store(&stage->replacing, (fi->flags & O_TRUNC) != 0);
	stage->publish_on_close = true;
	stage->target = *key;
	stage->writers = 1;
	/* The kernel opens the slab's inode for this writer and, with
	 * O_TRUNC, sets its size to 0; the writer's bytes must not land in
	 * that inode's page cache (direct_io), and readers meanwhile must not
	 * trust what the kernel thinks of it (open_slab). */
	fs_lock(fs);
	count_creating(fs, key, +1);
	over->private_writers++;
	over->cache_suspect = true;
	if (!atomic_load(&stage->replacing))
		over->unarmed_writers = g_slist_prepend(over->unarmed_writers, stage);
	fs_unlock(fs);
	fi->direct_io = 1;
	h->stage = stage;
	h->owns_stage = true;
	h->writable = true;
	return 0;
}

/*
 * A writer on the daemon's path writes through the kernel's page cache of
 * the staging inode, and a shared writable mapping would keep writing
 * there after the publish, where the pages are the slab's: such a writer
 * is direct_io (no page cache, no shared mapping). With passthrough the
 * mapping is of the temp itself, and a publish while it is mapped is of a
 * copy (the handle is held until munmap).
 */
static void no_shared_mmap(const struct handle *h, struct fuse_file_info *fi)
{
	if (!h->passthrough)
		fi->direct_io = 1;
}

/*
 * A named staging file's opens all go to the kernel directly when they
 * can (passthrough.c): from then on no write of it is seen here, so its
 * publish reads the temp back instead of trusting tracked writes. Only
 * named staging files: a <key>.kvc publishes at a close while a dup of the
 * descriptor may still write, and the kernel would let those writes into
 * the published slab.
 */
static int attach_stage(struct kvcfs *fs, fuse_req_t req, struct node *node,
			 struct staging *stage, struct handle *h, struct fuse_file_info *fi)
{
	int fd, rc;

	pthread_rwlock_rdlock(&stage->lock);
	if (h->writable && stage->published) {
		/* Published since the caller looked (a rename or link that
		 * saw no writer yet): the kernel would write the slab itself. */
		pthread_rwlock_unlock(&stage->lock);
		return -EPERM;
	}
	/* Linked: the same file, now the slab's (a read-only descriptor).
	 * With a local tier the daemon writes each byte to both tiers, so
	 * writes stay on its path. */
	fd = stage->tmp.fd >= 0 ? stage->tmp.fd : stage->published_fd;
	if (fs->local != NULL && !stage->published)
		fd = -1;
	rc = passthrough_open_mode(fs, req, node, fd, h, fi);
	if (h->passthrough) {
		atomic_store(&stage->bypass, true);
		/* The kernel writes it: the local tier sees no byte. */
		atomic_store(&stage->local_failed, true);
	}
	pthread_rwlock_unlock(&stage->lock);
	return rc;
}

static int truncate_for_open(struct staging *stage)
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

static bool stage_published(struct staging *stage)
{
	bool published;

	pthread_rwlock_rdlock(&stage->lock);
	published = stage->published;
	pthread_rwlock_unlock(&stage->lock);
	return published;
}

int staging_open(struct kvcfs *fs, fuse_req_t req, struct node *node,
		 const struct node_view *v, struct handle *h, struct fuse_file_info *fi)
{
	int flags = fi->flags;
	struct staging *stage = v->stage;
	struct kvc_key target;
	bool private_writer;
	int rc = 0;

	if (fs->opts.read_only && (flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fs_lock(fs);
	private_writer = stage->publish_on_close;
	if ((flags & O_ACCMODE) == O_RDONLY) {
		fs_unlock(fs);
		/* A <key>.kvc in flight is nobody's to read: the kernel may
		 * still resolve its name to it for a moment after the create. */
		if (private_writer)
			return -ENOENT;
		h->stage = stage;
		return attach_stage(fs, req, node, stage, h, fi);
	}
	target = stage->target;
	if (!private_writer)
		stage->writers++;
	fs_unlock(fs);
	if (private_writer)
		return staging_open_private(fs, req, &target, node, h, fi);
	if (stage_published(stage)) {
		/* Linked: the name names a published slab. (A <key>.kvc whose
		 * close is publishing it takes a private writer above.) */
		fs_lock(fs);
		stage->writers--;
		fs_unlock(fs);
		return -EPERM;
	}
	h->stage = stage;
	h->writable = true;
	if (flags & O_TRUNC)
		rc = truncate_for_open(stage);
	if (rc == 0)
		rc = attach_stage(fs, req, node, stage, h, fi);
	if (rc == 0)
		no_shared_mmap(h, fi);
	if (rc < 0) {
		fs_lock(fs);
		stage->writers--;
		fs_unlock(fs);
		h->stage = NULL;
		h->writable = false;
		return rc;
	}
	return 0;
}

static void handle_free(struct kvcfs *fs, struct handle *h)
{
	fs_lock(fs);
	g_hash_table_remove(fs->open_files, h);
	node_unref(fs, h->node, 0, 1);
	fs_unlock(fs);
	g_free(h);
}

/* A create that cannot be answered, undone: no handle and no lookup for
 * the kernel to forget. req: NULL once the reply itself failed. */
static void undo_create(struct kvcfs *fs, fuse_req_t req, struct handle *h, struct node *node)
{
	passthrough_detach(fs, req, h);
	staging_release(fs, h);
	handle_free(fs, h);
	fs_lock(fs);
	node_unref(fs, node, 1, 0);
	fs_unlock(fs);
}

void staging_create(fuse_req_t req, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct fuse_entry_param e;
	struct staging *stage;
	struct node *node;
	struct handle *h;
	struct kvc_key key;
	struct kvc_err err;
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	int rc;
	enum name_class cls = classify_name(name, &key, &rc);

	if (cls == NAME_INVALID || cls == NAME_RESERVED) {
		fuse_reply_err(req, cls == NAME_RESERVED ? EEXIST : rc);
		return;
	}
	if (cls == NAME_SLAB && (fi->flags & O_EXCL) &&
	    faccessat(kvc_store_dirfd(fs->store), name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	stage = stage_for_writer(fs, req, mode, &err);
	if (stage == NULL) {
		fuse_reply_err(req, kvc_err_to_errno(&err));
		return;
	}
	/* Everything about the stage is set before the node is visible. */
	stage->publish_on_close = cls == NAME_SLAB;
	stage->target = key;
	stage->writers = writable ? 1 : 0;
	h = g_new0(struct handle, 1);
	h->fd = -1;
	h->stage = stage;
	h->writable = writable;

	fs_lock(fs);
	if (cls == NAME_STAGING && g_hash_table_lookup(fs->staging, name) != NULL) {
		/* Created meanwhile by someone else: O_EXCL says no, else the
		 * kernel would have opened it; either way it is not ours. */
		fs_unlock(fs);
		staging_free(fs, stage);
		g_free(h);
		fuse_reply_err(req, EEXIST);
		return;
	}
	node = node_new(fs, NODE_STAGING);
	node->stage = stage;
	node->nlookup = 1;
	node->open_count = 1;
	g_hash_table_add(fs->open_files, h);
	if (stage->publish_on_close)
		count_creating(fs, &key, +1);
	if (cls == NAME_STAGING) {
		node->name = g_strdup(name);
		g_hash_table_insert(fs->staging, node->name, node);
	}
	/* A <key>.kvc being created stays unnamed: no lookup, readdir or open
	 * by name finds it before its publish; readers get the published slab
	 * of the key, or ENOENT. */
	fs_unlock(fs);
	h->node = node;

	memset(&e, 0, sizeof(e));
	rc = staging_attr(fs, stage, &e.attr);
	if (rc < 0) {
		undo_create(fs, req, h, node);
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = node->ino;
	e.attr.st_ino = node->ino;
	/* A fresh node: its mode cannot be refused. */
	if (cls == NAME_STAGING)
		(void)attach_stage(fs, req, node, stage, h, fi);
	else
		(void)passthrough_open_mode(fs, req, node, -1, h, fi);
	if (writable)
		no_shared_mmap(h, fi);
	if (!atomic_load(&stage->bypass))
		kvc_tmp_track(&stage->tmp);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) != 0)
		undo_create(fs, NULL, h, node); /* the creator went away */
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

/*
 * After a publish at close: the inode is the slab's now, and readers who
 * looked the key up while it was written may hold a negative entry for
 * it. Or, refused for good: nothing appears, and the publish is over.
 */
static void settle_close_publish(struct kvcfs *fs, struct handle *h, int rc, bool final)
{
	fs_lock(fs);
	if ((rc == 0 || final) && h->stage->publish_on_close) {
		h->stage->publish_on_close = false;
		count_creating(fs, &h->stage->target, -1);
	}
	if (rc == 0 && !h->owns_stage) {
		node_became_slab(fs, h->node, &h->stage->target);
		h->node->cache_suspect = true; /* it cached the writer's view */
	}
	fs_unlock(fs);
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
static void prepare_for_publish(struct staging *stage)
{
	struct kvc_err err;
	struct stat before;

	pthread_rwlock_wrlock(&stage->lock);
	stage->prepared_valid = false;
	if (!stage->published && stage->tmp.fd >= 0 && fstat(stage->tmp.fd, &before) == 0) {
		if (atomic_exchange(&stage->dirty, false) || atomic_load(&stage->bypass)) {
			stage->tmp.synced = false;
			stage->tmp.verified = false;
		}
		stage->prepared_valid = kvc_tmp_prepare(&stage->tmp, &err) == 0 &&
					fstat(stage->tmp.fd, &stage->prepared) == 0 &&
					same_file_state(&before, &stage->prepared);
	}
	pthread_rwlock_unlock(&stage->lock);
}

/*
 * close(2) of a file created as <key>.kvc, or written over a slab: publish
 * once every writer has closed, here, so close() can report EBADMSG (release
 * comes later and its result reaches no one). A descriptor may be closed
 * while a dup of it lives on (dd does this), so a refusal here is not
 * final: a later close tries again, and release gives up for good.
 * A prefix of a slab is never a valid slab, so an early try cannot
 * publish a partial one.
 */
int staging_flush(struct kvcfs *fs, struct handle *h)
{
	struct staging *stage = h->stage;
	bool publish, prepare;
	int rc = 0;

	if (stage == NULL || !h->writable)
		return 0;
	fs_lock(fs);
	if (!h->flushed) {
		h->flushed = true;
		stage->flushed_writers++;
	}
	publish = stage->publish_on_close && stage->flushed_writers == stage->writers &&
		  atomic_load(&stage->replacing);
	prepare = !stage->publish_on_close && stage->flushed_writers == stage->writers;
	fs_unlock(fs);
	if (prepare)
		prepare_for_publish(stage);
	if (publish && atomic_load(&stage->write_error) != 0) {
		/* A write failed: close() says so, as a filesystem that writes
		 * back at close would, and the incomplete bytes never publish. */
		rc = -atomic_load(&stage->write_error);
		settle_close_publish(fs, h, rc, true);
	} else if (publish) {
		rc = publish_stage(fs, stage, &stage->target, 0);
		settle_close_publish(fs, h, rc, false);
	}
	return rc;
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

void staging_release(struct kvcfs *fs, struct handle *h)
{
	struct staging *stage = h->stage;
	bool last_try = false, orphaned;

	if (h->writable) {
		fs_lock(fs);
		stage->writers--;
		if (h->flushed)
			stage->flushed_writers--;
		last_try = stage->publish_on_close && stage->writers == 0;
		fs_unlock(fs);
	}
	if (last_try && !atomic_load(&stage->replacing)) {
		/* Opened over a slab, never truncated, never written: there is
		 * nothing to publish and nothing was refused. */
		fs_lock(fs);
		stage->publish_on_close = false;
		count_creating(fs, &stage->target, -1);
		fs_unlock(fs);
		last_try = false;
	}
	if (last_try) {
		/* Bytes written since the last close's try get one more;
		 * then a refusal is final and nothing appears. */
		int rc = atomic_load(&stage->write_error) != 0 ? -atomic_load(&stage->write_error)
			 : atomic_load(&stage->dirty) ? publish_stage(fs, stage, &stage->target, 0)
						       : -EBADMSG;
		if (rc < 0 && stage->refused)
			atomic_fetch_add(&fs->metrics.rejected, 1);
		settle_close_publish(fs, h, rc, true);
	}
	if (h->owns_stage) {
		fs_lock(fs);
		h->node->private_writers--;
		h->node->unarmed_writers = g_slist_remove(h->node->unarmed_writers, stage);
		fs_unlock(fs);
		staging_free(fs, stage);
		h->stage = NULL;
		return;
	}
	fs_lock(fs);
	orphaned = h->node->name == NULL && h->node->open_count == 1 && !stage->publish_on_close;
	fs_unlock(fs);
	if (orphaned)
		staging_discard(fs, stage);
}

/*
 * open(O_TRUNC) of a slab reaches us as an open for writing, then a truncate
 * to 0 that names no handle: it is the truncate of the writers over this
 * node that have not truncated yet. Two such opens at once both arrive
 * before either truncate, and the first truncate arms both: the second then
 * finds no one left to arm, and is still one of theirs (failing it would
 * fail that writer's open with EPERM). So while any writer over the node is
 * open, a truncate to 0 of it by name succeeds and changes no published
 * byte. (Another process's truncate(2) at such a moment is taken the same
 * way; it only sends the writers' bytes to their own stages, which publish
 * nothing unless they hold a valid slab.)
 */
int staging_arm_writers(struct kvcfs *fs, struct node *node, const struct stat *attr,
			int to_set)
{
	GSList *unarmed;
	bool writers_over;

	if (!(to_set & FUSE_SET_ATTR_SIZE) || attr->st_size != 0)
		return 0;
	fs_lock(fs);
	unarmed = node->unarmed_writers;
	node->unarmed_writers = NULL;
	for (GSList *l = unarmed; l != NULL; l = l->next)
		atomic_store(&((struct staging *)l->data)->replacing, true);
	writers_over = node->private_writers > 0;
	fs_unlock(fs);
	g_slist_free(unarmed);
	return unarmed != NULL || writers_over;
}

static void prepare_for_publish(struct staging *stage);

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
	int rc = 0;

	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published || stage->tmp.fd < 0) {
		rc = -EPERM;
		goto out;
	}
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
	if (rc == 0)
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
			access_stage_chowned(fs, stage);
	}
out:
	pthread_rwlock_unlock(&stage->lock);
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		prepare_if_closed(fs, stage);
	return rc;
}

/* LINKED, and the slab's name is gone since (rm, eviction): the staging
 * name still names the file, as any name of a hard link does after the
 * other is removed, and reads still get it (published_fd). */
static int linked_file_attr(struct staging *stage, struct stat *st)
{
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&stage->lock);
	if (stage->published_fd >= 0)
		rc = fstat(stage->published_fd, st) < 0 ? -errno : 0;
	pthread_rwlock_unlock(&stage->lock);
	if (rc == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	}
	return rc;
}

int staging_attr(struct kvcfs *fs, struct staging *stage, struct stat *st)
{
	struct stat real;
	bool published;
	struct kvc_key key;
	int rc = 0;

	pthread_rwlock_rdlock(&stage->lock);
	published = stage->published;
	key = stage->published_key;
	if (!published && stage->tmp.fd < 0)
		rc = -ENOENT; /* discarded: only the kernel still remembers it */
	else if (!published && fstat(stage->tmp.fd, &real) < 0)
		rc = -EIO;
	pthread_rwlock_unlock(&stage->lock);
	/* Published a moment ago and about to become the slab's node: it
	 * looks like the slab already. */
	if (published) {
		rc = attr_of_slab(fs, &key, false, st);
		return rc == -ENOENT ? linked_file_attr(stage, st) : rc;
	}
	if (rc < 0)
		return rc;
	*st = real;
	fs_lock(fs);
	st->st_mode = S_IFREG | (stage->mode & 07777);
	st->st_uid = stage->uid;
	st->st_gid = stage->gid;
	fs_unlock(fs);
	st->st_nlink = 1;
	return 0;
}

/* The name stops naming the staging file; the file lives while open.
 * fs->lock held. */
static void drop_name(struct kvcfs *fs, struct node *node)
{
	g_hash_table_remove(fs->staging, node->name);
	g_free(node->name);
	node->name = NULL;
	node_unref(fs, node, 0, 0);
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

/* Why a copy cannot be made, in the stage's error (user.kvcfs.error). */
static int refuse_copy(struct staging *stage, int rc, char *why)
{
	pthread_rwlock_wrlock(&stage->lock);
	g_free(stage->error);
	stage->error = why;
	stage->refused = false;
	pthread_rwlock_unlock(&stage->lock);
	return rc;
}

/*
 * The copy is made inside the rename, under the kernel's lock of the
 * directory: it is bounded by -o copy_max, and checked against the budget
 * before a byte is copied.
 */
static int copy_allowed(struct kvcfs *fs, struct staging *stage, uint64_t size)
{
	if (fs->opts.max_size > 0 && size > fs->opts.max_size)
		return refuse_copy(stage, -ENOSPC, g_strdup_printf(
			"no_space: a slab of %" G_GUINT64_FORMAT " bytes exceeds the budget of %"
			G_GUINT64_FORMAT " bytes", size, fs->opts.max_size));
	if (size > fs->opts.copy_max)
		return refuse_copy(stage, -EBUSY, g_strdup_printf(
			"busy: the file is still open for writing, and a copy of its %"
			G_GUINT64_FORMAT " bytes would exceed copy_max (%" G_GUINT64_FORMAT
			" bytes): close every descriptor of it before the rename or link",
			size, fs->opts.copy_max));
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

/* The temp's bytes, as they are now, into a temp of their own. */
static int copy_temp(struct kvcfs *fs, struct staging *from, struct staging *to)
{
	struct kvc_err err;
	struct stat st;
	int rc;

	pthread_rwlock_rdlock(&from->lock);
	rc = from->tmp.fd < 0 || fstat(from->tmp.fd, &st) < 0 ? -EIO : 0;
	if (rc == 0)
		rc = copy_allowed(fs, from, (uint64_t)st.st_size);
	if (rc == 0 && kvc_tmp_create(fs->store, "stage", &to->tmp, &err) < 0)
		rc = -kvc_err_to_errno(&err);
	if (rc == 0)
		rc = copy_data(from->tmp.fd, to->tmp.fd, (uint64_t)st.st_size);
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
static int publish_copy(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
			unsigned flags)
{
	struct staging *copy = staging_new();
	int rc = copy_temp(fs, stage, copy);

	if (rc == 0) {
		copy->seal = staging_seal_requested(stage);
		rc = publish_stage(fs, copy, key, flags);
		if (rc == 0)
			atomic_fetch_add(&fs->metrics.publish_copies, 1);
	}
	if (rc < 0 && copy->error != NULL) {
		pthread_rwlock_wrlock(&stage->lock);
		g_free(stage->error);
		stage->error = g_strdup(copy->error);
		stage->refused = copy->refused;
		pthread_rwlock_unlock(&stage->lock);
	}
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

static int rename_to_slab(struct kvcfs *fs, struct node *src, const struct kvc_key *key,
			  unsigned flags)
{
	char newname[KVC_SLAB_NAME_LEN + 1];
	struct kvc_key published_key;
	bool published, copied;
	int rc;

	pthread_rwlock_rdlock(&src->stage->lock);
	published = src->stage->published;
	published_key = src->stage->published_key;
	pthread_rwlock_unlock(&src->stage->lock);
	if (published) {
		/* Linked before (LINKED): the bytes are that slab already; the
		 * kernel moves this node to the key's name, so it becomes the
		 * slab's node, as after any rename to a key. Another key is
		 * not the content's. */
		if (!kvc_key_equal(&published_key, key))
			return -EBADMSG;
		fs_lock(fs);
		node_became_slab(fs, src, key);
		src->cache_suspect = true;
		fs_unlock(fs);
		return 0;
	}
	kvc_key_slab_name(key, newname);
	if ((flags & RENAME_NOREPLACE) &&
	    faccessat(kvc_store_dirfd(fs->store), newname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	rc = publish_named(fs, src->stage, key, PUBLISH_FINAL, &copied);
	if (copied) {
		/* What was published is a copy: this node stays the writer's
		 * file, without a name (its temp goes at its last close); the
		 * kernel's entry for the key, which now points here, is
		 * revalidated at once (a staging entry is never cached) and
		 * finds the slab's own node. */
		if (rc == 0) {
			fs_lock(fs);
			if (src->name != NULL) {
				g_hash_table_remove(fs->staging, src->name);
				g_free(src->name);
				src->name = NULL;
			}
			fs_unlock(fs);
		}
		return rc;
	}
	if (rc < 0)
		return rc;
	fs_lock(fs);
	node_became_slab(fs, src, key);
	src->cache_suspect = true; /* the staged bytes, or someone else's slab */
	fs_unlock(fs);
	return 0;
}

static int rename_to_staging(struct kvcfs *fs, struct node *src, const char *newname,
			     unsigned flags)
{
	struct node *dst;
	int rc = 0;

	fs_lock(fs);
	dst = g_hash_table_lookup(fs->staging, newname);
	if (dst == src || src->name == NULL)
		goto out; /* renamed onto itself, or unlinked meanwhile */
	if (dst != NULL && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if (dst != NULL)
		drop_name(fs, dst);
	g_hash_table_remove(fs->staging, src->name);
	g_free(src->name);
	src->name = g_strdup(newname);
	g_hash_table_insert(fs->staging, src->name, src);
out:
	fs_unlock(fs);
	return rc;
}

int staging_rename(struct kvcfs *fs, const char *name, const char *newname, unsigned flags)
{
	struct kvc_key key;
	struct node *src;
	int rc, e;
	enum name_class cls = classify_name(newname, &key, &e);

	if (cls == NAME_INVALID || cls == NAME_RESERVED)
		return cls == NAME_RESERVED ? -EPERM : -e;
	fs_lock(fs);
	src = g_hash_table_lookup(fs->staging, name);
	if (src != NULL)
		src->nlookup++; /* hold it across the unlocked publish */
	fs_unlock(fs);
	if (src == NULL)
		return -ENOENT;
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (cls == NAME_SLAB)
		rc = rename_to_slab(fs, src, &key, flags);
	else
		rc = rename_to_staging(fs, src, newname, flags);
	fs_lock(fs);
	node_unref(fs, src, 1, 0);
	fs_unlock(fs);
	return rc;
}

int staging_unlink(struct kvcfs *fs, const char *name)
{
	struct node *node;
	bool orphaned = false;
	struct staging *stage = NULL;

	fs_lock(fs);
	node = g_hash_table_lookup(fs->staging, name);
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
static int link_source(struct kvcfs *fs, fuse_ino_t ino, struct node **out)
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
	else
		node->nlookup++;
	fs_unlock(fs);
	*out = node;
	return rc;
}

/*
 * link(2) is how many programs publish (the format's reference server,
 * maildir-style writers, kvc build): the same pipeline as rename, and the
 * same answer as link(2) gives when the name is taken. A valid slab of the
 * key already there is the EEXIST of link(2), after which such a program
 * checks and adopts the existing file itself; the staging file stays.
 */
int staging_link(struct kvcfs *fs, fuse_ino_t ino, const char *newname, struct node **slab)
{
	struct kvc_key key, published_key;
	struct node *src;
	bool published, copied;
	int rc, e;
	enum name_class cls = classify_name(newname, &key, &e);

	if (cls == NAME_INVALID)
		return -e;
	if (cls != NAME_SLAB)
		return -EPERM; /* hard links are a way to publish, nothing else */
	rc = link_source(fs, ino, &src);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&src->stage->lock);
	published = src->stage->published;
	published_key = src->stage->published_key;
	pthread_rwlock_unlock(&src->stage->lock);
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (published) /* linked before: the name is taken, or another key's */
		rc = kvc_key_equal(&published_key, &key) ? -EEXIST : -EPERM;
	else
		/* With a writer the kernel serves directly still holding the
		 * file, what is linked is a copy: the staging name then goes
		 * on naming the writer's own file, not the slab. */
		rc = publish_named(fs, src->stage, &key, PUBLISH_FINAL | PUBLISH_AS_LINK, &copied);
	fs_lock(fs);
	if (rc == 0) {
		*slab = node_for_key(fs, NODE_SLAB, &key);
		/* Whatever the kernel cached of an older file of the key. */
		(*slab)->cache_suspect = true;
	}
	node_unref(fs, src, 1, 0);
	fs_unlock(fs);
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
