/* SPDX-License-Identifier: MIT */
/* Opening and reading the files named on the command line, safely. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <glib.h>

#include "input.h"

static const char *file_type_name(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

int input_open_regular(const char *path, struct stat *st, struct kvc_err *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return kvc_err_sys(err, errno, "open %s", path);
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		return kvc_err_sys(err, e, "fstat %s", path);
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT,
				   "%s is %s; only regular files are read", path,
				   file_type_name(st->st_mode));
	}
	return fd;
}

static int too_large(const char *path, size_t cap, struct kvc_err *err)
{
	return kvc_err_set(err, KVC_E_TOO_LARGE, "%s is larger than the limit of %zu bytes",
			   path, cap);
}

int input_read_capped(const char *path, size_t cap, char **out, size_t *len,
		      struct kvc_err *err)
{
	struct stat st;
	char *buf;
	size_t have = 0, size;
	int fd = input_open_regular(path, &st, err);

	if (fd < 0)
		return -1;
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return too_large(path, cap, err);
	}
	/* One byte more than the size taken, to notice a file that grew. */
	size = (size_t)st.st_size + 1;
	buf = g_malloc(size + 1);
	for (;;) {
		ssize_t n = read(fd, buf + have, size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			g_free(buf);
			close(fd);
			return kvc_err_sys(err, e, "read %s", path);
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have == size) {
			if (size > cap) {
				g_free(buf);
				close(fd);
				return too_large(path, cap, err);
			}
			/* Grown since fstat: keep reading, still bounded by cap. */
			size = MIN(cap + 1, size * 2);
			buf = g_realloc(buf, size + 1);
		}
	}
	close(fd);
	buf[have] = '\0';
	*out = buf;
	*len = have;
	return 0;
}
