/* SPDX-License-Identifier: MIT */
/* Shared helpers of the netdisk CLI subcommands. */
#ifndef ND_CLI_COMMON_H
#define ND_CLI_COMMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "url.h"

/* Options every network subcommand takes; see ND_COMMON_LONGOPTS. */
struct nd_common_opts {
	const char *key_file;
	const char *identity;
	int timeout_ms;
};

enum {
	ND_OPT_KEY_FILE = 0x100,
	ND_OPT_IDENTITY,
	ND_OPT_TIMEOUT,
	ND_OPT_FIRST_PRIVATE,	/* subcommands number their own from here */
};

#define ND_COMMON_LONGOPTS						\
	{ "key-file", required_argument, NULL, ND_OPT_KEY_FILE },	\
	{ "identity", required_argument, NULL, ND_OPT_IDENTITY },	\
	{ "timeout", required_argument, NULL, ND_OPT_TIMEOUT },	\
	{ "help", no_argument, NULL, 'h' }

#define ND_COMMON_USAGE							\
	"  --key-file FILE   pre-shared key (from 'netdisk keygen'), required\n" \
	"  --identity NAME   client identity sent to the server (default 'default')\n" \
	"  --timeout SEC     bounds connect, handshake, each request (default 30)\n" \
	"  -h, --help        this help\n"

/* Prints "netdisk: <message>\n" on stderr. */
void nd_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * If set, nd_err prints "netdisk: <context>: <message>" (a netdisktab
 * entry's FILE:LINE while attach --tab runs).
 */
extern const char *nd_err_context;

/*
 * Handles a common option for getopt_long's return value opt. Returns 1 if
 * handled, 0 if not a common option, -1 after printing an error.
 */
int nd_common_opt(int opt, const char *arg, struct nd_common_opts *o);

/*
 * Reports getopt_long's '?' or ':' for subcommand cmd; returns
 * ND_EXIT_USAGE.
 */
int nd_bad_option(const char *cmd, int opt, char **argv);

/* Parses SIZE with optional k/K, m/M, g/G, t/T suffix (powers of 1024). */
int nd_parse_size(const char *s, uint64_t *out);
/* Parses a non-negative decimal number of seconds into milliseconds. */
int nd_parse_seconds(const char *s, int64_t *ms);
/* Parses an unsigned integer in [min, max]. */
int nd_parse_uint(const char *s, unsigned long min, unsigned long max,
		  unsigned long *out);

/* Formats a byte count as "64.0 MiB". */
const char *nd_human(uint64_t bytes, char *buf, size_t len);

/*
 * Names of the export flags set in flags (ND_EXP_*, ND_LIST_BUSY),
 * space-separated, or "none".
 */
void nd_flag_words(uint32_t flags, char *out, size_t len);

/* Maps a client result (ND_CE_* or server status) to an exit code. */
int nd_exit_code(int result, uint16_t status);

/*
 * Parses url, loads the key and connects. On failure prints one line and
 * returns the exit code; on success returns 0 with *out set.
 */
int nd_cli_connect(const char *url, const struct nd_common_opts *o,
		   uint32_t cflags, unsigned int max_inflight,
		   uint32_t max_payload, struct nd_client **out,
		   struct nd_url *u);

/*
 * Reports a failed request or connection on the open client (one line,
 * prefixed with what) and returns the exit code.
 */
int nd_report_result(const char *what, int result);

/* Local file/device size (st_size or BLKGETSIZE64); -1 with errno. */
int nd_fd_size(int fd, uint64_t *size, bool *is_blockdev);

/* Monotonic time in nanoseconds. */
uint64_t nd_now_ns(void);

#endif /* ND_CLI_COMMON_H */
