/* SPDX-License-Identifier: MIT */
#ifndef KVC_STORE_H
#define KVC_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <kvc/error.h>
#include <kvc/format.h>
#include <kvc/key.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The durable store: a directory of "<key>.kvc" files, the publish
 * pipeline that puts slabs there, and the maintenance that keeps it clean.
 * The directory is the source of truth: nothing here assumes a single
 * writer, and link(2) arbitrates between writers of the same key.
 */
struct kvc_store;

struct kvc_store_config {
	const char *root;     /* backing directory; must exist */
	const char *host_id;  /* NULL: gethostname(); sanitised for temp names */
	bool read_only;
	/*
	 * Before removing a file that failed verification, wait this long and
	 * check it again. On a shared filesystem another host's fresh slab can
	 * look truncated for a moment (a stale attribute cache); removing it
	 * would destroy a valid slab. -1: choose from the filesystem type
	 * (2000 ms on network and FUSE filesystems, 0 on local ones).
	 */
	int recheck_delay_ms;
	/*
	 * A publish that finds a slab of its key already there keeps it
	 * (first writer wins). false: only after verifying all of it. true:
	 * once its metadata parses as a slab of the key (a read of its head,
	 * whatever its size), for callers that verify it later themselves
	 * (the mount: its worker, and every open): a publish then never reads
	 * someone else's gigabytes.
	 */
	bool adopt_after_header_check;
};

int kvc_store_open(const struct kvc_store_config *cfg, struct kvc_store **out,
		   struct kvc_err *err);
/* A store for a directory inside parent's: dirfd, opened by the caller,
 * becomes the store's on success (the caller keeps it on failure). It
 * takes the parent's settings; path names it in messages only. */
int kvc_store_open_sub(const struct kvc_store *parent, int dirfd, const char *path,
		       struct kvc_store **out, struct kvc_err *err);
void kvc_store_close(struct kvc_store *store);
int kvc_store_dirfd(const struct kvc_store *store);
/* Does anything (of any type, a dangling symlink too) have this name in
 * the store's directory? */
bool kvc_store_name_taken(const struct kvc_store *store, const char *name);
const char *kvc_store_host_id(const struct kvc_store *store);
const char *kvc_store_root(const struct kvc_store *store);
int kvc_store_recheck_delay_ms(const struct kvc_store *store);
/* Removals of invalid files that were due after the recheck delay but were
 * skipped: the store's queue of them was full, or the store was closed
 * first. A skipped removal is asked for again by the next load or scan. */
uint64_t kvc_store_drops_skipped(struct kvc_store *store);

/*
 * A writer-unique temp file in the backing root:
 * "<label>.<host>.<pid>.<n>.kvcpart", created with O_EXCL. The name ends in
 * neither ".tmp" (other programs sweep their own *.tmp) nor ".kvc".
 */
struct kvc_crc_tracker;

struct kvc_tmp {
	int fd;
	char name[256];
	bool synced;           /* fdatasync done since the last write */
	bool verified;         /* content checked against verified_key */
	struct kvc_key verified_key;
	struct kvc_crc_tracker *tracker; /* see kvc_tmp_track */
	bool read_only_slab;   /* publish it mode 0444, not 0644: for a slab
				* that will belong to someone other than the
				* writer of its hit counts (a daemon running as
				* root chowns it to its publisher) */
};

#define KVC_TMP_INIT { .fd = -1 }

/* pwrite all len bytes of buf at off, through short writes and EINTR:
 * 0, or -errno (-EIO for a write that makes no progress). */
int kvc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Create an empty temp; label is a short tag such as "stage". */
int kvc_tmp_create(struct kvc_store *store, const char *label,
		   struct kvc_tmp *tmp, struct kvc_err *err);

/*
 * For callers that write tmp->fd themselves (the mount): report each write
 * (after it succeeded) and each truncate, and publish then takes the
 * payload's CRC from the writes instead of reading the file back, and finds
 * most of it already on its way to disk.
 */
void kvc_tmp_track(struct kvc_tmp *tmp);
void kvc_tmp_note_write(struct kvc_tmp *tmp, uint64_t off, const void *data, size_t len);
void kvc_tmp_note_truncate(struct kvc_tmp *tmp, uint64_t size);
/* Mark the temp's writer alive for other hosts' sweeps: its atime is set
 * to now (its bytes and mtime stay). 0 or -1 (errno). */
int kvc_tmp_mark_alive(struct kvc_tmp *tmp);
/* Someone else writes tmp->fd too, unreported (the kernel, for a
 * passthrough writer): from now on publish reads the file back. Safe
 * beside concurrent kvc_tmp_note_write() calls. */
void kvc_tmp_distrust_writes(struct kvc_tmp *tmp);

/*
 * Seal a temp a caller wrote itself: fill in its payload_crc32c from the
 * payload's bytes (see kvc_seal_fd and "Sealed slabs" in docs/format.md),
 * from the tracked writes when they cover the payload. The publish then
 * validates everything else as usual. Fails on a file whose metadata does
 * not parse (a format error, as the publish would give).
 */
int kvc_tmp_seal(struct kvc_tmp *tmp, struct kvc_err *err);

