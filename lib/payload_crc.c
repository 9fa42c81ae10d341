/* SPDX-License-Identifier: MIT */
/*
 * The payload CRC of a slab in a file: where the payload is (its metadata,
 * parsed LIGHT), then its CRC from the writes a tracker recorded when they
 * cover it, else from the file (holes computed, not read). Sealing and
 * publishing both start this way.
 */
#include <errno.h>
#include <sys/stat.h>

#include <kvc/format.h>

#include "crc_tracker.h"
#include "verify_internal.h"

int kvc_fd_payload_crc(int fd, struct kvc_crc_tracker *tracker, bool read_if_untracked,
		       struct kvc_meta *meta, uint32_t *crc, struct kvc_err *err)
{
	struct kvc_fd_head head;
	struct kvc_source src;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return kvc_err_sys(err, errno, "fstat");
	if (!S_ISREG(st.st_mode))
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT, "not a regular file");
	kvc_source_from_fd_head(&src, &head, fd, (uint64_t)st.st_size);
	if (kvc_parse_meta(&src, KVC_PARSE_LIGHT, meta, err) < 0)
		return -1;
	if (tracker != NULL &&
	    kvc_crc_tracker_crc(tracker, fd, meta->payload_offset, meta->payload_length, crc) == 0)
		return 1;
	if (!read_if_untracked)
		return 0;
	if (kvc_payload_crc(&src, meta, NULL, NULL, crc, err) < 0) {
		kvc_meta_clear(meta);
		return -1;
	}
	return 1;
}
