/* SPDX-License-Identifier: MIT */
/*
 * libnetdisk, userspace: key schedule, record layer and handshake over a
 * blocking socket, on OpenSSL libcrypto. Shared by netdiskd, the netdisk CLI
 * and the tests. Wire format: include/netdisk_proto.h, docs/PROTOCOL.md.
 */
#ifndef ND_WIRE_H
#define ND_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "netdisk_proto.h"

/* ---- key file and randomness (keyfile.c) ---- */

/* Fills buf from the OS CSPRNG (via OpenSSL RAND_bytes). 0 or -1. */
int nd_random(void *buf, size_t len);

/*
 * Reads a key file: 64 hex characters, surrounding whitespace ignored.
 * Refuses files readable or writable by group/others. On failure returns -1
 * and writes a one-line reason (never key material) into err.
 */
int nd_key_load(const char *path, uint8_t key[ND_KEY_LEN], char *err,
		size_t errlen);
/* Same parsing on a buffer (no permission check); used by tests/fuzzers. */
int nd_key_parse(const char *text, size_t len, uint8_t key[ND_KEY_LEN]);
/* Formats key as 64 lowercase hex characters and a newline (66 bytes with NUL). */
void nd_key_format(const uint8_t key[ND_KEY_LEN], char out[66]);
/* Overwrites memory in a way the compiler cannot elide. */
void nd_wipe(void *p, size_t len);

/* ---- key schedule (kdf.c) ---- */

/*
 * th = SHA-256(client_hello || server_hello[0..72)): all but the proof.
 * nd_transcript aborts if OpenSSL fails (tests, tools); _checked returns -1,
 * for a server that must drop one connection rather than exit.
 */
int nd_transcript_checked(const uint8_t *client_hello, size_t ch_len,
			  const uint8_t server_hello_th[ND_SERVER_HELLO_TH_LEN],
			  uint8_t th[ND_HASH_LEN]);
void nd_transcript(const uint8_t *client_hello, size_t ch_len,
		   const uint8_t server_hello_th[ND_SERVER_HELLO_TH_LEN],
		   uint8_t th[ND_HASH_LEN]);
/*
 * Ephemeral X25519 (RFC 7748) on raw 32-byte keys, so callers keep the
 * private key where they can wipe it. keygen: a fresh private key from the
 * CSPRNG and its public share. x25519: dh = X25519(priv, peer_share); -1 if
 * OpenSSL fails or the result is all zero (a low-order peer share), and dh
 * is then zero. All 0 or -1.
 */
int nd_x25519_keygen(uint8_t priv[ND_SHARE_LEN], uint8_t share[ND_SHARE_LEN]);
int nd_x25519_public(const uint8_t priv[ND_SHARE_LEN],
		     uint8_t share[ND_SHARE_LEN]);
int nd_x25519(const uint8_t priv[ND_SHARE_LEN],
	      const uint8_t peer_share[ND_SHARE_LEN], uint8_t dh[ND_SHARE_LEN]);
/*
 * PRK = HKDF-Extract(salt = client_random || server_random, IKM = psk || dh)
 * OKM = HKDF-Expand(PRK, ND_KDF_LABEL || th, ND_OKM_LEN)
 * PRK and the IKM copy are wiped before it returns; dh is the caller's.
 */
int nd_derive(const uint8_t psk[ND_KEY_LEN],
	      const uint8_t client_random[ND_RANDOM_LEN],
	      const uint8_t server_random[ND_RANDOM_LEN],
	      const uint8_t dh[ND_SHARE_LEN],
	      const uint8_t th[ND_HASH_LEN], uint8_t okm[ND_OKM_LEN]);
/*
 * One side's whole key exchange: dh = X25519(priv, peer_share), then
 * nd_derive. priv and dh are wiped before it returns, whatever the
 * outcome. -1 (okm zero) if the peer's share is low-order or OpenSSL fails.
 */
int nd_key_exchange(uint8_t priv[ND_SHARE_LEN],
		    const uint8_t peer_share[ND_SHARE_LEN],
		    const uint8_t psk[ND_KEY_LEN],
		    const uint8_t client_random[ND_RANDOM_LEN],
		    const uint8_t server_random[ND_RANDOM_LEN],
		    const uint8_t th[ND_HASH_LEN], uint8_t okm[ND_OKM_LEN]);
