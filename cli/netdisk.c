// SPDX-License-Identifier: MIT
/* netdisk: the command line tool. main() dispatches to one subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcmd subcmds[] = {
	{ "keygen", nd_cmd_keygen, "create a pre-shared key" },
	{ "info", nd_cmd_info, "show an export's size, block size and flags" },
	{ "exports", nd_cmd_exports, "list the exports this identity may use" },
	{ "copy", nd_cmd_copy, "copy a local file or device to or from an export" },
	{ "bench", nd_cmd_bench, "measure IOPS, throughput and latency" },
	{ "attach", nd_cmd_attach, "attach an export as /dev/netdiskN (kernel module)" },
	{ "detach", nd_cmd_detach, "detach a /dev/netdiskN device" },
	{ "list", nd_cmd_list, "list attached devices" },
	{ "boot", nd_cmd_boot, "attach the netdisk= devices of the kernel command line" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: netdisk COMMAND [ARGS...]\n"
		"       netdisk help [COMMAND] | --help | --version\n"
		"\n"
		"Encrypted network block device client (protocol %d).\n"
		"\n"
		"commands:\n", ND_VERSION);
	for (i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(f, "  %-8s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f,
		"\n"
		"URLs are netdisk://HOST[:PORT][/EXPORT] (default port %d, export\n"
		"'default'); HOST is a name, an IPv4 address or [IPv6]. Sizes take\n"
		"k, m, g suffixes (powers of 1024). 'netdisk COMMAND --help' for details.\n"
		"\n"
		"exit codes: 0 ok, 1 error, 2 bad arguments, 3 cannot connect,\n"
		"4 authentication failed, 5 export busy, 6 read-only, 7 out of range,\n"
		"8 no such export, 9 module not loaded, 10 device busy,\n"
		"11 protocol error or connection lost, 12 access denied\n",
		ND_DEFAULT_PORT);
}

static const struct subcmd *find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (!strcmp(subcmds[i].name, name))
			return &subcmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct subcmd *sc;

	/* Writes to a closed socket or pipe must be errors, not death. */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		nd_err("missing command (see 'netdisk --help')");
		return ND_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return ND_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("netdisk %s (protocol %d)\n", NETDISK_VERSION, ND_VERSION);
		return ND_EXIT_OK;
	}
	if (!strcmp(argv[1], "help")) {
		char *help_argv[] = { NULL, (char *)"--help", NULL };

		if (argc < 3) {
			usage(stdout);
			return ND_EXIT_OK;
		}
		sc = find(argv[2]);
		if (!sc) {
			nd_err("unknown command '%s' (see 'netdisk --help')", argv[2]);
			return ND_EXIT_USAGE;
		}
		help_argv[0] = argv[2];
		return sc->fn(2, help_argv);
	}
	sc = find(argv[1]);
	if (!sc) {
		if (argv[1][0] == '-')
			nd_err("unknown option '%s' (see 'netdisk --help')", argv[1]);
		else
			nd_err("unknown command '%s' (see 'netdisk --help')", argv[1]);
		return ND_EXIT_USAGE;
	}
	/* Subcommands see their own name as argv[0], getopt-style. */
	return sc->fn(argc - 1, argv + 1);
}
