// SPDX-License-Identifier: GPL-2.0
/*
 * Client side of the protocol 2 handshake (docs/PROTOCOL.md section 1) on
 * a connected socket with timeouts set: ClientHello with an ephemeral
 * X25519 share, ServerHello with the server's share and key proof,
 * ClientFinish and SessionInfo in the first records. The ephemeral secret,
 * dh, PRK and OKM are wiped as soon as what follows from them is made.
 */
#include <crypto/algapi.h>
#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <net/sock.h>

#include "netdisk.h"

/* Everything secret or sizeable lives here, on the heap, wiped at the end. */
struct nd_hs {
	struct nd_client_hello ch;
	struct nd_server_hello sh;
	struct nd_client_finish cf;
	u8 ch_buf[ND_CLIENT_HELLO_MAX];
	size_t ch_len;
	u8 sh_buf[ND_SERVER_HELLO_LEN];
	u8 secret[ND_SHARE_LEN];	/* our ephemeral X25519 private key */
	u8 dh[ND_SHARE_LEN];
	u8 th[ND_HASH_LEN];
	u8 prk[ND_HASH_LEN];
	u8 okm[ND_OKM_LEN];
	u8 mac[ND_HASH_LEN];
	/* One record: length, body (ClientFinish or SessionInfo), tag. */
	u8 rec[ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN + ND_TAG_LEN];
	unsigned long deadline;		/* jiffies: the whole handshake */
};

static void nd_hs_fail(struct nd_hs_result *r, struct nd_conn *c, u32 result,
		       int err, const char *msg)
{
	r->result = result;
	r->err = err;
	if (err == -ERESTARTSYS || err == -EINTR) {
		/* Interrupted by a signal: not the server's fault. */
		r->result = ND_ATTACH_LOCAL;
		r->err = -EINTR;
		return;
	}
	if (msg && !c->quiet)
		pr_err("%s: %s\n", c->dev->name, msg);
}

/*
 * The connection broke before the SessionInfo: ND_ATTACH_LOST, with the
 * reason. A peer that accepts and closes at once (a forwarder whose
 * server is down, a connection limit) is no protocol error.
 */
static void nd_hs_lost(struct nd_hs_result *r, struct nd_conn *c, int err)
{
	nd_hs_fail(r, c, ND_ATTACH_LOST, err, NULL);
	if (r->result != ND_ATTACH_LOST || c->quiet)
		return;
	if (err == -ETIMEDOUT)
		pr_err("%s: timed out during the handshake (not complete within %u s)\n",
		       c->dev->name, ND_HANDSHAKE_TIMEOUT);
	else if (err == -ECONNRESET || err == -EPIPE)
		pr_err("%s: connection closed by the server during the handshake\n",
		       c->dev->name);
	else
		pr_err("%s: connection lost during the handshake (error %d)\n",
		       c->dev->name, err);
}

/*
 * Not a netdisk server: what it sent, up to the end of its first line
 * (what was already received, at most 64 bytes), escaped, so that a
 * forwarder's error message or another service's banner tells what
 * answered.
 */
static void nd_hs_not_ours(struct nd_hs_result *r, struct nd_conn *c,
			   struct nd_hs *hs)
{
	u8 *got = hs->sh_buf;	/* ND_SERVER_HELLO_LEN >= 64 */
	char text[64 * 4 + 1];	/* a byte takes at most 4 chars */
	struct kvec iov = {
		.iov_base = got + ND_SERVER_HELLO_HEAD,
		.iov_len = 64 - ND_SERVER_HELLO_HEAD,
	};
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };
	int n, i, o = 0, len = ND_SERVER_HELLO_HEAD;

	BUILD_BUG_ON(ND_SERVER_HELLO_LEN < 64);
	nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO, NULL);
	if (c->quiet)
		return;
	n = kernel_recvmsg(c->sock, &msg, &iov, 1, iov.iov_len,
			   MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		len += n;
	/*
	 * The peer's bytes, printable ASCII as they are and anything else
	 * (quotes, backslashes, bytes >= 0x7f) escaped: it cannot close the
	 * quote, forge the rest of the line or send raw bytes to a console.
	 */
	for (i = 0; i < len && got[i] != '\n' && got[i] != '\r'; i++) {
		if (got[i] >= 0x20 && got[i] < 0x7f && got[i] != '"' &&
		    got[i] != '\\')
			text[o++] = got[i];
		else
			o += scnprintf(text + o, sizeof(text) - o, "\\x%02x",
				       got[i]);
	}
	text[o] = '\0';
	/* Rate-limited: a boot's --wait retries a new device every second. */
	pr_err_ratelimited("%s: protocol error during handshake (not a netdisk server? it sent \"%s\")\n",
			   c->dev->name, text);
}

