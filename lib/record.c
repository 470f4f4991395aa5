// SPDX-License-Identifier: MIT
/*
 * Record layer: AES-256-GCM with one EVP_CIPHER_CTX per direction. The key
 * is set once per generation; each record only sets the nonce.
 *
 * Invariant: d->traffic and d->key belong to generation d->seq /
 * ND_REKEY_RECORDS. After a record succeeds seq advances, and when it
 * reaches a multiple of ND_REKEY_RECORDS the direction moves to the next
 * traffic secret right away (the old secret and key overwritten), so a
 * failed record never moves it twice.
 */
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "nd_wire.h"
#include "nd_internal.h"

/* EVP takes int lengths; feed large buffers in slices. */
#define ND_EVP_CHUNK	(1 << 30)

static int nd_dir_init(struct nd_dir *d, const uint8_t *traffic,
		       const uint8_t *iv, int enc)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (!ctx)
		return -1;
	memcpy(d->traffic, traffic, ND_KEY_LEN);
	if (nd_traffic_key_checked(d->traffic, d->key) ||
	    EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, d->key, NULL,
			      enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		OPENSSL_cleanse(d, sizeof(*d));
		return -1;
	}
	memcpy(d->iv, iv, ND_IV_LEN);
	d->seq = 0;
	d->ctx = ctx;
	return 0;
}

int nd_crypto_init(struct nd_crypto *c, const uint8_t okm[ND_OKM_LEN],
		   bool is_client)
{
	const uint8_t *c2s_key = okm + ND_OKM_C2S_TRAFFIC;
	const uint8_t *s2c_key = okm + ND_OKM_S2C_TRAFFIC;
	const uint8_t *c2s_iv = okm + ND_OKM_C2S_IV;
	const uint8_t *s2c_iv = okm + ND_OKM_S2C_IV;

	memset(c, 0, sizeof(*c));
	if (nd_dir_init(&c->tx, is_client ? c2s_key : s2c_key,
			is_client ? c2s_iv : s2c_iv, 1) ||
	    nd_dir_init(&c->rx, is_client ? s2c_key : c2s_key,
			is_client ? s2c_iv : c2s_iv, 0)) {
		nd_crypto_free(c);
		return -1;
	}
	return 0;
}

static void nd_dir_free(struct nd_dir *d)
{
	EVP_CIPHER_CTX_free(d->ctx);
	OPENSSL_cleanse(d, sizeof(*d));
	d->ctx = NULL;
}

void nd_crypto_free(struct nd_crypto *c)
{
	if (!c)
		return;
	nd_dir_free(&c->tx);
	nd_dir_free(&c->rx);
}

/* Common checks and per-record setup: direction, sequence space, nonce, AAD. */
static int nd_record_begin(struct nd_dir *d, const uint8_t hdr[4], int enc)
{
	EVP_CIPHER_CTX *ctx = d ? d->ctx : NULL;
	uint8_t nonce[ND_IV_LEN];
	int outl;

	if (!ctx || EVP_CIPHER_CTX_is_encrypting(ctx) != enc ||
	    d->seq == UINT64_MAX)
		return -1;
	nd_nonce(nonce, d->iv, d->seq);
	if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &outl, hdr, ND_RECORD_HDR_LEN) != 1)
		return -1;
	return 0;
}

