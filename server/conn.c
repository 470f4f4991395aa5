// SPDX-License-Identifier: MIT
/*
 * One authenticated client connection, handed over by handshake.c: its
 * thread sends the SessionInfo, then is the receiver (read, decrypt,
 * check, serve page-cache hits or hand to the worker pool) beside a sender
 * thread (writes the replies, several per writev). A reply is sealed by the thread that produced it, under
 * seal_lock, in the order it goes on the wire.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

/* ---- request buffers ---- */

static struct nd_req *req_get(struct nd_conn *c, size_t need)
{
	struct nd_req *q = NULL, **pp;

	pthread_mutex_lock(&c->lock);
	for (pp = &c->free_reqs; *pp; pp = &(*pp)->next)
		if ((*pp)->cap >= need)
			break;
	if (!*pp)
		pp = &c->free_reqs;
	if (*pp) {
		q = *pp;
		*pp = q->next;
		c->nfree--;
		c->free_bytes -= q->cap;
	}
	pthread_mutex_unlock(&c->lock);

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return NULL;
	}
	if (q->cap < need) {
		free(q->buf);
		q->buf = malloc(need);
		q->cap = q->buf ? need : 0;
		if (!q->buf) {
			free(q);
			return NULL;
		}
	}
	q->next = NULL;
	q->c = c;
	q->status = ND_OK;
	q->data_len = 0;
	q->charge = 0;
	return q;
}

static void req_put_locked(struct nd_conn *c, struct nd_req *q)
{
	if (c->nfree < ND_SRV_FREE_REQS &&
	    c->free_bytes + q->cap <= ND_SRV_FREE_BYTES) {
		q->next = c->free_reqs;
		c->free_reqs = q;
		c->nfree++;
		c->free_bytes += q->cap;
	} else {
		free(q->buf);
		free(q);
	}
}

static void req_put(struct nd_conn *c, struct nd_req *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&c->lock);
	req_put_locked(c, q);
	pthread_mutex_unlock(&c->lock);
}

/* ---- sender ---- */

static void reply_encode(struct nd_req *q)
{
	struct nd_reply rep = {
		.op = q->r.op,
		.status = q->status,
		.length = q->status == ND_OK ? q->data_len : 0,
		.handle = q->r.handle,
	};

	q->data_len = rep.length;
	nd_reply_encode(q->rhdr, &rep);
}

/* Queues the sealed chain first..last for the sender; c->lock held. */
static void txq_append_locked(struct nd_conn *c, struct nd_req *first,
			      struct nd_req *last)
{
	if (c->txq_tail)
		c->txq_tail->next = first;
	else
		c->txq_head = first;
	c->txq_tail = last;
	if (!c->tx_busy)
		pthread_cond_signal(&c->tx_cond);
}

/*
 * Seals the chain's records in place, in chain order, with the next
 * sequence numbers; c->seal_lock held (it owns crypto.tx and the order
 * of the send queue). false if the connection is dead or sealing failed:
 * then nothing of the chain may be sent.
 */
static bool seal_chain_locked(struct nd_conn *c, struct nd_req *q)
{
	bool dead;

	pthread_mutex_lock(&c->lock);
	dead = c->dead;
	pthread_mutex_unlock(&c->lock);
	if (dead)
		return false;
	for (; q; q = q->next) {
		struct iovec body[2] = {
			{ .iov_base = q->rhdr, .iov_len = ND_REPLY_HDR_LEN },
			{ .iov_base = q->buf, .iov_len = q->data_len },
		};

		if (nd_seal(&c->crypto.tx, q->rec_hdr, body,
			    q->data_len ? 2 : 1, q->tag) < 0) {
			nd_err("client %s: sealing a reply failed, closing",
			       c->peer);
			/* Never seal again (no nonce reuse); rx tears down. */
			pthread_mutex_lock(&c->lock);
			c->dead = true;
			pthread_mutex_unlock(&c->lock);
			shutdown(c->fd, SHUT_RDWR);
			return false;
		}
	}
	return true;
}

/*
 * A worker's (or the receiver's large) reply: sealed on this thread, so
 * the sender only writes, then queued in sealing order.
 */
