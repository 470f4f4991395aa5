// SPDX-License-Identifier: MIT
/*
 * nd_list_parse (lib/list.c): a whole ExportList is taken only if its
 * count matches its length exactly, every entry is valid and the names are
 * strictly ascending in byte order; each refusal says what was wrong.
 * nd_client_list_exports against netdiskd in-process with a configuration
 * file: each identity sees exactly its exports, busy while a writer holds
 * one; an unknown identity and a wrong key are both authentication
 * failures; a session on an export not allowed is access denied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "client.h"
#include "nd_wire.h"
#include "../../server/config.h"
#include "../../server/log.h"
#include "../../server/server.h"

struct list {
	uint8_t b[ND_LIST_MAX_LEN + 64];
	size_t len;
	uint32_t n;
};

static void start(struct list *l)
{
	l->len = ND_LIST_HDR_LEN;
	l->n = 0;
	nd_list_hdr_encode(l->b, 0);
}

static void add(struct list *l, const char *name, uint32_t flags,
		uint64_t size, uint32_t bs)
{
	struct nd_list_entry e = {
		.name_len = (uint8_t)strlen(name), .flags = flags,
		.size = size, .block_size = bs,
	};

	memcpy(e.name, name, e.name_len);
	l->len += nd_list_entry_encode(l->b + l->len, &e);
	nd_list_hdr_encode(l->b, ++l->n);
}

static struct nd_list_entry out[ND_LIST_MAX];
static char err[200];

/* Parses l; on failure err must contain want. */
static int parse(const struct list *l, const char *want)
{
	size_t count = 99;
	int rc;

	err[0] = '\0';
	rc = nd_list_parse(l->b, l->len, out, &count, err, sizeof(err));
	if (rc) {
		assert_int_equal(count, 0);
		if (!strstr(err, want))
			fail_msg("error '%s' lacks '%s'", err, want);
		return -1;
	}
	assert_int_equal(count, l->n);
	return 0;
}

static void test_good(void **state)
{
	struct list l;

	start(&l);
	assert_int_equal(parse(&l, ""), 0);	/* no exports at all */
	add(&l, "A", ND_EXP_FLUSH, 512, 512);
	/* Byte order: a prefix first, '.' (0x2e) before 'b'. */
	add(&l, "a", ND_EXP_READ_ONLY | ND_EXP_FLUSH, 1 << 20, 4096);
	add(&l, "a.b", ND_EXP_FLUSH | ND_LIST_BUSY, 1 << 20, 1024);
	add(&l, "ab", ND_LIST_FLAGS_KNOWN, ND_EXPORT_SIZE_LIMIT - 4096, 4096);
	assert_int_equal(parse(&l, ""), 0);
	assert_int_equal(out[1].name_len, 1);
	assert_memory_equal(out[2].name, "a.b", 3);
	assert_int_equal(out[2].flags, ND_EXP_FLUSH | ND_LIST_BUSY);
	assert_int_equal(out[2].block_size, 1024);
	assert_true(out[3].size == ND_EXPORT_SIZE_LIMIT - 4096);
}

static void test_count(void **state)
{
	struct list l;
	char name[8];
	int i;

	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 512, 512);
	nd_list_hdr_encode(l.b, 3);
	assert_int_equal(parse(&l, "count 3, but the list ends in entry 3"), -1);
	nd_list_hdr_encode(l.b, 1);
	assert_int_equal(parse(&l, "bytes after the last of 1 entries"), -1);
	nd_list_hdr_encode(l.b, 0);
	assert_int_equal(parse(&l, "after the last of 0 entries"), -1);
	nd_list_hdr_encode(l.b, 0xffffffffu);
	assert_int_equal(parse(&l, "over the limit"), -1);
	/* Trailing bytes, and a list cut inside its last entry. */
	nd_list_hdr_encode(l.b, 2);
	l.len++;
	assert_int_equal(parse(&l, "1 bytes after the last of 2 entries"), -1);
	l.len -= 2;
	assert_int_equal(parse(&l, "ends in entry 2"), -1);
	/* 1024 entries is the most. */
	start(&l);
	for (i = 0; i < ND_LIST_MAX; i++) {
		snprintf(name, sizeof(name), "e%04d", i);
		add(&l, name, 0, 512, 512);
	}
	assert_int_equal(parse(&l, ""), 0);
	add(&l, "zzz", 0, 512, 512);
	assert_int_equal(parse(&l, "count 1025 over the limit of 1024"), -1);
}

