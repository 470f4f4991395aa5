// SPDX-License-Identifier: MIT
/*
 * netdiskd with a configuration file (netdiskd.conf(5)), in-process:
 * several exports, identities with keys of their own or a shared key,
 * access per export, the export list, reloads and the status, over
 * loopback with libnetdisk's client handshake and real files.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "../../server/backend.h"
#include "../../server/config.h"
#include "../../server/control.h"
#include "../../server/cow.h"
#include "../../server/internal.h"
#include "../../server/log.h"
#include "../../server/server.h"

#define IMG_SIZE	(1u << 20)
#define BS		4096

/* The exports every test starts with. */
static const char base_exports[] =
	"[export alpha]\npath = %1$s/alpha.img\nclients = lab-*\n\n"
	"[export beta]\npath = %1$s/beta.img\nread-only = yes\n"
	"clients = db01 lab-01\n\n"
	"[export gamma]\npath = %1$s/gamma.img\n\n";

struct fixture {
	char dir[64];
	char conf[128];
	const char *listen;		/* NULL: 127.0.0.1 */
	int grace;			/* seconds; 0: 1 */
	uint8_t lab01[ND_KEY_LEN], lab02[ND_KEY_LEN], db01[ND_KEY_LEN];
	uint8_t shared[ND_KEY_LEN];
	struct nd_server *srv;
	pthread_t thread;
	uint16_t port;
};

struct conn {
	int fd;
	struct nd_crypto c;
	struct nd_session_info info;
	uint8_t buf[ND_REPLY_HDR_LEN + BS + ND_TAG_LEN];
};

/* ---- files ---- */

static void path_of(const struct fixture *f, char *out, size_t n,
		    const char *name)
{
	snprintf(out, n, "%s/%s", f->dir, name);
}

