/* SPDX-License-Identifier: MIT */
/*
 * netdisk wire protocol, version 2: constants, sizes and field-by-field
 * encoders/decoders shared by netdiskd, libnetdisk and netdisk.ko.
 *
 * No libc and no kernel API beyond fixed-width types: this header compiles
 * unchanged in userspace and in the kernel. docs/PROTOCOL.md is the spec.
 */
#ifndef NETDISK_PROTO_H
#define NETDISK_PROTO_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
#include <stddef.h>
#endif

#define ND_DEFAULT_PORT		26547
#define ND_MAGIC		0x4e44534bu	/* "NDSK" */
#define ND_VERSION		2

#define ND_RANDOM_LEN		32
#define ND_KEY_LEN		32	/* pre-shared key and AES-256 keys */
#define ND_IV_LEN		12
#define ND_TAG_LEN		16
#define ND_HASH_LEN		32	/* SHA-256 */
#define ND_TOKEN_LEN		16	/* session token */
#define ND_EXPORT_ID_LEN	16
#define ND_NAME_MAX		64	/* identity and export names */
#define ND_SHARE_LEN		32	/* X25519 public key */
#define ND_MAX_SLOTS		64	/* connection slots per session */

/*
 * Handshake messages (plaintext). A ClientHello is the version-1-compatible
 * prefix (fixed part, names), then the key share and the extension area.
 */
#define ND_CLIENT_HELLO_FIXED	50	/* + identity + export names */
#define ND_CLIENT_HELLO_TAIL	34	/* after the names: share, ext_len */
#define ND_EXT_MAX		512	/* extension area bytes */
#define ND_CLIENT_HELLO_MAX	(ND_CLIENT_HELLO_FIXED + 2 * ND_NAME_MAX + \
				 ND_CLIENT_HELLO_TAIL + ND_EXT_MAX)
#define ND_SERVER_HELLO_LEN	104
#define ND_SERVER_HELLO_HEAD	8	/* magic, version, status: read first */
#define ND_SERVER_HELLO_TH_LEN	72	/* magic..server_share enter the transcript */

/*
 * Key schedule: HKDF-SHA256 output, split in this order. Each direction's
 * traffic secret yields its record keys, one per generation of
 * ND_REKEY_RECORDS records:
 *   key_g       = HKDF-Expand(traffic_g, ND_KEY_LABEL, 32)
 *   traffic_g+1 = HKDF-Expand(traffic_g, ND_TRAFFIC_LABEL, 32)
 */
#define ND_KDF_LABEL		"netdisk/2 keys"
#define ND_KDF_LABEL_LEN	14
#define ND_KEY_LABEL		"netdisk/2 key"
#define ND_KEY_LABEL_LEN	13
#define ND_TRAFFIC_LABEL	"netdisk/2 traffic"
#define ND_TRAFFIC_LABEL_LEN	17
#define ND_OKM_LEN		(2 * ND_KEY_LEN + 2 * ND_IV_LEN + 2 * ND_HASH_LEN)
#define ND_OKM_C2S_TRAFFIC	0
#define ND_OKM_S2C_TRAFFIC	32
#define ND_OKM_C2S_IV		64
#define ND_OKM_S2C_IV		76
#define ND_OKM_S_FINISH		88
#define ND_OKM_C_FINISH		120

/*
 * Records: u32 length (ciphertext + tag, authenticated as AAD), ciphertext,
 * tag. Nonce = direction IV XOR big-endian 64-bit record sequence number in
 * its last 8 bytes. Record number n is sealed under key generation
 * n / ND_REKEY_RECORDS: at most 4096 records of 16 MiB, 2^32 AES blocks.
 */
#define ND_RECORD_HDR_LEN	4
#define ND_REKEY_RECORDS	(1ull << 12)

/* Payload sizes. */
#define ND_SECTOR_SIZE		512
/*
 * Export sizes stay below 2^63 bytes: file offsets and the kernel's i_size
 * are signed 64-bit.
 */
#define ND_EXPORT_SIZE_LIMIT	(1ull << 63)
#define ND_MIN_PAYLOAD		4096
#define ND_DEFAULT_PAYLOAD	(1u << 20)
#define ND_MAX_PAYLOAD		(16u << 20)
#define ND_REQ_HDR_LEN		24
#define ND_REPLY_HDR_LEN	16
#define ND_CLIENT_FINISH_LEN	80
#define ND_SESSION_INFO_LEN	72
/* Largest record body either side ever accepts, before negotiation. */
#define ND_RECORD_MAX		(ND_REQ_HDR_LEN + ND_MAX_PAYLOAD + ND_TAG_LEN)

