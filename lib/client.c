// SPDX-License-Identifier: MIT
/*
 * libnetdisk asynchronous client. Senders seal and write records under a
 * tx lock; one receiver thread reads replies and completes requests.
 *
 * Each request occupies a slot; its handle is (generation << 32 | index),
 * so a stale or duplicated reply is recognised and treated as a protocol
 * error. A reply may overtake its sender's return from writev(): the slot
 * then goes SENDING -> REPLIED and the sender completes it.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* DONE: claimed for completion; a late duplicate reply is then an error. */
enum slot_state {
	SLOT_FREE, SLOT_SENDING, SLOT_INFLIGHT, SLOT_REPLIED, SLOT_DONE
};

struct slot {
	uint32_t gen;
	enum slot_state state;
	uint8_t op;
	uint32_t len;
	void *buf;
	nd_client_cb cb;
	void *arg;
	int result;		/* for SLOT_REPLIED */
	uint8_t hdr[ND_REQ_HDR_LEN];
};

struct nd_client {
	int fd;
	int timeout_ms;
	struct nd_crypto cr;
	struct nd_session_info info;

	pthread_mutex_t tx_lock;	/* serialises sealing + sending */
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cv;		/* slot freed, idle, or dead */
	struct slot *slots;
	unsigned int nslots;
	unsigned int *free_stack;
	unsigned int nfree;
	unsigned int outstanding;
	long long last_activity;	/* ms; for the reply timeout */
	int err;			/* first fatal error, 0 while healthy */
	bool closing;