/* verify = HMAC-SHA256(finish_key, th); _checked: -1 if OpenSSL fails. */
int nd_finish_mac_checked(const uint8_t finish_key[ND_HASH_LEN],
			  const uint8_t th[ND_HASH_LEN],
			  uint8_t out[ND_HASH_LEN]);
void nd_finish_mac(const uint8_t finish_key[ND_HASH_LEN],
		   const uint8_t th[ND_HASH_LEN], uint8_t out[ND_HASH_LEN]);
/*
 * The traffic-secret ladder of one direction (§2):
 *   key_g = HKDF-Expand(traffic_g, ND_KEY_LABEL, 32)        nd_traffic_key
 *   traffic_g+1 = HKDF-Expand(traffic_g, ND_TRAFFIC_LABEL, 32) nd_traffic_next
 * Output may alias input.
 */
void nd_traffic_key(const uint8_t traffic[ND_KEY_LEN], uint8_t key[ND_KEY_LEN]);
void nd_traffic_next(const uint8_t traffic[ND_KEY_LEN],
		     uint8_t next[ND_KEY_LEN]);
/* Constant-time comparison: 1 if equal. */
int nd_equal(const void *a, const void *b, size_t len);

/* ---- record layer (record.c) ---- */

struct nd_dir {
	uint8_t traffic[ND_KEY_LEN];	/* traffic secret of key generation */
	uint8_t key[ND_KEY_LEN];	/* AES key of generation seq / 4096 */
	uint8_t iv[ND_IV_LEN];
	uint64_t seq;			/* next record number */
	void *ctx;			/* EVP_CIPHER_CTX */
};

struct nd_crypto {
	struct nd_dir tx, rx;
};

/*
 * Sets up both directions from OKM (traffic secrets and IVs; key_0 of
 * each); is_client picks which half is tx.
 */
int nd_crypto_init(struct nd_crypto *c, const uint8_t okm[ND_OKM_LEN],
		   bool is_client);
/* Frees contexts and wipes keys. Safe on a zeroed or freed struct. */
void nd_crypto_free(struct nd_crypto *c);

/*
 * Seals one record whose plaintext body is the concatenation of iov[0..n):
 * encrypts the iov buffers IN PLACE, writes the 4-byte length header into
 * hdr and the tag into tag. Advances d->seq and, every ND_REKEY_RECORDS
 * records, moves the direction to its next traffic secret and key.
 */
int nd_seal(struct nd_dir *d, uint8_t hdr[ND_RECORD_HDR_LEN],
	    const struct iovec *iov, int n, uint8_t tag[ND_TAG_LEN]);
/*
 * Opens one record in place: body is ciphertext of body_len bytes (the
 * header's length minus ND_TAG_LEN), tag follows separately. Returns 0, or
 * -1 if authentication fails (the connection must then be closed).
 */
int nd_open(struct nd_dir *d, const uint8_t hdr[ND_RECORD_HDR_LEN],
	    uint8_t *body, size_t body_len, const uint8_t tag[ND_TAG_LEN]);

/*
 * The same records piece by piece, so data can be decrypted straight into
 * its destination and encrypted while still in cache:
 *   nd_seal_begin (writes hdr for a body of body_len bytes) or
 *   nd_open_begin, then nd_crypt_update over the body in order (in == out
 *   allowed; any split), then nd_seal_final / nd_open_final. An open's
 *   output is unauthenticated until nd_open_final returns 0: on failure the
 *   caller must wipe it. All 0 or -1; -1 leaves the direction unusable.
 */
int nd_seal_begin(struct nd_dir *d, uint8_t hdr[ND_RECORD_HDR_LEN],
		  size_t body_len);
int nd_open_begin(struct nd_dir *d, const uint8_t hdr[ND_RECORD_HDR_LEN]);
int nd_crypt_update(struct nd_dir *d, const uint8_t *in, uint8_t *out,
		    size_t len);
int nd_seal_final(struct nd_dir *d, uint8_t tag[ND_TAG_LEN]);
int nd_open_final(struct nd_dir *d, const uint8_t tag[ND_TAG_LEN]);

/* ---- blocking socket helpers (io.c) ---- */