/* Phase 1 of save: bytes of a whole slab file into a new temp, fdatasync'd.
 * The bytes are checked on the way (prefix parse, CRC, key) so publish
 * need not read them back. */
int kvc_store_write_tmp_bufs(struct kvc_store *store, const struct kvc_key *key,
			     const struct iovec *iov, int iovcnt,
			     struct kvc_tmp *tmp, struct kvc_err *err);
/* Same from prefix bytes (may be empty) followed by src_fd to its end. */
int kvc_store_write_tmp_fd(struct kvc_store *store, const struct kvc_key *key,
			   const void *prefix, size_t prefix_len, int src_fd,
			   struct kvc_tmp *tmp, struct kvc_err *err);

/*
 * Get a complete temp ready ahead of its publish: fdatasync it and verify
 * it against the key its own content names, so that a later
 * kvc_store_publish to that key only links (the caller must mark the temp
 * not synced and not verified again if it changes). -1: not a valid slab,
 * or the sync failed; the publish will say so again.
 */
int kvc_tmp_prepare(struct kvc_tmp *tmp, struct kvc_err *err);

/* Close and remove a temp (idempotent). */
void kvc_store_abort_tmp(struct kvc_store *store, struct kvc_tmp *tmp);

enum kvc_publish_outcome {
	KVC_PUBLISH_NEW,       /* our bytes are now <key>.kvc */
	KVC_PUBLISH_ADOPTED,   /* a valid slab of the key was there; ours dropped */
	KVC_PUBLISH_REPLACED,  /* an invalid file was there; ours replaced it */
	/* Failures (kvc_store_publish returned -1): */
	KVC_PUBLISH_FAILED,    /* nothing of ours is under <key>.kvc */
	KVC_PUBLISH_UNCERTAIN, /* our (valid) bytes took <key>.kvc and could not
				* be taken back; their durability is unknown */
};

/*
 * Phase 2 of save: fdatasync, validate (unless already verified for this
 * key), link to <key>.kvc (EEXIST: adopt a valid one, atomically replace an
 * invalid one or anything that is not a regular file; a directory under the
 * name is moved aside and removed first), re-check the header under the
 * name, fsync the directory, unlink the temp.
 *
 * On success the temp is consumed and *outcome is NEW, ADOPTED or REPLACED.
 * On failure the temp is left as it was (the caller decides between
 * retrying and kvc_store_abort_tmp) and *outcome says what the name holds:
 * FAILED, nothing of ours (a failure after our bytes took the name takes
 * them off it again, if it still refers to our temp; an invalid file we
 * replaced is then gone too, which loses nothing); UNCERTAIN only if that
 * undo itself failed. A valid slab another writer puts under the name is
 * never removed. Like any slab, a published one may be evicted or deleted
 * by another process at any time after. meta, if non-NULL, receives the
 * published slab's metadata on success (all zero if the slab was deleted
 * again before the re-check).
 */
int kvc_store_publish(struct kvc_store *store, struct kvc_tmp *tmp,
		      const struct kvc_key *key, struct kvc_meta *meta,
		      enum kvc_publish_outcome *outcome, struct kvc_err *err);

/*
 * The same, except that a slab under <key>.kvc that would be adopted (a
 * valid one of the key, or one of a newer format) is not: -1 with
 * KVC_E_EXISTS, *outcome FAILED, and the temp stays the caller's, as after
 * link(2) failing with EEXIST. An invalid file under the name is still
 * replaced. For callers that answer link(2) (the mount).
 */
/*
 * Would a publish of tmp as key keep a slab already there? 1: a valid slab
 * of key is under <key>.kvc and tmp's own bytes are a valid slab of key
 * (checked, not synced; meta, if not NULL: the existing slab's, to be
 * cleared); 0: no,
 * nothing checked about the existing file beyond that; -1: tmp's bytes are
 * refused (err says why). Reads tmp, never changes it: a caller whose temp
 * someone may still be writing can ask this before deciding to copy it.
 */
int kvc_store_would_adopt(struct kvc_store *store, struct kvc_tmp *tmp,
			  const struct kvc_key *key, struct kvc_meta *meta, struct kvc_err *err);

int kvc_store_publish_no_adopt(struct kvc_store *store, struct kvc_tmp *tmp,
			       const struct kvc_key *key, struct kvc_meta *meta,
			       enum kvc_publish_outcome *outcome, struct kvc_err *err);

/* The same, for rename(2) with RENAME_NOREPLACE: anything under <key>.kvc,
 * valid or not, is -1 with KVC_E_EXISTS, decided by link(2) itself (no
 * check-then-act), and the temp stays the caller's. */
int kvc_store_publish_exclusive(struct kvc_store *store, struct kvc_tmp *tmp,
				const struct kvc_key *key, struct kvc_meta *meta,
				enum kvc_publish_outcome *outcome, struct kvc_err *err);

/*
 * Open <key>.kvc and verify it fully. On success *fd_out is an O_RDONLY fd
 * of the verified file. A file that fails verification is removed (only if
 * the name still refers to the file that failed) and the format error is
 * returned; a file of a newer format version is left alone.
 */