	pthread_t rx_thread;
	uint8_t *rxbuf;
	size_t rxcap;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

const char *nd_client_strerror(int result)
{
	switch (result) {
	case ND_CE_CONNECT:
		return "cannot connect";
	case ND_CE_AUTH:
		return "authentication failed";
	case ND_CE_REFUSED:
		return "refused by server";
	case ND_CE_PROTO:
		return "protocol error";
	case ND_CE_IO:
		return "connection lost (closed by the server or the network)";
	case ND_CE_RECORD_AUTH:
		return "record authentication failed (data altered in transit?)";
	case ND_CE_TIMEOUT:
		return "timed out waiting for the server";
	case ND_CE_NOMEM:
		return "out of memory";
	case ND_CE_CLOSED:
		return "client closed";
	default:
		return result >= 0 ? nd_status_str((unsigned int)result) :
				     "unknown error";
	}
}

/* Runs the callback, then returns the slot to the free stack. */
static void complete(struct nd_client *c, struct slot *s, int status)
{
	s->cb(s->arg, status);
	pthread_mutex_lock(&c->lock);
	s->state = SLOT_FREE;
	c->free_stack[c->nfree++] = (unsigned int)(s - c->slots);
	c->outstanding--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Marks the connection dead with err and fails every in-flight request.
 * Slots still being sent are completed by their senders.
 */
static void die(struct nd_client *c, int err)
{
	unsigned int i;

	pthread_mutex_lock(&c->lock);
	if (!c->err)
		c->err = err;
	err = c->err;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->lock);
	/* Wakes a sender blocked in writev on a stalled connection. */
	shutdown(c->fd, SHUT_RDWR);

	for (i = 0; i < c->nslots; i++) {
		struct slot *s = &c->slots[i];
		bool mine;

		pthread_mutex_lock(&c->lock);
		mine = s->state == SLOT_INFLIGHT;
		if (mine)
			s->state = SLOT_DONE;
		pthread_mutex_unlock(&c->lock);
		if (mine)
			complete(c, s, err);
	}
}

/* Handles one reply body; returns 0 or an ND_CE_* error. */
static int handle_reply(struct nd_client *c, uint8_t *body, size_t len)
{
	struct nd_reply r;
	struct slot *s;
	uint32_t idx, gen;
	bool done_now;

	if (nd_reply_decode(body, len, &r))
		return ND_CE_PROTO;
	idx = (uint32_t)r.handle;
	gen = (uint32_t)(r.handle >> 32);
	if (idx >= c->nslots)
		return ND_CE_PROTO;
	s = &c->slots[idx];

	pthread_mutex_lock(&c->lock);
	if (s->gen != gen || s->op != r.op ||
	    (s->state != SLOT_SENDING && s->state != SLOT_INFLIGHT) ||
	    (r.op == ND_OP_READ && r.status == ND_OK && r.length != s->len)) {
		pthread_mutex_unlock(&c->lock);
		return ND_CE_PROTO;
	}
	c->last_activity = now_ms();
	if (r.length)
		memcpy(s->buf, body + ND_REPLY_HDR_LEN, r.length);
	done_now = s->state == SLOT_INFLIGHT;
	if (done_now) {
		s->state = SLOT_DONE;
	} else {
		s->state = SLOT_REPLIED;
		s->result = r.status;
	}
	pthread_mutex_unlock(&c->lock);
	if (done_now)
		complete(c, s, r.status);
	return 0;
}

static void *rx_main(void *arg)
{
	struct nd_client *c = arg;
	int slice = c->timeout_ms < 500 ? c->timeout_ms : 500;

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		long n;
		int rc;

		rc = poll(&pfd, 1, slice);
		if (rc < 0 && errno != EINTR) {
			die(c, ND_CE_IO);
			return NULL;
		}
		if (rc <= 0) {
			bool stalled, stop;

			pthread_mutex_lock(&c->lock);
			stop = c->closing || c->err;
			stalled = c->outstanding &&
				  now_ms() - c->last_activity > c->timeout_ms;
			pthread_mutex_unlock(&c->lock);
			if (stop || stalled) {
				die(c, stop ? ND_CE_CLOSED : ND_CE_TIMEOUT);
				return NULL;
			}
			continue;
		}

		n = nd_recv_record(c->fd, &c->cr.rx, c->rxbuf, c->rxcap);
		if (n < 0) {
			int err;
			bool closing;

			pthread_mutex_lock(&c->lock);
			closing = c->closing;
			pthread_mutex_unlock(&c->lock);
			switch (n) {
			case ND_RECV_EOF:
				err = closing ? ND_CE_CLOSED : ND_CE_IO;
				break;
			case ND_RECV_AUTH:
				err = ND_CE_RECORD_AUTH;
				break;
			case ND_RECV_TOO_BIG:
				err = ND_CE_PROTO;
				break;
			default:
				err = closing ? ND_CE_CLOSED :
				      (errno == EAGAIN || errno == EWOULDBLOCK) ?
				      ND_CE_TIMEOUT : ND_CE_IO;
				break;
			}
			die(c, err);
			return NULL;
		}
		rc = handle_reply(c, c->rxbuf, (size_t)n);
		if (rc) {
			die(c, rc);
			return NULL;
		}
	}
}

