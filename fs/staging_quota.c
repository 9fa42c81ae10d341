/* SPDX-License-Identifier: MIT */
/*
 * How many descriptors (and buffers) the users of the mount may make the
 * daemon hold. A named staging file holds one of its temp (two with a
 * local tier), charged to its creator while it has its name; every open
 * handle (of a slab, a payload view, a staging file, a .kvcfs/ file or a
 * directory listing) is charged to its opener: what a staging file costs
 * once its name is gone, the descriptor and a buffer of text otherwise. The daemon's descriptors are shared by every user, so one user may
 * hold only a share of each kind (EDQUOT for staging files, EMFILE for
 * opens, beyond it), all users together leave a reserve for publishes,
 * listings and the worker (ENFILE beyond it), and no user's files can cost
 * another user a read or an ls.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "kvcfs.h"

/* One user's share in use; guarded by fs->quota_lock (in fs->fd_users). */
struct fd_user {
	unsigned staging;
	unsigned opens;
};

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
	unsigned half;

	pthread_mutex_init(&fs->quota_lock, NULL);
	fs->fd_users = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	fs->fds_max_total = total > 0 ? total : 1;
	/* Half of what all may hold at most, for each kind: another user can
	 * always open and create. */
	half = fs->fds_max_total / 2 > 0 ? fs->fds_max_total / 2 : 1;
	fs->staging_max_per_user = MIN(fs->opts.staging_per_user, half);
	fs->opens_max_per_user = MIN(fs->opts.opens_per_user, half);
	if (fs->verbose)
		fprintf(stderr, "kvcfs: at most %u staging files and %u open slabs per user, %u "
				"of both in all (%llu descriptors)\n", fs->staging_max_per_user,
			fs->opens_max_per_user, fs->fds_max_total, (unsigned long long)limit);
}

void staging_quota_destroy(struct kvcfs *fs)
{
	g_hash_table_destroy(fs->fd_users);
	pthread_mutex_destroy(&fs->quota_lock);
}

/* What uid holds now; made on first use. fs->quota_lock held. */
static struct fd_user *fd_user_of(struct kvcfs *fs, uid_t uid)
{
	struct fd_user *u = g_hash_table_lookup(fs->fd_users, GUINT_TO_POINTER(uid));

	if (u == NULL) {
		u = g_new0(struct fd_user, 1);
		g_hash_table_insert(fs->fd_users, GUINT_TO_POINTER(uid), u);
	}
	return u;
}

static int take(struct kvcfs *fs, uid_t uid, bool staging)
{
	struct fd_user *u;
	int rc = 0;

	pthread_mutex_lock(&fs->quota_lock);
	u = fd_user_of(fs, uid);
	if (fs->fds_in_use >= fs->fds_max_total)
		rc = -ENFILE;
	else if (staging && u->staging >= fs->staging_max_per_user)
		rc = -EDQUOT;
	else if (!staging && u->opens >= fs->opens_max_per_user)
		rc = -EMFILE;
	if (rc == 0) {
		fs->fds_in_use++;
		if (staging)
			u->staging++;
		else
			u->opens++;
	}
	pthread_mutex_unlock(&fs->quota_lock);
	if (rc < 0)
		atomic_fetch_add(staging ? &fs->metrics.staging_refused : &fs->metrics.opens_refused, 1);
	return rc;
}

static void give(struct kvcfs *fs, uid_t uid, bool staging)
{
	struct fd_user *u;

	pthread_mutex_lock(&fs->quota_lock);
	u = fd_user_of(fs, uid);
	if (staging)
		u->staging--;
	else
		u->opens--;
	if (u->staging == 0 && u->opens == 0)
		g_hash_table_remove(fs->fd_users, GUINT_TO_POINTER(uid));
	fs->fds_in_use--;
	pthread_mutex_unlock(&fs->quota_lock);
}

int staging_quota_take(struct kvcfs *fs, uid_t uid)
{
	return take(fs, uid, true);
}

void staging_quota_release(struct kvcfs *fs, struct staging *stage)
{
	if (atomic_exchange(&stage->quota_counted, false))
		give(fs, stage->quota_uid, true);
}

int open_quota_take(struct kvcfs *fs, uid_t uid)
{
	return take(fs, uid, false);
}

void open_quota_give(struct kvcfs *fs, uid_t uid)
{
	give(fs, uid, false);
}

unsigned staging_files_in_use(struct kvcfs *fs)
{
	GHashTableIter it;
	gpointer value;
	unsigned n = 0;

	pthread_mutex_lock(&fs->quota_lock);
	g_hash_table_iter_init(&it, fs->fd_users);
	while (g_hash_table_iter_next(&it, NULL, &value))
		n += ((struct fd_user *)value)->staging;
	pthread_mutex_unlock(&fs->quota_lock);
	return n;
}