/* Request operations. */
enum nd_op {
	ND_OP_READ = 0,
	ND_OP_WRITE = 1,
	ND_OP_FLUSH = 2,
	ND_OP_DISCONNECT = 3,
	ND_OP_TRIM = 4,
	ND_OP_WRITE_ZEROES = 5,
	ND_OP__COUNT
};

/* Request flags. */
#define ND_REQ_FUA		0x01u

/* Export flags (session info). */
#define ND_EXP_READ_ONLY	0x01u
#define ND_EXP_FLUSH		0x02u
#define ND_EXP_FUA		0x04u
#define ND_EXP_TRIM		0x08u
#define ND_EXP_WRITE_ZEROES	0x10u
#define ND_EXP_EXCLUSIVE	0x20u	/* this session is the only writer */

/* Client finish flags. */
#define ND_CF_READ_ONLY		0x01u	/* client asks for read-only access */

/* Status codes in server hello, session info and replies. */
enum nd_status {
	ND_OK = 0,
	ND_ERR_IO = 1,
	ND_ERR_READ_ONLY = 2,
	ND_ERR_RANGE = 3,
	ND_ERR_INVALID = 4,
	ND_ERR_NOSPC = 5,
	ND_ERR_NOTSUP = 6,
	ND_ERR_BUSY = 7,
	ND_ERR_NO_EXPORT = 8,
	ND_ERR_VERSION = 9,
	ND_ERR_CLOCK_SKEW = 10,
	ND_ERR_NO_SESSION = 11,
	ND_ERR_SHUTDOWN = 12,
	ND_ERR_WRITTEN = 13,	/* another session wrote since the client's */
	ND_ERR_SUPERSEDED = 14,	/* a newer connection holds this slot */
	ND_ERR_ACCESS = 15,	/* this identity may not use the export */
	/* The identity's copy-on-write overlay was made from another base. */
	ND_ERR_BASE_CHANGED = 16,
	ND_ERR__COUNT
};

#define ND_CLOCK_SKEW_MAX	300	/* seconds either way */
#define ND_HANDSHAKE_TIMEOUT	10	/* seconds */

static inline const char *nd_status_str(unsigned int s)
{
	static const char *const names[ND_ERR__COUNT] = {
		"success", "I/O error", "export is read-only",
		"request out of range", "invalid request", "no space left",
		"operation not supported", "export busy", "no such export",
		"unsupported protocol version", "clock skew too large",
		"unknown or expired session", "server shutting down",
		"export was written by another client while disconnected",
		"connection superseded by a newer one", "access denied",
		"base image of the overlay changed",
	};

	return s < ND_ERR__COUNT ? names[s] : "unknown error";
}

/* Big-endian field access, byte by byte: no alignment or packing assumed. */
static inline void nd_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)((v >> 8) & 0xff);
	p[1] = (uint8_t)(v & 0xff);
}

static inline void nd_put32(uint8_t *p, uint32_t v)
{
	/* Masks keep sparse quiet when v is a constant. */
	p[0] = (uint8_t)((v >> 24) & 0xff);
	p[1] = (uint8_t)((v >> 16) & 0xff);
	p[2] = (uint8_t)((v >> 8) & 0xff);
	p[3] = (uint8_t)(v & 0xff);
}

static inline void nd_put64(uint8_t *p, uint64_t v)
{
	nd_put32(p, (uint32_t)(v >> 32));
	nd_put32(p + 4, (uint32_t)v);
}

static inline uint16_t nd_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t nd_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint64_t nd_get64(const uint8_t *p)
{
	return ((uint64_t)nd_get32(p) << 32) | nd_get32(p + 4);
}

static inline void nd_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
	while (n--)
		*dst++ = *src++;
}

static inline void nd_zero(uint8_t *dst, size_t n)
{
	while (n--)
		*dst++ = 0;
}

