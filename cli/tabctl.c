// SPDX-License-Identifier: MIT
/*
 * netdisk attach --tab NAME / detach --tab NAME: the netdisktab(5) entry
 * NAME attached with its options, and detached again. Each attached entry
 * is a symlink ND_TAB_RUNDIR/NAME -> /dev/netdiskN: how detach finds the
 * device, and a stable path for the admin.
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

/* The device ND_TAB_RUNDIR/name points to, as its index; -1 if none. */
static long linked_device(const char *name, char *target, size_t len)
{
	char link[PATH_MAX];
	ssize_t n;
	long idx;

	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/%s", name);
	n = readlink(link, target, len - 1);
	if (n < 0)
		return -1;
	target[n] = '\0';
	if (sscanf(target, "/dev/" ND_DISK_PREFIX "%ld", &idx) != 1 || idx < 0)
		return -1;
	return idx;
}

/* Is /dev/netdiskN still the device of this entry (not a reused index)? */
static bool same_device(long idx, const struct nd_tab_entry *e)
{
	char path[128], want[300], have[300], exp[128] = "";
	struct nd_url u;
	FILE *f;

	if (nd_url_parse(e->url, &u, have, sizeof(have)))
		return false;
	nd_kctl_display(&u, want, sizeof(want));
	snprintf(path, sizeof(path), "/sys/block/" ND_DISK_PREFIX "%ld/netdisk/server",
		 idx);
	f = fopen(path, "re");
	if (!f || !fgets(have, sizeof(have), f)) {
		if (f)
			fclose(f);
		return false;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/sys/block/" ND_DISK_PREFIX "%ld/netdisk/export",
		 idx);
	f = fopen(path, "re");
	if (!f || !fgets(exp, sizeof(exp), f)) {
		if (f)
			fclose(f);
		return false;
	}
	fclose(f);
	have[strcspn(have, "\n")] = '\0';
	exp[strcspn(exp, "\n")] = '\0';
	return !strcmp(have, want) && !strcmp(exp, u.export_name);
}

/* ND_TAB_RUNDIR/name -> /dev/netdiskN, replaced atomically. */
static int link_device(const char *name, long idx)
{
	char link[PATH_MAX], tmp[PATH_MAX], target[64];

	if (mkdir(ND_TAB_RUNDIR, 0755) < 0 && errno != EEXIST) {
		nd_err("%s: %s", ND_TAB_RUNDIR, strerror(errno));
		return -1;
	}
	snprintf(target, sizeof(target), "/dev/" ND_DISK_PREFIX "%ld", idx);
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

int nd_tab_attach(int argc, char **argv)
{
	const char *name = NULL, *file;
	struct nd_tab_entry *e;
	char target[PATH_MAX], where[PATH_MAX + 16];
	struct nd_tab t;
	long idx;
	int rc;

	rc = tab_args("attach", argc, argv, &name, &file, NULL);
	if (rc)
		return rc;
	if (load_entry(file, name, &t, &e))
		return ND_EXIT_USAGE;
	idx = linked_device(e->name, target, sizeof(target));
	if (idx >= 0 && same_device(idx, e)) {
		nd_err("%s: already attached as %s", e->name, target);
		nd_tab_free(&t);
		return ND_EXIT_FAIL;
	}
	snprintf(where, sizeof(where), "%s:%d", file, e->line);
	/* Every message of the attach says which entry (a refused value too). */
	nd_err_context = where;
	rc = nd_attach_argv(e->argc, e->argv, &idx);
	nd_err_context = NULL;
	if (rc == ND_EXIT_OK && link_device(e->name, idx))
		rc = ND_EXIT_FAIL;	/* attached; detach by device path */
	nd_tab_free(&t);
	return rc;
}

int nd_tab_detach(int argc, char **argv)
{
	const char *name = NULL, *file;
	struct nd_tab_entry *e;
	char target[PATH_MAX], link[PATH_MAX];
	char *dargv[4];
	bool force = false;
	struct nd_tab t;
	long idx;
	int rc;

	rc = tab_args("detach", argc, argv, &name, &file, &force);
	if (rc)
		return rc;
	if (load_entry(file, name, &t, &e))
		return ND_EXIT_USAGE;
	snprintf(link, sizeof(link), ND_TAB_RUNDIR "/%s", e->name);
	idx = linked_device(e->name, target, sizeof(target));
	if (idx < 0 || !same_device(idx, e)) {
		nd_err("%s: not attached", e->name);
		unlink(link);
		nd_tab_free(&t);
		return ND_EXIT_FAIL;
	}
	dargv[0] = (char *)"detach";
	dargv[1] = target;
	dargv[2] = force ? (char *)"--force" : NULL;
	dargv[3] = NULL;
	rc = nd_cmd_detach(force ? 3 : 2, dargv);
	if (rc == ND_EXIT_OK)
		unlink(link);
	nd_tab_free(&t);
	return rc;
}
