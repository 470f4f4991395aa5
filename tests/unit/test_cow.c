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
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

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
	char cmd[320];

	ov_close(f);
	nd_export_close(&f->base);
	umount2(f->ov_dir, MNT_DETACH);	/* the ENOSPC test's, if it failed */
	/* the overlay directory may be elsewhere (tmpfs) */
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", f->dir, f->ov_dir);
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

/*
 * The map's summary (a bit per 32-entry map word, 64 words per summary
 * word) lets reads skip words never changed: clusters on both sides of
 * every kind of boundary are written, zeroed or trimmed one at a time,
 * each read back beside its untouched neighbours, through pread and
 * pread_nowait, before and after a reopen (the summary rebuilt from the
 * file's map), on a disk that ends inside a map word.
 */
#define EDGE_CLUSTERS	(3 * 2048 + 33)

static int fx_setup_edges(void **state)
{
	return fx_setup_size(state, (uint64_t)EDGE_CLUSTERS * CS);
}

static const uint64_t edge_cl[] = {
	0, 31, 32, 63, 64, 2047, 2048, 2049, 4095, 4096, 6143, 6144,
	EDGE_CLUSTERS - 2, EDGE_CLUSTERS - 1,
};

/* What cluster c reads as after op i: base (-1), its fill, or zeros. */
static int edge_want(uint64_t c, size_t done)
{
	for (size_t i = 0; i < done; i++)
		if (edge_cl[i] == c)
			return i % 3 == 0 ? (int)(0x80 + i) : 0;
	return -1;
}

static void edge_check(struct fx *f, size_t done)
{
	uint8_t *buf = malloc(3 * CS);

	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(edge_cl) / sizeof(edge_cl[0]); i++) {
		uint64_t c0 = edge_cl[i] ? edge_cl[i] - 1 : 0;
		uint64_t n = EDGE_CLUSTERS - c0 < 3 ? EDGE_CLUSTERS - c0 : 3;
		int rc = f->ov.ops->pread_nowait(f->ov.h, buf, n * CS, c0 * CS);

		/* the base may refuse to read without waiting */
		assert_true(rc == 0 || rc == -EAGAIN);
		if (rc == -EAGAIN)
			ov_read(f, buf, n * CS, c0 * CS);
		for (uint64_t c = c0; c < c0 + n; c++) {
			int want = edge_want(c, done);

			for (uint32_t b = 0; b < CS; b++) {
				uint64_t o = c * CS + b;
				uint8_t w8 = want < 0 ? pat(o) : (uint8_t)want;

				if (buf[(c - c0) * CS + b] != w8)
					fail_msg("cluster %llu after %zu ops: byte %u is 0x%02x, expected 0x%02x",
						 (unsigned long long)c, done, b,
						 buf[(c - c0) * CS + b], w8);
			}
			expect(f, want, CS, c * CS);
		}
	}
	free(buf);
}

static void test_summary_edges(void **state)
{
	struct fx *f = *state;
	size_t n = sizeof(edge_cl) / sizeof(edge_cl[0]);

	ov_open(f);
	edge_check(f, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t off = edge_cl[i] * CS;

		if (i % 3 == 0)
			ov_write(f, (uint8_t)(0x80 + i), CS, off, false);
		else if (i % 3 == 1)
			assert_int_equal(f->ov.ops->write_zeroes(f->ov.h, CS,
								 off, false),
					 0);
		else
			assert_int_equal(f->ov.ops->trim(f->ov.h, CS, off), 0);
		edge_check(f, i + 1);
	}
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	ov_close(f);
	ov_open(f);
	edge_check(f, n);
	ov_close(f);
	expect_base_file_intact(f);
}

/*
 * The receiver's variants: first writes, FUA and reads that would wait
 * are left to a worker (-EAGAIN, nothing changed); the overlay here is
 * on tmpfs, so rewrites and reads of its data never wait.
 */
