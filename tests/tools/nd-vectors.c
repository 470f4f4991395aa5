// SPDX-License-Identifier: MIT
/*
 * Prints the protocol test vectors of include/netdisk_vectors.h as the
 * markdown of docs/PROTOCOL.md section 5, so the spec and the tests share
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
	V(client_eph, "client's ephemeral X25519 private key: bytes 0x60..0x7f"),
	V(server_eph, "server's ephemeral X25519 private key: bytes 0x80..0x9f"),
	V(c2s_plain, "plaintext of the c2s record: ClientFinish {client_verify, token 0, flags 0, max_payload 1 MiB, slot 3, reserved 0, epoch 7, resume_writer 5, resume_own 6}"),
	V(s2c_plain, "plaintext of the s2c record: FLUSH reply {op 2, status 0, length 0, handle 7}"),
};

static const struct vec outputs[] = {
	V(client_share, "client_share = X25519(client_eph, 9)"),
	V(server_share, "server_share = X25519(server_eph, 9)"),
	V(client_hello, "ClientHello: version 2, flags 0, client_random, timestamp 1700000000, identity `host-01`, export `vol.a`, client_share, ext_len 0"),
	V(server_hello, "ServerHello: version 2, status 0, server_random, server_share, server_verify"),
	V(th, "th = SHA-256(ClientHello || ServerHello[0..72))"),
	V(dh, "dh = X25519(client_eph, server_share) = X25519(server_eph, client_share)"),
	V(prk, "PRK = HKDF-Extract(salt = client_random || server_random, IKM = PSK || dh)"),
	V(okm, "OKM = HKDF-Expand(PRK, \"netdisk/2 keys\" || th, 152): c2s_traffic, s2c_traffic, c2s_iv, s2c_iv, s_finish, c_finish"),
	V(server_verify, "server_verify = HMAC(s_finish, th)"),
	V(client_verify, "client_verify = HMAC(c_finish, th)"),
	V(c2s_key0, "c2s key_0 = HKDF-Expand(c2s_traffic, \"netdisk/2 key\", 32)"),
	V(s2c_key0, "s2c key_0 = HKDF-Expand(s2c_traffic, \"netdisk/2 key\", 32)"),
	V(s2c_traffic1, "s2c traffic_1 = HKDF-Expand(s2c_traffic, \"netdisk/2 traffic\", 32)"),
	V(s2c_key1, "s2c key_1 = HKDF-Expand(s2c traffic_1, \"netdisk/2 key\", 32)"),
	V(c2s_record, "record c2s #0 (c2s key_0, c2s_iv, seq 0) carrying c2s_plain: length, ciphertext, tag"),
	V(s2c_record, "record s2c #4096, the first of key generation 1 (s2c key_1, s2c_iv, seq 4096), carrying s2c_plain"),
	V(list_plain, "an ExportList (the body of record s2c #0 answering list-exports): `boot` (read-only, flush; 8 GiB, block size 512), `data` (flush, FUA, trim, write-zeroes, busy; 64 GiB, block size 4096)"),
};

static void print_vec(const struct vec *v, int last)
{
	size_t i;

	printf("`%s` (%zu bytes): %s\n\n```\n", v->name, v->len, v->what);
	for (i = 0; i < v->len; i++)
		printf("%02x%s", v->data[i],
		       (i % 32 == 31 || i + 1 == v->len) ? "\n" : "");
	/* No blank line after the last: the file ends there. */
	printf("```\n%s", last ? "" : "\n");
}

int main(void)
{
	size_t i;

	printf("### Inputs\n\n");
	printf("ClientHello version 2, flags 0, timestamp %llu, identity `%s`, "
	       "export `%s`, no extensions; ServerHello status 0.\n\n",
	       ND_VEC_TIMESTAMP, ND_VEC_IDENTITY, ND_VEC_EXPORT);
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		print_vec(&inputs[i], 0);
	printf("### Outputs\n\n");
	for (i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++)
		print_vec(&outputs[i],
			  i + 1 == sizeof(outputs) / sizeof(outputs[0]));
	return ferror(stdout) ? 1 : 0;
}
