// SPDX-License-Identifier: MIT
/*
 * ndproxy: a TCP proxy that tampers with netdisk records, for tests.
 *
 *   ndproxy --listen [ADDR:]PORT --target HOST:PORT
 *           --mode pass|flip|replay|reorder|cut|drop [--after N]
 *           [--dir c2s|s2c|both]
 *   ndproxy --listen [ADDR:]PORT --target HOST:PORT --mode random
 *           [--seed N] [--every K] [--after N] [--faults LIST]
 *           [--stall-ms MS] [--dir c2s|s2c|both]
 *
 * Forwards the two plaintext hellos untouched, then parses records (u32
 * length + body) in each direction. In the chosen direction(s) the first N
 * records (default 2) pass; record N is then altered: flip flips one bit of
 * its ciphertext, replay sends record N-1 again before it, reorder swaps it
 * with record N+1, cut sends half of it and closes both sides, drop discards
 * it and every later record of that direction (a peer that handshakes and
 * then never answers: a hung backend). Every action
 * is logged on stderr ("ndproxy: ... flipped ..."), so a test can check the
 * fault was really injected. With PORT 0 the chosen port is printed on
 * stdout as "port N". One connection at a time (drop: each in its own
 * child, as below, so a client can reconnect); SIGTERM/SIGINT exit 0.
 *
 * --mode random is for fault injection under a real workload: connections
 * are accepted in a loop and each is served by its own forked child, so a
 * client may reconnect or use several connections. After record N (--after)
 * and then every K records on average (gaps uniform in 1..2K-1, --every,
 * default 32), per tampered direction, one fault drawn from LIST (comma
 * separated; default all) is injected:
 *   cut      send a random prefix (0..len-1 bytes) of the record, close both
 *   delay    hold the stream from this record on for 50..500 ms
 *   stall    hold it for 1 s..MS (--stall-ms, default 4000), then resume or
 *            close both sides (one chance in two)
 *   corrupt  xor one random byte of the record (header included)
 *   dup      send the record twice
 *   reorder  swap it with the next record (released alone after 200 ms)
 * Choices come from a PRNG seeded with --seed and the connection number, and
 * each fault is logged as "ndproxy: conn C DIR: record R: ...".
 *
 * --mode forge plays an attacker on the path who lacks the key: connection
 * 1 is forwarded and cut in the middle of record N as in cut mode; the next
 * K connections (--forge, default 2) get, after their ClientHello, a forged
 * ServerHello with status S (--status, default 11 "unknown session") and
 * are closed; later connections are forwarded untouched. Logged as
 * "ndproxy: conn C: forged server hello status S".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netdisk_proto.h"

enum mode { MODE_PASS, MODE_FLIP, MODE_REPLAY, MODE_REORDER, MODE_CUT,
	    MODE_DROP, MODE_RANDOM, MODE_FORGE, MODE_COUNT };
static const char *const mode_names[] = { "pass", "flip", "replay", "reorder",
					  "cut", "drop", "random", "forge" };

enum fault { F_CUT, F_DELAY, F_STALL, F_CORRUPT, F_DUP, F_REORDER, F_COUNT };
static const char *const fault_names[] = { "cut", "delay", "stall", "corrupt",
					   "dup", "reorder" };

#define REORDER_WAIT_MS	200	/* a held record goes alone after this */
#define MAX_CHILDREN	256

/* Larger than any legal record; beyond it we stop parsing and just copy. */
#define REC_MAX		(ND_RECORD_MAX + 64)
#define OUT_HIGH	(8u << 20)	/* stop reading while this much is queued */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct dir {
	const char *name;
	int from, to;
	bool c2s, tamper, raw, hello_done, eof, shut, done;
	uint64_t nrec;
	struct buf in, out, prev, held;
	/* random mode */
	uint64_t next_fault, held_at, held_since;
	uint64_t hold_until;	/* ms; only out.p[0..gate) may be sent before */
	size_t gate;
	bool hold_cut;		/* close both sides when the hold ends */
};

