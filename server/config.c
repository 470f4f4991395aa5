// SPDX-License-Identifier: MIT
/*
 * netdiskd's configuration: the one-export command line, the lookups the
 * server makes in a loaded configuration (export by name, key by
 * identity, access by pattern) and its printout. The file is read by
 * config_load.c (lines, sections), config_values.c (each key's values)
 * and config_keys.c (key files).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "nd_wire.h"

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int nd_config_from_args(const struct nd_config_args *a, struct nd_config *cfg,
			char *err, size_t errlen)
{
	const char *name = a->export_name ? a->export_name : "default";
	const char *state = a->state_dir ? a->state_dir : ND_CFG_DEFAULT_STATE;
	struct nd_cfg_export *e;

	memset(cfg, 0, sizeof(*cfg));
	if (!a->file || !a->key_file) {
		set_err(err, errlen, "--file and --key-file are required");
		return -1;
	}
	if (!nd_name_valid((const uint8_t *)name, strlen(name))) {
		set_err(err, errlen,
			"invalid export name '%s' (1-64 of [A-Za-z0-9._-])",
			name);
		return -1;
	}
	if (a->cow_dir && (a->cow_dir[0] != '/' ||
			   !a->cow_dir[strspn(a->cow_dir, "/")])) {
		set_err(err, errlen, "--cow needs an absolute directory path, not '%s'",
			a->cow_dir);
		return -1;
	}
	if (a->cow_dir && a->read_only) {
		set_err(err, errlen,
			"--cow with --read-only: a copy-on-write export is read-write (the base is opened read-only)");
		return -1;
	}
	if (a->cow_dir &&
	    strlen(a->cow_dir) + 1 + ND_NAME_MAX + sizeof(".ndcow.tmp") >
		    PATH_MAX) {
		set_err(err, errlen, "--cow: path too long");
		return -1;
	}
	if (strlen(a->file) >= sizeof(e->path) ||
	    strlen(a->key_file) >= sizeof(cfg->key_file) ||
	    strlen(state) >= sizeof(cfg->state_dir)) {
		set_err(err, errlen, "path too long");
		return -1;
	}
	if (nd_key_load(a->key_file, cfg->shared_key, err, errlen) < 0)
		return -1;
	cfg->have_shared_key = true;
	snprintf(cfg->key_file, sizeof(cfg->key_file), "%s", a->key_file);
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", state);
	cfg->port = a->port;
	cfg->workers = a->workers;
	cfg->grace_s = a->grace_s;
	cfg->max_payload = a->max_payload ? a->max_payload : ND_DEFAULT_PAYLOAD;
	cfg->log_level = a->log_level;

	cfg->exports = calloc(1, sizeof(*cfg->exports));
	if (!cfg->exports)
		goto oom;
	cfg->nexports = 1;
	e = cfg->exports;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->path, sizeof(e->path), "%s", a->file);
	e->read_only = a->read_only;
	if (a->cow_dir) {
		size_t n = strlen(a->cow_dir);

		/* As config_values.c:set_cow: no trailing slashes. */
		while (n > 1 && a->cow_dir[n - 1] == '/')
			n--;
		memcpy(e->cow_dir, a->cow_dir, n);
		e->cow_dir[n] = 0;
	}
	if (a->listen) {
		cfg->listen[0] = strdup(a->listen);
		if (!cfg->listen[0])
			goto oom;
		cfg->nlisten = 1;
	}
	return 0;
oom:
	nd_config_free(cfg);
	set_err(err, errlen, "out of memory");
	return -1;
}

void nd_config_free(struct nd_config *cfg)
{
	int i, j;

	if (!cfg)
		return;
	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i]);
	for (i = 0; i < cfg->nexports; i++) {
		for (j = 0; j < cfg->exports[i].nclients; j++)
			free(cfg->exports[i].clients[j]);
		free(cfg->exports[i].clients);
	}
	free(cfg->exports);
	if (cfg->ids) {
		nd_wipe(cfg->ids, (size_t)cfg->nids * sizeof(*cfg->ids));
		free(cfg->ids);
	}
	/* Wipes the shared key with everything else. */
	nd_wipe(cfg, sizeof(*cfg));
}

static int cmp_export_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct nd_cfg_export *)elem)->name);
}

static int cmp_identity_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct nd_cfg_identity *)elem)->name);
}

const struct nd_cfg_export *nd_config_export(const struct nd_config *cfg,
					     const char *name)
{
	if (!cfg->nexports)
		return NULL;
	return bsearch(name, cfg->exports, (size_t)cfg->nexports,
		       sizeof(*cfg->exports), cmp_export_name);
}

const uint8_t *nd_config_key(const struct nd_config *cfg,
			     const char *identity)
{
	const struct nd_cfg_identity *id = NULL;

	if (cfg->nids)
		id = bsearch(identity, cfg->ids, (size_t)cfg->nids,
			     sizeof(*cfg->ids), cmp_identity_name);
	if (id)
		return id->key;
	return cfg->have_shared_key ? cfg->shared_key : NULL;
}

