/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_INDEX_H
#define KVCFS_INDEX_H

#include <glib.h>
#include <pthread.h>

#include <kvc/kvc.h>

/*
 * What this mount knows of the slabs in the backing root: a cache of the
 * directory, never the truth (another mount may add or remove slabs).
 */
struct kvcfs_index {
	pthread_mutex_t lock;
	GHashTable *slabs;    /* struct kvc_key* → struct index_entry* */
	uint64_t bytes;
};

struct index_entry {
	struct kvc_key key;
	uint64_t size;
	uint32_t hits;
	uint64_t last_used;
	uint64_t created;
};

/* GHashTable callbacks for struct kvc_key keys. */
guint index_key_hash(gconstpointer key);
gboolean index_key_equal(gconstpointer a, gconstpointer b);

void index_init(struct kvcfs_index *idx);
void index_destroy(struct kvcfs_index *idx);
void index_put(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
	       uint32_t hits, uint64_t last_used, uint64_t created);
void index_remove(struct kvcfs_index *idx, const struct kvc_key *key);
void index_totals(struct kvcfs_index *idx, uint64_t *bytes, uint64_t *count);

#endif
