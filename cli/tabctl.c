// SPDX-License-Identifier: MIT
/*
 * netdisk attach --tab NAME / detach --tab NAME: the netdisktab(5) entry
 * NAME attached with its options, and detached again. Each attached entry
 * has two symlinks in ND_TAB_RUNDIR: NAME -> /dev/netdiskN, a stable path
 * for the admin, and .NAME.id -> "netdiskN SERVER EXPORT", what was
 * attached as sysfs shows it. Detach goes by the record, not the table:
 * the entry may have been edited or removed since, and the device is
 * detached only while sysfs still shows the recorded server and export
 * (an index can be reused).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "netdisk_ioctl.h"
#include "tab.h"

/* Parses [--tab NAME] [--tab-file FILE] [--force]; ND_EXIT_OK or usage. */
static int tab_args(const char *cmd, int argc, char **argv, const char **name,
		    const char **file, bool *force)
{
	enum { OPT_TAB = ND_OPT_FIRST_PRIVATE, OPT_TAB_FILE, OPT_FORCE };
	static const struct option lo[] = {
		{ "tab", required_argument, NULL, OPT_TAB },
		{ "tab-file", required_argument, NULL, OPT_TAB_FILE },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*file = ND_TAB_DEFAULT;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
		switch (opt) {
		case OPT_TAB:
			*name = optarg;
			break;
		case OPT_TAB_FILE:
			*file = optarg;
			break;
		case OPT_FORCE:
			if (force) {
				*force = true;
				break;
			}
			/* fallthrough */
		default:
			nd_err("%s --tab: takes only --tab NAME and --tab-file FILE%s",
			       cmd, force ? " and --force" : "");
			return ND_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		nd_err("%s --tab: unexpected argument '%s' (the entry gives the URL and options)",
		       cmd, argv[optind]);
		return ND_EXIT_USAGE;
	}
	return ND_EXIT_OK;
}

bool nd_tab_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--tab") || !strncmp(argv[i], "--tab=", 6))
			return true;
	return false;
}

/* Loads the table and the entry name; prints why not and returns -1. */
static int load_entry(const char *file, const char *name, struct nd_tab *t,
		      struct nd_tab_entry **e)
{
	char err[512];

	if (nd_tab_load(file, t, err, sizeof(err))) {
		nd_err("%s", err);
		return -1;
	}
	*e = nd_tab_find(t, name);
	if (!*e) {
		nd_err("%s: no entry '%s'", file, name);
		nd_tab_free(t);
		return -1;
	}
	if ((*e)->err[0]) {
		nd_err("%s", (*e)->err);
		nd_tab_free(t);
		return -1;
	}
	return 0;
}

