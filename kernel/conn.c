// SPDX-License-Identifier: GPL-2.0
/*
 * One TCP connection to netdiskd: connect, the sender (a work item that
 * seals queued requests in order under tx_lock) and the receiver (a kthread
 * that opens replies and completes requests). A transport or protocol
 * error (or a request timeout) breaks the connection: with a reconnect
 * timeout, requests are held and a worker reconnects with backoff, joining
 * the same session with its token, then resends every request still
 * outstanding; otherwise, or when the timeout expires, I/O fails with EIO.
 */
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/tcp.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "netdisk.h"

#define ND_DISCONNECT_TIMEOUT_S	5

int nd_buf_alloc(struct nd_buf *b, size_t size)
{
	struct scatterlist *sg;
	unsigned int i, npages;
	int err;

	size = PAGE_ALIGN(size);
	npages = size >> PAGE_SHIFT;
	b->data = vmalloc(size);
	if (!b->data)
		return -ENOMEM;
	b->size = size;
	err = sg_alloc_table(&b->sgt, npages, GFP_KERNEL);
	if (err) {
		vfree(b->data);
		b->data = NULL;
		return err;
	}
	/* Built once: the crypto API walks the record through these pages. */
	for_each_sg(b->sgt.sgl, sg, npages, i)
		sg_set_page(sg, vmalloc_to_page(b->data + i * PAGE_SIZE),
			    PAGE_SIZE, 0);
	return 0;
}

void nd_buf_free(struct nd_buf *b)
{
	if (!b->data)
		return;
	sg_free_table(&b->sgt);
	vfree(b->data);
	b->data = NULL;
}

static int nd_sock_xmit(struct socket *sock, const void *buf, size_t len,
			int flags)
{
	while (len) {
		struct kvec iov = { .iov_base = (void *)buf, .iov_len = len };
		struct msghdr msg = { .msg_flags = flags | MSG_NOSIGNAL };
		int n = kernel_sendmsg(sock, &msg, &iov, 1, len);

		if (n == -EAGAIN)
			return -ETIMEDOUT;	/* SO_SNDTIMEO expired */
		if (n < 0)
			return n;
		if (n == 0)
			return -EPIPE;
		buf += n;
		len -= n;
	}
	return 0;
}

int nd_sock_send(struct socket *sock, const void *buf, size_t len)
{
	return nd_sock_xmit(sock, buf, len, 0);
}

/*
 * Receives exactly len bytes. With a deadline (jiffies; NULL: none) the
 * receive timeout is set to what is left before every wait, so a peer
 * trickling bytes cannot stretch it.
 */
int nd_sock_recv_until(struct socket *sock, void *buf, size_t len,
		       const unsigned long *deadline)
{
	while (len) {
		struct kvec iov = { .iov_base = buf, .iov_len = len };
		struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
		int n;

		if (deadline) {
			long left = (long)(*deadline - jiffies);

			if (left <= 0)
				return -ETIMEDOUT;
			lock_sock(sock->sk);
			sock->sk->sk_rcvtimeo = left;
			release_sock(sock->sk);
		}
		n = kernel_recvmsg(sock, &msg, &iov, 1, len,
				   MSG_WAITALL | MSG_NOSIGNAL);
		if (n == -EAGAIN)
			return -ETIMEDOUT;	/* SO_RCVTIMEO expired */
		if (n < 0)
			return n;
		if (n == 0)
			return -ECONNRESET;	/* peer closed */
		buf += n;
		len -= n;
	}
	return 0;
}

int nd_sock_recv(struct socket *sock, void *buf, size_t len)
{
	return nd_sock_recv_until(sock, buf, len, NULL);
}

static void nd_tx_work(struct work_struct *work);
static void nd_reconnect_work(struct work_struct *work);

struct nd_conn *nd_conn_create(struct nd_device *dev, unsigned int qid)
{
	struct nd_conn *c = kzalloc(sizeof(*c), GFP_KERNEL);

	if (!c)
		return NULL;
	c->dev = dev;
	c->qid = qid;
	spin_lock_init(&c->queue_lock);
	INIT_LIST_HEAD(&c->queue);
	mutex_init(&c->tx_lock);
	mutex_init(&c->sock_lock);
	INIT_WORK(&c->tx_work, nd_tx_work);
	INIT_DELAYED_WORK(&c->reconnect_work, nd_reconnect_work);
	return c;
}

