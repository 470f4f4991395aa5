// SPDX-License-Identifier: MIT
/* netdisk_proto.h encoders and decoders: round trips and malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "netdisk_proto.h"
#include "netdisk_vectors.h"

static void test_be_fields(void **state)
{
	uint8_t b[8];

	nd_put16(b, 0x1234);
	assert_memory_equal(b, "\x12\x34", 2);
	assert_int_equal(nd_get16(b), 0x1234);
	nd_put32(b, 0xdeadbeefu);
	assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
	assert_int_equal(nd_get32(b), 0xdeadbeefu);
	nd_put64(b, 0x0102030405060708ull);
	assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(nd_get64(b) == 0x0102030405060708ull);
	nd_put64(b, UINT64_MAX);
	assert_true(nd_get64(b) == UINT64_MAX);
	nd_put16(b, 0xffff);
	assert_int_equal(nd_get16(b), 0xffff);
}

static void test_names(void **state)
{
	const uint8_t ok[] = "Az09._-";
	uint8_t long_name[ND_NAME_MAX + 1];
	int c;

	assert_true(nd_name_valid(ok, 7));
	assert_false(nd_name_valid(ok, 0));
	memset(long_name, 'a', sizeof(long_name));
	assert_true(nd_name_valid(long_name, ND_NAME_MAX));
	assert_false(nd_name_valid(long_name, ND_NAME_MAX + 1));
	for (c = 0; c < 256; c++) {
		uint8_t s[1] = { (uint8_t)c };
		int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			   c == '-';

		assert_int_equal(nd_name_valid(s, 1), want);
	}
}

static struct nd_client_hello sample_hello(void)
{
	struct nd_client_hello h = {
		.version = ND_VERSION, .flags = 0,
		.timestamp = 1700000000ull, .identity_len = 5,
		.export_len = 3,
	};
	int i;

	for (i = 0; i < ND_RANDOM_LEN; i++)
		h.random[i] = (uint8_t)(0xa0 + i);
	for (i = 0; i < ND_SHARE_LEN; i++)
		h.share[i] = (uint8_t)(0x40 + i);
	memcpy(h.identity, "alice", 5);
	memcpy(h.export_name, "vol", 3);
	return h;
}

static void test_client_hello_roundtrip(void **state)
{
	struct nd_client_hello h = sample_hello(), d;
	uint8_t b[ND_CLIENT_HELLO_MAX];
	size_t len = nd_client_hello_encode(b, &h);

	assert_int_equal(len, ND_CLIENT_HELLO_FIXED + 8 + ND_CLIENT_HELLO_TAIL);
	assert_int_equal(nd_client_hello_len(&h), len);
	assert_memory_equal(b + 58, h.share, ND_SHARE_LEN);
	assert_int_equal(nd_get16(b + 90), 0);
	assert_memory_equal(b, "NDSK", 4);
	assert_int_equal(nd_get16(b + 4), ND_VERSION);
	assert_true(nd_get64(b + 40) == 1700000000ull);
	assert_int_equal(b[48], 5);
	assert_int_equal(b[49], 3);
	assert_memory_equal(b + 50, "alicevol", 8);
	memset(&d, 0, sizeof(d));
	assert_int_equal(nd_client_hello_decode_fixed(b, &d), 8);
	assert_int_equal(nd_client_hello_decode_names(b + 50, &d), 0);
	assert_int_equal(d.version, h.version);
	assert_int_equal(d.flags, h.flags);
	assert_true(d.timestamp == h.timestamp);
	assert_memory_equal(d.random, h.random, ND_RANDOM_LEN);
	assert_memory_equal(d.identity, "alice", 5);
	assert_memory_equal(d.export_name, "vol", 3);
	assert_int_equal(nd_client_hello_decode_tail(b + 58, &d), 0);
	assert_memory_equal(d.share, h.share, ND_SHARE_LEN);
	assert_int_equal(d.ext_len, 0);
	assert_int_equal(nd_client_hello_decode_ext(b + 92, &d), 0);

	/* Longest names and a full extension area of unknown types. */
	h.identity_len = h.export_len = ND_NAME_MAX;
	memset(h.identity, 'i', ND_NAME_MAX);
	memset(h.export_name, 'e', ND_NAME_MAX);
	h.ext_len = ND_EXT_MAX;
	nd_put16(h.ext, 0xfe01);
	nd_put16(h.ext + 2, 100);
	nd_put16(h.ext + 104, 0x0000);
	nd_put16(h.ext + 106, ND_EXT_MAX - 108);
	assert_int_equal(nd_client_hello_encode(b, &h), ND_CLIENT_HELLO_MAX);
	assert_int_equal(nd_client_hello_decode_fixed(b, &d), 2 * ND_NAME_MAX);
	assert_int_equal(nd_client_hello_decode_names(b + 50, &d), 0);
	assert_int_equal(nd_client_hello_decode_tail(b + 50 + 2 * ND_NAME_MAX,
						     &d), ND_EXT_MAX);
	assert_int_equal(nd_client_hello_decode_ext(b + 50 + 2 * ND_NAME_MAX +
						    ND_CLIENT_HELLO_TAIL, &d),
			 0);
	assert_memory_equal(d.ext, h.ext, ND_EXT_MAX);
}

