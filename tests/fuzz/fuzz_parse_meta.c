/* SPDX-License-Identifier: MIT */
/* libFuzzer: the metadata parser on arbitrary bytes, with each flag set. */
#include <stddef.h>
#include <stdint.h>

#include <kvc/kvc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned flag_sets[] = { 0, KVC_PARSE_PROMPT, KVC_PARSE_LIGHT };
	const void *ctx = data;
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_err err;

	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		kvc_source_from_buf(&src, &ctx, size);
		if (kvc_parse_meta(&src, flag_sets[i], &meta, &err) == 0) {
			struct kvc_key key;
			/* Whatever parses must be self-consistent. */
			if (meta.payload_offset + meta.payload_length != size ||
			    meta.payload_offset > size)
				__builtin_trap();
			/* Parsed: the key was derived already, so this cannot fail. */
			if (kvc_meta_key(&meta, &key) < 0)
				__builtin_trap();
			kvc_meta_clear(&meta);
		}
	}
	return 0;
}
