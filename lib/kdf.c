// SPDX-License-Identifier: MIT
/*
 * Key schedule: transcript hash, X25519, HKDF-SHA256, finish MACs and the
 * per-direction traffic-secret ladder (docs/PROTOCOL.md §1-2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "nd_wire.h"
#include "nd_internal.h"

/* The void API functions cannot report failure; a wrong key must never be used. */
static void nd_crypto_fatal(const char *what)
{
	fprintf(stderr, "libnetdisk: OpenSSL %s failed\n", what);
	abort();
}

int nd_transcript_checked(const uint8_t *client_hello, size_t ch_len,
			  const uint8_t server_hello_th[ND_SERVER_HELLO_TH_LEN],
			  uint8_t th[ND_HASH_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ret = -1;

	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, client_hello, ch_len) == 1 &&
	    EVP_DigestUpdate(md, server_hello_th, ND_SERVER_HELLO_TH_LEN) == 1 &&
	    EVP_DigestFinal_ex(md, th, &len) == 1 && len == ND_HASH_LEN)
		ret = 0;
	EVP_MD_CTX_free(md);
	return ret;
}

void nd_transcript(const uint8_t *client_hello, size_t ch_len,
		   const uint8_t server_hello_th[ND_SERVER_HELLO_TH_LEN],
		   uint8_t th[ND_HASH_LEN])
{
	if (nd_transcript_checked(client_hello, ch_len, server_hello_th, th))
		nd_crypto_fatal("SHA-256");
}

/* One HKDF step; mode is EVP_KDF_HKDF_MODE_EXTRACT_ONLY or _EXPAND_ONLY. */
static int nd_hkdf(int mode, const uint8_t *key, size_t key_len,
		   const uint8_t *salt, size_t salt_len,
		   const uint8_t *info, size_t info_len,
		   uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[6], *p = params;
	char digest[] = "SHA256";
	int ret = -1;

	EVP_KDF_free(kdf);	/* the context holds its own reference */
	if (!kctx)
		return -1;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						digest, 0);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)key, key_len);
	if (salt)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 (void *)salt,
							 salt_len);
	if (info)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
							 (void *)info,
							 info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(kctx);
	return ret;
}

int nd_hkdf_extract(const uint8_t *salt, size_t salt_len,
		    const uint8_t *ikm, size_t ikm_len, uint8_t prk[ND_HASH_LEN])
{
	return nd_hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikm_len,
		       salt, salt_len, NULL, 0, prk, ND_HASH_LEN);
}

int nd_hkdf_expand(const uint8_t prk[ND_HASH_LEN], const uint8_t *info,
		   size_t info_len, uint8_t *out, size_t out_len)
{
	return nd_hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, ND_HASH_LEN,
		       NULL, 0, info, info_len, out, out_len);
}

int nd_derive(const uint8_t psk[ND_KEY_LEN],
	      const uint8_t client_random[ND_RANDOM_LEN],
	      const uint8_t server_random[ND_RANDOM_LEN],
	      const uint8_t dh[ND_SHARE_LEN],
	      const uint8_t th[ND_HASH_LEN], uint8_t okm[ND_OKM_LEN])
{
	uint8_t salt[2 * ND_RANDOM_LEN];
	uint8_t info[ND_KDF_LABEL_LEN + ND_HASH_LEN];
	uint8_t ikm[ND_KEY_LEN + ND_SHARE_LEN];
	uint8_t prk[ND_HASH_LEN];
	int ret;

	memcpy(salt, client_random, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, server_random, ND_RANDOM_LEN);
	memcpy(info, ND_KDF_LABEL, ND_KDF_LABEL_LEN);
	memcpy(info + ND_KDF_LABEL_LEN, th, ND_HASH_LEN);
	memcpy(ikm, psk, ND_KEY_LEN);
	memcpy(ikm + ND_KEY_LEN, dh, ND_SHARE_LEN);
	ret = nd_hkdf_extract(salt, sizeof(salt), ikm, sizeof(ikm), prk);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	if (!ret)
		ret = nd_hkdf_expand(prk, info, sizeof(info), okm, ND_OKM_LEN);
	OPENSSL_cleanse(prk, sizeof(prk));
	if (ret)
		OPENSSL_cleanse(okm, ND_OKM_LEN);
	return ret;
}

/* X25519 with a raw private key; OpenSSL clamps it (RFC 7748 §5). */
static EVP_PKEY *nd_x25519_key(const uint8_t priv[ND_SHARE_LEN])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
					    ND_SHARE_LEN);
}

int nd_x25519_keygen(uint8_t priv[ND_SHARE_LEN], uint8_t share[ND_SHARE_LEN])
{
	if (nd_random(priv, ND_SHARE_LEN))
		return -1;
	if (nd_x25519_public(priv, share)) {
		OPENSSL_cleanse(priv, ND_SHARE_LEN);
		return -1;
	}
	return 0;
}

