// SPDX-License-Identifier: MIT
/*
 * ndevil: a netdisk server for tests that holds the key and misbehaves.
 *
 *   ndevil --listen [ADDR:]PORT --key-file KEY --file IMG --mode MODE[,MODE...]
 *          [--at OFFSET] [--step BYTES] [--times N] [--trickle-ms MS]
 *          [--token HEX]
 *
 * Runs the real handshake (libnetdisk's key schedule and record layer),
 * then serves IMG read-write to every connection (one thread each; any
 * session token is accepted, so reconnects join). Everything a client can
 * verify is honest except what --mode breaks. Reply modes act on READs:
 * misbehaviour k (from 0) hits the first READ covering byte OFFSET + k *
 * BYTES (--at, default 0; --step, default 0) with the k-th mode of the
 * list (cycling), N times in all (--times, default: once per listed mode;
 * 0: forever), at most once per connection; then the server is honest
 * again. Reply modes:
 *   honest          nothing (the baseline)
 *   unknown-handle  a reply for a handle never issued, then the real one
 *   dup-handle      the real reply twice
 *   stale-handle    a reply with 0xee data for the slot's previous
 *                   generation (handle - 2^32), then the real one
 *   short-read      READ data 512 bytes short (length and record agree)
 *   long-read       READ data 512 bytes long
 *   empty-read      status OK and no data
 *   bad-status      status 0x7777, which the protocol does not define
 *   garbage         an authenticated record of 64 random bytes, then the
 *                   real reply
 *   stall           no reply, to this request or any later one on this
 *                   connection (which stays open)
 *   trickle         the reply one byte every MS (--trickle-ms, default 100)
 * Handshake modes act on every connection:
 *   size-huge (export size 2^63), size-unaligned (4 KiB block size, size
 *   not a multiple of it), block-size (3), payload-zero, payload-huge
 *   (0xffffffff), payload-raise (16 MiB, above what the client asked),
 *   info-status (SessionInfo status 0x7777), hello-trickle (ServerHello and
 *   SessionInfo one byte every MS), v1-server (answers the ClientHello as a
 *   protocol-1 server does: a 72-byte ServerHello, version 1, status 9
 *   "unsupported version", and keeps the connection open), low-order-share
 *   (a ServerHello whose X25519 share is 0, a low-order point: the
 *   client's dh would be 0), access-denied (SessionInfo status 15, then
 *   close), access-revoked (honest until the first READ covering --at,
 *   which closes its connection as a server revoking the client's access
 *   would; every later handshake gets access-denied's answer),
 *   base-changed (SessionInfo status 16, the base image of a copy-on-write
 *   overlay changed, then close), base-changed-later (access-revoked's
 *   timing with base-changed's answer: a server restarted on another base).
 * A ClientHello offering list-exports gets an ExportList of three exports
 * (alpha rw, beta.ro ro, gamma rw busy), then the connection closes; list
 * modes spoil it: list-count (count one more than the entries),
 * list-count-small (one fewer), list-name (a name with a '/'), list-flag
 * (unknown flag 0x200), list-size-zero, list-size-huge (2^63),
 * list-block-size (3), list-dup (a name twice), list-unsorted (two names
 * swapped), list-trailing (5 bytes after the entries), list-too-many (1025
 * entries), list-none (a server without the extension: a read-only session
 * as for any client; "DISCONNECT" is logged when the client ends it).
 * Each misbehaviour is logged on stderr as "ndevil: conn C: MODE ...". With
 * PORT 0 the chosen port is printed on stdout as "port N". SIGTERM/SIGINT
 * exit 0. --token (32 hex characters) fixes the session token handed out
 * (default: random), for tests that look for it in the client's memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nd_wire.h"

enum mode {
	M_HONEST, M_UNKNOWN_HANDLE, M_DUP_HANDLE, M_STALE_HANDLE, M_SHORT_READ,
	M_LONG_READ, M_EMPTY_READ, M_BAD_STATUS, M_GARBAGE, M_STALL,
	M_TRICKLE,
	/* handshake modes */
	M_SIZE_HUGE, M_SIZE_UNALIGNED, M_BLOCK_SIZE, M_PAYLOAD_ZERO,
	M_PAYLOAD_HUGE, M_PAYLOAD_RAISE, M_INFO_STATUS, M_HELLO_TRICKLE,
	M_V1_SERVER, M_LOW_ORDER_SHARE, M_ACCESS_DENIED, M_ACCESS_REVOKED,
	M_BASE_CHANGED, M_BASE_CHANGED_LATER,
	/* export list modes (a ClientHello offering list-exports) */
	M_LIST_COUNT, M_LIST_COUNT_SMALL, M_LIST_NAME, M_LIST_FLAG,
	M_LIST_SIZE_ZERO, M_LIST_SIZE_HUGE, M_LIST_BLOCK_SIZE, M_LIST_DUP,
	M_LIST_UNSORTED, M_LIST_TRAILING, M_LIST_TOO_MANY, M_LIST_NONE,
	M_COUNT
};
static const char *const mode_names[M_COUNT] = {
	"honest", "unknown-handle", "dup-handle", "stale-handle", "short-read",
	"long-read", "empty-read", "bad-status", "garbage", "stall", "trickle",
	"size-huge", "size-unaligned", "block-size", "payload-zero",
	"payload-huge", "payload-raise", "info-status", "hello-trickle",
	"v1-server", "low-order-share", "access-denied", "access-revoked",
	"base-changed", "base-changed-later",
	"list-count", "list-count-small", "list-name", "list-flag",
	"list-size-zero", "list-size-huge", "list-block-size", "list-dup",
	"list-unsorted", "list-trailing", "list-too-many", "list-none",
};

