/* SPDX-License-Identifier: MIT */
#ifndef KVC_CRC_TRACKER_H
#define KVC_CRC_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvc_crc_tracker;

struct kvc_crc_tracker *kvc_crc_tracker_new(void);
void kvc_crc_tracker_free(struct kvc_crc_tracker *t);
/* Record a write of data at off (fd: the file, for writeback hints; -1: none). */
void kvc_crc_tracker_add(struct kvc_crc_tracker *t, int fd, uint64_t off,
			 const void *data, size_t len);
/* The file was truncated to size: 0 starts over, anything else gives up. */
void kvc_crc_tracker_truncate(struct kvc_crc_tracker *t, uint64_t size);
/* Writes are being made that the tracker does not see (the kernel writes
 * the file itself): it never vouches for anything again, whatever a later
 * truncate does. */
void kvc_crc_tracker_abandon(struct kvc_crc_tracker *t);
/* CRC-32C of [off, off+len) of fd from the recorded writes; -1 if they do
 * not vouch for every byte (the caller then reads the range itself). */
int kvc_crc_tracker_crc(struct kvc_crc_tracker *t, int fd, uint64_t off, uint64_t len,
			uint32_t *crc);

#endif