static void make_image(const struct fixture *f, const char *name,
		       uint8_t fill)
{
	uint8_t block[BS];
	char p[256];
	int fd;

	path_of(f, p, sizeof(p), name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	memset(block, fill, sizeof(block));
	for (unsigned int i = 0; i < IMG_SIZE / BS; i++)
		assert_int_equal(write(fd, block, BS), BS);
	close(fd);
}

/* Writes key to DIR/name (64 hex characters, mode 0600). */
static void write_key(const struct fixture *f, const char *name,
		      const uint8_t key[ND_KEY_LEN])
{
	char p[256], hex[2 * ND_KEY_LEN + 2];
	int fd;

	for (int i = 0; i < ND_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	hex[2 * ND_KEY_LEN] = '\n';
	path_of(f, p, sizeof(p), name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, hex, 2 * ND_KEY_LEN + 1),
			 2 * ND_KEY_LEN + 1);
	close(fd);
}

/*
 * The configuration file: [server] with the key dir (and the shared key
 * if shared), then exports (a format with %1$s for the directory).
 */
__attribute__((format(printf, 3, 4)))
static void write_conf(const struct fixture *f, bool shared,
		       const char *exports, ...)
{
	FILE *c = fopen(f->conf, "w");
	va_list ap;

	assert_non_null(c);
	fprintf(c, "[server]\nlisten = %s\nport = 0\n"
		"key-dir = %s/keys\nworkers = 2\ngrace = %d\nlog-level = %s\n"
		"state-dir = %s/state\ncontrol = none\n",
		f->listen ? f->listen : "127.0.0.1", f->dir,
		f->grace ? f->grace : 1,
		getenv("ND_TEST_DEBUG") ? "debug" : "error", f->dir);
	if (shared)
		fprintf(c, "key-file = %s/shared.key\n", f->dir);
	fprintf(c, "\n");
	va_start(ap, exports);
	vfprintf(c, exports, ap);
	va_end(ap);
	assert_int_equal(fclose(c), 0);
}

/* ---- the server ---- */

static void *run_server(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

static void start_server(struct fixture *f)
{
	const struct nd_server_config opts = {
		.handshake_timeout_ms = 5000,
		.drain_ms = 2000,
	};
	struct nd_config cfg;
	char err[512];

	if (nd_config_load(f->conf, &cfg, err, sizeof(err)) < 0)
		fail_msg("nd_config_load: %s", err);
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
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

static int setup_common(void **state, bool shared)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[256];

	assert_non_null(f);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-test-exports-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	path_of(f, f->conf, sizeof(f->conf), "netdiskd.conf");
	path_of(f, p, sizeof(p), "keys");
	assert_int_equal(mkdir(p, 0700), 0);
	path_of(f, p, sizeof(p), "state");
	assert_int_equal(mkdir(p, 0700), 0);
	make_image(f, "alpha.img", 0xa1);
	make_image(f, "beta.img", 0xb2);
	make_image(f, "gamma.img", 0xc3);
	make_image(f, "delta.img", 0xd4);
	assert_int_equal(nd_random(f->lab01, ND_KEY_LEN), 0);
	assert_int_equal(nd_random(f->lab02, ND_KEY_LEN), 0);
	assert_int_equal(nd_random(f->db01, ND_KEY_LEN), 0);
	assert_int_equal(nd_random(f->shared, ND_KEY_LEN), 0);
	write_key(f, "keys/lab-01.key", f->lab01);
	write_key(f, "keys/lab-02.key", f->lab02);
	write_key(f, "keys/db01.key", f->db01);
	write_key(f, "shared.key", f->shared);
	write_conf(f, shared, base_exports, f->dir);
	start_server(f);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_shared(void **state)
{
	return setup_common(state, true);
}

static void remove_tree(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->srv)
		stop_server(f);
	remove_tree(f->dir);
	free(f);
	return 0;
}

/* Reloads and waits until the server applied or rejected it (5 s). */
static void reload(struct fixture *f, bool expect_applied)
{
	unsigned long a0, r0, a, r;

	nd_server_reload_count(f->srv, &a0, &r0);
	nd_server_reload(f->srv);
	for (int i = 0; i < 500; i++) {
		nd_server_reload_count(f->srv, &a, &r);
		if (a != a0 || r != r0)
			break;
		usleep(10000);
	}
	assert_int_equal(a, a0 + (expect_applied ? 1 : 0));
	assert_int_equal(r, r0 + (expect_applied ? 0 : 1));
}

/* ---- clients ---- */

static int tcp_connect_to(uint32_t addr, uint16_t port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(addr),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	return tcp_connect_to(INADDR_LOOPBACK, port);
}

static enum nd_hs_result try_open(struct fixture *f, struct conn *cn,
				  const char *identity, const uint8_t *key,
				  const char *export_name, uint32_t flags,
				  uint16_t *status)
{
	struct nd_client_params p = {
		.psk = key,
		.identity = identity,
		.export_name = export_name,
		.flags = flags,
		.epoch = 1,
		.timeout_ms = 5000,
	};
	enum nd_hs_result r;

	cn->fd = tcp_connect(f->port);
	*status = ND_OK;
	r = nd_handshake_client(cn->fd, &p, &cn->c, &cn->info, status);
	if (r != ND_HS_OK) {
		close(cn->fd);
		cn->fd = -1;
	}
	return r;
}

static void open_ok(struct fixture *f, struct conn *cn, const char *identity,
		    const uint8_t *key, const char *export_name)
{
	uint16_t status;
	enum nd_hs_result r = try_open(f, cn, identity, key, export_name, 0,
				       &status);

	if (r != ND_HS_OK)
		fail_msg("%s on %s: result %d status %u", identity,
			 export_name, r, status);
}

/*
 * A session the reload closed ends once its connection's thread has
 * finished, a moment after the client saw the close: open retries while
 * the export is busy, for half the grace period (1 s) at most, so a lock
 * kept for the grace period still fails.
 */
static void open_after_close(struct fixture *f, struct conn *cn,
			     const char *identity, const uint8_t *key,
			     const char *export_name)
{
	uint16_t status = ND_OK;

	for (int i = 0; i < 50; i++) {
		if (try_open(f, cn, identity, key, export_name, 0, &status) ==
		    ND_HS_OK)
			return;
		assert_int_equal(status, ND_ERR_BUSY);
		usleep(10000);
	}
	fail_msg("%s on %s: still busy", identity, export_name);
}

/* The status a handshake is refused with (after authentication). */
static uint16_t refused(struct fixture *f, const char *identity,
			const uint8_t *key, const char *export_name)
{
	struct conn cn;
	uint16_t status;

	assert_int_equal(try_open(f, &cn, identity, key, export_name, 0,
				  &status), ND_HS_REFUSED);
	return status;
}

static void conn_close(struct conn *cn)
{
	if (cn->fd >= 0)
		close(cn->fd);
	cn->fd = -1;
	nd_crypto_free(&cn->c);
}

/*
 * One request of len bytes (READ into, WRITE from cn->buf's data part):
 * its status, or -1 if the connection is gone.
 */
static int request_fill(struct conn *cn, uint8_t op, uint64_t off,
			uint8_t fill)
{
	static uint64_t handle = 1;
	bool bare = op == ND_OP_FLUSH || op == ND_OP_DISCONNECT;
	struct nd_request r = {
		.op = op, .length = bare ? 0 : BS, .handle = handle++,
		.offset = bare ? 0 : off,
	};
	uint8_t hdr[ND_REQ_HDR_LEN], data[BS];
	struct iovec v[2] = { { hdr, sizeof(hdr) }, { data, BS } };
	struct nd_reply rep;
	long n;

	nd_request_encode(hdr, &r);
	memset(data, fill, sizeof(data));
	if (nd_send_record(cn->fd, &cn->c.tx, v, op == ND_OP_WRITE ? 2 : 1))
		return -1;
	if (op == ND_OP_DISCONNECT)
		return ND_OK;	/* no reply */
	n = nd_recv_record(cn->fd, &cn->c.rx, cn->buf, sizeof(cn->buf));
	if (n < 0)
		return -1;
	assert_int_equal(nd_reply_decode(cn->buf, (size_t)n, &rep), 0);
	assert_true(rep.handle == r.handle);
	return rep.status;
}

static int request(struct conn *cn, uint8_t op, uint64_t off)
{
	return request_fill(cn, op, off, 0x5a);
}

/* A READ works on cn, and its data is block fill of the image. */
static void read_ok(struct conn *cn, uint8_t fill)
{
	assert_int_equal(request(cn, ND_OP_READ, 0), ND_OK);
	assert_int_equal(cn->buf[ND_REPLY_HDR_LEN], fill);
	assert_int_equal(cn->buf[ND_REPLY_HDR_LEN + BS - 1], fill);
}

/* The server closed cn: a request gets no reply. */
static void closed(struct conn *cn)
{
	assert_int_equal(request(cn, ND_OP_READ, 0), -1);
}

/* ---- the export list (hand-made ClientHello with the extension) ---- */

struct listing {
	int n;
	struct nd_list_entry e[8];
};

/* 0 and the list, or the refusing status, or 0xfffd: authentication. */
static unsigned int list_exports(struct fixture *f, const char *identity,
				 const uint8_t *key, struct listing *out)
{
	struct nd_client_hello ch = {
		.version = ND_VERSION,
		.timestamp = (uint64_t)time(NULL),
		.identity_len = (uint8_t)strlen(identity),
		.export_len = 1,
	};
	struct nd_client_finish cf = {
		.flags = ND_CF_READ_ONLY, .slot = 0, .epoch = 1,
	};
	struct nd_server_hello sh;
	struct nd_crypto c;
	uint8_t chb[ND_CLIENT_HELLO_MAX], shb[ND_SERVER_HELLO_LEN];
	uint8_t th[ND_HASH_LEN], okm[ND_OKM_LEN], mac[ND_HASH_LEN];
	uint8_t eph[ND_SHARE_LEN], cfb[ND_CLIENT_FINISH_LEN];
	static uint8_t rec[ND_LIST_MAX_LEN + ND_TAG_LEN];
	struct iovec v = { cfb, sizeof(cfb) };
	struct nd_session_info si;
	size_t len, off = ND_LIST_HDR_LEN;
	long n;
	int fd = tcp_connect(f->port);

	memcpy(ch.identity, identity, ch.identity_len);
	ch.export_name[0] = 'x';	/* any valid name: ignored */
	ch.ext_len = nd_ext_list_exports(ch.ext);
	assert_int_equal(nd_random(ch.random, sizeof(ch.random)), 0);
	assert_int_equal(nd_x25519_keygen(eph, ch.share), 0);
	len = nd_client_hello_encode(chb, &ch);
	assert_int_equal(nd_write_full(fd, chb, len), 0);
	assert_int_equal(nd_read_full(fd, shb, sizeof(shb)), 0);
	assert_int_equal(nd_server_hello_decode(shb, &sh), 0);
	nd_transcript(chb, len, shb, th);
	assert_int_equal(nd_key_exchange(eph, sh.share, key, ch.random,
					 sh.random, th, okm), 0);
	nd_finish_mac(okm + ND_OKM_S_FINISH, th, mac);
	if (!nd_equal(mac, sh.verify, ND_HASH_LEN)) {
		close(fd);
		return 0xfffd;
	}
	assert_int_equal(nd_crypto_init(&c, okm, true), 0);
	nd_finish_mac(okm + ND_OKM_C_FINISH, th, cf.verify);
	nd_client_finish_encode(cfb, &cf);
	assert_int_equal(nd_send_record(fd, &c.tx, &v, 1), 0);
	n = nd_recv_record(fd, &c.rx, rec, sizeof(rec));
	nd_crypto_free(&c);
	assert_true(n >= 0);
	if (!nd_list_is(rec, (size_t)n)) {
		assert_int_equal(n, ND_SESSION_INFO_LEN);
		assert_int_equal(nd_session_info_decode(rec, &si), 0);
		close(fd);
		return si.status;
	}
	out->n = (int)nd_get32(rec + 4);
	assert_true(out->n <= 8);
	for (int i = 0; i < out->n; i++)
		assert_int_equal(nd_list_entry_decode(rec, (size_t)n, &off,
						      &out->e[i]), 0);
	assert_int_equal(off, (size_t)n);
	/* Then the server closes. */
	assert_int_equal(read(fd, mac, 1), 0);
	close(fd);
	return 0;
}

static bool listed(const struct listing *l, int i, const char *name)
{
	return i < l->n && l->e[i].name_len == strlen(name) &&
	       memcmp(l->e[i].name, name, l->e[i].name_len) == 0;
}

/* ---- log capture ---- */

struct logcap {
	int saved;
	char path[64];
};

static void logcap_start(struct logcap *lc)
{
	int fd;

	snprintf(lc->path, sizeof(lc->path), "/tmp/nd-test-exports-log-XXXXXX");
	fd = mkstemp(lc->path);
	assert_true(fd >= 0);
	lc->saved = dup(STDERR_FILENO);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
	nd_log_level = ND_LOG_DEBUG;
}

/* What was logged since logcap_start (to be freed). */
static char *logcap_end(struct logcap *lc)
{
	char *text = calloc(1, 1 << 16);
	int fd;

	assert_non_null(text);
	dup2(lc->saved, STDERR_FILENO);
	close(lc->saved);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	fd = open(lc->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, text, (1 << 16) - 1) >= 0);
	close(fd);
	unlink(lc->path);
	return text;
}

/* ---- identities, keys and access ---- */

/*
 * Each identity has its own key; an unknown identity and a wrong key both
 * fail at the server's key proof (the client cannot tell them apart), the
 * log can. Access is per export: not allowed 15, no such export 8.
 */
static void test_identities_and_access(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;
	struct logcap lc;
	uint16_t status;
	uint8_t wrong[ND_KEY_LEN];
	char *log;

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	assert_false(a.info.flags & ND_EXP_READ_ONLY);
	assert_int_equal(a.info.size, IMG_SIZE);
	read_ok(&a, 0xa1);
	open_ok(f, &b, "db01", f->db01, "beta");
	assert_true(b.info.flags & ND_EXP_READ_ONLY);
	read_ok(&b, 0xb2);
	conn_close(&b);

	memcpy(wrong, f->lab01, sizeof(wrong));
	wrong[3] ^= 0x40;
	logcap_start(&lc);
	assert_int_equal(try_open(f, &b, "ghost", f->lab01, "alpha", 0,
				  &status), ND_HS_AUTH);
	assert_int_equal(try_open(f, &b, "lab-01", wrong, "alpha", 0,
				  &status), ND_HS_AUTH);
	/* Another identity's key is a wrong key too. */
	assert_int_equal(try_open(f, &b, "lab-02", f->lab01, "gamma", 0,
				  &status), ND_HS_AUTH);
	assert_int_equal(refused(f, "db01", f->db01, "alpha"), ND_ERR_ACCESS);
	assert_int_equal(refused(f, "db01", f->db01, "nope"),
			 ND_ERR_NO_EXPORT);
	assert_int_equal(refused(f, "lab-02", f->lab02, "beta"),
			 ND_ERR_ACCESS);
	usleep(100000);		/* the server logs after the client saw it */
	log = logcap_end(&lc);
	assert_non_null(strstr(log, "unknown identity 'ghost'"));
	assert_non_null(strstr(log, "identity 'lab-01': wrong key"));
	assert_non_null(strstr(log, "identity 'lab-02': wrong key"));
	assert_non_null(strstr(log, "(identity 'db01'): not allowed on export 'alpha', access denied"));
	assert_non_null(strstr(log, "(identity 'db01'): no such export 'nope'"));
	free(log);

	/* The session that was there goes on. */
	read_ok(&a, 0xa1);
	conn_close(&a);
}

/* Identities without a key file of their own use the shared key. */
static void test_shared_key(void **state)
{
	struct fixture *f = *state;
	struct conn a;
	uint16_t status;

	open_ok(f, &a, "kiosk-7", f->shared, "gamma");
	read_ok(&a, 0xc3);
	conn_close(&a);
	/* Not allowed on alpha (lab-*) even with a valid key. */
	assert_int_equal(refused(f, "kiosk-7", f->shared, "alpha"),
			 ND_ERR_ACCESS);
	/* An identity with a file of its own: the shared key is wrong. */
	assert_int_equal(try_open(f, &a, "lab-01", f->shared, "alpha", 0,
				  &status), ND_HS_AUTH);
	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	conn_close(&a);
}

/* One writer per read-write export; other exports are not affected. */
static void test_writer_per_export(void **state)
{
	struct fixture *f = *state;
	struct conn a, b, c;

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	assert_int_equal(refused(f, "lab-02", f->lab02, "alpha"),
			 ND_ERR_BUSY);
	/* Read-only beside the writer is fine. */
	assert_int_equal(try_open(f, &b, "lab-02", f->lab02, "alpha",
				  ND_CF_READ_ONLY, &(uint16_t){ 0 }),
			 ND_HS_OK);
	assert_true(b.info.flags & ND_EXP_READ_ONLY);
	conn_close(&b);
	/* gamma has a writer of its own. */
	open_ok(f, &c, "lab-02", f->lab02, "gamma");
	assert_false(c.info.flags & ND_EXP_READ_ONLY);
	assert_int_equal(request(&c, ND_OP_WRITE, 0), ND_OK);
	assert_int_equal(request(&a, ND_OP_WRITE, BS), ND_OK);
	conn_close(&a);
	conn_close(&c);
}

/* ---- the export list ---- */

static void test_export_list(void **state)
{
	struct fixture *f = *state;
	struct listing l;
	struct conn a;

	assert_int_equal(list_exports(f, "lab-01", f->lab01, &l), 0);
	assert_int_equal(l.n, 3);
	assert_true(listed(&l, 0, "alpha"));
	assert_true(listed(&l, 1, "beta"));
	assert_true(listed(&l, 2, "gamma"));
	assert_int_equal(l.e[0].size, IMG_SIZE);
	assert_int_equal(l.e[0].block_size, 512);
	assert_false(l.e[0].flags & (ND_EXP_READ_ONLY | ND_LIST_BUSY));
	assert_true(l.e[0].flags & ND_EXP_FLUSH);
	assert_true(l.e[1].flags & ND_EXP_READ_ONLY);

	assert_int_equal(list_exports(f, "db01", f->db01, &l), 0);
	assert_int_equal(l.n, 2);
	assert_true(listed(&l, 0, "beta"));
	assert_true(listed(&l, 1, "gamma"));

	/* A writer on alpha: busy in lab-02's list. */
	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	assert_int_equal(list_exports(f, "lab-02", f->lab02, &l), 0);
	assert_int_equal(l.n, 2);
	assert_true(listed(&l, 0, "alpha"));
	assert_true(listed(&l, 1, "gamma"));
	assert_true(l.e[0].flags & ND_LIST_BUSY);
	assert_false(l.e[1].flags & ND_LIST_BUSY);
	conn_close(&a);

	/* Nothing without the key, known identity or not. */
	assert_int_equal(list_exports(f, "ghost", f->lab01, &l), 0xfffd);
	assert_int_equal(list_exports(f, "db01", f->lab01, &l), 0xfffd);
}

/* ---- reload ---- */

static void test_reload_adds_export(void **state)
{
	struct fixture *f = *state;
	struct conn a, d;

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	assert_int_equal(refused(f, "lab-01", f->lab01, "delta"),
			 ND_ERR_NO_EXPORT);
	/* Same exports as before plus delta. */
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n"
		   "clients = lab-*\n\n[export beta]\npath = %1$s/beta.img\n"
		   "read-only = yes\nclients = db01 lab-01\n\n"
		   "[export delta]\npath = %1$s/delta.img\nclients = lab-01\n\n"
		   "[export gamma]\npath = %1$s/gamma.img\n", f->dir);
	reload(f, true);
	open_ok(f, &d, "lab-01", f->lab01, "delta");
	read_ok(&d, 0xd4);
	/* The session that was there never noticed. */
	read_ok(&a, 0xa1);
	assert_int_equal(request(&a, ND_OP_WRITE, 0), ND_OK);
	conn_close(&a);
	conn_close(&d);
}

