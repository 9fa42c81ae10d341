/* SPDX-License-Identifier: MIT */
/*
 * Phase 2 of a save: make a verified temp appear as <key>.kvc, atomically
 * and durably, with link(2) as the arbiter between writers of one key.
 *
 * Order matters for what a crash can leave behind: the name <key>.kvc only
 * ever points at a file that was fdatasync'd and verified before it got the
 * name, so a crash leaves no slab or a whole one, never a partial one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc_tracker.h"
#include "store_internal.h"
#include "verify_internal.h"

/*
 * The payload's CRC from the writes the caller reported, reading back only
 * what they do not cover. Returns 1 when verified, 0 when the writes cannot
 * vouch (err->tag is KVC_OK: read everything instead), -1 on a verdict.
 */
static int verify_from_tracker(struct kvc_tmp *tmp, const struct kvc_key *key,
			       struct kvc_err *err)
{
	struct kvc_meta meta;
	uint32_t crc;
	int rc;

	err->tag = KVC_OK;
	if (tmp->tracker == NULL)
		return 0;
	rc = kvc_fd_payload_crc(tmp->fd, tmp->tracker, false, &meta, &crc, err);
	if (rc <= 0) {
		if (rc == 0)
			kvc_meta_clear(&meta);
		return rc;
	}
	rc = kvc_check_crc_and_key(&meta, key, crc, err);
	kvc_meta_clear(&meta);
	return rc < 0 ? -1 : 1;
}

/* tmp was verified whole as a slab of another key: -1 with key_mismatch
 * (no need to read it again to know), else 0. */
static int verified_as_other_key(const struct kvc_tmp *tmp, const struct kvc_key *key,
				 struct kvc_err *err)
{
	char want[KVC_KEY_HEX_LEN + 1], got[KVC_KEY_HEX_LEN + 1];

	if (!tmp->verified || kvc_key_equal(&tmp->verified_key, key))
		return 0;
	kvc_key_to_hex(key, want);
	kvc_key_to_hex(&tmp->verified_key, got);
	return kvc_err_set(err, KVC_E_KEY_MISMATCH, "key mismatch: expected %s, content is %s",
			   want, got);
}

static int sync_tmp(struct kvc_tmp *tmp)
{
	while (fdatasync(tmp->fd) < 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

static void *sync_in_background(void *arg)
{
	return (void *)(intptr_t)sync_tmp(arg);
}

/*
 * fdatasync and verify. When the writes cannot vouch for the payload (the
 * caller wrote the temp without reporting it, e.g. through FUSE
 * passthrough), verification reads the whole file back from the page cache
 * while the data goes to disk: the two overlap, each on its own thread.
 */
static int ensure_synced_and_verified(struct kvc_tmp *tmp, const struct kvc_key *key,
				      struct kvc_err *err)
{
	struct kvc_meta meta;
	pthread_t syncer;
	bool syncing = false;
	int sync_errno = 0, rc;

	if (verified_as_other_key(tmp, key, err) < 0)
		return -1;
	if (tmp->verified) {
		if (!tmp->synced && (sync_errno = sync_tmp(tmp)) != 0)
			return kvc_err_sys(err, sync_errno, "fdatasync of temp %s", tmp->name);
		tmp->synced = true;
		return 0;
	}
	rc = verify_from_tracker(tmp, key, err);
	if (rc == 0 && err->tag == KVC_OK) {
		struct stat st;

		if (!tmp->synced && fstat(tmp->fd, &st) == 0 &&
		    (uint64_t)st.st_size >= STORE_OVERLAP_MIN_BYTES)
			syncing = pthread_create(&syncer, NULL, sync_in_background, tmp) == 0;
		rc = kvc_verify_fd(tmp->fd, 0, key, &meta, err) < 0 ? -1 : 1;
		if (rc == 1)
			kvc_meta_clear(&meta);
		if (syncing) {
			void *ret;
			pthread_join(syncer, &ret);
			sync_errno = (int)(intptr_t)ret;
		}
	}
	if (!tmp->synced && !syncing)
		sync_errno = sync_tmp(tmp);
	if (sync_errno != 0)
		return kvc_err_sys(err, sync_errno, "fdatasync of temp %s", tmp->name);
	tmp->synced = true;
	if (rc != 1)
		return -1;
	tmp->verified = true;
	tmp->verified_key = *key;
	return 0;
}

/* Is the open file fd a slab of key that a publish may keep? Verified
 * whole, or its metadata only (adopt_after_header_check). 0, or -1 with
 * verr (KVC_E_UNSUPPORTED_VERSION: of a newer format, kept too). */
static int existing_is_slab(struct kvc_store *store, int fd, const struct stat *st,
			    const struct kvc_key *key, struct kvc_meta *meta,
			    struct kvc_err *verr)
{
	struct kvc_fd_head head;
	struct kvc_source src;
	struct kvc_key actual;

	if (!store->adopt_after_header_check)
		return kvc_verify_fd(fd, KVC_PARSE_LIGHT, key, meta, verr);
	kvc_source_from_fd_head(&src, &head, fd, (uint64_t)st->st_size);
	if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, meta, verr) < 0)
		return -1;
	if (kvc_meta_key(meta, &actual) < 0) {
		kvc_meta_clear(meta);
		return kvc_err_set(verr, KVC_E_NO_MEMORY, "SHA-256 of the key");
	}
	if (!kvc_key_equal(&actual, key)) {
		kvc_meta_clear(meta);
		return kvc_err_set(verr, KVC_E_KEY_MISMATCH, "the slab under the name is another key's");
	}
	return 0;
}

