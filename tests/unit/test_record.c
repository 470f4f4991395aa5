// SPDX-License-Identifier: MIT
/*
 * Record layer: vectors, round trips over a socketpair, and a hostile peer
 * (random bytes, truncation, bad lengths, bit flips, replay, reordering):
 * every bad record must be an error, never a crash or a hang.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "netdisk_vectors.h"

#define CAP	(ND_REQ_HDR_LEN + 65536 + ND_TAG_LEN)

struct pair {
	struct nd_crypto cli, srv;
	int fd[2];		/* fd[0]: writer side, fd[1]: reader side */
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));

	if (!p || socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) ||
	    nd_crypto_init(&p->cli, nd_vec_okm, true) ||
	    nd_crypto_init(&p->srv, nd_vec_okm, false))
		return -1;
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	nd_crypto_free(&p->cli);
	nd_crypto_free(&p->srv);
	if (p->fd[0] >= 0)
		close(p->fd[0]);
	if (p->fd[1] >= 0)
		close(p->fd[1]);
	free(p);
	return 0;
}

/* Seals body (copied) with d into out: header, ciphertext, tag. */
static size_t seal_to(struct nd_dir *d, const void *body, size_t len,
		      uint8_t *out)
{
	struct iovec v = { .iov_base = out + ND_RECORD_HDR_LEN, .iov_len = len };

	memcpy(out + ND_RECORD_HDR_LEN, body, len);
	assert_int_equal(nd_seal(d, out, &v, 1, out + ND_RECORD_HDR_LEN + len),
			 0);
	return ND_RECORD_HDR_LEN + len + ND_TAG_LEN;
}

static void close_writer(struct pair *p)
{
	close(p->fd[0]);
	p->fd[0] = -1;
}

static void test_vector_c2s(void **state)
{
	struct pair *p = *state;
	uint8_t rec[128], body[128];
	struct nd_client_finish cf;
	size_t len;

	assert_memory_equal(p->cli.tx.key, nd_vec_c2s_key0, ND_KEY_LEN);
	assert_memory_equal(p->srv.rx.key, nd_vec_c2s_key0, ND_KEY_LEN);
	len = seal_to(&p->cli.tx, nd_vec_c2s_plain, sizeof(nd_vec_c2s_plain),
		      rec);
	assert_int_equal(len, sizeof(nd_vec_c2s_record));
	assert_memory_equal(rec, nd_vec_c2s_record, len);
	assert_int_equal(p->cli.tx.seq, 1);

	memcpy(body, nd_vec_c2s_record + 4, sizeof(nd_vec_c2s_plain));
	assert_int_equal(nd_open(&p->srv.rx, nd_vec_c2s_record, body,
				 sizeof(nd_vec_c2s_plain),
				 nd_vec_c2s_record + 4 +
				 sizeof(nd_vec_c2s_plain)), 0);
	assert_memory_equal(body, nd_vec_c2s_plain, sizeof(nd_vec_c2s_plain));
	/* It is a ClientFinish: every field in its place. */
	assert_int_equal(sizeof(nd_vec_c2s_plain), ND_CLIENT_FINISH_LEN);
	nd_client_finish_decode(body, &cf);
	assert_memory_equal(cf.verify, nd_vec_client_verify, ND_HASH_LEN);
	assert_int_equal(cf.flags, 0);
	assert_int_equal(cf.max_payload, 1u << 20);
	assert_int_equal(cf.slot, 3);
	assert_int_equal(cf.reserved, 0);
	assert_int_equal(cf.epoch, 7);
	assert_int_equal(cf.resume_writer, 5);
	assert_int_equal(cf.resume_own, 6);
	assert_null(nd_client_finish_invalid(&cf));
	nd_client_finish_encode(rec, &cf);
	assert_memory_equal(rec, nd_vec_c2s_plain, ND_CLIENT_FINISH_LEN);
}

/*
 * Records 0..4095 are sealed under key_0, 4096.. under key_1: the vector
 * record 4096 comes out of a direction that sealed 4096 records before it,
 * with the key changing exactly between 4095 and 4096.
 */