/*
 * A removed key closes that identity's sessions and no other; a changed
 * key too, and the new key works at once.
 */
static void test_reload_revokes_keys(void **state)
{
	struct fixture *f = *state;
	struct conn a, b, c, d;
	uint16_t status;
	uint8_t nk[ND_KEY_LEN];
	char p[256];

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	open_ok(f, &b, "lab-02", f->lab02, "gamma");
	open_ok(f, &c, "db01", f->db01, "beta");
	path_of(f, p, sizeof(p), "keys/lab-02.key");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(nd_random(nk, sizeof(nk)), 0);
	write_key(f, "keys/db01.key", nk);
	reload(f, true);
	closed(&b);
	closed(&c);
	read_ok(&a, 0xa1);
	assert_int_equal(try_open(f, &d, "lab-02", f->lab02, "gamma", 0,
				  &status), ND_HS_AUTH);
	assert_int_equal(try_open(f, &d, "db01", f->db01, "beta", 0,
				  &status), ND_HS_AUTH);
	open_ok(f, &d, "db01", nk, "beta");
	read_ok(&d, 0xb2);
	/* gamma's write lock went with lab-02's session. */
	conn_close(&b);
	open_after_close(f, &b, "lab-01", f->lab01, "gamma");
	conn_close(&a);
	conn_close(&b);
	conn_close(&c);
	conn_close(&d);
}

