// SPDX-License-Identifier: MIT
/*
 * netdiskd request path: the lib's real client (nd_handshake_client) logs
 * in to the in-process server, then the fuzzer's bytes become request
 * records (see fz_request_phase), so the record layer, nd_request_decode,
 * the range/read-only checks, the worker pool and the sender all run.
 *
 * Input: byte 0 picks the export (bit 0: read-only), the access asked for
 * (bit 1: ND_CF_READ_ONLY) and the max payload (bits 2-3); the rest is
 * chunks.
 */
#include <stdio.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t payloads[4] = { 0, ND_MIN_PAYLOAD, 12345,
					      ND_MAX_PAYLOAD };
	struct fz_in in = { data, size };
	uint8_t ctl = fz_u8(&in);
	struct nd_client_params p = {
		.psk = fz_key,
		.flags = ctl & 2 ? ND_CF_READ_ONLY : 0,
		.max_payload = payloads[(ctl >> 2) & 3],
	};
	struct nd_session_info info;
	struct nd_crypto c;
	struct fz_conn fc;
	enum nd_hs_result r;
	uint16_t status;

	fz_conn_start(&fc, fz_server(ctl & 1));
	r = nd_handshake_client(fc.fd, &p, &c, &info, &status);
	/* No other session exists: a correct client always gets in. */
	if (r != ND_HS_OK)
		fz_fail("handshake failed: result %d status %u (%s)", r, status,
			nd_status_str(status));
	if (info.size != FZ_EXPORT_SIZE ||
	    info.max_payload > FZ_SERVER_PAYLOAD ||
	    ((ctl & 3) != 0) != !!(info.flags & ND_EXP_READ_ONLY))
		fz_fail("unexpected session info: size %llu max_payload %u flags 0x%x",
			(unsigned long long)info.size, info.max_payload,
			info.flags);
	fz_request_phase(fc.fd, &c, &info, &in);
	nd_crypto_free(&c);
	fz_conn_end(&fc);
	return 0;
}
