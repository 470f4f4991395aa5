// SPDX-License-Identifier: GPL-2.0
/*
 * Load-time self-test: X25519 from the curve25519 library and the kernel
 * crypto API implementation of the key schedule and record layer must
 * reproduce the protocol's test vectors (include/netdisk_vectors.h), byte
 * for byte, or the module refuses to load.
 */
#include <crypto/algapi.h>
#include <crypto/curve25519.h>
#include <linux/printk.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "netdisk.h"
#include "../include/netdisk_vectors.h"

#define ND_CHECK(cond, what)						\
	do {								\
		if (!(cond)) {						\
			pr_err("netdisk: self-test failed: %s\n", what);\
			err = -EINVAL;					\
			goto out;					\
		}							\
	} while (0)

/* Heap, not stack: scatterlists must map linear memory. */
struct nd_selftest {
	struct nd_dir dir;
	u8 buf[256];
	u8 eph[ND_SHARE_LEN];
	u8 share[ND_SHARE_LEN];
	u8 dh[ND_SHARE_LEN];
	u8 th[ND_HASH_LEN];
	u8 prk[ND_HASH_LEN];
	u8 okm[ND_OKM_LEN];
	u8 mac[ND_HASH_LEN];
	u8 key[ND_KEY_LEN];
	struct nd_client_hello ch;
	struct nd_server_hello sh;
	struct nd_client_finish cf;
};

/* share = X25519(eph, 9) with eph clamped as RFC 7748 decodes scalars. */
static int nd_st_share(struct nd_selftest *t, const u8 eph[ND_SHARE_LEN])
{
	memcpy(t->eph, eph, ND_SHARE_LEN);
	curve25519_clamp_secret(t->eph);
	return nd_x25519_public(t->share, t->eph);
}

static int nd_st_x25519(struct nd_selftest *t)
{
	static const u8 zero[ND_SHARE_LEN];
	int err;

	err = nd_st_share(t, nd_vec_server_eph);
	ND_CHECK(!err && !memcmp(t->share, nd_vec_server_share, ND_SHARE_LEN),
		 "X25519 server share");
	ND_CHECK(nd_x25519(t->dh, t->eph, nd_vec_client_share) &&
		 !memcmp(t->dh, nd_vec_dh, ND_SHARE_LEN), "X25519 dh (server)");
	err = nd_st_share(t, nd_vec_client_eph);
	ND_CHECK(!err && !memcmp(t->share, nd_vec_client_share, ND_SHARE_LEN),
		 "X25519 client share");
	ND_CHECK(nd_x25519(t->dh, t->eph, nd_vec_server_share) &&
		 !memcmp(t->dh, nd_vec_dh, ND_SHARE_LEN), "X25519 dh (client)");
	/* A low-order share gives dh 0: the handshake must refuse it. */
	ND_CHECK(!nd_x25519(t->dh, t->eph, zero),
		 "X25519 accepted a low-order point");
out:
	return err;
}

/* The shared encoders produce the vectors' hellos and ClientFinish. */
static int nd_st_messages(struct nd_selftest *t)
{
	size_t len;
	int err = 0;

	t->ch.version = ND_VERSION;
	t->ch.timestamp = ND_VEC_TIMESTAMP;
	t->ch.identity_len = ND_VEC_IDENTITY_LEN;
	t->ch.export_len = ND_VEC_EXPORT_LEN;
	memcpy(t->ch.identity, ND_VEC_IDENTITY, ND_VEC_IDENTITY_LEN);
	memcpy(t->ch.export_name, ND_VEC_EXPORT, ND_VEC_EXPORT_LEN);
	memcpy(t->ch.random, nd_vec_client_random, ND_RANDOM_LEN);
	memcpy(t->ch.share, nd_vec_client_share, ND_SHARE_LEN);
	len = nd_client_hello_encode(t->buf, &t->ch);
	ND_CHECK(len == sizeof(nd_vec_client_hello) &&
		 !memcmp(t->buf, nd_vec_client_hello, len),
		 "ClientHello encoding");

	t->sh.version = ND_VERSION;
	memcpy(t->sh.random, nd_vec_server_random, ND_RANDOM_LEN);
	memcpy(t->sh.share, nd_vec_server_share, ND_SHARE_LEN);
	memcpy(t->sh.verify, nd_vec_server_verify, ND_HASH_LEN);
	nd_server_hello_encode(t->buf, &t->sh);
	ND_CHECK(!memcmp(t->buf, nd_vec_server_hello, ND_SERVER_HELLO_LEN),
		 "ServerHello encoding");

	memcpy(t->cf.verify, nd_vec_client_verify, ND_HASH_LEN);
	t->cf.max_payload = ND_DEFAULT_PAYLOAD;
	t->cf.slot = 3;
	t->cf.epoch = 7;
	t->cf.resume_writer = 5;
	t->cf.resume_own = 6;
	nd_client_finish_encode(t->buf, &t->cf);
	ND_CHECK(!memcmp(t->buf, nd_vec_c2s_plain, ND_CLIENT_FINISH_LEN),
		 "ClientFinish encoding");
out:
	return err;
}

