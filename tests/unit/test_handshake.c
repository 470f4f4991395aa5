// SPDX-License-Identifier: MIT
/*
 * nd_handshake_client against a minimal server written here from the lib
 * primitives, over a socketpair: success, every refusal and failure path,
 * a version-1 server's refusal, low-order key shares, forward secrecy of a
 * recorded session, and a session that rotates keys in both directions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "nd_internal.h"
#include "netdisk_vectors.h"

enum srv_mode {
	SRV_OK,
	SRV_ECHO,		/* OK, then answer requests until DISCONNECT */
	SRV_CLOSE,		/* close without a word */
	SRV_HELLO_SHORT,	/* half a ServerHello */
	SRV_HELLO_MAGIC,
	SRV_HELLO_VERSION,	/* status 0 but version 3 */
	SRV_HELLO_STATUS,	/* "no such export" forged in the hello */
	SRV_V1_REFUSAL,		/* a version-1 server: 72 bytes, version 1, status 9 */
	SRV_V2_REFUSAL,		/* 104 bytes, version 2, status 9, zeros */
	SRV_ZERO_SHARE,		/* all-zero server share */
	SRV_LOW_ORDER_SHARE,	/* u = 1: a low-order point */
	SRV_INFO_NO_EXPORT,	/* "no such export" in the SessionInfo */
	SRV_HELLO_NO_SESSION,	/* "unknown session" forged in the hello */
	SRV_HELLO_BUSY,		/* "busy" forged in the hello */
	SRV_BAD_VERIFY,		/* right key, corrupted proof */
	SRV_INFO_BUSY,
	SRV_INFO_BAD,		/* block size 513 */
	SRV_INFO_HUGE,		/* export size 2^63 */
	SRV_INFO_SHORT,		/* 55-byte SessionInfo */
	SRV_INFO_GARBAGE,	/* random bytes in a plausible record */
	SRV_INFO_SEQ1,		/* SessionInfo sealed as record #1 */
	SRV_INFO_BIG_PAYLOAD,	/* raises the client's max_payload */
	SRV_INFO_TOO_BIG,	/* record length over the client's cap */
	SRV_INFO_ACCESS,	/* "access denied" in the SessionInfo */
	SRV_LIST,		/* srv.list as the first record */
};

