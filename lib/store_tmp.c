/* SPDX-License-Identifier: MIT */
/* Phase 1 of a save: the bytes go into a writer-unique temp, durably. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <kvc/crc32c.h>
#include <unistd.h>

#include "bytes.h"
#include "crc_tracker.h"
#include "store_internal.h"
#include "verify_internal.h"

#define COPY_CHUNK (1u << 20)

int kvc_tmp_create(struct kvc_store *store, const char *label,
		   struct kvc_tmp *tmp, struct kvc_err *err)
{
	if (store_refuse_read_only(store, "create a temp", err) < 0)
		return -1;
	memset(tmp, 0, sizeof(*tmp));
	tmp->fd = -1;
	store_unique_name(store, label, STORE_TMP_SUFFIX, tmp->name, sizeof(tmp->name));
	tmp->fd = openat(store->dirfd, tmp->name,
			 O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (tmp->fd < 0)
		return kvc_err_sys(err, errno, "create temp %s", tmp->name);
	/* Held until the temp's last descriptor closes: no sweep of another
	 * store (another namespace, container or host) takes it for dead. */
	store_hold_alive(tmp->fd);
	return 0;
}

void kvc_tmp_track(struct kvc_tmp *tmp)
{
	if (tmp->tracker == NULL)
		tmp->tracker = kvc_crc_tracker_new();
}

void kvc_tmp_note_write(struct kvc_tmp *tmp, uint64_t off, const void *data, size_t len)
{
	if (tmp->tracker != NULL)
		kvc_crc_tracker_add(tmp->tracker, tmp->fd, off, data, len);
}

void kvc_tmp_note_truncate(struct kvc_tmp *tmp, uint64_t size)
{
	if (tmp->tracker != NULL)
		kvc_crc_tracker_truncate(tmp->tracker, size);
}

int kvc_tmp_mark_alive(struct kvc_tmp *tmp)
{
	const struct timespec now_and_keep[2] = { { .tv_nsec = UTIME_NOW },
						  { .tv_nsec = UTIME_OMIT } };

	return futimens(tmp->fd, now_and_keep);
}

void kvc_tmp_distrust_writes(struct kvc_tmp *tmp)
{
	if (tmp->tracker != NULL)
		kvc_crc_tracker_abandon(tmp->tracker);
}

/*
 * The payload's CRC comes from the tracked writes when they vouch for all
 * of it (no second pass over a 1 GiB payload), else from the file. Only
 * the 4 bytes of payload_crc32c change, outside the payload: the tracked
 * CRCs of the payload stay true, so this write is not noted (noting it
 * would overlap the header's write and make the tracker give up). The
 * header did change, so the temp is neither synced nor verified any more.
 */
int kvc_tmp_seal(struct kvc_tmp *tmp, struct kvc_err *err)
{
	struct kvc_meta meta;
	uint32_t crc;
	int rc;

	if (tmp->fd < 0)
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT, "seal of a closed temp");
	tmp->synced = false;
	tmp->verified = false;
	if (kvc_fd_payload_crc(tmp->fd, tmp->tracker, true, &meta, &crc, err) < 0)
		return -1;
	rc = crc != meta.payload_crc32c ? kvc_seal_write_crc(tmp->fd, crc, err) : 0;
	kvc_meta_clear(&meta);
	return rc;
}

void kvc_store_abort_tmp(struct kvc_store *store, struct kvc_tmp *tmp)
{
	kvc_crc_tracker_free(tmp->tracker);
	tmp->tracker = NULL;
	if (tmp->fd >= 0) {
		close(tmp->fd);
		tmp->fd = -1;
	}
	if (tmp->name[0] != '\0') {
		unlinkat(store->dirfd, tmp->name, 0);
		tmp->name[0] = '\0';
	}
}

int kvc_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Appends to the temp at *off (advanced), for the store's own writers. */
static int write_all(struct kvc_tmp *tmp, const void *buf, size_t len, uint64_t *off,
		     struct kvc_err *err)
{
	int rc = kvc_pwrite_full(tmp->fd, buf, len, *off);

