/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_INDEX_H
#define KVCFS_INDEX_H

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

/*
 * What this mount knows of the slabs in the backing root: a cache of the
 * directory, never the truth (another mount may add or remove slabs; a
 * periodic rescan catches up). It orders slabs for eviction and knows
 * which ones must not be evicted.
 */
struct kvcfs_index {
	/* A leaf: taken by every index_* function alone, never while it
	 * waits for anything else (kvcfs.h has the whole lock order). */
	pthread_mutex_t lock;
	/* Guarded by lock: */
	GHashTable *slabs;    /* struct kvc_key* → struct index_entry* */
	uint64_t bytes;
	bool has_recent;
	struct kvc_key recent; /* the slab this mount published last */
	GHashTable *publishing; /* key → count of publishes under way */
	/* Set at init, never changed: */
	double hit_credit;    /* seconds of recency one doubling of hits is worth */
};

/* Owned by kvcfs_index.slabs: every field guarded by the index's lock. */
struct index_entry {
	struct kvc_key key;
	uint64_t size;
	uint32_t hits;
	uint64_t last_used;
	uint64_t created;
	unsigned opens;       /* open handles: never evicted while > 0 */
	struct timespec touched_ctime; /* the file's ctime after our last hit write */
	bool verified;        /* the file below was fully verified, unchanged since */
	dev_t verified_dev;
	ino_t verified_ino;
	off_t verified_size;
};

/* A slab as a candidate for eviction, lowest score first. */
struct eviction_candidate {
	struct kvc_key key;
	uint64_t size;
	double score;
	uint64_t created;
	unsigned part;        /* which index it is from, for a caller that
			       * merges several (0 as given here) */
};

/* The eviction order of two candidates (qsort): score, then creation,
 * then key bytes, then part. */
int index_candidate_cmp(const void *a, const void *b);

/* GHashTable callbacks for struct kvc_key keys. */
guint index_key_hash(gconstpointer key);
gboolean index_key_equal(gconstpointer a, gconstpointer b);

void index_init(struct kvcfs_index *idx, double hit_credit);
void index_destroy(struct kvcfs_index *idx);
void index_put(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
	       uint32_t hits, uint64_t last_used, uint64_t created);
/* Add only if absent (a slab seen by lookup that the index missed). */
void index_note(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
		uint32_t hits, uint64_t last_used, uint64_t created);
void index_remove(struct kvcfs_index *idx, const struct kvc_key *key);
void index_totals(struct kvcfs_index *idx, uint64_t *bytes, uint64_t *count);
bool index_contains(struct kvcfs_index *idx, const struct kvc_key *key);
/* Every slab, pinned or not, in no particular order (score 0). g_free. */
struct eviction_candidate *index_all(struct kvcfs_index *idx, size_t *n);

/* Open handles pin a slab; the last publish pins it until the next one. */
void index_opened(struct kvcfs_index *idx, const struct kvc_key *key);
void index_closed(struct kvcfs_index *idx, const struct kvc_key *key);
void index_set_recent(struct kvcfs_index *idx, const struct kvc_key *key);
void index_clear_recent(struct kvcfs_index *idx);
/* A publish of key starts (true) or ends (false): pinned meanwhile. */
void index_publishing(struct kvcfs_index *idx, const struct kvc_key *key, bool starts);
bool index_is_pinned(struct kvcfs_index *idx, const struct kvc_key *key);

/*
 * The eviction order: every slab not pinned, lowest score first, where
 * score = last_used + hit_credit * log2(1 + hits). Ties: older creation,
 * then key bytes, so the order is a function of what the headers say and
 * is the same after a restart. g_free the result.
 */
struct eviction_candidate *index_eviction_order(struct kvcfs_index *idx, size_t *n);
double index_score(const struct kvcfs_index *idx, uint32_t hits, uint64_t last_used);

/* The header times of a slab of this size, if the index has it. */
bool index_times(struct kvcfs_index *idx, const struct kvc_key *key, uint64_t size,
		 uint64_t *created, uint64_t *last_used);

/* Remember that the file st describes was verified (st as of after our own
 * hit write), and ask whether a file is that one, unchanged. */
void index_set_verified(struct kvcfs_index *idx, const struct kvc_key *key,
			const struct stat *st);
bool index_is_verified(struct kvcfs_index *idx, const struct kvc_key *key,
		       const struct stat *st);

/* Replace the contents with a fresh scan's (a GHashTable built with
 * index_new_table), keeping open counts. */
GHashTable *index_new_table(void);
void index_table_put(GHashTable *t, const struct kvc_key *key, uint64_t size,
		     uint32_t hits, uint64_t last_used, uint64_t created);
void index_replace(struct kvcfs_index *idx, GHashTable *fresh);

/*
 * What a header says of a slab's use is its publisher's word: every value
 * the index takes passes through here. A hit count earns at most
 * INDEX_MAX_CREDITED_HITS (log2: 10 doublings of hit_credit), so no count
 * written by a publisher outranks real recency for long. A last use ahead
 * of now by more than INDEX_CLOCK_SKEW_SECONDS was written by no cache
 * (kvcfs writes "now" at each hit) and counts as never (0: evicted first);
 * within the skew it counts as now. A creation time ahead counts as now.
 */
#define INDEX_MAX_CREDITED_HITS 1023u
#define INDEX_CLOCK_SKEW_SECONDS 3600u
void index_distrust(uint32_t *hits, uint64_t *last_used, uint64_t *created);
/* A kvc_scan_fn: put a slab a scan found into idx (a struct kvcfs_index *). */
void index_put_scanned(void *idx, const struct kvc_key *key, const struct kvc_meta *meta);

#endif
