/* SPDX-License-Identifier: MIT */
/* Reading slabs back: load (verified), delete, and hit persistence. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "store_internal.h"

int kvc_store_open_slab(struct kvc_store *store, const struct kvc_key *key, int *fd,
			struct stat *st, struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];

	kvc_key_slab_name(key, slab);
	return store_open_ro(store, slab, fd, st, err) < 0 ? -1 : 0;
}

void kvc_store_drop_corrupt(struct kvc_store *store, const struct kvc_key *key,
			    const struct stat *st)
{
	char slab[KVC_SLAB_NAME_LEN + 1];

	kvc_key_slab_name(key, slab);
	store_drop_later(store, slab, key, st);
}

int kvc_store_load(struct kvc_store *store, const struct kvc_key *key,
		   int *fd_out, struct kvc_meta *meta, struct kvc_err *err)
{
	struct stat st;
	int fd;

	if (kvc_store_open_slab(store, key, &fd, &st, err) < 0)
		return -1;
	if (kvc_verify_fd(fd, 0, key, meta, err) < 0) {
		close(fd);
		/* A corrupt slab would fail every reader forever: drop it, but
		 * only the file we judged, and never a newer-format one. */
		if (kvc_tag_is_format_error(err->tag) && err->tag != KVC_E_UNSUPPORTED_VERSION)
			kvc_store_drop_corrupt(store, key, &st);
		return -1;
	}
	*fd_out = fd;
	return 0;
}

int kvc_store_stat(struct kvc_store *store, const struct kvc_key *key,
		   struct kvc_slab_info *info, struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	uint8_t h[KVC_FIXED_SIZE];
	int fd, rc;

	kvc_key_slab_name(key, slab);
	memset(info, 0, sizeof(*info));
	rc = store_open_ro(store, slab, &fd, &info->st, err);
	if (rc == STORE_NOT_REGULAR) {
		/* Something else took the name: shown as an empty file, so
		 * that it can be listed, removed and published over. */
		info->not_regular = true;
		info->st.st_size = 0;
		info->st.st_blocks = 0;
		info->creation_time = (uint64_t)info->st.st_mtime;
		info->last_used_time = (uint64_t)info->st.st_atime;
		return 0;
	}
	if (rc < 0)
		return -1;
	if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && kvc_fixed_is_v1(h)) {
		struct kvc_fixed f;

		kvc_fixed_decode(h, &f);
		info->header_ok = true;
		info->hit_count = f.hit_count;
		info->creation_time = f.creation_time;
		info->last_used_time = f.last_used_time;
		info->payload_offset = f.payload_offset;
		info->payload_length = f.payload_length;
	} else {
		info->creation_time = (uint64_t)info->st.st_mtime;
		info->last_used_time = (uint64_t)info->st.st_atime;
	}
	close(fd);
	return 0;
}

int kvc_store_delete(struct kvc_store *store, const struct kvc_key *key,
		     struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	struct stat st;

	if (store_refuse_read_only(store, "delete", err) < 0)
		return -1;
	kvc_key_slab_name(key, slab);
	if (unlinkat(store->dirfd, slab, 0) == 0 || errno == ENOENT)
		return 0;
	/* unlink removes any non-directory, so what is left is a directory
	 * (or an error to report). */
	if (errno == EISDIR && fstatat(store->dirfd, slab, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode))
		return store_free_name(store, slab, &st, err);
	return kvc_err_sys(err, errno, "remove %s", slab);
}

int kvc_store_touch(struct kvc_store *store, const struct kvc_key *key,
		    uint32_t hit_count, uint64_t last_used, struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	uint8_t magic[4], hits[4], used[8];
	struct stat st;
	int fd, rc = -1;

	if (store_refuse_read_only(store, "touch", err) < 0)
		return -1;
	kvc_key_slab_name(key, slab);
	if (store_open_regular(store, slab, O_RDWR, &fd, &st, err) < 0)
		return -1;
	/* Only ever patch a file that still starts like a v1 slab. */
	if (pread(fd, magic, 4, 0) != 4 || !kvc_fixed_is_v1(magic)) {
		kvc_err_set(err, KVC_E_BAD_HEADER, "%s is not a v1 slab", slab);
		goto out;
	}
	kvc_fixed_encode_use(hits, used, hit_count, last_used);
	if (pwrite(fd, hits, 4, KVC_OFF_HIT_COUNT) != 4 ||
	    pwrite(fd, used, 8, KVC_OFF_LAST_USED) != 8) {
		kvc_err_sys(err, errno ? errno : EIO, "update header of %s", slab);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}
