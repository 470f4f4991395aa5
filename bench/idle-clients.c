// SPDX-License-Identifier: MIT
/*
 * idle-clients URL KEY-FILE N [PREFIX]: opens N read-only netdisk sessions,
 * reads 4 KiB on each (so every connection has carried a request, as an
 * attached but quiet device would), prints "ready N" and holds them until
 * stdin reaches EOF. Used by bench/run.sh to measure netdiskd's memory per
 * idle connection. With PREFIX, session i is identity PREFIX-i and
 * read-write: on a copy-on-write export, N attached overlays. Exits
 * non-zero if any session fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "nd_wire.h"
#include "url.h"

int main(int argc, char **argv)
{
	struct nd_client_opts o = { .flags = ND_CF_READ_ONLY, .max_inflight = 4 };
	struct nd_client **c;
	uint8_t key[ND_KEY_LEN];
	static uint8_t buf[4096];
	struct nd_url u;
	char err[512], id[ND_NAME_MAX + 1], *end;
	long n, i;
	int rc = 0;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: idle-clients URL KEY-FILE N [PREFIX]\n");
		return 2;
	}
	n = strtol(argv[3], &end, 10);
	if (*end || n < 1 || n > 4096) {
		fprintf(stderr, "idle-clients: bad count '%s' (1-4096)\n", argv[3]);
		return 2;
	}
	if (nd_url_parse(argv[1], &u, err, sizeof(err)) ||
	    nd_key_load(argv[2], key, err, sizeof(err))) {
		fprintf(stderr, "idle-clients: %s\n", err);
		return 2;
	}
	if (argc == 5) {
		/* "PREFIX-N" must stay a valid identity. */
		if (!*argv[4] || strlen(argv[4]) > ND_NAME_MAX - 5) {
			fprintf(stderr, "idle-clients: bad prefix '%s'\n", argv[4]);
			return 2;
		}
		o.flags = 0;
		o.identity = id;
	}
	c = calloc((size_t)n, sizeof(*c));
	if (!c) {
		fprintf(stderr, "idle-clients: out of memory\n");
		return 1;
	}
	for (i = 0; i < n; i++) {
		uint16_t status = 0;
		int r;

		if (argc == 5)
			snprintf(id, sizeof(id), "%s-%ld", argv[4], i);
		r = nd_client_open(&u, key, &o, &c[i], &status, err,
				   sizeof(err));

		if (r) {
			fprintf(stderr, "idle-clients: session %ld: %s\n", i, err);
			rc = 1;
			break;
		}
		r = nd_client_read(c[i], buf, 0, sizeof(buf));
		if (r) {
			fprintf(stderr, "idle-clients: session %ld: read: %s\n",
				i, nd_client_strerror(r));
			rc = 1;
			break;
		}
	}
	nd_wipe(key, sizeof(key));
	if (!rc) {
		printf("ready %ld\n", n);
		fflush(stdout);
		/* Hold the sessions until the caller closes our stdin. */
		while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
			;
	}
	for (i = 0; i < n; i++) {
		if (c[i] && nd_client_close(c[i]) && !rc) {
			fprintf(stderr, "idle-clients: session %ld ended with an error\n", i);
			rc = 1;
		}
	}
	free(c);
	return rc;
}
