// SPDX-License-Identifier: MIT
/*
 * Copy-on-write overlays (server/cow.c, cow_format.c, cow_admin.c) on real
 * files: the data path over a read-only base, crash consistency (a child
 * process writes and dies without closing, the parent reopens), every
 * refusal of docs/COW-FORMAT.md, ENOSPC, and the administrator's
 * operations.
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
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../server/backend.h"
#include "../../server/cow.h"
#include "../../server/cow_format.h"
#include "../../server/log.h"

#define BASE_SIZE	(8u << 20)
#define CS		4096u

struct fx {
	char dir[64];			/* scratch: base.img, ov/ */
	char base_path[128];
	char ov_dir[128];
	char ov_path[192];
	struct nd_export base;
	struct nd_cow_base cb;
	struct nd_export ov;
	bool ov_open;
};

static uint8_t pat(uint64_t off)
{
	return (uint8_t)((off >> 9) * 7 + (off & 511) + 1);
}

static void make_file(const char *path, uint64_t size)
{
	uint8_t *buf = malloc(1 << 20);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_non_null(buf);
	assert_true(fd >= 0);
	for (uint64_t o = 0; o < size; o += 1 << 20) {
		uint64_t n = size - o < (1 << 20) ? size - o : (1 << 20);

		for (uint64_t i = 0; i < n; i++)
			buf[i] = pat(o + i);
		assert_int_equal(pwrite(fd, buf, n, (off_t)o), (ssize_t)n);
	}
	close(fd);
	free(buf);
}

static void base_open(struct fx *f)
{
	char err[256];

	assert_int_equal(nd_file_open(&f->base, f->base_path, true, err,
				      sizeof(err)), 0);
	f->cb.e = &f->base;
	f->cb.path = f->base_path;
}

static int fx_setup_size(void **state, uint64_t size)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-cow-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->base_path, sizeof(f->base_path), "%s/base.img", f->dir);
	snprintf(f->ov_dir, sizeof(f->ov_dir), "%s/ov", f->dir);
	snprintf(f->ov_path, sizeof(f->ov_path), "%s/lab-01.ndcow", f->ov_dir);
	make_file(f->base_path, size);
	base_open(f);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_size(state, BASE_SIZE);
}

static void ov_close(struct fx *f)
{
	if (f->ov_open)
		nd_export_close(&f->ov);
	f->ov_open = false;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ov_close(f);
	nd_export_close(&f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int ov_try(struct fx *f, const char *identity, char *err, size_t n)
{
	int rc;

	ov_close(f);
	memset(&f->ov, 0, sizeof(f->ov));
	rc = nd_cow_open(&f->cb, f->ov_dir, identity, &f->ov, err, n);
	f->ov_open = rc == 0;
	if (rc == 0)
		assert_null(strchr(err, '\n'));
	else
		assert_true(err[0] && !strchr(err, '\n'));
	return rc;
}

static void ov_open(struct fx *f)
{
	char err[512] = "";

	if (ov_try(f, "lab-01", err, sizeof(err)))
		fail_msg("nd_cow_open: %s", err);
}

static void ov_read(struct fx *f, void *buf, uint32_t len, uint64_t off)
{
	assert_int_equal(f->ov.ops->pread(f->ov.h, buf, len, off), 0);
}

static void ov_write(struct fx *f, uint8_t fill, uint32_t len, uint64_t off,
		     bool fua)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	memset(buf, fill, len);
	assert_int_equal(f->ov.ops->pwrite(f->ov.h, buf, len, off, fua), 0);
	free(buf);
}

/* Bytes [off, off + len) read as fill (or as the base when fill < 0). */
static void expect(struct fx *f, int fill, uint32_t len, uint64_t off)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	ov_read(f, buf, len, off);
	for (uint32_t i = 0; i < len; i++) {
		uint8_t want = fill < 0 ? pat(off + i) : (uint8_t)fill;

		if (buf[i] != want)
			fail_msg("byte %llu: 0x%02x, expected 0x%02x",
				 (unsigned long long)(off + i), buf[i], want);
	}
	free(buf);
}

