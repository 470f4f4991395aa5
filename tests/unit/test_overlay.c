// SPDX-License-Identifier: MIT
/*
 * Overlay administration (netdiskd(8) OVERLAYS) with a real server
 * in-process, a copy-on-write export from a configuration file and real
 * clients: the control socket's overlays/overlay-reset/-merge/-check
 * (server/overlay.c) and `netdiskd overlay` (server/overlay_cmd.c), both
 * through the socket and, with no server answering, on the files.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "client.h"
#include "nd_wire.h"
#include "url.h"
#include "../../server/backend.h"
#include "../../server/config.h"
#include "../../server/control.h"
#include "../../server/cow_format.h"
#include "../../server/log.h"
#include "../../server/overlay.h"
#include "../../server/server.h"

#define IMG_SIZE	(1u << 20)
#define BS		4096

struct fixture {
	char dir[64];
	char base[128];
	char cow[128];
	char conf[128];
	char sock[128];
	uint8_t key[ND_KEY_LEN];
	struct nd_server *srv;
	struct nd_control *ctl;
	pthread_t thread;
	uint16_t port;
};

static void *run_server(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

/* Block b of the base reads as base_byte(b) throughout. */
static uint8_t base_byte(unsigned int b)
{
	return (uint8_t)(0x40 + b % 64);
}

static void put_file(const char *path, const void *buf, size_t len,
		     mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void make_base(const char *path)
{
	uint8_t *img = malloc(IMG_SIZE);

	assert_non_null(img);
	for (unsigned int b = 0; b < IMG_SIZE / BS; b++)
		memset(img + (size_t)b * BS, base_byte(b), BS);
	put_file(path, img, IMG_SIZE, 0644);
	free(img);
}

/*
 * A base whose reads can be stopped (gate_backend_open): a session with a
 * read stuck in it cannot end.
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closed;
	int waiting;			/* reads held at the gate */
	const struct nd_backend_ops *ops;
	void *h;
};

static struct gate the_gate = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static int gate_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
	struct gate *g = h;

	pthread_mutex_lock(&g->lock);
	g->waiting++;
	pthread_cond_broadcast(&g->cond);
	while (g->closed)
		pthread_cond_wait(&g->cond, &g->lock);
	g->waiting--;
	pthread_mutex_unlock(&g->lock);
	return g->ops->pread(g->h, buf, len, off);
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
	.flush = gate_flush,
	.close = gate_close,
};

static void gate_set(bool closed)
{
	pthread_mutex_lock(&the_gate.lock);
	the_gate.closed = closed;
	pthread_cond_broadcast(&the_gate.cond);
	pthread_mutex_unlock(&the_gate.lock);
}

/* nd_backend_open of the gated tests: the base behind the_gate. */
static int gate_backend_open(struct nd_export *e, const char *path,
			     bool read_only, char *err, size_t errlen)
{
	if (nd_file_open(e, path, read_only, err, errlen) < 0)
		return -1;
	if (strstr(path, ".plain"))
		return 0;
	the_gate.ops = e->ops;
	the_gate.h = e->h;
	e->ops = &gate_ops;
	e->h = &the_gate;
	return 0;
}

