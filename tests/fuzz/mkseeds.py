#!/usr/bin/env python3
# Writes the seed inputs in tests/fuzz/corpus/<fuzzer>/ (committed; rerun
# only to regenerate them). Formats: see the header comment of each harness.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x4E44534B


def put(name, seed, data):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, seed), "wb") as f:
        f.write(data)


def ext_area(*exts):
    return b"".join(struct.pack(">HH", t, len(v)) + v for t, v in exts)


# The X25519 base point (u = 9): a valid share.
SHARE9 = b"\x09" + bytes(31)


def hello(identity=b"default", export=b"default", version=2, ts=0,
          share=SHARE9, ext=b"", ext_len=None):
    return (struct.pack(">IHH", MAGIC, version, 0) + bytes(range(32)) +
            struct.pack(">QBB", ts, len(identity), len(export)) +
            identity + export + share +
            struct.pack(">H", len(ext) if ext_len is None else ext_len) + ext)


def req(op, length=0, offset=0, handle=1, flags=0):
    return struct.pack(">BBHIQQ", op, flags, 0, length, handle, offset)


def chunk_friendly(op, length, offset, handle):
    # kind 2: the harness makes the header well-formed and adds WRITE data
    return b"\x02" + req(op, length, offset, handle)


def chunk_body(body):
    return b"\x00" + struct.pack(">H", len(body)) + body


READ, WRITE, FLUSH, DISCONNECT, TRIM, WZ = range(6)
every_op = (chunk_friendly(WRITE, 7, 3, 1) + chunk_friendly(READ, 7, 3, 2) +
            chunk_friendly(FLUSH, 0, 0, 3) + chunk_friendly(TRIM, 8, 0, 4) +
            chunk_friendly(WZ, 8, 0, 5) +
            chunk_body(req(READ, 4096, 0, 6)) +
            b"\x01" + req(WRITE, 512, 512, 7) +
            chunk_friendly(DISCONNECT, 0, 0, 8))

# ---- proto: byte 0 picks the decoder
put("proto", "client_hello", b"\x00" + hello(ts=1700000000))
put("proto", "client_hello_ext", b"\x00" + hello(
    ts=1700000000, ext=ext_area((0xfe00, b"abc"), (1, b""))))
put("proto", "server_hello", b"\x01" + struct.pack(">IHH", MAGIC, 2, 0) +
    bytes(96))
put("proto", "server_hello_version", b"\x01" +
    struct.pack(">IHH", MAGIC, 1, 9) + bytes(64))
put("proto", "client_finish", b"\x02" + bytes(48) +
    struct.pack(">IIHHIQQ", 1, 1 << 20, 3, 0, 7, 5, 6))
put("proto", "session_info", b"\x03" + struct.pack(
    ">HHIQII", 0, 0, 0x23, 1 << 30, 512, 1 << 20) + bytes(32) +
    struct.pack(">QQ", 4, 3))
put("proto", "request_write", b"\x04" + struct.pack(">I", 1 << 20) +
    req(WRITE, 512, 4096) + bytes(512))
put("proto", "request_flush", b"\x04" + struct.pack(">I", 4096) + req(FLUSH))
put("proto", "reply_read", b"\x05" + struct.pack(">BBHIQ", READ, 0, 0, 512, 9)
    + bytes(512))

# ---- keyfile
key = bytes(range(32)).hex()
put("keyfile", "key_lf", key.encode() + b"\n")
put("keyfile", "key_upper_ws", b"  \t" + key.upper().encode() + b"\r\n\n")
put("keyfile", "bad_char", (key[:63] + "g").encode() + b"\n")
put("keyfile", "short", key[:62].encode())

# ---- config: netdiskd.conf text, '@' = the harness's scratch directory
# (images img1 img2, key file key, key-dir keys with lab-01 and db01)
put("config", "full", b"""; every key
[server]
listen = ::1 127.0.0.1
port = 0
key-dir = @/keys
key-file = @/key
workers = 4
grace = 0
max-payload = 64K
log-level = debug
state-dir = @/state
control = @/ctl.sock

[export boot]
path = @/img1
read-only = yes
clients = lab-* db0[1-3]

[export data]
  path = @/img2   ; indented
  clients = db01
""")
put("config", "minimal", b"[export a]\npath=@/img1\n[server]\nkey-dir=@/keys\n")
put("config", "bad_pattern", b"[server]\nkey-file=@/key\n[export a]\n"
    b"path=@/img1\nclients=lab-[0-9\n")
put("config", "cow", b"[server]\nkey-file=@/key\n[export g]\npath=@/img1\n"
    b"cow = @/ov/\nclients = lab-*\n[export h]\npath=@/img2\ncow=@/keys\n")
put("config", "duplicate", b"[server]\nkey-file=@/key\n[export a]\n"
    b"path=@/img1\n[export a]\npath=@/img2\n")

