// SPDX-License-Identifier: MIT
/* netdisktab(5) parsing (tab.h). Nothing here attaches or prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tab.h"
#include "url.h"

/* Options of the third field and whether they take a value. */
static const struct {
	const char *name;
	bool value;
} tab_opts[] = {
	{ "key-file", true },
	{ "identity", true },
	{ "timeout", true },
	{ "reconnect-timeout", true },
	{ "connections", true },
	{ "cache-size", true },
	{ "read-only", false },
	{ "ro", false },
	{ "noauto", false },
};

/* Copies s into e->buf and returns the copy (the buffer is large enough). */
static char *keep(struct nd_tab_entry *e, size_t *used, const char *s,
		  size_t len)
{
	char *p = e->buf + *used;

	memcpy(p, s, len);
	p[len] = '\0';
	*used += len + 1;
	return p;
}

static int bad(struct nd_tab_entry *e, const char *file, const char *fmt,
	       const char *arg)
{
	char msg[240];

	/* Overlong words are cut: the line number says where. */
	snprintf(msg, sizeof(msg), fmt, arg);
	snprintf(e->err, sizeof(e->err), "%s:%d: %s", file, e->line, msg);
	return -1;
}

/* Parses "opt[=value],..." into e->argv. */
static int parse_options(struct nd_tab_entry *e, const char *file, char *opts,
			 size_t *used)
{
	bool have_key = false;
	char *tok, *save = NULL, *val;
	size_t i;

	for (tok = strtok_r(opts, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		val = strchr(tok, '=');
		if (val)
			*val++ = '\0';
		for (i = 0; i < sizeof(tab_opts) / sizeof(tab_opts[0]); i++)
			if (!strcmp(tab_opts[i].name, tok))
				break;
		if (i == sizeof(tab_opts) / sizeof(tab_opts[0]))
			return bad(e, file, "unknown option '%s'", tok);
		if (tab_opts[i].value && (!val || !*val))
			return bad(e, file, "option '%s' needs a value", tok);
		if (!tab_opts[i].value && val)
			return bad(e, file, "option '%s' takes no value", tok);
		if (!strcmp(tok, "noauto")) {
			e->noauto = true;
			continue;
		}
		if (e->argc + 3 >= ND_TAB_MAX_ARGS)
			return bad(e, file, "too many options%s", "");
		if (!strcmp(tok, "ro"))
			tok = (char *)"read-only";
		if (!strcmp(tok, "key-file"))
			have_key = true;
		e->argv[e->argc] = keep(e, used, "--", 2);
		/* "--" then the name: one string "--NAME". */
		(*used)--;
		keep(e, used, tok, strlen(tok));
		e->argc++;
		if (val)
			e->argv[e->argc++] = keep(e, used, val, strlen(val));
	}
	if (!have_key)
		return bad(e, file, "key-file=FILE is required%s", "");
	return 0;
}

static void parse_line(struct nd_tab_entry *e, const char *file, char *line)
{
	char *fields[4], *save = NULL, *p;
	struct nd_url u;
	char uerr[160];
	size_t used = 0;
	int n = 0;

	for (p = strtok_r(line, " \t", &save); p && n < 4;
	     p = strtok_r(NULL, " \t", &save))
		fields[n++] = p;
	if (!nd_name_valid((const uint8_t *)fields[0], strlen(fields[0]))) {
		bad(e, file, "invalid name '%s' (1-64 of [A-Za-z0-9._-])",
		    fields[0]);
		return;
	}
	snprintf(e->name, sizeof(e->name), "%s", fields[0]);
	/* "." and ".." are no symlink in ND_TAB_RUNDIR; ".x.PID" its temporaries. */
	if (fields[0][0] == '.') {
		bad(e, file, "invalid name '%s' (must not start with '.')",
		    fields[0]);
		return;
	}
	if (n < 3) {
		bad(e, file, "expected NAME URL OPTIONS%s", "");
		return;
	}
	if (n > 3) {
		bad(e, file, "unexpected '%s' after the options (no spaces in options)",
		    fields[3]);
		return;
	}
	if (nd_url_parse(fields[1], &u, uerr, sizeof(uerr))) {
		bad(e, file, "%s", uerr);
		return;
	}
	e->argv[e->argc++] = keep(e, &used, "attach", 6);
	if (parse_options(e, file, fields[2], &used))
		return;
	e->url = e->argv[e->argc++] = keep(e, &used, fields[1],
					   strlen(fields[1]));
	e->argv[e->argc] = NULL;
}

int nd_tab_load(const char *file, struct nd_tab *t, char *err, size_t errlen)
{
	char line[ND_TAB_LINE_MAX + 2], *p;
	struct nd_tab_entry **grown, *e;
	int lineno = 0, cap = 0, i;
	FILE *f;

	memset(t, 0, sizeof(*t));
	f = fopen(file, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		if (t->n == cap) {
			cap = cap ? 2 * cap : 8;
			grown = realloc(t->e, (size_t)cap * sizeof(*grown));
			if (!grown) {
				snprintf(err, errlen, "%s: out of memory", file);
				goto fail;
			}
			t->e = grown;
		}
		e = calloc(1, sizeof(*e));
		if (!e) {
			snprintf(err, errlen, "%s: out of memory", file);
			goto fail;
		}
		t->e[t->n++] = e;
		e->line = lineno;
		if (!strchr(p, '\n') && !feof(f)) {
			bad(e, file, "line longer than %s bytes", "1024");
			while (fgets(line, sizeof(line), f) && !strchr(line, '\n'))
				;
			continue;
		}
		p[strcspn(p, "\r\n")] = '\0';
		parse_line(e, file, p);
		for (i = 0; i < t->n - 1 && !e->err[0]; i++)
			if (!strcmp(t->e[i]->name, e->name))
				bad(e, file, "duplicate name '%s'", e->name);
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		goto fail;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	nd_tab_free(t);
	return -1;
}

void nd_tab_free(struct nd_tab *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		free(t->e[i]);
	free(t->e);
	memset(t, 0, sizeof(*t));
}

struct nd_tab_entry *nd_tab_find(const struct nd_tab *t,
				       const char *name)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (t->e[i]->name[0] && !strcmp(t->e[i]->name, name))
			return t->e[i];
	return NULL;
}