/* drain_ms: also how long a forced reset waits for the session to end. */
static int setup_with(void **state, int drain_ms, bool gated)
{
	const struct nd_server_config opts = { .drain_ms = drain_ms };
	struct fixture *f = calloc(1, sizeof(*f));
	char p[256], hex[2 * ND_KEY_LEN + 2], err[512], *text = NULL;
	struct nd_config cfg;
	size_t len = 0;
	FILE *m;

	assert_non_null(f);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-test-overlay-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->base, sizeof(f->base), "%s/base.img", f->dir);
	snprintf(f->cow, sizeof(f->cow), "%s/cow", f->dir);
	snprintf(f->conf, sizeof(f->conf), "%s/netdiskd.conf", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/ctl.sock", f->dir);
	make_base(f->base);

	assert_int_equal(nd_random(f->key, ND_KEY_LEN), 0);
	for (int i = 0; i < ND_KEY_LEN; i++)
		sprintf(hex + 2 * i, "%02x", f->key[i]);
	strcat(hex, "\n");
	snprintf(p, sizeof(p), "%s/key", f->dir);
	put_file(p, hex, strlen(hex), 0600);
	snprintf(p, sizeof(p), "%s/state", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);

	m = open_memstream(&text, &len);
	assert_non_null(m);
	fprintf(m, "[server]\nlisten = 127.0.0.1\nport = 0\nkey-file = %1$s/key\n"
		"state-dir = %1$s/state\ncontrol = %1$s/ctl.sock\n"
		"log-level = %2$s\n\n"
		"[export default]\npath = %1$s/base.img\ncow = %1$s/cow\n\n"
		"[export plain]\npath = %1$s/base.img.plain\n", f->dir,
		getenv("ND_TEST_DEBUG") ? "debug" : "error");
	assert_int_equal(fclose(m), 0);
	put_file(f->conf, text, len, 0600);
	free(text);
	snprintf(p, sizeof(p), "%s/base.img.plain", f->dir);
	put_file(p, "", 0, 0600);
	assert_int_equal(truncate(p, IMG_SIZE), 0);

	if (nd_config_load(f->conf, &cfg, err, sizeof(err)) < 0)
		fail_msg("nd_config_load: %s", err);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	if (gated)
		nd_backend_open = gate_backend_open;
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	nd_backend_open = nd_file_open;
	if (!f->srv)
		fail_msg("nd_server_create: %s", err);
	f->port = nd_server_port(f->srv);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f->srv), 0);
	f->ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	if (!f->ctl)
		fail_msg("nd_control_start: %s", err);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, 2000, false);
}

static int setup_gated(void **state)
{
	return setup_with(state, 2000, true);
}

