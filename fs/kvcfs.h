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
 * A file being written. Its bytes live in a writer-unique temp in the
 * backing root. The rwlock lets writes run in parallel while a publish,
 * which hands the temp's inode over to the slab name, excludes them.
 */
struct staging {
	pthread_rwlock_t lock;
	struct kvc_tmp tmp;
	bool published;            /* the temp is now a slab: no more writes */
	struct kvc_key published_key; /* the slab it became */
	bool publish_on_close;     /* created as <key>.kvc: publish at close */
	struct kvc_key target;     /* the key to publish to on close */
	unsigned writers;          /* open handles with write access */
	unsigned flushed_writers;  /* of those, how many were closed once */
	atomic_bool dirty;         /* written since the temp was last checked */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	char *error;               /* why the last publish failed (xattr) */
	bool refused;              /* the last publish failed on the content */
	atomic_int write_error;    /* errno of a failed write, for close() */
};

struct node {
	fuse_ino_t ino;
	enum node_kind kind;
	uint64_t nlookup;          /* kernel references */
	unsigned open_count;       /* open handles */
	bool storing;              /* an open is filling its page cache */
	struct kvc_key key;        /* NODE_SLAB, NODE_PAYLOAD */
	char *name;                /* NODE_STAGING: name in the root, NULL once unlinked */
	struct staging *stage;     /* NODE_STAGING */
};

struct kvcfs {
	struct kvc_store *store;
	struct kvcfs_options opts;
	bool verbose;              /* foreground or debug: say what start-up found */
	struct kvcfs_metrics metrics;
	struct kvcfs_index index;
	struct kvcfs_notifier notifier;
	struct kvcfs_rescanner rescanner;

	pthread_mutex_t lock;      /* guards the tables below and node counts */
	GHashTable *nodes;         /* ino → node */
	GHashTable *staging;       /* name → node, this mount's staging files */
	GHashTable *slab_nodes;    /* key → NODE_SLAB node, so a key keeps its inode */
	GHashTable *payload_nodes; /* key → NODE_PAYLOAD node */
	fuse_ino_t next_ino;
};

/* An open file. */
struct handle {
	struct node *node;
	int fd;                    /* slab or payload view: the verified file */
	uint64_t base;             /* payload view: where the payload starts */
	uint64_t length;           /* payload view: its length */
	struct staging *stage;     /* writing: where the bytes go */
	bool owns_stage;           /* stage exists only for this handle */
	bool writable;
	bool flushed;              /* close() was seen once for this handle */
	bool pins;                 /* holds an index pin on key (open slab) */
	struct kvc_key key;
	off_t verified_size;       /* the backing file as it was verified */
	struct timespec verified_ctime;
	pthread_mutex_t verify_lock;
	bool verify_lock_live;
	char *text;                /* metrics, rescan: text made at open */
	size_t text_len;
};

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
 * while it asks, so the node lives for the request. Takes the lock. */
struct node *node_held(struct kvcfs *fs, fuse_ino_t ino);
/* The node of a slab or payload view, made if needed; nlookup++. */
struct node *node_for_key(struct kvcfs *fs, enum node_kind kind,
			  const struct kvc_key *key);                /* lock held */
/* Turn a staging node whose bytes were just published into a slab node. */
void node_became_slab(struct kvcfs *fs, struct node *node,
		      const struct kvc_key *key);                  /* lock held */
void node_unref(struct kvcfs *fs, struct node *node, uint64_t nlookup,
		unsigned opens);                               /* lock held */
struct staging *staging_new(void);
void staging_free(struct kvcfs *fs, struct staging *stage);
bool staging_published(struct staging *stage);

/* attr.c */
int attr_of_node(struct kvcfs *fs, struct node *node, struct stat *st);
int attr_of_slab(struct kvcfs *fs, const struct kvc_key *key, bool payload_view,
		 struct stat *st);
double attr_timeout(const struct kvcfs *fs, const struct node *node);

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

/* Forget the kernel's cached entries for a slab that is gone. */
enum forget_context {
	FORGET_FROM_ROOT_REQUEST,  /* answering unlink in the root */
	FORGET_FROM_FILE_REQUEST,  /* answering open: no directory is locked */
	FORGET_LATER,              /* anywhere else (eviction): queued */
};
void forget_slab_entries(struct kvcfs *fs, const struct kvc_key *key, enum forget_context from);

/* open_slab.c: open a slab or payload view for reading, verified */
int open_slab(struct kvcfs *fs, struct node *node, bool payload_view,
	      struct handle *h, struct fuse_file_info *fi);

/* verified.c: reads of slabs that check the file is still as verified */
int verified_record(struct handle *h);
void reply_verified_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void verified_release(struct handle *h);

/* publish.c: the mount's side of the pipeline (metrics, index, errors).
 * final: a refusal is the last word (rename), so it is counted as one. */
int publish_stage(struct kvcfs *fs, struct staging *stage, const struct kvc_key *key,
		  bool final);

#endif