#define BAD_STATUS	0x7777
#define SERVE_PAYLOAD	(1u << 20)	/* most the server grants */

static enum mode g_mode = M_HONEST;	/* the first (handshake: only) one */
static enum mode g_modes[M_COUNT];
static unsigned int g_nmodes;
static uint64_t g_at, g_step;
static long g_left;		/* misbehaviours left; <0: unlimited */
static uint64_t g_fired;	/* misbehaviours done */
static unsigned int g_trickle_ms = 100;
static uint8_t g_key[ND_KEY_LEN];
static int g_fd = -1;		/* the image */
static uint64_t g_size;
static uint8_t g_token[ND_TOKEN_LEN], g_export_id[ND_EXPORT_ID_LEN];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long g_nconn;
static bool g_revoked;		/* *-revoked, *-later: refusing (g_lock) */

struct conn {
	int fd;
	unsigned long id;
	struct nd_crypto cr;
	uint32_t max_payload;
	bool stalled;
	/*
	 * Misbehaved once: honest from then on, so that the next misbehaviour
	 * falls on the connection the client makes after dropping this one
	 * (a request it had already sent here would otherwise use it up).
	 */
	bool spoiled;
	uint8_t *req, *data;	/* request record body; reply data */
};

static void die(const char *msg)
{
	fprintf(stderr, "ndevil: %s\n", msg);
	exit(2);
}

static void on_signal(int sig)
{
	(void)sig;
	_exit(0);	/* workers may be mid-write: nothing to flush */
}

/* access-revoked, base-changed-later: the first READ covering --at. */
static bool revoke_access(struct conn *c, const struct nd_request *q)
{
	bool now;

	if (g_mode != M_ACCESS_REVOKED && g_mode != M_BASE_CHANGED_LATER)
		return false;
	if (q->op != ND_OP_READ || g_at < q->offset ||
	    g_at - q->offset >= q->length)
		return false;
	pthread_mutex_lock(&g_lock);
	now = !g_revoked;
	g_revoked = true;
	pthread_mutex_unlock(&g_lock);
	if (now)
		fprintf(stderr, "ndevil: conn %lu: %s: closing (READ offset %llu length %u)\n",
			c->id, mode_names[g_mode],
			(unsigned long long)q->offset, q->length);
	return now;
}