static int nd_crypt_in_place(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len)
{
	while (len) {
		int n = len > ND_EVP_CHUNK ? ND_EVP_CHUNK : (int)len;
		int outl;

		/* GCM is a stream mode: output length always equals input. */
		if (EVP_CipherUpdate(ctx, buf, &outl, buf, n) != 1 || outl != n)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Record done: next number, and the next generation at every ND_REKEY_RECORDS. */
static int nd_record_advance(struct nd_dir *d)
{
	EVP_CIPHER_CTX *ctx = d->ctx;

	d->seq++;
	if (d->seq % ND_REKEY_RECORDS)
		return 0;
	if (nd_traffic_next_checked(d->traffic, d->traffic) ||
	    nd_traffic_key_checked(d->traffic, d->key) ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, d->key, NULL, -1) != 1) {
		/* Unusable from now on rather than reusing a nonce. */
		d->seq = UINT64_MAX;
		return -1;
	}
	return 0;
}

/* ---- incremental records (see nd_wire.h) ---- */

int nd_seal_begin(struct nd_dir *d, uint8_t hdr[ND_RECORD_HDR_LEN],
		  size_t body_len)
{
	if (!d || !hdr || body_len > UINT32_MAX - ND_TAG_LEN)
		return -1;
	nd_put32(hdr, (uint32_t)(body_len + ND_TAG_LEN));
	return nd_record_begin(d, hdr, 1);
}

int nd_open_begin(struct nd_dir *d, const uint8_t hdr[ND_RECORD_HDR_LEN])
{
	if (!d || !hdr || nd_get32(hdr) < ND_TAG_LEN)
		return -1;
	return nd_record_begin(d, hdr, 0);
}

int nd_crypt_update(struct nd_dir *d, const uint8_t *in, uint8_t *out,
		    size_t len)
{
	while (len) {
		int n = len > ND_EVP_CHUNK ? ND_EVP_CHUNK : (int)len;
		int outl;

		if (EVP_CipherUpdate(d->ctx, out, &outl, in, n) != 1 ||
		    outl != n)
			return -1;
		in += n;
		out += n;
		len -= (size_t)n;
	}
	return 0;
}

int nd_seal_final(struct nd_dir *d, uint8_t tag[ND_TAG_LEN])
{
	uint8_t fin[ND_TAG_LEN];
	int outl;

	if (EVP_EncryptFinal_ex(d->ctx, fin, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, ND_TAG_LEN,
				tag) != 1)
		return -1;
	return nd_record_advance(d);
}

int nd_open_final(struct nd_dir *d, const uint8_t tag[ND_TAG_LEN])
{
	uint8_t t[ND_TAG_LEN], fin[ND_TAG_LEN];
	int outl;

	memcpy(t, tag, ND_TAG_LEN);	/* the ctrl takes a non-const pointer */
	if (EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, ND_TAG_LEN,
				t) != 1 ||
	    EVP_DecryptFinal_ex(d->ctx, fin, &outl) != 1)
		return -1;
	return nd_record_advance(d);
}

int nd_seal(struct nd_dir *d, uint8_t hdr[ND_RECORD_HDR_LEN],
	    const struct iovec *iov, int n, uint8_t tag[ND_TAG_LEN])
{
	uint8_t fin[ND_TAG_LEN];	/* GCM's final step outputs nothing */
	size_t total = 0;
	int i, outl;

	if (!d || !hdr || !tag || n < 0 || (n && !iov))
		return -1;
	for (i = 0; i < n; i++) {
		if (iov[i].iov_len > UINT32_MAX - ND_TAG_LEN - total)
			return -1;
		total += iov[i].iov_len;
	}
	nd_put32(hdr, (uint32_t)(total + ND_TAG_LEN));
	if (nd_record_begin(d, hdr, 1))
		return -1;
	for (i = 0; i < n; i++)
		if (nd_crypt_in_place(d->ctx, iov[i].iov_base, iov[i].iov_len))
			return -1;
	if (EVP_EncryptFinal_ex(d->ctx, fin, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, ND_TAG_LEN,
				tag) != 1)
		return -1;
	return nd_record_advance(d);
}

int nd_open(struct nd_dir *d, const uint8_t hdr[ND_RECORD_HDR_LEN],
	    uint8_t *body, size_t body_len, const uint8_t tag[ND_TAG_LEN])
{
	uint8_t t[ND_TAG_LEN], fin[ND_TAG_LEN];
	int outl;

	if (!d || !hdr || !tag || (body_len && !body) ||
	    nd_get32(hdr) != body_len + ND_TAG_LEN)
		return -1;
	memcpy(t, tag, ND_TAG_LEN);	/* the ctrl takes a non-const pointer */
	if (nd_record_begin(d, hdr, 0))
		return -1;
	if (nd_crypt_in_place(d->ctx, body, body_len) ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, ND_TAG_LEN,
				t) != 1 ||
	    EVP_DecryptFinal_ex(d->ctx, fin, &outl) != 1) {
		/* Never leave unauthenticated plaintext behind. */
		if (body_len)
			OPENSSL_cleanse(body, body_len);
		return -1;
	}
	return nd_record_advance(d);
}
