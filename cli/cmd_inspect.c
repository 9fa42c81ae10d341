/* SPDX-License-Identifier: MIT */
/* kvc inspect: every header, trailer and TLV field of slab files. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"

struct inspected {
	struct kvc_meta meta;
	char payload_sha256[65];
	char tokens_sha256[65];
	char key[KVC_KEY_HEX_LEN + 1];
};

static void hash_observer(void *ctx, const void *data, size_t len)
{
	g_checksum_update(ctx, data, (gssize)len);
}

static void tokens_sha256(const struct kvc_meta *m, char out[65])
{
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);

	for (uint32_t i = 0; i < m->n_tokens; i++) {
		uint8_t b[4] = { (uint8_t)m->tokens[i], (uint8_t)(m->tokens[i] >> 8),
				 (uint8_t)(m->tokens[i] >> 16), (uint8_t)(m->tokens[i] >> 24) };
		g_checksum_update(sum, b, 4);
	}
	g_strlcpy(out, g_checksum_get_string(sum), 65);
	g_checksum_free(sum);
}

/* Full verification against the name's key when the name is a key. */
static int inspect_file(const char *path, struct inspected *r, struct kvc_err *err)
{
	g_autofree char *base = g_path_get_basename(path);
	struct kvc_key named, actual;
	bool has_name_key = kvc_key_from_slab_name(base, &named);
	struct kvc_source src;
	GChecksum *sum;
	struct stat st;
	int fd, rc;

	fd = input_open_regular(path, &st, err);
	if (fd < 0)
		return -1;
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	sum = g_checksum_new(G_CHECKSUM_SHA256);
	rc = kvc_verify(&src, KVC_PARSE_PROMPT, has_name_key ? &named : NULL, &r->meta,
			hash_observer, sum, err);
	close(fd);
	if (rc == 0) {
		g_strlcpy(r->payload_sha256, g_checksum_get_string(sum), 65);
		tokens_sha256(&r->meta, r->tokens_sha256);
		if (kvc_meta_key(&r->meta, &actual) < 0)
			rc = kvc_err_set(err, KVC_E_NO_MEMORY, "SHA-256 of the key");
		else
			kvc_key_to_hex(&actual, r->key);
	}
	g_checksum_free(sum);
	return rc;
}

static void json_blob(GString *o, const char *name, const struct kvc_blob *b)
{
	g_string_append_printf(o, ", \"%s\": ", name);
	if (b->present)
		json_append_string(o, b->data, b->len);
	else
		g_string_append(o, "null");
}

static void json_token(GString *o, const char *name, const struct kvc_meta *m, bool first)
{
	if (m->n_tokens == 0)
		g_string_append_printf(o, ", \"%s\": null", name);
	else
		g_string_append_printf(o, ", \"%s\": %" PRIu32, name,
				       first ? m->tokens[0] : m->tokens[m->n_tokens - 1]);
}

static void print_json(const char *path, const struct inspected *r)
{
	const struct kvc_meta *m = &r->meta;
	g_autoptr(GString) o = g_string_new("{\"file\": ");
	g_autofree char *prompt_hex = g_malloc((size_t)m->prompt.len * 2 + 1);
	char fp[65], ctx[65];

	kvc_hex_encode(m->fingerprint, 32, fp);
	kvc_hex_encode(m->ctx_params_hash, 32, ctx);
	kvc_hex_encode((const uint8_t *)m->prompt.data, m->prompt.len, prompt_hex);
	json_append_string(o, path, strlen(path));
	g_string_append_printf(o,
		", \"valid\": true, \"key\": \"%s\", \"file_size\": %" PRIu64
		", \"version\": %u, \"fingerprint\": \"%s\", \"ctx_params_hash\": \"%s\""
		", \"quant_type\": \"%s\", \"quant_byte\": %u, \"fingerprint_mode\": \"%s\""
		", \"save_reason\": \"%s\", \"quant_bits\": %u, \"context_size\": %" PRIu32
		", \"creation_time\": %" PRIu64 ", \"last_used_time\": %" PRIu64
		", \"hit_count\": %" PRIu32 ", \"cached_token_count\": %" PRIu32
		", \"token_count\": %" PRIu32,
		r->key, m->file_size, m->version, fp, ctx, kvc_quant_name(m->quant_byte),
		m->quant_byte, kvc_fingerprint_mode_name(m->fingerprint_mode),
		kvc_save_reason_name(m->save_reason), m->quant_bits, m->context_size,
		m->creation_time, m->last_used_time, m->hit_count, m->cached_token_count,
		m->n_tokens);
	json_token(o, "first_token", m, true);
	json_token(o, "last_token", m, false);
	g_string_append_printf(o,
		", \"tokens_le32_sha256\": \"%s\", \"payload_length\": %" PRIu64
		", \"payload_byte_count\": %" PRIu64 ", \"payload_crc32c\": %" PRIu32
		", \"payload_offset\": %" PRIu64 ", \"payload_sha256\": \"%s\", \"prompt_text\": ",
		r->tokens_sha256, m->payload_length, m->payload_byte_count,
		m->payload_crc32c, m->payload_offset, r->payload_sha256);
	json_append_string(o, m->prompt.data ? m->prompt.data : "", m->prompt.len);
	g_string_append_printf(o, ", \"prompt_text_length\": %" PRIu32
			       ", \"prompt_text_hex\": \"%s\"", m->prompt.len, prompt_hex);
	json_blob(o, "hostname", &m->hostname);
	json_blob(o, "writer_version", &m->writer_version);
	/* The reference names the writer-version TLV after itself. */
	json_blob(o, "erllama_version", &m->writer_version);
	json_blob(o, "save_reason_detail", &m->save_reason_detail);
	g_string_append(o, "}");
	printf("%s\n", o->str);
}

