// SPDX-License-Identifier: MIT
/*
 * netdiskd's session layer in-process (docs/PROTOCOL.md §1): fenced
 * reconnects (slots and epochs) and durable write epochs, on the real
 * server code over loopback sockets, with libnetdisk's client handshake.
 * A gate backend in front of the file holds writes, as a hung disk would.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "srv_config.h"
#include "state_dir.h"

#include "nd_wire.h"
#include "../../server/backend.h"
#include "../../server/log.h"
#include "../../server/server.h"

#define DISK_SIZE	(4u << 20)
#define BS		4096
static int scale = 1;

/* Holds every write until opened; counts writes begun and finished. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int started, finished;
	const struct nd_backend_ops *ops;
	void *h;
};

struct fixture {
	char path[64];
	char state_dir[64];
	uint8_t key[ND_KEY_LEN];
	struct gate *gate;
	struct nd_server *srv;
	pthread_t thread;
	uint16_t port;
	bool read_only;
	int hs_timeout_ms;
	bool no_grace;			/* --grace 0 */
};

struct conn {
	int fd;
	struct nd_crypto c;
	struct nd_session_info info;
	uint8_t *rxbuf;
};

/* What a client asks for in its ClientFinish. */
struct attempt {
	const uint8_t *token;
	uint32_t flags;
	uint16_t slot;
	uint32_t epoch;
	uint64_t resume_writer, resume_own;
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
	int rc;

	pthread_mutex_lock(&g->lock);
	g->started++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	rc = g->ops->pwrite(g->h, buf, len, off, fua);
	pthread_mutex_lock(&g->lock);
	g->finished++;
	pthread_mutex_unlock(&g->lock);
	return rc;
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

static int gate_get(struct gate *g, const int *field)
{
	int v;

	pthread_mutex_lock(&g->lock);
	v = *field;
	pthread_mutex_unlock(&g->lock);
	return v;
}

/* Until n writes have reached the gate (5 s at most). */
static bool gate_wait_started(struct gate *g, int n)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5 * scale;
	pthread_mutex_lock(&g->lock);
	while (g->started < n &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) == 0)
		;
	ok = g->started >= n;
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

static void *run_server(void *arg)
{
	nd_server_run(arg);
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
					5000 * scale,
		.drain_ms = 500 * scale,
	};
	struct nd_config cfg;
	char err[256];

	cfg_one(&cfg, f->path, f->read_only, f->key, f->state_dir);
	cfg.workers = 1;	/* one stuck write holds the queue */
	cfg.grace_s = f->no_grace ? 0 : 30;
	next_gate = f->gate;
	nd_backend_open = f->gate ? gate_backend_open : nd_file_open;
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	nd_backend_open = nd_file_open;
	if (!f->srv)
		fail_msg("nd_server_create: %s", err);
	f->port = nd_server_port(f->srv);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f->srv),
			 0);
}

static void stop_server(struct fixture *f)
{
	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	f->srv = NULL;
}

static int setup_common(void **state, bool gated)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *preload = getenv("LD_PRELOAD");
	uint8_t block[BS];
	int fd;

	assert_non_null(f);
	if (preload && strstr(preload, "valgrind"))
		scale = 10;
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->path, sizeof(f->path), "/tmp/nd-test-session-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	/* Block i holds byte i & 0xff. */
	for (uint32_t i = 0; i < DISK_SIZE / BS; i++) {
		memset(block, (int)(i & 0xff), sizeof(block));
		assert_int_equal(write(fd, block, sizeof(block)), BS);
	}
	close(fd);
	snprintf(f->state_dir, sizeof(f->state_dir),
		 "/tmp/nd-test-state-XXXXXX");
	assert_non_null(mkdtemp(f->state_dir));
	assert_int_equal(nd_random(f->key, sizeof(f->key)), 0);
	if (gated) {
		f->gate = calloc(1, sizeof(*f->gate));
		assert_non_null(f->gate);
		pthread_mutex_init(&f->gate->lock, NULL);
		pthread_cond_init(&f->gate->cond, NULL);
	}
	start_server(f);
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return setup_common(state, false);
}

static int setup_gated(void **state)
{
	return setup_common(state, true);
}