/* Extension framing: {u16 type, u16 len, value} filling ext_len exactly. */
static int ext_check(const uint8_t *ext, uint16_t len)
{
	struct nd_client_hello d = { .ext_len = len };

	return nd_client_hello_decode_ext(ext, &d);
}

static void test_client_hello_extensions(void **state)
{
	uint8_t e[ND_EXT_MAX + 8] = { 0 }, t[ND_CLIENT_HELLO_TAIL];
	struct nd_client_hello d;

	/* Empty, one empty extension, two, any type. */
	assert_int_equal(ext_check(e, 0), 0);
	assert_int_equal(ext_check(e, 4), 0);
	nd_put16(e, 0xffff);
	nd_put16(e + 2, 3);
	nd_put16(e + 7, 0x1234);
	nd_put16(e + 9, 1);
	assert_int_equal(ext_check(e, 12), 0);
	/* Broken framing: a header cut short, a value running past the end. */
	assert_int_equal(ext_check(e, 1), -1);
	assert_int_equal(ext_check(e, 3), -1);
	assert_int_equal(ext_check(e, 6), -1);
	assert_int_equal(ext_check(e, 11), -1);
	assert_int_equal(ext_check(e, 13), -1);	/* trailing byte */
	nd_put16(e + 2, 0xffff);
	assert_int_equal(ext_check(e, 12), -1);
	/* ext_len over 512 is refused before any extension is read. */
	memset(t, 0, sizeof(t));
	nd_put16(t + ND_SHARE_LEN, ND_EXT_MAX);
	assert_int_equal(nd_client_hello_decode_tail(t, &d), ND_EXT_MAX);
	nd_put16(t + ND_SHARE_LEN, ND_EXT_MAX + 1);
	assert_int_equal(nd_client_hello_decode_tail(t, &d), -1);
	nd_put16(t + ND_SHARE_LEN, 0xffff);
	assert_int_equal(nd_client_hello_decode_tail(t, &d), -1);
}

static void test_client_hello_malformed(void **state)
{
	struct nd_client_hello h = sample_hello(), d;
	uint8_t b[ND_CLIENT_HELLO_MAX], t[ND_CLIENT_HELLO_MAX];
	int i;

	nd_client_hello_encode(b, &h);
	for (i = 0; i < 4; i++) {
		memcpy(t, b, sizeof(t));
		t[i] ^= 0x01;
		assert_int_equal(nd_client_hello_decode_fixed(t, &d), -1);
	}
	{
		static const uint8_t bad_len[] = { 0, ND_NAME_MAX + 1, 255 };

		for (i = 0; i < 3; i++) {
			memcpy(t, b, sizeof(t));
			t[48] = bad_len[i];
			assert_int_equal(nd_client_hello_decode_fixed(t, &d), -1);
			memcpy(t, b, sizeof(t));
			t[49] = bad_len[i];
			assert_int_equal(nd_client_hello_decode_fixed(t, &d), -1);
		}
	}
	/* Bad characters in either name. */
	memcpy(t, b, sizeof(t));
	assert_int_equal(nd_client_hello_decode_fixed(t, &d), 8);
	t[50] = '/';
	assert_int_equal(nd_client_hello_decode_names(t + 50, &d), -1);
	memcpy(t, b, sizeof(t));
	t[57] = ' ';
	assert_int_equal(nd_client_hello_decode_names(t + 50, &d), -1);
	t[57] = 0;
	assert_int_equal(nd_client_hello_decode_names(t + 50, &d), -1);
	/* Version and flags are the server's to judge: decoded as sent. */
	memcpy(t, b, sizeof(t));
	nd_put16(t + 4, 7);
	nd_put16(t + 6, 0x8000);
	assert_int_equal(nd_client_hello_decode_fixed(t, &d), 8);
	assert_int_equal(d.version, 7);
	assert_int_equal(d.flags, 0x8000);
}

static void test_server_hello(void **state)
{
	struct nd_server_hello h = { .version = ND_VERSION, .status = ND_OK },
			       d;
	uint8_t b[ND_SERVER_HELLO_LEN];
	int i;

	for (i = 0; i < ND_RANDOM_LEN; i++) {
		h.random[i] = (uint8_t)i;
		h.share[i] = (uint8_t)(100 + i);
		h.verify[i] = (uint8_t)(255 - i);
	}
	nd_server_hello_encode(b, &h);
	assert_int_equal(nd_get32(b), ND_MAGIC);
	assert_int_equal(nd_get16(b + 4), ND_VERSION);
	assert_int_equal(nd_get16(b + 6), ND_OK);
	assert_memory_equal(b + 40, h.share, ND_SHARE_LEN);
	assert_memory_equal(b + 72, h.verify, ND_HASH_LEN);
	assert_int_equal(nd_server_hello_decode(b, &d), 0);
	assert_int_equal(d.version, ND_VERSION);
	assert_int_equal(d.status, ND_OK);
	assert_memory_equal(d.random, h.random, ND_RANDOM_LEN);
	assert_memory_equal(d.share, h.share, ND_SHARE_LEN);
	assert_memory_equal(d.verify, h.verify, ND_HASH_LEN);
	memset(&d, 0, sizeof(d));
	assert_int_equal(nd_server_hello_decode_head(b, &d), 0);
	assert_int_equal(d.version, ND_VERSION);
	b[3] ^= 0x80;
	assert_int_equal(nd_server_hello_decode(b, &d), -1);
	assert_int_equal(nd_server_hello_decode_head(b, &d), -1);

	/* A version-1 server's refusal: its first 8 bytes are all we read. */
	memcpy(b, "NDSK\x00\x01\x00\x09", 8);
	assert_int_equal(nd_server_hello_decode_head(b, &d), 0);
	assert_int_equal(d.version, 1);
	assert_int_equal(d.status, ND_ERR_VERSION);
}

