/* SPDX-License-Identifier: MIT */
/* kvcfs: state shared by the FUSE request handlers. */
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

/* Fixed inodes; everything else is numbered from INO_FIRST_DYNAMIC. */
#define INO_ROOT FUSE_ROOT_ID
#define INO_PAYLOAD_DIR 2
#define INO_META_DIR 3
#define INO_METRICS 4
#define INO_RESCAN 5
#define INO_FIRST_DYNAMIC 16

#define PAYLOAD_DIR_NAME "payload"
#define META_DIR_NAME ".kvcfs"
#define METRICS_NAME "metrics"
#define RESCAN_NAME "rescan"

enum node_kind {
	NODE_ROOT,
	NODE_PAYLOAD_DIR,
	NODE_META_DIR,
	NODE_METRICS,
	NODE_RESCAN,   /* .kvcfs/rescan: reading it re-reads the backing root */
	NODE_SLAB,     /* <key>.kvc, published in the backing root */
	NODE_PAYLOAD,  /* payload/<key> */
	NODE_STAGING,  /* a file being written in this mount */
};

/*
 * Locks, and the order they are taken in (outermost first):
 *
 *   staging.lock  (rwlock, one per staging file)
 *     -> kvcfs_index.lock, key_locks_lock (leaves)
 *     -> kvcfs.lock                       (leaf)
 *   handle.verify_lock -> key_lock.lock (rwlock, one per key in use)
 *     -> kvcfs_index.lock
 *
 * fs->lock is a leaf: nothing blocks while holding it, and no request ever
 * waits for a staging file's lock (which a publish holds across fdatasync,
 * link and a directory fsync) while holding it, so a slow publish stalls
 * only requests on the file being published. (fs->handle_released is
 * waited on with fs->lock, which the wait releases.) handle.verify_lock is
 * taken alone. The notifier's queue and the index lock are leaves of their
 * own.
 */

/*
 * A file being written. Its bytes live in a writer-unique temp in the
 * backing root. The rwlock lets writes run in parallel while a publish,
 * which hands the temp's inode over to the slab name, excludes them.
 * The lifecycle is in staging.c.
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
	bool seal;                     /* user.kvcfs.seal: fill in the payload's
					* CRC at publish (staging.c) */
	int published_fd;              /* published by link(2): the slab's file,
					* which the staging name still names;
					* -1 otherwise */

	/* Set before the stage is visible, never changed: */
	struct kvc_key target;         /* the key to publish to on close */

	/* Guarded by kvcfs.lock: */
	bool publish_on_close;         /* created as <key>.kvc: publish at close
					* (counted in kvcfs.creating meanwhile) */
	unsigned writers;              /* open handles with write access */
	unsigned flushed_writers;      /* of those, how many were closed once */
	mode_t mode;
	uid_t uid;
	gid_t gid;

	/* The same bytes in a temp of the local tier (-o local), so that a
	 * publish keeps a copy there without reading the backing root back.
	 * fd -1: none (no tier, or a write there failed). Guarded by lock
	 * like tmp; local_tier.c. */
	struct kvc_tmp local_tmp;
	struct kvc_store *local_store; /* the tier's store; set at creation */

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

/* An inode the kernel knows. ino never changes; every other field is
 * guarded by kvcfs.lock (read them through node_held's view). */
struct node {
	fuse_ino_t ino;
	enum node_kind kind;       /* NODE_STAGING becomes NODE_SLAB on publish */
	uint64_t nlookup;          /* kernel references */
	unsigned open_count;       /* open handles */
	bool storing;              /* an open is filling its page cache */
	unsigned private_writers;  /* O_TRUNC writers of the key open on this
				    * inode (their bytes go elsewhere, but the
				    * kernel truncated its idea of this inode) */
	int backing_id;            /* passthrough: the kernel's id of the file
				    * behind this inode; 0: none */
	unsigned backing_refs;     /* handles open in passthrough */
	unsigned direct_opens;     /* handles on the daemon's path while
				    * passthrough is on (never both kinds) */
	unsigned backing_closing;  /* of backing_refs, those closed once:
				    * their RELEASE is on its way, unless a
				    * dup lives on (release_wait.c) */
	bool backing_writable;     /* registered with a read-write descriptor */
	dev_t backing_dev;         /* which file that is */
	ino_t backing_ino;
	dev_t served_dev;          /* NODE_SLAB, NODE_PAYLOAD: the file its */
	ino_t served_ino;          /* opens read (0: none yet; open_slab.c) */
	off_t served_size;
	GSList *unarmed_writers;   /* their stages still waiting for the
				    * truncate of open(O_TRUNC) (staging.c) */
	bool cache_suspect;        /* the kernel's size and pages of this inode
				    * may not be the slab's: a writer
				    * truncated it, or it was a staging file */
	struct kvc_key key;        /* NODE_SLAB, NODE_PAYLOAD */
	char *name;                /* NODE_STAGING: name in the root; NULL when
				    * unnamed (unlinked, or created as
				    * <key>.kvc: invisible until published) */
	struct staging *stage;     /* NODE_STAGING, and a slab that was one;
				    * lives as long as the node */
};

