/* SPDX-License-Identifier: MIT */
/*
 * Opening a slab or its payload view for reading: it is verified before the
 * open succeeds. A full verification reads the whole file, so a re-open of
 * the very file this mount verified before, unchanged since (same inode and
 * size, and the ctime our own hit write left), only re-reads its header;
 * and its pages in the kernel's cache stay valid (keep_cache).
 *
 * What is verified is exactly what is served: the open counts its hit (a
 * write to the header) first, then takes the file's identity, size, ctime
 * and mtime, verifies, and takes them again. Any difference means someone
 * wrote the file while it was being read: the bytes read may not be the
 * file's, so it is verified again, up to VERIFY_ATTEMPTS times in all, and
 * if it keeps changing the open fails with EIO (and nothing is dropped: it
 * is being written, not rotten). The state after verification is what later
 * reads and re-opens compare against.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

/*
 * A link count going down moves the ctime too, and a slab that was just
 * published sees two such changes that leave every byte as it was: its
 * publisher removes the temp's name right after the link, and an eviction
 * or an rm may remove the slab's own name while a reader verifies it (the
 * stress test's eager readers hit both, one after the other, and got EIO).
 * Three attempts ride those out; the bound keeps a file that someone
 * rewrites without end from holding a request thread.
 */
#define VERIFY_ATTEMPTS 3

/*
 * Verification reads the whole slab anyway; when this open is the node's
 * only one, the bytes it reads go on into the kernel's page cache for the
 * node (notify_store), so the reader that asked gets them from memory
 * instead of through the daemon a second time. Nobody can read those pages
 * before the open returns (no other handle exists), and if verification
 * fails they are dropped before it does.
 */
struct store_ctx {
	struct fuse_session *se;
	fuse_ino_t ino;
	uint64_t off;
	bool ok;
};

static void store_chunk(void *arg, const void *data, size_t len)
{
	struct store_ctx *c = arg;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].mem = (void *)data;
	if (c->ok && fuse_lowlevel_notify_store(c->se, c->ino, (off_t)c->off, &bv, 0) != 0)
		c->ok = false;
	c->off += len;
}

/* Header bytes pushed into the kernel's cache at most: the fixed header and
 * the TLVs (token ids) of any realistic prompt. */
#define MAX_STORED_HEADER (4u << 20)

/* The bytes before the payload, as they are after this open's hit write. */
static void store_header(struct kvcfs *fs, fuse_ino_t ino, int fd, uint64_t len)
{
	struct store_ctx c = { fs->notifier.se, ino, 0, true };
	uint8_t *buf;

	if (len > MAX_STORED_HEADER) {
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, ino, 0, 0);
		return;
	}
	buf = g_malloc(len ? len : 1);
	if (pread(fd, buf, len, 0) == (ssize_t)len)
		store_chunk(&c, buf, len);
	else
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, ino, 0, (off_t)len);
	g_free(buf);
}

static int verify_storing(struct kvcfs *fs, fuse_ino_t ino, bool payload_view, int fd,
			  const struct stat *st, const struct kvc_key *key, struct kvc_meta *meta,
			  struct kvc_err *err)
{
	struct store_ctx c = { fs->notifier.se, ino, 0, true };
	struct kvc_fd_head head;
	struct kvc_source src;
	struct kvc_meta first;
	int rc;

	/* The payload now; the slab view's header after the hit is counted
	 * in it (store_header). */
	kvc_source_from_fd_head(&src, &head, fd, (uint64_t)st->st_size);
	if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, &first, err) < 0)
		return -1;
	c.off = payload_view ? 0 : first.payload_offset;
	kvc_meta_clear(&first);
	kvc_source_from_fd(&src, &fd, (uint64_t)st->st_size);
	rc = kvc_verify(&src, KVC_PARSE_LIGHT, key, meta, store_chunk, &c, err);
	if (rc < 0 || !c.ok)
		/* Unverified or partial pages must not stay cached. */
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, ino, 0, 0);
	return rc;
}

/* One verification of fd, with the file's state taken before and after. */
static int verify_between_stats(struct kvcfs *fs, struct node *node, bool payload_view, int fd,
				const struct kvc_key *key, struct kvc_meta *meta, bool *stored,
				struct stat *before, struct stat *after, struct kvc_err *err)
{
	bool alone;
	int rc;

	if (fstat(fd, before) < 0)
		return kvc_err_sys(err, errno, "fstat");
	fs_lock(fs);
	/* With passthrough the kernel reads the backing file's own pages:
	 * storing into this inode's would be wasted. */
	alone = node->open_count == 1 && !node->storing && fs->notifier.running &&
		!fs->passthrough;
	if (alone)
		node->storing = true;
	fs_unlock(fs);
	if (alone) {
		rc = verify_storing(fs, node->ino, payload_view, fd, before, key, meta, err);
		fs_lock(fs);
		node->storing = false;
		fs_unlock(fs);
		*stored = rc == 0;
	} else {
		rc = kvc_verify_fd(fd, KVC_PARSE_LIGHT, key, meta, err);
	}
	if (rc < 0)
		return -1;
	if (fstat(fd, after) < 0) {
		kvc_meta_clear(meta);
		return kvc_err_sys(err, errno, "fstat");
	}
	return 0;
}

