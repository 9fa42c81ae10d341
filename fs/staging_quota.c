/* SPDX-License-Identifier: MIT */
/*
 * How many staging files may exist at once: each holds a descriptor of
 * its temp (two with a local tier) for as long as it exists, and the
 * daemon's descriptors are shared by every user of the mount. So one user
 * may hold only a share of them (EDQUOT beyond it), all users together
 * leave a reserve for reads, publishes and listings (ENFILE beyond it),
 * and no user's staging files can cost another user a read or an ls.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "kvcfs.h"

/* Descriptors kept back for everything that is not a staging file: open
 * slabs, publishes in flight, directory listings, the worker. */
#define RESERVED_FDS_MIN 256u

/* The most descriptors this process may have; the soft limit is raised to
 * the hard one first, as file servers do. */
static rlim_t fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1u << 20 : rl.rlim_max;
		struct rlimit raised = { want, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl.rlim_cur = want;
	}
	return rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
}

void staging_quota_init(struct kvcfs *fs)
{
	rlim_t limit = fd_limit();
	rlim_t reserve = limit / 4 > RESERVED_FDS_MIN ? limit / 4 : RESERVED_FDS_MIN;
	unsigned per_stage = fs->local != NULL ? 2 : 1;
	unsigned total = limit > reserve ? (unsigned)((limit - reserve) / per_stage) : 1;

	fs->staging_per_uid = g_hash_table_new(NULL, NULL);
	fs->staging_max_total = total > 0 ? total : 1;
	/* Half of what all may hold at most: another user can always make
	 * some. */
	fs->staging_max_per_user = fs->opts.staging_per_user;
	if (fs->staging_max_per_user > fs->staging_max_total / 2)
		fs->staging_max_per_user = fs->staging_max_total / 2 > 0 ? fs->staging_max_total / 2 : 1;
	if (fs->verbose)
		fprintf(stderr, "kvcfs: at most %u staging files per user, %u in all "
				"(%llu descriptors)\n", fs->staging_max_per_user,
			fs->staging_max_total, (unsigned long long)limit);
}

void staging_quota_destroy(struct kvcfs *fs)
{
	g_hash_table_destroy(fs->staging_per_uid);
}

int staging_quota_take(struct kvcfs *fs, uid_t uid)
{
	gpointer k = GUINT_TO_POINTER(uid);
	unsigned mine;
	int rc = 0;

	fs_lock(fs);
	mine = GPOINTER_TO_UINT(g_hash_table_lookup(fs->staging_per_uid, k));
	if (fs->staging_count >= fs->staging_max_total)
		rc = -ENFILE;
	else if (mine >= fs->staging_max_per_user)
		rc = -EDQUOT;
	if (rc == 0) {
		fs->staging_count++;
		g_hash_table_insert(fs->staging_per_uid, k, GUINT_TO_POINTER(mine + 1));
	}
	fs_unlock(fs);
	if (rc < 0)
		atomic_fetch_add(&fs->metrics.staging_refused, 1);
	return rc;
}

void staging_quota_give(struct kvcfs *fs, uid_t uid)
{
	gpointer k = GUINT_TO_POINTER(uid);
	unsigned mine;

	fs_lock(fs);
	mine = GPOINTER_TO_UINT(g_hash_table_lookup(fs->staging_per_uid, k));
	if (mine <= 1)
		g_hash_table_remove(fs->staging_per_uid, k);
	else
		g_hash_table_insert(fs->staging_per_uid, k, GUINT_TO_POINTER(mine - 1));
	fs->staging_count--;
	fs_unlock(fs);
}
