// SPDX-License-Identifier: MIT
/*
 * netdiskd: serve files and block devices over the netdisk protocol, as
 * configured by netdiskd.conf(5) (--config) or, for one export, by the
 * command line; and `netdiskd status` and `netdiskd overlay`, the clients
 * of its control socket.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "nd_wire.h"
#include "overlay.h"
#include "server.h"
#include "service.h"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: netdiskd --config FILE [--check]\n"
"       netdiskd --file PATH --key-file FILE [options]\n"
"       netdiskd status [--control PATH | --config FILE]\n"
"       netdiskd overlay list|reset|merge|check EXPORT ... (see overlay --help)\n"
"Serve regular files or block devices as netdisk exports (foreground,\n"
"logs to stderr). See netdiskd(8) and netdiskd.conf(5).\n"
"\n"
"  -c, --config FILE       serve the exports, identities and keys of FILE\n"
"                          (netdiskd.conf(5), e.g. %s);\n"
"                          SIGHUP reloads it\n"
"      --check             with --config: print the effective configuration\n"
"                          and exit (0), or the first error (1)\n"
"\n"
"One export from the command line (not with --config):\n"
"  -f, --file PATH         file or block device to export (required)\n"
"  -k, --key-file FILE     pre-shared key, 64 hex characters, mode 0600\n"
"                          (required; see `netdisk keygen`)\n"
"  -l, --listen ADDR       address to listen on (default: all, IPv6+IPv4)\n"
"  -p, --port N            TCP port (default %d; 0 picks a free one)\n"
"  -r, --read-only         export read-only (file opened O_RDONLY)\n"
"      --cow DIR           copy-on-write: PATH is a read-only base, each\n"
"                          identity writes its own persistent overlay\n"
"                          DIR/IDENTITY.ndcow (created 0700 if missing)\n"
"  -e, --export NAME       export name (default \"default\")\n"
"  -L, --log-level LEVEL   error, warn, info (default) or debug\n"
"  -w, --workers N         I/O worker threads, 1..%d (default: CPUs, min 2;\n"
"                          %d here)\n"
"  -g, --grace SEC         keep a closed writer's lock SEC seconds so it\n"
"                          can reconnect (default %d; 0 releases at once)\n"
"      --max-payload BYTES largest READ/WRITE, multiple of 4096,\n"
"                          4096..16777216 (default 1048576; K/M suffixes)\n"
"  -s, --state-dir DIR     where a read-write export's write epochs are kept\n"
"                          (DIR/<export id>.state; default %s,\n"
"                          created 0700; must be writable and persistent)\n"
"      --control PATH      answer `netdiskd status` and `overlay` on this\n"
"                          Unix socket (default: none)\n"
"\n"
"  -h, --help              show this help\n"
"  -V, --version           show the version\n"
"\n"
"`netdiskd status` prints the running server's exports and sessions, asking\n"
"the control socket PATH, the one FILE names, or %s.\n",
		ND_CFG_DEFAULT_PATH, ND_DEFAULT_PORT, ND_SRV_MAX_WORKERS,
		nd_server_default_workers(), ND_SRV_DEFAULT_GRACE,
		ND_CFG_DEFAULT_STATE, ND_CFG_DEFAULT_CONTROL);
}

/*
 * Every authenticated connection and every pending handshake holds a
 * descriptor: ND_SRV_MAX_CONNS + ND_SRV_MAX_PENDING and a few of our own
 * exceed the usual soft limit of 1024, and accept() failing with EMFILE
 * turns real clients away. The soft limit goes up to the hard one (no
 * select() here, so large descriptor numbers are fine).
 */
static void raise_nofile(void)
{
	const rlim_t want = ND_SRV_MAX_CONNS + ND_SRV_MAX_PENDING + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 &&
		    getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		nd_warn("open file limit is %llu, below the %llu that %d connections and %d pending handshakes can need: raise it (ulimit -n, LimitNOFILE=)",
			(unsigned long long)rl.rlim_cur,
			(unsigned long long)want, ND_SRV_MAX_CONNS,
			ND_SRV_MAX_PENDING);
}

/* What the command line asks for. */
struct options {
	struct nd_config_args args;
	const char *config;
	const char *control;
	const char *shortcut;	/* first one-export option given, if any */
	bool check;
};

enum { OPT_MAX_PAYLOAD = 0x100, OPT_CHECK, OPT_CONTROL, OPT_COW };

/*
 * One option of the one-export shortcut into o->args. 0, or the exit
 * status after a one-line complaint.
 */
