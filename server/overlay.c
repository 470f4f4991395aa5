// SPDX-License-Identifier: MIT
/*
 * nd_server_overlay: the control socket's overlay commands (control.h) on
 * a running server. A command that touches an overlay file first holds
 * the identity (nd_exp_cow_hold: new sessions of it get busy; an attached
 * one refuses the command or, forced, is ended), then works on the file
 * with cow_admin.c, which takes the overlay's own lock, then lets go. The
 * cow export is referenced meanwhile, so a reload that removes it cannot
 * close the base under a merge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "cow.h"
#include "internal.h"
#include "log.h"
#include "overlay.h"

/* Words of the longest command: overlay-merge EXPORT IDENTITY OUTPUT. */
#define OVL_MAX_WORDS	4

enum ovl_cmd { OVL_LIST, OVL_RESET, OVL_MERGE, OVL_CHECK };

/* The commands and how many words each takes, its own included. */
static const struct verb {
	const char *word;
	enum ovl_cmd cmd;
	int min, max;
	const char *usage;
} verbs[] = {
	{ "overlays", OVL_LIST, 2, 2, "overlays EXPORT" },
	{ "overlay-reset", OVL_RESET, 3, 4,
	  "overlay-reset EXPORT IDENTITY [force]" },
	{ "overlay-merge", OVL_MERGE, 4, 4,
	  "overlay-merge EXPORT IDENTITY OUTPUT (absolute, no blanks)" },
	{ "overlay-check", OVL_CHECK, 3, 3, "overlay-check EXPORT IDENTITY" },
	{ NULL, 0, 0, 0, NULL },
};

void nd_overlay_print(FILE *out, const char *export,
		      const struct nd_cow_info *in, bool attached, size_t mem)
{
	fprintf(out, "overlay %s %s size=%llu allocated=%llu data=%llu zero=%llu created=%lld last_used=",
		export, in->identity, (unsigned long long)in->size,
		(unsigned long long)in->allocated,
		(unsigned long long)in->data_bytes,
		(unsigned long long)in->zero_bytes, (long long)in->created);
	if (in->last_used)
		fprintf(out, "%lld", (long long)in->last_used);
	else
		fputc('-', out);
	fprintf(out, " attaches=%llu attached=%s mem=",
		(unsigned long long)in->attaches, attached ? "yes" : "no");
	if (attached && mem != ND_OVL_MEM_UNKNOWN)
		fprintf(out, "%zu\n", mem);
	else
		fputs("-\n", out);
}

bool nd_overlay_name_ok(const char *name)
{
	return nd_name_valid((const uint8_t *)name, strlen(name));
}

