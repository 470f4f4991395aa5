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
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "nd_wire.h"
#include "server.h"

#define MAX_PATTERN	256	/* characters of one clients pattern */

enum section { SEC_NONE, SEC_SERVER, SEC_EXPORT };

struct parse;

struct key {
	const char *name;
	int (*set)(struct parse *p, const char *value);
	bool repeat;		/* lists: every occurrence adds */
};

/* One export's file, for the same file exported twice. */
struct seen_file {
	dev_t dev;
	ino_t ino;
	int line;
};

struct parse {
	const char *file;
	FILE *f;
	struct nd_config *cfg;
	char *err;
	size_t errlen;
	bool failed;

	int line;		/* last line handed to inih */
	char *buf;
	size_t cap;
	bool want_call;		/* that line is key = value... */
	bool got_call;		/* ...and inih called the handler for it */

	enum section sec;
	char sec_name[ND_NAME_MAX + 16];	/* as inih will report it */
	const struct key *keys;
	int nkeys;
	int seen[16];		/* line each key of the section was set on */
	int server_line;
	int path_line;		/* of the current export */
	int key_dir_line, key_file_line;
	int exports_cap;
	struct seen_file *files;	/* per export, parallel to cfg->exports */
};

__attribute__((format(printf, 3, 4)))
static int fail(struct parse *p, int line, const char *fmt, ...)
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

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool name_valid(const char *s)
{
	return nd_name_valid((const uint8_t *)s, strlen(s));
}

/* The next blank-separated word of *s, or NULL at the end. */
static char *next_word(char **s)
{
	char *w = *s + strspn(*s, " \t");
	char *end;

	if (!*w)
		return NULL;
	end = w + strcspn(w, " \t");
	if (*end)
		*end++ = 0;
	*s = end;
	return w;
}

static int set_path(struct parse *p, char *dst, const char *value,
		    const char *what)
{
	if (value[0] != '/')
		return fail(p, p->line, "%s must be an absolute path, not '%s'",
			    what, value);
	if (strlen(value) >= PATH_MAX)
		return fail(p, p->line, "%s is too long", what);
	strcpy(dst, value);
	return 0;
}

/* ---- [server] */

/* A numeric address, or a host name resolved when the server binds. */
static bool listen_valid(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t i;

	if (inet_pton(AF_INET6, s, buf) == 1 || inet_pton(AF_INET, s, buf) == 1)
		return true;
	if (!*s || strlen(s) > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (i = 0; s[i]; i++)
		if (!name_char(s[i]) || s[i] == '_')
			return false;
	return true;
}

static int set_listen(struct parse *p, const char *value)
{
	struct nd_config *cfg = p->cfg;
	char *copy = strdup(value), *rest = copy, *w;
	int i, n = 0;

	if (!copy)
		return fail(p, p->line, "out of memory");
	while ((w = next_word(&rest))) {
		n++;
		if (!listen_valid(w)) {
			fail(p, p->line, "invalid listen address '%s'", w);
			break;
		}
		for (i = 0; i < cfg->nlisten; i++)
			if (strcmp(cfg->listen[i], w) == 0)
				break;
		if (i < cfg->nlisten) {
			fail(p, p->line, "listen address '%s' given twice", w);
			break;
		}
		if (cfg->nlisten == ND_CFG_MAX_LISTEN) {
			fail(p, p->line, "more than %d listen addresses",
			     ND_CFG_MAX_LISTEN);
			break;
		}
		cfg->listen[cfg->nlisten] = strdup(w);
		if (!cfg->listen[cfg->nlisten]) {
			fail(p, p->line, "out of memory");
			break;
		}
		cfg->nlisten++;
	}
	if (!n)
		fail(p, p->line,
		     "listen: no address (leave it out to listen on all)");
	free(copy);
	return p->failed ? -1 : 0;
}

static int set_port(struct parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, 0, 65535, false, &v) < 0)
		return fail(p, p->line, "invalid port '%s' (0..65535)", value);
	p->cfg->port = (uint16_t)v;
	return 0;
}

static int set_key_dir(struct parse *p, const char *value)
{
	p->key_dir_line = p->line;
	return set_path(p, p->cfg->key_dir, value, "key-dir");
}