void nd_conn_reply(struct nd_conn *c, struct nd_req *q)
{
	reply_encode(q);
	q->next = NULL;
	pthread_mutex_lock(&c->seal_lock);
	seal_chain_locked(c, q);
	pthread_mutex_lock(&c->lock);
	txq_append_locked(c, q, q);
	/*
	 * c->lock last: once it is released the reply may be sent and
	 * retired, and the connection freed, under this worker's feet.
	 */
	pthread_mutex_unlock(&c->seal_lock);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Sends iov[0..n) completely; MSG_MORE while more of the same burst
 * follows, so partial segments are not pushed out in between. 0 or -1.
 */
static int send_full(int fd, struct iovec *iov, int n, bool more)
{
	return nd_sendv_full(fd, iov, n, more ? MSG_MORE : 0);
}

/*
 * Sends a chain of sealed replies, up to ND_SRV_TX_BATCH per sendmsg;
 * false once the connection failed.
 */
static bool send_chain(struct nd_conn *c, struct nd_req *q)
{
	struct iovec iov[ND_SRV_TX_BATCH * 4];
	int n = 0, k = 0;

	for (; q; q = q->next) {
		iov[n++] = (struct iovec){ q->rec_hdr, ND_RECORD_HDR_LEN };
		iov[n++] = (struct iovec){ q->rhdr, ND_REPLY_HDR_LEN };
		if (q->data_len)
			iov[n++] = (struct iovec){ q->buf, q->data_len };
		iov[n++] = (struct iovec){ q->tag, ND_TAG_LEN };
		if (++k == ND_SRV_TX_BATCH || !q->next) {
			if (send_full(c->fd, iov, n, q->next != NULL)) {
				nd_info("client %s: send failed: %s, closing",
					c->peer,
					errno ? strerror(errno) : "closed");
				return false;
			}
			n = k = 0;
		}
	}
	return true;
}

/*
 * Sends list while this thread holds tx_busy (c->lock not held), then
 * retires its requests; returns with c->lock held and tx_busy clear.
 */
static void send_and_retire(struct nd_conn *c, struct nd_req *list, bool dead)
{
	struct nd_req *q;

	if (!dead && !send_chain(c, list)) {
		dead = true;
		/* Wake the receiver; it tears the connection down. */
		shutdown(c->fd, SHUT_RDWR);
	}

	pthread_mutex_lock(&c->lock);
	c->tx_busy = false;
	if (dead)
		c->dead = true;
	while ((q = list)) {
		list = q->next;
		c->inflight--;
		c->inflight_bytes -= q->charge;
		req_put_locked(c, q);
	}
	pthread_cond_signal(&c->rx_cond);
}

static void *tx_main(void *arg)
{
	struct nd_conn *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct nd_req *list;
		bool dead;

		while ((!c->txq_head || c->tx_busy) && !c->tx_stop)
			pthread_cond_wait(&c->tx_cond, &c->lock);
		if (!c->txq_head)
			break;
		list = c->txq_head;
		c->txq_head = c->txq_tail = NULL;
		c->tx_busy = true;
		dead = c->dead;
		pthread_mutex_unlock(&c->lock);
		send_and_retire(c, list, dead);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/*
 * Replies the receiver produced itself (page-cache reads, refusals):
 * sealed here, then sent right here if the sender is idle, saving a
 * hand-off; otherwise queued. Deciding under seal_lock keeps wire order
 * equal to sealing order.
 */
static void rx_send(struct nd_conn *c, struct nd_req *first,
		    struct nd_req *last)
{
	bool dead;

	pthread_mutex_lock(&c->seal_lock);
	seal_chain_locked(c, first);
	pthread_mutex_lock(&c->lock);
	if (c->tx_busy || c->txq_head) {
		txq_append_locked(c, first, last);
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->seal_lock);
		return;
	}
	c->tx_busy = true;
	dead = c->dead;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->seal_lock);
	send_and_retire(c, first, dead);
	/* Replies queued meanwhile: the sender thread takes them. */
	if (c->txq_head)
		pthread_cond_signal(&c->tx_cond);
	pthread_mutex_unlock(&c->lock);
}

/* ---- socket input through c->rbuf ---- */

