// SPDX-License-Identifier: MIT
/*
 * libnetdisk's asynchronous client (lib/client.c) against a hostile server:
 * nd_client_open connects over loopback TCP to a fake server thread that
 * speaks the protocol with keys it derives itself, but takes the
 * ServerHello, SessionInfo and replies from the input. The client submits
 * a fixed set of requests; each must complete exactly once, and a READ
 * reported successful must hold the data the server sent for it.
 *
 * With bit 2 of hello_mode set, the client asks for the export list
 * instead (nd_client_list_exports): its ClientHello must offer
 * list-exports and its ClientFinish be a new read-only session's, and a
 * list it accepts must be one nd_list_parse accepts.
 *
 * Input:
 *   hello_mode  0: good, 1: status from input, 2: raw 104 bytes, 3: bad proof
 *               (+4: list request)
 *   [status[2] | raw[104]]
 *   info_mode   0: consistent fields from input, 1: 72 bytes as given,
 *               2: sealed body of any length, 3: raw bytes
 *   ... then reply chunks: kind 0: well-formed reply to request k with a
 *   status; 1: header from input (handle of request k) plus data; 2: any
 *   sealed body; 3: raw bytes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREQ	6

static const struct {
	uint8_t op;
	uint32_t len;
	uint64_t off;
} reqs[NREQ] = {
	{ ND_OP_READ, 4096, 0 },
	{ ND_OP_WRITE, 512, 512 },
	{ ND_OP_FLUSH, 0, 0 },
	{ ND_OP_READ, 512, 8192 },
	{ ND_OP_TRIM, 4096, 0 },
	{ ND_OP_READ, 1024, 1024 },
};

static int lfd = -1;
static uint16_t port;

struct fake {
	struct fz_in in;
	bool list;		/* the client asks for the export list */
	uint64_t handle[NREQ];
	uint8_t op[NREQ];
	uint32_t len[NREQ];
	int nreq;
	int fill[NREQ];		/* first good READ data byte, -1: none */
	bool unknown;		/* a free-form body was sent: data unknown */
};

struct done {
	int calls;
	int status;
};

static void listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &sl) < 0)
		fz_fail("listener: %s", strerror(errno));
	port = ntohs(a.sin_port);
}

static void seal_send(int fd, struct nd_dir *tx, uint8_t *body, size_t len)
{
	struct iovec iov = { .iov_base = body, .iov_len = len };

	(void)nd_send_record(fd, tx, &iov, 1);
}

static void send_raw_rest(int fd, struct fz_in *in)
{
	size_t got;
	const uint8_t *p = fz_take(in, in->n, &got);

	fz_write(fd, p, got);
}

