// SPDX-License-Identifier: MIT
/*
 * `netdiskd overlay list|reset|merge|check`: the administrator's side of
 * the overlay commands. It asks the running server on its control socket
 * (the server then keeps new sessions of the identity away meanwhile).
 * With --config and no server answering there (socket missing or nobody
 * listening) it works on the files itself, with the export's directory
 * and base from the file: safe, because each operation takes the
 * overlay's lock, which a server that has the overlay open holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "overlay.h"

/* How long to wait for any answer but a merge's (which may take hours). */
#define OVL_WAIT_MS	60000

enum ovl_verb { OVL_LIST, OVL_RESET, OVL_MERGE, OVL_CHECK };

static const struct {
	const char *word;
	const char *ctl;		/* the control command (control.h) */
	int nargs;			/* after the verb */
	const char *args;
} verbs[] = {
	[OVL_LIST] = { "list", "overlays", 1, "EXPORT" },
	[OVL_RESET] = { "reset", "overlay-reset", 2, "EXPORT IDENTITY" },
	[OVL_MERGE] = { "merge", "overlay-merge", 3,
			"EXPORT IDENTITY OUTPUT" },
	[OVL_CHECK] = { "check", "overlay-check", 2, "EXPORT IDENTITY" },
};

struct ovl_args {
	enum ovl_verb verb;
	const char *export, *identity;
	char output[PATH_MAX];
	const char *control, *config;
	bool force;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: netdiskd overlay list  EXPORT [--control PATH | --config FILE]\n"
"       netdiskd overlay reset EXPORT IDENTITY [--force] [...]\n"
"       netdiskd overlay merge EXPORT IDENTITY OUTPUT [...]\n"
"       netdiskd overlay check EXPORT IDENTITY [...]\n"
"The per-identity overlays of a copy-on-write export (netdiskd(8) OVERLAYS),\n"
"through the running server's control socket (default\n"
"%s) or, with --config FILE and no server answering,\n"
"on the files directly.\n"
"  list    every overlay: size, allocated bytes, last use, attached or not\n"
"  reset   delete IDENTITY's overlay: it reads the base again (--force: end\n"
"          its session first if it is attached)\n"
"  merge   write what IDENTITY reads to OUTPUT, a new standalone image\n"
"  check   check the overlay's consistency and its binding to the base\n"
"Exit status: 0 ok, 1 error, 2 usage, 4 check found damage or a changed base.\n",
		ND_CFG_DEFAULT_CONTROL);
}

/* OUTPUT as the server needs it: absolute, no blanks. 0 or exit status 2. */
static int take_output(struct ovl_args *a, const char *arg, FILE *errout)
{
	char cwd[PATH_MAX];
	int n;

	if (arg[0] == '/') {
		n = snprintf(a->output, sizeof(a->output), "%s", arg);
	} else {
		if (!getcwd(cwd, sizeof(cwd))) {
			fprintf(errout, "netdiskd overlay: cannot resolve '%s': %s\n",
				arg, strerror(errno));
			return 2;
		}
		n = snprintf(a->output, sizeof(a->output), "%s/%s",
			     strcmp(cwd, "/") ? cwd : "", arg);
	}
	if (n < 0 || (size_t)n >= sizeof(a->output) ||
	    !nd_overlay_output_ok(a->output)) {
		fprintf(errout, "netdiskd overlay: invalid OUTPUT '%s' (a path without blanks or control characters)\n",
			arg);
		return 2;
	}
	return 0;
}

