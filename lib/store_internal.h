/* SPDX-License-Identifier: MIT */
#ifndef KVC_STORE_INTERNAL_H
#define KVC_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include <kvc/store.h>

/* A temp at least this big is verified on one thread while another runs its
 * fdatasync; below it, starting the thread costs more than the CRC it would
 * hide (64 KiB publishes paid one thread creation each). */
#define STORE_OVERLAP_MIN_BYTES ((uint64_t)4 << 20)

/* Deferred removals of invalid files (store_drop_later.c). */
#define STORE_DROP_QUEUE_MAX 256
struct drop_job;
struct store_dropper {
	pthread_mutex_t lock;
	pthread_cond_t wake;      /* CLOCK_MONOTONIC; guarded by lock */
	pthread_t thread;         /* valid while running */
	bool running;             /* guarded by lock */
	bool stopping;            /* guarded by lock; set once, by kvc_store_close */
	struct drop_job *ring;    /* STORE_DROP_QUEUE_MAX slots; guarded by lock */
	size_t head, count;       /* guarded by lock */
	uint64_t not_done;        /* skipped: queue full, or store closed; guarded by lock */
};

/*
 * The store holds no lock over the backing directory: the directory is
 * the source of truth, and link(2)/rename(2) arbitrate between writers,
 * threads and hosts alike. So the store's own state is small:
 */
/* A writer id: up to 47 characters of host id, '-', 16 hex digits. */
#define STORE_WRITER_HOST_MAX 47
#define STORE_WRITER_ID_SIZE 65

/* Directory fsyncs shared by publishes in flight (store_dir_sync.c). */
struct store_dir_sync {
	pthread_mutex_t lock;   /* a leaf: guards the fields below */
	pthread_cond_t done;    /* an fsync ended */
	uint64_t tickets;       /* links that asked for a sync, numbered */
	uint64_t synced;        /* every ticket up to this one is durable */
	bool syncing;           /* an fsync is under way */
};

struct kvc_store {
	/* Set by kvc_store_open, never changed until kvc_store_close: */
	int dirfd;
	char *root;
	char host_id[65];
	char writer_id[STORE_WRITER_ID_SIZE]; /* in our temps' names (store_writer.c) */
	bool read_only;
	bool adopt_after_header_check; /* kvc_store_config's */
	int recheck_delay_ms;
	struct timespec opened_at;  /* temps of our pid older than this are stale */
	/* Lock-free: */
	atomic_uint_fast64_t tmp_counter;
	/* Its own mutex and worker (store_drop_later.c); drained by close: */
	struct store_dropper dropper;
	/* Its own mutex: */
	struct store_dir_sync dir_sync;
};

/* store_writer.c: who wrote a temp, and whether they still live. */
/* "<host>-<boot id><instance>", made once per store. */
void store_writer_id(const char *host, char out[STORE_WRITER_ID_SIZE]);
/* A writer id of this kernel's boot (then a temp's lock is exact proof). */
bool store_same_kernel(const struct kvc_store *store, const char *writer);
/* An id of this form, not an older writer's bare host id. */
bool store_is_new_writer_id(const char *writer);
/* Hold an OFD write lock on fd: this temp's writer lives. */
void store_hold_alive(int fd);
enum store_liveness {
	STORE_WRITER_ALIVE,   /* someone holds the temp's lock */
	STORE_WRITER_NO_LOCK, /* nobody does (that this kernel can see) */
	STORE_WRITER_UNKNOWN, /* no locks on this filesystem, or no such file */
};
enum store_liveness store_writer_alive(struct kvc_store *store, const char *name);

/* fsync the backing directory so a link/unlink in it (made before the
 * call) is durable; concurrent callers share fsyncs (store_dir_sync.c). */
void store_dir_sync_init(struct store_dir_sync *ds);
void store_dir_sync_destroy(struct store_dir_sync *ds);
int store_fsync_dir(struct kvc_store *store, struct kvc_err *err);

/*
 * Unlink name only if it still refers to the file described by st. Used
 * before removing a file we judged corrupt, so a valid slab that another
 * writer put there in the meantime survives. Returns 0 if removed.
 */
int store_unlink_if_same(struct kvc_store *store, const char *name,
			 const struct stat *st);

/*
 * Every open of a name in the backing root goes through here. Anything can
 * sit under a slab's name on a shared root: a FIFO must not block the
 * caller (O_NONBLOCK), a symlink must not lead out of the root (O_NOFOLLOW),
 * and only a regular file, as fstat sees the open descriptor, is read.
 * O_NONBLOCK is cleared once the file is known to be regular: it means
 * nothing to a local file, but a network or FUSE filesystem may act on it.
 */
int store_openat(struct kvc_store *store, const char *name, int flags);
int store_clear_nonblock(int fd);

/* What store_open_regular returns when name is not a regular file: st then
 * describes what is there (not followed), and err says so with EIO. */
#define STORE_NOT_REGULAR (-2)

/* Open name with flags (O_RDONLY or O_RDWR); fills st. 0, -1 on an error
 * (err), or STORE_NOT_REGULAR. */
int store_open_regular(struct kvc_store *store, const char *name, int flags, int *fd,
		       struct stat *st, struct kvc_err *err);
/* The same, read-only. */
int store_open_ro(struct kvc_store *store, const char *name, int *fd,
		  struct stat *st, struct kvc_err *err);
/* "FIFO", "symbolic link", ...: for messages. */
const char *store_kind_name(mode_t mode);

/*
 * Remove name if it still fails verification (against key, or its own key
 * if NULL) after the recheck delay, and still is the file st describes.
 * Without a delay at once; with one, queued for the store's worker thread
 * (the caller does not wait), or skipped if the queue is full.
 */
void store_drop_later(struct kvc_store *store, const char *name,
		      const struct kvc_key *key, const struct stat *st);
/* The worker's life: init in kvc_store_open; stop drops what is queued and
 * joins the worker, in kvc_store_close. */
void store_dropper_init(struct kvc_store *store);
void store_dropper_stop(struct kvc_store *store);

/* Labels in our names are cut to this many bytes. */
#define STORE_MAX_LABEL 100
/* Temps being written. Never ".tmp" (programs sweep their own *.tmp on
 * start, and would destroy our writes in flight) nor ".kvc" (a slab). */
#define STORE_TMP_SUFFIX ".kvcpart"
/* What temps were called before: still recognised and swept. */
#define STORE_OLD_TMP_SUFFIX ".tmp"
/* A directory moved off a slab name on its way out (store_free_name). */
#define STORE_ASIDE_SUFFIX ".kvcgone"

/* "<label>.<host>.<pid>.<n><suffix>": unique across hosts and processes. */
void store_unique_name(struct kvc_store *store, const char *label, const char *suffix,
		       char *out, size_t size);

/*
 * Free name of the non-regular entry st describes (lstat): unlink a
 * symlink, FIFO, socket or device node; rename a directory aside and
 * remove it without following symlinks. Nothing is done if name now
 * refers to something else, or is a regular file. 0 when the name no
 * longer refers to that entry.
 */
int store_free_name(struct kvc_store *store, const char *name, const struct stat *st,
		    struct kvc_err *err);
/* Remove name and, if it is a directory, everything under it, never
 * following a symlink; bounded depth. 0 or -1 (errno). */
int store_remove_empty_dir(struct kvc_store *store, const char *name);

int store_refuse_read_only(struct kvc_store *store, const char *what,
			   struct kvc_err *err);

#endif