/* The mode for this READ if it is the next one to misbehave on, else 0. */
static enum mode trigger(const struct nd_request *r)
{
	enum mode m = M_HONEST;
	uint64_t at;

	if (g_mode == M_HONEST || g_mode >= M_SIZE_HUGE ||
	    r->op != ND_OP_READ)
		return M_HONEST;
	pthread_mutex_lock(&g_lock);
	at = g_at + g_fired * g_step;
	if (g_left != 0 && at >= r->offset && at - r->offset < r->length) {
		m = g_modes[g_fired % g_nmodes];
		g_fired++;
		if (g_left > 0)
			g_left--;
	}
	pthread_mutex_unlock(&g_lock);
	return m;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Writes buf one byte every g_trickle_ms. 0 or -1. */
static int trickle(int fd, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (nd_write_full(fd, buf + i, 1))
			return -1;
		sleep_ms(g_trickle_ms);
	}
	return 0;
}

/* Seals body (hdr + data, encrypted in place) and sends it, maybe slowly. */
static int send_body(struct conn *c, uint8_t *hdr, size_t hlen, uint8_t *data,
		     size_t dlen, bool slow)
{
	struct iovec v[2] = { { hdr, hlen }, { data, dlen } };
	uint8_t rh[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN], *flat;
	size_t n;
	int rc;

	if (!slow)
		return nd_send_record(c->fd, &c->cr.tx, v, dlen ? 2 : 1);
	if (nd_seal(&c->cr.tx, rh, v, dlen ? 2 : 1, tag))
		return -1;
	n = sizeof(rh) + hlen + dlen + sizeof(tag);
	flat = malloc(n);
	if (!flat)
		return -1;
	memcpy(flat, rh, sizeof(rh));
	memcpy(flat + sizeof(rh), hdr, hlen);
	if (dlen)
		memcpy(flat + sizeof(rh) + hlen, data, dlen);
	memcpy(flat + n - sizeof(tag), tag, sizeof(tag));
	rc = trickle(c->fd, flat, n);
	free(flat);
	return rc;
}

static int send_reply(struct conn *c, const struct nd_reply *r, uint8_t *data,
		      bool slow)
{
	uint8_t hdr[ND_REPLY_HDR_LEN];

	nd_reply_encode(hdr, r);
	return send_body(c, hdr, sizeof(hdr), data, r->length, slow);
}

static void note(struct conn *c, const struct nd_request *q, enum mode m,
		 const char *what)
{
	fprintf(stderr, "ndevil: conn %lu: %s: %s (READ offset %llu length %u)\n",
		c->id, mode_names[m], what, (unsigned long long)q->offset,
		q->length);
}

/* The honest answer to q; READ data (if any) in c->data. */
static struct nd_reply serve(struct conn *c, const struct nd_request *q,
			     const uint8_t *wdata)
{
	struct nd_reply r = { .op = q->op, .handle = q->handle };
	ssize_t n;

	switch (q->op) {
	case ND_OP_READ:
	case ND_OP_WRITE:
		if (q->offset > g_size || q->length > g_size - q->offset) {
			r.status = ND_ERR_RANGE;
			break;
		}
		if (q->op == ND_OP_READ)
			n = pread(g_fd, c->data, q->length, (off_t)q->offset);
		else
			n = pwrite(g_fd, wdata, q->length, (off_t)q->offset);
		if (n != (ssize_t)q->length)
			r.status = ND_ERR_IO;
		else if (q->op == ND_OP_READ)
			r.length = q->length;
		break;
	case ND_OP_FLUSH:
		if (fdatasync(g_fd))
			r.status = ND_ERR_IO;
		break;
	default:
		r.status = ND_ERR_NOTSUP;
		break;
	}
	return r;
}

/*
 * Sends an extra reply like r but for handle (fill: its data, -1: the real
 * data), then the real reply. Sending encrypts c->data in place, hence the
 * second serve().
 */
