#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints include/netdisk_vectors.h: the protocol 2 test vectors.

An implementation of docs/PROTOCOL.md sections 1-2 written from the text
alone with Python's hashlib/hmac and pyca/cryptography (X25519, HKDF,
AES-GCM), sharing no code with libnetdisk or netdisk.ko. `make unit` runs it
and diffs its output with the committed header, so the vectors the C code is
checked against stay independent of it.
"""
import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

MAGIC = 0x4E44534B
VERSION = 2
TIMESTAMP = 1700000000
IDENTITY = b"host-01"
EXPORT = b"vol.a"
REKEY_RECORDS = 4096
C2S_SEQ = 0
S2C_SEQ = REKEY_RECORDS  # first record of s2c key generation 1


def seq_bytes(start, n=32):
    return bytes(range(start, start + n))


def hkdf_extract(salt, ikm):
    # RFC 5869 2.2: PRK = HMAC-Hash(salt, IKM)
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    return HKDFExpand(algorithm=hashes.SHA256(), length=length,
                      info=info).derive(prk)


def x25519_public(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519(priv, peer_public):
    return X25519PrivateKey.from_private_bytes(priv).exchange(
        X25519PublicKey.from_public_bytes(peer_public))


def nonce(iv, seq):
    return iv[:4] + bytes(a ^ b for a, b in zip(iv[4:], struct.pack(">Q", seq)))


def seal(key, iv, seq, plain):
    length = struct.pack(">I", len(plain) + 16)
    return length + AESGCM(key).encrypt(nonce(iv, seq), plain, length)


def key_of_generation(traffic0, gen):
    """(traffic_g, key_g) of a direction."""
    traffic = traffic0
    for _ in range(gen):
        traffic = hkdf_expand(traffic, b"netdisk/2 traffic", 32)
    return traffic, hkdf_expand(traffic, b"netdisk/2 key", 32)


psk = seq_bytes(0x00)
client_random = seq_bytes(0x20)
server_random = seq_bytes(0x40)
client_eph = seq_bytes(0x60)
server_eph = seq_bytes(0x80)
client_share = x25519_public(client_eph)
server_share = x25519_public(server_eph)

client_hello = (struct.pack(">IHH", MAGIC, VERSION, 0) + client_random +
                struct.pack(">QBB", TIMESTAMP, len(IDENTITY), len(EXPORT)) +
                IDENTITY + EXPORT + client_share + struct.pack(">H", 0))
sh_head = struct.pack(">IHH", MAGIC, VERSION, 0) + server_random + server_share
assert len(sh_head) == 72

th = hashlib.sha256(client_hello + sh_head).digest()
dh = x25519(client_eph, server_share)
assert dh == x25519(server_eph, client_share) and dh != bytes(32)
prk = hkdf_extract(client_random + server_random, psk + dh)
okm = hkdf_expand(prk, b"netdisk/2 keys" + th, 152)
# Extract above is plain HMAC (RFC 5869 2.2); cross-check with the library's.
assert okm == HKDF(algorithm=hashes.SHA256(), length=152,
                   salt=client_random + server_random,
                   info=b"netdisk/2 keys" + th).derive(psk + dh)
c2s_traffic, s2c_traffic = okm[0:32], okm[32:64]
c2s_iv, s2c_iv = okm[64:76], okm[76:88]
s_finish, c_finish = okm[88:120], okm[120:152]
server_verify = hmac.new(s_finish, th, hashlib.sha256).digest()
client_verify = hmac.new(c_finish, th, hashlib.sha256).digest()
server_hello = sh_head + server_verify

_, c2s_key0 = key_of_generation(c2s_traffic, 0)
_, s2c_key0 = key_of_generation(s2c_traffic, 0)
s2c_traffic1, s2c_key1 = key_of_generation(s2c_traffic, S2C_SEQ // REKEY_RECORDS)

# c2s record #0 is the ClientFinish: client_verify, token 0, flags 0,
# max_payload 1 MiB, slot 3, reserved 0, epoch 7, resume_writer 5, resume_own 6.
c2s_plain = (client_verify + bytes(16) +
             struct.pack(">IIHHIQQ", 0, 1 << 20, 3, 0, 7, 5, 6))
assert len(c2s_plain) == 80
c2s_record = seal(c2s_key0, c2s_iv, C2S_SEQ, c2s_plain)
# FLUSH reply {op 2, status 0, length 0, handle 7}
s2c_plain = struct.pack(">BBHIQ", 2, 0, 0, 0, 7)
s2c_record = seal(s2c_key1, s2c_iv, S2C_SEQ, s2c_plain)

# ExportList, the answer to list-exports (section 1): magic "NDLX", count,
# entries {name_len, name, flags, size, block size} in name order.
def list_entry(name, flags, size, block_size):
    return (bytes([len(name)]) + name +
            struct.pack(">IQI", flags, size, block_size))


list_plain = (struct.pack(">II", 0x4E444C58, 2) +
              list_entry(b"boot", 0x01 | 0x02, 8 << 30, 512) +
              list_entry(b"data", 0x02 | 0x04 | 0x08 | 0x10 | 0x100,
                         64 << 30, 4096))

VECTORS = [
    ("psk", psk, "input: pre-shared key, bytes 0x00..0x1f"),
    ("client_random", client_random, "input: client_random, bytes 0x20..0x3f"),
    ("server_random", server_random, "input: server_random, bytes 0x40..0x5f"),
    ("client_eph", client_eph,
     "input: client's ephemeral X25519 private key, bytes 0x60..0x7f"),
    ("server_eph", server_eph,
     "input: server's ephemeral X25519 private key, bytes 0x80..0x9f"),
    ("client_share", client_share, "client_share = X25519(client_eph, 9)"),
    ("server_share", server_share, "server_share = X25519(server_eph, 9)"),
    ("client_hello", client_hello,
     "ClientHello: version 2, flags 0, client_random, timestamp "
     "ND_VEC_TIMESTAMP, identity ND_VEC_IDENTITY, export ND_VEC_EXPORT, "
     "client_share, ext_len 0"),
    ("server_hello", server_hello,
     "ServerHello: version 2, status 0, server_random, server_share, "
     "server_verify"),
    ("th", th, "th = SHA-256(ClientHello || ServerHello[0..72))"),
    ("dh", dh, "dh = X25519(client_eph, server_share) = "
     "X25519(server_eph, client_share)"),
    ("prk", prk,
     "PRK = HKDF-Extract(salt = client_random || server_random, "
     "IKM = PSK || dh)"),
    ("okm", okm,
     "OKM = HKDF-Expand(PRK, \"netdisk/2 keys\" || th, 152): c2s_traffic, "
     "s2c_traffic, c2s_iv, s2c_iv, s_finish, c_finish"),
    ("server_verify", server_verify, "server_verify = HMAC(s_finish, th)"),
    ("client_verify", client_verify, "client_verify = HMAC(c_finish, th)"),
    ("c2s_key0", c2s_key0,
     "c2s key_0 = HKDF-Expand(c2s_traffic, \"netdisk/2 key\", 32)"),
    ("s2c_key0", s2c_key0,
     "s2c key_0 = HKDF-Expand(s2c_traffic, \"netdisk/2 key\", 32)"),
    ("s2c_traffic1", s2c_traffic1,
     "s2c traffic_1 = HKDF-Expand(s2c_traffic, \"netdisk/2 traffic\", 32)"),
    ("s2c_key1", s2c_key1,
     "s2c key_1 = HKDF-Expand(s2c traffic_1, \"netdisk/2 key\", 32)"),
    ("c2s_plain", c2s_plain,
     "input: ClientFinish {client_verify, token 0, flags 0, max_payload "
     "1 MiB, slot 3, epoch 7, resume_writer 5, resume_own 6}"),
    ("c2s_record", c2s_record,
     "record c2s #0 (c2s key_0, c2s_iv) carrying nd_vec_c2s_plain: length, "
     "ciphertext, tag"),
    ("s2c_plain", s2c_plain,
     "input: FLUSH reply {op 2, status 0, length 0, handle 7}"),
    ("s2c_record", s2c_record,
     "record s2c #4096 (first under s2c key_1, s2c_iv) carrying "
     "nd_vec_s2c_plain"),
    ("list_plain", list_plain,
     "ExportList: boot (read-only, flush; 8 GiB, block size 512), data "
     "(flush, FUA, trim, write-zeroes, busy; 64 GiB, block size 4096)"),
]

HEAD = """\
/* SPDX-License-Identifier: MIT */
/*
 * netdisk protocol 2 test vectors (docs/PROTOCOL.md section 5).
 *
 * GENERATED by tests/tools/gen-vectors.py, an independent implementation of
 * the spec in Python (hashlib/hmac, pyca/cryptography's X25519, HKDF and
 * AESGCM), not by libnetdisk; `make unit` regenerates and diffs it. tests/unit
 * checks that libnetdisk reproduces them, netdisk.ko's self-test checks the
 * kernel crypto API against them.
 *
 * Plain byte arrays, no includes: compiles in userspace and in the kernel.
 *
 * Inputs: PSK, randoms and both ephemeral private keys below; ClientHello
 * version 2, flags 0, timestamp ND_VEC_TIMESTAMP, identity ND_VEC_IDENTITY,
 * export ND_VEC_EXPORT, no extensions; ServerHello status 0. The key
 * schedule's outputs follow, then one record per direction: c2s record 0
 * (key generation 0) and s2c record 4096, the first under key generation 1.
 */
