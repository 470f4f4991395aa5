/* SPDX-License-Identifier: MIT */
/*
 * The netdisk= kernel command line parameter of network boot:
 *
 *   netdisk=netdisk://HOST[:PORT][/EXPORT][,OPTION...]
 *
 * OPTIONs: identity=NAME, ro, cache=SIZE, connections=N,
 * reconnect-timeout=SEC|forever, key-file=PATH. Parsed into the arguments
 * of `netdisk attach` (without the key file, which the caller adds), so
 * the boot path and the attach command cannot disagree on a value. A root
 * device must survive a server restart of any length: the default
 * reconnect timeout here is "forever", not attach's 120 s.
 */
#ifndef ND_BOOTARG_H
#define ND_BOOTARG_H

#include <stdbool.h>
#include <stddef.h>

#include "netdisk_proto.h"

#define ND_BOOTARG_PARAM	"netdisk="
#define ND_BOOTARG_MAX		1024	/* one parameter's value */
#define ND_BOOTARG_MAX_ARGS	16

struct nd_bootarg {
	/* "attach", options, the URL, NULL; strings point into buf. */
	char *argv[ND_BOOTARG_MAX_ARGS];
	int argc;
	const char *url;
	const char *key_file;		/* NULL: the caller's default */
	char buf[2 * ND_BOOTARG_MAX];
};

/*
 * Parses the value of one netdisk= parameter (without "netdisk=").
 * Returns 0, or -1 with a one-line reason in err.
 */
int nd_bootarg_parse(const char *val, struct nd_bootarg *b, char *err,
		     size_t errlen);

/*
 * Splits a kernel command line (as /proc/cmdline has it) into parameters
 * the way the kernel does: whitespace separates, double quotes group.
 * Calls fn for each netdisk= value in order; stops at fn's first nonzero
 * return and returns it. 0 if all were handled (or there were none).
 */
int nd_bootarg_each(const char *cmdline,
		    int (*fn)(const char *val, void *ctx), void *ctx);

#endif /* ND_BOOTARG_H */
