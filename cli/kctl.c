// SPDX-License-Identifier: MIT
/*
 * netdisk attach / detach / list: the kernel driver's subcommands. They talk
 * to netdisk.ko through /dev/netdisk-control (include/netdisk_ioctl.h) and
 * read /sys/block/netdiskN/netdisk/ for the list.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "netdisk_ioctl.h"
#include "nd_wire.h"
#include "tab.h"

#define SYS_BLOCK	"/sys/block"

/* Opens the control device; prints the reason and sets *rc on failure. */
static int open_control(int *rc)
{
	int fd = open(ND_CTL_PATH, O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT || errno == ENXIO || errno == ENODEV) {
		nd_err("kernel module not loaded (try: modprobe netdisk, or insmod netdisk.ko)");
		*rc = ND_EXIT_NO_MODULE;
	} else {
		nd_err("%s: %s%s", ND_CTL_PATH, strerror(errno),
		       errno == EACCES || errno == EPERM ? " (run as root)" : "");
		*rc = ND_EXIT_FAIL;
	}
	return -1;
}

/* ---------------------------------------------------------------- attach */

static void attach_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk attach URL --key-file FILE [--read-only] [--identity NAME]\n"
		"                      [--reconnect-timeout SEC|forever] [--connections N]\n"
		"                      [--cache-size SIZE]\n"
		"       netdisk attach --tab NAME [--tab-file FILE]\n"
		"\n"
		"Connects the kernel driver (netdisk.ko) to an export and creates\n"
		"/dev/netdiskN; prints that path. URL is netdisk://HOST[:PORT][/EXPORT].\n"
		"With --tab, the URL and options are those of entry NAME of\n"
		"netdisktab(5) (FILE, default " ND_TAB_DEFAULT "), and\n"
		ND_TAB_RUNDIR "/NAME links to the device.\n"
		"\n"
		"options:\n"
		ND_COMMON_USAGE
		"  --read-only       ask for read-only access (writes then fail)\n"
		"  --reconnect-timeout SEC\n"
		"                    when the connection breaks, hold I/O and reconnect\n"
		"                    for up to SEC seconds before failing it with EIO\n"
		"                    (default 120, 0..86400; 0 fails I/O at once;\n"
		"                    forever: no limit, as for a root device)\n"
		"  --connections N   TCP connections, one per block queue, 1..16\n"
		"                    (default: online CPUs, at most 4)\n"
		"  --cache-size SIZE in-memory write-through cache of the disk, SIZE\n"
		"                    bytes (k, m, g suffixes; default 0: none); only\n"
		"                    where no one else can write the export\n");
}

void nd_kctl_display(const struct nd_url *u, char *out, size_t len)
{
	bool v6 = strchr(u->host, ':') != NULL;

	snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "",
		 u->port);
}

