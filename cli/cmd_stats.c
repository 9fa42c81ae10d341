/* SPDX-License-Identifier: MIT */
/* kvc stats: a kvcfs mount's counters, for humans. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* The mount's root from any directory of it: the nearest one, going up,
 * with .kvcfs/metrics. NULL if none is. */
static char *mount_root_of(const char *dir)
{
	char real[PATH_MAX];
	g_autofree char *at = NULL;

	if (realpath(dir, real) == NULL)
		return NULL;
	at = g_strdup(real);
	for (;;) {
		g_autofree char *metrics = g_build_filename(at, ".kvcfs", "metrics", NULL);
		char *up;
		if (g_file_test(metrics, G_FILE_TEST_IS_REGULAR))
			return g_steal_pointer(&at);
		if (strcmp(at, "/") == 0)
			return NULL;
		up = g_path_get_dirname(at);
		g_free(at);
		at = up;
	}
}

/* A directory below the root: its own slabs (not its subdirectories'),
 * counted from its listing. */
static void print_directory(const char *dir)
{
	uint64_t slabs = 0, bytes = 0;
	struct dirent *d;
	DIR *it = opendir(dir);

	if (it == NULL)
		return;
	while ((d = readdir(it)) != NULL) {
		struct kvc_key key;
		struct stat st;
		if (!kvc_key_from_slab_name(d->d_name, &key) ||
		    fstatat(dirfd(it), d->d_name, &st, 0) < 0)
			continue;
		slabs++;
		bytes += (uint64_t)st.st_size;
	}
	closedir(it);
	printf("%-40s %" G_GUINT64_FORMAT "\n", "directory_slabs", slabs);
	{
		g_autofree char *human = g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
		printf("%-40s %" G_GUINT64_FORMAT " (%s)\n", "directory_bytes", bytes, human);
	}
}

int cmd_stats(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("DIR - print the counters of the mount DIR is in");
	struct kvc_err err;
	size_t len;
	g_autofree char *path = NULL, *text = NULL, *root = NULL, *here = NULL;
	g_auto(GStrv) lines = NULL;

	int parsed = cli_parse(ctx, &argc, &argv);

	if (parsed != 0)
		return parsed > 0 ? CLI_OK : CLI_USAGE;
	if (argc != 2) {
		fprintf(stderr, "kvc stats: give exactly one DIR (a mount, or a directory in one)\n");
		return CLI_USAGE;
	}
	/* Any directory of the mount: the mount's counters, and that
	 * directory's own slabs. */
	root = mount_root_of(argv[1]);
	path = g_build_filename(root != NULL ? root : argv[1], ".kvcfs", "metrics", NULL);
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
	here = realpath(argv[1], NULL);
	if (here != NULL && root != NULL && strcmp(here, root) != 0)
		print_directory(here);
	return CLI_OK;
}