/*
 * A ServerHello is unauthenticated: only OK and unsupported version may
 * come in it; no such export, busy, unknown session and the rest only in
 * SessionInfo.
 */
static void test_server_hello_status(void **state)
{
	struct nd_server_hello h = { .version = ND_VERSION }, d;
	uint8_t b[ND_SERVER_HELLO_LEN];
	unsigned int st;

	for (st = 0; st <= ND_ERR__COUNT + 1; st++) {
		int ok = st == ND_OK || st == ND_ERR_VERSION;

		h.status = (uint16_t)st;
		nd_server_hello_encode(b, &h);
		assert_int_equal(nd_server_hello_decode(b, &d), ok ? 0 : -1);
		assert_int_equal(nd_server_hello_decode_head(b, &d),
				 ok ? 0 : -1);
	}
	h.status = 0xffff;
	nd_server_hello_encode(b, &h);
	assert_int_equal(nd_server_hello_decode(b, &d), -1);
}

static void test_client_finish(void **state)
{
	struct nd_client_finish f = { .flags = ND_CF_READ_ONLY,
				      .max_payload = 65536, .slot = 63,
				      .epoch = 0x89abcdefu,
				      .resume_writer = 0x0102030405060708ull,
				      .resume_own = UINT64_MAX }, d;
	uint8_t b[ND_CLIENT_FINISH_LEN];

	memset(f.verify, 0x5a, ND_HASH_LEN);
	memset(f.token, 0xc3, ND_TOKEN_LEN);
	nd_client_finish_encode(b, &f);
	assert_int_equal(nd_get32(b + 48), ND_CF_READ_ONLY);
	assert_int_equal(nd_get32(b + 52), 65536);
	assert_int_equal(nd_get16(b + 56), 63);
	assert_int_equal(nd_get16(b + 58), 0);
	assert_int_equal(nd_get32(b + 60), 0x89abcdefu);
	assert_true(nd_get64(b + 64) == 0x0102030405060708ull);
	assert_true(nd_get64(b + 72) == UINT64_MAX);
	nd_client_finish_decode(b, &d);
	assert_memory_equal(&d.verify, f.verify, ND_HASH_LEN);
	assert_memory_equal(&d.token, f.token, ND_TOKEN_LEN);
	assert_int_equal(d.flags, f.flags);
	assert_int_equal(d.max_payload, f.max_payload);
	assert_int_equal(d.slot, f.slot);
	assert_int_equal(d.reserved, 0);
	assert_int_equal(d.epoch, f.epoch);
	assert_true(d.resume_writer == f.resume_writer);
	assert_true(d.resume_own == f.resume_own);
	assert_null(nd_client_finish_invalid(&d));
}

/* What the server answers with status invalid (4). */
static void test_client_finish_invalid(void **state)
{
	static const uint32_t good_mp[] = { 0, 4096, 8192, 1u << 20,
					    ND_MAX_PAYLOAD };
	static const uint32_t bad_mp[] = { 512, 4095, 5000, 4096 + 512,
					   ND_MAX_PAYLOAD + 4096, UINT32_MAX };
	struct nd_client_finish f = { .epoch = 1 }, t;
	size_t i;

	assert_null(nd_client_finish_invalid(&f));
	for (i = 0; i < sizeof(good_mp) / sizeof(good_mp[0]); i++) {
		t = f;
		t.max_payload = good_mp[i];
		assert_null(nd_client_finish_invalid(&t));
	}
	for (i = 0; i < sizeof(bad_mp) / sizeof(bad_mp[0]); i++) {
		t = f;
		t.max_payload = bad_mp[i];
		assert_non_null(nd_client_finish_invalid(&t));
	}
	t = f;
	t.slot = ND_MAX_SLOTS - 1;
	assert_null(nd_client_finish_invalid(&t));
	t.slot = ND_MAX_SLOTS;
	assert_string_equal(nd_client_finish_invalid(&t), "slot out of range");
	t = f;
	t.epoch = 0;
	assert_string_equal(nd_client_finish_invalid(&t), "epoch 0");
	t = f;
	t.reserved = 1;
	assert_non_null(nd_client_finish_invalid(&t));
	t = f;
	t.flags = 0x2;
	assert_string_equal(nd_client_finish_invalid(&t), "unknown flags");
	/* Resume fields are any value. */
	t = f;
	t.resume_writer = t.resume_own = UINT64_MAX;
	assert_null(nd_client_finish_invalid(&t));
}

static struct nd_session_info sample_info(void)
{
	struct nd_session_info s = {
		.status = ND_OK, .flags = ND_EXP_FLUSH | ND_EXP_FUA,
		.size = 1ull << 40, .block_size = 4096,
		.max_payload = ND_DEFAULT_PAYLOAD,
		.write_epoch = 0x1122334455667788ull, .last_writer = 9,
	};

	memset(s.token, 0x11, ND_TOKEN_LEN);
	memset(s.export_id, 0x22, ND_EXPORT_ID_LEN);
	return s;
}