bool nd_overlay_output_ok(const char *path)
{
	if (path[0] != '/' || strlen(path) >= PATH_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* The cow export called name, with a reference; NULL with err set. */
static struct nd_exp *cow_export_get(struct nd_server *s, const char *name,
				     char *err, size_t errlen)
{
	const struct nd_cfg_export *ce;
	struct nd_exp *x = NULL;

	pthread_mutex_lock(&s->sess_lock);
	ce = nd_config_export(&s->cfg, name);
	if (!ce) {
		snprintf(err, errlen, "no export '%s'", name);
	} else if (!ce->cow_dir[0]) {
		snprintf(err, errlen, "export '%s' is not a copy-on-write export",
			 name);
	} else {
		x = s->exps[ce - s->cfg.exports];
		if (x->open) {
			x->refs++;
		} else {
			snprintf(err, errlen, "export '%s' is not open (see the reload's error)",
				 name);
			x = NULL;
		}
	}
	pthread_mutex_unlock(&s->sess_lock);
	return x;
}

static void cow_export_put(struct nd_server *s, struct nd_exp *x)
{
	pthread_mutex_lock(&s->sess_lock);
	nd_exp_put_locked(s, x);
	pthread_mutex_unlock(&s->sess_lock);
}

static bool attached(struct nd_server *s, struct nd_exp *x, const char *id,
		     size_t *mem)
{
	struct nd_exp *child;

	pthread_mutex_lock(&s->sess_lock);
	child = nd_exp_cow_child_locked(x, id);
	if (child && mem)
		*mem = child->e.h ? nd_cow_mem(child->e.h) : 0;
	pthread_mutex_unlock(&s->sess_lock);
	return child != NULL;
}

static void list(struct nd_server *s, struct nd_exp *x, FILE *out)
{
	struct nd_cow_info *v = NULL;
	char err[512];
	size_t mem;
	bool on;
	int n = 0;

	if (nd_cow_list(x->cow_dir, &v, &n, err, sizeof(err)) < 0) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	for (int i = 0; i < n; i++) {
		mem = 0;
		on = attached(s, x, v[i].identity, &mem);
		nd_overlay_print(out, x->e.name, &v[i], on, mem);
	}
	free(v);
	fputs("ok\n", out);
}

/*
 * Holds id for a command that must not end its session: refuses an
 * attached identity with a hint that fits the command.
 */
static int hold_detached(struct nd_server *s, struct nd_exp *x,
			 const char *id, const char *what, char *err,
			 size_t errlen)
{
	if (attached(s, x, id, NULL)) {
		snprintf(err, errlen, "identity '%s' is attached to export '%s': %s it once it has detached",
			 id, x->e.name, what);
		return -1;
	}
	return nd_exp_cow_hold(s, x, id, false, 0, err, errlen);
}

static void reset(struct nd_server *s, struct nd_exp *x, const char *id,
		  bool force, FILE *out)
{
	char err[512];
	int rc;

	if (nd_exp_cow_hold(s, x, id, force, s->drain_ms, err,
			    sizeof(err)) < 0) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	rc = nd_cow_reset(x->cow_dir, id, err, sizeof(err));
	nd_exp_cow_unhold(s, x, id);
	if (rc < 0) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	nd_info("export '%s': overlay of identity '%s' reset by the administrator%s",
		x->e.name, id, force ? " (forced)" : "");
	fputs("ok\n", out);
}

static void merge(struct nd_server *s, struct nd_exp *x, const char *id,
		  const char *output, FILE *out)
{
	const struct nd_cow_base base = {
		.e = &x->e, .path = x->path, .dev = x->dev, .ino = x->ino,
	};
	char err[512];
	int rc;

	if (hold_detached(s, x, id, "merge", err, sizeof(err)) < 0) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	nd_info("export '%s': merging the overlay of identity '%s' into %s",
		x->e.name, id, output);
	rc = nd_cow_merge(&base, x->cow_dir, id, output, err, sizeof(err));
	nd_exp_cow_unhold(s, x, id);
	if (rc < 0) {
		nd_warn("export '%s': merge of identity '%s' failed: %s",
			x->e.name, id, err);
		fprintf(out, "error: %s\n", err);
		return;
	}
	nd_info("export '%s': overlay of identity '%s' merged into %s",
		x->e.name, id, output);
	fputs("ok\n", out);
}

static void check(struct nd_server *s, struct nd_exp *x, const char *id,
		  FILE *out)
{
	const struct nd_cow_base base = {
		.e = &x->e, .path = x->path, .dev = x->dev, .ino = x->ino,
	};
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *report;
	int rc;

	if (hold_detached(s, x, id, "check", err, sizeof(err)) < 0) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	report = open_memstream(&text, &len);
	if (!report) {
		nd_exp_cow_unhold(s, x, id);
		fputs("error: out of memory\n", out);
		return;
	}
	rc = nd_cow_check(&base, x->cow_dir, id, report, err, sizeof(err));
	nd_exp_cow_unhold(s, x, id);
	if (fclose(report)) {
		fputs("error: out of memory\n", out);
	} else if (rc < 0) {
		fprintf(out, "error: %s\n", err);
	} else {
		fwrite(text, 1, len, out);
		if (len && text[len - 1] != '\n')
			fputc('\n', out);
		fputs(rc ? "damaged\n" : "ok\n", out);
		if (rc)
			nd_warn("export '%s': check of the overlay of identity '%s' found damage or a changed base",
				x->e.name, id);
	}
	free(text);
}

void nd_server_overlay(struct nd_server *s, const char *line, FILE *out)
{
	/* One word more than any command takes: "too many" is a usage error. */
	char buf[ND_CTL_CMD_MAX], err[512], *w[OVL_MAX_WORDS + 1], *save = NULL;
	const struct verb *v;
	struct nd_exp *x;
	int n = 0;

	if (strlen(line) >= sizeof(buf)) {
		fputs("error: command too long\n", out);
		return;
	}
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok_r(buf, " ", &save);
	     t && n < OVL_MAX_WORDS + 1; t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	for (v = verbs; v->word && (!n || strcmp(v->word, w[0])); v++)
		;
	if (!v->word) {
		fputs("error: unknown command\n", out);
		return;
	}
	if (n < 2 || !nd_overlay_name_ok(w[1])) {
		fputs("error: missing or invalid export name\n", out);
		return;
	}
	if (v->min > 2 && (n < 3 || !nd_overlay_name_ok(w[2]))) {
		fputs("error: missing or invalid identity\n", out);
		return;
	}
	if (n < v->min || n > v->max ||
	    (v->cmd == OVL_RESET && n == 4 && strcmp(w[3], "force")) ||
	    (v->cmd == OVL_MERGE && !nd_overlay_output_ok(w[3]))) {
		fprintf(out, "error: usage: %s\n", v->usage);
		return;
	}

	x = cow_export_get(s, w[1], err, sizeof(err));
	if (!x) {
		fprintf(out, "error: %s\n", err);
		return;
	}
	switch (v->cmd) {
	case OVL_LIST:
		list(s, x, out);
		break;
	case OVL_RESET:
		reset(s, x, w[2], n == 4, out);
		break;
	case OVL_MERGE:
		merge(s, x, w[2], w[3], out);
		break;
	case OVL_CHECK:
		check(s, x, w[2], out);
		break;
	}
	cow_export_put(s, x);
}
