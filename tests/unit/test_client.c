// SPDX-License-Identifier: MIT
/*
 * libnetdisk's asynchronous client (lib/client.c) against the real server
 * in-process: replies read many per recv and decrypted straight into the
 * callers' buffers (small and large reads, in any order), plugged batches
 * (more than one batch's worth, nested, and more requests than slots while
 * plugged), writes read back, and close releasing the write lock at once.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "srv_config.h"
#include "state_dir.h"

#include "client.h"
#include "nd_wire.h"
#include "../../server/backend.h"
#include "../../server/log.h"
#include "../../server/server.h"

#define DISK_SIZE	(8u << 20)

struct fixture {
	char path[64];
	char state_dir[64];
	uint8_t key[ND_KEY_LEN];
	struct nd_server *srv;
	pthread_t thread;
	struct nd_url url;
	uint8_t *image;		/* what the file holds */
};

static void *run_server(void *arg)
{
	nd_server_run(arg);
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct nd_server_config opts = {
		.handshake_timeout_ms = 10000,
		.drain_ms = 5000,
	};
	struct nd_config cfg;
	char err[256], url[64];
	int fd;

	assert_non_null(f);
	nd_log_level = getenv("ND_TEST_DEBUG") ? ND_LOG_DEBUG : ND_LOG_ERROR;
	f->image = malloc(DISK_SIZE);
	assert_non_null(f->image);
	assert_int_equal(nd_random(f->image, DISK_SIZE), 0);
	snprintf(f->path, sizeof(f->path), "/tmp/nd-test-client-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->image, DISK_SIZE), (ssize_t)DISK_SIZE);
	close(fd);
	assert_int_equal(nd_random(f->key, sizeof(f->key)), 0);
	state_dir_make(f->state_dir, sizeof(f->state_dir));
	cfg_one(&cfg, f->path, false, f->key, f->state_dir);
	cfg.workers = 2;
	cfg.grace_s = 60;	/* only a clean close frees the lock */
	f->srv = nd_server_create(&opts, &cfg, err, sizeof(err));
	assert_non_null(f->srv);
	assert_int_equal(pthread_create(&f->thread, NULL, run_server, f->srv),
			 0);
	snprintf(url, sizeof(url), "netdisk://127.0.0.1:%u",
		 nd_server_port(f->srv));
	assert_int_equal(nd_url_parse(url, &f->url, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nd_server_stop(f->srv);
	pthread_join(f->thread, NULL);
	nd_server_destroy(f->srv);
	unlink(f->path);
	state_dir_remove(f->state_dir);
	free(f->image);
	free(f);
	return 0;
}

static struct nd_client *open_client(struct fixture *f, unsigned int slots,
				     uint32_t flags)
{
	struct nd_client_opts o = { .max_inflight = slots, .flags = flags };
	struct nd_client *c = NULL;
	char err[256];

	assert_int_equal(nd_client_open(&f->url, f->key, &o, &c, NULL, err,
					sizeof(err)), 0);
	return c;
}

struct done {
	pthread_mutex_t m;
	int n, failed;
};

static void done_cb(void *arg, int status)
{
	struct done *d = arg;

	pthread_mutex_lock(&d->m);
	d->n++;
	if (status)
		d->failed++;
	pthread_mutex_unlock(&d->m);
}

/* Sizes from 512 B to 1 MiB, so both receive paths (buffered, direct). */
static uint32_t req_len(int i)
{
	static const uint32_t lens[] = { 4096, 512, 1u << 20, 65536, 8192,
					 300 * 1024, 4096, 131072 };

	return lens[i % 8];
}

static uint64_t req_off(int i)
{
	return ((uint64_t)i * 7919 * 4096) % (DISK_SIZE - (1u << 20));
}

/* n reads of mixed sizes, submitted plugged in groups of per_plug. */
static void read_many(struct fixture *f, unsigned int slots, int n,
		      int per_plug, bool nested)
{
	struct nd_client *c = open_client(f, slots, ND_CF_READ_ONLY);
	struct done d = { .m = PTHREAD_MUTEX_INITIALIZER };
	uint8_t **bufs = calloc((size_t)n, sizeof(*bufs));
	int i;

	/* Read-only: no writer number. */
	assert_true(nd_client_info(c)->write_epoch == 0);
	assert_non_null(bufs);
	for (i = 0; i < n; i++) {
		bufs[i] = malloc(req_len(i));
		assert_non_null(bufs[i]);
		memset(bufs[i], 0xee, req_len(i));
	}
	for (i = 0; i < n; i++) {
		if (per_plug && i % per_plug == 0) {
			nd_client_plug(c);
			if (nested)
				nd_client_plug(c);
		}
		assert_int_equal(nd_client_submit(c, ND_OP_READ, 0, req_off(i),
						  req_len(i), bufs[i], done_cb,
						  &d), 0);
		if (per_plug && (i % per_plug == per_plug - 1 || i == n - 1)) {
			if (nested)
				nd_client_unplug(c);
			nd_client_unplug(c);
		}
	}
	assert_int_equal(nd_client_drain(c), 0);
	assert_int_equal(d.n, n);
	assert_int_equal(d.failed, 0);
	for (i = 0; i < n; i++) {
		assert_memory_equal(bufs[i], f->image + req_off(i), req_len(i));
		free(bufs[i]);
	}
	free(bufs);
	assert_int_equal(nd_client_close(c), 0);
}

static void test_reads_unplugged(void **state)
{
	read_many(*state, 16, 100, 0, false);
}

static void test_reads_plugged(void **state)
{
	/* Batches above the 32-request flush point, and nested plugs. */
	read_many(*state, 64, 200, 50, false);
	read_many(*state, 64, 60, 7, true);
}

static void test_plugged_beyond_slots(void **state)
{
	/* 4 slots, 40 requests in one plug: a submit must send the queue. */
	read_many(*state, 4, 40, 40, false);
}

static void test_write_read_back_and_close(void **state)
{
	struct fixture *f = *state;
	struct nd_client *c = open_client(f, 8, 0), *c2;
	uint8_t *w = malloc(1u << 20), *r = malloc(1u << 20);
	uint8_t *copy = malloc(1u << 20);
	uint64_t epoch;
	int i;

	assert_non_null(w);
	assert_non_null(r);
	assert_non_null(copy);
	for (i = 0; i < 4; i++) {
		uint32_t len = i % 2 ? 1u << 20 : 4096;
		uint64_t off = (uint64_t)i << 20;

		assert_int_equal(nd_random(w, len), 0);
		memcpy(copy, w, len);	/* WRITE encrypts w in place */
		nd_client_plug(c);
		assert_int_equal(nd_client_write(c, w, off, len), 0);
		nd_client_unplug(c);
		assert_int_equal(nd_client_read(c, r, off, len), 0);
		assert_memory_equal(r, copy, len);
	}
	assert_int_equal(nd_client_flush(c), 0);
	/* A writable session has a writer number, a new one for each writer. */
	epoch = nd_client_info(c)->write_epoch;
	assert_true(epoch != 0);
	assert_int_equal(nd_client_close(c), 0);
	/* The close was clean: a new writer gets the lock (grace is 60 s). */
	c2 = open_client(f, 8, 0);
	assert_true(nd_client_info(c2)->write_epoch > epoch);
	assert_int_equal(nd_client_read(c2, r, 0, 4096), 0);
	assert_int_equal(nd_client_close(c2), 0);
	free(w);
	free(r);
	free(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_unplugged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reads_plugged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_plugged_beyond_slots,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_back_and_close,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