/*
 * Can path be opened read-write (nobody locks it)? Tries for ms
 * milliseconds.
 */
static bool unlocked_within(const char *path, int ms)
{
	struct nd_export e = { 0 };
	char err[256];

	for (int i = 0; i <= ms / 10; i++) {
		if (nd_file_open(&e, path, false, err, sizeof(err)) == 0) {
			nd_export_close(&e);
			return true;
		}
		usleep(10000);
	}
	return false;
}

static bool unlocked(const char *path)
{
	return unlocked_within(path, 3000);
}

/*
 * A removed export closes its sessions and its file (the lock goes); an
 * identity no longer allowed loses its session; the rest stays.
 */
static void test_reload_removes_export_and_access(void **state)
{
	struct fixture *f = *state;
	struct conn a, b, c;
	char p[256];

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	open_ok(f, &b, "lab-02", f->lab02, "gamma");
	open_ok(f, &c, "lab-01", f->lab01, "beta");
	path_of(f, p, sizeof(p), "gamma.img");
	assert_false(unlocked_within(p, 0));
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n"
		   "clients = lab-02\n\n[export beta]\npath = %1$s/beta.img\n"
		   "read-only = yes\nclients = db01 lab-01\n", f->dir);
	reload(f, true);
	closed(&b);
	closed(&a);
	read_ok(&c, 0xb2);
	assert_true(unlocked(p));
	assert_int_equal(refused(f, "lab-02", f->lab02, "gamma"),
			 ND_ERR_NO_EXPORT);
	assert_int_equal(refused(f, "lab-01", f->lab01, "alpha"),
			 ND_ERR_ACCESS);
	/* alpha's lock went with lab-01's session. */
	conn_close(&a);
	open_after_close(f, &a, "lab-02", f->lab02, "alpha");
	conn_close(&a);
	conn_close(&b);
	conn_close(&c);
}

/*
 * A changed export on the same file (read-write to read-only): its
 * session is closed, and the new export takes the file over.
 */
static void test_reload_changes_export(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;

	open_ok(f, &a, "lab-02", f->lab02, "gamma");
	write_conf(f, false, base_exports, f->dir);
	reload(f, true);
	read_ok(&a, 0xc3);	/* unchanged: untouched */
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n"
		   "clients = lab-*\n\n[export beta]\npath = %1$s/beta.img\n"
		   "read-only = yes\nclients = db01 lab-01\n\n"
		   "[export gamma]\npath = %1$s/gamma.img\nread-only = yes\n",
		   f->dir);
	reload(f, true);
	closed(&a);
	open_ok(f, &b, "lab-02", f->lab02, "gamma");
	assert_true(b.info.flags & ND_EXP_READ_ONLY);
	read_ok(&b, 0xc3);
	conn_close(&a);
	conn_close(&b);
}