static int info_decodes(const struct nd_session_info *s)
{
	uint8_t b[ND_SESSION_INFO_LEN];
	struct nd_session_info d;

	nd_session_info_encode(b, s);
	return nd_session_info_decode(b, &d);
}

static void test_session_info(void **state)
{
	struct nd_session_info s = sample_info(), d;
	uint8_t b[ND_SESSION_INFO_LEN];
	static const uint32_t good_bs[] = { 512, 1024, 2048, 4096 };
	static const uint32_t bad_bs[] = { 0, 256, 513, 3072, 8192 };
	size_t i;

	nd_session_info_encode(b, &s);
	assert_int_equal(nd_get16(b + 2), 0);
	assert_int_equal(nd_session_info_decode(b, &d), 0);
	assert_int_equal(d.status, s.status);
	assert_int_equal(d.flags, s.flags);
	assert_true(d.size == s.size);
	assert_int_equal(d.block_size, s.block_size);
	assert_int_equal(d.max_payload, s.max_payload);
	assert_memory_equal(d.token, s.token, ND_TOKEN_LEN);
	assert_memory_equal(d.export_id, s.export_id, ND_EXPORT_ID_LEN);
	assert_true(nd_get64(b + 56) == s.write_epoch);
	assert_true(nd_get64(b + 64) == 9);
	assert_true(d.write_epoch == s.write_epoch);
	assert_true(d.last_writer == s.last_writer);

	/* write_epoch is non-zero exactly when the session may write. */
	s = sample_info();
	s.write_epoch = 0;
	assert_int_equal(info_decodes(&s), -1);
	s.flags |= ND_EXP_READ_ONLY;
	assert_int_equal(info_decodes(&s), 0);
	s.write_epoch = 1;
	assert_int_equal(info_decodes(&s), -1);
	s = sample_info();
	s.last_writer = 0;
	assert_int_equal(info_decodes(&s), 0);

	for (i = 0; i < 4; i++) {
		s = sample_info();
		s.block_size = good_bs[i];
		assert_int_equal(info_decodes(&s), 0);
	}
	for (i = 0; i < 5; i++) {
		s = sample_info();
		s.block_size = bad_bs[i];
		assert_int_equal(info_decodes(&s), -1);
	}
	s = sample_info();
	s.size = 0;
	assert_int_equal(info_decodes(&s), -1);
	s.size = 4096 + 512;
	assert_int_equal(info_decodes(&s), -1);
	s.block_size = 512;
	assert_int_equal(info_decodes(&s), 0);

	/* Sizes the block layer (signed 64-bit offsets) cannot represent. */
	s = sample_info();
	s.size = ND_EXPORT_SIZE_LIMIT - 4096;
	assert_int_equal(info_decodes(&s), 0);
	s.size = ND_EXPORT_SIZE_LIMIT;
	assert_int_equal(info_decodes(&s), -1);
	assert_string_equal(nd_session_info_invalid(&s),
			    "export size 0 or 2^63 bytes or more");
	s.size = UINT64_MAX - 4095;
	assert_int_equal(info_decodes(&s), -1);
	s = sample_info();
	s.block_size = 3;
	assert_int_equal(info_decodes(&s), -1);
	assert_non_null(nd_session_info_invalid(&s));
	s = sample_info();
	assert_null(nd_session_info_invalid(&s));

	s = sample_info();
	s.max_payload = ND_MIN_PAYLOAD;
	assert_int_equal(info_decodes(&s), 0);
	s.max_payload = ND_MAX_PAYLOAD;
	assert_int_equal(info_decodes(&s), 0);
	s.max_payload = ND_MIN_PAYLOAD - 512;
	assert_int_equal(info_decodes(&s), -1);
	s.max_payload = ND_MAX_PAYLOAD + 4096;
	assert_int_equal(info_decodes(&s), -1);
	s.max_payload = 0;
	assert_int_equal(info_decodes(&s), -1);
	s.max_payload = 8192 + 512;
	assert_int_equal(info_decodes(&s), -1);

	/* With an error status the other fields are not checked. */
	s = sample_info();
	s.status = ND_ERR_BUSY;
	s.block_size = 0;
	s.size = 0;
	s.max_payload = 0;
	nd_session_info_encode(b, &s);
	assert_int_equal(nd_session_info_decode(b, &d), 0);
	assert_int_equal(d.status, ND_ERR_BUSY);
	/* Base changed (a copy-on-write overlay's): 16, the last status. */
	s.status = ND_ERR_BASE_CHANGED;
	nd_session_info_encode(b, &s);
	assert_int_equal(nd_get16(b), 16);
	assert_int_equal(nd_session_info_decode(b, &d), 0);
	assert_int_equal(d.status, ND_ERR_BASE_CHANGED);
	assert_null(nd_session_info_invalid(&d));
	/* An unknown status is malformed, not a refusal. */
	assert_int_equal(ND_ERR__COUNT, 17);
	s.status = ND_ERR__COUNT;
	nd_session_info_encode(b, &s);
	assert_int_equal(nd_session_info_decode(b, &d), -1);
	assert_string_equal(nd_session_info_invalid(&d), "unknown status");
}

static struct nd_request req(uint8_t op, uint8_t flags, uint32_t len,
			     uint64_t off)
{
	struct nd_request r = { .op = op, .flags = flags, .length = len,
				.handle = 0x0123456789abcdefull,
				.offset = off };
	return r;
}

