/* SPDX-License-Identifier: MIT */
/* The metadata struct: names of enumerations, key, cleanup. */
#include <stdlib.h>
#include <string.h>

#include <kvc/format.h>

static const char *const save_reasons[] = {
	"unknown", "cold", "continued", "evict", "shutdown", "finish",
};

static const char *const fingerprint_modes[] = {
	"safe", "gguf_chunked", "fast_unsafe",
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static int index_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *kvc_save_reason_name(uint8_t v)
{
	return v < N_ELEMS(save_reasons) ? save_reasons[v] : NULL;
}

int kvc_save_reason_from_name(const char *name)
{
	return index_of(save_reasons, N_ELEMS(save_reasons), name);
}

const char *kvc_fingerprint_mode_name(uint8_t v)
{
	return v < N_ELEMS(fingerprint_modes) ? fingerprint_modes[v] : NULL;
}

int kvc_fingerprint_mode_from_name(const char *name)
{
	return index_of(fingerprint_modes, N_ELEMS(fingerprint_modes), name);
}

static void blob_clear(struct kvc_blob *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void kvc_meta_clear(struct kvc_meta *meta)
{
	if (meta == NULL)
		return;
	blob_clear(&meta->prompt);
	blob_clear(&meta->hostname);
	blob_clear(&meta->writer_version);
	blob_clear(&meta->save_reason_detail);
	free(meta->tokens);
	memset(meta, 0, sizeof(*meta));
}

int kvc_meta_key(const struct kvc_meta *meta, struct kvc_key *out)
{
	struct kvc_key_input in;

	if (meta->has_key) {
		*out = meta->key;
		return 0;
	}
	memcpy(in.fingerprint, meta->fingerprint, 32);
	in.quant_byte = meta->quant_byte;
	memcpy(in.ctx_params_hash, meta->ctx_params_hash, 32);
	in.tokens = meta->tokens;
	in.n_tokens = meta->n_tokens;
	return kvc_key_compute(&in, out);
}
