// SPDX-License-Identifier: MIT
/*
 * Prints the protocol test vectors of include/netdisk_vectors.h as the
 * markdown of docs/PROTOCOL.md section 4, so the spec and the tests share
 * one source.
 */
#include <stdio.h>

#include "netdisk_vectors.h"

struct vec {
	const char *name;
	const unsigned char *data;
	size_t len;
	const char *what;
};

#define V(n, w) { #n, nd_vec_##n, sizeof(nd_vec_##n), w }

static const struct vec inputs[] = {
	V(psk, "pre-shared key: bytes 0x00..0x1f"),
	V(client_random, "client_random: bytes 0x20..0x3f"),
	V(server_random, "server_random: bytes 0x40..0x5f"),
	V(c2s_plain, "plaintext of the c2s record: READ request {op 0, flags 0, length 4096, handle 1, offset 8192}"),
	V(s2c_plain, "plaintext of the s2c record: FLUSH reply {op 2, status 0, length 0, handle 7}"),
};

static const struct vec outputs[] = {
	V(client_hello, "ClientHello: version 1, flags 0, client_random, timestamp 1700000000, identity and export `default`"),
	V(server_hello, "ServerHello: version 1, status 0, server_random, server_verify"),
	V(th, "th = SHA-256(ClientHello || ServerHello[0..40))"),
	V(prk, "PRK = HKDF-Extract(salt = client_random || server_random, IKM = PSK)"),
	V(okm, "OKM = HKDF-Expand(PRK, \"netdisk/1 keys\" || th, 152): c2s_key, s2c_key, c2s_iv, s2c_iv, s_finish, c_finish"),
	V(server_verify, "server_verify = HMAC(s_finish, th)"),
	V(client_verify, "client_verify = HMAC(c_finish, th)"),
	V(c2s_record, "record c2s #0 (c2s_key, c2s_iv, seq 0) carrying c2s_plain: length, ciphertext, tag"),
	V(s2c_rekeyed_key, "s2c key from record 65536 on = HKDF-Expand(s2c_key, \"netdisk/1 rekey\", 32)"),
	V(s2c_record, "record s2c #65536 (rotated s2c key, s2c_iv, seq 65536) carrying s2c_plain"),
};

static void print_vec(const struct vec *v)
{
	size_t i;

	printf("`%s` (%zu bytes): %s\n\n```\n", v->name, v->len, v->what);
	for (i = 0; i < v->len; i++)
		printf("%02x%s", v->data[i],
		       (i % 32 == 31 || i + 1 == v->len) ? "\n" : "");
	printf("```\n\n");
}

int main(void)
{
	size_t i;

	printf("### Inputs\n\n");
	printf("ClientHello version 1, flags 0, timestamp %llu, identity and "
	       "export `%s`; ServerHello status 0.\n\n",
	       ND_VEC_TIMESTAMP, ND_VEC_NAME);
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		print_vec(&inputs[i]);
	printf("### Outputs\n\n");
	for (i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		print_vec(&outputs[i]);
	return ferror(stdout) ? 1 : 0;
}