/* A status the server answered with: ND_ATTACH_REFUSED, logged once. */
static void nd_hs_refused(struct nd_hs_result *r, struct nd_conn *c,
			  u16 status)
{
	r->server_status = status;
	nd_hs_fail(r, c, ND_ATTACH_REFUSED,
		   status == ND_ERR_BUSY ? -EBUSY :
		   status == ND_ERR_ACCESS ? -EACCES :
		   status == ND_ERR_BASE_CHANGED ? -ESTALE :
		   -ECONNREFUSED, NULL);
	if (!c->quiet)
		pr_err("%s: server refused: %s\n", c->dev->name,
		       nd_status_str(status));
}

/* Sends the ClientHello with a fresh key share, reads the ServerHello. */
static int nd_hs_hello(struct nd_conn *c, const struct nd_conn_params *p,
		       struct nd_hs *hs, struct nd_hs_result *r)
{
	int err;

	hs->ch.version = ND_VERSION;
	hs->ch.timestamp = (u64)ktime_get_real_seconds();
	get_random_bytes(hs->ch.random, ND_RANDOM_LEN);
	hs->ch.identity_len = p->identity_len;
	hs->ch.export_len = p->export_len;
	memcpy(hs->ch.identity, p->identity, p->identity_len);
	memcpy(hs->ch.export_name, p->export_name, p->export_len);
	err = nd_x25519_keypair(hs->secret, hs->ch.share);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
		return err;
	}
	hs->ch_len = nd_client_hello_encode(hs->ch_buf, &hs->ch);

	/*
	 * The first 8 bytes first: a version-1 server answers a 72-byte
	 * hello whose status (9) is all we need of it.
	 */
	err = nd_sock_send(c->sock, hs->ch_buf, hs->ch_len) ?:
	      nd_sock_recv_until(c->sock, hs->sh_buf, ND_SERVER_HELLO_HEAD,
				 &hs->deadline);
	if (err) {
		nd_hs_lost(r, c, err);
		return err;
	}
	/*
	 * Anyone on the path can forge a ServerHello: statuses that change
	 * what we do next (busy, unknown session) count only in SessionInfo.
	 */
	if (nd_server_hello_decode_head(hs->sh_buf, &hs->sh)) {
		if (nd_get32(hs->sh_buf) != ND_MAGIC)
			nd_hs_not_ours(r, c, hs);
		else
			nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
				   "protocol error during handshake (status not allowed in server hello)");
		return -EPROTO;
	}
	if (hs->sh.status == ND_ERR_VERSION) {
		if (!c->quiet && hs->sh.version != ND_VERSION)
			pr_err("%s: the server speaks protocol version %u, this driver %u\n",
			       c->dev->name, hs->sh.version, ND_VERSION);
		nd_hs_refused(r, c, hs->sh.status);
		return -ECONNREFUSED;
	}
	if (hs->sh.version != ND_VERSION) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (status 0 with another version)");
		return -EPROTO;
	}
	err = nd_sock_recv_until(c->sock, hs->sh_buf + ND_SERVER_HELLO_HEAD,
				 ND_SERVER_HELLO_LEN - ND_SERVER_HELLO_HEAD,
				 &hs->deadline);
	if (err) {
		nd_hs_lost(r, c, err);
		return err;
	}
	nd_server_hello_decode(hs->sh_buf, &hs->sh);	/* head checked */
	return 0;
}

/*
 * Key schedule: dh, transcript, PRK, OKM; checks the server's proof and
 * sets up both record directions. Ephemeral secret, dh, PRK and OKM are
 * wiped here, on every path.
 */
static int nd_hs_keys(struct nd_conn *c, const struct nd_conn_params *p,
		      struct nd_hs *hs, struct nd_hs_result *r)
{
	bool dh_ok;
	int err;

	dh_ok = nd_x25519(hs->dh, hs->secret, hs->sh.share);
	memzero_explicit(hs->secret, sizeof(hs->secret));
	if (!dh_ok) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (server key share is a low-order point)");
		err = -EPROTO;
		goto out;
	}
	err = nd_sha256(hs->ch_buf, hs->ch_len, hs->sh_buf,
			ND_SERVER_HELLO_TH_LEN, hs->th) ?:
	      nd_derive(p->psk, hs->dh, hs->ch.random, hs->sh.random, hs->th,
			hs->prk, hs->okm);
	memzero_explicit(hs->dh, sizeof(hs->dh));
	memzero_explicit(hs->prk, sizeof(hs->prk));
	err = err ?:
	      nd_hmac(hs->okm + ND_OKM_S_FINISH, ND_HASH_LEN, hs->th,
		      ND_HASH_LEN, hs->mac) ?:
	      nd_hmac(hs->okm + ND_OKM_C_FINISH, ND_HASH_LEN, hs->th,
		      ND_HASH_LEN, hs->cf.verify);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
		goto out;
	}
	/* The server proves the key first: a wrong key stops here. */
	if (crypto_memneq(hs->mac, hs->sh.verify, ND_HASH_LEN)) {
		nd_hs_fail(r, c, ND_ATTACH_AUTH, -EACCES,
			   "authentication failed (wrong key?)");
		err = -EACCES;
		goto out;
	}
	err = nd_dir_init(&c->tx, hs->okm + ND_OKM_C2S_TRAFFIC,
			  hs->okm + ND_OKM_C2S_IV, 0) ?:
	      nd_dir_init(&c->rx, hs->okm + ND_OKM_S2C_TRAFFIC,
			  hs->okm + ND_OKM_S2C_IV, 0);
	if (err)
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
out:
	memzero_explicit(hs->okm, sizeof(hs->okm));
	return err;
}