static void test_vector_s2c_generation1(void **state)
{
	struct pair *p = *state;
	uint8_t okm[ND_OKM_LEN], rec[64], body[64];
	struct nd_crypto c;
	uint64_t i;
	size_t len;

	assert_memory_equal(p->srv.tx.key, nd_vec_s2c_key0, ND_KEY_LEN);
	for (i = 0; i < ND_REKEY_RECORDS; i++) {
		assert_memory_equal(p->srv.tx.key, nd_vec_s2c_key0, ND_KEY_LEN);
		assert_memory_equal(p->srv.tx.traffic,
				    nd_vec_okm + ND_OKM_S2C_TRAFFIC,
				    ND_KEY_LEN);
		assert_int_equal(nd_seal(&p->srv.tx, rec, NULL, 0, rec + 4), 0);
		/* The receiver keeps in step, record by record. */
		assert_int_equal(nd_open(&p->cli.rx, rec, NULL, 0, rec + 4), 0);
	}
	assert_int_equal(p->srv.tx.seq, ND_VEC_S2C_SEQ);
	assert_memory_equal(p->srv.tx.key, nd_vec_s2c_key1, ND_KEY_LEN);
	assert_memory_equal(p->srv.tx.traffic, nd_vec_s2c_traffic1, ND_KEY_LEN);
	assert_memory_equal(p->cli.rx.key, nd_vec_s2c_key1, ND_KEY_LEN);
	len = seal_to(&p->srv.tx, nd_vec_s2c_plain, sizeof(nd_vec_s2c_plain),
		      rec);
	assert_int_equal(len, sizeof(nd_vec_s2c_record));
	assert_memory_equal(rec, nd_vec_s2c_record, len);
	memcpy(body, nd_vec_s2c_record + 4, sizeof(nd_vec_s2c_plain));
	assert_int_equal(nd_open(&p->cli.rx, nd_vec_s2c_record, body,
				 sizeof(nd_vec_s2c_plain),
				 nd_vec_s2c_record + 4 +
				 sizeof(nd_vec_s2c_plain)), 0);
	assert_memory_equal(body, nd_vec_s2c_plain, sizeof(nd_vec_s2c_plain));

	/* A receiver started from traffic_1 at record 4096 opens it. */
	memcpy(okm, nd_vec_okm, sizeof(okm));
	memcpy(okm + ND_OKM_S2C_TRAFFIC, nd_vec_s2c_traffic1, ND_KEY_LEN);
	assert_int_equal(nd_crypto_init(&c, okm, true), 0);
	c.rx.seq = ND_VEC_S2C_SEQ;
	memcpy(body, nd_vec_s2c_record + 4, sizeof(nd_vec_s2c_plain));
	assert_int_equal(nd_open(&c.rx, nd_vec_s2c_record, body,
				 sizeof(nd_vec_s2c_plain),
				 nd_vec_s2c_record + 4 +
				 sizeof(nd_vec_s2c_plain)), 0);
	assert_memory_equal(body, nd_vec_s2c_plain, sizeof(nd_vec_s2c_plain));
	nd_crypto_free(&c);

	/* One still on key_0 at record 4096 must fail. */
	assert_int_equal(nd_crypto_init(&c, nd_vec_okm, true), 0);
	c.rx.seq = ND_VEC_S2C_SEQ;
	memcpy(body, nd_vec_s2c_record + 4, sizeof(nd_vec_s2c_plain));
	assert_int_equal(nd_open(&c.rx, nd_vec_s2c_record, body,
				 sizeof(nd_vec_s2c_plain),
				 nd_vec_s2c_record + 4 +
				 sizeof(nd_vec_s2c_plain)), -1);
	nd_crypto_free(&c);
}

struct sender {
	int fd;
	struct nd_dir *d;
	uint8_t *buf;
	size_t len;
	int ret;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	/* Split over three iovs, one of them empty. */
	size_t a = s->len / 3;
	struct iovec v[3] = {
		{ .iov_base = s->buf, .iov_len = a },
		{ .iov_base = s->buf + a, .iov_len = 0 },
		{ .iov_base = s->buf + a, .iov_len = s->len - a },
	};

	s->ret = nd_send_record(s->fd, s->d, v, 3);
	return NULL;
}

