// SPDX-License-Identifier: MIT
/*
 * netdiskd.conf(5): what each key of [server] and [export NAME] accepts,
 * and the checks of a finished export section (config_parse.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_parse.h"
#include "log.h"
#include "server.h"

#define MAX_PATTERN	256	/* characters of one clients pattern */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
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

static int set_path(struct nd_cfg_parse *p, char *dst, const char *value,
		    const char *what)
{
	if (value[0] != '/')
		return nd_cfg_fail(p, p->line, "%s must be an absolute path, not '%s'",
			    what, value);
	if (strlen(value) >= PATH_MAX)
		return nd_cfg_fail(p, p->line, "%s is too long", what);
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

static int set_listen(struct nd_cfg_parse *p, const char *value)
{
	struct nd_config *cfg = p->cfg;
	char *copy = strdup(value), *rest = copy, *w;
	int i, n = 0;

	if (!copy)
		return nd_cfg_fail(p, p->line, "out of memory");
	while ((w = next_word(&rest))) {
		n++;
		if (!listen_valid(w)) {
			nd_cfg_fail(p, p->line, "invalid listen address '%s'", w);
			break;
		}
		for (i = 0; i < cfg->nlisten; i++)
			if (strcmp(cfg->listen[i], w) == 0)
				break;
		if (i < cfg->nlisten) {
			nd_cfg_fail(p, p->line, "listen address '%s' given twice", w);
			break;
		}
		if (cfg->nlisten == ND_CFG_MAX_LISTEN) {
			nd_cfg_fail(p, p->line, "more than %d listen addresses",
			     ND_CFG_MAX_LISTEN);
			break;
		}
		cfg->listen[cfg->nlisten] = strdup(w);
		if (!cfg->listen[cfg->nlisten]) {
			nd_cfg_fail(p, p->line, "out of memory");
			break;
		}
		cfg->nlisten++;
	}
	if (!n)
		nd_cfg_fail(p, p->line,
		     "listen: no address (leave it out to listen on all)");
	free(copy);
	return p->failed ? -1 : 0;
}

static int set_port(struct nd_cfg_parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, 0, 65535, false, &v) < 0)
		return nd_cfg_fail(p, p->line, "invalid port '%s' (0..65535)", value);
	p->cfg->port = (uint16_t)v;
	return 0;
}

static int set_key_dir(struct nd_cfg_parse *p, const char *value)
{
	p->key_dir_line = p->line;
	return set_path(p, p->cfg->key_dir, value, "key-dir");
}

static int set_key_file(struct nd_cfg_parse *p, const char *value)
{
	p->key_file_line = p->line;
	return set_path(p, p->cfg->key_file, value, "key-file");
}

static int set_workers(struct nd_cfg_parse *p, const char *value)
{
	long long v;

	if (strcmp(value, "auto") == 0) {
		p->cfg->workers = 0;
		return 0;
	}
	if (nd_config_parse_num(value, 1, ND_SRV_MAX_WORKERS, false, &v) < 0)
		return nd_cfg_fail(p, p->line, "invalid workers '%s' (auto or 1..%d)",
			    value, ND_SRV_MAX_WORKERS);
	p->cfg->workers = (int)v;
	return 0;
}

static int set_grace(struct nd_cfg_parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, 0, 86400, false, &v) < 0)
		return nd_cfg_fail(p, p->line,
			    "invalid grace '%s' (0..86400 seconds)", value);
	p->cfg->grace_s = (int)v;
	return 0;
}

static int set_max_payload(struct nd_cfg_parse *p, const char *value)
{
	long long v;

	if (nd_config_parse_num(value, ND_MIN_PAYLOAD, ND_MAX_PAYLOAD, true,
				&v) < 0 || v % ND_MIN_PAYLOAD)
		return nd_cfg_fail(p, p->line,
			    "invalid max-payload '%s' (multiple of 4096, 4096..16M)",
			    value);
	p->cfg->max_payload = (uint32_t)v;
	return 0;
}