/* A read-only export, with an empty state directory. */
static int setup_ro(void **state)
{
	struct fixture *f;

	setup_common(state, false);
	f = *state;
	stop_server(f);
	state_dir_remove(f->state_dir);
	assert_int_equal(mkdir(f->state_dir, 0700), 0);
	f->read_only = true;
	start_server(f);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->gate)
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

/*
 * Handshake as a asks; ND_OK, or the status refused with, or -1 if the
 * server closed without an answer. No cmocka assertion after connect:
 * runs on helper threads too.
 */
static int try_attach(struct fixture *f, struct conn *cn,
		      const struct attempt *a)
{
	struct nd_client_params p = {
		.psk = f->key,
		.token = a->token,
		.flags = a->flags,
		.slot = a->slot,
		.epoch = a->epoch,
		.resume_writer = a->resume_writer,
		.resume_own = a->resume_own,
	};
	enum nd_hs_result r;
	uint16_t status = 0;

	memset(cn, 0, sizeof(*cn));
	cn->fd = tcp_connect(f->port);
	r = nd_handshake_client(cn->fd, &p, &cn->c, &cn->info, &status);
	if (r == ND_HS_OK)
		return ND_OK;
	close(cn->fd);
	cn->fd = -1;
	return r == ND_HS_REFUSED ? status : -1;
}

static void attach_ok(struct fixture *f, struct conn *cn,
		      const struct attempt *a)
{
	assert_int_equal(try_attach(f, cn, a), ND_OK);
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

static void send_req(struct conn *cn, uint8_t op, uint32_t len,
		     uint64_t handle, uint64_t off, const void *data)
{
	struct nd_request r = {
		.op = op, .length = len, .handle = handle, .offset = off,
	};
	uint8_t hdr[ND_REQ_HDR_LEN], copy[BS];
	struct iovec v[2] = { { hdr, sizeof(hdr) }, { copy, len } };

	nd_request_encode(hdr, &r);
	if (op == ND_OP_WRITE) {
		assert_true(len <= sizeof(copy));
		memcpy(copy, data, len);	/* sealed in place */
	}
	assert_int_equal(nd_send_record(cn->fd, &cn->c.tx, v,
					op == ND_OP_WRITE ? 2 : 1), 0);
}

/* One reply; its status, or -1 if the connection ended instead. */
static int recv_status(struct conn *cn, uint64_t handle)
{
	size_t cap = ND_REPLY_HDR_LEN + BS + ND_TAG_LEN;
	struct nd_reply rep;
	long n;

	if (!cn->rxbuf)
		cn->rxbuf = malloc(cap);
	assert_non_null(cn->rxbuf);
	n = nd_recv_record(cn->fd, &cn->c.rx, cn->rxbuf, cap);
	if (n < 0)
		return -1;
	assert_int_equal(nd_reply_decode(cn->rxbuf, (size_t)n, &rep), 0);
	assert_int_equal(rep.handle, handle);
	return rep.status;
}

static int write_block(struct conn *cn, uint32_t block, uint8_t byte)
{
	static uint64_t handle = 1;
	uint8_t buf[BS];
	uint64_t h = handle++;

	memset(buf, byte, sizeof(buf));
	send_req(cn, ND_OP_WRITE, BS, h, (uint64_t)block * BS, buf);
	return recv_status(cn, h);
}

/* The file's block holds byte v throughout. */
static bool block_is(struct fixture *f, uint32_t block, uint8_t v)
{
	uint8_t buf[BS];
	int fd = open(f->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, BS, (off_t)block * BS), BS);
	close(fd);
	for (int i = 0; i < BS; i++)
		if (buf[i] != v)
			return false;
	return true;
}

/* True if the server closed fd without sending anything more (3 s). */
static bool closed_silently(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t b[64];

	if (poll(&p, 1, 3000 * scale) != 1)
		return false;
	return read(fd, b, sizeof(b)) <= 0;
}

/* ---- fence ---- */

struct bg_attach {
	struct fixture *f;
	struct attempt a;
	struct conn cn;
	int status;
	int gate_finished;	/* writes finished when the answer came */
	pthread_t t;
};

