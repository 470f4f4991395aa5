// SPDX-License-Identifier: MIT
/*
 * netdiskd in-process: the real server code on an ephemeral loopback port,
 * a temporary backing file, and clients built from libnetdisk primitives
 * (nd_handshake_client, nd_send_record, nd_recv_record) or, for hostile
 * cases, by hand.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "srv_config.h"
#include "state_dir.h"
#include <openssl/crypto.h>

#include "client.h"
#include "nd_wire.h"
#include "url.h"
#include "../../server/backend.h"
#include "../../server/log.h"
#include "../../server/server.h"

#define DISK_SIZE	(4u << 20)
/* What a read-write session on a file in /tmp (ext4 or tmpfs) gets. */
#define RW_CAPS		(ND_EXP_FUA | ND_EXP_TRIM | ND_EXP_WRITE_ZEROES)
/*
 * Timings stretch under valgrind (a handshake alone takes ~100 ms) and on a
 * loaded machine: the handshake timeout leaves room for both.
 */
static int scale = 1;
#define GRACE_MS	(1000 * scale)	/* the configuration counts seconds */
#define HS_TIMEOUT_MS	(1000 * scale)

/*
 * A backend in front of the file backend that holds every write until the
 * test opens the gate, and counts the writes it was handed: a disk that
 * hangs, with a count of what reached it.
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int writes;
	const struct nd_backend_ops *ops;
	void *h;
};

struct fixture {
	char path[64];
	char state_dir[64];		/* the server's --state-dir */
	struct gate *gate;		/* if set, the export's backend */
	uint8_t key[ND_KEY_LEN];
	struct nd_server *srv;
	pthread_t thread;
	uint16_t port;
	bool read_only;
	uint32_t max_payload;
	int hs_timeout_ms;		/* 0: HS_TIMEOUT_MS */
	int max_pending, max_pending_src;
	int grace_ms;			/* 0: GRACE_MS */
};

struct conn {
	int fd;
	struct nd_crypto c;
	struct nd_session_info info;
	uint8_t *rxbuf;		/* one receive buffer per connection */
};

static int gate_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
	struct gate *g = h;

	return g->ops->pread(g->h, buf, len, off);
}

static int gate_pwrite(void *h, const void *buf, uint32_t len, uint64_t off,
		       bool fua)
{
	struct gate *g = h;

	pthread_mutex_lock(&g->lock);
	g->writes++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return g->ops->pwrite(g->h, buf, len, off, fua);
}

static int gate_flush(void *h)
{
	struct gate *g = h;

	return g->ops->flush(g->h);
}

static void gate_close(void *h)
{
	struct gate *g = h;

	g->ops->close(g->h);
}

static const struct nd_backend_ops gate_ops = {
	.name = "gate",
	.pread = gate_pread,
	.pwrite = gate_pwrite,
	.flush = gate_flush,
	.close = gate_close,
};

/* Until n writes have reached the gate (5 s at most). */
static bool gate_wait_writes(struct gate *g, int n)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5 * scale;
	pthread_mutex_lock(&g->lock);
	while (g->writes < n &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) == 0)
		;
	ok = g->writes >= n;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/*
 * The server's log lines, captured from stderr by a thread, so a test can
 * wait for the server to report an event it cannot otherwise observe.
 */
struct logcap {
	int saved;			/* the real stderr */
	int rfd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const char *needle;
	bool seen;
	char line[1024];
	size_t len;
};

static void *logcap_main(void *arg)
{
	struct logcap *lc = arg;
	char buf[512];
	ssize_t n;

	while ((n = read(lc->rfd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (lc->len < sizeof(lc->line) - 1)
					lc->line[lc->len++] = buf[i];
				continue;
			}
			lc->line[lc->len] = 0;
			lc->len = 0;
			if (!strstr(lc->line, lc->needle))
				continue;
			pthread_mutex_lock(&lc->lock);
			lc->seen = true;
			pthread_cond_broadcast(&lc->cond);
			pthread_mutex_unlock(&lc->lock);
		}
	}
	return NULL;
}

static void logcap_start(struct logcap *lc, const char *needle)
{
	int p[2];

	memset(lc, 0, sizeof(*lc));
	lc->needle = needle;
	pthread_mutex_init(&lc->lock, NULL);
	pthread_cond_init(&lc->cond, NULL);
	assert_int_equal(pipe(p), 0);
	lc->rfd = p[0];
	lc->saved = dup(STDERR_FILENO);
	assert_true(lc->saved >= 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	close(p[1]);
	assert_int_equal(pthread_create(&lc->thread, NULL, logcap_main, lc),
			 0);
}

/* True once a line with the needle was logged (waits up to ms). */
static bool logcap_wait(struct logcap *lc, int ms)
{
	struct timespec ts;
	bool seen;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&lc->lock);
	while (!lc->seen &&
	       pthread_cond_timedwait(&lc->cond, &lc->lock, &ts) == 0)
		;
	seen = lc->seen;
	pthread_mutex_unlock(&lc->lock);
	return seen;
}

/* Back to the real stderr; the thread ends at the pipe's EOF. */
static void logcap_stop(struct logcap *lc)
{
	dup2(lc->saved, STDERR_FILENO);
	close(lc->saved);
	pthread_join(lc->thread, NULL);
	close(lc->rfd);
	pthread_mutex_destroy(&lc->lock);
	pthread_cond_destroy(&lc->cond);
}

static void *run_server(void *arg)
{
	struct fixture *f = arg;

	nd_server_run(f->srv);
	return NULL;
}

/* The gate the next export opened goes through (see gate_backend_open). */
static struct gate *next_gate;

/* nd_backend_open for gated tests: the file behind the gate. */
static int gate_backend_open(struct nd_export *e, const char *path,
			     bool read_only, char *err, size_t errlen)
{
	if (nd_file_open(e, path, read_only, err, errlen) < 0)
		return -1;
	next_gate->ops = e->ops;
	next_gate->h = e->h;
	e->ops = &gate_ops;
	e->h = next_gate;
	e->caps = 0;
	return 0;
}

static void start_server(struct fixture *f)
{
	struct nd_server_config opts = {
		.handshake_timeout_ms = f->hs_timeout_ms ? f->hs_timeout_ms :
					HS_TIMEOUT_MS,
		.max_pending = f->max_pending,
		.max_pending_src = f->max_pending_src,
		.drain_ms = 500 * scale,
	};
	struct nd_config cfg;
	char err[256];

	cfg_one(&cfg, f->path, f->read_only, f->key, f->state_dir);
	cfg.workers = f->gate ? 2 : 4;
	cfg.grace_s = (f->grace_ms ? f->grace_ms : GRACE_MS) / 1000;
	if (f->max_payload)
		cfg.max_payload = f->max_payload;
	next_gate = f->gate;
	nd_backend_open = f->gate ? gate_backend_open : nd_file_open;
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	nd_backend_open = nd_file_open;
	if (!f->srv)
		fail_msg("nd_server_create: %s", err);
	f->port = nd_server_port(f->srv);
	assert_true(f->port != 0);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f), 0);
}

static void stop_server(struct fixture *f)
{
	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	f->srv = NULL;
}

static int setup_common(void **state, bool read_only, const char *dir,
			struct gate *gate)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *preload = getenv("LD_PRELOAD");
	uint8_t block[4096];
	int fd;

	if (preload && strstr(preload, "valgrind"))
		scale = 10;
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->path, sizeof(f->path), "%s/nd-test-server-XXXXXX", dir);
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	/* Block i is filled with byte i & 0xff, so reads are checkable. */
	for (uint32_t i = 0; i < DISK_SIZE / sizeof(block); i++) {
		memset(block, (int)(i & 0xff), sizeof(block));
		assert_int_equal(write(fd, block, sizeof(block)),
				 (ssize_t)sizeof(block));
	}
	close(fd);
	state_dir_make(f->state_dir, sizeof(f->state_dir));
	assert_int_equal(nd_random(f->key, sizeof(f->key)), 0);
	f->read_only = read_only;
	f->gate = gate;
	if (gate)	/* its tests wait for info lines */
		nd_log_level = ND_LOG_INFO;
	start_server(f);
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return setup_common(state, false, "/tmp", NULL);
}

/* A tmpfs export: netdiskd reads and writes it on the receiver thread. */
static int setup_rw_shm(void **state)
{
	struct stat st;

	if (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode))
		return setup_common(state, false, "/tmp", NULL);
	return setup_common(state, false, "/dev/shm", NULL);
}

/* A small handshake budget (8, 4 per address) and a long timeout. */
static int setup_rw_budget(void **state)
{
	struct fixture *f;

	setup_common(state, false, "/tmp", NULL);
	f = *state;
	stop_server(f);
	f->hs_timeout_ms = 20000;
	f->max_pending = 8;
	f->max_pending_src = 4;
	start_server(f);
	return 0;
}

/* A write lock kept 30 s after its last connection: longer than a test. */
static int setup_rw_long_grace(void **state)
{
	struct fixture *f;

	setup_common(state, false, "/tmp", NULL);
	f = *state;
	stop_server(f);
	f->grace_ms = 30000;
	start_server(f);
	return 0;
}

static int setup_ro(void **state)
{
	return setup_common(state, true, "/tmp", NULL);
}