/* Full read/write; 0 on success, -1 on error or EOF (errno 0 on EOF). */
int nd_read_full(int fd, void *buf, size_t len);
int nd_write_full(int fd, const void *buf, size_t len);
int nd_writev_full(int fd, struct iovec *iov, int n);
/* The same with extra send flags (MSG_MORE) on sockets. */
int nd_sendv_full(int fd, struct iovec *iov, int n, int flags);

/*
 * Seals iov into one record and sends it (header, body, tag) with one
 * writev. The iov buffers are encrypted in place. 0 or -1.
 */
int nd_send_record(int fd, struct nd_dir *d, const struct iovec *iov, int n);
/*
 * Receives and opens one record into buf (capacity cap, which must hold the
 * body plus ND_TAG_LEN). Returns body length, or:
 * ND_RECV_EOF (clean close before a header), ND_RECV_IO, ND_RECV_TOO_BIG
 * (length field over cap or under ND_TAG_LEN), ND_RECV_AUTH (tag mismatch).
 */
#define ND_RECV_EOF	(-1)
#define ND_RECV_IO	(-2)
#define ND_RECV_TOO_BIG	(-3)
#define ND_RECV_AUTH	(-4)
long nd_recv_record(int fd, struct nd_dir *d, uint8_t *buf, size_t cap);

/* ---- handshake (handshake.c) ---- */

enum nd_hs_result {
	ND_HS_OK = 0,
	ND_HS_IO,		/* connection failed or closed */
	ND_HS_PROTO,		/* malformed or unexpected message */
	ND_HS_AUTH,		/* key proof failed: wrong key */
	ND_HS_REFUSED,		/* server answered with a status; see status */
	ND_HS_BAD_INFO,		/* SessionInfo out of the protocol's ranges */
	ND_HS_LIST,		/* nd_handshake_list: the server sent an ExportList */
};

struct nd_client_params {
	const uint8_t *psk;		/* ND_KEY_LEN bytes */
	const char *identity;		/* default "default" */
	const char *export_name;	/* default "default" */
	const uint8_t *token;		/* join this session, or NULL */
	uint32_t flags;			/* ND_CF_* */
	uint32_t max_payload;		/* 0: ND_DEFAULT_PAYLOAD */
	uint16_t slot;			/* connection slot (queue), < ND_MAX_SLOTS */
	uint32_t epoch;			/* attempt number for the slot; 0: 1 */
	uint64_t resume_writer;		/* previous writable session's last_writer */
	uint64_t resume_own;		/* and its write_epoch; 0 0: not checked */
	int timeout_ms;			/* whole handshake; 0: socket timeouts only */
};

/*
 * Client side of the handshake on a connected blocking socket. On ND_HS_OK
 * fills c and info. On ND_HS_REFUSED *status holds the server's status:
 * ND_ERR_VERSION from the unauthenticated ServerHello (also a version-1
 * server's), any other (busy, no export, clock skew, ...) only from the
 * authenticated SessionInfo. A low-order server share is ND_HS_PROTO. On ND_HS_BAD_INFO info holds
 * the unusable export description (nd_session_info_invalid says what is
 * wrong; if nothing, max_payload is above the one asked for), minus token.
 */
enum nd_hs_result nd_handshake_client(int fd, const struct nd_client_params *p,
				      struct nd_crypto *c,
				      struct nd_session_info *info,
				      uint16_t *status);

/*
 * The same handshake asking for the export list (PROTOCOL.md §1, "Export
 * list"): the ClientHello offers list-exports, the ClientFinish is that of
 * a new read-only session whatever p says (only psk, identity,
 * export_name, max_payload and timeout_ms are used). ND_HS_LIST: list
 * (room for ND_LIST_REC_MAX bytes) holds the ExportList's *list_len bytes,
 * authenticated, its entries not checked yet (nd_list_parse). ND_HS_OK: the
 * server does not know the extension and opened a read-only session (c
 * and info as above): the caller ends it with DISCONNECT. Every other
 * result as for nd_handshake_client.
 */
#define ND_LIST_REC_MAX		(ND_LIST_MAX_LEN + ND_TAG_LEN)
enum nd_hs_result nd_handshake_list(int fd, const struct nd_client_params *p,
				    struct nd_crypto *c,
				    struct nd_session_info *info,
				    uint16_t *status, uint8_t *list,
				    size_t *list_len);

#endif /* ND_WIRE_H */