static int set_key_file(struct parse *p, const char *value)
{
	p->key_file_line = p->line;
	return set_path(p, p->cfg->key_file, value, "key-file");
}

static int set_workers(struct parse *p, const char *value)
{
	long long v;

	if (strcmp(value, "auto") == 0) {
		p->cfg->workers = 0;
		return 0;
	}
	if (nd_config_parse_num(value, 1, ND_SRV_MAX_WORKERS, false, &v) < 0)
		return fail(p, p->line, "invalid workers '%s' (auto or 1..%d)",
			    value, ND_SRV_MAX_WORKERS);
	p->cfg->workers = (int)v;
	return 0;
}

static int set_grace(struct parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, 0, 86400, false, &v) < 0)
		return fail(p, p->line,
			    "invalid grace '%s' (0..86400 seconds)", value);
	p->cfg->grace_s = (int)v;
	return 0;
}

static int set_max_payload(struct parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, ND_MIN_PAYLOAD, ND_MAX_PAYLOAD, true,
				&v) < 0 || v % ND_MIN_PAYLOAD)
		return fail(p, p->line,
			    "invalid max-payload '%s' (multiple of 4096, 4096..16M)",
			    value);
	p->cfg->max_payload = (uint32_t)v;
	return 0;
}

static int set_log_level(struct parse *p, const char *value)
{
	int l = nd_log_parse_level(value);

	if (l < 0)
		return fail(p, p->line,
			    "invalid log-level '%s' (error, warn, info, debug)",
			    value);
	p->cfg->log_level = l;
	return 0;
}

static int set_state_dir(struct parse *p, const char *value)
{
	return set_path(p, p->cfg->state_dir, value, "state-dir");
}

static int set_control(struct parse *p, const char *value)
{
	struct sockaddr_un sun;

	if (strcmp(value, "none") == 0) {
		p->cfg->control[0] = 0;
		return 0;
	}
	if (strlen(value) >= sizeof(sun.sun_path))
		return fail(p, p->line,
			    "control socket path longer than %zu characters",
			    sizeof(sun.sun_path) - 1);
	return set_path(p, p->cfg->control, value, "control");
}

static const struct key server_keys[] = {
	{ "listen", set_listen, true },
	{ "port", set_port, false },
	{ "key-dir", set_key_dir, false },
	{ "key-file", set_key_file, false },
	{ "workers", set_workers, false },
	{ "grace", set_grace, false },
	{ "max-payload", set_max_payload, false },
	{ "log-level", set_log_level, false },
	{ "state-dir", set_state_dir, false },
	{ "control", set_control, false },
};

/* ---- [export NAME] */

static struct nd_cfg_export *cur_export(struct parse *p)
{
	return &p->cfg->exports[p->cfg->nexports - 1];
}

static int set_export_path(struct parse *p, const char *value)
{
	p->path_line = p->line;
	return set_path(p, cur_export(p)->path, value, "path");
}

static int set_read_only(struct parse *p, const char *value)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			cur_export(p)->read_only = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			cur_export(p)->read_only = false;
			return 0;
		}
	}
	return fail(p, p->line, "invalid read-only '%s' (yes or no)", value);
}

/*
 * Patterns match identity names, so everything but the name characters
 * and * ? [...] is a typo that could never match.
 */
static const char *pattern_problem(const char *s)
{
	size_t i, j, start;

	if (strlen(s) > MAX_PATTERN)
		return "longer than 256 characters";
	for (i = 0; s[i]; i++) {
		if (name_char(s[i]) || s[i] == '*' || s[i] == '?')
			continue;
		if (s[i] != '[')
			return "only [A-Za-z0-9._-] and * ? [...] are allowed";
		j = i + 1;
		if (s[j] == '!' || s[j] == '^')
			j++;
		for (start = j; s[j] && s[j] != ']'; j++)
			if (!name_char(s[j]))
				return "only [A-Za-z0-9._-] are allowed in [...]";
		if (!s[j])
			return "'[' without ']'";
		if (j == start)
			return "empty [...]";
		i = j;
	}
	return NULL;
}