static void *bg_attach_main(void *arg)
{
	struct bg_attach *b = arg;

	b->status = try_attach(b->f, &b->cn, &b->a);
	b->gate_finished = gate_get(b->f->gate, &b->f->gate->finished);
	return NULL;
}

/*
 * Slot 0 of a session has a WRITE stuck in the disk and four more queued
 * behind it (one worker). A reconnect of slot 0 with epoch 2 gets its
 * SessionInfo only after the stuck write finished; the queued writes are
 * never executed; the old connection is closed without a reply; other
 * handshakes go on meanwhile; attempts with an epoch not above 2 are
 * superseded.
 */
static void test_fence_waits_and_drops(void **state)
{
	struct fixture *f = *state;
	struct attempt first = { .slot = 0, .epoch = 1 };
	struct bg_attach b = { .f = f };
	struct conn a, other, late;
	uint8_t buf[BS];

	attach_ok(f, &a, &first);
	memset(buf, 0xa1, sizeof(buf));
	send_req(&a, ND_OP_WRITE, BS, 1, 10 * BS, buf);
	assert_true(gate_wait_started(f->gate, 1));
	memset(buf, 0xa2, sizeof(buf));
	for (int i = 0; i < 4; i++)
		send_req(&a, ND_OP_WRITE, BS, 2 + (uint64_t)i,
			 (uint64_t)(20 + i) * BS, buf);
	/* Let the receiver take them off the socket into the queue. */
	usleep(100000);

	b.a = (struct attempt){ .token = a.info.token, .slot = 0, .epoch = 2 };
	assert_int_equal(pthread_create(&b.t, NULL, bg_attach_main, &b), 0);
	/* While it waits, other handshakes are answered. */
	attach_ok(f, &other, &(struct attempt){ .token = a.info.token,
						.slot = 1, .epoch = 1 });
	assert_int_equal(gate_get(f->gate, &f->gate->finished), 0);
	conn_close(&other);
	/* Long enough for a server that does not wait to have answered. */
	usleep(300000);
	gate_open(f->gate);
	pthread_join(b.t, NULL);
	assert_int_equal(b.status, ND_OK);
	assert_int_equal(b.gate_finished, 1);

	/* The old connection: no reply for the stuck write, then closed. */
	assert_true(closed_silently(a.fd));
	/* Only the write that was running reached the disk. */
	assert_int_equal(gate_get(f->gate, &f->gate->started), 1);
	assert_true(block_is(f, 10, 0xa1));
	for (uint32_t i = 20; i < 24; i++)
		assert_true(block_is(f, i, (uint8_t)i));
	/* The new connection works; the resend lands, nothing after it. */
	assert_int_equal(write_block(&b.cn, 10, 0xb2), ND_OK);
	assert_true(block_is(f, 10, 0xb2));

	/* Stale attempts for slot 0. */
	assert_int_equal(try_attach(f, &late, &(struct attempt){
		.token = a.info.token, .slot = 0, .epoch = 2 }),
		ND_ERR_SUPERSEDED);
	assert_int_equal(try_attach(f, &late, &(struct attempt){
		.token = a.info.token, .slot = 0, .epoch = 1 }),
		ND_ERR_SUPERSEDED);
	/* Slot 1 is at epoch 1 too. */
	assert_int_equal(try_attach(f, &late, &(struct attempt){
		.token = a.info.token, .slot = 1, .epoch = 1 }),
		ND_ERR_SUPERSEDED);
	assert_int_equal(write_block(&b.cn, 11, 0xb3), ND_OK);
	conn_close(&b.cn);
	conn_close(&a);
}

/*
 * A reconnect still waiting for its fence is overtaken by a newer one: it
 * gets superseded, the newer one OK once the old write has finished.
 */