static int extra_then_real(struct conn *c, const struct nd_request *q,
			   uint64_t handle, int fill)
{
	struct nd_reply r = serve(c, q, NULL), bad = r;

	bad.handle = handle;
	if (fill >= 0)
		memset(c->data, fill, bad.length);
	if (send_reply(c, &bad, c->data, false))
		return -1;
	r = serve(c, q, NULL);
	return send_reply(c, &r, c->data, false);
}

/* Answers one READ the way mode m says. 0, or -1 to drop the connection. */
static int misbehave(struct conn *c, const struct nd_request *q, enum mode m)
{
	struct nd_reply r;
	uint8_t junk[64];

	switch (m) {
	case M_UNKNOWN_HANDLE:
		note(c, q, m, "reply with an unknown handle, then the real one");
		return extra_then_real(c, q, q->handle | 0xffffffffull, -1);
	case M_DUP_HANDLE:
		note(c, q, m, "the reply twice");
		return extra_then_real(c, q, q->handle, -1);
	case M_STALE_HANDLE:
		note(c, q, m, "0xee data for the previous handle of the slot, then the real reply");
		return extra_then_real(c, q, q->handle - (1ull << 32), 0xee);
	default:
		break;
	}
	r = serve(c, q, NULL);
	switch (m) {
	case M_SHORT_READ:
	case M_LONG_READ:
	case M_EMPTY_READ:
		if (r.status != ND_OK)
			break;
		if (m == M_SHORT_READ) {
			r.length -= ND_SECTOR_SIZE;
		} else if (m == M_LONG_READ) {
			memset(c->data + r.length, 0xee, ND_SECTOR_SIZE);
			r.length += ND_SECTOR_SIZE;
		} else {
			r.length = 0;
		}
		note(c, q, m, "READ data of the wrong length");
		break;
	case M_BAD_STATUS:
		r.status = BAD_STATUS;
		r.length = 0;
		note(c, q, m, "reply with status 0x7777");
		break;
	case M_GARBAGE: {
		struct iovec v = { junk, sizeof(junk) };

		nd_random(junk, sizeof(junk));
		note(c, q, m, "a record of 64 random bytes, then the real reply");
		if (nd_send_record(c->fd, &c->cr.tx, &v, 1))
			return -1;
		break;
	}
	case M_STALL:
		note(c, q, m, "no more replies on this connection");
		c->stalled = true;
		return 0;
	case M_TRICKLE:
		note(c, q, m, "the reply one byte at a time");
		return send_reply(c, &r, c->data, true);
	default:
		break;
	}
	return send_reply(c, &r, c->data, false);
}

static size_t put_entry(uint8_t *p, const char *name, uint32_t flags,
			uint64_t size, uint32_t block_size)
{
	struct nd_list_entry e = {
		.name_len = (uint8_t)strlen(name), .flags = flags,
		.size = size, .block_size = block_size,
	};

	memcpy(e.name, name, e.name_len);
	return nd_list_entry_encode(p, &e);
}

