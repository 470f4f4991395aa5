// SPDX-License-Identifier: MIT
/*
 * Decoders of include/netdisk_proto.h. Byte 0 picks the message; the rest
 * is the message itself, copied into a buffer of exactly its size so ASan
 * sees any read past it. Whatever a decoder accepts must re-encode to the
 * same bytes (reserved fields aside) and satisfy the decoder's own rules.
 */
#include <stdlib.h>
#include <string.h>

#include "netdisk_proto.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (!b)
		fz_fail("out of memory");
	memcpy(b, p, n);
	return b;
}

static void client_hello(const uint8_t *p, size_t n)
{
	struct nd_client_hello h;
	uint8_t out[ND_CLIENT_HELLO_MAX];
	size_t o, len;
	int names, ext, off;

	if (n < ND_CLIENT_HELLO_FIXED)
		return;
	memset(&h, 0xa5, sizeof(h));
	names = nd_client_hello_decode_fixed(p, &h);
	if (names < 0)
		return;
	if (names < 2 || names > 2 * ND_NAME_MAX ||
	    names != h.identity_len + h.export_len)
		fz_fail("client hello: %d name bytes", names);
	o = ND_CLIENT_HELLO_FIXED + (size_t)names;
	if (n < o + ND_CLIENT_HELLO_TAIL)
		return;
	if (nd_client_hello_decode_names(p + ND_CLIENT_HELLO_FIXED, &h) < 0)
		return;
	if (!nd_name_valid(h.identity, h.identity_len) ||
	    !nd_name_valid(h.export_name, h.export_len))
		fz_fail("client hello: invalid name accepted");
	ext = nd_client_hello_decode_tail(p + o, &h);
	if (ext < 0)
		return;
	if (ext > ND_EXT_MAX || ext != h.ext_len)
		fz_fail("client hello: ext_len %d accepted", ext);
	o += ND_CLIENT_HELLO_TAIL;
	if (n < o + (size_t)ext ||
	    nd_client_hello_decode_ext(p + o, &h) < 0)
		return;
	/* The framing the decoder accepted: headers that fill ext_len exactly. */
	for (off = 0; off < ext; off += 4 + nd_get16(h.ext + off + 2))
		if (ext - off < 4)
			fz_fail("client hello: cut extension header accepted");
	if (off != ext)
		fz_fail("client hello: extension overrunning ext_len accepted");
	len = nd_client_hello_encode(out, &h);
	if (len != o + (size_t)ext || len != nd_client_hello_len(&h) ||
	    memcmp(out, p, len))
		fz_fail("client hello: re-encoding differs");
}

static void server_hello(const uint8_t *p, size_t n)
{
	struct nd_server_hello h;
	uint8_t out[ND_SERVER_HELLO_LEN];

	if (n >= ND_SERVER_HELLO_HEAD &&
	    (nd_server_hello_decode_head(p, &h) < 0) !=
	    (nd_get32(p) != ND_MAGIC ||
	     !nd_server_hello_status_valid(nd_get16(p + 6))))
		fz_fail("server hello: head decoder disagrees");
	if (n < ND_SERVER_HELLO_LEN || nd_server_hello_decode(p, &h) < 0)
		return;
	nd_server_hello_encode(out, &h);
	if (memcmp(out, p, sizeof(out)))
		fz_fail("server hello: re-encoding differs");
	if (!nd_server_hello_status_valid(h.status))
		fz_fail("server hello: status %u accepted before authentication",
			h.status);
	(void)nd_status_str(h.status);
}

static void client_finish(const uint8_t *p, size_t n)
{
	struct nd_client_finish f;
	uint8_t out[ND_CLIENT_FINISH_LEN];

	if (n < ND_CLIENT_FINISH_LEN)
		return;
	nd_client_finish_decode(p, &f);
	nd_client_finish_encode(out, &f);
	if (memcmp(out, p, sizeof(out)))
		fz_fail("client finish: re-encoding differs");
	if (nd_client_finish_invalid(&f))
		return;
	if ((f.flags & ~ND_CF_READ_ONLY) || f.slot >= ND_MAX_SLOTS ||
	    f.reserved || !f.epoch ||
	    (f.max_payload && (f.max_payload % ND_MIN_PAYLOAD ||
			       f.max_payload > ND_MAX_PAYLOAD)))
		fz_fail("client finish: invalid fields accepted");
}

