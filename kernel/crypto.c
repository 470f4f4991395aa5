// SPDX-License-Identifier: GPL-2.0
/*
 * Key schedule (SHA-256, HMAC, HKDF built from HMAC calls as fs/crypto does)
 * and the AES-256-GCM record layer, on the kernel crypto API.
 */
#include <crypto/aead.h>
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

int nd_derive(const u8 psk[ND_KEY_LEN], const u8 crand[ND_RANDOM_LEN],
	      const u8 srand[ND_RANDOM_LEN], const u8 th[ND_HASH_LEN],
	      u8 prk[ND_HASH_LEN], u8 okm[ND_OKM_LEN])
{
	struct crypto_shash *hmac;
	u8 salt[2 * ND_RANDOM_LEN];
	int err;

	hmac = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(hmac))
		return PTR_ERR(hmac);
	memcpy(salt, crand, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, srand, ND_RANDOM_LEN);
	/* Extract: PRK = HMAC(salt, PSK); then Expand with PRK as key. */
	err = crypto_shash_setkey(hmac, salt, sizeof(salt)) ?:
	      crypto_shash_tfm_digest(hmac, psk, ND_KEY_LEN, prk) ?:
	      crypto_shash_setkey(hmac, prk, ND_HASH_LEN) ?:
	      nd_hkdf_expand(hmac, (const u8 *)ND_KDF_LABEL, ND_KDF_LABEL_LEN,
			     th, ND_HASH_LEN, okm, ND_OKM_LEN);
	crypto_free_shash(hmac);	/* zeroes the tfm's key state */
	return err;
}

int nd_dir_init(struct nd_dir *d, const u8 key[ND_KEY_LEN],
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
	err = crypto_aead_setauthsize(d->aead, ND_TAG_LEN) ?:
	      crypto_aead_setkey(d->aead, key, ND_KEY_LEN);
	if (err)
		goto fail;
	d->req = aead_request_alloc(d->aead, GFP_KERNEL);
	if (!d->req) {
		err = -ENOMEM;
		goto fail;
	}
	/* Kept only to derive the next key at rotation. */
	memcpy(d->key, key, ND_KEY_LEN);
	memcpy(d->iv, iv, ND_IV_LEN);
	d->seq = seq;
	return 0;
fail:
	nd_dir_free(d);
	return err;
}

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

/* Every ND_REKEY_RECORDS records: key = HKDF-Expand(key, rekey label, 32). */
static int nd_rekey_if_due(struct nd_dir *d)
{
	u8 next[ND_KEY_LEN];
	int err;

	if (!d->seq || d->seq % ND_REKEY_RECORDS)
		return 0;
	err = crypto_shash_setkey(d->hmac, d->key, ND_KEY_LEN) ?:
	      nd_hkdf_expand(d->hmac, (const u8 *)ND_REKEY_LABEL,
			     ND_REKEY_LABEL_LEN, NULL, 0, next, ND_KEY_LEN) ?:
	      crypto_aead_setkey(d->aead, next, ND_KEY_LEN);
	if (!err)
		memcpy(d->key, next, ND_KEY_LEN);
	memzero_explicit(next, sizeof(next));
	return err;
}

static int nd_aead_run(struct nd_dir *d, struct scatterlist *sg, u32 cryptlen,
		       bool enc)
{
	DECLARE_CRYPTO_WAIT(wait);
	int err;

	err = nd_rekey_if_due(d);
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
	if (err)
		return err;
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