/* Sends the ExportList, spoilt as g_mode says. 0 or -1. */
static int send_list(struct conn *c)
{
	static const char *const names[3] = { "alpha", "beta.ro", "gamma" };
	const char *nm[3] = { names[0], names[1], names[2] };
	uint32_t flags[3] = { ND_EXP_FLUSH | ND_EXP_FUA,
			      ND_EXP_READ_ONLY | ND_EXP_FLUSH,
			      ND_EXP_FLUSH | ND_LIST_BUSY };
	uint64_t size[3] = { g_size, g_size, g_size };
	uint32_t bs[3] = { 512, 4096, 512 }, count = 3;
	size_t o = ND_LIST_HDR_LEN, extra = 0;
	uint8_t *b = malloc(ND_LIST_MAX_LEN + 16);
	char name[8];
	int i, rc;

	if (!b)
		return -1;
	switch (g_mode) {
	case M_LIST_COUNT:
		count = 4;
		break;
	case M_LIST_COUNT_SMALL:
		count = 2;
		break;
	case M_LIST_NAME:
		nm[1] = "beta/ro";
		break;
	case M_LIST_FLAG:
		flags[0] |= 0x200;
		break;
	case M_LIST_SIZE_ZERO:
		size[1] = 0;
		break;
	case M_LIST_SIZE_HUGE:
		size[1] = ND_EXPORT_SIZE_LIMIT;
		break;
	case M_LIST_BLOCK_SIZE:
		bs[2] = 3;
		break;
	case M_LIST_DUP:
		nm[2] = nm[1];
		break;
	case M_LIST_UNSORTED:
		nm[0] = names[1];
		nm[1] = names[0];
		flags[0] = flags[1];
		bs[0] = bs[1];
		flags[1] = ND_EXP_FLUSH | ND_EXP_FUA;
		bs[1] = 512;
		break;
	case M_LIST_TRAILING:
		extra = 5;
		break;
	default:
		break;
	}
	if (g_mode == M_LIST_TOO_MANY) {
		count = ND_LIST_MAX + 1;
		for (i = 0; i < (int)count; i++) {
			snprintf(name, sizeof(name), "e%04d", i);
			o += put_entry(b + o, name, ND_EXP_FLUSH, g_size, 512);
		}
	} else {
		for (i = 0; i < 3; i++)
			o += put_entry(b + o, nm[i], flags[i], size[i], bs[i]);
	}
	nd_list_hdr_encode(b, count);
	memset(b + o, 0, extra);
	o += extra;
	if (g_mode >= M_LIST_COUNT)
		fprintf(stderr, "ndevil: conn %lu: %s: export list of %zu bytes, count %u\n",
			c->id, mode_names[g_mode], o, count);
	else
		fprintf(stderr, "ndevil: conn %lu: export list, count %u\n",
			c->id, count);
	rc = send_body(c, b, o, NULL, 0, false);
	free(b);
	return rc;
}