int kvc_store_load(struct kvc_store *store, const struct kvc_key *key,
		   int *fd_out, struct kvc_meta *meta, struct kvc_err *err);

/* What stat needs of a slab, from its header and the file's inode: cheap
 * (one open, one 72-byte read), no verification. header_ok is false when
 * the first 72 bytes are not a v1 header; the times are then the inode's.
 * Something other than a regular file under the name (a symlink, FIFO,
 * socket, device node or directory) is not an error: not_regular is set,
 * st is its lstat with st_size and st_blocks 0, and header_ok is false, so
 * a caller can show it as an empty file that kvc_store_delete and
 * kvc_store_publish can replace. Opening it (load, open_slab) fails EIO. */
struct kvc_slab_info {
	struct stat st;
	bool header_ok;
	bool not_regular;
	uint64_t payload_offset;
	uint64_t payload_length;
	uint64_t creation_time;
	uint64_t last_used_time;
	uint32_t hit_count;
};

int kvc_store_stat(struct kvc_store *store, const struct kvc_key *key,
		   struct kvc_slab_info *info, struct kvc_err *err);

/* The two halves of kvc_store_load, for callers that know a file is
 * unchanged since they verified it: open <key>.kvc (fills st), and drop
 * it after a failed verification, only if the name still refers to st. */
int kvc_store_open_slab(struct kvc_store *store, const struct kvc_key *key, int *fd,
			struct stat *st, struct kvc_err *err);
void kvc_store_drop_corrupt(struct kvc_store *store, const struct kvc_key *key,
			    const struct stat *st);

/* Remove <key>.kvc. A missing file is success (idempotent). Whatever is
 * under the name leaves it: a symlink, FIFO, socket or device node is
 * unlinked (never followed); an empty directory is removed; any other
 * directory is moved aside to "<key>.kvc.<host>.<pid>.<n>.kvcgone" and
 * left with all it holds (never removed with this process's rights). */
int kvc_store_delete(struct kvc_store *store, const struct kvc_key *key,
		     struct kvc_err *err);

/* Persist hit_count (offset 12) and last_used_time (offset 32) in place.
 * Best effort: the payload and its CRC are untouched. */
int kvc_store_touch(struct kvc_store *store, const struct kvc_key *key,
		    uint32_t hit_count, uint64_t last_used, struct kvc_err *err);

struct kvc_scan_stats {
	uint64_t slabs;
	uint64_t bytes;
	uint64_t removed_corrupt;
	uint64_t skipped_newer;
	uint64_t republished;
	uint64_t not_regular;         /* "*.kvc" entries that are not regular files */
	uint64_t removed_not_regular; /* of those, symlinks, FIFOs and sockets
				       * under a key name, removed */
};

/* Called once per valid slab found by scan (metadata from the prefix). */
typedef void (*kvc_scan_fn)(void *ctx, const struct kvc_key *key,
			    const struct kvc_meta *meta);

/*
 * Index every "*.kvc" from its prefix only (parsed with KVC_PARSE_LIGHT:
 * fn sees no token ids nor informational TLVs, only counts and the key). Files that fail the prefix
 * parse are removed, except newer-version files (left alone, not
 * reported). A valid slab under a name that is not its key is fully
 * verified and re-published under its content key. A "*.kvc" that is not a
 * regular file is counted in not_regular; under a key name, a symlink,
 * FIFO or socket is removed (read-write stores only); directories and
 * device nodes are left for kvc_store_delete or a publish to replace.
 */
int kvc_store_scan(struct kvc_store *store, kvc_scan_fn fn, void *ctx,
		   struct kvc_scan_stats *stats, struct kvc_err *err);

struct kvc_sweep_stats {
	uint64_t removed;
	uint64_t kept;
	uint64_t set_aside; /* non-empty directories moved off slab names,
			     * left for their owners ("*.kvcgone") */
};

/*
 * Remove temps of this host whose writer process is gone (or that an
 * earlier process of the same pid left), and temps of any host whose
 * mtime is older than grace_seconds.
 */
int kvc_store_sweep(struct kvc_store *store, uint64_t grace_seconds,
		    struct kvc_sweep_stats *stats, struct kvc_err *err);

/*
 * The names in the backing root, one pass, "." and ".." left out: what
 * scan, sweep and the mount's listing all walk. d_type is readdir's
 * (DT_UNKNOWN where the filesystem does not say). The name returned is
 * valid until the next call.
 */
struct kvc_store_dir;
int kvc_store_dir_open(struct kvc_store *store, struct kvc_store_dir **out,
		       struct kvc_err *err);
const char *kvc_store_dir_next(struct kvc_store_dir *dir, unsigned char *d_type);
void kvc_store_dir_close(struct kvc_store_dir *dir);

/* Parse a temp name, "<label>.<host>.<pid>.<n>.kvcpart" or the older
 * "<label>.<host>.<pid>.<n>.tmp"; false if name is neither. host is copied
 * (<= 64). */
bool kvc_tmp_name_parse(const char *name, char host[65], long *pid);

#ifdef __cplusplus
}
#endif
#endif