static int nd_st_schedule(struct nd_selftest *t)
{
	int err;

	err = nd_sha256(nd_vec_client_hello, sizeof(nd_vec_client_hello),
			nd_vec_server_hello, ND_SERVER_HELLO_TH_LEN, t->th);
	if (err)
		goto out;
	ND_CHECK(!memcmp(t->th, nd_vec_th, ND_HASH_LEN), "transcript hash");

	err = nd_derive(nd_vec_psk, nd_vec_dh, nd_vec_client_random,
			nd_vec_server_random, t->th, t->prk, t->okm);
	if (err)
		goto out;
	ND_CHECK(!memcmp(t->prk, nd_vec_prk, ND_HASH_LEN),
		 "HKDF-Extract (PRK)");
	ND_CHECK(!memcmp(t->okm, nd_vec_okm, ND_OKM_LEN), "HKDF-Expand (OKM)");

	err = nd_hmac(t->okm + ND_OKM_S_FINISH, ND_HASH_LEN, t->th,
		      ND_HASH_LEN, t->mac);
	if (err)
		goto out;
	ND_CHECK(!crypto_memneq(t->mac, nd_vec_server_verify, ND_HASH_LEN),
		 "server_verify");
	err = nd_hmac(t->okm + ND_OKM_C_FINISH, ND_HASH_LEN, t->th,
		      ND_HASH_LEN, t->mac);
	if (err)
		goto out;
	ND_CHECK(!crypto_memneq(t->mac, nd_vec_client_verify, ND_HASH_LEN),
		 "client_verify");
out:
	return err;
}

/* c2s record 0 under key_0. */
static int nd_st_c2s(struct nd_selftest *t)
{
	struct scatterlist sg;
	size_t len;
	int err;

	err = nd_dir_init(&t->dir, t->okm + ND_OKM_C2S_TRAFFIC,
			  t->okm + ND_OKM_C2S_IV, ND_VEC_C2S_SEQ) ?:
	      nd_dir_key(&t->dir, t->key);
	if (err)
		goto out;
	ND_CHECK(!memcmp(t->key, nd_vec_c2s_key0, ND_KEY_LEN), "c2s key_0");
	memset(t->buf, 0, sizeof(t->buf));
	memcpy(t->buf + ND_RECORD_HDR_LEN, nd_vec_c2s_plain,
	       sizeof(nd_vec_c2s_plain));
	len = ND_RECORD_HDR_LEN + sizeof(nd_vec_c2s_plain) + ND_TAG_LEN;
	sg_init_one(&sg, t->buf, len);
	err = nd_seal(&t->dir, &sg, t->buf, sizeof(nd_vec_c2s_plain));
	if (err)
		goto out;
	ND_CHECK(len == sizeof(nd_vec_c2s_record) &&
		 !memcmp(t->buf, nd_vec_c2s_record, len), "sealed c2s record");
out:
	nd_dir_free(&t->dir);
	return err;
}

/* s2c: key_0, then record 4096, the first under key generation 1. */
static int nd_st_s2c(struct nd_selftest *t)
{
	const size_t len = sizeof(nd_vec_s2c_record);
	struct scatterlist sg;
	int err;

	err = nd_dir_init(&t->dir, t->okm + ND_OKM_S2C_TRAFFIC,
			  t->okm + ND_OKM_S2C_IV, 0) ?:
	      nd_dir_key(&t->dir, t->key);
	if (err)
		goto out;
	ND_CHECK(!memcmp(t->key, nd_vec_s2c_key0, ND_KEY_LEN), "s2c key_0");
	nd_dir_free(&t->dir);

	err = nd_dir_init(&t->dir, t->okm + ND_OKM_S2C_TRAFFIC,
			  t->okm + ND_OKM_S2C_IV, ND_VEC_S2C_SEQ) ?:
	      nd_dir_key(&t->dir, t->key);
	if (err)
		goto out;
	ND_CHECK(t->dir.gen == 1 &&
		 !memcmp(t->dir.traffic, nd_vec_s2c_traffic1, ND_KEY_LEN),
		 "s2c traffic_1");
	ND_CHECK(!memcmp(t->key, nd_vec_s2c_key1, ND_KEY_LEN), "s2c key_1");
	memcpy(t->buf, nd_vec_s2c_record, len);
	sg_init_one(&sg, t->buf, len);
	err = nd_open(&t->dir, &sg, nd_get32(t->buf));
	ND_CHECK(!err, "opening s2c record 4096 (key generation 1)");
	ND_CHECK(!memcmp(t->buf + ND_RECORD_HDR_LEN, nd_vec_s2c_plain,
			 sizeof(nd_vec_s2c_plain)), "s2c plaintext");
	nd_dir_free(&t->dir);

	/* A record with one flipped bit must not open. */
	err = nd_dir_init(&t->dir, t->okm + ND_OKM_S2C_TRAFFIC,
			  t->okm + ND_OKM_S2C_IV, ND_VEC_S2C_SEQ);
	if (err)
		goto out;
	memcpy(t->buf, nd_vec_s2c_record, len);
	t->buf[len - 1] ^= 1;
	err = nd_open(&t->dir, &sg, nd_get32(t->buf));
	ND_CHECK(err == -EBADMSG, "altered record was accepted");
	/* A failed record ends the direction: nothing opens after it. */
	memcpy(t->buf, nd_vec_s2c_record, len);
	err = nd_open(&t->dir, &sg, nd_get32(t->buf));
	ND_CHECK(err == -EIO, "direction still usable after a failed record");
	err = 0;
out:
	nd_dir_free(&t->dir);
	return err;
}

int nd_selftest(void)
{
	struct nd_selftest *t;
	int err;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	err = nd_st_x25519(t) ?: nd_st_messages(t) ?: nd_st_schedule(t) ?:
	      nd_st_c2s(t) ?: nd_st_s2c(t);
	if (err && err != -EINVAL)
		pr_err("netdisk: self-test could not run: crypto error %d\n",
		       err);
	kfree_sensitive(t);
	return err;
}
