// SPDX-License-Identifier: MIT
/*
 * netdiskd request path: the lib's real client (nd_handshake_client) logs
 * in to the in-process server, then the fuzzer's bytes become request
 * records (see fz_request_phase), so the record layer, nd_request_decode,
 * the range/read-only checks, the worker pool and the sender all run.
 *
 * Input: byte 0 picks the export (bit 0: read-only), the access asked for
 * (bit 1: ND_CF_READ_ONLY), the max payload (bits 2-3) and whether a second
 * connection joins the session with its token (bit 4); the rest is chunks,
 * split in half between the two connections when there are two, which
 * then run at the same time.
 */
#include <pthread.h>
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct client {
	struct fz_conn fc;
	struct nd_crypto c;
	struct nd_session_info info;
	struct fz_in in;
};

static void login(struct client *cl, struct nd_server *s,
		  const struct nd_client_params *p, uint8_t ctl)
{
	enum nd_hs_result r;
	uint16_t status;

	fz_conn_start(&cl->fc, s);
	r = nd_handshake_client(cl->fc.fd, p, &cl->c, &cl->info, &status);
	/* No other session exists: a correct client always gets in. */
	if (r != ND_HS_OK)
		fz_fail("handshake %s failed: result %d status %u (%s)",
			p->token ? "joining" : "", r, status,
			nd_status_str(status));
	if (cl->info.size != FZ_EXPORT_SIZE ||
	    cl->info.max_payload > FZ_SERVER_PAYLOAD ||
	    ((ctl & 3) != 0) != !!(cl->info.flags & ND_EXP_READ_ONLY))
		fz_fail("unexpected session info: size %llu max_payload %u flags 0x%x",
			(unsigned long long)cl->info.size,
			cl->info.max_payload, cl->info.flags);
}

static void *phase_main(void *arg)
{
	struct client *cl = arg;

	fz_request_phase(cl->fc.fd, &cl->c, &cl->info, &cl->in);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t payloads[4] = { 0, ND_MIN_PAYLOAD, 5 * 4096,
					      ND_MAX_PAYLOAD };
	struct fz_in in = { data, size };
	uint8_t ctl = fz_u8(&in);
	struct nd_client_params p = {
		.psk = fz_key,
		.flags = ctl & 2 ? ND_CF_READ_ONLY : 0,
		.max_payload = payloads[(ctl >> 2) & 3],
	};
	struct nd_server *s = fz_server(ctl & 1);
	struct client a, b;
	pthread_t th;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	login(&a, s, &p, ctl);
	a.in = in;
	if (!(ctl & 0x10)) {
		phase_main(&a);
	} else {
		uint8_t token[ND_TOKEN_LEN];

		memcpy(token, a.info.token, sizeof(token));
		p.token = token;
		p.slot = 1;	/* a second queue, not a reconnect of the first */
		login(&b, s, &p, ctl);
		if (memcmp(b.info.token, token, sizeof(token)) ||
		    b.info.flags != a.info.flags)
			fz_fail("joined a different session");
		a.in.n = in.n / 2;
		b.in.p = in.p + a.in.n;
		b.in.n = in.n - a.in.n;
		if (pthread_create(&th, NULL, phase_main, &b))
			fz_fail("cannot start second client");
		phase_main(&a);
		pthread_join(th, NULL);
		nd_crypto_free(&b.c);
		fz_conn_end(&b.fc);
	}
	nd_crypto_free(&a.c);
	fz_conn_end(&a.fc);
	return 0;
}