static void print_json_error(const char *path, const struct kvc_err *err)
{
	g_autoptr(GString) o = g_string_new("{\"file\": ");

	json_append_string(o, path, strlen(path));
	g_string_append_printf(o, ", \"valid\": false, \"error_tag\": \"%s\", \"error\": ",
			       kvc_tag_name(err->tag));
	json_append_string(o, err->detail, strlen(err->detail));
	g_string_append(o, "}");
	printf("%s\n", o->str);
}

static void print_blob(const char *name, const struct kvc_blob *b)
{
	if (!b->present)
		return;
	g_autoptr(GString) s = g_string_new(NULL);
	json_append_string(s, b->data, b->len);
	printf("%-20s %s\n", name, s->str);
}

static void print_text(const char *path, const struct inspected *r)
{
	const struct kvc_meta *m = &r->meta;
	char fp[65], ctx[65];

	kvc_hex_encode(m->fingerprint, 32, fp);
	kvc_hex_encode(m->ctx_params_hash, 32, ctx);
	printf("%s:\n", path);
	printf("%-20s %s\n", "key", r->key);
	printf("%-20s %u\n", "version", m->version);
	printf("%-20s %" PRIu64 "\n", "file_size", m->file_size);
	printf("%-20s %s\n", "quant_type", kvc_quant_name(m->quant_byte));
	printf("%-20s %u\n", "quant_byte", m->quant_byte);
	printf("%-20s %u\n", "quant_bits", m->quant_bits);
	printf("%-20s %s\n", "save_reason", kvc_save_reason_name(m->save_reason));
	printf("%-20s %s\n", "fingerprint_mode", kvc_fingerprint_mode_name(m->fingerprint_mode));
	printf("%-20s %s\n", "fingerprint", fp);
	printf("%-20s %s\n", "ctx_params_hash", ctx);
	printf("%-20s %" PRIu32 "\n", "context_size", m->context_size);
	printf("%-20s %" PRIu32 "\n", "cached_token_count", m->cached_token_count);
	printf("%-20s %" PRIu32 "\n", "token_count", m->n_tokens);
	printf("%-20s %" PRIu32 "\n", "hit_count", m->hit_count);
	printf("%-20s %" PRIu64 "\n", "creation_time", m->creation_time);
	printf("%-20s %" PRIu64 "\n", "last_used_time", m->last_used_time);
	printf("%-20s %" PRIu64 "\n", "payload_offset", m->payload_offset);
	printf("%-20s %" PRIu64 "\n", "payload_length", m->payload_length);
	printf("%-20s 0x%08" PRIx32 "\n", "payload_crc32c", m->payload_crc32c);
	printf("%-20s %s\n", "payload_sha256", r->payload_sha256);
	print_blob("prompt", &m->prompt);
	print_blob("hostname", &m->hostname);
	print_blob("writer_version", &m->writer_version);
	print_blob("save_reason_detail", &m->save_reason_detail);
}

int cmd_inspect(int argc, char **argv)
{
	gboolean json = FALSE;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &json, "one JSON object per file, one per line", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("FILE... - print every field");
	int rc = CLI_OK, parsed;

	g_option_context_add_main_entries(ctx, entries, NULL);
	parsed = cli_parse(ctx, &argc, &argv);
	if (parsed != 0)
		return parsed > 0 ? CLI_OK : CLI_USAGE;
	if (argc < 2) {
		fprintf(stderr, "kvc inspect: no FILE given\n");
		return CLI_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		struct inspected r;
		struct kvc_err err;

		memset(&r, 0, sizeof(r));
		if (inspect_file(argv[i], &r, &err) < 0) {
			if (json)
				print_json_error(argv[i], &err);
			else
				fprintf(stderr, "%s: %s: %s\n", argv[i], kvc_tag_name(err.tag), err.detail);
			rc = CLI_NO;
			continue;
		}
		if (json)
			print_json(argv[i], &r);
		else
			print_text(argv[i], &r);
		kvc_meta_clear(&r.meta);
	}
	return rc;
}
