// SPDX-License-Identifier: MIT
/* Key schedule (X25519, HKDF, proofs, traffic ladder) against the independent vectors and RFC 5869. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "nd_internal.h"
#include "netdisk_vectors.h"

static void vec_client_hello(uint8_t *out, size_t *len)
{
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.flags = 0,
		.timestamp = ND_VEC_TIMESTAMP,
		.identity_len = ND_VEC_IDENTITY_LEN,
		.export_len = ND_VEC_EXPORT_LEN,
		.ext_len = 0,
	};

	memcpy(ch.random, nd_vec_client_random, ND_RANDOM_LEN);
	memcpy(ch.identity, ND_VEC_IDENTITY, ND_VEC_IDENTITY_LEN);
	memcpy(ch.export_name, ND_VEC_EXPORT, ND_VEC_EXPORT_LEN);
	memcpy(ch.share, nd_vec_client_share, ND_SHARE_LEN);
	*len = nd_client_hello_encode(out, &ch);
}

static void test_client_hello_bytes(void **state)
{
	struct nd_client_hello ch;
	uint8_t buf[ND_CLIENT_HELLO_MAX];
	size_t len;
	int names;

	vec_client_hello(buf, &len);
	assert_int_equal(len, sizeof(nd_vec_client_hello));
	assert_memory_equal(buf, nd_vec_client_hello, len);

	/* And back, part by part, as a server reads it. */
	names = nd_client_hello_decode_fixed(nd_vec_client_hello, &ch);
	assert_int_equal(names, ND_VEC_IDENTITY_LEN + ND_VEC_EXPORT_LEN);
	assert_int_equal(ch.version, ND_VERSION);
	assert_int_equal(ch.timestamp, ND_VEC_TIMESTAMP);
	assert_int_equal(nd_client_hello_decode_names(nd_vec_client_hello +
						      ND_CLIENT_HELLO_FIXED,
						      &ch), 0);
	assert_memory_equal(ch.identity, ND_VEC_IDENTITY, ND_VEC_IDENTITY_LEN);
	assert_memory_equal(ch.export_name, ND_VEC_EXPORT, ND_VEC_EXPORT_LEN);
	assert_int_equal(nd_client_hello_decode_tail(nd_vec_client_hello +
						     ND_CLIENT_HELLO_FIXED +
						     names, &ch), 0);
	assert_memory_equal(ch.share, nd_vec_client_share, ND_SHARE_LEN);
}

static void test_server_hello_bytes(void **state)
{
	struct nd_server_hello sh = { .version = ND_VERSION, .status = ND_OK };
	uint8_t buf[ND_SERVER_HELLO_LEN];

	memcpy(sh.random, nd_vec_server_random, ND_RANDOM_LEN);
	memcpy(sh.share, nd_vec_server_share, ND_SHARE_LEN);
	memcpy(sh.verify, nd_vec_server_verify, ND_HASH_LEN);
	nd_server_hello_encode(buf, &sh);
	assert_int_equal(sizeof(nd_vec_server_hello), ND_SERVER_HELLO_LEN);
	assert_memory_equal(buf, nd_vec_server_hello, ND_SERVER_HELLO_LEN);
}

/* Both shares from the vectors' private keys; dh the same from both ends. */
static void test_x25519(void **state)
{
	uint8_t priv[ND_SHARE_LEN], share[ND_SHARE_LEN], dh[ND_SHARE_LEN];

	assert_int_equal(nd_x25519_public(nd_vec_client_eph, share), 0);
	assert_memory_equal(share, nd_vec_client_share, ND_SHARE_LEN);
	assert_int_equal(nd_x25519_public(nd_vec_server_eph, share), 0);
	assert_memory_equal(share, nd_vec_server_share, ND_SHARE_LEN);
	assert_int_equal(nd_x25519(nd_vec_client_eph, nd_vec_server_share, dh),
			 0);
	assert_memory_equal(dh, nd_vec_dh, ND_SHARE_LEN);
	assert_int_equal(nd_x25519(nd_vec_server_eph, nd_vec_client_share, dh),
			 0);
	assert_memory_equal(dh, nd_vec_dh, ND_SHARE_LEN);

	/* keygen: a fresh key whose share is its public key. */
	assert_int_equal(nd_x25519_keygen(priv, share), 0);
	assert_int_equal(nd_x25519_public(priv, dh), 0);
	assert_memory_equal(dh, share, ND_SHARE_LEN);
	assert_memory_not_equal(share, nd_vec_client_share, ND_SHARE_LEN);
}

