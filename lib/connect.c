// SPDX-License-Identifier: MIT
/*
 * One client connection and handshake: connect, retry a connection the
 * server closes during the handshake (PROTOCOL.md §1: a flood of pending
 * handshakes, its connection limit), and one line for every failure.
 */
#include "connect.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

long long nd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nd_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * OpenSSL loads providers and seeds its DRBG on first use, which is slow
 * under valgrind or heavy load. Doing it before connecting keeps that time
 * out of the server's handshake deadline.
 */
static void warm_up_crypto(void)
{
	uint8_t buf[ND_OKM_LEN] = { 0 }, th[ND_HASH_LEN] = { 0 };
	struct nd_crypto cr = { 0 };

	if (!nd_random(th, sizeof(th)) &&
	    !nd_derive(th, th, th, th, th, buf) && !nd_crypto_init(&cr, buf, true))
		nd_crypto_free(&cr);
	nd_wipe(buf, sizeof(buf));
}

/* The error for a failed handshake (k->fd already closed). */
static int hs_failed(const struct nd_connect *k, int sock_err, char *err,
		     size_t errlen)
{
	const char *why;

	switch (k->hs) {
	case ND_HS_AUTH:
		return nd_fail(err, errlen, ND_CE_AUTH,
			       "authentication failed: the server does not hold this key (wrong key file?)");
	case ND_HS_REFUSED:
		return nd_fail(err, errlen, ND_CE_REFUSED, "server refused: %s",
			       nd_status_str(k->status));
	case ND_HS_PROTO:
		return nd_fail(err, errlen, ND_CE_PROTO,
			       "protocol error during handshake (not a netdisk server?)");
	case ND_HS_BAD_INFO:
		why = nd_session_info_invalid(&k->info);
		return nd_fail(err, errlen, ND_CE_PROTO,
			       "protocol error: unusable session info from the server (%s)",
			       why ? why : "max payload above the one asked for");
	default:
		if (sock_err == EAGAIN || sock_err == EWOULDBLOCK ||
		    sock_err == ETIMEDOUT)
			return nd_fail(err, errlen, ND_CE_TIMEOUT,
				       "timed out during handshake (not complete within %d ms)",
				       k->p.timeout_ms);
		return nd_fail(err, errlen, ND_CE_IO,
			       "connection closed by the server during the handshake");
	}
}

int nd_connect_handshake(struct nd_connect *k, char *err, size_t errlen)
{
	int sock_err;

	k->fd = -1;
	warm_up_crypto();
	for (k->p.epoch = 1;; k->p.epoch++) {
		k->fd = nd_url_connect(k->url, k->p.timeout_ms, err, errlen);
		if (k->fd < 0)
			return ND_CE_CONNECT;
		/* Bounds the handshake and any stall in the middle of a record. */
		set_timeouts(k->fd, k->p.timeout_ms);
		if (k->list)
			k->hs = nd_handshake_list(k->fd, &k->p, &k->cr, &k->info,
						  &k->status, k->list,
						  &k->list_len);
		else
			k->hs = nd_handshake_client(k->fd, &k->p, &k->cr,
						    &k->info, &k->status);
		sock_err = errno;
		if (k->hs != ND_HS_IO || k->p.epoch >= k->attempts ||
		    (sock_err != 0 && sock_err != ECONNRESET &&
		     sock_err != EPIPE))
			break;
		close(k->fd);
		k->fd = -1;
		usleep(100000u * k->p.epoch);
	}
	if (k->hs == ND_HS_OK || k->hs == ND_HS_LIST)
		return 0;
	close(k->fd);
	k->fd = -1;
	return hs_failed(k, sock_err, err, errlen);
}