static void test_nowait_variants(void **state)
{
	struct fx *f = *state;
	const struct nd_backend_ops *o;
	uint8_t buf[2 * CS], rd[2 * CS];
	int rc;

	snprintf(f->ov_dir, sizeof(f->ov_dir), "/dev/shm/nd-cow-%d",
		 (int)getpid());
	snprintf(f->ov_path, sizeof(f->ov_path), "%s/lab-01.ndcow", f->ov_dir);
	ov_open(f);
	o = f->ov.ops;
	memset(buf, 0x6a, sizeof(buf));
	assert_int_equal(o->pwrite_nowait(f->ov.h, buf, CS, 0, false), -EAGAIN);
	assert_int_equal(o->pwrite_nowait(f->ov.h, buf, 512, CS + 512, false),
			 -EAGAIN);
	expect(f, -1, 2 * CS, 0);
	ov_write(f, 0x11, 2 * CS, 0, false);
	assert_int_equal(o->pwrite_nowait(f->ov.h, buf, 512, CS + 512, false),
			 0);
	assert_int_equal(o->pwrite_nowait(f->ov.h, buf, 512, 0, true), -EAGAIN);
	/* spans a cluster not yet written */
	assert_int_equal(o->pwrite_nowait(f->ov.h, buf, 2 * CS, CS, false),
			 -EAGAIN);
	expect(f, 0x11, CS + 512, 0);
	expect(f, 0x6a, 512, CS + 512);
	expect(f, 0x11, CS - 1024, CS + 1024);
	expect(f, -1, CS, 2 * CS);
	assert_int_equal(f->ov.ops->trim(f->ov.h, CS, 3 * CS), 0);
	/* data and zeros never wait here; the base may */
	assert_int_equal(o->pread_nowait(f->ov.h, rd, 2 * CS, 0), 0);
	for (uint32_t k = 0; k < 2 * CS; k++)
		assert_int_equal(rd[k], k < CS + 512 ? 0x11 :
				 k < CS + 1024 ? 0x6a : 0x11);
	assert_int_equal(o->pread_nowait(f->ov.h, rd, CS, 3 * CS), 0);
	for (uint32_t k = 0; k < CS; k++)
		assert_int_equal(rd[k], 0);
	rc = o->pread_nowait(f->ov.h, rd, 2 * CS, 3 * CS);
	assert_true(rc == 0 || rc == -EAGAIN);
	if (rc == 0)
		for (uint32_t k = 0; k < 2 * CS; k++)
			assert_int_equal(rd[k], k < CS ? 0 : pat(4 * CS + k - CS));
	ov_close(f);
	assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", (char *)rd,
				      sizeof(rd)), 0);
	assert_int_equal(rmdir(f->ov_dir), 0);
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

/*
 * Random operations from threads that own interleaved clusters (thread k:
 * clusters c with c % 4 == k), so they change entries of the same map
 * words at once; each checks its reads against its own model (per
 * 512-byte sector: -1 base, else the byte). With 4 KiB clusters a map
 * word lies in one stripe region; with 64 KiB clusters it spans two, so
 * only the compare-and-swap keeps concurrent changes of a word.
 */
#define RND_THREADS	4
#define RND_OPS		3000
#define RND_MAX_CS	(64u << 10)

struct rnd {
	struct fx *f;
	int idx;
	unsigned int seed;
	uint32_t cs;			/* cluster size */
	int16_t *model;			/* BASE_SIZE / 512 sectors, shared */
	const char *fail;
};

static bool rnd_check(struct rnd *r, uint64_t c, uint8_t *buf)
{
	if (r->f->ov.ops->pread(r->f->ov.h, buf, r->cs, c * r->cs))
		return false;
	for (uint32_t k = 0; k < r->cs; k++) {
		int16_t m = r->model[(c * r->cs + k) / 512];
		uint8_t want = m < 0 ? pat(c * r->cs + k) : (uint8_t)m;

		if (buf[k] != want)
			return false;
	}
	return true;
}

static void *rnd_main(void *arg)
{
	struct rnd *r = arg;
	const struct nd_backend_ops *o = r->f->ov.ops;
	uint32_t secs = r->cs / 512;
	uint8_t *buf = malloc(r->cs);

	for (int i = 0; buf && i < RND_OPS && !r->fail; i++) {
		uint64_t c = (uint64_t)(rand_r(&r->seed) % (BASE_SIZE / r->cs /
						 RND_THREADS)) * RND_THREADS + r->idx;
		uint32_t s0 = rand_r(&r->seed) % secs;
		uint32_t s1 = s0 + 1 + rand_r(&r->seed) % (secs - s0);
		int op = rand_r(&r->seed) % 5, v = 0, rc = 0;
		uint64_t off;
		uint32_t len;

		if (rand_r(&r->seed) % 3 == 0) {	/* whole cluster */
			s0 = 0;
			s1 = secs;
		}
		off = c * r->cs + s0 * 512;
		len = (s1 - s0) * 512;
		switch (op) {
		case 0:
		case 1:
			v = 1 + rand_r(&r->seed) % 255;
			memset(buf, v, len);
			rc = o->pwrite(r->f->ov.h, buf, len, off, op == 1);
			break;
		case 2:
			rc = o->trim(r->f->ov.h, len, off);
			break;
		case 3:
			rc = o->write_zeroes(r->f->ov.h, len, off, false);
			break;
		default:
			if (!rnd_check(r, c, buf))
				r->fail = "read differs from the model";
			continue;
		}
		if (rc) {
			r->fail = "operation failed";
			break;
		}
		for (uint32_t k = s0; k < s1; k++)
			r->model[c * secs + k] = (int16_t)v;
		if (i % 500 == 0 && o->flush(r->f->ov.h))
			r->fail = "flush failed";
	}
	if (!buf)
		r->fail = "out of memory";
	free(buf);
	return NULL;
}