/*
 * Low-order shares give an all-zero dh, which must be refused (and dh left
 * zero): u = 0, u = 1, and the order-8 point of RFC 7748 / cr.yp.to.
 */
static void test_x25519_low_order(void **state)
{
	static const uint8_t order8[ND_SHARE_LEN] = {
		0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56,
		0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb,
		0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
		0xb8, 0x00,
	};
	uint8_t zero[ND_SHARE_LEN] = { 0 }, one[ND_SHARE_LEN] = { 1 };
	uint8_t dh[ND_SHARE_LEN], okm[ND_OKM_LEN], priv[ND_SHARE_LEN];

	memset(dh, 0xaa, sizeof(dh));
	assert_int_equal(nd_x25519(nd_vec_client_eph, zero, dh), -1);
	assert_memory_equal(dh, zero, ND_SHARE_LEN);
	assert_int_equal(nd_x25519(nd_vec_client_eph, one, dh), -1);
	assert_int_equal(nd_x25519(nd_vec_server_eph, order8, dh), -1);

	memcpy(priv, nd_vec_client_eph, sizeof(priv));
	memset(okm, 0xaa, sizeof(okm));
	assert_int_equal(nd_key_exchange(priv, zero, nd_vec_psk,
					 nd_vec_client_random,
					 nd_vec_server_random, nd_vec_th, okm),
			 -1);
	assert_memory_equal(priv, zero, ND_SHARE_LEN);	/* wiped anyway */
	for (size_t i = 0; i < sizeof(okm); i++)
		assert_int_equal(okm[i], 0);
}

static void test_transcript(void **state)
{
	uint8_t th[ND_HASH_LEN];

	nd_transcript(nd_vec_client_hello, sizeof(nd_vec_client_hello),
		      nd_vec_server_hello, th);
	assert_memory_equal(th, nd_vec_th, ND_HASH_LEN);
	/* The first 72 bytes of ServerHello enter: verify is excluded. */
	{
		uint8_t sh[ND_SERVER_HELLO_LEN], th2[ND_HASH_LEN];

		memcpy(sh, nd_vec_server_hello, sizeof(sh));
		sh[ND_SERVER_HELLO_LEN - 1] ^= 1;
		nd_transcript(nd_vec_client_hello, sizeof(nd_vec_client_hello),
			      sh, th2);
		assert_memory_equal(th2, nd_vec_th, ND_HASH_LEN);
		/* The server share is bound. */
		sh[ND_SERVER_HELLO_TH_LEN - 1] ^= 1;
		nd_transcript(nd_vec_client_hello, sizeof(nd_vec_client_hello),
			      sh, th2);
		assert_memory_not_equal(th2, nd_vec_th, ND_HASH_LEN);
	}
}

static void test_prk_and_expand(void **state)
{
	uint8_t salt[2 * ND_RANDOM_LEN], prk[ND_HASH_LEN], okm[ND_OKM_LEN];
	uint8_t info[ND_KDF_LABEL_LEN + ND_HASH_LEN];
	uint8_t ikm[ND_KEY_LEN + ND_SHARE_LEN];

	memcpy(salt, nd_vec_client_random, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, nd_vec_server_random, ND_RANDOM_LEN);
	memcpy(ikm, nd_vec_psk, ND_KEY_LEN);
	memcpy(ikm + ND_KEY_LEN, nd_vec_dh, ND_SHARE_LEN);
	assert_int_equal(nd_hkdf_extract(salt, sizeof(salt), ikm, sizeof(ikm),
					 prk), 0);
	assert_memory_equal(prk, nd_vec_prk, ND_HASH_LEN);
	memcpy(info, ND_KDF_LABEL, ND_KDF_LABEL_LEN);
	memcpy(info + ND_KDF_LABEL_LEN, nd_vec_th, ND_HASH_LEN);
	assert_int_equal(nd_hkdf_expand(nd_vec_prk, info, sizeof(info), okm,
					sizeof(okm)), 0);
	assert_memory_equal(okm, nd_vec_okm, ND_OKM_LEN);
}

