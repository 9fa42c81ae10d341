/* SPDX-License-Identifier: MIT */
/* What several subcommands share: key options, tokens, option parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokens.h"

void key_options_add(GOptionContext *ctx, struct key_options *ko)
{
	GOptionEntry entries[] = {
		{ "fingerprint", 0, 0, G_OPTION_ARG_STRING, &ko->fingerprint_hex,
		  "(required) model fingerprint, 64 hex digits", "HEX" },
		{ "quant", 0, 0, G_OPTION_ARG_STRING, &ko->quant,
		  "(required) quant type name (f16, q4_k_m, ...)", "NAME" },
		{ "ctx", 0, 0, G_OPTION_ARG_STRING, &ko->ctx_hex,
		  "(required) ctx_params_hash, 64 hex digits", "HEX" },
		{ "tokens", 0, 0, G_OPTION_ARG_STRING, &ko->tokens,
		  "(required: this or --tokens-file) token ids, comma-separated", "1,2,3" },
		{ "tokens-file", 0, 0, G_OPTION_ARG_FILENAME, &ko->tokens_file,
		  NULL, "FILE" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};

	/* The limit is computed, so the text is made here; GOption keeps
	 * the pointer, key_options_free() frees it. */
	ko->tokens_file_help = g_strdup_printf(
		"(required: this or --tokens) u32 little-endian ids; a regular file of at most %zu bytes",
		TOKENS_FILE_MAX_BYTES);
	entries[4].description = ko->tokens_file_help;
	g_option_context_add_main_entries(ctx, entries, NULL);
}

static int parse_hash(const char *what, const char *hex, uint8_t out[32])
{
	if (hex == NULL) {
		fprintf(stderr, "kvc: --%s is required\n", what);
		return -1;
	}
	if (!kvc_hex_decode(hex, strlen(hex), out, 32)) {
		fprintf(stderr, "kvc: --%s must be 64 hex digits\n", what);
		return -1;
	}
	return 0;
}

int key_options_resolve(const struct key_options *ko, struct kvc_key_input *in,
			uint32_t **tokens_out)
{
	int quant;

	memset(in, 0, sizeof(*in));
	if (parse_hash("fingerprint", ko->fingerprint_hex, in->fingerprint) < 0 ||
	    parse_hash("ctx", ko->ctx_hex, in->ctx_params_hash) < 0)
		return -1;
	if (ko->quant == NULL) {
		fprintf(stderr, "kvc: --quant is required\n");
		return -1;
	}
	quant = kvc_quant_byte(ko->quant);
	if (quant < 0) {
		fprintf(stderr, "kvc: unknown quant type '%s'; one of:", ko->quant);
		for (int b = 0; kvc_quant_name((uint8_t)b) != NULL; b++)
			fprintf(stderr, " %s", kvc_quant_name((uint8_t)b));
		fprintf(stderr, "\n");
		return -1;
	}
	in->quant_byte = (uint8_t)quant;
	if ((ko->tokens == NULL) == (ko->tokens_file == NULL)) {
		fprintf(stderr, "kvc: give exactly one of --tokens and --tokens-file\n");
		return -1;
	}
	if (ko->tokens != NULL ? tokens_parse_list(ko->tokens, tokens_out, &in->n_tokens)
			       : tokens_read_file(ko->tokens_file, tokens_out, &in->n_tokens))
		return -1;
	in->tokens = *tokens_out;
	return 0;
}

void key_options_free(struct key_options *ko)
{
	g_free(ko->fingerprint_hex);
	g_free(ko->quant);
	g_free(ko->ctx_hex);
	g_free(ko->tokens);
	g_free(ko->tokens_file);
	g_free(ko->tokens_file_help);
}

/* GOption's help text, in plain ASCII whatever the locale: glib writes
 * "[OPTION\u2026]" and g_print() turns it into "[OPTION?]" in a C locale. */
static void print_help(GOptionContext *ctx)
{
	static const char ellipsis[] = "\u2026";
	g_autofree char *help = g_option_context_get_help(ctx, FALSE, NULL);

	for (const char *p = help; *p != '\0'; p++) {
		if (strncmp(p, ellipsis, sizeof(ellipsis) - 1) == 0) {
			fputs("...", stdout);
			p += sizeof(ellipsis) - 2;
		} else {
			putchar(*p);
		}
	}
}

int cli_parse(GOptionContext *ctx, int *argc, char ***argv)
{
	g_autoptr(GError) gerr = NULL;
	gboolean help = FALSE;
	GOptionEntry help_entry[] = {
		{ "help", 'h', 0, G_OPTION_ARG_NONE, &help, "show this help", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};

	g_option_context_set_help_enabled(ctx, FALSE);
	g_option_context_add_main_entries(ctx, help_entry, NULL);
	if (!g_option_context_parse(ctx, argc, argv, &gerr)) {
		fprintf(stderr, "kvc: %s\n", gerr->message);
		return -1;
	}
	if (help) {
		print_help(ctx);
		return 1;
	}
	return 0;
}

void json_append_string(GString *out, const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	g_string_append_c(out, '"');
	while (p < end) {
		gunichar c = *p == '\0' ? 0 : g_utf8_get_char_validated(p, end - p);
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* Untrusted text that is not UTF-8: say so, do not
			 * emit invalid JSON. The hex form keeps the bytes. */
			g_string_append(out, "\\ufffd");
			p++;
			continue;
		}
		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", (char)c);
		else if (c == '\n')
			g_string_append(out, "\\n");
		else if (c == '\t')
			g_string_append(out, "\\t");
		else if (c == '\r')
			g_string_append(out, "\\r");
		else if (c < 0x20 || c == 0x7f)
			g_string_append_printf(out, "\\u%04x", c);
		else
			g_string_append_len(out, p, g_utf8_next_char(p) - p);
		p = g_utf8_next_char(p);
	}
	g_string_append_c(out, '"');
}
