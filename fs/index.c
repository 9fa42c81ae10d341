/* SPDX-License-Identifier: MIT */
/* The in-memory index of slabs: totals, pins, and the eviction order. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "index.h"

guint index_key_hash(gconstpointer p)
{
	guint h;

	memcpy(&h, ((const struct kvc_key *)p)->bytes, sizeof(h)); /* SHA-256: uniform */
	return h;
}

gboolean index_key_equal(gconstpointer a, gconstpointer b)
{
	return kvc_key_equal(a, b);
}

GHashTable *index_new_table(void)
{
	return g_hash_table_new_full(index_key_hash, index_key_equal, NULL, g_free);
}

void index_init(struct kvcfs_index *idx, double hit_credit)
{
	pthread_mutex_init(&idx->lock, NULL);
	idx->slabs = index_new_table();
	idx->bytes = 0;
	idx->hit_credit = hit_credit;
	idx->has_recent = false;
	idx->publishing = g_hash_table_new_full(index_key_hash, index_key_equal, g_free, NULL);
}

void index_destroy(struct kvcfs_index *idx)
{
	g_hash_table_destroy(idx->publishing);
	g_hash_table_destroy(idx->slabs);
	pthread_mutex_destroy(&idx->lock);
}

static struct index_entry *table_put(GHashTable *t, const struct kvc_key *key, uint64_t size,
				     uint32_t hits, uint64_t last_used, uint64_t created,
				     uint64_t *old_size)
{
	struct index_entry *e = g_hash_table_lookup(t, key);

	*old_size = 0;
	if (e == NULL) {
		e = g_new0(struct index_entry, 1);
		e->key = *key;
		g_hash_table_insert(t, &e->key, e);
	} else {
		*old_size = e->size;
	}
	index_distrust(&hits, &last_used, &created);
	e->size = size;
	e->hits = hits;
	e->last_used = last_used;
	e->created = created;
	return e;
}

void index_table_put(GHashTable *t, const struct kvc_key *key, uint64_t size,
		     uint32_t hits, uint64_t last_used, uint64_t created)
{
	uint64_t old;

	table_put(t, key, size, hits, last_used, created, &old);
}

void index_put(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
	       uint32_t hits, uint64_t last_used, uint64_t created)
{
	uint64_t old;

	pthread_mutex_lock(&idx->lock);
	table_put(idx->slabs, key, size, hits, last_used, created, &old);
	idx->bytes += size - old;
	pthread_mutex_unlock(&idx->lock);
}

void index_note(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
		uint32_t hits, uint64_t last_used, uint64_t created)
{
	uint64_t old;

	pthread_mutex_lock(&idx->lock);
	if (g_hash_table_lookup(idx->slabs, key) == NULL) {
		table_put(idx->slabs, key, size, hits, last_used, created, &old);
		idx->bytes += size;
	}
	pthread_mutex_unlock(&idx->lock);
}

void index_remove(struct kvcfs_index *idx, const struct kvc_key *key)
{
	struct index_entry *e;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	if (e != NULL) {
		idx->bytes -= e->size;
		g_hash_table_remove(idx->slabs, key);
	}
	pthread_mutex_unlock(&idx->lock);
}

void index_totals(struct kvcfs_index *idx, uint64_t *bytes, uint64_t *count)
{
	pthread_mutex_lock(&idx->lock);
	*bytes = idx->bytes;
	*count = g_hash_table_size(idx->slabs);
	pthread_mutex_unlock(&idx->lock);
}

bool index_contains(struct kvcfs_index *idx, const struct kvc_key *key)
{
	bool found;

	pthread_mutex_lock(&idx->lock);
	found = g_hash_table_lookup(idx->slabs, key) != NULL;
	pthread_mutex_unlock(&idx->lock);
	return found;
}

struct eviction_candidate *index_all(struct kvcfs_index *idx, size_t *n)
{
	struct eviction_candidate *out;
	GHashTableIter it;
	gpointer value;
	size_t count = 0;

	pthread_mutex_lock(&idx->lock);
	out = g_new0(struct eviction_candidate, g_hash_table_size(idx->slabs) + 1);
	g_hash_table_iter_init(&it, idx->slabs);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		const struct index_entry *e = value;
		out[count].key = e->key;
		out[count].size = e->size;
		count++;
	}
	pthread_mutex_unlock(&idx->lock);
	*n = count;
	return out;
}

void index_opened(struct kvcfs_index *idx, const struct kvc_key *key)
{
	struct index_entry *e;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	if (e != NULL)
		e->opens++;
	pthread_mutex_unlock(&idx->lock);
}

void index_closed(struct kvcfs_index *idx, const struct kvc_key *key)
{
	struct index_entry *e;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	if (e != NULL && e->opens > 0)
		e->opens--;
	pthread_mutex_unlock(&idx->lock);
}

void index_set_recent(struct kvcfs_index *idx, const struct kvc_key *key)
{
	pthread_mutex_lock(&idx->lock);
	idx->recent = *key;
	idx->has_recent = true;
	pthread_mutex_unlock(&idx->lock);
}

void index_clear_recent(struct kvcfs_index *idx)
{
	pthread_mutex_lock(&idx->lock);
	idx->has_recent = false;
	pthread_mutex_unlock(&idx->lock);
}

static bool pinned_locked(struct kvcfs_index *idx, const struct index_entry *e)
{
	return e->opens > 0 || (idx->has_recent && kvc_key_equal(&idx->recent, &e->key)) ||
	       g_hash_table_contains(idx->publishing, &e->key);
}

