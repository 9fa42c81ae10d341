/* SPDX-License-Identifier: MIT */
/*
 * Freeing a slab's name of something that is not a file: a symlink, FIFO,
 * socket or device node under <key>.kvc is unlinked (only the name goes,
 * nothing it points at); a directory is first renamed aside to a name of
 * ours ("<label>.<host>.<pid>.<n>.kvcgone"), which frees the key at once,
 * and then removed depth-first without ever following a symlink. What a
 * removal cannot finish stays under the aside name, and the sweep removes
 * it later.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

/* Deeper than any tree a person or a program puts under a slab name by
 * mistake; a deeper one is left aside (and reported by the sweep). */
#define MAX_TREE_DEPTH 64

static int remove_tree_at(int parent, const char *name, int depth)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	/* Only a name is removed here unless it is a directory we opened
	 * ourselves with O_NOFOLLOW: a symlink to a directory is unlinked,
	 * never entered. */
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth >= MAX_TREE_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (remove_tree_at(fd, de->d_name, depth + 1) < 0)
			rc = -1;
	}
	closedir(dir);
	if (rc < 0)
		return -1;
	return unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

int store_remove_tree(struct kvc_store *store, const char *name)
{
	return remove_tree_at(store->dirfd, name, 0);
}

void store_unique_name(struct kvc_store *store, const char *label, const char *suffix,
		       char *out, size_t size)
{
	uint64_t n = atomic_fetch_add(&store->tmp_counter, 1);

	snprintf(out, size, "%.*s.%s.%ld.%" PRIu64 "%s", STORE_MAX_LABEL, label,
		 store->host_id, (long)getpid(), n, suffix);
}

int store_free_name(struct kvc_store *store, const char *name, const struct stat *st,
		    struct kvc_err *err)
{
	char aside[256];
	struct stat now;

	if (store_refuse_read_only(store, "remove", err) < 0)
		return -1;
	if (fstatat(store->dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return kvc_err_sys(err, errno, "stat %s", name);
	}
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino || S_ISREG(now.st_mode))
		return 0; /* replaced meanwhile: not what we were asked to remove */
	if (!S_ISDIR(now.st_mode)) {
		if (unlinkat(store->dirfd, name, 0) < 0 && errno != ENOENT)
			return kvc_err_sys(err, errno, "remove %s %s",
					   store_kind_name(now.st_mode), name);
		return 0;
	}
	store_unique_name(store, name, STORE_ASIDE_SUFFIX, aside, sizeof(aside));
	if (renameat(store->dirfd, name, store->dirfd, aside) < 0) {
		if (errno == ENOENT)
			return 0;
		return kvc_err_sys(err, errno, "move directory %s aside", name);
	}
	/* The key's name is free now; the tree's removal is housekeeping, and
	 * the sweep finishes what this cannot. */
	store_remove_tree(store, aside);
	return 0;
}