/* Reads exactly n bytes; -1 with errno (0 on EOF or a truncated record). */
static int rx_read(struct nd_conn *c, void *dst, size_t n)
{
	uint8_t *p = dst;
	size_t k = c->rlen - c->rpos;

	if (k) {
		if (k > n)
			k = n;
		memcpy(p, c->rbuf + c->rpos, k);
		c->rpos += k;
		p += k;
		n -= k;
	}
	if (!n)
		return 0;
	c->rpos = c->rlen = 0;
	/* Big WRITE bodies go straight into their buffer. */
	if (n >= ND_SRV_RXBUF / 2)
		return nd_read_full(c->fd, p, n);
	while (n) {
		ssize_t r = read(c->fd, c->rbuf, ND_SRV_RXBUF);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		k = (size_t)r < n ? (size_t)r : n;
		memcpy(p, c->rbuf, k);
		c->rlen = (size_t)r;
		c->rpos = k;
		p += k;
		n -= k;
	}
	return 0;
}

/* ---- receiver ---- */

/* Checks that need no I/O; ND_OK means: give it to a worker. */
static uint16_t check_request(struct nd_conn *c, const struct nd_request *r)
{
	const struct nd_export *e = &c->sess->exp->e;

	switch (r->op) {
	case ND_OP_FLUSH:
		return ND_OK;
	case ND_OP_READ:
		break;
	case ND_OP_TRIM:
	case ND_OP_WRITE_ZEROES:
		if (c->read_only)
			return ND_ERR_READ_ONLY;
		if (!(e->caps & (r->op == ND_OP_TRIM ? ND_EXP_TRIM :
				 ND_EXP_WRITE_ZEROES)))
			return ND_ERR_NOTSUP;
		/* They carry no data, so max_payload does not bound them. */
		if (r->length == 0 || r->length > ND_SRV_MAX_ZERO_LEN)
			return ND_ERR_INVALID;
		break;
	default:
		if (c->read_only)
			return ND_ERR_READ_ONLY;
		break;
	}
	if (r->offset > e->size || r->length > e->size - r->offset)
		return ND_ERR_RANGE;
	return ND_OK;
}

/* The session's counters for the status (nd_server_status). */
static void count_request(struct nd_session *ss, const struct nd_request *r,
			  uint16_t status)
{
	__atomic_add_fetch(&ss->requests, 1, __ATOMIC_RELAXED);
	if (status != ND_OK)
		return;
	if (r->op == ND_OP_READ)
		__atomic_add_fetch(&ss->read_bytes, r->length,
				   __ATOMIC_RELAXED);
	else if (r->op == ND_OP_WRITE)
		__atomic_add_fetch(&ss->written_bytes, r->length,
				   __ATOMIC_RELAXED);
}

enum rx_end {
	RX_CLOSED,		/* EOF or socket error */
	RX_DISCONNECT,		/* DISCONNECT request */
	RX_VIOLATION,		/* protocol violation or local failure */
};

/* Replies the receiver made itself, sent in one go (see rx_send). */
struct rx_batch {
	struct nd_req *head, *tail;
	int n;
	size_t bytes;			/* reply data */
};

static void batch_add(struct rx_batch *b, struct nd_req *q)
{
	reply_encode(q);
	q->next = NULL;
	if (b->tail)
		b->tail->next = q;
	else
		b->head = q;
	b->tail = q;
	b->n++;
	b->bytes += q->data_len;
}

static void batch_flush(struct nd_conn *c, struct rx_batch *b)
{
	if (b->head)
		rx_send(c, b->head, b->tail);
	b->head = b->tail = NULL;
	b->n = 0;
	b->bytes = 0;
}

static bool over_limit(const struct nd_conn *c)
{
	return c->inflight >= ND_SRV_MAX_INFLIGHT ||
	       c->inflight_bytes >= ND_SRV_INFLIGHT_BYTES;
}

/* True if the client closed or reset the connection (no wait). */
static bool peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * Backpressure: waits (c->lock held) while too much is in flight. false if
 * the client hung up meanwhile: with a stalled disk no slot may free for a
 * long time, and its queued requests are to be dropped now, not then.
 */
static bool rx_wait_room(struct nd_conn *c)
{
	while (!c->dead && over_limit(c)) {
		struct timespec ts = nd_abstime_in_ms(ND_SRV_HUP_CHECK_MS);

		if (pthread_cond_timedwait(&c->rx_cond, &c->lock, &ts) ==
		    ETIMEDOUT && peer_gone(c->fd))
			return false;
	}
	return true;
}

