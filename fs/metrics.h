/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_METRICS_H
#define KVCFS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct kvcfs;

struct kvcfs_metrics {
	atomic_uint_fast64_t hits;            /* successful opens of a slab or payload */
	atomic_uint_fast64_t misses;          /* lookups of a key with no slab */
	atomic_uint_fast64_t publishes;       /* new slabs this mount published */
	atomic_uint_fast64_t adopted;         /* publishes that kept an existing slab */
	atomic_uint_fast64_t rejected;        /* publishes refused as invalid */
	atomic_uint_fast64_t corrupt_dropped; /* slabs removed after failing verification */
	atomic_uint_fast64_t evictions;
	atomic_uint_fast64_t rescans;
	atomic_uint_fast64_t changed_under_readers;
	atomic_uint_fast64_t reopens_unverified;
	atomic_uint_fast64_t passthrough_opens;     /* opens the kernel serves itself */
	atomic_uint_fast64_t passthrough_fallbacks; /* opens that could not */
	atomic_uint_fast64_t publish_copies;        /* renames/links of a staging
						     * file a passthrough writer
						     * still held (stage_publish.c) */
	atomic_uint_fast64_t staging_refused;       /* creates over a staging bound */
	atomic_uint_fast64_t opens_refused;         /* opens over a descriptor bound */
	atomic_uint_fast64_t publish_ns;
	atomic_uint_fast64_t publish_count;
	atomic_uint_fast64_t load_ns;
	atomic_uint_fast64_t load_count;
};

uint64_t metrics_now_ns(void);
/* Prometheus text exposition; g_malloc'd. */
char *metrics_render(struct kvcfs *fs, size_t *len);

#endif
