/* SPDX-License-Identifier: MIT */
/* kvc key: print the cache key of a token list. */
#include <stdio.h>

#include "cli.h"

int cmd_key(int argc, char **argv)
{
	struct key_options ko = { 0 };
	g_autoptr(GOptionContext) ctx = g_option_context_new("- print the 64-hex cache key");
	g_autofree uint32_t *tokens = NULL;
	struct kvc_key_input in;
	struct kvc_key key;
	char hex[KVC_KEY_HEX_LEN + 1];
	int rc = CLI_USAGE, parsed;

	key_options_add(ctx, &ko);
	parsed = cli_parse(ctx, &argc, &argv);
	if (parsed != 0) {
		rc = parsed > 0 ? CLI_OK : CLI_USAGE;
		goto out;
	}
	if (argc > 1) {
		fprintf(stderr, "kvc key: unexpected argument '%s'\n", argv[1]);
		goto out;
	}
	if (key_options_resolve(&ko, &in, &tokens) < 0)
		goto out;
	if (kvc_key_compute(&in, &key) < 0) {
		perror("kvc key: SHA-256");
		goto out;
	}
	kvc_key_to_hex(&key, hex);
	printf("%s\n", hex);
	rc = CLI_OK;
out:
	key_options_free(&ko);
	return rc;
}