/* Writes wait at a closed gate (2 workers). */
static int setup_gated(void **state)
{
	struct gate *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	return setup_common(state, false, "/tmp", g);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->gate)	/* nothing may stay blocked in it */
		gate_open(f->gate);
	if (f->srv)
		stop_server(f);
	if (f->gate) {
		pthread_mutex_destroy(&f->gate->lock);
		pthread_cond_destroy(&f->gate->cond);
		free(f->gate);
	}
	unlink(f->path);
	state_dir_remove(f->state_dir);
	free(f);
	return 0;
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A connection from a given loopback address (127.0.0.2 ...). */
static int tcp_connect_from(uint16_t port, const char *from)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, from, &src.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int count_dir(const char *path)
{
	char cmd[128];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s | wc -l", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* Handshake with options; returns the nd_hs_result, status in *status. */
static enum nd_hs_result try_open(struct fixture *f, struct conn *cn,
				  const uint8_t *key, const uint8_t *token,
				  uint32_t flags, const char *export_name,
				  uint32_t max_payload, uint16_t *status)
{
	/*
	 * Every join takes a slot of its own (cycling through 1..63), so it
	 * adds a queue to the session rather than replace (fence) one.
	 */
	static unsigned int joins;
	struct nd_client_params p = {
		.psk = key ? key : f->key,
		.export_name = export_name,
		.token = token,
		.flags = flags,
		.max_payload = max_payload,
		.slot = token ? (uint16_t)(1 + joins++ % (ND_MAX_SLOTS - 1)) : 0,
		.epoch = 1,
	};
	enum nd_hs_result r;

	memset(cn, 0, sizeof(*cn));
	cn->fd = tcp_connect(f->port);
	r = nd_handshake_client(cn->fd, &p, &cn->c, &cn->info, status);
	if (r != ND_HS_OK) {
		close(cn->fd);
		cn->fd = -1;
	}
	return r;
}

static void open_ok(struct fixture *f, struct conn *cn, const uint8_t *token,
		    uint32_t flags)
{
	uint16_t status = 0;

	assert_int_equal(try_open(f, cn, NULL, token, flags, NULL, 0, &status),
			 ND_HS_OK);
	assert_int_equal(status, ND_OK);
}

static void conn_close(struct conn *cn)
{
	if (cn->fd >= 0)
		close(cn->fd);
	cn->fd = -1;
	nd_crypto_free(&cn->c);
	free(cn->rxbuf);
	cn->rxbuf = NULL;
}

static void send_req(struct conn *cn, uint8_t op, uint8_t flags,
		     uint32_t len, uint64_t handle, uint64_t off,
		     const void *data)
{
	struct nd_request r = {
		.op = op, .flags = flags, .length = len, .handle = handle,
		.offset = off,
	};
	uint8_t hdr[ND_REQ_HDR_LEN];
	uint8_t *copy = NULL;
	struct iovec v[2] = { { hdr, sizeof(hdr) } };
	int n = 1;

	nd_request_encode(hdr, &r);
	if (op == ND_OP_WRITE) {
		/* nd_send_record encrypts in place: keep the caller's data. */
		copy = malloc(len);
		assert_non_null(copy);
		memcpy(copy, data, len);
		v[1].iov_base = copy;
		v[1].iov_len = len;
		n = 2;
	}
	assert_int_equal(nd_send_record(cn->fd, &cn->c.tx, v, n), 0);
	free(copy);
}

/* Receives one reply; data (if any) copied to out. Returns record result. */
static long recv_reply(struct conn *cn, struct nd_reply *rep, void *out,
		       size_t outcap)
{
	size_t cap = ND_REPLY_HDR_LEN + ND_MAX_PAYLOAD + ND_TAG_LEN;
	uint8_t *buf;
	long n;

	/* Allocated once: a 16 MiB malloc per reply is slow under ASan. */
	if (!cn->rxbuf)
		cn->rxbuf = malloc(cap);
	buf = cn->rxbuf;
	assert_non_null(buf);
	n = nd_recv_record(cn->fd, &cn->c.rx, buf, cap);
	if (n >= 0) {
		assert_int_equal(nd_reply_decode(buf, (size_t)n, rep), 0);
		if (rep->length) {
			assert_true(rep->length <= outcap);
			memcpy(out, buf + ND_REPLY_HDR_LEN, rep->length);
		}
	}
	return n;
}

/* One synchronous request; returns the reply status. */
static int do_req(struct conn *cn, uint8_t op, uint8_t flags, uint32_t len,
		  uint64_t off, void *buf)
{
	static uint64_t handle = 1000;
	struct nd_reply rep;
	uint64_t h = __atomic_fetch_add(&handle, 1, __ATOMIC_RELAXED);

	send_req(cn, op, flags, len, h, off, buf);
	assert_true(recv_reply(cn, &rep, op == ND_OP_READ ? buf : NULL,
			       op == ND_OP_READ ? len : 0) >= 0);
	assert_int_equal(rep.handle, h);
	assert_int_equal(rep.op, op);
	if (op == ND_OP_READ && rep.status == ND_OK)
		assert_int_equal(rep.length, len);
	return rep.status;
}

/* True if the server closed the connection (EOF/reset within 3 s). */
static bool closed_by_server(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t b[256];

	for (;;) {
		ssize_t n;

		if (poll(&p, 1, 3000 * scale) != 1)
			return false;
		n = read(fd, b, sizeof(b));
		if (n <= 0)
			return true;
	}
}

/*
 * The server logs with write(2) on fd 2: a capture points fd 2 at a file
 * and raises the level to debug until log_capture_end, which returns what
 * was logged (NUL-terminated, to be freed).
 */
struct log_capture {
	char path[64];
	int fd, saved, level;
};

static void log_capture_start(struct log_capture *lc)
{
	snprintf(lc->path, sizeof(lc->path), "/tmp/nd-test-log-XXXXXX");
	lc->fd = mkstemp(lc->path);
	assert_true(lc->fd >= 0);
	fflush(stderr);
	lc->saved = dup(STDERR_FILENO);
	assert_true(lc->saved >= 0);
	assert_true(dup2(lc->fd, STDERR_FILENO) >= 0);
	lc->level = nd_log_level;
	nd_log_level = ND_LOG_DEBUG;
}

static char *log_capture_end(struct log_capture *lc)
{
	struct stat st;
	char *text;

	nd_log_level = lc->level;
	assert_true(dup2(lc->saved, STDERR_FILENO) >= 0);
	close(lc->saved);
	assert_int_equal(fstat(lc->fd, &st), 0);
	text = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(text);
	assert_int_equal(pread(lc->fd, text, (size_t)st.st_size, 0),
			 st.st_size);
	close(lc->fd);
	unlink(lc->path);
	return text;
}

/* Some 4-byte window of secret, as hex in either case, occurs in text. */
static bool log_has_secret(const char *text, const uint8_t *secret,
			   size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++) {
		char lo[9], up[9];

		snprintf(lo, sizeof(lo), "%02x%02x%02x%02x", secret[i],
			 secret[i + 1], secret[i + 2], secret[i + 3]);
		snprintf(up, sizeof(up), "%02X%02X%02X%02X", secret[i],
			 secret[i + 1], secret[i + 2], secret[i + 3]);
		if (strstr(text, lo) || strstr(text, up))
			return true;
	}
	return false;
}

static void file_pread(struct fixture *f, void *buf, size_t len, off_t off)
{
	int fd = open(f->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void test_read_write_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t *w = malloc(8192), *r = malloc(8192), *disk = malloc(8192);
	struct conn a;

	open_ok(f, &a, NULL, 0);
	assert_int_equal(a.info.flags, ND_EXP_FLUSH | ND_EXP_EXCLUSIVE | RW_CAPS);
	assert_int_equal(a.info.size, DISK_SIZE);
	assert_int_equal(a.info.block_size, 512);
	assert_int_equal(a.info.max_payload, ND_DEFAULT_PAYLOAD);

	/* Initial content: block i holds byte i. */
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 8192, 3 * 4096, r), ND_OK);
	assert_int_equal(r[0], 3);
	assert_int_equal(r[8191], 4);

	for (int i = 0; i < 8192; i++)
		w[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 8192, 512, w), ND_OK);
	assert_int_equal(do_req(&a, ND_OP_FLUSH, 0, 0, 0, NULL), ND_OK);
	memset(r, 0, 8192);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 8192, 512, r), ND_OK);
	assert_memory_equal(r, w, 8192);
	file_pread(f, disk, 8192, 512);
	assert_memory_equal(disk, w, 8192);

	/* FUA is honoured (RWF_DSYNC), not refused. */
	w[0] ^= 0xff;
	assert_int_equal(do_req(&a, ND_OP_WRITE, ND_REQ_FUA, 512,
				DISK_SIZE - 512, w), ND_OK);
	file_pread(f, disk, 512, DISK_SIZE - 512);
	assert_memory_equal(disk, w, 512);

	/* A maximal request. */
	{
		uint8_t *big = malloc(ND_DEFAULT_PAYLOAD);

		assert_int_equal(do_req(&a, ND_OP_READ, 0, ND_DEFAULT_PAYLOAD,
					0, big), ND_OK);
		assert_int_equal(big[ND_DEFAULT_PAYLOAD - 1],
				 (ND_DEFAULT_PAYLOAD / 4096 - 1) & 0xff);
		free(big);
	}

	conn_close(&a);
	free(w);
	free(r);
	free(disk);
}

static blkcnt_t file_blocks(struct fixture *f)
{
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, DISK_SIZE);	/* never changes */
	return st.st_blocks;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void test_trim_write_zeroes(void **state)
{
	struct fixture *f = *state;
	const uint32_t mib = 1u << 20;
	uint8_t *buf = malloc(mib), *disk = malloc(mib);
	blkcnt_t before, after;
	struct conn a;

	open_ok(f, &a, NULL, 0);
	assert_true(a.info.flags & ND_EXP_TRIM);
	assert_true(a.info.flags & ND_EXP_WRITE_ZEROES);
	assert_true(a.info.flags & ND_EXP_FUA);

	/* TRIM 1 MiB at 1 MiB: reads zeroes, the file gets sparse. */
	before = file_blocks(f);
	assert_int_equal(do_req(&a, ND_OP_TRIM, 0, mib, mib, NULL), ND_OK);
	after = file_blocks(f);
	assert_true(after <= before - (blkcnt_t)(mib / 512));
	memset(buf, 0xee, mib);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, mib, mib, buf), ND_OK);
	assert_true(all_bytes(buf, mib, 0));
	file_pread(f, disk, mib, mib);
	assert_true(all_bytes(disk, mib, 0));
	/* Neighbours untouched: block 255 ends before, 512 starts after. */
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, mib - 4096, buf),
			 ND_OK);
	assert_true(all_bytes(buf, 4096, 255));
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, 2 * mib, buf), ND_OK);
	assert_true(all_bytes(buf, 4096, 0));	/* block 512: 512 & 0xff */
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, 2 * mib + 4096, buf),
			 ND_OK);
	assert_true(all_bytes(buf, 4096, 1));

	/* WRITE_ZEROES of an unaligned-to-page 1536-byte range, with FUA. */
	assert_int_equal(do_req(&a, ND_OP_WRITE_ZEROES, ND_REQ_FUA, 1536,
				3 * 4096 + 512, NULL), ND_OK);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, 3 * 4096, buf),
			 ND_OK);
	assert_true(all_bytes(buf, 512, 3));
	assert_true(all_bytes(buf + 512, 1536, 0));
	assert_true(all_bytes(buf + 2048, 2048, 3));
	file_pread(f, disk, 4096, 3 * 4096);
	assert_memory_equal(disk, buf, 4096);
	/* The whole export in one request: longer than max_payload. */
	assert_int_equal(do_req(&a, ND_OP_WRITE_ZEROES, 0, DISK_SIZE, 0, NULL),
			 ND_OK);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, mib, DISK_SIZE - mib, buf),
			 ND_OK);
	assert_true(all_bytes(buf, mib, 0));
	/* Writes after a trim land normally. */
	memset(buf, 0x77, 4096);
	assert_int_equal(do_req(&a, ND_OP_WRITE, ND_REQ_FUA, 4096, mib, buf),
			 ND_OK);
	file_pread(f, disk, 4096, mib);
	assert_true(all_bytes(disk, 4096, 0x77));

	/* Out of range, zero length and over the limit: refused, conn lives. */
	assert_int_equal(do_req(&a, ND_OP_TRIM, 0, 4096, DISK_SIZE - 512,
				NULL), ND_ERR_RANGE);
	assert_int_equal(do_req(&a, ND_OP_WRITE_ZEROES, 0, 512, DISK_SIZE,
				NULL), ND_ERR_RANGE);
	assert_int_equal(do_req(&a, ND_OP_TRIM, 0, 512, UINT64_MAX - 511,
				NULL), ND_ERR_RANGE);
	assert_int_equal(do_req(&a, ND_OP_TRIM, 0, 0, 0, NULL),
			 ND_ERR_INVALID);
	assert_int_equal(do_req(&a, ND_OP_WRITE_ZEROES, 0,
				(1u << 31) + 512, 0, NULL), ND_ERR_INVALID);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, mib, buf), ND_OK);
	assert_true(all_bytes(buf, 4096, 0x77));
	conn_close(&a);
	free(buf);
	free(disk);
}

