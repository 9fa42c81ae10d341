/* SPDX-License-Identifier: MIT */
/*
 * What the stage*.c files share and nothing else uses: the stage itself
 * (stage.c) for the writers' lifecycle (stage_writers.c) and for
 * publishing (stage_publish.c). Calls go one way only: stage_writers.c
 * may call stage_publish.c and stage.c, stage_publish.c may call stage.c,
 * and stage.c calls neither. Include only from fs/stage*.c.
 */
#ifndef KVCFS_STAGE_INTERNAL_H
#define KVCFS_STAGE_INTERNAL_H

#include "kvcfs.h"

/* stage.c */
/* A new stage with a temp of its own for a writer: replacing, with the
 * caller's owner and mode, counted in the caller's share of staging files;
 * NULL (and *rc, an errno < 0) when over that share or no temp can be made. */
/* Has nothing been written into the stage's temp (its size is 0)? Takes
 * the stage's lock. */
bool stage_is_empty(struct staging *stage);
struct staging *stage_for_writer(struct kvcfs *fs, fuse_req_t req, struct kdir *dir, mode_t mode,
				 int *rc);
/* No name and no handle: give the temp's space back now. */
void staging_discard(struct kvcfs *fs, struct staging *stage);
/* open(O_TRUNC) of a named staging file: its temp to 0 bytes. */
int truncate_for_open(struct staging *stage);
/* The last writer closed: flush and verify the temp now, not in the
 * rename that publishes it. fs->lock not held. */
void prepare_for_publish(struct staging *stage);

#endif
