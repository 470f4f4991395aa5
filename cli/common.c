// SPDX-License-Identifier: MIT
/* Shared helpers of the netdisk CLI: options, sizes, errors, connecting. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "nd_wire.h"

const char *nd_err_context;

void nd_err(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One line, whatever the message contains. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (nd_err_context)
		fprintf(stderr, "netdisk: %s: %s\n", nd_err_context, buf);
	else
		fprintf(stderr, "netdisk: %s\n", buf);
}

int nd_parse_uint(const char *s, unsigned long min, unsigned long max,
		  unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int nd_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case 't': case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	if (*end) {
		end++;
		/* Accept "4k", "4kB", "4KiB". */
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -1;
	}
	if (shift && v > (ULLONG_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int nd_parse_seconds(const char *s, int64_t *ms)
{
	char *end;
	double v;

	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || v < 0 || v > 1e7)
		return -1;
	*ms = (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

const char *nd_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

void nd_flag_words(uint32_t flags, char *out, size_t len)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ ND_EXP_READ_ONLY, "read-only" },
		{ ND_EXP_FLUSH, "flush" },
		{ ND_EXP_FUA, "fua" },
		{ ND_EXP_TRIM, "trim" },
		{ ND_EXP_WRITE_ZEROES, "write-zeroes" },
		{ ND_EXP_EXCLUSIVE, "exclusive" },
		{ ND_LIST_BUSY, "busy" },
	};
	size_t i;

	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(flags & names[i].bit))
			continue;
		if (out[0])
			strncat(out, " ", len - strlen(out) - 1);
		strncat(out, names[i].name, len - strlen(out) - 1);
	}
	if (!out[0])
		snprintf(out, len, "none");
}

int nd_common_opt(int opt, const char *arg, struct nd_common_opts *o)
{
	int64_t ms;

	switch (opt) {
	case ND_OPT_KEY_FILE:
		o->key_file = arg;
		return 1;
	case ND_OPT_IDENTITY:
		if (!nd_name_valid((const uint8_t *)arg, strlen(arg))) {
			nd_err("invalid identity '%s' (1-%d characters of A-Z a-z 0-9 . _ -)",
			       arg, ND_NAME_MAX);
			return -1;
		}
		o->identity = arg;
		return 1;
	case ND_OPT_TIMEOUT:
		if (nd_parse_seconds(arg, &ms) || ms < 1 || ms > INT_MAX) {
			nd_err("invalid --timeout '%s' (seconds, > 0)", arg);
			return -1;
		}
		o->timeout_ms = (int)ms;
		return 1;
	default:
		return 0;
	}
}

int nd_bad_option(const char *cmd, int opt, char **argv)
{
	extern int optopt, optind;
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (opt == ':')
		nd_err("%s: option '%s' needs a value (see 'netdisk %s --help')",
		       cmd, arg, cmd);
	else if (optopt && optopt < 0x100)
		nd_err("%s: unknown option '-%c' (see 'netdisk %s --help')",
		       cmd, optopt, cmd);
	else
		nd_err("%s: unknown option '%s' (see 'netdisk %s --help')",
		       cmd, arg, cmd);
	return ND_EXIT_USAGE;
}

static int status_exit(unsigned int status)
{
	switch (status) {
	case ND_OK:
		return ND_EXIT_OK;
	case ND_ERR_BUSY:
		return ND_EXIT_BUSY;
	case ND_ERR_READ_ONLY:
		return ND_EXIT_READ_ONLY;
	case ND_ERR_RANGE:
		return ND_EXIT_RANGE;
	case ND_ERR_NO_EXPORT:
		return ND_EXIT_NO_EXPORT;
	case ND_ERR_ACCESS:
		return ND_EXIT_ACCESS;
	case ND_ERR_BASE_CHANGED:
		return ND_EXIT_BASE_CHANGED;
	case ND_ERR_VERSION:
	case ND_ERR_NO_SESSION:
	case ND_ERR_INVALID:
		return ND_EXIT_PROTO;
	default:
		return ND_EXIT_FAIL;
	}
}

int nd_exit_code(int result, uint16_t status)
{
	switch (result) {
	case 0:
		return ND_EXIT_OK;
	case ND_CE_CONNECT:
		return ND_EXIT_CONNECT;
	case ND_CE_AUTH:
		return ND_EXIT_AUTH;
	case ND_CE_REFUSED:
		return status_exit(status);
	case ND_CE_PROTO:
	case ND_CE_IO:
	case ND_CE_RECORD_AUTH:
	case ND_CE_TIMEOUT:
	case ND_CE_CLOSED:
		return ND_EXIT_PROTO;
	case ND_CE_NOMEM:
	case ND_CE_NO_LIST:
		return ND_EXIT_FAIL;
	default:
		return result > 0 ? status_exit((unsigned int)result) :
				    ND_EXIT_FAIL;
	}
}

int nd_report_result(const char *what, int result)
{
	nd_err("%s: %s", what, nd_client_strerror(result));
	return nd_exit_code(result, 0);
}

int nd_cli_connect(const char *url, const struct nd_common_opts *o,
		   uint32_t cflags, unsigned int max_inflight,
		   uint32_t max_payload, struct nd_client **out,
		   struct nd_url *u)
{
	struct nd_client_opts co = {
		.identity = o->identity,
		.flags = cflags,
		.max_payload = max_payload,
		.max_inflight = max_inflight,
		.timeout_ms = o->timeout_ms,
	};
	uint8_t key[ND_KEY_LEN];
	char err[512], canon[400];
	uint16_t status = 0;
	int rc;

	if (nd_url_parse(url, u, err, sizeof(err))) {
		nd_err("%s", err);
		return ND_EXIT_USAGE;
	}
	if (!o->key_file) {
		nd_err("--key-file is required");
		return ND_EXIT_USAGE;
	}
	if (nd_key_load(o->key_file, key, err, sizeof(err))) {
		nd_err("%s", err);
		return ND_EXIT_FAIL;
	}
	rc = nd_client_open(u, key, &co, out, &status, err, sizeof(err));
	nd_wipe(key, sizeof(key));
	if (rc) {
		nd_url_format(u, canon, sizeof(canon));
		nd_err("%s: %s", canon, err);
		return nd_exit_code(rc, status);
	}
	return 0;
}

int nd_fd_size(int fd, uint64_t *size, bool *is_blockdev)
{
	struct stat st;

	if (fstat(fd, &st))
		return -1;
	if (is_blockdev)
		*is_blockdev = S_ISBLK(st.st_mode);
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) ? -1 : 0;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

uint64_t nd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
