#!/usr/bin/env python3
"""AES-256-GCM speed of the kernel crypto API (AF_ALG), per driver.

usage: bench/kcrypto-speed.py [SECONDS] [BYTES] [NAME...]
Prints "NAME DRIVER MB/s" per algorithm name (encrypt, one thread; an
unavailable name prints "n/a"). This is what netdisk.ko's record layer
runs on, plus one copy in and out of the socket: a lower bound.
"""
import os
import socket
import sys
import time

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
size = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
names = sys.argv[3:] or ["gcm(aes)"]
key = os.urandom(32)
data = bytes(size)
iv = bytes(12)


def driver(name):
    """The driver the kernel bound for name, from /proc/crypto."""
    best, prio = name, -1
    try:
        with open("/proc/crypto") as f:
            blocks = f.read().split("\n\n")
    except OSError:
        return name
    for b in blocks:
        kv = dict(l.split(":", 1) for l in b.splitlines() if ":" in l)
        kv = {k.strip(): v.strip() for k, v in kv.items()}
        if name in (kv.get("name"), kv.get("driver")) and \
                kv.get("type") == "aead" and \
                int(kv.get("priority", 0)) > prio:
            best, prio = kv.get("driver", name), int(kv.get("priority", 0))
    return best


for name in names:
    try:
        alg = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
        alg.bind(("aead", name))
        alg.setsockopt(socket.SOL_ALG, socket.ALG_SET_KEY, key)
        alg.setsockopt(socket.SOL_ALG, socket.ALG_SET_AEAD_AUTHSIZE, None, 16)
        op, _ = alg.accept()
    except OSError as e:
        print(f"{name} n/a ({e.strerror})")
        continue
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs:
        op.sendmsg_afalg([b"\0\0\0\0" + data], op=socket.ALG_OP_ENCRYPT,
                         iv=iv, assoclen=4)
        op.recv(4 + size + 16)
        n += 1
    dt = time.monotonic() - t0
    print(f"{name} {driver(name)} {n * size / dt / 1e6:.1f}")
    op.close()
    alg.close()