static int resolve(const struct nd_url *u, struct addrinfo **res)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV,
	};
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", u->port);
	rc = getaddrinfo(u->host, port, &hints, res);
	if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME || rc == EAI_NODATA) {
		/* AI_ADDRCONFIG hides ::1 and 127.0.0.1 on hosts with only lo. */
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(u->host, port, &hints, res);
	}
	if (rc) {
		nd_err("cannot resolve '%s': %s", u->host,
		       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	return 0;
}

/* One line for a failed attach, the same words as the userspace client. */
static int attach_failed(const char *canon, const char *display,
			 const struct nd_attach_out *o, int err, bool cache)
{
	switch (o->result) {
	case ND_ATTACH_CONNECT:
		nd_err("%s: cannot connect to %s: %s", canon, display,
		       strerror(o->errno_val ? (int)o->errno_val : err));
		return ND_EXIT_CONNECT;
	case ND_ATTACH_AUTH:
		nd_err("%s: authentication failed: the server does not hold this key (wrong key file?)",
		       canon);
		return ND_EXIT_AUTH;
	case ND_ATTACH_REFUSED:
		nd_err("%s: server refused: %s", canon,
		       nd_status_str(o->server_status));
		return nd_exit_code(ND_CE_REFUSED, (uint16_t)o->server_status);
	case ND_ATTACH_PROTO:
		nd_err("%s: protocol error during handshake (not a netdisk server? the kernel log says more)",
		       canon);
		return ND_EXIT_PROTO;
	case ND_ATTACH_LOST:
		if (o->errno_val == ETIMEDOUT)
			nd_err("%s: timed out during the handshake (not complete within %d s)",
			       canon, ND_HANDSHAKE_TIMEOUT);
		else if (o->errno_val == ECONNRESET || o->errno_val == EPIPE)
			nd_err("%s: connection closed by the server during the handshake",
			       canon);
		else
			nd_err("%s: connection lost during the handshake: %s",
			       canon, strerror((int)o->errno_val));
		return ND_EXIT_PROTO;
	case ND_ATTACH_CACHE_REFUSED:
		nd_err("%s: --cache-size refused: others may write this export (read-only session on a read-write export), so a cache could serve stale data; attach without --cache-size",
		       canon);
		return ND_EXIT_FAIL;
	default:
		err = o->errno_val ? (int)o->errno_val : err;
		if (err == EOPNOTSUPP)
			nd_err("%s: attach: option not supported by this netdisk.ko",
			       canon);
		else if (err == ENOMEM && cache)
			nd_err("%s: attach failed: %s (--cache-size larger than memory?)",
			       canon, strerror(err));
		else
			nd_err("%s: attach failed: %s", canon, strerror(err));
		return ND_EXIT_FAIL;
	}
}

int nd_cmd_attach(int argc, char **argv)
{
	long index;

	if (nd_tab_wanted(argc, argv))
		return nd_tab_attach(argc, argv);
	return nd_attach_argv(argc, argv, &index);
}

int nd_attach_argv(int argc, char **argv, long *index)
{
	enum {
		OPT_RO = ND_OPT_FIRST_PRIVATE, OPT_RECONNECT, OPT_CONNS,
		OPT_CACHE,
	};
	static const struct option lo[] = {
		ND_COMMON_LONGOPTS,
		{ "read-only", no_argument, NULL, OPT_RO },
		{ "reconnect-timeout", required_argument, NULL, OPT_RECONNECT },
		{ "connections", required_argument, NULL, OPT_CONNS },
		{ "cache-size", required_argument, NULL, OPT_CACHE },
		{ NULL, 0, NULL, 0 },
	};
	struct nd_common_opts co = { 0 };
	struct addrinfo *res = NULL, *ai;
	struct nd_attach *a = NULL;
	char err[512], canon[400], display[300];
	const char *url;
	bool ro = false;
	unsigned long reconnect_s = 120, conns = 0;
	uint64_t cache_size = 0;
	char *end;
	int opt, rc, fd = -1, ioerr = 0, tried = 0;
	struct nd_url u;

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
			attach_usage(stdout);
			return ND_EXIT_OK;
		case OPT_RO:
			ro = true;
			break;
		case OPT_RECONNECT:
			errno = 0;
			reconnect_s = strtoul(optarg, &end, 10);
			if (!strcmp(optarg, "forever"))
				reconnect_s = ND_RECONNECT_FOREVER;
			else if (!isdigit((unsigned char)optarg[0]) || *end ||
				 errno || reconnect_s > 86400) {
				nd_err("invalid --reconnect-timeout '%s' (seconds, 0..86400, or forever)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_CONNS:
			errno = 0;
			conns = strtoul(optarg, &end, 10);
			if (!isdigit((unsigned char)optarg[0]) || *end || errno ||
			    conns < 1 || conns > 16) {
				nd_err("invalid --connections '%s' (1..16)", optarg);
				return ND_EXIT_USAGE;
			}
			break;
		case OPT_CACHE:
			/* Page granularity: a nonzero size under 4 KiB is no cache. */
			if (nd_parse_size(optarg, &cache_size) ||
			    (cache_size && cache_size < 4096)) {
				nd_err("invalid --cache-size '%s' (bytes with k, m, g suffix; 0 or at least 4k)",
				       optarg);
				return ND_EXIT_USAGE;
			}
			break;
		default:
			return nd_bad_option("attach", opt, argv);
		}
	}
	if (optind != argc - 1) {
		nd_err("attach: expected one URL (see 'netdisk attach --help')");
		return ND_EXIT_USAGE;
	}
	url = argv[optind];
	if (nd_url_parse(url, &u, err, sizeof(err))) {
		nd_err("%s", err);
		return ND_EXIT_USAGE;
	}
	if (!co.key_file) {
		nd_err("--key-file is required");
		return ND_EXIT_USAGE;
	}
	nd_url_format(&u, canon, sizeof(canon));
	nd_kctl_display(&u, display, sizeof(display));
	if (strlen(display) >= ND_ATTACH_DISPLAY_MAX) {
		nd_err("%s: host name too long", canon);
		return ND_EXIT_USAGE;
	}

	fd = open_control(&rc);
	if (fd < 0)
		return rc;
	a = calloc(1, sizeof(*a));
	if (!a) {
		nd_err("out of memory");
		rc = ND_EXIT_FAIL;
		goto out;
	}
	if (nd_key_load(co.key_file, a->key, err, sizeof(err))) {
		nd_err("%s", err);
		rc = ND_EXIT_FAIL;
		goto out;
	}
	if (resolve(&u, &res)) {
		rc = ND_EXIT_CONNECT;
		goto out;
	}
	snprintf(a->display, sizeof(a->display), "%s", display);
	snprintf(a->export_name, sizeof(a->export_name), "%s", u.export_name);
	if (co.identity)
		snprintf(a->identity, sizeof(a->identity), "%s", co.identity);
	a->flags = (ro ? ND_ATTACH_READ_ONLY : 0) | ND_ATTACH_RECONNECT;
	a->reconnect_timeout_s = (uint32_t)reconnect_s;
	a->nr_connections = (uint32_t)conns;
	a->cache_size = cache_size;
	if (co.timeout_ms) {
		a->connect_timeout_ms = (uint32_t)co.timeout_ms;
		a->io_timeout_s = (uint32_t)((co.timeout_ms + 999) / 1000);
	}

	/* Like the userspace client: each address in turn until one answers. */
	rc = -1;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(a->addr))
			continue;
		memset(a->addr, 0, sizeof(a->addr));
		memcpy(a->addr, ai->ai_addr, ai->ai_addrlen);
		a->addr_len = ai->ai_addrlen;
		memset(&a->out, 0, sizeof(a->out));
		tried++;
		ioerr = ioctl(fd, ND_IOC_ATTACH, a) ? errno : 0;
		if (!ioerr && a->out.result == ND_ATTACH_OK) {
			printf("/dev/%s%u\n", ND_DISK_PREFIX, a->out.index);
			*index = a->out.index;
			rc = ND_EXIT_OK;
			break;
		}
		if (a->out.result != ND_ATTACH_CONNECT)
			break;
	}
	if (rc != ND_EXIT_OK && !tried) {
		nd_err("%s: cannot connect to %s: no usable address", canon,
		       display);
		rc = ND_EXIT_CONNECT;
	} else if (rc != ND_EXIT_OK) {
		rc = attach_failed(canon, display, &a->out, ioerr ? ioerr : EIO,
				   cache_size != 0);
	}
