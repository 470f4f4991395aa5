/* SPDX-License-Identifier: MIT */
/* netdisk://HOST[:PORT][/EXPORT] parsing and connecting. */
#ifndef ND_URL_H
#define ND_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netdisk_proto.h"

#define ND_URL_SCHEME		"netdisk://"
#define ND_URL_HOST_MAX		255

struct nd_url {
	char host[ND_URL_HOST_MAX + 1];	/* name or address, no brackets */
	uint16_t port;
	char export_name[ND_NAME_MAX + 1];
};

/* True if s starts with the netdisk:// scheme (so it is meant as a URL). */
bool nd_url_is_url(const char *s);

/*
 * Parses netdisk://HOST[:PORT][/EXPORT]; HOST is a name, an IPv4 address or
 * a bracketed IPv6 address. Defaults: port ND_DEFAULT_PORT, export
 * "default". Returns 0, or -1 with a one-line reason in err.
 */
int nd_url_parse(const char *s, struct nd_url *u, char *err, size_t errlen);

/* Formats u back into canonical URL form. */
void nd_url_format(const struct nd_url *u, char *out, size_t outlen);

/*
 * Resolves u->host and connects to each address in turn, each attempt
 * bounded by timeout_ms. Returns a blocking TCP socket with TCP_NODELAY,
 * or -1 with a one-line reason in err.
 */
int nd_url_connect(const struct nd_url *u, int timeout_ms, char *err,
		   size_t errlen);

#endif /* ND_URL_H */
