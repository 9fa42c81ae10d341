/* SPDX-License-Identifier: MIT */
#ifndef KVC_WRITEBACK_H
#define KVC_WRITEBACK_H

#include <stdint.h>

/* Ask the kernel to start writing [off, off+len) of fd to disk, from a
 * background thread: sync_file_range can block on a busy device, and the
 * writer that asked must not wait for that. */
void kvc_writeback_start(int fd, uint64_t off, uint64_t len);

#endif