int nd_client_submit(struct nd_client *c, uint8_t op, uint8_t flags,
		     uint64_t offset, uint32_t len, void *buf,
		     nd_client_cb cb, void *arg)
{
	struct nd_request req = {
		.op = op, .flags = flags, .length = len, .offset = offset,
	};
	struct iovec iov[2];
	struct slot *s;
	unsigned int idx;
	int rc, result = 0;
	bool done_now = false;

	pthread_mutex_lock(&c->lock);
	while (!c->err && !c->closing && c->nfree == 0)
		pthread_cond_wait(&c->cv, &c->lock);
	if (c->err || c->closing) {
		rc = c->err ? c->err : ND_CE_CLOSED;
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	idx = c->free_stack[--c->nfree];
	s = &c->slots[idx];
	s->gen++;
	s->state = SLOT_SENDING;
	s->op = op;
	s->len = len;
	s->buf = buf;
	s->cb = cb;
	s->arg = arg;
	if (c->outstanding++ == 0)
		c->last_activity = now_ms();
	pthread_mutex_unlock(&c->lock);

	req.handle = (uint64_t)s->gen << 32 | idx;
	nd_request_encode(s->hdr, &req);
	iov[0].iov_base = s->hdr;
	iov[0].iov_len = ND_REQ_HDR_LEN;
	iov[1].iov_base = buf;
	iov[1].iov_len = len;

	pthread_mutex_lock(&c->tx_lock);
	rc = nd_send_record(c->fd, &c->cr.tx, iov, op == ND_OP_WRITE ? 2 : 1);
	pthread_mutex_unlock(&c->tx_lock);

	pthread_mutex_lock(&c->lock);
	if (rc && !c->err)
		c->err = ND_CE_IO;
	if (s->state == SLOT_REPLIED) {
		done_now = true;
		result = s->result;
		s->state = SLOT_DONE;
	} else if (c->err) {
		/* The receiver is gone or going and skips SENDING slots. */
		done_now = true;
		result = c->err;
		s->state = SLOT_DONE;
	} else {
		s->state = SLOT_INFLIGHT;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc)
		shutdown(c->fd, SHUT_RDWR);	/* let the receiver notice */
	if (done_now)
		complete(c, s, result);
	return 0;
}

int nd_client_drain(struct nd_client *c)
{
	int err;

	pthread_mutex_lock(&c->lock);
	while (c->outstanding)
		pthread_cond_wait(&c->cv, &c->lock);
	err = c->err;
	pthread_mutex_unlock(&c->lock);
	return err;
}

struct sync_wait {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
	int status;
};

static void sync_cb(void *arg, int status)
{
	struct sync_wait *w = arg;

	pthread_mutex_lock(&w->m);
	w->done = true;
	w->status = status;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->m);
}

static int sync_req(struct nd_client *c, uint8_t op, void *buf, uint64_t off,
		    uint32_t len)
{
	struct sync_wait w = {
		.m = PTHREAD_MUTEX_INITIALIZER,
		.cv = PTHREAD_COND_INITIALIZER,
	};
	int rc;

	rc = nd_client_submit(c, op, 0, off, len, buf, sync_cb, &w);
	if (rc)
		return rc;
	pthread_mutex_lock(&w.m);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_mutex_destroy(&w.m);
	pthread_cond_destroy(&w.cv);
	return w.status;
}

int nd_client_read(struct nd_client *c, void *buf, uint64_t off, uint32_t len)
{
	return sync_req(c, ND_OP_READ, buf, off, len);
}

int nd_client_write(struct nd_client *c, void *buf, uint64_t off, uint32_t len)
{
	return sync_req(c, ND_OP_WRITE, buf, off, len);
}

int nd_client_flush(struct nd_client *c)
{
	return sync_req(c, ND_OP_FLUSH, NULL, 0, 0);
}

const struct nd_session_info *nd_client_info(const struct nd_client *c)
{
	return &c->info;
}

static void free_client(struct nd_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	nd_crypto_free(&c->cr);
	free(c->slots);
	free(c->free_stack);
	free(c->rxbuf);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->tx_lock);
	pthread_cond_destroy(&c->cv);
	nd_wipe(c, sizeof(*c));
	free(c);
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
	    !nd_derive(th, th, th, th, buf) && !nd_crypto_init(&cr, buf, true))
		nd_crypto_free(&cr);
	nd_wipe(buf, sizeof(buf));
}

