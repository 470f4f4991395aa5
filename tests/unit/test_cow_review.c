// SPDX-License-Identifier: MIT
/*
 * An attacker's and a crash's view of the copy-on-write overlays
 * (server/cow.c, cow_admin.c): many threads at once doing partial and
 * whole-cluster writes, TRIMs, WRITE_ZEROES, FLUSHes and FUA writes on
 * shared and owned clusters while the process is killed with -9 at random
 * moments (every sector must then read its value at its owner's last
 * completed flush or one written after, never garbage); and what the
 * administrator's commands do with files they were not asked about.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../server/backend.h"
#include "../../server/cow.h"
#include "../../server/log.h"

#define BASE_SIZE	(2u << 20)
#define CS		4096u
#define SECT		512u
#define SPC		(CS / SECT)		/* sectors per cluster */
#define NT		8			/* threads: one per sector (SPC) */
#define NCL		64			/* clusters in the area */
#define NSHARED		8			/* first ones: sector-owned */
#define AREA		((1u << 20) - 4 * CS)	/* spans a stripe edge */
#define NSECT		(NCL * SPC)
#define MAXH		1024
#define ROUNDS		16

struct fx {
	char dir[64];
	char base_path[128];
	char ov_dir[128];
	struct nd_export base;
	struct nd_cow_base cb;
};

static uint8_t pat(uint64_t off)
{
	return (uint8_t)((off >> 9) * 7 + (off & 511) + 1);
}