static void test_roundtrip_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 4095, 4096 + 24,
					ND_DEFAULT_PAYLOAD + ND_REQ_HDR_LEN };
	struct pair *p = *state;
	size_t cap = ND_DEFAULT_PAYLOAD + ND_REQ_HDR_LEN + ND_TAG_LEN;
	uint8_t *src = malloc(cap), *buf = malloc(cap), *orig = malloc(cap);
	size_t i, j;

	assert_non_null(src);
	assert_non_null(buf);
	assert_non_null(orig);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct sender s = { .fd = p->fd[0], .d = &p->cli.tx,
				    .buf = src, .len = sizes[i] };
		pthread_t t;
		long n;

		for (j = 0; j < sizes[i]; j++)
			orig[j] = (uint8_t)(j * 7 + i);
		memcpy(src, orig, sizes[i]);
		assert_int_equal(pthread_create(&t, NULL, send_thread, &s), 0);
		n = nd_recv_record(p->fd[1], &p->srv.rx, buf, cap);
		pthread_join(t, NULL);
		assert_int_equal(s.ret, 0);
		assert_int_equal(n, (long)sizes[i]);
		assert_memory_equal(buf, orig, sizes[i]);
		/* Sealing really encrypted the caller's buffer in place. */
		if (sizes[i] >= 16)
			assert_memory_not_equal(src, orig, sizes[i]);
	}
	assert_int_equal(p->srv.rx.seq, i);
	free(src);
	free(buf);
	free(orig);
}

static void test_random_bytes(void **state)
{
	struct pair *p = *state;
	uint8_t junk[512], *buf = malloc(CAP);
	int trial;

	assert_non_null(buf);
	for (trial = 0; trial < 200; trial++) {
		int fd[2];
		long n;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
		assert_int_equal(nd_random(junk, sizeof(junk)), 0);
		/* Half the trials get a plausible length so the body is read. */
		if (trial & 1)
			nd_put32(junk, 16 + (nd_get32(junk) % 400));
		assert_int_equal(nd_write_full(fd[0], junk,
					       4 + (size_t)trial * 2), 0);
		close(fd[0]);
		do {
			n = nd_recv_record(fd[1], &p->srv.rx, buf, CAP);
			assert_true(n < 0);
		} while (n == ND_RECV_AUTH);
		assert_int_equal(p->srv.rx.seq, 0);
		close(fd[1]);
	}
	free(buf);
}

static void test_truncated(void **state)
{
	struct pair *p = *state;
	uint8_t rec[128], buf[128];
	size_t len, k;

	len = seal_to(&p->cli.tx, nd_vec_c2s_plain, sizeof(nd_vec_c2s_plain),
		      rec);
	for (k = 0; k < len; k++) {
		int fd[2];
		long n;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
		assert_int_equal(nd_write_full(fd[0], rec, k), 0);
		close(fd[0]);
		n = nd_recv_record(fd[1], &p->srv.rx, buf, sizeof(buf));
		assert_int_equal(n, k == 0 ? ND_RECV_EOF : ND_RECV_IO);
		close(fd[1]);
	}
	/* The whole record still opens: failures did not advance seq. */
	assert_int_equal(nd_write_full(p->fd[0], rec, len), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, sizeof(buf)),
			 sizeof(nd_vec_c2s_plain));
}

/* After a rejected header, the next bytes on the socket are still unread. */
static void expect_too_big(struct pair *p, uint32_t len, size_t cap)
{
	uint8_t msg[4 + 8], buf[64], rest[8];
	long n;

	nd_put32(msg, len);
	memcpy(msg + 4, "NOTREAD!", 8);
	assert_int_equal(nd_write_full(p->fd[0], msg, sizeof(msg)), 0);
	n = nd_recv_record(p->fd[1], &p->srv.rx, buf, cap);
	assert_int_equal(n, ND_RECV_TOO_BIG);
	assert_int_equal(nd_read_full(p->fd[1], rest, sizeof(rest)), 0);
	assert_memory_equal(rest, "NOTREAD!", 8);
}