struct srv {
	int fd;
	enum srv_mode mode;
	uint8_t psk[ND_KEY_LEN];
	/* what the server saw */
	struct nd_client_hello ch;
	struct nd_client_finish cf;
	int finish_ok;		/* ClientFinish opened and verified */
	long after_hello;	/* recv result when the client gave up */
	uint64_t echoed;
	uint8_t tx_key0[ND_KEY_LEN], rx_key0[ND_KEY_LEN];
	uint8_t token[ND_TOKEN_LEN];
	/* The wire as recorded, and (for the control) the server's eph key. */
	uint8_t ch_buf[ND_CLIENT_HELLO_MAX], sh_buf[ND_SERVER_HELLO_LEN];
	size_t ch_len;
	uint8_t cf_rec[ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN + ND_TAG_LEN];
	uint8_t eph_copy[ND_SHARE_LEN];
	/* SRV_LIST: the record body sent (any length, up to the buffer) */
	uint8_t list[ND_LIST_MAX_LEN + 64];
	size_t list_len;
	char err[160];
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	uint8_t *ch_buf = s->ch_buf, *sh_buf = s->sh_buf;
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], mac[ND_HASH_LEN];
	uint8_t eph[ND_SHARE_LEN];
	uint8_t buf[256], si[ND_SESSION_INFO_LEN + 8] = { 0 };
	struct nd_server_hello sh = { .version = ND_VERSION };
	struct nd_session_info info = {
		.status = ND_OK, .flags = ND_EXP_FLUSH | ND_EXP_EXCLUSIVE,
		.size = 1 << 20, .block_size = 4096, .write_epoch = 1,
	};
	struct nd_crypto c;
	struct iovec v;
	size_t o;
	int names;
	long n;

	memset(&c, 0, sizeof(c));
	if (s->mode == SRV_CLOSE)
		goto out;
	if (nd_read_full(s->fd, ch_buf, ND_CLIENT_HELLO_FIXED)) {
		snprintf(s->err, sizeof(s->err), "no ClientHello");
		goto out;
	}
	names = nd_client_hello_decode_fixed(ch_buf, &s->ch);
	o = ND_CLIENT_HELLO_FIXED + (size_t)(names < 0 ? 0 : names);
	if (names < 0 ||
	    nd_read_full(s->fd, ch_buf + ND_CLIENT_HELLO_FIXED, (size_t)names) ||
	    nd_client_hello_decode_names(ch_buf + ND_CLIENT_HELLO_FIXED,
					 &s->ch) ||
	    nd_read_full(s->fd, ch_buf + o, ND_CLIENT_HELLO_TAIL) ||
	    nd_client_hello_decode_tail(ch_buf + o, &s->ch) < 0 ||
	    nd_read_full(s->fd, ch_buf + o + ND_CLIENT_HELLO_TAIL,
			 s->ch.ext_len) ||
	    nd_client_hello_decode_ext(ch_buf + o + ND_CLIENT_HELLO_TAIL,
				       &s->ch)) {
		snprintf(s->err, sizeof(s->err), "bad ClientHello");
		goto out;
	}
	s->ch_len = nd_client_hello_len(&s->ch);
	if (s->mode == SRV_V1_REFUSAL || s->mode == SRV_V2_REFUSAL) {
		sh.version = s->mode == SRV_V1_REFUSAL ? 1 : 2;
		sh.status = ND_ERR_VERSION;
		nd_server_hello_encode(sh_buf, &sh);
		/* A version-1 ServerHello was 72 bytes. */
		nd_write_full(s->fd, sh_buf, s->mode == SRV_V1_REFUSAL ?
			      72 : ND_SERVER_HELLO_LEN);
		/* Whatever the client does next, it must not be a record. */
		s->after_hello = nd_read_full(s->fd, buf, 1) ? ND_RECV_EOF : 1;
		goto out;
	}
	nd_random(sh.random, ND_RANDOM_LEN);
	if (nd_x25519_keygen(eph, sh.share)) {
		snprintf(s->err, sizeof(s->err), "keygen failed");
		goto out;
	}
	memcpy(s->eph_copy, eph, ND_SHARE_LEN);
	if (s->mode == SRV_HELLO_STATUS)
		sh.status = ND_ERR_NO_EXPORT;
	if (s->mode == SRV_HELLO_NO_SESSION)
		sh.status = ND_ERR_NO_SESSION;
	if (s->mode == SRV_HELLO_BUSY)
		sh.status = ND_ERR_BUSY;
	if (s->mode == SRV_HELLO_VERSION)
		sh.version = 3;
	if (s->mode == SRV_ZERO_SHARE)
		memset(sh.share, 0, ND_SHARE_LEN);
	if (s->mode == SRV_LOW_ORDER_SHARE) {
		memset(sh.share, 0, ND_SHARE_LEN);
		sh.share[0] = 1;
	}
	nd_server_hello_encode(sh_buf, &sh);
	nd_transcript(ch_buf, s->ch_len, sh_buf, th);
	if (s->mode == SRV_ZERO_SHARE || s->mode == SRV_LOW_ORDER_SHARE) {
		/* No dh to be had: prove the key over PSK || zeros. */
		static const uint8_t zero[ND_SHARE_LEN];

		nd_derive(s->psk, s->ch.random, sh.random, zero, th, okm);
		nd_wipe(eph, sizeof(eph));
	} else if (nd_key_exchange(eph, s->ch.share, s->psk, s->ch.random,
				   sh.random, th, okm)) {
		snprintf(s->err, sizeof(s->err), "key exchange failed");
		goto out;
	}
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, sh.verify);
	if (s->mode == SRV_BAD_VERIFY)
		sh.verify[5] ^= 0x10;
	nd_server_hello_encode(sh_buf, &sh);
	if (s->mode == SRV_HELLO_MAGIC)
		sh_buf[0] ^= 0xff;
	if (nd_write_full(s->fd, sh_buf, s->mode == SRV_HELLO_SHORT ?
			  ND_SERVER_HELLO_LEN / 2 : ND_SERVER_HELLO_LEN))
		goto out;
	if (s->mode == SRV_HELLO_SHORT)
		goto out;
	if (nd_crypto_init(&c, okm, false)) {
		snprintf(s->err, sizeof(s->err), "crypto init failed");
		goto out;
	}
	memcpy(s->tx_key0, c.tx.key, ND_KEY_LEN);
	memcpy(s->rx_key0, c.rx.key, ND_KEY_LEN);

	/* The ClientFinish record, kept as it came over the wire. */
	if (nd_read_full(s->fd, s->cf_rec, ND_RECORD_HDR_LEN)) {
		s->after_hello = ND_RECV_EOF;
		goto out;
	}
	if (nd_get32(s->cf_rec) != ND_CLIENT_FINISH_LEN + ND_TAG_LEN ||
	    nd_read_full(s->fd, s->cf_rec + ND_RECORD_HDR_LEN,
			 ND_CLIENT_FINISH_LEN + ND_TAG_LEN)) {
		s->after_hello = ND_RECV_IO;
		goto out;
	}
	memcpy(buf, s->cf_rec, sizeof(s->cf_rec));
	if (nd_open(&c.rx, buf, buf + ND_RECORD_HDR_LEN, ND_CLIENT_FINISH_LEN,
		    buf + ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN)) {
		s->after_hello = ND_RECV_AUTH;
		goto out;
	}
	nd_client_finish_decode(buf + ND_RECORD_HDR_LEN, &s->cf);
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, mac);
	s->finish_ok = nd_equal(mac, s->cf.verify, ND_HASH_LEN);
	if (!s->finish_ok)
		goto out;

	info.max_payload = s->cf.max_payload;
	nd_random(info.token, ND_TOKEN_LEN);
	memcpy(s->token, info.token, ND_TOKEN_LEN);
	nd_random(info.export_id, ND_EXPORT_ID_LEN);
	if (s->mode == SRV_INFO_BUSY)
		info.status = ND_ERR_BUSY;
	if (s->mode == SRV_INFO_NO_EXPORT)
		info.status = ND_ERR_NO_EXPORT;
	if (s->mode == SRV_INFO_ACCESS) {
		memset(&info, 0, sizeof(info));
		info.status = ND_ERR_ACCESS;
	}
	if (s->mode == SRV_INFO_BAD)
		info.block_size = 513;
	if (s->mode == SRV_INFO_HUGE)
		info.size = ND_EXPORT_SIZE_LIMIT;
	if (s->mode == SRV_INFO_BIG_PAYLOAD)
		info.max_payload = ND_MAX_PAYLOAD;
	nd_session_info_encode(si, &info);
	v.iov_base = si;
	v.iov_len = ND_SESSION_INFO_LEN;
	if (s->mode == SRV_INFO_SHORT)
		v.iov_len = ND_SESSION_INFO_LEN - 1;
	if (s->mode == SRV_INFO_TOO_BIG)
		v.iov_len = ND_SESSION_INFO_LEN + 8;
	if (s->mode == SRV_INFO_SEQ1)
		c.tx.seq = 1;
	if (s->mode == SRV_LIST) {
		v.iov_base = s->list;
		v.iov_len = s->list_len;
	}
	if (s->mode == SRV_INFO_GARBAGE) {
		nd_random(buf, 4 + ND_SESSION_INFO_LEN + ND_TAG_LEN);
		nd_put32(buf, ND_SESSION_INFO_LEN + ND_TAG_LEN);
		nd_write_full(s->fd, buf, 4 + ND_SESSION_INFO_LEN + ND_TAG_LEN);
	} else if (nd_send_record(s->fd, &c.tx, &v, 1)) {
		goto out;
	}
	if (s->mode != SRV_ECHO)
		goto out;

	for (;;) {
		struct nd_request req;
		struct nd_reply rep = { .status = ND_OK };
		uint8_t rb[ND_REPLY_HDR_LEN];

		n = nd_recv_record(s->fd, &c.rx, buf, sizeof(buf));
		if (n < 0) {
			snprintf(s->err, sizeof(s->err), "echo recv %ld", n);
			break;
		}
		if (nd_request_decode(buf, (size_t)n, info.max_payload,
				      &req) != ND_OK ||
		    req.handle != s->echoed) {
			snprintf(s->err, sizeof(s->err), "bad request %llu",
				 (unsigned long long)s->echoed);
			break;
		}
		if (req.op == ND_OP_DISCONNECT)
			break;
		rep.op = req.op;
		rep.handle = req.handle;
		nd_reply_encode(rb, &rep);
		v.iov_base = rb;
		v.iov_len = sizeof(rb);
		if (nd_send_record(s->fd, &c.tx, &v, 1)) {
			snprintf(s->err, sizeof(s->err), "echo send");
			break;
		}
		s->echoed++;
	}
	/* Keys really rotated on the server side too. */
	if (!s->err[0] && s->echoed > ND_REKEY_RECORDS &&
	    (nd_equal(c.tx.key, s->tx_key0, ND_KEY_LEN) ||
	     nd_equal(c.rx.key, s->rx_key0, ND_KEY_LEN)))
		snprintf(s->err, sizeof(s->err), "server keys did not rotate");