/* Verify fd fully; on success *after is the file's state that the bytes
 * read belong to. 1: changed while being read (by someone else: this
 * mount's hit writes wait). */
static int verify_once(struct kvcfs *fs, struct node *node, bool payload_view, int fd,
		       const struct kvc_key *key, struct kvc_meta *meta, bool *stored,
		       struct stat *after, struct kvc_err *err)
{
	struct key_lock *no_hits;
	struct stat before;
	int rc;

	*stored = false;
	no_hits = hits_hold_off(fs, key);
	rc = verify_between_stats(fs, node, payload_view, fd, key, meta, stored, &before, after,
				  err);
	hits_resume(fs, no_hits);
	if (rc != 0)
		return rc;
	if (same_file_state(&before, after))
		return 0;
	kvc_meta_clear(meta);
	if (*stored)
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, 0, 0);
	*stored = false;
	return 1;
}

struct loaded {
	int fd;
	struct stat st;          /* the file as verified (after our hit write) */
	struct kvc_meta meta;
	bool reused;             /* verified before by this mount, unchanged */
	bool stored;             /* its bytes went into the kernel's cache */
	bool counted;            /* the hit is in the header (meta has it) */
	struct tier_pick tier;   /* which store fd is from (local_tier.h) */
};

/* Count the hit in the header before anything is verified, so that the
 * state verification sees already includes our own write. */
static void count_hit(struct kvcfs *fs, const struct kvc_key *key, struct loaded *l)
{
	uint32_t hits;

	l->counted = false;
	if (fs->opts.read_only)
		return;
	/* Best effort: a failed hit write costs a hit count, not a read. */
	l->counted = hits_count_one(fs, l->tier.store, key, l->fd, (uint64_t)time(NULL),
				    &hits) == 0;
}

static int load(struct kvcfs *fs, struct node *node, const struct kvc_key *key,
		bool payload_view, struct loaded *l, struct kvc_err *err)
{
	struct kvc_fd_head head;
	struct kvc_source src;
	struct stat opened;
	bool refetch = false;
	int rc;

again:
	rc = -1;
	/* The backing root's file, or the local tier's copy of it. */
	if (local_tier_open(fs, node->dir, key, refetch, &l->fd, &opened, &l->tier, err) < 0)
		return -1;
	l->reused = index_is_verified(l->tier.index, key, &opened);
	count_hit(fs, key, l);
	if (l->reused) {
		l->stored = false;
		if (fstat(l->fd, &l->st) == 0 && l->st.st_size == opened.st_size) {
			kvc_source_from_fd_head(&src, &head, l->fd, (uint64_t)l->st.st_size);
			if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, &l->meta, err) == 0)
				return 0;
		}
		l->reused = false; /* look at it properly */
	}
	for (int attempt = 0; attempt < VERIFY_ATTEMPTS && rc != 0; attempt++)
		rc = verify_once(fs, node, payload_view, l->fd, key, &l->meta, &l->stored, &l->st,
				 err);
	if (rc == 0)
		return 0;
	close(l->fd);
	if (rc > 0) {
		kvc_err_sys(err, EIO, "slab changed while it was being verified");
		return -1;
	}
	/* A corrupt local copy is never served: drop it and copy again. */
	if (l->tier.local && kvc_tag_is_format_error(err->tag)) {
		local_tier_drop_corrupt(fs, node->dir, key, &opened);
		if (!refetch) {
			refetch = true;
			goto again;
		}
		kvc_err_sys(err, EIO, "local copy failed verification twice");
		return -1;
	}
	/* A corrupt slab would fail every reader forever: drop it, but only
	 * the file judged, and never one of a newer format. */
	if (kvc_tag_is_format_error(err->tag) && err->tag != KVC_E_UNSUPPORTED_VERSION)
		kvc_store_drop_corrupt(node->dir->store, key, &opened);
	return -1;
}

static int refuse(struct kvcfs *fs, struct node *node, const struct kvc_key *key,
		  const struct kvc_err *err)
{
	char hex[KVC_KEY_HEX_LEN + 1];

	if (err->tag == KVC_E_NOT_FOUND)
		return -ENOENT;
	kvc_key_to_hex(key, hex);
	if (!kvc_tag_is_format_error(err->tag)) {
		if (err->tag == KVC_E_IO)
			fuse_log(FUSE_LOG_WARNING, "kvcfs: open of slab %s refused: %s\n", hex,
				 err->detail);
		return -kvc_err_to_errno(err);
	}
	if (err->tag != KVC_E_UNSUPPORTED_VERSION) {
		atomic_fetch_add(&fs->metrics.corrupt_dropped, 1);
		index_remove(&node->dir->index, key);
		/* stat must say it is gone now: drop the inode's cached
		 * attributes (no lock is taken for that); the names go from
		 * the notifier's thread. */
		if (fs->notifier.running)
			fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, -1, 0);
		forget_slab_entries(fs, node->dir, key, FORGET_LATER);
		log_limited("kvcfs: dropped corrupt slab %s: %s: %s\n", hex, kvc_tag_name(err->tag),
			    err->detail);
	}
	return -EIO;
}

