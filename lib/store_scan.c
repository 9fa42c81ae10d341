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
	bool linked = false;

	/* The whole file is read now: as anywhere else, without O_NONBLOCK
	 * (a prefix read of a regular file does not care, which saves the
	 * scan a system call per file). */
	store_clear_nonblock(fd);
	if (kvc_verify_fd(fd, 0, key, &full, &err) < 0) {
		store_drop_later(store, name, NULL, st);
		stats->removed_corrupt++;
		return -1;
	}
	kvc_meta_clear(&full);
	kvc_key_slab_name(key, slab);
	if (linkat(store->dirfd, name, store->dirfd, slab, 0) == 0) {
		linked = true;
	} else if (errno != EEXIST) {
		return -1;
	}
	/* EEXIST: a slab of that key is already there; load checks it. The
	 * original goes only once the new name is durable: until then it is
	 * the only copy known to be on disk. */
	if (store_fsync_dir(store, &err) < 0) {
		if (linked)
			store_unlink_if_same(store, slab, st);
		return -1;
	}
	/* Only the file that was verified: whatever took the name meanwhile
	 * (a publish that replaced a misnamed file under a key name) stays. */
	store_unlink_if_same(store, name, st);
	stats->republished++;
	return 0;
}

/*
 * Open and read the first 4 KiB in one go. A read at offset 0 that comes
 * back short has met the end of the file, so for a regular file (readdir
 * said so, O_NOFOLLOW kept symlinks out) it also tells the size and saves
 * an fstat: most of a scan's cost is per file, not per byte. The open does
 * not block on a FIFO that took the name since readdir (O_NONBLOCK), and a
 * read from one fails (ESPIPE), which sends us to the fstat check.
 */
static int open_head(struct kvc_store *store, const char *name, unsigned char d_type,
		     struct kvc_fd_head *head, struct kvc_source *src)
{
	uint64_t size;
	ssize_t n;
	int fd = store_openat(store, name, O_RDONLY);

	if (fd < 0)
		/* O_NOFOLLOW met a symlink, or a socket cannot be opened. */
		return errno == ELOOP || errno == ENXIO ? STORE_NOT_REGULAR : -1;
	do
		n = pread(fd, head->buf, sizeof(head->buf), 0);
	while (n < 0 && errno == EINTR);
	if (n >= 0 && (size_t)n < sizeof(head->buf) && d_type == DT_REG) {
		size = (uint64_t)n;
	} else {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			close(fd);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			close(fd);
			return STORE_NOT_REGULAR;
		}
		if (n < 0) {
			close(fd);
			return -1;
		}
		size = (uint64_t)st.st_size;
	}
	kvc_source_from_fd_head(src, head, fd, size);
	head->have = (size_t)n;
	return fd;
}

/* A "*.kvc" that is not a regular file. Under a key name it would block
 * the key for good (no load, and only publish and delete can replace it),
 * so the kinds that hold no data (symlink, FIFO, socket) go at once; a
 * directory or device node may be someone's mistake worth seeing, and is
 * only counted. */
static void not_regular(struct kvc_store *store, const char *name,
			struct kvc_scan_stats *stats)
{
	struct kvc_key key;
	struct kvc_err err;
	struct stat st;

	stats->not_regular++;
	if (store->read_only || !kvc_key_from_slab_name(name, &key) ||
	    fstatat(store->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if ((S_ISLNK(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
	    store_free_name(store, name, &st, &err) == 0)
		stats->removed_not_regular++;
}

static void scan_one(struct kvc_store *store, const char *name, unsigned char d_type,
		     kvc_scan_fn fn, void *ctx, struct kvc_scan_stats *stats)
{
	struct kvc_key named, actual;
	struct kvc_fd_head head;
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat st;
	bool well_named;
	int fd = open_head(store, name, d_type, &head, &src);

	if (fd == STORE_NOT_REGULAR)
		not_regular(store, name, stats);
	if (fd < 0)
		return;
	if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, &meta, &err) < 0) {
		if (err.tag == KVC_E_UNSUPPORTED_VERSION)
			stats->skipped_newer++;
		else if (kvc_tag_is_format_error(err.tag) && !store->read_only &&
			 fstat(fd, &st) == 0) {
			store_drop_later(store, name, NULL, &st);
			stats->removed_corrupt++;
		}
		close(fd);
		return;
	}
	if (kvc_meta_key(&meta, &actual) < 0) { /* out of memory: judge it next time */
		kvc_meta_clear(&meta);
		close(fd);
		return;
	}
	well_named = kvc_key_from_slab_name(name, &named) && kvc_key_equal(&named, &actual);
	if (!well_named) {
		int rc = store->read_only || fstat(fd, &st) < 0
				 ? -1 : republish(store, name, fd, &st, &actual, stats);
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
	struct kvc_store_dir *dir;
	unsigned char d_type;
	const char *name;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	if (kvc_store_dir_open(store, &dir, err) < 0)
		return -1;
	while ((name = kvc_store_dir_next(dir, &d_type)) != NULL) {
		if (!has_suffix(name, ".kvc"))
			continue;
		if (d_type != DT_REG && d_type != DT_UNKNOWN) {
			not_regular(store, name, stats);
			continue;
		}
		scan_one(store, name, d_type, fn, ctx, stats);
	}
	kvc_store_dir_close(dir);
	return 0;
}
