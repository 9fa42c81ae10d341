/* SPDX-License-Identifier: MIT */
/*
 * Sealing: fill in the payload CRC of a slab whose writer left it out.
 * The CRC is computed from the bytes as they are on disk now, so it only
 * protects them from here on; see "Sealed slabs" in docs/format.md.
 */
#include <errno.h>
#include <unistd.h>

#include <kvc/format.h>

#include "bytes.h"
#include "verify_internal.h"

int kvc_seal_write_crc(int fd, uint32_t crc, struct kvc_err *err)
{
	uint8_t field[4];
	ssize_t n;

	put_le32(field, crc);
	do
		n = pwrite(fd, field, sizeof(field), KVC_OFF_PAYLOAD_CRC32C);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kvc_err_sys(err, errno, "write payload_crc32c");
	if (n != (ssize_t)sizeof(field))
		return kvc_err_set(err, KVC_E_IO, "short write of payload_crc32c (%zd of 4 bytes)", n);
	return 0;
}

int kvc_seal_fd(int fd, struct kvc_err *err)
{
	struct kvc_meta meta;
	uint32_t crc;
	int rc;

	/* Where the payload is, and that the file is a slab at all: we do not
	 * write into anything else. */
	if (kvc_fd_payload_crc(fd, NULL, true, &meta, &crc, err) < 0)
		return -1;
	rc = crc != meta.payload_crc32c ? kvc_seal_write_crc(fd, crc, err) : 0;
	kvc_meta_clear(&meta);
	return rc;
}