/* The server side, driven by the input. */
static void serve(int fd, struct fake *f)
{
	struct fz_in *in = &f->in;
	uint8_t ch[ND_CLIENT_HELLO_MAX], sh_buf[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], eph[ND_SHARE_LEN];
	uint8_t rec[ND_REQ_HDR_LEN + 4096 + ND_TAG_LEN];
	uint8_t si[ND_SESSION_INFO_LEN];
	struct nd_server_hello sh = { .version = ND_VERSION };
	struct nd_client_finish cf;
	struct nd_session_info info;
	struct nd_crypto c;
	uint8_t mode;
	size_t ch_len, got;
	long n;

	if (nd_read_full(fd, ch, ND_CLIENT_HELLO_FIXED) < 0)
		return;
	ch_len = ND_CLIENT_HELLO_FIXED + (size_t)ch[48] + ch[49] +
		 ND_CLIENT_HELLO_TAIL;
	if (ch_len > sizeof(ch) - ND_EXT_MAX ||
	    nd_read_full(fd, ch + ND_CLIENT_HELLO_FIXED,
			 ch_len - ND_CLIENT_HELLO_FIXED) < 0 ||
	    nd_get16(ch + ch_len - 2) != (f->list ? 4 : 0) ||
	    nd_read_full(fd, ch + ch_len, nd_get16(ch + ch_len - 2)) < 0 ||
	    (f->list && !nd_ext_has(ch + ch_len, 4, ND_EXT_LIST_EXPORTS)))
		fz_fail("client sent a malformed hello");
	ch_len += nd_get16(ch + ch_len - 2);

	mode = fz_u8(in) & 3;
	if (mode == 2) {
		const uint8_t *p = fz_take(in, ND_SERVER_HELLO_LEN, &got);

		fz_write(fd, p, got);
		send_raw_rest(fd, in);
		return;
	}
	if (mode == 1)
		sh.status = fz_u16(in);
	if (nd_x25519_keygen(eph, sh.share) < 0)
		fz_fail("keygen failed");
	nd_server_hello_encode(sh_buf, &sh);
	nd_transcript(ch, ch_len, sh_buf, th);
	if (nd_key_exchange(eph, ch + ch_len - (f->list ? 4 : 0) -
			    ND_CLIENT_HELLO_TAIL, fz_key,
			    ch + 8, sh.random, th, okm) < 0)
		fz_fail("client share rejected");
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, sh.verify);
	if (mode == 3)
		sh.verify[0] ^= 1;
	nd_server_hello_encode(sh_buf, &sh);
	fz_write(fd, sh_buf, sizeof(sh_buf));
	if (sh.status != ND_OK || mode == 3)
		return;
	if (nd_crypto_init(&c, okm, false) < 0)
		fz_fail("nd_crypto_init failed");
	n = nd_recv_record(fd, &c.rx, rec, sizeof(rec));
	if (n != ND_CLIENT_FINISH_LEN)
		fz_fail("no client finish after a good server hello (%ld)", n);
	nd_client_finish_decode(rec, &cf);
	if (f->list && (cf.flags != ND_CF_READ_ONLY || cf.slot || cf.epoch != 1 ||
			cf.resume_writer || cf.resume_own ||
			memcmp(cf.token, (uint8_t[ND_TOKEN_LEN]){ 0 },
			       ND_TOKEN_LEN)))
		fz_fail("a list request's ClientFinish is not a new read-only session's");

	mode = fz_u8(in) & 3;
	if (mode == 0) {
		uint32_t want = cf.max_payload ? cf.max_payload :
			ND_DEFAULT_PAYLOAD;

		info = (struct nd_session_info){
			.flags = fz_u32(in),
			.size = (uint64_t)(fz_u32(in) % (1u << 20) + 1) * 512,
			.block_size = 512,
			.max_payload = want - want % ND_MIN_PAYLOAD,
		};
		info.write_epoch = info.flags & ND_EXP_READ_ONLY ? 0 : 1;
		nd_session_info_encode(si, &info);
		seal_send(fd, &c.tx, si, sizeof(si));
	} else if (mode == 1) {
		const uint8_t *p = fz_take(in, sizeof(si), &got);

		memset(si, 0, sizeof(si));
		memcpy(si, p, got);
		seal_send(fd, &c.tx, si, sizeof(si));
	} else {
		size_t len = fz_u16(in);
		const uint8_t *p = fz_take(in, len, &len);

		if (mode == 2) {
			uint8_t *b = malloc(len ? len : 1);

			if (!b)
				fz_fail("out of memory");
			memcpy(b, p, len);
			seal_send(fd, &c.tx, b, len);
			free(b);
		} else {
			/* Maybe half a record: waiting for requests could hang. */
			fz_write(fd, p, len);
			send_raw_rest(fd, in);
			nd_crypto_free(&c);
			return;
		}
	}

	/* The client sends all its requests at once (max_inflight >= NREQ). */
	while (f->nreq < NREQ) {
		n = nd_recv_record(fd, &c.rx, rec, sizeof(rec));
		if (n < ND_REQ_HDR_LEN)
			break;
		f->op[f->nreq] = rec[0];
		f->len[f->nreq] = nd_get32(rec + 4);
		f->handle[f->nreq] = nd_get64(rec + 8);
		f->nreq++;
	}

	while (f->nreq && in->n) {
		uint8_t kind = fz_u8(in) & 3, *b;
		int k = fz_u8(in) % f->nreq;
		struct nd_reply r = { .op = f->op[k], .handle = f->handle[k] };
		uint8_t fill = 0;
		size_t len;

		if (kind == 0 || kind == 1) {
			if (kind == 0) {
				r.status = fz_u8(in) % 16;
				fill = (uint8_t)(0x40 + k);
				if (r.op == ND_OP_READ && r.status == ND_OK)
					r.length = f->len[k];
			} else {
				uint8_t h[ND_REPLY_HDR_LEN] = { 0 };
				const uint8_t *p = fz_take(in, sizeof(h), &got);

				memcpy(h, p, got);
				r.op = h[0];
				r.status = nd_get16(h + 2);
				r.length = nd_get32(h + 4) % 8192;
				fill = h[1];
			}
			if (r.op == ND_OP_READ && r.status == ND_OK &&
			    f->op[k] == ND_OP_READ && r.length == f->len[k] &&
			    f->fill[k] < 0)
				f->fill[k] = fill;
			len = ND_REPLY_HDR_LEN + r.length;
			b = malloc(len);
			if (!b)
				fz_fail("out of memory");
			nd_reply_encode(b, &r);
			memset(b + ND_REPLY_HDR_LEN, fill, r.length);
			seal_send(fd, &c.tx, b, len);
			free(b);
		} else {
			const uint8_t *p;

			len = fz_u16(in);
			p = fz_take(in, len, &len);
			if (kind == 2) {
				b = malloc(len ? len : 1);
				if (!b)
					fz_fail("out of memory");
				memcpy(b, p, len);
				seal_send(fd, &c.tx, b, len);
				free(b);
				f->unknown = true;
			} else {
				fz_write(fd, p, len);
			}
		}
	}
	nd_crypto_free(&c);
}