out:
	if (res)
		freeaddrinfo(res);
	if (a) {
		nd_wipe(a, sizeof(*a));
		free(a);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---------------------------------------------------------------- detach */

static void detach_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk detach DEVICE [--force]\n"
		"       netdisk detach --tab NAME [--tab-file FILE] [--force]\n"
		"\n"
		"Removes /dev/netdiskN (DEVICE is /dev/netdiskN or netdiskN). A device\n"
		"that is open or mounted is refused unless --force: then its pending\n"
		"and later I/O fails with EIO. With --tab, the device that\n"
		"'netdisk attach --tab NAME' attached.\n"
		"\n"
		"options:\n"
		"  --force           detach even if the device is in use\n"
		"  -h, --help        this help\n");
}

/* "/dev/netdisk3" or "netdisk3" -> 3; -1 if not of that form. */
static long parse_device(const char *s)
{
	const char *p = s;
	char *end;
	long v;

	if (!strncmp(p, "/dev/", 5))
		p += 5;
	if (strncmp(p, ND_DISK_PREFIX, strlen(ND_DISK_PREFIX)))
		return -1;
	p += strlen(ND_DISK_PREFIX);
	if (!isdigit((unsigned char)*p))
		return -1;
	errno = 0;
	v = strtol(p, &end, 10);
	if (errno || *end || v < 0 || v > 0xfffff)
		return -1;
	return v;
}