/* A read-only session of a read-write export: advertised nothing, refused. */
static void test_trim_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];
	struct conn ro;

	open_ok(f, &ro, NULL, ND_CF_READ_ONLY);
	assert_int_equal(ro.info.flags, ND_EXP_READ_ONLY | ND_EXP_FLUSH);
	assert_int_equal(do_req(&ro, ND_OP_TRIM, 0, 4096, 0, NULL),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_WRITE_ZEROES, 0, 4096, 0, NULL),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_READ, 0, 4096, 4096, buf), ND_OK);
	assert_true(all_bytes(buf, 4096, 1));
	conn_close(&ro);
}

static void test_trim_read_only_export(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];
	struct conn a;

	open_ok(f, &a, NULL, 0);
	assert_int_equal(a.info.flags,
			 ND_EXP_READ_ONLY | ND_EXP_FLUSH | ND_EXP_EXCLUSIVE);
	assert_int_equal(do_req(&a, ND_OP_TRIM, 0, 4096, 0, NULL),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&a, ND_OP_WRITE_ZEROES, ND_REQ_FUA, 4096, 0,
				NULL), ND_ERR_READ_ONLY);
	file_pread(f, buf, 4096, 0);
	assert_true(all_bytes(buf, 4096, 0));
	file_pread(f, buf, 4096, 4096);
	assert_true(all_bytes(buf, 4096, 1));
	conn_close(&a);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024] = { 0 };
	struct conn a;

	open_ok(f, &a, NULL, 0);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 1024, DISK_SIZE - 512, buf),
			 ND_ERR_RANGE);
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 512, DISK_SIZE, buf),
			 ND_ERR_RANGE);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512,
				UINT64_MAX - 511, buf), ND_ERR_RANGE);
	/* The connection survives. */
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512, DISK_SIZE - 512, buf),
			 ND_OK);
	conn_close(&a);
}

static void test_read_only_export(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];
	struct conn a, b;

	open_ok(f, &a, NULL, 0);
	open_ok(f, &b, NULL, 0);	/* read-only: any number of sessions */
	assert_int_equal(a.info.flags,
			 ND_EXP_READ_ONLY | ND_EXP_FLUSH | ND_EXP_EXCLUSIVE);
	assert_memory_not_equal(a.info.token, b.info.token, ND_TOKEN_LEN);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 4096, 0, buf),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&b, ND_OP_READ, 0, 4096, 4096, buf), ND_OK);
	assert_int_equal(buf[0], 1);
	assert_int_equal(do_req(&b, ND_OP_FLUSH, 0, 0, 0, NULL), ND_OK);
	conn_close(&a);
	conn_close(&b);
}

static void test_busy_and_read_only_client(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512] = { 0 };
	uint16_t status = 0;
	struct conn a, b, ro;

	open_ok(f, &a, NULL, 0);
	assert_int_equal(try_open(f, &b, NULL, NULL, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_BUSY);

	/* A client asking for read-only access gets it beside the writer. */
	open_ok(f, &ro, NULL, ND_CF_READ_ONLY);
	assert_int_equal(ro.info.flags, ND_EXP_READ_ONLY | ND_EXP_FLUSH);
	assert_int_equal(do_req(&ro, ND_OP_WRITE, 0, 512, 0, buf),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_READ, 0, 512, 0, buf), ND_OK);
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 512, 0, buf), ND_OK);
	conn_close(&ro);
	conn_close(&a);
}

/*
 * A connection joining a writer's session with ND_CF_READ_ONLY gets a
 * read-only grant: its writes are refused, the writer's go on.
 */
static void test_read_only_join(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096], disk[4096];
	struct conn a, ro;

	open_ok(f, &a, NULL, 0);
	open_ok(f, &ro, a.info.token, ND_CF_READ_ONLY);
	assert_memory_equal(ro.info.token, a.info.token, ND_TOKEN_LEN);
	assert_int_equal(ro.info.flags, ND_EXP_READ_ONLY | ND_EXP_FLUSH);
	memset(buf, 0xc3, sizeof(buf));
	assert_int_equal(do_req(&ro, ND_OP_WRITE, 0, 4096, 8192, buf),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_WRITE, ND_REQ_FUA, 4096, 8192, buf),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_TRIM, 0, 4096, 8192, NULL),
			 ND_ERR_READ_ONLY);
	assert_int_equal(do_req(&ro, ND_OP_WRITE_ZEROES, 0, 4096, 8192, NULL),
			 ND_ERR_READ_ONLY);
	file_pread(f, disk, sizeof(disk), 8192);
	assert_true(all_bytes(disk, sizeof(disk), 2));
	assert_int_equal(do_req(&ro, ND_OP_READ, 0, 4096, 8192, buf), ND_OK);
	assert_true(all_bytes(buf, sizeof(buf), 2));
	/* The writer's own connection keeps write access. */
	memset(buf, 0x3c, sizeof(buf));
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 4096, 8192, buf), ND_OK);
	file_pread(f, disk, sizeof(disk), 8192);
	assert_true(all_bytes(disk, sizeof(disk), 0x3c));
	/* A plain join still gets the writer's grant. */
	conn_close(&ro);
	open_ok(f, &ro, a.info.token, 0);
	assert_int_equal(ro.info.flags, a.info.flags);
	assert_int_equal(do_req(&ro, ND_OP_WRITE, 0, 4096, 8192, buf), ND_OK);
	conn_close(&ro);
	conn_close(&a);
}

static void test_join_grace_expiry(void **state)
{
	struct fixture *f = *state;
	uint8_t token[ND_TOKEN_LEN], buf[512];
	uint16_t status = 0;
	struct conn a, b, c, d;

	open_ok(f, &a, NULL, 0);
	memcpy(token, a.info.token, sizeof(token));
	open_ok(f, &b, token, 0);	/* second queue of the same session */
	assert_memory_equal(b.info.token, token, ND_TOKEN_LEN);
	assert_memory_equal(b.info.export_id, a.info.export_id,
			    ND_EXPORT_ID_LEN);
	assert_int_equal(b.info.flags, ND_EXP_FLUSH | ND_EXP_EXCLUSIVE | RW_CAPS);
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(do_req(&b, ND_OP_WRITE, 0, 512, 0, buf), ND_OK);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512, 0, buf), ND_OK);
	assert_int_equal(buf[511], 0xab);

	/* Closing one queue keeps the session; closing both starts grace. */
	conn_close(&a);
	assert_int_equal(do_req(&b, ND_OP_READ, 0, 512, 0, buf), ND_OK);
	conn_close(&b);
	usleep(50 * 1000);
	assert_int_equal(try_open(f, &c, NULL, NULL, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_BUSY);
	open_ok(f, &c, token, 0);	/* the holder may come back */
	assert_int_equal(do_req(&c, ND_OP_WRITE, 0, 512, 512, buf), ND_OK);
	conn_close(&c);

	/* After the grace period the lock is free and the token unknown. */
	usleep((GRACE_MS + 200) * 1000);
	assert_int_equal(try_open(f, &d, NULL, token, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_NO_SESSION);
	open_ok(f, &d, NULL, 0);
	assert_memory_not_equal(d.info.token, token, ND_TOKEN_LEN);
	conn_close(&d);

	/* A made-up token is refused too. */
	memset(token, 0x11, sizeof(token));
	assert_int_equal(try_open(f, &d, NULL, token, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_NO_SESSION);
}

static void test_wrong_key_and_export(void **state)
{
	struct fixture *f = *state;
	uint8_t bad[ND_KEY_LEN], buf[512];
	uint16_t status = 0;
	struct conn a, b;

	open_ok(f, &a, NULL, 0);
	memcpy(bad, f->key, sizeof(bad));
	bad[5] ^= 1;
	assert_int_equal(try_open(f, &b, bad, NULL, 0, NULL, 0, &status),
			 ND_HS_AUTH);
	/*
	 * A prober without the key learns nothing about which exports
	 * exist: a missing one fails authentication just the same.
	 */
	assert_int_equal(try_open(f, &b, bad, NULL, 0, "nope", 0, &status),
			 ND_HS_AUTH);
	assert_int_equal(status, ND_OK);
	/* With the key, "no such export" comes in the SessionInfo. */
	assert_int_equal(try_open(f, &b, NULL, NULL, 0, "nope", 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_NO_EXPORT);
	/* Unaffected: */
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512, 0, buf), ND_OK);
	conn_close(&a);
}

/*
 * Hand-made ClientHello and ClientFinish, to send what nd_handshake_client
 * never would: another version, extensions, bad shares, a skewed clock, a
 * bad client proof, invalid ClientFinish fields.
 */
enum man_share { MAN_SHARE_OK, MAN_SHARE_ZERO, MAN_SHARE_ONE };

struct man {
	const char *export_name;	/* NULL: "default" */
	const uint8_t *key;		/* NULL: the fixture's */
	uint64_t timestamp;		/* 0: now */
	uint16_t flags;			/* ClientHello flags */
	const uint8_t *ext;		/* extension area as sent */
	uint16_t ext_len;
	enum man_share share;
	bool bad_proof;
	bool trickle;			/* hello and finish 1 byte per write */
	struct nd_client_finish cf;	/* verify is filled in; epoch 0: 1 */
	/* results */
	size_t sh_len;			/* ServerHello bytes received */
	struct nd_session_info si;
};

#define MAN_NO_HELLO	0xfffe		/* closed without a ServerHello */
#define MAN_NO_INFO	0xffff		/* closed without a SessionInfo */
#define MAN_AUTH	0xfffd		/* the server's proof did not verify */

/* One byte per segment, so the server reads every part in pieces. */
static void write_trickle(int fd, const uint8_t *p, size_t len)
{
	int one = 1;

	assert_int_equal(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof(one)), 0);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(write(fd, p + i, 1), 1);
		usleep(200);
	}
}

