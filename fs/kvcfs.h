/* SPDX-License-Identifier: MIT */
/* kvcfs: the state every part of the daemon shares, and its locks. */
#ifndef KVCFS_H
#define KVCFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <glib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <kvc/kvc.h>

#include "evict.h"
#include "index.h"
#include "local_tier.h"
#include "maintenance.h"
#include "metrics.h"
#include "notify.h"
#include "options.h"

struct node;
struct kdir;
struct staging;
struct handle;

/*
 * Locks: the one list, outermost first. A lock may be taken while the
 * locks above it on its line are held, never the other way round. "I/O"
 * says whether blocking I/O (on the backing root, which may be a network
 * filesystem) may happen while it is held.
 *
 *   evict.c evicting (mutex; the worker only, and start-up)       I/O
 *     -> the leaves below
 *   handle.verify_lock (mutex, per open slab: its verified state;
 *        verified.c)                                               I/O
 *     -> key_lock.lock (rwlock, per key: hit writes exclusive, the
 *        verifications they must not overlap shared; hits.c,
 *        open_slab.c)                                              I/O
 *       -> the leaves below
 *   staging.lock (rwlock, per stage: shared by writes into the
 *        temp, exclusive by a publish, a prepare or a discard)     I/O
 *     -> the leaves below
 *
 *   Leaves (nothing is taken under them, nothing blocks under them):
 *     kvcfs.lock (fs->lock: the node tables, struct node, the writer
 *        accounting of struct staging, the directories' names and
 *        tables, struct kdir). What it drops is freed after
 *        it (fs_unlock). The one kernel call under it is passthrough's
 *        backing-file registration (an ioctl that does no I/O, which
 *        must be atomic with the decision it belongs to). Debug builds
 *        check with fs_assert_unlocked() that no publish or stage free
 *        runs under it.
 *     kvcfs.quota_lock (staging_quota.c), the one lock taken under
 *        fs->lock: a staging name's share is given back as the name
 *        goes. Nothing is taken under it.
 *     kvcfs.recent_lock (dirs.c: which directory pins the last
 *        publish), the one lock an index lock is taken under
 *     kvcfs_index.lock (each directory's index, and the local
 *        tier's: index.c; never two at once)
 *     key_locks_lock (the table of key locks: hits.c)
 *     kvcfs_maintenance.lock (the worker's requests: maintenance.c)
 *     kvcfs_notifier.lock (the notifier's queue: notify.c)
 *     libkvc's own: the CRC tracker's mutex (under staging.lock shared,
 *        by writes), the store's dropper lock, the writeback queue's lock
 *
 * No request holds a lock while it waits for another request: no handler
 * sleeps, waits for a RELEASE, or sends the kernel a notification (the
 * notifier's thread does). So a slow publish stalls only requests on the
 * file being published (and, in the kernel, others that need the mount's
 * directory while the rename or link holds it).
 */

#include "access.h"

struct kvcfs {
	struct kvc_store *store;   /* the backing root's (root_dir's) */
	struct kvcfs_options opts;
	struct kvcfs_access access;
	bool verbose;              /* foreground or debug: say what start-up found */
	struct kvcfs_metrics metrics;
	struct kvcfs_notifier notifier;
	struct kvcfs_maintenance maintenance;
	/* Set in op_init, before any other request, and only read after: */
	bool passthrough;          /* the kernel may read/write backing files */
	const char *passthrough_why; /* why not, when not */
	struct local_tier *local;  /* -o local; NULL without. Set before
				    * serving, never changed (local_tier.h) */