static int set_log_level(struct nd_cfg_parse *p, const char *value)
{
	int l = nd_log_parse_level(value);

	if (l < 0)
		return nd_cfg_fail(p, p->line,
			    "invalid log-level '%s' (error, warn, info, debug)",
			    value);
	p->cfg->log_level = l;
	return 0;
}

static int set_state_dir(struct nd_cfg_parse *p, const char *value)
{
	return set_path(p, p->cfg->state_dir, value, "state-dir");
}

static int set_control(struct nd_cfg_parse *p, const char *value)
{
	struct sockaddr_un sun;

	if (strcmp(value, "none") == 0) {
		p->cfg->control[0] = 0;
		return 0;
	}
	if (strlen(value) >= sizeof(sun.sun_path))
		return nd_cfg_fail(p, p->line,
			    "control socket path longer than %zu characters",
			    sizeof(sun.sun_path) - 1);
	return set_path(p, p->cfg->control, value, "control");
}

const struct nd_cfg_key nd_cfg_server_keys[] = {
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
const int nd_cfg_nserver_keys =
	sizeof(nd_cfg_server_keys) / sizeof(nd_cfg_server_keys[0]);

/* ---- [export NAME] */

static struct nd_cfg_export *cur_export(struct nd_cfg_parse *p)
{
	return &p->cfg->exports[p->cfg->nexports - 1];
}

static int set_export_path(struct nd_cfg_parse *p, const char *value)
{
	p->path_line = p->line;
	return set_path(p, cur_export(p)->path, value, "path");
}

static int set_read_only(struct nd_cfg_parse *p, const char *value)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	p->read_only_line = p->line;
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
	return nd_cfg_fail(p, p->line, "invalid read-only '%s' (yes or no)", value);
}

/*
 * cow = DIR: trailing slashes dropped, so two spellings of one directory
 * compare equal. DIR/IDENTITY.ndcow.tmp must fit in PATH_MAX.
 */
