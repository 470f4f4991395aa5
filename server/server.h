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

struct nd_server_config {
	const char *listen_addr;	/* NULL: all addresses, v6 dual-stack */
	uint16_t port;			/* 0: ephemeral (see nd_server_port) */
	int workers;			/* 0: nd_server_default_workers() */
	int grace_ms;			/* write-lock grace after last close */
	uint32_t max_payload;		/* 0: ND_DEFAULT_PAYLOAD */
	int handshake_timeout_ms;	/* 0: ND_HANDSHAKE_TIMEOUT s */
	int max_conns;			/* 0: ND_SRV_MAX_CONNS */
	int max_pending;		/* 0: ND_SRV_MAX_PENDING */
	int max_pending_src;		/* 0: ND_SRV_MAX_PENDING_SRC */
	int drain_ms;			/* shutdown wait for replies; 0: 10 s */
	/*
	 * Where a read-write export's write epochs are kept durably
	 * (DIR/<export id>.state; created 0700 if missing). Required for a
	 * read-write export: nd_server_create fails if it cannot be written.
	 */
	const char *state_dir;
	/* Single identity for now; the key is looked up by identity. */
	const char *identity;		/* NULL: "default" */
	const uint8_t *key;		/* ND_KEY_LEN bytes, copied */
};

struct nd_server;

/*
 * Worker threads by default: the number of online CPUs, at least 2 (one
 * can wait on the disk while another serves); more only add wake-ups.
 */
int nd_server_default_workers(void);

/*
 * Creates the server for one opened export (ownership of e's backend passes
 * to the server) and binds the listening socket. NULL with a one-line
 * reason in err on failure (e is then closed).
 */
struct nd_server *nd_server_create(const struct nd_server_config *cfg,
				   struct nd_export *e, char *err,
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
/* Frees everything (after nd_server_run returned, or instead of it). */
void nd_server_destroy(struct nd_server *s);

#endif /* ND_SRV_SERVER_H */
