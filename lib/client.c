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
#include "connect.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

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
	long long start_ms;	/* submitted: the timeout counts from here */
	bool filling;		/* receiver is writing into buf (c->lock) */
	/* Sealed record header and tag; pending list (tx_lock). */
	uint8_t rec[ND_RECORD_HDR_LEN];
	uint8_t tag[ND_TAG_LEN];
	struct slot *pend_next, *done_next;
	uint8_t hdr[ND_REQ_HDR_LEN];
};

struct nd_client {
	int fd;
	int timeout_ms;
	struct nd_crypto cr;
	struct nd_session_info info;

	pthread_mutex_t tx_lock;	/* serialises sealing + sending */
	int plug;			/* tx_lock: nd_client_plug depth */
	struct slot *pend_head, *pend_tail;	/* sealed, not sent yet */
	unsigned int npend;
	size_t pend_bytes;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cv;		/* slot freed, idle, or dead */
	struct slot *slots;
	unsigned int nslots;
	unsigned int *free_stack;
	unsigned int nfree;
	unsigned int outstanding;
	int err;			/* first fatal error, 0 while healthy */
	bool closing;

	pthread_t rx_thread;
	/* Receiver only: socket input, several small replies per recv. */
	uint8_t *rb;
	size_t rpos, rlen;
	size_t max_rec;			/* longest reply record */
	long long next_check;		/* ms; for request deadlines */
};

/* Socket read buffer of the receiver. */
#define RX_BUF		(256 * 1024)
/* Reply data at least this long is received straight into its buffer... */
#define RX_DIRECT	(64 * 1024)
/* ...this much per recv, decrypted right away while it is in cache. */
#define RX_CHUNK	(256 * 1024)
/* While plugged, queued requests go out at this count or size. */
#define TX_PEND_MAX	32
#define TX_PEND_BYTES	(256 * 1024)
/* How often a receiver blocked in recv checks for closing and deadlines. */
#define RX_SLICE_MS	500
/* How often a receiver that is getting data checks the deadlines. */
#define RX_CHECK_MS	100
/* Connection attempts while the server closes them during the handshake. */
#define HS_ATTEMPTS	3u

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
	case ND_CE_NO_LIST:
		return "server cannot list exports";
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

/*
 * Every request must be answered within the timeout of its submission.
 * Bytes arriving do not extend it: a server trickling a reply is as late
 * as a silent one. Checked at most every RX_CHECK_MS unless forced.
 * Returns 0, ND_CE_CLOSED or ND_CE_TIMEOUT.
 */
static int rx_check(struct nd_client *c, bool force)
{
	long long now = nd_mono_ms();
	bool stop, late = false;
	unsigned int i;

	if (!force && now < c->next_check)
		return 0;
	c->next_check = now + RX_CHECK_MS;
	pthread_mutex_lock(&c->lock);
	stop = c->closing || c->err;
	for (i = 0; i < c->nslots && !stop && !late; i++) {
		const struct slot *s = &c->slots[i];

		late = (s->state == SLOT_SENDING ||
			s->state == SLOT_INFLIGHT) &&
		       now - s->start_ms > c->timeout_ms;
	}
	pthread_mutex_unlock(&c->lock);
	return stop ? ND_CE_CLOSED : late ? ND_CE_TIMEOUT : 0;
}

/*
 * Receives up to len bytes into dst. Returns the count, 0 at EOF, or -1
 * with *err set. recv times out every RX_SLICE_MS (SO_RCVTIMEO) so a
 * receiver blocked here notices closing and overdue requests.
 */
static ssize_t rx_recv(struct nd_client *c, void *dst, size_t len, int *err)
{
	for (;;) {
		ssize_t n = recv(c->fd, dst, len, 0);
		int rc;

		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = ND_CE_IO;
			return -1;
		}
		rc = rx_check(c, n < 0);
		if (rc) {
			*err = rc;
			return -1;
		}
		if (n > 0)
			return n;
	}
}