static uint16_t manual_hs(struct fixture *f, struct man *m, int *fd_out)
{
	const char *exp = m->export_name ? m->export_name : "default";
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.flags = m->flags,
		.timestamp = m->timestamp ? m->timestamp :
					    (uint64_t)time(NULL),
		.identity_len = 7, .export_len = (uint8_t)strlen(exp),
		.ext_len = m->ext_len,
	};
	struct nd_client_finish cf = m->cf;
	struct nd_server_hello sh;
	struct nd_crypto c;
	uint8_t chb[ND_CLIENT_HELLO_MAX], shb[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], mac[ND_HASH_LEN];
	uint8_t eph[ND_SHARE_LEN];
	uint8_t cfb[ND_CLIENT_FINISH_LEN], sib[ND_SESSION_INFO_LEN + 16];
	struct iovec v = { cfb, sizeof(cfb) };
	size_t len;
	ssize_t r;
	long n;
	int fd = tcp_connect(f->port);

	*fd_out = fd;
	memcpy(ch.identity, "default", 7);
	memcpy(ch.export_name, exp, ch.export_len);
	if (m->ext_len)
		memcpy(ch.ext, m->ext, m->ext_len);
	assert_int_equal(nd_random(ch.random, sizeof(ch.random)), 0);
	assert_int_equal(nd_x25519_keygen(eph, ch.share), 0);
	if (m->share != MAN_SHARE_OK) {
		memset(ch.share, 0, ND_SHARE_LEN);
		ch.share[0] = m->share == MAN_SHARE_ONE;
	}
	len = nd_client_hello_encode(chb, &ch);
	if (m->trickle)
		write_trickle(fd, chb, len);
	else
		assert_int_equal(nd_write_full(fd, chb, len), 0);
	for (m->sh_len = 0; m->sh_len < sizeof(shb); m->sh_len += (size_t)r) {
		r = read(fd, shb + m->sh_len, sizeof(shb) - m->sh_len);
		if (r <= 0)
			break;
	}
	if (m->sh_len == 0)
		return MAN_NO_HELLO;
	assert_int_equal(m->sh_len, ND_SERVER_HELLO_LEN);
	assert_int_equal(nd_server_hello_decode(shb, &sh), 0);
	if (sh.status != ND_OK)
		return sh.status;
	nd_transcript(chb, len, shb, th);
	assert_int_equal(nd_key_exchange(eph, sh.share,
					 m->key ? m->key : f->key, ch.random,
					 sh.random, th, okm), 0);
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, mac);
	if (!nd_equal(mac, sh.verify, ND_HASH_LEN))
		return MAN_AUTH;
	assert_int_equal(nd_crypto_init(&c, okm, true), 0);
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, cf.verify);
	if (m->bad_proof)
		cf.verify[0] ^= 1;
	if (!cf.epoch)
		cf.epoch = 1;
	nd_client_finish_encode(cfb, &cf);
	if (m->trickle) {
		uint8_t rec[ND_RECORD_HDR_LEN + sizeof(cfb) + ND_TAG_LEN];

		assert_int_equal(nd_seal(&c.tx, rec, &v, 1,
					 rec + sizeof(rec) - ND_TAG_LEN), 0);
		memcpy(rec + ND_RECORD_HDR_LEN, cfb, sizeof(cfb));
		write_trickle(fd, rec, sizeof(rec));
	} else {
		assert_int_equal(nd_send_record(fd, &c.tx, &v, 1), 0);
	}
	n = nd_recv_record(fd, &c.rx, sib, sizeof(sib));
	nd_crypto_free(&c);
	if (n < 0)
		return MAN_NO_INFO;
	assert_int_equal(n, ND_SESSION_INFO_LEN);
	assert_int_equal(nd_session_info_decode(sib, &m->si), 0);
	return m->si.status;
}

static uint16_t manual_handshake_ts(struct fixture *f, uint64_t timestamp,
				    int *fd_out)
{
	struct man m = { .timestamp = timestamp };

	return manual_hs(f, &m, fd_out);
}

/*
 * Timestamps at the ends of the 64-bit range are refused as skewed, with
 * no arithmetic overflow on the way (UBSan aborts on one: make SAN=1).
 */
static void test_timestamp_extremes(void **state)
{
	struct fixture *f = *state;
	uint64_t now = (uint64_t)time(NULL);
	const uint64_t bad[] = {
		1ull << 63, (1ull << 63) + now, (1ull << 63) - 1, UINT64_MAX,
		UINT64_MAX - now, now + ND_CLOCK_SKEW_MAX + 5,
		now - ND_CLOCK_SKEW_MAX - 5, 1,
	};
	int fd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(manual_handshake_ts(f, bad[i], &fd),
				 ND_ERR_CLOCK_SKEW);
		close(fd);
	}
	/* Within the window either way: accepted. */
	assert_int_equal(manual_handshake_ts(f, now + ND_CLOCK_SKEW_MAX - 5,
					     &fd), ND_OK);
	close(fd);
	assert_int_equal(manual_handshake_ts(f, now - ND_CLOCK_SKEW_MAX + 5,
					     &fd), ND_OK);
	close(fd);
}

/*
 * OpenSSL's allocations, with a failure injected on one thread: the
 * countdown-th allocation there after arming fails.
 */
static pthread_t oom_thread;
static int oom_countdown;	/* 0: disarmed */
static int oom_hit;

static bool oom_now(void)
{
	if (!__atomic_load_n(&oom_countdown, __ATOMIC_ACQUIRE) ||
	    !pthread_equal(pthread_self(), oom_thread) ||
	    __atomic_sub_fetch(&oom_countdown, 1, __ATOMIC_ACQ_REL))
		return false;
	__atomic_store_n(&oom_hit, 1, __ATOMIC_RELEASE);
	return true;
}

static void *oom_malloc(size_t n, const char *file, int line)
{
	return oom_now() ? NULL : malloc(n);
}

static void *oom_realloc(void *p, size_t n, const char *file, int line)
{
	return oom_now() ? NULL : realloc(p, n);
}

static void oom_free(void *p, const char *file, int line)
{
	free(p);
}

/* Once first, so OpenSSL's lazy set-up is not what fails. */
static void open_ok_ro_warm(struct fixture *f)
{
	struct conn cn;

	open_ok(f, &cn, NULL, ND_CF_READ_ONLY);
	conn_close(&cn);
}

/*
 * An OpenSSL failure in the server's handshake (here: each allocation of
 * the listener thread in turn fails) drops that connection only: no abort,
 * no hang, no session, and the next client gets in.
 */
static void test_handshake_openssl_failure(void **state)
{
	struct fixture *f = *state;
	struct conn cn;
	int k, hits = 0;

	open_ok_ro_warm(f);
	oom_thread = f->thread;
	for (k = 1; k < 1000; k++) {
		struct nd_client_params p = {
			.psk = f->key, .flags = ND_CF_READ_ONLY,
			.timeout_ms = 5000 * scale,
		};
		enum nd_hs_result r;
		uint16_t status;
		int fd;

		__atomic_store_n(&oom_hit, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&oom_countdown, k, __ATOMIC_RELEASE);
		memset(&cn, 0, sizeof(cn));
		fd = tcp_connect(f->port);
		r = nd_handshake_client(fd, &p, &cn.c, &cn.info, &status);
		__atomic_store_n(&oom_countdown, 0, __ATOMIC_RELEASE);
		close(fd);
		if (r == ND_HS_OK)
			nd_crypto_free(&cn.c);
		if (!__atomic_load_n(&oom_hit, __ATOMIC_ACQUIRE))
			break;	/* past the handshake's last allocation */
		hits++;
		/* Closed, never answered with anything forged or a hang. */
		assert_true(r == ND_HS_OK || r == ND_HS_IO);
	}
	assert_true(hits > 3);
	assert_true(k < 1000);
	open_ok(f, &cn, NULL, ND_CF_READ_ONLY);
	conn_close(&cn);
}

/*
 * A connection the server closes during the handshake (here: an OpenSSL
 * failure on its first handshake; in real life a flood of pending
 * handshakes or the connection limit) is retried by nd_client_open, as
 * PROTOCOL.md §1 asks, instead of failing the command.
 */
static void test_client_retries_closed_handshake(void **state)
{
	struct fixture *f = *state;
	struct nd_client_opts o = { .flags = ND_CF_READ_ONLY };
	struct nd_client *c = NULL;
	struct nd_url url;
	char err[256] = "", text[64];

	snprintf(text, sizeof(text), "netdisk://127.0.0.1:%u", f->port);
	assert_int_equal(nd_url_parse(text, &url, err, sizeof(err)), 0);
	open_ok_ro_warm(f);
	oom_thread = f->thread;
	/* Each allocation of the first attempt in turn. */
	for (int k = 1; k < 1000; k++) {
		int rc;

		__atomic_store_n(&oom_hit, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&oom_countdown, k, __ATOMIC_RELEASE);
		rc = nd_client_open(&url, f->key, &o, &c, NULL, err,
				    sizeof(err));
		__atomic_store_n(&oom_countdown, 0, __ATOMIC_RELEASE);
		if (rc)
			fail_msg("allocation %d failed: %s", k, err);
		assert_int_equal(nd_client_close(c), 0);
		if (!__atomic_load_n(&oom_hit, __ATOMIC_ACQUIRE))
			break;
	}
}

static void test_handshake_refusals(void **state)
{
	struct fixture *f = *state;
	struct man m;
	int fd;

	m = (struct man){ .timestamp = (uint64_t)time(NULL) + 3600 };
	assert_int_equal(manual_hs(f, &m, &fd), ND_ERR_CLOCK_SKEW);
	assert_true(closed_by_server(fd));
	close(fd);
	/* A wrong client proof gets nothing, not even a SessionInfo. */
	m = (struct man){ .bad_proof = true };
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_INFO);
	close(fd);
	/* Unknown export: a full handshake, then status 8, then close. */
	m = (struct man){ .export_name = "vol.b" };
	assert_int_equal(manual_hs(f, &m, &fd), ND_ERR_NO_EXPORT);
	assert_true(closed_by_server(fd));
	close(fd);
}

/* Authenticated ClientFinish fields out of range: status invalid, close. */
static void test_client_finish_invalid(void **state)
{
	struct fixture *f = *state;
	static const struct nd_client_finish bad[] = {
		{ .max_payload = 5000 },
		{ .max_payload = 1000 },
		{ .max_payload = ND_MAX_PAYLOAD + 4096 },
		{ .slot = ND_MAX_SLOTS },
		{ .slot = 0xffff },
		{ .flags = 0x80 },
		{ .reserved = 1 },
	};
	struct man m;
	int fd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = (struct man){ .cf = bad[i] };
		assert_int_equal(manual_hs(f, &m, &fd), ND_ERR_INVALID);
		assert_true(closed_by_server(fd));
		close(fd);
	}
	/* The last slot and the largest payload are fine. */
	m = (struct man){ .cf = { .slot = ND_MAX_SLOTS - 1,
				  .max_payload = ND_MAX_PAYLOAD,
				  .flags = ND_CF_READ_ONLY } };
	assert_int_equal(manual_hs(f, &m, &fd), ND_OK);
	assert_true(m.si.write_epoch == 0);
	close(fd);
}

/*
 * A version-1 client (its ClientHello is the common 50-byte prefix and the
 * names) gets a 104-byte ServerHello: version 2, status 9, the rest zero;
 * then the server closes. Also a future version, and one whose name
 * lengths are out of range.
 */