static void test_bad_lengths(void **state)
{
	struct pair *p = *state;
	uint8_t rec[128], buf[128];
	uint32_t l;
	size_t len;

	for (l = 0; l < ND_TAG_LEN; l++)
		expect_too_big(p, l, sizeof(buf));
	expect_too_big(p, 41, 40);
	expect_too_big(p, sizeof(buf) + 1, sizeof(buf));
	expect_too_big(p, ND_RECORD_MAX + 1, sizeof(buf));
	expect_too_big(p, 0xffffffffu, sizeof(buf));
	expect_too_big(p, 0x80000000u, 0x7fffffffu);
	expect_too_big(p, 20, 0);
	/* Exactly cap is fine. */
	len = seal_to(&p->cli.tx, nd_vec_c2s_plain, sizeof(nd_vec_c2s_plain),
		      rec);
	assert_int_equal(nd_write_full(p->fd[0], rec, len), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, len - 4),
			 sizeof(nd_vec_c2s_plain));
}

static void test_bit_flips(void **state)
{
	struct pair *p = *state;
	uint8_t rec[128], bad[128], buf[256];
	size_t len, bit;

	len = seal_to(&p->cli.tx, nd_vec_c2s_plain, sizeof(nd_vec_c2s_plain),
		      rec);
	for (bit = 0; bit < len * 8; bit++) {
		int fd[2];
		long n;

		memcpy(bad, rec, len);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
		assert_int_equal(nd_write_full(fd[0], bad, len), 0);
		close(fd[0]);
		n = nd_recv_record(fd[1], &p->srv.rx, buf, sizeof(buf));
		assert_true(n < 0);
		if (bit >= 32)
			assert_int_equal(n, ND_RECV_AUTH);
		/* Rejected plaintext is not left in the buffer. */
		if (n == ND_RECV_AUTH)
			assert_memory_not_equal(buf, nd_vec_c2s_plain,
						sizeof(nd_vec_c2s_plain));
		close(fd[1]);
	}
	assert_int_equal(p->srv.rx.seq, 0);
}

static void test_replay_reorder_drop(void **state)
{
	struct pair *p = *state;
	uint8_t r0[64], r1[64], r2[64], buf[64];
	size_t l0, l1, l2;
	struct nd_crypto fresh;

	l0 = seal_to(&p->cli.tx, "zero", 4, r0);
	l1 = seal_to(&p->cli.tx, "one!", 4, r1);
	l2 = seal_to(&p->cli.tx, "two!", 4, r2);

	/* Replay: record 0 twice. */
	assert_int_equal(nd_write_full(p->fd[0], r0, l0), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, 64), 4);
	assert_memory_equal(buf, "zero", 4);
	assert_int_equal(nd_write_full(p->fd[0], r0, l0), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, 64),
			 ND_RECV_AUTH);

	/* Drop: record 1 skipped, record 2 sent. */
	assert_int_equal(nd_write_full(p->fd[0], r2, l2), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, 64),
			 ND_RECV_AUTH);

	/* Reorder on a fresh receiver: 1 before 0. */
	assert_int_equal(nd_crypto_init(&fresh, nd_vec_okm, false), 0);
	assert_int_equal(nd_write_full(p->fd[0], r1, l1), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &fresh.rx, buf, 64),
			 ND_RECV_AUTH);
	/* Reflection: a client record fed back to the client. */
	assert_int_equal(nd_write_full(p->fd[0], r0, l0), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->cli.rx, buf, 64),
			 ND_RECV_AUTH);
	nd_crypto_free(&fresh);
}