/* What a request needs of a node, read once under kvcfs.lock. */
struct node_view {
	enum node_kind kind;
	struct kvc_key key;
	struct staging *stage;
};

/* Who may do what (access.c). Set before serving; chown_temps may be
 * turned off once, lock-free. */
struct kvcfs_access {
	bool kernel_checks;        /* default_permissions: the kernel checks
				    * modes first; kvcfs re-checks only
				    * changes to the root's names */
	atomic_bool chown_temps;   /* running as root: temps (so slabs) are
				    * chowned to their creator */
};

struct kvcfs {
	struct kvc_store *store;
	struct kvcfs_options opts;
	struct kvcfs_access access;
	bool verbose;              /* foreground or debug: say what start-up found */
	struct kvcfs_metrics metrics;
	struct kvcfs_index index;
	struct kvcfs_notifier notifier;
	struct kvcfs_maintenance maintenance;
	/* Set in op_init, before any other request, and only read after: */
	bool passthrough;          /* the kernel may read/write backing files */
	const char *passthrough_why; /* why not, when not */
	struct local_tier *local;  /* -o local; NULL without. Set before
				    * serving, never changed (local_tier.h) */

	/* Guards the tables below, struct node and the fs->lock fields of
	 * struct staging; see the lock order above. */
	pthread_mutex_t lock;
	GHashTable *nodes;         /* ino → node */
	GHashTable *staging;       /* name → node, this mount's named staging files */
	GHashTable *slab_nodes;    /* key → NODE_SLAB node, so a key keeps its inode */
	GHashTable *payload_nodes; /* key → NODE_PAYLOAD node */
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
	GHashTable *open_dirs;     /* GPtrArray * of an opendir */

	/* Per-key locks that keep hit writes apart from each other and from
	 * verifications (hits.c): key → struct key_lock. A leaf lock. */
	pthread_mutex_t key_locks_lock;
	GHashTable *key_locks;
};

/* An open file. Owned by the request thread that serves it: the kernel
 * sends no two requests for one handle that change these fields at once,
 * except reads, which share the verified state under verify_lock. */
struct handle {
	struct node *node;
	int fd;                    /* slab or payload view: the verified file */
	uint64_t base;             /* payload view: where the payload starts */
	uint64_t length;           /* payload view: its length */
	struct staging *stage;     /* writing: where the bytes go */
	bool owns_stage;           /* stage exists only for this handle */
	bool writable;
	bool header_writes;        /* O_RDWR of a slab: writes may change the
				    * hit count and last-used time only */
	bool flushed;              /* close() was seen once for this handle */
	bool pins;                 /* holds an index pin on key (open slab) */
	bool passthrough;          /* counted in node->backing_refs */
	bool direct_counted;       /* counted in node->direct_opens */
	bool closing;              /* passthrough: closed once, counted in
				    * node->backing_closing */
	struct kvcfs_index *tier_index; /* open slab: the index of the store fd
				    * is in (fs->index, or the local tier's,
				    * which the handle then pins too) */
	struct kvc_key key;
	pthread_mutex_t verify_lock;
	bool verify_lock_live;
	struct stat verified;      /* guarded by verify_lock: the backing file
				    * as it was when its bytes were verified */
	char *text;                /* metrics, rescan: text made at open */
	size_t text_len;
};

/* The same file, unchanged: identity, size, and both change times (any
 * write moves them, also one that bypasses the daemon). */
static inline bool same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static inline struct kvcfs *kvcfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* nodes.c */
void nodes_init(struct kvcfs *fs);
void nodes_destroy(struct kvcfs *fs);
struct node *node_get(struct kvcfs *fs, fuse_ino_t ino);     /* lock held */
struct node *node_new(struct kvcfs *fs, enum node_kind kind); /* lock held */
/* The node of an inode the kernel is asking about: it holds a reference
 * while it asks, so the node lives for the request. Takes the lock and
 * fills view (if non-NULL) with what may change meanwhile. */