/* Record c2s #0: the client's proof and what it asks of the session. */
static int nd_hs_send_finish(struct nd_conn *c, const struct nd_conn_params *p,
			     struct nd_hs *hs, struct nd_hs_result *r)
{
	struct scatterlist sg;
	int err;

	memcpy(hs->cf.token, p->token, ND_TOKEN_LEN);
	hs->cf.flags = p->flags;
	hs->cf.max_payload = p->max_payload;
	hs->cf.slot = c->qid;
	hs->cf.epoch = c->epoch;
	hs->cf.resume_writer = p->resume_writer;
	hs->cf.resume_own = p->resume_own;
	nd_client_finish_encode(hs->rec + ND_RECORD_HDR_LEN, &hs->cf);
	sg_init_one(&sg, hs->rec, ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN +
		    ND_TAG_LEN);
	err = nd_seal(&c->tx, &sg, hs->rec, ND_CLIENT_FINISH_LEN);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
		return err;
	}
	err = nd_sock_send(c->sock, hs->rec, ND_RECORD_HDR_LEN +
			   ND_CLIENT_FINISH_LEN + ND_TAG_LEN);
	if (err)
		nd_hs_lost(r, c, err);
	return err;
}

/* Record s2c #0: SessionInfo, the server's verdict. */
static void nd_hs_session(struct nd_conn *c, const struct nd_conn_params *p,
			  struct nd_hs *hs, struct nd_hs_result *r)
{
	const u32 info_rec = ND_SESSION_INFO_LEN + ND_TAG_LEN;
	struct nd_session_info *info = &r->info;
	struct scatterlist sg;
	const char *why;
	int err;

	err = nd_sock_recv_until(c->sock, hs->rec, ND_RECORD_HDR_LEN,
				 &hs->deadline);
	if (!err && nd_get32(hs->rec) != info_rec) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (bad session info)");
		return;
	}
	if (!err)
		err = nd_sock_recv_until(c->sock, hs->rec + ND_RECORD_HDR_LEN,
					 info_rec, &hs->deadline);
	if (err) {
		nd_hs_lost(r, c, err);
		return;
	}
	sg_init_one(&sg, hs->rec, ND_RECORD_HDR_LEN + info_rec);
	if (nd_open(&c->rx, &sg, info_rec)) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (bad session info)");
		return;
	}
	if (nd_session_info_decode(hs->rec + ND_RECORD_HDR_LEN, info)) {
		why = nd_session_info_invalid(info);
		goto bad_info;
	}
	/* Authenticated: every status here may change what we do. */
	if (info->status != ND_OK) {
		nd_hs_refused(r, c, info->status);
		return;
	}
	why = "max payload above the one asked for";
	if (info->max_payload > (p->max_payload ?: ND_DEFAULT_PAYLOAD))
		goto bad_info;
	/* Below 2^63 always; the page cache may limit it further. */
	why = "export too large for this kernel";
	if (info->size > MAX_LFS_FILESIZE)
		goto bad_info;
	r->result = ND_ATTACH_OK;
	r->err = 0;
	return;
bad_info:
	nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO, NULL);
	if (!c->quiet)
		pr_err("%s: protocol error: unusable session info from the server (%s)\n",
		       c->dev->name, why);
}

void nd_handshake(struct nd_conn *c, const struct nd_conn_params *p,
		  struct nd_hs_result *r)
{
	struct nd_hs *hs;

	BUILD_BUG_ON(ND_SESSION_INFO_LEN > ND_CLIENT_FINISH_LEN);
	/* A new attempt for this slot: the server fences the older ones. */
	c->epoch++;
	hs = kzalloc(sizeof(*hs), GFP_KERNEL);
	if (!hs) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, -ENOMEM, NULL);
		return;
	}
	hs->deadline = jiffies + ND_HANDSHAKE_TIMEOUT * HZ;
	/* Until the SessionInfo says OK. */
	r->result = ND_ATTACH_PROTO;
	r->err = -EPROTO;
	if (!nd_hs_hello(c, p, hs, r) && !nd_hs_keys(c, p, hs, r) &&
	    !nd_hs_send_finish(c, p, hs, r))
		nd_hs_session(c, p, hs, r);
	if (r->result != ND_ATTACH_OK)	/* a session we will not use */
		memzero_explicit(r->info.token, ND_TOKEN_LEN);
	kfree_sensitive(hs);
}
