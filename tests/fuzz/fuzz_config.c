// SPDX-License-Identifier: MIT
/*
 * netdiskd.conf: the input, with every '@' replaced by a scratch directory
 * that holds two images, a key file and a key-dir, is loaded with
 * nd_config_load. A refusal must be one line "FILE:LINE: message" with a
 * LINE inside the file. An accepted configuration must be well-formed
 * (exports sorted and unique, a key for someone), and its printout must
 * load back to the same printout, keys included, without showing a key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "../../server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fixture_keys[] = { "keys/lab-01.key",
					    "keys/db01.key", "key" };
static char dir[128], conf[192], printed[192];

static void put(const char *name, const void *buf, size_t len, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || fchmod(fd, mode) < 0)
		fz_fail("%s: %s", path, strerror(errno));
	if (write(fd, buf, len) != (ssize_t)len)
		fz_fail("%s: short write", path);
	close(fd);
}

static void remove_fixture(void)
{
	static const char *const files[] = {
		"keys/lab-01.key", "keys/db01.key", "key", "img1", "img2",
		"c.conf", "p.conf",
	};
	char path[256];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	rmdir(path);
	rmdir(dir);
}

/* Per process (run.sh sweeps what a crashed one leaves). */
static void make_fixture(void)
{
	char key[65], path[256];
	size_t i;

	snprintf(dir, sizeof(dir), "%s/netdisk-fuzz-conf-%d", fz_tmpdir(),
		 (int)getpid());
	snprintf(conf, sizeof(conf), "%s/c.conf", dir);
	snprintf(printed, sizeof(printed), "%s/p.conf", dir);
	snprintf(path, sizeof(path), "%s/keys", dir);
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST))
		fz_fail("%s: %s", path, strerror(errno));
	for (i = 0; i < 3; i++) {
		memset(key, "abc"[i], 64);
		key[64] = '\n';
		put(fixture_keys[i], key, sizeof(key), 0600);
	}
	put("img1", "one", 3, 0644);
	put("img2", "two", 3, 0644);
	atexit(remove_fixture);
}

static size_t count_lines(const uint8_t *p, size_t n)
{
	size_t lines = 1;

	for (size_t i = 0; i < n; i++)
		lines += p[i] == '\n';
	return lines;
}

static void check_refusal(const char *err, size_t lines)
{
	size_t n = strlen(conf);
	char *end;
	long line;

	if (!err[0] || strchr(err, '\n'))
		fz_fail("refusal not one line: '%s'", err);
	if (strncmp(err, conf, n) || err[n] != ':')
		fz_fail("refusal without FILE: '%s'", err);
	errno = 0;
	line = strtol(err + n + 1, &end, 10);
	if (end == err + n + 1 || strncmp(end, ": ", 2) || !end[2])
		fz_fail("refusal without LINE: message: '%s'", err);
	if (line < 0 || (size_t)line > lines)
		fz_fail("refusal on line %ld of a %zu-line file: '%s'", line,
			lines, err);
}

static void check_config(const struct nd_config *cfg)
{
	int i;

	if (cfg->nexports < 1 || cfg->nexports > ND_CFG_MAX_EXPORTS)
		fz_fail("%d exports", cfg->nexports);
	if (!cfg->nids && !cfg->have_shared_key)
		fz_fail("accepted without a key");
	for (i = 0; i < cfg->nexports; i++) {
		const struct nd_cfg_export *e = &cfg->exports[i];

		if (!nd_name_valid((const uint8_t *)e->name, strlen(e->name)))
			fz_fail("export name '%s'", e->name);
		if (i && strcmp(cfg->exports[i - 1].name, e->name) >= 0)
			fz_fail("exports not sorted and unique");
		if (nd_config_export(cfg, e->name) != e)
			fz_fail("nd_config_export misses '%s'", e->name);
		if (e->path[0] != '/' || e->nclients > ND_CFG_MAX_CLIENTS)
			fz_fail("export '%s' path/clients", e->name);
	}
	for (i = 0; i < cfg->nids; i++)
		if (nd_config_key(cfg, cfg->ids[i].name) != cfg->ids[i].key)
			fz_fail("nd_config_key misses '%s'", cfg->ids[i].name);
}

/* The printout minus its first line (which names the file). */
static char *print_body(const struct nd_config *cfg)
{
	char *out = NULL, *body;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	if (!f)
		fz_fail("open_memstream");
	nd_config_print(f, cfg);
	fclose(f);
	body = strdup(strchr(out, '\n') + 1);
	free(out);
	if (!body)
		fz_fail("out of memory");
	return body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nd_config cfg, again;
	char err[1024], *text, *out, *out2;
	size_t i, o = 0;

	if (!dir[0])
		make_fixture();
	text = malloc(size * strlen(dir) + 1);
	if (!text)
		fz_fail("out of memory");
	for (i = 0; i < size; i++) {
		if (data[i] == '@') {
			memcpy(text + o, dir, strlen(dir));
			o += strlen(dir);
		} else {
			text[o++] = (char)data[i];
		}
	}
	put("c.conf", text, o, 0644);
	free(text);

	err[0] = 0;
	if (nd_config_load(conf, &cfg, err, sizeof(err)) < 0) {
		check_refusal(err, count_lines(data, size));
		return 0;
	}
	check_config(&cfg);
	out = print_body(&cfg);
	/* Unless the input itself names it (as a host, say). */
	for (i = 0; i < 3; i++) {
		char hex[65];

		memset(hex, "abc"[i], 64);
		hex[64] = 0;
		if (strstr(out, hex) && !memmem(data, size, hex, 64))
			fz_fail("a key in the printout");
	}
	put("p.conf", out, strlen(out), 0644);
	if (nd_config_load(printed, &again, err, sizeof(err)) < 0)
		fz_fail("the printout does not load: %s\n%s", err, out);
	out2 = print_body(&again);
	if (strcmp(out, out2))
		fz_fail("the printout changes on reload:\n%s\n---\n%s", out,
			out2);
	if (again.nids != cfg.nids ||
	    again.have_shared_key != cfg.have_shared_key ||
	    memcmp(again.shared_key, cfg.shared_key, ND_KEY_LEN))
		fz_fail("keys differ after reload");
	for (int k = 0; k < cfg.nids; k++)
		if (memcmp(again.ids[k].key, cfg.ids[k].key, ND_KEY_LEN))
			fz_fail("key of '%s' differs", cfg.ids[k].name);
	free(out);
	free(out2);
	nd_config_free(&again);
	nd_config_free(&cfg);
	return 0;
}