out:
	nd_crypto_free(&c);
	nd_wipe(okm, sizeof(okm));
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

struct hs {
	int fd[2];		/* fd[0] client, fd[1] server */
	pthread_t thread;
	struct srv srv;
	struct nd_crypto c;
	struct nd_session_info info;
	uint16_t status;
};

static void start(struct hs *h, enum srv_mode mode, const uint8_t *srv_psk)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, h->fd), 0);
	h->srv.fd = h->fd[1];
	h->srv.mode = mode;
	h->srv.after_hello = 1;
	memcpy(h->srv.psk, srv_psk ? srv_psk : nd_vec_psk, ND_KEY_LEN);
	assert_int_equal(pthread_create(&h->thread, NULL, srv_main, &h->srv),
			 0);
}

static enum nd_hs_result client(struct hs *h, const struct nd_client_params *p)
{
	struct nd_client_params def = { .psk = nd_vec_psk };

	return nd_handshake_client(h->fd[0], p ? p : &def, &h->c, &h->info,
				   &h->status);
}

/* Client hangs up; server thread finishes. */
static void finish(struct hs *h)
{
	close(h->fd[0]);
	pthread_join(h->thread, NULL);
	close(h->fd[1]);
	nd_crypto_free(&h->c);
	if (h->srv.err[0])
		fail_msg("server: %s", h->srv.err);
}

