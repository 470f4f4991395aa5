// SPDX-License-Identifier: MIT
/*
 * netdisk:// URLs: nd_url_parse on the input as a C string (cut at the first
 * NUL). An accepted URL must hold a valid host, port and export name, and
 * formatting it must give a URL that parses back to the same thing.
 */
#include <stdlib.h>
#include <string.h>

#include "url.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct nd_url *u)
{
	size_t hl = strnlen(u->host, sizeof(u->host));
	size_t el = strnlen(u->export_name, sizeof(u->export_name));

	if (hl == 0 || hl > ND_URL_HOST_MAX || u->port == 0 ||
	    !nd_name_valid((const uint8_t *)u->export_name, el))
		fz_fail("accepted URL has host '%.*s' port %u export '%.*s'",
			(int)hl, u->host, u->port, (int)el, u->export_name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[128], out[512];
	struct nd_url u, v;
	int r;

	if (!s)
		fz_fail("out of memory");
	memcpy(s, data, size);
	s[size] = 0;
	memset(err, 0, sizeof(err));
	r = nd_url_parse(s, &u, err, sizeof(err));
	if (r != 0 && r != -1)
		fz_fail("nd_url_parse returned %d", r);
	if (r == 0 && !nd_url_is_url(s))
		fz_fail("parsed a string without the scheme");
	if (r < 0) {
		if (!err[0])
			fz_fail("rejected without a reason");
		free(s);
		return 0;
	}
	check(&u);
	nd_url_format(&u, out, sizeof(out));
	if (nd_url_parse(out, &v, err, sizeof(err)) < 0)
		fz_fail("formatted URL '%s' does not parse: %s", out, err);
	if (strcmp(u.host, v.host) || u.port != v.port ||
	    strcmp(u.export_name, v.export_name))
		fz_fail("'%s' does not round-trip through '%s'", s, out);
	/* A tiny buffer must truncate, not overflow. */
	nd_url_format(&u, out, 8);
	if (strlen(out) > 7)
		fz_fail("nd_url_format overran its buffer");
	free(s);
	return 0;
}