static enum rx_end rx_loop(struct nd_conn *c, struct rx_batch *batch)
{
	struct nd_server *s = c->srv;
	struct nd_session *ss = c->sess;
	const struct nd_export *e = &ss->exp->e;
	uint8_t small[ND_REQ_HDR_LEN + ND_TAG_LEN];
	uint8_t hdr[ND_RECORD_HDR_LEN];

	for (;;) {
		struct nd_req *q = NULL;
		struct nd_request r;
		uint32_t len;
		size_t body_len;
		uint8_t *body;
		bool dead;

		/*
		 * Send our replies before we might block reading, and large
		 * data at once (still in cache, and the client can start).
		 */
		if (batch->n && (c->rpos == c->rlen ||
				 batch->n >= ND_SRV_TX_BATCH ||
				 batch->bytes >= ND_SRV_TX_CHUNK))
			batch_flush(c, batch);

		/* Backpressure: stop reading while too much is in flight. */
		pthread_mutex_lock(&c->lock);
		if (batch->n && over_limit(c)) {
			pthread_mutex_unlock(&c->lock);
			batch_flush(c, batch);
			pthread_mutex_lock(&c->lock);
		}
		if (!rx_wait_room(c)) {
			pthread_mutex_unlock(&c->lock);
			nd_info("client %s: connection closed", c->peer);
			return RX_CLOSED;
		}
		dead = c->dead;
		pthread_mutex_unlock(&c->lock);
		if (dead)
			return RX_CLOSED;

		if (rx_read(c, hdr, sizeof(hdr)) < 0) {
			if (errno)
				nd_info("client %s: receive failed: %s",
					c->peer, strerror(errno));
			else
				nd_info("client %s: connection closed", c->peer);
			return RX_CLOSED;
		}
		len = nd_get32(hdr);
		if (len < ND_TAG_LEN ||
		    len > ND_REQ_HDR_LEN + c->max_payload + ND_TAG_LEN) {
			nd_warn("client %s: record length %u out of bounds, closing",
				c->peer, len);
			return RX_VIOLATION;
		}
		body_len = len - ND_TAG_LEN;
		if (body_len <= ND_REQ_HDR_LEN) {
			body = small;
		} else {
			/* Only a WRITE is this long: read it into its buffer. */
			q = req_get(c, len);
			if (!q) {
				nd_err("client %s: out of memory, closing",
				       c->peer);
				return RX_VIOLATION;
			}
			body = q->buf;
		}
		if (rx_read(c, body, len) < 0) {
			nd_info("client %s: receive failed: %s", c->peer,
				errno ? strerror(errno) : "truncated record");
			req_put(c, q);
			return RX_CLOSED;
		}
		if (nd_open(&c->crypto.rx, hdr, body, body_len,
			    body + body_len) < 0) {
			nd_warn("client %s: record authentication failed, closing",
				c->peer);
			req_put(c, q);
			return RX_VIOLATION;
		}
		if (nd_request_decode(body, body_len, c->max_payload, &r) !=
		    ND_OK) {
			/* Only fields the record holds: no stale stack bytes. */
			if (body_len < ND_REQ_HDR_LEN)
				nd_warn("client %s: malformed request (record %zu bytes, shorter than a request header), closing",
					c->peer, body_len);
			else
				nd_warn("client %s: malformed request (op %u, flags 0x%x, length %u, offset %llu, record %zu bytes), closing",
					c->peer, body[0], body[1],
					nd_get32(body + 4),
					(unsigned long long)nd_get64(body + 16),
					body_len);
			req_put(c, q);
			return RX_VIOLATION;
		}
		if (r.op == ND_OP_DISCONNECT) {
			nd_info("client %s: disconnect requested", c->peer);
			req_put(c, q);
			return RX_DISCONNECT;
		}
		if (!q) {
			q = req_get(c, r.op == ND_OP_READ ? r.length : 0);
			if (!q) {
				nd_err("client %s: out of memory, closing",
				       c->peer);
				return RX_VIOLATION;
			}
		}
		q->r = r;
		q->charge = (r.op == ND_OP_READ || r.op == ND_OP_WRITE) ?
			    r.length : 0;
		pthread_mutex_lock(&c->lock);
		c->inflight++;
		c->inflight_bytes += q->charge;
		pthread_mutex_unlock(&c->lock);

		q->status = check_request(c, &r);
		count_request(ss, &r, q->status);
		/* The write epoch is stored before the session's first write. */
		if (q->status == ND_OK && (r.op == ND_OP_WRITE ||
					   r.op == ND_OP_TRIM ||
					   r.op == ND_OP_WRITE_ZEROES) &&
		    nd_session_first_write(s, c->sess) < 0)
			q->status = ND_ERR_IO;
		if (q->status != ND_OK) {
			batch_add(batch, q);
		} else if (r.op == ND_OP_READ && e->ops->pread_nowait &&
			   r.length <= ND_SRV_INLINE_MAX &&
			   e->ops->pread_nowait(e->h, q->buf, r.length,
						r.offset) == 0) {
			/* Page-cache hit: no hand-off to a worker. */
			q->data_len = r.length;
			if (q->data_len <= ND_SRV_TX_CHUNK) {
				batch_add(batch, q);
			} else {
				/*
				 * Large: sealed here, sent by the sender while
				 * this thread reads the next request's data.
				 */
				batch_flush(c, batch);
				nd_conn_reply(c, q);
			}
		} else if (r.op == ND_OP_WRITE && e->ops->pwrite_nowait &&
			   r.length <= ND_SRV_INLINE_WRITE_MAX &&
			   e->ops->pwrite_nowait(e->h, q->buf + ND_REQ_HDR_LEN,
						 r.length, r.offset,
						 r.flags & ND_REQ_FUA) == 0) {
			/*
			 * Memory or page cache took it without waiting: no
			 * hand-off, and the reply joins the batch.
			 */
			batch_add(batch, q);
		} else {
			nd_work_submit(s, q);
		}
	}
}

