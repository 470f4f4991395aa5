// SPDX-License-Identifier: MIT
/*
 * netdisk boot: attaches every netdisk= parameter of the kernel command
 * line (lib/bootarg.h), in order, so the first becomes /dev/netdisk0 on a
 * fresh boot. Run by the initramfs before the root file system is looked
 * for. All parameters are checked before the first attach: a typo in the
 * second must not leave the first attached and the boot half done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bootarg.h"
#include "cli.h"
#include "common.h"

#define BOOT_KEY_DEFAULT	"/etc/netdisk/boot.key"
#define BOOT_CMDLINE		"/proc/cmdline"
#define BOOT_MAX_DISKS		16

struct boot_ctx {
	struct nd_bootarg *args;
	int n;
	int bad;		/* ND_EXIT_USAGE once a parameter is refused */
};

static void boot_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk boot [--cmdline FILE] [--key-file FILE] [--identity NAME]\n"
		"                    [--wait SEC] [--dry-run]\n"
		"\n"
		"Attaches each netdisk= parameter of the kernel command line, in order:\n"
		"  netdisk=netdisk://HOST[:PORT]/EXPORT[,identity=NAME][,ro][,cache=SIZE]\n"
		"          [,connections=N][,reconnect-timeout=SEC|forever][,key-file=PATH]\n"
		"Every parameter is checked before the first attach. A device attached\n"
		"this way reconnects for ever unless reconnect-timeout= says otherwise.\n"
		"\n"
		"options:\n"
		"  --cmdline FILE    read the command line from FILE (default " BOOT_CMDLINE ")\n"
		"  --key-file FILE   key of parameters without key-file= (default\n"
		"                    " BOOT_KEY_DEFAULT ")\n"
		"  --identity NAME   identity of parameters without identity=\n"
		"  --wait SEC        retry an attach that cannot reach the server, or that\n"
		"                    it refuses as busy, for up to SEC seconds (default 0:\n"
		"                    one attempt)\n"
		"  --dry-run         print the attach commands, attach nothing\n"
		"  -h, --help        this help\n");
}

static int collect(const char *val, void *p)
{
	struct boot_ctx *ctx = p;
	char err[400];

	if (ctx->n == BOOT_MAX_DISKS) {
		nd_err("more than %d netdisk= parameters", BOOT_MAX_DISKS);
		ctx->bad = ND_EXIT_USAGE;
		return 1;
	}
	if (nd_bootarg_parse(val, &ctx->args[ctx->n], err, sizeof(err))) {
		nd_err("netdisk=%.80s%s: %s", val, strlen(val) > 80 ? "..." : "",
		       err);
		ctx->bad = ND_EXIT_USAGE;
		return 1;
	}
	ctx->n++;
	return 0;
}

/* The whole command line; NULL after printing why not. */
static char *read_cmdline(const char *file)
{
	FILE *f = fopen(file, "re");
	char *buf;
	size_t n;

	if (!f) {
		nd_err("%s: %s", file, strerror(errno));
		return NULL;
	}
	buf = malloc(65536);
	if (!buf) {
		nd_err("out of memory");
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, 65535, f);
	if (ferror(f)) {
		nd_err("%s: %s", file, strerror(errno));
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* b's attach arguments with the key and the default identity added. */
static int attach_args(const struct nd_bootarg *b, const char *key,
		       const char *identity, char **argv)
{
	bool has_id = false;
	int i, n = 0;

	for (i = 0; i < b->argc - 1; i++) {
		if (!strcmp(b->argv[i], "--identity"))
			has_id = true;
		argv[n++] = b->argv[i];
	}
	argv[n++] = (char *)"--key-file";
	argv[n++] = (char *)(b->key_file ? b->key_file : key);
	if (identity && !has_id) {
		argv[n++] = (char *)"--identity";
		argv[n++] = (char *)identity;
	}
	argv[n++] = b->argv[b->argc - 1];
	argv[n] = NULL;
	return n;
}

/*
 * Attaches one parameter, retrying until deadline what time may mend: a
 * server not reachable yet, and "busy": after a crash or power cut the
 * server still holds this machine's old writable session (until TCP
 * keepalive notices, then its grace period, about 90 s by default), and
 * refuses the new one; a reset machine is often back sooner than that.
 */
static int attach_one(int argc, char **argv, time_t deadline)
{
	long idx;
	int rc;

	for (;;) {
		rc = nd_attach_argv(argc, argv, &idx);
		if ((rc != ND_EXIT_CONNECT && rc != ND_EXIT_PROTO &&
		     rc != ND_EXIT_BUSY) || time(NULL) >= deadline)
			return rc;
		sleep(1);
	}
}

int nd_cmd_boot(int argc, char **argv)
{
	enum { OPT_CMDLINE = ND_OPT_FIRST_PRIVATE, OPT_WAIT, OPT_DRY_RUN };
	static const struct option lo[] = {
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "key-file", required_argument, NULL, ND_OPT_KEY_FILE },
		{ "identity", required_argument, NULL, ND_OPT_IDENTITY },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = BOOT_CMDLINE, *key = BOOT_KEY_DEFAULT;
	const char *identity = NULL;
	char *cmdline, *aargv[ND_BOOTARG_MAX_ARGS + 6];
	unsigned long wait_s = 0;
	struct boot_ctx ctx = { 0 };
	bool dry = false;
	time_t deadline;
	int opt, i, j, aargc, rc = ND_EXIT_OK;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (opt) {
		case 'h':
			boot_usage(stdout);
			return ND_EXIT_OK;
		case OPT_CMDLINE:
			file = optarg;
			break;
		case ND_OPT_KEY_FILE:
			key = optarg;
			break;
		case ND_OPT_IDENTITY:
			if (!nd_name_valid((const uint8_t *)optarg, strlen(optarg))) {
				nd_err("invalid --identity '%s' (1-64 of [A-Za-z0-9._-])",
				       optarg);
				return ND_EXIT_USAGE;
			}
			identity = optarg;
			break;
		case OPT_WAIT:
			if (nd_parse_uint(optarg, 0, 86400, &wait_s)) {
				nd_err("invalid --wait '%s' (seconds, 0..86400)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_DRY_RUN:
			dry = true;
			break;
		default:
			return nd_bad_option("boot", opt, argv);
		}
	}
	if (optind != argc) {
		nd_err("boot: unexpected argument '%s'", argv[optind]);
		return ND_EXIT_USAGE;
	}
	cmdline = read_cmdline(file);
	if (!cmdline)
		return ND_EXIT_FAIL;
	ctx.args = calloc(BOOT_MAX_DISKS, sizeof(*ctx.args));
	if (!ctx.args) {
		nd_err("out of memory");
		free(cmdline);
		return ND_EXIT_FAIL;
	}
	nd_bootarg_each(cmdline, collect, &ctx);
	free(cmdline);
	if (ctx.bad) {
		free(ctx.args);
		return ctx.bad;
	}
	deadline = time(NULL) + (time_t)wait_s;
	for (i = 0; i < ctx.n && rc == ND_EXIT_OK; i++) {
		aargc = attach_args(&ctx.args[i], key, identity, aargv);
		if (dry) {
			printf("netdisk");
			for (j = 0; j < aargc; j++)
				printf(" %s", aargv[j]);
			printf("\n");
			continue;
		}
		rc = attach_one(aargc, aargv, deadline);
	}
	free(ctx.args);
	return rc;
}