static void *server_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	uint8_t buf[4096];
	int one = 1;

	if (fd < 0)
		fz_fail("accept: %s", strerror(errno));
	/* Many small writes: without this, Nagle costs ~40 ms per input. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	serve(fd, f);
	/* Done talking: the client sees EOF and fails what is left. */
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return NULL;
}

static void done_cb(void *arg, int status)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
}

/* A list the client accepted is one nd_list_parse accepts, as decoded. */
static void list_exports(const struct nd_url *url,
			 const struct nd_client_opts *o, char *err,
			 size_t errlen)
{
	static uint8_t b[ND_LIST_MAX_LEN];
	static struct nd_list_entry again[ND_LIST_MAX];
	struct nd_list_entry *e = NULL;
	size_t n = 0, m, len = ND_LIST_HDR_LEN;
	uint16_t status;
	int rc;

	rc = nd_client_list_exports(url, fz_key, o, &e, &n, &status, err,
				    errlen);
	if (rc) {
		if (e || n || !err[0] || strchr(err, '\n'))
			fz_fail("list refused (%d) with entries or without a one-line reason",
				rc);
		return;
	}
	nd_list_hdr_encode(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		len += nd_list_entry_encode(b + len, &e[i]);
	if (nd_list_parse(b, len, again, &m, err, errlen) || m != n)
		fz_fail("the client accepted a list nd_list_parse refuses: %s",
			err);
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One attempt: the fake server answers one connection per input. */
	struct nd_client_opts o = { .max_inflight = 8, .timeout_ms = 5000,
				    .hs_attempts = 1 };
	struct fake f = { .in = { data, size } };
	struct done d[NREQ] = { 0 };
	bool submitted[NREQ] = { 0 };
	uint8_t *buf[NREQ];
	struct nd_client *cl = NULL;
	struct nd_url url;
	char err[256] = "";
	pthread_t th;
	uint16_t status;
	int rc;

	f.list = size && (data[0] & 4);
	if (lfd < 0)
		listener();
	snprintf(url.host, sizeof(url.host), "127.0.0.1");
	url.port = port;
	snprintf(url.export_name, sizeof(url.export_name), "default");
	for (int i = 0; i < NREQ; i++)
		f.fill[i] = -1;
	if (pthread_create(&th, NULL, server_main, &f))
		fz_fail("cannot start fake server");

	if (f.list) {
		list_exports(&url, &o, err, sizeof(err));
		pthread_join(th, NULL);
		return 0;
	}
	rc = nd_client_open(&url, fz_key, &o, &cl, &status, err, sizeof(err));
	if (rc == 0) {
		for (int i = 0; i < NREQ; i++) {
			/* Exact sizes, so ASan sees a reply overrunning one. */
			buf[i] = malloc(reqs[i].len ? reqs[i].len : 1);
			if (!buf[i])
				fz_fail("out of memory");
			memset(buf[i], 0xee, reqs[i].len);
			submitted[i] = nd_client_submit(cl, reqs[i].op, 0,
				reqs[i].off, reqs[i].len,
				reqs[i].len ? buf[i] : NULL, done_cb,
				&d[i]) == 0;
		}
		nd_client_drain(cl);
		nd_client_close(cl);
		for (int i = 0; i < NREQ; i++) {
			if (d[i].calls != (submitted[i] ? 1 : 0))
				fz_fail("request %d completed %d times", i,
					d[i].calls);
			if (reqs[i].op == ND_OP_READ && d[i].calls &&
			    d[i].status == ND_OK && !f.unknown) {
				if (f.fill[i] < 0)
					fz_fail("READ %d succeeded without data",
						i);
				for (uint32_t j = 0; j < reqs[i].len; j++)
					if (buf[i][j] != f.fill[i])
						fz_fail("READ %d: wrong data at %u",
							i, j);
			}
			free(buf[i]);
		}
	} else if (!err[0] || strchr(err, '\n')) {
		fz_fail("nd_client_open failed (%d) without a one-line reason",
			rc);
	}
	pthread_join(th, NULL);
	return 0;
}
