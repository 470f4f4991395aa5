/* SPDX-License-Identifier: MIT */
/*
 * netdisktab(5): the devices a client attaches at boot, one a line:
 *
 *   NAME  netdisk://HOST[:PORT][/EXPORT]  key-file=F[,OPTION...]
 *
 * Read by `netdisk attach|detach --tab NAME` and by netdisk-generator,
 * which makes netdisk@NAME.service wanted at boot for every entry.
 */
#ifndef ND_CLI_TAB_H
#define ND_CLI_TAB_H

#include <stdbool.h>
#include <stddef.h>

#include "netdisk_proto.h"

#define ND_TAB_DEFAULT		"/etc/netdisk/netdisktab"
/* NAME -> /dev/netdiskN symlinks of the attached entries. */
#define ND_TAB_RUNDIR		"/run/netdisk-devices"
#define ND_TAB_LINE_MAX		1024
#define ND_TAB_MAX_ARGS		24

struct nd_tab_entry {
	int line;
	char name[ND_NAME_MAX + 1];
	/*
	 * The entry as `netdisk attach` arguments: argv[0] "attach", the
	 * options, the URL, NULL. Strings point into buf.
	 */
	char *argv[ND_TAB_MAX_ARGS];
	int argc;
	const char *url;
	bool noauto;			/* not attached at boot */
	char err[320];			/* "" or why the line is refused */
	char buf[2 * ND_TAB_LINE_MAX];
};

struct nd_tab {
	/* One allocation each: argv points into the entry's own buf. */
	struct nd_tab_entry **e;
	int n;
};

/*
 * Reads every line of file. Bad lines become entries with err set
 * ("FILE:LINE: message"; name may be ""), so one typo does not hide the
 * other entries. -1 with err only if the file cannot be read.
 */
int nd_tab_load(const char *file, struct nd_tab *t, char *err, size_t errlen);
void nd_tab_free(struct nd_tab *t);
/* The entry called name (good or bad), or NULL. */
struct nd_tab_entry *nd_tab_find(const struct nd_tab *t,
				 const char *name);

#endif /* ND_CLI_TAB_H */