static int set_clients(struct parse *p, const char *value)
{
	struct nd_cfg_export *e = cur_export(p);
	char *copy = strdup(value), *rest = copy, *w, **grown;
	const char *why;
	int n = 0;

	if (!copy)
		return fail(p, p->line, "out of memory");
	while ((w = next_word(&rest))) {
		n++;
		why = pattern_problem(w);
		if (why) {
			fail(p, p->line, "bad pattern '%s' in clients: %s", w,
			     why);
			break;
		}
		if (e->nclients == ND_CFG_MAX_CLIENTS) {
			fail(p, p->line, "more than %d clients patterns",
			     ND_CFG_MAX_CLIENTS);
			break;
		}
		grown = realloc(e->clients,
				(size_t)(e->nclients + 1) * sizeof(*grown));
		if (grown)
			e->clients = grown;
		if (!grown || !(e->clients[e->nclients] = strdup(w))) {
			fail(p, p->line, "out of memory");
			break;
		}
		e->nclients++;
	}
	if (!n)
		fail(p, p->line,
		     "clients: empty list (leave it out to allow every identity with a key)");
	free(copy);
	return p->failed ? -1 : 0;
}

static const struct key export_keys[] = {
	{ "path", set_export_path, false },
	{ "read-only", set_read_only, false },
	{ "clients", set_clients, true },
};

/* ---- sections */