/* The positional arguments; 0 or exit status 2. */
static int take_words(struct ovl_args *a, int n, char **w, FILE *errout)
{
	size_t v;

	for (v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
		if (!strcmp(w[0], verbs[v].word))
			break;
	if (v == sizeof(verbs) / sizeof(verbs[0])) {
		fprintf(errout, "netdiskd overlay: unknown command '%s' (list, reset, merge, check)\n",
			w[0]);
		return 2;
	}
	a->verb = (enum ovl_verb)v;
	if (n - 1 != verbs[v].nargs) {
		fprintf(errout, "netdiskd overlay %s: takes %s (see --help)\n",
			verbs[v].word, verbs[v].args);
		return 2;
	}
	a->export = w[1];
	if (!nd_overlay_name_ok(a->export)) {
		fprintf(errout, "netdiskd overlay: invalid export name '%s' (1-64 of [A-Za-z0-9._-])\n",
			a->export);
		return 2;
	}
	if (n > 2) {
		a->identity = w[2];
		if (!nd_overlay_name_ok(a->identity)) {
			fprintf(errout, "netdiskd overlay: invalid identity '%s' (1-64 of [A-Za-z0-9._-])\n",
				a->identity);
			return 2;
		}
	}
	if (a->force && a->verb != OVL_RESET) {
		fprintf(errout, "netdiskd overlay: --force is for reset only\n");
		return 2;
	}
	return n > 3 ? take_output(a, w[3], errout) : 0;
}

/* -1 to go on, else the exit status. */
static int parse(int argc, char **argv, struct ovl_args *a, FILE *out,
		 FILE *errout)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;	/* a fresh scan, also when called twice (tests) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'C':
			if (optarg[0] != '/') {
				fprintf(errout, "netdiskd overlay: --control needs an absolute path\n");
				return 2;
			}
			a->control = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'f':
			a->force = true;
			break;
		case 'h':
			usage(out);
			return 0;
		case ':':
			fprintf(errout, "netdiskd overlay: option '%s' needs a value\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(errout, "netdiskd overlay: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (a->control && a->config) {
		fprintf(errout, "netdiskd overlay: takes --control PATH or --config FILE, not both\n");
		return 2;
	}
	if (optind >= argc) {
		fprintf(errout, "netdiskd overlay: list, reset, merge or check? (see --help)\n");
		return 2;
	}
	c = take_words(a, argc - optind, argv + optind, errout);
	return c ? c : -1;
}

/*
 * The server's answer: its lines but the last to out; the last says how
 * it went ("ok", "damaged" or "error: MESSAGE"). The exit status.
 */
static int interpret(const char *path, char *ans, size_t len, FILE *out,
		     FILE *errout)
{
	char *last;

	if (!len || ans[len - 1] != '\n' || memchr(ans, '\0', len)) {
		fprintf(errout, "netdiskd overlay: %s: incomplete answer from netdiskd\n",
			path);
		return 1;
	}
	ans[len - 1] = '\0';
	last = strrchr(ans, '\n');
	last = last ? last + 1 : ans;
	if (!strncmp(last, "error: ", 7)) {
		fprintf(errout, "netdiskd overlay: %s\n", last + 7);
		return 1;
	}
	if (strcmp(last, "ok") && strcmp(last, "damaged")) {
		fprintf(errout, "netdiskd overlay: %s: unexpected answer from netdiskd: %.80s\n",
			path, last);
		return 1;
	}
	fwrite(ans, 1, (size_t)(last - ans), out);
	return strcmp(last, "ok") ? ND_OVL_EXIT_DAMAGED : 0;
}

/* Asks the server at path; ND_CTL_NO_SERVER or the exit status. */
static int ask(const struct ovl_args *a, const char *path, FILE *out,
	       FILE *errout)
{
	char cmd[ND_CTL_CMD_MAX], err[1024], *ans = NULL;
	size_t len = 0;
	FILE *m;
	int rc;

	/* Fits: names of at most 64 bytes, output shorter than PATH_MAX. */
	snprintf(cmd, sizeof(cmd), "%s %.64s%s%.64s%s%.4095s%s",
		 verbs[a->verb].ctl, a->export, a->identity ? " " : "",
		 a->identity ? a->identity : "", a->output[0] ? " " : "",
		 a->output, a->force ? " force" : "");
	m = open_memstream(&ans, &len);
	if (!m) {
		fprintf(errout, "netdiskd overlay: out of memory\n");
		return 1;
	}
	rc = nd_control_ask(path, cmd, m, a->verb == OVL_MERGE ? -1 :
			    OVL_WAIT_MS, err, sizeof(err));
	if (fclose(m) && rc == 0) {
		snprintf(err, sizeof(err), "out of memory");
		rc = -1;
	}
	if (rc == 0) {
		rc = interpret(path, ans, len, out, errout);
	} else if (rc != ND_CTL_NO_SERVER || !a->config) {
		fprintf(errout, "netdiskd overlay: %s\n", err);
		rc = 1;
	}
	free(ans);
	return rc;
}

/*
 * Does a process hold the overlay's lock (a server that has it open, whose
 * control socket we could not reach, or another command)? Only asks.
 */
static bool locked(const char *dir, const char *identity)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[PATH_MAX + ND_NAME_MAX + 16];	/* config.c keeps it shorter */
	bool held = false;
	int fd;

	snprintf(path, sizeof(path), "%s/%s%s", dir, identity, ND_COW_SUFFIX);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return held;
}

