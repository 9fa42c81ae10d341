/* SPDX-License-Identifier: MIT */
/* Files being written: the stage and its publishing (stage.c, stage_writers.c, stage_publish.c). Included
 * through kvcfs.h, which declares what it uses. */
#ifndef KVCFS_STAGE_H
#define KVCFS_STAGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

/*
 * A file being written. Its bytes live in a writer-unique temp in the
 * backing root. The rwlock lets writes run in parallel while a publish,
 * which hands the temp's inode over to the slab name, excludes them.
 * The lifecycle is in stage_writers.c.
 */
struct staging {
	pthread_rwlock_t lock;
	/* Guarded by lock (shared for writes into the temp, exclusive for
	 * publish and discard): */
	struct kvc_tmp tmp;            /* fd -1 once discarded */
	bool published;                /* the temp is now a slab: no more writes */
	struct kvc_key published_key;  /* the slab it became */
	char *error;                   /* why the last publish failed (xattr) */
	bool refused;                  /* the last publish failed on the content */
	bool prepared_valid;           /* synced and verified at its last close,
					* as the temp was then (prepared): */
	struct stat prepared;
	bool prepared_refused;         /* refused on its content at its last
					* close, as the temp was then (prepared):
					* prepared_err says why */
	struct kvc_err prepared_err;
	bool seal;                     /* user.kvcfs.seal: fill in the payload's
					* CRC at publish (stage_publish.c) */
	bool adopted;                  /* its publish kept another valid slab of
					* the key: the file is not the slab's */
	int published_fd;              /* published by link(2): the slab's file,
					* which the staging name still names;
					* -1 otherwise */

	/* Set before the stage is visible, never changed: */
	struct kdir *dir;              /* the directory its temp and name are
					* in (referenced) */
	struct kvc_key target;         /* the key to publish to on close */
	uid_t quota_uid;               /* whose share of staging files it is */

	/* Counted in quota_uid's share of staging files (staging_quota.c)
	 * until its temp is discarded or it is freed, whichever is first. */
	atomic_bool quota_counted;

	/* Guarded by kvcfs.lock: */
	bool publish_on_close;         /* created as <key>.kvc: publish at close
					* (counted in kvcfs.creating meanwhile) */
	bool close_refused;            /* a close's try was refused and said so */
	bool link_counted;             /* its name is in kvcfs.links (links.c): */
	struct kvc_key link_key;
	dev_t link_dev;
	ino_t link_file;
	unsigned openers;              /* open handles of the named file (not
					* private writers): while any, a publish
					* keeps the file open for their reads */
	unsigned writers;              /* of those, with write access */
	unsigned flushed_writers;      /* of those, how many were closed once */
	mode_t mode;
	uid_t uid;
	gid_t gid;

	/* The same bytes in a temp of the local tier (-o local), so that a
	 * publish keeps a copy there without reading the backing root back.
	 * fd -1: none (no tier, or a write there failed). Guarded by lock
	 * like tmp; local_tier.c. */
	struct kvc_tmp local_tmp;
	struct tier_part *local_part;  /* the tier's part of dir; set at
					* creation (lives as long as dir) */

	/* Lock-free: */
	atomic_bool bypass;            /* written by the kernel directly
					* (passthrough): no write is seen here */
	atomic_bool local_failed;      /* a write of local_tmp failed: no copy */
	atomic_bool replacing;         /* writes go here; false for a writer
					* over a slab until it truncates (until
					* then a write would be one into the slab:
					* EPERM) */
	atomic_bool dirty;             /* written since the temp was last checked */
	atomic_int write_error;        /* errno of a failed write, for close() */
};

/* stage.c, stage_writers.c, stage_publish.c (staging.c before): the
 * lifecycle of a file being written, from create to publish or discard
 * (the state diagram is at the top of stage_writers.c). The stage and its
 * bytes are stage.c; create, open, close and release of its handles
 * stage_writers.c; publishing, and rename, link and unlink of a staging
 * name, stage_publish.c. */
struct staging *staging_new(struct kdir *dir);
void staging_free(struct kvcfs *fs, struct staging *stage);
/* At exit, after the session: every stage still held by a node (open or
 * unpublished at unmount) is dropped; a half-written slab is never
 * published by accident. */
void staging_free_all(struct kvcfs *fs);
/* A new staging file (or <key>.kvc written directly) and its open: e and
 * *h for the reply to create (the node has the lookup and the open the
 * reply gives the kernel); -errno and nothing to undo. */
int staging_create(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, const char *name,
		   mode_t mode, struct fuse_file_info *fi, struct fuse_entry_param *e,
		   struct handle **h);
/* Open of a staging node (v->kind == NODE_STAGING) for any access. */
int staging_open(struct kvcfs *fs, fuse_req_t req, struct node *node,
		 const struct node_view *v, struct handle *h, struct fuse_file_info *fi);