/* Longer than the control socket's 5 s deadline for one command. */
static int setup_slow_drain(void **state)
{
	return setup_with(state, 6000, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	nd_control_stop(f->ctl);
	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- clients ---- */

static struct nd_client *attach_st(struct fixture *f, const char *identity,
				   uint16_t *status)
{
	const struct nd_client_opts co = { .identity = identity,
					   .hs_attempts = 1 };
	struct nd_client *c = NULL;
	char err[256], url[64];
	struct nd_url u;

	*status = 0;
	snprintf(url, sizeof(url), "netdisk://127.0.0.1:%u/default", f->port);
	assert_int_equal(nd_url_parse(url, &u, err, sizeof(err)), 0);
	if (nd_client_open(&u, f->key, &co, &c, status, err, sizeof(err)))
		return NULL;
	return c;
}

static struct nd_client *attach(struct fixture *f, const char *identity)
{
	uint16_t st;
	struct nd_client *c = attach_st(f, identity, &st);

	if (!c)
		fail_msg("identity %s: attach refused, status %u", identity, st);
	return c;
}

static void write_block(struct nd_client *c, unsigned int b, uint8_t v)
{
	uint8_t buf[BS];

	memset(buf, v, BS);
	assert_int_equal(nd_client_write(c, buf, (uint64_t)b * BS, BS), ND_OK);
}

static uint8_t read_block(struct nd_client *c, unsigned int b)
{
	uint8_t buf[BS];

	assert_int_equal(nd_client_read(c, buf, (uint64_t)b * BS, BS), ND_OK);
	for (int i = 1; i < BS; i++)
		assert_int_equal(buf[i], buf[0]);
	return buf[0];
}

static void store_status(void *arg, int status)
{
	__atomic_store_n((int *)arg, status, __ATOMIC_RELEASE);
}

/* ---- the control socket and the command ---- */

/* The server's whole answer to cmd, "error: " lines included. */
static char *ask(struct fixture *f, const char *cmd)
{
	char err[512], *ans = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&ans, &len);

	assert_non_null(m);
	if (nd_control_ask(f->sock, cmd, m, 10000, err, sizeof(err)))
		fail_msg("%s: %s", cmd, err);
	assert_int_equal(fclose(m), 0);
	return ans;
}

struct run {
	int rc;
	char *out, *err;
};

/* `netdiskd overlay ARGS...` (NULL-terminated), its output captured. */
static struct run overlay(const char *arg, ...)
{
	char *argv[16] = { "overlay" };
	struct run r = { 0 };
	size_t olen = 0, elen = 0;
	int argc = 1;
	FILE *o, *e;
	va_list ap;

	va_start(ap, arg);
	for (; arg && argc < 15; arg = va_arg(ap, const char *))
		argv[argc++] = (char *)arg;
	va_end(ap);
	o = open_memstream(&r.out, &olen);
	e = open_memstream(&r.err, &elen);
	assert_non_null(o);
	assert_non_null(e);
	r.rc = nd_overlay_cmd(argc, argv, o, e);
	assert_int_equal(fclose(o), 0);
	assert_int_equal(fclose(e), 0);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* The `overlays` line of identity, or NULL. */
static char *overlay_line(struct fixture *f, const char *identity)
{
	char *ans = ask(f, "overlays default"), *line = NULL, *save = NULL;
	char want[96];

	snprintf(want, sizeof(want), "overlay default %s ", identity);
	for (char *l = strtok_r(ans, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		if (!strncmp(l, want, strlen(want)))
			line = strdup(l);
	free(ans);
	return line;
}

/* A closed client's session ends on the server soon after: waits for it. */
static void wait_detached(struct fixture *f, const char *identity)
{
	for (int i = 0; i < 500; i++) {
		char *l = overlay_line(f, identity);
		bool gone = l && strstr(l, " attached=no mem=-");

		free(l);
		if (gone)
			return;
		usleep(10000);
	}
	fail_msg("identity %s still attached", identity);
}

static void close_client(struct fixture *f, struct nd_client *c,
			 const char *identity)
{
	nd_client_close(c);
	wait_detached(f, identity);
}

/* lab-01 wrote blocks 0 and 5, flushed, detached. */
static void lab01_writes(struct fixture *f)
{
	struct nd_client *c = attach(f, "lab-01");

	write_block(c, 0, 0x11);
	write_block(c, 5, 0x15);
	assert_int_equal(nd_client_flush(c), ND_OK);
	close_client(f, c, "lab-01");
}

static long field(const char *line, const char *name)
{
	const char *p = strstr(line, name);

	assert_non_null(p);
	return strtol(p + strlen(name), NULL, 10);
}

/* ---- tests ---- */

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct nd_client *a, *b;
	char *l, *ans;
	struct run r;

	ans = ask(f, "overlays default");
	assert_string_equal(ans, "ok\n");	/* none yet */
	free(ans);

	a = attach(f, "lab-01");
	b = attach(f, "lab-02");
	write_block(a, 0, 0x11);
	write_block(b, 1, 0x22);
	write_block(b, 2, 0x23);
	assert_int_equal(nd_client_flush(a), ND_OK);
	assert_int_equal(nd_client_flush(b), ND_OK);

	l = overlay_line(f, "lab-01");
	assert_non_null(l);
	assert_non_null(strstr(l, " size=1048576 "));
	assert_int_equal(field(l, " data="), BS);
	assert_int_equal(field(l, " zero="), 0);
	assert_int_equal(field(l, " attaches="), 1);
	assert_true(field(l, " last_used=") >= field(l, " created="));
	assert_true(field(l, " created=") > 1700000000);
	assert_non_null(strstr(l, " attached=yes mem="));
	assert_true(field(l, " mem=") > 0);
	free(l);
	l = overlay_line(f, "lab-02");
	assert_non_null(l);
	assert_int_equal(field(l, " data="), 2 * BS);
	free(l);

	close_client(f, a, "lab-01");
	close_client(f, b, "lab-02");

	/* The command prints the lines, without the final "ok". */
	r = overlay("list", "default", "--control", f->sock, NULL);
	if (r.rc || strncmp(r.out, "overlay default lab-01 size=1048576 ", 36))
		fail_msg("list: %d '%s' '%s'", r.rc, r.out, r.err);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(r.out, "\noverlay default lab-02 size=1048576 "));
	assert_null(strstr(r.out, "ok\n"));
	assert_non_null(strstr(r.out, " attached=no mem=-\n"));
	run_free(&r);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	struct nd_client *c;
	char p[256], *ans;
	struct stat st;
	struct run r;

	c = attach(f, "lab-01");
	write_block(c, 0, 0x11);
	assert_int_equal(nd_client_flush(c), ND_OK);

	/* Attached: refused without --force, the data untouched. */
	r = overlay("reset", "default", "lab-01", "--control", f->sock, NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "attached"));
	run_free(&r);
	assert_int_equal(read_block(c, 0), 0x11);

	/* --force ends the session first. */
	r = overlay("reset", "default", "lab-01", "--force", "--control",
		    f->sock, NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "");
	run_free(&r);
	{
		uint8_t buf[BS];

		assert_int_not_equal(nd_client_read(c, buf, 0, BS), ND_OK);
	}
	nd_client_close(c);
	snprintf(p, sizeof(p), "%s/lab-01.ndcow", f->cow);
	assert_int_equal(stat(p, &st), -1);

	/* Back to the base, as a new overlay. */
	c = attach(f, "lab-01");
	assert_int_equal(read_block(c, 0), base_byte(0));
	close_client(f, c, "lab-01");
	assert_int_equal(stat(p, &st), 0);

	/* Not attached: no --force needed; no overlay at all: fine too. */
	ans = ask(f, "overlay-reset default lab-01");
	assert_string_equal(ans, "ok\n");
	free(ans);
	ans = ask(f, "overlay-reset default lab-09");
	assert_string_equal(ans, "ok\n");
	free(ans);
}

static void test_merge(void **state)
{
	struct fixture *f = *state;
	char out[256], out2[256];
	uint8_t *img;
	struct nd_client *c;
	struct stat st;
	struct run r;
	int fd;

	lab01_writes(f);
	snprintf(out, sizeof(out), "%s/merged.img", f->dir);
	r = overlay("merge", "default", "lab-01", out, "--control", f->sock,
		    NULL);
	if (r.rc)
		fail_msg("merge: %s", r.err);
	run_free(&r);

	/* What lab-01 reads: its blocks 0 and 5, the base elsewhere. */
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, IMG_SIZE);
	assert_int_equal(st.st_mode & 0777, 0600);
	img = malloc(IMG_SIZE);
	assert_non_null(img);
	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, img, IMG_SIZE), IMG_SIZE);
	close(fd);
	for (unsigned int b = 0; b < IMG_SIZE / BS; b++) {
		uint8_t want = b == 0 ? 0x11 : b == 5 ? 0x15 : base_byte(b);

		for (int i = 0; i < BS; i += 512)
			assert_int_equal(img[(size_t)b * BS + i], want);
	}
	free(img);

	/* The output must not exist yet. */
	r = overlay("merge", "default", "lab-01", out, "--control", f->sock,
		    NULL);
	assert_int_equal(r.rc, 1);
	assert_string_not_equal(r.err, "");
	run_free(&r);

	/* Refused while attached. */
	c = attach(f, "lab-01");
	snprintf(out2, sizeof(out2), "%s/merged2.img", f->dir);
	r = overlay("merge", "default", "lab-01", out2, "--control", f->sock,
		    NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "attached"));
	run_free(&r);
	assert_int_equal(stat(out2, &st), -1);
	assert_int_equal(read_block(c, 5), 0x15);	/* session unharmed */
	close_client(f, c, "lab-01");

	/* An OUTPUT far longer than a status command fits through. */
	{
		char deep[1024];
		int n = snprintf(deep, sizeof(deep), "%s", f->dir);

		for (int i = 0; i < 6; i++) {
			n += snprintf(deep + n, sizeof(deep) - (size_t)n,
				      "/%0100d", i);
			assert_int_equal(mkdir(deep, 0700), 0);
		}
		snprintf(deep + n, sizeof(deep) - (size_t)n, "/merged.img");
		r = overlay("merge", "default", "lab-01", deep, "--control",
			    f->sock, NULL);
		if (r.rc)
			fail_msg("merge to a %zu-byte path: %s", strlen(deep),
				 r.err);
		run_free(&r);
		assert_int_equal(stat(deep, &st), 0);
	}

	/* The socket takes only absolute paths without blanks. */
	{
		char *ans = ask(f, "overlay-merge default lab-01 merged3.img");

		assert_true(!strncmp(ans, "error: usage: ", 14));
		free(ans);
	}
}