/* Names: 1..ND_NAME_MAX bytes of [A-Za-z0-9._-]. */
static inline int nd_name_valid(const uint8_t *s, size_t len)
{
	size_t i;

	if (len < 1 || len > ND_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		uint8_t c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* ---- ClientHello ---- */
struct nd_client_hello {
	uint16_t version;
	uint16_t flags;			/* none defined: 0; ignored by servers */
	uint8_t random[ND_RANDOM_LEN];
	uint64_t timestamp;		/* Unix seconds */
	uint8_t identity_len;
	uint8_t export_len;
	uint8_t identity[ND_NAME_MAX];
	uint8_t export_name[ND_NAME_MAX];
	uint8_t share[ND_SHARE_LEN];	/* ephemeral X25519 public key */
	uint16_t ext_len;		/* 0..ND_EXT_MAX */
	uint8_t ext[ND_EXT_MAX];	/* extensions: {u16 type, u16 len, value} */
};

static inline size_t nd_client_hello_len(const struct nd_client_hello *h)
{
	return ND_CLIENT_HELLO_FIXED + h->identity_len + h->export_len +
	       ND_CLIENT_HELLO_TAIL + h->ext_len;
}

/* Returns bytes written (nd_client_hello_len), buffer >= ND_CLIENT_HELLO_MAX. */
static inline size_t nd_client_hello_encode(uint8_t *p,
					    const struct nd_client_hello *h)
{
	size_t o = ND_CLIENT_HELLO_FIXED + h->identity_len + h->export_len;

	nd_put32(p, ND_MAGIC);
	nd_put16(p + 4, h->version);
	nd_put16(p + 6, h->flags);
	nd_copy(p + 8, h->random, ND_RANDOM_LEN);
	nd_put64(p + 40, h->timestamp);
	p[48] = h->identity_len;
	p[49] = h->export_len;
	nd_copy(p + 50, h->identity, h->identity_len);
	nd_copy(p + 50 + h->identity_len, h->export_name, h->export_len);
	nd_copy(p + o, h->share, ND_SHARE_LEN);
	nd_put16(p + o + ND_SHARE_LEN, h->ext_len);
	nd_copy(p + o + ND_CLIENT_HELLO_TAIL, h->ext, h->ext_len);
	return nd_client_hello_len(h);
}

/*
 * Decodes the fixed part (first ND_CLIENT_HELLO_FIXED bytes), the same in
 * every protocol version. Returns the number of name bytes still to read,
 * or -1 if the fixed part is malformed (bad magic, a name length out of
 * 1..64). The caller checks h->version after reading the names.
 */
static inline int nd_client_hello_decode_fixed(const uint8_t *p,
					       struct nd_client_hello *h)
{
	if (nd_get32(p) != ND_MAGIC)
		return -1;
	h->version = nd_get16(p + 4);
	h->flags = nd_get16(p + 6);
	nd_copy(h->random, p + 8, ND_RANDOM_LEN);
	h->timestamp = nd_get64(p + 40);
	h->identity_len = p[48];
	h->export_len = p[49];
	if (h->identity_len < 1 || h->identity_len > ND_NAME_MAX ||
	    h->export_len < 1 || h->export_len > ND_NAME_MAX)
		return -1;
	return h->identity_len + h->export_len;
}

/* Decodes the names that follow the fixed part. 0 on success, -1 if invalid. */
static inline int nd_client_hello_decode_names(const uint8_t *names,
					       struct nd_client_hello *h)
{
	if (!nd_name_valid(names, h->identity_len) ||
	    !nd_name_valid(names + h->identity_len, h->export_len))
		return -1;
	nd_copy(h->identity, names, h->identity_len);
	nd_copy(h->export_name, names + h->identity_len, h->export_len);
	return 0;
}

/*
 * Decodes the ND_CLIENT_HELLO_TAIL bytes after the names (version 2).
 * Returns the extension bytes still to read, or -1 if ext_len is over
 * ND_EXT_MAX.
 */
static inline int nd_client_hello_decode_tail(const uint8_t *p,
					      struct nd_client_hello *h)
{
	nd_copy(h->share, p, ND_SHARE_LEN);
	h->ext_len = nd_get16(p + ND_SHARE_LEN);
	if (h->ext_len > ND_EXT_MAX)
		return -1;
	return h->ext_len;
}

/*
 * Checks and keeps the extension area: a sequence of {u16 type, u16 len,
 * len bytes} filling ext_len exactly. Protocol 2 defines no type; unknown
 * types are ignored. 0, or -1 if the framing is broken.
 */
static inline int nd_client_hello_decode_ext(const uint8_t *p,
					     struct nd_client_hello *h)
{
	size_t o = 0;

	while (o < h->ext_len) {
		if (h->ext_len - o < 4 ||
		    nd_get16(p + o + 2) > h->ext_len - o - 4)
			return -1;
		o += 4 + nd_get16(p + o + 2);
	}
	nd_copy(h->ext, p, h->ext_len);
	return 0;
}

/* ---- ServerHello ---- */
struct nd_server_hello {
	uint16_t version;
	uint16_t status;		/* ND_OK or ND_ERR_VERSION */
	uint8_t random[ND_RANDOM_LEN];
	uint8_t share[ND_SHARE_LEN];	/* ephemeral X25519 public key */
	uint8_t verify[ND_HASH_LEN];
};

static inline void nd_server_hello_encode(uint8_t *p,
					  const struct nd_server_hello *h)
{
	nd_put32(p, ND_MAGIC);
	nd_put16(p + 4, h->version);
	nd_put16(p + 6, h->status);
	nd_copy(p + 8, h->random, ND_RANDOM_LEN);
	nd_copy(p + 40, h->share, ND_SHARE_LEN);
	nd_copy(p + 72, h->verify, ND_HASH_LEN);
}

/*
 * The ServerHello is not authenticated: it may only say that the server
 * speaks another version (its only error, the one a server must give
 * before it can prove the key). Every other status comes in the
 * authenticated SessionInfo.
 */
static inline int nd_server_hello_status_valid(uint16_t status)
{
	return status == ND_OK || status == ND_ERR_VERSION;
}

/*
 * Decodes the first ND_SERVER_HELLO_HEAD bytes: 0, or -1 on a bad magic or
 * a status not allowed here. With ND_ERR_VERSION the client stops here
 * (a version-1 server sends 72 bytes, a version-2 one 104).
 */
static inline int nd_server_hello_decode_head(const uint8_t *p,
					      struct nd_server_hello *h)
{
	if (nd_get32(p) != ND_MAGIC)
		return -1;
	h->version = nd_get16(p + 4);
	h->status = nd_get16(p + 6);
	return nd_server_hello_status_valid(h->status) ? 0 : -1;
}

/* Decodes a whole ServerHello: as _head, then random, share and verify. */
static inline int nd_server_hello_decode(const uint8_t *p,
					 struct nd_server_hello *h)
{
	if (nd_server_hello_decode_head(p, h))
		return -1;
	nd_copy(h->random, p + 8, ND_RANDOM_LEN);
	nd_copy(h->share, p + 40, ND_SHARE_LEN);
	nd_copy(h->verify, p + 72, ND_HASH_LEN);
	return 0;
}

/* ---- ClientFinish (first client record) ---- */
struct nd_client_finish {
	uint8_t verify[ND_HASH_LEN];
	uint8_t token[ND_TOKEN_LEN];	/* all zero: new session */
	uint32_t flags;			/* ND_CF_* */
	uint32_t max_payload;		/* 0: ND_DEFAULT_PAYLOAD */
	uint16_t slot;			/* connection slot, < ND_MAX_SLOTS */
	uint16_t reserved;		/* 0 */
	uint32_t epoch;			/* >= 1, grows with every attempt per slot */
	uint64_t resume_writer;		/* last_writer of the client's last session */
	uint64_t resume_own;		/* write_epoch of the client's last session */
};

static inline void nd_client_finish_encode(uint8_t *p,
					   const struct nd_client_finish *f)
{
	nd_copy(p, f->verify, ND_HASH_LEN);
	nd_copy(p + 32, f->token, ND_TOKEN_LEN);
	nd_put32(p + 48, f->flags);
	nd_put32(p + 52, f->max_payload);
	nd_put16(p + 56, f->slot);
	nd_put16(p + 58, f->reserved);
	nd_put32(p + 60, f->epoch);
	nd_put64(p + 64, f->resume_writer);
	nd_put64(p + 72, f->resume_own);
}

static inline void nd_client_finish_decode(const uint8_t *p,
					   struct nd_client_finish *f)
{
	nd_copy(f->verify, p, ND_HASH_LEN);
	nd_copy(f->token, p + 32, ND_TOKEN_LEN);
	f->flags = nd_get32(p + 48);
	f->max_payload = nd_get32(p + 52);
	f->slot = nd_get16(p + 56);
	f->reserved = nd_get16(p + 58);
	f->epoch = nd_get32(p + 60);
	f->resume_writer = nd_get64(p + 64);
	f->resume_own = nd_get64(p + 72);
}

/*
 * NULL if an authenticated ClientFinish's fields are acceptable, else what
 * is wrong (the server answers ND_ERR_INVALID in SessionInfo).
 */
static inline const char *
nd_client_finish_invalid(const struct nd_client_finish *f)
{
	if (f->flags & ~ND_CF_READ_ONLY)
		return "unknown flags";
	if (f->max_payload && (f->max_payload < ND_MIN_PAYLOAD ||
			       f->max_payload > ND_MAX_PAYLOAD ||
			       f->max_payload % ND_MIN_PAYLOAD))
		return "max payload not a multiple of 4 KiB in 4 KiB..16 MiB";
	if (f->slot >= ND_MAX_SLOTS)
		return "slot out of range";
	if (f->reserved)
		return "reserved field not zero";
	if (!f->epoch)
		return "epoch 0";
	return NULL;
}

/* ---- SessionInfo (first server record) ---- */
struct nd_session_info {
	uint16_t status;
	uint32_t flags;			/* ND_EXP_* */
	uint64_t size;			/* bytes */
	uint32_t block_size;		/* logical block size */
	uint32_t max_payload;		/* negotiated */
	uint8_t token[ND_TOKEN_LEN];
	uint8_t export_id[ND_EXPORT_ID_LEN];
	uint64_t write_epoch;		/* this session's writer number; 0: none */
	uint64_t last_writer;		/* write_epoch of the export's last writer */
};

static inline void nd_session_info_encode(uint8_t *p,
					  const struct nd_session_info *s)
{
	nd_put16(p, s->status);
	nd_put16(p + 2, 0);
	nd_put32(p + 4, s->flags);
	nd_put64(p + 8, s->size);
	nd_put32(p + 16, s->block_size);
	nd_put32(p + 20, s->max_payload);
	nd_copy(p + 24, s->token, ND_TOKEN_LEN);
	nd_copy(p + 40, s->export_id, ND_EXPORT_ID_LEN);
	nd_put64(p + 56, s->write_epoch);
	nd_put64(p + 64, s->last_writer);
}

/*
 * NULL if a SessionInfo is usable: a known status and, with status OK, an
 * export within the protocol's ranges. Else what is wrong with it.
 */
static inline const char *
nd_session_info_invalid(const struct nd_session_info *s)
{
	if (s->status >= ND_ERR__COUNT)
		return "unknown status";
	if (s->status != ND_OK)
		return NULL;
	if (s->block_size != 512 && s->block_size != 1024 &&
	    s->block_size != 2048 && s->block_size != 4096)
		return "block size not 512, 1024, 2048 or 4096";
	if (s->size == 0 || s->size >= ND_EXPORT_SIZE_LIMIT)
		return "export size 0 or 2^63 bytes or more";
	if (s->size % s->block_size)
		return "export size not a multiple of the block size";
	if (s->max_payload < ND_MIN_PAYLOAD ||
	    s->max_payload > ND_MAX_PAYLOAD ||
	    s->max_payload % ND_MIN_PAYLOAD)
		return "max payload not a multiple of 4 KiB in 4 KiB..16 MiB";
	if (!(s->flags & ND_EXP_READ_ONLY) != !!s->write_epoch)
		return "write epoch on a read-only session, or none on a writable one";
	return NULL;
}

/*
 * 0 on success, -1 if the fields are out of range (nd_session_info_invalid
 * says which). All fields are decoded anyway.
 */
static inline int nd_session_info_decode(const uint8_t *p,
					 struct nd_session_info *s)
{
	s->status = nd_get16(p);
	s->flags = nd_get32(p + 4);
	s->size = nd_get64(p + 8);
	s->block_size = nd_get32(p + 16);
	s->max_payload = nd_get32(p + 20);
	nd_copy(s->token, p + 24, ND_TOKEN_LEN);
	nd_copy(s->export_id, p + 40, ND_EXPORT_ID_LEN);
	s->write_epoch = nd_get64(p + 56);
	s->last_writer = nd_get64(p + 64);
	return nd_session_info_invalid(s) ? -1 : 0;
}

/*
 * ---- Export list (ClientHello extension ND_EXT_LIST_EXPORTS) ----
 * A client offering the extension asks for the list of exports its
 * identity may use instead of a session; the server answers record s2c #0
 * with an ExportList (or, if it refuses, a SessionInfo with an error
 * status) and closes. The magic sits where a SessionInfo has its status
 * and reserved zero bytes, so the two can never be confused.
 */
#define ND_EXT_LIST_EXPORTS	0x0001u	/* value: empty */
#define ND_LIST_MAGIC		0x4e444c58u	/* "NDLX" */
#define ND_LIST_HDR_LEN		8	/* magic, count */
#define ND_LIST_ENTRY_FIXED	17	/* name_len, flags, size, block size */
#define ND_LIST_MAX		1024	/* entries */
#define ND_LIST_MAX_LEN		(ND_LIST_HDR_LEN + ND_LIST_MAX * \
				 (ND_LIST_ENTRY_FIXED + ND_NAME_MAX))
/* Entry flags: ND_EXP_READ_ONLY .. ND_EXP_WRITE_ZEROES, and: */
#define ND_LIST_BUSY		0x100u	/* a writer session holds it now */
#define ND_LIST_FLAGS_KNOWN	(ND_EXP_READ_ONLY | ND_EXP_FLUSH | \
				 ND_EXP_FUA | ND_EXP_TRIM | \
				 ND_EXP_WRITE_ZEROES | ND_LIST_BUSY)