static void test_ok_defaults(void **state)
{
	struct hs h;
	uint64_t now = (uint64_t)time(NULL);

	start(&h, SRV_OK, NULL);
	assert_int_equal(client(&h, NULL), ND_HS_OK);
	assert_int_equal(h.status, ND_OK);
	assert_int_equal(h.info.status, ND_OK);
	assert_int_equal(h.info.block_size, 4096);
	assert_int_equal(h.info.size, 1 << 20);
	assert_int_equal(h.info.max_payload, ND_DEFAULT_PAYLOAD);
	assert_int_equal(h.info.flags, ND_EXP_FLUSH | ND_EXP_EXCLUSIVE);
	/* Both sides used one record each so far. */
	assert_int_equal(h.c.tx.seq, 1);
	assert_int_equal(h.c.rx.seq, 1);
	pthread_join(h.thread, NULL);
	assert_true(h.srv.finish_ok);
	assert_memory_equal(h.info.token, h.srv.token, ND_TOKEN_LEN);
	assert_int_equal(h.srv.ch.version, ND_VERSION);
	assert_int_equal(h.srv.ch.flags, 0);
	assert_int_equal(h.srv.ch.identity_len, 7);
	assert_memory_equal(h.srv.ch.identity, "default", 7);
	assert_int_equal(h.srv.ch.export_len, 7);
	assert_memory_equal(h.srv.ch.export_name, "default", 7);
	assert_true(h.srv.ch.timestamp + 5 >= now &&
		    h.srv.ch.timestamp <= now + 5);
	assert_int_equal(h.srv.ch.ext_len, 0);
	assert_int_equal(h.srv.cf.flags, 0);
	assert_int_equal(h.srv.cf.max_payload, ND_DEFAULT_PAYLOAD);
	assert_int_equal(h.srv.cf.slot, 0);
	assert_int_equal(h.srv.cf.epoch, 1);
	assert_true(h.srv.cf.resume_writer == 0 && h.srv.cf.resume_own == 0);
	assert_null(nd_client_finish_invalid(&h.srv.cf));
	{
		static const uint8_t zero[ND_SHARE_LEN];

		assert_memory_equal(h.srv.cf.token, zero, ND_TOKEN_LEN);
		assert_memory_not_equal(h.srv.ch.share, zero, ND_SHARE_LEN);
	}
	h.thread = pthread_self();	/* already joined */
	close(h.fd[0]);
	close(h.fd[1]);
	nd_crypto_free(&h.c);
	if (h.srv.err[0])
		fail_msg("server: %s", h.srv.err);
}

static void test_ok_params(void **state)
{
	uint8_t token[ND_TOKEN_LEN];
	struct nd_client_params p = {
		.psk = nd_vec_psk, .identity = "alice.example-1",
		.export_name = "disk_0", .token = token,
		.flags = ND_CF_READ_ONLY, .max_payload = 64 * 1024,
		.slot = 5, .epoch = 9, .resume_writer = 3, .resume_own = 4,
	};
	struct hs h;

	memset(token, 0xab, sizeof(token));
	start(&h, SRV_OK, NULL);
	assert_int_equal(client(&h, &p), ND_HS_OK);
	assert_int_equal(h.info.max_payload, 64 * 1024);
	pthread_join(h.thread, NULL);
	h.thread = pthread_self();
	assert_int_equal(h.srv.ch.identity_len, 15);
	assert_memory_equal(h.srv.ch.identity, "alice.example-1", 15);
	assert_int_equal(h.srv.ch.export_len, 6);
	assert_memory_equal(h.srv.ch.export_name, "disk_0", 6);
	assert_memory_equal(h.srv.cf.token, token, ND_TOKEN_LEN);
	assert_int_equal(h.srv.cf.flags, ND_CF_READ_ONLY);
	assert_int_equal(h.srv.cf.max_payload, 64 * 1024);
	assert_int_equal(h.srv.cf.slot, 5);
	assert_int_equal(h.srv.cf.epoch, 9);
	assert_true(h.srv.cf.resume_writer == 3 && h.srv.cf.resume_own == 4);
	close(h.fd[0]);
	close(h.fd[1]);
	nd_crypto_free(&h.c);
}

static void test_wrong_key(void **state)
{
	uint8_t other[ND_KEY_LEN];
	struct hs h;

	memcpy(other, nd_vec_psk, sizeof(other));
	other[0] ^= 1;
	start(&h, SRV_OK, other);
	assert_int_equal(client(&h, NULL), ND_HS_AUTH);
	/* The client sent nothing encrypted: the server just sees EOF. */
	finish(&h);
	assert_int_equal(h.srv.after_hello, ND_RECV_EOF);
	assert_false(h.srv.finish_ok);
	/* On failure the crypto state is released and zeroed. */
	assert_null(h.c.tx.ctx);
	assert_null(h.c.rx.ctx);
}

static void test_bad_server_verify(void **state)
{
	struct hs h;

	start(&h, SRV_BAD_VERIFY, NULL);
	assert_int_equal(client(&h, NULL), ND_HS_AUTH);
	finish(&h);
	assert_int_equal(h.srv.after_hello, ND_RECV_EOF);
}

