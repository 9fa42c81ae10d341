/* SPDX-License-Identifier: MIT */
/* Built only when ISA-L was not found at configure time: the portable code. */
#include <kvc/crc32c.h>

uint32_t kvc_crc32c(uint32_t crc, const void *data, size_t len)
{
	return kvc_crc32c_portable(crc, data, len);
}

kvc_crc32c_fn kvc_crc32c_isal(void)
{
	return NULL;
}

const char *kvc_crc32c_impl_name(void)
{
	return "portable";
}
