// SPDX-License-Identifier: MIT
/* netdisk keygen [FILE]: a fresh 32-byte key as 64 hex characters. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "nd_wire.h"

static void keygen_usage(FILE *f)
{
	fprintf(f,
		"usage: netdisk keygen [FILE]\n"
		"\n"
		"Creates a random pre-shared key (64 hex characters). Without FILE it\n"
		"goes to stdout; FILE is created with mode 0600 and never overwritten.\n");
}

int nd_cmd_keygen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t key[ND_KEY_LEN];
	char text[66];
	const char *path = NULL;
	int opt, fd, rc = ND_EXIT_OK;
	size_t len;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (opt == 'h') {
			keygen_usage(stdout);
			return ND_EXIT_OK;
		}
		return nd_bad_option("keygen", opt, argv);
	}
	if (argc - optind > 1) {
		nd_err("keygen: too many arguments (usage: netdisk keygen [FILE])");
		return ND_EXIT_USAGE;
	}
	if (argc - optind == 1)
		path = argv[optind];

	if (nd_random(key, sizeof(key))) {
		nd_err("keygen: cannot get random bytes");
		return ND_EXIT_FAIL;
	}
	nd_key_format(key, text);
	nd_wipe(key, sizeof(key));
	len = strlen(text);

	if (!path || !strcmp(path, "-")) {
		if (fwrite(text, 1, len, stdout) != len || fflush(stdout)) {
			nd_err("keygen: cannot write to stdout: %s", strerror(errno));
			rc = ND_EXIT_FAIL;
		}
		nd_wipe(text, sizeof(text));
		return rc;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		if (errno == EEXIST)
			nd_err("keygen: %s already exists, not overwriting it", path);
		else
			nd_err("keygen: cannot create %s: %s", path, strerror(errno));
		nd_wipe(text, sizeof(text));
		return ND_EXIT_FAIL;
	}
	/* The umask may have been stricter; never looser than 0600. */
	if (fchmod(fd, 0600) || nd_write_full(fd, text, len) || fsync(fd)) {
		nd_err("keygen: cannot write %s: %s", path, strerror(errno));
		rc = ND_EXIT_FAIL;
	}
	if (close(fd) && rc == ND_EXIT_OK) {
		nd_err("keygen: cannot write %s: %s", path, strerror(errno));
		rc = ND_EXIT_FAIL;
	}
	if (rc != ND_EXIT_OK)
		unlink(path);
	nd_wipe(text, sizeof(text));
	return rc;
}