static void test_invalid_params(void **state)
{
	static const char *const bad[] = {
		"", "has space", "slash/", "x\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct nd_client_params p = { .psk = nd_vec_psk };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hs h;

		start(&h, SRV_OK, NULL);
		p.identity = bad[i];
		p.export_name = NULL;
		assert_int_equal(client(&h, &p), ND_HS_PROTO);
		p.identity = NULL;
		p.export_name = bad[i];
		assert_int_equal(client(&h, &p), ND_HS_PROTO);
		/* Nothing was sent: the server sees no ClientHello. */
		close(h.fd[0]);
		pthread_join(h.thread, NULL);
		close(h.fd[1]);
		assert_string_equal(h.srv.err, "no ClientHello");
	}
	{
		struct hs h;
		struct nd_client_params nokey = { .psk = NULL };

		start(&h, SRV_OK, NULL);
		assert_int_equal(client(&h, &nokey), ND_HS_PROTO);
		close(h.fd[0]);
		pthread_join(h.thread, NULL);
		close(h.fd[1]);
		assert_string_equal(h.srv.err, "no ClientHello");
	}
}

static void expect(enum srv_mode mode, enum nd_hs_result want,
		   uint16_t want_status)
{
	struct hs h;

	start(&h, mode, NULL);
	assert_int_equal(client(&h, NULL), want);
	assert_int_equal(h.status, want_status);
	if (want != ND_HS_OK) {
		assert_null(h.c.tx.ctx);
		assert_null(h.c.rx.ctx);
	}
	finish(&h);
}

static void test_server_closes(void **state)
{
	expect(SRV_CLOSE, ND_HS_IO, ND_OK);
	expect(SRV_HELLO_SHORT, ND_HS_IO, ND_OK);
}

static void test_bad_server_hello(void **state)
{
	expect(SRV_HELLO_MAGIC, ND_HS_PROTO, ND_OK);
	expect(SRV_HELLO_VERSION, ND_HS_PROTO, ND_OK);
	/*
	 * Anyone on the path can write a ServerHello: a status that only the
	 * authenticated SessionInfo may carry is a malformed hello, not a
	 * refusal the caller would act on.
	 */
	expect(SRV_HELLO_NO_SESSION, ND_HS_PROTO, ND_OK);
	expect(SRV_HELLO_BUSY, ND_HS_PROTO, ND_OK);
	/* Whether an export exists is said only after authentication. */
	expect(SRV_HELLO_STATUS, ND_HS_PROTO, ND_OK);
}

/*
 * A low-order server share (dh all zero) is refused before the client
 * sends anything encrypted, even with a server proof made for it.
 */
static void test_low_order_server_share(void **state)
{
	static const enum srv_mode modes[] = { SRV_ZERO_SHARE,
					       SRV_LOW_ORDER_SHARE };

	for (size_t i = 0; i < 2; i++) {
		struct hs h;

		start(&h, modes[i], NULL);
		assert_int_equal(client(&h, NULL), ND_HS_PROTO);
		assert_null(h.c.tx.ctx);
		finish(&h);
		assert_int_equal(h.srv.after_hello, ND_RECV_EOF);
		assert_false(h.srv.finish_ok);
	}
}

static void test_refused(void **state)
{
	expect(SRV_INFO_NO_EXPORT, ND_HS_REFUSED, ND_ERR_NO_EXPORT);
	expect(SRV_INFO_BUSY, ND_HS_REFUSED, ND_ERR_BUSY);
	expect(SRV_INFO_ACCESS, ND_HS_REFUSED, ND_ERR_ACCESS);
}

static uint8_t list_buf[ND_LIST_REC_MAX];

/* nd_handshake_list against mode; the server's list (if any) is srv_list. */
static enum nd_hs_result list_client(struct hs *h, enum srv_mode mode,
				     const uint8_t *srv_list, size_t srv_len,
				     size_t *len)
{
	/* Fields a list request must not take over from its caller. */
	static const uint8_t token[ND_TOKEN_LEN] = { 1, 2, 3 };
	struct nd_client_params p = {
		.psk = nd_vec_psk, .identity = "lab-01", .token = token,
		.flags = 0, .slot = 7, .epoch = 9, .resume_writer = 5,
		.resume_own = 6,
	};

	start(h, mode, NULL);
	h->srv.list_len = srv_len;
	if (srv_len)
		memcpy(h->srv.list, srv_list, srv_len);
	memset(list_buf, 0xaa, sizeof(list_buf));
	return nd_handshake_list(h->fd[0], &p, &h->c, &h->info, &h->status,
				 list_buf, len);
}

/*
 * A list request offers list-exports and finishes as a new read-only
 * session (token 0, flags 0x1, slot 0, epoch 1, no resume), whatever the
 * caller's parameters; an ExportList answer comes back authenticated.
 */