	/* Guards the tables below, struct node, the fs->lock fields of
	 * struct staging and of struct kdir; see the lock order above. */
	pthread_mutex_t lock;
	GHashTable *nodes;         /* ino → node */
	struct kdir *root_dir;     /* set before serving, never changed */
	GHashTable *dirs;          /* backing (dev, ino) → struct kdir, every
				    * directory known (dirs.c); holds a ref */
	GPtrArray *dirs_gone;      /* struct kdir * whose last reference went
				    * under lock, freed by fs_unlock */
	/* The directory whose index pins this mount's last publish, and its
	 * lock (dirs_set_recent): taken alone, then that index's lock. */
	pthread_mutex_t recent_lock;
	struct kdir *recent_dir;   /* guarded by recent_lock; referenced */
	GHashTable *creating;      /* key → count of this mount's writers of
				    * <key>.kvc that will publish at close:
				    * a miss of such a key is not cached */
	fuse_ino_t next_ino;
	GPtrArray *stages_gone;    /* struct staging * dropped under lock, freed
				    * by fs_unlock after it (fs_lock.c) */
	/* staging_free; set before serving, never changed. */
	void (*free_stage)(struct kvcfs *fs, struct staging *stage);
	GArray *orphan_backing_ids; /* int: passthrough ids to close (passthrough.c) */
	/* Open and not yet released: the kernel drops the RELEASEs still
	 * queued when the mount goes, so these are released at exit
	 * (handles_release_lost). */
	GHashTable *open_files;    /* struct handle * */
	GHashTable *open_dirs;     /* GPtrArray * of an opendir → its opener's
				    * uid (GUINT_TO_POINTER) */
	/* Descriptors held for users (staging_quota.c): named staging files
	 * and open handles, all together and per user. A leaf under fs->lock
	 * (a staging name is given back as it goes, under fs->lock). */
	pthread_mutex_t quota_lock;
	unsigned fds_in_use;       /* guarded by quota_lock */
	GHashTable *fd_users;      /* guarded by quota_lock: uid (GUINT_TO_POINTER)
				    * → struct fd_user */
	struct kvcfs_refusals *refusals; /* its own lock, a leaf (refusals.c) */
	GHashTable *links;         /* key → GArray of the files staging names
				    * still name after link(2) (links.c) */
	/* Their bounds: set before serving, never changed. */
	unsigned fds_max_total, staging_max_per_user, opens_max_per_user;

	/* Per-key locks that keep hit writes apart from each other and from
	 * verifications (hits.c): key → struct key_lock. A leaf lock. */
	pthread_mutex_t key_locks_lock;
	GHashTable *key_locks;
};

static inline struct kvcfs *kvcfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* refusals.c: the recent refused publishes, for .kvcfs/refusals. */
struct kvcfs_refusals;
void refusals_init(struct kvcfs *fs);
void refusals_destroy(struct kvcfs *fs);
/* One refused publish: kept, and logged (rate-limited). name NULL: the
 * key's own name. */
void refusals_record(struct kvcfs *fs, uid_t uid, const char *name, const struct kvc_key *key,
		     int err, const char *reason);
/* The lines reader may see (its own; all for root and the daemon's user). */
char *refusals_render(struct kvcfs *fs, uid_t reader, size_t *len);

/* log.c: where messages go (stderr in the foreground, syslog detached). */
void log_init(void);
void log_detached(bool detached);
/* A line a user can cause, rate-limited. */
void log_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* links.c: staging names that name a slab after link(2). */
void links_init(struct kvcfs *fs);
void links_destroy(struct kvcfs *fs);
/* The staging name of stage now names file, the slab of key. fs->lock held. */
void links_add(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
	       const struct stat *file);
/* Its staging name is gone (or stage is NULL: nothing). fs->lock held. */
void links_remove(struct kvcfs *fs, struct staging *stage);
/* How many staging names name file as the slab of key. Takes fs->lock. */
unsigned links_to(struct kvcfs *fs, const struct kvc_key *key, const struct stat *file);

/* staging_quota.c: the descriptors users make the daemon hold. */
void staging_quota_init(struct kvcfs *fs);
void staging_quota_destroy(struct kvcfs *fs);
/* Count one more staging file of uid: 0, or -EDQUOT (that user's share is
 * used up) or -ENFILE (everyone's is). Takes fs->quota_lock (also fine
 * under fs->lock). */
int staging_quota_take(struct kvcfs *fs, uid_t uid);
/* The stage no longer counts in its creator's staging share: it keeps no
 * descriptor, or has no name left (its handles are counted instead). Once;
 * any later call does nothing. Fine under fs->lock. */
void staging_quota_release(struct kvcfs *fs, struct staging *stage);
/* The same for an open handle: -EMFILE beyond the user's share. */
int open_quota_take(struct kvcfs *fs, uid_t uid);
void open_quota_give(struct kvcfs *fs, uid_t uid);
/* Staging files that exist now (all users). */
unsigned staging_files_in_use(struct kvcfs *fs);

/* fs_lock.c: fs->lock, and what is freed once it is dropped. */
void fs_lock(struct kvcfs *fs);
void fs_unlock(struct kvcfs *fs);
/* Debug builds: abort if this thread holds fs->lock. */
void fs_assert_unlocked(void);

#include "nodes.h"
#include "dirs.h"
#include "stage.h"
#include "handle.h"
#include "ops.h"

#endif