/* Encodes r, decodes it with the given body length and max payload. */
static int req_check(struct nd_request r, size_t body_len, uint32_t max)
{
	uint8_t b[ND_REQ_HDR_LEN];
	struct nd_request d;

	nd_request_encode(b, &r);
	return nd_request_decode(b, body_len, max, &d);
}

#define MAXP	ND_DEFAULT_PAYLOAD
#define HDR	ND_REQ_HDR_LEN

static void test_request_roundtrip(void **state)
{
	struct nd_request r = req(ND_OP_WRITE, ND_REQ_FUA, 8192, 1ull << 41),
			  d;
	uint8_t b[HDR];

	nd_request_encode(b, &r);
	assert_int_equal(nd_get16(b + 2), 0);
	assert_int_equal(nd_request_decode(b, HDR + 8192, MAXP, &d), ND_OK);
	assert_int_equal(d.op, r.op);
	assert_int_equal(d.flags, r.flags);
	assert_int_equal(d.length, r.length);
	assert_true(d.handle == r.handle);
	assert_true(d.offset == r.offset);

	/* Every valid shape. */
	assert_int_equal(req_check(req(ND_OP_READ, 0, 512, 0), HDR, MAXP),
			 ND_OK);
	assert_int_equal(req_check(req(ND_OP_READ, ND_REQ_FUA, MAXP, 512), HDR,
				   MAXP), ND_OK);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 512, 0), HDR + 512,
				   MAXP), ND_OK);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, MAXP, 0), HDR + MAXP,
				   MAXP), ND_OK);
	assert_int_equal(req_check(req(ND_OP_FLUSH, 0, 0, 0), HDR, MAXP),
			 ND_OK);
	assert_int_equal(req_check(req(ND_OP_FLUSH, ND_REQ_FUA, 0, 0), HDR,
				   MAXP), ND_OK);
	assert_int_equal(req_check(req(ND_OP_DISCONNECT, 0, 0, 0), HDR, MAXP),
			 ND_OK);
	/* TRIM and WRITE_ZEROES parse; the server answers not supported. */
	assert_int_equal(req_check(req(ND_OP_TRIM, 0, 1 << 24, 4096), HDR,
				   MAXP), ND_OK);
	assert_int_equal(req_check(req(ND_OP_WRITE_ZEROES, 0, 0, 0), HDR, MAXP),
			 ND_OK);
	/* Offset far past any export is well-formed (range is the server's). */
	assert_int_equal(req_check(req(ND_OP_READ, 0, 512,
				       UINT64_MAX - 511), HDR, MAXP), ND_OK);
}

static void test_request_malformed(void **state)
{
	uint8_t b[HDR];
	struct nd_request d;
	size_t n;

	/* Short body. */
	nd_request_encode(b, &(struct nd_request){ .op = ND_OP_FLUSH });
	for (n = 0; n < HDR; n++)
		assert_int_equal(nd_request_decode(b, n, MAXP, &d),
				 ND_ERR_INVALID);
	/* Unknown op. */
	assert_int_equal(req_check(req(ND_OP__COUNT, 0, 0, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(0xff, 0, 512, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	/* Unknown flags. */
	assert_int_equal(req_check(req(ND_OP_READ, 0x02, 512, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0x80, 512, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	/* Reserved bytes. */
	nd_request_encode(b, &(struct nd_request){ .op = ND_OP_READ,
						   .length = 512 });
	b[2] = 1;
	assert_int_equal(nd_request_decode(b, HDR, MAXP, &d), ND_ERR_INVALID);
	b[2] = 0;
	b[3] = 0x80;
	assert_int_equal(nd_request_decode(b, HDR, MAXP, &d), ND_ERR_INVALID);
	b[3] = 0;
	assert_int_equal(nd_request_decode(b, HDR, MAXP, &d), ND_OK);
	/* Unaligned offset or length. */
	assert_int_equal(req_check(req(ND_OP_READ, 0, 512, 1), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0, 512, 511), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0, 513, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 100, 0), HDR + 100,
				   MAXP), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_TRIM, 0, 4096, 100), HDR, MAXP),
			 ND_ERR_INVALID);
	/* READ/WRITE length zero or over max_payload. */
	assert_int_equal(req_check(req(ND_OP_READ, 0, 0, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 0, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0, MAXP + 512, 0), HDR,
				   MAXP), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 8192, 0), HDR + 8192,
				   4096), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0, 0xfffffe00u, 0), HDR,
				   MAXP), ND_ERR_INVALID);
	/* FLUSH and DISCONNECT with a length or offset. */
	assert_int_equal(req_check(req(ND_OP_FLUSH, 0, 512, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_FLUSH, 0, 0, 512), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_DISCONNECT, 0, 512, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_DISCONNECT, 0, 0, 512), HDR, MAXP),
			 ND_ERR_INVALID);
	/* Body length not matching: WRITE data short/long, extra data. */
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 4096, 0), HDR, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 4096, 0), HDR + 4095,
				   MAXP), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_WRITE, 0, 4096, 0), HDR + 4097,
				   MAXP), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_READ, 0, 4096, 0), HDR + 4096,
				   MAXP), ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_FLUSH, 0, 0, 0), HDR + 1, MAXP),
			 ND_ERR_INVALID);
	assert_int_equal(req_check(req(ND_OP_TRIM, 0, 4096, 0), HDR + 4096,
				   MAXP), ND_ERR_INVALID);
}

