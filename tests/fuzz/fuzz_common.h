/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the libFuzzer harnesses: an in-process netdiskd reached
 * over loopback TCP, and a request phase
 * that seals fuzzer bytes into valid records and checks every reply.
 */
#ifndef ND_FUZZ_COMMON_H
#define ND_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "nd_wire.h"

/* Export served by the in-process servers: small, so I/O stays cheap. */
#define FZ_EXPORT_SIZE		(256u << 10)
#define FZ_SERVER_PAYLOAD	(64u << 10)

/* Fixed PSK shared by the harness clients and servers. */
extern const uint8_t fz_key[ND_KEY_LEN];

/* Stops the harness with a message: an oracle found a real bug. */
__attribute__((noreturn, format(printf, 1, 2)))
void fz_fail(const char *fmt, ...);

/* Where scratch files go: /dev/shm (tmpfs: no disk I/O per input) or /tmp. */
const char *fz_tmpdir(void);

/* Minimal byte reader over the fuzzer's input. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);
/* Up to want bytes; *got tells how many were there. */
const uint8_t *fz_take(struct fz_in *in, size_t want, size_t *got);

/* Server side: 0 = read-write export, 1 = read-only export. */
struct nd_server;
struct nd_server *fz_server(int read_only);

struct fz_conn {
	struct nd_server *srv;
	int fd;				/* the client's socket */
};

/* Connects to the server (running nd_server_run) over loopback TCP. */
void fz_conn_start(struct fz_conn *fc, struct nd_server *s);
/* Writes bytes, ignoring a peer that has gone away. */
void fz_write(int fd, const void *buf, size_t len);
/* Half-closes, reads and discards until the server closes its end. */
void fz_drain(int fd);
/*
 * Closes the client's socket; after the last one of the input, waits until
 * the server has finished with it, drops idle sessions and checks that none
 * (and no write lock) is left.
 */
void fz_conn_end(struct fz_conn *fc);

/*
 * After a successful handshake: interprets the rest of the input as chunks
 * (sealed request bodies, fixed-up requests, raw bytes, forged records),
 * sends them while a reader thread opens and checks every reply, then
 * half-closes and verifies each accepted request got exactly one reply.
 */
void fz_request_phase(int fd, struct nd_crypto *c,
		      const struct nd_session_info *info, struct fz_in *in);

#endif /* ND_FUZZ_COMMON_H */
