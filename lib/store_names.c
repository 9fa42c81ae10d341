/* SPDX-License-Identifier: MIT */
/* The store's own file operations on names in its directory: opening
 * without following or blocking, removing only the file that was checked.
 * Everything above them uses these (the directory's fsync is in
 * store_dir_sync.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

int store_unlink_if_same(struct kvc_store *store, const char *name,
			 const struct stat *st)
{
	struct stat now;

	if (fstatat(store->dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino)
		return -1;
	return unlinkat(store->dirfd, name, 0);
}

int store_openat(struct kvc_store *store, const char *name, int flags)
{
	return openat(store->dirfd, name,
		      flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
}

int store_clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return (fl & O_NONBLOCK) ? fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) : 0;
}

const char *store_kind_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:  return "regular file";
	case S_IFDIR:  return "directory";
	case S_IFLNK:  return "symbolic link";
	case S_IFIFO:  return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR:  return "character device";
	case S_IFBLK:  return "block device";
	default:       return "file of unknown type";
	}
}

int store_open_regular(struct kvc_store *store, const char *name, int flags, int *fd,
		       struct stat *st, struct kvc_err *err)
{
	*fd = store_openat(store, name, flags);
	if (*fd < 0) {
		int e = errno;
		/* O_NOFOLLOW met a symlink (ELOOP), or the open of a socket
		 * failed (ENXIO): say what is there rather than why. */
		if ((e == ELOOP || e == ENXIO || e == EISDIR) &&
		    fstatat(store->dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISREG(st->st_mode)) {
			kvc_err_sys(err, EIO, "%s is a %s, not a regular file", name,
				    store_kind_name(st->st_mode));
			return STORE_NOT_REGULAR;
		}
		return kvc_err_sys(err, e, "open %s", name);
	}
	if (fstat(*fd, st) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		return kvc_err_sys(err, e, "fstat %s", name);
	}
	if (!S_ISREG(st->st_mode)) {
		close(*fd);
		*fd = -1;
		kvc_err_sys(err, EIO, "%s is a %s, not a regular file", name,
			    store_kind_name(st->st_mode));
		return STORE_NOT_REGULAR;
	}
	if (store_clear_nonblock(*fd) < 0) {
		int e = errno;
		close(*fd);
		*fd = -1;
		return kvc_err_sys(err, e, "fcntl %s", name);
	}
	return 0;
}

int store_open_ro(struct kvc_store *store, const char *name, int *fd,
		  struct stat *st, struct kvc_err *err)
{
	return store_open_regular(store, name, O_RDONLY, fd, st, err);
}

int store_refuse_read_only(struct kvc_store *store, const char *what,
			   struct kvc_err *err)
{
	if (!store->read_only)
		return 0;
	return kvc_err_sys(err, EROFS, "%s on a read-only store", what);
}