static void test_wrong_use(void **state)
{
	struct pair *p = *state;
	uint8_t rec[64], hdr[4], tag[16];
	struct nd_crypto zero;

	/* Sealing with a receive direction or opening with a send one. */
	assert_int_equal(nd_seal(&p->cli.rx, hdr, NULL, 0, tag), -1);
	seal_to(&p->cli.tx, "x", 1, rec);
	assert_int_equal(nd_open(&p->cli.tx, rec, rec + 4, 1, rec + 5), -1);
	/* Header length inconsistent with body_len. */
	assert_int_equal(nd_open(&p->srv.rx, rec, rec + 4, 2, rec + 5), -1);
	/* Zeroed or freed state fails cleanly; free is idempotent. */
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(nd_seal(&zero.tx, hdr, NULL, 0, tag), -1);
	assert_int_equal(nd_open(&zero.rx, rec, rec + 4, 1, rec + 5), -1);
	nd_crypto_free(&zero);
	nd_crypto_free(&zero);
	nd_crypto_free(NULL);
	assert_int_equal(nd_seal(&p->cli.tx, hdr, NULL, -1, tag), -1);
	assert_int_equal(nd_seal(NULL, hdr, NULL, 0, tag), -1);
	assert_int_equal(nd_seal(&p->cli.tx, NULL, NULL, 0, tag), -1);
	assert_int_equal(nd_open(NULL, rec, rec + 4, 1, rec + 5), -1);
	assert_int_equal(nd_open(&p->srv.rx, rec, NULL, 1, rec + 5), -1);
	assert_int_equal(nd_open(&p->srv.rx, rec, rec + 4, 1, NULL), -1);
	/* None of the refusals consumed a sequence number. */
	assert_int_equal(p->srv.rx.seq, 0);
	assert_int_equal(nd_open(&p->srv.rx, rec, rec + 4, 1, rec + 5), 0);
	assert_int_equal(rec[4], 'x');
	/* Sequence space exhausted: refuse rather than reuse a nonce. */
	p->cli.tx.seq = UINT64_MAX;
	assert_int_equal(nd_seal(&p->cli.tx, hdr, NULL, 0, tag), -1);
}

static void on_signal(int sig)
{
	(void)sig;
}

struct slow_writer {
	int fd;
	pthread_t reader;
	const uint8_t *rec;
	size_t len;
};

/* Writes one byte at a time and interrupts the blocked reader between. */
static void *slow_write_thread(void *arg)
{
	struct slow_writer *w = arg;
	size_t i;

	for (i = 0; i < w->len; i++) {
		usleep(1000);
		pthread_kill(w->reader, SIGUSR1);
		usleep(1000);
		if (nd_write_full(w->fd, w->rec + i, 1))
			break;
	}
	return NULL;
}

static void test_eintr(void **state)
{
	struct pair *p = *state;
	struct sigaction sa, old;
	struct slow_writer w;
	uint8_t rec[64], buf[64];
	pthread_t t;
	size_t len;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: read gets EINTR */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	len = seal_to(&p->cli.tx, "interrupted", 11, rec);
	w.fd = p->fd[0];
	w.reader = pthread_self();
	w.rec = rec;
	w.len = len;
	assert_int_equal(pthread_create(&t, NULL, slow_write_thread, &w), 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, buf, sizeof(buf)),
			 11);
	pthread_join(t, NULL);
	assert_memory_equal(buf, "interrupted", 11);
	sigaction(SIGUSR1, &old, NULL);
}

static void test_io_helpers(void **state)
{
	struct pair *p = *state;
	uint8_t a[3] = { 1, 2, 3 }, b[2] = { 4, 5 }, got[5];
	struct iovec v[3] = {
		{ .iov_base = a, .iov_len = 3 },
		{ .iov_base = NULL, .iov_len = 0 },
		{ .iov_base = b, .iov_len = 2 },
	};
	int pipefd[2];

	assert_int_equal(nd_writev_full(p->fd[0], v, 3), 0);
	assert_int_equal(nd_read_full(p->fd[1], got, 5), 0);
	assert_memory_equal(got, "\1\2\3\4\5", 5);
	/* EOF: -1 with errno 0. */
	close_writer(p);
	errno = EBADF;
	assert_int_equal(nd_read_full(p->fd[1], got, 1), -1);
	assert_int_equal(errno, 0);
	assert_int_equal(nd_recv_record(p->fd[1], &p->srv.rx, got, 5),
			 ND_RECV_EOF);
	/* Writing to a closed peer is an error, not SIGPIPE. */
	assert_int_equal(nd_write_full(p->fd[1], a, 3), -1);
	assert_int_equal(errno, EPIPE);
	/* Non-sockets work too. */
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(nd_write_full(pipefd[1], a, 3), 0);
	assert_int_equal(nd_read_full(pipefd[0], got, 3), 0);
	assert_memory_equal(got, a, 3);
	close(pipefd[0]);
	close(pipefd[1]);
	/* Bad descriptor. */
	assert_int_equal(nd_recv_record(-1, &p->srv.rx, got, 5), ND_RECV_IO);
	assert_int_equal(nd_write_full(-1, a, 3), -1);
}

