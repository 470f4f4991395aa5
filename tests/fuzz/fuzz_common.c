// SPDX-License-Identifier: MIT
/*
 * In-process netdiskd for the server harnesses. The server is created once
 * (worker pool and all) with nd_server_create and runs nd_server_run on a
 * thread of its own; each input then connects to it over loopback TCP, so
 * accept, the handshake loop, record framing, request decoding, dispatch,
 * workers and sender are all the real code.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../server/internal.h"
#include "../../server/log.h"
#include "fuzz_common.h"

const uint8_t fz_key[ND_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

/* Largest amount of request data one input may generate: keeps runs fast. */
#define FZ_MAX_STREAM	(8u << 20)

void fz_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	fputs("fuzz oracle failed: ", stderr);
	fwrite(buf, 1, (size_t)n, stderr);
	fflush(stderr);
	abort();
}

const char *fz_tmpdir(void)
{
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* ---- input reader: missing bytes read as zero ---- */

uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

uint16_t fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return (uint16_t)(v << 8 | fz_u8(in));
}

uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = fz_u16(in);

	return v << 16 | fz_u16(in);
}

uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = fz_u32(in);

	return v << 32 | fz_u32(in);
}

const uint8_t *fz_take(struct fz_in *in, size_t want, size_t *got)
{
	const uint8_t *p = in->p;

	*got = want < in->n ? want : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

/* ---- the in-process servers ---- */

static struct nd_server *servers[2];
/* The write-epoch state directory of the read-write server. */
static char state_dir[64];
static char state_file[128];

/* Nothing is left behind: the state file and its directory go at exit. */
static void state_cleanup(void)
{
	if (state_file[0])
		unlink(state_file);
	if (state_dir[0])
		rmdir(state_dir);
}

static pthread_t server_threads[2];
/* Client connections of the current input not yet ended. */
static int open_conns;

static void *server_main(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

/*
 * One export "default" and one identity "default" with fz_key; every other
 * identity is unknown (handshakes under a random key).
 */
static void config_make(struct nd_config *cfg, const char *path,
			bool read_only)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen[0] = strdup("127.0.0.1");
	cfg->exports = calloc(1, sizeof(*cfg->exports));
	cfg->ids = calloc(1, sizeof(*cfg->ids));
	if (!cfg->listen[0] || !cfg->exports || !cfg->ids)
		fz_fail("out of memory");
	cfg->nlisten = 1;
	cfg->workers = 2;
	cfg->grace_s = 0;
	cfg->max_payload = FZ_SERVER_PAYLOAD;
	cfg->log_level = nd_log_level;
	cfg->nexports = 1;
	snprintf(cfg->exports[0].name, sizeof(cfg->exports[0].name),
		 "default");
	snprintf(cfg->exports[0].path, sizeof(cfg->exports[0].path), "%s",
		 path);
	cfg->exports[0].read_only = read_only;
	cfg->nids = 1;
	snprintf(cfg->ids[0].name, sizeof(cfg->ids[0].name), "default");
	memcpy(cfg->ids[0].key, fz_key, ND_KEY_LEN);
	if (!read_only)
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s",
			 state_dir);
}

static struct nd_server *server_create(bool read_only)
{
	const struct nd_server_config opts = {
		.handshake_timeout_ms = 5000,
	};
	char path[64], err[256];
	struct nd_config cfg;
	struct nd_server *s;
	int fd;

	snprintf(path, sizeof(path), "%s/netdisk-fuzz-XXXXXX", fz_tmpdir());
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, FZ_EXPORT_SIZE) < 0)
		fz_fail("cannot create export file: %s", strerror(errno));
	close(fd);
	if (!read_only) {
		/* Named by pid: run.sh removes those of dead harnesses. */
		snprintf(state_dir, sizeof(state_dir),
			 "%s/netdisk-fuzz-state-%d", fz_tmpdir(), (int)getpid());
		if (mkdir(state_dir, 0700) < 0)
			fz_fail("cannot create state dir %s: %s", state_dir,
				strerror(errno));
		atexit(state_cleanup);
	}
	config_make(&cfg, path, read_only);
	s = nd_server_create(&opts, &cfg, err, sizeof(err));
	/* The export file is unlinked at once: nothing is left behind. */
	unlink(path);
	if (!s)
		fz_fail("nd_server_create: %s", err);
	if (!read_only) {
		snprintf(state_file, sizeof(state_file), "%s/", state_dir);
		for (int i = 0; i < ND_EXPORT_ID_LEN; i++)
			snprintf(state_file + strlen(state_file), 3, "%02x",
				 s->exps[0]->e.id[i]);
		strcat(state_file, ".state");
	}
	return s;
}

