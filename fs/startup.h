/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_STARTUP_H
#define KVCFS_STARTUP_H

#include <stdbool.h>

struct kvcfs;

bool mountpoint_in_use(const char *mountpoint);
/* Sweep stale temps (read-write only) and index the slabs. */
int startup_scan(struct kvcfs *fs);

#endif
