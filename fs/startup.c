/* SPDX-License-Identifier: MIT */
/* Before serving: refuse a busy mountpoint, sweep temps, index slabs. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvcfs.h"
#include "startup.h"

/* /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_mount_path(char *s)
{
	char *out = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

bool mountpoint_in_use(const char *mountpoint)
{
	char real[PATH_MAX], line[8192];
	bool busy = false;
	FILE *f;

	if (realpath(mountpoint, real) == NULL)
		return false; /* libfuse reports a missing mountpoint itself */
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return false;
	while (!busy && fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *field = strtok_r(line, " ", &save);
		/* the fifth field is the mount point */
		for (int i = 1; field != NULL && i < 5; i++)
			field = strtok_r(NULL, " ", &save);
		if (field == NULL)
			continue;
		unescape_mount_path(field);
		busy = strcmp(field, real) == 0;
	}
	fclose(f);
	return busy;
}

int mountpoint_usable(const char *mountpoint)
{
	struct stat st;
	struct dirent *d;
	bool empty = true;
	DIR *dir;

	if (stat(mountpoint, &st) < 0) {
		fprintf(stderr, "kvcfs: mountpoint %s: %s\n", mountpoint, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		/* The kernel mounts on a file too, and the mount then answers
		 * nothing but EIO. */
		fprintf(stderr, "kvcfs: mountpoint %s is not a directory\n", mountpoint);
		return -1;
	}
	dir = opendir(mountpoint);
	while (dir != NULL && empty && (d = readdir(dir)) != NULL)
		empty = strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0;
	if (dir != NULL)
		closedir(dir);
	if (!empty)
		fprintf(stderr, "kvcfs: warning: mountpoint %s is not empty: what it holds is hidden "
				"while kvcfs is mounted there\n", mountpoint);
	return 0;
}

void make_backing_root_absolute(char **root)
{
	char real[PATH_MAX];

	/* The mount table then names the real directory, from wherever it is
	 * read; a root that cannot be resolved is reported by the store. */
	if (*root != NULL && realpath(*root, real) != NULL) {
		free(*root);
		*root = strdup(real);
	}
}

/* Is one of the two directories (resolved) the other or inside it? */
static bool nested(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;

	return strncmp(a, b, n) == 0 &&
	       (la == lb || (la > lb ? a[n] : b[n]) == '/' || n == 1 /* "/" */);
}

bool root_and_mountpoint_apart(const char *root, const char *mountpoint)
{
	char r[PATH_MAX], m[PATH_MAX];

	if (realpath(root, r) == NULL || realpath(mountpoint, m) == NULL || !nested(r, m))
		return true; /* a missing one is reported by what opens it */
	fprintf(stderr, "kvcfs: the backing root %s and the mountpoint %s must be apart (not "
			"the same, nor one inside the other)\n", root, mountpoint);
	return false;
}

bool local_tier_placed_apart(const char *local, const char *root, const char *mountpoint)
{
	char l[PATH_MAX], r[PATH_MAX], m[PATH_MAX];

	if (local == NULL)
		return true;
	if (realpath(local, l) == NULL) {
		fprintf(stderr, "kvcfs: local=%s: %s\n", local, strerror(errno));
		return false;
	}
	if ((realpath(root, r) != NULL && nested(l, r)) ||
	    (realpath(mountpoint, m) != NULL && nested(l, m))) {
		fprintf(stderr, "kvcfs: local=%s must be a directory apart from the backing root "
			"and the mountpoint (not either, nor inside or around one)\n", local);
		return false;
	}
	return true;
}

/* Sweep and index one directory; the counts add up in sweep and scan. */
static int startup_dir(struct kvcfs *fs, struct kdir *d, struct kvc_sweep_stats *sweep,
		       struct kvc_scan_stats *scan)
{
	struct kvc_sweep_stats one_sweep = { 0 };
	struct kvc_scan_stats one = { 0 };
	struct kvc_err err;

	if (!fs->opts.read_only &&
	    kvc_store_sweep(d->store, fs->opts.sweep_grace, &one_sweep, &err) < 0) {
		fprintf(stderr, "kvcfs: sweeping %s: %s\n", kvc_store_root(d->store), err.detail);
		return -1;
	}
	if (kvc_store_scan(d->store, index_put_scanned, &d->index, &one, &err) < 0) {
		fprintf(stderr, "kvcfs: indexing %s: %s\n", kvc_store_root(d->store), err.detail);
		return -1;
	}
	sweep->removed += one_sweep.removed;
	sweep->kept += one_sweep.kept;
	sweep->set_aside += one_sweep.set_aside;
	scan->slabs += one.slabs;
	scan->bytes += one.bytes;
	scan->removed_corrupt += one.removed_corrupt;
	scan->skipped_newer += one.skipped_newer;
	scan->republished += one.republished;
	scan->not_regular += one.not_regular;
	scan->removed_not_regular += one.removed_not_regular;
	return 0;
}

/* Every directory of the tree: the root's failure stops the start, a
 * subdirectory's is reported and that directory left as it is. */
static int startup_tree(struct kvcfs *fs, struct kvc_sweep_stats *sweep,
			struct kvc_scan_stats *scan)
{
	GHashTable *reached;
	GHashTableIter it;
	gpointer d;

	if (startup_dir(fs, fs->root_dir, sweep, scan) < 0)
		return -1;
	reached = dirs_discover(fs);
	g_hash_table_iter_init(&it, reached);
	while (g_hash_table_iter_next(&it, &d, NULL))
		if (d != fs->root_dir)
			(void)startup_dir(fs, d, sweep, scan);
	dirs_reached_free(fs, reached);
	return 0;
}

int startup_scan(struct kvcfs *fs)
{
	struct kvc_sweep_stats sweep = { 0 };
	struct kvc_scan_stats scan = { 0 };

	if (startup_tree(fs, &sweep, &scan) < 0)
		return -1;
	if (sweep.set_aside > 0)
		fuse_log(FUSE_LOG_WARNING,
			 "kvcfs: %s: %" G_GUINT64_FORMAT " directories that were under slab names "
			 "are set aside as *.kvcgone, with all they hold: their owners may "
			 "remove them\n", fs->opts.backing_root, sweep.set_aside);
	if (!fs->verbose)
		return 0;
	fuse_log(FUSE_LOG_INFO,
		 "kvcfs: %s: %" G_GUINT64_FORMAT " slabs, %" G_GUINT64_FORMAT " bytes; removed %"
		 G_GUINT64_FORMAT " temps and %" G_GUINT64_FORMAT " corrupt files, re-published %"
		 G_GUINT64_FORMAT ", left %" G_GUINT64_FORMAT " of a newer format; %"
		 G_GUINT64_FORMAT " *.kvc not regular files (%" G_GUINT64_FORMAT " removed)\n",
		 fs->opts.backing_root, scan.slabs, scan.bytes, sweep.removed,
		 scan.removed_corrupt, scan.republished, scan.skipped_newer, scan.not_regular,
		 scan.removed_not_regular);
	return 0;
}