/* tmp's bytes are a valid slab of key: checked, not synced. */
static int verify_only(struct kvc_tmp *tmp, const struct kvc_key *key, struct kvc_err *err)
{
	struct kvc_meta meta;
	int rc;

	if (verified_as_other_key(tmp, key, err) < 0)
		return -1;
	if (tmp->verified)
		return 0;
	rc = verify_from_tracker(tmp, key, err);
	if (rc == 0 && err->tag == KVC_OK) {
		rc = kvc_verify_fd(tmp->fd, 0, key, &meta, err) < 0 ? -1 : 1;
		if (rc == 1)
			kvc_meta_clear(&meta);
	}
	if (rc != 1)
		return -1;
	tmp->verified = true;
	tmp->verified_key = *key;
	return 0;
}

int kvc_store_would_adopt(struct kvc_store *store, struct kvc_tmp *tmp,
			  const struct kvc_key *key, struct kvc_meta *meta, struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	struct kvc_meta mine;
	struct kvc_err verr;
	struct stat st;
	int fd, rc;

	kvc_key_slab_name(key, slab);
	if (tmp->fd < 0 || !kvc_store_name_taken(store, slab))
		return 0;
	if (verify_only(tmp, key, err) < 0)
		return -1;
	if (store_open_ro(store, slab, &fd, &st, &verr) < 0)
		return 0;
	rc = existing_is_slab(store, fd, &st, key, meta != NULL ? meta : &mine, &verr);
	close(fd);
	if (rc == 0 && meta == NULL)
		kvc_meta_clear(&mine);
	return rc == 0 ? 1 : 0;
}

int kvc_tmp_prepare(struct kvc_tmp *tmp, struct kvc_err *err)
{
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_key key;
	struct stat st;
	int fd = tmp->fd, rc;

	if (fd < 0 || fstat(fd, &st) < 0)
		return kvc_err_sys(err, fd < 0 ? EBADF : errno, "temp %s", tmp->name);
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	if (kvc_parse_meta(&src, 0, &meta, err) < 0)
		return -1; /* not a slab: nothing to get ready */
	rc = kvc_meta_key(&meta, &key);
	kvc_meta_clear(&meta);
	if (rc < 0)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "SHA-256 of the key");
	return ensure_synced_and_verified(tmp, &key, err);
}

/*
 * <key>.kvc exists. Keep it if it is a valid slab of the key (first writer
 * wins; equal keys mean equal KV state), or if it is of a newer format we
 * cannot judge. Otherwise replace it atomically with ours: rename(2) never
 * leaves the name empty, and if a valid slab slipped in meanwhile we swap one
 * valid slab for another of the same key, which loses nothing.
 */