/* Server side of the handshake; the mode may spoil SessionInfo. 0 or -1. */
static int handshake(struct conn *c)
{
	uint8_t ch_buf[ND_CLIENT_HELLO_MAX], sh_buf[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], mac[ND_HASH_LEN];
	uint8_t eph[ND_SHARE_LEN];
	uint8_t buf[ND_CLIENT_FINISH_LEN + ND_TAG_LEN], si[ND_SESSION_INFO_LEN];
	struct nd_server_hello sh = { .version = ND_VERSION };
	struct nd_session_info info = {
		.flags = ND_EXP_FLUSH | ND_EXP_EXCLUSIVE, .size = g_size,
		.block_size = ND_SECTOR_SIZE, .write_epoch = 1,
	};
	size_t o;
	struct nd_client_hello ch;
	struct nd_client_finish cf;
	bool slow = g_mode == M_HELLO_TRICKLE;
	int names, rc = -1;
	long n;

	if (nd_read_full(c->fd, ch_buf, ND_CLIENT_HELLO_FIXED))
		return -1;
	names = nd_client_hello_decode_fixed(ch_buf, &ch);
	if (names < 0 ||
	    nd_read_full(c->fd, ch_buf + ND_CLIENT_HELLO_FIXED, (size_t)names) ||
	    nd_client_hello_decode_names(ch_buf + ND_CLIENT_HELLO_FIXED, &ch))
		return -1;
	if (g_mode == M_V1_SERVER) {
		/* Version 1's ServerHello: magic, version 1, status, 64 bytes. */
		memset(sh_buf, 0, sizeof(sh_buf));
		nd_put32(sh_buf, ND_MAGIC);
		nd_put16(sh_buf + 4, 1);
		nd_put16(sh_buf + 6, ND_ERR_VERSION);
		fprintf(stderr, "ndevil: conn %lu: v1-server: 72-byte version-1 server hello, status 9\n",
			c->id);
		if (nd_write_full(c->fd, sh_buf, 72))
			return -1;
		/* A v1 server would wait for the rest; so do we, until EOF. */
		while (read(c->fd, buf, sizeof(buf)) > 0)
			;
		return -1;
	}
	o = ND_CLIENT_HELLO_FIXED + (size_t)names;
	if (ch.version != ND_VERSION ||
	    nd_read_full(c->fd, ch_buf + o, ND_CLIENT_HELLO_TAIL) ||
	    nd_client_hello_decode_tail(ch_buf + o, &ch) < 0 ||
	    nd_read_full(c->fd, ch_buf + o + ND_CLIENT_HELLO_TAIL, ch.ext_len) ||
	    nd_client_hello_decode_ext(ch_buf + o + ND_CLIENT_HELLO_TAIL, &ch))
		return -1;
	if (nd_random(sh.random, sizeof(sh.random)) ||
	    nd_x25519_keygen(eph, sh.share))
		return -1;
	if (g_mode == M_LOW_ORDER_SHARE) {
		memset(sh.share, 0, sizeof(sh.share));
		fprintf(stderr, "ndevil: conn %lu: low-order-share: server hello with share 0\n",
			c->id);
	}
	nd_server_hello_encode(sh_buf, &sh);
	nd_transcript(ch_buf, nd_client_hello_len(&ch), sh_buf, th);
	if (nd_key_exchange(eph, ch.share, g_key, ch.random, sh.random, th,
			    okm))
		goto out;
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, sh.verify);
	nd_server_hello_encode(sh_buf, &sh);
	if (nd_crypto_init(&c->cr, okm, false))
		goto out;
	if (slow)
		fprintf(stderr, "ndevil: conn %lu: hello-trickle: server hello and session info one byte at a time\n",
			c->id);
	if (slow ? trickle(c->fd, sh_buf, sizeof(sh_buf)) :
		   nd_write_full(c->fd, sh_buf, sizeof(sh_buf)))
		goto out;
	n = nd_recv_record(c->fd, &c->cr.rx, buf, sizeof(buf));
	if (n != ND_CLIENT_FINISH_LEN)
		goto out;
	nd_client_finish_decode(buf, &cf);
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, mac);
	if (!nd_equal(mac, cf.verify, ND_HASH_LEN)) {
		fprintf(stderr, "ndevil: conn %lu: wrong key\n", c->id);
		goto out;
	}
	if (nd_ext_has(ch.ext, ch.ext_len, ND_EXT_LIST_EXPORTS) &&
	    g_mode != M_LIST_NONE && g_mode != M_ACCESS_DENIED) {
		send_list(c);
		goto out;	/* and close, as the protocol says */
	}
	if (g_mode == M_LIST_NONE && (cf.flags & ND_CF_READ_ONLY)) {
		info.flags = ND_EXP_READ_ONLY | ND_EXP_FLUSH;
		info.write_epoch = 0;
	}
	c->max_payload = cf.max_payload ? cf.max_payload : ND_DEFAULT_PAYLOAD;
	if (c->max_payload > SERVE_PAYLOAD)
		c->max_payload = SERVE_PAYLOAD;
	c->max_payload -= c->max_payload % ND_MIN_PAYLOAD;
	info.max_payload = c->max_payload;
	memcpy(info.token, g_token, ND_TOKEN_LEN);
	memcpy(info.export_id, g_export_id, ND_EXPORT_ID_LEN);
	switch (g_mode) {
	case M_SIZE_HUGE:
		info.size = ND_EXPORT_SIZE_LIMIT;
		break;
	case M_SIZE_UNALIGNED:
		info.block_size = 4096;
		info.size = g_size + ND_SECTOR_SIZE;
		break;
	case M_BLOCK_SIZE:
		info.block_size = 3;
		break;
	case M_PAYLOAD_ZERO:
		info.max_payload = 0;
		break;
	case M_PAYLOAD_HUGE:
		info.max_payload = 0xffffffffu;
		break;
	case M_PAYLOAD_RAISE:
		info.max_payload = ND_MAX_PAYLOAD;
		break;
	case M_INFO_STATUS:
		info.status = BAD_STATUS;
		break;
	case M_ACCESS_DENIED:
	case M_ACCESS_REVOKED:
	case M_BASE_CHANGED:
	case M_BASE_CHANGED_LATER:
		pthread_mutex_lock(&g_lock);
		if (g_mode == M_ACCESS_DENIED || g_mode == M_BASE_CHANGED ||
		    g_revoked) {
			memset(&info, 0, sizeof(info));
			info.status = g_mode == M_ACCESS_DENIED ||
				      g_mode == M_ACCESS_REVOKED ?
				      ND_ERR_ACCESS : ND_ERR_BASE_CHANGED;
		}
		pthread_mutex_unlock(&g_lock);
		break;
	default:
		break;
	}
	if (g_mode >= M_SIZE_HUGE && g_mode != M_HELLO_TRICKLE &&
	    g_mode != M_V1_SERVER && g_mode != M_LOW_ORDER_SHARE &&
	    g_mode < M_LIST_COUNT &&
	    ((g_mode != M_ACCESS_REVOKED && g_mode != M_BASE_CHANGED_LATER) ||
	     info.status))
		fprintf(stderr, "ndevil: conn %lu: %s: session info size %llu, block size %u, max payload %u, status %u\n",
			c->id, mode_names[g_mode],
			(unsigned long long)info.size, info.block_size,
			info.max_payload, info.status);
	nd_session_info_encode(si, &info);
	rc = send_body(c, si, sizeof(si), NULL, 0, slow);
	if (info.status != ND_OK)
		rc = -1;	/* a refusal ends the connection */
