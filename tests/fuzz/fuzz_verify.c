/* SPDX-License-Identifier: MIT */
/* libFuzzer: full verification, and the build -> verify round trip of
 * whatever parses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kvc/kvc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const void *ctx = data;
	struct kvc_source src;
	struct kvc_meta meta;
	struct kvc_err err;
	struct kvc_key key;

	kvc_source_from_buf(&src, &ctx, size);
	if (kvc_verify(&src, KVC_PARSE_PROMPT, NULL, &meta, NULL, NULL, &err) != 0) {
		if (!kvc_tag_is_format_error(err.tag))
			__builtin_trap(); /* a buffer cannot fail with I/O */
		return 0;
	}
	if (kvc_meta_key(&meta, &key) < 0) { /* out of memory: nothing to check */
		kvc_meta_clear(&meta);
		return 0;
	}
	/* The same file verifies against its own key... */
	kvc_source_from_buf(&src, &ctx, size);
	{
		struct kvc_meta again;
		if (kvc_verify(&src, 0, &key, &again, NULL, NULL, &err) != 0)
			__builtin_trap();
		kvc_meta_clear(&again);
	}
	/* ...and rebuilding its prefix gives a file that verifies too. */
	{
		uint8_t *prefix = NULL;
		size_t plen;
		if (kvc_build_prefix(&meta, meta.payload_length, meta.payload_crc32c, &prefix,
				     &plen, &err) == 0) {
			size_t total = plen + meta.payload_length;
			uint8_t *whole = malloc(total ? total : 1);
			const void *wctx = whole;
			struct kvc_meta rebuilt;
			memcpy(whole, prefix, plen);
			memcpy(whole + plen, data + meta.payload_offset, meta.payload_length);
			kvc_source_from_buf(&src, &wctx, total);
			if (kvc_verify(&src, 0, &key, &rebuilt, NULL, NULL, &err) != 0)
				__builtin_trap();
			kvc_meta_clear(&rebuilt);
			free(whole);
			free(prefix);
		}
	}
	kvc_meta_clear(&meta);
	return 0;
}