static void test_version_refusal(void **state)
{
	struct fixture *f = *state;
	static const uint16_t versions[] = { 1, 3, 0xffff };
	uint8_t ch[ND_CLIENT_HELLO_FIXED + 14], sh[ND_SERVER_HELLO_LEN + 8];
	uint8_t zero[ND_SERVER_HELLO_LEN] = { 0 };

	for (size_t i = 0; i < 4; i++) {
		size_t got = 0, len = sizeof(ch);
		ssize_t r;
		int fd = tcp_connect(f->port);

		memset(ch, 0, sizeof(ch));
		nd_put32(ch, ND_MAGIC);
		nd_put16(ch + 4, versions[i % 3]);
		assert_int_equal(nd_random(ch + 8, ND_RANDOM_LEN), 0);
		nd_put64(ch + 40, (uint64_t)time(NULL));
		ch[48] = 7;
		ch[49] = 7;
		memcpy(ch + 50, "defaultdefault", 14);
		if (i == 3) {
			/* Version 1 with an empty identity: answered at once. */
			nd_put16(ch + 4, 1);
			ch[48] = 0;
			len = ND_CLIENT_HELLO_FIXED;
		}
		assert_int_equal(nd_write_full(fd, ch, len), 0);
		while (got < sizeof(sh)) {
			r = read(fd, sh + got, sizeof(sh) - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		/* Exactly 104 bytes, then EOF: no hang, no more. */
		assert_int_equal(got, ND_SERVER_HELLO_LEN);
		assert_int_equal(nd_get32(sh), ND_MAGIC);
		assert_int_equal(nd_get16(sh + 4), ND_VERSION);
		assert_int_equal(nd_get16(sh + 6), ND_ERR_VERSION);
		assert_memory_equal(sh + 8, zero, ND_SERVER_HELLO_LEN - 8);
		close(fd);
	}
}

/* Unknown extension types and ClientHello flags are ignored. */
static void test_hello_extensions_ignored(void **state)
{
	struct fixture *f = *state;
	uint8_t ext[ND_EXT_MAX];
	struct man m;
	int fd;

	memset(ext, 0x5a, sizeof(ext));
	nd_put16(ext, 0x7777);
	nd_put16(ext + 2, 10);
	nd_put16(ext + 14, 0);
	nd_put16(ext + 16, 0);
	nd_put16(ext + 18, 0xffff);
	nd_put16(ext + 20, ND_EXT_MAX - 22);
	m = (struct man){ .ext = ext, .ext_len = ND_EXT_MAX,
			  .cf = { .flags = ND_CF_READ_ONLY } };
	assert_int_equal(manual_hs(f, &m, &fd), ND_OK);
	close(fd);
	m = (struct man){ .ext = ext, .ext_len = 14, .flags = 0xffff,
			  .cf = { .flags = ND_CF_READ_ONLY } };
	assert_int_equal(manual_hs(f, &m, &fd), ND_OK);
	close(fd);
	/* In pieces: every part of the hello and of the finish read partially. */
	m = (struct man){ .ext = ext, .ext_len = 14, .trickle = true,
			  .cf = { .flags = ND_CF_READ_ONLY } };
	assert_int_equal(manual_hs(f, &m, &fd), ND_OK);
	close(fd);
	m = (struct man){ .ext = ext, .ext_len = 16, .trickle = true };
	nd_put16(ext + 2, 13);		/* one byte past ext_len: closed */
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_HELLO);
	close(fd);
}

/*
 * Broken ClientHellos are closed without any answer: bad extension
 * framing, ext_len over 512, a low-order key share.
 */
static void test_hello_malformed_closed(void **state)
{
	struct fixture *f = *state;
	uint8_t ext[16] = { 0 };
	struct man m;
	int fd;

	nd_put16(ext + 2, 13);		/* runs one byte past ext_len 16 */
	m = (struct man){ .ext = ext, .ext_len = 16 };
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_HELLO);
	close(fd);
	m = (struct man){ .ext = ext, .ext_len = 3 };	/* header cut */
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_HELLO);
	close(fd);
	m = (struct man){ .share = MAN_SHARE_ZERO };
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_HELLO);
	close(fd);
	m = (struct man){ .share = MAN_SHARE_ONE };
	assert_int_equal(manual_hs(f, &m, &fd), MAN_NO_HELLO);
	close(fd);
	{
		/* ext_len 513 */
		uint8_t ch[ND_CLIENT_HELLO_FIXED + 14 + ND_CLIENT_HELLO_TAIL];
		uint8_t b[8];

		memset(ch, 0, sizeof(ch));
		nd_put32(ch, ND_MAGIC);
		nd_put16(ch + 4, ND_VERSION);
		nd_put64(ch + 40, (uint64_t)time(NULL));
		ch[48] = 7;
		ch[49] = 7;
		memcpy(ch + 50, "defaultdefault", 14);
		memset(ch + 64, 9, ND_SHARE_LEN);
		nd_put16(ch + 64 + ND_SHARE_LEN, ND_EXT_MAX + 1);
		fd = tcp_connect(f->port);
		assert_int_equal(nd_write_full(fd, ch, sizeof(ch)), 0);
		assert_int_equal(read(fd, b, sizeof(b)), 0);
		close(fd);
	}
	/* The server is fine. */
	m = (struct man){ 0 };
	assert_int_equal(manual_hs(f, &m, &fd), ND_OK);
	close(fd);
}

static void test_handshake_timeout(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	int fd = tcp_connect(f->port), fd2;
	uint8_t partial[10] = { 0x4e, 0x44, 0x53, 0x4b };
	double dt;

	/* One silent, one sending a partial hello: both dropped in time. */
	fd2 = tcp_connect(f->port);
	assert_int_equal(write(fd2, partial, sizeof(partial)), 10);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_true(closed_by_server(fd));
	assert_true(closed_by_server(fd2));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(dt >= HS_TIMEOUT_MS / 1000.0 - 0.05);
	assert_true(dt < 3.0 * scale);
	close(fd);
	close(fd2);

	/* Not a netdisk client at all: dropped at once, without a reply. */
	{
		uint8_t junk[ND_CLIENT_HELLO_FIXED];

		memset(junk, 'G', sizeof(junk));
		fd = tcp_connect(f->port);
		assert_int_equal(nd_write_full(fd, junk, sizeof(junk)), 0);
		assert_int_equal(read(fd, junk, sizeof(junk)), 0);
		close(fd);
	}
}

/* True if the server has not closed fd (nothing readable within 200 ms). */
static bool still_open(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 200 * scale) == 0;
}

/*
 * Pending handshakes have a budget of their own (8 here, 4 per address)
 * and hold no thread: a newcomer over budget evicts the oldest pending one
 * of its address, or of the busiest address when only the total is full,
 * and a real client always gets in, also from a flooding address.
 */
static void test_pending_budget(void **state)
{
	struct fixture *f = *state;
	int threads0 = count_dir("/proc/self/task");
	int a[5], b[4], c[4], d, i;
	uint8_t buf[512];
	struct conn cl;

	/* A fifth from 127.0.0.2 evicts the first at once. */
	for (i = 0; i < 5; i++)
		a[i] = tcp_connect_from(f->port, "127.0.0.2");
	assert_true(closed_by_server(a[0]));
	for (i = 1; i < 5; i++)
		assert_true(still_open(a[i]));
	/* Four from 127.0.0.3: the total (8) is full, nothing evicted. */
	for (i = 0; i < 4; i++)
		b[i] = tcp_connect_from(f->port, "127.0.0.3");
	for (i = 1; i < 5; i++)
		assert_true(still_open(a[i]));
	/* A newcomer from a third address: the oldest of the busiest goes. */
	d = tcp_connect_from(f->port, "127.0.0.4");
	assert_true(closed_by_server(a[1]));
	assert_true(still_open(d));
	for (i = 0; i < 4; i++)
		assert_true(still_open(b[i]));
	/* No thread per pending handshake. */
	assert_int_equal(count_dir("/proc/self/task"), threads0);

	/* Silence and partial garbage from the client's own address. */
	for (i = 0; i < 4; i++) {
		c[i] = tcp_connect_from(f->port, "127.0.0.1");
		if (i % 2)
			assert_int_equal(write(c[i], "GET / HTTP/1.0\r\n\r\n",
					       18), 18);
	}
	open_ok(f, &cl, NULL, 0);
	assert_int_equal(do_req(&cl, ND_OP_READ, 0, 512, 0, buf), ND_OK);
	conn_close(&cl);
	open_ok(f, &cl, NULL, ND_CF_READ_ONLY);
	conn_close(&cl);
	for (i = 2; i < 5; i++)
		close(a[i]);
	for (i = 0; i < 4; i++) {
		close(b[i]);
		close(c[i]);
	}
	close(a[0]);
	close(a[1]);
	close(d);
}

/* Sends a raw request header (and body_extra zero bytes) as one record. */
static void send_raw_req(struct conn *cn, const uint8_t hdr[ND_REQ_HDR_LEN],
			 size_t body_extra)
{
	uint8_t buf[ND_REQ_HDR_LEN + 1024] = { 0 };
	struct iovec v = { buf, ND_REQ_HDR_LEN + body_extra };

	assert_true(body_extra <= 1024);
	memcpy(buf, hdr, ND_REQ_HDR_LEN);
	assert_int_equal(nd_send_record(cn->fd, &cn->c.tx, &v, 1), 0);
}

/*
 * PROTOCOL.md section 4, "Server, requests", row by row: every malformed
 * header closes the connection (and only it); the other invalid requests
 * get their status and the connection goes on.
 */
static void test_invalid_request_table(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *what;
		uint8_t op, flags, reserved;
		uint32_t len;
		uint64_t off;
		size_t body;		/* data bytes after the header */
	} closing[] = {
		{ "unknown op", 6, 0, 0, 512, 0, 0 },
		{ "unknown flag", ND_OP_READ, 0x2, 0, 512, 0, 0 },
		{ "reserved not 0", ND_OP_READ, 0, 1, 512, 0, 0 },
		{ "unaligned offset", ND_OP_READ, 0, 0, 512, 100, 0 },
		{ "unaligned length", ND_OP_READ, 0, 0, 600, 0, 0 },
		{ "READ of length 0", ND_OP_READ, 0, 0, 0, 0, 0 },
		{ "WRITE of length 0", ND_OP_WRITE, 0, 0, 0, 0, 0 },
		{ "READ over max_payload", ND_OP_READ, 0, 0,
		  ND_DEFAULT_PAYLOAD + 512, 0, 0 },
		{ "FLUSH with a length", ND_OP_FLUSH, 0, 0, 512, 0, 0 },
		{ "FLUSH with an offset", ND_OP_FLUSH, 0, 0, 0, 512, 0 },
		{ "DISCONNECT with a length", ND_OP_DISCONNECT, 0, 0, 512, 0,
		  0 },
		{ "WRITE body shorter than its length", ND_OP_WRITE, 0, 0,
		  1024, 0, 512 },
		{ "READ with a body", ND_OP_READ, 0, 0, 512, 0, 512 },
		{ "TRIM with a body", ND_OP_TRIM, 0, 0, 512, 0, 512 },
	};
	uint8_t buf[4096] = { 0 };
	struct conn a, keep;

	open_ok(f, &keep, NULL, 0);
	for (size_t i = 0; i < sizeof(closing) / sizeof(closing[0]); i++) {
		uint8_t hdr[ND_REQ_HDR_LEN];
		struct nd_request r = {
			.op = closing[i].op, .flags = closing[i].flags,
			.length = closing[i].len, .handle = 7,
			.offset = closing[i].off,
		};

		open_ok(f, &a, keep.info.token, 0);
		nd_request_encode(hdr, &r);
		hdr[3] = closing[i].reserved;
		send_raw_req(&a, hdr, closing[i].body);
		if (!closed_by_server(a.fd))
			fail_msg("%s: connection not closed", closing[i].what);
		conn_close(&a);
	}
	/* The session's other connection is untouched by all of that. */
	assert_int_equal(do_req(&keep, ND_OP_READ, 0, 512, 0, buf), ND_OK);

	/* Statuses: the connection stays. */
	assert_int_equal(do_req(&keep, ND_OP_TRIM, 0, 0, 0, NULL),
			 ND_ERR_INVALID);
	assert_int_equal(do_req(&keep, ND_OP_WRITE_ZEROES, 0, 0, 0, NULL),
			 ND_ERR_INVALID);
	assert_int_equal(do_req(&keep, ND_OP_READ, 0, 512, 1ull << 40, buf),
			 ND_ERR_RANGE);
	assert_int_equal(do_req(&keep, ND_OP_WRITE, 0, 512, 1ull << 40, buf),
			 ND_ERR_RANGE);
	/* FUA on READ and FLUSH is ignored, not refused. */
	assert_int_equal(do_req(&keep, ND_OP_READ, ND_REQ_FUA, 512, 0, buf),
			 ND_OK);
	assert_int_equal(do_req(&keep, ND_OP_FLUSH, ND_REQ_FUA, 0, 0, NULL),
			 ND_OK);
	assert_int_equal(do_req(&keep, ND_OP_READ, 0, 4096, 0, buf), ND_OK);
	conn_close(&keep);
}

