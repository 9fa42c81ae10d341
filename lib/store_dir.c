/* SPDX-License-Identifier: MIT */
/* One pass over the names in the backing root, for every reader of it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

struct kvc_store_dir {
	DIR *dir;
};

int kvc_store_dir_open(struct kvc_store *store, struct kvc_store_dir **out,
		       struct kvc_err *err)
{
	struct kvc_store_dir *d;
	int fd;

	/* A descriptor of our own: the store's one is shared, and readdir
	 * moves its offset. */
	fd = openat(store->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kvc_err_sys(err, errno, "open backing root %s", store->root);
	d = malloc(sizeof(*d));
	if (d == NULL) {
		close(fd);
		return kvc_err_set(err, KVC_E_NO_MEMORY, "listing %s", store->root);
	}
	d->dir = fdopendir(fd);
	if (d->dir == NULL) {
		int e = errno;
		close(fd);
		free(d);
		return kvc_err_sys(err, e, "read backing root %s", store->root);
	}
	*out = d;
	return 0;
}

const char *kvc_store_dir_next(struct kvc_store_dir *d, unsigned char *d_type)
{
	struct dirent *de;

	while ((de = readdir(d->dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (d_type != NULL)
			*d_type = de->d_type;
		return de->d_name;
	}
	return NULL;
}

void kvc_store_dir_close(struct kvc_store_dir *d)
{
	if (d == NULL)
		return;
	closedir(d->dir);
	free(d);
}