static void expect_base_file_intact(struct fx *f)
{
	uint8_t *buf = malloc(1 << 20);
	int fd = open(f->base_path, O_RDONLY);

	assert_true(fd >= 0);
	for (uint64_t o = 0; o < f->base.size; o += 1 << 20) {
		uint64_t n = f->base.size - o < (1 << 20) ? f->base.size - o :
			     (1 << 20);

		assert_int_equal(pread(fd, buf, n, (off_t)o), (ssize_t)n);
		for (uint64_t i = 0; i < n; i++)
			if (buf[i] != pat(o + i))
				fail_msg("base changed at %llu",
					 (unsigned long long)(o + i));
	}
	close(fd);
	free(buf);
}

/* ---- the data path ---- */

static void test_reads_base_then_own_writes(void **state)
{
	struct fx *f = *state;
	struct stat st;

	ov_open(f);
	assert_int_equal(f->ov.size, BASE_SIZE);
	assert_int_equal(f->ov.block_size, 512);
	assert_false(f->ov.read_only);
	assert_int_equal(f->ov.caps, ND_EXP_FUA | ND_EXP_TRIM |
				     ND_EXP_WRITE_ZEROES);
	assert_int_equal(stat(f->ov_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	expect(f, -1, BASE_SIZE, 0);

	/* partial clusters at both ends of a multi-cluster first write */
	ov_write(f, 0xa1, 3 * CS, 5 * CS + 512, false);
	/* inside one cluster */
	ov_write(f, 0xa2, 512, 20 * CS + 1024, false);
	/* whole clusters */
	ov_write(f, 0xa3, 4 * CS, 40 * CS, true);
	/* the last bytes of the disk */
	ov_write(f, 0xa4, 512, BASE_SIZE - 512, false);
	expect(f, -1, 5 * CS + 512, 0);
	expect(f, 0xa1, 3 * CS, 5 * CS + 512);
	expect(f, -1, 20 * CS + 1024 - (8 * CS + 512), 8 * CS + 512);
	expect(f, 0xa2, 512, 20 * CS + 1024);
	expect(f, -1, 20 * CS - 1536, 20 * CS + 1536);
	expect(f, 0xa3, 4 * CS, 40 * CS);
	expect(f, -1, BASE_SIZE - 512 - 44 * CS, 44 * CS);
	expect(f, 0xa4, 512, BASE_SIZE - 512);
	/* rewrite in place */
	ov_write(f, 0xb1, 512, 6 * CS, false);
	expect(f, 0xb1, 512, 6 * CS);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);

	/* a closed and reopened overlay keeps everything */
	ov_close(f);
	ov_open(f);
	expect(f, -1, 5 * CS + 512, 0);
	expect(f, 0xa1, CS - 512, 5 * CS + 512);
	expect(f, 0xb1, 512, 6 * CS);
	expect(f, 0xa1, 2 * CS - 512, 6 * CS + 512);
	expect(f, 0xa2, 512, 20 * CS + 1024);
	expect(f, 0xa3, 4 * CS, 40 * CS);
	expect(f, 0xa4, 512, BASE_SIZE - 512);
	ov_close(f);
	expect_base_file_intact(f);
}

static void test_identities_are_separate(void **state)
{
	struct fx *f = *state;
	struct nd_export other = { 0 };
	uint8_t id1[ND_EXPORT_ID_LEN], buf[CS];
	char err[256];

	ov_open(f);
	memcpy(id1, f->ov.id, sizeof(id1));
	ov_write(f, 0x11, CS, 0, true);
	assert_int_equal(nd_cow_open(&f->cb, f->ov_dir, "lab-02", &other, err,
				     sizeof(err)), 0);
	assert_memory_not_equal(id1, other.id, sizeof(id1));
	assert_int_equal(other.ops->pread(other.h, buf, CS, 0), 0);
	for (uint32_t i = 0; i < CS; i++)
		assert_int_equal(buf[i], pat(i));
	nd_export_close(&other);
	expect(f, 0x11, CS, 0);

	/* the same identity, reopened: the same export id */
	ov_close(f);
	ov_open(f);
	assert_memory_equal(id1, f->ov.id, sizeof(id1));

	/* a second user of one overlay: in use */
	assert_int_equal(nd_cow_open(&f->cb, f->ov_dir, "lab-01", &other, err,
				     sizeof(err)), ND_COW_IN_USE);
	assert_non_null(strstr(err, "in use"));
	/* names that are no identity never make a path */
	assert_int_equal(nd_cow_open(&f->cb, f->ov_dir, "../x", &other, err,
				     sizeof(err)), ND_COW_ERR);
	assert_int_equal(nd_cow_open(&f->cb, f->ov_dir, "", &other, err,
				     sizeof(err)), ND_COW_ERR);
}

static void test_trim_and_zeroes_read_zeros(void **state)
{
	struct fx *f = *state;

	ov_open(f);
	ov_write(f, 0x33, 8 * CS, 64 * CS, false);
	/* trim over written and never-written clusters, unaligned ends */
	assert_int_equal(f->ov.ops->trim(f->ov.h, 16 * CS, 60 * CS + 512), 0);
	expect(f, -1, 512, 60 * CS);
	expect(f, 0, 16 * CS, 60 * CS + 512);
	expect(f, -1, CS - 512, 76 * CS + 512);
	/* zeroes inside one cluster of the base */
	assert_int_equal(f->ov.ops->write_zeroes(f->ov.h, 1024, 100 * CS + 512,
						 false), 0);
	expect(f, -1, 512, 100 * CS);
	expect(f, 0, 1024, 100 * CS + 512);
	expect(f, -1, CS - 1536, 100 * CS + 1536);
	/* whole clusters, then a first write into a zeroed cluster */
	assert_int_equal(f->ov.ops->write_zeroes(f->ov.h, 64 * CS, 200 * CS,
						 true), 0);
	expect(f, 0, 64 * CS, 200 * CS);
	ov_write(f, 0x44, 512, 210 * CS + 512, false);
	expect(f, 0, 512, 210 * CS);
	expect(f, 0x44, 512, 210 * CS + 512);
	expect(f, 0, CS - 1024, 210 * CS + 1024);
	/* the end of the disk */
	assert_int_equal(f->ov.ops->trim(f->ov.h, 3 * CS + 512,
					 BASE_SIZE - 3 * CS - 512), 0);
	expect(f, 0, 3 * CS + 512, BASE_SIZE - 3 * CS - 512);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	ov_close(f);
	ov_open(f);
	expect(f, 0, 16 * CS, 60 * CS + 512);
	expect(f, 0, 1024, 100 * CS + 512);
	expect(f, -1, CS - 1536, 100 * CS + 1536);
	expect(f, 0x44, 512, 210 * CS + 512);
	expect(f, 0, 3 * CS + 512, BASE_SIZE - 3 * CS - 512);
}

/* ---- partial first writes from many threads ---- */

#define RACE_THREADS	8
#define RACE_CLUSTERS	512

struct racer {
	struct fx *f;
	int idx;
	pthread_barrier_t *bar;
};

/* Thread i writes sector i of every cluster: all first writes. */
static void *race_main(void *arg)
{
	struct racer *r = arg;
	uint8_t buf[512];

	memset(buf, 0xc0 + r->idx, sizeof(buf));
	pthread_barrier_wait(r->bar);
	for (int c = 0; c < RACE_CLUSTERS; c++) {
		uint64_t off = (uint64_t)c * CS + (uint64_t)r->idx * 512;

		if (r->f->ov.ops->pwrite(r->f->ov.h, buf, 512, off, false))
			return (void *)1;
	}
	return NULL;
}

static void test_racing_partial_first_writes(void **state)
{
	struct fx *f = *state;
	pthread_t t[RACE_THREADS];
	struct racer r[RACE_THREADS];
	pthread_barrier_t bar;

	ov_open(f);
	/* half of the clusters start zeroed rather than from the base */
	assert_int_equal(f->ov.ops->trim(f->ov.h, RACE_CLUSTERS / 2 * CS,
					 RACE_CLUSTERS / 2 * CS), 0);
	pthread_barrier_init(&bar, NULL, RACE_THREADS);
	/* threads 0..6 write sectors 0..6; sector 7 keeps base/zeros */
	for (int i = 0; i < RACE_THREADS - 1; i++) {
		r[i] = (struct racer){ f, i, &bar };
		assert_int_equal(pthread_create(&t[i], NULL, race_main, &r[i]),
				 0);
	}
	r[RACE_THREADS - 1] = (struct racer){ f, RACE_THREADS, &bar };
	pthread_barrier_wait(&bar);
	for (int i = 0; i < RACE_THREADS - 1; i++) {
		void *rv;

		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	pthread_barrier_destroy(&bar);
	for (int round = 0; round < 2; round++) {
		for (int c = 0; c < RACE_CLUSTERS; c++) {
			uint64_t o = (uint64_t)c * CS;

			for (int i = 0; i < RACE_THREADS - 1; i++)
				expect(f, 0xc0 + i, 512, o + i * 512);
			expect(f, c < RACE_CLUSTERS / 2 ? -1 : 0, 512,
			       o + 7 * 512);
		}
		assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
		ov_close(f);
		ov_open(f);
	}
}

/* ---- crash consistency ---- */

/*
 * The child writes, flushes some of it and dies without closing (as
 * netdiskd killed with -9: the kernel keeps what it was given). Exits 0
 * if every call succeeded.
 */
static void crash_child(struct fx *f)
{
	char err[256];
	uint8_t buf[CS];
	const struct nd_backend_ops *o;

	if (nd_cow_open(&f->cb, f->ov_dir, "lab-01", &f->ov, err, sizeof(err)))
		_exit(10);
	o = f->ov.ops;
	memset(buf, 0xf1, sizeof(buf));
	for (int c = 0; c < 16; c++)		/* flushed below */
		if (o->pwrite(f->ov.h, buf, CS, (uint64_t)c * CS, false))
			_exit(11);
	if (o->pwrite(f->ov.h, buf, 512, 100 * CS + 512, false) ||
	    o->trim(f->ov.h, 8 * CS, 300 * CS) || o->flush(f->ov.h))
		_exit(12);
	memset(buf, 0xf2, sizeof(buf));
	/* FUA: durable with everything before it */
	if (o->pwrite(f->ov.h, buf, 512, 400 * CS, false) ||
	    o->pwrite(f->ov.h, buf, 512, 401 * CS, true))
		_exit(13);
	memset(buf, 0xf3, sizeof(buf));
	for (int c = 32; c < 48; c++)		/* first writes, unflushed */
		if (o->pwrite(f->ov.h, buf, CS, (uint64_t)c * CS, false))
			_exit(14);
	if (o->pwrite(f->ov.h, buf, CS, 0, false) ||	/* rewrite */
	    o->trim(f->ov.h, 4 * CS, 8 * CS) ||
	    o->write_zeroes(f->ov.h, 2 * CS, 500 * CS, false))
		_exit(15);
	_exit(0);
}

static void test_crash_keeps_last_commit(void **state)
{
	struct fx *f = *state;
	uint8_t buf[CS];
	pid_t pid;
	int st;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(f);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);

	ov_open(f);
	/* cluster 0 was rewritten after the flush: old or new */
	ov_read(f, buf, CS, 0);
	assert_true(buf[0] == 0xf1 || buf[0] == 0xf3);
	for (uint32_t i = 1; i < CS; i++)
		assert_int_equal(buf[i], buf[0]);
	expect(f, 0xf1, 3 * CS, CS);
	/* trimmed after the flush: its data (committed as 1) or zeros */
	for (int c = 8; c < 12; c++) {
		ov_read(f, buf, CS, (uint64_t)c * CS);
		assert_true(buf[0] == 0xf1 || buf[0] == 0);
		for (uint32_t i = 1; i < CS; i++)
			assert_int_equal(buf[i], buf[0]);
	}
	expect(f, 0xf1, 4 * CS, 12 * CS);
	expect(f, -1, 512, 100 * CS);
	expect(f, 0xf1, 512, 100 * CS + 512);
	expect(f, -1, CS - 1024, 100 * CS + 1024);
	expect(f, 0, 8 * CS, 300 * CS);
	expect(f, 0xf2, 512, 400 * CS);
	expect(f, 0xf2, 512, 401 * CS);
	/* unflushed first writes and zeroes: the base */
	expect(f, -1, 16 * CS, 32 * CS);
	expect(f, -1, 2 * CS, 500 * CS);
	expect(f, -1, CS, 16 * CS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_base_then_own_writes,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_identities_are_separate,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_trim_and_zeroes_read_zeros,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_racing_partial_first_writes,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_keeps_last_commit,
						fx_setup, fx_teardown),
	};

	nd_log_level = ND_LOG_WARN;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
