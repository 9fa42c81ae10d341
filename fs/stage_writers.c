/* SPDX-License-Identifier: MIT */
/*
 * The lifecycle of a file being written, from create to publish or discard:
 * who holds a stage and when it publishes. Create, open, close (flush) and
 * release of its writers and readers live here; the stage itself (its
 * temp, bytes and attributes) is stage.c, and every publish, with rename,
 * link and unlink of a staging name (rename_to_slab and staging_link
 * below), is stage_publish.c.
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
#include <unistd.h>

#include "stage_internal.h"

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

bool staging_creating(struct kvcfs *fs, const struct kvc_key *key)
{
	return g_hash_table_contains(fs->creating, key);
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
	int rc;

	if (fs->opts.read_only)
		return -EROFS;
	rc = passthrough_open_mode(fs, req, over, -1, h, fi);
	if (rc < 0)
		return rc; /* open in passthrough: the kernel takes no writer */
	stage = stage_for_writer(fs, req, over->dir, 0444, &rc);
	if (stage == NULL)
		return rc;
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
	if (fd < 0) {
		/* Published (or removed) while this open was on its way, and
		 * not kept for readers: it is as if the open came after the
		 * rename or unlink. */
		pthread_rwlock_unlock(&stage->lock);
		return -ENOENT;
	}
	if (fs->local != NULL && !stage->published)
		fd = -1;
	rc = passthrough_open_mode(fs, req, node, fd, h, fi);
	if (h->passthrough) {
		atomic_store(&stage->bypass, true);
		/* Its writes are never seen here: the CRCs of the writes that
		 * were can no longer vouch for the file. */
		if (h->writable)
			kvc_tmp_distrust_writes(&stage->tmp);
		/* The kernel writes it: the local tier sees no byte. */
		atomic_store(&stage->local_failed, true);
	}
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
		if (!private_writer)
			stage->openers++;
		fs_unlock(fs);
		/* A <key>.kvc in flight is nobody's to read: the kernel may
		 * still resolve its name to it for a moment after the create. */
		if (private_writer)
			return -ENOENT;
		h->stage = stage; /* counted: staging_release uncounts it */
		return attach_stage(fs, req, node, stage, h, fi);
	}
	target = stage->target;
	if (!private_writer) {
		stage->writers++;
		stage->openers++;
	}
	fs_unlock(fs);
	if (private_writer)
		return staging_open_private(fs, req, &target, node, h, fi);
	if (stage_published(stage)) {
		/* Linked: the name names a published slab. (A <key>.kvc whose
		 * close is publishing it takes a private writer above.) */
		fs_lock(fs);
		stage->writers--;
		stage->openers--;
		fs_unlock(fs);
		return -EPERM;
	}
	h->stage = stage;
	h->writable = true;
	/* Truncated only once the open is taken: a refused open destroys
	 * nothing. (The kernel sends O_TRUNC as a truncate after the open
	 * while FUSE_CAP_ATOMIC_O_TRUNC is off; this keeps it so if not.) */
	rc = attach_stage(fs, req, node, stage, h, fi);
	if (rc == 0 && (flags & O_TRUNC))
		rc = truncate_for_open(stage);
	if (rc == 0)
		no_shared_mmap(h, fi);
	if (rc < 0) {
		fs_lock(fs);
		stage->writers--;
		stage->openers--;
		fs_unlock(fs);
		h->stage = NULL;
		h->writable = false;
		return rc;
	}
	return 0;
}

/* Why a create of name is refused at once (an errno to reply), or 0;
 * *cls and *key say what the name is. */
static int create_refused(struct kvcfs *fs, struct kdir *dir, const char *name, int flags,
			  struct kvc_key *key, enum name_class *cls)
{
	int rc;

	*cls = classify_name(name, dir == fs->root_dir, key, &rc);
	if (*cls == NAME_INVALID || *cls == NAME_RESERVED)
		return *cls == NAME_RESERVED ? EEXIST : rc;
	if (*cls == NAME_SLAB && (flags & O_EXCL) &&
	    kvc_store_name_taken(dir->store, name))
		return EEXIST;
	/* A directory of the mount has that name (made on another host, or
	 * before a cached miss expired). */
	if (*cls == NAME_STAGING && names_a_dir(fs, dir, name))
		return (flags & O_EXCL) ? EEXIST : EISDIR;
	return 0;
}

/*
 * The node of a new staging file. The creator's lookup and open are
 * counted, and h put in fs->open_files, in the same hold of fs->lock that
 * makes its name visible: no unlink or rename ever finds it unopened.
 * NULL when a staging file of that name was created meanwhile.
 */
static struct node *create_node(struct kvcfs *fs, const char *name, enum name_class cls,
				struct handle *h)
{
	struct staging *stage = h->stage;
	struct node *node;

	fs_lock(fs);
	if (cls == NAME_STAGING && g_hash_table_lookup(stage->dir->staging, name) != NULL) {
		/* Created meanwhile by someone else: O_EXCL says no, else the
		 * kernel would have opened it; either way it is not ours. */
		fs_unlock(fs);
		return NULL;
	}
	node = node_new_in(fs, NODE_STAGING, stage->dir);
	node->stage = stage;
	node->nlookup = 1;
	node->open_count = 1;
	g_hash_table_add(fs->open_files, h);
	if (stage->publish_on_close)
		count_creating(fs, &stage->target, +1);
	if (cls == NAME_STAGING) {
		node->name = g_strdup(name);
		g_hash_table_insert(stage->dir->staging, node->name, node);
	}
	/* A <key>.kvc being created stays unnamed: no lookup, readdir or open
	 * by name finds it before its publish; readers get the published slab
	 * of the key, or ENOENT. */
	fs_unlock(fs);
	h->node = node;
	return node;
}

