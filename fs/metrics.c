/* SPDX-License-Identifier: MIT */
/* The counters at .kvcfs/metrics, in Prometheus text format. */
#include <inttypes.h>
#include <time.h>

#include "kvcfs.h"

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void counter(GString *s, const char *name, const char *help, uint64_t v)
{
	g_string_append_printf(s, "# HELP kvcfs_%s %s\n# TYPE kvcfs_%s counter\nkvcfs_%s %" PRIu64 "\n",
			       name, help, name, name, v);
}

static void gauge(GString *s, const char *name, const char *help, uint64_t v)
{
	g_string_append_printf(s, "# HELP kvcfs_%s %s\n# TYPE kvcfs_%s gauge\nkvcfs_%s %" PRIu64 "\n",
			       name, help, name, name, v);
}

static void seconds(GString *s, const char *name, const char *help,
		    uint64_t ns, uint64_t count)
{
	g_string_append_printf(s, "# HELP kvcfs_%s %s\n# TYPE kvcfs_%s summary\n"
			       "kvcfs_%s_sum %.6f\nkvcfs_%s_count %" PRIu64 "\n",
			       name, help, name, name, (double)ns / 1e9, name, count);
}

char *metrics_render(struct kvcfs *fs, size_t *len)
{
	struct kvcfs_metrics *m = &fs->metrics;
	GString *s = g_string_new(NULL);
	uint64_t bytes, slabs;
	unsigned staging, dirs;

	dirs_totals(fs, &bytes, &slabs);
	fs_lock(fs);
	dirs = g_hash_table_size(fs->dirs);
	fs_unlock(fs);
	counter(s, "hits_total", "Opens of a slab or payload view that were served.", m->hits);
	counter(s, "reopens_unverified_total", "Hits on a file verified before and unchanged since: only its header was read.",
		m->reopens_unverified);
	counter(s, "misses_total", "Lookups of a key that has no slab.", m->misses);
	counter(s, "publishes_total", "Slabs this mount published.", m->publishes);
	counter(s, "adopted_total", "Publishes that kept an existing valid slab of the key.", m->adopted);
	counter(s, "rejected_total", "Publishes refused because the content was invalid.", m->rejected);
	counter(s, "corrupt_dropped_total", "Slabs removed after failing verification.", m->corrupt_dropped);
	counter(s, "changed_under_readers_total", "Reads refused because the backing file changed after verification.",
		m->changed_under_readers);
	counter(s, "evictions_total", "Slabs evicted to stay within the byte budget.", m->evictions);
	gauge(s, "bytes", "Bytes of slabs in the backing root, all directories, as indexed.", bytes);
	gauge(s, "slabs", "Slabs in the backing root, all directories, as indexed.", slabs);
	gauge(s, "directories", "Directories the mount knows, the root too (at most dirs_max).", dirs);
	gauge(s, "budget_bytes", "The byte budget (0: none).", fs->opts.max_size);
	gauge(s, "low_watermark_bytes", "Eviction stops at this many bytes.", fs->opts.low_watermark);
	gauge(s, "passthrough", "1: the kernel reads verified slabs and writes staging files directly.",
	      fs->passthrough);
	counter(s, "passthrough_opens_total", "Opens served by the kernel directly (passthrough).",
		m->passthrough_opens);
	counter(s, "passthrough_fallbacks_total", "Opens that could not use passthrough and go through the daemon.",
		m->passthrough_fallbacks);
	counter(s, "publish_copies_total",
		"Publishes of a copy of a staging file that a writer still held open in passthrough.",
		m->publish_copies);
	counter(s, "staging_refused_total",
		"Staging files not created: their user's share, or everyone's, was in use (EDQUOT, ENFILE).",
		m->staging_refused);
	staging = staging_files_in_use(fs);
	gauge(s, "staging_files", "Staging files that exist (each holds a descriptor).", staging);
	gauge(s, "staging_files_per_user_max", "How many one user may have at once.",
	      fs->staging_max_per_user);
	counter(s, "opens_refused_total",
		"Opens of slabs refused because the user's share (EMFILE) or everyone's (ENFILE) was in use.",
		m->opens_refused);
	gauge(s, "opens_per_user_max", "How many slabs one user may have open at once.",
	      fs->opens_max_per_user);
	gauge(s, "user_descriptors_max",
	      "How many staging files and open slabs all users together may have at once.",
	      fs->fds_max_total);
	counter(s, "rescans_total", "Re-reads of the backing root into the index.", m->rescans);
	gauge(s, "maintenance_pending", "1: the background worker has eviction or a rescan to do or under way.",
	      maintenance_pending(fs) ? 1 : 0);
	seconds(s, "publish_seconds", "Time spent publishing.", m->publish_ns, m->publish_count);
	seconds(s, "load_seconds", "Time spent opening and verifying slabs.", m->load_ns, m->load_count);
	local_tier_metrics(fs, s);
	*len = s->len;
	return g_string_free(s, FALSE);
}