struct nd_list_entry {
	uint8_t name_len;		/* 1..64 */
	uint8_t name[ND_NAME_MAX];
	uint32_t flags;			/* ND_LIST_FLAGS_KNOWN */
	uint64_t size;			/* bytes, as in SessionInfo */
	uint32_t block_size;
};

/* The extension area of a ClientHello asking for the list. */
static inline uint16_t nd_ext_list_exports(uint8_t *ext)
{
	nd_put16(ext, ND_EXT_LIST_EXPORTS);
	nd_put16(ext + 2, 0);
	return 4;
}

/* Does a (well-framed) extension area ask for the export list? */
static inline int nd_ext_has(const uint8_t *ext, size_t ext_len,
			     uint16_t type)
{
	size_t o = 0;

	while (o + 4 <= ext_len) {
		if (nd_get16(ext + o) == type)
			return 1;
		o += 4 + nd_get16(ext + o + 2);
	}
	return 0;
}

/* ExportList header; entries follow, each encoded by nd_list_entry_encode. */
static inline void nd_list_hdr_encode(uint8_t *p, uint32_t count)
{
	nd_put32(p, ND_LIST_MAGIC);
	nd_put32(p + 4, count);
}

/* Returns the bytes written (ND_LIST_ENTRY_FIXED + name_len). */
static inline size_t nd_list_entry_encode(uint8_t *p,
					  const struct nd_list_entry *e)
{
	p[0] = e->name_len;
	nd_copy(p + 1, e->name, e->name_len);
	p += 1 + e->name_len;
	nd_put32(p, e->flags);
	nd_put64(p + 4, e->size);
	nd_put32(p + 12, e->block_size);
	return ND_LIST_ENTRY_FIXED + e->name_len;
}