int nd_client_open(const struct nd_url *url, const uint8_t key[ND_KEY_LEN],
		   const struct nd_client_opts *opts, struct nd_client **out,
		   uint16_t *status, char *err, size_t errlen)
{
	struct nd_client_opts o = opts ? *opts : (struct nd_client_opts){ 0 };
	struct nd_client_params p = { 0 };
	struct nd_client *c;
	enum nd_hs_result hs;
	uint16_t st = 0;
	unsigned int i;
	int rc;

	*out = NULL;
	if (status)
		*status = 0;
	if (!o.max_inflight)
		o.max_inflight = 64;
	if (!o.timeout_ms)
		o.timeout_ms = 30000;

	c = calloc(1, sizeof(*c));
	if (!c)
		return fail(err, errlen, ND_CE_NOMEM, "out of memory");
	c->fd = -1;
	c->timeout_ms = o.timeout_ms;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->tx_lock, NULL);
	pthread_cond_init(&c->cv, NULL);

	warm_up_crypto();
	c->fd = nd_url_connect(url, o.timeout_ms, err, errlen);
	if (c->fd < 0) {
		free_client(c);
		return ND_CE_CONNECT;
	}
	/* Bounds the handshake and any stall in the middle of a record. */
	set_timeouts(c->fd, o.timeout_ms);

	p.psk = key;
	p.identity = o.identity ? o.identity : "default";
	p.export_name = url->export_name;
	p.flags = o.flags;
	p.max_payload = o.max_payload;
	hs = nd_handshake_client(c->fd, &p, &c->cr, &c->info, &st);
	switch (hs) {
	case ND_HS_OK:
		break;
	case ND_HS_AUTH:
		free_client(c);
		return fail(err, errlen, ND_CE_AUTH,
			    "authentication failed: the server does not hold this key (wrong key file?)");
	case ND_HS_REFUSED:
		free_client(c);
		if (status)
			*status = st;
		return fail(err, errlen, ND_CE_REFUSED, "server refused: %s",
			    nd_status_str(st));
	case ND_HS_PROTO:
		free_client(c);
		return fail(err, errlen, ND_CE_PROTO,
			    "protocol error during handshake (not a netdisk server?)");
	default:
		rc = errno;
		free_client(c);
		if (rc == EAGAIN || rc == EWOULDBLOCK)
			return fail(err, errlen, ND_CE_TIMEOUT,
				    "timed out during handshake (no answer within %d ms)",
				    o.timeout_ms);
		return fail(err, errlen, ND_CE_IO,
			    "connection lost during handshake (closed by the server)");
	}

	c->nslots = o.max_inflight;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->free_stack = calloc(c->nslots, sizeof(*c->free_stack));
	c->rxcap = ND_REPLY_HDR_LEN + (size_t)c->info.max_payload + ND_TAG_LEN;
	c->rxbuf = malloc(c->rxcap);
	if (!c->slots || !c->free_stack || !c->rxbuf) {
		free_client(c);
		return fail(err, errlen, ND_CE_NOMEM, "out of memory");
	}
	/* Hand out low indices first: purely cosmetic in traces. */
	for (i = 0; i < c->nslots; i++)
		c->free_stack[i] = c->nslots - 1 - i;
	c->nfree = c->nslots;

	rc = pthread_create(&c->rx_thread, NULL, rx_main, c);
	if (rc) {
		free_client(c);
		return fail(err, errlen, ND_CE_NOMEM,
			    "cannot start receiver thread: %s", strerror(rc));
	}
	*out = c;
	return 0;
}

int nd_client_close(struct nd_client *c)
{
	int err;

	if (!c)
		return 0;
	nd_client_drain(c);
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	err = c->err;
	pthread_mutex_unlock(&c->lock);

	if (!err) {
		uint8_t hdr[ND_REQ_HDR_LEN];
		struct nd_request req = { .op = ND_OP_DISCONNECT };
		struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };

		nd_request_encode(hdr, &req);
		pthread_mutex_lock(&c->tx_lock);
		nd_send_record(c->fd, &c->cr.tx, &iov, 1);
		pthread_mutex_unlock(&c->tx_lock);
	}
	/* Nothing is outstanding: stop the receiver now. */
	shutdown(c->fd, SHUT_RDWR);
	pthread_join(c->rx_thread, NULL);
	free_client(c);
	return err == ND_CE_CLOSED ? 0 : err;
}