static void random_ops(struct fx *f, uint32_t cs)
{
	int16_t *model = malloc(BASE_SIZE / 512 * sizeof(*model));
	uint8_t *buf = malloc(RND_MAX_CS);
	struct rnd r[RND_THREADS];
	pthread_t t[RND_THREADS];

	assert_non_null(model);
	assert_non_null(buf);
	for (uint32_t k = 0; k < BASE_SIZE / 512; k++)
		model[k] = -1;
	ov_open(f);
	for (int i = 0; i < RND_THREADS; i++) {
		r[i] = (struct rnd){ f, i, 1234u + (unsigned int)i, cs, model,
				     NULL };
		assert_int_equal(pthread_create(&t[i], NULL, rnd_main, &r[i]),
				 0);
	}
	for (int i = 0; i < RND_THREADS; i++) {
		pthread_join(t[i], NULL);
		if (r[i].fail)
			fail_msg("thread %d: %s", i, r[i].fail);
	}
	for (int round = 0; round < 2; round++) {
		for (uint64_t c = 0; c < BASE_SIZE / cs; c++)
			if (!rnd_check(&r[0], c, buf))
				fail_msg("cluster %llu differs from the model (%s)",
					 (unsigned long long)c,
					 round ? "reopened" : "open");
		assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
		ov_close(f);
		ov_open(f);
	}
	free(buf);
	free(model);
}

static void test_random_ops_from_threads(void **state)
{
	random_ops(*state, CS);
}

static void hdr_set(struct fx *f, unsigned int off, unsigned int width,
		    uint64_t v, bool resum);

/* Readers accept other cluster sizes: an overlay with 64 KiB clusters. */
static void test_random_ops_64k_clusters(void **state)
{
	struct fx *f = *state;

	ov_open(f);
	ov_close(f);
	/* 8 MiB: 128 clusters, map and data offset as with 4 KiB ones */
	hdr_set(f, 20, 4, 16, true);
	random_ops(f, 64u << 10);
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


/*
 * FUA writes from several threads at once share commits: each one that
 * returned is in the file's map, even if the process dies right after.
 */
#define FUA_THREADS	4
#define FUA_WRITES	64

static void *fua_main(void *arg)
{
	struct racer *r = arg;
	uint8_t buf[1024];

	memset(buf, 0xd0 + r->idx, sizeof(buf));
	pthread_barrier_wait(r->bar);
	for (int i = 0; i < FUA_WRITES; i++) {
		uint64_t c = 1000 + (uint64_t)i * FUA_THREADS + r->idx;

		if (r->f->ov.ops->pwrite(r->f->ov.h, buf, sizeof(buf),
					 c * CS + 1024, i % 4 != 3) ||
		    (i % 4 == 3 && r->f->ov.ops->flush(r->f->ov.h)))
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_fua_durable(void **state)
{
	struct fx *f = *state;
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t[FUA_THREADS];
		struct racer r[FUA_THREADS];
		pthread_barrier_t bar;
		char err[256];

		if (nd_cow_open(&f->cb, f->ov_dir, "lab-01", &f->ov, err,
				sizeof(err)))
			_exit(10);
		pthread_barrier_init(&bar, NULL, FUA_THREADS);
		for (int i = 0; i < FUA_THREADS; i++) {
			r[i] = (struct racer){ f, i, &bar };
			if (pthread_create(&t[i], NULL, fua_main, &r[i]))
				_exit(11);
		}
		for (int i = 0; i < FUA_THREADS; i++) {
			void *rv;

			pthread_join(t[i], &rv);
			if (rv)
				_exit(12);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	ov_open(f);
	for (int i = 0; i < FUA_WRITES; i++)
		for (int k = 0; k < FUA_THREADS; k++) {
			uint64_t c = 1000 + (uint64_t)i * FUA_THREADS + k;

			expect(f, -1, 1024, c * CS);
			expect(f, 0xd0 + k, 1024, c * CS + 1024);
			expect(f, -1, 2048, c * CS + 2048);
		}
}

/* A disk whose size is not a multiple of the cluster size. */
#define ODD_SIZE	(BASE_SIZE + 1536)

static int fx_setup_odd(void **state)
{
	return fx_setup_size(state, ODD_SIZE);
}

static void test_odd_size_last_cluster(void **state)
{
	struct fx *f = *state;
	struct nd_cow_info in;
	char err[512] = "", out[256];
	uint8_t *want = malloc(ODD_SIZE), *got = malloc(ODD_SIZE);
	int fd;

	assert_non_null(want);
	assert_non_null(got);
	ov_open(f);
	assert_int_equal(f->ov.size, ODD_SIZE);
	expect(f, -1, ODD_SIZE, 0);
	ov_write(f, 0x5e, 512, ODD_SIZE - 1024, true);
	expect(f, -1, 512, BASE_SIZE);
	expect(f, 0x5e, 512, ODD_SIZE - 1024);
	expect(f, -1, 512, ODD_SIZE - 512);
	ov_read(f, want, ODD_SIZE, 0);
	ov_close(f);
	assert_int_equal(nd_cow_info(f->ov_dir, "lab-01", &in, err,
				     sizeof(err)), 0);
	assert_int_equal(in.data_bytes, 1536);
	snprintf(out, sizeof(out), "%s/merged.img", f->dir);
	assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-01", out, err,
				      sizeof(err)), 0);
	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, ODD_SIZE, 0), ODD_SIZE);
	assert_int_equal(pread(fd, got, 1, ODD_SIZE), 0);
	close(fd);
	assert_memory_equal(want, got, ODD_SIZE);
	ov_open(f);
	assert_int_equal(f->ov.ops->trim(f->ov.h, 1536, BASE_SIZE), 0);
	expect(f, 0, 1536, BASE_SIZE);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	ov_close(f);
	assert_int_equal(nd_cow_info(f->ov_dir, "lab-01", &in, err,
				     sizeof(err)), 0);
	assert_int_equal(in.data_bytes, 0);
	assert_int_equal(in.zero_bytes, 1536);
	free(want);
	free(got);
}