/* ---- lifetime ---- */

static void tune_socket(int fd)
{
	int one = 1, idle = 30, intvl = 10, cnt = 3;
	unsigned int user_timeout = 60000;

	/* Replies must not wait for Nagle; dead peers must release locks. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
		   sizeof(user_timeout));
}

struct nd_conn *nd_conn_create(struct nd_server *s, int fd, const char *peer)
{
	struct nd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->srv = s;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	pthread_mutex_init(&c->seal_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->rx_cond, NULL);
	pthread_cond_init(&c->tx_cond, NULL);
	return c;
}

int nd_conn_start(struct nd_conn *c)
{
	struct nd_server *s = c->srv;

	/* Registered before it runs, so shutdown always finds it. */
	pthread_mutex_lock(&s->lock);
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	if (nd_thread_start(&c->rx_thread, ND_SRV_CONN_STACK, nd_conn_main,
			    c) < 0) {
		s->conns = c->next;
		s->nconns--;
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void nd_conn_destroy(struct nd_conn *c)
{
	free(c->list);
	pthread_mutex_destroy(&c->seal_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->rx_cond);
	pthread_cond_destroy(&c->tx_cond);
	free(c);
}

/*
 * The connection is over without DISCONNECT (client gone, protocol
 * violation, send failure): nobody will read the replies, and a queued
 * write done now could land after the client resent it on a new
 * connection and wrote again on top. Requests no worker has started are
 * dropped unexecuted; running ones finish and their replies are dropped.
 * Also called by the fence of a newer connection of c's slot, from the
 * listener thread, so that nothing queued starts after the fence.
 */
void nd_conn_drop_queued(struct nd_conn *c)
{
	struct nd_req *q, *list;
	int n = 0;

	pthread_mutex_lock(&c->lock);
	c->dead = true;
	pthread_mutex_unlock(&c->lock);
	list = nd_work_cancel(c->srv, c);
	pthread_mutex_lock(&c->lock);
	while ((q = list)) {
		list = q->next;
		c->inflight--;
		c->inflight_bytes -= q->charge;
		req_put_locked(c, q);
		n++;
	}
	pthread_mutex_unlock(&c->lock);
	if (n)
		nd_info("client %s: %d queued request%s dropped", c->peer, n,
			n == 1 ? "" : "s");
}

/* The list-exports answer, then the connection closes. */
static void send_list(struct nd_conn *c)
{
	struct iovec iov = { .iov_base = c->list, .iov_len = c->list_len };

	if (nd_send_record(c->fd, &c->crypto.tx, &iov, 1) < 0)
		nd_info("client %s: sending the export list failed: %s",
			c->peer, strerror(errno));
	free(c->list);
	c->list = NULL;
}

/*
 * Decides, against a concurrent fence, whether c answers OK: false if a
 * newer connection of its slot has fenced it already.
 */
static bool serve_start(struct nd_conn *c)
{
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = !c->fenced;
	c->serving = ok;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

void *nd_conn_main(void *arg)
{
	struct nd_conn *c = arg;
	struct nd_server *s = c->srv;
	enum rx_end end = RX_CLOSED;
	struct nd_req *q;
	uint16_t status;
	bool idle, fenced;

	tune_socket(c->fd);
	c->rbuf = malloc(ND_SRV_RXBUF);
	if (c->list) {
		send_list(c);
	} else if (!c->rbuf) {
		nd_err("client %s: out of memory, closing", c->peer);
	} else if ((status = nd_session_ready(s, c)) != ND_OK ||
		   !serve_start(c)) {
		if (status == ND_OK)
			status = ND_ERR_SUPERSEDED;
		if (status != ND_SESSION_CLOSE)
			nd_hs_send_session_status(c, status);
	} else if (nd_hs_send_session_info(c) < 0) {
		nd_info("client %s: handshake failed sending session info: %s",
			c->peer, strerror(errno));
	} else {
		c->sess_unknown = false;
		if (nd_thread_start(&c->tx_thread, ND_SRV_CONN_STACK, tx_main,
				    c) == 0) {
			struct rx_batch batch = { 0 };

			c->tx_running = true;
			end = rx_loop(c, &batch);
			/* Counted in inflight: must go out (or be dropped). */
			if (end == RX_VIOLATION) {
				pthread_mutex_lock(&c->lock);
				c->dead = true;
				pthread_mutex_unlock(&c->lock);
			}
			batch_flush(c, &batch);
			pthread_mutex_lock(&c->lock);
			fenced = c->fenced;
			pthread_mutex_unlock(&c->lock);
			/*
			 * On shutdown (reads cut by us) work is finished; a
			 * fenced connection's never is (PROTOCOL.md §1).
			 */
			if (fenced || (end != RX_DISCONNECT &&
				       !__atomic_load_n(&s->stopping,
							__ATOMIC_RELAXED)))
				nd_conn_drop_queued(c);
		} else {
			nd_err("client %s: cannot start sender thread, closing",
			       c->peer);
		}
	}

	/*
	 * Let every accepted request finish and its reply go out; after a
	 * protocol violation the replies are dropped instead, so a client
	 * that also stopped reading cannot keep the connection alive.
	 */
	pthread_mutex_lock(&c->lock);
	if (end == RX_VIOLATION) {
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR);
	}
	while (c->inflight > 0)
		pthread_cond_wait(&c->rx_cond, &c->lock);
	c->tx_stop = true;
	pthread_cond_signal(&c->tx_cond);
	pthread_mutex_unlock(&c->lock);
	if (c->tx_running)
		pthread_join(c->tx_thread, NULL);

	/*
	 * Every request of c has finished. A fenced connection is closed
	 * before the one replacing it may answer (its fd stays ours until
	 * the close below).
	 */
	pthread_mutex_lock(&c->lock);
	fenced = c->fenced;
	pthread_mutex_unlock(&c->lock);
	if (fenced)
		shutdown(c->fd, SHUT_RDWR);
	/*
	 * A session whose token never reached its client cannot be resumed:
	 * keeping its write lock for the grace period would only refuse the
	 * client's retry (BUSY). It ends now, as on DISCONNECT.
	 */
	if (c->sess)
		nd_session_detach(s, c, end == RX_DISCONNECT ||
				  c->sess_unknown);
	nd_crypto_free(&c->crypto);
	while ((q = c->free_reqs)) {
		c->free_reqs = q->next;
		free(q->buf);
		free(q);
	}
	c->nfree = 0;
	c->free_bytes = 0;
	free(c->rbuf);
	c->rbuf = NULL;

	/* The server may shutdown() our fd concurrently: close under its lock. */
	pthread_mutex_lock(&s->lock);
	close(c->fd);
	c->fd = -1;
	for (struct nd_conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->next = s->zombies;
	s->zombies = c;
	s->nconns--;
	idle = s->nconns == 0;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* Give the per-thread malloc arenas of a burst back to the system. */
	if (idle)
		malloc_trim(0);
	return NULL;
}