static void test_check(void **state)
{
	struct fixture *f = *state;
	struct nd_client *c;
	struct timespec ts[2];
	char p[256], old;
	struct run r;
	int fd;

	lab01_writes(f);
	r = overlay("check", "default", "lab-01", "--control", f->sock, NULL);
	if (r.rc)
		fail_msg("check: %s%s", r.out, r.err);
	assert_string_not_equal(r.out, "");	/* its summary */
	run_free(&r);

	/* Refused while attached. */
	c = attach(f, "lab-01");
	r = overlay("check", "default", "lab-01", "--control", f->sock, NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "attached"));
	run_free(&r);
	close_client(f, c, "lab-01");

	/* Map value 3 for clusters 0..3: damaged. */
	snprintf(p, sizeof(p), "%s/lab-01.ndcow", f->cow);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &old, 1, COW_MAP_OFFSET), 1);
	assert_int_equal(pwrite(fd, "\xff", 1, COW_MAP_OFFSET), 1);
	r = overlay("check", "default", "lab-01", "--control", f->sock, NULL);
	assert_int_equal(r.rc, ND_OVL_EXIT_DAMAGED);
	assert_string_not_equal(r.out, "");
	run_free(&r);
	{
		char *ans = ask(f, "overlay-check default lab-01");
		size_t n = strlen(ans);

		assert_true(n > 8 && !strcmp(ans + n - 8, "damaged\n"));
		free(ans);
	}
	assert_int_equal(pwrite(fd, &old, 1, COW_MAP_OFFSET), 1);
	close(fd);
	r = overlay("check", "default", "lab-01", "--control", f->sock, NULL);
	assert_int_equal(r.rc, 0);
	run_free(&r);

	/* A changed base (its mtime) is a finding too. */
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[1] = ts[0];
	ts[1].tv_sec += 100;
	assert_int_equal(utimensat(AT_FDCWD, f->base, ts, 0), 0);
	r = overlay("check", "default", "lab-01", "--control", f->sock, NULL);
	assert_int_equal(r.rc, ND_OVL_EXIT_DAMAGED);
	run_free(&r);
}

