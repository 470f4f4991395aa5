/* SPDX-License-Identifier: MIT */
/*
 * netdiskd core: listener, handshake, sessions and request processing.
 * main.c parses options and drives it; unit tests run it in-process.
 */
#ifndef ND_SRV_SERVER_H
#define ND_SRV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "netdisk_proto.h"

#define ND_SRV_MAX_WORKERS	256
#define ND_SRV_MAX_INFLIGHT	128	/* requests per connection */
#define ND_SRV_MAX_CONNS	1024	/* authenticated connections */
/*
 * Connections still in the handshake, in all and per source address
 * (docs/DESIGN.md "Shutdown and limits"). Per source: more than the 16
 * connections one netdisk.ko device opens at once.
 */
#define ND_SRV_MAX_PENDING	128
#define ND_SRV_MAX_PENDING_SRC	32
#define ND_SRV_DEFAULT_GRACE	30	/* seconds */

/*
 * Knobs that are not in the configuration file (tests shorten them).
 * Everything an admin sets is in struct nd_config (config.h).
 */
struct nd_server_config {
	int handshake_timeout_ms;	/* 0: ND_HANDSHAKE_TIMEOUT s */
	int max_conns;			/* 0: ND_SRV_MAX_CONNS */
	int max_pending;		/* 0: ND_SRV_MAX_PENDING */
	int max_pending_src;		/* 0: ND_SRV_MAX_PENDING_SRC */
	int drain_ms;			/* shutdown wait for replies; 0: 10 s */
};

struct nd_server;
struct nd_config;

/*
 * Worker threads by default: the number of online CPUs, at least 2 (one
 * can wait on the disk while another serves); more only add wake-ups.
 */
int nd_server_default_workers(void);

/*
 * Creates the server for a configuration (ownership of cfg's contents
 * passes to the server, which frees them; cfg itself is left zeroed):
 * opens and locks every export, loads or creates the write-epoch state of
 * the read-write ones (cfg->state_dir), binds every listening address.
 * NULL with a one-line reason in err on failure (cfg is freed then too).
 */
struct nd_server *nd_server_create(const struct nd_server_config *opts,
				   struct nd_config *cfg, char *err,
				   size_t errlen);
/* Port actually bound. */
uint16_t nd_server_port(const struct nd_server *s);
/*
 * Accepts and serves until nd_server_stop(), then stops accepting, lets
 * in-flight requests finish and their replies go out, closes every
 * connection and returns 0.
 */
int nd_server_run(struct nd_server *s);
/* Asks nd_server_run to return. Async-signal-safe. */
void nd_server_stop(struct nd_server *s);
/*
 * Asks the running server to re-read its configuration file (SIGHUP).
 * Async-signal-safe. The server loads the file anew (nd_config_load) and,
 * if it loads and every added or changed export opens, switches to it:
 * added exports and identities appear; the sessions of a removed or
 * changed export (path, read-only), of an identity whose key was removed
 * or changed, and of an identity no longer allowed on its export are
 * closed (their write locks released, a removed export's file closed and
 * unlocked); everything else goes on untouched. Otherwise it logs why and
 * keeps the old configuration whole. [server] settings other than
 * log-level take effect at the next start (a warning says so).
 */
void nd_server_reload(struct nd_server *s);
/*
 * How many reloads were applied and rejected so far (tests wait on it).
 */
void nd_server_reload_count(struct nd_server *s, unsigned long *applied,
			    unsigned long *rejected);
/* Frees everything (after nd_server_run returned, or instead of it). */
void nd_server_destroy(struct nd_server *s);

#endif /* ND_SRV_SERVER_H */