/* Is this first server record an ExportList (else: a SessionInfo)? */
static inline int nd_list_is(const uint8_t *p, size_t len)
{
	return len >= ND_LIST_HDR_LEN && nd_get32(p) == ND_LIST_MAGIC;
}

/*
 * Decodes entry i of n from p[*off..len): 0, or -1 if it is malformed
 * (short, bad name, unknown flag, size or block size outside SessionInfo's
 * ranges). *off advances past it.
 */
static inline int nd_list_entry_decode(const uint8_t *p, size_t len,
				       size_t *off, struct nd_list_entry *e)
{
	size_t o = *off;

	if (o >= len || len - o < ND_LIST_ENTRY_FIXED)
		return -1;
	e->name_len = p[o];
	if (e->name_len < 1 || e->name_len > ND_NAME_MAX ||
	    len - o < (size_t)ND_LIST_ENTRY_FIXED + e->name_len ||
	    !nd_name_valid(p + o + 1, e->name_len))
		return -1;
	nd_copy(e->name, p + o + 1, e->name_len);
	o += 1 + e->name_len;
	e->flags = nd_get32(p + o);
	e->size = nd_get64(p + o + 4);
	e->block_size = nd_get32(p + o + 12);
	if ((e->flags & ~ND_LIST_FLAGS_KNOWN) ||
	    (e->block_size != 512 && e->block_size != 1024 &&
	     e->block_size != 2048 && e->block_size != 4096) ||
	    e->size == 0 || e->size >= ND_EXPORT_SIZE_LIMIT ||
	    e->size % e->block_size)
		return -1;
	*off = o + 16;
	return 0;
}