bool nd_config_allows(const struct nd_cfg_export *e, const char *identity)
{
	int i;

	if (!e->nclients)
		return true;
	for (i = 0; i < e->nclients; i++)
		if (fnmatch(e->clients[i], identity, 0) == 0)
			return true;
	return false;
}

int nd_config_parse_num(const char *s, long long min, long long max,
			bool suffix, long long *out)
{
	long long v, mult = 1;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (suffix && (*end == 'K' || *end == 'k')) {
		mult = 1024;
		end++;
	} else if (suffix && (*end == 'M' || *end == 'm')) {
		mult = 1024 * 1024;
		end++;
	}
	if (*end || v > max / mult || v * mult < min)
		return -1;
	*out = v * mult;
	return 0;
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void print_size(FILE *f, const char *key, uint32_t v)
{
	if (v % (1024 * 1024) == 0)
		fprintf(f, "%s = %uM\n", key, v / (1024 * 1024));
	else if (v % 1024 == 0)
		fprintf(f, "%s = %uK\n", key, v / 1024);
	else
		fprintf(f, "%s = %u\n", key, v);
}

/*
 * Every printed line must load again, and libinih takes lines of at most
 * ND_CFG_LINE_MAX characters: "key = value" when it fits, else
 * "key=value" (which fitted in the file it came from), and lists wrapped
 * over repeated keys.
 */
#define ND_CFG_LINE_MAX	198

static void put_kv(FILE *f, const char *key, const char *val)
{
	if (strlen(key) + 3 + strlen(val) <= ND_CFG_LINE_MAX)
		fprintf(f, "%s = %s\n", key, val);
	else
		fprintf(f, "%s=%s\n", key, val);
}

static void put_list(FILE *f, const char *key, char *const *items, int n)
{
	size_t len = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (len && len + 1 + strlen(items[i]) > ND_CFG_LINE_MAX) {
			fprintf(f, "\n");
			len = 0;
		}
		if (!len && strlen(key) + 3 + strlen(items[i]) > ND_CFG_LINE_MAX)
			len = (size_t)fprintf(f, "%s=%s", key, items[i]);
		else if (!len)
			len = (size_t)fprintf(f, "%s = %s", key, items[i]);
		else
			len += (size_t)fprintf(f, " %s", items[i]);
	}
	fprintf(f, "\n");
}

static void print_server(FILE *f, const struct nd_config *cfg)
{
	int level = cfg->log_level;

	fprintf(f, "[server]\n");
	if (cfg->nlisten)
		put_list(f, "listen", cfg->listen, cfg->nlisten);
	else
		fprintf(f, "; listen: all addresses (IPv6 and IPv4)\n");
	fprintf(f, "port = %u\n", cfg->port);
	if (cfg->key_dir[0]) {
		fprintf(f, "; key-dir: <%d identities>\n", cfg->nids);
		put_kv(f, "key-dir", cfg->key_dir);
	} else {
		fprintf(f, "; key-dir: none\n");
	}
	if (cfg->key_file[0]) {
		fprintf(f, "; key-file: <shared key for every other identity>\n");
		put_kv(f, "key-file", cfg->key_file);
	} else {
		fprintf(f, "; key-file: none (identities without a key file are unknown)\n");
	}
	if (cfg->workers)
		fprintf(f, "workers = %d\n", cfg->workers);
	else
		fprintf(f, "workers = auto\n");
	fprintf(f, "grace = %d\n", cfg->grace_s);
	print_size(f, "max-payload", cfg->max_payload);
	if (level < ND_LOG_ERROR || level > ND_LOG_DEBUG)
		level = ND_LOG_INFO;
	fprintf(f, "log-level = %s\n", level_names[level]);
	put_kv(f, "state-dir", cfg->state_dir);
	put_kv(f, "control", cfg->control[0] ? cfg->control : "none");
}

static void print_export(FILE *f, const struct nd_cfg_export *e)
{
	fprintf(f, "\n[export %s]\n", e->name);
	put_kv(f, "path", e->path);
	fprintf(f, "read-only = %s\n", e->read_only ? "yes" : "no");
	if (e->cow_dir[0])
		put_kv(f, "cow", e->cow_dir);
	if (!e->nclients) {
		fprintf(f, "; clients: every identity with a key\n");
		return;
	}
	put_list(f, "clients", e->clients, e->nclients);
}

void nd_config_print(FILE *f, const struct nd_config *cfg)
{
	int i;

	fprintf(f, "; netdiskd configuration from %s\n",
		cfg->file[0] ? cfg->file : "the command line");
	print_server(f, cfg);
	for (i = 0; i < cfg->nexports; i++)
		print_export(f, &cfg->exports[i]);
}