/*
 * Piecewise records (nd_seal_begin/nd_crypt_update/nd_seal_final and the
 * open side) are the same records as nd_seal/nd_open, for any split of the
 * body, in place or not; a flipped bit fails nd_open_final.
 */
static void test_incremental(void **state)
{
	struct pair *p = *state;
	static const size_t lens[] = { 0, 1, 15, 16, 17, 4096, 70001 };
	static const size_t steps[] = { 1, 7, 16, 4096, 1 << 20 };
	size_t li, si;

	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		for (si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
			size_t len = lens[li], step = steps[si], off;
			uint8_t *plain = malloc(len + 1), *ct = malloc(len + 1);
			uint8_t *out = malloc(len + 1);
			uint8_t hdr[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN];
			struct iovec v = { .iov_base = ct, .iov_len = len };

			assert_non_null(plain);
			assert_non_null(ct);
			assert_non_null(out);
			for (off = 0; off < len; off++)
				plain[off] = (uint8_t)(off * 31 + li);
			/* Piecewise seal (out of place), whole open. */
			assert_int_equal(nd_seal_begin(&p->cli.tx, hdr, len), 0);
			for (off = 0; off < len; off += step) {
				size_t k = len - off < step ? len - off : step;

				assert_int_equal(nd_crypt_update(&p->cli.tx,
						 plain + off, ct + off, k), 0);
			}
			assert_int_equal(nd_seal_final(&p->cli.tx, tag), 0);
			assert_int_equal(nd_get32(hdr), len + ND_TAG_LEN);
			memcpy(out, ct, len);
			assert_int_equal(nd_open(&p->srv.rx, hdr, out, len, tag), 0);
			if (len)
				assert_memory_equal(out, plain, len);
			/* Whole seal, piecewise open (in place). */
			memcpy(ct, plain, len);
			assert_int_equal(nd_seal(&p->cli.tx, hdr, &v, 1, tag), 0);
			assert_int_equal(nd_open_begin(&p->srv.rx, hdr), 0);
			for (off = 0; off < len; off += step) {
				size_t k = len - off < step ? len - off : step;

				assert_int_equal(nd_crypt_update(&p->srv.rx,
						 ct + off, ct + off, k), 0);
			}
			assert_int_equal(nd_open_final(&p->srv.rx, tag), 0);
			if (len)
				assert_memory_equal(ct, plain, len);
			free(plain);
			free(ct);
			free(out);
		}
	}

	/* A flipped tag bit: refused; the receiver is then out of step. */
	{
		uint8_t hdr[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN], b[32] = { 1 };

		assert_int_equal(nd_seal_begin(&p->cli.tx, hdr, sizeof(b)), 0);
		assert_int_equal(nd_crypt_update(&p->cli.tx, b, b, sizeof(b)), 0);
		assert_int_equal(nd_seal_final(&p->cli.tx, tag), 0);
		tag[3] ^= 0x10;
		assert_int_equal(nd_open_begin(&p->srv.rx, hdr), 0);
		assert_int_equal(nd_crypt_update(&p->srv.rx, b, b, sizeof(b)), 0);
		assert_int_equal(nd_open_final(&p->srv.rx, tag), -1);
	}
	/* Wrong direction and a length below the tag: refused up front. */
	{
		uint8_t hdr[ND_RECORD_HDR_LEN] = { 0, 0, 0, 3 };
		uint8_t ok[ND_RECORD_HDR_LEN] = { 0, 0, 0, 32 };

		assert_int_equal(nd_open_begin(&p->srv.rx, hdr), -1);
		assert_int_equal(nd_open_begin(&p->cli.tx, ok), -1);
		assert_int_equal(nd_seal_begin(&p->srv.rx, hdr, 4), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vector_c2s, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vector_s2c_generation1, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_random_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lengths, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_reorder_drop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wrong_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eintr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_helpers, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
