/* SPDX-License-Identifier: MIT */
/* kvcfs's command line: its own -o options, on top of libfuse's. */
#define FUSE_USE_VERSION 312

#include <ctype.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "options.h"

#define KVCFS_OPT(t, field, v) { t, offsetof(struct kvcfs_options, field), v }

enum { KEY_RO, KEY_RW, KEY_FSNAME, KEY_DEFAULT_PERMS, KEY_NO_DEFAULT_PERMS, KEY_ALLOW_OTHER };

static const struct fuse_opt kvcfs_opts[] = {
	KVCFS_OPT("max_size=%s", max_size_text, 0),
	KVCFS_OPT("low_watermark=%s", low_watermark_text, 0),
	KVCFS_OPT("hit_credit=%s", number_text[NUM_HIT_CREDIT], 0),
	KVCFS_OPT("rescan=%s", number_text[NUM_RESCAN], 0),
	KVCFS_OPT("host_id=%s", host_id, 0),
	KVCFS_OPT("sweep_grace=%s", number_text[NUM_SWEEP_GRACE], 0),
	KVCFS_OPT("threads=%s", number_text[NUM_THREADS], 0),
	KVCFS_OPT("staging_per_user=%s", number_text[NUM_STAGING_PER_USER], 0),
	KVCFS_OPT("opens_per_user=%s", number_text[NUM_OPENS_PER_USER], 0),
	KVCFS_OPT("dirs_max=%s", number_text[NUM_DIRS_MAX], 0),
	KVCFS_OPT("entry_timeout=%s", number_text[NUM_ENTRY_TIMEOUT], 0),
	KVCFS_OPT("negative_timeout=%s", number_text[NUM_NEGATIVE_TIMEOUT], 0),
	KVCFS_OPT("recheck_delay=%s", number_text[NUM_RECHECK_DELAY], 0),
	KVCFS_OPT("passthrough=%s", passthrough_text, 0),
	KVCFS_OPT("local=%s", local_dir, 0),
	KVCFS_OPT("local_size=%s", local_size_text, 0),
	KVCFS_OPT("copy_max=%s", copy_max_text, 0),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_FSNAME),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMS),
	FUSE_OPT_KEY("no_default_permissions", KEY_NO_DEFAULT_PERMS),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_END,
};

int parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (text == NULL || text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	/* One rule: K, M, G, T are powers of 1024, in any case, alone or
	 * followed by B, i or iB ("64M", "64m", "64MB", "64Mi", "64MiB"); a
	 * bare B is bytes. */
	if (*end != '\0' && strchr("kmgt", tolower((unsigned char)*end)) != NULL) {
		shift = 10 * (unsigned)(strchr("kmgt", tolower((unsigned char)*end)) - "kmgt" + 1);
		end++;
		if (strcasecmp(end, "i") == 0 || strcasecmp(end, "ib") == 0)
			end += strlen(end);
	}
	if (strcasecmp(end, "b") == 0)
		end++;
	if (*end != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int take_arg(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct kvcfs_options *opts = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		/* The first non-option is ours; the second is the mountpoint,
		 * which libfuse's own parser takes. */
		if (opts->positional++ == 0) {
			opts->backing_root = strdup(arg);
			return 0;
		}
		return 1;
	case KEY_RO:
		opts->read_only = 1;
		return 1; /* and the kernel mounts read-only too */
	case KEY_RW:
		opts->read_only = 0;
		return 1;
	case KEY_FSNAME:
		opts->has_fsname = 1;
		return 1;
	case KEY_DEFAULT_PERMS:
		opts->default_permissions = 1;
		return 0; /* main() passes it on once, whatever came last */
	case KEY_NO_DEFAULT_PERMS:
		opts->default_permissions = 0;
		return 0; /* ours alone: libfuse does not know it */
	case KEY_ALLOW_OTHER:
		opts->allow_other = 1;
		return 1;
	default:
		return 1;
	}
}

/* text (may be NULL: *out keeps its default) as a size, or one line. */
static int size_option(const char *name, const char *text, uint64_t *out)
{
	if (text == NULL || parse_size(text, out) == 0)
		return 0;
	fprintf(stderr, "kvcfs: bad %s '%s' (a byte count, optionally with K, M, G or T, powers "
			"of 1024, in any case, alone or with B, i or iB: 100G, 100gb, 100GiB)\n",
		name, text);
	return -1;
}

static int parse_sizes(struct kvcfs_options *opts)
{
	opts->copy_max = KVCFS_COPY_MAX_DEFAULT;
	if (size_option("max_size", opts->max_size_text, &opts->max_size) < 0 ||
	    size_option("low_watermark", opts->low_watermark_text, &opts->low_watermark) < 0 ||
	    size_option("local_size", opts->local_size_text, &opts->local_size) < 0 ||
	    size_option("copy_max", opts->copy_max_text, &opts->copy_max) < 0)
		return -1;
	if (opts->low_watermark_text == NULL)
		opts->low_watermark = opts->max_size / 10 * 9;
	if (opts->low_watermark_text != NULL && opts->low_watermark > opts->max_size) {
		fprintf(stderr, "kvcfs: low_watermark must not exceed max_size\n");
		return -1;
	}
	opts->local_low_watermark = opts->local_size / 10 * 9;
	return 0;
}

/* The numeric options: each value must parse whole ("1.5" is not a count
 * of seconds, "10x" not a number) and lie in its range. */
static const struct {
	const char *name;
	size_t offset;     /* of the value in struct kvcfs_options */
	bool integer;      /* unsigned or int; else a double */
	bool is_signed;
	double min, max;
	const char *unit;
} numbers[NUM_OPTIONS] = {
	[NUM_HIT_CREDIT] = { "hit_credit", offsetof(struct kvcfs_options, hit_credit), true, false,
			     0, 1e9, "seconds" },
	[NUM_RESCAN] = { "rescan", offsetof(struct kvcfs_options, rescan_interval), true, false,
			 0, 1e9, "seconds" },
	[NUM_SWEEP_GRACE] = { "sweep_grace", offsetof(struct kvcfs_options, sweep_grace), true,
			      false, 0, 1e9, "seconds" },
	[NUM_THREADS] = { "threads", offsetof(struct kvcfs_options, max_threads), true, false,
			  1, 1024, "threads" },
	[NUM_ENTRY_TIMEOUT] = { "entry_timeout", offsetof(struct kvcfs_options, entry_timeout),
				false, false, 0, 86400, "seconds" },
	[NUM_NEGATIVE_TIMEOUT] = { "negative_timeout",
				   offsetof(struct kvcfs_options, negative_timeout), false, false,
				   0, 86400, "seconds" },
	[NUM_STAGING_PER_USER] = { "staging_per_user",
				   offsetof(struct kvcfs_options, staging_per_user), true, false,
				   1, 1e9, "files" },
	[NUM_OPENS_PER_USER] = { "opens_per_user",
				 offsetof(struct kvcfs_options, opens_per_user), true, false,
				 1, 1e9, "opens" },
	[NUM_DIRS_MAX] = { "dirs_max", offsetof(struct kvcfs_options, dirs_max), true, false,
			   1, 1e9, "directories" },
	[NUM_RECHECK_DELAY] = { "recheck_delay", offsetof(struct kvcfs_options, recheck_delay_ms),
				true, true, -1, 600000, "ms" },
};

static int number_option(struct kvcfs_options *opts, int i)
{
	const char *text = opts->number_text[i];
	char *end = NULL;
	double v;

	if (text == NULL)
		return 0;
	errno = 0;
	v = numbers[i].integer ? (double)strtoll(text, &end, 10) : strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v >= numbers[i].min) ||
	    !(v <= numbers[i].max)) {
		fprintf(stderr, "kvcfs: bad %s '%s' (%s %g..%g %s)\n", numbers[i].name, text,
			numbers[i].integer ? "a whole number" : "a number", numbers[i].min,
			numbers[i].max, numbers[i].unit);
		return -1;
	}
	if (!numbers[i].integer)
		*(double *)((char *)opts + numbers[i].offset) = v;
	else if (numbers[i].is_signed)
		*(int *)((char *)opts + numbers[i].offset) = (int)v;
	else
		*(unsigned *)((char *)opts + numbers[i].offset) = (unsigned)v;
	return 0;
}

