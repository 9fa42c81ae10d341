/* SPDX-License-Identifier: MIT */
/*
 * The host-local tier (-o local=DIR): copies of the backing root's slabs on
 * this host, so that a host pays the network once per slab.
 *
 * The backing root says what exists: every open of a slab opens its
 * <key>.kvc there first, and a key it no longer has is not served (and its
 * local copy goes). A local copy is served only while it is the same slab
 * as the backing root's: same file size, creation time, payload length and
 * payload CRC-32C, all read from the two files' fixed 72 bytes (one small
 * read of each). Equal keys mean equal KV state, so a copy of another slab
 * of the key would be as good; the identity makes sure that a slab removed
 * and published anew is not answered with the old copy's bytes.
 *
 * A copy is made by one pass over the backing root's file: each chunk read
 * is written to a temp of the tier's store and its CRC taken on the way
 * (kvc_tmp_track), and the store's publish validates header, key and CRC
 * from that before it links the temp under <key>.kvc. So a copy is never
 * under its name before it is complete and valid, and the open that made it
 * serves it without reading it again. A copy that later fails verification
 * (open_slab.c verifies a local copy like any slab) is dropped and fetched
 * again, never served.
 *
 * The tier has its own indexes (one per directory of the mount, each a
 * part: local_parts.c), one budget and one eviction order over them
 * (evict.c, the same order as the backing root's); copies that are open,
 * being made, or this mount's last kept publish are never evicted. The
 * directory must belong to this mount alone: the indexes are the truth of
 * what it holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

/* Bytes per read of the backing root while copying. */
#define FETCH_CHUNK (4u << 20)

/* What makes two files the same slab, for the tier: header fields that no
 * hit write changes. */
struct identity {
	uint64_t size;
	uint64_t created;
	uint64_t payload_length;
	uint32_t crc;
};

static bool read_identity(int fd, uint64_t size, struct identity *id)
{
	uint8_t h[KVC_FIXED_SIZE];
	struct kvc_fixed f;

	if (size < KVC_FIXED_SIZE || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    !kvc_fixed_is_v1(h))
		return false;
	kvc_fixed_decode(h, &f);
	id->size = size;
	id->created = f.creation_time;
	id->payload_length = f.payload_length;
	id->crc = f.payload_crc32c;
	return true;
}

static bool same_identity(const struct identity *a, const struct identity *b)
{
	return a->size == b->size && a->created == b->created &&
	       a->payload_length == b->payload_length && a->crc == b->crc;
}

void local_tier_evict(struct kvcfs *fs)
{
	struct evict_scope s = { 0 };
	struct evict_part *parts;
	GArray *all;

	if (fs->local == NULL)
		return;
	all = local_parts_all(fs);
	parts = g_new(struct evict_part, all->len + 1);
	for (guint i = 0; i < all->len; i++) {
		struct tier_part *p = g_array_index(all, struct local_part_ref, i).part;
		parts[i] = (struct evict_part){ p->store, &p->index, NULL };
	}
	s.parts = parts;
	s.n_parts = all->len;
	s.max_size = fs->opts.local_size;
	s.low_watermark = fs->opts.local_low_watermark;
	s.evictions = &fs->local->evictions;
	evict_scope_if_needed(fs, &s);
	g_free(parts);
	local_parts_free(fs, all);
}

/* Remove the copy of key, whatever it is (stale, or its key is gone). */
static void drop_copy(struct kvcfs *fs, struct tier_part *part, const struct kvc_key *key)
{
	struct kvc_err err;

	if (kvc_store_delete(part->store, key, &err) < 0) {
		fuse_log(FUSE_LOG_WARNING, "kvcfs: local tier: %s\n", err.detail);
		return;
	}
	index_remove(&part->index, key);
	atomic_fetch_add(&fs->local->dropped, 1);
}

