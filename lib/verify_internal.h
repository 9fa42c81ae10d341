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

#endif