/* One line of /sys/block/netdiskN/netdisk/attr, without the newline. */
static int sysfs_read(long idx, const char *attr, char *buf, size_t len)
{
	char path[128];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "/sys/block/" ND_DISK_PREFIX "%ld/netdisk/%s",
		 idx, attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fgets(buf, len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* "netdiskN SERVER EXPORT" of the device now; -1 if there is none. */
static int device_id(long idx, char *id, size_t len)
{
	char server[300], exp[128];

	if (sysfs_read(idx, "server", server, sizeof(server)) ||
	    sysfs_read(idx, "export", exp, sizeof(exp)))
		return -1;
	snprintf(id, len, ND_DISK_PREFIX "%ld %s %s", idx, server, exp);
	return 0;
}

/* The device recorded for entry name if it is still that device; or -1. */
static long attached_device(const char *name)
{
	char link[PATH_MAX], rec[512], now[512];
	ssize_t n;
	long idx;

	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/.%s.id", name);
	n = readlink(link, rec, sizeof(rec) - 1);
	if (n < 0)
		return -1;
	rec[n] = '\0';
	if (sscanf(rec, ND_DISK_PREFIX "%ld ", &idx) != 1 || idx < 0)
		return -1;
	if (device_id(idx, now, sizeof(now)) || strcmp(now, rec))
		return -1;
	return idx;
}

/* ND_TAB_RUNDIR/name -> target, replaced atomically. */
static int put_link(const char *name, const char *target)
{
	char link[PATH_MAX], tmp[PATH_MAX];

	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/%s", name);
	snprintf(tmp, sizeof(tmp), ND_TAB_RUNDIR "/.%s.%ld", name, (long)getpid());
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
		nd_err("%s: %s", link, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Records the attached device: .NAME.id first, then NAME. */
static int record_device(const char *name, long idx)
{
	char id[512], dev[64], rec[PATH_MAX];

	if (mkdir(ND_TAB_RUNDIR, 0755) < 0 && errno != EEXIST) {
		nd_err("%s: %s", ND_TAB_RUNDIR, strerror(errno));
		return -1;
	}
	if (device_id(idx, id, sizeof(id))) {
		nd_err("%s: " ND_DISK_PREFIX "%ld gone right after the attach",
		       name, idx);
		return -1;
	}
	snprintf(rec, sizeof(rec), ".%s.id", name);
	snprintf(dev, sizeof(dev), "/dev/" ND_DISK_PREFIX "%ld", idx);
	return put_link(rec, id) || put_link(name, dev) ? -1 : 0;
}

static void unlink_record(const char *name)
{
	char link[PATH_MAX];

	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/%s", name);
	unlink(link);
	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/.%s.id", name);
	unlink(link);
}

int nd_tab_attach(int argc, char **argv)
{
	const char *name = NULL, *file;
	struct nd_tab_entry *e;
	char where[PATH_MAX + 16];
	struct nd_tab t;
	long idx;
	int rc;

	rc = tab_args("attach", argc, argv, &name, &file, NULL);
	if (rc)
		return rc;
	if (load_entry(file, name, &t, &e))
		return ND_EXIT_USAGE;
	idx = attached_device(e->name);
	if (idx >= 0) {
		nd_err("%s: already attached as /dev/" ND_DISK_PREFIX "%ld",
		       e->name, idx);
		nd_tab_free(&t);
		return ND_EXIT_FAIL;
	}
	snprintf(where, sizeof(where), "%s:%d", file, e->line);
	/* Every message of the attach says which entry (a refused value too). */
	nd_err_context = where;
	rc = nd_attach_argv(e->argc, e->argv, &idx);
	nd_err_context = NULL;
	if (rc == ND_EXIT_OK && record_device(e->name, idx))
		rc = ND_EXIT_FAIL;	/* attached; detach by device path */
	nd_tab_free(&t);
	return rc;
}

/* The table is not read: the entry may have changed since the attach. */
int nd_tab_detach(int argc, char **argv)
{
	const char *name = NULL, *file;
	char target[64];
	char *dargv[4];
	bool force = false;
	long idx;
	int rc;

	rc = tab_args("detach", argc, argv, &name, &file, &force);
	if (rc)
		return rc;
	/* Names are paths in ND_TAB_RUNDIR: as netdisktab(5) allows them. */
	if (!name || !nd_name_valid((const uint8_t *)name, strlen(name)) ||
	    name[0] == '.') {
		nd_err("detach --tab: invalid entry name '%s'", name ? name : "");
		return ND_EXIT_USAGE;
	}
	idx = attached_device(name);
	if (idx < 0) {
		nd_err("%s: not attached", name);
		unlink_record(name);
		return ND_EXIT_FAIL;
	}
	snprintf(target, sizeof(target), "/dev/" ND_DISK_PREFIX "%ld", idx);
	dargv[0] = (char *)"detach";
	dargv[1] = target;
	dargv[2] = force ? (char *)"--force" : NULL;
	dargv[3] = NULL;
	rc = nd_cmd_detach(force ? 3 : 2, dargv);
	if (rc == ND_EXIT_OK)
		unlink_record(name);
	return rc;
}