# ---- url
for i, u in enumerate([b"netdisk://host", b"netdisk://10.0.0.1:26547/disk0",
                       b"netdisk://[::1]:1/a.b_c-d", b"netdisk://h/",
                       b"netdisk://[fe80::1]", b"nbd://x"]):
    put("url", "url%d" % i, u)

# ---- record: seq[8] cap[2] chunks (kind, len[2], bytes)
def rec(kind, body):
    return bytes([kind]) + struct.pack(">H", len(body)) + body


put("record", "good", struct.pack(">QH", 0, 4096) + rec(0, b"hello") +
    rec(0, b"") + rec(0, bytes(100)))
put("record", "rekey", struct.pack(">QH", 3, 4096) +
    b"".join(rec(0, bytes([i]) * i) for i in range(8)))
put("record", "forged", struct.pack(">QH", 0, 64) + rec(0, b"a") +
    rec(1, b"b") + rec(0, b"c"))
put("record", "wrongkey_raw", struct.pack(">QH", 0, 64) + rec(2, b"x") +
    rec(3, b"\x00\x00\x00\x20junk"))
put("record", "toobig", struct.pack(">QH", 0, 20) + rec(0, b"0123456789"))
put("record", "seq_end", struct.pack(">QH", 0xFFFFFFFFFFFFFFFF, 64) +
    rec(0, b"a") + rec(0, b"b"))

# ---- server_hs: ctl delta hello fin_ctl token[16] flags[4] mp[4] slot[2]
# epoch[4] chunks
def finish(ctl=0, token=bytes(16), flags=0, mp=0, slot=0, epoch=1):
    return bytes([ctl]) + token + struct.pack(">IIHI", flags, mp, slot, epoch)


fin = finish()
put("server_hs", "good", b"\x01\x00" + hello() + fin + every_op)
put("server_hs", "read_only", b"\x01\x00" + hello() +
    finish(flags=1, mp=8192) + chunk_friendly(READ, 1, 0, 1))
put("server_hs", "skew", b"\x01\x50" + hello() + fin)
put("server_hs", "bad_proof", b"\x01\x00" + hello() + finish(ctl=1))
put("server_hs", "token", b"\x01\x00" + hello() +
    finish(token=b"\x01" * 16))
put("server_hs", "small_payload", b"\x01\x00" + hello() + finish(mp=100))
put("server_hs", "bad_slot", b"\x01\x00" + hello() + finish(slot=64))
put("server_hs", "epoch0", b"\x01\x00" + hello() + finish(epoch=0))
put("server_hs", "unknown_identity", b"\x01\x00" + hello(b"other") + fin)
put("server_hs", "no_export", b"\x01\x00" + hello(export=b"nope") + fin)
put("server_hs", "version", b"\x01\x00" + hello(version=1))
put("server_hs", "bad_name", b"\x01\x00" + hello(b"a b"))
put("server_hs", "ext", b"\x01\x00" + hello(
    ext=ext_area((0x7777, b"x" * 10), (0, b""))) + fin)
put("server_hs", "bad_ext", b"\x01\x00" + hello(
    ext=ext_area((1, b"abc"))[:-1], ext_len=7) + fin)
put("server_hs", "low_order", b"\x03\x00" + hello(share=bytes(32)) + fin)
put("server_hs", "raw_finish", b"\x01\x00" + hello() + finish(ctl=2))
# The export list instead of a session (read-only finish, as clients send).
put("server_hs", "list_exports", b"\x01\x00" + hello(
    ext=ext_area((1, b""))) + finish(flags=1))
put("server_hs", "list_exports_unknown", b"\x01\x00" + hello(
    b"other", ext=ext_area((0x7777, b"x"), (1, b""))) + finish(flags=1))
put("server_hs", "short", b"\x00\x00" + hello()[:30])

# ---- server_req: ctl chunks
put("server_req", "rw", b"\x00" + every_op)
put("server_req", "ro_export", b"\x01" + every_op)
put("server_req", "ro_session", b"\x02" + every_op)
put("server_req", "payload4k", b"\x04" + chunk_friendly(WRITE, 100, 0, 1) +
    chunk_friendly(READ, 100, 0, 2))
put("server_req", "past_end", b"\x00" + chunk_body(req(READ, 512, 256 << 10)) +
    chunk_body(req(WRITE, 512, (256 << 10) - 512) + bytes(512)) +
    chunk_body(req(READ, 512, (1 << 64) - 512)))
put("server_req", "bad_request", b"\x00" + chunk_body(req(READ, 0)) +
    chunk_body(req(READ, 512)))
put("server_req", "raw", b"\x00" + chunk_friendly(READ, 1, 0, 1) +
    b"\x03\x00\x04\xff\xff\xff\xff")
put("server_req", "forged", b"\x00" + chunk_friendly(READ, 1, 0, 1) +
    b"\x06" + req(READ, 1, 0, 2))

# ---- client: hello_mode [..] info_mode [..] reply chunks (kind, k, ...)
def friendly_reply(k, status=0):
    return bytes([0, k, status])