/* ---- Requests (client records after ClientFinish) ---- */
struct nd_request {
	uint8_t op;
	uint8_t flags;
	uint32_t length;		/* bytes; WRITE data follows the header */
	uint64_t handle;
	uint64_t offset;		/* bytes */
};

static inline void nd_request_encode(uint8_t *p, const struct nd_request *r)
{
	p[0] = r->op;
	p[1] = r->flags;
	nd_put16(p + 2, 0);
	nd_put32(p + 4, r->length);
	nd_put64(p + 8, r->handle);
	nd_put64(p + 16, r->offset);
}

/*
 * Decodes and checks a request header against the record body length and
 * the negotiated maximum payload. Returns ND_OK or ND_ERR_INVALID; range
 * checks against the export size are the server's.
 */
static inline int nd_request_decode(const uint8_t *p, size_t body_len,
				    uint32_t max_payload, struct nd_request *r)
{
	if (body_len < ND_REQ_HDR_LEN)
		return ND_ERR_INVALID;
	r->op = p[0];
	r->flags = p[1];
	r->length = nd_get32(p + 4);
	r->handle = nd_get64(p + 8);
	r->offset = nd_get64(p + 16);
	if (r->op >= ND_OP__COUNT || (r->flags & ~ND_REQ_FUA) ||
	    nd_get16(p + 2) != 0)
		return ND_ERR_INVALID;
	if (r->offset % ND_SECTOR_SIZE || r->length % ND_SECTOR_SIZE)
		return ND_ERR_INVALID;
	switch (r->op) {
	case ND_OP_READ:
	case ND_OP_WRITE:
		if (r->length == 0 || r->length > max_payload)
			return ND_ERR_INVALID;
		break;
	case ND_OP_FLUSH:
	case ND_OP_DISCONNECT:
		if (r->length != 0 || r->offset != 0)
			return ND_ERR_INVALID;
		break;
	default:
		break;
	}
	if (body_len != ND_REQ_HDR_LEN +
	    (r->op == ND_OP_WRITE ? (size_t)r->length : 0))
		return ND_ERR_INVALID;
	return ND_OK;
}

