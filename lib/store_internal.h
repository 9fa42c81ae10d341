/* SPDX-License-Identifier: MIT */
#ifndef KVC_STORE_INTERNAL_H
#define KVC_STORE_INTERNAL_H

#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#include <kvc/store.h>

struct kvc_store {
	int dirfd;
	char *root;
	char host_id[65];
	bool read_only;
	int recheck_delay_ms;
	struct timespec opened_at;  /* temps of our pid older than this are stale */
	atomic_uint_fast64_t tmp_counter;
};

/* fsync the backing directory so a link/unlink in it is durable. */
int store_fsync_dir(struct kvc_store *store, struct kvc_err *err);

/*
 * Unlink name only if it still refers to the file described by st. Used
 * before removing a file we judged corrupt, so a valid slab that another
 * writer put there in the meantime survives. Returns 0 if removed.
 */
int store_unlink_if_same(struct kvc_store *store, const char *name,
			 const struct stat *st);

/* Open name in the backing root read-only; fills st. */
int store_open_ro(struct kvc_store *store, const char *name, int *fd,
		  struct stat *st, struct kvc_err *err);

/* Remove name if it still fails verification (against key, or its own key
 * if NULL) after the recheck delay, and still is the file st describes.
 * With a delay this happens on a helper thread; the caller does not wait. */
void store_drop_if_still_invalid(struct kvc_store *store, const char *name,
				 const struct kvc_key *key, const struct stat *st);
/* Wait the recheck delay and verify name again: true if valid now. */
bool store_valid_after_delay(struct kvc_store *store, const char *name,
			     const struct kvc_key *key);

int store_refuse_read_only(struct kvc_store *store, const char *what,
			   struct kvc_err *err);

#endif