/* No server answering: --config works on the files, under their locks. */
static void test_offline(void **state)
{
	struct fixture *f = *state;
	char out[256];
	struct nd_client *c;
	struct stat st;
	struct run r;

	lab01_writes(f);
	c = attach(f, "lab-02");
	write_block(c, 3, 0x33);
	assert_int_equal(nd_client_flush(c), ND_OK);
	nd_control_stop(f->ctl);	/* the server runs on, unreachable */
	f->ctl = NULL;

	/* lab-02's overlay is open in the server: its lock says attached. */
	r = overlay("list", "default", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 0);
	assert_true(!strncmp(r.out, "overlay default lab-01 size=1048576 ", 36));
	assert_non_null(strstr(r.out, " attaches=1 attached=no mem=-\noverlay default lab-02 "));
	assert_non_null(strstr(r.out, " attaches=1 attached=yes mem=-\n"));
	run_free(&r);

	/* ... and the reset of an overlay in use fails. */
	r = overlay("reset", "default", "lab-02", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "in use"));
	run_free(&r);
	assert_int_equal(read_block(c, 3), 0x33);
	nd_client_close(c);

	r = overlay("check", "default", "lab-01", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 0);
	run_free(&r);
	snprintf(out, sizeof(out), "%s/offline.img", f->dir);
	r = overlay("merge", "default", "lab-01", out, "--config", f->conf,
		    NULL);
	if (r.rc)
		fail_msg("offline merge: %s", r.err);
	run_free(&r);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, IMG_SIZE);

	r = overlay("reset", "default", "lab-01", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 0);
	run_free(&r);
	c = attach(f, "lab-01");
	assert_int_equal(read_block(c, 0), base_byte(0));
	nd_client_close(c);

	/* Offline too, only a cow export has overlays. */
	r = overlay("list", "plain", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "not a copy-on-write export"));
	run_free(&r);
	r = overlay("list", "nope", "--config", f->conf, NULL);
	assert_int_equal(r.rc, 1);
	run_free(&r);
	/* Without --config nothing to fall back on. */
	r = overlay("list", "default", "--control", f->sock, NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "cannot connect"));
	run_free(&r);
}

/*
 * A forced reset whose session cannot end (a read stuck in the base)
 * gives up after the drain time, longer here than the control socket's
 * deadline for a command: its answer still arrives, and the overlay is
 * left alone.
 */