static int reply_check(uint8_t op, uint16_t status, uint32_t len,
		       size_t body_len)
{
	struct nd_reply r = { .op = op, .status = status, .length = len,
			      .handle = 99 }, d;
	uint8_t b[ND_REPLY_HDR_LEN];

	nd_reply_encode(b, &r);
	return nd_reply_decode(b, body_len, &d);
}

static void test_reply(void **state)
{
	struct nd_reply r = { .op = ND_OP_READ, .status = ND_OK,
			      .length = 4096, .handle = UINT64_MAX - 1 }, d;
	uint8_t b[ND_REPLY_HDR_LEN];
	size_t n;

	nd_reply_encode(b, &r);
	assert_int_equal(b[1], 0);
	assert_int_equal(nd_reply_decode(b, ND_REPLY_HDR_LEN + 4096, &d), 0);
	assert_int_equal(d.op, r.op);
	assert_int_equal(d.status, r.status);
	assert_int_equal(d.length, r.length);
	assert_true(d.handle == r.handle);

	assert_int_equal(reply_check(ND_OP_WRITE, ND_OK, 0, 16), 0);
	assert_int_equal(reply_check(ND_OP_READ, ND_ERR_RANGE, 0, 16), 0);
	assert_int_equal(reply_check(ND_OP_TRIM, ND_ERR_NOTSUP, 0, 16), 0);
	/* Short body. */
	for (n = 0; n < ND_REPLY_HDR_LEN; n++)
		assert_int_equal(nd_reply_decode(b, n, &d), -1);
	/* Reserved byte. */
	b[1] = 1;
	assert_int_equal(nd_reply_decode(b, ND_REPLY_HDR_LEN + 4096, &d), -1);
	/* Unknown op. */
	assert_int_equal(reply_check(ND_OP__COUNT, ND_OK, 0, 16), -1);
	/* Length vs body. */
	assert_int_equal(reply_check(ND_OP_READ, ND_OK, 4096, 16 + 4095), -1);
	assert_int_equal(reply_check(ND_OP_READ, ND_OK, 4096, 16), -1);
	assert_int_equal(reply_check(ND_OP_WRITE, ND_OK, 0, 17), -1);
	/* Statuses outside the table are malformed, not "unknown error". */
	assert_int_equal(reply_check(ND_OP_READ, ND_ERR_SHUTDOWN, 0, 16), 0);
	assert_int_equal(reply_check(ND_OP_READ, ND_ERR__COUNT, 0, 16), -1);
	assert_int_equal(reply_check(ND_OP_WRITE, 0x7777, 0, 16), -1);
	/* Data only on a successful READ. */
	assert_int_equal(reply_check(ND_OP_WRITE, ND_OK, 512, 16 + 512), -1);
	assert_int_equal(reply_check(ND_OP_READ, ND_ERR_IO, 512, 16 + 512), -1);
}

static void test_nonce_and_status(void **state)
{
	uint8_t iv[ND_IV_LEN], n[ND_IV_LEN];
	int i;

	for (i = 0; i < ND_IV_LEN; i++)
		iv[i] = (uint8_t)(0x10 * i + 1);
	nd_nonce(n, iv, 0);
	assert_memory_equal(n, iv, ND_IV_LEN);
	nd_nonce(n, iv, 0x0102030405060708ull);
	assert_memory_equal(n, iv, 4);
	for (i = 0; i < 8; i++)
		assert_int_equal(n[4 + i], iv[4 + i] ^ (i + 1));
	nd_nonce(n, iv, 65536);
	assert_int_equal(n[9], iv[9] ^ 1);

	assert_string_equal(nd_status_str(ND_OK), "success");
	assert_string_equal(nd_status_str(ND_ERR_BUSY), "export busy");
	assert_string_equal(nd_status_str(ND_ERR_SHUTDOWN),
			    "server shutting down");
	assert_string_equal(nd_status_str(ND_ERR_ACCESS), "access denied");
	assert_string_equal(nd_status_str(ND_ERR_BASE_CHANGED),
			    "base image of the overlay changed");
	assert_string_equal(nd_status_str(ND_ERR__COUNT), "unknown error");
	assert_string_equal(nd_status_str(0xffff), "unknown error");
}

/* ---- ExportList (list-exports extension) ---- */

static struct nd_list_entry list_entry(const char *name, uint32_t flags,
				       uint64_t size, uint32_t bs)
{
	struct nd_list_entry e = {
		.name_len = (uint8_t)strlen(name), .flags = flags,
		.size = size, .block_size = bs,
	};

	memcpy(e.name, name, e.name_len);
	return e;
}

/* Encodes e alone after an ExportList header; returns the length. */
static size_t list_one(uint8_t *b, const struct nd_list_entry *e)
{
	nd_list_hdr_encode(b, 1);
	return ND_LIST_HDR_LEN + nd_list_entry_encode(b + ND_LIST_HDR_LEN, e);
}

static int entry_decodes(const struct nd_list_entry *e)
{
	uint8_t b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + ND_NAME_MAX];
	struct nd_list_entry d;
	size_t len = list_one(b, e), off = ND_LIST_HDR_LEN;

	return nd_list_entry_decode(b, len, &off, &d);
}

