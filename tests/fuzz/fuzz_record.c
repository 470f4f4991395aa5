// SPDX-License-Identifier: MIT
/*
 * Record layer: nd_recv_record on one end of a socketpair, fed by a writer
 * thread with a stream built from the input: records sealed with the peer's
 * key (checked to open to the same bytes), records with a forged tag or the
 * wrong key, and raw bytes. Both directions start next to a rekey boundary
 * (and, if the input says so, next to the end of the sequence space).
 *
 * Input: seq[8] cap[2] then chunks: kind (0 sealed, 1 forged tag, 2 wrong
 * key, 3 raw), len[2], bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct piece {
	uint8_t *body;		/* expected plaintext, for good records */
	size_t len;
	bool good;
};

struct writer {
	int fd;
	uint8_t *stream;
	size_t len;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	fz_write(w->fd, w->stream, w->len);
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

static void okm_fill(uint8_t okm[ND_OKM_LEN], uint8_t salt)
{
	for (int i = 0; i < ND_OKM_LEN; i++)
		okm[i] = (uint8_t)(i * 7 + salt);
}

static void append(uint8_t **s, size_t *len, size_t *cap, const void *p,
		   size_t n)
{
	if (!n)
		return;
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*s = realloc(*s, *cap);
		if (!*s)
			fz_fail("out of memory");
	}
	memcpy(*s + *len, p, n);
	*len += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint64_t v = fz_u64(&in);
	size_t cap = fz_u16(&in);
	uint8_t okm[ND_OKM_LEN], *buf, *stream = NULL;
	struct nd_crypto tx, rx, wrong;
	struct piece *pc = NULL;
	size_t npc = 0, slen = 0, scap = 0, i;
	struct writer w;
	pthread_t th;
	bool broken = false;
	uint64_t seq;
	int sv[2];

	/* Close below a rekey boundary; all-ones high bits near UINT64_MAX. */
	seq = (v & ~(uint64_t)0xffff) | (0xffff - (v & 7));
	okm_fill(okm, 1);
	if (nd_crypto_init(&tx, okm, true) < 0 ||
	    nd_crypto_init(&rx, okm, false) < 0)
		fz_fail("nd_crypto_init failed");
	okm_fill(okm, 2);
	if (nd_crypto_init(&wrong, okm, true) < 0)
		fz_fail("nd_crypto_init failed");
	tx.tx.seq = rx.rx.seq = wrong.tx.seq = seq;

	/* Build the whole stream first; the model stops at the first bad piece. */
	while (in.n) {
		uint8_t kind = fz_u8(&in) & 3;
		size_t len = fz_u16(&in), got;
		const uint8_t *p = fz_take(&in, len, &got);
		uint8_t hdr[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN], *body;
		struct iovec iov;

		if (kind == 3) {
			append(&stream, &slen, &scap, p, got);
			if (got)
				broken = true;
			continue;
		}
		body = malloc(got ? got : 1);
		if (!body)
			fz_fail("out of memory");
		memcpy(body, p, got);
		iov.iov_base = body;
		iov.iov_len = got;
		if (nd_seal(kind == 2 ? &wrong.tx : &tx.tx, hdr, &iov, 1,
			    tag) < 0) {
			/* Only the end of the sequence space stops sealing. */
			if ((kind == 2 ? wrong.tx.seq : tx.tx.seq) !=
			    UINT64_MAX)
				fz_fail("nd_seal failed at seq %llu",
					(unsigned long long)tx.tx.seq);
			free(body);
			break;
		}
		if (kind == 1)
			tag[got % ND_TAG_LEN] ^= 1;
		append(&stream, &slen, &scap, hdr, sizeof(hdr));
		append(&stream, &slen, &scap, body, got);
		append(&stream, &slen, &scap, tag, sizeof(tag));
		if (!broken) {
			pc = realloc(pc, (npc + 1) * sizeof(*pc));
			if (!pc)
				fz_fail("out of memory");
			pc[npc].body = body;
			memcpy(body, p, got);
			pc[npc].len = got;
			pc[npc].good = kind == 0;
			npc++;
			if (kind != 0)
				broken = true;
		} else {
			free(body);
		}
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fz_fail("socketpair: %s", strerror(errno));
	w = (struct writer){ .fd = sv[0], .stream = stream, .len = slen };
	if (pthread_create(&th, NULL, writer_main, &w))
		fz_fail("cannot start writer thread");

	buf = cap ? malloc(cap) : NULL;
	for (i = 0; i < npc; i++) {
		long n = nd_recv_record(sv[1], &rx.rx, buf, cap);
		size_t need = pc[i].len + ND_TAG_LEN;

		if (need > cap) {
			if (n != ND_RECV_TOO_BIG)
				fz_fail("record of %zu bytes, cap %zu: got %ld",
					need, cap, n);
			break;	/* the body is left unread: stream is done */
		}
		if (!pc[i].good) {
			if (n != ND_RECV_AUTH)
				fz_fail("forged record %zu: got %ld", i, n);
			break;
		}
		if (n != (long)pc[i].len || memcmp(buf, pc[i].body, pc[i].len))
			fz_fail("record %zu: got %ld, want %zu bytes", i, n,
				pc[i].len);
	}
	if (i == npc && !broken) {
		/* Everything read: the next call must see a clean EOF. */
		long n = nd_recv_record(sv[1], &rx.rx, buf, cap);

		if (n != ND_RECV_EOF)
			fz_fail("after the last record: got %ld", n);
	} else {
		/* Whatever follows must fail cleanly, never hang or crash. */
		for (int k = 0; k < 4; k++)
			if (nd_recv_record(sv[1], &rx.rx, buf, cap) < 0)
				break;
	}
	close(sv[1]);	/* unblocks the writer if we stopped early */
	pthread_join(th, NULL);
	close(sv[0]);

	free(buf);
	for (i = 0; i < npc; i++)
		free(pc[i].body);
	free(pc);
	free(stream);
	nd_crypto_free(&tx);
	nd_crypto_free(&rx);
	nd_crypto_free(&wrong);
	return 0;
}
