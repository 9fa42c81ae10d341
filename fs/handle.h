/* SPDX-License-Identifier: MIT */
/* Open files and the read side: handles, verified reads, hits, passthrough. Included
 * through kvcfs.h, which declares what it uses. */
#ifndef KVCFS_HANDLE_H
#define KVCFS_HANDLE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include <kvc/kvc.h>

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
	bool fd_counted;           /* counted in fd_uid's share of opens
				    * (staging_quota.c) */
	uid_t fd_uid;
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
	uint32_t verified_payload_crc; /* set at open: the payload verified */
	uint64_t verified_payload_len;
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

/* handle.c: one way to make, answer and give back an open handle. */
struct handle *handle_new(struct kvcfs *fs, struct node *node); /* open_count++ */
/* Give back what the open took; req: the RELEASE's, the failed open's, or
 * NULL when there is none (a reply that failed, exit). */
void handle_release(struct kvcfs *fs, struct handle *h, fuse_req_t req);
void handle_reply_open(fuse_req_t req, struct kvcfs *fs, struct handle *h,
		       struct fuse_file_info *fi);
/* After the session ended: the opens whose RELEASE never came. */
void handles_release_lost(struct kvcfs *fs);

/* open_slab.c: open a slab or payload view for reading, verified */
int open_slab(struct kvcfs *fs, struct node *node, const struct kvc_key *key,
	      bool payload_view, struct handle *h, struct fuse_file_info *fi);

/* verified.c: reads of slabs that check the file is still as verified */
void verified_record(struct handle *h, const struct stat *st, const struct kvc_meta *meta);
void reply_verified_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void verified_release(struct handle *h);

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
 * time (offset 32) through an O_RDWR open h of a slab; any other byte:
 * -EPERM. Persisted under the key's hit lock, in the backing root and in
 * the local copy h reads, if it reads one. */
ssize_t hits_write_header(struct kvcfs *fs, struct handle *h, const void *buf, size_t size,
			  off_t off);

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

/* forget.c: forget the kernel's cached entries for a slab that is gone,
 * or (after a publish) negative entries for one that appeared. */
enum forget_context {
	FORGET_FROM_DIR_REQUEST,   /* answering unlink in the directory */
	FORGET_FROM_FILE_REQUEST,  /* answering open: no directory is locked */
	FORGET_LATER,              /* anywhere else (eviction): queued */
};
void forget_slab_entries(struct kvcfs *fs, struct kdir *dir, const struct kvc_key *key,
			 enum forget_context from);

#endif