int local_tier_start(struct kvcfs *fs)
{
	struct kvc_store_config cfg = { 0 };
	struct kvc_sweep_stats sweep = { 0 };
	struct kvc_scan_stats scan;
	struct local_tier *t;
	struct kvc_err err;

	if (fs->opts.local_dir == NULL)
		return 0;
	t = g_new0(struct local_tier, 1);
	cfg.root = fs->opts.local_dir;
	cfg.host_id = fs->opts.host_id;
	cfg.recheck_delay_ms = -1;
	if (kvc_store_open(&cfg, &t->root.store, &err) < 0) {
		fprintf(stderr, "kvcfs: local tier: %s\n", err.detail);
		g_free(t);
		return -1;
	}
	index_init(&t->root.index, fs->opts.hit_credit);
	pthread_mutex_init(&t->recent_lock, NULL);
	fs->local = t;
	/* Temps of a fetch or publish that a crash interrupted: never under a
	 * slab name, so they only cost space until this sweep. */
	if (kvc_store_sweep(t->root.store, 0, &sweep, &err) < 0 ||
	    kvc_store_scan(t->root.store, index_put_scanned, &t->root.index, &scan, &err) < 0) {
		fprintf(stderr, "kvcfs: local tier %s: %s\n", fs->opts.local_dir, err.detail);
		local_tier_stop(fs);
		return -1;
	}
	local_parts_start(fs);
	local_tier_reconcile(fs);
	local_tier_evict(fs);
	if (fs->verbose)
		fuse_log(FUSE_LOG_INFO,
			 "kvcfs: local tier %s: %" G_GUINT64_FORMAT " copies, %" G_GUINT64_FORMAT
			 " bytes; removed %" G_GUINT64_FORMAT " temps\n",
			 fs->opts.local_dir, scan.slabs, scan.bytes, sweep.removed);
	return 0;
}

void local_tier_stop(struct kvcfs *fs)
{
	if (fs->local == NULL)
		return;
	index_destroy(&fs->local->root.index);
	kvc_store_close(fs->local->root.store);
	pthread_mutex_destroy(&fs->local->recent_lock);
	g_free(fs->local);
	fs->local = NULL;
}

void local_tier_key_gone(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key)
{
	struct tier_part *part = local_part_of(fs, dir, false);

	if (part != NULL && index_contains(&part->index, key))
		drop_copy(fs, part, key);
}

struct kvc_store *local_tier_store_of(struct kvcfs *fs, struct kdir *dir)
{
	struct tier_part *part = local_part_of(fs, dir, false);

	return part != NULL ? part->store : NULL;
}

void local_tier_reconcile(struct kvcfs *fs)
{
	struct eviction_candidate *copies;
	GArray *parts;
	size_t n;

	if (fs->local == NULL)
		return;
	/* Every copy, pinned or not: a key gone from its directory in the
	 * backing root goes here too (an open descriptor keeps reading what
	 * it has). */
	parts = local_parts_all(fs);
	for (guint i = 0; i < parts->len; i++) {
		struct local_part_ref *r = &g_array_index(parts, struct local_part_ref, i);
		struct kdir *dir = r->dir != NULL ? r->dir : fs->root_dir;
		copies = index_all(&r->part->index, &n);
		for (size_t j = 0; j < n; j++)
			if (!index_contains(&dir->index, &copies[j].key))
				drop_copy(fs, r->part, &copies[j].key);
		g_free(copies);
	}
	local_parts_free(fs, parts);
}

/* Copy size bytes of src into tmp, recording their CRCs. */
static int copy_into(int src, uint64_t size, struct kvc_tmp *tmp, struct kvc_err *err)
{
	uint8_t *buf = g_malloc(FETCH_CHUNK);
	uint64_t off = 0;
	int rc = 0;

	posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (off < size && rc == 0) {
		size_t want = size - off < FETCH_CHUNK ? (size_t)(size - off) : FETCH_CHUNK;
		ssize_t n = pread(src, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = kvc_err_sys(err, n < 0 ? errno : EIO, "read of the backing root's slab");
			break;
		}
		int w = kvc_pwrite_full(tmp->fd, buf, (size_t)n, off);
		if (w < 0) {
			rc = kvc_err_sys(err, -w, "write of local temp %s", tmp->name);
			break;
		}
		kvc_tmp_note_write(tmp, off, buf, (size_t)n);
		off += (uint64_t)n;
	}
	g_free(buf);
	return rc;
}

