/* SPDX-License-Identifier: MIT */
/* Keeping the backing root, or the local tier, within its byte budget. */
#include <unistd.h>

#include "kvcfs.h"

static pthread_mutex_t evicting = PTHREAD_MUTEX_INITIALIZER;

static void evict_one(struct kvcfs *fs, const struct evict_scope *s, const struct kvc_key *key)
{
	struct kvc_err err;

	if (kvc_store_delete(s->store, key, &err) < 0) {
		fuse_log(FUSE_LOG_ERR, "kvcfs: evicting: %s\n", err.detail);
		return;
	}
	index_remove(s->index, key);
	if (s->names_in_mount)
		forget_slab_entries(fs, key, FORGET_LATER);
	atomic_fetch_add(s->evictions, 1);
}

enum verdict { STAYS, DROPPED };

/*
 * Is the slab under key what its header says? The index learns sizes and
 * times from headers alone (start-up, rescans, lookups), and a header can
 * lie: a sparse file that claims a huge payload and a last use in the
 * future would keep its place and cost every valid slab theirs. Full
 * verification, once per file (the index remembers it). A file that fails
 * is dropped (after the store's recheck delay) and leaves the index; one
 * that cannot be read for another reason (I/O) is given the benefit of the
 * doubt.
 */
static enum verdict check_slab(struct kvcfs *fs, const struct evict_scope *s,
			       const struct kvc_key *key)
{
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat st;
	int fd;

	if (kvc_store_open_slab(s->store, key, &fd, &st, &err) < 0) {
		if (err.tag != KVC_E_NOT_FOUND && err.sys_errno != EIO)
			return STAYS;
		index_remove(s->index, key); /* gone, or not a file: holds nothing */
		return DROPPED;
	}
	if (index_is_verified(s->index, key, &st)) {
		close(fd);
		return STAYS;
	}
	if (kvc_verify_fd(fd, KVC_PARSE_LIGHT, key, &meta, &err) == 0) {
		close(fd);
		kvc_meta_clear(&meta);
		index_set_verified(s->index, key, &st);
		return STAYS;
	}
	close(fd);
	if (!kvc_tag_is_format_error(err.tag) || err.tag == KVC_E_UNSUPPORTED_VERSION)
		return STAYS;
	fuse_log(FUSE_LOG_WARNING, "kvcfs: not counting invalid %s\n", err.detail);
	kvc_store_drop_corrupt(s->store, key, &st);
	index_remove(s->index, key);
	if (s->names_in_mount)
		forget_slab_entries(fs, key, FORGET_LATER);
	return DROPPED;
}

/*
 * Before evicting anything: a slab larger than the whole budget could never
 * be kept within it, so it goes first, whatever its header claims, and
 * costs no other slab its place. Then the slabs that eviction would keep,
 * from the most-kept down to the low watermark, are verified, and the ones
 * that fail leave: only proven bytes push valid slabs out. The cost is
 * bounded by the budget (each verification reads one slab once).
 * skip[i] is set for the candidates handled here.
 */
static void clear_the_way(struct kvcfs *fs, const struct evict_scope *s,
			  const struct eviction_candidate *order,
			  size_t n, bool *skip)
{
	uint64_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		if (order[i].size > s->max_size && !index_is_pinned(s->index, &order[i].key)) {
			evict_one(fs, s, &order[i].key);
			skip[i] = true;
		}
	}
	for (size_t i = n; i-- > 0 && kept < s->low_watermark;) {
		if (skip[i] || index_is_pinned(s->index, &order[i].key))
			continue;
		if (check_slab(fs, s, &order[i].key) == DROPPED)
			skip[i] = true;
		else
			kept += order[i].size;
	}
}

void evict_scope_if_needed(struct kvcfs *fs, const struct evict_scope *s)
{
	struct eviction_candidate *order;
	uint64_t bytes, count;
	bool *skip;
	size_t n;

	fs_assert_unlocked();
	if (s->max_size == 0)
		return;
	index_totals(s->index, &bytes, &count);
	if (bytes <= s->max_size)
		return;
	/* One evictor at a time: two would both see the same excess and
	 * evict twice as much as needed. */
	pthread_mutex_lock(&evicting);
	order = index_eviction_order(s->index, &n);
	skip = g_new0(bool, n + 1);
	clear_the_way(fs, s, order, n, skip);
	for (size_t i = 0; i < n; i++) {
		index_totals(s->index, &bytes, &count);
		if (bytes <= s->low_watermark)
			break;
		/* Opened since the order was taken: it stays. */
		if (skip[i] || index_is_pinned(s->index, &order[i].key))
			continue;
		evict_one(fs, s, &order[i].key);
	}
	pthread_mutex_unlock(&evicting);
	g_free(skip);
	g_free(order);
}

/* The backing root, whose slabs are the mount's names. */
static struct evict_scope root_scope(struct kvcfs *fs)
{
	struct evict_scope s = {
		.store = fs->store,
		.index = &fs->index,
		.max_size = fs->opts.max_size,
		.low_watermark = fs->opts.low_watermark,
		.evictions = &fs->metrics.evictions,
		.names_in_mount = true,
	};
	return s;
}

void evict_verify_key(struct kvcfs *fs, const struct kvc_key *key)
{
	struct evict_scope s = root_scope(fs);

	fs_assert_unlocked();
	(void)check_slab(fs, &s, key);
}

void evict_if_needed(struct kvcfs *fs)
{
	struct evict_scope s = root_scope(fs);

	if (!fs->opts.read_only)
		evict_scope_if_needed(fs, &s);
}
