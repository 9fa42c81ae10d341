/* SPDX-License-Identifier: MIT */
/* kvc verify: the full check of each file, against its name's key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"

static int verify_path(const char *path, struct kvc_err *err)
{
	g_autofree char *base = g_path_get_basename(path);
	struct kvc_key named;
	struct kvc_meta meta;
	bool keyed = kvc_key_from_slab_name(base, &named);
	struct stat st;
	int fd, rc;

	fd = input_open_regular(path, &st, err);
	if (fd < 0)
		return -1;
	rc = kvc_verify_fd(fd, 0, keyed ? &named : NULL, &meta, err);
	close(fd);
	if (rc == 0)
		kvc_meta_clear(&meta);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("FILE... - check files fully");
	int rc = CLI_OK, parsed;

	g_option_context_set_description(ctx,
		"Prints 'FILE: ok' or 'FILE: TAG: DETAIL' per file. When a file is\n"
		"named <64 hex>.kvc its content must also derive to that key.\n"
		"Only regular files are read (a FIFO or device is refused).\n"
		"Exit status 0 only if every file is valid.");
	parsed = cli_parse(ctx, &argc, &argv);
	if (parsed != 0)
		return parsed > 0 ? CLI_OK : CLI_USAGE;
	if (argc < 2) {
		fprintf(stderr, "kvc verify: no FILE given\n");
		return CLI_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		struct kvc_err err;
		if (verify_path(argv[i], &err) == 0) {
			printf("%s: ok\n", argv[i]);
		} else {
			printf("%s: %s: %s\n", argv[i], kvc_tag_name(err.tag), err.detail);
			rc = CLI_NO;
		}
	}
	return rc;
}