/* A writer of its own for a slab's key (O_TRUNC over a published slab). */
int staging_open_private(struct kvcfs *fs, fuse_req_t req, const struct kvc_key *key,
			 struct node *over, struct handle *h, struct fuse_file_info *fi);
ssize_t staging_read(struct handle *h, void *buf, size_t size, off_t off);
ssize_t staging_write(struct handle *h, const void *buf, size_t size, off_t off);
int staging_flush(struct kvcfs *fs, struct handle *h);
int staging_fsync(struct handle *h, int datasync);
/* Release of a handle that has a stage; before the node's open count
 * drops. */
void staging_release(struct kvcfs *fs, struct handle *h);
/* setattr of a handle's stage (ftruncate, futimens...), or of the node's. */
int staging_setattr(struct kvcfs *fs, struct staging *stage, const struct stat *attr,
		    int to_set);
int staging_attr(struct kvcfs *fs, struct staging *stage, struct stat *st);
/* A truncate of node with no handle: arms the writers over it that
 * opened without O_TRUNC in the open (1), or 0 when there are none. */
int staging_arm_writers(struct kvcfs *fs, struct node *node, const struct stat *attr,
			int to_set);
/* rename/unlink of name when it is a staging file: -ENOENT when it is not. */
int staging_rename(struct kvcfs *fs, struct kdir *dir, const char *name, const char *newname,
		   unsigned flags, uid_t who);
int staging_unlink(struct kvcfs *fs, struct kdir *dir, const char *name);
/* Is name a staging file of dir? Takes fs->lock. */
bool staging_is_named(struct kvcfs *fs, struct kdir *dir, const char *name);
/* link(2) of the staging node ino to newname: publishes it as rename does,
 * but the staging name stays. *slab: the slab's node (nlookup++) for the
 * reply. -EEXIST: a valid slab of the key is there, nothing changed. */
int staging_link(struct kvcfs *fs, fuse_ino_t ino, struct kdir *newdir, const char *newname,
		 struct node **slab, uid_t who);
/* user.kvcfs.seal on a stage: set (on) or clear it; flags as setxattr's. */
int staging_request_seal(struct staging *stage, bool on, int flags);
bool staging_seal_requested(struct staging *stage);
/* Can a writer of the stage still change its temp through the kernel
 * (passthrough), so that a publish must copy? stage->lock held. */
bool staging_kernel_may_write(struct kvcfs *fs, struct staging *stage);
/* Is this stage a <key>.kvc waiting for its close (no name yet)? */
bool staging_in_flight(struct kvcfs *fs, struct staging *stage);
/* A publish of stage under name (NULL: its target key's name), asked by
 * who, failed with rc: recorded and logged with the reason (refusals.c). rc >= 0 or
 * -EEXIST: nothing. Takes the stage's lock and fs->lock in turn. */
void stage_report_refusal(struct kvcfs *fs, struct staging *stage, uid_t who, const char *name,
			  const struct kvc_key *key, int rc);
/* Does the key's name hold the very file the stage published (not another
 * writer's slab its publish kept, nor one published after it was removed)?
 * Takes the stage's lock. */
bool staging_names_the_slab(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key);
/* stage_alive.c: every named staging file's temp marked alive (its atime
 * set to now) for other hosts' sweeps; by the worker. */
void staging_keep_alive(struct kvcfs *fs);
/* Will the stage's file be read after its publish: by a close still
 * publishing it (a dup may read on) or by a handle open on it? */
bool staging_read_after_publish(struct kvcfs *fs, struct staging *stage);
/* Is a writer of this mount creating <key>.kvc right now? fs->lock held. */
bool staging_creating(struct kvcfs *fs, const struct kvc_key *key);

/* stage_publish.c: the mount's side of the pipeline (metrics, index, errors).
 * PUBLISH_FINAL: a refusal is the last word (rename, link), so it is
 * counted as one. PUBLISH_AS_LINK: a valid slab already there is not
 * adopted (-EEXIST, the stage stays), and the stage keeps the published
 * file open (published_fd) for its name. A stage asked to be sealed is
 * sealed first. */
#define PUBLISH_FINAL 1u
#define PUBLISH_AS_LINK 2u
/* PUBLISH_NO_WRITER: a named stage that the kernel writes itself is
 * published only if no writer has it open once the publish holds the
 * stage's lock (an open that came after the caller looked); else nothing
 * is done and the result is PUBLISH_WRITER_CAME: publish a copy instead. */
#define PUBLISH_NO_WRITER 4u
/* PUBLISH_EXCLUSIVE: rename(2) with RENAME_NOREPLACE: anything already
 * under <key>.kvc is -EEXIST (link(2) decides), nothing is adopted or
 * replaced. */
#define PUBLISH_EXCLUSIVE 8u
#define PUBLISH_WRITER_CAME 1
int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  unsigned flags);

#endif