static void test_list_extension(void **state)
{
	uint8_t e[ND_EXT_MAX] = { 0 };

	assert_int_equal(nd_ext_list_exports(e), 4);
	assert_memory_equal(e, "\x00\x01\x00\x00", 4);
	assert_int_equal(ext_check(e, 4), 0);
	assert_true(nd_ext_has(e, 4, ND_EXT_LIST_EXPORTS));
	assert_false(nd_ext_has(e, 4, 2));
	assert_false(nd_ext_has(e, 0, ND_EXT_LIST_EXPORTS));
	/* After an unknown extension with a value. */
	nd_put16(e, 0x7777);
	nd_put16(e + 2, 3);
	nd_ext_list_exports(e + 7);
	assert_int_equal(ext_check(e, 11), 0);
	assert_true(nd_ext_has(e, 11, ND_EXT_LIST_EXPORTS));
	/* A value that merely contains the type bytes does not count. */
	memset(e, 0, sizeof(e));
	nd_put16(e, 0x7777);
	nd_put16(e + 2, 4);
	nd_ext_list_exports(e + 4);
	assert_int_equal(ext_check(e, 8), 0);
	assert_false(nd_ext_has(e, 8, ND_EXT_LIST_EXPORTS));
}

static void test_list_roundtrip(void **state)
{
	struct nd_list_entry in[3] = {
		list_entry("alpha", ND_EXP_FLUSH | ND_EXP_FUA, 1ull << 30, 512),
		list_entry("b", ND_EXP_READ_ONLY | ND_EXP_FLUSH | ND_LIST_BUSY,
			   ND_EXPORT_SIZE_LIMIT - 4096, 4096),
		list_entry("c-64", ND_LIST_FLAGS_KNOWN, 4096, 4096),
	};
	uint8_t b[256];
	struct nd_list_entry d;
	size_t o = ND_LIST_HDR_LEN, off;
	int i;

	memset(in[2].name, 'c', ND_NAME_MAX);
	in[2].name_len = ND_NAME_MAX;
	nd_list_hdr_encode(b, 3);
	assert_memory_equal(b, "NDLX\x00\x00\x00\x03", 8);
	for (i = 0; i < 3; i++)
		o += nd_list_entry_encode(b + o, &in[i]);
	assert_int_equal(o, ND_LIST_HDR_LEN + 3 * ND_LIST_ENTRY_FIXED + 5 + 1 +
			 ND_NAME_MAX);
	/* Field layout of the first entry. */
	assert_int_equal(b[8], 5);
	assert_memory_equal(b + 9, "alpha", 5);
	assert_int_equal(nd_get32(b + 14), ND_EXP_FLUSH | ND_EXP_FUA);
	assert_true(nd_get64(b + 18) == 1ull << 30);
	assert_int_equal(nd_get32(b + 26), 512);
	assert_true(nd_list_is(b, o));
	off = ND_LIST_HDR_LEN;
	for (i = 0; i < 3; i++) {
		assert_int_equal(nd_list_entry_decode(b, o, &off, &d), 0);
		assert_int_equal(d.name_len, in[i].name_len);
		assert_memory_equal(d.name, in[i].name, d.name_len);
		assert_int_equal(d.flags, in[i].flags);
		assert_true(d.size == in[i].size);
		assert_int_equal(d.block_size, in[i].block_size);
	}
	assert_int_equal(off, o);
	/* Nothing more to decode: the end is not an entry. */
	assert_int_equal(nd_list_entry_decode(b, o, &off, &d), -1);
	assert_int_equal(off, o);
}

static void test_list_malformed(void **state)
{
	static const uint32_t good_bs[] = { 512, 1024, 2048, 4096 };
	static const uint32_t bad_bs[] = { 0, 3, 256, 513, 3072, 8192 };
	struct nd_list_entry e = list_entry("vol", ND_EXP_FLUSH, 1 << 20, 512), d;
	uint8_t b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + ND_NAME_MAX];
	size_t len, off, cut;
	unsigned int bit;
	size_t i;

	assert_int_equal(entry_decodes(&e), 0);
	/* Every truncation of an entry. */
	len = list_one(b, &e);
	for (cut = ND_LIST_HDR_LEN; cut < len; cut++) {
		off = ND_LIST_HDR_LEN;
		assert_int_equal(nd_list_entry_decode(b, cut, &off, &d), -1);
		assert_int_equal(off, ND_LIST_HDR_LEN);
	}
	/* Name length 0 or over 64, a byte outside the name alphabet. */
	b[ND_LIST_HDR_LEN] = 0;
	off = ND_LIST_HDR_LEN;
	assert_int_equal(nd_list_entry_decode(b, len, &off, &d), -1);
	b[ND_LIST_HDR_LEN] = ND_NAME_MAX + 1;
	off = ND_LIST_HDR_LEN;
	assert_int_equal(nd_list_entry_decode(b, sizeof(b), &off, &d), -1);
	e.name[1] = '/';
	assert_int_equal(entry_decodes(&e), -1);
	e.name[1] = 0;
	assert_int_equal(entry_decodes(&e), -1);
	e = list_entry("vol", ND_EXP_FLUSH, 1 << 20, 512);
	/* Each flag bit: known ones pass, every other one is refused. */
	for (bit = 0; bit < 32; bit++) {
		e.flags = 1u << bit;
		assert_int_equal(entry_decodes(&e),
				 (e.flags & ND_LIST_FLAGS_KNOWN) ? 0 : -1);
	}
	/* exclusive is a session's flag, not a list's. */
	e.flags = ND_EXP_EXCLUSIVE;
	assert_int_equal(entry_decodes(&e), -1);
	e.flags = ND_EXP_FLUSH;
	/* Sizes: 0, 2^63 and over, not a multiple of the block size. */
	e.size = 0;
	assert_int_equal(entry_decodes(&e), -1);
	e.size = ND_EXPORT_SIZE_LIMIT;
	assert_int_equal(entry_decodes(&e), -1);
	e.size = UINT64_MAX - 511;
	assert_int_equal(entry_decodes(&e), -1);
	e.size = ND_EXPORT_SIZE_LIMIT - 512;
	assert_int_equal(entry_decodes(&e), 0);
	e.size = 4096 + 512;
	e.block_size = 4096;
	assert_int_equal(entry_decodes(&e), -1);
	e.size = 1 << 20;
	for (i = 0; i < 4; i++) {
		e.block_size = good_bs[i];
		assert_int_equal(entry_decodes(&e), 0);
	}
	for (i = 0; i < 6; i++) {
		e.block_size = bad_bs[i];
		assert_int_equal(entry_decodes(&e), -1);
	}
}