/*
 * A writer over the slab (cp onto it) made the kernel truncate this inode,
 * and a staging file that became the slab left the writer's view cached:
 * the kernel's size may be wrong. While such a writer is open, reads go
 * around the kernel's cache and size (direct_io); afterwards the first
 * open drops the kernel's size (attributes only: no page lock is taken, so
 * this cannot wait for a read in flight) and its pages.
 */
static bool distrust_kernel_view(struct kvcfs *fs, struct node *node,
				 struct fuse_file_info *fi)
{
	bool suspect, writing;

	fs_lock(fs);
	suspect = node->cache_suspect;
	writing = node->private_writers > 0;
	if (suspect && !writing)
		node->cache_suspect = false;
	fs_unlock(fs);
	if (writing)
		fi->direct_io = 1;
	else if (suspect && fs->notifier.running)
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, -1, 0);
	return suspect;
}

/*
 * A key keeps its inode across the files that hold its slab over time (the
 * kernel caches a size and pages per inode). While a handle reads one
 * file, an open of another (the key was removed and published again) must
 * not share the inode: the key gets a new node, and ESTALE makes the kernel
 * look the name up again and open that. With no other handle, the kernel's
 * idea of the size is dropped instead (attributes only: no page lock).
 */
static bool same_file_as_served(struct kvcfs *fs, struct node *node, const struct stat *st)
{
	bool same, alone, stale = false;

	fs_lock(fs);
	/* Size too: a file removed and another created may get the same
	 * inode number at once. */
	same = node->served_dev == st->st_dev && node->served_ino == st->st_ino &&
	       node->served_size == st->st_size;
	alone = node->open_count <= 1;
	if (!same && !alone && node->served_ino != 0) {
		node_leave_key(fs, node);
		stale = true;
	} else {
		node->served_dev = st->st_dev;
		node->served_ino = st->st_ino;
		node->served_size = st->st_size;
	}
	fs_unlock(fs);
	if (!same && !stale && fs->notifier.running)
		fuse_lowlevel_notify_inval_inode(fs->notifier.se, node->ino, -1, 0);
	return !stale;
}

int open_slab(struct kvcfs *fs, struct node *node, const struct kvc_key *key,
	      bool payload_view, struct handle *h, struct fuse_file_info *fi)
{
	uint64_t started = metrics_now_ns();
	struct loaded l;
	struct kvc_err err;
	int rc;

	fs_assert_unlocked(); /* it verifies: reads the whole slab */
	memset(&l, 0, sizeof(l));
	rc = load(fs, node, key, payload_view, &l, &err);
	atomic_fetch_add(&fs->metrics.load_ns, metrics_now_ns() - started);
	atomic_fetch_add(&fs->metrics.load_count, 1);
	if (rc < 0)
		return refuse(fs, node, key, &err);
	/* The backing root's file, also when a local copy of it is read: a
	 * lookup of the name compares with that (node_for_file). */
	if (!same_file_as_served(fs, node, &l.tier.source)) {
		close(l.fd);
		kvc_meta_clear(&l.meta);
		return -ESTALE;
	}
	atomic_fetch_add(&fs->metrics.hits, 1);
	if (l.reused && !l.tier.fetched)
		atomic_fetch_add(&fs->metrics.reopens_unverified, 1);
	index_put(l.tier.index, key, l.meta.file_size, l.meta.hit_count, l.meta.last_used_time,
		  l.meta.creation_time);
	/* The kernel's cached pages are this file's only if we served this
	 * very file before or stored them just now; otherwise let it drop
	 * them. Kept pages get the header as it is now, hit count and all.
	 * A copy the tier just made was never served: pages go. */
	fi->keep_cache = (l.reused || l.stored) && !l.tier.fetched &&
			 !distrust_kernel_view(fs, node, fi);
	if (fi->keep_cache && !payload_view && fs->notifier.running && !fs->passthrough)
		store_header(fs, node->ino, l.fd, l.meta.payload_offset);
	index_set_verified(l.tier.index, key, &l.st);
	index_opened(&node->dir->index, key);
	if (l.tier.index != &node->dir->index)
		index_opened(l.tier.index, key);
	h->tier_index = l.tier.index;
	h->pins = true;
	h->key = *key;
	h->fd = l.fd;
	h->base = payload_view ? l.meta.payload_offset : 0;
	h->length = payload_view ? l.meta.payload_length : l.meta.file_size;
	verified_record(h, &l.st, &l.meta);
	kvc_meta_clear(&l.meta);
	return 0;
}