/* ---- refusals of damaged files ---- */

static uint64_t hdr_get(struct fx *f, unsigned int off, unsigned int width)
{
	uint8_t b[8];
	int fd = open(f->ov_path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, width, off), (ssize_t)width);
	close(fd);
	return width == 4 ? cow_get32(b) : cow_get64(b);
}

/* Sets a header field; resum: keep the checksum right. */
static void hdr_set(struct fx *f, unsigned int off, unsigned int width,
		    uint64_t v, bool resum)
{
	uint8_t hdr[COW_HDR_LEN];
	unsigned int len = 0;
	int fd = open(f->ov_path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	if (width == 1)
		hdr[off] = (uint8_t)v;
	else if (width == 4)
		cow_put32(hdr + off, (uint32_t)v);
	else
		cow_put64(hdr + off, v);
	if (resum)
		assert_int_equal(EVP_Digest(hdr, COW_SUM_OFF, hdr + COW_SUM_OFF,
					    &len, EVP_sha256(), NULL), 1);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
}

static void file_poke(const char *path, uint64_t off, uint8_t v)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &v, 1, (off_t)off), 1);
	close(fd);
}

static void file_truncate(const char *path, uint64_t len)
{
	assert_int_equal(truncate(path, (off_t)len), 0);
}

/* Runs check; returns its result, report text in rep. */
static int check(struct fx *f, char *rep, size_t n)
{
	char err[512] = "";
	FILE *fp = fmemopen(rep, n, "w");
	int rc;

	assert_non_null(fp);
	rc = nd_cow_check(&f->cb, f->ov_dir, "lab-01", fp, err, sizeof(err));
	fclose(fp);
	if (rc < 0)
		fail_msg("nd_cow_check: %s", err);
	return rc;
}

/* A fresh overlay with data in cluster 0, closed. */
static void fresh(struct fx *f)
{
	char err[256];

	ov_close(f);
	assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err, sizeof(err)),
			 0);
	ov_open(f);
	ov_write(f, 0x77, CS, 0, true);
	ov_close(f);
}

/* The overlay is refused with why, and check reports the same. */
static void refused(struct fx *f, const char *why)
{
	char err[512] = "", rep[2048];

	if (ov_try(f, "lab-01", err, sizeof(err)) != ND_COW_ERR)
		fail_msg("overlay accepted; expected '%s'", why);
	if (!strstr(err, why) || !strstr(err, f->ov_path))
		fail_msg("'%s' does not say '%s'", err, why);
	assert_int_equal(check(f, rep, sizeof(rep)), 1);
	if (!strstr(rep, why) || !strstr(rep, "problem"))
		fail_msg("check said '%s', not '%s'", rep, why);
}