/* The created file's open: passthrough or the daemon's path, and how its
 * bytes are checked. A fresh node: its mode cannot be refused. */
static void open_created(struct kvcfs *fs, fuse_req_t req, enum name_class cls,
			 struct handle *h, struct fuse_file_info *fi)
{
	struct staging *stage = h->stage;

	if (cls == NAME_STAGING)
		(void)attach_stage(fs, req, h->node, stage, h, fi);
	else
		(void)passthrough_open_mode(fs, req, h->node, -1, h, fi);
	if (h->writable)
		no_shared_mmap(h, fi);
	fi->fh = (uint64_t)(uintptr_t)h;
}

int staging_create(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name,
		   mode_t mode, struct fuse_file_info *fi, struct fuse_entry_param *e,
		   struct handle **out)
{
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	uid_t stage_quota_uid;
	enum name_class cls;
	struct staging *stage;
	struct handle *h;
	struct kvc_key key;
	int rc = create_refused(fs, dir, name, fi->flags, &key, &cls);

	if (rc != 0)
		return -rc;
	stage = stage_for_writer(fs, req, dir, mode, &rc);
	if (stage == NULL)
		return rc;
	/* The creator's handle, like every handle, in its opener's share. */
	stage_quota_uid = stage->quota_uid;
	rc = open_quota_take(fs, stage_quota_uid);
	if (rc < 0) {
		staging_free(fs, stage);
		return rc;
	}
	/* Everything about the stage is set before the node is visible. */
	stage->publish_on_close = cls == NAME_SLAB;
	stage->target = key;
	stage->writers = writable ? 1 : 0;
	stage->openers = 1;
	/* The CRC of each write the daemon makes; any writer that goes
	 * passthrough, this one included, makes it give up (attach_stage). */
	kvc_tmp_track(&stage->tmp);
	memset(e, 0, sizeof(*e));
	rc = staging_attr(fs, stage, &e->attr);
	if (rc < 0) {
		staging_free(fs, stage);
		open_quota_give(fs, stage_quota_uid);
		return rc;
	}
	/* Not handle_new: create_node counts the open itself, under the
	 * fs->lock that makes the name visible. */
	h = g_new0(struct handle, 1);
	h->fd = -1;
	h->stage = stage;
	h->writable = writable;
	h->fd_counted = true;
	h->fd_uid = stage->quota_uid;
	if (create_node(fs, name, cls, h) == NULL) {
		staging_free(fs, stage);
		open_quota_give(fs, h->fd_uid);
		g_free(h);
		return -EEXIST;
	}
	e->ino = h->node->ino;
	e->attr.st_ino = h->node->ino;
	open_created(fs, req, cls, h, fi);
	*out = h;
	return 0;
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
 * close(2) of a file created as <key>.kvc, or written over a slab: publish
 * once every writer has closed, here, so close() can report EBADMSG (release
 * comes later and its result reaches no one). A descriptor may be closed
 * while a dup of it lives on (dd does this), so a refusal here is not
 * final: a later close tries again, and release gives up for good.
 * A prefix of a slab is never a valid slab, so an early try cannot
 * publish a partial one. A close while nothing is written yet is refused
 * (EBADMSG, an empty file is no slab) but not recorded as a refusal: that
 * is a shell's close of its first descriptor after dup2, before the
 * command writes (cat > MNT/<key>.kvc); the last close records it if the
 * file stays empty.
 */
int staging_flush(struct kvcfs *fs, struct handle *h)
{
	struct staging *stage = h->stage;
	bool publish, prepare, empty = false;
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
	if (publish)
		empty = stage_is_empty(stage);
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
	if (publish && rc < 0 && !empty) {
		stage_report_refusal(fs, stage, h->fd_uid, NULL, &stage->target, rc);
		fs_lock(fs);
		stage->close_refused = true;
		fs_unlock(fs);
	}
	return rc;
}

void staging_release(struct kvcfs *fs, struct handle *h)
{
	struct staging *stage = h->stage;
	bool last_try, orphaned, refused;

	/* The last writer of a <key>.kvc, or a read-only create of one
	 * (open(O_CREAT|O_RDONLY): never a writer, and so never a try of its
	 * own): the publish is settled now, whatever the outcome. */
	fs_lock(fs);
	if (h->writable) {
		stage->writers--;
		if (h->flushed)
			stage->flushed_writers--;
	}
	if (!h->owns_stage)
		stage->openers--;
	last_try = stage->publish_on_close && stage->writers == 0;
	fs_unlock(fs);
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
		bool tried = atomic_load(&stage->write_error) == 0 && atomic_load(&stage->dirty);
		int rc = atomic_load(&stage->write_error) != 0 ? -atomic_load(&stage->write_error)
			 : tried ? publish_stage(fs, stage, &stage->target, 0) : -EBADMSG;

		bool reported;

		fs_lock(fs);
		reported = stage->close_refused;
		fs_unlock(fs);
		if (tried || !reported) /* else its close reported it already */
			stage_report_refusal(fs, stage, h->fd_uid, NULL, &stage->target, rc);
		pthread_rwlock_rdlock(&stage->lock);
		refused = stage->refused;
		pthread_rwlock_unlock(&stage->lock);
		if (rc < 0 && refused)
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