/* ---- Replies (server records after SessionInfo) ---- */
struct nd_reply {
	uint8_t op;
	uint16_t status;
	uint32_t length;		/* data bytes following (successful READ) */
	uint64_t handle;
};

static inline void nd_reply_encode(uint8_t *p, const struct nd_reply *r)
{
	p[0] = r->op;
	p[1] = 0;
	nd_put16(p + 2, r->status);
	nd_put32(p + 4, r->length);
	nd_put64(p + 8, r->handle);
}

/*
 * 0 on success, -1 if the header is malformed: an unknown op or status, or
 * a length that does not match the record body.
 */
static inline int nd_reply_decode(const uint8_t *p, size_t body_len,
				  struct nd_reply *r)
{
	if (body_len < ND_REPLY_HDR_LEN)
		return -1;
	r->op = p[0];
	r->status = nd_get16(p + 2);
	r->length = nd_get32(p + 4);
	r->handle = nd_get64(p + 8);
	if (p[1] != 0 || r->op >= ND_OP__COUNT ||
	    r->status >= ND_ERR__COUNT ||
	    body_len != ND_REPLY_HDR_LEN + (size_t)r->length ||
	    (r->length && (r->op != ND_OP_READ || r->status != ND_OK)))
		return -1;
	return 0;
}

/* Nonce for record number seq: IV with seq XORed into its last 8 bytes. */
static inline void nd_nonce(uint8_t nonce[ND_IV_LEN],
			    const uint8_t iv[ND_IV_LEN], uint64_t seq)
{
	int i;

	for (i = 0; i < 4; i++)
		nonce[i] = iv[i];
	for (i = 0; i < 8; i++)
		nonce[4 + i] = iv[4 + i] ^ (uint8_t)(seq >> (56 - 8 * i));
}

#endif /* NETDISK_PROTO_H */