static void test_list_request(void **state)
{
	static const uint8_t zero[ND_TOKEN_LEN];
	struct nd_list_entry e = { .name_len = 3, .name = "vol",
				   .flags = ND_EXP_FLUSH, .size = 1 << 20,
				   .block_size = 512 };
	uint8_t rec[64];
	size_t len = 99, n;
	struct hs h;

	nd_list_hdr_encode(rec, 1);
	n = ND_LIST_HDR_LEN + nd_list_entry_encode(rec + ND_LIST_HDR_LEN, &e);
	assert_int_equal(list_client(&h, SRV_LIST, rec, n, &len), ND_HS_LIST);
	assert_int_equal(len, n);
	assert_memory_equal(list_buf, rec, n);
	assert_null(h.c.tx.ctx);	/* no session: nothing more to send */
	pthread_join(h.thread, NULL);
	assert_true(h.srv.finish_ok);
	assert_int_equal(h.srv.ch.ext_len, 4);
	assert_true(nd_ext_has(h.srv.ch.ext, h.srv.ch.ext_len,
			       ND_EXT_LIST_EXPORTS));
	assert_int_equal(h.srv.ch.identity_len, 6);
	assert_memory_equal(h.srv.ch.identity, "lab-01", 6);
	assert_memory_equal(h.srv.cf.token, zero, ND_TOKEN_LEN);
	assert_int_equal(h.srv.cf.flags, ND_CF_READ_ONLY);
	assert_int_equal(h.srv.cf.slot, 0);
	assert_int_equal(h.srv.cf.epoch, 1);
	assert_true(h.srv.cf.resume_writer == 0 && h.srv.cf.resume_own == 0);
	finish(&h);

	/* An empty list, and the longest one the protocol allows. */
	nd_list_hdr_encode(rec, 0);
	assert_int_equal(list_client(&h, SRV_LIST, rec, ND_LIST_HDR_LEN, &len),
			 ND_HS_LIST);
	assert_int_equal(len, ND_LIST_HDR_LEN);
	finish(&h);
	memset(list_buf, 0, sizeof(list_buf));
	nd_list_hdr_encode(list_buf, ND_LIST_MAX);
	assert_int_equal(list_client(&h, SRV_LIST, list_buf, ND_LIST_MAX_LEN,
				     &len), ND_HS_LIST);
	assert_int_equal(len, ND_LIST_MAX_LEN);
	finish(&h);
}

/* What else may answer a list request, and what may not. */
static void test_list_answers(void **state)
{
	static uint8_t big[ND_LIST_MAX_LEN + 1];
	uint8_t rec[ND_SESSION_INFO_LEN + 8] = { 0 };
	size_t len = 99;
	struct hs h;

	/* A server without the extension: a session the caller must end. */
	assert_int_equal(list_client(&h, SRV_OK, NULL, 0, &len), ND_HS_OK);
	assert_int_equal(len, 0);
	assert_int_equal(h.info.status, ND_OK);
	assert_non_null(h.c.tx.ctx);
	finish(&h);
	/* Refusals, as for a session. */
	assert_int_equal(list_client(&h, SRV_INFO_ACCESS, NULL, 0, &len),
			 ND_HS_REFUSED);
	assert_int_equal(h.status, ND_ERR_ACCESS);
	assert_null(h.c.tx.ctx);
	finish(&h);
	assert_int_equal(list_client(&h, SRV_INFO_BAD, NULL, 0, &len),
			 ND_HS_BAD_INFO);
	finish(&h);
	/* Neither a list nor 72 bytes; a record shorter than a list header. */
	assert_int_equal(list_client(&h, SRV_LIST, rec, ND_SESSION_INFO_LEN + 8,
				     &len), ND_HS_PROTO);
	finish(&h);
	assert_int_equal(list_client(&h, SRV_LIST, rec, ND_LIST_HDR_LEN - 1,
				     &len), ND_HS_PROTO);
	finish(&h);
	/* Over the longest list: refused from its length, before reading it. */
	memset(big, 0, sizeof(big));
	nd_list_hdr_encode(big, ND_LIST_MAX);
	assert_int_equal(list_client(&h, SRV_LIST, big, sizeof(big), &len),
			 ND_HS_PROTO);
	finish(&h);
	/* A SessionInfo-long list is a list. */
	nd_list_hdr_encode(rec, 0);
	assert_int_equal(list_client(&h, SRV_LIST, rec, ND_SESSION_INFO_LEN,
				     &len), ND_HS_LIST);
	assert_int_equal(len, ND_SESSION_INFO_LEN);
	finish(&h);
	/* A record altered in transit. */
	assert_int_equal(list_client(&h, SRV_INFO_GARBAGE, NULL, 0, &len),
			 ND_HS_AUTH);
	finish(&h);
}

/*
 * "Unsupported version" is the one refusal a ServerHello carries: from a
 * version-2 server (104 bytes) and from a version-1 server, whose answer
 * was 72 bytes (the client reads 8 and stops, so it cannot hang waiting
 * for 104). No record follows: the server sees the client close.
 */
static void test_version_refusal(void **state)
{
	static const enum srv_mode modes[] = { SRV_V2_REFUSAL, SRV_V1_REFUSAL };

	for (size_t i = 0; i < 2; i++) {
		struct nd_client_params p = { .psk = nd_vec_psk,
					      .timeout_ms = 5000 };
		struct hs h;

		start(&h, modes[i], NULL);
		assert_int_equal(client(&h, &p), ND_HS_REFUSED);
		assert_int_equal(h.status, ND_ERR_VERSION);
		assert_string_equal(nd_status_str(h.status),
				    "unsupported protocol version");
		assert_null(h.c.tx.ctx);
		finish(&h);
		assert_int_equal(h.srv.after_hello, ND_RECV_EOF);
	}
}