info_ok = b"\x00" + struct.pack(">II", 0x23, 2047)
all_ok = b"".join(friendly_reply(k) for k in range(6))
put("client", "good", b"\x00" + info_ok + all_ok)
put("client", "errors", b"\x00" + info_ok +
    b"".join(friendly_reply(k, k + 1) for k in range(6)))
put("client", "refused", b"\x01" + struct.pack(">H", 7))
put("client", "bad_proof", b"\x03")
put("client", "raw_hello", b"\x02" + struct.pack(">IHH", MAGIC, 2, 0) +
    bytes(96))
put("client", "v1_refusal", b"\x02" + struct.pack(">IHH", MAGIC, 1, 9) +
    bytes(64))
put("client", "raw_info", b"\x00\x01" + struct.pack(
    ">HHIQII", 0, 0, 0, 1 << 20, 512, 1 << 30) + bytes(32) +
    struct.pack(">QQ", 1, 0))
put("client", "duplicate", b"\x00" + info_ok + friendly_reply(0) +
    friendly_reply(0))
put("client", "bad_length", b"\x00" + info_ok + b"\x01\x00" +
    struct.pack(">BBHIQ", READ, 0x41, 0, 100, 0))
put("client", "half_record", b"\x00" + info_ok + friendly_reply(1) +
    b"\x03\x00\x00\x03\x00\x00\x00")

# ---- list: an ExportList body (magic, count, entries)
def list_entry(name, flags, size, bs):
    return bytes([len(name)]) + name + struct.pack(">IQI", flags, size, bs)


def export_list(entries, count=None):
    n = len(entries) if count is None else count
    return struct.pack(">II", 0x4E444C58, n) + b"".join(entries)


put("list", "empty", export_list([]))
put("list", "three", export_list([
    list_entry(b"alpha", 0x6, 1 << 22, 512),
    list_entry(b"beta.ro", 0x3, 1 << 22, 4096),
    list_entry(b"gamma", 0x102, 1 << 22, 512)]))
put("list", "long_name", export_list([
    list_entry(b"a" * 64, 0x11F, (1 << 63) - 4096, 4096)]))
put("list", "count_off", export_list([list_entry(b"a", 0, 512, 512)], 2))

# client, list request (hello_mode bit 2): an ExportList as a sealed body,
# a server without the extension, a refusal in the SessionInfo.
good_list = export_list([list_entry(b"alpha", 0x6, 1 << 22, 512),
                         list_entry(b"beta", 0x103, 1 << 22, 4096)])
put("client", "list", b"\x04\x02" + struct.pack(">H", len(good_list)) +
    good_list)
put("client", "list_none", b"\x04" + info_ok)
put("client", "list_denied", b"\x04\x01" + struct.pack(">H", 15) + bytes(70))

# ---- cow: byte 0 = fix-ups (1 header checksum, 2 base fields, 4 extend
# past the data offset), then the overlay file; the base is 64 KiB.
def cow_file(cluster_bits=12, version=1, magic=b"NDCOW\r\n\x1a", incompat=0,
             size=64 << 10, map_offset=8192, map_len=4096,
             data_offset=1 << 20, entries=()):
    hdr = (magic + struct.pack("<IIII", version, incompat, 0, cluster_bits) +
           struct.pack("<QQQQ", size, map_offset, map_len, data_offset) +
           bytes(range(16)) + struct.pack("<QQQ", 1700000000, size, 0) +
           bytes(32))
    hdr += bytes(8192 - len(hdr))	# header block and an empty usage block
    m = bytearray(map_len)
    for c, v in entries:
        m[c // 4] |= v << (2 * (c % 4))
    return hdr + bytes(m)


put("cow", "valid", b"\x07" + cow_file(entries=((0, 1), (1, 2), (5, 1))))
put("cow", "valid_c9", b"\x07" + cow_file(cluster_bits=9,
                                          entries=((3, 1), (127, 2))))
put("cow", "valid_c20", b"\x07" + cow_file(cluster_bits=20,
                                           entries=((0, 1),)))
put("cow", "empty_map", b"\x07" + cow_file())
put("cow", "no_fixups", b"\x00" + cow_file())
put("cow", "base_fields_kept", b"\x05" + cow_file())
put("cow", "short", b"\x03" + cow_file(entries=((0, 1),)))
put("cow", "bad_magic", b"\x07" + cow_file(magic=b"NDCOW\n\n\x1a"))
put("cow", "version2", b"\x07" + cow_file(version=2))
put("cow", "incompat", b"\x07" + cow_file(incompat=1))
put("cow", "map_three", b"\x07" + cow_file(entries=((7, 3),)))
put("cow", "past_end", b"\x07" + cow_file(entries=((16, 1),)))
put("cow", "bad_map_len", b"\x07" + cow_file(map_len=8192))
put("cow", "header_only", b"\x07" + cow_file()[:4096])