static void accepted(struct fx *f)
{
	char rep[2048];

	assert_int_equal(check(f, rep, sizeof(rep)), 0);
	assert_non_null(strstr(rep, "consistent"));
	ov_open(f);
	expect(f, 0x77, CS, 0);
	ov_close(f);
}

static void test_damaged_overlays_refused(void **state)
{
	struct fx *f = *state;
	uint64_t doff, v;

	fresh(f);
	accepted(f);
	doff = hdr_get(f, 48, 8);
	assert_int_equal(doff, 1 << 20);

	file_poke(f->ov_path, 0, 'X');
	refused(f, "bad magic");
	fresh(f);
	hdr_set(f, 8, 4, 2, true);
	refused(f, "unsupported version 2");
	fresh(f);
	file_poke(f->ov_path, 200, 1);
	refused(f, "checksum");
	fresh(f);
	file_poke(f->ov_path, COW_SUM_OFF + 5, 0x5a);
	refused(f, "checksum");
	fresh(f);
	hdr_set(f, 12, 4, 1, true);
	refused(f, "incompatible");
	fresh(f);
	hdr_set(f, 16, 4, 0x80, true);	/* compatible: ignored */
	accepted(f);
	fresh(f);
	hdr_set(f, 20, 4, 8, true);
	refused(f, "cluster_bits");
	fresh(f);
	hdr_set(f, 20, 4, 21, true);
	refused(f, "cluster_bits");
	fresh(f);
	hdr_set(f, 24, 8, 0, true);
	refused(f, "disk size");
	fresh(f);
	hdr_set(f, 24, 8, BASE_SIZE + 512, true);
	refused(f, "differs from base size");
	fresh(f);
	hdr_set(f, 32, 8, 4096, true);
	refused(f, "map offset");
	fresh(f);
	hdr_set(f, 40, 8, hdr_get(f, 40, 8) + 4096, true);
	refused(f, "map length");
	fresh(f);
	hdr_set(f, 48, 8, doff + 4096, true);
	refused(f, "data offset");
	fresh(f);
	hdr_set(f, 48, 8, 0, true);
	refused(f, "data offset");
	fresh(f);
	hdr_set(f, 48, 8, ~0ull << 20, true);
	refused(f, "data offset");
	fresh(f);
	file_truncate(f->ov_path, doff - 1);
	refused(f, "than its data offset");
	fresh(f);
	file_truncate(f->ov_path, 100);
	refused(f, "shorter than its header");
	fresh(f);
	file_truncate(f->ov_path, 0);
	refused(f, "shorter than its header");
	fresh(f);
	/* cluster 5 := 3 */
	file_poke(f->ov_path, COW_MAP_OFFSET + 1, 3 << 2);
	refused(f, "invalid");
	fresh(f);
	/* 2048 clusters: map bytes 0..511; byte 600 is past the end */
	file_poke(f->ov_path, COW_MAP_OFFSET + 600, 1);
	refused(f, "past the end of the disk");
	fresh(f);
	/* cluster 0 holds data but the file stops at data_offset */
	file_truncate(f->ov_path, doff);
	refused(f, "past the end of the file");
	fresh(f);
	/* a damaged usage record is no reason to refuse */
	for (unsigned int o = COW_USAGE_OFF; o < COW_USAGE_OFF + 64; o++)
		file_poke(f->ov_path, o, 0xee);
	accepted(f);
	v = hdr_get(f, COW_USAGE_OFF + 8, 8);
	assert_int_equal(v, 1);	/* counting again from the one just made */
	/* not a regular file / a symlink */
	ov_close(f);
	assert_int_equal(unlink(f->ov_path), 0);
	assert_int_equal(symlink(f->base_path, f->ov_path), 0);
	{
		char err[256] = "";

		assert_int_equal(ov_try(f, "lab-01", err, sizeof(err)),
				 ND_COW_ERR);
		assert_non_null(strstr(err, "not a regular file"));
		assert_int_equal(unlink(f->ov_path), 0);
		assert_int_equal(mkfifo(f->ov_path, 0600), 0);
		assert_int_equal(ov_try(f, "lab-01", err, sizeof(err)),
				 ND_COW_ERR);
		assert_non_null(strstr(err, "not a regular file"));
		assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err,
					      sizeof(err)), ND_COW_ERR);
	}
	expect_base_file_intact(f);
}

/* ---- the base binding ---- */