/* Opens a copy of the recorded ClientFinish with keys from okm: 0 or -1. */
static int open_recorded(const struct srv *s, const uint8_t okm[ND_OKM_LEN])
{
	uint8_t rec[sizeof(s->cf_rec)];
	struct nd_crypto c;
	int r;

	memcpy(rec, s->cf_rec, sizeof(rec));
	assert_int_equal(nd_crypto_init(&c, okm, false), 0);
	r = nd_open(&c.rx, rec, rec + ND_RECORD_HDR_LEN, ND_CLIENT_FINISH_LEN,
		    rec + ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN);
	nd_crypto_free(&c);
	return r;
}

/* Version 1's schedule: PRK from the PSK alone, with either label. */
static void v1_okm(const struct srv *s, const uint8_t th[ND_HASH_LEN],
		   const char *label, uint8_t okm[ND_OKM_LEN])
{
	uint8_t salt[2 * ND_RANDOM_LEN], prk[ND_HASH_LEN], info[64];
	struct nd_server_hello sh;

	assert_int_equal(nd_server_hello_decode(s->sh_buf, &sh), 0);
	memcpy(salt, s->ch.random, ND_RANDOM_LEN);
	memcpy(salt + ND_RANDOM_LEN, sh.random, ND_RANDOM_LEN);
	assert_int_equal(nd_hkdf_extract(salt, sizeof(salt), s->psk,
					 ND_KEY_LEN, prk), 0);
	memcpy(info, label, strlen(label));
	memcpy(info + strlen(label), th, ND_HASH_LEN);
	assert_int_equal(nd_hkdf_expand(prk, info, strlen(label) + ND_HASH_LEN,
					okm, ND_OKM_LEN), 0);
}

/*
 * Forward secrecy: someone who recorded a session (both hellos with their
 * randoms and shares, the first client record) and later learns the PSK
 * still cannot open the record: the version-1 schedule from the transcript
 * fails, and so does version 2 with anything but the real DH secret. With
 * the server's ephemeral key (which the real implementations wipe) it
 * opens: the recording is good, the ephemeral secret is what is missing.
 */
static void test_forward_secrecy(void **state)
{
	static const uint8_t zero[ND_SHARE_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], eph[ND_SHARE_LEN];
	struct nd_server_hello sh;
	struct hs h;

	start(&h, SRV_OK, NULL);
	assert_int_equal(client(&h, NULL), ND_HS_OK);
	pthread_join(h.thread, NULL);
	h.thread = pthread_self();
	assert_true(h.srv.finish_ok);
	assert_int_equal(nd_server_hello_decode(h.srv.sh_buf, &sh), 0);
	nd_transcript(h.srv.ch_buf, h.srv.ch_len, h.srv.sh_buf, th);

	v1_okm(&h.srv, th, "netdisk/1 keys", okm);
	assert_int_equal(open_recorded(&h.srv, okm), -1);
	v1_okm(&h.srv, th, ND_KDF_LABEL, okm);
	assert_int_equal(open_recorded(&h.srv, okm), -1);
	/* dh guessed as zero, or as either public share. */
	assert_int_equal(nd_derive(nd_vec_psk, h.srv.ch.random, sh.random,
				   zero, th, okm), 0);
	assert_int_equal(open_recorded(&h.srv, okm), -1);
	assert_int_equal(nd_derive(nd_vec_psk, h.srv.ch.random, sh.random,
				   h.srv.ch.share, th, okm), 0);
	assert_int_equal(open_recorded(&h.srv, okm), -1);
	assert_int_equal(nd_derive(nd_vec_psk, h.srv.ch.random, sh.random,
				   sh.share, th, okm), 0);
	assert_int_equal(open_recorded(&h.srv, okm), -1);

	/* Control: with the ephemeral secret it opens. */
	memcpy(eph, h.srv.eph_copy, sizeof(eph));
	assert_int_equal(nd_key_exchange(eph, h.srv.ch.share, nd_vec_psk,
					 h.srv.ch.random, sh.random, th, okm),
			 0);
	assert_memory_equal(eph, zero, ND_SHARE_LEN);
	assert_int_equal(open_recorded(&h.srv, okm), 0);

	close(h.fd[0]);
	close(h.fd[1]);
	nd_crypto_free(&h.c);
	if (h.srv.err[0])
		fail_msg("server: %s", h.srv.err);
}