out:
	nd_wipe(okm, sizeof(okm));
	nd_wipe(th, sizeof(th));
	return rc;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	size_t cap;

	if (handshake(c))
		goto out;
	cap = ND_REQ_HDR_LEN + c->max_payload + ND_TAG_LEN;
	c->req = malloc(cap);
	/* Room for a long READ's extra sector. */
	c->data = malloc(c->max_payload + ND_SECTOR_SIZE);
	if (!c->req || !c->data)
		goto out;
	for (;;) {
		struct nd_request q;
		struct nd_reply r;
		enum mode m;
		long n = nd_recv_record(c->fd, &c->cr.rx, c->req, cap);

		if (n < 0 ||
		    nd_request_decode(c->req, (size_t)n, c->max_payload, &q))
			break;
		if (q.op == ND_OP_DISCONNECT) {
			if (g_mode == M_LIST_NONE)
				fprintf(stderr, "ndevil: conn %lu: list-none: DISCONNECT\n",
					c->id);
			break;
		}
		if (c->stalled)
			continue;
		if (revoke_access(c, &q))
			break;
		m = c->spoiled ? M_HONEST : trigger(&q);
		if (m != M_HONEST) {
			c->spoiled = true;
			if (misbehave(c, &q, m))
				break;
			continue;
		}
		r = serve(c, &q, c->req + ND_REQ_HDR_LEN);
		if (send_reply(c, &r, c->data, false))
			break;
	}
out:
	close(c->fd);
	nd_crypto_free(&c->cr);
	free(c->req);
	free(c->data);
	free(c);
	return NULL;
}

static void usage(FILE *f)
{
	int i;

	fprintf(f, "usage: ndevil --listen [ADDR:]PORT --key-file KEY --file IMG --mode MODE\n"
		   "              [--at OFFSET] [--times N] [--trickle-ms MS] [--token HEX]\n"
		   "modes:");
	for (i = 0; i < M_COUNT; i++)
		fprintf(f, " %s", mode_names[i]);
	fprintf(f, "\n");
}

/* --token: exactly ND_TOKEN_LEN bytes as hex. */
static void parse_token(const char *s)
{
	unsigned int i, v;

	if (strlen(s) != 2 * ND_TOKEN_LEN) {
		fprintf(stderr, "ndevil: bad --token '%s' (%d hex characters)\n",
			s, 2 * ND_TOKEN_LEN);
		exit(2);
	}
	for (i = 0; i < ND_TOKEN_LEN; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1])) {
			fprintf(stderr, "ndevil: bad --token '%s'\n", s);
			exit(2);
		}
		g_token[i] = (uint8_t)v;
	}
}