/* Checks the export just finished: its path is there and usable. */
static int end_export(struct parse *p)
{
	struct nd_cfg_export *e = cur_export(p);
	int i, n = p->cfg->nexports - 1;
	struct seen_file *sf = &p->files[n];
	struct stat st;

	if (!p->path_line)
		return fail(p, e->line, "export '%s' has no path", e->name);
	if (stat(e->path, &st) < 0)
		return fail(p, p->path_line, "export '%s': %s: %s", e->name,
			    e->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return fail(p, p->path_line,
			    "export '%s': %s is not a regular file or block device",
			    e->name, e->path);
	if (faccessat(AT_FDCWD, e->path, e->read_only ? R_OK : R_OK | W_OK,
		      AT_EACCESS) < 0)
		return fail(p, p->path_line, "export '%s': cannot %s %s: %s",
			    e->name, e->read_only ? "read" : "read and write",
			    e->path, strerror(errno));
	for (i = 0; i < n; i++)
		if (p->files[i].dev == st.st_dev && p->files[i].ino == st.st_ino)
			return fail(p, p->path_line,
				    "export '%s': %s is already export '%s' (line %d)",
				    e->name, e->path, p->cfg->exports[i].name,
				    p->files[i].line);
	sf->dev = st.st_dev;
	sf->ino = st.st_ino;
	sf->line = p->path_line;
	return 0;
}

static int end_section(struct parse *p)
{
	int r = 0;

	if (p->sec == SEC_EXPORT)
		r = end_export(p);
	p->sec = SEC_NONE;
	return r;
}

static int begin_export(struct parse *p, const char *name)
{
	struct nd_config *cfg = p->cfg;
	struct nd_cfg_export *e;
	int i;

	if (!name_valid(name))
		return fail(p, p->line,
			    "invalid export name '%s' (1-64 of [A-Za-z0-9._-])",
			    name);
	for (i = 0; i < cfg->nexports; i++)
		if (strcmp(cfg->exports[i].name, name) == 0)
			return fail(p, p->line,
				    "export '%s' defined twice (first on line %d)",
				    name, cfg->exports[i].line);
	if (cfg->nexports == ND_CFG_MAX_EXPORTS)
		return fail(p, p->line, "more than %d exports",
			    ND_CFG_MAX_EXPORTS);
	if (cfg->nexports == p->exports_cap) {
		int cap = p->exports_cap ? 2 * p->exports_cap : 8;
		struct nd_cfg_export *ge;
		struct seen_file *gf;

		ge = realloc(cfg->exports, (size_t)cap * sizeof(*ge));
		if (ge)
			cfg->exports = ge;
		gf = realloc(p->files, (size_t)cap * sizeof(*gf));
		if (gf)
			p->files = gf;
		if (!ge || !gf)
			return fail(p, p->line, "out of memory");
		p->exports_cap = cap;
	}
	e = &cfg->exports[cfg->nexports++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->line = p->line;
	p->path_line = 0;
	p->sec = SEC_EXPORT;
	p->keys = export_keys;
	p->nkeys = sizeof(export_keys) / sizeof(export_keys[0]);
	return 0;
}

/*
 * A "[...]" line: ends the previous section, starts the next. inih sees
 * the same header, but truncates long names: its section name is unused.
 */
static int section_header(struct parse *p, char *s)
{
	char *close = strchr(s, ']'), *name, *end, *rest;

	if (end_section(p) < 0)
		return -1;
	if (!close)
		return fail(p, p->line, "section header without ']'");
	rest = close + 1 + strspn(close + 1, " \t");
	if (*rest && *rest != ';' && *rest != '#')
		return fail(p, p->line, "text after the section header: '%s'",
			    rest);
	if ((size_t)(close - s - 1) >= sizeof(p->sec_name))
		return fail(p, p->line, "unknown section (want [server] or [export NAME])");
	memcpy(p->sec_name, s + 1, (size_t)(close - s - 1));
	p->sec_name[close - s - 1] = 0;
	memset(p->seen, 0, sizeof(p->seen));

	name = p->sec_name + strspn(p->sec_name, " \t");
	end = name + strlen(name);
	while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - name == 6 && strncmp(name, "server", 6) == 0) {
		if (p->server_line)
			return fail(p, p->line,
				    "[server] given twice (first on line %d)",
				    p->server_line);
		p->server_line = p->line;
		p->sec = SEC_SERVER;
		p->keys = server_keys;
		p->nkeys = sizeof(server_keys) / sizeof(server_keys[0]);
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
	return fail(p, p->line,
		    "unknown section [%s] (want [server] or [export NAME])",
		    p->sec_name);
}

/* ---- inih callbacks */

/* fgets for inih: one whole line per call, counted. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t n;
	size_t len;
	char *s;

	if (p->failed)
		return NULL;
	if (p->want_call && !p->got_call) {
		fail(p, p->line, "expected key = value or [section]");
		return NULL;
	}
	p->want_call = false;
	errno = 0;
	n = getline(&p->buf, &p->cap, p->f);
	if (n < 0) {
		if (errno)
			fail(p, p->line + 1, "cannot read: %s",
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
		fail(p, p->line, "NUL byte in the line");
		return NULL;
	}
	s = p->buf;
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;		/* UTF-8 byte order mark */
	s += strspn(s, " \t\f\v");
	len = strlen(s);
	if (len + 2 > (size_t)num) {
		fail(p, p->line, "line longer than %d characters", num - 2);
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
	struct parse *p = user;
	int i;

	p->got_call = true;
	if (p->failed)
		return 0;
	if (p->sec == SEC_NONE)
		return !fail(p, p->line,
			     "'%s' outside a section (put it under [server] or [export NAME])",
			     name);
	for (i = 0; i < p->nkeys; i++)
		if (strcmp(p->keys[i].name, name) == 0)
			break;
	if (i == p->nkeys)
		return !fail(p, p->line, "unknown key '%s' in [%s]", name,
			     p->sec_name);
	if (p->seen[i] && !p->keys[i].repeat)
		return !fail(p, p->line, "'%s' set twice (first on line %d)",
			     name, p->seen[i]);
	if (!p->seen[i])
		p->seen[i] = p->line;
	return p->keys[i].set(p, value) == 0;
}

/* ---- keys */

/*
 * A key file must be the server's own secret: a regular file, mode 0600
 * or 0400, owned by us or root. nd_key_load reads and checks the rest.
 */
static int load_key(struct parse *p, int line, const char *path,
		    uint8_t key[ND_KEY_LEN])
{
	char msg[PATH_MAX + 128];
	struct stat st;
	mode_t mode;

	if (stat(path, &st) < 0)
		return fail(p, line, "key file %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(p, line, "key file %s is not a regular file", path);
	mode = st.st_mode & 07777;
	if (mode != 0600 && mode != 0400)
		return fail(p, line,
			    "key file %s has mode %04o (want 0600 or 0400)",
			    path, (unsigned int)mode);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return fail(p, line,
			    "key file %s is owned by uid %u (want root or uid %u)",
			    path, (unsigned int)st.st_uid,
			    (unsigned int)geteuid());
	if (nd_key_load(path, key, msg, sizeof(msg)) < 0)
		return fail(p, line, "%s", msg);
	return 0;
}

static int cmp_identity(const void *a, const void *b)
{
	return strcmp(((const struct nd_cfg_identity *)a)->name,
		      ((const struct nd_cfg_identity *)b)->name);
}

/* key-dir/IDENTITY.key for every file named so; other names are ignored. */
static int load_key_dir(struct parse *p)
{
	struct nd_config *cfg = p->cfg;
	char path[PATH_MAX + ND_NAME_MAX + 8];
	struct nd_cfg_identity *grown;
	int cap = 0, line = p->key_dir_line;
	struct dirent *de;
	DIR *d;

	d = opendir(cfg->key_dir);
	if (!d)
		return fail(p, line, "key-dir %s: %s", cfg->key_dir,
			    strerror(errno));
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[ND_NAME_MAX + 1];
		struct nd_cfg_identity *id;

		if (n < 4 || strcmp(de->d_name + n - 4, ".key"))
			continue;
		if (n - 4 > ND_NAME_MAX ||
		    !nd_name_valid((const uint8_t *)de->d_name, n - 4)) {
			fail(p, line,
			     "key-dir %s: %s: not IDENTITY.key (1-64 of [A-Za-z0-9._-])",
			     cfg->key_dir, de->d_name);
			break;
		}
		memcpy(name, de->d_name, n - 4);
		name[n - 4] = 0;
		if (cfg->nids == ND_CFG_MAX_IDENTITIES) {
			fail(p, line, "key-dir %s: more than %d keys",
			     cfg->key_dir, ND_CFG_MAX_IDENTITIES);
			break;
		}
		if (cfg->nids == cap) {
			cap = cap ? 2 * cap : 16;
			grown = calloc((size_t)cap, sizeof(*grown));
			if (!grown) {
				fail(p, line, "out of memory");
				break;
			}
			/* Copy, then wipe: realloc would leave keys behind. */
			if (cfg->nids) {
				memcpy(grown, cfg->ids,
				       (size_t)cfg->nids * sizeof(*grown));
				nd_wipe(cfg->ids,
					(size_t)cfg->nids * sizeof(*grown));
			}
			free(cfg->ids);
			cfg->ids = grown;
		}
		id = &cfg->ids[cfg->nids];
		snprintf(id->name, sizeof(id->name), "%s", name);
		snprintf(path, sizeof(path), "%s/%s", cfg->key_dir,
			 de->d_name);
		if (load_key(p, line, path, id->key) < 0)
			break;
		cfg->nids++;
	}
	closedir(d);
	if (p->failed)
		return -1;
	if (cfg->nids)
		qsort(cfg->ids, (size_t)cfg->nids, sizeof(*cfg->ids),
		      cmp_identity);
	return 0;
}

static int load_keys(struct parse *p)
{
	struct nd_config *cfg = p->cfg;

	if (cfg->key_dir[0] && load_key_dir(p) < 0)
		return -1;
	if (cfg->key_file[0]) {
		if (load_key(p, p->key_file_line, cfg->key_file,
			     cfg->shared_key) < 0)
			return -1;
		cfg->have_shared_key = true;
	}
	if (!cfg->nids && !cfg->have_shared_key) {
		if (cfg->key_dir[0])
			return fail(p, p->key_dir_line,
				    "key-dir %s has no IDENTITY.key file and no key-file is set: no client could connect",
				    cfg->key_dir);
		return fail(p, 0,
			    "no keys: set key-dir or key-file in [server]");
	}
	return 0;
}

static int cmp_export(const void *a, const void *b)
{
	return strcmp(((const struct nd_cfg_export *)a)->name,
		      ((const struct nd_cfg_export *)b)->name);
}

int nd_config_load(const char *file, struct nd_config *cfg, char *err,
		   size_t errlen)
{
	struct parse p = {
		.file = file, .cfg = cfg, .err = err, .errlen = errlen,
	};
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (strlen(file) >= sizeof(cfg->file))
		return fail(&p, 0, "file name too long");
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
		fail(&p, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	r = ini_parse_stream(read_line, &p, on_key, &p);
	/* Backstop: a line inih refused that read_line did not catch. */
	if (!p.failed && r > 0)
		fail(&p, r, "expected key = value or [section]");
	else if (!p.failed && r < 0)
		fail(&p, 0, "out of memory");
	if (p.failed)
		goto out;
	if (!cfg->nexports) {
		fail(&p, 0, "no export: add an [export NAME] section");
		goto out;
	}
	if (load_keys(&p) < 0)
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