static void test_bad_session_info(void **state)
{
	struct hs h;

	expect(SRV_INFO_BAD, ND_HS_BAD_INFO, ND_OK);
	expect(SRV_INFO_HUGE, ND_HS_BAD_INFO, ND_OK);
	expect(SRV_INFO_SHORT, ND_HS_PROTO, ND_OK);
	expect(SRV_INFO_BIG_PAYLOAD, ND_HS_BAD_INFO, ND_OK);
	expect(SRV_INFO_TOO_BIG, ND_HS_PROTO, ND_OK);
	expect(SRV_INFO_GARBAGE, ND_HS_AUTH, ND_OK);
	expect(SRV_INFO_SEQ1, ND_HS_AUTH, ND_OK);

	/* The caller can say what is wrong, and gets no token. */
	start(&h, SRV_INFO_HUGE, NULL);
	assert_int_equal(client(&h, NULL), ND_HS_BAD_INFO);
	assert_true(h.info.size == ND_EXPORT_SIZE_LIMIT);
	assert_string_equal(nd_session_info_invalid(&h.info),
			    "export size 0 or 2^63 bytes or more");
	for (size_t i = 0; i < ND_TOKEN_LEN; i++)
		assert_int_equal(h.info.token[i], 0);
	finish(&h);
}

/* Pipelined FLUSH requests and replies through two key rotations each way. */
static void test_rekey_both_ways(void **state)
{
	const uint64_t total = 2 * ND_REKEY_RECORDS + 5, batch = 256;
	uint8_t tx0[ND_KEY_LEN], rx0[ND_KEY_LEN], k[ND_KEY_LEN];
	uint8_t txt[ND_KEY_LEN], rxt[ND_KEY_LEN];
	uint64_t sent = 0, got = 0;
	struct hs h;

	start(&h, SRV_ECHO, NULL);
	assert_int_equal(client(&h, NULL), ND_HS_OK);
	memcpy(tx0, h.c.tx.key, ND_KEY_LEN);
	memcpy(rx0, h.c.rx.key, ND_KEY_LEN);
	memcpy(txt, h.c.tx.traffic, ND_KEY_LEN);
	memcpy(rxt, h.c.rx.traffic, ND_KEY_LEN);
	while (got < total) {
		uint64_t end = sent + batch < total ? sent + batch : total;

		for (; sent < end; sent++) {
			struct nd_request r = { .op = ND_OP_FLUSH,
						.handle = sent };
			uint8_t b[ND_REQ_HDR_LEN];
			struct iovec v = { .iov_base = b, .iov_len = sizeof(b) };

			nd_request_encode(b, &r);
			assert_int_equal(nd_send_record(h.fd[0], &h.c.tx, &v, 1),
					 0);
		}
		for (; got < sent; got++) {
			uint8_t b[64];
			struct nd_reply rep;
			long n = nd_recv_record(h.fd[0], &h.c.rx, b, sizeof(b));

			assert_int_equal(n, ND_REPLY_HDR_LEN);
			assert_int_equal(nd_reply_decode(b, (size_t)n, &rep), 0);
			assert_int_equal(rep.handle, got);
			assert_int_equal(rep.status, ND_OK);
		}
	}
	/* ClientFinish and SessionInfo were record 0 of each direction. */
	assert_int_equal(h.c.tx.seq, total + 1);
	assert_int_equal(h.c.rx.seq, total + 1);
	assert_memory_not_equal(h.c.tx.key, tx0, ND_KEY_LEN);
	assert_memory_not_equal(h.c.rx.key, rx0, ND_KEY_LEN);
	/* Two generations on: key_2 from traffic_2 = next(next(traffic_0)). */
	nd_traffic_next(txt, k);
	nd_traffic_next(k, k);
	assert_memory_equal(h.c.tx.traffic, k, ND_KEY_LEN);
	nd_traffic_key(k, k);
	assert_memory_equal(h.c.tx.key, k, ND_KEY_LEN);
	nd_traffic_next(rxt, k);
	nd_traffic_next(k, k);
	nd_traffic_key(k, k);
	assert_memory_equal(h.c.rx.key, k, ND_KEY_LEN);
	{
		struct nd_request r = { .op = ND_OP_DISCONNECT,
					.handle = total };
		uint8_t b[ND_REQ_HDR_LEN];
		struct iovec v = { .iov_base = b, .iov_len = sizeof(b) };

		nd_request_encode(b, &r);
		assert_int_equal(nd_send_record(h.fd[0], &h.c.tx, &v, 1), 0);
	}
	pthread_join(h.thread, NULL);
	h.thread = pthread_self();
	assert_int_equal(h.srv.echoed, total);
	close(h.fd[0]);
	close(h.fd[1]);
	nd_crypto_free(&h.c);
	if (h.srv.err[0])
		fail_msg("server: %s", h.srv.err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_defaults),
		cmocka_unit_test(test_ok_params),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_bad_server_verify),
		cmocka_unit_test(test_invalid_params),
		cmocka_unit_test(test_server_closes),
		cmocka_unit_test(test_bad_server_hello),
		cmocka_unit_test(test_low_order_server_share),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_version_refusal),
		cmocka_unit_test(test_forward_secrecy),
		cmocka_unit_test(test_bad_session_info),
		cmocka_unit_test(test_rekey_both_ways),
		cmocka_unit_test(test_list_request),
		cmocka_unit_test(test_list_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