int nd_cmd_detach(int argc, char **argv)
{
	enum { OPT_FORCE = ND_OPT_FIRST_PRIVATE };
	static const struct option lo[] = {
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	struct nd_detach d;
	bool force = false;
	int opt, fd, rc, tries;
	long index;

	if (nd_tab_wanted(argc, argv))
		return nd_tab_detach(argc, argv);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hf", lo, NULL)) != -1) {
		switch (opt) {
		case 'h':
			detach_usage(stdout);
			return ND_EXIT_OK;
		case 'f':
		case OPT_FORCE:
			force = true;
			break;
		default:
			return nd_bad_option("detach", opt, argv);
		}
	}
	if (optind != argc - 1) {
		nd_err("detach: expected one device (see 'netdisk detach --help')");
		return ND_EXIT_USAGE;
	}
	index = parse_device(argv[optind]);
	if (index < 0) {
		nd_err("detach: '%s' is not a netdisk device (expected /dev/netdiskN)",
		       argv[optind]);
		return ND_EXIT_USAGE;
	}
	fd = open_control(&rc);
	if (fd < 0)
		return rc;
	memset(&d, 0, sizeof(d));
	d.index = (uint32_t)index;
	d.flags = force ? ND_DETACH_FORCE : 0;
	/* Short-lived opens (udev probing a new disk) are waited out briefly. */
	for (tries = 0; ; tries++) {
		rc = ioctl(fd, ND_IOC_DETACH, &d) ? errno : 0;
		if (rc != EBUSY || tries >= 5)
			break;
		nanosleep(&pause, NULL);
	}
	close(fd);
	switch (rc) {
	case 0:
		return ND_EXIT_OK;
	case ENOENT:
		nd_err("/dev/%s%ld: no such device", ND_DISK_PREFIX, index);
		return ND_EXIT_FAIL;
	case EBUSY:
		nd_err("/dev/%s%ld: device busy (mounted or open; --force fails its I/O)",
		       ND_DISK_PREFIX, index);
		return ND_EXIT_DEV_BUSY;
	default:
		nd_err("/dev/%s%ld: detach failed: %s", ND_DISK_PREFIX, index,
		       strerror(rc));
		return ND_EXIT_FAIL;
	}
}

/* ---------------------------------------------------------------- list */

static void list_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk list [-v]\n"
		"\n"
		"Lists the devices of the kernel driver: device, server, export,\n"
		"size, state and whether it is read-only.\n"
		"\n"
		"options:\n"
		"  -v, --verbose     also connections, reconnects and their timeout,\n"
		"                    I/O counters and the cache\n"
		"                    (size, bytes used, page hits, misses, evictions)\n"
		"  -h, --help        this help\n");
}

/* Reads one line of a sysfs file into buf; "?" if unreadable. */
static void read_attr(const char *dev, const char *name, char *buf, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), SYS_BLOCK "/%s/%s", dev, name);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)len, f)) {
		snprintf(buf, len, "?");
	} else {
		buf[strcspn(buf, "\n")] = '\0';
	}
	if (f)
		fclose(f);
}

/* A numeric sysfs attribute; 0 if unreadable. */
static unsigned long long read_u64(const char *dev, const char *name)
{
	char buf[32];

	read_attr(dev, name, buf, sizeof(buf));
	return strtoull(buf, NULL, 10);
}

