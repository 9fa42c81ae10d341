/* SPDX-License-Identifier: MIT */
/* What a name in one of the mount's directories means. */
#include <errno.h>
#include <string.h>

#include "kvcfs.h"

enum name_class classify_name(const char *name, bool in_root, struct kvc_key *key, int *err)
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
	if (in_root && (strcmp(name, PAYLOAD_DIR_NAME) == 0 || strcmp(name, META_DIR_NAME) == 0))
		return NAME_RESERVED;
	if (kvc_key_from_slab_name(name, key))
		return NAME_SLAB;
	return NAME_STAGING;
}

bool dir_name_ok(const char *name, bool in_root)
{
	struct kvc_key key;
	char host[65];
	long pid;
	size_t len = strlen(name);
	int err;

	/* A temp's name or a set-aside directory's would be swept or left
	 * alone by the store as its own. */
	/* A bare key would shadow a slab's payload view (payload/<dir>/<key>). */
	if (len == KVC_KEY_HEX_LEN && kvc_key_from_hex(name, len, &key))
		return false;
	return classify_name(name, in_root, &key, &err) == NAME_STAGING &&
	       !kvc_tmp_name_parse(name, host, &pid) &&
	       !(len >= 8 && strcmp(name + len - 8, ".kvcgone") == 0) &&
	       !(len >= 8 && strcmp(name + len - 8, ".kvcpart") == 0);
}