/*
 * Copy the backing root's slab (src, size bytes) into the tier and open the
 * copy. The copy is pinned from before it has a name until it is open, so
 * no eviction takes it away in between. 0 with *fd, *st; -1 when no copy
 * could be made (err says why).
 */
static int fetch(struct kvcfs *fs, struct tier_part *t, const struct kvc_key *key, int src,
		 uint64_t size, int *fd, struct stat *st, bool *verified, struct kvc_err *err)
{
	char label[KVC_SLAB_NAME_LEN + 1];
	enum kvc_publish_outcome outcome;
	struct kvc_tmp tmp = KVC_TMP_INIT;
	struct kvc_meta meta;
	struct stat ours;
	int rc = -1;

	kvc_key_slab_name(key, label);
	if (kvc_tmp_create(t->store, label, &tmp, err) < 0)
		return -1;
	kvc_tmp_track(&tmp);
	if (copy_into(src, size, &tmp, err) < 0 || fstat(tmp.fd, &ours) < 0) {
		kvc_store_abort_tmp(t->store, &tmp);
		return -1;
	}
	index_publishing(&t->index, key, true);
	if (kvc_store_publish(t->store, &tmp, key, &meta, &outcome, err) < 0) {
		kvc_store_abort_tmp(t->store, &tmp);
		goto out;
	}
	if (meta.file_size > 0)
		index_put(&t->index, key, meta.file_size, meta.hit_count, meta.last_used_time,
			  meta.creation_time);
	kvc_meta_clear(&meta);
	if (kvc_store_open_slab(t->store, key, fd, st, err) < 0)
		goto out;
	/* Our temp's inode under the name: its bytes were validated as they
	 * were written, so this open need not read them again. */
	*verified = outcome != KVC_PUBLISH_ADOPTED && st->st_dev == ours.st_dev &&
		    st->st_ino == ours.st_ino;
	if (*verified)
		index_set_verified(&t->index, key, st);
	atomic_fetch_add(&fs->local->fetches, 1);
	atomic_fetch_add(&fs->local->fetched_bytes, size);
	rc = 0;
out:
	maintenance_want_evict(fs);
	index_publishing(&t->index, key, false);
	return rc;
}

static void pick_shared(struct kdir *dir, struct tier_pick *pick)
{
	pick->store = dir->store;
	pick->index = &dir->index;
	pick->local = false;
	pick->fetched = false;
}

static void pick_local(struct tier_part *part, struct tier_pick *pick, bool fetched)
{
	pick->store = part->store;
	pick->index = &part->index;
	pick->local = true;
	pick->fetched = fetched;
}

/* The local copy of key if it is the backing root's slab (id); -1 if none. */
static int open_matching_copy(struct kvcfs *fs, struct tier_part *part, const struct kvc_key *key,
			      const struct identity *id, struct stat *st)
{
	struct identity mine;
	struct kvc_err err;
	int fd;

	if (kvc_store_open_slab(part->store, key, &fd, st, &err) < 0) {
		if (err.tag != KVC_E_NOT_FOUND)
			drop_copy(fs, part, key); /* not a regular file: never ours */
		else
			index_remove(&part->index, key);
		return -1;
	}
	if (read_identity(fd, (uint64_t)st->st_size, &mine) && same_identity(&mine, id))
		return fd;
	close(fd);
	drop_copy(fs, part, key); /* another slab of the key, or a torn header */
	return -1;
}

/* A hit served locally still counts in the backing root's header, which
 * orders the shared eviction for every host. Best effort. */
static void count_shared_hit(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			     int shared_fd)
{
	uint32_t hits;

	if (!fs->opts.read_only)
		hits_count_one(fs, dir->store, key, shared_fd, (uint64_t)time(NULL), &hits);
}