/* Shuts down the current socket: blocked connect/send/recv return. */
void nd_conn_shutdown(struct nd_conn *c)
{
	mutex_lock(&c->sock_lock);
	if (c->sock)
		kernel_sock_shutdown(c->sock, SHUT_RDWR);
	mutex_unlock(&c->sock_lock);
}

/* Forgets and releases the current socket (reconnect worker only). */
static void nd_conn_drop_sock(struct nd_conn *c)
{
	struct socket *sock;

	mutex_lock(&c->sock_lock);
	sock = c->sock;
	c->sock = NULL;
	mutex_unlock(&c->sock_lock);
	if (sock)
		sock_release(sock);
}

static void nd_set_timeouts(struct socket *sock, long snd, long rcv)
{
	struct sock *sk = sock->sk;

	lock_sock(sk);
	sk->sk_sndtimeo = snd;
	sk->sk_rcvtimeo = rcv;
	release_sock(sk);
}

/* Connects within the timeout; returns 0 or a negative errno. */
static int nd_connect(struct nd_conn *c, const struct nd_conn_params *p)
{
	struct socket *sock;
	int err;

	/*
	 * In the attaching task's namespace, also from the reconnect worker.
	 * A kernel socket pins no namespace: dev->net holds it.
	 */
	err = sock_create_kern(c->dev->net, p->addr.ss_family, SOCK_STREAM,
			       IPPROTO_TCP, &sock);
	if (err)
		return err;
	/* Allocations must not recurse into our own block device. */
	nd_compat_sock_setup(sock->sk);
	/* Published first, so that a forced detach can interrupt connect. */
	mutex_lock(&c->sock_lock);
	c->sock = sock;
	err = nd_conn_dead(c) ? -ESHUTDOWN : 0;
	mutex_unlock(&c->sock_lock);
	if (err)
		return err;
	nd_set_timeouts(sock, msecs_to_jiffies(p->connect_timeout_ms),
			MAX_SCHEDULE_TIMEOUT);
	err = nd_compat_kernel_connect(sock, &p->addr, p->addr_len, 0);
	if (err == -EINPROGRESS || err == -EAGAIN)
		return -ETIMEDOUT;	/* connect waits up to SO_SNDTIMEO */
	if (err)
		return err;
	tcp_sock_set_nodelay(sock->sk);
	/* Notices a vanished server even when no I/O is outstanding. */
	sock_set_keepalive(sock->sk);
	tcp_sock_set_keepidle(sock->sk, 30);
	tcp_sock_set_keepintvl(sock->sk, 10);
	tcp_sock_set_keepcnt(sock->sk, 3);
	return 0;
}

void nd_conn_connect(struct nd_conn *c, const struct nd_conn_params *p,
		     struct nd_hs_result *r)
{
	int err;

	memset(r, 0, sizeof(*r));
	err = nd_connect(c, p);
	if (err == -ERESTARTSYS || err == -EINTR) {
		r->result = ND_ATTACH_LOCAL;
		r->err = -EINTR;
		return;
	}
	if (err) {
		r->result = c->sock ? ND_ATTACH_CONNECT : ND_ATTACH_LOCAL;
		r->err = err;
		if (!c->quiet)
			pr_err("%s: cannot connect to %s (error %d)\n",
			       c->dev->name, c->dev->server, err);
		return;
	}
	nd_set_timeouts(c->sock, ND_HANDSHAKE_TIMEOUT * HZ,
			ND_HANDSHAKE_TIMEOUT * HZ);
	nd_handshake(c, p, r);
	if (r->result == ND_ATTACH_OK)
		c->max_payload = r->info.max_payload;
}

bool nd_conn_dead(struct nd_conn *c)
{
	return test_bit(ND_CONN_DEAD, &c->flags);
}

bool nd_conn_reconnecting(struct nd_conn *c)
{
	return test_bit(ND_CONN_RECONNECTING, &c->flags);
}

/*
 * Called by queue_rq (atomic context). Returns false if the connection is
 * dead: the caller fails the request. While reconnecting the request waits
 * on the queue.
 */
