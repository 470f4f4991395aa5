// SPDX-License-Identifier: MIT
/*
 * netdiskd.conf(5) into a struct nd_config. libinih splits lines into
 * key = value and strips comments; it does not tell its handler the line
 * number, so it reads through our own reader (read_line), which counts
 * lines, strips leading blanks (so an indented line is never taken as a
 * continuation of the previous value), notes section headers and catches
 * the lines inih found no key in. The first error stops the parse and
 * becomes the one "FILE:LINE: message" line.
 */
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_parse.h"
#include "log.h"
#include "server.h"

/* Far more than 1024 exports take: anything bigger is not a config. */
#define MAX_FILE	(16 << 20)

int nd_cfg_fail(struct nd_cfg_parse *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->file, line, msg);
	return -1;
}

/* ---- sections */

static int end_section(struct nd_cfg_parse *p)
{
	int r = 0;

	if (p->sec == SEC_EXPORT)
		r = nd_cfg_end_export(p);
	p->sec = SEC_NONE;
	return r;
}

static int begin_export(struct nd_cfg_parse *p, const char *name)
{
	struct nd_config *cfg = p->cfg;
	struct nd_cfg_export *e;
	int i;

	if (!nd_name_valid((const uint8_t *)name, strlen(name)))
		return nd_cfg_fail(p, p->line,
			    "invalid export name '%s' (1-64 of [A-Za-z0-9._-])",
			    name);
	for (i = 0; i < cfg->nexports; i++)
		if (strcmp(cfg->exports[i].name, name) == 0)
			return nd_cfg_fail(p, p->line,
				    "export '%s' defined twice (first on line %d)",
				    name, cfg->exports[i].line);
	if (cfg->nexports == ND_CFG_MAX_EXPORTS)
		return nd_cfg_fail(p, p->line, "more than %d exports",
			    ND_CFG_MAX_EXPORTS);
	if (cfg->nexports == p->exports_cap) {
		int cap = p->exports_cap ? 2 * p->exports_cap : 8;
		struct nd_cfg_export *ge;
		struct nd_cfg_file *gf;

		ge = realloc(cfg->exports, (size_t)cap * sizeof(*ge));
		if (ge)
			cfg->exports = ge;
		gf = realloc(p->files, (size_t)cap * sizeof(*gf));
		if (gf)
			p->files = gf;
		if (!ge || !gf)
			return nd_cfg_fail(p, p->line, "out of memory");
		p->exports_cap = cap;
	}
	e = &cfg->exports[cfg->nexports++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->line = p->line;
	p->path_line = 0;
	p->cow_line = 0;
	p->read_only_line = 0;
	p->sec = SEC_EXPORT;
	p->keys = nd_cfg_export_keys;
	p->nkeys = nd_cfg_nexport_keys;
	return 0;
}

/*
 * A "[...]" line: ends the previous section, starts the next. inih sees
 * the same header, but truncates long names: its section name is unused.
 */
static int section_header(struct nd_cfg_parse *p, char *s)
{
	char *close = strchr(s, ']'), *name, *end, *rest;

	if (end_section(p) < 0)
		return -1;
	if (!close)
		return nd_cfg_fail(p, p->line, "section header without ']'");
	rest = close + 1 + strspn(close + 1, " \t");
	if (*rest && *rest != ';' && *rest != '#')
		return nd_cfg_fail(p, p->line, "text after the section header: '%s'",
			    rest);
	if ((size_t)(close - s - 1) >= sizeof(p->sec_name))
		return nd_cfg_fail(p, p->line, "unknown section (want [server] or [export NAME])");
	memcpy(p->sec_name, s + 1, (size_t)(close - s - 1));
	p->sec_name[close - s - 1] = 0;
	memset(p->seen, 0, sizeof(p->seen));

	name = p->sec_name + strspn(p->sec_name, " \t");
	end = name + strlen(name);
	while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - name == 6 && strncmp(name, "server", 6) == 0) {
		if (p->server_line)
			return nd_cfg_fail(p, p->line,
				    "[server] given twice (first on line %d)",
				    p->server_line);
		p->server_line = p->line;
		p->sec = SEC_SERVER;
		p->keys = nd_cfg_server_keys;
		p->nkeys = nd_cfg_nserver_keys;
		return 0;
	}
	if (end - name > 7 && strncmp(name, "export", 6) == 0 &&
	    (name[6] == ' ' || name[6] == '\t')) {
		char ename[sizeof(p->sec_name)];

		name += 6;
		name += strspn(name, " \t");
		memcpy(ename, name, (size_t)(end - name));
		ename[end - name] = 0;
		return begin_export(p, ename);
	}
	return nd_cfg_fail(p, p->line,
		    "unknown section [%s] (want [server] or [export NAME])",
		    p->sec_name);
}

/* ---- inih callbacks */

/* Longest line read, leading blanks included (inih's limit is lower). */
#define ND_CFG_READ_MAX		65536

/*
 * getline, bounded: a line without end (a huge file, /dev/zero, a pipe)
 * is refused after ND_CFG_READ_MAX bytes rather than read into memory
 * whole. Its length; -1 at the end of the file or on an error (errno
 * set), -2 if it is longer.
 */