int local_tier_open(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key, bool refetch,
		    int *fd, struct stat *st, struct tier_pick *pick, struct kvc_err *err)
{
	struct tier_part *part = local_part_of(fs, dir, true);
	struct identity id;
	struct kvc_err why = { 0 };
	struct stat shared_st;
	bool verified = false;
	int shared_fd, local_fd;

	pick_shared(dir, pick);
	if (kvc_store_open_slab(dir->store, key, &shared_fd, &shared_st, err) < 0) {
		if (part != NULL && err->tag == KVC_E_NOT_FOUND)
			drop_copy(fs, part, key); /* gone from the truth: gone here */
		return -1;
	}
	pick->source = shared_st;
	/* Without a tier, or a header that does not even look like a slab's
	 * (the caller's verification judges it, and drops it if corrupt). */
	if (part == NULL || !read_identity(shared_fd, (uint64_t)shared_st.st_size, &id)) {
		*fd = shared_fd;
		*st = shared_st;
		return 0;
	}
	if (refetch) /* dropped (and counted) by the caller; make sure */
		kvc_store_delete(part->store, key, &why);
	local_fd = refetch ? -1 : open_matching_copy(fs, part, key, &id, st);
	if (local_fd >= 0) {
		/* Its first open in this process reads it all (verification):
		 * from local disk, readahead pays. */
		posix_fadvise(local_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		atomic_fetch_add(&fs->local->hits, 1);
		pick_local(part, pick, false);
	} else if ((fs->opts.local_size == 0 || id.size <= fs->opts.local_size) &&
		   fetch(fs, part, key, shared_fd, id.size, &local_fd, st, &verified, &why) == 0) {
		pick_local(part, pick, verified);
	} else {
		/* No copy (too big for the budget, local disk full, or the
		 * backing root's file is invalid): serve the backing root's. */
		if (id.size <= fs->opts.local_size || fs->opts.local_size == 0)
			fuse_log(FUSE_LOG_WARNING, "kvcfs: local tier: no copy made: %s\n",
				 why.detail);
		*fd = shared_fd;
		*st = shared_st;
		return 0;
	}
	count_shared_hit(fs, dir, key, shared_fd);
	close(shared_fd);
	*fd = local_fd;
	return 0;
}

void local_tier_drop_corrupt(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			     const struct stat *st)
{
	struct tier_part *part = local_part_of(fs, dir, false);
	char hex[KVC_KEY_HEX_LEN + 1];

	kvc_key_to_hex(key, hex);
	fuse_log(FUSE_LOG_WARNING, "kvcfs: local copy of %s failed verification: dropped\n", hex);
	if (part == NULL)
		return;
	kvc_store_drop_corrupt(part->store, key, st);
	index_remove(&part->index, key);
	atomic_fetch_add(&fs->local->dropped, 1);
}

/* The publish's copy: each write into the stage's temp in the backing root
 * is written to a temp of the tier too, so the copy costs a local write per
 * write and no read of the backing root. Any failure there gives up the
 * copy (the next open fetches instead); the publish never waits on it. */
void local_tier_stage_begin(struct kvcfs *fs, struct staging *stage)
{
	struct kvc_err err;

	struct tier_part *part = local_part_of(fs, stage->dir, true);

	stage->local_tmp.fd = -1;
	if (part == NULL)
		return;
	if (kvc_tmp_create(part->store, "stage", &stage->local_tmp, &err) < 0) {
		stage->local_tmp.fd = -1;
		return;
	}
	kvc_tmp_track(&stage->local_tmp);
	stage->local_part = part;
}

static void give_up_copy(struct staging *stage)
{
	if (stage->local_part != NULL)
		kvc_store_abort_tmp(stage->local_part->store, &stage->local_tmp);
}

void local_tier_stage_write(struct staging *stage, uint64_t off, const void *buf, size_t len)
{
	if (stage->local_tmp.fd < 0 || atomic_load(&stage->local_failed))
		return;
	if (kvc_pwrite_full(stage->local_tmp.fd, buf, len, off) < 0)
		atomic_store(&stage->local_failed, true); /* writes run in parallel: flag only */
	else
		kvc_tmp_note_write(&stage->local_tmp, off, buf, len);
}

void local_tier_stage_truncate(struct staging *stage, uint64_t size)
{
	if (stage->local_tmp.fd < 0)
		return;
	if (ftruncate(stage->local_tmp.fd, (off_t)size) < 0)
		atomic_store(&stage->local_failed, true);
	else
		kvc_tmp_note_truncate(&stage->local_tmp, size);
}

void local_tier_stage_published(struct kvcfs *fs, struct staging *stage,
				const struct kvc_key *key, bool ours)
{
	enum kvc_publish_outcome outcome;
	struct kvc_meta meta;
	struct kvc_err err;

	struct tier_part *part = stage->local_part;

	if (part == NULL || stage->local_tmp.fd < 0)
		return;
	if (!ours || atomic_load(&stage->local_failed)) {
		/* Another writer's slab is the published one: ours is not its
		 * copy (the next open fetches it). */
		give_up_copy(stage);
		return;
	}
	index_publishing(&part->index, key, true);
	if (kvc_store_publish(part->store, &stage->local_tmp, key, &meta, &outcome, &err) == 0) {
		if (meta.file_size > 0)
			index_put(&part->index, key, meta.file_size, meta.hit_count,
				  meta.last_used_time, meta.creation_time);
		kvc_meta_clear(&meta);
		local_parts_set_recent(fs, part, key);
		atomic_fetch_add(&fs->local->kept_published, 1);
	} else {
		fuse_log(FUSE_LOG_WARNING, "kvcfs: local tier: copy of a publish not kept: %s\n",
			 err.detail);
		give_up_copy(stage);
	}
	index_publishing(&part->index, key, false);
	maintenance_want_evict(fs);
}

void local_tier_stage_end(struct kvcfs *fs, struct staging *stage)
{
	(void)fs;
	give_up_copy(stage);
}

void local_tier_metrics(struct kvcfs *fs, GString *s)
{
	struct local_tier *t = fs->local;
	uint64_t bytes = 0, copies = 0;
	GArray *parts;

	if (t == NULL)
		return;
	parts = local_parts_all(fs);
	for (guint i = 0; i < parts->len; i++) {
		uint64_t b, c;
		index_totals(&g_array_index(parts, struct local_part_ref, i).part->index, &b, &c);
		bytes += b;
		copies += c;
	}
	local_parts_free(fs, parts);
	g_string_append_printf(s,
		"# HELP kvcfs_local_hits_total Opens served from a local copy that was already there.\n"
		"# TYPE kvcfs_local_hits_total counter\nkvcfs_local_hits_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_fetches_total Opens that copied the slab from the backing root into the local tier.\n"
		"# TYPE kvcfs_local_fetches_total counter\nkvcfs_local_fetches_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_fetched_bytes_total Bytes copied from the backing root into the local tier.\n"
		"# TYPE kvcfs_local_fetched_bytes_total counter\nkvcfs_local_fetched_bytes_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_evictions_total Local copies evicted to stay within local_size.\n"
		"# TYPE kvcfs_local_evictions_total counter\nkvcfs_local_evictions_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_dropped_total Local copies dropped: key gone from the backing root, another slab there, or corrupt.\n"
		"# TYPE kvcfs_local_dropped_total counter\nkvcfs_local_dropped_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_kept_published_total Publishes of this mount kept as local copies.\n"
		"# TYPE kvcfs_local_kept_published_total counter\nkvcfs_local_kept_published_total %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_bytes Bytes of copies in the local tier, as indexed.\n"
		"# TYPE kvcfs_local_bytes gauge\nkvcfs_local_bytes %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_slabs Copies in the local tier, as indexed.\n"
		"# TYPE kvcfs_local_slabs gauge\nkvcfs_local_slabs %" G_GUINT64_FORMAT "\n"
		"# HELP kvcfs_local_budget_bytes The local tier's byte budget (0: none).\n"
		"# TYPE kvcfs_local_budget_bytes gauge\nkvcfs_local_budget_bytes %" G_GUINT64_FORMAT "\n",
		(uint64_t)t->hits, (uint64_t)t->fetches, (uint64_t)t->fetched_bytes,
		(uint64_t)t->evictions, (uint64_t)t->dropped, (uint64_t)t->kept_published, bytes,
		copies, fs->opts.local_size);
}