static void test_malformed_closes_only_that_conn(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[ND_REQ_HDR_LEN] = { 0 }, buf[512];
	struct iovec v = { hdr, sizeof(hdr) };
	struct conn a, b, c;

	open_ok(f, &a, NULL, 0);
	open_ok(f, &b, a.info.token, 0);
	open_ok(f, &c, a.info.token, 0);

	/* Unknown op: connection a is closed. */
	hdr[0] = 9;
	assert_int_equal(nd_send_record(a.fd, &a.c.tx, &v, 1), 0);
	assert_true(closed_by_server(a.fd));

	/* Garbage record (fails authentication): b is closed. */
	{
		uint8_t junk[4 + 40];

		memset(junk, 0x33, sizeof(junk));
		nd_put32(junk, 40);
		assert_int_equal(nd_write_full(b.fd, junk, sizeof(junk)), 0);
		assert_true(closed_by_server(b.fd));
	}
	/* c still works, and so does the session. */
	assert_int_equal(do_req(&c, ND_OP_READ, 0, 512, 0, buf), ND_OK);

	/* Oversized record length: closed before reading a body. */
	{
		uint8_t big[4];

		nd_put32(big, ND_REQ_HDR_LEN + ND_DEFAULT_PAYLOAD +
			      ND_TAG_LEN + 1);
		assert_int_equal(nd_write_full(c.fd, big, sizeof(big)), 0);
		assert_true(closed_by_server(c.fd));
	}
	conn_close(&a);
	conn_close(&b);
	conn_close(&c);

	/* The session's lock survives into grace; the token rejoins. */
	{
		struct conn d;
		uint8_t token[ND_TOKEN_LEN];

		memcpy(token, a.info.token, sizeof(token));
		usleep(50 * 1000);
		open_ok(f, &d, token, 0);
		assert_int_equal(do_req(&d, ND_OP_READ, 0, 512, 0, buf),
				 ND_OK);
		conn_close(&d);
	}
}

/*
 * A record too short for a request header is logged with its length only:
 * the old line printed the header fields from whatever the stack buffer
 * held, here the previous request's offset.
 */
static void test_malformed_log_line(void **state)
{
	struct fixture *f = *state;
	const uint64_t stale = 0x7766554433221000ull;
	struct log_capture lc;
	char stale_dec[32];
	struct conn a;
	char *log;

	snprintf(stale_dec, sizeof(stale_dec), "%llu",
		 (unsigned long long)stale);
	open_ok(f, &a, NULL, 0);
	log_capture_start(&lc);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512, stale, NULL),
			 ND_ERR_RANGE);
	/* An authentic record with an empty body. */
	assert_int_equal(nd_send_record(a.fd, &a.c.tx, NULL, 0), 0);
	assert_true(closed_by_server(a.fd));
	usleep(50 * 1000);
	log = log_capture_end(&lc);
	conn_close(&a);
	assert_non_null(strstr(log, "malformed request"));
	assert_non_null(strstr(log, "record 0 bytes"));
	assert_null(strstr(log, stale_dec));
	free(log);
}

/*
 * Nothing of a session token reaches the log, at debug level, through
 * new sessions, joins, a busy refusal, grace and expiry.
 */
static void test_log_has_no_token(void **state)
{
	struct fixture *f = *state;
	uint8_t tokens[3][ND_TOKEN_LEN];
	struct log_capture lc;
	uint16_t status = 0;
	struct conn a, b, c, ro;
	char *log;

	log_capture_start(&lc);
	open_ok(f, &a, NULL, 0);
	open_ok(f, &b, a.info.token, 0);
	open_ok(f, &ro, NULL, ND_CF_READ_ONLY);
	assert_int_equal(try_open(f, &c, NULL, NULL, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_BUSY);
	memcpy(tokens[0], a.info.token, ND_TOKEN_LEN);
	memcpy(tokens[1], ro.info.token, ND_TOKEN_LEN);
	conn_close(&a);
	conn_close(&b);
	conn_close(&ro);
	usleep(50 * 1000);
	open_ok(f, &a, tokens[0], 0);		/* back within grace */
	conn_close(&a);
	usleep((GRACE_MS + 200) * 1000);
	open_ok(f, &a, NULL, 0);		/* after expiry */
	memcpy(tokens[2], a.info.token, ND_TOKEN_LEN);
	send_req(&a, ND_OP_DISCONNECT, 0, 0, 1, 0, NULL);
	assert_true(closed_by_server(a.fd));
	conn_close(&a);
	usleep(50 * 1000);
	log = log_capture_end(&lc);
	assert_non_null(strstr(log, "new session"));
	assert_non_null(strstr(log, "joined session"));
	assert_non_null(strstr(log, "busy"));
	for (int i = 0; i < 3; i++)
		assert_false(log_has_secret(log, tokens[i], ND_TOKEN_LEN));
	free(log);
}

static void test_pipeline_and_disconnect(void **state)
{
	struct fixture *f = *state;
	enum { N = 200 };	/* more than the per-connection in-flight cap */
	static uint8_t bufs[N][4096];
	bool seen[N] = { false };
	struct nd_reply rep;
	struct conn a;
	int i;

	open_ok(f, &a, NULL, 0);
	/* Writes stamped with their index, sent back to back. */
	for (i = 0; i < N; i++) {
		memset(bufs[i], i & 0xff, 4096);
		bufs[i][0] = (uint8_t)(i >> 8);
		send_req(&a, ND_OP_WRITE, 0, 4096, (uint64_t)i,
			 (uint64_t)i * 4096, bufs[i]);
	}
	for (i = 0; i < N; i++) {
		assert_true(recv_reply(&a, &rep, NULL, 0) >= 0);
		assert_true(rep.handle < N);
		assert_false(seen[rep.handle]);
		seen[rep.handle] = true;
		assert_int_equal(rep.status, ND_OK);
	}
	/* Reads pipelined, then DISCONNECT: every reply arrives, then EOF. */
	for (i = 0; i < N; i++)
		send_req(&a, ND_OP_READ, 0, 4096, 1000 + (uint64_t)i,
			 (uint64_t)i * 4096, NULL);
	send_req(&a, ND_OP_DISCONNECT, 0, 0, 9999, 0, NULL);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < N; i++) {
		uint8_t data[4096];
		int k;

		assert_true(recv_reply(&a, &rep, data, sizeof(data)) >= 0);
		k = (int)(rep.handle - 1000);
		assert_true(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		assert_int_equal(rep.status, ND_OK);
		assert_memory_equal(data, bufs[k], 4096);
	}
	{
		uint8_t tmp[64];

		assert_int_equal(nd_recv_record(a.fd, &a.c.rx, tmp,
						sizeof(tmp)), ND_RECV_EOF);
	}
	conn_close(&a);

	/* DISCONNECT ended the session: no grace, the lock is free now. */
	open_ok(f, &a, NULL, 0);
	conn_close(&a);
}

/*
 * Replies made on the receiver (page-cache reads, refusals) and by workers
 * (reads over 256 KiB) mixed in one pipeline longer than the in-flight
 * cap: every request is answered exactly once, with the right data.
 */
static void test_pipeline_mixed_paths(void **state)
{
	struct fixture *f = *state;
	enum { N = 300, BIG = 512 * 1024 };
	uint8_t *data = malloc(BIG);
	bool seen[N] = { false };
	struct nd_reply rep;
	struct conn a;
	int i;

	assert_non_null(data);
	open_ok(f, &a, NULL, ND_CF_READ_ONLY);
	for (i = 0; i < N; i++) {
		switch (i % 3) {
		case 0:		/* 4 KiB, cached: served by the receiver */
			send_req(&a, ND_OP_READ, 0, 4096, (uint64_t)i,
				 (uint64_t)(i % 1024) * 4096, NULL);
			break;
		case 1:		/* refused: out of range, or read-only */
			send_req(&a, i % 2 ? ND_OP_READ : ND_OP_TRIM, 0, 4096,
				 (uint64_t)i, DISK_SIZE, NULL);
			break;
		default:	/* too big for the receiver: a worker */
			send_req(&a, ND_OP_READ, 0, BIG, (uint64_t)i,
				 (uint64_t)(i % 7) * BIG, NULL);
			break;
		}
	}
	for (i = 0; i < N; i++) {
		int k;

		assert_true(recv_reply(&a, &rep, data, BIG) >= 0);
		k = (int)rep.handle;
		assert_true(k >= 0 && k < N && !seen[k]);
		seen[k] = true;
		switch (k % 3) {
		case 0:
			assert_int_equal(rep.status, ND_OK);
			assert_int_equal(rep.length, 4096);
			assert_true(all_bytes(data, 4096, (uint8_t)(k % 1024)));
			break;
		case 1:
			assert_int_equal(rep.status, k % 2 ? ND_ERR_RANGE :
					 ND_ERR_READ_ONLY);
			assert_int_equal(rep.length, 0);
			break;
		default:
			assert_int_equal(rep.status, ND_OK);
			assert_int_equal(rep.length, BIG);
			/* Block b holds byte b: first and last of the range. */
			assert_int_equal(data[0], (k % 7) * (BIG / 4096) & 0xff);
			assert_int_equal(data[BIG - 1],
					 ((k % 7 + 1) * (BIG / 4096) - 1) & 0xff);
			break;
		}
	}
	/* Still in sync after all that. */
	assert_int_equal(do_req(&a, ND_OP_FLUSH, 0, 0, 0, NULL), ND_OK);
	conn_close(&a);
	free(data);
}

static void test_max_payload_negotiation(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[16384];
	uint16_t status = 0;
	struct conn a;

	assert_int_equal(try_open(f, &a, NULL, NULL, 0, NULL, 8192, &status),
			 ND_HS_OK);
	assert_int_equal(a.info.max_payload, 8192);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 8192, 0, buf), ND_OK);
	/* Over the negotiated maximum: malformed, connection closed. */
	send_req(&a, ND_OP_READ, 0, 16384, 1, 0, NULL);
	assert_true(closed_by_server(a.fd));
	conn_close(&a);
}

