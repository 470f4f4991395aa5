#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ndprobe: what a prober sees of a netdisk handshake, byte by byte.

    ndprobe.py HOST PORT IDENTITY,EXPORT,KEY_FILE[,list]...

For each probe given (one connection each, in turn; one process because
importing pyca/cryptography is slow on a busy machine): sends a
ClientHello (with the list-exports extension if ",list"), reads the
ServerHello, checks server_verify against KEY_FILE's key, then sends the
ClientFinish of a new read-only session sealed under the keys derived from
that key whether or not the check passed (a prober trying on), and reads
until the server closes. Prints one line per probe:

    hello=BYTES verify=ok|fail after=BYTES end=eof|reset|timeout|open [status=N] [list=...]

hello: bytes of the ServerHello, after: bytes the server sent after it
before closing (end=open: a session opened, status 0, which the probe
ends by closing). With verify=ok the first record is opened: a SessionInfo
gives status=N, an ExportList list=NAME:FLAGS:SIZE:BS,... (sorted as sent).
An implementation of docs/PROTOCOL.md written from the text (like
gen-vectors.py), sharing no code with libnetdisk.
"""
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

MAGIC = 0x4E44534B
LIST_MAGIC = 0x4E444C58


def expand(prk, info, length):
    return HKDFExpand(algorithm=hashes.SHA256(), length=length,
                      info=info).derive(prk)


def nonce(iv, seq):
    return iv[:4] + bytes(a ^ b for a, b in zip(iv[4:], struct.pack(">Q", seq)))


def recv_exact(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    return got


def opened(key, iv, rec):
    """The first s2c record as status=N or list=..."""
    body = AESGCM(key).decrypt(nonce(iv, 0), rec[4:], rec[:4])
    if struct.unpack(">I", body[:4])[0] != LIST_MAGIC:
        return ["status=%d" % struct.unpack(">H", body[:2])[0]]
    count, o, ents = struct.unpack(">I", body[4:8])[0], 8, []
    for _ in range(count):
        nl = body[o]
        name = body[o + 1:o + 1 + nl].decode()
        fl, size, bs = struct.unpack(">IQI", body[o + 1 + nl:o + 17 + nl])
        ents.append("%s:%x:%d:%d" % (name, fl, size, bs))
        o += 17 + nl
    return ["list=" + ",".join(ents)]


def probe(host, port, ident, export, keyfile, want_list):
    psk = bytes.fromhex(open(keyfile).read().strip())
    eph = X25519PrivateKey.generate()
    share = eph.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
    crandom = os.urandom(32)
    ext = struct.pack(">HH", 1, 0) if want_list else b""
    hello = (struct.pack(">IHH", MAGIC, 2, 0) + crandom +
             struct.pack(">QBB", int(time.time()), len(ident), len(export)) +
             ident.encode() + export.encode() + share +
             struct.pack(">H", len(ext)) + ext)
    s = socket.create_connection((host, int(port)))
    s.settimeout(15)
    s.sendall(hello)
    sh = recv_exact(s, 104)
    out = ["hello=%d" % len(sh)]
    if len(sh) < 104:
        return out[0] + " verify=none after=0 end=eof"
    th = hashlib.sha256(hello + sh[:72]).digest()
    dh = eph.exchange(X25519PublicKey.from_public_bytes(sh[40:72]))
    prk = hmac.new(crandom + sh[8:40], psk + dh, hashlib.sha256).digest()
    okm = expand(prk, b"netdisk/2 keys" + th, 152)
    c2s_key = expand(okm[0:32], b"netdisk/2 key", 32)
    s2c_key = expand(okm[32:64], b"netdisk/2 key", 32)
    c2s_iv, s2c_iv = okm[64:76], okm[76:88]
    ok = hmac.compare_digest(sh[72:104],
                             hmac.new(okm[88:120], th, hashlib.sha256).digest())
    out.append("verify=" + ("ok" if ok else "fail"))
    cverify = hmac.new(okm[120:152], th, hashlib.sha256).digest()
    finish = cverify + bytes(16) + struct.pack(">IIHHIQQ", 1, 0, 0, 0, 1, 0, 0)
    length = struct.pack(">I", len(finish) + 16)
    s.sendall(length + AESGCM(c2s_key).encrypt(nonce(c2s_iv, 0), finish,
                                               length))
    rest, end, info = b"", "eof", []
    try:
        while True:
            if ok and len(rest) >= 4 and not info:
                n = struct.unpack(">I", rest[:4])[0]
                if len(rest) >= 4 + n:
                    info = opened(s2c_key, s2c_iv, rest[:4 + n])
                    if info == ["status=0"]:
                        end = "open"  # a session: ours to end
                        break
            b = s.recv(65536)
            if not b:
                break
            rest += b
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    out += ["after=%d" % len(rest), "end=" + end] + info
    s.close()
    return " ".join(out)


def main():
    host, port = sys.argv[1:3]
    for spec in sys.argv[3:]:
        f = spec.split(",")
        print(probe(host, port, f[0], f[1], f[2], f[3:] == ["list"]),
              flush=True)


main()