/* PROTOCOL.md §5's ExportList, from the independent Python encoder. */
static void test_list_vector(void **state)
{
	const struct nd_list_entry want[2] = {
		list_entry("boot", ND_EXP_READ_ONLY | ND_EXP_FLUSH, 8ull << 30,
			   512),
		list_entry("data", ND_EXP_FLUSH | ND_EXP_FUA | ND_EXP_TRIM |
			   ND_EXP_WRITE_ZEROES | ND_LIST_BUSY, 64ull << 30,
			   4096),
	};
	uint8_t b[sizeof(nd_vec_list_plain)];
	struct nd_list_entry d;
	size_t o = ND_LIST_HDR_LEN;
	int i;

	nd_list_hdr_encode(b, 2);
	for (i = 0; i < 2; i++)
		o += nd_list_entry_encode(b + o, &want[i]);
	assert_int_equal(o, sizeof(nd_vec_list_plain));
	assert_memory_equal(b, nd_vec_list_plain, o);
	assert_true(nd_list_is(nd_vec_list_plain, o));
	assert_int_equal(nd_get32(nd_vec_list_plain + 4), 2);
	o = ND_LIST_HDR_LEN;
	for (i = 0; i < 2; i++) {
		assert_int_equal(nd_list_entry_decode(nd_vec_list_plain,
						      sizeof(nd_vec_list_plain),
						      &o, &d), 0);
		assert_memory_equal(&d.name, want[i].name, want[i].name_len);
		assert_int_equal(d.flags, want[i].flags);
		assert_true(d.size == want[i].size);
		assert_int_equal(d.block_size, want[i].block_size);
	}
	assert_int_equal(o, sizeof(nd_vec_list_plain));
}

/* An ExportList and a SessionInfo can never be taken for each other. */
static void test_list_vs_session_info(void **state)
{
	struct nd_session_info s = sample_info(), d;
	uint8_t b[ND_SESSION_INFO_LEN];
	unsigned int st;

	for (st = 0; st < ND_ERR__COUNT; st++) {
		s.status = (uint16_t)st;
		nd_session_info_encode(b, &s);
		assert_false(nd_list_is(b, sizeof(b)));
	}
	/* Access denied is a SessionInfo status like the others. */
	memset(&s, 0, sizeof(s));
	s.status = ND_ERR_ACCESS;
	nd_session_info_encode(b, &s);
	assert_int_equal(nd_session_info_decode(b, &d), 0);
	assert_int_equal(d.status, ND_ERR_ACCESS);
	/* As a status, the magic's first half is not one the protocol has. */
	assert_true((ND_LIST_MAGIC >> 16) >= ND_ERR__COUNT);
	assert_true((ND_LIST_MAGIC & 0xffff) != 0);
	nd_list_hdr_encode(b, 0);
	assert_true(nd_list_is(b, ND_LIST_HDR_LEN));
	assert_true(nd_list_is(b, sizeof(b)));
	assert_false(nd_list_is(b, ND_LIST_HDR_LEN - 1));
	assert_false(nd_list_is(b, 0));
	b[3] ^= 1;
	assert_false(nd_list_is(b, sizeof(b)));
	/* The largest list fits its bound. */
	assert_int_equal(ND_LIST_MAX_LEN, 8 + 1024 * (17 + 64));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_be_fields),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_client_hello_roundtrip),
		cmocka_unit_test(test_client_hello_malformed),
		cmocka_unit_test(test_server_hello),
		cmocka_unit_test(test_server_hello_status),
		cmocka_unit_test(test_client_hello_extensions),
		cmocka_unit_test(test_client_finish),
		cmocka_unit_test(test_client_finish_invalid),
		cmocka_unit_test(test_session_info),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_nonce_and_status),
		cmocka_unit_test(test_list_extension),
		cmocka_unit_test(test_list_roundtrip),
		cmocka_unit_test(test_list_malformed),
		cmocka_unit_test(test_list_vector),
		cmocka_unit_test(test_list_vs_session_info),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