static void test_derive(void **state)
{
	uint8_t okm[ND_OKM_LEN], th[ND_HASH_LEN], psk[ND_KEY_LEN];
	uint8_t dh[ND_SHARE_LEN];

	assert_int_equal(sizeof(nd_vec_okm), ND_OKM_LEN);
	assert_int_equal(nd_derive(nd_vec_psk, nd_vec_client_random,
				   nd_vec_server_random, nd_vec_dh, nd_vec_th,
				   okm), 0);
	assert_memory_equal(okm, nd_vec_okm, ND_OKM_LEN);

	/* Every input changes every output byte range. */
	memcpy(th, nd_vec_th, sizeof(th));
	th[0] ^= 0x80;
	assert_int_equal(nd_derive(nd_vec_psk, nd_vec_client_random,
				   nd_vec_server_random, nd_vec_dh, th, okm), 0);
	assert_memory_not_equal(okm, nd_vec_okm, ND_KEY_LEN);
	assert_memory_not_equal(okm + ND_OKM_C_FINISH,
				nd_vec_okm + ND_OKM_C_FINISH, ND_HASH_LEN);
	memcpy(psk, nd_vec_psk, sizeof(psk));
	psk[31] ^= 1;
	assert_int_equal(nd_derive(psk, nd_vec_client_random,
				   nd_vec_server_random, nd_vec_dh, nd_vec_th,
				   okm), 0);
	assert_memory_not_equal(okm, nd_vec_okm, ND_KEY_LEN);
	/* The DH secret is in the key: same PSK, randoms and th, other dh. */
	memcpy(dh, nd_vec_dh, sizeof(dh));
	dh[0] ^= 1;
	assert_int_equal(nd_derive(nd_vec_psk, nd_vec_client_random,
				   nd_vec_server_random, dh, nd_vec_th, okm), 0);
	assert_memory_not_equal(okm, nd_vec_okm, ND_KEY_LEN);
	assert_memory_not_equal(okm + ND_OKM_S_FINISH,
				nd_vec_okm + ND_OKM_S_FINISH, ND_HASH_LEN);
	/* Swapping the randoms is a different salt. */
	assert_int_equal(nd_derive(nd_vec_psk, nd_vec_server_random,
				   nd_vec_client_random, nd_vec_dh, nd_vec_th,
				   okm), 0);
	assert_memory_not_equal(okm, nd_vec_okm, ND_KEY_LEN);
}

/* Each side's whole exchange gives the vectors' OKM and wipes its key. */
static void test_key_exchange_wipes(void **state)
{
	uint8_t priv[ND_SHARE_LEN], okm[ND_OKM_LEN];
	const uint8_t zero[ND_SHARE_LEN] = { 0 };

	memcpy(priv, nd_vec_client_eph, sizeof(priv));
	assert_int_equal(nd_key_exchange(priv, nd_vec_server_share, nd_vec_psk,
					 nd_vec_client_random,
					 nd_vec_server_random, nd_vec_th, okm),
			 0);
	assert_memory_equal(okm, nd_vec_okm, ND_OKM_LEN);
	assert_memory_equal(priv, zero, ND_SHARE_LEN);

	memcpy(priv, nd_vec_server_eph, sizeof(priv));
	assert_int_equal(nd_key_exchange(priv, nd_vec_client_share, nd_vec_psk,
					 nd_vec_client_random,
					 nd_vec_server_random, nd_vec_th, okm),
			 0);
	assert_memory_equal(okm, nd_vec_okm, ND_OKM_LEN);
	assert_memory_equal(priv, zero, ND_SHARE_LEN);
}

static void test_finish_macs(void **state)
{
	uint8_t mac[ND_HASH_LEN];

	nd_finish_mac(nd_vec_okm + ND_OKM_S_FINISH, nd_vec_th, mac);
	assert_memory_equal(mac, nd_vec_server_verify, ND_HASH_LEN);
	nd_finish_mac(nd_vec_okm + ND_OKM_C_FINISH, nd_vec_th, mac);
	assert_memory_equal(mac, nd_vec_client_verify, ND_HASH_LEN);
	/* The two proofs differ: a reflected server proof is useless. */
	assert_memory_not_equal(nd_vec_server_verify, nd_vec_client_verify,
				ND_HASH_LEN);
	/* The hello carries the same server_verify. */
	assert_memory_equal(nd_vec_server_hello + ND_SERVER_HELLO_TH_LEN,
			    nd_vec_server_verify, ND_HASH_LEN);
}

