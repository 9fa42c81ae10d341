/* SPDX-License-Identifier: MIT */
/* kvc stats: a kvcfs mount's counters, for humans. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "input.h"

/* The counters are a few kilobytes of text; anything much larger is not
 * a kvcfs metrics file. */
#define METRICS_MAX_BYTES (1u << 20)

/* One metric as the mount names it (the names of docs/guide.md), its
 * value, and the value in a unit a human reads for sizes and times. */
static void print_metric(const char *name, const char *value)
{
	double v = g_ascii_strtod(value, NULL);

	if (g_str_has_suffix(name, "_bytes") || strcmp(name, "kvcfs_bytes") == 0) {
		g_autofree char *human = g_format_size_full((guint64)v, G_FORMAT_SIZE_IEC_UNITS);
		printf("%-40s %s (%s)\n", name, value, human);
	} else if (g_str_has_suffix(name, "_seconds_sum")) {
		printf("%-40s %s s\n", name, value);
	} else {
		printf("%-40s %s\n", name, value);
	}
}

int cmd_stats(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("MOUNT - print a mount's counters");
	struct kvc_err err;
	size_t len;
	g_autofree char *path = NULL, *text = NULL;
	g_auto(GStrv) lines = NULL;

	int parsed = cli_parse(ctx, &argc, &argv);

	if (parsed != 0)
		return parsed > 0 ? CLI_OK : CLI_USAGE;
	if (argc != 2) {
		fprintf(stderr, "kvc stats: give exactly one MOUNT\n");
		return CLI_USAGE;
	}
	path = g_build_filename(argv[1], ".kvcfs", "metrics", NULL);
	if (input_read_capped(path, METRICS_MAX_BYTES, &text, &len, &err) < 0) {
		fprintf(stderr, "kvc stats: %s (is %s a kvcfs mount?)\n", err.detail, argv[1]);
		return CLI_USAGE;
	}
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l != NULL; l++) {
		char *space;
		if ((*l)[0] == '#' || (*l)[0] == '\0')
			continue;
		space = strrchr(*l, ' ');
		if (space == NULL)
			continue;
		*space = '\0';
		print_metric(*l, space + 1);
	}
	return CLI_OK;
}
