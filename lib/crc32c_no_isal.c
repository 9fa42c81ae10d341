/* SPDX-License-Identifier: MIT */
/* Built only when ISA-L was not found at configure time. */
#include <kvc/crc32c.h>

kvc_crc32c_fn kvc_crc32c_isal(void)
{
	return NULL;
}