static int shortcut_option(struct options *o, int c, const char *arg)
{
	struct nd_config_args *a = &o->args;
	long long v;
	int level;

	switch (c) {
	case 'f':
		a->file = arg;
		return 0;
	case 'k':
		a->key_file = arg;
		return 0;
	case 'l':
		a->listen = arg;
		return 0;
	case 'r':
		a->read_only = true;
		return 0;
	case 'p':
		if (nd_config_parse_num(arg, 0, 65535, false, &v) < 0) {
			fprintf(stderr, "netdiskd: invalid port '%s'\n", arg);
			return 2;
		}
		a->port = (uint16_t)v;
		return 0;
	case 'e':
		if (!nd_name_valid((const uint8_t *)arg, strlen(arg))) {
			fprintf(stderr,
				"netdiskd: invalid export name '%s' (1-64 of [A-Za-z0-9._-])\n",
				arg);
			return 2;
		}
		a->export_name = arg;
		return 0;
	case 'L':
		level = nd_log_parse_level(arg);
		if (level < 0) {
			fprintf(stderr,
				"netdiskd: invalid log level '%s' (error, warn, info, debug)\n",
				arg);
			return 2;
		}
		a->log_level = level;
		return 0;
	case 'w':
		if (nd_config_parse_num(arg, 1, ND_SRV_MAX_WORKERS, false,
					&v) < 0) {
			fprintf(stderr,
				"netdiskd: invalid worker count '%s' (1..%d)\n",
				arg, ND_SRV_MAX_WORKERS);
			return 2;
		}
		a->workers = (int)v;
		return 0;
	case 'g':
		if (nd_config_parse_num(arg, 0, 86400, false, &v) < 0) {
			fprintf(stderr,
				"netdiskd: invalid grace period '%s' (0..86400 seconds)\n",
				arg);
			return 2;
		}
		a->grace_s = (int)v;
		return 0;
	case OPT_MAX_PAYLOAD:
		if (nd_config_parse_num(arg, ND_MIN_PAYLOAD, ND_MAX_PAYLOAD,
					true, &v) < 0 || v % ND_MIN_PAYLOAD) {
			fprintf(stderr,
				"netdiskd: invalid max payload '%s' (multiple of 4096, 4096..16777216)\n",
				arg);
			return 2;
		}
		a->max_payload = (uint32_t)v;
		return 0;
	case 's':
		if (!*arg) {
			fprintf(stderr, "netdiskd: empty state directory\n");
			return 2;
		}
		a->state_dir = arg;
		return 0;
	case OPT_COW:
		if (arg[0] != '/') {
			fprintf(stderr, "netdiskd: --cow needs an absolute path\n");
			return 2;
		}
		a->cow_dir = arg;
		return 0;
	}
	return 2;
}