static void set_mtime(const char *path, const struct timespec *t)
{
	struct timespec ts[2] = { t[0], t[1] };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void base_changed(struct fx *f, const char *why)
{
	char err[512] = "", rep[2048];

	assert_int_equal(ov_try(f, "lab-01", err, sizeof(err)),
			 ND_COW_BASE_CHANGED);
	if (!strstr(err, why) || !strstr(err, f->ov_path) ||
	    !strstr(err, "base image changed"))
		fail_msg("'%s' does not say '%s'", err, why);
	assert_int_equal(check(f, rep, sizeof(rep)), 1);
	if (!strstr(rep, why))
		fail_msg("check said '%s', not '%s'", rep, why);
}

static void test_changed_base_refused(void **state)
{
	struct fx *f = *state;
	struct timespec t[2];
	struct stat st;
	uint8_t b;
	int fd;

	fresh(f);
	assert_int_equal(stat(f->base_path, &st), 0);
	t[0] = st.st_atim;
	t[1] = st.st_mtim;

	/* an unsampled block with the mtime put back: not detected */
	fd = open(f->base_path, O_RDWR);
	assert_true(fd >= 0);
	b = pat(4096 + 100) ^ 0xff;
	assert_int_equal(pwrite(fd, &b, 1, 4096 + 100), 1);
	set_mtime(f->base_path, t);
	accepted(f);
	b = pat(4096 + 100);
	assert_int_equal(pwrite(fd, &b, 1, 4096 + 100), 1);

	/* a sampled block (sample 0), mtime put back */
	b = pat(100) ^ 0xff;
	assert_int_equal(pwrite(fd, &b, 1, 100), 1);
	set_mtime(f->base_path, t);
	base_changed(f, "other contents");
	b = pat(100);
	assert_int_equal(pwrite(fd, &b, 1, 100), 1);
	close(fd);

	/* only the mtime */
	t[1].tv_sec -= 1000;
	set_mtime(f->base_path, t);
	base_changed(f, "modified");
	t[1].tv_sec += 1000;
	set_mtime(f->base_path, t);
	accepted(f);

	/* another size (the base reopened, as a server restart does) */
	nd_export_close(&f->base);
	make_file(f->base_path, BASE_SIZE + 4096);
	base_open(f);
	base_changed(f, "bytes, was");

	/* merge and reset: merge refuses, reset starts over */
	{
		char err[512] = "", out[256];

		snprintf(out, sizeof(out), "%s/merged.img", f->dir);
		assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-01", out,
					      err, sizeof(err)),
				 ND_COW_BASE_CHANGED);
		assert_int_equal(access(out, F_OK), -1);
		assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err,
					      sizeof(err)), 0);
	}
	ov_open(f);
	assert_int_equal(f->ov.size, BASE_SIZE + 4096);
	expect(f, -1, CS, 0);
}

/* ---- out of space ---- */

/*
 * Fills the overlay's filesystem with first writes until one fails with
 * want; the overlay must stay usable and consistent.
 */
static void fill_until(struct fx *f, int want)
{
	const uint32_t chunk = 64 * 1024;
	uint8_t *buf = malloc(chunk);
	uint64_t off, ok_end = 0;
	int rc = 0;

	assert_non_null(buf);
	ov_open(f);
	for (off = 0; off + chunk <= BASE_SIZE; off += chunk) {
		memset(buf, 0x50 + (int)(off / chunk % 64), chunk);
		/* unaligned: partial clusters at both ends */
		rc = f->ov.ops->pwrite(f->ov.h, buf, chunk - 1024, off + 512,
				       false);
		if (rc)
			break;
		ok_end = off + chunk;
	}
	assert_int_equal(rc, want);
	assert_true(ok_end > 0);
	/* the failed write left the base; the earlier ones their data */
	expect(f, -1, chunk, off);
	expect(f, 0x50 + (int)((ok_end - chunk) / chunk % 64), chunk - 1024,
	       ok_end - chunk + 512);
	/* rewrites in place and commits still work */
	ov_write(f, 0x99, 512, 512, true);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	ov_close(f);
	{
		char rep[2048];

		assert_int_equal(check(f, rep, sizeof(rep)), 0);
	}
	ov_open(f);
	expect(f, 0x99, 512, 512);
	expect(f, -1, 512, 0);
	expect(f, 0x50 + (int)((ok_end - chunk) / chunk % 64), chunk - 1024,
	       ok_end - chunk + 512);
	expect(f, -1, chunk, off);
	/* trimming frees space for new first writes */
	assert_int_equal(f->ov.ops->trim(f->ov.h, (uint32_t)ok_end, 0), 0);
	if (want == -ENOSPC) {
		memset(buf, 0x42, chunk);
		assert_int_equal(f->ov.ops->pwrite(f->ov.h, buf, chunk, off,
						   true), 0);
		expect(f, 0x42, chunk, off);
	}
	expect(f, 0, (uint32_t)ok_end, 0);
	ov_close(f);
	free(buf);
}