static void test_reset_session_stuck(void **state)
{
	struct fixture *f = *state;
	struct nd_client *c = attach(f, "lab-01");
	uint8_t buf[BS];
	int done = -1;
	char p[256];
	struct stat st;
	struct run r;

	write_block(c, 0, 0x11);
	assert_int_equal(nd_client_flush(c), ND_OK);
	gate_set(true);
	assert_int_equal(nd_client_submit(c, ND_OP_READ, 0, BS, BS, buf,
					  store_status, &done), 0);
	pthread_mutex_lock(&the_gate.lock);
	while (!the_gate.waiting)
		pthread_cond_wait(&the_gate.cond, &the_gate.lock);
	pthread_mutex_unlock(&the_gate.lock);

	r = overlay("reset", "default", "lab-01", "--force", "--control",
		    f->sock, NULL);
	gate_set(false);
	assert_int_equal(r.rc, 1);
	if (!strstr(r.err, "did not end"))
		fail_msg("stuck forced reset: '%s'", r.err);
	run_free(&r);
	snprintf(p, sizeof(p), "%s/lab-01.ndcow", f->cow);
	assert_int_equal(stat(p, &st), 0);
	nd_client_close(c);
}

struct merge_job {
	struct fixture *f;
	char out[256];
	struct run r;
};

static void *merge_main(void *arg)
{
	struct merge_job *j = arg;

	j->r = overlay("merge", "default", "lab-01", j->out, "--control",
		       j->f->sock, NULL);
	return NULL;
}

/* While a command works on an overlay, its identity cannot attach. */
static void test_busy_while_held(void **state)
{
	struct fixture *f = *state;
	struct merge_job j = { .f = f };
	struct nd_client *c;
	pthread_t t;
	uint16_t st;

	lab01_writes(f);
	snprintf(j.out, sizeof(j.out), "%s/merged.img", f->dir);
	gate_set(true);
	assert_int_equal(pthread_create(&t, NULL, merge_main, &j), 0);
	pthread_mutex_lock(&the_gate.lock);
	while (!the_gate.waiting)
		pthread_cond_wait(&the_gate.cond, &the_gate.lock);
	pthread_mutex_unlock(&the_gate.lock);

	c = attach_st(f, "lab-01", &st);
	assert_null(c);
	assert_int_equal(st, ND_ERR_BUSY);

	gate_set(false);
	pthread_join(t, NULL);
	if (j.r.rc)
		fail_msg("merge: %s", j.r.err);
	run_free(&j.r);
	c = attach(f, "lab-01");	/* let go */
	assert_int_equal(read_block(c, 5), 0x15);
	nd_client_close(c);
}

static void expect_error(struct fixture *f, const char *cmd,
			 const char *want)
{
	char *ans = ask(f, cmd);

	if (strncmp(ans, "error: ", 7) || !strstr(ans, want) ||
	    strchr(ans, '\n') != ans + strlen(ans) - 1)
		fail_msg("'%s' answered '%s', want one error line with '%s'",
			 cmd, ans, want);
	free(ans);
}

static void test_bad_commands(void **state)
{
	struct fixture *f = *state;
	struct run r;

	expect_error(f, "overlays", "export name");
	expect_error(f, "overlays nope", "no export 'nope'");
	expect_error(f, "overlays plain", "not a copy-on-write export");
	expect_error(f, "overlays default extra", "usage");
	expect_error(f, "overlay-reset default", "identity");
	expect_error(f, "overlay-reset default ../x", "identity");
	expect_error(f, "overlay-reset default lab-01 now", "usage");
	expect_error(f, "overlay-reset default lab-01 force more", "usage");
	expect_error(f, "overlay-merge default lab-01", "usage");
	expect_error(f, "overlay-merge default lab-01 /tmp/a\x01", "usage");
	expect_error(f, "overlay-check default lab-01 x", "usage");
	expect_error(f, "overlayz default", "unknown command");
	expect_error(f, "overlay", "unknown command");

	/* The command's own usage errors: exit 2, nothing asked. */
	r = overlay(NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("frob", "default", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("reset", "default", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("check", "default", "a/b", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("merge", "default", "lab-01", "/tmp/a b", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("check", "default", "lab-01", "--force", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("list", "default", "--control", f->sock, "--config",
		    f->conf, NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("list", "default", "--control", "rel.sock", NULL);
	assert_int_equal(r.rc, 2);
	run_free(&r);
	r = overlay("--help", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "Usage: netdiskd overlay list"));
	run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_session_stuck,
						setup_slow_drain, teardown),
		cmocka_unit_test_setup_teardown(test_busy_while_held,
						setup_gated, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
