// SPDX-License-Identifier: MIT
/* Key schedule: transcript hash, HKDF-SHA256, finish MACs, rekeying. */
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

void nd_transcript(const uint8_t *client_hello, size_t ch_len,
		   const uint8_t server_hello_th[ND_SERVER_HELLO_TH_LEN],
		   uint8_t th[ND_HASH_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, client_hello, ch_len) != 1 ||
	    EVP_DigestUpdate(md, server_hello_th, ND_SERVER_HELLO_TH_LEN) != 1 ||
	    EVP_DigestFinal_ex(md, th, &len) != 1 || len != ND_HASH_LEN)
		nd_crypto_fatal("SHA-256");
	EVP_MD_CTX_free(md);
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
	      const uint8_t th[ND_HASH_LEN], uint8_t okm[ND_OKM_LEN])
{
	uint8_t salt[2 * ND_RANDOM_LEN];
	uint8_t info[ND_KDF_LABEL_LEN + ND_HASH_LEN];
	uint8_t prk[ND_HASH_LEN];
	int ret;

	memcpy(salt, client_random, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, server_random, ND_RANDOM_LEN);
	memcpy(info, ND_KDF_LABEL, ND_KDF_LABEL_LEN);
	memcpy(info + ND_KDF_LABEL_LEN, th, ND_HASH_LEN);
	ret = nd_hkdf_extract(salt, sizeof(salt), psk, ND_KEY_LEN, prk);
	if (!ret)
		ret = nd_hkdf_expand(prk, info, sizeof(info), okm, ND_OKM_LEN);
	OPENSSL_cleanse(prk, sizeof(prk));
	if (ret)
		OPENSSL_cleanse(okm, ND_OKM_LEN);
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

void nd_finish_mac(const uint8_t finish_key[ND_HASH_LEN],
		   const uint8_t th[ND_HASH_LEN], uint8_t out[ND_HASH_LEN])
{
	if (nd_hmac(finish_key, th, ND_HASH_LEN, out))
		nd_crypto_fatal("HMAC-SHA256");
}

int nd_rekey_checked(const uint8_t old_key[ND_KEY_LEN],
		     uint8_t new_key[ND_KEY_LEN])
{
	uint8_t tmp[ND_KEY_LEN];

	/* Through tmp so old_key and new_key may alias. */
	if (nd_hkdf_expand(old_key, (const uint8_t *)ND_REKEY_LABEL,
			   ND_REKEY_LABEL_LEN, tmp, sizeof(tmp)))
		return -1;
	memcpy(new_key, tmp, ND_KEY_LEN);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

void nd_rekey(const uint8_t old_key[ND_KEY_LEN], uint8_t new_key[ND_KEY_LEN])
{
	if (nd_rekey_checked(old_key, new_key))
		nd_crypto_fatal("HKDF");
}

int nd_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
