/* SPDX-License-Identifier: MIT */
#ifndef KVC_CLI_H
#define KVC_CLI_H

#include <glib.h>

#include <kvc/kvc.h>

/* Exit codes: 0 ok, 1 negative answer (invalid file, lookup miss),
 * 2 usage or environment error. */
#define CLI_OK 0
#define CLI_NO 1
#define CLI_USAGE 2

int cmd_key(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_lookup(int argc, char **argv);
int cmd_stats(int argc, char **argv);

/* The options that identify a key, shared by key, build and lookup. */
struct key_options {
	char *fingerprint_hex;
	char *quant;
	char *ctx_hex;
	char *tokens;
	char *tokens_file;
	char *tokens_file_help; /* --help text with the size limit */
};

/* The key options, required by every command that takes them, are added
 * first to the main group so that --help lists them first. */
void key_options_add(GOptionContext *ctx, struct key_options *ko);
/* Turn the parsed options into a key input; tokens are g_malloc'd into
 * *tokens_out. Prints a one-line error and returns -1 on bad input. */
int key_options_resolve(const struct key_options *ko, struct kvc_key_input *in,
			uint32_t **tokens_out);
void key_options_free(struct key_options *ko);

/* Parse a subcommand's options. Returns 0 to go on, 1 when --help was
 * printed (exit CLI_OK), -1 after printing an error (exit CLI_USAGE). */
int cli_parse(GOptionContext *ctx, int *argc, char ***argv);

/* JSON output helpers. */
void json_append_string(GString *out, const char *s, size_t len);

#endif