static int set_cow(struct nd_cfg_parse *p, const char *value)
{
	struct nd_cfg_export *e = cur_export(p);
	size_t n = strlen(value);

	p->cow_line = p->line;
	if (value[0] != '/')
		return nd_cfg_fail(p, p->line, "cow must be an absolute path, not '%s'",
			    value);
	while (n > 1 && value[n - 1] == '/')
		n--;
	if (n == 1)
		return nd_cfg_fail(p, p->line, "cow = / : name a directory for the overlays");
	/* The file cannot spell a value ending in a blank (inih trims isspace). */
	if (isspace((unsigned char)value[n - 1]))
		return nd_cfg_fail(p, p->line, "cow '%s': a directory name ending in a blank cannot be written in this file",
			    value);
	if (n + 1 + ND_NAME_MAX + sizeof(".ndcow.tmp") > PATH_MAX)
		return nd_cfg_fail(p, p->line, "cow is too long");
	memcpy(e->cow_dir, value, n);
	e->cow_dir[n] = 0;
	return 0;
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

static int set_clients(struct nd_cfg_parse *p, const char *value)
{
	struct nd_cfg_export *e = cur_export(p);
	char *copy = strdup(value), *rest = copy, *w, **grown;
	const char *why;
	int n = 0;

	if (!copy)
		return nd_cfg_fail(p, p->line, "out of memory");
	while ((w = next_word(&rest))) {
		n++;
		why = pattern_problem(w);
		if (why) {
			nd_cfg_fail(p, p->line, "bad pattern '%s' in clients: %s", w,
			     why);
			break;
		}
		if (e->nclients == ND_CFG_MAX_CLIENTS) {
			nd_cfg_fail(p, p->line, "more than %d clients patterns",
			     ND_CFG_MAX_CLIENTS);
			break;
		}
		grown = realloc(e->clients,
				(size_t)(e->nclients + 1) * sizeof(*grown));
		if (grown)
			e->clients = grown;
		if (!grown || !(e->clients[e->nclients] = strdup(w))) {
			nd_cfg_fail(p, p->line, "out of memory");
			break;
		}
		e->nclients++;
	}
	if (!n)
		nd_cfg_fail(p, p->line,
		     "clients: empty list (leave it out to allow every identity with a key)");
	free(copy);
	return p->failed ? -1 : 0;
}

const struct nd_cfg_key nd_cfg_export_keys[] = {
	{ "path", set_export_path, false },
	{ "read-only", set_read_only, false },
	{ "clients", set_clients, true },
	{ "cow", set_cow, false },
};
const int nd_cfg_nexport_keys =
	sizeof(nd_cfg_export_keys) / sizeof(nd_cfg_export_keys[0]);

/*
 * The cow directory of the export just finished: not read-only, not
 * another export's, a directory we can write if it exists (netdiskd
 * creates it otherwise).
 */
static int end_cow(struct nd_cfg_parse *p, struct nd_cfg_file *sf)
{
	struct nd_cfg_export *e = cur_export(p);
	int i, n = p->cfg->nexports - 1;
	struct stat st;

	sf->cow_line = p->cow_line;
	sf->cow_exists = false;
	if (!p->cow_line)
		return 0;
	if (e->read_only)
		return nd_cfg_fail(p, p->read_only_line,
			    "export '%s': read-only = yes with cow = %s: a copy-on-write export is read-write (each identity writes its own overlay; the base is opened read-only)",
			    e->name, e->cow_dir);
	if (stat(e->cow_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return nd_cfg_fail(p, p->cow_line,
				    "export '%s': cow %s is not a directory",
				    e->name, e->cow_dir);
		if (faccessat(AT_FDCWD, e->cow_dir, R_OK | W_OK | X_OK,
			      AT_EACCESS) < 0)
			return nd_cfg_fail(p, p->cow_line,
				    "export '%s': cannot write in cow %s: %s",
				    e->name, e->cow_dir, strerror(errno));
		sf->cow_exists = true;
		sf->cow_dev = st.st_dev;
		sf->cow_ino = st.st_ino;
	}
	for (i = 0; i < n; i++) {
		const struct nd_cfg_file *of = &p->files[i];

		if (!of->cow_line)
			continue;
		if (strcmp(p->cfg->exports[i].cow_dir, e->cow_dir) == 0 ||
		    (sf->cow_exists && of->cow_exists &&
		     of->cow_dev == sf->cow_dev && of->cow_ino == sf->cow_ino))
			return nd_cfg_fail(p, p->cow_line,
				    "export '%s': cow %s is already the overlay directory of export '%s' (line %d)",
				    e->name, e->cow_dir,
				    p->cfg->exports[i].name, of->cow_line);
	}
	return 0;
}

/* Checks the export just finished: its path is there and usable. */
int nd_cfg_end_export(struct nd_cfg_parse *p)
{
	struct nd_cfg_export *e = cur_export(p);
	int i, n = p->cfg->nexports - 1;
	struct nd_cfg_file *sf = &p->files[n];
	bool base_only = e->read_only || e->cow_dir[0];
	struct stat st;

	if (!p->path_line)
		return nd_cfg_fail(p, e->line, "export '%s' has no path", e->name);
	if (stat(e->path, &st) < 0)
		return nd_cfg_fail(p, p->path_line, "export '%s': %s: %s", e->name,
			    e->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return nd_cfg_fail(p, p->path_line,
			    "export '%s': %s is not a regular file or block device",
			    e->name, e->path);
	if (faccessat(AT_FDCWD, e->path, base_only ? R_OK : R_OK | W_OK,
		      AT_EACCESS) < 0)
		return nd_cfg_fail(p, p->path_line, "export '%s': cannot %s %s: %s",
			    e->name, base_only ? "read" : "read and write",
			    e->path, strerror(errno));
	for (i = 0; i < n; i++)
		if (p->files[i].dev == st.st_dev && p->files[i].ino == st.st_ino)
			return nd_cfg_fail(p, p->path_line,
				    "export '%s': %s is already export '%s' (line %d)",
				    e->name, e->path, p->cfg->exports[i].name,
				    p->files[i].line);
	sf->dev = st.st_dev;
	sf->ino = st.st_ino;
	sf->line = p->path_line;
	return end_cow(p, sf);
}
