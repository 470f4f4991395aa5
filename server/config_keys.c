// SPDX-License-Identifier: MIT
/*
 * netdiskd.conf(5): identities and their keys, from key-dir/IDENTITY.key
 * and key-file (config_parse.h). Keys are copied only into the
 * configuration, which nd_config_free wipes.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_parse.h"
#include "nd_wire.h"

/*
 * A key file must be the server's own secret: a regular file, mode 0600
 * or 0400, owned by us or root. nd_key_load reads and checks the rest.
 */
static int load_key(struct nd_cfg_parse *p, int line, const char *path,
		    uint8_t key[ND_KEY_LEN])
{
	char msg[PATH_MAX + 128];
	struct stat st;
	mode_t mode;

	if (stat(path, &st) < 0)
		return nd_cfg_fail(p, line, "key file %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return nd_cfg_fail(p, line, "key file %s is not a regular file", path);
	mode = st.st_mode & 07777;
	if (mode != 0600 && mode != 0400)
		return nd_cfg_fail(p, line,
			    "key file %s has mode %04o (want 0600 or 0400)",
			    path, (unsigned int)mode);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return nd_cfg_fail(p, line,
			    "key file %s is owned by uid %u (want root or uid %u)",
			    path, (unsigned int)st.st_uid,
			    (unsigned int)geteuid());
	if (nd_key_load(path, key, msg, sizeof(msg)) < 0)
		return nd_cfg_fail(p, line, "%s", msg);
	return 0;
}

static int cmp_identity(const void *a, const void *b)
{
	return strcmp(((const struct nd_cfg_identity *)a)->name,
		      ((const struct nd_cfg_identity *)b)->name);
}

/* key-dir/IDENTITY.key for every file named so; other names are ignored. */
static int load_key_dir(struct nd_cfg_parse *p)
{
	struct nd_config *cfg = p->cfg;
	char path[PATH_MAX + ND_NAME_MAX + 8];
	struct nd_cfg_identity *grown;
	int cap = 0, line = p->key_dir_line;
	struct dirent *de;
	DIR *d;

	d = opendir(cfg->key_dir);
	if (!d)
		return nd_cfg_fail(p, line, "key-dir %s: %s", cfg->key_dir,
			    strerror(errno));
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[ND_NAME_MAX + 1];
		struct nd_cfg_identity *id;

		if (n < 4 || strcmp(de->d_name + n - 4, ".key"))
			continue;
		if (n - 4 > ND_NAME_MAX ||
		    !nd_name_valid((const uint8_t *)de->d_name, n - 4)) {
			nd_cfg_fail(p, line,
			     "key-dir %s: %s: not IDENTITY.key (1-64 of [A-Za-z0-9._-])",
			     cfg->key_dir, de->d_name);
			break;
		}
		memcpy(name, de->d_name, n - 4);
		name[n - 4] = 0;
		if (cfg->nids == ND_CFG_MAX_IDENTITIES) {
			nd_cfg_fail(p, line, "key-dir %s: more than %d keys",
			     cfg->key_dir, ND_CFG_MAX_IDENTITIES);
			break;
		}
		if (cfg->nids == cap) {
			cap = cap ? 2 * cap : 16;
			grown = calloc((size_t)cap, sizeof(*grown));
			if (!grown) {
				nd_cfg_fail(p, line, "out of memory");
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

int nd_cfg_load_keys(struct nd_cfg_parse *p)
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
			return nd_cfg_fail(p, p->key_dir_line,
				    "key-dir %s has no IDENTITY.key file and no key-file is set: no client could connect",
				    cfg->key_dir);
		return nd_cfg_fail(p, 0,
			    "no keys: set key-dir or key-file in [server]");
	}
	return 0;
}
