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

	pthread_mutex_lock(&fs->lock);
	in_flight = stage->publish_on_close;
	pthread_mutex_unlock(&fs->lock);
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
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct staging *stage = staging_new();

	if (kvc_tmp_create(fs->store, "stage", &stage->tmp, err) < 0) {
		staging_free(fs, stage);
		return NULL;
	}
	kvc_tmp_track(&stage->tmp);
	local_tier_stage_begin(fs, stage);
	atomic_store(&stage->replacing, true);
	stage->mode = mode & 07777;
	stage->uid = ctx->uid;
	stage->gid = ctx->gid;
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

	if (fs->opts.read_only)
		return -EROFS;
	stage = stage_for_writer(fs, req, 0444, &err);
	if (stage == NULL)
		return -kvc_err_to_errno(&err);
	atomic_store(&stage->replacing, (fi->flags & O_TRUNC) != 0);
	stage->publish_on_close = true;
	stage->target = *key;
	stage->writers = 1;
	/* The kernel opens the slab's inode for this writer and, with
	 * O_TRUNC, sets its size to 0; the writer's bytes must not land in
	 * that inode's page cache (direct_io), and readers meanwhile must not
	 * trust what the kernel thinks of it (open_slab). */
	pthread_mutex_lock(&fs->lock);
	count_creating(fs, key, +1);
	over->private_writers++;
	over->cache_suspect = true;
	if (!atomic_load(&stage->replacing))
		over->unarmed_writers = g_slist_prepend(over->unarmed_writers, stage);
	pthread_mutex_unlock(&fs->lock);
	fi->direct_io = 1;
	h->stage = stage;
	h->owns_stage = true;
	h->writable = true;
	return 0;
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
	pthread_mutex_lock(&fs->lock);
	private_writer = stage->publish_on_close;
	if ((flags & O_ACCMODE) == O_RDONLY) {
		pthread_mutex_unlock(&fs->lock);
		/* A <key>.kvc in flight is nobody's to read: the kernel may
		 * still resolve its name to it for a moment after the create. */
		if (private_writer)
			return -ENOENT;
		h->stage = stage;
		return 0;
	}
	target = stage->target;
	if (!private_writer)
		stage->writers++;
	pthread_mutex_unlock(&fs->lock);
	if (private_writer)
		return staging_open_private(fs, req, &target, node, h, fi);
	h->stage = stage;
	h->writable = true;
	if (flags & O_TRUNC)
		rc = truncate_for_open(stage);
	if (rc < 0) {
		pthread_mutex_lock(&fs->lock);
		stage->writers--;
		pthread_mutex_unlock(&fs->lock);
		h->stage = NULL;
		h->writable = false;
	}
	return rc;
}

static void handle_free(struct kvcfs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->lock);
	node_unref(fs, h->node, 0, 1);
	pthread_mutex_unlock(&fs->lock);
	g_free(h);
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

	pthread_mutex_lock(&fs->lock);
	if (cls == NAME_STAGING && g_hash_table_lookup(fs->staging, name) != NULL) {
		/* Created meanwhile by someone else: O_EXCL says no, else the
		 * kernel would have opened it; either way it is not ours. */
		pthread_mutex_unlock(&fs->lock);
		staging_free(fs, stage);
		g_free(h);
		fuse_reply_err(req, EEXIST);
		return;
	}
	node = node_new(fs, NODE_STAGING);
	node->stage = stage;
	node->nlookup = 1;
	node->open_count = 1;
	if (stage->publish_on_close)
		count_creating(fs, &key, +1);
	if (cls == NAME_STAGING) {
		node->name = g_strdup(name);
		g_hash_table_insert(fs->staging, node->name, node);
	}
	/* A <key>.kvc being created stays unnamed: no lookup, readdir or open
	 * by name finds it before its publish; readers get the published slab
	 * of the key, or ENOENT. */
	pthread_mutex_unlock(&fs->lock);
	h->node = node;

	memset(&e, 0, sizeof(e));
	rc = staging_attr(fs, stage, &e.attr);
	if (rc < 0) {
		staging_release(fs, h);
		handle_free(fs, h);
		pthread_mutex_lock(&fs->lock);
		node_unref(fs, node, 1, 0);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = node->ino;
	e.attr.st_ino = node->ino;
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* The creator went away: no handle and no lookup to forget. */
		staging_release(fs, h);
		handle_free(fs, h);
		pthread_mutex_lock(&fs->lock);
		node_unref(fs, node, 1, 0);
		pthread_mutex_unlock(&fs->lock);
	}
}