static void test_restart_keeps_export_id(void **state)
{
	struct fixture *f = *state;
	uint8_t id[ND_EXPORT_ID_LEN], token[ND_TOKEN_LEN];
	uint16_t status = 0;
	struct conn a;

	open_ok(f, &a, NULL, 0);
	memcpy(id, a.info.export_id, sizeof(id));
	memcpy(token, a.info.token, sizeof(token));
	/* Shutdown with a connection open: it is closed, the server exits. */
	stop_server(f);
	assert_true(closed_by_server(a.fd));
	conn_close(&a);

	start_server(f);
	open_ok(f, &a, NULL, 0);	/* the lock died with the server */
	assert_memory_equal(a.info.export_id, id, ND_EXPORT_ID_LEN);
	conn_close(&a);
	assert_int_equal(try_open(f, &a, NULL, token, 0, NULL, 0, &status),
			 ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_NO_SESSION);
}

/*
 * Shutdown while a client floods READs and never reads the replies: the
 * server must still exit (cutting it off after the drain time), and a
 * well-behaved client's reply must have gone out.
 */
static void test_shutdown_with_stuck_client(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	struct conn a, b;
	int i, buf = 1 << 12;

	open_ok(f, &a, NULL, 0);
	open_ok(f, &b, NULL, ND_CF_READ_ONLY);
	setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	for (i = 0; i < 300; i++)
		send_req(&a, ND_OP_READ, 0, 1 << 20, (uint64_t)i, 0, NULL);
	usleep(100 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5 * scale);
	nd_server_destroy(f->srv);
	f->srv = NULL;
	assert_true(closed_by_server(b.fd));
	conn_close(&a);
	conn_close(&b);
}

/* More records than ND_REKEY_RECORDS each way: both keys rotate. */
static void test_rekey(void **state)
{
	struct fixture *f = *state;
	const int total = (int)ND_REKEY_RECORDS + 3000, window = 64;
	int sent = 0, got = 0;
	uint8_t data[512];
	struct nd_reply rep;
	struct conn a;

	open_ok(f, &a, NULL, ND_CF_READ_ONLY);
	while (got < total) {
		while (sent < total && sent - got < window) {
			send_req(&a, ND_OP_READ, 0, 512, (uint64_t)sent,
				 (uint64_t)(sent % 8192) * 512, NULL);
			sent++;
		}
		assert_true(recv_reply(&a, &rep, data, sizeof(data)) >= 0);
		assert_int_equal(rep.status, ND_OK);
		assert_int_equal(data[0], ((rep.handle % 8192) / 8) & 0xff);
		got++;
	}
	assert_true(a.c.tx.seq > ND_REKEY_RECORDS);
	assert_true(a.c.rx.seq > ND_REKEY_RECORDS);
	assert_int_equal(do_req(&a, ND_OP_READ, 0, 512, 4096, data), ND_OK);
	assert_int_equal(data[0], 1);
	conn_close(&a);
}

/*
 * Replies sealed by different threads on one connection (the receiver's
 * small batches, its large page-cache reads, workers' FLUSH replies) while
 * the server's key rotates: every reply must open in order, once, with
 * the right data.
 */
static void test_rekey_mixed_sealers(void **state)
{
	struct fixture *f = *state;
	const int total = (int)ND_REKEY_RECORDS + 3000, window = 48;
	enum { BIG = 192 * 1024 };
	uint8_t *data = malloc(BIG), *seen = calloc((size_t)total, 1);
	int sent = 0, got = 0, big = 0;
	struct nd_reply rep;
	struct conn a;

	assert_non_null(data);
	assert_non_null(seen);
	open_ok(f, &a, NULL, 0);
	while (got < total) {
		while (sent < total && sent - got < window) {
			int i = sent++;
			uint64_t off = (uint64_t)(i % 960) * 4096;

			if (i % 1024 == 5)
				send_req(&a, ND_OP_READ, 0, BIG, (uint64_t)i,
					 off, NULL);
			else if (i % 3 == 0)
				send_req(&a, ND_OP_FLUSH, 0, 0, (uint64_t)i,
					 0, NULL);
			else
				send_req(&a, ND_OP_READ, 0, i % 3 == 1 ?
					 4096 : 512, (uint64_t)i, off, NULL);
		}
		assert_true(recv_reply(&a, &rep, data, BIG) >= 0);
		assert_true(rep.handle < (uint64_t)total);
		assert_false(seen[rep.handle]);
		seen[rep.handle] = 1;
		assert_int_equal(rep.status, ND_OK);
		if (rep.op == ND_OP_FLUSH) {
			assert_int_equal(rep.handle % 3, 0);
		} else {
			uint32_t len = rep.handle % 1024 == 5 ? BIG :
				       rep.handle % 3 == 1 ? 4096 : 512;
			uint32_t blk = (uint32_t)(rep.handle % 960);

			assert_int_equal(rep.length, len);
			/* Block b holds byte b & 0xff. */
			for (uint32_t o = 0; o < len; o += 4096)
				assert_true(all_bytes(data + o,
						      len - o < 4096 ? len - o :
						      4096,
						      (uint8_t)(blk + o / 4096)));
			big += len == BIG;
		}
		got++;
	}
	assert_int_equal(big, (total + 1018) / 1024);
	assert_true(a.c.rx.seq > ND_REKEY_RECORDS);
	conn_close(&a);
	free(seen);
	free(data);
}

/*
 * For client threads (no cmocka assertions off the main thread): a
 * read-only session on a socket of its own; the socket, or -1.
 */
static int thread_session(struct fixture *f, struct nd_crypto *c)
{
	struct nd_client_params p = {
		.psk = f->key, .flags = ND_CF_READ_ONLY,
	};
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(f->port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct nd_session_info info;
	uint16_t status;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    nd_handshake_client(fd, &p, c, &info, &status) != ND_HS_OK) {
		close(fd);
		return -1;
	}
	return fd;
}

struct bigreader {
	struct fixture *f;
	unsigned int seed;
	int ok;
};

/*
 * Its own connection, 8 x 1 MiB READs in flight at random block offsets,
 * every block checked; no cmocka assertions off the main thread.
 */
static void *big_reader(void *arg)
{
	struct bigreader *br = arg;
	enum { N = 48, LEN = 1 << 20, DEPTH = 8 };
	const uint32_t blocks = (DISK_SIZE - LEN) / 4096;
	const size_t cap = ND_REPLY_HDR_LEN + LEN + ND_TAG_LEN;
	uint32_t first[N];
	uint8_t *rec = malloc(cap);
	struct nd_crypto c;
	int fd = rec ? thread_session(br->f, &c) : -1, sent = 0, got = 0;

	if (fd < 0) {
		free(rec);
		return NULL;
	}
	while (got < N) {
		struct nd_reply rep;
		long n;

		while (sent < N && sent - got < DEPTH) {
			struct nd_request r = {
				.op = ND_OP_READ, .length = LEN,
				.handle = (uint64_t)sent,
			};
			uint8_t hdr[ND_REQ_HDR_LEN];
			struct iovec v = { hdr, sizeof(hdr) };

			first[sent] = (uint32_t)rand_r(&br->seed) % blocks;
			r.offset = (uint64_t)first[sent] * 4096;
			nd_request_encode(hdr, &r);
			if (nd_send_record(fd, &c.tx, &v, 1) < 0)
				goto out;
			sent++;
		}
		n = nd_recv_record(fd, &c.rx, rec, cap);
		if (n < 0 || nd_reply_decode(rec, (size_t)n, &rep) < 0 ||
		    rep.handle >= (uint64_t)sent || rep.status != ND_OK ||
		    rep.length != LEN)
			break;
		for (uint32_t b = 0; b < LEN / 4096; b++)
			if (!all_bytes(rec + ND_REPLY_HDR_LEN + b * 4096, 4096,
				       (uint8_t)(first[rep.handle] + b)))
				goto out;
		got++;
	}
out:
	br->ok = got;
	nd_crypto_free(&c);
	close(fd);
	free(rec);
	return NULL;
}

/* Several connections streaming 1 MiB reads at once, content checked. */
static void test_large_reads_concurrent(void **state)
{
	struct fixture *f = *state;
	enum { T = 3 };
	struct bigreader br[T];
	pthread_t th[T];
	int i;

	for (i = 0; i < T; i++) {
		br[i] = (struct bigreader){ .f = f, .seed = 7u + (unsigned)i };
		assert_int_equal(pthread_create(&th[i], NULL, big_reader,
						&br[i]), 0);
	}
	for (i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(br[i].ok, 48);
	}
}

struct flood {
	struct fixture *f;
	int ok;
};

/* Runs in its own thread: no cmocka assertions here, only counting. */
static void *flood_client(void *arg)
{
	struct flood *fl = arg;
	uint8_t rec[ND_REPLY_HDR_LEN + 4096 + ND_TAG_LEN];
	struct nd_crypto c;
	int fd = thread_session(fl->f, &c), i;

	if (fd < 0)
		return NULL;
	for (i = 0; i < 50; i++) {
		struct nd_request r = {
			.op = ND_OP_READ, .length = 4096, .handle = (uint64_t)i,
			.offset = (uint64_t)i * 4096,
		};
		uint8_t hdr[ND_REQ_HDR_LEN];
		struct iovec v = { hdr, sizeof(hdr) };
		struct nd_reply rep;
		long n;

		nd_request_encode(hdr, &r);
		if (nd_send_record(fd, &c.tx, &v, 1) < 0)
			break;
		n = nd_recv_record(fd, &c.rx, rec, sizeof(rec));
		if (n < 0 || nd_reply_decode(rec, (size_t)n, &rep) < 0)
			break;
		if (rep.status == ND_OK && rep.handle == (uint64_t)i &&
		    rep.length == 4096 &&
		    rec[ND_REPLY_HDR_LEN + 100] == (i & 0xff))
			fl->ok++;
	}
	nd_crypto_free(&c);
	close(fd);
	return NULL;
}

static void test_concurrent_clients(void **state)
{
	struct fixture *f = *state;
	enum { T = 8 };
	struct flood fl[T];
	pthread_t th[T];
	int i;

	for (i = 0; i < T; i++) {
		fl[i].f = f;
		fl[i].ok = 0;
		assert_int_equal(pthread_create(&th[i], NULL, flood_client,
						&fl[i]), 0);
	}
	for (i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(fl[i].ok, 50);
	}
}

/*
 * Many pipelined writes to distinct blocks, 4 KiB ones (stored by the
 * receiver where the backend allows) mixed with FUA and 256 KiB ones (a
 * worker, unless the file is in memory): every reply OK, then after FLUSH
 * the file and READs hold exactly what was written, and nothing else moved.
 */