void index_publishing(struct kvcfs_index *idx, const struct kvc_key *key, bool starts)
{
	gpointer stored, count;

	pthread_mutex_lock(&idx->lock);
	if (g_hash_table_lookup_extended(idx->publishing, key, &stored, &count)) {
		guint n = GPOINTER_TO_UINT(count) + (starts ? 1u : 0u) - (starts ? 0u : 1u);
		if (n == 0)
			g_hash_table_remove(idx->publishing, key);
		else
			g_hash_table_insert(idx->publishing, g_memdup2(key, sizeof(*key)),
					    GUINT_TO_POINTER(n));
	} else if (starts) {
		g_hash_table_insert(idx->publishing, g_memdup2(key, sizeof(*key)),
				    GUINT_TO_POINTER(1u));
	}
	pthread_mutex_unlock(&idx->lock);
}

bool index_is_pinned(struct kvcfs_index *idx, const struct kvc_key *key)
{
	struct index_entry *e;
	bool pinned;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	pinned = e != NULL && pinned_locked(idx, e);
	pthread_mutex_unlock(&idx->lock);
	return pinned;
}

double index_score(const struct kvcfs_index *idx, uint32_t hits, uint64_t last_used)
{
	/* Recency in seconds, plus credit for use that grows with the log of
	 * the hit count: a popular slab outlives a merely recent one for a
	 * while, but the credit is bounded, so hits long past do not pin it. */
	return (double)last_used + idx->hit_credit * log2(1.0 + (double)hits);
}

int index_candidate_cmp(const void *pa, const void *pb)
{
	const struct eviction_candidate *a = pa, *b = pb;
	int c;

	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	c = memcmp(a->key.bytes, b->key.bytes, KVC_KEY_BYTES);
	if (c != 0)
		return c;
	return a->part < b->part ? -1 : a->part > b->part;
}

struct eviction_candidate *index_eviction_order(struct kvcfs_index *idx, size_t *n)
{
	struct eviction_candidate *all;
	GHashTableIter it;
	gpointer value;
	size_t count = 0;

	pthread_mutex_lock(&idx->lock);
	all = g_new0(struct eviction_candidate, g_hash_table_size(idx->slabs) + 1);
	g_hash_table_iter_init(&it, idx->slabs);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct index_entry *e = value;
		if (pinned_locked(idx, e))
			continue;
		all[count].key = e->key;
		all[count].size = e->size;
		all[count].score = index_score(idx, e->hits, e->last_used);
		all[count].created = e->created;
		count++;
	}
	pthread_mutex_unlock(&idx->lock);
	qsort(all, count, sizeof(*all), index_candidate_cmp);
	*n = count;
	return all;
}

void index_replace(struct kvcfs_index *idx, GHashTable *fresh)
{
	GHashTableIter it;
	gpointer value;
	uint64_t bytes = 0;

	pthread_mutex_lock(&idx->lock);
	g_hash_table_iter_init(&it, fresh);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct index_entry *e = value, *old = g_hash_table_lookup(idx->slabs, &e->key);
		if (old != NULL) {
			e->opens = old->opens;
			e->touched_ctime = old->touched_ctime;
			e->verified = old->verified;
			e->verified_dev = old->verified_dev;
			e->verified_ino = old->verified_ino;
			e->verified_size = old->verified_size;
		}
		bytes += e->size;
	}
	/* Open slabs that vanished from the directory are gone for good: an
	 * open descriptor still reads them, but they take no space we count. */
	g_hash_table_destroy(idx->slabs);
	idx->slabs = fresh;
	idx->bytes = bytes;
	pthread_mutex_unlock(&idx->lock);
}

void index_set_verified(struct kvcfs_index *idx, const struct kvc_key *key,
			const struct stat *st)
{
	struct index_entry *e;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	if (e != NULL) {
		e->verified = true;
		e->verified_dev = st->st_dev;
		e->verified_ino = st->st_ino;
		e->verified_size = st->st_size;
		e->touched_ctime = st->st_ctim;
	}
	pthread_mutex_unlock(&idx->lock);
}

bool index_is_verified(struct kvcfs_index *idx, const struct kvc_key *key,
		       const struct stat *st)
{
	struct index_entry *e;
	bool same;

	/* ctime cannot be set by anyone: any write, by us or another mount or
	 * anything else, moves it. Equal to the ctime after our own last hit
	 * write means nothing touched the file since we verified it. */
	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	same = e != NULL && e->verified && e->verified_dev == st->st_dev &&
	       e->verified_ino == st->st_ino && e->verified_size == st->st_size &&
	       e->touched_ctime.tv_sec == st->st_ctim.tv_sec &&
	       e->touched_ctime.tv_nsec == st->st_ctim.tv_nsec;
	pthread_mutex_unlock(&idx->lock);
	return same;
}

bool index_times(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
		 uint64_t *created, uint64_t *last_used)
{
	struct index_entry *e;
	bool found;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	found = e != NULL && e->size == size;
	if (found) {
		*created = e->created;
		*last_used = e->last_used;
	}
	pthread_mutex_unlock(&idx->lock);
	return found;
}

void index_distrust(uint32_t *hits, uint64_t *last_used, uint64_t *created)
{
	uint64_t now = (uint64_t)time(NULL);

	if (*hits > INDEX_MAX_CREDITED_HITS)
		*hits = INDEX_MAX_CREDITED_HITS;
	/* Ahead by less than the clock skew hosts of a shared root may have:
	 * now. Further ahead: no cache wrote that, so it earns nothing. */
	if (*last_used > now + INDEX_CLOCK_SKEW_SECONDS)
		*last_used = 0;
	else if (*last_used > now)
		*last_used = now;
	if (*created > now)
		*created = now;
}

void index_put_scanned(void *idx, const struct kvc_key *key, const struct kvc_meta *meta)
{
	index_put(idx, key, meta->file_size, meta->hit_count, meta->last_used_time,
		  meta->creation_time);
}