bool nd_conn_queue(struct nd_conn *c, struct request *rq)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	bool held;

	spin_lock(&c->queue_lock);
	if (test_bit(ND_CONN_DEAD, &c->flags)) {
		spin_unlock(&c->queue_lock);
		return false;
	}
	/* Set before the request is visible to nd_conn_kill's sweep. */
	spin_lock(&cmd->lock);
	cmd->cookie++;
	cmd->sent_gen = 0;
	cmd->inflight = true;
	cmd->status = BLK_STS_OK;
	cmd->queued_at = jiffies;
	spin_unlock(&cmd->lock);
	/* Unlinked by whoever claimed its last use: never on a list here. */
	list_add_tail(&cmd->list, &c->queue);
	held = test_bit(ND_CONN_RECONNECTING, &c->flags);
	spin_unlock(&c->queue_lock);
	if (!held)
		queue_work(c->dev->tx_wq, &c->tx_work);
	return true;
}

/* Seals and sends one request; tx_lock held. */
static int nd_tx_one(struct nd_conn *c, struct nd_cmd *cmd, bool more)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	u8 *rec = c->tx_buf.data;
	int len, err;

	spin_lock(&cmd->lock);
	if (!cmd->inflight) {
		/* Already failed by nd_conn_kill. */
		spin_unlock(&cmd->lock);
		return 0;
	}
	len = nd_blk_build(c->dev, rq, rec + ND_RECORD_HDR_LEN);
	cmd->sent_gen = c->gen;
	spin_unlock(&cmd->lock);
	/* From here on only our buffer is used: rq may complete any time. */
	nd_cache_stage_write(c->dev->cache, cmd, rec + ND_RECORD_HDR_LEN, len);
	err = nd_seal(&c->tx, c->tx_buf.sgt.sgl, rec, len);
	if (err)
		return err;
	return nd_sock_xmit(c->sock, rec, ND_RECORD_HDR_LEN + len + ND_TAG_LEN,
			    more ? MSG_MORE : 0);
}

static void nd_tx_work(struct work_struct *work)
{
	struct nd_conn *c = container_of(work, struct nd_conn, tx_work);
	unsigned int noio = memalloc_noio_save();

	mutex_lock(&c->tx_lock);
	for (;;) {
		struct nd_cmd *cmd;
		bool more;
		int err;

		spin_lock(&c->queue_lock);
		/* Broken: leave the queue to the reconnect worker. */
		cmd = (c->flags & (BIT(ND_CONN_DEAD) |
				   BIT(ND_CONN_RECONNECTING))) ? NULL :
			list_first_entry_or_null(&c->queue, struct nd_cmd, list);
		if (cmd)
			list_del_init(&cmd->list);
		more = !list_empty(&c->queue);
		spin_unlock(&c->queue_lock);
		if (!cmd)
			break;
		err = nd_tx_one(c, cmd, more);
		if (err) {
			nd_conn_kill(c, "connection lost");
			break;
		}
	}
	mutex_unlock(&c->tx_lock);
	memalloc_noio_restore(noio);
}

/* Receives, opens and dispatches one reply record. */
static int nd_rx_one(struct nd_conn *c, const char **why)
{
	u8 *rec = c->rx_buf.data;
	struct nd_reply rep;
	u32 len;
	int err;

	*why = "connection lost";
	err = nd_sock_recv(c->sock, rec, ND_RECORD_HDR_LEN);
	if (err)
		return err;
	len = nd_get32(rec);
	*why = "protocol error from server (bad record length)";
	if (len < ND_REPLY_HDR_LEN + ND_TAG_LEN ||
	    len > ND_REPLY_HDR_LEN + c->max_payload + ND_TAG_LEN)
		return -EPROTO;
	*why = "connection lost";
	err = nd_sock_recv(c->sock, rec + ND_RECORD_HDR_LEN, len);
	if (err)
		return err;
	*why = "record authentication failed (data altered in transit?)";
	err = nd_open(&c->rx, c->rx_buf.sgt.sgl, len);
	if (err)
		return err;
	*why = "protocol error from server (bad reply)";
	if (nd_reply_decode(rec + ND_RECORD_HDR_LEN, len - ND_TAG_LEN, &rep))
		return -EPROTO;
	*why = "protocol error from server (reply to unknown request)";
	return nd_blk_complete_reply(c->dev, c->qid, &rep,
				     rec + ND_RECORD_HDR_LEN + ND_REPLY_HDR_LEN);
}

static int nd_rx_thread(void *arg)
{
	struct nd_conn *c = arg;
	unsigned int noio = memalloc_noio_save();
	const char *why = NULL;

	/* After a break the shut-down socket ends the loop. */
	while (!kthread_should_stop() && !nd_conn_dead(c)) {
		if (nd_rx_one(c, &why)) {
			nd_conn_kill(c, why);
			break;
		}
	}
	memalloc_noio_restore(noio);
	/* nd_conn_close holds a task reference and calls kthread_stop. */
	return 0;
}