static volatile sig_atomic_t g_stop;
static enum mode g_mode = MODE_PASS;
static uint64_t g_after = 2;
static uint64_t g_seed = 1, g_every = 32, g_stall_ms = 4000;
static unsigned int g_faults = (1u << F_COUNT) - 1;
static unsigned long g_forge = 2;	/* forge mode: connections to answer */
static uint16_t g_status = ND_ERR_NO_SESSION;
static unsigned long g_conn;	/* connection number, for logs and seeding */
static uint64_t g_rng;

/* splitmix64: small, good enough to pick faults, reproducible per seed. */
static uint64_t rnd64(void)
{
	uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t n)	/* 0..n-1 */
{
	return n ? rnd64() % n : 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void on_child(int sig)
{
	(void)sig;	/* only interrupts accept() so children are reaped */
}

static void die(const char *msg)
{
	fprintf(stderr, "ndproxy: %s\n", msg);
	exit(2);
}

static void buf_reserve(struct buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 65536;

	if (need <= b->cap)
		return;
	while (cap < need)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p)
		die("out of memory");
	b->cap = cap;
}

static void buf_append(struct buf *b, const uint8_t *p, size_t len)
{
	buf_reserve(b, b->len + len);
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void buf_consume(struct buf *b, size_t len)
{
	memmove(b->p, b->p + len, b->len - len);
	b->len -= len;
}

static void buf_set(struct buf *b, const uint8_t *p, size_t len)
{
	b->len = 0;
	buf_append(b, p, len);
}

static void emit(struct dir *d, const uint8_t *p, size_t len)
{
	buf_append(&d->out, p, len);
}

/* One complete record in d's tampered direction; returns false to cut. */
static bool on_record(struct dir *d, const uint8_t *rec, size_t len)
{
	uint64_t n = d->nrec++;

	if (d->held.len && !d->done) {
		/* Reorder: the record after the held one goes first. */
		emit(d, rec, len);
		emit(d, d->held.p, d->held.len);
		fprintf(stderr, "ndproxy: %s: reordered records %llu and %llu\n",
			d->name, (unsigned long long)n - 1, (unsigned long long)n);
		d->done = true;
		return true;
	}
	if (!d->tamper || d->done || n < g_after) {
		emit(d, rec, len);
		buf_set(&d->prev, rec, len);
		return true;
	}

	switch (g_mode) {
	case MODE_FLIP: {
		uint8_t *copy = malloc(len);
		size_t at;

		if (!copy)
			die("out of memory");
		memcpy(copy, rec, len);
		/* Middle of the ciphertext (or of the tag if there is none). */
		at = ND_RECORD_HDR_LEN + (len - ND_RECORD_HDR_LEN) / 2;
		copy[at] ^= 0x10;
		emit(d, copy, len);
		free(copy);
		fprintf(stderr, "ndproxy: %s: flipped a bit in record %llu (byte %zu of %zu)\n",
			d->name, (unsigned long long)n, at, len);
		d->done = true;
		return true;
	}
	case MODE_REPLAY:
		emit(d, d->prev.p, d->prev.len);
		emit(d, rec, len);
		fprintf(stderr, "ndproxy: %s: replayed record %llu before record %llu\n",
			d->name, (unsigned long long)n - 1, (unsigned long long)n);
		d->done = true;
		return true;
	case MODE_REORDER:
		buf_set(&d->held, rec, len);
		fprintf(stderr, "ndproxy: %s: holding record %llu\n", d->name,
			(unsigned long long)n);
		return true;
	case MODE_CUT:
	case MODE_FORGE:
		emit(d, rec, ND_RECORD_HDR_LEN + (len - ND_RECORD_HDR_LEN) / 2);
		fprintf(stderr, "ndproxy: %s: cut the connection in the middle of record %llu\n",
			d->name, (unsigned long long)n);
		d->done = true;
		return false;
	case MODE_DROP:
		if (n == g_after)
			fprintf(stderr, "ndproxy: %s: dropping record %llu and all later ones\n",
				d->name, (unsigned long long)n);
		return true;
	default:
		emit(d, rec, len);
		return true;
	}
}

static void hold(struct dir *d, uint64_t ms, bool cut)
{
	uint64_t until = now_ms() + ms;

	if (!d->hold_until)
		d->gate = d->out.len;
	if (until > d->hold_until)
		d->hold_until = until;
	d->hold_cut = d->hold_cut || cut;
}

static enum fault pick_fault(void)
{
	unsigned int n = (unsigned int)__builtin_popcount(g_faults), k, i;

	k = (unsigned int)rnd(n);
	for (i = 0; i < F_COUNT; i++)
		if ((g_faults & (1u << i)) && k-- == 0)
			break;
	return (enum fault)i;
}

/* --mode random: one complete record; returns false to cut. */
static bool on_record_random(struct dir *d, const uint8_t *rec, size_t len)
{
	uint64_t n = d->nrec++, ms;
	uint8_t *copy;
	size_t at;

	if (d->held.len) {
		emit(d, rec, len);
		emit(d, d->held.p, d->held.len);
		fprintf(stderr, "ndproxy: %s: record %llu: reordered, sent before record %llu\n",
			d->name, (unsigned long long)n,
			(unsigned long long)d->held_at);
		d->held.len = 0;
		return true;
	}
	if (!d->tamper || n < d->next_fault) {
		emit(d, rec, len);
		return true;
	}
	d->next_fault = n + 1 + rnd(2 * g_every - 1);
	switch (pick_fault()) {
	case F_CUT:
		at = (size_t)rnd(len);
		emit(d, rec, at);
		fprintf(stderr, "ndproxy: %s: record %llu: cut after byte %zu of %zu\n",
			d->name, (unsigned long long)n, at, len);
		return false;
	case F_DELAY:
		ms = 50 + rnd(451);
		hold(d, ms, false);
		emit(d, rec, len);
		fprintf(stderr, "ndproxy: %s: record %llu: delayed %llu ms\n",
			d->name, (unsigned long long)n, (unsigned long long)ms);
		return true;
	case F_STALL: {
		bool cut = rnd(2);

		ms = 1000 + rnd(g_stall_ms > 1000 ? g_stall_ms - 999 : 1);
		hold(d, ms, cut);
		emit(d, rec, len);
		fprintf(stderr, "ndproxy: %s: record %llu: stalled %llu ms, then %s\n",
			d->name, (unsigned long long)n, (unsigned long long)ms,
			cut ? "cut" : "resume");
		return true;
	}
	case F_CORRUPT: {
		uint8_t x = (uint8_t)(1 + rnd(255));

		copy = malloc(len);
		if (!copy)
			die("out of memory");
		memcpy(copy, rec, len);
		at = (size_t)rnd(len);
		copy[at] ^= x;
		emit(d, copy, len);
		free(copy);
		fprintf(stderr, "ndproxy: %s: record %llu: corrupted byte %zu of %zu (xor 0x%02x)\n",
			d->name, (unsigned long long)n, at, len, x);
		return true;
	}
	case F_DUP:
		emit(d, rec, len);
		emit(d, rec, len);
		fprintf(stderr, "ndproxy: %s: record %llu: duplicated\n",
			d->name, (unsigned long long)n);
		return true;
	case F_REORDER:
	default:
		buf_set(&d->held, rec, len);
		d->held_at = n;
		d->held_since = now_ms();
		fprintf(stderr, "ndproxy: %s: record %llu: held back to reorder\n",
			d->name, (unsigned long long)n);
		return true;
	}
}

/* Moves complete units from d->in to d->out; returns false to cut. */
static bool parse(struct dir *d)
{
	for (;;) {
		size_t need;

		if (d->raw) {
			emit(d, d->in.p, d->in.len);
			d->in.len = 0;
			return true;
		}
		if (!d->hello_done) {
			if (d->c2s) {
				/* Fixed part, names, share and ext_len, extensions. */
				need = ND_CLIENT_HELLO_FIXED;
				if (d->in.len >= need)
					need += (size_t)d->in.p[48] +
						d->in.p[49] +
						ND_CLIENT_HELLO_TAIL;
				if (d->in.len >= need &&
				    need > ND_CLIENT_HELLO_FIXED)
					need += nd_get16(d->in.p + need - 2);
			} else {
				need = ND_SERVER_HELLO_LEN;
			}
			if (d->in.len < need)
				return true;
			emit(d, d->in.p, need);
			buf_consume(&d->in, need);
			d->hello_done = true;
			continue;
		}
		if (d->in.len < ND_RECORD_HDR_LEN)
			return true;
		need = ND_RECORD_HDR_LEN + (size_t)nd_get32(d->in.p);
		if (need > REC_MAX) {
			fprintf(stderr, "ndproxy: %s: record length %zu too large, copying the rest raw\n",
				d->name, need);
			d->raw = true;
			continue;
		}
		if (d->in.len < need)
			return true;
		if (!(g_mode == MODE_RANDOM ? on_record_random(d, d->in.p, need) :
		      on_record(d, d->in.p, need)))
			return false;
		buf_consume(&d->in, need);
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Writes what the peer takes now; false on error. */
static size_t sendable(const struct dir *d)
{
	return d->hold_until ? d->gate : d->out.len;
}

static bool flush_out(struct dir *d)
{
	while (sendable(d)) {
		ssize_t n = send(d->to, d->out.p, sendable(d), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR && g_stop)
			return false;	/* a blocking flush (cut) must not outlive SIGTERM */
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
			return false;
		buf_consume(&d->out, (size_t)n);
		if (d->hold_until)
			d->gate -= (size_t)n;
	}
	return true;
}

/*
 * Ends expired holds and releases a reordered record nothing followed.
 * Returns false when a stall ends in a cut; *wait gets the poll timeout.
 */
static bool timers(struct dir *d, int *wait)
{
	uint64_t now = now_ms(), left;

	if (g_mode == MODE_RANDOM && d->held.len) {
		if (now >= d->held_since + REORDER_WAIT_MS) {
			emit(d, d->held.p, d->held.len);
			fprintf(stderr, "ndproxy: %s: record %llu: nothing followed, sent alone\n",
				d->name, (unsigned long long)d->held_at);
			d->held.len = 0;
		} else {
			left = d->held_since + REORDER_WAIT_MS - now;
			if (*wait < 0 || left < (uint64_t)*wait)
				*wait = (int)left;
		}
	}
	if (!d->hold_until)
		return true;
	if (now >= d->hold_until) {
		d->hold_until = 0;
		if (d->hold_cut) {
			fprintf(stderr, "ndproxy: %s: stall over, cutting the connection\n",
				d->name);
			return false;
		}
		return true;
	}
	left = d->hold_until - now;
	if (*wait < 0 || left < (uint64_t)*wait)
		*wait = (int)left;
	return true;
}

/* Reads what is available; false on error. Sets d->eof at EOF. */
static bool fill_in(struct dir *d)
{
	for (;;) {
		ssize_t n;

		buf_reserve(&d->in, d->in.len + 65536);
		n = recv(d->from, d->in.p + d->in.len, d->in.cap - d->in.len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0)
			return false;
		if (n == 0) {
			d->eof = true;
			return true;
		}
		d->in.len += (size_t)n;
		if (d->in.len > REC_MAX * 2)
			return true;	/* let parse() catch up */
	}
}

static void dir_free(struct dir *d)
{
	free(d->in.p);
	free(d->out.p);
	free(d->prev.p);
	free(d->held.p);
}

static void serve(int cfd, int sfd, bool tamper_c2s, bool tamper_s2c)
{
	struct dir d[2] = {
		{ .name = "c2s", .from = cfd, .to = sfd, .c2s = true,
		  .tamper = tamper_c2s },
		{ .name = "s2c", .from = sfd, .to = cfd, .c2s = false,
		  .tamper = tamper_s2c },
	};
	bool cut = false;
	char names[2][48];
	int i;

	if (g_mode == MODE_RANDOM) {
		for (i = 0; i < 2; i++) {
			snprintf(names[i], sizeof(names[i]), "conn %lu %s", g_conn,
				 d[i].name);
			d[i].name = names[i];
			d[i].next_fault = g_after + rnd(g_every);
		}
	}
	if (set_nonblock(cfd) || set_nonblock(sfd)) {
		fprintf(stderr, "ndproxy: fcntl: %s\n", strerror(errno));
		goto out;
	}
	while (!g_stop) {
		struct pollfd pfd[2];
		short ev[2] = { 0, 0 };	/* indexed by fd slot: 0 client, 1 server */
		int wait = -1;

		for (i = 0; i < 2; i++) {
			int src = i, dst = 1 - i;	/* d[0] reads client, writes server */

			if (!timers(&d[i], &wait))
				goto out;
			if (!d[i].eof && d[i].out.len < OUT_HIGH)
				ev[src] |= POLLIN;
			if (sendable(&d[i]))
				ev[dst] |= POLLOUT;
		}
		pfd[0].fd = cfd;
		pfd[0].events = ev[0];
		pfd[1].fd = sfd;
		pfd[1].events = ev[1];
		if (poll(pfd, 2, wait) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < 2; i++) {
			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    (ev[i] & POLLIN)) {
				if (!fill_in(&d[i]))
					goto out;
				if (!parse(&d[i]))
					cut = true;
			}
		}
		if (cut) {
			/* Push the half record out, then drop both sides. */
			for (i = 0; i < 2; i++) {
				int fl = fcntl(d[i].to, F_GETFL);

				fcntl(d[i].to, F_SETFL, fl & ~O_NONBLOCK);
				flush_out(&d[i]);
			}
			goto out;
		}
		for (i = 0; i < 2; i++) {
			if (!flush_out(&d[i]))
				goto out;
			if (d[i].eof && !d[i].shut && !d[i].out.len &&
			    !(g_mode == MODE_RANDOM && d[i].held.len)) {
				/* Pass half-closes on; a partial unit goes raw. */
				if (d[i].in.len) {
					emit(&d[i], d[i].in.p, d[i].in.len);
					d[i].in.len = 0;
					continue;
				}
				shutdown(d[i].to, SHUT_WR);
				d[i].shut = true;
			}
		}
		if (d[0].shut && d[1].shut)
			break;
	}
out:
	close(cfd);
	close(sfd);
	dir_free(&d[0]);
	dir_free(&d[1]);
	if (g_mode == MODE_RANDOM)
		fprintf(stderr, "ndproxy: conn %lu: connection closed\n", g_conn);
	else
		fprintf(stderr, "ndproxy: connection closed\n");
}

/*
 * Forge mode: answers a ClientHello with a ServerHello carrying g_status,
 * as anyone on the path can (no key proof is possible, none is sent).
 */
static void forge_hello(int cfd)
{
	struct nd_server_hello h = { .version = ND_VERSION,
				     .status = g_status };
	uint8_t ch[ND_CLIENT_HELLO_MAX], sh[ND_SERVER_HELLO_LEN];
	struct timeval tv = { .tv_sec = 10 };
	size_t need = ND_CLIENT_HELLO_FIXED, got = 0;
	unsigned int i, tail_read = 0;

	setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < need) {
		ssize_t n = recv(cfd, ch + got, need - got, 0);

		if (n <= 0) {
			fprintf(stderr, "ndproxy: conn %lu: no client hello\n",
				g_conn);
			return;
		}
		got += (size_t)n;
		/* The whole hello, so closing afterwards sends no reset. */
		if (got == ND_CLIENT_HELLO_FIXED)
			need += (size_t)(ch[48] > ND_NAME_MAX ? 0 : ch[48]) +
				(ch[49] > ND_NAME_MAX ? 0 : ch[49]) +
				ND_CLIENT_HELLO_TAIL;
		else if (got == need && !tail_read++ &&
			 nd_get16(ch + need - 2) <= ND_EXT_MAX)
			need += nd_get16(ch + need - 2);
	}
	for (i = 0; i < ND_RANDOM_LEN; i++)
		h.random[i] = (uint8_t)rnd(256);
	nd_server_hello_encode(sh, &h);
	if (send(cfd, sh, sizeof(sh), MSG_NOSIGNAL) == (ssize_t)sizeof(sh))
		fprintf(stderr, "ndproxy: conn %lu: forged server hello status %u\n",
			g_conn, g_status);
}

static int split_hostport(const char *s, char *host, size_t hlen, char *port,
			  size_t plen, const char *defhost)
{
	const char *colon = strrchr(s, ':');

	if (!colon) {
		snprintf(host, hlen, "%s", defhost);
		snprintf(port, plen, "%s", s);
		return 0;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || end + 1 != colon)
			return -1;
		snprintf(host, hlen, "%.*s", (int)(end - s - 1), s + 1);
	} else {
		snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	}
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int connect_target(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, one = 1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ndproxy --listen [ADDR:]PORT --target HOST:PORT\n"
		"               [--mode pass|flip|replay|reorder|cut|drop] [--after N]\n"
		"               [--dir c2s|s2c|both]\n"
		"       ndproxy --listen [ADDR:]PORT --target HOST:PORT --mode random\n"
		"               [--seed N] [--every K] [--after N] [--stall-ms MS]\n"
		"               [--faults cut,delay,stall,corrupt,dup,reorder]\n"
		"               [--dir c2s|s2c|both]\n"
		"       ndproxy --listen [ADDR:]PORT --target HOST:PORT --mode forge\n"
		"               [--after N] [--dir c2s|s2c|both] [--forge K] [--status S]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "after", required_argument, NULL, 'a' },
		{ "dir", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "every", required_argument, NULL, 'e' },
		{ "faults", required_argument, NULL, 'f' },
		{ "stall-ms", required_argument, NULL, 'S' },
		{ "forge", required_argument, NULL, 'F' },
		{ "status", required_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char lhost[256], lport[16], thost[256], tport[16];
	const char *listen_s = NULL, *target_s = NULL;
	bool c2s = true, s2c = false;
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE,
	}, *res;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sigaction sa = { .sa_handler = on_signal };
	int opt, lfd, one = 1, nchild = 0;
	pid_t children[MAX_CHILDREN];
	unsigned int i;
	char *end;

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_s = optarg;
			break;
		case 't':
			target_s = optarg;
			break;
		case 'm':
			for (i = 0; i < MODE_COUNT; i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == MODE_COUNT)
				die("bad --mode (pass, flip, replay, reorder, cut, drop, random, forge)");
			g_mode = (enum mode)i;
			break;
		case 'a':
			g_after = strtoull(optarg, &end, 10);
			if (*end || !*optarg)
				die("bad --after");
			break;
		case 'd':
			if (!strcmp(optarg, "c2s"))
				c2s = true, s2c = false;
			else if (!strcmp(optarg, "s2c"))
				c2s = false, s2c = true;
			else if (!strcmp(optarg, "both"))
				c2s = s2c = true;
			else
				die("bad --dir (c2s, s2c, both)");
			break;
		case 's':
			g_seed = strtoull(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-')
				die("bad --seed");
			break;
		case 'e':
			g_every = strtoull(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-' || !g_every ||
			    g_every > (1ull << 40))
				die("bad --every (1 or more records)");
			break;
		case 'S':
			g_stall_ms = strtoull(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-' ||
			    g_stall_ms < 1000 || g_stall_ms > 600000)
				die("bad --stall-ms (1000..600000)");
			break;
		case 'F':
			g_forge = strtoul(optarg, &end, 10);
			if (*end || !*optarg || *optarg == '-')
				die("bad --forge");
			break;
		case 'X': {
			unsigned long st = strtoul(optarg, &end, 10);

			if (*end || !*optarg || *optarg == '-' || st > 0xffff)
				die("bad --status (0..65535)");
			g_status = (uint16_t)st;
			break;
		}
		case 'f': {
			char *list = strdup(optarg), *tok, *save = NULL;

			if (!list)
				die("out of memory");
			g_faults = 0;
			for (tok = strtok_r(list, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				for (i = 0; i < F_COUNT; i++)
					if (!strcmp(tok, fault_names[i]))
						break;
				if (i == F_COUNT)
					die("bad --faults (cut, delay, stall, corrupt, dup, reorder)");
				g_faults |= 1u << i;
			}
			free(list);
			if (!g_faults)
				die("bad --faults (empty)");
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!listen_s || !target_s || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (g_mode == MODE_REPLAY && g_after == 0)
		die("--mode replay needs --after >= 1 (a previous record)");
	if (split_hostport(listen_s, lhost, sizeof(lhost), lport, sizeof(lport),
			   "127.0.0.1") ||
	    split_hostport(target_s, thost, sizeof(thost), tport, sizeof(tport),
			   "127.0.0.1"))
		die("bad address (use [ADDR:]PORT, [IPv6]:PORT)");

	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: poll/accept return EINTR */
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (g_mode == MODE_RANDOM || g_mode == MODE_DROP) {
		struct sigaction sc = { .sa_handler = on_child };

		sigaction(SIGCHLD, &sc, NULL);
	}

	if (getaddrinfo(lhost, lport, &hints, &res))
		die("cannot resolve the listen address");
	lfd = socket(res->ai_family, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket failed");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, res->ai_addr, res->ai_addrlen) || listen(lfd, 8)) {
		fprintf(stderr, "ndproxy: cannot listen on %s: %s\n", listen_s,
			strerror(errno));
		return 1;
	}
	freeaddrinfo(res);
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl))
		die("getsockname failed");
	printf("port %u\n", ntohs(ss.ss_family == AF_INET6 ?
				  ((struct sockaddr_in6 *)&ss)->sin6_port :
				  ((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	fprintf(stderr, "ndproxy: listening on %s, target %s, mode %s after %llu records (%s)\n",
		listen_s, target_s, mode_names[g_mode],
		(unsigned long long)g_after,
		c2s && s2c ? "both" : c2s ? "c2s" : "s2c");
	if (g_mode == MODE_RANDOM) {
		fprintf(stderr, "ndproxy: seed %llu, a fault every ~%llu records from:",
			(unsigned long long)g_seed, (unsigned long long)g_every);
		for (i = 0; i < F_COUNT; i++)
			if (g_faults & (1u << i))
				fprintf(stderr, " %s", fault_names[i]);
		fprintf(stderr, "\n");
	}

	while (!g_stop) {
		int cfd, sfd, k;
		pid_t pid;

		/* Reap finished children (random mode). */
		for (k = 0; k < nchild; k++) {
			if (waitpid(children[k], NULL, WNOHANG) == children[k])
				children[k--] = children[--nchild];
		}
		cfd = accept(lfd, NULL, NULL);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "ndproxy: accept: %s\n", strerror(errno));
			break;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (g_mode == MODE_FORGE && ++g_conn > 1 &&
		    g_conn <= 1 + g_forge) {
			forge_hello(cfd);
			close(cfd);
			continue;
		}
		sfd = connect_target(thost, tport);
		if (sfd < 0) {
			fprintf(stderr, "ndproxy: cannot connect to %s\n", target_s);
			close(cfd);
			continue;
		}
		if (g_mode != MODE_RANDOM && g_mode != MODE_DROP) {
			/* Forge mode tampers with its first connection only. */
			bool tamper = g_mode != MODE_PASS &&
				      (g_mode != MODE_FORGE || g_conn == 1);

			fprintf(stderr, "ndproxy: new connection\n");
			serve(cfd, sfd, tamper && c2s, tamper && s2c);
			continue;
		}
		g_conn++;
		if (nchild == MAX_CHILDREN) {
			fprintf(stderr, "ndproxy: conn %lu: too many connections, closed\n",
				g_conn);
			close(cfd);
			close(sfd);
			continue;
		}
		fprintf(stderr, "ndproxy: conn %lu: new connection\n", g_conn);
		pid = fork();
		if (pid == 0) {
			close(lfd);
			g_rng = g_seed * 0x100000001b3ull + g_conn;
			serve(cfd, sfd, c2s, s2c);
			_exit(0);
		}
		if (pid < 0)
			fprintf(stderr, "ndproxy: fork: %s\n", strerror(errno));
		else
			children[nchild++] = pid;
		close(cfd);
		close(sfd);
	}
	for (i = 0; i < (unsigned int)nchild; i++)
		kill(children[i], SIGTERM);
	for (i = 0; i < (unsigned int)nchild; i++)
		waitpid(children[i], NULL, 0);
	close(lfd);
	fprintf(stderr, "ndproxy: exiting\n");
	return 0;
}
