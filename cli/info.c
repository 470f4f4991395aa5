// SPDX-License-Identifier: MIT
/* netdisk info URL: what the server says about an export. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static void info_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk info URL --key-file FILE [--json]\n"
		"\n"
		"Connects (read-only access), prints the export's size, block size,\n"
		"maximum request payload and the flags of that read-only session,\n"
		"and disconnects.\n"
		"\n"
		"options:\n"
		ND_COMMON_USAGE
		"  --json            machine-readable output\n");
}

int nd_cmd_info(int argc, char **argv)
{
	enum { OPT_JSON = ND_OPT_FIRST_PRIVATE };
	static const struct option lo[] = {
		ND_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_common_opts co = { 0 };
	const struct nd_session_info *si;
	struct nd_client *c;
	struct nd_url u;
	char human[32], flags[128], canon[400];
	bool json = false;
	int opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		rc = nd_common_opt(opt, optarg, &co);
		if (rc < 0)
			return ND_EXIT_USAGE;
		if (rc)
			continue;
		switch (opt) {
		case 'h':
			info_usage(stdout);
			return ND_EXIT_OK;
		case OPT_JSON:
			json = true;
			break;
		default:
			return nd_bad_option("info", opt, argv);
		}
	}
	if (argc - optind != 1) {
		nd_err("info: expected one URL (usage: netdisk info URL --key-file FILE)");
		return ND_EXIT_USAGE;
	}

	rc = nd_cli_connect(argv[optind], &co, ND_CF_READ_ONLY, 1, 0, &c, &u);
	if (rc)
		return rc;
	si = nd_client_info(c);
	nd_url_format(&u, canon, sizeof(canon));
	nd_flag_words(si->flags, flags, sizeof(flags));
	if (json) {
		printf("{\"url\":\"%s\",\"export\":\"%s\",\"size\":%llu,"
		       "\"block_size\":%u,\"max_payload\":%u,\"flags\":%u,"
		       "\"read_only\":%s}\n",
		       canon, u.export_name, (unsigned long long)si->size,
		       si->block_size, si->max_payload, si->flags,
		       (si->flags & ND_EXP_READ_ONLY) ? "true" : "false");
	} else {
		printf("url:          %s\n", canon);
		printf("export:       %s\n", u.export_name);
		printf("size:         %llu bytes (%s)\n",
		       (unsigned long long)si->size,
		       nd_human(si->size, human, sizeof(human)));
		printf("block size:   %u\n", si->block_size);
		printf("max payload:  %u\n", si->max_payload);
		printf("flags:        %s\n", flags);
		/* ND_CF_READ_ONLY: asking must never take or wait for the write lock. */
		printf("session:      read-only (info never takes the write lock)\n");
	}
	rc = nd_client_close(c);
	if (fflush(stdout)) {
		nd_err("info: cannot write to stdout");
		return ND_EXIT_FAIL;
	}
	/* The answer was complete; a lost connection at close is no error. */
	(void)rc;
	return ND_EXIT_OK;
}
