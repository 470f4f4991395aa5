/* SPDX-License-Identifier: MIT */
/*
 * netdiskd's configuration: the file (netdiskd.conf(5), parsed by libinih)
 * or the one-export command line, turned into one immutable struct. A
 * reload builds a new one and the server compares the two; nothing here
 * touches a socket, a session or an open export.
 */
#ifndef ND_SRV_CONFIG_H
#define ND_SRV_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "netdisk_proto.h"

#define ND_CFG_DEFAULT_PATH	"/etc/netdisk/netdiskd.conf"
#define ND_CFG_DEFAULT_CONTROL	"/run/netdisk/netdiskd.sock"
#define ND_CFG_DEFAULT_STATE	"/var/lib/netdisk"
#define ND_CFG_MAX_EXPORTS	1024	/* = ND_LIST_MAX */
#define ND_CFG_MAX_LISTEN	16
#define ND_CFG_MAX_CLIENTS	256	/* patterns per export */
#define ND_CFG_MAX_IDENTITIES	65536	/* key files in key-dir */

struct nd_cfg_export {
	char name[ND_NAME_MAX + 1];
	char path[PATH_MAX];
	bool read_only;
	/*
	 * cow = DIR: path is a read-only base and each identity gets its own
	 * persistent overlay DIR/IDENTITY.ndcow (docs/COW-FORMAT.md). ""
	 * if not set. Absolute; refused with read-only = yes and when two
	 * exports name the same DIR. Created (0700) at open if missing.
	 */
	char cow_dir[PATH_MAX];
	/*
	 * Shell patterns (fnmatch(3), no flags) of the identities allowed;
	 * nclients == 0: every identity that has a key.
	 */
	char **clients;
	int nclients;
	int line;			/* of its [export NAME] header; 0: argv */
};

struct nd_cfg_identity {
	char name[ND_NAME_MAX + 1];
	uint8_t key[ND_KEY_LEN];	/* secret: wiped by nd_config_free */
};

struct nd_config {
	char file[PATH_MAX];		/* "" for the command-line shortcut */
	char *listen[ND_CFG_MAX_LISTEN];	/* addresses; none: all (v6+v4) */
	int nlisten;
	uint16_t port;			/* 0: ephemeral */
	char key_dir[PATH_MAX];		/* "" if not set */
	char key_file[PATH_MAX];	/* "" if not set */
	bool have_shared_key;		/* key_file loaded */
	uint8_t shared_key[ND_KEY_LEN];	/* for identities without a file */
	int workers;			/* 0: nd_server_default_workers() */
	int grace_s;
	uint32_t max_payload;
	int log_level;			/* ND_LOG_* */
	char state_dir[PATH_MAX];
	char control[PATH_MAX];		/* Unix socket; "" : none */
	struct nd_cfg_export *exports;	/* sorted by name, unique */
	int nexports;
	struct nd_cfg_identity *ids;	/* sorted by name, unique */
	int nids;
};

/*
 * Reads FILE and every key file it names into cfg (zeroed first). On
 * failure returns -1 with one line in err, "FILE:LINE: message" (LINE of
 * the offending key; 0 for problems of the whole file, e.g. no export),
 * and cfg holds nothing to free. Refused: unknown sections or keys, bad
 * values, a missing or unreadable path, duplicate exports or keys,
 * a key file (key-file or key-dir/NAME.key) not of mode 0600/0400 owned
 * by the user or root or not 64 hex characters, an invalid pattern.
 */
int nd_config_load(const char *file, struct nd_config *cfg, char *err,
		   size_t errlen);

/* The one-export command line (--file/--export/--read-only/--key-file). */
struct nd_config_args {
	const char *file, *export_name, *key_file, *listen, *state_dir;
	const char *cow_dir;		/* --cow DIR, or NULL */
	bool read_only;
	uint16_t port;
	int workers, grace_s, log_level;
	uint32_t max_payload;
};
/* As nd_config_load; every identity uses the one key, all are allowed. */
int nd_config_from_args(const struct nd_config_args *a, struct nd_config *cfg,
			char *err, size_t errlen);

void nd_config_free(struct nd_config *cfg);

/* The export called name, or NULL. */
const struct nd_cfg_export *nd_config_export(const struct nd_config *cfg,
					     const char *name);
/*
 * The key of identity: its own key file, else the shared key, else NULL
 * (unknown identity).
 */
const uint8_t *nd_config_key(const struct nd_config *cfg,
			     const char *identity);
/* May identity attach e? (It must also have a key: nd_config_key.) */
bool nd_config_allows(const struct nd_cfg_export *e, const char *identity);

/*
 * The effective configuration in the file's own syntax, every key with
 * its value (defaults included), keys shown as "<N identities>"
 * and never printed: what `netdiskd --check` prints.
 */
void nd_config_print(FILE *f, const struct nd_config *cfg);

/*
 * Numbers as the file and the command line write them: decimal in
 * [min, max], with a K or M suffix (x1024, x1024^2) if suffix. 0 or -1.
 */
int nd_config_parse_num(const char *s, long long min, long long max,
			bool suffix, long long *out);

#endif /* ND_SRV_CONFIG_H */