/* EOF or a failed read: which error that is. */
static int rx_lost(struct nd_client *c, ssize_t n, int err)
{
	bool closing;

	pthread_mutex_lock(&c->lock);
	closing = c->closing;
	pthread_mutex_unlock(&c->lock);
	if (closing)
		return ND_CE_CLOSED;
	return n == 0 ? ND_CE_IO : err;
}

/*
 * Makes n bytes (n <= RX_BUF) available at c->rb + c->rpos. 0, or an
 * ND_CE_* error.
 */
static int rx_need(struct nd_client *c, size_t n)
{
	while (c->rlen - c->rpos < n) {
		ssize_t got;
		int err = ND_CE_IO;

		if (c->rpos) {
			memmove(c->rb, c->rb + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		got = rx_recv(c, c->rb + c->rlen, RX_BUF - c->rlen, &err);
		if (got <= 0)
			return rx_lost(c, got, err);
		c->rlen += (size_t)got;
	}
	return 0;
}

/*
 * Decrypts the next len body bytes of the current record into dst (NULL:
 * in place, then dropped). Buffered bytes are decrypted out of c->rb; a
 * long remainder is received straight into dst in cache-sized steps.
 */
static int rx_body(struct nd_client *c, uint8_t *dst, size_t len)
{
	while (len) {
		size_t k = c->rlen - c->rpos;
		ssize_t got;
		int err = ND_CE_IO;

		if (k) {
			uint8_t *in = c->rb + c->rpos;

			if (k > len)
				k = len;
			if (nd_crypt_update(&c->cr.rx, in, dst ? dst : in, k))
				return ND_CE_PROTO;
			c->rpos += k;
			if (dst)
				dst += k;
			len -= k;
			continue;
		}
		c->rpos = c->rlen = 0;
		if (!dst || len < RX_DIRECT) {
			got = rx_recv(c, c->rb, RX_BUF, &err);
			if (got <= 0)
				return rx_lost(c, got, err);
			c->rlen = (size_t)got;
			continue;
		}
		got = rx_recv(c, dst, len < RX_CHUNK ? len : RX_CHUNK, &err);
		if (got <= 0)
			return rx_lost(c, got, err);
		if (nd_crypt_update(&c->cr.rx, dst, dst, (size_t)got))
			return ND_CE_PROTO;
		dst += got;
		len -= (size_t)got;
	}
	return 0;
}

/* Checks the current record's tag (next in the stream). 0 or an error. */
static int rx_tag(struct nd_client *c)
{
	int rc = rx_need(c, ND_TAG_LEN);

	if (rc)
		return rc;
	c->rpos += ND_TAG_LEN;
	return nd_open_final(&c->cr.rx, c->rb + c->rpos - ND_TAG_LEN) ?
	       ND_CE_RECORD_AUTH : 0;
}

/*
 * A reply that cannot be matched: authenticate the rest anyway, so an
 * altered record reads as such rather than as a protocol error.
 */
static int rx_reject(struct nd_client *c, size_t left)
{
	int rc = rx_body(c, NULL, left);

	if (!rc)
		rc = rx_tag(c);
	return rc ? rc : ND_CE_PROTO;
}

/*
 * Receives one reply record and completes its request. The reply header
 * is decrypted first to find the slot; READ data is then decrypted
 * straight into the caller's buffer. Returns 0 or an ND_CE_* error.
 */
static int rx_reply(struct nd_client *c)
{
	uint8_t hdr[ND_RECORD_HDR_LEN], rh[ND_REPLY_HDR_LEN];
	struct nd_reply r;
	struct slot *s;
	uint32_t len, idx, gen;
	size_t body;
	bool done_now;
	int rc;

	rc = rx_need(c, ND_RECORD_HDR_LEN);
	if (rc)
		return rc;
	memcpy(hdr, c->rb + c->rpos, sizeof(hdr));
	c->rpos += sizeof(hdr);
	len = nd_get32(hdr);
	if (len < ND_TAG_LEN || len > c->max_rec)
		return ND_CE_PROTO;
	if (nd_open_begin(&c->cr.rx, hdr))
		return ND_CE_PROTO;
	body = len - ND_TAG_LEN;
	if (body < ND_REPLY_HDR_LEN)
		return rx_reject(c, body);
	rc = rx_need(c, ND_REPLY_HDR_LEN);
	if (rc)
		return rc;
	if (nd_crypt_update(&c->cr.rx, c->rb + c->rpos, rh, sizeof(rh)))
		return ND_CE_PROTO;
	c->rpos += sizeof(rh);
	body -= sizeof(rh);
	if (nd_reply_decode(rh, body + sizeof(rh), &r))
		return rx_reject(c, body);
	idx = (uint32_t)r.handle;
	gen = (uint32_t)(r.handle >> 32);
	if (idx >= c->nslots)
		return rx_reject(c, body);
	s = &c->slots[idx];

	pthread_mutex_lock(&c->lock);
	if (s->gen != gen || s->op != r.op ||
	    (s->state != SLOT_SENDING && s->state != SLOT_INFLIGHT) ||
	    (r.op == ND_OP_READ && r.status == ND_OK && r.length != s->len)) {
		pthread_mutex_unlock(&c->lock);
		return rx_reject(c, body);
	}
	s->filling = true;
	pthread_mutex_unlock(&c->lock);

	/* Outside the lock: the slot's buffer is ours until it completes. */
	rc = rx_body(c, s->buf, body);
	if (!rc)
		rc = rx_tag(c);
	if (rc && body)
		OPENSSL_cleanse(s->buf, body);	/* unauthenticated */

	pthread_mutex_lock(&c->lock);
	s->filling = false;
	if (rc) {
		/* die() completes it, or its sender does. */
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
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

	for (;;) {
		int rc = rx_reply(c);

		if (rc) {
			die(c, rc);
			return NULL;
		}
	}
}

/*
 * Sends the sealed requests queued on c (tx_lock held) with one sendmsg,
 * in sealing order. Returns the list for tx_done and sets *rc.
 */
/* Takes the queued requests off c (tx_lock held). */
static struct slot *pend_take(struct nd_client *c)
{
	struct slot *list = c->pend_head;

	c->pend_head = c->pend_tail = NULL;
	c->npend = 0;
	c->pend_bytes = 0;
	return list;
}

static struct slot *tx_flush_locked(struct nd_client *c, int *rc)
{
	/* nd_client_submit never queues more than TX_PEND_MAX. */
	struct iovec iov[TX_PEND_MAX * 4];
	struct slot *list = pend_take(c), *s;
	int n = 0;

	*rc = 0;
	for (s = list; s; s = s->pend_next) {
		iov[n++] = (struct iovec){ s->rec, sizeof(s->rec) };
		iov[n++] = (struct iovec){ s->hdr, sizeof(s->hdr) };
		if (s->op == ND_OP_WRITE && s->len)
			iov[n++] = (struct iovec){ s->buf, s->len };
		iov[n++] = (struct iovec){ s->tag, sizeof(s->tag) };
	}
	if (n)
		*rc = nd_writev_full(c->fd, iov, n);
	return list;
}

/* After sending list (rc: result): in flight, or completed now. */
static void tx_done(struct nd_client *c, struct slot *list, int rc)
{
	struct slot *s, *done = NULL;

	if (!list)
		return;
	pthread_mutex_lock(&c->lock);
	if (rc && !c->err)
		c->err = ND_CE_IO;
	for (s = list; s; s = s->pend_next) {
		if (s->state == SLOT_REPLIED) {
			s->state = SLOT_DONE;
		} else if (c->err && s->filling) {
			/* The receiver is writing its reply: it completes it. */
			s->state = SLOT_INFLIGHT;
			continue;
		} else if (c->err) {
			/* The receiver is gone or going: skips SENDING slots. */
			s->result = c->err;
			s->state = SLOT_DONE;
		} else {
			s->state = SLOT_INFLIGHT;
			continue;
		}
		s->done_next = done;
		done = s;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc)
		shutdown(c->fd, SHUT_RDWR);	/* let the receiver notice */
	while ((s = done)) {
		done = s->done_next;
		complete(c, s, s->result);
	}
}

/* Sends whatever a plug left queued. */
static void tx_flush(struct nd_client *c)
{
	struct slot *list;
	int rc;

	pthread_mutex_lock(&c->tx_lock);
	list = tx_flush_locked(c, &rc);
	pthread_mutex_unlock(&c->tx_lock);
	tx_done(c, list, rc);
}

void nd_client_plug(struct nd_client *c)
{
	pthread_mutex_lock(&c->tx_lock);
	c->plug++;
	pthread_mutex_unlock(&c->tx_lock);
}

void nd_client_unplug(struct nd_client *c)
{
	struct slot *list = NULL;
	int rc = 0;

	pthread_mutex_lock(&c->tx_lock);
	if (c->plug > 0 && --c->plug == 0)
		list = tx_flush_locked(c, &rc);
	pthread_mutex_unlock(&c->tx_lock);
	tx_done(c, list, rc);
}

int nd_client_submit(struct nd_client *c, uint8_t op, uint8_t flags,
		     uint64_t offset, uint32_t len, void *buf,
		     nd_client_cb cb, void *arg)
{
	struct nd_request req = {
		.op = op, .flags = flags, .length = len, .offset = offset,
	};
	struct iovec iov[2];
	struct slot *s, *list = NULL;
	unsigned int idx;
	bool flushed = false;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	while (!c->err && !c->closing && c->nfree == 0) {
		if (!flushed) {
			/* Slots may be held by our own plugged requests. */
			pthread_mutex_unlock(&c->lock);
			tx_flush(c);
			flushed = true;
			pthread_mutex_lock(&c->lock);
			continue;
		}
		pthread_cond_wait(&c->cv, &c->lock);
	}
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
	s->result = 0;
	s->pend_next = NULL;
	s->start_ms = nd_mono_ms();
	c->outstanding++;
	pthread_mutex_unlock(&c->lock);

	req.handle = (uint64_t)s->gen << 32 | idx;
	nd_request_encode(s->hdr, &req);
	iov[0].iov_base = s->hdr;
	iov[0].iov_len = ND_REQ_HDR_LEN;
	iov[1].iov_base = buf;
	iov[1].iov_len = len;

	/* Sealed in queue order; sent now, or at unplug (batched). */
	pthread_mutex_lock(&c->tx_lock);
	if (c->pend_tail)
		c->pend_tail->pend_next = s;
	else
		c->pend_head = s;
	c->pend_tail = s;
	c->npend++;
	c->pend_bytes += op == ND_OP_WRITE ? len : 0;
	if (nd_seal(&c->cr.tx, s->rec, iov, op == ND_OP_WRITE ? 2 : 1,
		    s->tag)) {
		/* The record stream is broken: fail everything queued. */
		list = pend_take(c);
		rc = -1;
	} else if (!c->plug || c->npend >= TX_PEND_MAX ||
		   c->pend_bytes >= TX_PEND_BYTES) {
		list = tx_flush_locked(c, &rc);
	}
	pthread_mutex_unlock(&c->tx_lock);
	tx_done(c, list, rc);
	return 0;
}

int nd_client_drain(struct nd_client *c)
{
	int err;

	tx_flush(c);
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
	tx_flush(c);	/* we wait for it: even inside a plug */
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
	free(c->rb);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->tx_lock);
	pthread_cond_destroy(&c->cv);
	nd_wipe(c, sizeof(*c));
	free(c);
}

int nd_client_open(const struct nd_url *url, const uint8_t key[ND_KEY_LEN],
		   const struct nd_client_opts *opts, struct nd_client **out,
		   uint16_t *status, char *err, size_t errlen)
{
	struct nd_client_opts o = opts ? *opts : (struct nd_client_opts){ 0 };
	struct nd_connect k = { .url = url };
	struct nd_client *c;
	unsigned int i;
	int rc;

	*out = NULL;
	if (status)
		*status = 0;
	if (!o.max_inflight)
		o.max_inflight = 64;
	if (!o.timeout_ms)
		o.timeout_ms = 30000;
	if (!o.hs_attempts)
		o.hs_attempts = HS_ATTEMPTS;

	c = calloc(1, sizeof(*c));
	if (!c)
		return nd_fail(err, errlen, ND_CE_NOMEM, "out of memory");
	c->fd = -1;
	c->timeout_ms = o.timeout_ms;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->tx_lock, NULL);
	pthread_cond_init(&c->cv, NULL);

	k.p.psk = key;
	k.p.identity = o.identity ? o.identity : "default";
	k.p.export_name = url->export_name;
	k.p.flags = o.flags;
	k.p.max_payload = o.max_payload;
	k.p.timeout_ms = o.timeout_ms;
	/* One connection, one session: slot 0, epoch = attempt. */
	k.p.slot = 0;
	k.attempts = o.hs_attempts;
	rc = nd_connect_handshake(&k, err, errlen);
	if (rc) {
		if (status && rc == ND_CE_REFUSED)
			*status = k.status;
		free_client(c);
		return rc;
	}
	c->fd = k.fd;
	c->cr = k.cr;
	c->info = k.info;
	nd_wipe(&k, sizeof(k));

	c->nslots = o.max_inflight;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	c->free_stack = calloc(c->nslots, sizeof(*c->free_stack));
	c->max_rec = ND_REPLY_HDR_LEN + (size_t)c->info.max_payload + ND_TAG_LEN;
	c->rb = malloc(RX_BUF);
	if (!c->slots || !c->free_stack || !c->rb) {
		free_client(c);
		return nd_fail(err, errlen, ND_CE_NOMEM, "out of memory");
	}
	/* Hand out low indices first: purely cosmetic in traces. */
	for (i = 0; i < c->nslots; i++)
		c->free_stack[i] = c->nslots - 1 - i;
	c->nfree = c->nslots;

	/* Replies: recv wakes up every slice (see rx_recv). */
	{
		int ms = c->timeout_ms < RX_SLICE_MS ? c->timeout_ms :
						       RX_SLICE_MS;
		struct timeval tv = { .tv_sec = ms / 1000,
				      .tv_usec = (ms % 1000) * 1000 };

		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	rc = pthread_create(&c->rx_thread, NULL, rx_main, c);
	if (rc) {
		free_client(c);
		return nd_fail(err, errlen, ND_CE_NOMEM,
			    "cannot start receiver thread: %s", strerror(rc));
	}
	*out = c;
	return 0;
}

int nd_client_close(struct nd_client *c)
{
	bool sent = false;
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
		sent = nd_send_record(c->fd, &c->cr.tx, &iov, 1) == 0;
		pthread_mutex_unlock(&c->tx_lock);
	}
	/*
	 * Nothing is outstanding. After a DISCONNECT the server closes once
	 * it has let go of the session (and its write lock): the receiver
	 * waits for that EOF, at most one receive slice, so a client started
	 * right after this one finds the export free. Otherwise stop now.
	 */
	shutdown(c->fd, sent ? SHUT_WR : SHUT_RDWR);
	pthread_join(c->rx_thread, NULL);
	free_client(c);
	return err == ND_CE_CLOSED ? 0 : err;
}
