// SPDX-License-Identifier: MIT
/*
 * netdiskd's control socket (server/control.c) with a real server running
 * in-process: the status answer, the socket's mode and directory, a stale
 * socket replaced, a live one or a non-socket refused, unknown and
 * malformed commands, the overlay commands' dispatch (their own tests are
 * test_overlay.c), stop removing only its own socket, and many clients at
 * once.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "client.h"
#include "nd_wire.h"
#include "url.h"
#include "srv_config.h"
#include "state_dir.h"
#include "../../server/control.h"
#include "../../server/server.h"

#define CLIENTS		32
#define QUERIES		8

struct fixture {
	char dir[64];
	char img[96];
	char sock[96];			/* dir/run/ctl.sock: run/ not made yet */
	char state_dir[64];
	uint8_t key[ND_KEY_LEN];
	struct nd_server *srv;
	pthread_t thread;
	uint16_t port;
};

static void *run_server(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

static int setup(void **state)
{
	const struct nd_server_config opts = { .drain_ms = 2000 };
	struct fixture *f = calloc(1, sizeof(*f));
	struct nd_config cfg;
	char err[512];
	FILE *img;

	assert_non_null(f);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-test-control-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->img, sizeof(f->img), "%s/disk.img", f->dir);
	snprintf(f->sock, sizeof(f->sock), "%s/run/ctl.sock", f->dir);
	img = fopen(f->img, "w");
	assert_non_null(img);
	assert_int_equal(ftruncate(fileno(img), 1 << 20), 0);
	fclose(img);
	state_dir_make(f->state_dir, sizeof(f->state_dir));
	assert_int_equal(nd_random(f->key, ND_KEY_LEN), 0);
	cfg_one(&cfg, f->img, false, f->key, f->state_dir);
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	if (!f->srv)
		fail_msg("nd_server_create: %s", err);
	f->port = nd_server_port(f->srv);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f->srv), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	state_dir_remove(f->state_dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs cmd through nd_control_query; the answer in a malloc'ed string. */
static int query(const char *path, const char *cmd, char **answer, char *err,
		 size_t errlen)
{
	size_t len = 0;
	FILE *f;
	int rc;

	*answer = NULL;
	f = open_memstream(answer, &len);
	assert_non_null(f);
	rc = nd_control_query(path, cmd, f, err, errlen);
	assert_int_equal(fclose(f), 0);
	return rc;
}

/* Sends raw bytes and returns what the server answers before EOF. */
static char *raw_exchange(const char *path, const void *buf, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char answer[4096];
	size_t have = 0;
	ssize_t n;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	shutdown(fd, SHUT_WR);
	while (have < sizeof(answer) - 1 &&
	       (n = read(fd, answer + have, sizeof(answer) - 1 - have)) > 0)
		have += (size_t)n;
	answer[have] = '\0';
	close(fd);
	return answer;
}

static void test_status(void **state)
{
	struct fixture *f = *state;
	char err[256], want[256], dir[160], *ans;
	struct nd_control *ctl;
	struct stat st;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	if (!ctl)
		fail_msg("nd_control_start: %s", err);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	if (query(f->sock, "status", &ans, err, sizeof(err)))
		fail_msg("query: %s", err);
	snprintf(want, sizeof(want),
		 "export default path=%s mode=rw size=%u sessions=0 writer=-\n",
		 f->img, 1u << 20);
	assert_string_equal(ans, want);
	free(ans);
	nd_control_stop(ctl);
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* A connected client shows up as a session with its identity. */
static void test_status_session(void **state)
{
	struct fixture *f = *state;
	const struct nd_client_opts co = { .identity = "ctl-test" };
	char err[256], url[64], *ans;
	struct nd_control *ctl;
	struct nd_client *c = NULL;
	struct nd_url u;
	uint16_t st = 0;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	snprintf(url, sizeof(url), "netdisk://127.0.0.1:%u", f->port);
	assert_int_equal(nd_url_parse(url, &u, err, sizeof(err)), 0);
	if (nd_client_open(&u, f->key, &co, &c, &st, err, sizeof(err)))
		fail_msg("nd_client_open: %s", err);
	assert_int_equal(query(f->sock, "status", &ans, err, sizeof(err)), 0);
	assert_non_null(strstr(ans, "sessions=1 writer="));
	assert_non_null(strstr(ans, " identity=ctl-test export=default mode=rw conns=1 peers=127.0.0.1:"));
	free(ans);
	nd_client_close(c);
	nd_control_stop(ctl);
}

static void test_unknown_command(void **state)
{
	struct fixture *f = *state;
	struct nd_control *ctl;
	char err[256], *ans;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	assert_string_equal(raw_exchange(f->sock, "frobnicate\n", 11),
			    "error: unknown command\n");
	assert_int_equal(query(f->sock, "frobnicate", &ans, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown command"));
	assert_string_equal(ans, "");	/* an error is not copied as the answer */
	free(ans);
	/* Without a newline (the client's end of sending ends it). */
	assert_true(strncmp(raw_exchange(f->sock, "status", 6), "export default ", 15) == 0);
	nd_control_stop(ctl);
}

/* The overlay commands reach nd_server_overlay; a plain export has none. */
static void test_overlay_commands(void **state)
{
	struct fixture *f = *state;
	struct nd_control *ctl;
	char err[256], *ans = NULL;
	size_t len = 0;
	FILE *m;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	assert_string_equal(raw_exchange(f->sock, "overlays default\n", 17),
			    "error: export 'default' is not a copy-on-write export\n");
	assert_string_equal(raw_exchange(f->sock, "overlay-check nope x\n", 21),
			    "error: no export 'nope'\n");
	/* nd_control_ask hands the error line over as it is. */
	m = open_memstream(&ans, &len);
	assert_non_null(m);
	assert_int_equal(nd_control_ask(f->sock, "overlays default", m, -1,
					 err, sizeof(err)), 0);
	assert_int_equal(fclose(m), 0);
	assert_true(strncmp(ans, "error: export 'default' ", 24) == 0);
	free(ans);
	nd_control_stop(ctl);
	/* Nobody listening: ND_CTL_NO_SERVER, so a caller can do without. */
	m = open_memstream(&ans, &len);
	assert_non_null(m);
	assert_int_equal(nd_control_ask(f->sock, "overlays default", m, -1,
					 err, sizeof(err)), ND_CTL_NO_SERVER);
	assert_int_equal(fclose(m), 0);
	free(ans);
}

static void test_bad_commands(void **state)
{
	struct fixture *f = *state;
	struct nd_control *ctl;
	char err[256], big[ND_CTL_CMD_MAX + 100];

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	memset(big, 's', sizeof(big));
	assert_string_equal(raw_exchange(f->sock, big, sizeof(big)),
			    "error: bad command\n");
	assert_string_equal(raw_exchange(f->sock, "sta\0tus\n", 8),
			    "error: bad command\n");
	assert_string_equal(raw_exchange(f->sock, "", 0), "error: bad command\n");
	/* Still serving. */
	assert_true(strncmp(raw_exchange(f->sock, "status\n", 7), "export ", 7) == 0);
	nd_control_stop(ctl);
}

/* A socket left behind by a dead server is replaced. */
static void test_stale_replaced(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256], dir[160], *ans;
	struct nd_control *ctl;
	int fd;

	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);			/* no listener: stale */

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	if (!ctl)
		fail_msg("nd_control_start over a stale socket: %s", err);
	assert_int_equal(query(f->sock, "status", &ans, err, sizeof(err)), 0);
	assert_true(strncmp(ans, "export default ", 15) == 0);
	free(ans);
	nd_control_stop(ctl);
}

/* A live server's socket is refused and keeps working. */
static void test_live_refused(void **state)
{
	struct fixture *f = *state;
	struct nd_control *ctl, *second;
	char err[256], *ans;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	err[0] = '\0';
	second = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_null(second);
	assert_non_null(strstr(err, "another netdiskd is listening"));
	assert_int_equal(query(f->sock, "status", &ans, err, sizeof(err)), 0);
	assert_true(strncmp(ans, "export default ", 15) == 0);
	free(ans);
	nd_control_stop(ctl);
}

/* Whatever else is at the path is left alone. */
static void test_not_socket_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], dir[160];
	struct stat st;
	FILE *file;

	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	file = fopen(f->sock, "w");
	assert_non_null(file);
	fputs("precious\n", file);
	fclose(file);
	assert_null(nd_control_start(f->srv, f->sock, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(stat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 9);
}

/* Stop removes its own socket only, not one that replaced it. */
static void test_stop_keeps_others(void **state)
{
	struct fixture *f = *state;
	struct nd_control *ctl;
	char err[256];
	struct stat st;
	FILE *file;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	assert_int_equal(unlink(f->sock), 0);
	file = fopen(f->sock, "w");
	assert_non_null(file);
	fclose(file);
	nd_control_stop(ctl);
	assert_int_equal(stat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_no_server(void **state)
{
	struct fixture *f = *state;
	char err[256], *ans;

	assert_int_equal(query(f->sock, "status", &ans, err, sizeof(err)), -1);
	free(ans);
	assert_true(strncmp(err, "cannot connect to ", 18) == 0);
	assert_non_null(strstr(err, f->sock));
	assert_null(nd_control_start(f->srv, "", err, sizeof(err)));
}

struct many {
	const char *path;
	int failures;
};

static void *many_main(void *arg)
{
	struct many *m = arg;
	char err[256], *ans;
	int i;

	for (i = 0; i < QUERIES; i++) {
		if (query(m->path, "status", &ans, err, sizeof(err)) ||
		    strncmp(ans, "export default ", 15))
			m->failures++;
		free(ans);
	}
	return NULL;
}

static void test_many_clients(void **state)
{
	struct fixture *f = *state;
	struct many m[CLIENTS];
	pthread_t t[CLIENTS];
	struct nd_control *ctl;
	char err[256];
	int i;

	ctl = nd_control_start(f->srv, f->sock, err, sizeof(err));
	assert_non_null(ctl);
	for (i = 0; i < CLIENTS; i++) {
		m[i].path = f->sock;
		m[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, many_main, &m[i]), 0);
	}
	for (i = 0; i < CLIENTS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(m[i].failures, 0);
	}
	nd_control_stop(ctl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlay_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_socket_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_keeps_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