/*
 * A file that does not load, or an added export that cannot be opened:
 * rejected whole, the old configuration and its sessions stay.
 */
static void test_reload_rejected(void **state)
{
	struct fixture *f = *state;
	struct nd_export held = { 0 };
	struct conn a, b;
	FILE *c;
	char p[256], err[256];

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	c = fopen(f->conf, "w");
	assert_non_null(c);
	fprintf(c, "[server]\nbogus-key = 1\n");
	fclose(c);
	reload(f, false);
	read_ok(&a, 0xa1);
	open_ok(f, &b, "lab-02", f->lab02, "gamma");
	conn_close(&b);

	/* delta opens, epsilon's file is locked: neither appears. */
	make_image(f, "epsilon.img", 0xe5);
	path_of(f, p, sizeof(p), "epsilon.img");
	assert_int_equal(nd_file_open(&held, p, false, err, sizeof(err)), 0);
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n\n"
		   "[export delta]\npath = %1$s/delta.img\n\n"
		   "[export epsilon]\npath = %1$s/epsilon.img\n", f->dir);
	reload(f, false);
	assert_int_equal(refused(f, "lab-01", f->lab01, "delta"),
			 ND_ERR_NO_EXPORT);
	path_of(f, p, sizeof(p), "delta.img");
	assert_true(unlocked(p));	/* opened, then closed again */
	read_ok(&a, 0xa1);
	open_ok(f, &b, "db01", f->db01, "beta");
	conn_close(&b);

	/* Released: the same file now loads. */
	nd_export_close(&held);
	reload(f, true);
	open_ok(f, &b, "db01", f->db01, "epsilon");
	read_ok(&b, 0xe5);
	/* alpha is unchanged (path and mode): its session stays. */
	read_ok(&a, 0xa1);
	conn_close(&a);
	conn_close(&b);
}

/* ---- status ---- */

static char *status_text(struct fixture *f)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	assert_non_null(m);
	nd_server_status(f->srv, m);
	assert_int_equal(fclose(m), 0);
	return text;
}

static void test_status(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	struct conn a, b;
	char line[512], p[256], *text;

	open_ok(f, &a, "lab-01", f->lab01, "alpha");
	assert_int_equal(request(&a, ND_OP_WRITE, 0), ND_OK);
	read_ok(&a, 0x5a);
	read_ok(&a, 0x5a);
	open_ok(f, &b, "db01", f->db01, "beta");
	assert_int_equal(getsockname(a.fd, (struct sockaddr *)&me, &ml), 0);
	text = status_text(f);

	path_of(f, p, sizeof(p), "alpha.img");
	snprintf(line, sizeof(line),
		 "export alpha path=%s mode=rw size=%u sessions=1 writer=", p,
		 IMG_SIZE);
	assert_non_null(strstr(text, line));
	path_of(f, p, sizeof(p), "beta.img");
	snprintf(line, sizeof(line),
		 "export beta path=%s mode=ro size=%u sessions=1 writer=-\n",
		 p, IMG_SIZE);
	assert_non_null(strstr(text, line));
	path_of(f, p, sizeof(p), "gamma.img");
	snprintf(line, sizeof(line),
		 "export gamma path=%s mode=rw size=%u sessions=0 writer=-\n",
		 p, IMG_SIZE);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line),
		 " identity=lab-01 export=alpha mode=rw conns=1 peers=127.0.0.1:%u age=0 requests=3 read_bytes=%u written_bytes=%u\n",
		 ntohs(me.sin_port), 2 * BS, BS);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, " identity=db01 export=beta mode=ro conns=1 peers=127.0.0.1:"));
	assert_true(strncmp(text, "export alpha ", 13) == 0);
	free(text);
	conn_close(&a);
	conn_close(&b);

	/* A blank in a path cannot split (or forge) the record. */
	make_image(f, "my disk\\.img", 0x11);
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n"
		   "clients = lab-*\n\n[export beta]\npath = %1$s/beta.img\n"
		   "read-only = yes\nclients = db01 lab-01\n\n"
		   "[export delta]\npath = %1$s/my disk\\.img\n\n"
		   "[export gamma]\npath = %1$s/gamma.img\n", f->dir);
	reload(f, true);
	text = status_text(f);
	path_of(f, p, sizeof(p), "my\\x20disk\\x5c.img");
	snprintf(line, sizeof(line),
		 "\nexport delta path=%s mode=rw size=%u sessions=0 writer=-\n",
		 p, IMG_SIZE);
	assert_non_null(strstr(text, line));
	free(text);
}

/*
 * A writer session kept for its grace period (no connection left) whose
 * key is revoked ends at the reload: its lock is free at once.
 */
static void test_reload_ends_idle_session(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;
	char *text = NULL;
	char p[256];

	stop_server(f);
	f->grace = 60;
	write_conf(f, false, base_exports, f->dir);
	start_server(f);
	open_ok(f, &a, "lab-02", f->lab02, "gamma");
	assert_int_equal(request(&a, ND_OP_WRITE, 0), ND_OK);
	conn_close(&a);		/* no DISCONNECT: the lock is kept */
	for (int i = 0; i < 300; i++) {
		free(text);
		text = status_text(f);
		if (strstr(text, "identity=lab-02 export=gamma mode=rw conns=0"))
			break;
		usleep(10000);
	}
	assert_non_null(strstr(text, "export=gamma mode=rw conns=0 peers=-"));
	free(text);
	assert_int_equal(refused(f, "lab-01", f->lab01, "gamma"),
			 ND_ERR_BUSY);
	path_of(f, p, sizeof(p), "keys/lab-02.key");
	assert_int_equal(unlink(p), 0);
	reload(f, true);
	open_ok(f, &b, "lab-01", f->lab01, "gamma");
	text = status_text(f);
	assert_null(strstr(text, "identity=lab-02"));
	free(text);
	conn_close(&b);
}

/*
 * Several listen addresses: each gets a socket, all on the port the first
 * picked (port = 0); a reload that changes them only warns.
 */
