/* SPDX-License-Identifier: MIT */
/* libFuzzer: every parser of text a user or a request hands us: token
 * lists and token files (kvc), hex keys and slab names, quant names, size
 * options (kvcfs -o max_size=), names in the mount, temp names. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kvc/kvc.h>

#include "../../cli/tokens.h"
#include "../../fs/options.h"

enum name_class { NAME_INVALID, NAME_RESERVED, NAME_SLAB, NAME_STAGING };
/* fs/nodes.h's, which needs all of the daemon's headers. */
enum name_class classify_name(const char *name, bool in_root, struct kvc_key *key, int *err);
bool dir_name_ok(const char *name, bool in_root);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	uint32_t *tokens = NULL;
	size_t n;
	uint64_t bytes;
	struct kvc_key key;
	uint8_t raw[32];
	char host[65];
	long pid;
	int e;

	memcpy(text, data, size);
	text[size] = '\0'; /* C strings stop at the first NUL, as in argv */
	if (tokens_parse_list(text, &tokens, &n) == 0)
		g_free(tokens);
	if (tokens_decode_le32(data, size, &tokens, &n) == 0) {
		if (n != size / 4)
			__builtin_trap();
		g_free(tokens);
	}
	kvc_hex_decode(text, strlen(text), raw, sizeof(raw));
	if (kvc_key_from_slab_name(text, &key)) {
		char name[KVC_SLAB_NAME_LEN + 1];
		kvc_key_slab_name(&key, name);
		if (strcmp(name, text) != 0)
			__builtin_trap(); /* a name maps to one key and back */
	}
	kvc_quant_byte(text);
	parse_size(text, &bytes);
	for (int in_root = 0; in_root < 2; in_root++) {
		enum name_class cls = classify_name(text, in_root, &key, &e);
		/* A directory's name is one a staging file could have. */
		if (dir_name_ok(text, in_root) && cls != NAME_STAGING)
			__builtin_trap();
	}
	kvc_tmp_name_parse(text, host, &pid);
	free(text);
	return 0;
}