static void test_entries(void **state)
{
	struct list l;

	start(&l);
	add(&l, "a", 0x200, 512, 512);
	assert_int_equal(parse(&l, "entry 1: unknown flags 0x200"), -1);
	start(&l);
	add(&l, "a", ND_EXP_EXCLUSIVE, 512, 512);
	assert_int_equal(parse(&l, "unknown flags 0x20"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 0, 512);
	assert_int_equal(parse(&l, "entry 2: size 0 not in"), -1);
	start(&l);
	add(&l, "a", 0, ND_EXPORT_SIZE_LIMIT, 512);
	assert_int_equal(parse(&l, "size 9223372036854775808 not in"), -1);
	start(&l);
	add(&l, "a", 0, 4096 + 512, 4096);
	assert_int_equal(parse(&l, "not a multiple of the block size 4096"), -1);
	start(&l);
	add(&l, "a", 0, 4096, 3);
	assert_int_equal(parse(&l, "block size 3 not"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b/c", 0, 512, 512);
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	l.b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + 1] = 0;	/* its length */
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	l.b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + 1] = 200;
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	/* Not a list at all: a SessionInfo's first bytes. */
	memset(l.b, 0, 8);
	assert_int_equal(parse(&l, "not an export list"), -1);
}

static void test_order(void **state)
{
	struct list l;

	start(&l);
	add(&l, "b", 0, 512, 512);
	add(&l, "a", 0, 512, 512);
	assert_int_equal(parse(&l, "entry 2: 'a' not in name order"), -1);
	start(&l);
	add(&l, "ab", 0, 512, 512);
	add(&l, "a", 0, 512, 512);
	assert_int_equal(parse(&l, "'a' not in name order"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "B", 0, 512, 512);	/* 'B' (0x42) sorts before 'a' */
	assert_int_equal(parse(&l, "'B' not in name order"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 512, 512);
	add(&l, "b", ND_EXP_READ_ONLY, 1024, 512);
	assert_int_equal(parse(&l, "entry 3: 'b' listed twice"), -1);
}

/* ---- against netdiskd ---- */

struct srv {
	char dir[64];
	uint8_t lab01[ND_KEY_LEN], db01[ND_KEY_LEN], other[ND_KEY_LEN];
	struct nd_server *srv;
	pthread_t thread;
	struct nd_url url;
};

static void put_file(const char *dir, const char *name, const void *data,
		     size_t len)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void put_key(const char *dir, const char *name,
		    uint8_t key[ND_KEY_LEN])
{
	char hex[66];

	assert_int_equal(nd_random(key, ND_KEY_LEN), 0);
	nd_key_format(key, hex);
	put_file(dir, name, hex, strlen(hex));
}

static void *run_server(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

static int srv_setup(void **state)
{
	const struct nd_server_config opts = { .drain_ms = 2000 };
	struct srv *f = calloc(1, sizeof(*f));
	static uint8_t img[1 << 20];
	struct nd_config cfg;
	char conf[2048], p[128], u[64];

	assert_non_null(f);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-test-list-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(p, sizeof(p), "%s/keys", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	put_key(f->dir, "keys/lab-01.key", f->lab01);
	put_key(f->dir, "keys/db01.key", f->db01);
	assert_int_equal(nd_random(f->other, ND_KEY_LEN), 0);
	put_file(f->dir, "a.img", img, sizeof(img));
	put_file(f->dir, "b.img", img, sizeof(img) / 2);
	put_file(f->dir, "c.img", img, sizeof(img) / 4);
	snprintf(conf, sizeof(conf),
		 "[server]\nlisten = 127.0.0.1\nport = 0\nkey-dir = %1$s/keys\n"
		 "state-dir = %1$s\ncontrol = none\nworkers = 2\ngrace = 0\n"
		 "log-level = error\n\n"
		 "[export lab.disk]\npath = %1$s/a.img\nclients = lab-*\n\n"
		 "[export db]\npath = %1$s/b.img\nread-only = yes\n"
		 "clients = db01\n\n"
		 "[export common]\npath = %1$s/c.img\n", f->dir);
	put_file(f->dir, "netdiskd.conf", conf, strlen(conf));
	snprintf(p, sizeof(p), "%s/netdiskd.conf", f->dir);
	if (nd_config_load(p, &cfg, err, sizeof(err)) < 0)
		fail_msg("nd_config_load: %s", err);
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	if (!f->srv)
		fail_msg("nd_server_create: %s", err);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f->srv),
			 0);
	snprintf(u, sizeof(u), "netdisk://127.0.0.1:%u",
		 nd_server_port(f->srv));
	assert_int_equal(nd_url_parse(u, &f->url, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv *f = *state;
	char cmd[128];

	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The names identity gets, space-separated, busy ones with a '*'. */
static int list_of(struct srv *f, const char *identity, const uint8_t *key,
		   char *names, size_t len)
{
	struct nd_client_opts o = { .identity = identity, .timeout_ms = 5000 };
	struct nd_list_entry *e = NULL;
	uint16_t status = 0xffff;
	size_t n = 99;
	int rc;

	names[0] = '\0';
	rc = nd_client_list_exports(&f->url, key, &o, &e, &n, &status, err,
				    sizeof(err));
	if (rc) {
		assert_null(e);
		assert_int_equal(n, 0);
		return rc;
	}
	assert_int_equal(status, 0);
	for (size_t i = 0; i < n; i++)
		snprintf(names + strlen(names), len - strlen(names), "%s%.*s%s",
			 i ? " " : "", e[i].name_len, (const char *)e[i].name,
			 (e[i].flags & ND_LIST_BUSY) ? "*" : "");
	free(e);
	return 0;
}

static void test_server_lists(void **state)
{
	struct srv *f = *state;
	struct nd_client_opts o = { .identity = "lab-01" };
	struct nd_client *c = NULL;
	struct nd_url u = f->url;
	char names[256];
	uint16_t status = 0;

	assert_int_equal(list_of(f, "lab-01", f->lab01, names, sizeof(names)),
			 0);
	assert_string_equal(names, "common lab.disk");
	assert_int_equal(list_of(f, "db01", f->db01, names, sizeof(names)), 0);
	assert_string_equal(names, "common db");
	/* A writer holds lab.disk: busy in the list. */
	snprintf(u.export_name, sizeof(u.export_name), "lab.disk");
	assert_int_equal(nd_client_open(&u, f->lab01, &o, &c, &status, err,
					sizeof(err)), 0);
	assert_int_equal(list_of(f, "lab-01", f->lab01, names, sizeof(names)),
			 0);
	assert_string_equal(names, "common lab.disk*");
	assert_int_equal(nd_client_close(c), 0);
	/* Nothing tells a wrong key from an identity the server lacks. */
	assert_int_equal(list_of(f, "lab-01", f->other, names, sizeof(names)),
			 ND_CE_AUTH);
	assert_int_equal(list_of(f, "nobody", f->other, names, sizeof(names)),
			 ND_CE_AUTH);
	assert_non_null(strstr(err, "authentication failed"));
}

static void test_server_access_denied(void **state)
{
	struct srv *f = *state;
	struct nd_client_opts o = { .identity = "db01",
				    .flags = ND_CF_READ_ONLY };
	struct nd_client *c = NULL;
	struct nd_url u = f->url;
	uint16_t status = 0;

	snprintf(u.export_name, sizeof(u.export_name), "lab.disk");
	assert_int_equal(nd_client_open(&u, f->db01, &o, &c, &status, err,
					sizeof(err)), ND_CE_REFUSED);
	assert_null(c);
	assert_int_equal(status, ND_ERR_ACCESS);
	assert_string_equal(err, "server refused: access denied");
	assert_string_equal(nd_client_strerror(ND_ERR_ACCESS), "access denied");
	/* An export nobody has is "no such export", even to db01. */
	snprintf(u.export_name, sizeof(u.export_name), "nope");
	assert_int_equal(nd_client_open(&u, f->db01, &o, &c, &status, err,
					sizeof(err)), ND_CE_REFUSED);
	assert_int_equal(status, ND_ERR_NO_EXPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_order),
		cmocka_unit_test_setup_teardown(test_server_lists, srv_setup,
						srv_teardown),
		cmocka_unit_test_setup_teardown(test_server_access_denied,
						srv_setup, srv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
