// SPDX-License-Identifier: MIT
/*
 * ndproxy: a TCP proxy that tampers with netdisk records, for tests.
 *
 *   ndproxy --listen [ADDR:]PORT --target HOST:PORT
 *           --mode pass|flip|replay|reorder|cut [--after N]
 *           [--dir c2s|s2c|both]
 *
 * Forwards the two plaintext hellos untouched, then parses records (u32
 * length + body) in each direction. In the chosen direction(s) the first N
 * records (default 2) pass; record N is then altered: flip flips one bit of
 * its ciphertext, replay sends record N-1 again before it, reorder swaps it
 * with record N+1, cut sends half of it and closes both sides. Every action
 * is logged on stderr ("ndproxy: ... flipped ..."), so a test can check the
 * fault was really injected. With PORT 0 the chosen port is printed on
 * stdout as "port N". One connection at a time; SIGTERM/SIGINT exit 0.
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
#include <unistd.h>

#include "netdisk_proto.h"

enum mode { MODE_PASS, MODE_FLIP, MODE_REPLAY, MODE_REORDER, MODE_CUT };
static const char *const mode_names[] = { "pass", "flip", "replay", "reorder", "cut" };

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
};

static volatile sig_atomic_t g_stop;
static enum mode g_mode = MODE_PASS;
static uint64_t g_after = 2;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
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
		emit(d, rec, ND_RECORD_HDR_LEN + (len - ND_RECORD_HDR_LEN) / 2);
		fprintf(stderr, "ndproxy: %s: cut the connection in the middle of record %llu\n",
			d->name, (unsigned long long)n);
		d->done = true;
		return false;
	default:
		emit(d, rec, len);
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
				need = ND_CLIENT_HELLO_FIXED;
				if (d->in.len >= ND_CLIENT_HELLO_FIXED)
					need += (size_t)d->in.p[48] + d->in.p[49];
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
		if (!on_record(d, d->in.p, need))
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
static bool flush_out(struct dir *d)
{
	while (d->out.len) {
		ssize_t n = send(d->to, d->out.p, d->out.len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
			return false;
		buf_consume(&d->out, (size_t)n);
	}
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
	int i;

	if (set_nonblock(cfd) || set_nonblock(sfd)) {
		fprintf(stderr, "ndproxy: fcntl: %s\n", strerror(errno));
		goto out;
	}
	while (!g_stop) {
		struct pollfd pfd[2];
		short ev[2] = { 0, 0 };	/* indexed by fd slot: 0 client, 1 server */

		for (i = 0; i < 2; i++) {
			int src = i, dst = 1 - i;	/* d[0] reads client, writes server */

			if (!d[i].eof && d[i].out.len < OUT_HIGH)
				ev[src] |= POLLIN;
			if (d[i].out.len)
				ev[dst] |= POLLOUT;
		}
		pfd[0].fd = cfd;
		pfd[0].events = ev[0];
		pfd[1].fd = sfd;
		pfd[1].events = ev[1];
		if (poll(pfd, 2, -1) < 0) {
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
			if (d[i].eof && !d[i].shut && !d[i].out.len) {
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
	fprintf(stderr, "ndproxy: connection closed\n");
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
		"               [--mode pass|flip|replay|reorder|cut] [--after N]\n"
		"               [--dir c2s|s2c|both]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "after", required_argument, NULL, 'a' },
		{ "dir", required_argument, NULL, 'd' },
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
	int opt, lfd, one = 1;
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
			for (i = 0; i < 5; i++)
				if (!strcmp(optarg, mode_names[i]))
					break;
			if (i == 5)
				die("bad --mode (pass, flip, replay, reorder, cut)");
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

	while (!g_stop) {
		int cfd = accept(lfd, NULL, NULL), sfd;

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "ndproxy: accept: %s\n", strerror(errno));
			break;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sfd = connect_target(thost, tport);
		if (sfd < 0) {
			fprintf(stderr, "ndproxy: cannot connect to %s\n", target_s);
			close(cfd);
			continue;
		}
		fprintf(stderr, "ndproxy: new connection\n");
		serve(cfd, sfd, g_mode != MODE_PASS && c2s,
		      g_mode != MODE_PASS && s2c);
	}
	close(lfd);
	fprintf(stderr, "ndproxy: exiting\n");
	return 0;
}