/* One line for the first value out of its range or meaning. */
static int check_values(struct kvcfs_options *opts)
{
	const char *why = NULL;

	if (opts->local_size_text != NULL && opts->local_dir == NULL)
		why = "local_size needs local=DIR";
	else if (opts->local_dir != NULL && opts->local_dir[0] == '\0')
		why = "local must name a directory";
	else if (opts->host_id != NULL && opts->host_id[0] == '\0')
		why = "host_id must not be empty";
	else if (opts->passthrough_text != NULL && strcmp(opts->passthrough_text, "off") != 0 &&
		 strcmp(opts->passthrough_text, "on") != 0)
		why = "passthrough must be on or off";
	if (why != NULL) {
		fprintf(stderr, "kvcfs: %s\n", why);
		return -1;
	}
	opts->passthrough = opts->passthrough_text == NULL ||
			    strcmp(opts->passthrough_text, "on") == 0;
	return 0;
}

int options_parse(struct fuse_args *args, struct kvcfs_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->sweep_grace = 3600;
	opts->max_threads = 16;
	opts->staging_per_user = 1000;
	opts->opens_per_user = 1024;
	opts->dirs_max = 1000;
	opts->hit_credit = 300;
	opts->entry_timeout = 10.0;
	opts->negative_timeout = 1.0;
	opts->recheck_delay_ms = -1;
	opts->rescan_interval = 60;
	opts->default_permissions = 1;
	if (fuse_opt_parse(args, opts, kvcfs_opts, take_arg) < 0)
		return -1;
	if (parse_sizes(opts) < 0)
		return -1;
	for (int i = 0; i < NUM_OPTIONS; i++)
		if (number_option(opts, i) < 0)
			return -1;
	return check_values(opts);
}

void options_help(const char *progname)
{
	printf("usage: %s [options] BACKING_ROOT MOUNTPOINT\n\n"
	       "Serve the KV-cache slabs in BACKING_ROOT as files at MOUNTPOINT.\n\n"
	       "kvcfs options:\n"
	       "    -o max_size=SIZE       byte budget of the cache (K/M/G/T suffixes)\n"
	       "    -o low_watermark=SIZE  evict down to this (default 90%% of max_size)\n"
	       "    -o hit_credit=SECS     recency one doubling of a slab's hits is worth (300)\n"
	       "    -o rescan=SECS         re-read the backing root this often; 0: never (60)\n"
	       "    -o host_id=NAME        host identity in temp names (default: hostname)\n"
	       "    -o sweep_grace=SECS    age at which another host's temps are stale (3600)\n"
	       "    -o threads=N           most request threads (16)\n"
	       "    -o entry_timeout=SECS  how long the kernel caches a slab's stat (10)\n"
	       "    -o negative_timeout=SECS  how long it remembers a missing key (1)\n"
	       "    -o recheck_delay=MS    wait before removing a slab that failed verification\n"
	       "                           (default: 2000 on network/FUSE filesystems, else 0)\n"
	       "    -o passthrough=on|off  let the kernel read verified slabs and write staging\n"
	       "                           files directly (on; needs CAP_SYS_ADMIN, a kernel\n"
	       "                           with FUSE passthrough and libfuse >= 3.16)\n"
	       "    -o local=DIR           a host-local tier: copies of the slabs this host\n"
	       "                           reads or publishes, served from DIR (docs/shared-roots.md)\n"
	       "    -o local_size=SIZE     byte budget of the local tier (default: none)\n"
	       "    -o copy_max=SIZE       largest staging file a rename or link copies when a\n"
	       "                           writer still holds it open; larger: EBUSY (16M)\n"
	       "    -o staging_per_user=N  staging files one user may have at once; more:\n"
	       "                           EDQUOT (1000, at most half the descriptors)\n"
	       "    -o opens_per_user=N    slabs one user may have open at once; more:\n"
	       "                           EMFILE (1024, at most half the descriptors)\n"
	       "    -o dirs_max=N          directories (the root too) the mount knows at once,\n"
	       "                           each holding a descriptor; more: mkdir gives ENOSPC\n"
	       "                           (1000, at most an eighth of the descriptor limit)\n"
	       "    -o ro                  read-only: no publishing, sweeping, deleting\n"
	       "                           or hit persistence\n"
	       "    -o no_default_permissions  kvcfs checks file modes itself instead of\n"
	       "                           the kernel (default_permissions is on by default)\n\n",
	       progname);
}

void options_free(struct kvcfs_options *opts)
{
	free(opts->backing_root);
	free(opts->max_size_text);
	free(opts->low_watermark_text);
	free(opts->host_id);
	free(opts->passthrough_text);
	free(opts->local_dir);
	free(opts->local_size_text);
	free(opts->copy_max_text);
	for (int i = 0; i < NUM_OPTIONS; i++)
		free(opts->number_text[i]);
}
