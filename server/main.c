// SPDX-License-Identifier: MIT
/* netdiskd: serve one file or block device over the netdisk protocol. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "log.h"
#include "nd_wire.h"
#include "server.h"

#define ND_SRV_VERSION	"0.1.0"
#define ND_SRV_STATE_DIR	"/var/lib/netdisk"

static struct nd_server *g_srv;

static void usage(FILE *f)
{
	fprintf(f,
"Usage: netdiskd --file PATH --key-file FILE [options]\n"
"Serve a regular file or block device as a netdisk export (foreground,\n"
"logs to stderr).\n"
"\n"
"  -f, --file PATH         file or block device to export (required)\n"
"  -k, --key-file FILE     pre-shared key, 64 hex characters, mode 0600\n"
"                          (required; see `netdisk keygen`)\n"
"  -l, --listen ADDR       address to listen on (default: all, IPv6+IPv4)\n"
"  -p, --port N            TCP port (default %d; 0 picks a free one)\n"
"  -r, --read-only         export read-only (file opened O_RDONLY)\n"
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
"  -h, --help              show this help\n"
"  -V, --version           show the version\n",
		ND_DEFAULT_PORT, ND_SRV_MAX_WORKERS, nd_server_default_workers(),
		ND_SRV_DEFAULT_GRACE, ND_SRV_STATE_DIR);
}

/* Parses a decimal integer in [min, max] with an optional K/M suffix. */
static int parse_num(const char *s, long long min, long long max,
		     bool suffix, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	if (suffix && (*end == 'K' || *end == 'k')) {
		v *= 1024;
		end++;
	} else if (suffix && (*end == 'M' || *end == 'm')) {
		v *= 1024 * 1024;
		end++;
	}
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
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

static void on_signal(int sig)
{
	(void)sig;
	if (g_srv)
		nd_server_stop(g_srv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "export", required_argument, NULL, 'e' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "workers", required_argument, NULL, 'w' },
		{ "grace", required_argument, NULL, 'g' },
		{ "max-payload", required_argument, NULL, 'M' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_config_args args = {
		.port = ND_DEFAULT_PORT,
		.grace_s = ND_SRV_DEFAULT_GRACE,
		.max_payload = ND_DEFAULT_PAYLOAD,
		.state_dir = ND_SRV_STATE_DIR,
		.export_name = "default",
	};
	const struct nd_server_config srv_opts = { 0 };
	struct nd_config cfg;
	struct sigaction sa = { 0 };
	sigset_t block, old;
	char err[512];
	long long v;
	int c, rc;

	opterr = 0;	/* our own one-line messages */
	while ((c = getopt_long(argc, argv, ":f:k:l:p:re:L:w:g:s:hV", opts,
				NULL)) != -1) {
		switch (c) {
		case 'f':
			args.file = optarg;
			break;
		case 'k':
			args.key_file = optarg;
			break;
		case 'l':
			args.listen = optarg;
			break;
		case 'p':
			if (parse_num(optarg, 0, 65535, false, &v) < 0) {
				fprintf(stderr, "netdiskd: invalid port '%s'\n",
					optarg);
				return 2;
			}
			args.port = (uint16_t)v;
			break;
		case 'r':
			args.read_only = true;
			break;
		case 'e':
			if (!nd_name_valid((const uint8_t *)optarg,
					   strlen(optarg))) {
				fprintf(stderr,
					"netdiskd: invalid export name '%s' (1-64 of [A-Za-z0-9._-])\n",
					optarg);
				return 2;
			}
			args.export_name = optarg;
			break;
		case 'L':
			rc = nd_log_parse_level(optarg);
			if (rc < 0) {
				fprintf(stderr,
					"netdiskd: invalid log level '%s' (error, warn, info, debug)\n",
					optarg);
				return 2;
			}
			nd_log_level = rc;
			break;
		case 'w':
			if (parse_num(optarg, 1, ND_SRV_MAX_WORKERS, false,
				      &v) < 0) {
				fprintf(stderr,
					"netdiskd: invalid worker count '%s' (1..%d)\n",
					optarg, ND_SRV_MAX_WORKERS);
				return 2;
			}
			args.workers = (int)v;
			break;
		case 'g':
			if (parse_num(optarg, 0, 86400, false, &v) < 0) {
				fprintf(stderr,
					"netdiskd: invalid grace period '%s' (0..86400 seconds)\n",
					optarg);
				return 2;
			}
			args.grace_s = (int)v;
			break;
		case 'M':
			if (parse_num(optarg, ND_MIN_PAYLOAD, ND_MAX_PAYLOAD,
				      true, &v) < 0 || v % ND_MIN_PAYLOAD) {
				fprintf(stderr,
					"netdiskd: invalid max payload '%s' (multiple of 4096, 4096..16777216)\n",
					optarg);
				return 2;
			}
			args.max_payload = (uint32_t)v;
			break;
		case 's':
			if (!*optarg) {
				fprintf(stderr, "netdiskd: empty state directory\n");
				return 2;
			}
			args.state_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("netdiskd %s (protocol %d)\n", ND_SRV_VERSION,
			       ND_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "netdiskd: option '%s' needs a value (see --help)\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "netdiskd: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "netdiskd: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (!args.file || !args.key_file) {
		fprintf(stderr, "netdiskd: --file and --key-file are required (see --help)\n");
		return 2;
	}

	args.log_level = nd_log_level;
	if (nd_config_from_args(&args, &cfg, err, sizeof(err)) < 0) {
		nd_err("%s", err);
		return 1;
	}
	raise_nofile();

	/* Only the main thread takes SIGINT/SIGTERM; others inherit the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	g_srv = nd_server_create(&srv_opts, &cfg, err, sizeof(err));
	if (!g_srv) {
		nd_err("%s", err);
		return 1;
	}
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	nd_info("netdiskd %s: serving %s as export '%s' (%s) on %s port %u, %d workers, grace %d s",
		ND_SRV_VERSION, args.file, args.export_name,
		args.read_only ? "read-only" : "read-write",
		args.listen ? args.listen : "all addresses",
		nd_server_port(g_srv),
		args.workers ? args.workers : nd_server_default_workers(),
		args.grace_s);

	rc = nd_server_run(g_srv);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	nd_server_destroy(g_srv);
	g_srv = NULL;
	return rc == 0 ? 0 : 1;
}
