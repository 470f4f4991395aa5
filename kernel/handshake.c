// SPDX-License-Identifier: GPL-2.0
/*
 * Client side of the protocol v1 handshake (docs/PROTOCOL.md section 1) on
 * a connected socket with timeouts set: ClientHello, ServerHello with the
 * server's key proof, ClientFinish and SessionInfo in the first records.
 */
#include <crypto/algapi.h>
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
	u8 sh_buf[ND_SERVER_HELLO_LEN];
	u8 th[ND_HASH_LEN];
	u8 prk[ND_HASH_LEN];
	u8 okm[ND_OKM_LEN];
	u8 mac[ND_HASH_LEN];
	/* One record: length, body (ClientFinish or SessionInfo), tag. */
	u8 rec[ND_RECORD_HDR_LEN + ND_SESSION_INFO_LEN + ND_TAG_LEN];
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

static int nd_hs_send_finish(struct nd_conn *c, const struct nd_conn_params *p,
			     struct nd_hs *hs)
{
	struct scatterlist sg;
	int err;

	err = nd_hmac(hs->okm + ND_OKM_C_FINISH, ND_HASH_LEN, hs->th,
		      ND_HASH_LEN, hs->cf.verify);
	if (err)
		return err;
	memcpy(hs->cf.token, p->token, ND_TOKEN_LEN);
	hs->cf.flags = p->flags;
	hs->cf.max_payload = p->max_payload;
	nd_client_finish_encode(hs->rec + ND_RECORD_HDR_LEN, &hs->cf);
	sg_init_one(&sg, hs->rec, ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN +
		    ND_TAG_LEN);
	err = nd_seal(&c->tx, &sg, hs->rec, ND_CLIENT_FINISH_LEN);
	if (err)
		return err;
	return nd_sock_send(c->sock, hs->rec, ND_RECORD_HDR_LEN +
			    ND_CLIENT_FINISH_LEN + ND_TAG_LEN);
}

void nd_handshake(struct nd_conn *c, const struct nd_conn_params *p,
		  struct nd_hs_result *r)
{
	const u32 info_rec = ND_SESSION_INFO_LEN + ND_TAG_LEN;
	unsigned long deadline = jiffies + ND_HANDSHAKE_TIMEOUT * HZ;
	struct nd_session_info *info = &r->info;
	struct scatterlist sg;
	const char *why;
	struct nd_hs *hs;
	size_t ch_len;
	int err;

	hs = kzalloc(sizeof(*hs), GFP_KERNEL);
	if (!hs) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, -ENOMEM, NULL);
		return;
	}

	hs->ch.version = ND_VERSION;
	hs->ch.timestamp = (u64)ktime_get_real_seconds();
	get_random_bytes(hs->ch.random, ND_RANDOM_LEN);
	hs->ch.identity_len = p->identity_len;
	hs->ch.export_len = p->export_len;
	memcpy(hs->ch.identity, p->identity, p->identity_len);
	memcpy(hs->ch.export_name, p->export_name, p->export_len);
	ch_len = nd_client_hello_encode(hs->ch_buf, &hs->ch);

	err = nd_sock_send(c->sock, hs->ch_buf, ch_len) ?:
	      nd_sock_recv_until(c->sock, hs->sh_buf, ND_SERVER_HELLO_LEN,
				 &deadline);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOST, err,
			   "connection lost during handshake (server closed it or timed out)");
		goto out;
	}
	/*
	 * Anyone on the path can forge a ServerHello: statuses that change
	 * what we do next (busy, unknown session) count only in SessionInfo.
	 */
	if (nd_server_hello_decode(hs->sh_buf, &hs->sh)) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   nd_get32(hs->sh_buf) == ND_MAGIC ?
			   "protocol error during handshake (status not allowed in server hello)" :
			   "protocol error during handshake (not a netdisk server?)");
		goto out;
	}
	if (hs->sh.status != ND_OK) {
		r->server_status = hs->sh.status;
		nd_hs_fail(r, c, ND_ATTACH_REFUSED, -ECONNREFUSED, NULL);
		if (!c->quiet)
			pr_err("%s: %s\n", c->dev->name,
			       nd_status_str(hs->sh.status));
		goto out;
	}
	if (hs->sh.version != ND_VERSION) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (unsupported version)");
		goto out;
	}

	err = nd_sha256(hs->ch_buf, ch_len, hs->sh_buf, ND_SERVER_HELLO_TH_LEN,
			hs->th) ?:
	      nd_derive(p->psk, hs->ch.random, hs->sh.random, hs->th, hs->prk,
			hs->okm) ?:
	      nd_hmac(hs->okm + ND_OKM_S_FINISH, ND_HASH_LEN, hs->th,
		      ND_HASH_LEN, hs->mac);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
		goto out;
	}
	/* The server proves the key first: a wrong key stops here. */
	if (crypto_memneq(hs->mac, hs->sh.verify, ND_HASH_LEN)) {
		nd_hs_fail(r, c, ND_ATTACH_AUTH, -EACCES,
			   "authentication failed (wrong key?)");
		goto out;
	}

	err = nd_dir_init(&c->tx, hs->okm + ND_OKM_C2S_KEY,
			  hs->okm + ND_OKM_C2S_IV, 0) ?:
	      nd_dir_init(&c->rx, hs->okm + ND_OKM_S2C_KEY,
			  hs->okm + ND_OKM_S2C_IV, 0);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOCAL, err, "crypto error");
		goto out;
	}

	err = nd_hs_send_finish(c, p, hs);
	if (!err)
		err = nd_sock_recv_until(c->sock, hs->rec, ND_RECORD_HDR_LEN,
					 &deadline);
	if (!err && nd_get32(hs->rec) != info_rec) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (bad session info)");
		goto out;
	}
	if (!err)
		err = nd_sock_recv_until(c->sock, hs->rec + ND_RECORD_HDR_LEN,
					 info_rec, &deadline);
	if (err) {
		nd_hs_fail(r, c, ND_ATTACH_LOST, err,
			   "connection lost during handshake (server closed it or timed out)");
		goto out;
	}
	sg_init_one(&sg, hs->rec, ND_RECORD_HDR_LEN + info_rec);
	if (nd_open(&c->rx, &sg, info_rec)) {
		nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO,
			   "protocol error during handshake (bad session info)");
		goto out;
	}
	if (nd_session_info_decode(hs->rec + ND_RECORD_HDR_LEN, info)) {
		why = nd_session_info_invalid(info);
		goto bad_info;
	}
	if (info->status != ND_OK) {
		r->server_status = info->status;
		nd_hs_fail(r, c, ND_ATTACH_REFUSED,
			   info->status == ND_ERR_BUSY ? -EBUSY : -ECONNREFUSED,
			   NULL);
		if (!c->quiet)
			pr_err("%s: %s\n", c->dev->name,
			       nd_status_str(info->status));
		goto out;
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
	goto out;
bad_info:
	nd_hs_fail(r, c, ND_ATTACH_PROTO, -EPROTO, NULL);
	if (!c->quiet)
		pr_err("%s: protocol error: unusable session info from the server (%s)\n",
		       c->dev->name, why);
out:
	if (r->result != ND_ATTACH_OK)	/* a session we will not use */
		memzero_explicit(info->token, ND_TOKEN_LEN);
	kfree_sensitive(hs);
}