/* After a handshake: data path timeouts and a receiver for this socket. */
static int nd_conn_start_rx(struct nd_conn *c)
{
	struct task_struct *t;

	/* The handshake had timeouts; the data path relies on blk-mq's. */
	nd_set_timeouts(c->sock, MAX_SCHEDULE_TIMEOUT, MAX_SCHEDULE_TIMEOUT);
	/* Replies to what was sent before this point are not accepted. */
	if (!++c->gen)
		c->gen = 1;	/* 0 means "not sent" */
	t = kthread_create(nd_rx_thread, c, "%s-rx", c->dev->name);
	if (IS_ERR(t))
		return PTR_ERR(t);
	get_task_struct(t);
	c->rx_thread = t;
	wake_up_process(t);
	return 0;
}

int nd_conn_start(struct nd_conn *c)
{
	int err;

	err = nd_buf_alloc(&c->tx_buf, ND_RECORD_HDR_LEN + ND_REQ_HDR_LEN +
			   c->max_payload + ND_TAG_LEN);
	if (err)
		return err;
	err = nd_buf_alloc(&c->rx_buf, ND_RECORD_HDR_LEN + ND_REPLY_HDR_LEN +
			   c->max_payload + ND_TAG_LEN);
	if (err)
		return err;
	return nd_conn_start_rx(c);
}

/*
 * Marks the connection dead (queue_rq fails new requests at once, nothing
 * is queued or requeued on it any more) and empties its send queue; the
 * requests stay in flight for the caller's sweep. True the first time.
 */
bool nd_conn_mark_dead(struct nd_conn *c)
{
	bool was_dead;

	spin_lock(&c->queue_lock);
	was_dead = test_and_set_bit(ND_CONN_DEAD, &c->flags);
	while (!list_empty(&c->queue))
		list_del_init(c->queue.next);
	spin_unlock(&c->queue_lock);
	return !was_dead;
}

/*
 * Gives this connection up once (detach in progress: the others stay):
 * later requests fail at once, its queued and outstanding ones fail with
 * EIO, blocked socket calls return. nd_dev_fail gives them all up. Must
 * not be called with a request's cmd->lock held.
 */
void nd_conn_fail(struct nd_conn *c, const char *why)
{
	if (!nd_conn_mark_dead(c))
		return;
	if (why && !test_bit(ND_CONN_CLOSING, &c->flags))
		pr_err("%s: %s\n", c->dev->name, why);
	nd_conn_shutdown(c);
	nd_blk_fail_all(c->dev, c);
}

/*
 * The connection broke. With a reconnect timeout (and no detach going on)
 * requests are held and the reconnect worker takes over; otherwise the
 * connection is given up. Process context; no cmd->lock held.
 */
void nd_conn_kill(struct nd_conn *c, const char *why)
{
	struct nd_device *dev = c->dev;
	bool first;

	if (test_bit(ND_CONN_CLOSING, &c->flags)) {
		nd_conn_fail(c, why);
		return;
	}
	if (!nd_dev_reconnect_timeout(dev) || !dev->params) {
		nd_dev_fail(dev, why);
		return;
	}
	spin_lock(&c->queue_lock);
	first = !(c->flags & (BIT(ND_CONN_DEAD) | BIT(ND_CONN_RECONNECTING)));
	if (first) {
		set_bit(ND_CONN_RECONNECTING, &c->flags);
		c->reconnect_since = jiffies;
		c->backoff_ms = ND_BACKOFF_MIN_MS;
		c->quiet = false;
	}
	spin_unlock(&c->queue_lock);
	if (!first)
		return;
	if (why)
		pr_err("%s: %s\n", dev->name, why);
	if (dev->nr_conns > 1)
		pr_warn("%s: connection lost, reconnecting (connection %u)\n",
			dev->name, c->qid);
	else
		pr_warn("%s: connection lost, reconnecting\n", dev->name);
	nd_conn_shutdown(c);
	queue_delayed_work(dev->reconnect_wq, &c->reconnect_work, 0);
}

