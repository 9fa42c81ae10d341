/* SPDX-License-Identifier: MIT */
/* Phase 1 of a save: the bytes go into a writer-unique temp, durably. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

#define COPY_CHUNK (1u << 20)
#define MAX_LABEL 100

int kvc_tmp_create(struct kvc_store *store, const char *label,
		   struct kvc_tmp *tmp, struct kvc_err *err)
{
	uint64_t n;

	if (store_refuse_read_only(store, "create a temp", err) < 0)
		return -1;
	memset(tmp, 0, sizeof(*tmp));
	tmp->fd = -1;
	n = atomic_fetch_add(&store->tmp_counter, 1);
	snprintf(tmp->name, sizeof(tmp->name), "%.*s.%s.%ld.%" PRIu64 ".tmp",
		 MAX_LABEL, label, store->host_id, (long)getpid(), n);
	tmp->fd = openat(store->dirfd, tmp->name,
			 O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (tmp->fd < 0)
		return kvc_err_sys(err, errno, "create temp %s", tmp->name);
	return 0;
}

void kvc_store_abort_tmp(struct kvc_store *store, struct kvc_tmp *tmp)
{
	if (tmp->fd >= 0) {
		close(tmp->fd);
		tmp->fd = -1;
	}
	if (tmp->name[0] != '\0') {
		unlinkat(store->dirfd, tmp->name, 0);
		tmp->name[0] = '\0';
	}
}

static int write_all(int fd, const void *buf, size_t len, struct kvc_err *err)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kvc_err_sys(err, errno, "write to temp");
		}
		if (n == 0)
			return kvc_err_sys(err, EIO, "write to temp made no progress");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int sync_tmp(struct kvc_tmp *tmp, struct kvc_err *err)
{
	while (fdatasync(tmp->fd) < 0) {
		if (errno != EINTR)
			return kvc_err_sys(err, errno, "fdatasync of temp %s", tmp->name);
	}
	tmp->synced = true;
	return 0;
}

/* An iovec array seen as one byte string, for checking before writing. */
struct iov_source {
	const struct iovec *iov;
	int iovcnt;
};

static int iov_read_at(void *ctx, void *buf, size_t len, uint64_t off,
		       struct kvc_err *err)
{
	const struct iov_source *s = ctx;
	uint8_t *out = buf;

	(void)err;
	for (int i = 0; i < s->iovcnt && len > 0; i++) {
		size_t seg = s->iov[i].iov_len;
		if (off >= seg) {
			off -= seg;
			continue;
		}
		size_t n = seg - (size_t)off < len ? seg - (size_t)off : len;
		memcpy(out, (const uint8_t *)s->iov[i].iov_base + off, n);
		out += n;
		len -= n;
		off = 0;
	}
	return 0;
}

int kvc_store_write_tmp_bufs(struct kvc_store *store, const struct kvc_key *key,
			     const struct iovec *iov, int iovcnt,
			     struct kvc_tmp *tmp, struct kvc_err *err)
{
	struct iov_source is = { iov, iovcnt };
	struct kvc_source src = { iov_read_at, &is, 0 };
	char label[KVC_SLAB_NAME_LEN + 1];
	struct kvc_meta meta;

	for (int i = 0; i < iovcnt; i++)
		src.size += iov[i].iov_len;
	/* Check in memory first: a slab we would refuse never touches the
	 * disk, and publish need not read the bytes back. */
	if (kvc_verify(&src, 0, key, &meta, NULL, NULL, err) < 0)
		return -1;
	kvc_meta_clear(&meta);

	kvc_key_slab_name(key, label);
	if (kvc_tmp_create(store, label, tmp, err) < 0)
		return -1;
	for (int i = 0; i < iovcnt; i++)
		if (write_all(tmp->fd, iov[i].iov_base, iov[i].iov_len, err) < 0)
			goto fail;
	if (sync_tmp(tmp, err) < 0)
		goto fail;
	tmp->verified = true;
	tmp->verified_key = *key;
	return 0;
fail:
	kvc_store_abort_tmp(store, tmp);
	return -1;
}

static int copy_fd(int src_fd, struct kvc_tmp *tmp, struct kvc_err *err)
{
	uint8_t *buf = malloc(COPY_CHUNK);

	if (buf == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "copy buffer");
	for (;;) {
		ssize_t n = read(src_fd, buf, COPY_CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			kvc_err_sys(err, errno, "read source");
			break;
		}
		if (n == 0) {
			free(buf);
			return 0;
		}
		if (write_all(tmp->fd, buf, (size_t)n, err) < 0)
			break;
	}
	free(buf);
	return -1;
}

int kvc_store_write_tmp_fd(struct kvc_store *store, const struct kvc_key *key,
			   const void *prefix, size_t prefix_len, int src_fd,
			   struct kvc_tmp *tmp, struct kvc_err *err)
{
	char label[KVC_SLAB_NAME_LEN + 1];
	struct kvc_meta meta;

	kvc_key_slab_name(key, label);
	if (kvc_tmp_create(store, label, tmp, err) < 0)
		return -1;
	if (prefix_len > 0 && write_all(tmp->fd, prefix, prefix_len, err) < 0)
		goto fail;
	if (src_fd >= 0 && copy_fd(src_fd, tmp, err) < 0)
		goto fail;
	if (sync_tmp(tmp, err) < 0)
		goto fail;
	/* The source may be a pipe, so the check reads the temp back; it is
	 * in the page cache, so this costs a CRC pass, not a disk read. */
	if (kvc_verify_fd(tmp->fd, 0, key, &meta, err) < 0)
		goto fail;
	kvc_meta_clear(&meta);
	tmp->verified = true;
	tmp->verified_key = *key;
	return 0;
fail:
	kvc_store_abort_tmp(store, tmp);
	return -1;
}
