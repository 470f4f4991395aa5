// SPDX-License-Identifier: MIT
/*
 * netdisk-generator: systemd.generator(7) for netdisktab(5). For every
 * entry without noauto it makes netdisk@NAME.service wanted by
 * remote-fs.target in the generator directory, so a line in the table is
 * all it takes to attach a device at boot. A bad line is logged (to the
 * kernel log, where generators' stderr goes) and skipped: one typo does
 * not keep the other devices away.
 *
 * The template is found next to us: GENDIR/../system/netdisk@.service.
 * ND_TAB_FILE in the environment replaces the table (tests).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tab.h"

static int link_unit(const char *dir, const char *tmpl, const char *name)
{
	char wants[PATH_MAX], link[PATH_MAX + 96];

	snprintf(wants, sizeof(wants), "%s/remote-fs.target.wants", dir);
	if (mkdir(wants, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "netdisk-generator: %s: %s\n", wants,
			strerror(errno));
		return -1;
	}
	snprintf(link, sizeof(link), "%s/netdisk@%s.service", wants, name);
	if (symlink(tmpl, link) < 0 && errno != EEXIST) {
		fprintf(stderr, "netdisk-generator: %s: %s\n", link,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *file = getenv("ND_TAB_FILE");
	char self[PATH_MAX], tmpl[PATH_MAX + 64], err[512];
	struct nd_tab t;
	ssize_t n;
	int i, rc = 0;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: netdisk-generator NORMAL-DIR [EARLY-DIR LATE-DIR]\n");
		return 2;
	}
	if (!file || !*file)
		file = ND_TAB_DEFAULT;
	if (access(file, F_OK) < 0 && errno == ENOENT)
		return 0;		/* no table: nothing to attach */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "netdisk-generator: /proc/self/exe: %s\n",
			strerror(errno));
		return 1;
	}
	self[n] = '\0';
	snprintf(tmpl, sizeof(tmpl), "%s/../system/netdisk@.service",
		 dirname(self));
	if (nd_tab_load(file, &t, err, sizeof(err))) {
		fprintf(stderr, "netdisk-generator: %s\n", err);
		return 1;
	}
	for (i = 0; i < t.n; i++) {
		if (t.e[i]->err[0]) {
			fprintf(stderr, "netdisk-generator: %s (entry skipped)\n",
				t.e[i]->err);
			rc = 1;
		} else if (!t.e[i]->noauto &&
			   link_unit(argv[1], tmpl, t.e[i]->name)) {
			rc = 1;
		}
	}
	nd_tab_free(&t);
	return rc;
}
