/* SPDX-License-Identifier: MIT */
/*
 * Server configurations for the unit tests' in-process servers: a struct
 * nd_config built as nd_config_load would (exports and identities sorted,
 * allocated so nd_config_free frees them), without a file on disk.
 */
#ifndef ND_TEST_SRV_CONFIG_H
#define ND_TEST_SRV_CONFIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/config.h"
#include "../../server/log.h"

/*
 * One export "default" of path with one shared key for every identity, on
 * 127.0.0.1, an ephemeral port: what the command-line shortcut gives.
 */
static inline void cfg_one(struct nd_config *cfg, const char *path,
			   bool read_only, const uint8_t *key,
			   const char *state_dir)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[0] = strdup("127.0.0.1");
	assert_non_null(cfg->listen[0]);
	cfg->nlisten = 1;
	cfg->have_shared_key = true;
	memcpy(cfg->shared_key, key, ND_KEY_LEN);
	cfg->grace_s = 30;
	cfg->max_payload = ND_DEFAULT_PAYLOAD;
	cfg->log_level = nd_log_level;
	if (state_dir)
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s",
			 state_dir);
	cfg->exports = calloc(1, sizeof(*cfg->exports));
	assert_non_null(cfg->exports);
	cfg->nexports = 1;
	snprintf(cfg->exports[0].name, sizeof(cfg->exports[0].name),
		 "default");
	snprintf(cfg->exports[0].path, sizeof(cfg->exports[0].path), "%s",
		 path);
	cfg->exports[0].read_only = read_only;
}

#endif /* ND_TEST_SRV_CONFIG_H */