static void test_listen_addresses(void **state)
{
	struct fixture *f = *state;
	struct conn a = { .fd = -1 };
	struct nd_client_params p = {
		.psk = f->db01, .identity = "db01", .export_name = "beta",
		.epoch = 1, .timeout_ms = 5000,
	};
	uint16_t status;
	int fd;

	stop_server(f);
	f->listen = "127.0.0.1 127.0.0.2";
	write_conf(f, false, base_exports, f->dir);
	start_server(f);
	fd = tcp_connect_to(0x7f000002, f->port);
	assert_int_equal(nd_handshake_client(fd, &p, &a.c, &a.info, &status),
			 ND_HS_OK);
	a.fd = fd;
	read_ok(&a, 0xb2);
	conn_close(&a);
	open_ok(f, &a, "db01", f->db01, "beta");
	conn_close(&a);
	f->listen = "127.0.0.1";
	write_conf(f, false, base_exports, f->dir);
	reload(f, true);
	/* Still listening there until a restart. */
	fd = tcp_connect_to(0x7f000002, f->port);
	assert_int_equal(nd_handshake_client(fd, &p, &a.c, &a.info, &status),
			 ND_HS_OK);
	a.fd = fd;
	conn_close(&a);
}

/* ---- copy-on-write exports ---- */

/* base_exports and golden: delta.img (0xd4) as the base, overlays in DIR. */
static void write_cow_conf(struct fixture *f, const char *overlays)
{
	char base[1024];

	snprintf(base, sizeof(base), base_exports, f->dir);
	write_conf(f, false, "%2$s[export golden]\npath = %1$s/delta.img\n"
		   "cow = %1$s/%3$s\n", f->dir, base, overlays);
}

static int setup_cow(void **state)
{
	struct fixture *f;

	setup_common(state, false);
	f = *state;
	stop_server(f);
	write_cow_conf(f, "overlays");
	start_server(f);
	return 0;
}

/* The table's entry of export name (test thread: no reload running). */
static struct nd_exp *table_exp(struct fixture *f, const char *name)
{
	for (int i = 0; i < f->srv->cfg.nexports; i++)
		if (strcmp(f->srv->exps[i]->e.name, name) == 0)
			return f->srv->exps[i];
	fail_msg("no export %s", name);
	return NULL;
}

static bool has_child(struct fixture *f, const char *identity)
{
	struct nd_exp *x = table_exp(f, "golden");
	bool r;

	pthread_mutex_lock(&f->srv->sess_lock);
	r = nd_exp_cow_child_locked(x, identity) != NULL;
	pthread_mutex_unlock(&f->srv->sess_lock);
	return r;
}

/* Ends cn's session at once (DISCONNECT), as a client detaching does. */
static void disconnect(struct conn *cn)
{
	assert_int_equal(request(cn, ND_OP_DISCONNECT, 0), ND_OK);
	conn_close(cn);
}

/* Does another open file description hold a lock on path? */
static bool ofd_locked(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(path, O_RDONLY);
	bool r;

	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
	r = fl.l_type != F_UNLCK;
	close(fd);
	return r;
}

/* Until path's lock is gone, 3 s at most. */
static bool ofd_unlocked_soon(const char *path)
{
	for (int i = 0; i < 300; i++) {
		if (!ofd_locked(path))
			return true;
		usleep(10000);
	}
	return false;
}

/* Every byte of file name is fill. */
static void file_is(const struct fixture *f, const char *name, uint8_t fill)
{
	uint8_t block[BS];
	char p[256];
	int fd;

	path_of(f, p, sizeof(p), name);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	for (unsigned int i = 0; i < IMG_SIZE / BS; i++) {
		assert_int_equal(read(fd, block, BS), BS);
		for (int j = 0; j < BS; j++)
			if (block[j] != fill)
				fail_msg("%s: byte %u is 0x%02x, not 0x%02x",
					 name, i * BS + j, block[j], fill);
	}
	close(fd);
}

/* READ at off on cn reads block fill. */
static void read_at(struct conn *cn, uint64_t off, uint8_t fill)
{
	assert_int_equal(request(cn, ND_OP_READ, off), ND_OK);
	for (int i = 0; i < BS; i++)
		if (cn->buf[ND_REPLY_HDR_LEN + i] != fill)
			fail_msg("offset %llu + %d: 0x%02x, not 0x%02x",
				 (unsigned long long)off, i,
				 cn->buf[ND_REPLY_HDR_LEN + i], fill);
}

/*
 * Two identities on one cow export each write and read their own disk; a
 * third reads the untouched base; TRIM and WRITE_ZEROES read as zeros;
 * one session per identity; the base file is never written.
 */
static void test_cow_identities(void **state)
{
	struct fixture *f = *state;
	struct conn a, b, c, d;
	struct listing l;
	char line[512], p[256], *text;
	uint16_t status;

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	open_ok(f, &b, "lab-02", f->lab02, "golden");
	assert_int_equal(a.info.size, IMG_SIZE);
	assert_false(a.info.flags & ND_EXP_READ_ONLY);
	assert_true(a.info.flags & ND_EXP_EXCLUSIVE);
	assert_true(a.info.flags & ND_EXP_TRIM);
	assert_true(a.info.flags & ND_EXP_WRITE_ZEROES);
	assert_true(a.info.flags & ND_EXP_FUA);
	assert_true(a.info.write_epoch != 0);
	/* Each overlay is a disk of its own. */
	assert_memory_not_equal(a.info.export_id, b.info.export_id,
				ND_EXPORT_ID_LEN);

	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x11), ND_OK);
	assert_int_equal(request_fill(&b, ND_OP_WRITE, 0, 0x22), ND_OK);
	assert_int_equal(request_fill(&b, ND_OP_WRITE, 5 * BS, 0x23), ND_OK);
	read_at(&a, 0, 0x11);
	read_at(&b, 0, 0x22);
	read_at(&a, BS, 0xd4);
	read_at(&a, 5 * BS, 0xd4);
	read_at(&b, 5 * BS, 0x23);
	/* Zeros, not the base, for this identity only. */
	assert_int_equal(request(&a, ND_OP_TRIM, 2 * BS), ND_OK);
	assert_int_equal(request(&b, ND_OP_WRITE_ZEROES, 3 * BS), ND_OK);
	read_at(&a, 2 * BS, 0);
	read_at(&b, 2 * BS, 0xd4);
	read_at(&b, 3 * BS, 0);
	read_at(&a, 3 * BS, 0xd4);
	assert_int_equal(request(&a, ND_OP_FLUSH, 0), ND_OK);

	/* A third identity: the base. */
	open_ok(f, &c, "db01", f->db01, "golden");
	read_at(&c, 0, 0xd4);
	read_at(&c, 2 * BS, 0xd4);

	/* One session per identity, read-only or not; others go on. */
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_BUSY);
	assert_int_equal(try_open(f, &d, "lab-01", f->lab01, "golden",
				  ND_CF_READ_ONLY, &status), ND_HS_REFUSED);
	assert_int_equal(status, ND_ERR_BUSY);
	assert_int_equal(request_fill(&b, ND_OP_WRITE, BS, 0x24), ND_OK);
	read_at(&b, BS, 0x24);
	/* A read-only session of an overlay is exclusive too. */
	disconnect(&c);
	for (int i = 0; i < 300 && has_child(f, "db01"); i++)
		usleep(10000);
	assert_int_equal(try_open(f, &c, "db01", f->db01, "golden",
				  ND_CF_READ_ONLY, &status), ND_HS_OK);
	assert_true(c.info.flags & ND_EXP_READ_ONLY);
	assert_true(c.info.flags & ND_EXP_EXCLUSIVE);
	assert_int_equal(c.info.write_epoch, 0);
	assert_int_equal(request(&c, ND_OP_WRITE, 0), ND_ERR_READ_ONLY);
	read_at(&c, 0, 0xd4);

	/* The list: busy only for an identity whose overlay is in use. */
	disconnect(&c);
	for (int i = 0; i < 300 && has_child(f, "db01"); i++)
		usleep(10000);
	assert_int_equal(list_exports(f, "db01", f->db01, &l), 0);
	assert_int_equal(l.n, 3);	/* beta gamma golden */
	assert_true(listed(&l, 2, "golden"));
	assert_false(l.e[2].flags & (ND_LIST_BUSY | ND_EXP_READ_ONLY));
	assert_true(l.e[2].flags & ND_EXP_TRIM);
	assert_int_equal(l.e[2].size, IMG_SIZE);
	assert_int_equal(list_exports(f, "lab-01", f->lab01, &l), 0);
	assert_int_equal(l.n, 4);
	assert_true(listed(&l, 3, "golden"));
	assert_true(l.e[3].flags & ND_LIST_BUSY);

	text = status_text(f);
	path_of(f, p, sizeof(p), "delta.img");
	snprintf(line, sizeof(line),
		 "export golden path=%s mode=rw size=%u sessions=2 writer=- cow=%s/overlays\n",
		 p, IMG_SIZE, f->dir);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, " identity=lab-01 export=golden mode=rw conns=1 "));
	free(text);

	/* Only overlays were written. */
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_true(ofd_locked(p));
	path_of(f, p, sizeof(p), "overlays/db01" ND_COW_SUFFIX);
	assert_int_equal(access(p, F_OK), 0);
	disconnect(&a);
	disconnect(&b);
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_true(ofd_unlocked_soon(p));
	file_is(f, "delta.img", 0xd4);
}

