// SPDX-License-Identifier: GPL-2.0
/*
 * Key schedule (X25519 from the kernel's curve25519 library, as WireGuard
 * uses it; SHA-256, HMAC and HKDF built from HMAC calls as fs/crypto does)
 * and the AES-256-GCM record layer with its key ladder, on the kernel
 * crypto API.
 */
#include <crypto/aead.h>
#include <crypto/curve25519.h>
#include <crypto/hash.h>
#include <linux/crypto.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "netdisk.h"

int nd_sha256(const u8 *a, size_t alen, const u8 *b, size_t blen,
	      u8 out[ND_HASH_LEN])
{
	struct crypto_shash *tfm;
	int err;

	tfm = crypto_alloc_shash("sha256", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	{
		SHASH_DESC_ON_STACK(desc, tfm);

		desc->tfm = tfm;
		err = crypto_shash_init(desc) ?:
		      crypto_shash_update(desc, a, alen) ?:
		      crypto_shash_update(desc, b, blen) ?:
		      crypto_shash_final(desc, out);
		shash_desc_zero(desc);
	}
	crypto_free_shash(tfm);
	return err;
}

int nd_hmac(const u8 *key, size_t klen, const u8 *data, size_t dlen,
	    u8 out[ND_HASH_LEN])
{
	struct crypto_shash *tfm;
	int err;

	tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	err = crypto_shash_setkey(tfm, key, klen) ?:
	      crypto_shash_tfm_digest(tfm, data, dlen, out);
	crypto_free_shash(tfm);
	return err;
}

/*
 * HKDF-Expand (RFC 5869) with hmac already keyed by PRK:
 * T(i) = HMAC(PRK, T(i-1) || info1 || info2 || i).
 */
static int nd_hkdf_expand(struct crypto_shash *hmac, const u8 *info1,
			  size_t len1, const u8 *info2, size_t len2,
			  u8 *okm, size_t okm_len)
{
	SHASH_DESC_ON_STACK(desc, hmac);
	u8 block[ND_HASH_LEN];
	size_t done;
	u8 counter = 1;
	int err = 0;

	desc->tfm = hmac;
	for (done = 0; done < okm_len; done += ND_HASH_LEN, counter++) {
		size_t n = min_t(size_t, okm_len - done, ND_HASH_LEN);

		err = crypto_shash_init(desc);
		if (!err && done)
			err = crypto_shash_update(desc, block, ND_HASH_LEN);
		if (!err)
			err = crypto_shash_update(desc, info1, len1);
		if (!err && len2)
			err = crypto_shash_update(desc, info2, len2);
		if (!err)
			err = crypto_shash_update(desc, &counter, 1);
		if (!err)
			err = crypto_shash_final(desc, block);
		if (err)
			break;
		memcpy(okm + done, block, n);
	}
	memzero_explicit(block, sizeof(block));
	shash_desc_zero(desc);
	return err;
}

/* share = X25519(secret, 9); the secret is clamped as RFC 7748 says. */
int nd_x25519_public(u8 share[ND_SHARE_LEN], const u8 secret[ND_SHARE_LEN])
{
	return curve25519_generate_public(share, secret) ? 0 : -EINVAL;
}

/* A fresh ephemeral X25519 key pair. */
int nd_x25519_keypair(u8 secret[ND_SHARE_LEN], u8 share[ND_SHARE_LEN])
{
	curve25519_generate_secret(secret);
	return nd_x25519_public(share, secret);
}

/*
 * dh = X25519(secret, peer share). False if dh is all zero: the peer sent
 * a low-order point, and the result would not depend on our secret.
 */
bool nd_x25519(u8 dh[ND_SHARE_LEN], const u8 secret[ND_SHARE_LEN],
	       const u8 peer[ND_SHARE_LEN])
{
	return curve25519(dh, secret, peer);
}

int nd_derive(const u8 psk[ND_KEY_LEN], const u8 dh[ND_SHARE_LEN],
	      const u8 crand[ND_RANDOM_LEN], const u8 srand[ND_RANDOM_LEN],
	      const u8 th[ND_HASH_LEN], u8 prk[ND_HASH_LEN],
	      u8 okm[ND_OKM_LEN])
{
	struct crypto_shash *hmac;
	u8 salt[2 * ND_RANDOM_LEN];
	int err;

	hmac = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(hmac))
		return PTR_ERR(hmac);
	memcpy(salt, crand, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, srand, ND_RANDOM_LEN);
	/* Extract: PRK = HMAC(salt, PSK || dh). */
	err = crypto_shash_setkey(hmac, salt, sizeof(salt));
	if (!err) {
		SHASH_DESC_ON_STACK(desc, hmac);

		desc->tfm = hmac;
		err = crypto_shash_init(desc) ?:
		      crypto_shash_update(desc, psk, ND_KEY_LEN) ?:
		      crypto_shash_update(desc, dh, ND_SHARE_LEN) ?:
		      crypto_shash_final(desc, prk);
		shash_desc_zero(desc);
	}
	/* Expand with PRK as the key. */
	err = err ?:
	      crypto_shash_setkey(hmac, prk, ND_HASH_LEN) ?:
	      nd_hkdf_expand(hmac, (const u8 *)ND_KDF_LABEL, ND_KDF_LABEL_LEN,
			     th, ND_HASH_LEN, okm, ND_OKM_LEN);
	crypto_free_shash(hmac);	/* zeroes the tfm's key state */
	return err;
}

