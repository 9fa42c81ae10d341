/* SPDX-License-Identifier: MIT */
/* The inode table: fixed inodes, node kinds and names (nodes.c, names.c). Included
 * through kvcfs.h, which declares what it uses. */
#ifndef KVCFS_NODES_H
#define KVCFS_NODES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <kvc/kvc.h>

/* Fixed inodes; everything else is numbered from INO_FIRST_DYNAMIC. */
#define INO_ROOT FUSE_ROOT_ID
#define INO_PAYLOAD_DIR 2
#define INO_META_DIR 3
#define INO_METRICS 4
#define INO_RESCAN 5
#define INO_REFUSALS 6
#define INO_FIRST_DYNAMIC 16

#define PAYLOAD_DIR_NAME "payload"
#define META_DIR_NAME ".kvcfs"
#define METRICS_NAME "metrics"
#define RESCAN_NAME "rescan"
#define REFUSALS_NAME "refusals"

enum node_kind {
	NODE_ROOT,
	NODE_DIR,      /* a directory below the root (dirs.h) */
	NODE_PAYLOAD_DIR, /* payload/, or payload/<path> of a directory */
	NODE_META_DIR,
	NODE_METRICS,
	NODE_RESCAN,   /* .kvcfs/rescan: reading it re-reads the backing root */
	NODE_REFUSALS, /* .kvcfs/refusals: the recent refused publishes */
	NODE_SLAB,     /* <key>.kvc, published in the backing root */
	NODE_PAYLOAD,  /* payload/<key> */
	NODE_STAGING,  /* a file being written in this mount */
};

struct staging;

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
				    * dup lives on (passthrough.c) */
	bool backing_writable;     /* registered with a read-write descriptor */
	dev_t backing_dev;         /* which file that is */
	ino_t backing_ino;
	dev_t served_dev;          /* NODE_SLAB, NODE_PAYLOAD: the file its */
	ino_t served_ino;          /* opens read (0: none yet; open_slab.c) */
	off_t served_size;
	GSList *unarmed_writers;   /* their stages still waiting for the
				    * truncate of open(O_TRUNC) (stage_writers.c) */
	bool cache_suspect;        /* the kernel's size and pages of this inode
				    * may not be the slab's: a writer
				    * truncated it, or it was a staging file */
	struct kvc_key key;        /* NODE_SLAB, NODE_PAYLOAD */
	struct kdir *dir;          /* the directory it is in (NODE_SLAB,
				    * NODE_PAYLOAD, NODE_STAGING) or is
				    * (NODE_ROOT, NODE_DIR, NODE_PAYLOAD_DIR);
				    * set when made, never changed, and
				    * referenced (dynamic nodes) until freed */
	char *name;                /* NODE_STAGING: name in dir; NULL when
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
	struct kdir *dir;          /* lives as long as the node */
};

/* The mount's own directories, whose names are keys and staging files. */
static inline bool node_kind_is_cache_dir(enum node_kind kind)
{
	return kind == NODE_ROOT || kind == NODE_DIR;
}

static inline bool node_kind_is_dir(enum node_kind kind)
{
	return kind == NODE_ROOT || kind == NODE_DIR || kind == NODE_PAYLOAD_DIR ||
	       kind == NODE_META_DIR;
}

/* names.c */
enum name_class {
	NAME_INVALID,
	NAME_RESERVED,   /* payload, .kvcfs (in the root only) */
	NAME_SLAB,       /* <64 lowercase hex>.kvc */
	NAME_STAGING,
};
/* in_root: payload and .kvcfs are reserved there only. */
enum name_class classify_name(const char *name, bool in_root, struct kvc_key *key, int *err);
/* May a directory of the mount have this name (a staging-like name, not a
 * temp's nor a set-aside one's)? */
bool dir_name_ok(const char *name, bool in_root);

/* nodes.c */
void nodes_init(struct kvcfs *fs);
void nodes_destroy(struct kvcfs *fs);
struct node *node_get(struct kvcfs *fs, fuse_ino_t ino);     /* lock held */
struct node *node_new(struct kvcfs *fs, enum node_kind kind); /* lock held */
/* The same, in (or of) directory dir, which it references. */
struct node *node_new_in(struct kvcfs *fs, enum node_kind kind, struct kdir *dir);
/* The node of an inode the kernel is asking about: it holds a reference
 * while it asks, so the node lives for the request. Takes the lock and
 * fills view (if non-NULL) with what may change meanwhile. */
struct node *node_held(struct kvcfs *fs, fuse_ino_t ino, struct node_view *view);
/* The node of a slab or payload view, made if needed; nlookup++. */
struct node *node_for_key(struct kvcfs *fs, struct kdir *dir, enum node_kind kind,
			  const struct kvc_key *key);                /* lock held */
/* A named staging node has its name no more (unlink, rename, publish). */
void node_drop_staging_name(struct kvcfs *fs, struct node *node);
/* Turn a staging node whose bytes were just published into a slab node
 * (of its own directory). */
void node_became_slab(struct kvcfs *fs, struct node *node,
		      const struct kvc_key *key);                  /* lock held */
/* A slab or payload node stops being its key's node (the next lookup of
 * the key makes a new one); nothing if another node is. fs->lock held. */
void node_leave_key(struct kvcfs *fs, struct node *node);
void node_unref(struct kvcfs *fs, struct node *node, uint64_t nlookup,
		unsigned opens);                               /* lock held */

#endif