/* Overlays and their write epochs outlive the server. */
static void test_cow_restart(void **state)
{
	struct fixture *f = *state;
	uint8_t id[ND_EXPORT_ID_LEN];
	uint64_t epoch;
	struct conn a, b;

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	memcpy(id, a.info.export_id, sizeof(id));
	epoch = a.info.write_epoch;
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 7 * BS, 0x71), ND_OK);
	assert_int_equal(request(&a, ND_OP_FLUSH, 0), ND_OK);
	conn_close(&a);
	stop_server(f);
	start_server(f);
	open_ok(f, &a, "lab-01", f->lab01, "golden");
	assert_memory_equal(a.info.export_id, id, sizeof(id));
	assert_true(a.info.write_epoch > epoch);
	assert_int_equal(a.info.last_writer, epoch);
	read_at(&a, 7 * BS, 0x71);
	read_at(&a, 6 * BS, 0xd4);
	open_ok(f, &b, "lab-02", f->lab02, "golden");
	read_at(&b, 7 * BS, 0xd4);
	disconnect(&a);
	disconnect(&b);
	file_is(f, "delta.img", 0xd4);
}

/*
 * A base that changed under an overlay: that identity is refused with
 * 16 (and the log says which file and what to do); one without an
 * overlay starts from the new base.
 */
static void test_cow_base_changed(void **state)
{
	struct fixture *f = *state;
	struct logcap lc;
	struct conn a, b;
	char p[256], *log;
	int fd;

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x11), ND_OK);
	disconnect(&a);
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_true(ofd_unlocked_soon(p));

	/* Someone writes the base behind the server's back. */
	path_of(f, p, sizeof(p), "delta.img");
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xee", 1, 100 * BS), 1);
	close(fd);

	logcap_start(&lc);
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_BASE_CHANGED);
	log = logcap_end(&lc);
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_non_null(strstr(log, p));
	assert_non_null(strstr(log, "netdiskd overlay reset golden lab-01"));
	free(log);
	/* Still refused: nothing was left open or changed by the refusal. */
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_BASE_CHANGED);
	assert_false(has_child(f, "lab-01"));
	open_ok(f, &b, "lab-02", f->lab02, "golden");
	read_at(&b, 0, 0xd4);
	assert_int_equal(request(&b, ND_OP_READ, 100 * BS), ND_OK);
	assert_int_equal(b.buf[ND_REPLY_HDR_LEN], 0xee);
	disconnect(&b);
}

/*
 * Reloads: an unchanged cow export keeps its sessions; a changed cow
 * directory is a changed export (sessions closed, overlays closed, the
 * new directory used); a removed one closes its overlays and the base.
 */
static void test_cow_reload(void **state)
{
	struct fixture *f = *state;
	struct conn a, b;
	char p[256], q[256];

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x11), ND_OK);
	write_cow_conf(f, "overlays");
	reload(f, true);
	read_at(&a, 0, 0x11);

	write_cow_conf(f, "overlays2");
	reload(f, true);
	closed(&a);
	conn_close(&a);
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_true(ofd_unlocked_soon(p));
	open_after_close(f, &a, "lab-01", f->lab01, "golden");
	read_at(&a, 0, 0xd4);
	path_of(f, q, sizeof(q), "overlays2/lab-01" ND_COW_SUFFIX);
	assert_true(ofd_locked(q));
	disconnect(&a);

	write_cow_conf(f, "overlays");
	reload(f, true);
	open_after_close(f, &a, "lab-01", f->lab01, "golden");
	read_at(&a, 0, 0x11);
	open_ok(f, &b, "lab-02", f->lab02, "golden");

	/* Access taken from one identity: its session only. */
	write_conf(f, false, "[export golden]\npath = %1$s/delta.img\n"
		   "cow = %1$s/overlays\nclients = lab-02\n", f->dir);
	reload(f, true);
	closed(&a);
	conn_close(&a);
	read_at(&b, 0, 0xd4);
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_ACCESS);
	write_cow_conf(f, "overlays");
	reload(f, true);
	open_after_close(f, &a, "lab-01", f->lab01, "golden");
	read_at(&a, 0, 0x11);

	/* Removed: sessions, overlays and the base's lock all go. */
	write_conf(f, false, base_exports, f->dir);
	reload(f, true);
	closed(&a);
	closed(&b);
	assert_true(ofd_unlocked_soon(p));
	path_of(f, p, sizeof(p), "delta.img");
	assert_true(unlocked(p));
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_NO_EXPORT);
	conn_close(&a);
	conn_close(&b);

	/* A plain export made copy-on-write: its writer is closed. */
	open_ok(f, &a, "lab-02", f->lab02, "gamma");
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x33), ND_OK);
	write_conf(f, false, "[export alpha]\npath = %1$s/alpha.img\n"
		   "clients = lab-*\n\n[export gamma]\npath = %1$s/gamma.img\n"
		   "cow = %1$s/gov\n", f->dir);
	reload(f, true);
	closed(&a);
	conn_close(&a);
	open_after_close(f, &a, "lab-02", f->lab02, "gamma");
	read_at(&a, 0, 0x33);	/* the plain writer's data is the base */
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x34), ND_OK);
	read_at(&a, 0, 0x34);
	disconnect(&a);
}