static void session_info(const uint8_t *p, size_t n)
{
	struct nd_session_info s;
	uint8_t out[ND_SESSION_INFO_LEN];

	if (n < ND_SESSION_INFO_LEN || nd_session_info_decode(p, &s) < 0)
		return;
	nd_session_info_encode(out, &s);
	/* Bytes 2-3 are reserved: written as zero, ignored when read. */
	if (memcmp(out, p, 2) || memcmp(out + 4, p + 4, sizeof(out) - 4))
		fz_fail("session info: re-encoding differs");
	if (s.status >= ND_ERR__COUNT)
		fz_fail("session info: unknown status %u accepted", s.status);
	if (s.status != ND_OK)
		return;
	if (s.size == 0 || s.size >= ND_EXPORT_SIZE_LIMIT ||
	    s.size % s.block_size ||
	    s.max_payload < ND_MIN_PAYLOAD || s.max_payload > ND_MAX_PAYLOAD ||
	    s.max_payload % ND_MIN_PAYLOAD ||
	    !(s.flags & ND_EXP_READ_ONLY) != (s.write_epoch != 0))
		fz_fail("session info: inconsistent fields accepted");
}

static void request(const uint8_t *p, size_t n, uint32_t max_payload)
{
	struct nd_request r;
	uint8_t out[ND_REQ_HDR_LEN];

	if (nd_request_decode(p, n, max_payload, &r) != ND_OK)
		return;
	nd_request_encode(out, &r);
	if (memcmp(out, p, sizeof(out)))
		fz_fail("request: re-encoding differs");
	if (r.op >= ND_OP__COUNT || r.offset % ND_SECTOR_SIZE ||
	    r.length % ND_SECTOR_SIZE)
		fz_fail("request: bad op or alignment accepted");
	if ((r.op == ND_OP_READ || r.op == ND_OP_WRITE) &&
	    (r.length == 0 || r.length > max_payload))
		fz_fail("request: length %u accepted (max %u)", r.length,
			max_payload);
	if (n != ND_REQ_HDR_LEN + (r.op == ND_OP_WRITE ? r.length : 0))
		fz_fail("request: body of %zu bytes accepted", n);
}

static void reply(const uint8_t *p, size_t n)
{
	struct nd_reply r;
	uint8_t out[ND_REPLY_HDR_LEN];

	if (nd_reply_decode(p, n, &r) < 0)
		return;
	nd_reply_encode(out, &r);
	if (memcmp(out, p, sizeof(out)))
		fz_fail("reply: re-encoding differs");
	if (n != ND_REPLY_HDR_LEN + (size_t)r.length ||
	    (r.length && (r.op != ND_OP_READ || r.status != ND_OK)))
		fz_fail("reply: data length %u accepted", r.length);
	if (r.status >= ND_ERR__COUNT)
		fz_fail("reply: unknown status %u accepted", r.status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t which = fz_u8(&in);
	uint32_t max_payload = 0;
	uint8_t *b;

	/* Requests are checked against a max payload taken from the input. */
	if (which % 6 == 4)
		max_payload = fz_u32(&in);
	b = dup_exact(in.p, in.n);
	switch (which % 6) {
	case 0:
		client_hello(b, in.n);
		break;
	case 1:
		server_hello(b, in.n);
		break;
	case 2:
		client_finish(b, in.n);
		break;
	case 3:
		session_info(b, in.n);
		break;
	case 4:
		request(b, in.n, max_payload);
		break;
	default:
		reply(b, in.n);
		break;
	}
	free(b);
	return 0;
}
