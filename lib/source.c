/* SPDX-License-Identifier: MIT */
/* Byte sources for the parsers: a file descriptor or a buffer in memory. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <kvc/format.h>

static int fd_read_at(void *ctx, void *buf, size_t len, uint64_t off,
		      struct kvc_err *err)
{
	int fd = *(int *)ctx;
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kvc_err_sys(err, errno, "read at offset %llu",
					   (unsigned long long)off);
		}
		if (n == 0)
			/* The file shrank after its size was taken. */
			return kvc_err_set(err, KVC_E_TRUNCATED,
					   "file ended at offset %llu while reading",
					   (unsigned long long)off);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* SEEK_DATA/SEEK_HOLE: a filesystem that cannot tell says the whole file
 * is data (EINVAL from an old kernel: -1, the same). */
static int fd_data_at(int fd, uint64_t off, uint64_t *start, uint64_t *end)
{
	off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;

	if (data < 0) {
		if (errno != ENXIO)
			return -1;
		*start = *end = UINT64_MAX; /* nothing but a hole to the end */
		return 0;
	}
	hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0)
		return -1;
	*start = (uint64_t)data;
	*end = (uint64_t)hole;
	return 0;
}

static int plain_fd_data_at(void *ctx, uint64_t off, uint64_t *start, uint64_t *end)
{
	return fd_data_at(*(int *)ctx, off, start, end);
}

void kvc_source_from_fd(struct kvc_source *src, int *fd_ctx, uint64_t size)
{
	src->view_at = NULL;
	src->read_at = fd_read_at;
	src->ctx = fd_ctx;
	src->size = size;
	src->data_at = plain_fd_data_at;
}


static int buf_read_at(void *ctx, void *buf, size_t len, uint64_t off,
		       struct kvc_err *err)
{
	const uint8_t *base = *(const void **)ctx;

	(void)err;
	if (len > 0)
		memcpy(buf, base + off, len);
	return 0;
}

static int head_read_at(void *ctx, void *buf, size_t len, uint64_t off,
			struct kvc_err *err)
{
	struct kvc_fd_head *head = ctx;

	if (head->have == (size_t)-1) {
		ssize_t n;
		do
			n = pread(head->fd, head->buf, sizeof(head->buf), 0);
		while (n < 0 && errno == EINTR);
		head->have = n < 0 ? 0 : (size_t)n;
	}
	if (off + len <= head->have) {
		memcpy(buf, head->buf + off, len);
		return 0;
	}
	return fd_read_at(&head->fd, buf, len, off, err);
}

static const void *head_view_at(void *ctx, size_t len, uint64_t off)
{
	struct kvc_fd_head *head = ctx;

	/* Only after the head was read: the parser reads the header first. */
	if (head->have == (size_t)-1 || off + len > head->have)
		return NULL;
	return head->buf + off;
}

static int head_data_at(void *ctx, uint64_t off, uint64_t *start, uint64_t *end)
{
	return fd_data_at(((struct kvc_fd_head *)ctx)->fd, off, start, end);
}

void kvc_source_from_fd_head(struct kvc_source *src, struct kvc_fd_head *head,
			     int fd, uint64_t size)
{
	head->fd = fd;
	head->have = (size_t)-1;
	src->view_at = head_view_at;
	src->read_at = head_read_at;
	src->ctx = head;
	src->size = size;
	src->data_at = head_data_at;
}

static const void *buf_view_at(void *ctx, size_t len, uint64_t off)
{
	(void)len;
	return (const uint8_t *)*(const void **)ctx + off;
}

void kvc_source_from_buf(struct kvc_source *src, const void **buf_ctx, size_t size)
{
	src->view_at = buf_view_at;
	src->read_at = buf_read_at;
	src->ctx = (void *)buf_ctx;
	src->size = size;
	src->data_at = NULL;
}
