/* SPDX-License-Identifier: MIT */
/*
 * Inside nd_config_load: the parse state shared by config_load.c (lines
 * and sections), config_values.c (what each key accepts) and
 * config_keys.c (key files). Not for the rest of the server.
 */
#ifndef ND_SRV_CONFIG_PARSE_H
#define ND_SRV_CONFIG_PARSE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

enum nd_cfg_section { SEC_NONE, SEC_SERVER, SEC_EXPORT };

struct nd_cfg_parse;

struct nd_cfg_key {
	const char *name;
	int (*set)(struct nd_cfg_parse *p, const char *value);
	bool repeat;		/* lists: every occurrence adds */
};

/* One export's file, for the same file exported twice. */
struct nd_cfg_file {
	dev_t dev;
	ino_t ino;
	int line;
	/* Its cow directory, if that exists yet (cow_line 0: not cow). */
	bool cow_exists;
	dev_t cow_dev;
	ino_t cow_ino;
	int cow_line;
};

struct nd_cfg_parse {
	const char *file;
	FILE *f;
	struct nd_config *cfg;
	char *err;
	size_t errlen;
	bool failed;

	int line;		/* last line handed to inih */
	char *buf;
	bool want_call;		/* that line is key = value... */
	bool got_call;		/* ...and inih called the handler for it */

	enum nd_cfg_section sec;
	char sec_name[ND_NAME_MAX + 16];	/* as inih will report it */
	const struct nd_cfg_key *keys;
	int nkeys;
	int seen[16];		/* line each key of the section was set on */
	int server_line;
	int path_line;		/* of the current export */
	int cow_line;		/* of the current export; 0: not set */
	int read_only_line;	/* of the current export; 0: not set */
	int key_dir_line, key_file_line;
	int exports_cap;
	struct nd_cfg_file *files;	/* per export, parallel to cfg->exports */
};

/* Fails the parse with "FILE:LINE: message" (the first failure wins). -1. */
__attribute__((format(printf, 3, 4)))
int nd_cfg_fail(struct nd_cfg_parse *p, int line, const char *fmt, ...);

/* config_values.c */
extern const struct nd_cfg_key nd_cfg_server_keys[];
extern const int nd_cfg_nserver_keys;
extern const struct nd_cfg_key nd_cfg_export_keys[];
extern const int nd_cfg_nexport_keys;
/* Checks the export just finished: its path is there and usable. */
int nd_cfg_end_export(struct nd_cfg_parse *p);

/* config_keys.c: key-file and key-dir, once the file is parsed. */
int nd_cfg_load_keys(struct nd_cfg_parse *p);

#endif /* ND_SRV_CONFIG_PARSE_H */
