/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "test_util.h"

uint8_t *read_whole(const char *path, size_t *len)
{
	gchar *data = NULL;
	gsize n = 0;

	if (!g_file_get_contents(path, &data, &n, NULL))
		fail_msg("cannot read %s", path);
	*len = n;
	return (uint8_t *)data;
}

char *vector_path(const char *rel)
{
	const char *base = getenv("KVC_VECTORS");

	if (base == NULL)
		fail_msg("KVC_VECTORS is not set");
	return g_build_filename(base, rel, NULL);
}

char *make_temp_dir(void)
{
	char *dir = g_dir_make_tmp("kvc-test-XXXXXX", NULL);

	assert_non_null(dir);
	return dir;
}

void rm_rf(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	if (d == NULL)
		return;
	while ((name = g_dir_read_name(d)) != NULL) {
		char *p = g_build_filename(dir, name, NULL);
		g_unlink(p);
		g_free(p);
	}
	g_dir_close(d);
	g_rmdir(dir);
}

int count_entries(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	int n = 0;

	assert_non_null(d);
	while (g_dir_read_name(d) != NULL)
		n++;
	g_dir_close(d);
	return n;
}
