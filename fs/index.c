/* SPDX-License-Identifier: MIT */
/* The in-memory index of slabs: sizes and use, for totals and (later) eviction. */
#include <string.h>

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

void index_init(struct kvcfs_index *idx)
{
	pthread_mutex_init(&idx->lock, NULL);
	idx->slabs = g_hash_table_new_full(index_key_hash, index_key_equal, NULL, g_free);
	idx->bytes = 0;
}

void index_destroy(struct kvcfs_index *idx)
{
	g_hash_table_destroy(idx->slabs);
	pthread_mutex_destroy(&idx->lock);
}

void index_put(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
	       uint32_t hits, uint64_t last_used, uint64_t created)
{
	struct index_entry *e;

	pthread_mutex_lock(&idx->lock);
	e = g_hash_table_lookup(idx->slabs, key);
	if (e == NULL) {
		e = g_new0(struct index_entry, 1);
		e->key = *key;
		g_hash_table_insert(idx->slabs, &e->key, e);
	} else {
		idx->bytes -= e->size;
	}
	e->size = size;
	e->hits = hits;
	e->last_used = last_used;
	e->created = created;
	idx->bytes += size;
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
