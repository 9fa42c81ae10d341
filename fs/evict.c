/* SPDX-License-Identifier: MIT */
/* Keeping the backing root, or the local tier, within its byte budget. */
#include <unistd.h>

#include "kvcfs.h"

static pthread_mutex_t evicting = PTHREAD_MUTEX_INITIALIZER;

static void evict_one(struct kvcfs *fs, const struct evict_scope *s,
		      const struct eviction_candidate *c)
{
	const struct evict_part *p = &s->parts[c->part];
	struct kvc_err err;

	if (kvc_store_delete(p->store, &c->key, &err) < 0) {
		fuse_log(FUSE_LOG_ERR, "kvcfs: evicting: %s\n", err.detail);
		return;
	}
	index_remove(p->index, &c->key);
	if (p->dir != NULL)
		forget_slab_entries(fs, p->dir, &c->key, FORGET_LATER);
	atomic_fetch_add(s->evictions, 1);
}

static bool pinned(const struct evict_scope *s, const struct eviction_candidate *c)
{
	return index_is_pinned(s->parts[c->part].index, &c->key);
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
static enum verdict check_slab(struct kvcfs *fs, const struct evict_part *s,
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
	if (s->dir != NULL)
		forget_slab_entries(fs, s->dir, key, FORGET_LATER);
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
		if (order[i].size > s->max_size && !pinned(s, &order[i])) {
			evict_one(fs, s, &order[i]);
			skip[i] = true;
		}
	}
	for (size_t i = n; i-- > 0 && kept < s->low_watermark;) {
		if (skip[i] || pinned(s, &order[i]))
			continue;
		if (check_slab(fs, &s->parts[order[i].part], &order[i].key) == DROPPED)
			skip[i] = true;
		else
			kept += order[i].size;
	}
}

static uint64_t scope_bytes(const struct evict_scope *s)
{
	uint64_t all = 0, bytes, count;

	for (size_t i = 0; i < s->n_parts; i++) {
		index_totals(s->parts[i].index, &bytes, &count);
		all += bytes;
	}
	return all;
}

/* One order over every part: each part's, merged. */
static struct eviction_candidate *scope_order(const struct evict_scope *s, size_t *n)
{
	GArray *all = g_array_new(FALSE, FALSE, sizeof(struct eviction_candidate));

	for (size_t i = 0; i < s->n_parts; i++) {
		size_t k;
		struct eviction_candidate *one = index_eviction_order(s->parts[i].index, &k);
		for (size_t j = 0; j < k; j++)
			one[j].part = (unsigned)i;
		g_array_append_vals(all, one, (guint)k);
		g_free(one);
	}
	g_array_sort(all, index_candidate_cmp);
	*n = all->len;
	return (struct eviction_candidate *)(void *)g_array_free(all, FALSE);
}

void evict_scope_if_needed(struct kvcfs *fs, const struct evict_scope *s)
{
	struct eviction_candidate *order;
	bool *skip;
	size_t n;

	fs_assert_unlocked();
	if (s->max_size == 0)
		return;
	if (scope_bytes(s) <= s->max_size)
		return;
	/* One evictor at a time: two would both see the same excess and
	 * evict twice as much as needed. */
	pthread_mutex_lock(&evicting);
	order = scope_order(s, &n);
	skip = g_new0(bool, n + 1);
	clear_the_way(fs, s, order, n, skip);
	for (size_t i = 0; i < n; i++) {
		if (scope_bytes(s) <= s->low_watermark)
			break;
		/* Opened since the order was taken: it stays. */
		if (skip[i] || pinned(s, &order[i]))
			continue;
		evict_one(fs, s, &order[i]);
	}
	pthread_mutex_unlock(&evicting);
	g_free(skip);
	g_free(order);
}

void evict_verify_key(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key)
{
	struct evict_part p = { dir->store, &dir->index, dir };

	fs_assert_unlocked();
	(void)check_slab(fs, &p, key);
}

/* The mount's whole tree, one budget: every directory known now. */
void evict_if_needed(struct kvcfs *fs)
{
	GPtrArray *dirs;
	struct evict_part *parts;
	struct evict_scope s = {
		.max_size = fs->opts.max_size,
		.low_watermark = fs->opts.low_watermark,
		.evictions = &fs->metrics.evictions,
	};

	if (fs->opts.read_only || s.max_size == 0)
		return;
	dirs = dirs_snapshot(fs);
	parts = g_new(struct evict_part, dirs->len + 1);
	for (guint i = 0; i < dirs->len; i++) {
		struct kdir *d = g_ptr_array_index(dirs, i);
		parts[i] = (struct evict_part){ d->store, &d->index, d };
	}
	s.parts = parts;
	s.n_parts = dirs->len;
	evict_scope_if_needed(fs, &s);
	g_free(parts);
	dirs_snapshot_free(fs, dirs);
}