	if (rc < 0)
		return kvc_err_sys(err, -rc, "write to temp %s", tmp->name);
	*off += len;
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

/* CRC-32C of bytes [off, off + len) of the iovec stream, in place. */
static uint32_t iov_crc(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len)
{
	uint32_t crc = 0;

	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t seg = iov[i].iov_len;
		if (off >= seg) {
			off -= seg;
			continue;
		}
		size_t n = seg - (size_t)off < len ? seg - (size_t)off : (size_t)len;
		crc = kvc_crc32c(crc, (const uint8_t *)iov[i].iov_base + off, n);
		len -= n;
		off = 0;
	}
	return crc;
}

struct sync_job {
	int fd;
	int rc;
	int sys_errno;
};

static void *sync_in_background(void *arg)
{
	struct sync_job *job = arg;

	do
		job->rc = fdatasync(job->fd);
	while (job->rc < 0 && errno == EINTR);
	job->sys_errno = job->rc < 0 ? errno : 0;
	return NULL;
}

/*
 * The metadata is checked before anything touches the disk; the payload's
 * CRC and the key are checked from memory while the disk flushes (a helper
 * thread runs the fdatasync), so validation costs no time next to the
 * write. The bytes checked are the bytes written: they come from the same
 * buffers.
 */
int kvc_store_write_tmp_bufs(struct kvc_store *store, const struct kvc_key *key,
			     const struct iovec *iov, int iovcnt,
			     struct kvc_tmp *tmp, struct kvc_err *err)
{
	struct iov_source is = { iov, iovcnt };
	struct kvc_source src = { iov_read_at, NULL, &is, 0, NULL };
	char label[KVC_SLAB_NAME_LEN + 1];
	struct sync_job job;
	struct kvc_meta meta;
	uint64_t written = 0;
	pthread_t syncer;
	int verdict;

	for (int i = 0; i < iovcnt; i++)
		src.size += iov[i].iov_len;
	if (kvc_parse_meta(&src, 0, &meta, err) < 0)
		return -1;

	kvc_key_slab_name(key, label);
	if (kvc_tmp_create(store, label, tmp, err) < 0)
		goto fail_meta;
	for (int i = 0; i < iovcnt; i++)
		if (write_all(tmp, iov[i].iov_base, iov[i].iov_len, &written, err) < 0)
			goto fail;
	job.fd = tmp->fd;
	if (src.size < STORE_OVERLAP_MIN_BYTES ||
	    pthread_create(&syncer, NULL, sync_in_background, &job) != 0) {
		sync_in_background(&job);
		verdict = kvc_check_crc_and_key(&meta, key, iov_crc(iov, iovcnt, meta.payload_offset,
							    meta.payload_length), err);
	} else {
		verdict = kvc_check_crc_and_key(&meta, key, iov_crc(iov, iovcnt, meta.payload_offset,
							    meta.payload_length), err);
		pthread_join(syncer, NULL);
	}
	if (verdict < 0)
		goto fail;
	if (job.rc < 0) {
		kvc_err_sys(err, job.sys_errno, "fdatasync of temp %s", tmp->name);
		goto fail;
	}
	tmp->synced = true;
	tmp->verified = true;
	tmp->verified_key = *key;
	kvc_meta_clear(&meta);
	return 0;
fail:
	kvc_store_abort_tmp(store, tmp);
fail_meta:
	kvc_meta_clear(&meta);
	return -1;
}

static int copy_fd(int src_fd, struct kvc_tmp *tmp, uint64_t off, struct kvc_err *err)
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
		if (write_all(tmp, buf, (size_t)n, &off, err) < 0)
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
	uint64_t off = 0;

	kvc_key_slab_name(key, label);
	if (kvc_tmp_create(store, label, tmp, err) < 0)
		return -1;
	if (prefix_len > 0 && write_all(tmp, prefix, prefix_len, &off, err) < 0)
		goto fail;
	if (src_fd >= 0 && copy_fd(src_fd, tmp, off, err) < 0)
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