struct node *node_held(struct kvcfs *fs, fuse_ino_t ino, struct node_view *view);
/* The node of a slab or payload view, made if needed; nlookup++. */
struct node *node_for_key(struct kvcfs *fs, enum node_kind kind,
			  const struct kvc_key *key);                /* lock held */
/* Turn a staging node whose bytes were just published into a slab node. */
void node_became_slab(struct kvcfs *fs, struct node *node,
		      const struct kvc_key *key);                  /* lock held */
/* A slab or payload node stops being its key's node (the next lookup of
 * the key makes a new one); nothing if another node is. fs->lock held. */
void node_leave_key(struct kvcfs *fs, struct node *node);
void node_unref(struct kvcfs *fs, struct node *node, uint64_t nlookup,
		unsigned opens);                               /* lock held */

/* stage.c, stage_writers.c, stage_publish.c (staging.c before): the
 * lifecycle of a file being written, from create to publish or discard
 * (the state diagram is at the top of stage_writers.c). The stage and its
 * bytes are stage.c; create, open, close and release of its handles
 * stage_writers.c; publishing, and rename, link and unlink of a staging
 * name, stage_publish.c. */
struct staging *staging_new(void);
void staging_free(struct kvcfs *fs, struct staging *stage);
/* At exit, after the session: every stage still held by a node (open or
 * unpublished at unmount) is dropped; a half-written slab is never
 * published by accident. */
void staging_free_all(struct kvcfs *fs);
/* A new staging file (or <key>.kvc written directly) and its open: e and
 * *h for the reply to create (the node has the lookup and the open the
 * reply gives the kernel); -errno and nothing to undo. */
int staging_create(struct kvcfs *fs, fuse_req_t req, const char *name, mode_t mode,
		   struct fuse_file_info *fi, struct fuse_entry_param *e, struct handle **h);
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
int staging_rename(struct kvcfs *fs, const char *name, const char *newname,
		   unsigned flags);
int staging_unlink(struct kvcfs *fs, const char *name);
/* link(2) of the staging node ino to newname: publishes it as rename does,
 * but the staging name stays. *slab: the slab's node (nlookup++) for the
 * reply. -EEXIST: a valid slab of the key is there, nothing changed. */
int staging_link(struct kvcfs *fs, fuse_ino_t ino, const char *newname, struct node **slab);
/* user.kvcfs.seal on a stage: set (on) or clear it; flags as setxattr's. */
int staging_request_seal(struct staging *stage, bool on, int flags);
bool staging_seal_requested(struct staging *stage);
/* Can a writer of the stage still change its temp through the kernel
 * (passthrough), so that a publish must copy? stage->lock held. */
bool staging_kernel_may_write(struct kvcfs *fs, struct staging *stage);
/* Is this stage a <key>.kvc waiting for its close (no name yet)? */
bool staging_in_flight(struct kvcfs *fs, struct staging *stage);
/* Is a writer of this mount creating <key>.kvc right now? fs->lock held. */
bool staging_creating(struct kvcfs *fs, const struct kvc_key *key);

/* access.c: Unix permissions against the caller's credentials; each
 * returns 0, or -EACCES, -EPERM (sticky bit, ownership) or -EROFS. */
void access_init(struct kvcfs *fs);           /* before serving; says what is off */
/* Always checked (the kernel's view may be stale): a new name in the root,
 * a removed one, and a rename (its target counts as removed if it exists). */
int access_may_add(struct kvcfs *fs, fuse_req_t req);
int access_may_remove(struct kvcfs *fs, fuse_req_t req, const char *name);
int access_may_rename(struct kvcfs *fs, fuse_req_t req, const char *name,
		      const char *newname);
/* Checked only without default_permissions (the kernel checks them with). */
int access_may_lookup(struct kvcfs *fs, fuse_req_t req, fuse_ino_t parent);
int access_may_opendir(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino);
int access_may_open(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, int flags);
int access_may_setattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino,
		       const struct stat *attr, int to_set);
int access_may_xattr(struct kvcfs *fs, fuse_req_t req, fuse_ino_t ino, bool set);
/* A new stage's owner (its creator; the root's group if it is set-group-ID),
 * and its temp chowned to match when running as root. */
void stage_set_owner(struct kvcfs *fs, fuse_req_t req, struct staging *stage);
/* After a chown of a staging file: its temp follows (stage lock held). */
void stage_follow_chown(struct kvcfs *fs, struct staging *stage);
void op_access(fuse_req_t req, fuse_ino_t ino, int mask);