/*
 * An overlay command's hold: new sessions of the identity are busy while
 * it lasts; an attached identity is refused unless forced, which ends
 * its session and waits for the overlay to be closed.
 */
static void test_cow_hold(void **state)
{
	struct fixture *f = *state;
	struct nd_exp *x = table_exp(f, "golden");
	struct listing l;
	struct conn a, b;
	char err[256], p[256];

	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", false, 1000,
					 err, sizeof(err)), 0);
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_BUSY);
	assert_int_equal(list_exports(f, "lab-01", f->lab01, &l), 0);
	assert_true(listed(&l, 3, "golden"));
	assert_true(l.e[3].flags & ND_LIST_BUSY);
	assert_int_equal(list_exports(f, "lab-02", f->lab02, &l), 0);
	assert_true(listed(&l, 2, "golden"));	/* alpha gamma golden */
	assert_false(l.e[2].flags & ND_LIST_BUSY);
	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", true, 1000,
					 err, sizeof(err)), -1);
	assert_string_equal(err,
			    "identity 'lab-01': another overlay command is working on its overlay");
	open_ok(f, &b, "lab-02", f->lab02, "golden");
	nd_exp_cow_unhold(f->srv, x, "lab-01");
	assert_int_equal(nd_exp_cow_hold(f->srv, table_exp(f, "gamma"),
					 "lab-01", false, 1000, err,
					 sizeof(err)), -1);
	assert_string_equal(err,
			    "export 'gamma' is not a copy-on-write export");

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	assert_int_equal(request_fill(&a, ND_OP_WRITE, 0, 0x11), ND_OK);
	assert_true(has_child(f, "lab-01"));
	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", false, 1000,
					 err, sizeof(err)), -1);
	assert_string_equal(err,
			    "identity 'lab-01' is attached; --force ends its session");
	read_at(&a, 0, 0x11);

	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", true, 5000,
					 err, sizeof(err)), 0);
	closed(&a);
	conn_close(&a);
	assert_false(has_child(f, "lab-01"));
	path_of(f, p, sizeof(p), "overlays/lab-01" ND_COW_SUFFIX);
	assert_false(ofd_locked(p));
	assert_int_equal(refused(f, "lab-01", f->lab01, "golden"),
			 ND_ERR_BUSY);
	read_at(&b, 0, 0xd4);	/* lab-02 is untouched */
	nd_exp_cow_unhold(f->srv, x, "lab-01");
	open_ok(f, &a, "lab-01", f->lab01, "golden");
	read_at(&a, 0, 0x11);

	/* A session kept for its grace period (no DISCONNECT) ends too. */
	conn_close(&a);
	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", true, 5000,
					 err, sizeof(err)), 0);
	assert_false(has_child(f, "lab-01"));
	nd_exp_cow_unhold(f->srv, x, "lab-01");
	disconnect(&b);
}

/*
 * A forced hold (overlay-reset --force) while the identity's client keeps
 * writing, trimming and flushing: its session ends, the overlay is closed
 * once the requests in flight are done (ASan: nothing used after), and
 * the identity attaches again afterwards.
 */
struct streamer {
	struct conn *cn;
	int done;		/* requests answered ND_OK */
};

static void *stream_main(void *arg)
{
	static const uint8_t ops[] = { ND_OP_WRITE, ND_OP_WRITE, ND_OP_TRIM,
				       ND_OP_FLUSH, ND_OP_READ };
	struct streamer *st = arg;

	for (unsigned int i = 0; ; i++) {
		uint8_t op = ops[i % sizeof(ops)];

		if (request_fill(st->cn, op, (uint64_t)(i * 7 % 64) * BS,
				 (uint8_t)i) != ND_OK)
			break;
		__atomic_add_fetch(&st->done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_cow_forced_hold_while_writing(void **state)
{
	struct fixture *f = *state;
	struct nd_exp *x = table_exp(f, "golden");
	struct streamer st = { 0 };
	struct conn a;
	pthread_t th;
	char err[256];

	open_ok(f, &a, "lab-01", f->lab01, "golden");
	st.cn = &a;
	assert_int_equal(pthread_create(&th, NULL, stream_main, &st), 0);
	while (__atomic_load_n(&st.done, __ATOMIC_RELAXED) < 200)
		usleep(1000);
	assert_int_equal(nd_exp_cow_hold(f->srv, x, "lab-01", true, 5000,
					 err, sizeof(err)), 0);
	pthread_join(th, NULL);
	conn_close(&a);
	assert_false(has_child(f, "lab-01"));
	nd_exp_cow_unhold(f->srv, x, "lab-01");
	open_ok(f, &a, "lab-01", f->lab01, "golden");
	assert_int_equal(request(&a, ND_OP_FLUSH, 0), ND_OK);
	disconnect(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identities_and_access,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_key, setup_shared,
						teardown),
		cmocka_unit_test_setup_teardown(test_writer_per_export, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_export_list, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_adds_export, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_revokes_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_removes_export_and_access,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_changes_export,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_addresses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_ends_idle_session,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cow_identities, setup_cow,
						teardown),
		cmocka_unit_test_setup_teardown(test_cow_restart, setup_cow,
						teardown),
		cmocka_unit_test_setup_teardown(test_cow_base_changed,
						setup_cow, teardown),
		cmocka_unit_test_setup_teardown(test_cow_reload, setup_cow,
						teardown),
		cmocka_unit_test_setup_teardown(test_cow_hold, setup_cow,
						teardown),
		cmocka_unit_test_setup_teardown(test_cow_forced_hold_while_writing,
						setup_cow, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
