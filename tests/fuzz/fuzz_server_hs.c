// SPDX-License-Identifier: MIT
/*
 * netdiskd handshake: the fuzzer writes the ClientHello itself, byte for
 * byte, to the real server (its listener loop accepts and runs the
 * handshake). Unless told otherwise the harness puts its own ephemeral key
 * share into it. When the server answers with a ServerHello the harness
 * derives the keys with the fixed PSK (as a client would) and sends a
 * ClientFinish whose token, flags, max payload, slot and epoch come from
 * the input, with a right or wrong key proof; an accepted session then goes
 * on to the request phase.
 *
 * Input:
 *   ctl       bit 0: set the hello's timestamp to now + 4 * (int8)delta
 *             bit 1: keep the hello's key share (no keys can be derived)
 *   delta
 *   hello     50 bytes + the name lengths at offsets 48 and 49 + 34 bytes
 *             (share, ext_len) + ext_len bytes (at most 512 are taken)
 *   fin_ctl   0: right proof, 1: wrong proof, 2: raw finish record,
 *             3: no finish, the rest is raw bytes
 *   token[16] flags[4] max_payload[4] slot[2] epoch[4]
 *   chunks    as in fz_request_phase
 * An input too short for the hello is sent raw and then closed.
 */
#include <string.h>
#include <time.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sends the rest of the input as it is and waits for the server to close. */
static void finish_raw(struct fz_conn *fc, struct fz_in *in)
{
	size_t got;
	const uint8_t *p = fz_take(in, in->n, &got);

	fz_write(fc->fd, p, got);
	fz_drain(fc->fd);
	fz_conn_end(fc);
}

static int64_t llabs64(int64_t v)
{
	return v < 0 ? -v : v;
}

/*
 * An ExportList: only for a hello asking for it, only after the checks
 * that come first (clock, ClientFinish), and listing just "default".
 */