static void test_fence_waiting_superseded(void **state)
{
	struct fixture *f = *state;
	struct bg_attach b2 = { .f = f }, b3 = { .f = f };
	struct conn a;
	uint8_t buf[BS];

	attach_ok(f, &a, &(struct attempt){ .slot = 5, .epoch = 1 });
	memset(buf, 0xa1, sizeof(buf));
	send_req(&a, ND_OP_WRITE, BS, 1, 10 * BS, buf);
	assert_true(gate_wait_started(f->gate, 1));
	b2.a = (struct attempt){ .token = a.info.token, .slot = 5, .epoch = 2 };
	assert_int_equal(pthread_create(&b2.t, NULL, bg_attach_main, &b2), 0);
	/* b2 is parked (or about to be): the gate is still closed. */
	usleep(100000);
	b3.a = (struct attempt){ .token = a.info.token, .slot = 5, .epoch = 3 };
	assert_int_equal(pthread_create(&b3.t, NULL, bg_attach_main, &b3), 0);
	pthread_join(b2.t, NULL);
	assert_int_equal(b2.status, ND_ERR_SUPERSEDED);
	assert_int_equal(b2.gate_finished, 0);
	usleep(100000);
	gate_open(f->gate);
	pthread_join(b3.t, NULL);
	assert_int_equal(b3.status, ND_OK);
	assert_int_equal(b3.gate_finished, 1);
	assert_int_equal(write_block(&b3.cn, 10, 0xb3), ND_OK);
	assert_true(block_is(f, 10, 0xb3));
	conn_close(&b3.cn);
	conn_close(&a);
}

/*
 * The replaced connection's write never finishes within the reconnect's
 * handshake timeout: the reconnect is closed without an answer (it must
 * not be told OK while the old write may still land), and a later one
 * gets in once the disk has come back.
 */
static void test_fence_bounded_by_handshake_timeout(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;
	uint8_t buf[BS];

	stop_server(f);
	f->hs_timeout_ms = 500 * scale;
	start_server(f);
	attach_ok(f, &a, &(struct attempt){ .slot = 3, .epoch = 7 });
	memset(buf, 0xa1, sizeof(buf));
	send_req(&a, ND_OP_WRITE, BS, 1, 10 * BS, buf);
	assert_true(gate_wait_started(f->gate, 1));
	assert_int_equal(try_attach(f, &b, &(struct attempt){
		.token = a.info.token, .slot = 3, .epoch = 8 }), -1);
	assert_int_equal(gate_get(f->gate, &f->gate->finished), 0);
	gate_open(f->gate);
	attach_ok(f, &b, &(struct attempt){ .token = a.info.token, .slot = 3,
					    .epoch = 9 });
	assert_int_equal(write_block(&b, 10, 0xb2), ND_OK);
	conn_close(&b);
	conn_close(&a);
}

/*
 * A writer that goes away with a write stuck in the disk (no grace
 * period): its session, and so the write lock, ends only once that write
 * has finished; until then a new writer is busy.
 */
static void test_lock_outlives_running_write(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;
	uint8_t buf[BS];
	int status = -1;

	stop_server(f);
	f->no_grace = true;
	start_server(f);
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1 });
	memset(buf, 0xa1, sizeof(buf));
	send_req(&a, ND_OP_WRITE, BS, 1, 10 * BS, buf);
	assert_true(gate_wait_started(f->gate, 1));
	conn_close(&a);
	usleep(200000);		/* time to (wrongly) end the session */
	assert_int_equal(try_attach(f, &b, &(struct attempt){ .slot = 0,
							      .epoch = 1 }),
			 ND_ERR_BUSY);
	gate_open(f->gate);
	/* The session ends right after the write: soon, not at once. */
	for (int i = 0; i < 100 * scale; i++) {
		status = try_attach(f, &b, &(struct attempt){ .slot = 0,
							      .epoch = 1 });
		if (status != ND_ERR_BUSY)
			break;
		usleep(20000);
	}
	assert_int_equal(status, ND_OK);
	assert_true(block_is(f, 10, 0xa1));
	conn_close(&b);
}

/* ---- write epochs ---- */

/* The counters in the export's state file. */
static void state_read(struct fixture *f, uint64_t *reserved,
		       uint64_t *written)
{
	DIR *d = opendir(f->state_dir);
	struct dirent *de;
	char p[512];
	unsigned long long r, w;
	int n = 0;
	FILE *fp;

	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l != 32 + 6 || strcmp(de->d_name + 32, ".state"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->state_dir, de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
	fp = fopen(p, "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "netdisk write epochs 1 reserved %llu written %llu",
				&r, &w), 2);
	fclose(fp);
	*reserved = r;
	*written = w;
}

