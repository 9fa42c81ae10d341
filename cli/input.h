/* SPDX-License-Identifier: MIT */
#ifndef KVC_CLI_INPUT_H
#define KVC_CLI_INPUT_H

#include <stddef.h>
#include <sys/stat.h>

#include <kvc/error.h>

/*
 * Every file the tool reads is named by the user and is untrusted: it may
 * be a FIFO (open and read would block forever), a device (/dev/zero never
 * ends) or far larger than anything the tool needs in memory.
 */

/*
 * Open path read-only without blocking (O_NONBLOCK, so a FIFO cannot hold
 * up open) and refuse anything but a regular file. On success returns the
 * fd and fills *st; on failure fills err and returns -1.
 */
int input_open_regular(const char *path, struct stat *st, struct kvc_err *err);

/*
 * Read a regular file whole, refusing it with KVC_E_TOO_LARGE when it holds
 * more than cap bytes (judged from its size first, and again while reading
 * in case it grows). *out is g_malloc'd and NUL-terminated.
 */
int input_read_capped(const char *path, size_t cap, char **out, size_t *len,
		      struct kvc_err *err);

#endif
