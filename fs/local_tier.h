/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_LOCAL_TIER_H
#define KVCFS_LOCAL_TIER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

#include "index.h"

struct kvcfs;
struct kdir;
struct staging;

/* The tier's copies of one directory's slabs: the root's in the tier's
 * directory itself, a subdirectory's in d-<dev>-<ino> there (named by the
 * backing directory's identity, which renames keep). Made when first
 * needed; lives as long as its directory (local_parts.c). */
struct tier_part {
	struct kvc_store *store;
	struct kvcfs_index index;  /* its own lock, a leaf (kvcfs.h) */
};

/*
 * The host-local tier (-o local=DIR): a second store of copies of slabs in
 * the shared backing root, with its own index and budget. The backing root
 * stays the truth of what exists; the tier only decides which file an open
 * of a slab serves. The design and the staleness bound are in
 * docs/shared-roots.md ("Local tier").
 */
struct local_tier {
	/* Set at start-up, never changed: the root's copies. */
	struct tier_part root;
	/* Which part pins this mount's last kept publish: one over the tier
	 * (local_parts.c). Taken alone, then that part's index lock. */
	pthread_mutex_t recent_lock;
	struct tier_part *recent;  /* guarded by recent_lock */
	/* Lock-free counters (.kvcfs/metrics): */
	atomic_uint_fast64_t hits;          /* opens served from a local copy */
	atomic_uint_fast64_t fetches;       /* opens that copied from the backing root */
	atomic_uint_fast64_t fetched_bytes;
	atomic_uint_fast64_t evictions;     /* copies evicted for the local budget */
	atomic_uint_fast64_t dropped;       /* copies dropped: key gone, stale or corrupt */
	atomic_uint_fast64_t kept_published;/* publishes of this mount kept locally */
};

/* Which store an open serves from. */
struct tier_pick {
	struct kvc_store *store;     /* where the file behind fd is <key>.kvc */
	struct kvcfs_index *index;   /* the index that knows that store */
	bool local;                  /* a local copy */
	bool fetched;                /* copied by this open: verified while copied */
	struct stat source;          /* the backing root's file the bytes are of
				      * (itself, or what the local copy copies):
				      * the identity the key's inode serves */
};

/* Open the tier's store on fs->opts.local_dir, index it from headers, drop
 * copies whose key the backing root no longer has (after its own scan).
 * Nothing without -o local. -1 with a message on stderr. */
int local_tier_start(struct kvcfs *fs);
void local_tier_stop(struct kvcfs *fs);

/*
 * The file an open of key serves: fd, its state st and the pick. Opens the
 * backing root's <key>.kvc first (its absence is the answer, and the local
 * copy goes). With a tier: a local copy that matches it (same size, creation
 * time, payload length and CRC) is served; otherwise the slab is copied into
 * the tier and the copy served. refetch: ignore any local copy (it just
 * failed verification). Falls back to the backing root's file when the
 * copy cannot be made (the caller's verification then judges that file).
 */
int local_tier_open(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key, bool refetch,
		    int *fd, struct stat *st, struct tier_pick *pick, struct kvc_err *err);
/* A local copy failed verification: drop that file (only if still st). */
void local_tier_drop_corrupt(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			     const struct stat *st);
/* The directory has no slab of key (a lookup missed): drop its copy. */
void local_tier_key_gone(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key);
/* The store of dir's copies, if it has any (NULL: none). */
struct kvc_store *local_tier_store_of(struct kvcfs *fs, struct kdir *dir);

/* local_parts.c: each directory's part of the tier. */
/* dir's part, made if make and there is none yet; NULL without a tier (or
 * when it cannot be made: then no copy is kept). */
struct tier_part *local_part_of(struct kvcfs *fs, struct kdir *dir, bool make);
/* At start-up, after the tree is known: each d-<dev>-<ino> of a known
 * directory is indexed as its part; the others (directories gone since)
 * are emptied and removed. */
void local_parts_start(struct kvcfs *fs);
/* A directory's last reference went: its part is closed, and, when the
 * directory was removed, its copies and their directory go too. */
void local_part_free(struct kvcfs *fs, struct kdir *dir);
/* Every part now (the root's first), for eviction, reconcile, metrics;
 * each with its directory (NULL for the root's) referenced: free with
 * local_parts_free. */
struct local_part_ref {
	struct tier_part *part;
	struct kdir *dir;
};
GArray *local_parts_all(struct kvcfs *fs);
void local_parts_free(struct kvcfs *fs, GArray *parts);
/* The part's copy of key is this mount's last kept publish. */
void local_parts_set_recent(struct kvcfs *fs, struct tier_part *part, const struct kvc_key *key);
/* Keep the tier within local_size (the maintenance worker; nothing
 * without a tier). */
void local_tier_evict(struct kvcfs *fs);
/* After a rescan of the backing root: drop copies of keys it lacks. */
void local_tier_reconcile(struct kvcfs *fs);

/* A staging file's bytes mirrored into a local temp (the publish's copy). */
void local_tier_stage_begin(struct kvcfs *fs, struct staging *stage);
void local_tier_stage_write(struct staging *stage, uint64_t off, const void *buf, size_t len);
void local_tier_stage_truncate(struct staging *stage, uint64_t size);
/* The stage was published to the backing root as key (ours: true when its
 * bytes are the slab there now): keep them as the local copy. stage->lock
 * held exclusive. */
void local_tier_stage_published(struct kvcfs *fs, struct staging *stage,
				const struct kvc_key *key, bool ours);
void local_tier_stage_end(struct kvcfs *fs, struct staging *stage);

/* The tier's lines of .kvcfs/metrics (nothing without a tier). */
void local_tier_metrics(struct kvcfs *fs, GString *s);

#endif