static void test_enospc_keeps_overlay_consistent(void **state)
{
	struct fx *f = *state;

	assert_int_equal(mkdir(f->ov_dir, 0700), 0);
	if (mount("nd-cow-test", f->ov_dir, "tmpfs", 0, "size=3m,mode=0700")) {
		print_message("tmpfs mount: %s: skipped\n", strerror(errno));
		skip();
	}
	fill_until(f, -ENOSPC);
	assert_int_equal(umount(f->ov_dir), 0);
}

static void test_file_size_limit_keeps_overlay_consistent(void **state)
{
	struct fx *f = *state;
	struct rlimit old, lim;
	uint64_t doff;

	ov_open(f);
	ov_close(f);
	doff = hdr_get(f, 48, 8);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = doff + (3u << 20) + 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	fill_until(f, -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
}

/* ---- the administrator's operations ---- */

static void test_merge_equals_reads(void **state)
{
	struct fx *f = *state;
	char out[256], err[512] = "";
	uint8_t *want = malloc(BASE_SIZE), *got = malloc(BASE_SIZE);
	struct stat st;
	int fd;

	assert_non_null(want);
	assert_non_null(got);
	snprintf(out, sizeof(out), "%s/merged.img", f->dir);
	ov_open(f);
	ov_write(f, 0x12, 3 * CS, 10 * CS + 512, false);
	ov_write(f, 0x00, 64 * CS, 128 * CS, false);	/* zeros written */
	assert_int_equal(f->ov.ops->trim(f->ov.h, 256 * CS, 1024 * CS), 0);
	ov_write(f, 0x13, 512, BASE_SIZE - 512, true);
	ov_read(f, want, BASE_SIZE, 0);
	/* in use while open */
	assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-01", out, err,
				      sizeof(err)), ND_COW_IN_USE);
	ov_close(f);
	assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-01", out, err,
				      sizeof(err)), 0);
	fd = open(out, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, BASE_SIZE);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pread(fd, got, BASE_SIZE, 0), BASE_SIZE);
	close(fd);
	assert_memory_equal(want, got, BASE_SIZE);
	/* zeros stay holes: 320 of the 2048 clusters read zeros */
	assert_true((uint64_t)st.st_blocks * 512 <= BASE_SIZE - 300 * CS);
	/* the output must not exist; no overlay, no merge */
	assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-01", out, err,
				      sizeof(err)), ND_COW_ERR);
	assert_non_null(strstr(err, "exists"));
	unlink(out);
	assert_int_equal(nd_cow_merge(&f->cb, f->ov_dir, "lab-02", out, err,
				      sizeof(err)), ND_COW_ERR);
	assert_non_null(strstr(err, "no overlay"));
	assert_int_equal(access(out, F_OK), -1);
	expect_base_file_intact(f);
	free(want);
	free(got);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	uint8_t id1[ND_EXPORT_ID_LEN];
	char err[512] = "";

	ov_open(f);
	memcpy(id1, f->ov.id, sizeof(id1));
	ov_write(f, 0x21, CS, 0, true);
	assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err, sizeof(err)),
			 ND_COW_IN_USE);
	assert_non_null(strstr(err, "in use"));
	expect(f, 0x21, CS, 0);
	ov_close(f);
	assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err, sizeof(err)),
			 0);
	assert_int_equal(access(f->ov_path, F_OK), -1);
	assert_int_equal(nd_cow_reset(f->ov_dir, "lab-01", err, sizeof(err)),
			 0);
	ov_open(f);
	expect(f, -1, CS, 0);
	/* another disk to the client */
	assert_memory_not_equal(id1, f->ov.id, sizeof(id1));
}

/*
 * The header block is written once: an attach's unsynced usage record goes
 * to a block of its own, so a torn write at power loss cannot take the
 * header (and with it the overlay) along.
 */
static void test_attach_leaves_header_block(void **state)
{
	struct fx *f = *state;
	uint8_t before[COW_HDR_LEN], after[COW_HDR_LEN];
	int fd;

	ov_open(f);
	ov_close(f);
	fd = open(f->ov_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, before, sizeof(before), 0), sizeof(before));
	close(fd);
	ov_open(f);
	ov_close(f);
	fd = open(f->ov_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, after, sizeof(after), 0), sizeof(after));
	close(fd);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(hdr_get(f, COW_USAGE_OFF + 8, 8), 2);
	assert_true(COW_USAGE_OFF >= COW_HDR_LEN &&
		    COW_USAGE_OFF + COW_USAGE_LEN <= COW_MAP_OFFSET);
}