static int resolve_existing(struct kvc_store *store, struct kvc_tmp *tmp,
			    const struct kvc_key *key, const char *slab,
			    enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	char spare[256];
	struct kvc_err verr;
	struct kvc_meta meta;
	struct stat st;
	int fd;
	int opened = store_open_ro(store, slab, &fd, &st, &verr);

	if (opened == 0) {
		int rc = existing_is_slab(store, fd, &st, key, &meta, &verr);
		close(fd);
		if (rc == 0) {
			kvc_meta_clear(&meta);
			*outcome = KVC_PUBLISH_ADOPTED;
			return 0;
		}
		if (verr.tag == KVC_E_UNSUPPORTED_VERSION) {
			*outcome = KVC_PUBLISH_ADOPTED;
			return 0;
		}
		if (!kvc_tag_is_format_error(verr.tag)) {
			*err = verr;
			return -1;
		}
		/* Invalid, or a stale view of another host's fresh slab of
		 * the same key: either way ours may take the name, since two
		 * valid slabs of one key are the same state. No waiting to
		 * tell them apart inside a publish. */
	} else if (opened == STORE_NOT_REGULAR) {
		/* Not a file at all (a symlink, FIFO, directory...): nothing to
		 * adopt. rename(2) replaces any non-directory by itself, without
		 * following it; a directory has to be moved off the name first. */
		if (S_ISDIR(st.st_mode) && store_free_name(store, slab, &st, err) < 0)
			return -1;
	} else if (verr.tag != KVC_E_NOT_FOUND) {
		*err = verr;
		return -1;
	}
	/* Invalid, not a file, or vanished since link said EEXIST: ours takes
	 * the name. The rename moves a second link of the temp, so the temp
	 * keeps its name until the publish is complete and a later failure
	 * can still hand it back to the caller. */
	store_unique_name(store, slab, STORE_TMP_SUFFIX, spare, sizeof(spare));
	if (linkat(store->dirfd, tmp->name, store->dirfd, spare, 0) < 0)
		return kvc_err_sys(err, errno, "link %s to %s", tmp->name, spare);
	if (renameat(store->dirfd, spare, store->dirfd, slab) < 0) {
		int e = errno;
		unlinkat(store->dirfd, spare, 0);
		return kvc_err_sys(err, e, "replace %s", slab);
	}
	*outcome = KVC_PUBLISH_REPLACED;
	return 0;
}

/*
 * Guards against a filesystem that acknowledged the link but serves
 * something else under the name: whatever is there now must be a slab of
 * the key. 0 also when the name is empty again (deleted or evicted since:
 * the publish happened, and what is not there cannot be wrong).
 */
static int check_published(struct kvc_store *store, const char *slab,
			   const struct kvc_key *key, struct kvc_meta *meta_out,
			   struct kvc_err *err)
{
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_key actual;
	struct stat st;
	int fd, rc;

	rc = store_open_ro(store, slab, &fd, &st, err);
	if (rc < 0) {
		if (rc == -1 && err->tag == KVC_E_NOT_FOUND) {
			if (meta_out != NULL)
				memset(meta_out, 0, sizeof(*meta_out));
			return 0;
		}
		return -1;
	}
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	rc = kvc_parse_meta(&src, 0, &meta, err);
	close(fd);
	if (rc < 0)
		return -1;
	if (kvc_meta_key(&meta, &actual) < 0) {
		kvc_meta_clear(&meta);
		return kvc_err_set(err, KVC_E_NO_MEMORY, "SHA-256 of the key");
	}
	if (!kvc_key_equal(&actual, key)) {
		kvc_meta_clear(&meta);
		return kvc_err_set(err, KVC_E_IO, "re-check of %s found another key", slab);
	}
	if (meta_out != NULL)
		*meta_out = meta;
	else
		kvc_meta_clear(&meta);
	return 0;
}

/*
 * A step after our bytes took the name failed: take them off it again,
 * only if the name still refers to our temp's inode (a slab another writer
 * put there meanwhile stays). Removing a slab we just published is never
 * worse than an eviction of it right after. KVC_PUBLISH_FAILED when the
 * name no longer holds our bytes, KVC_PUBLISH_UNCERTAIN when they stay.
 */
