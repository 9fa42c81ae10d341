/* SPDX-License-Identifier: MIT */
/* What a name in the mount's root means. */
#include <errno.h>
#include <string.h>

#include "kvcfs.h"

enum name_class classify_name(const char *name, struct kvc_key *key, int *err)
{
	size_t len = strlen(name);

	*err = 0;
	if (len == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		*err = EINVAL;
		return NAME_INVALID;
	}
	if (len > 255) {
		*err = ENAMETOOLONG;
		return NAME_INVALID;
	}
	if (strchr(name, '/') != NULL) {
		*err = EINVAL;
		return NAME_INVALID;
	}
	if (strcmp(name, PAYLOAD_DIR_NAME) == 0 || strcmp(name, META_DIR_NAME) == 0)
		return NAME_RESERVED;
	if (kvc_key_from_slab_name(name, key))
		return NAME_SLAB;
	return NAME_STAGING;
}
