// SPDX-License-Identifier: GPL-2.0
/*
 * Load-time self-test: the kernel crypto API implementation of the key
 * schedule and record layer must reproduce the protocol's test vectors
 * (include/netdisk_vectors.h), byte for byte, or the module refuses to load.
 */
#include <crypto/algapi.h>
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

int nd_selftest(void)
{
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.timestamp = ND_VEC_TIMESTAMP,
		.identity_len = ND_VEC_NAME_LEN,
		.export_len = ND_VEC_NAME_LEN,
	};
	struct nd_dir *dir;
	struct scatterlist sg;
	u8 *buf, *prk, *okm, *th, *mac;
	size_t len;
	int err;

	/* Heap, not stack: scatterlists must map linear memory. */
	buf = kzalloc(256 + ND_HASH_LEN * 3 + ND_OKM_LEN, GFP_KERNEL);
	dir = kzalloc(sizeof(*dir), GFP_KERNEL);
	if (!buf || !dir) {
		err = -ENOMEM;
		goto out_free;
	}
	prk = buf + 256;
	th = prk + ND_HASH_LEN;
	mac = th + ND_HASH_LEN;
	okm = mac + ND_HASH_LEN;

	/* The shared encoder produces the vector's ClientHello. */
	memcpy(ch.random, nd_vec_client_random, ND_RANDOM_LEN);
	memcpy(ch.identity, ND_VEC_NAME, ND_VEC_NAME_LEN);
	memcpy(ch.export_name, ND_VEC_NAME, ND_VEC_NAME_LEN);
	len = nd_client_hello_encode(buf, &ch);
	err = 0;
	ND_CHECK(len == sizeof(nd_vec_client_hello) &&
		 !memcmp(buf, nd_vec_client_hello, len), "ClientHello encoding");

	err = nd_sha256(nd_vec_client_hello, sizeof(nd_vec_client_hello),
			nd_vec_server_hello, ND_SERVER_HELLO_TH_LEN, th);
	if (err)
		goto out;
	ND_CHECK(!memcmp(th, nd_vec_th, ND_HASH_LEN), "transcript hash");

	err = nd_derive(nd_vec_psk, nd_vec_client_random, nd_vec_server_random,
			th, prk, okm);
	if (err)
		goto out;
	ND_CHECK(!memcmp(prk, nd_vec_prk, ND_HASH_LEN), "HKDF-Extract (PRK)");
	ND_CHECK(!memcmp(okm, nd_vec_okm, ND_OKM_LEN), "HKDF-Expand (OKM)");

	err = nd_hmac(okm + ND_OKM_S_FINISH, ND_HASH_LEN, th, ND_HASH_LEN, mac);
	if (err)
		goto out;
	ND_CHECK(!crypto_memneq(mac, nd_vec_server_verify, ND_HASH_LEN),
		 "server_verify");
	err = nd_hmac(okm + ND_OKM_C_FINISH, ND_HASH_LEN, th, ND_HASH_LEN, mac);
	if (err)
		goto out;
	ND_CHECK(!crypto_memneq(mac, nd_vec_client_verify, ND_HASH_LEN),
		 "client_verify");

	/* c2s record number 0. */
	err = nd_dir_init(dir, okm + ND_OKM_C2S_KEY, okm + ND_OKM_C2S_IV,
			  ND_VEC_C2S_SEQ);
	if (err)
		goto out;
	memset(buf, 0, 256);
	memcpy(buf + ND_RECORD_HDR_LEN, nd_vec_c2s_plain,
	       sizeof(nd_vec_c2s_plain));
	len = ND_RECORD_HDR_LEN + sizeof(nd_vec_c2s_plain) + ND_TAG_LEN;
	sg_init_one(&sg, buf, len);
	err = nd_seal(dir, &sg, buf, sizeof(nd_vec_c2s_plain));
	nd_dir_free(dir);
	if (err)
		goto out;
	ND_CHECK(len == sizeof(nd_vec_c2s_record) &&
		 !memcmp(buf, nd_vec_c2s_record, len), "sealed c2s record");

	/* s2c record 65536: the first under the rotated key. */
	err = nd_dir_init(dir, okm + ND_OKM_S2C_KEY, okm + ND_OKM_S2C_IV,
			  ND_VEC_S2C_SEQ);
	if (err)
		goto out;
	len = sizeof(nd_vec_s2c_record);
	memcpy(buf, nd_vec_s2c_record, len);
	sg_init_one(&sg, buf, len);
	err = nd_open(dir, &sg, nd_get32(buf));
	ND_CHECK(!err, "opening s2c record after key rotation");
	ND_CHECK(!memcmp(dir->key, nd_vec_s2c_rekeyed_key, ND_KEY_LEN),
		 "rotated s2c key");
	ND_CHECK(!memcmp(buf + ND_RECORD_HDR_LEN, nd_vec_s2c_plain,
			 sizeof(nd_vec_s2c_plain)), "s2c plaintext");
	nd_dir_free(dir);

	/* A record with one flipped bit must not open. */
	err = nd_dir_init(dir, okm + ND_OKM_S2C_KEY, okm + ND_OKM_S2C_IV,
			  ND_VEC_S2C_SEQ);
	if (err)
		goto out;
	memcpy(buf, nd_vec_s2c_record, len);
	buf[len - 1] ^= 1;
	err = nd_open(dir, &sg, nd_get32(buf));
	ND_CHECK(err == -EBADMSG, "altered record was accepted");
	err = 0;
out:
	nd_dir_free(dir);
	if (err && err != -EINVAL)
		pr_err("netdisk: self-test could not run: crypto error %d\n",
		       err);
out_free:
	kfree_sensitive(buf);
	kfree(dir);
	return err;
}