static void list_verbose(const char *name)
{
	char h1[32], h2[32];
	unsigned long long size = read_u64(name, "netdisk/cache_size");
	unsigned long long hits = read_u64(name, "netdisk/cache_hits");
	unsigned long long misses = read_u64(name, "netdisk/cache_misses");
	char rt[32];

	/* Seconds, or "forever" (a root device's default). */
	read_attr(name, "netdisk/reconnect_timeout", rt, sizeof(rt));
	printf("    connections %llu, reconnects %llu (timeout %s%s), errors %llu\n",
	       read_u64(name, "netdisk/connections"),
	       read_u64(name, "netdisk/reconnects"), rt,
	       strspn(rt, "0123456789") == strlen(rt) ? " s" : "",
	       read_u64(name, "netdisk/errors"));
	printf("    server reads %llu (%s), writes %llu (%s), flushes %llu, discards %llu\n",
	       read_u64(name, "netdisk/reads"),
	       nd_human(read_u64(name, "netdisk/read_bytes"), h1, sizeof(h1)),
	       read_u64(name, "netdisk/writes"),
	       nd_human(read_u64(name, "netdisk/write_bytes"), h2, sizeof(h2)),
	       read_u64(name, "netdisk/flushes"),
	       read_u64(name, "netdisk/discards"));
	if (!size) {
		printf("    cache off\n");
		return;
	}
	printf("    cache %s, used %s, hits %llu, misses %llu (pages, %.1f%% hits), evictions %llu\n",
	       nd_human(size, h1, sizeof(h1)),
	       nd_human(read_u64(name, "netdisk/cache_used"), h2, sizeof(h2)),
	       hits, misses,
	       hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0,
	       read_u64(name, "netdisk/cache_evictions"));
}

static int cmp_index(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

int nd_cmd_list(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	bool verbose = false;
	long *idx = NULL, *grown;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *dir;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hv", lo, NULL)) != -1) {
		if (opt == 'h') {
			list_usage(stdout);
			return ND_EXIT_OK;
		}
		if (opt == 'v') {
			verbose = true;
			continue;
		}
		return nd_bad_option("list", opt, argv);
	}
	if (optind != argc) {
		nd_err("list: takes no arguments");
		return ND_EXIT_USAGE;
	}
	if (access(ND_CTL_PATH, F_OK)) {
		nd_err("kernel module not loaded (try: modprobe netdisk, or insmod netdisk.ko)");
		return ND_EXIT_NO_MODULE;
	}
	dir = opendir(SYS_BLOCK);
	if (!dir) {
		nd_err("%s: %s", SYS_BLOCK, strerror(errno));
		return ND_EXIT_FAIL;
	}
	while ((de = readdir(dir))) {
		long v = parse_device(de->d_name);
		char probe[300];

		if (v < 0)
			continue;
		/* Only ours: another driver could use a similar name. */
		snprintf(probe, sizeof(probe), SYS_BLOCK "/%s/netdisk", de->d_name);
		if (access(probe, F_OK))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(idx, cap * sizeof(*idx));
			if (!grown) {
				closedir(dir);
				free(idx);
				nd_err("out of memory");
				return ND_EXIT_FAIL;
			}
			idx = grown;
		}
		idx[n++] = v;
	}
	closedir(dir);
	qsort(idx, n, sizeof(*idx), cmp_index);

	printf("%-14s %-24s %-16s %10s  %-10s %s\n", "DEVICE", "SERVER",
	       "EXPORT", "SIZE", "STATE", "RO");
	for (i = 0; i < n; i++) {
		char name[32], server[160], exp[80], state[32], ro[8],
		     sectors[32], human[32];
		unsigned long long sz;

		snprintf(name, sizeof(name), ND_DISK_PREFIX "%ld", idx[i]);
		read_attr(name, "netdisk/server", server, sizeof(server));
		read_attr(name, "netdisk/export", exp, sizeof(exp));
		read_attr(name, "netdisk/state", state, sizeof(state));
		read_attr(name, "netdisk/read_only", ro, sizeof(ro));
		read_attr(name, "size", sectors, sizeof(sectors));
		sz = strtoull(sectors, NULL, 10) * 512ull;
		printf("/dev/%-9s %-24s %-16s %10s  %-10s %s\n", name, server,
		       exp, nd_human(sz, human, sizeof(human)), state,
		       !strcmp(ro, "1") ? "yes" : "no");
		if (verbose)
			list_verbose(name);
	}
	free(idx);
	return ND_EXIT_OK;
}