static ssize_t get_line(struct nd_cfg_parse *p)
{
	size_t n = 0;
	int c = 0;

	if (!p->buf) {
		p->buf = malloc(ND_CFG_READ_MAX + 1);
		if (!p->buf)
			return -1;
	}
	while (c != '\n' && (c = getc(p->f)) != EOF) {
		if (n == ND_CFG_READ_MAX)
			return -2;
		p->buf[n++] = (char)c;
	}
	if (c == EOF && (n == 0 || ferror(p->f)))
		return -1;
	p->buf[n] = 0;
	return (ssize_t)n;
}

/* fgets for inih: one whole line per call, counted. */
static char *read_line(char *str, int num, void *stream)
{
	struct nd_cfg_parse *p = stream;
	ssize_t n;
	size_t len;
	char *s;

	if (p->failed)
		return NULL;
	if (p->want_call && !p->got_call) {
		nd_cfg_fail(p, p->line, "expected key = value or [section]");
		return NULL;
	}
	p->want_call = false;
	errno = 0;
	n = get_line(p);
	if (n == -2) {
		nd_cfg_fail(p, p->line + 1, "line longer than %d characters",
			    num - 2);
		return NULL;
	}
	if (n < 0) {
		if (errno)
			nd_cfg_fail(p, p->line + 1, "cannot read: %s",
			     strerror(errno));
		else
			end_section(p);
		return NULL;
	}
	p->line++;
	len = (size_t)n;
	if (len && p->buf[len - 1] == '\n')
		p->buf[--len] = 0;
	if (len && p->buf[len - 1] == '\r')
		p->buf[--len] = 0;
	if (strlen(p->buf) != len) {
		nd_cfg_fail(p, p->line, "NUL byte in the line");
		return NULL;
	}
	s = p->buf;
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;		/* UTF-8 byte order mark */
	s += strspn(s, " \t\f\v");
	len = strlen(s);
	if (len + 2 > (size_t)num) {
		nd_cfg_fail(p, p->line, "line longer than %d characters", num - 2);
		return NULL;
	}
	if (*s == '[') {
		if (section_header(p, s) < 0)
			return NULL;
	} else if (*s && *s != ';' && *s != '#') {
		p->want_call = true;
		p->got_call = false;
	}
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = 0;
	return str;
}

static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct nd_cfg_parse *p = user;
	int i;

	p->got_call = true;
	if (p->failed)
		return 0;
	if (p->sec == SEC_NONE)
		return !nd_cfg_fail(p, p->line,
			     "'%s' outside a section (put it under [server] or [export NAME])",
			     name);
	for (i = 0; i < p->nkeys; i++)
		if (strcmp(p->keys[i].name, name) == 0)
			break;
	if (i == p->nkeys)
		return !nd_cfg_fail(p, p->line, "unknown key '%s' in [%s]", name,
			     p->sec_name);
	if (p->seen[i] && !p->keys[i].repeat)
		return !nd_cfg_fail(p, p->line, "'%s' set twice (first on line %d)",
			     name, p->seen[i]);
	if (!p->seen[i])
		p->seen[i] = p->line;
	return p->keys[i].set(p, value) == 0;
}

static int cmp_export(const void *a, const void *b)
{
	return strcmp(((const struct nd_cfg_export *)a)->name,
		      ((const struct nd_cfg_export *)b)->name);
}

int nd_config_load(const char *file, struct nd_config *cfg, char *err,
		   size_t errlen)
{
	struct nd_cfg_parse p = {
		.file = file, .cfg = cfg, .err = err, .errlen = errlen,
	};
	struct stat st;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (strlen(file) >= sizeof(cfg->file))
		return nd_cfg_fail(&p, 0, "file name too long");
	snprintf(cfg->file, sizeof(cfg->file), "%s", file);
	cfg->port = ND_DEFAULT_PORT;
	cfg->grace_s = ND_SRV_DEFAULT_GRACE;
	cfg->max_payload = ND_DEFAULT_PAYLOAD;
	cfg->log_level = ND_LOG_INFO;
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s",
		 ND_CFG_DEFAULT_STATE);
	snprintf(cfg->control, sizeof(cfg->control), "%s",
		 ND_CFG_DEFAULT_CONTROL);

	p.f = fopen(file, "re");
	if (!p.f) {
		nd_cfg_fail(&p, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	/* Not /dev/zero or a FIFO: reading it could take forever. */
	if (fstat(fileno(p.f), &st) < 0 || !S_ISREG(st.st_mode)) {
		nd_cfg_fail(&p, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > MAX_FILE) {
		nd_cfg_fail(&p, 0, "larger than %d MiB", MAX_FILE >> 20);
		goto out;
	}
	r = ini_parse_stream(read_line, &p, on_key, &p);
	/* Backstop: a line inih refused that read_line did not catch. */
	if (!p.failed && r > 0)
		nd_cfg_fail(&p, r, "expected key = value or [section]");
	else if (!p.failed && r < 0)
		nd_cfg_fail(&p, 0, "out of memory");
	if (p.failed)
		goto out;
	if (!cfg->nexports) {
		nd_cfg_fail(&p, 0, "no export: add an [export NAME] section");
		goto out;
	}
	if (nd_cfg_load_keys(&p) < 0)
		goto out;
	qsort(cfg->exports, (size_t)cfg->nexports, sizeof(*cfg->exports),
	      cmp_export);
out:
	if (p.f)
		fclose(p.f);
	free(p.buf);
	free(p.files);
	if (p.failed) {
		nd_config_free(cfg);
		return -1;
	}
	return 0;
}