static void test_traffic_ladder(void **state)
{
	uint8_t key[ND_KEY_LEN], t[ND_KEY_LEN];

	nd_traffic_key(nd_vec_okm + ND_OKM_C2S_TRAFFIC, key);
	assert_memory_equal(key, nd_vec_c2s_key0, ND_KEY_LEN);
	nd_traffic_key(nd_vec_okm + ND_OKM_S2C_TRAFFIC, key);
	assert_memory_equal(key, nd_vec_s2c_key0, ND_KEY_LEN);
	nd_traffic_next(nd_vec_okm + ND_OKM_S2C_TRAFFIC, t);
	assert_memory_equal(t, nd_vec_s2c_traffic1, ND_KEY_LEN);
	nd_traffic_key(t, key);
	assert_memory_equal(key, nd_vec_s2c_key1, ND_KEY_LEN);
	/* In place (aliasing) gives the same result. */
	memcpy(t, nd_vec_okm + ND_OKM_S2C_TRAFFIC, ND_KEY_LEN);
	nd_traffic_next(t, t);
	assert_memory_equal(t, nd_vec_s2c_traffic1, ND_KEY_LEN);
	/* The AES key is never the next secret's input, nor the secret itself. */
	assert_memory_not_equal(nd_vec_s2c_key0, nd_vec_s2c_traffic1,
				ND_KEY_LEN);
	nd_traffic_next(t, t);
	assert_memory_not_equal(t, nd_vec_s2c_traffic1, ND_KEY_LEN);
}

/* RFC 5869 appendix A.1: HKDF-SHA256 known answer, independent of netdisk. */
static void test_rfc5869_case1(void **state)
{
	static const uint8_t prk_exp[32] = {
		0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf, 0x0d, 0xdc,
		0x3f, 0x0d, 0xc4, 0x7b, 0xba, 0x63, 0x90, 0xb6, 0xc7, 0x3b,
		0xb5, 0x0f, 0x9c, 0x31, 0x22, 0xec, 0x84, 0x4a, 0xd7, 0xc2,
		0xb3, 0xe5,
	};
	static const uint8_t okm_exp[42] = {
		0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43,
		0x4f, 0x64, 0xd0, 0x36, 0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90,
		0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56, 0xec, 0xc4,
		0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18,
		0x58, 0x65,
	};
	uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];
	size_t i;

	memset(ikm, 0x0b, sizeof(ikm));
	for (i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(nd_hkdf_extract(salt, sizeof(salt), ikm, sizeof(ikm),
					 prk), 0);
	assert_memory_equal(prk, prk_exp, sizeof(prk));
	assert_int_equal(nd_hkdf_expand(prk, info, sizeof(info), okm,
					sizeof(okm)), 0);
	assert_memory_equal(okm, okm_exp, sizeof(okm));
}

static void test_equal(void **state)
{
	uint8_t a[ND_HASH_LEN], b[ND_HASH_LEN];

	memcpy(a, nd_vec_th, sizeof(a));
	memcpy(b, nd_vec_th, sizeof(b));
	assert_true(nd_equal(a, b, sizeof(a)));
	b[0] ^= 1;
	assert_false(nd_equal(a, b, sizeof(a)));
	b[0] ^= 1;
	b[ND_HASH_LEN - 1] ^= 0x80;
	assert_false(nd_equal(a, b, sizeof(a)));
	assert_true(nd_equal(a, b, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_hello_bytes),
		cmocka_unit_test(test_server_hello_bytes),
		cmocka_unit_test(test_x25519),
		cmocka_unit_test(test_x25519_low_order),
		cmocka_unit_test(test_transcript),
		cmocka_unit_test(test_prk_and_expand),
		cmocka_unit_test(test_derive),
		cmocka_unit_test(test_key_exchange_wipes),
		cmocka_unit_test(test_finish_macs),
		cmocka_unit_test(test_traffic_ladder),
		cmocka_unit_test(test_rfc5869_case1),
		cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