int nd_x25519_public(const uint8_t priv[ND_SHARE_LEN],
		     uint8_t share[ND_SHARE_LEN])
{
	EVP_PKEY *k = nd_x25519_key(priv);
	size_t len = ND_SHARE_LEN;
	int ret = -1;

	if (k && EVP_PKEY_get_raw_public_key(k, share, &len) == 1 &&
	    len == ND_SHARE_LEN)
		ret = 0;
	EVP_PKEY_free(k);	/* clears its copy of the private key */
	return ret;
}

int nd_x25519(const uint8_t priv[ND_SHARE_LEN],
	      const uint8_t peer_share[ND_SHARE_LEN], uint8_t dh[ND_SHARE_LEN])
{
	EVP_PKEY *k = nd_x25519_key(priv);
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL,
						     peer_share, ND_SHARE_LEN);
	EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
	size_t len = ND_SHARE_LEN;
	uint8_t acc = 0;
	int ret = -1;

	/*
	 * OpenSSL itself refuses an all-zero result; the explicit check
	 * below keeps the rule independent of the library version.
	 */
	if (ctx && peer && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, dh, &len) == 1 && len == ND_SHARE_LEN) {
		for (size_t i = 0; i < ND_SHARE_LEN; i++)
			acc |= dh[i];
		ret = acc ? 0 : -1;
	}
	if (ret)
		OPENSSL_cleanse(dh, ND_SHARE_LEN);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(k);
	return ret;
}

int nd_key_exchange(uint8_t priv[ND_SHARE_LEN],
		    const uint8_t peer_share[ND_SHARE_LEN],
		    const uint8_t psk[ND_KEY_LEN],
		    const uint8_t client_random[ND_RANDOM_LEN],
		    const uint8_t server_random[ND_RANDOM_LEN],
		    const uint8_t th[ND_HASH_LEN], uint8_t okm[ND_OKM_LEN])
{
	uint8_t dh[ND_SHARE_LEN];
	int ret;

	ret = nd_x25519(priv, peer_share, dh);
	OPENSSL_cleanse(priv, ND_SHARE_LEN);
	if (!ret)
		ret = nd_derive(psk, client_random, server_random, dh, th, okm);
	else
		OPENSSL_cleanse(okm, ND_OKM_LEN);
	OPENSSL_cleanse(dh, sizeof(dh));
	return ret;
}

int nd_hmac(const uint8_t key[ND_HASH_LEN], const uint8_t *msg, size_t len,
	    uint8_t out[ND_HASH_LEN])
{
	unsigned int olen = 0;

	if (!HMAC(EVP_sha256(), key, ND_HASH_LEN, msg, len, out, &olen) ||
	    olen != ND_HASH_LEN)
		return -1;
	return 0;
}

int nd_finish_mac_checked(const uint8_t finish_key[ND_HASH_LEN],
			  const uint8_t th[ND_HASH_LEN],
			  uint8_t out[ND_HASH_LEN])
{
	return nd_hmac(finish_key, th, ND_HASH_LEN, out);
}

void nd_finish_mac(const uint8_t finish_key[ND_HASH_LEN],
		   const uint8_t th[ND_HASH_LEN], uint8_t out[ND_HASH_LEN])
{
	if (nd_hmac(finish_key, th, ND_HASH_LEN, out))
		nd_crypto_fatal("HMAC-SHA256");
}

/* HKDF-Expand(secret, label, 32) into out; out may alias secret. */
static int nd_ladder_step(const uint8_t secret[ND_KEY_LEN], const char *label,
			  size_t label_len, uint8_t out[ND_KEY_LEN])
{
	uint8_t tmp[ND_KEY_LEN];
	int ret;

	ret = nd_hkdf_expand(secret, (const uint8_t *)label, label_len, tmp,
			     sizeof(tmp));
	if (!ret)
		memcpy(out, tmp, ND_KEY_LEN);
	OPENSSL_cleanse(tmp, sizeof(tmp));	/* also what a failed expand left */
	return ret;
}

int nd_traffic_key_checked(const uint8_t traffic[ND_KEY_LEN],
			   uint8_t key[ND_KEY_LEN])
{
	return nd_ladder_step(traffic, ND_KEY_LABEL, ND_KEY_LABEL_LEN, key);
}

int nd_traffic_next_checked(const uint8_t traffic[ND_KEY_LEN],
			    uint8_t next[ND_KEY_LEN])
{
	return nd_ladder_step(traffic, ND_TRAFFIC_LABEL, ND_TRAFFIC_LABEL_LEN,
			      next);
}

void nd_traffic_key(const uint8_t traffic[ND_KEY_LEN], uint8_t key[ND_KEY_LEN])
{
	if (nd_traffic_key_checked(traffic, key))
		nd_crypto_fatal("HKDF");
}

void nd_traffic_next(const uint8_t traffic[ND_KEY_LEN],
		     uint8_t next[ND_KEY_LEN])
{
	if (nd_traffic_next_checked(traffic, next))
		nd_crypto_fatal("HKDF");
}

int nd_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
