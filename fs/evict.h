/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_EVICT_H
#define KVCFS_EVICT_H

#include "rescan.h" /* kvcfs.h finds struct kvcfs_rescanner through here */

struct kvcfs;

/*
 * If the index holds more than max_size bytes, evict slabs in eviction
 * order (index.h) until it holds at most the low watermark. Slabs that are
 * open, or were this mount's last publish, are never chosen; a slab that
 * vanished meanwhile is just dropped from the index. Before any eviction,
 * a slab larger than max_size goes first and the slabs that will stay are
 * verified (evict.c says why).
 */
void evict_if_needed(struct kvcfs *fs);

#endif
