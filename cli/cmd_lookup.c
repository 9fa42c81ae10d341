/* SPDX-License-Identifier: MIT */
/* kvc lookup: the longest prefix of a token list that has a slab. */
#include <stdio.h>
#include <sys/stat.h>

#include "cli.h"

int cmd_lookup(int argc, char **argv)
{
	struct key_options ko = { 0 };
	gint64 stride = 1, min_len = 1;
	GOptionEntry entries[] = {
		{ "stride", 0, 0, G_OPTION_ARG_INT64, &stride, "probe lengths that are multiples of N (1)", "N" },
		{ "min", 0, 0, G_OPTION_ARG_INT64, &min_len, "shortest prefix worth restoring (1)", "N" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("DIR - longest cached prefix");
	g_autofree uint32_t *tokens = NULL;
	g_autofree size_t *lens = NULL;
	g_autofree struct kvc_key *keys = NULL;
	struct kvc_key_input in;
	size_t count;
	ssize_t filled;
	int rc = CLI_USAGE, parsed;

	g_option_context_set_description(ctx,
		"Probes DIR/<key>.kvc for the whole token list, then for each\n"
		"stride-aligned prefix from the longest down. Prints 'LENGTH KEY' and\n"
		"exits 0 on a hit; exits 1 on a miss.");
	key_options_add(ctx, &ko);
	g_option_context_add_main_entries(ctx, entries, NULL);
	parsed = cli_parse(ctx, &argc, &argv);
	if (parsed != 0) {
		rc = parsed > 0 ? CLI_OK : CLI_USAGE;
		goto out;
	}
	if (argc != 2) {
		fprintf(stderr, "kvc lookup: give exactly one DIR\n");
		goto out;
	}
	if (stride < 1 || stride > G_MAXINT32 || min_len < 0 || min_len > G_MAXINT32) {
		fprintf(stderr, "kvc lookup: --stride must be >= 1 and --min >= 0\n");
		goto out;
	}
	/* A directory that is not there is a mistake, not a miss (exit 1
	 * says "not cached"): say so, exit 2. */
	if (!g_file_test(argv[1], G_FILE_TEST_IS_DIR)) {
		fprintf(stderr, "kvc lookup: %s is not a directory\n", argv[1]);
		goto out;
	}
	if (key_options_resolve(&ko, &in, &tokens) < 0)
		goto out;
	count = kvc_prefix_key_count(in.n_tokens, (size_t)stride, (size_t)min_len);
	lens = g_new(size_t, count + 1);
	keys = g_new(struct kvc_key, count + 1);
	filled = kvc_prefix_keys(&in, (size_t)stride, (size_t)min_len, lens, keys);
	if (filled < 0) {
		perror("kvc lookup: SHA-256");
		goto out;
	}
	count = (size_t)filled;
	rc = CLI_NO;
	for (size_t i = count; i-- > 0;) {
		char name[KVC_SLAB_NAME_LEN + 1];
		g_autofree char *path = NULL;
		struct stat st;

		kvc_key_slab_name(&keys[i], name);
		path = g_build_filename(argv[1], name, NULL);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			name[KVC_KEY_HEX_LEN] = '\0';
			printf("%zu %s\n", lens[i], name);
			rc = CLI_OK;
			break;
		}
	}
out:
	key_options_free(&ko);
	return rc;
}