/* A session that leaves without DISCONNECT, its lock in the grace period. */
static void leave(struct fixture *f, struct conn *cn)
{
	conn_close(cn);
	/* A restart ends it (and shows the counters survive one). */
	stop_server(f);
	start_server(f);
}

static void test_write_epochs(void **state)
{
	struct fixture *f = *state;
	uint64_t reserved, written, e1, l0, e2;
	struct conn a, b, x;

	/* A writes: written is its epoch, stored before the write ran. */
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1 });
	e1 = a.info.write_epoch;
	l0 = a.info.last_writer;
	assert_true(e1 != 0);
	assert_int_equal(l0, 0);
	state_read(f, &reserved, &written);
	assert_int_equal(reserved, e1);
	assert_int_equal(written, 0);
	assert_int_equal(write_block(&a, 5, 0x55), ND_OK);
	state_read(f, &reserved, &written);
	assert_int_equal(written, e1);
	leave(f, &a);

	/* Back after a restart: it wrote last. */
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1,
					    .resume_writer = l0,
					    .resume_own = e1 });
	e2 = a.info.write_epoch;
	assert_true(e2 > e1);
	assert_int_equal(a.info.last_writer, e1);
	leave(f, &a);		/* without writing */

	/*
	 * A session whose SessionInfo never reached its client (here: the
	 * client takes no note of it) reserves an epoch and writes nothing.
	 */
	attach_ok(f, &x, &(struct attempt){ .slot = 0, .epoch = 1,
					    .resume_writer = e1,
					    .resume_own = e2 });
	leave(f, &x);
	/* A's last session began when it had written last: still fine. */
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1,
					    .resume_writer = e1,
					    .resume_own = e2 });
	conn_close(&a);
	stop_server(f);
	start_server(f);

	/* B takes the lock and leaves without writing: no harm done. */
	attach_ok(f, &b, &(struct attempt){ .slot = 0, .epoch = 1 });
	assert_int_equal(b.info.last_writer, e1);
	leave(f, &b);
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1,
					    .resume_writer = e1,
					    .resume_own = e2 });
	leave(f, &a);

	/* B writes: A's view is stale now, and A is told so. */
	attach_ok(f, &b, &(struct attempt){ .slot = 0, .epoch = 1 });
	assert_int_equal(write_block(&b, 6, 0x66), ND_OK);
	state_read(f, &reserved, &written);
	assert_int_equal(written, b.info.write_epoch);
	leave(f, &b);
	assert_int_equal(try_attach(f, &a, &(struct attempt){
		.slot = 0, .epoch = 1, .resume_writer = e1, .resume_own = e2 }),
		ND_ERR_WRITTEN);
	/* Also read-only: its cache is as stale. */
	assert_int_equal(try_attach(f, &a, &(struct attempt){
		.flags = ND_CF_READ_ONLY, .slot = 0, .epoch = 1,
		.resume_writer = e1, .resume_own = e2 }), ND_ERR_WRITTEN);
	/* The refusal took no lock; a read-only session sees the writer. */
	attach_ok(f, &x, &(struct attempt){ .flags = ND_CF_READ_ONLY,
					    .slot = 0, .epoch = 1 });
	assert_int_equal(x.info.write_epoch, 0);
	assert_int_equal(x.info.last_writer, written);
	conn_close(&x);
	attach_ok(f, &x, &(struct attempt){ .slot = 0, .epoch = 1 });
	assert_int_equal(x.info.last_writer, written);
	/* Busy is checked first (PROTOCOL.md §4): the lock is held. */
	assert_int_equal(try_attach(f, &a, &(struct attempt){
		.slot = 0, .epoch = 1, .resume_writer = e1, .resume_own = e2 }),
		ND_ERR_BUSY);
	/* Joins ignore the resume fields. */
	attach_ok(f, &b, &(struct attempt){ .token = x.info.token, .slot = 1,
					    .epoch = 1, .resume_writer = 1,
					    .resume_own = 2 });
	conn_close(&b);
	conn_close(&x);
}

