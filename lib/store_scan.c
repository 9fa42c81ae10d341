/* SPDX-License-Identifier: MIT */
/* Indexing the backing root from slab prefixes, and cleaning what is wrong. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* A valid slab under a name that is not its key (copied in by hand, say):
 * check it fully, then give it its proper name and drop the wrong one. */
static int republish(struct kvc_store *store, const char *name, int fd,
		     const struct stat *st, const struct kvc_key *key,
		     struct kvc_scan_stats *stats)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	struct kvc_meta full;
	struct kvc_err err;

	if (kvc_verify_fd(fd, 0, key, &full, &err) < 0) {
		if (store_unlink_if_same(store, name, st) == 0)
			stats->removed_corrupt++;
		return -1;
	}
	kvc_meta_clear(&full);
	kvc_key_slab_name(key, slab);
	if (linkat(store->dirfd, name, store->dirfd, slab, 0) < 0 && errno != EEXIST)
		return -1;
	/* EEXIST: a slab of that key is already there; load checks it. */
	store_fsync_dir(store, &err);
	unlinkat(store->dirfd, name, 0);
	stats->republished++;
	return 0;
}

static void scan_one(struct kvc_store *store, const char *name, kvc_scan_fn fn,
		     void *ctx, struct kvc_scan_stats *stats)
{
	struct kvc_key named, actual;
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat st;
	bool well_named;
	int fd;

	if (store_open_ro(store, name, &fd, &st, &err) < 0)
		return;
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	if (kvc_parse_meta(&src, 0, &meta, &err) < 0) {
		if (err.tag == KVC_E_UNSUPPORTED_VERSION)
			stats->skipped_newer++;
		else if (kvc_tag_is_format_error(err.tag) && !store->read_only &&
			 store_unlink_if_same(store, name, &st) == 0)
			stats->removed_corrupt++;
		close(fd);
		return;
	}
	kvc_meta_key(&meta, &actual);
	well_named = kvc_key_from_slab_name(name, &named) && kvc_key_equal(&named, &actual);
	if (!well_named) {
		int rc = store->read_only ? -1 : republish(store, name, fd, &st, &actual, stats);
		close(fd);
		if (rc == 0 && fn != NULL) {
			stats->slabs++;
			stats->bytes += meta.file_size;
			fn(ctx, &actual, &meta);
		}
		kvc_meta_clear(&meta);
		return;
	}
	close(fd);
	stats->slabs++;
	stats->bytes += meta.file_size;
	if (fn != NULL)
		fn(ctx, &actual, &meta);
	kvc_meta_clear(&meta);
}

int kvc_store_scan(struct kvc_store *store, kvc_scan_fn fn, void *ctx,
		   struct kvc_scan_stats *stats, struct kvc_err *err)
{
	struct kvc_scan_stats local;
	struct dirent *de;
	DIR *dir;
	int fd;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	fd = openat(store->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kvc_err_sys(err, errno, "open backing root %s", store->root);
	dir = fdopendir(fd);
	if (dir == NULL) {
		int e = errno;
		close(fd);
		return kvc_err_sys(err, e, "read backing root %s", store->root);
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (!has_suffix(de->d_name, ".kvc"))
			continue;
		scan_one(store, de->d_name, fn, ctx, stats);
	}
	closedir(dir);
	return 0;
}