#ifndef NETDISK_VECTORS_H
#define NETDISK_VECTORS_H

#define ND_VEC_UNUSED\t\t__attribute__((__unused__))
#define ND_VEC_TIMESTAMP\t%dull
#define ND_VEC_IDENTITY\t\t"%s"
#define ND_VEC_IDENTITY_LEN\t%d
#define ND_VEC_EXPORT\t\t"%s"
#define ND_VEC_EXPORT_LEN\t%d
#define ND_VEC_C2S_SEQ\t\t%dull
#define ND_VEC_S2C_SEQ\t\t%dull
""" % (TIMESTAMP, IDENTITY.decode(), len(IDENTITY), EXPORT.decode(),
       len(EXPORT), C2S_SEQ, S2C_SEQ)


def wrap_comment(text):
    words, lines, cur = text.split(), [], "/*"
    for w in words:
        if len(cur) + 1 + len(w) > 76:
            lines.append(cur)
            cur = " *"
        cur += " " + w
    if not lines:
        return cur + " */\n"
    lines.append(cur)
    return "\n".join(lines) + "\n */\n"


def array(name, data, what):
    out = "\n" + wrap_comment(what)
    out += "static const unsigned char nd_vec_%s[%d] ND_VEC_UNUSED = {\n" % (
        name, len(data))
    for i in range(0, len(data), 12):
        out += "\t" + " ".join("0x%02x," % b for b in data[i:i + 12]) + "\n"
    return out + "};\n"


def main():
    out = HEAD
    for name, data, what in VECTORS:
        out += array(name, data, what)
    out += "\n#endif /* NETDISK_VECTORS_H */\n"
    sys.stdout.write(out)


if __name__ == "__main__":
    main()