/* As the server names its base: the file it opened (export.c). */
static void base_ids(struct fx *f)
{
	struct stat st;

	assert_int_equal(stat(f->base_path, &st), 0);
	f->cb.e = &f->base;
	f->cb.path = f->base_path;
	f->cb.dev = (uint64_t)st.st_dev;
	f->cb.ino = (uint64_t)st.st_ino;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t *buf = malloc(BASE_SIZE);
	char err[256];
	int fd;

	assert_non_null(f);
	assert_non_null(buf);
	snprintf(f->dir, sizeof(f->dir), "/tmp/nd-cowrev-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->base_path, sizeof(f->base_path), "%s/base.img", f->dir);
	snprintf(f->ov_dir, sizeof(f->ov_dir), "%s/ov", f->dir);
	for (uint64_t i = 0; i < BASE_SIZE; i++)
		buf[i] = pat(i);
	fd = open(f->base_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, BASE_SIZE), BASE_SIZE);
	close(fd);
	free(buf);
	assert_int_equal(nd_file_open(&f->base, f->base_path, true, err,
				      sizeof(err)), 0);
	base_ids(f);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	nd_export_close(&f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void ov_open(struct fx *f, struct nd_export *ov)
{
	char err[512] = "";

	memset(ov, 0, sizeof(*ov));
	if (nd_cow_open(&f->cb, f->ov_dir, "lab", ov, err, sizeof(err)))
		fail_msg("nd_cow_open: %s", err);
}

/* ---- threads and kill -9 ---- */

/*
 * Per sector of the area, in memory shared with the killed child: the
 * values it was given, in order (0 base, 1 zeros, 2.. a write's id), the
 * last one possibly still in flight, and the index of the one its owner's
 * last completed flush made durable.
 */
struct sect {
	uint32_t n, floor;
	uint32_t hist[MAXH];
};

struct shared {
	struct sect s[NSECT];
	uint32_t next_id[NT];
	char why[640];
};

struct worker {
	struct shared *sh;
	struct nd_export *ov;
	int t;
	unsigned int seed;
};

static uint64_t word(uint32_t id, uint32_t sector)
{
	return (uint64_t)id << 32 | sector;
}

/* Sector i of the area as value id. */
static void fill(uint8_t *p, uint32_t i, uint32_t id)
{
	uint64_t abs = AREA + (uint64_t)i * SECT;

	for (uint32_t k = 0; k < SECT; k++) {
		if (id == 0)
			p[k] = pat(abs + k);
		else if (id == 1)
			p[k] = 0;
	}
	if (id >= 2)
		for (uint32_t k = 0; k < SECT / 8; k++) {
			uint64_t w = word(id, i);

			memcpy(p + 8 * k, &w, 8);
		}
}

/* The value sector i holds, or -1 if it is none of them (garbage). */
static long decode(const uint8_t *p, uint32_t i)
{
	uint8_t want[SECT];
	uint64_t w;

	fill(want, i, 0);
	if (!memcmp(p, want, SECT))
		return 0;
	fill(want, i, 1);
	if (!memcmp(p, want, SECT))
		return 1;
	memcpy(&w, p, 8);
	if ((uint32_t)w != i || (w >> 32) < 2)
		return -1;
	fill(want, i, (uint32_t)(w >> 32));
	return memcmp(p, want, SECT) ? -1 : (long)(w >> 32);
}

/* Sectors [a, b) of the area, owned by t, are now being set to id. */
static void give(struct shared *sh, uint32_t a, uint32_t b, uint32_t id)
{
	for (uint32_t i = a; i < b; i++) {
		struct sect *s = &sh->s[i];

		s->hist[s->n] = id;
		__atomic_store_n(&s->n, s->n + 1, __ATOMIC_SEQ_CST);
	}
}

/* t's flush (or FUA write) returned: what t gave before is durable. */
static void durable(struct shared *sh, int t, const uint32_t *upto)
{
	for (uint32_t i = 0; i < NSECT; i++) {
		uint32_t c = i / SPC;

		if (c < NSHARED ? (int)(i % SPC) == t : (int)(c % NT) == t)
			__atomic_store_n(&sh->s[i].floor, upto[i],
					 __ATOMIC_SEQ_CST);
	}
}

static void snapshot(struct shared *sh, uint32_t *upto)
{
	for (uint32_t i = 0; i < NSECT; i++)
		upto[i] = sh->s[i].n - 1;
}

/* Worker t: random operations on its sectors, checking its own reads. */
static void *work_main(void *arg)
{
	struct worker *wk = arg;
	struct shared *sh = wk->sh;
	const struct nd_backend_ops *o = wk->ov->ops;
	void *h = wk->ov->h;
	uint8_t buf[CS], got[CS];
	uint32_t *upto = calloc(NSECT, sizeof(*upto));

	if (!upto)
		return (void *)"out of memory";
	for (int op = 0; op < 100000; op++) {
		unsigned int r = (unsigned int)rand_r(&wk->seed);
		uint32_t a, b, id, c;
		int kind = r % 100, rc = 0;
		bool fua = (r >> 8) % 7 == 0;

		/* Which sectors: one of its own in a shared cluster, or a run
		 * (often the whole cluster) of an owned one. */
		if ((r >> 12) & 1) {
			c = (r >> 13) % NSHARED;
			a = c * SPC + (uint32_t)wk->t;
			b = a + 1;
		} else {
			c = NSHARED + (uint32_t)wk->t +
			    NT * ((r >> 13) % ((NCL - NSHARED) / NT));
			a = c * SPC;
			b = a + SPC;
			if ((r >> 20) & 1) {
				a += (r >> 21) % SPC;
				b = a + 1 + (r >> 24) % (c * SPC + SPC - a);
			}
		}
		for (uint32_t i = a; i < b; i++)
			if (sh->s[i].n + 2 >= MAXH)
				goto out;
		if (kind < 40) {
			id = sh->next_id[wk->t]++ * NT + (uint32_t)wk->t + 2;
			for (uint32_t i = a; i < b; i++)
				fill(buf + (i - a) * SECT, i, id);
			give(sh, a, b, id);
			if (fua)
				snapshot(sh, upto);
			rc = o->pwrite(h, buf, (b - a) * SECT,
				       AREA + (uint64_t)a * SECT, fua);
			if (rc == 0 && fua)
				durable(sh, wk->t, upto);
		} else if (kind < 55) {
			give(sh, a, b, 1);
			rc = o->trim(h, (b - a) * SECT, AREA + (uint64_t)a * SECT);
		} else if (kind < 70) {
			give(sh, a, b, 1);
			rc = o->write_zeroes(h, (b - a) * SECT,
					     AREA + (uint64_t)a * SECT, false);
		} else if (kind < 78) {
			snapshot(sh, upto);
			rc = o->flush(h);
			if (rc == 0)
				durable(sh, wk->t, upto);
		} else {
			rc = o->pread(h, got, (b - a) * SECT,
				      AREA + (uint64_t)a * SECT);
			for (uint32_t i = a; rc == 0 && i < b; i++) {
				struct sect *s = &sh->s[i];
				long v = decode(got + (i - a) * SECT, i);

				if (v != (long)s->hist[s->n - 1]) {
					snprintf(sh->why, sizeof(sh->why),
						 "thread %d: sector %u reads %ld, last written %u",
						 wk->t, i, v, s->hist[s->n - 1]);
					free(upto);
					return sh->why;
				}
			}
		}
		if (rc) {
			snprintf(sh->why, sizeof(sh->why),
				 "thread %d: operation %d failed: %s", wk->t,
				 kind, strerror(-rc));
			free(upto);
			return sh->why;
		}
	}
out:
	free(upto);
	return NULL;
}

static void child_main(struct fx *f, struct shared *sh, int round)
{
	struct worker wk[NT];
	pthread_t th[NT];
	struct nd_export ov;
	char err[512];

	if (nd_cow_open(&f->cb, f->ov_dir, "lab", &ov, err, sizeof(err))) {
		snprintf(sh->why, sizeof(sh->why), "open: %s", err);
		_exit(2);
	}
	for (int t = 0; t < NT; t++) {
		wk[t] = (struct worker){ sh, &ov, t,
					 (unsigned int)(round * 7919 + t) };
		if (pthread_create(&th[t], NULL, work_main, &wk[t]))
			_exit(3);
	}
	for (int t = 0; t < NT; t++) {
		void *rv;

		pthread_join(th[t], &rv);
		if (rv)
			_exit(4);
	}
	_exit(0);	/* ran out of history before the kill: no close */
}

/* After the kill: every sector reads a value its history allows. */
static void verify_round(struct fx *f, struct shared *sh, int round)
{
	uint8_t *buf = malloc(NSECT * SECT);
	struct nd_export ov;

	assert_non_null(buf);
	ov_open(f, &ov);
	assert_int_equal(ov.ops->pread(ov.h, buf, NSECT * SECT, AREA), 0);
	for (uint32_t i = 0; i < NSECT; i++) {
		struct sect *s = &sh->s[i];
		long v = decode(buf + i * SECT, i);
		bool ok = false;

		for (uint32_t k = s->floor; v >= 0 && k < s->n; k++)
			ok |= s->hist[k] == (uint32_t)v;
		if (!ok)
			fail_msg("round %d: sector %u (cluster %u) reads %ld; allowed from index %u of %u (durable value %u, last %u)",
				 round, i, i / SPC, v, s->floor, s->n,
				 s->hist[s->floor], s->hist[s->n - 1]);
		/* What it reads now is where the next round starts. */
		s->hist[0] = (uint32_t)v;
		s->n = 1;
		s->floor = 0;
	}
	nd_export_close(&ov);
	free(buf);
}

static void test_threads_and_kill9(void **state)
{
	struct fx *f = *state;
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct nd_export ov;
	struct timespec ts;

	assert_true(sh != MAP_FAILED);
	for (uint32_t i = 0; i < NSECT; i++)
		sh->s[i].n = 1;		/* hist[0] = 0: the base */
	ov_open(f, &ov);		/* create it outside the rounds */
	nd_export_close(&ov);
	for (int round = 0; round < ROUNDS; round++) {
		pid_t pid = fork();
		int st;

		assert_true(pid >= 0);
		if (pid == 0)
			child_main(f, sh, round);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(20 + (round * 37) % 130) * 1000000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			fail_msg("round %d: child failed: %s", round, sh->why);
		verify_round(f, sh, round);
		/* Every other round starts from the base: first writes race. */
		if (round & 1) {
			char err[512];

			assert_int_equal(nd_cow_reset(f->ov_dir, "lab", err,
						      sizeof(err)), 0);
			for (uint32_t i = 0; i < NSECT; i++)
				sh->s[i].hist[0] = 0;
		}
	}
	munmap(sh, sizeof(*sh));
}

/* ---- partial first writes of one cluster over a slow base ---- */

/*
 * The base as it is, each read 2 ms late: a first write's fill from the
 * base (rule 1) then overlaps the other threads' first writes of the
 * same cluster, as it does on a busy disk.
 */
static const struct nd_backend_ops *file_ops;

static int slow_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
	struct timespec ts = { 0, 2000000 };

	nanosleep(&ts, NULL);
	return file_ops->pread(h, buf, len, off);
}

#define SLOW_CLUSTERS	8

struct racer {
	struct nd_export *ov;
	int t;
	pthread_barrier_t *bar;
	int rc;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	uint8_t buf[SECT];

	memset(buf, 0xa0 + r->t, sizeof(buf));
	for (int c = 0; c < SLOW_CLUSTERS && !r->rc; c++) {
		pthread_barrier_wait(r->bar);
		r->rc = r->ov->ops->pwrite(r->ov->h, buf, SECT,
					   (uint64_t)c * CS +
					   (uint64_t)r->t * SECT, false);
	}
	return NULL;
}

static void test_first_writes_over_slow_base(void **state)
{
	struct fx *f = *state;
	struct nd_backend_ops slow;
	struct nd_export ov, base = f->base;
	struct racer r[NT];
	pthread_t th[NT];
	pthread_barrier_t bar;
	uint8_t got[SECT];

	file_ops = f->base.ops;
	slow = *file_ops;
	slow.pread = slow_pread;
	slow.pread_nowait = NULL;
	base.ops = &slow;
	f->cb.e = &base;
	ov_open(f, &ov);
	pthread_barrier_init(&bar, NULL, NT);
	for (int t = 0; t < NT; t++) {
		r[t] = (struct racer){ &ov, t, &bar, 0 };
		assert_int_equal(pthread_create(&th[t], NULL, racer_main,
						&r[t]), 0);
	}
	for (int t = 0; t < NT; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(r[t].rc, 0);
	}
	pthread_barrier_destroy(&bar);
	for (int c = 0; c < SLOW_CLUSTERS; c++)
		for (int t = 0; t < NT; t++) {
			assert_int_equal(ov.ops->pread(ov.h, got, SECT,
						       (uint64_t)c * CS +
						       (uint64_t)t * SECT), 0);
			for (uint32_t k = 0; k < SECT; k++)
				if (got[k] != 0xa0 + t)
					fail_msg("cluster %d: thread %d's sector lost (byte %u: 0x%02x)",
						 c, t, k, got[k]);
		}
	nd_export_close(&ov);
	f->cb.e = &f->base;
}

/* ---- the administrator's commands and files they were not given ---- */

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void expect_text(const char *path, const char *text)
{
	char buf[256] = "";
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, text);
}

