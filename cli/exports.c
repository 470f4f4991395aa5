// SPDX-License-Identifier: MIT
/* netdisk exports URL: the exports this identity may use on a server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "nd_wire.h"

static void exports_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk exports netdisk://HOST[:PORT] --key-file FILE\n"
		"                       [--identity NAME] [--timeout SEC] [--json]\n"
		"\n"
		"Authenticates as NAME and prints the exports that identity may use:\n"
		"name, size, block size, access (ro: read-only export, rw: read-write)\n"
		"and flags (flush, fua, trim, write-zeroes; busy: a writer holds it\n"
		"now). Opens no session; an export part of the URL is ignored.\n"
		"\n"
		"options:\n"
		ND_COMMON_USAGE
		"  --json            machine-readable output\n");
}

/* netdisk://HOST:PORT, without the export part. */
static void server_url(const struct nd_url *u, char *out, size_t len)
{
	char *slash;

	nd_url_format(u, out, len);
	slash = strrchr(out, '/');
	if (slash && slash > out && slash[-1] != '/')
		*slash = '\0';
}

static void print_json(const char *url, const char *identity,
		       const struct nd_list_entry *e, size_t n)
{
	size_t i;

	printf("{\"url\":\"%s\",\"identity\":\"%s\",\"exports\":[", url,
	       identity);
	for (i = 0; i < n; i++)
		printf("%s{\"name\":\"%.*s\",\"size\":%llu,\"block_size\":%u,"
		       "\"read_only\":%s,\"busy\":%s,\"flags\":%u}",
		       i ? "," : "", e[i].name_len, (const char *)e[i].name,
		       (unsigned long long)e[i].size, e[i].block_size,
		       (e[i].flags & ND_EXP_READ_ONLY) ? "true" : "false",
		       (e[i].flags & ND_LIST_BUSY) ? "true" : "false",
		       e[i].flags);
	printf("]}\n");
}

static void print_table(const struct nd_list_entry *e, size_t n)
{
	char human[32], flags[128];
	int w = 4;
	size_t i;

	if (!n) {
		printf("no exports for this identity\n");
		return;
	}
	for (i = 0; i < n; i++)
		if (e[i].name_len > w)
			w = e[i].name_len;
	printf("%-*s  %10s  %20s  %5s  %-6s  %s\n", w, "NAME", "SIZE",
	       "BYTES", "BLOCK", "ACCESS", "FLAGS");
	for (i = 0; i < n; i++) {
		/* Access has its own column. */
		nd_flag_words(e[i].flags & ~ND_EXP_READ_ONLY, flags,
			      sizeof(flags));
		printf("%-*.*s  %10s  %20llu  %5u  %-6s  %s\n", w,
		       e[i].name_len, (const char *)e[i].name,
		       nd_human(e[i].size, human, sizeof(human)),
		       (unsigned long long)e[i].size, e[i].block_size,
		       (e[i].flags & ND_EXP_READ_ONLY) ? "ro" : "rw", flags);
	}
}

int nd_cmd_exports(int argc, char **argv)
{
	enum { OPT_JSON = ND_OPT_FIRST_PRIVATE };
	static const struct option lo[] = {
		ND_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_common_opts co = { 0 };
	struct nd_client_opts o = { 0 };
	struct nd_list_entry *e = NULL;
	struct nd_url u;
	uint8_t key[ND_KEY_LEN];
	char err[512], url[400];
	uint16_t status = 0;
	bool json = false;
	size_t n = 0;
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
			exports_usage(stdout);
			return ND_EXIT_OK;
		case OPT_JSON:
			json = true;
			break;
		default:
			return nd_bad_option("exports", opt, argv);
		}
	}
	if (argc - optind != 1) {
		nd_err("exports: expected one URL (usage: netdisk exports netdisk://HOST[:PORT] --key-file FILE)");
		return ND_EXIT_USAGE;
	}
	if (nd_url_parse(argv[optind], &u, err, sizeof(err))) {
		nd_err("%s", err);
		return ND_EXIT_USAGE;
	}
	if (!co.key_file) {
		nd_err("--key-file is required");
		return ND_EXIT_USAGE;
	}
	if (nd_key_load(co.key_file, key, err, sizeof(err))) {
		nd_err("%s", err);
		return ND_EXIT_FAIL;
	}
	server_url(&u, url, sizeof(url));
	o.identity = co.identity;
	o.timeout_ms = co.timeout_ms;
	rc = nd_client_list_exports(&u, key, &o, &e, &n, &status, err,
				    sizeof(err));
	nd_wipe(key, sizeof(key));
	if (rc) {
		nd_err("%s: %s", url, err);
		return nd_exit_code(rc, status);
	}
	if (json)
		print_json(url, co.identity ? co.identity : "default", e, n);
	else
		print_table(e, n);
	free(e);
	if (fflush(stdout)) {
		nd_err("exports: cannot write to stdout");
		return ND_EXIT_FAIL;
	}
	return ND_EXIT_OK;
}