ssize_t staging_read(struct handle *h, void *buf, size_t size, off_t off)
{
	ssize_t n;

	pthread_rwlock_rdlock(&h->stage->lock);
	n = h->stage->tmp.fd < 0 ? (errno = EBADF, -1) : pread(h->stage->tmp.fd, buf, size, off);
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
	pthread_mutex_lock(&fs->lock);
	if ((rc == 0 || final) && h->stage->publish_on_close) {
		h->stage->publish_on_close = false;
		count_creating(fs, &h->stage->target, -1);
	}
	if (rc == 0 && !h->owns_stage) {
		node_became_slab(fs, h->node, &h->stage->target);
		h->node->cache_suspect = true; /* it cached the writer's view */
	}
	pthread_mutex_unlock(&fs->lock);
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
	bool publish;
	int rc = 0;

	if (stage == NULL || !h->writable)
		return 0;
	pthread_mutex_lock(&fs->lock);
	if (!h->flushed) {
		h->flushed = true;
		stage->flushed_writers++;
	}
	publish = stage->publish_on_close && stage->flushed_writers == stage->writers &&
		  atomic_load(&stage->replacing);
	pthread_mutex_unlock(&fs->lock);
	if (publish && atomic_load(&stage->write_error) != 0) {
		/* A write failed: close() says so, as a filesystem that writes
		 * back at close would, and the incomplete bytes never publish. */
		rc = -atomic_load(&stage->write_error);
		settle_close_publish(fs, h, rc, true);
	} else if (publish) {
		rc = publish_stage(fs, stage, &stage->target, false);
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
		pthread_mutex_lock(&fs->lock);
		stage->writers--;
		if (h->flushed)
			stage->flushed_writers--;
		last_try = stage->publish_on_close && stage->writers == 0;
		pthread_mutex_unlock(&fs->lock);
	}
	if (last_try && !atomic_load(&stage->replacing)) {
		/* Opened over a slab, never truncated, never written: there is
		 * nothing to publish and nothing was refused. */
		pthread_mutex_lock(&fs->lock);
		stage->publish_on_close = false;
		count_creating(fs, &stage->target, -1);
		pthread_mutex_unlock(&fs->lock);
		last_try = false;
	}
	if (last_try) {
		/* Bytes written since the last close's try get one more;
		 * then a refusal is final and nothing appears. */
		int rc = atomic_load(&stage->write_error) != 0 ? -atomic_load(&stage->write_error)
			 : atomic_load(&stage->dirty) ? publish_stage(fs, stage, &stage->target, false)
						       : -EBADMSG;
		if (rc < 0 && stage->refused)
			atomic_fetch_add(&fs->metrics.rejected, 1);
		settle_close_publish(fs, h, rc, true);
	}
	if (h->owns_stage) {
		pthread_mutex_lock(&fs->lock);
		h->node->private_writers--;
		h->node->unarmed_writers = g_slist_remove(h->node->unarmed_writers, stage);
		pthread_mutex_unlock(&fs->lock);
		staging_free(fs, stage);
		h->stage = NULL;
		return;
	}
	pthread_mutex_lock(&fs->lock);
	orphaned = h->node->name == NULL && h->node->open_count == 1 && !stage->publish_on_close;
	pthread_mutex_unlock(&fs->lock);
	if (orphaned)
		staging_discard(fs, stage);
}