static uint64_t number(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "ndevil: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static int listen_on(const char *spec)
{
	char host[256] = "127.0.0.1", port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *res;
	int fd, one = 1;

	if (colon) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		snprintf(port, sizeof(port), "%s", colon + 1);
	} else {
		snprintf(port, sizeof(port), "%s", spec);
	}
	if (getaddrinfo(host, port, &hints, &res))
		die("cannot resolve the listen address");
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket failed");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 16)) {
		fprintf(stderr, "ndevil: cannot listen on %s: %s\n", spec,
			strerror(errno));
		exit(1);
	}
	freeaddrinfo(res);
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "file", required_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ "at", required_argument, NULL, 'a' },
		{ "step", required_argument, NULL, 's' },
		{ "times", required_argument, NULL, 't' },
		{ "trickle-ms", required_argument, NULL, 'T' },
		{ "token", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen_s = NULL, *key_file = NULL, *file = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sigaction sa = { .sa_handler = on_signal };
	char err[256], *tok, *save = NULL;
	bool times_set = false, token_set = false;
	struct stat st;
	int opt, lfd, i;

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_s = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'm':
			g_nmodes = 0;
			for (tok = strtok_r(optarg, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				for (i = 0; i < M_COUNT; i++)
					if (!strcmp(tok, mode_names[i]))
						break;
				if (i == M_COUNT || g_nmodes == M_COUNT) {
					usage(stderr);
					return 2;
				}
				g_modes[g_nmodes++] = (enum mode)i;
			}
			break;
		case 'a':
			g_at = number(optarg, "--at");
			break;
		case 's':
			g_step = number(optarg, "--step");
			break;
		case 't':
			g_left = (long)number(optarg, "--times");
			if (!g_left)
				g_left = -1;
			times_set = true;
			break;
		case 'T':
			g_trickle_ms = (unsigned int)number(optarg, "--trickle-ms");
			break;
		case 'K':
			parse_token(optarg);
			token_set = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!listen_s || !key_file || !file || !g_nmodes || optind != argc) {
		usage(stderr);
		return 2;
	}
	g_mode = g_modes[0];
	for (i = 1; i < (int)g_nmodes; i++)
		if (g_modes[i] >= M_SIZE_HUGE || g_mode >= M_SIZE_HUGE)
			die("handshake modes cannot be combined");
	if (!times_set)
		g_left = (long)g_nmodes;
	if (nd_key_load(key_file, g_key, err, sizeof(err))) {
		fprintf(stderr, "ndevil: %s\n", err);
		return 1;
	}
	g_fd = open(file, O_RDWR);
	if (g_fd < 0 || fstat(g_fd, &st) || st.st_size <= 0 ||
	    st.st_size % 4096) {
		fprintf(stderr, "ndevil: %s: not a file of a multiple of 4 KiB\n",
			file);
		return 1;
	}
	g_size = (uint64_t)st.st_size;
	if ((!token_set && nd_random(g_token, sizeof(g_token))) ||
	    nd_random(g_export_id, sizeof(g_export_id)))
		die("no randomness");

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(listen_s);
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl))
		die("getsockname failed");
	printf("port %u\n", ntohs(ss.ss_family == AF_INET6 ?
				  ((struct sockaddr_in6 *)&ss)->sin6_port :
				  ((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	fprintf(stderr, "ndevil: serving %s (%llu bytes), mode %s%s at offset %llu\n",
		file, (unsigned long long)g_size, mode_names[g_mode],
		g_nmodes > 1 ? ",..." : "", (unsigned long long)g_at);
	for (;;) {
		int fd = accept(lfd, NULL, NULL), one = 1;
		struct conn *c;
		pthread_t t;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept failed");
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c)
			die("out of memory");
		c->fd = fd;
		c->id = ++g_nconn;
		if (pthread_create(&t, NULL, conn_main, c))
			die("cannot start a thread");
		pthread_detach(t);
	}
}