static void test_inline_writes_verified(void **state)
{
	struct fixture *f = *state;
	enum { N = 250, NB = 3, BIG = 256 * 1024, BIG_AT = 2u << 20 };
	uint8_t *w = malloc(BIG), *r = malloc(BIG);
	bool seen[N + NB] = { false };
	struct nd_reply rep;
	struct conn a;
	int i;

	assert_non_null(w);
	assert_non_null(r);
	open_ok(f, &a, NULL, 0);
	/* 4 KiB write i goes to block 2i (below BIG_AT), byte i * 7 + 1. */
	assert_true(N * 2 * 4096 <= BIG_AT && BIG_AT + NB * BIG <= DISK_SIZE);
	for (i = 0; i < N; i++) {
		memset(w, (i * 7 + 1) & 0xff, 4096);
		send_req(&a, ND_OP_WRITE, i % 3 == 0 ? ND_REQ_FUA : 0, 4096,
			 (uint64_t)i, (uint64_t)i * 2 * 4096, w);
		if (i % 100 == 0) {	/* big ones in between, above BIG_AT */
			memset(w, 0xf0 + i / 100, BIG);
			send_req(&a, ND_OP_WRITE, 0, BIG, (uint64_t)N + i / 100,
				 BIG_AT + (uint64_t)(i / 100) * BIG, w);
		}
	}
	for (i = 0; i < N + NB; i++) {
		assert_true(recv_reply(&a, &rep, NULL, 0) >= 0);
		assert_true(rep.handle < N + NB && !seen[rep.handle]);
		seen[rep.handle] = true;
		assert_int_equal(rep.op, ND_OP_WRITE);
		assert_int_equal(rep.status, ND_OK);
		assert_int_equal(rep.length, 0);
	}
	assert_int_equal(do_req(&a, ND_OP_FLUSH, 0, 0, 0, NULL), ND_OK);
	for (i = 0; i < N; i++) {
		uint8_t want = (i * 7 + 1) & 0xff;
		off_t off = (off_t)i * 2 * 4096;

		file_pread(f, r, 4096, off);
		assert_true(all_bytes(r, 4096, want));
		assert_int_equal(do_req(&a, ND_OP_READ, 0, 4096, (uint64_t)off,
					r), ND_OK);
		assert_true(all_bytes(r, 4096, want));
		/* The odd block between keeps its initial byte. */
		file_pread(f, r, 4096, off + 4096);
		assert_true(all_bytes(r, 4096, (uint8_t)((2 * i + 1) & 0xff)));
	}
	for (i = 0; i < NB; i++) {
		file_pread(f, r, BIG, BIG_AT + (off_t)i * BIG);
		assert_true(all_bytes(r, BIG, (uint8_t)(0xf0 + i)));
	}
	conn_close(&a);
	free(w);
	free(r);
}

/*
 * A write the backend refuses (beyond RLIMIT_FSIZE: EFBIG, also on the
 * receiver's no-wait attempt) still gets an I/O error, with or without FUA,
 * leaves the file alone, and the connection goes on.
 */
static void test_inline_write_error(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, lim = { .rlim_cur = 2u << 20 };
	void (*old_xfsz)(int);
	uint8_t w[4096], r[4096];
	struct conn a;

	memset(w, 0xab, sizeof(w));
	open_ok(f, &a, NULL, 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 4096, 3u << 20, w),
			 ND_ERR_IO);
	assert_int_equal(do_req(&a, ND_OP_WRITE, ND_REQ_FUA, 4096, 3u << 20,
				w), ND_ERR_IO);
	assert_int_equal(do_req(&a, ND_OP_WRITE, 0, 4096, 1u << 20, w), ND_OK);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_xfsz);
	assert_int_equal(do_req(&a, ND_OP_FLUSH, 0, 0, 0, NULL), ND_OK);
	file_pread(f, r, sizeof(r), 3u << 20);
	assert_true(all_bytes(r, sizeof(r), ((3u << 20) / 4096) & 0xff));
	file_pread(f, r, sizeof(r), 1u << 20);
	assert_true(all_bytes(r, sizeof(r), 0xab));
	conn_close(&a);
}

/*
 * A client that queued far more writes than there are workers, on a disk
 * that hangs, goes away: the server drops the writes no worker started
 * (only the two running ones reach the disk, and the file shows only
 * those), also when the receiver was held by backpressure (more than
 * ND_SRV_MAX_INFLIGHT sent) and saw the hang-up only by checking for it.
 */
static void test_gone_client_queue_dropped(void **state)
{
	struct fixture *f = *state;
	/*
	 * A few more than the in-flight limit, so the receiver waits in
	 * backpressure; few enough that the unread rest and the FIN fit in
	 * the server's smallest receive window (a FIN stuck behind unread
	 * data cannot be seen: RELIABILITY.md).
	 */
	enum { N = ND_SRV_MAX_INFLIGHT + 8, BS = 4096 };
	uint8_t w[BS], r[BS];
	struct logcap lc;
	struct conn a;
	bool dropped;

	memset(w, 0xee, sizeof(w));
	logcap_start(&lc, "queued requests dropped");
	open_ok(f, &a, NULL, 0);
	for (int i = 0; i < N; i++)
		send_req(&a, ND_OP_WRITE, 0, BS, (uint64_t)i, (uint64_t)i * BS,
			 w);
	assert_true(gate_wait_writes(f->gate, 2));
	conn_close(&a);
	/* The old server never logs it (nor drops anything): go on anyway. */
	dropped = logcap_wait(&lc, 10000 * scale);
	gate_open(f->gate);
	stop_server(f);
	logcap_stop(&lc);
	assert_int_equal(f->gate->writes, 2);
	assert_true(dropped);
	/* Requests 0 and 1 were running; block i keeps byte i after those. */
	for (int i = 2; i < N; i++) {
		file_pread(f, r, BS, (off_t)i * BS);
		assert_true(all_bytes(r, BS, (uint8_t)(i & 0xff)));
	}
}

/*
 * A client handshake that proves the key, asks for a new read-write
 * session and resets the connection right after its ClientFinish, before
 * the SessionInfo (and so the token) can reach it.
 */
static void open_and_reset(struct fixture *f)
{
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.timestamp = (uint64_t)time(NULL),
		.identity_len = 7,
		.export_len = 7,
	};
	struct nd_client_finish cf = { .max_payload = ND_DEFAULT_PAYLOAD,
				       .epoch = 1 };
	uint8_t chb[ND_CLIENT_HELLO_MAX], shb[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], eph[ND_SHARE_LEN];
	uint8_t cfb[ND_CLIENT_FINISH_LEN];
	struct iovec v = { cfb, sizeof(cfb) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct nd_server_hello sh;
	struct nd_crypto c;
	size_t chl;
	int fd = tcp_connect(f->port);

	memcpy(ch.identity, "default", 7);
	memcpy(ch.export_name, "default", 7);
	assert_int_equal(nd_random(ch.random, sizeof(ch.random)), 0);
	assert_int_equal(nd_x25519_keygen(eph, ch.share), 0);
	chl = nd_client_hello_encode(chb, &ch);
	assert_int_equal(write(fd, chb, chl), (ssize_t)chl);
	assert_int_equal(nd_read_full(fd, shb, sizeof(shb)), 0);
	assert_int_equal(nd_server_hello_decode(shb, &sh), 0);
	assert_int_equal(sh.status, ND_OK);
	nd_transcript(chb, chl, shb, th);
	assert_int_equal(nd_key_exchange(eph, sh.share, f->key, ch.random,
					 sh.random, th, okm), 0);
	assert_int_equal(nd_crypto_init(&c, okm, true), 0);
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, cf.verify);
	nd_client_finish_encode(cfb, &cf);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg,
				    sizeof(lg)), 0);
	assert_int_equal(nd_send_record(fd, &c.tx, &v, 1), 0);
	close(fd);		/* RST */
	nd_crypto_free(&c);
	nd_wipe(okm, sizeof(okm));
}

/*
 * A new session whose SessionInfo could not be sent has a token nobody
 * knows: it must not keep the write lock for the grace period, or the
 * client's retry (a new session) is refused as BUSY for that long.
 */
static void test_session_info_lost_releases_lock(void **state)
{
	struct fixture *f = *state;
	int level = nd_log_level;
	uint16_t status = 0;
	struct logcap lc;
	struct conn a;
	bool failed;
	int i;

	nd_log_level = ND_LOG_INFO;
	logcap_start(&lc, "handshake failed sending session info");
	/* The reset usually beats the SessionInfo; retry if it did not. */
	for (i = 0; i < 20; i++) {
		open_and_reset(f);
		if ((failed = logcap_wait(&lc, 1000 * scale)))
			break;
		/* Lost the race: that session's lock is held, start over. */
		stop_server(f);
		start_server(f);
	}
	logcap_stop(&lc);
	nd_log_level = level;
	assert_true(failed);
	/* The failed connection detaches right after that line. */
	for (i = 0; i < 100; i++) {
		if (try_open(f, &a, NULL, NULL, 0, NULL, 0, &status) ==
		    ND_HS_OK)
			break;
		assert_int_equal(status, ND_ERR_BUSY);
		usleep(20000);
	}
	assert_int_equal(status, ND_OK);
	conn_close(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write_flush,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_trim_write_zeroes,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_trim_read_only, setup_rw,
						teardown),
		cmocka_unit_test_setup_teardown(test_trim_read_only_export,
						setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup_rw,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_only_export,
						setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_read_only_client,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_join_grace_expiry,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_join, setup_rw,
						teardown),
		cmocka_unit_test_setup_teardown(test_timestamp_extremes,
						setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key_and_export,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_refusals,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_openssl_failure,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_client_retries_closed_handshake,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_client_finish_invalid,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_version_refusal,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_hello_extensions_ignored,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_hello_malformed_closed,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_closes_only_that_conn,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_log_line,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_request_table,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_pending_budget,
						setup_rw_budget, teardown),
		cmocka_unit_test_setup_teardown(test_log_has_no_token,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_and_disconnect,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_mixed_paths,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_max_payload_negotiation,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_restart_keeps_export_id,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_with_stuck_client,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_rekey, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_inline_writes_verified,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_inline_writes_verified,
						setup_rw_shm, teardown),
		cmocka_unit_test_setup_teardown(test_inline_write_error,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_inline_write_error,
						setup_rw_shm, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_mixed_sealers,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_large_reads_concurrent,
						setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_mixed_sealers,
						setup_rw_shm, teardown),
		cmocka_unit_test_setup_teardown(test_large_reads_concurrent,
						setup_rw_shm, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_clients,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_session_info_lost_releases_lock,
						setup_rw_long_grace, teardown),
		cmocka_unit_test_setup_teardown(test_gone_client_queue_dropped,
						setup_gated, teardown),
	};

	/* Before OpenSSL allocates anything (it refuses afterwards). */
	if (!CRYPTO_set_mem_functions(oom_malloc, oom_realloc, oom_free)) {
		fprintf(stderr, "CRYPTO_set_mem_functions failed\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