static void test_list_and_info(void **state)
{
	struct fx *f = *state;
	struct nd_cow_info *v, in;
	struct nd_export other = { 0 };
	char err[512] = "", p[256];
	time_t now = time(NULL);
	int n, fd;

	assert_int_equal(nd_cow_list(f->ov_dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(v);
	ov_open(f);
	ov_write(f, 0x31, 3 * CS, 0, false);
	ov_write(f, 0x31, 512, BASE_SIZE - 512, false);
	assert_int_equal(f->ov.ops->trim(f->ov.h, 5 * CS, 8 * CS), 0);
	/* info reads the last commit */
	assert_int_equal(nd_cow_info(f->ov_dir, "lab-01", &in, err,
				     sizeof(err)), 0);
	assert_int_equal(in.data_bytes, 0);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	ov_close(f);
	ov_open(f);
	ov_close(f);
	assert_int_equal(nd_cow_open(&f->cb, f->ov_dir, "db01", &other, err,
				     sizeof(err)), 0);
	nd_export_close(&other);
	/* junk: listed with size 0; not overlays: not listed */
	snprintf(p, sizeof(p), "%s/junk.ndcow", f->ov_dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	snprintf(p, sizeof(p), "%s/x.ndcow.tmp", f->ov_dir);
	assert_int_equal(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);
	snprintf(p, sizeof(p), "%s/a b.ndcow", f->ov_dir);
	assert_int_equal(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);
	snprintf(p, sizeof(p), "%s/.ndcow", f->ov_dir);
	assert_int_equal(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);

	assert_int_equal(nd_cow_list(f->ov_dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].identity, "db01");
	assert_string_equal(v[1].identity, "junk");
	assert_string_equal(v[2].identity, "lab-01");
	assert_int_equal(v[0].size, BASE_SIZE);
	assert_int_equal(v[0].data_bytes, 0);
	assert_int_equal(v[0].attaches, 1);
	assert_int_equal(v[1].size, 0);
	assert_int_equal(v[2].size, BASE_SIZE);
	assert_int_equal(v[2].data_bytes, 3 * CS + CS);
	assert_int_equal(v[2].zero_bytes, 5 * CS);
	assert_int_equal(v[2].attaches, 2);
	assert_true(v[2].last_used >= now && v[2].last_used <= now + 5);
	assert_true(v[2].created >= now && v[2].created <= now + 5);
	/* space: the map and the written clusters, not the disk */
	assert_true(v[2].allocated >= 4 * CS &&
		    v[2].allocated < (1u << 20));
	free(v);
	assert_int_equal(nd_cow_info(f->ov_dir, "nobody", &in, err,
				     sizeof(err)), -1);
	assert_non_null(strstr(err, "nobody.ndcow"));
}

/* ---- memory ---- */

static int fx_setup_10g(void **state)
{
	struct fx *f;

	fx_setup_size(state, 4096);
	f = *state;
	nd_export_close(&f->base);
	assert_int_equal(truncate(f->base_path, 10ll << 30), 0);
	base_open(f);
	return 0;
}

static void test_memory_per_10g(void **state)
{
	struct fx *f = *state;
	size_t m;

	ov_open(f);
	m = nd_cow_mem(f->ov.h);
	print_message("overlay of 10 GiB: %zu bytes of memory\n", m);
	assert_true(m <= (1u << 20));
	assert_true(m >= (640u << 10));	/* the map is counted */
	ov_write(f, 0x61, 1u << 20, 5ull << 30, false);
	assert_int_equal(f->ov.ops->write_zeroes(f->ov.h, 1u << 30, 1ull << 30,
						 false), 0);
	assert_int_equal(f->ov.ops->flush(f->ov.h), 0);
	assert_int_equal(nd_cow_mem(f->ov.h), m);
	expect(f, 0x61, 1u << 20, 5ull << 30);
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
		cmocka_unit_test_setup_teardown(test_summary_edges,
						fx_setup_edges, fx_teardown),
		cmocka_unit_test_setup_teardown(test_racing_partial_first_writes,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_random_ops_from_threads,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_random_ops_64k_clusters,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash_keeps_last_commit,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nowait_variants,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_fua_durable,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_odd_size_last_cluster,
						fx_setup_odd, fx_teardown),
		cmocka_unit_test_setup_teardown(test_damaged_overlays_refused,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_changed_base_refused,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_enospc_keeps_overlay_consistent,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_file_size_limit_keeps_overlay_consistent,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_equals_reads,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reset, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_attach_leaves_header_block,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_list_and_info, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_memory_per_10g,
						fx_setup_10g, fx_teardown),
	};

	nd_log_level = ND_LOG_WARN;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