/*
 * merge OUTPUT writes OUTPUT.tmp first: an OUTPUT.tmp that is there
 * already is someone's file, not the merge's to delete.
 */
static void test_merge_keeps_existing_tmp(void **state)
{
	struct fx *f = *state;
	char out[192], tmp[200], err[512];
	struct nd_export ov;
	uint8_t buf[CS];
	int rc;

	ov_open(f, &ov);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(ov.ops->pwrite(ov.h, buf, CS, 0, true), 0);
	nd_export_close(&ov);
	snprintf(out, sizeof(out), "%s/next.img", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	write_text(tmp, "the administrator's notes\n");
	rc = nd_cow_merge(&f->cb, f->ov_dir, "lab", out, err, sizeof(err));
	expect_text(tmp, "the administrator's notes\n");
	if (rc == 0) {
		struct stat st;

		assert_int_equal(stat(out, &st), 0);
		assert_int_equal((uint64_t)st.st_size, BASE_SIZE);
	} else {
		assert_int_equal(rc, ND_COW_ERR);
		assert_non_null(strstr(err, tmp));
		assert_null(strchr(err, '\n'));
	}
}

/*
 * Whoever can write DIR can link any file of theirs (or, without
 * protected_hardlinks, anyone's) as IDENTITY.ndcow.tmp: creating the
 * overlay must not truncate and overwrite that file.
 */
static void test_create_spares_linked_tmp(void **state)
{
	struct fx *f = *state;
	char victim[160], tmp[192], err[512];
	struct nd_export ov;
	int rc;

	assert_int_equal(mkdir(f->ov_dir, 0700), 0);
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(tmp, sizeof(tmp), "%s/lab.ndcow.tmp", f->ov_dir);
	write_text(victim, "someone else's file\n");
	assert_int_equal(link(victim, tmp), 0);
	memset(&ov, 0, sizeof(ov));
	rc = nd_cow_open(&f->cb, f->ov_dir, "lab", &ov, err, sizeof(err));
	if (rc == 0)
		nd_export_close(&ov);
	else
		assert_null(strchr(err, '\n'));
	expect_text(victim, "someone else's file\n");
}

/* ---- the base binding describes the base that is served ---- */

/* Is 4 KiB block k of a size-byte base one of the binding's samples? */
static bool sampled(uint64_t k, uint64_t size)
{
	uint64_t span = size - 4096;

	for (int i = 0; i < 64; i++)
		if ((span / 63 * i + span % 63 * i / 63) / 4096 == k)
			return true;
	return false;
}

/*
 * The administrator replaces the base file (mv new.img base.img, as
 * netdiskd(8) says, then resets the overlays) while the server still has
 * the old one open and serves its bytes. An overlay made then must never
 * be accepted later over bytes other than the ones it was made over: here
 * the new file differs from the old one only outside the 64 samples, so
 * only the mtime can tell them apart.
 */
static void test_binding_of_replaced_base(void **state)
{
	struct fx *f = *state;
	char np[160], err[512];
	struct timespec t[2] = { { 1500000000, 0 }, { 1500000000, 0 } };
	struct nd_export ov;
	uint8_t *buf = malloc(BASE_SIZE), got[CS];
	uint64_t k = 1;
	int fd, rc;

	assert_non_null(buf);
	while (sampled(k, BASE_SIZE))
		k++;
	for (uint64_t i = 0; i < BASE_SIZE; i++)
		buf[i] = pat(i);
	memset(buf + k * CS, 0xee, CS);
	snprintf(np, sizeof(np), "%s/new.img", f->dir);
	fd = open(np, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, BASE_SIZE), BASE_SIZE);
	assert_int_equal(futimens(fd, t), 0);
	close(fd);
	free(buf);
	assert_int_equal(rename(np, f->base_path), 0);

	/* The server still serves the old file (f->base). */
	memset(&ov, 0, sizeof(ov));
	rc = nd_cow_open(&f->cb, f->ov_dir, "lab", &ov, err, sizeof(err));
	if (rc != 0) {
		assert_int_equal(rc, ND_COW_ERR);
		assert_non_null(strstr(err, f->base_path));
		return;
	}
	assert_int_equal(ov.ops->pread(ov.h, got, CS, k * CS), 0);
	assert_int_equal(got[0], pat(k * CS));	/* the old bytes */
	nd_export_close(&ov);

	/* Restarted: the new file is the base now. */
	nd_export_close(&f->base);
	assert_int_equal(nd_file_open(&f->base, f->base_path, true, err,
				      sizeof(err)), 0);
	base_ids(f);
	memset(&ov, 0, sizeof(ov));
	rc = nd_cow_open(&f->cb, f->ov_dir, "lab", &ov, err, sizeof(err));
	if (rc == 0) {
		assert_int_equal(ov.ops->pread(ov.h, got, CS, k * CS), 0);
		nd_export_close(&ov);
		fail_msg("an overlay made over the old base is served over the new one (block %llu read 0x%02x, now 0x%02x, never written)",
			 (unsigned long long)k, pat(k * CS), got[0]);
	}
	assert_int_equal(rc, ND_COW_BASE_CHANGED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_writes_over_slow_base,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_threads_and_kill9,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_merge_keeps_existing_tmp,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_binding_of_replaced_base,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_spares_linked_tmp,
						fx_setup, fx_teardown),
	};

	nd_log_level = -1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
