/* SPDX-License-Identifier: MIT */
/*
 * Freeing a slab's name of something that is not a file: a symlink, FIFO,
 * socket or device node under <key>.kvc is unlinked (only the name goes,
 * nothing it points at); an empty directory is removed; a directory with
 * anything in it is renamed aside to a name of ours
 * ("<label>.<host>.<pid>.<n>.kvcgone"), which frees the key at once, and
 * left there: its contents are never removed with the daemon's rights.
 * The sweep removes such a directory once it is empty, and counts the
 * others (the mount reports them at start).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

/* Only an empty directory is removed: what is in a non-empty one is not
 * the store's to judge (on a shared root it may be anyone's, with modes
 * that forbid the daemon nothing), so it stays aside for its owner. */
int store_remove_empty_dir(struct kvc_store *store, const char *name)
{
	return unlinkat(store->dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
}

void store_unique_name(struct kvc_store *store, const char *label, const char *suffix,
		       char *out, size_t size)
{
	uint64_t n = atomic_fetch_add(&store->tmp_counter, 1);

	snprintf(out, size, "%.*s.%s.%ld.%" PRIu64 "%s", STORE_MAX_LABEL, label,
		 store->writer_id, (long)getpid(), n, suffix);
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
	if (store_remove_empty_dir(store, name) == 0)
		return 0;
	store_unique_name(store, name, STORE_ASIDE_SUFFIX, aside, sizeof(aside));
	if (renameat(store->dirfd, name, store->dirfd, aside) < 0) {
		if (errno == ENOENT)
			return 0;
		return kvc_err_sys(err, errno, "move directory %s aside", name);
	}
	return 0; /* the key's name is free; the directory waits for its owner */
}