struct nd_server *fz_server(int read_only)
{
	int i = read_only ? 1 : 0;

	if (!servers[i]) {
		const char *lvl = getenv("ND_FUZZ_LOG");

		/* Quiet by default: thousands of inputs per second. */
		nd_log_level = lvl ? nd_log_parse_level(lvl) : -1;
		signal(SIGPIPE, SIG_IGN);
		servers[i] = server_create(i);
		if (pthread_create(&server_threads[i], NULL, server_main,
				   servers[i]))
			fz_fail("cannot start the server thread");
	}
	return servers[i];
}

void fz_conn_start(struct fz_conn *fc, struct nd_server *s)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(nd_server_port(s)),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fz_fail("connect to the server: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fc->srv = s;
	fc->fd = fd;
	open_conns++;
}

void fz_write(int fd, const void *buf, size_t len)
{
	/* A server that closed on bad input is expected: EPIPE is fine. */
	(void)nd_write_full(fd, buf, len);
}

void fz_drain(int fd)
{
	uint8_t buf[4096];

	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
}

void fz_conn_end(struct fz_conn *fc)
{
	struct nd_server *s = fc->srv;
	int i;

	close(fc->fd);
	fc->fd = -1;
	if (--open_conns > 0)
		return;
	/*
	 * The caller saw the server close (fz_drain): wait for its side to
	 * finish, a connection thread or a pending handshake.
	 */
	for (i = 0; i < 10000; i++) {
		int n;

		pthread_mutex_lock(&s->lock);
		n = s->nconns;
		pthread_mutex_unlock(&s->lock);
		if (n == 0 && __atomic_load_n(&s->npending,
					      __ATOMIC_RELAXED) == 0)
			break;
		usleep(1000);
	}
	if (i == 10000)
		fz_fail("connection not torn down within 10 s");
	/* Next input starts with no sessions and no write lock. */
	nd_session_expire(s, true);
	pthread_mutex_lock(&s->sess_lock);
	if (s->sessions || s->exps[0]->e.writer)
		fz_fail("a session outlived its connections");
	pthread_mutex_unlock(&s->sess_lock);
}

/* ---- request phase ---- */

struct fz_expect {
	uint64_t handle;
	uint64_t offset;
	uint32_t length;
	uint8_t op;
	bool matched;
};

struct fz_reply {
	struct nd_reply r;
};

struct fz_reader {
	int fd;
	struct nd_dir *rx;
	uint32_t max_payload;
	struct fz_reply *rep;
	size_t nrep, caprep;
};

static void *reader_main(void *arg)
{
	struct fz_reader *rd = arg;
	size_t cap = ND_REPLY_HDR_LEN + rd->max_payload + ND_TAG_LEN;
	uint8_t *buf = malloc(cap);

	if (!buf)
		fz_fail("out of memory");
	for (;;) {
		long n = nd_recv_record(rd->fd, rd->rx, buf, cap);
		struct nd_reply r;

		if (n == ND_RECV_EOF || n == ND_RECV_IO)
			break;
		if (n == ND_RECV_AUTH)
			fz_fail("reply record %zu does not authenticate",
				rd->nrep);
		if (n == ND_RECV_TOO_BIG)
			fz_fail("reply record %zu is over the negotiated size",
				rd->nrep);
		if (nd_reply_decode(buf, (size_t)n, &r) < 0)
			fz_fail("malformed reply: op %u status %u length %u, record %ld bytes",
				buf[0], nd_get16(buf + 2), nd_get32(buf + 4),
				n);
		if (rd->nrep == rd->caprep) {
			rd->caprep = rd->caprep ? 2 * rd->caprep : 64;
			rd->rep = realloc(rd->rep,
					  rd->caprep * sizeof(*rd->rep));
			if (!rd->rep)
				fz_fail("out of memory");
		}
		rd->rep[rd->nrep++].r = r;
	}
	free(buf);
	return NULL;
}

