/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C from ISA-L, which picks its fastest code for this CPU at run time.
 *
 * crc32_iscsi() runs the reflected Castagnoli register from the value it is
 * given and returns the register as it ends: no inversion on either side.
 * The standard CRC-32C (and ours, incremental: the previous result is the
 * next call's crc) inverts the register before and after, so
 *     kvc_crc32c(crc, p, n) == ~crc32_iscsi(p, n, ~crc).
 * Its length is an int, so very long buffers go in pieces.
 */
#include <limits.h>

#include <isa-l/crc.h>

#include <kvc/crc32c.h>

#define ISAL_MAX_PIECE ((size_t)1 << 30)

static uint32_t crc32c_isal(uint32_t crc, const void *data, size_t len)
{
	/* ISA-L only reads the buffer; its prototype lacks the const. */
	unsigned char *p = (unsigned char *)(uintptr_t)data;
	unsigned int reg = ~crc;

	while (len > 0) {
		size_t n = len < ISAL_MAX_PIECE ? len : ISAL_MAX_PIECE;
		reg = crc32_iscsi(p, (int)n, reg);
		p += n;
		len -= n;
	}
	return ~reg;
}

kvc_crc32c_fn kvc_crc32c_isal(void)
{
	return crc32c_isal;
}
