/* SPDX-License-Identifier: MIT */
/* kvc: the operator's and developer's tool for KVC v1 slabs. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "key", cmd_key, "print the cache key of a token list" },
	{ "build", cmd_build, "write a slab durably from a payload file" },
	{ "inspect", cmd_inspect, "print every field of slab files" },
	{ "verify", cmd_verify, "fully check slab files (CRC, key)" },
	{ "lookup", cmd_lookup, "find the longest cached prefix of a token list" },
	{ "stats", cmd_stats, "print a kvcfs mount's counters" },
};

static void usage(FILE *to)
{
	fprintf(to, "Usage: kvc COMMAND [OPTIONS]\n\nCommands:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(to, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(to, "\nRun 'kvc COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("kvc %s\n", KVC_VERSION_STRING);
		return CLI_OK;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			g_autofree char *prgname = g_strconcat("kvc ", commands[i].name, NULL);
			/* "Usage: kvc build ..." rather than "Usage: build ...". */
			g_set_prgname(prgname);
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "kvc: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}
