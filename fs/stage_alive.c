/* SPDX-License-Identifier: MIT */
/*
 * The worker's keep-alive of this mount's staging temps. A temp proves its
 * writer alive with its OFD lock (lib/store_writer.c), but a host whose
 * backing filesystem does not show another host's locks judges that
 * host's temps by age: one idle for longer than its sweep_grace is taken
 * for a crash's leftover. So every quarter of sweep_grace the worker sets
 * each named staging file's temp's atime to now (kvc_tmp_mark_alive: the
 * content and mtime are untouched). The ctime that this moves is the one a
 * closed file's verdict (prepared at its close) is tied to: with no writer
 * left, nothing else can have changed the file, and the verdict is moved to
 * the new state with it, so a rename after an idle hour still publishes
 * without reading the file again.
 */
#include <sys/stat.h>

#include "kvcfs.h"

static void mark_alive(struct kvcfs *fs, struct staging *stage)
{
	struct stat before;
	bool writers, as_prepared;

	pthread_rwlock_wrlock(&stage->lock); /* no writer attaches meanwhile */
	if (stage->published || stage->tmp.fd < 0) {
		pthread_rwlock_unlock(&stage->lock);
		return;
	}
	fs_lock(fs);
	writers = stage->writers > 0;
	fs_unlock(fs);
	as_prepared = !writers && (stage->prepared_valid || stage->prepared_refused) &&
		      fstat(stage->tmp.fd, &before) == 0 && same_file_state(&before, &stage->prepared);
	if (kvc_tmp_mark_alive(&stage->tmp) == 0 && as_prepared &&
	    fstat(stage->tmp.fd, &stage->prepared) < 0) {
		stage->prepared_valid = false;
		stage->prepared_refused = false;
	}
	pthread_rwlock_unlock(&stage->lock);
}

void staging_keep_alive(struct kvcfs *fs)
{
	GPtrArray *held = g_ptr_array_new();
	GHashTableIter it, dirs;
	gpointer value, dir;

	fs_assert_unlocked();
	fs_lock(fs);
	g_hash_table_iter_init(&dirs, fs->dirs);
	while (g_hash_table_iter_next(&dirs, NULL, &dir)) {
		g_hash_table_iter_init(&it, ((struct kdir *)dir)->staging);
		while (g_hash_table_iter_next(&it, NULL, &value)) {
			struct node *node = value;

			node->nlookup++; /* node and stage live until we let go */
			g_ptr_array_add(held, node);
		}
	}
	fs_unlock(fs);
	for (guint i = 0; i < held->len; i++)
		mark_alive(fs, ((struct node *)held->pdata[i])->stage);
	fs_lock(fs);
	for (guint i = 0; i < held->len; i++)
		node_unref(fs, held->pdata[i], 1, 0);
	fs_unlock(fs);
	g_ptr_array_free(held, TRUE);
}
