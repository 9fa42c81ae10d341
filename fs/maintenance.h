/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_MAINTENANCE_H
#define KVCFS_MAINTENANCE_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <glib.h>
#include <pthread.h>
#include <stdbool.h>

struct kvcfs;
struct handle;

/*
 * The background worker: everything that keeps the cache in shape but is
 * nobody's request. A request only asks for it (a flag under the worker's
 * lock, then a signal) and returns; the worker does it:
 *   - eviction, when a publish or a fetch took a budget over (evict.c);
 *   - rescans of the backing root, every rescan_interval seconds and when
 *     the mount's owner opens .kvcfs/rescan (that open is answered by the
 *     worker, after the rescan it asked for: no request thread waits);
 *   - the local tier's reconcile after each rescan.
 * Requests that come while the worker is busy are coalesced: one pass
 * serves all of them.
 */
struct kvcfs_maintenance {
	pthread_t thread;          /* valid while running */
	bool running;              /* set and cleared by the main thread only */
	/* A leaf: nothing else is taken while it is held, and nothing blocks
	 * under it. */
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* with lock: there is work, or stop */
	bool stop;                 /* lock */
	bool evict_wanted;         /* lock: a budget may be exceeded */
	bool busy;                 /* lock: a pass is under way */
	GQueue *verify_wanted;     /* lock: struct verify_request *, slabs a publish
				    * adopted after a header check: verified
				    * here, and dropped if corrupt */
	GSList *rescan_waiters;    /* lock: struct rescan_waiter, opens of
				    * .kvcfs/rescan to answer after a rescan
				    * that starts after they came */
};

/* worker.c: start the worker; stop it (the opens still waiting get
 * ESHUTDOWN) and wait for it. */
int maintenance_start(struct kvcfs *fs);
void maintenance_stop(struct kvcfs *fs);
/* A budget may be exceeded: evict (backing root and local tier) soon. */
void maintenance_want_evict(struct kvcfs *fs);
/* Answer the open req of .kvcfs/rescan (handle h, fi copied) after the
 * next rescan and eviction pass: the worker replies (0). -ESHUTDOWN when
 * the worker is stopping: the caller answers and releases h. */
int maintenance_rescan_and_reply(struct kvcfs *fs, fuse_req_t req, struct handle *h,
				 const struct fuse_file_info *fi);
/* A publish kept the slab of key already there after checking only its
 * head: verify all of it soon (bounded: beyond MAINTENANCE_VERIFY_MAX
 * waiting, the next open's verification is the one that counts). */
#define MAINTENANCE_VERIFY_MAX 256
struct kdir;
void maintenance_want_verify(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key);
/* Work asked for and not yet done (kvcfs_maintenance_pending). */
bool maintenance_pending(struct kvcfs *fs);
/* One rescan now, on the caller's thread (the worker, or start-up before
 * serving): re-read the backing root into the index, reconcile the local
 * tier. Returns 0 or -errno. */
int rescan_now(struct kvcfs *fs);

#endif