/* A well-formed request built from 24 fuzzer bytes. */
static void friendly_request(const uint8_t h[ND_REQ_HDR_LEN],
			     uint32_t max_payload, struct nd_request *r)
{
	uint64_t sectors = FZ_EXPORT_SIZE / ND_SECTOR_SIZE;

	r->op = h[0] % ND_OP__COUNT;
	r->flags = h[1] & ND_REQ_FUA;
	r->handle = nd_get64(h + 8);
	r->length = 0;
	r->offset = 0;
	switch (r->op) {
	case ND_OP_READ:
	case ND_OP_WRITE:
		r->length = (nd_get32(h + 4) % (max_payload / ND_SECTOR_SIZE) +
			     1) * ND_SECTOR_SIZE;
		break;
	case ND_OP_TRIM:
	case ND_OP_WRITE_ZEROES:
		r->length = nd_get32(h + 4) % (2 * sectors) * ND_SECTOR_SIZE;
		break;
	default:
		return;
	}
	/* Up to a little past the end, so range errors are reached too. */
	r->offset = nd_get64(h + 16) % (sectors + 64) * ND_SECTOR_SIZE;
}

void fz_request_phase(int fd, struct nd_crypto *c,
		      const struct nd_session_info *info, struct fz_in *in)
{
	struct fz_reader rd = {
		.fd = fd, .rx = &c->rx, .max_payload = info->max_payload,
	};
	struct fz_expect *exp = NULL;
	size_t nexp = 0, capexp = 0, stream = 0;
	bool ended = false, violation = false, disconnected = false;
	pthread_t th;

	if (pthread_create(&th, NULL, reader_main, &rd))
		fz_fail("cannot start reader thread");

	while (in->n && !ended && stream < FZ_MAX_STREAM) {
		uint8_t kind = fz_u8(in), *body;
		bool corrupt = kind & 4;
		struct nd_request r;
		const uint8_t *src;
		size_t got, len;
		struct iovec iov;

		switch (kind & 3) {
		case 0:		/* record body exactly as given */
			len = fz_u16(in);
			src = fz_take(in, len, &len);
			body = malloc(len ? len : 1);
			if (!body)
				fz_fail("out of memory");
			memcpy(body, src, len);
			break;
		case 1:		/* header as given, WRITE data appended */
		case 2:		/* header made well-formed, data appended */
			src = fz_take(in, ND_REQ_HDR_LEN, &got);
			{
				uint8_t h[ND_REQ_HDR_LEN] = { 0 };
				size_t data = 0;

				memcpy(h, src, got);
				if ((kind & 3) == 2) {
					friendly_request(h, info->max_payload,
							 &r);
					nd_request_encode(h, &r);
				}
				if (h[0] == ND_OP_WRITE &&
				    nd_get32(h + 4) <= info->max_payload +
						       ND_MIN_PAYLOAD)
					data = nd_get32(h + 4);
				len = ND_REQ_HDR_LEN + data;
				body = malloc(len);
				if (!body)
					fz_fail("out of memory");
				memcpy(body, h, ND_REQ_HDR_LEN);
				memset(body + ND_REQ_HDR_LEN, h[8] ^ h[15],
				       data);
			}
			break;
		default:	/* raw bytes: breaks the framing */
			len = fz_u16(in);
			src = fz_take(in, len, &len);
			fz_write(fd, src, len);
			if (len)
				ended = violation = true;
			continue;
		}

		/*
		 * Replies come back in completion order: a unique handle (low
		 * half: the record's index) ties each one to its request.
		 */
		if (len >= 16)
			nd_put32(body + 12, (uint32_t)nexp);

		if (corrupt || nd_request_decode(body, len, info->max_payload,
						 &r) != ND_OK) {
			ended = violation = true;
		} else if (r.op == ND_OP_DISCONNECT) {
			ended = disconnected = true;
		} else {
			if (nexp == capexp) {
				capexp = capexp ? 2 * capexp : 64;
				exp = realloc(exp, capexp * sizeof(*exp));
				if (!exp)
					fz_fail("out of memory");
			}
			exp[nexp++] = (struct fz_expect){
				.handle = r.handle, .offset = r.offset,
				.length = r.length, .op = r.op,
			};
		}

		{
			uint8_t hdr[ND_RECORD_HDR_LEN], tag[ND_TAG_LEN];

			iov.iov_base = body;
			iov.iov_len = len;
			if (nd_seal(&c->tx, hdr, &iov, 1, tag) < 0)
				fz_fail("nd_seal failed");
			if (corrupt)
				tag[len % ND_TAG_LEN] ^= 0x80;
			fz_write(fd, hdr, sizeof(hdr));
			fz_write(fd, body, len);
			fz_write(fd, tag, sizeof(tag));
		}
		stream += len + ND_RECORD_HDR_LEN + ND_TAG_LEN;
		free(body);
	}

	/*
	 * A real client ends with DISCONNECT; without it (an odd byte left
	 * over) the client is gone, as if it had closed the socket.
	 */
	if (!ended && !(fz_u8(in) & 1)) {
		uint8_t body[ND_REQ_HDR_LEN], hdr[ND_RECORD_HDR_LEN];
		uint8_t tag[ND_TAG_LEN];
		struct nd_request d = { .op = ND_OP_DISCONNECT };
		struct iovec iov = { .iov_base = body, .iov_len = sizeof(body) };

		nd_request_encode(body, &d);
		if (nd_seal(&c->tx, hdr, &iov, 1, tag) < 0)
			fz_fail("nd_seal failed");
		fz_write(fd, hdr, sizeof(hdr));
		fz_write(fd, body, sizeof(body));
		fz_write(fd, tag, sizeof(tag));
		disconnected = true;
	}
	shutdown(fd, SHUT_WR);
	pthread_join(th, NULL);

	/*
	 * Every request accepted before a DISCONNECT gets exactly one reply,
	 * and a sane one. A connection that ends otherwise (EOF, protocol
	 * violation) is abandoned: requests no worker started are dropped,
	 * so each gets at most one.
	 */
	if (disconnected ? rd.nrep != nexp : rd.nrep > nexp)
		fz_fail("%zu requests accepted but %zu replies", nexp, rd.nrep);
	for (size_t i = 0; i < rd.nrep; i++) {
		const struct nd_reply *p = &rd.rep[i].r;
		struct fz_expect *e = NULL;

		if ((uint32_t)p->handle < nexp)
			e = &exp[(uint32_t)p->handle];
		if (!e || e->matched || e->handle != p->handle ||
		    e->op != p->op)
			fz_fail("reply for handle %llu op %u matches no request",
				(unsigned long long)p->handle, p->op);
		e->matched = true;
		if (p->status >= ND_ERR__COUNT)
			fz_fail("reply status %u is not defined", p->status);
		if (p->status != ND_OK)
			continue;
		if (e->op == ND_OP_READ && p->length != e->length)
			fz_fail("READ of %u bytes answered with %u", e->length,
				p->length);
		if (e->op != ND_OP_FLUSH &&
		    (e->offset > FZ_EXPORT_SIZE ||
		     e->length > FZ_EXPORT_SIZE - e->offset))
			fz_fail("op %u at %llu+%u past the end succeeded",
				e->op, (unsigned long long)e->offset,
				e->length);
		if (e->op != ND_OP_READ && e->op != ND_OP_FLUSH &&
		    (info->flags & ND_EXP_READ_ONLY))
			fz_fail("op %u succeeded on a read-only session",
				e->op);
	}
	free(rd.rep);
	free(exp);
}