/* Puts every request still ours back on the queue, with a new handle. */
static bool nd_requeue_one(struct request *rq, void *data)
{
	struct nd_conn *c = data;
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);

	spin_lock(&c->queue_lock);
	spin_lock(&cmd->lock);
	if (rq->mq_hctx->queue_num == c->qid && cmd->inflight &&
	    !test_bit(ND_CONN_DEAD, &c->flags)) {
		cmd->cookie++;
		cmd->sent_gen = 0;
		if (list_empty(&cmd->list))
			list_add_tail(&cmd->list, &c->queue);
	}
	spin_unlock(&cmd->lock);
	spin_unlock(&c->queue_lock);
	return true;
}

/* The session after a reconnect must be the same disk. */
static bool nd_same_export(const struct nd_session_info *a,
			   const struct nd_session_info *b)
{
	return a->size == b->size && a->block_size == b->block_size &&
	       a->max_payload == b->max_payload &&
	       !memcmp(a->export_id, b->export_id, ND_EXPORT_ID_LEN);
}

/*
 * One connect + handshake; tx_lock held. 0, -EAGAIN (retry; also for
 * "superseded": the next attempt has a larger epoch), -ESTALE (another
 * export), -EUCLEAN (another client wrote the export meanwhile) or
 * -EMEDIUMTYPE (the base image under this copy-on-write overlay changed).
 */
static int nd_reconnect_once(struct nd_conn *c, struct nd_hs_result *r)
{
	struct nd_device *dev = c->dev;
	struct nd_conn_params *p = dev->params;
	int tries;

	/*
	 * Serialised, so that one connection starts the new session (with the
	 * write epochs of the old one) and the others join it.
	 */
	mutex_lock(&dev->session_lock);
	for (tries = 0; tries < 2; tries++) {
		nd_conn_drop_sock(c);
		nd_dir_free(&c->tx);
		nd_dir_free(&c->rx);
		nd_conn_connect(c, p, r);
		/* Authenticated: only SessionInfo may carry this status. */
		if (r->result != ND_ATTACH_REFUSED ||
		    r->server_status != ND_ERR_NO_SESSION)
			break;
		/* Server restarted or grace expired: a new session. */
		pr_info("%s: session unknown to the server, starting a new one\n",
			dev->name);
		memset(p->token, 0, ND_TOKEN_LEN);
		/*
		 * The server refuses the new session if anyone else wrote the
		 * export since the old one began: a writable session says
		 * which writer it followed and which it was.
		 */
		p->resume_writer = dev->info.write_epoch ?
				   dev->info.last_writer : 0;
		p->resume_own = dev->info.write_epoch;
		/* Others may have written meanwhile: before any resend. */
		nd_cache_drop(dev->cache);
	}
	if (r->result == ND_ATTACH_OK && nd_same_export(&dev->info, &r->info) &&
	    memcmp(p->token, r->info.token, ND_TOKEN_LEN)) {
		/* A new session: the next one is checked against it. */
		memcpy(p->token, r->info.token, ND_TOKEN_LEN);
		dev->info.write_epoch = r->info.write_epoch;
		dev->info.last_writer = r->info.last_writer;
	}
	mutex_unlock(&dev->session_lock);
	if (r->result == ND_ATTACH_REFUSED &&
	    r->server_status == ND_ERR_WRITTEN)
		return -EUCLEAN;
	if (r->result == ND_ATTACH_REFUSED &&
	    r->server_status == ND_ERR_BASE_CHANGED)
		return -EMEDIUMTYPE;
	if (r->result != ND_ATTACH_OK)
		return -EAGAIN;
	if (!nd_same_export(&dev->info, &r->info)) {
		nd_cache_drop(dev->cache);
		return -ESTALE;
	}
	return nd_conn_start_rx(c) ? -EAGAIN : 0;
}

