/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_STARTUP_H
#define KVCFS_STARTUP_H

#include <stdbool.h>

struct kvcfs;

bool mountpoint_in_use(const char *mountpoint);
/* A mountpoint kvcfs can use: a directory (else one line on stderr and
 * -1); one that is not empty gets a warning. */
int mountpoint_usable(const char *mountpoint);
/* The backing root as an absolute path, for the mount table. */
void make_backing_root_absolute(char **root);
/* The backing root is not the mountpoint, nor inside or around it (a
 * mount over its own backing root would serve itself): one line and false. */
bool root_and_mountpoint_apart(const char *root, const char *mountpoint);
/* A local tier that is, contains or lies inside the backing root or the
 * mountpoint would evict or serve the cache's own files: one line on
 * stderr and false. true without -o local. */
bool local_tier_placed_apart(const char *local, const char *root, const char *mountpoint);
/* Sweep stale temps (read-write only) and index the slabs. */
int startup_scan(struct kvcfs *fs);

#endif