/* out = HKDF-Expand(secret, label, 32), hmac as scratch. */
static int nd_expand_label(struct crypto_shash *hmac,
			   const u8 secret[ND_HASH_LEN], const char *label,
			   size_t label_len, u8 out[ND_HASH_LEN])
{
	return crypto_shash_setkey(hmac, secret, ND_HASH_LEN) ?:
	       nd_hkdf_expand(hmac, (const u8 *)label, label_len, NULL, 0,
			      out, ND_HASH_LEN);
}

int nd_dir_key(struct nd_dir *d, u8 key[ND_KEY_LEN])
{
	return nd_expand_label(d->hmac, d->traffic, ND_KEY_LABEL,
			       ND_KEY_LABEL_LEN, key);
}

/* Gives the AEAD key_g of the current traffic secret. */
static int nd_dir_setkey(struct nd_dir *d)
{
	u8 key[ND_KEY_LEN];
	int err;

	err = nd_dir_key(d, key) ?:
	      crypto_aead_setkey(d->aead, key, ND_KEY_LEN);
	memzero_explicit(key, sizeof(key));
	return err;
}

/*
 * Moves to key generation seq / ND_REKEY_RECORDS (more than one step only
 * for a direction that starts past record 0, as the self-test's does):
 * traffic_g+1 = HKDF-Expand(traffic_g, traffic label), then key_g+1. Each
 * superseded traffic secret is overwritten.
 */
static int nd_dir_advance(struct nd_dir *d)
{
	u64 want = d->seq / ND_REKEY_RECORDS;
	u8 next[ND_KEY_LEN];
	int err = 0;

	if (d->broken)
		return -EIO;
	if (want == d->gen)
		return 0;
	while (!err && d->gen < want) {
		err = nd_expand_label(d->hmac, d->traffic, ND_TRAFFIC_LABEL,
				      ND_TRAFFIC_LABEL_LEN, next);
		if (!err) {
			memcpy(d->traffic, next, ND_KEY_LEN);
			d->gen++;
		}
	}
	memzero_explicit(next, sizeof(next));
	if (!err)
		err = nd_dir_setkey(d);
	/* gen has moved on: the old AES key must never seal again. */
	if (err)
		d->broken = true;
	return err;
}

int nd_dir_init(struct nd_dir *d, const u8 traffic[ND_KEY_LEN],
		const u8 iv[ND_IV_LEN], u64 seq)
{
	int err;

	memset(d, 0, sizeof(*d));
	d->aead = crypto_alloc_aead("gcm(aes)", 0, 0);
	if (IS_ERR(d->aead)) {
		err = PTR_ERR(d->aead);
		d->aead = NULL;
		return err;
	}
	d->hmac = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(d->hmac)) {
		err = PTR_ERR(d->hmac);
		d->hmac = NULL;
		goto fail;
	}
	/* The traffic secret, not the AES key, leads to the next key. */
	memcpy(d->traffic, traffic, ND_KEY_LEN);
	memcpy(d->iv, iv, ND_IV_LEN);
	d->seq = seq;
	err = crypto_aead_setauthsize(d->aead, ND_TAG_LEN) ?:
	      nd_dir_setkey(d) ?:
	      nd_dir_advance(d);
	if (err)
		goto fail;
	d->req = aead_request_alloc(d->aead, GFP_KERNEL);
	if (!d->req) {
		err = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	nd_dir_free(d);
	return err;
}

/* Frees the transforms (their key state is zeroed) and wipes the secret. */
void nd_dir_free(struct nd_dir *d)
{
	if (d->req)
		aead_request_free(d->req);
	if (d->aead)
		crypto_free_aead(d->aead);
	if (d->hmac)
		crypto_free_shash(d->hmac);
	memzero_explicit(d, sizeof(*d));
}

static int nd_aead_run(struct nd_dir *d, struct scatterlist *sg, u32 cryptlen,
		       bool enc)
{
	DECLARE_CRYPTO_WAIT(wait);
	int err;

	err = nd_dir_advance(d);
	if (err)
		return err;
	nd_nonce(d->nonce, d->iv, d->seq);
	aead_request_set_callback(d->req, CRYPTO_TFM_REQ_MAY_BACKLOG |
				  CRYPTO_TFM_REQ_MAY_SLEEP,
				  crypto_req_done, &wait);
	aead_request_set_ad(d->req, ND_RECORD_HDR_LEN);
	aead_request_set_crypt(d->req, sg, sg, cryptlen, d->nonce);
	err = crypto_wait_req(enc ? crypto_aead_encrypt(d->req) :
				    crypto_aead_decrypt(d->req), &wait);
	if (err) {
		/* seq did not move: a retry would reuse the nonce. */
		d->broken = true;
		return err;
	}
	d->seq++;
	return 0;
}

int nd_seal(struct nd_dir *d, struct scatterlist *sg, u8 *rec, u32 body_len)
{
	nd_put32(rec, body_len + ND_TAG_LEN);
	return nd_aead_run(d, sg, body_len, true);
}

int nd_open(struct nd_dir *d, struct scatterlist *sg, u32 rec_len)
{
	if (rec_len < ND_TAG_LEN)
		return -EBADMSG;
	return nd_aead_run(d, sg, rec_len, false);
}
