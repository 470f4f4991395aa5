/* SPDX-License-Identifier: MIT */
/*
 * libnetdisk asynchronous client: one connection, pipelined requests.
 *
 * Requests are sealed and sent by the submitting thread; a receiver thread
 * opens the replies, matches them to requests by handle (in any order) and
 * runs the completion callbacks. Up to max_inflight requests are
 * outstanding; nd_client_submit() blocks while all slots are in use.
 */
#ifndef ND_CLIENT_H
#define ND_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "nd_wire.h"
#include "url.h"

/*
 * Results. Values >= 0 are the server's status codes (enum nd_status);
 * negative values are local failures.
 */
enum nd_client_err {
	ND_CE_CONNECT = -1,	/* cannot resolve/connect */
	ND_CE_AUTH = -2,	/* handshake: server could not prove the key */
	ND_CE_REFUSED = -3,	/* handshake: server answered a status */
	ND_CE_PROTO = -4,	/* malformed or unexpected message */
	ND_CE_IO = -5,		/* connection lost */
	ND_CE_RECORD_AUTH = -6,	/* a record failed authentication */
	ND_CE_TIMEOUT = -7,	/* no reply within the timeout */
	ND_CE_NOMEM = -8,
	ND_CE_CLOSED = -9,	/* client is shutting down */
	ND_CE_NO_LIST = -10,	/* the server cannot list exports */
};

struct nd_client_opts {
	const char *identity;		/* NULL: "default" */
	uint32_t flags;			/* ND_CF_* */
	uint32_t max_payload;		/* 0: server default */
	unsigned int max_inflight;	/* 0: 64 */
	int timeout_ms;			/* connect, handshake, each request; 0: 30 s */
	/* Connections tried while the server closes them in the handshake; 0: 3 */
	unsigned int hs_attempts;
};

/*
 * Completion callback: status is ND_OK, a server status, or an ND_CE_*
 * value if the connection failed. It runs in the receiver thread (or, when
 * the connection dies during a submit, in the submitting thread), must not
 * block for long and must not call nd_client_submit().
 */
typedef void (*nd_client_cb)(void *arg, int status);

struct nd_client;

/*
 * Connects and runs the handshake. Returns 0 and sets *out, or an ND_CE_*
 * value with a one-line reason in err; for ND_CE_REFUSED *status (if not
 * NULL) holds the server's status.
 */
int nd_client_open(const struct nd_url *url, const uint8_t key[ND_KEY_LEN],
		   const struct nd_client_opts *opts, struct nd_client **out,
		   uint16_t *status, char *err, size_t errlen);

const struct nd_session_info *nd_client_info(const struct nd_client *c);

/*
 * Queues one request. READ fills buf (len bytes) before cb runs. WRITE
 * sends buf and ENCRYPTS IT IN PLACE: its contents are garbage afterwards.
 * FLUSH takes len 0, offset 0 and buf NULL. No range or alignment checks:
 * the server judges. Returns 0 if the request was accepted (cb will run
 * exactly once), or the connection's ND_CE_* error if it is already dead.
 */
int nd_client_submit(struct nd_client *c, uint8_t op, uint8_t flags,
		     uint64_t offset, uint32_t len, void *buf,
		     nd_client_cb cb, void *arg);

/*
 * Batching: between nd_client_plug() and nd_client_unplug(), submitted
 * requests are sealed and queued, and go out together (one sendmsg) at
 * unplug or once 32 requests or 256 KiB of write data are queued. A submit
 * that must wait for a free slot sends the queue first. Pairs may nest;
 * nd_client_drain(), nd_client_close() and the synchronous helpers below
 * also send what is queued.
 */
void nd_client_plug(struct nd_client *c);
void nd_client_unplug(struct nd_client *c);

/* Waits until no request is outstanding; returns 0 or the connection error. */
int nd_client_drain(struct nd_client *c);

/* Synchronous helpers: return a status as in nd_client_cb. */
int nd_client_read(struct nd_client *c, void *buf, uint64_t off, uint32_t len);
int nd_client_write(struct nd_client *c, void *buf, uint64_t off, uint32_t len);
int nd_client_flush(struct nd_client *c);

/*
 * Waits for outstanding requests, sends DISCONNECT, closes and frees.
 * Returns 0 or the connection error seen during its life.
 */
int nd_client_close(struct nd_client *c);

/*
 * Asks the server which exports opts->identity may use (lib/list.c): a
 * handshake offering list-exports, bounded like nd_client_open by
 * opts->timeout_ms (url's export name is sent but ignored). Returns 0 with
 * *entries (malloc'ed, sorted by name; free() it) and *count, or an ND_CE_*
 * value with a one-line reason in err: ND_CE_REFUSED with *status for a
 * server's refusal (access denied, clock skew, ...), ND_CE_NO_LIST for a
 * server without the extension (its session is ended with DISCONNECT),
 * ND_CE_PROTO for a malformed list.
 */
int nd_client_list_exports(const struct nd_url *url,
			   const uint8_t key[ND_KEY_LEN],
			   const struct nd_client_opts *opts,
			   struct nd_list_entry **entries, size_t *count,
			   uint16_t *status, char *err, size_t errlen);

/*
 * Checks a whole ExportList record body (PROTOCOL.md §1) and decodes it
 * into out (room for ND_LIST_MAX entries): the count within ND_LIST_MAX
 * and matching the length exactly, every entry valid, names strictly
 * ascending in byte order (so also unique). 0 and *count, or -1 with what
 * is wrong in err.
 */
int nd_list_parse(const uint8_t *p, size_t len, struct nd_list_entry *out,
		  size_t *count, char *err, size_t errlen);

/* Human-readable text for a result (server status or ND_CE_*). */
const char *nd_client_strerror(int result);

#endif /* ND_CLIENT_H */
