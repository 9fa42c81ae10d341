/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_OPTIONS_H
#define KVCFS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

struct fuse_args;

/* The copy is made under the kernel's lock of the directory: 16 MiB keeps
 * what it costs every other user of the mount within tens of milliseconds
 * (docs/contract.md). */
#define KVCFS_COPY_MAX_DEFAULT (16ull << 20)

/* Numeric options, taken as text and parsed whole (options.c). */
enum number_option {
	NUM_HIT_CREDIT,
	NUM_RESCAN,
	NUM_SWEEP_GRACE,
	NUM_THREADS,
	NUM_ENTRY_TIMEOUT,
	NUM_NEGATIVE_TIMEOUT,
	NUM_RECHECK_DELAY,
	NUM_STAGING_PER_USER,
	NUM_OPENS_PER_USER,
	NUM_DIRS_MAX,
	NUM_OPTIONS
};

struct kvcfs_options {
	char *number_text[NUM_OPTIONS];
	char *backing_root;
	char *max_size_text;
	uint64_t max_size;        /* 0: no budget */
	char *low_watermark_text;
	uint64_t low_watermark;   /* eviction stops here (default 90% of max_size) */
	unsigned hit_credit;      /* seconds of recency per doubling of hits */
	unsigned rescan_interval; /* seconds between rescans of the backing root; 0: never */
	char *host_id;
	unsigned sweep_grace;     /* seconds before another host's temp is stale */
	unsigned max_threads;
	unsigned staging_per_user; /* staging files one user may have at once */
	unsigned opens_per_user;   /* slabs one user may have open at once */
	unsigned dirs_max;         /* directories the mount knows at once */
	double entry_timeout;     /* seconds the kernel may cache a slab's entry and stat */
	double negative_timeout;  /* seconds it may remember that a key has no slab */
	int recheck_delay_ms;     /* before removing an invalid file; -1: by filesystem */
	char *local_dir;          /* -o local: the host-local tier's directory; NULL: none */
	char *local_size_text;
	uint64_t local_size;      /* the local tier's byte budget; 0: none */
	uint64_t local_low_watermark; /* its eviction stops here (90% of local_size) */
	char *copy_max_text;
	uint64_t copy_max;        /* a rename or link of a file a writer still
				   * holds copies at most this many bytes */
	int read_only;
	char *passthrough_text;   /* "on" (default) or "off" */
	bool passthrough;         /* use FUSE passthrough where the kernel allows */
	int positional;           /* how many non-options were seen */
	int has_fsname;           /* the user named the filesystem */
	int default_permissions;  /* the kernel checks modes (default; off with
				   * -o no_default_permissions) */
	int allow_other;          /* -o allow_other was given */
};

/* Parse kvcfs's own options out of args (libfuse's stay in args). Prints
 * one line and returns -1 on a bad value. */
int options_parse(struct fuse_args *args, struct kvcfs_options *opts);
void options_help(const char *progname);
void options_free(struct kvcfs_options *opts);
/* "64M", "10G", "4096", "1.5G" is refused. Returns -1 if malformed. */
int parse_size(const char *text, uint64_t *out);

#endif