/* attr.c */
/* What stat shows for node, and how long the kernel may cache it. */
int attr_of_node(struct kvcfs *fs, struct node *node, struct stat *st, double *timeout);
int attr_of_slab(struct kvcfs *fs, const struct kvc_key *key, bool payload_view,
		 struct stat *st);

/* names.c */
enum name_class {
	NAME_INVALID,
	NAME_RESERVED,   /* payload, .kvcfs */
	NAME_SLAB,       /* <64 lowercase hex>.kvc */
	NAME_STAGING,
};
enum name_class classify_name(const char *name, struct kvc_key *key, int *err);

/* Request handlers, one file per concern. */
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* handle.c: one way to make, answer and give back an open handle. */
struct handle *handle_new(struct kvcfs *fs, struct node *node); /* open_count++ */
/* Give back what the open took; req: the RELEASE's, the failed open's, or
 * NULL when there is none (a reply that failed, exit). */
void handle_release(struct kvcfs *fs, struct handle *h, fuse_req_t req);
void handle_reply_open(fuse_req_t req, struct kvcfs *fs, struct handle *h,
		       struct fuse_file_info *fi);
/* After the session ended: the opens whose RELEASE never came. */
void handles_release_lost(struct kvcfs *fs);

/* fs_lock.c: fs->lock, and what is freed once it is dropped. */
void fs_lock(struct kvcfs *fs);
void fs_unlock(struct kvcfs *fs);
/* Debug builds: abort if this thread holds fs->lock. */
void fs_assert_unlocked(void);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void op_statfs(fuse_req_t req, fuse_ino_t ino);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* forget.c: forget the kernel's cached entries for a slab that is gone,
 * or (after a publish) negative entries for one that appeared. */
enum forget_context {
	FORGET_FROM_ROOT_REQUEST,  /* answering unlink in the root */
	FORGET_FROM_FILE_REQUEST,  /* answering open: no directory is locked */
	FORGET_LATER,              /* anywhere else (eviction): queued */
};
void forget_slab_entries(struct kvcfs *fs, const struct kvc_key *key, enum forget_context from);

/* hits.c: count one hit of a slab, persisted in its header; exact among
 * the opens of this mount. fd is the open slab, <key>.kvc in store (the
 * backing root's or the local tier's); *count gets the new count.
 * hits_hold_off/hits_resume bracket a verification of key: no hit write of
 * this mount changes the file meanwhile. */
struct key_lock;
void hits_init(struct kvcfs *fs);
void hits_destroy(struct kvcfs *fs);
struct key_lock *hits_hold_off(struct kvcfs *fs, const struct kvc_key *key);
void hits_resume(struct kvcfs *fs, struct key_lock *kl);
int hits_count_one(struct kvcfs *fs, struct kvc_store *store, const struct kvc_key *key,
		   int fd, uint64_t now, uint32_t *count);
/* A program's own write of the header's hit count (offset 12) or last-used
 * time (offset 32) through an O_RDWR open of the slab (fd); any other byte:
 * -EPERM. Persisted under the key's hit lock. */
ssize_t hits_write_header(struct kvcfs *fs, const struct kvc_key *key, int fd,
			  const void *buf, size_t size, off_t off);

/* open_slab.c: open a slab or payload view for reading, verified */
int open_slab(struct kvcfs *fs, struct node *node, const struct kvc_key *key,
	      bool payload_view, struct handle *h, struct fuse_file_info *fi);

/* verified.c: reads of slabs that check the file is still as verified */
void verified_record(struct handle *h, const struct stat *st);
void reply_verified_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void verified_release(struct handle *h);

/* passthrough.c: the kernel reads and writes backing files directly */
void passthrough_init(struct kvcfs *fs, struct fuse_conn_info *conn);
/* How an open of node is served: passthrough to fd (fd >= 0) when the
 * node's other opens allow, else the daemon's path; -ETXTBSY when fd < 0
 * and the node is open in passthrough. */
int passthrough_open_mode(struct kvcfs *fs, fuse_req_t req, struct node *node, int fd,
			  struct handle *h, struct fuse_file_info *fi);
/* At release; req NULL when there is none (a failed open reply). */
void passthrough_detach(struct kvcfs *fs, fuse_req_t req, struct handle *h);
/* close(2) of a handle (its FLUSH): its RELEASE is probably on its way. */
void passthrough_closed(struct kvcfs *fs, struct handle *h);

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
#define PUBLISH_WRITER_CAME 1
int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  unsigned flags);

/* ops_entry.c: reply to lookup, link... with node (whose nlookup the
 * caller took for the kernel). */
void reply_node_entry(fuse_req_t req, struct kvcfs *fs, struct node *node);

#endif