/* -1 to go on, else the exit status (--help, --version, a bad option). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "file", required_argument, NULL, 'f' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "export", required_argument, NULL, 'e' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "workers", required_argument, NULL, 'w' },
		{ "grace", required_argument, NULL, 'g' },
		{ "max-payload", required_argument, NULL, OPT_MAX_PAYLOAD },
		{ "state-dir", required_argument, NULL, 's' },
		{ "cow", required_argument, NULL, OPT_COW },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, i, rc;

	opterr = 0;	/* our own one-line messages */
	while ((c = getopt_long(argc, argv, ":c:f:k:l:p:re:L:w:g:s:hV", opts,
				NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_CONTROL:
			if (optarg[0] != '/') {
				fprintf(stderr, "netdiskd: --control needs an absolute path\n");
				return 2;
			}
			o->control = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("netdiskd %s (protocol %d)\n", NETDISK_VERSION,
			       ND_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "netdiskd: option '%s' needs a value (see --help)\n",
				argv[optind - 1]);
			return 2;
		case '?':
			fprintf(stderr, "netdiskd: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		default:
			for (i = 0; !o->shortcut && opts[i].name; i++)
				if (opts[i].val == c)
					o->shortcut = opts[i].name;
			rc = shortcut_option(o, c, optarg);
			if (rc)
				return rc;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "netdiskd: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (o->config && (o->shortcut || o->control)) {
		fprintf(stderr,
			"netdiskd: --%s cannot be combined with --config (the file sets it)\n",
			o->shortcut ? o->shortcut : "control");
		return 2;
	}
	if (o->check && !o->config) {
		fprintf(stderr, "netdiskd: --check needs --config FILE\n");
		return 2;
	}
	if (!o->config && (!o->args.file || !o->args.key_file)) {
		fprintf(stderr, "netdiskd: --config, or --file and --key-file, are required (see --help)\n");
		return 2;
	}
	return -1;
}

/* `netdiskd status [--control PATH | --config FILE]`. */
static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL, *config = NULL;
	struct nd_config cfg;
	char err[1024], path[PATH_MAX];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'C':
			control = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("Usage: netdiskd status [--control PATH | --config FILE]\n"
			       "The running netdiskd's exports and sessions (netdiskd(8) STATUS),\n"
			       "asked on its control socket (default %s).\n",
			       ND_CFG_DEFAULT_CONTROL);
			return 0;
		case ':':
			fprintf(stderr, "netdiskd status: option '%s' needs a value\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "netdiskd status: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc || (control && config)) {
		fprintf(stderr, "netdiskd status: takes --control PATH or --config FILE\n");
		return 2;
	}
	if (config) {
		if (nd_config_load(config, &cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "netdiskd status: %s\n", err);
			return 1;
		}
		snprintf(path, sizeof(path), "%s", cfg.control);
		nd_config_free(&cfg);
		if (!path[0]) {
			fprintf(stderr, "netdiskd status: %s has control = none\n",
				config);
			return 1;
		}
		control = path;
	}
	if (!control)
		control = ND_CFG_DEFAULT_CONTROL;
	if (nd_control_query(control, "status", stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "netdiskd status: %s\n", err);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * What the start-up lines say, taken before nd_server_create consumes
 * the configuration.
 */
struct summary {
	char *exports;		/* "export 'NAME': PATH, ro|rw" lines */
	char listen[256];
	char source[PATH_MAX + 16];
	int workers, grace_s;
};

static void summarize(const struct nd_config *cfg, struct summary *sum)
{
	size_t n = 0, o = 0;
	FILE *f = open_memstream(&sum->exports, &n);
	int i;

	for (i = 0; f && i < cfg->nexports; i++)
		fprintf(f, "export '%s': %s, %s%s\n", cfg->exports[i].name,
			cfg->exports[i].path,
			cfg->exports[i].cow_dir[0] ? "copy-on-write, overlays in " :
			cfg->exports[i].read_only ? "read-only" : "read-write",
			cfg->exports[i].cow_dir);
	if (f)
		fclose(f);
	snprintf(sum->listen, sizeof(sum->listen), "all addresses");
	for (i = 0; i < cfg->nlisten && o < sizeof(sum->listen); i++)
		o += (size_t)snprintf(sum->listen + o, sizeof(sum->listen) - o,
				      "%s%s", i ? " " : "", cfg->listen[i]);
	if (cfg->file[0])
		snprintf(sum->source, sizeof(sum->source), "%s", cfg->file);
	else
		snprintf(sum->source, sizeof(sum->source), "the command line");
	sum->workers = cfg->workers ? cfg->workers : nd_server_default_workers();
	sum->grace_s = cfg->grace_s;
}

static void log_start(struct summary *sum, uint16_t port)
{
	char *line, *save = NULL;

	nd_info("netdiskd %s: listening on %s port %u, %d workers, grace %d s, configuration from %s",
		NETDISK_VERSION, sum->listen, port, sum->workers, sum->grace_s,
		sum->source);
	for (line = sum->exports ? strtok_r(sum->exports, "\n", &save) : NULL;
	     line; line = strtok_r(NULL, "\n", &save))
		nd_info("%s", line);
}

/* Loads the configuration the options ask for; 0 or the exit status. */
static int load(struct options *o, struct nd_config *cfg)
{
	char err[1024];

	if (!o->config) {
		if (nd_config_from_args(&o->args, cfg, err, sizeof(err)) < 0) {
			nd_err("%s", err);
			return 1;
		}
		if (o->control)
			snprintf(cfg->control, sizeof(cfg->control), "%s",
				 o->control);
		return 0;
	}
	if (nd_config_load(o->config, cfg, err, sizeof(err)) < 0) {
		if (o->check)
			fprintf(stderr, "%s\n", err);
		else
			nd_err("%s", err);
		return 1;
	}
	if (o->check) {
		nd_config_print(stdout, cfg);
		nd_config_free(cfg);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct nd_server_config srv_opts = { 0 };
	struct options o = {
		.args = {
			.port = ND_DEFAULT_PORT,
			.grace_s = ND_SRV_DEFAULT_GRACE,
			.max_payload = ND_DEFAULT_PAYLOAD,
			.state_dir = ND_CFG_DEFAULT_STATE,
			.export_name = "default",
			.log_level = ND_LOG_INFO,
		},
	};
	char err[1024], control[PATH_MAX];
	struct summary sum = { 0 };
	struct nd_server *srv;
	struct nd_config cfg;
	sigset_t signals;
	int rc;

	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "overlay") == 0)
		return nd_overlay_cmd(argc - 1, argv + 1, stdout, stderr);
	rc = parse_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	rc = load(&o, &cfg);
	if (rc || o.check)
		return rc;
	nd_log_level = cfg.log_level;
	raise_nofile();

	/* Before any thread exists: only the service's signal thread takes them. */
	signal(SIGPIPE, SIG_IGN);
	nd_service_signals(&signals);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	summarize(&cfg, &sum);
	snprintf(control, sizeof(control), "%s", cfg.control);
	srv = nd_server_create(&srv_opts, &cfg, err, sizeof(err));
	if (!srv) {
		nd_err("%s", err);
		free(sum.exports);
		return 1;
	}
	log_start(&sum, nd_server_port(srv));
	free(sum.exports);

	rc = nd_service_run(srv, control);
	nd_server_destroy(srv);
	return rc == 0 ? 0 : 1;
}