/* A read-only export keeps no state: no writer, epoch 0, no file. */
static void test_read_only_export_no_state(void **state)
{
	struct fixture *f = *state;
	struct conn a;
	DIR *d;
	struct dirent *de;
	int n = 0;

	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1 });
	assert_int_equal(a.info.write_epoch, 0);
	assert_int_equal(a.info.last_writer, 0);
	conn_close(&a);
	/* Nobody can have written it since: resuming passes at 0. */
	attach_ok(f, &a, &(struct attempt){ .slot = 0, .epoch = 1,
					    .resume_writer = 0,
					    .resume_own = 7 });
	conn_close(&a);
	/* The read-only server wrote nothing there. */
	d = opendir(f->state_dir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 0);
}

/* The first writes of a session on several connections at once. */
struct bg_write {
	struct conn *cn;
	uint32_t block;
	int status;
	pthread_t t;
};

static void *bg_write_main(void *arg)
{
	struct bg_write *w = arg;

	w->status = write_block(w->cn, w->block, 0x77);
	return NULL;
}

static void test_first_writes_concurrent(void **state)
{
	struct fixture *f = *state;
	enum { N = 4 };
	struct conn c[N];
	struct bg_write w[N];
	uint64_t reserved, written;

	attach_ok(f, &c[0], &(struct attempt){ .slot = 0, .epoch = 1 });
	for (int i = 1; i < N; i++)
		attach_ok(f, &c[i], &(struct attempt){
			.token = c[0].info.token, .slot = (uint16_t)i,
			.epoch = 1 });
	for (int i = 0; i < N; i++) {
		w[i] = (struct bg_write){ .cn = &c[i], .block = 30 + i };
		assert_int_equal(pthread_create(&w[i].t, NULL, bg_write_main,
						&w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(w[i].t, NULL);
		assert_int_equal(w[i].status, ND_OK);
		assert_true(block_is(f, 30 + i, 0x77));
	}
	state_read(f, &reserved, &written);
	assert_int_equal(written, c[0].info.write_epoch);
	for (int i = 0; i < N; i++)
		conn_close(&c[i]);
}

/* ---- the state directory ---- */

static void test_state_dir_errors(void **state)
{
	struct fixture *f = *state;
	const struct nd_server_config opts = { 0 };
	struct nd_config cfg;
	char dir[128], err[256], file[400];
	struct nd_server *s;
	DIR *d;
	struct dirent *de;
	int fd;

	stop_server(f);
	/* A state "directory" under a regular file cannot be made. */
	snprintf(dir, sizeof(dir), "%s/sub", f->path);
	cfg_one(&cfg, f->path, false, f->key, dir);
	s = nd_server_create(&opts, &cfg, err, sizeof(err));
	assert_null(s);
	assert_non_null(strstr(err, "state directory"));
	assert_non_null(strstr(err, "cannot create"));
	/* None at all. */
	cfg_one(&cfg, f->path, false, f->key, NULL);
	assert_null(nd_server_create(&opts, &cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "state directory"));
	/* A read-only export needs none. */
	cfg_one(&cfg, f->path, true, f->key, dir);
	s = nd_server_create(&opts, &cfg, err, sizeof(err));
	assert_non_null(s);
	nd_server_destroy(s);

	/* A damaged state file is not silently started over. */
	start_server(f);
	stop_server(f);
	d = opendir(f->state_dir);
	assert_non_null(d);
	file[0] = 0;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".state"))
			snprintf(file, sizeof(file), "%s/%s", f->state_dir,
				 de->d_name);
	closedir(d);
	assert_true(file[0]);
	fd = open(file, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	close(fd);
	cfg_one(&cfg, f->path, false, f->key, f->state_dir);
	assert_null(nd_server_create(&opts, &cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "malformed"));
	unlink(file);
	start_server(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fence_waits_and_drops,
						setup_gated, teardown),
		cmocka_unit_test_setup_teardown(test_fence_waiting_superseded,
						setup_gated, teardown),
		cmocka_unit_test_setup_teardown(test_fence_bounded_by_handshake_timeout,
						setup_gated, teardown),
		cmocka_unit_test_setup_teardown(test_lock_outlives_running_write,
						setup_gated, teardown),
		cmocka_unit_test_setup_teardown(test_write_epochs, setup_rw,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_only_export_no_state,
						setup_ro, teardown),
		cmocka_unit_test_setup_teardown(test_first_writes_concurrent,
						setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_errors,
						setup_rw, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
