/* SPDX-License-Identifier: MIT */
#ifndef KVC_VERIFY_INTERNAL_H
#define KVC_VERIFY_INTERNAL_H

#include <kvc/format.h>

/* The last two checks of a full verification, for a payload CRC computed
 * elsewhere: crc_mismatch, then key_mismatch (expected_key may be NULL). */
int kvc_check_crc_and_key(const struct kvc_meta *meta, const struct kvc_key *expected_key,
			  uint32_t payload_crc, struct kvc_err *err);

/* CRC-32C of the payload region meta describes, read from src in bounded
 * chunks; each chunk also goes to observer when it is non-NULL. */
int kvc_payload_crc(const struct kvc_source *src, const struct kvc_meta *meta,
		    kvc_payload_observer observer, void *observer_ctx, uint32_t *crc,
		    struct kvc_err *err);

struct kvc_crc_tracker;

/* The payload CRC of the slab in fd: its metadata parsed (LIGHT) into meta,
 * then the CRC from tracker's recorded writes when they cover the payload,
 * else read from fd when read_if_untracked. 1: *crc is set (meta to be
 * cleared by the caller); 0: the tracker cannot vouch and nothing was read
 * (meta to be cleared); -1: err says why (nothing to clear). */
int kvc_fd_payload_crc(int fd, struct kvc_crc_tracker *tracker, bool read_if_untracked,
		       struct kvc_meta *meta, uint32_t *crc, struct kvc_err *err);

/* Store crc as the slab's payload_crc32c in fd. */
int kvc_seal_write_crc(int fd, uint32_t crc, struct kvc_err *err);

#endif