/*
 * open(O_TRUNC) of a slab reaches us as an open for writing, then a truncate
 * to 0 that names no handle: it is the truncate of the writers over this
 * node that have not truncated yet. (Another process's truncate(2) at the
 * same moment would arm them too; that only sends their writes to their
 * own stage, which publishes nothing unless it is a valid slab.)
 */
int staging_arm_writers(struct kvcfs *fs, struct node *node, const struct stat *attr,
			int to_set)
{
	GSList *unarmed;

	if (!(to_set & FUSE_SET_ATTR_SIZE) || attr->st_size != 0)
		return 0;
	pthread_mutex_lock(&fs->lock);
	unarmed = node->unarmed_writers;
	node->unarmed_writers = NULL;
	for (GSList *l = unarmed; l != NULL; l = l->next)
		atomic_store(&((struct staging *)l->data)->replacing, true);
	pthread_mutex_unlock(&fs->lock);
	g_slist_free(unarmed);
	return unarmed != NULL;
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
		pthread_mutex_lock(&fs->lock);
		if (to_set & FUSE_SET_ATTR_MODE)
			stage->mode = attr->st_mode & 07777;
		if (to_set & FUSE_SET_ATTR_UID)
			stage->uid = attr->st_uid;
		if (to_set & FUSE_SET_ATTR_GID)
			stage->gid = attr->st_gid;
		pthread_mutex_unlock(&fs->lock);
	}
out:
	pthread_rwlock_unlock(&stage->lock);
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
	if (published)
		return attr_of_slab(fs, &key, false, st);
	if (rc < 0)
		return rc;
	*st = real;
	pthread_mutex_lock(&fs->lock);
	st->st_mode = S_IFREG | (stage->mode & 07777);
	st->st_uid = stage->uid;
	st->st_gid = stage->gid;
	pthread_mutex_unlock(&fs->lock);
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

static int rename_to_slab(struct kvcfs *fs, struct node *src, const struct kvc_key *key,
			  unsigned flags)
{
	char newname[KVC_SLAB_NAME_LEN + 1];
	int rc;

	kvc_key_slab_name(key, newname);
	if ((flags & RENAME_NOREPLACE) &&
	    faccessat(kvc_store_dirfd(fs->store), newname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	rc = publish_stage(fs, src->stage, key, true);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->lock);
	node_became_slab(fs, src, key);
	src->cache_suspect = true; /* the staged bytes, or someone else's slab */
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

static int rename_to_staging(struct kvcfs *fs, struct node *src, const char *newname,
			     unsigned flags)
{
	struct node *dst;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
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
	pthread_mutex_unlock(&fs->lock);
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
	pthread_mutex_lock(&fs->lock);
	src = g_hash_table_lookup(fs->staging, name);
	if (src != NULL)
		src->nlookup++; /* hold it across the unlocked publish */
	pthread_mutex_unlock(&fs->lock);
	if (src == NULL)
		return -ENOENT;
	if (fs->opts.read_only)
		rc = -EROFS;
	else if (cls == NAME_SLAB)
		rc = rename_to_slab(fs, src, &key, flags);
	else
		rc = rename_to_staging(fs, src, newname, flags);
	pthread_mutex_lock(&fs->lock);
	node_unref(fs, src, 1, 0);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int staging_unlink(struct kvcfs *fs, const char *name)
{
	struct node *node;
	bool orphaned = false;
	struct staging *stage = NULL;

	pthread_mutex_lock(&fs->lock);
	node = g_hash_table_lookup(fs->staging, name);
	if (node != NULL) {
		stage = node->stage;
		/* Nobody has it open: its bytes can go now, even though
		 * the kernel may remember the inode a while longer. */
		orphaned = node->open_count == 0;
		node->nlookup++;
		drop_name(fs, node);
	}
	pthread_mutex_unlock(&fs->lock);
	if (node == NULL)
		return -ENOENT;
	if (orphaned)
		staging_discard(fs, stage);
	pthread_mutex_lock(&fs->lock);
	node_unref(fs, node, 1, 0);
	pthread_mutex_unlock(&fs->lock);
	return 0;
}