static enum kvc_publish_outcome take_back(struct kvc_store *store, struct kvc_tmp *tmp,
					  const char *slab)
{
	struct stat ours, now;

	if (fstat(tmp->fd, &ours) < 0)
		return KVC_PUBLISH_UNCERTAIN;
	if (fstatat(store->dirfd, slab, &now, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? KVC_PUBLISH_FAILED : KVC_PUBLISH_UNCERTAIN;
	if (now.st_dev != ours.st_dev || now.st_ino != ours.st_ino)
		return KVC_PUBLISH_FAILED;
	if (unlinkat(store->dirfd, slab, 0) < 0 && errno != ENOENT)
		return KVC_PUBLISH_UNCERTAIN;
	/* Best effort: the removal need not be durable for the caller to
	 * retry, and a crash that brings the name back brings a valid slab. */
	store_fsync_dir(store, &(struct kvc_err){ 0 });
	return KVC_PUBLISH_FAILED;
}

/* The publish is over: the temp's name and descriptor go. A temp that
 * will not go away is harmless: sweep removes it once this process is
 * gone. */
static void drop_tmp(struct kvc_store *store, struct kvc_tmp *tmp)
{
	unlinkat(store->dirfd, tmp->name, 0);
	tmp->name[0] = '\0';
	close(tmp->fd);
	tmp->fd = -1;
	kvc_crc_tracker_free(tmp->tracker);
	tmp->tracker = NULL;
}

enum publish_mode {
	PUBLISH_ADOPT,     /* a valid slab already there is kept: success */
	PUBLISH_NO_ADOPT,  /* it is KVC_E_EXISTS; an invalid file is replaced */
	PUBLISH_EXCLUSIVE, /* anything under the name is KVC_E_EXISTS */
};

/* Our temp gets the slab's name by link(2), or resolves what is there as
 * the mode says. Nothing linked when a valid slab is adopted. */
static int take_name(struct kvc_store *store, struct kvc_tmp *tmp, const struct kvc_key *key,
		     const char *slab, enum publish_mode mode, enum kvc_publish_outcome *result,
		     struct kvc_err *err)
{
	if (linkat(store->dirfd, tmp->name, store->dirfd, slab, 0) == 0)
		return 0;
	if (errno != EEXIST)
		return kvc_err_sys(err, errno, "link %s to %s", tmp->name, slab);
	if (mode == PUBLISH_EXCLUSIVE)
		return kvc_err_set(err, KVC_E_EXISTS, "%s exists", slab);
	if (resolve_existing(store, tmp, key, slab, result, err) < 0)
		return -1;
	/* Nothing was linked: the temp is still the caller's. */
	if (*result == KVC_PUBLISH_ADOPTED && mode != PUBLISH_ADOPT)
		return kvc_err_set(err, KVC_E_EXISTS, "%s already holds a slab of the key", slab);
	return 0;
}

static int publish(struct kvc_store *store, struct kvc_tmp *tmp, const struct kvc_key *key,
		   enum publish_mode mode, struct kvc_meta *meta,
		   enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	char slab[KVC_SLAB_NAME_LEN + 1];
	enum kvc_publish_outcome result = KVC_PUBLISH_NEW, unused;
	struct kvc_err local;

	if (err == NULL)
		err = &local;
	if (outcome == NULL)
		outcome = &unused;
	*outcome = KVC_PUBLISH_FAILED;
	if (store_refuse_read_only(store, "publish", err) < 0)
		return -1;
	if (tmp->fd < 0 || tmp->name[0] == '\0')
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT, "publish of a closed temp");
	/* The same state saved twice (many servers, one prompt): the first
	 * slab stays, so ours needs no fdatasync, link or directory fsync. */
	if (mode == PUBLISH_ADOPT) {
		int would = kvc_store_would_adopt(store, tmp, key, meta, err);

		if (would < 0)
			return -1;
		if (would > 0) {
			drop_tmp(store, tmp);
			*outcome = KVC_PUBLISH_ADOPTED;
			return 0;
		}
	}
	if (ensure_synced_and_verified(tmp, key, err) < 0)
		return -1;
	/* A temp is its writer's alone (0600: a staging file's bytes are
	 * nobody else's business); a slab is for every reader, and written
	 * only by its owner's hit counts (or no one's but root's). */
	if (fchmod(tmp->fd, tmp->read_only_slab ? 0444 : 0644) < 0)
		return kvc_err_sys(err, errno, "chmod of temp %s", tmp->name);

	kvc_key_slab_name(key, slab);
	if (take_name(store, tmp, key, slab, mode, &result, err) < 0)
		return -1;
	/* Check and make durable before dropping the temp: until then a
	 * failure takes our bytes back off the name and the caller keeps its
	 * temp, so a failed publish published nothing. */
	bool checked = check_published(store, slab, key, meta, err) == 0;

	if (!checked || store_fsync_dir(store, err) < 0) {
		if (checked && meta != NULL)
			kvc_meta_clear(meta);
		if (result != KVC_PUBLISH_ADOPTED)
			*outcome = take_back(store, tmp, slab);
		return -1;
	}
	drop_tmp(store, tmp);
	*outcome = result;
	return 0;
}

int kvc_store_publish(struct kvc_store *store, struct kvc_tmp *tmp,
		      const struct kvc_key *key, struct kvc_meta *meta,
		      enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	return publish(store, tmp, key, PUBLISH_ADOPT, meta, outcome, err);
}

int kvc_store_publish_no_adopt(struct kvc_store *store, struct kvc_tmp *tmp,
			       const struct kvc_key *key, struct kvc_meta *meta,
			       enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	return publish(store, tmp, key, PUBLISH_NO_ADOPT, meta, outcome, err);
}

int kvc_store_publish_exclusive(struct kvc_store *store, struct kvc_tmp *tmp,
				const struct kvc_key *key, struct kvc_meta *meta,
				enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	return publish(store, tmp, key, PUBLISH_EXCLUSIVE, meta, outcome, err);
}