static void check_list(const uint8_t *p, size_t n, bool asked,
		       const struct nd_client_finish *cf, uint64_t ts)
{
	int64_t skew = (int64_t)ts - (int64_t)time(NULL);
	struct nd_list_entry e;
	size_t off = ND_LIST_HDR_LEN;

	if (!asked)
		fz_fail("export list without the list-exports extension");
	if (ts > INT64_MAX || llabs64(skew) > ND_CLOCK_SKEW_MAX + 1)
		fz_fail("export list for timestamp %llu",
			(unsigned long long)ts);
	if (nd_client_finish_invalid(cf))
		fz_fail("export list after an invalid client finish");
	if (nd_get32(p + 4) != 1 || nd_list_entry_decode(p, n, &off, &e) < 0 ||
	    off != n || e.name_len != 7 || memcmp(e.name, "default", 7) ||
	    e.size != FZ_EXPORT_SIZE)
		fz_fail("export list malformed or not the one export");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t ctl = fz_u8(&in);
	int8_t delta = (int8_t)fz_u8(&in);
	uint8_t ch[ND_CLIENT_HELLO_MAX], sh_buf[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], expect[ND_HASH_LEN];
	/* A SessionInfo, or the ExportList of the one export. */
	uint8_t si_buf[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + ND_NAME_MAX +
		       ND_TAG_LEN];
	struct nd_client_finish cf = { 0 };
	struct nd_server_hello sh;
	struct nd_session_info info;
	struct nd_crypto c;
	struct fz_conn fc;
	uint8_t eph[ND_SHARE_LEN] = { 0 };
	bool known, export_ok, good_proof, list;
	size_t ch_len, got, names, tail, ext;
	const uint8_t *p;
	uint8_t fin_ctl;
	uint64_t ts;
	long n;

	fz_conn_start(&fc, fz_server(0));
	names = in.n >= ND_CLIENT_HELLO_FIXED ? (size_t)in.p[48] + in.p[49] : 0;
	tail = ND_CLIENT_HELLO_FIXED + names;
	if (in.n < tail + ND_CLIENT_HELLO_TAIL ||
	    tail + ND_CLIENT_HELLO_TAIL > ND_CLIENT_HELLO_MAX - ND_EXT_MAX) {
		finish_raw(&fc, &in);
		return 0;
	}
	ext = nd_get16(in.p + tail + ND_SHARE_LEN);
	ch_len = tail + ND_CLIENT_HELLO_TAIL + (ext > ND_EXT_MAX ? 0 : ext);
	list = ext <= ND_EXT_MAX && in.n >= ch_len &&
	       nd_ext_has(in.p + tail + ND_CLIENT_HELLO_TAIL, ext,
			  ND_EXT_LIST_EXPORTS);
	if (in.n < ch_len) {
		finish_raw(&fc, &in);
		return 0;
	}
	p = fz_take(&in, ch_len, &got);
	memcpy(ch, p, ch_len);
	if (ctl & 1)
		nd_put64(ch + 40, (uint64_t)((int64_t)time(NULL) + 4 * delta));
	if (!(ctl & 2) && nd_x25519_keygen(eph, ch + tail) < 0)
		fz_fail("keygen failed");
	ts = nd_get64(ch + 40);
	/* Only the identity "default" has the key; others get a random one. */
	known = ch[48] == 7 && memcmp(ch + 50, "default", 7) == 0;
	/* Only the export "default" exists (said after authentication). */
	export_ok = ch[49] == 7 && memcmp(ch + 50 + ch[48], "default", 7) == 0;
	fz_write(fc.fd, ch, ch_len);

	/* A complete hello always gets a ServerHello or a close. */
	if (nd_read_full(fc.fd, sh_buf, sizeof(sh_buf)) < 0 ||
	    nd_server_hello_decode(sh_buf, &sh) < 0) {
		finish_raw(&fc, &in);
		return 0;
	}
	if (sh.version != ND_VERSION)
		fz_fail("server hello version %u", sh.version);
	if (sh.status != ND_OK) {
		static const uint8_t zero[ND_SERVER_HELLO_LEN - 8];

		if (sh.status != ND_ERR_VERSION || nd_get16(ch + 4) == ND_VERSION)
			fz_fail("server hello status %u for version %u",
				sh.status, nd_get16(ch + 4));
		if (memcmp(sh_buf + 8, zero, sizeof(zero)))
			fz_fail("version answer not zero after its status");
		finish_raw(&fc, &in);
		return 0;
	}
	if (nd_get16(ch + 4) != ND_VERSION)
		fz_fail("version %u answered OK", nd_get16(ch + 4));
	if (ctl & 2) {
		finish_raw(&fc, &in);
		return 0;
	}
	nd_transcript(ch, ch_len, sh_buf, th);
	if (nd_key_exchange(eph, sh.share, fz_key, ch + 8, sh.random, th,
			    okm) < 0)
		fz_fail("server share rejected");
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, expect);
	if (known != nd_equal(expect, sh.verify, ND_HASH_LEN))
		fz_fail("server key proof %s for identity %s",
			known ? "wrong" : "right", known ? "default" : "other");
	if (nd_crypto_init(&c, okm, true) < 0)
		fz_fail("nd_crypto_init failed");

	fin_ctl = fz_u8(&in) & 3;
	if (fin_ctl == 3) {
		nd_crypto_free(&c);
		finish_raw(&fc, &in);
		return 0;
	}
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, cf.verify);
	p = fz_take(&in, ND_TOKEN_LEN, &got);
	memcpy(cf.token, p, got);
	cf.flags = fz_u32(&in);
	cf.max_payload = fz_u32(&in);
	cf.slot = fz_u16(&in);
	cf.epoch = fz_u32(&in);
	if (fin_ctl == 1)
		cf.verify[cf.flags % ND_HASH_LEN] ^= 1;
	if (fin_ctl == 2) {
		/* A finish record with a length the server must refuse. */
		uint8_t raw[ND_RECORD_HDR_LEN + ND_CLIENT_FINISH_LEN +
			    ND_TAG_LEN] = { 0 };

		nd_put32(raw, cf.max_payload);
		nd_client_finish_encode(raw + ND_RECORD_HDR_LEN, &cf);
		fz_write(fc.fd, raw, sizeof(raw));
		nd_crypto_free(&c);
		finish_raw(&fc, &in);
		return 0;
	} else {
		uint8_t buf[ND_CLIENT_FINISH_LEN];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };

		nd_client_finish_encode(buf, &cf);
		if (nd_send_record(fc.fd, &c.tx, &iov, 1) < 0)
			fz_fail("cannot send client finish");
	}

	/* A right proof always gets a SessionInfo; a wrong one a close. */
	good_proof = known && fin_ctl == 0;
	n = nd_recv_record(fc.fd, &c.rx, si_buf, sizeof(si_buf));
	if (!good_proof) {
		if (n >= 0)
			fz_fail("session info after a bad key proof");
		nd_crypto_free(&c);
		finish_raw(&fc, &in);
		return 0;
	}
	if (n >= 0 && nd_list_is(si_buf, (size_t)n)) {
		check_list(si_buf, (size_t)n, list, &cf, ts);
		nd_crypto_free(&c);
		finish_raw(&fc, &in);
		return 0;
	}
	if (n != ND_SESSION_INFO_LEN)
		fz_fail("no session info after a good key proof (%ld)", n);
	if (nd_session_info_decode(si_buf, &info) < 0)
		fz_fail("inconsistent session info");
	if (list && info.status == ND_OK)
		fz_fail("a session instead of the export list");
	if (info.status == ND_ERR_INVALID && !nd_client_finish_invalid(&cf))
		fz_fail("valid client finish answered invalid");
	if (info.status == ND_OK) {
		uint32_t want = cf.max_payload ? cf.max_payload :
			ND_DEFAULT_PAYLOAD;
		int64_t skew = (int64_t)ts - (int64_t)time(NULL);

		/* A second of slack: the server read the clock earlier. */
		if (ts > INT64_MAX || llabs64(skew) > ND_CLOCK_SKEW_MAX + 1)
			fz_fail("timestamp %llu accepted",
				(unsigned long long)ts);
		if (info.max_payload > want)
			fz_fail("max payload raised from %u to %u", want,
				info.max_payload);
		for (int i = 0; i < ND_TOKEN_LEN; i++)
			if (cf.token[i])
				fz_fail("unknown session token accepted");
		if (nd_client_finish_invalid(&cf))
			fz_fail("invalid client finish accepted (%s)",
				nd_client_finish_invalid(&cf));
		if (!export_ok)
			fz_fail("session on an unknown export");
		if ((cf.flags & ND_CF_READ_ONLY) &&
		    !(info.flags & ND_EXP_READ_ONLY))
			fz_fail("read-only request granted write access");
		fz_request_phase(fc.fd, &c, &info, &in);
		nd_crypto_free(&c);
		fz_drain(fc.fd);
		fz_conn_end(&fc);
		return 0;
	}
	nd_crypto_free(&c);
	finish_raw(&fc, &in);
	return 0;
}