static int offline_list(const struct nd_cfg_export *ce, FILE *out,
			FILE *errout)
{
	struct nd_cow_info *v = NULL;
	char err[1024];
	int n = 0;

	if (nd_cow_list(ce->cow_dir, &v, &n, err, sizeof(err)) < 0) {
		fprintf(errout, "netdiskd overlay: %s\n", err);
		return 1;
	}
	for (int i = 0; i < n; i++)
		nd_overlay_print(out, ce->name, &v[i],
				 locked(ce->cow_dir, v[i].identity),
				 ND_OVL_MEM_UNKNOWN);
	free(v);
	return 0;
}

/* merge and check: they read the base, opened read-only (shared lock). */
static int offline_with_base(const struct ovl_args *a,
			     const struct nd_cfg_export *ce, FILE *out,
			     FILE *errout)
{
	struct nd_export e = { 0 };
	struct nd_cow_base base = { .e = &e, .path = ce->path };
	char err[1024];
	struct stat st;
	int rc;

	if (nd_file_open(&e, ce->path, true, err, sizeof(err)) < 0) {
		fprintf(errout, "netdiskd overlay: base of export '%s': %s\n",
			ce->name, err);
		return 1;
	}
	if (stat(ce->path, &st) == 0) {
		base.dev = (uint64_t)st.st_dev;
		base.ino = (uint64_t)st.st_ino;
	}
	if (a->verb == OVL_MERGE)
		rc = nd_cow_merge(&base, ce->cow_dir, a->identity, a->output,
				  err, sizeof(err));
	else
		rc = nd_cow_check(&base, ce->cow_dir, a->identity, out, err,
				  sizeof(err));
	nd_export_close(&e);
	if (rc < 0) {
		fprintf(errout, "netdiskd overlay: %s\n", err);
		return 1;
	}
	return rc ? ND_OVL_EXIT_DAMAGED : 0;
}

/* No server: the files themselves, as the configuration describes them. */
static int offline(const struct ovl_args *a, const struct nd_config *cfg,
		   FILE *out, FILE *errout)
{
	const struct nd_cfg_export *ce = nd_config_export(cfg, a->export);
	char err[1024];

	if (!ce) {
		fprintf(errout, "netdiskd overlay: %s has no export '%s'\n",
			a->config, a->export);
		return 1;
	}
	if (!ce->cow_dir[0]) {
		fprintf(errout, "netdiskd overlay: export '%s' is not a copy-on-write export\n",
			a->export);
		return 1;
	}
	switch (a->verb) {
	case OVL_LIST:
		return offline_list(ce, out, errout);
	case OVL_RESET:
		if (nd_cow_reset(ce->cow_dir, a->identity, err,
				 sizeof(err)) < 0) {
			fprintf(errout, "netdiskd overlay: %s\n", err);
			return 1;
		}
		return 0;
	default:
		return offline_with_base(a, ce, out, errout);
	}
}

int nd_overlay_cmd(int argc, char **argv, FILE *out, FILE *errout)
{
	struct ovl_args a = { 0 };
	struct nd_config cfg = { 0 };
	char err[1024];
	const char *path;
	int rc;

	rc = parse(argc, argv, &a, out, errout);
	if (rc >= 0)
		return rc;
	if (a.config) {
		if (nd_config_load(a.config, &cfg, err, sizeof(err)) < 0) {
			fprintf(errout, "netdiskd overlay: %s\n", err);
			return 1;
		}
		path = cfg.control;
	} else {
		path = a.control ? a.control : ND_CFG_DEFAULT_CONTROL;
	}
	rc = path[0] ? ask(&a, path, out, errout) : ND_CTL_NO_SERVER;
	if (rc == ND_CTL_NO_SERVER)
		rc = offline(&a, &cfg, out, errout);
	if (a.config)
		nd_config_free(&cfg);
	if (fflush(out) && !rc) {
		fprintf(errout, "netdiskd overlay: cannot write the answer: %s\n",
			strerror(errno));
		rc = 1;
	}
	return rc;
}