static void nd_reconnect_work(struct work_struct *work)
{
	struct nd_conn *c = container_of(to_delayed_work(work), struct nd_conn,
					 reconnect_work);
	struct nd_device *dev = c->dev;
	unsigned int noio = memalloc_noio_save();
	struct nd_hs_result *r;
	struct task_struct *old;
	unsigned long deadline, delay;
	unsigned int limit;
	bool dead;
	int err;

	if (nd_conn_dead(c))
		goto out;
	/* The old receiver ends: its socket is shut down. */
	old = c->rx_thread;
	c->rx_thread = NULL;
	if (old) {
		kthread_stop(old);
		put_task_struct(old);
	}
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	mutex_lock(&c->tx_lock);
	err = r ? nd_reconnect_once(c, r) : -EAGAIN;
	kfree_sensitive(r);
	if (err) {
		c->quiet = true;	/* the first failure was logged */
		mutex_unlock(&c->tx_lock);
		/* The limit now, from when the link broke: it may have changed. */
		limit = nd_dev_reconnect_timeout(dev);
		deadline = c->reconnect_since + (unsigned long)limit * HZ;
		if (err == -ESTALE)
			nd_dev_fail(dev, "export changed on the server, giving up");
		else if (err == -EUCLEAN)
			/* Its filesystem's view of the disk may be stale. */
			nd_dev_fail(dev, "export was written by another client while disconnected, giving up");
		else if (err == -EMEDIUMTYPE)
			/* No retry brings it back: only the admin can. */
			nd_dev_fail(dev, "base image of the overlay changed on the server, giving up");
		else if (limit != ND_RECONNECT_FOREVER &&
			 time_after(jiffies, deadline))
			nd_dev_fail(dev, "reconnect timeout expired, failing I/O");
		else if (!nd_conn_dead(c)) {
			delay = msecs_to_jiffies(c->backoff_ms);
			/* The last attempt falls on the deadline. */
			if (limit != ND_RECONNECT_FOREVER)
				delay = min(delay, deadline - jiffies + 1);
			queue_delayed_work(dev->reconnect_wq,
					   &c->reconnect_work, delay);
		}
		c->backoff_ms = min(c->backoff_ms * 2, ND_BACKOFF_MAX_MS);
		goto out;
	}
	blk_mq_tagset_busy_iter(&dev->tag_set, nd_requeue_one, c);
	spin_lock(&c->queue_lock);
	dead = test_bit(ND_CONN_DEAD, &c->flags);
	clear_bit(ND_CONN_RECONNECTING, &c->flags);
	spin_unlock(&c->queue_lock);
	mutex_unlock(&c->tx_lock);
	if (dead)
		goto out;	/* detach: nd_conn_close stops the receiver */
	atomic64_inc(&dev->reconnects);
	if (dev->nr_conns > 1)
		pr_info("%s: reconnected (connection %u)\n", dev->name, c->qid);
	else
		pr_info("%s: reconnected\n", dev->name);
	queue_work(dev->tx_wq, &c->tx_work);
out:
	memalloc_noio_restore(noio);
}

/* Sends DISCONNECT: the server finishes earlier requests, then closes. */
static void nd_send_disconnect(struct nd_conn *c)
{
	struct nd_request r = { .op = ND_OP_DISCONNECT };
	u8 *rec = c->tx_buf.data;

	mutex_lock(&c->tx_lock);
	if (!nd_conn_dead(c) && !nd_conn_reconnecting(c)) {
		/* A stuck server must not hang detach or rmmod. */
		nd_set_timeouts(c->sock, ND_DISCONNECT_TIMEOUT_S * HZ,
				MAX_SCHEDULE_TIMEOUT);
		nd_request_encode(rec + ND_RECORD_HDR_LEN, &r);
		if (!nd_seal(&c->tx, c->tx_buf.sgt.sgl, rec, ND_REQ_HDR_LEN))
			nd_sock_send(c->sock, rec, ND_RECORD_HDR_LEN +
				     ND_REQ_HDR_LEN + ND_TAG_LEN);
	}
	mutex_unlock(&c->tx_lock);
}

/*
 * Stops all activity on a started connection. The block queue must be
 * drained already (after del_gendisk). Waits for the sender and receiver.
 */
void nd_conn_close(struct nd_conn *c, bool graceful)
{
	set_bit(ND_CONN_CLOSING, &c->flags);
	flush_work(&c->tx_work);
	if (graceful && c->tx_buf.data)
		nd_send_disconnect(c);
	nd_conn_kill(c, NULL);
	/* A running reconnect attempt sees DEAD or its socket shut down. */
	cancel_delayed_work_sync(&c->reconnect_work);
	flush_work(&c->tx_work);
	nd_conn_shutdown(c);	/* a receiver the worker may have started */
	if (c->rx_thread) {
		kthread_stop(c->rx_thread);
		put_task_struct(c->rx_thread);
		c->rx_thread = NULL;
	}
}

/* Frees a closed (or never started) connection and wipes its keys. */
void nd_conn_free(struct nd_conn *c)
{
	if (!c)
		return;
	if (c->sock)
		sock_release(c->sock);
	nd_dir_free(&c->tx);
	nd_dir_free(&c->rx);
	nd_buf_free(&c->tx_buf);
	nd_buf_free(&c->rx_buf);
	kfree_sensitive(c);
}
