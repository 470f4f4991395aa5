// SPDX-License-Identifier: MIT
/*
 * The copy-on-write data path (docs/COW-FORMAT.md): one identity's
 * overlay file layered over the read-only base backend.
 *
 * The cluster map lives in memory as 64-bit words of 32 two-bit entries,
 * changed only by compare-and-swap. A cluster whose entry is 1 (data)
 * is read and rewritten in place without any lock: the data area sits at
 * the disk's own offsets. Everything that changes an entry (a first
 * write into a cluster, TRIM, WRITE_ZEROES) holds the stripe locks of the
 * 1 MiB regions it touches, taken in ascending order, so two partial
 * first writes of one cluster cannot fill it from the base over each
 * other.
 *
 * Above the map sits a summary, one bit per map word (32 clusters), set
 * before the word first holds anything but 0 (base) and never cleared
 * while the overlay is open. A read where the identity never wrote looks
 * only at the summary, 1/64 of the map, which stays in the CPU's cache;
 * a random read's map word mostly does not (a cache miss per request
 * was the overlay's whole cost over a plain export, PERFORMANCE.md).
 *
 * Crash safety (rules 1-3): an entry becomes 1 only after its cluster's
 * data was written; the map reaches the file only in a commit (FLUSH, FUA),
 * which copies the changed map pages, syncs the data the copy describes,
 * then writes the copy and syncs again. One commit runs at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cow_format.h"
#include "log.h"
#include "nd_wire.h"

#define NSTRIPES	64
#define REGION_SHIFT	20		/* stripe lock granularity: 1 MiB */
#define COMMIT_BATCH	32		/* map pages copied per sync */
#define MASK_LO		0x5555555555555555ull

struct cow {
	int fd;
	char *path;
	const struct nd_backend_ops *bops;	/* the base */
	void *bh;
	uint64_t size;
	uint64_t nclusters;
	uint64_t map_offset;
	uint64_t data_offset;
	uint32_t cbits;
	uint32_t csize;
	bool in_memory;			/* tmpfs: reads and writes never wait */
	atomic_bool no_nowait;		/* RWF_NOWAIT refused for reads */
	atomic_bool no_wnowait;		/* ... for writes */

	_Atomic uint64_t *map;		/* nwords words, entry c: bits 2(c%32) */
	uint64_t nwords;
	/* Bit i: map word i may hold an entry other than 0 (base). */
	_Atomic uint64_t *sum;
	_Atomic uint64_t *dirty;	/* one bit per map page changed */
	uint64_t npages;
	size_t mem;

	pthread_mutex_t stripe[NSTRIPES];

	pthread_mutex_t commit_mu;	/* the commit fields below */
	pthread_cond_t commit_done;
	bool committing;		/* one commit at a time */
	uint64_t commits_started;	/* sequence numbers */
	uint64_t commits_ok;		/* latest that succeeded */
	atomic_int wb_err;		/* a failed sync: sticky errno */
	/* Written since the last commit began (set after each write). */
	atomic_bool unsynced;
};

static const uint8_t zeros[65536];

/* ---- the map ---- */

static bool sum_test(struct cow *w, uint64_t i)
{
	return atomic_load_explicit(&w->sum[i >> 6], memory_order_acquire) &
	       (1ull << (i & 63));
}

/*
 * Called before map word i may first change from all 0 (base): a reader
 * that finds the bit clear read it before this store, hence before the
 * change, and the entry it takes for base was base when it looked.
 */
static void sum_set(struct cow *w, uint64_t i)
{
	uint64_t bit = 1ull << (i & 63);

	if (!(atomic_load_explicit(&w->sum[i >> 6], memory_order_relaxed) &
	      bit))
		atomic_fetch_or(&w->sum[i >> 6], bit);
}

static unsigned int map_get(struct cow *w, uint64_t c)
{
	uint64_t v;

	if (!sum_test(w, c >> 5))
		return COW_BASE;
	v = atomic_load_explicit(&w->map[c >> 5], memory_order_acquire);
	return (unsigned int)(v >> (2 * (c & 31))) & 3;
}

/* Entries [a, b) as a mask over word i. */
static uint64_t word_mask(uint64_t i, uint64_t a, uint64_t b)
{
	uint64_t first = i << 5, lo = a > first ? a - first : 0;
	uint64_t hi = b - first < 32 ? b - first : 32;
	uint64_t m = hi == 32 ? ~0ull : (1ull << (2 * hi)) - 1;

	return m & ~((1ull << (2 * lo)) - 1);
}

/* Are entries [a, b) all value v? */
static bool map_all(struct cow *w, uint64_t a, uint64_t b, unsigned int v)
{
	uint64_t pat = MASK_LO * v;

	for (uint64_t i = a >> 5; i <= (b - 1) >> 5; i++) {
		uint64_t m = word_mask(i, a, b);
		uint64_t cur = atomic_load_explicit(&w->map[i],
						    memory_order_acquire);

		if ((cur ^ pat) & m)
			return false;
	}
	return true;
}

/*
 * Sets entries [a, b) to v and marks their pages for the next commit
 * (after the change, so a commit that clears the mark before copying
 * the page either sees the change or leaves the mark for the next one).
 */
static void map_set(struct cow *w, uint64_t a, uint64_t b, unsigned int v)
{
	uint64_t pat = MASK_LO * v;

	for (uint64_t i = a >> 5; i <= (b - 1) >> 5; i++) {
		uint64_t m = word_mask(i, a, b), page = i / (COW_PAGE / 8);
		uint64_t cur, nv;

		if (pat & m)
			sum_set(w, i);
		cur = atomic_load(&w->map[i]);
		do {
			nv = (cur & ~m) | (pat & m);
			if (nv == cur)
				break;
		} while (!atomic_compare_exchange_weak(&w->map[i], &cur, nv));
		if (nv != cur)
			atomic_fetch_or(&w->dirty[page >> 6],
					1ull << (page & 63));
	}
}

/* ---- stripe locks ---- */

static uint64_t stripes_of(uint64_t off, uint64_t len)
{
	uint64_t r0 = off >> REGION_SHIFT, r1 = (off + len - 1) >> REGION_SHIFT;
	uint64_t mask = 0;

	if (r1 - r0 >= NSTRIPES - 1)
		return ~0ull;
	for (uint64_t r = r0; r <= r1; r++)
		mask |= 1ull << (r % NSTRIPES);
	return mask;
}

static void lock_stripes(struct cow *w, uint64_t mask)
{
	for (int i = 0; i < NSTRIPES; i++)
		if (mask & (1ull << i))
			pthread_mutex_lock(&w->stripe[i]);
}

static void unlock_stripes(struct cow *w, uint64_t mask)
{
	for (int i = NSTRIPES - 1; i >= 0; i--)
		if (mask & (1ull << i))
			pthread_mutex_unlock(&w->stripe[i]);
}

/* ---- reads ---- */

static int read_data(struct cow *w, uint8_t *p, uint64_t n, uint64_t off,
		     bool nowait)
{
	struct iovec iov = { .iov_base = p, .iov_len = n };
	ssize_t r;
	int rc;

	if (!nowait) {
		rc = cow_pread_all(w->fd, p, n, w->data_offset + off);
		return rc == -ENODATA ? -EIO : rc;
	}
	if (w->in_memory)
		r = pread(w->fd, p, n, (off_t)(w->data_offset + off));
	else if (atomic_load_explicit(&w->no_nowait, memory_order_relaxed))
		return -EAGAIN;
	else
		r = preadv2(w->fd, &iov, 1, (off_t)(w->data_offset + off),
			    RWF_NOWAIT);
	if (r == (ssize_t)n)
		return 0;
	if (r < 0 && !w->in_memory &&
	    (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS))
		atomic_store_explicit(&w->no_nowait, true,
				      memory_order_relaxed);
	return -EAGAIN;
}

/* Reads runs of clusters with one map value each from where it says. */
static int cow_read(struct cow *w, uint8_t *p, uint32_t len, uint64_t off,
		    bool nowait)
{
	uint64_t end = off + len;

	while (off < end) {
		uint64_t c = off >> w->cbits, run = (c + 1) << w->cbits;
		unsigned int v = map_get(w, c);
		uint64_t n;
		int rc;

		while (run < end && map_get(w, run >> w->cbits) == v)
			run += w->csize;
		n = (run < end ? run : end) - off;
		switch (v) {
		case COW_BASE:
			if (!nowait)
				rc = w->bops->pread(w->bh, p, (uint32_t)n, off);
			else if (w->bops->pread_nowait)
				rc = w->bops->pread_nowait(w->bh, p,
							   (uint32_t)n, off);
			else
				rc = -EAGAIN;
			break;
		case COW_DATA:
			rc = read_data(w, p, n, off, nowait);
			break;
		case COW_ZERO:
			memset(p, 0, n);
			rc = 0;
			break;
		default:
			rc = -EIO;
		}
		if (rc < 0)
			return rc;
		p += n;
		off += n;
	}
	return 0;
}

static int cow_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
	return cow_read(h, buf, len, off, false);
}

static int cow_pread_nowait(void *h, void *buf, uint32_t len, uint64_t off)
{
	return cow_read(h, buf, len, off, true);
}

/* ---- commits (rule 2) ---- */

/*
 * After (never before) every write to the file: a commit that clears the
 * flag before its sync then covers the write, a later one sees the flag.
 * Seen set, it needs no store (no cache line bouncing between workers):
 * a commit clearing it after our load syncs after our write.
 */
static void wrote(struct cow *w)
{
	if (!atomic_load(&w->unsynced))
		atomic_store(&w->unsynced, true);
}

static int sync_locked(struct cow *w)
{
	int rc;

	while ((rc = fdatasync(w->fd)) < 0 && errno == EINTR)
		;
	if (rc == 0)
		return 0;
	rc = errno;
	atomic_store(&w->wb_err, rc);
	nd_err("%s: sync failed (%s): writes acknowledged earlier may be lost; every FLUSH and FUA write fails from now on, until the overlay is reopened",
	       w->path, strerror(rc));
	return -rc;
}

static void mark_dirty(struct cow *w, uint64_t page)
{
	atomic_fetch_or(&w->dirty[page >> 6], 1ull << (page & 63));
}

/* Takes up to COMMIT_BATCH marked pages from *next on: marks cleared. */
static int copy_pages(struct cow *w, uint64_t *next, uint8_t *buf,
		      uint64_t *pages)
{
	int n = 0;

	for (; *next < w->npages && n < COMMIT_BATCH; (*next)++) {
		uint64_t pg = *next, bit = 1ull << (pg & 63);
		uint64_t words = COW_PAGE / 8;

		if (!(atomic_load(&w->dirty[pg >> 6]) & bit))
			continue;
		atomic_fetch_and(&w->dirty[pg >> 6], ~bit);
		for (uint64_t i = 0; i < words; i++)
			cow_put64(buf + n * COW_PAGE + 8 * i,
				  atomic_load(&w->map[pg * words + i]));
		pages[n++] = pg;
	}
	return n;
}

static bool any_dirty(struct cow *w)
{
	for (uint64_t i = 0; i < (w->npages + 63) / 64; i++)
		if (atomic_load(&w->dirty[i]))
			return true;
	return false;
}

/* One commit; the caller is the only committer. */
static int commit_once(struct cow *w)
{
	uint64_t pages[COMMIT_BATCH], next = 0;
	uint8_t *buf = NULL;
	int n, rc;

	rc = -atomic_load(&w->wb_err);
	if (rc)
		return rc;
	/* Nothing written since the last commit: nothing to make durable. */
	if (!atomic_exchange(&w->unsynced, false) && !any_dirty(w))
		return 0;
	if (any_dirty(w) && !(buf = malloc(COMMIT_BATCH * COW_PAGE))) {
		wrote(w);
		return -ENOMEM;
	}
	do {
		n = buf ? copy_pages(w, &next, buf, pages) : 0;
		/* The data every copied entry describes is durable ... */
		rc = sync_locked(w);
		/* ... before the entries are. */
		for (int i = 0; i < n && rc == 0; i++)
			rc = cow_pwrite_all(w->fd, buf + i * COW_PAGE, COW_PAGE,
					    w->map_offset + pages[i] * COW_PAGE);
		if (rc < 0)
			for (int i = 0; i < n; i++)
				mark_dirty(w, pages[i]);
	} while (n && rc == 0);	/* the last round's sync ends the commit */
	free(buf);
	if (rc < 0)
		wrote(w);
	return rc;
}

/*
 * FLUSH and FUA: any commit that starts after the caller arrived covers
 * everything acknowledged before, so callers arriving during a commit
 * share the next one instead of syncing one after another.
 */
static int commit(struct cow *w)
{
	uint64_t need, mine;
	int rc;

	pthread_mutex_lock(&w->commit_mu);
	need = w->commits_started + 1;
	while (w->committing && w->commits_ok < need)
		pthread_cond_wait(&w->commit_done, &w->commit_mu);
	if (w->commits_ok >= need) {
		pthread_mutex_unlock(&w->commit_mu);
		return 0;
	}
	w->committing = true;
	mine = ++w->commits_started;
	pthread_mutex_unlock(&w->commit_mu);

	rc = commit_once(w);

	pthread_mutex_lock(&w->commit_mu);
	w->committing = false;
	if (rc == 0)
		w->commits_ok = mine;
	pthread_cond_broadcast(&w->commit_done);
	pthread_mutex_unlock(&w->commit_mu);
	return rc;
}

/* ---- writes (rules 1 and 3) ---- */

/* Does [off, end) cover all of cluster c's disk bytes? */
static bool covers(struct cow *w, uint64_t c, uint64_t off, uint64_t end)
{
	uint64_t a = c << w->cbits, b = a + w->csize;

	return off <= a && end >= (b < w->size ? b : w->size);
}

/* Cluster c's present contents when its entry v is not 1. */
static int fill_cluster(struct cow *w, uint64_t c, unsigned int v,
			uint8_t *cl)
{
	uint64_t a = c << w->cbits, n = w->size - a;

	memset(cl, 0, w->csize);
	if (v != COW_BASE)
		return 0;
	if (n > w->csize)
		n = w->csize;
	return w->bops->pread(w->bh, cl, (uint32_t)n, a);
}

/*
 * Writes [from, to) of cluster c, which is not 1, as a whole cluster:
 * the rest comes from what it reads now. src NULL: zeros.
 */
static int write_whole(struct cow *w, uint8_t **cl, uint64_t c,
		       const uint8_t *src, uint64_t from, uint64_t to)
{
	uint64_t a = c << w->cbits;
	int rc;

	if (!*cl && !(*cl = malloc(w->csize)))
		return -ENOMEM;
	rc = fill_cluster(w, c, map_get(w, c), *cl);
	if (rc < 0)
		return rc;
	if (src)
		memcpy(*cl + (from - a), src, to - from);
	else
		memset(*cl + (from - a), 0, to - from);
	return cow_pwrite_all(w->fd, *cl, w->csize, w->data_offset + a);
}

/* First write into clusters not all 1; stripe locks held. */
static int first_write_locked(struct cow *w, const uint8_t *buf,
			      uint64_t off, uint64_t end)
{
	uint64_t a = off >> w->cbits, z = (end - 1) >> w->cbits;
	uint64_t wo = off, we = end;
	uint8_t *cl = NULL;
	int rc = 0;

	if (!covers(w, a, off, end) && map_get(w, a) != COW_DATA) {
		uint64_t to = (a + 1) << w->cbits;

		to = to < end ? to : end;
		rc = write_whole(w, &cl, a, buf, off, to);
		wo = to;
	}
	if (rc == 0 && z != a && !covers(w, z, off, end) &&
	    map_get(w, z) != COW_DATA) {
		we = z << w->cbits;
		rc = write_whole(w, &cl, z, buf + (we - off), we, end);
	}
	if (rc == 0 && wo < we)
		rc = cow_pwrite_all(w->fd, buf + (wo - off), we - wo,
				    w->data_offset + wo);
	free(cl);
	if (rc == 0)
		map_set(w, a, z + 1, COW_DATA);
	return rc;
}

static int cow_pwrite(void *h, const void *buf, uint32_t len, uint64_t off,
		      bool fua)
{
	struct cow *w = h;
	uint64_t end = off + len, a = off >> w->cbits;
	uint64_t z = (end - 1) >> w->cbits;
	int rc;

	if (map_all(w, a, z + 1, COW_DATA)) {
		rc = cow_pwrite_all(w->fd, buf, len, w->data_offset + off);
	} else {
		uint64_t mask = stripes_of(off, len);

		lock_stripes(w, mask);
		rc = first_write_locked(w, buf, off, end);
		unlock_stripes(w, mask);
	}
	wrote(w);
	if (rc == 0 && fua)
		rc = commit(w);
	return rc;
}

static int cow_pwrite_nowait(void *h, const void *buf, uint32_t len,
			     uint64_t off, bool fua)
{
	struct cow *w = h;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	uint64_t a = off >> w->cbits, z = (off + len - 1) >> w->cbits;
	ssize_t n;

	/* A commit or a first write may wait: the worker does those. */
	if (fua || !map_all(w, a, z + 1, COW_DATA))
		return -EAGAIN;
	if (w->in_memory)
		n = pwrite(w->fd, buf, len, (off_t)(w->data_offset + off));
	else if (atomic_load_explicit(&w->no_wnowait, memory_order_relaxed))
		return -EAGAIN;
	else
		n = pwritev2(w->fd, &iov, 1, (off_t)(w->data_offset + off),
			     RWF_NOWAIT);
	if (n > 0)
		wrote(w);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && !w->in_memory &&
	    (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS))
		atomic_store_explicit(&w->no_wnowait, true,
				      memory_order_relaxed);
	return -EAGAIN;
}

/* Zeros over [off, off + len) of cluster c in place (entry 1). */
static int zero_data(struct cow *w, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t n = len < sizeof(zeros) ? len : sizeof(zeros);
		int rc = cow_pwrite_all(w->fd, zeros, n, w->data_offset + off);

		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * The part [from, to) of cluster c reads zeros afterwards (rule 3's
 * partial ends). *set: c must become 1 once every write succeeded.
 */
static int zero_part(struct cow *w, uint8_t **cl, uint64_t c, uint64_t from,
		     uint64_t to, bool *set)
{
	switch (map_get(w, c)) {
	case COW_DATA:
		return zero_data(w, from, to - from);
	case COW_BASE:
		*set = true;
		return write_whole(w, cl, c, NULL, from, to);
	default:		/* already zeros */
		return 0;
	}
}

/* Stripe locks held. */
static int zero_locked(struct cow *w, uint64_t off, uint64_t end)
{
	uint64_t a = off >> w->cbits, z = (end - 1) >> w->cbits;
	uint64_t fa = a, fz = z + 1;	/* whole clusters [fa, fz) */
	bool set_a = false, set_z = false;
	uint8_t *cl = NULL;
	int rc = 0;

	if (!covers(w, a, off, end)) {
		uint64_t to = (a + 1) << w->cbits;

		rc = zero_part(w, &cl, a, off, to < end ? to : end, &set_a);
		fa = a + 1;
	}
	if (rc == 0 && z >= fa && !covers(w, z, off, end)) {
		rc = zero_part(w, &cl, z, z << w->cbits, end, &set_z);
		fz = z;
	}
	free(cl);
	if (rc < 0)
		return rc;
	if (set_a)
		map_set(w, a, a + 1, COW_DATA);
	if (set_z)
		map_set(w, z, z + 1, COW_DATA);
	if (fa < fz) {
		map_set(w, fa, fz, COW_ZERO);
		/* Frees the space; the map no longer points there. */
		if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(w->data_offset + (fa << w->cbits)),
			      (off_t)((fz - fa) << w->cbits)) < 0)
			nd_debug("%s: punching a hole: %s", w->path,
				 strerror(errno));
	}
	return 0;
}

static int cow_write_zeroes(void *h, uint32_t len, uint64_t off, bool fua)
{
	struct cow *w = h;
	uint64_t mask = stripes_of(off, len);
	int rc;

	lock_stripes(w, mask);
	rc = zero_locked(w, off, off + len);
	unlock_stripes(w, mask);
	wrote(w);
	if (rc == 0 && fua)
		rc = commit(w);
	return rc;
}

/* TRIM reads zeros afterwards: this identity must not see the base. */
static int cow_trim(void *h, uint32_t len, uint64_t off)
{
	return cow_write_zeroes(h, len, off, false);
}

static int cow_flush(void *h)
{
	return commit(h);
}

static void cow_free(struct cow *w)
{
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&w->stripe[i]);
	pthread_mutex_destroy(&w->commit_mu);
	pthread_cond_destroy(&w->commit_done);
	if (w->fd >= 0)
		close(w->fd);
	free(w->map);
	free(w->sum);
	free(w->dirty);
	free(w->path);
	free(w);
}

/* A clean close keeps what was written, flushed or not. */
static void cow_close(void *h)
{
	struct cow *w = h;
	int rc = commit(w);

	if (rc < 0)
		nd_warn("%s: final commit failed: %s", w->path, strerror(-rc));
	cow_free(w);
}

static const struct nd_backend_ops cow_ops = {
	.name = "cow",
	.pread = cow_pread,
	.pread_nowait = cow_pread_nowait,
	.pwrite = cow_pwrite,
	.pwrite_nowait = cow_pwrite_nowait,
	.flush = cow_flush,
	.trim = cow_trim,
	.write_zeroes = cow_write_zeroes,
	.close = cow_close,
};

size_t nd_cow_mem(const void *h)
{
	return ((const struct cow *)h)->mem;
}

/* ---- opening ---- */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(p)) {
		snprintf(err, errlen, "overlay directory '%s' is invalid", dir);
		return -1;
	}
	memcpy(p, dir, n + 1);
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;

		*s = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return -1;
		}
		*s = c;
		if (!c)
			break;
	}
	return 0;
}

/* Writes the empty overlay's header and map to fd; then syncs. */
static int write_new(int fd, const struct nd_cow_base *base,
		     const char *path, char *err, size_t errlen)
{
	struct cow_hdr h = { .version = COW_VERSION };
	uint8_t *hdr = calloc(1, COW_HDR_LEN);
	int rc = -1, r = 0;

	if (!hdr) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cow_layout(&h, base->e->size, ND_COW_CLUSTER_BITS);
	h.created = (int64_t)time(NULL);
	if (nd_random(h.uuid, sizeof(h.uuid)) < 0) {
		snprintf(err, errlen, "no random numbers");
		goto out;
	}
	if (cow_base_bind(base, &h.base_size, &h.base_mtime_ns, h.binding, err,
			  errlen) < 0)
		goto out;
	cow_hdr_encode(&h, hdr);
	if (ftruncate(fd, 0) < 0)
		r = -errno;
	if (r == 0)
		r = cow_pwrite_all(fd, hdr, COW_HDR_LEN, 0);
	/* The usage block (all zero: never used), allocated like the map. */
	if (r == 0)
		r = cow_pwrite_all(fd, zeros, COW_USAGE_LEN, COW_USAGE_OFF);
	/* Allocated now, so a commit never needs new space. */
	for (uint64_t o = 0; r == 0 && o < h.map_len; o += sizeof(zeros)) {
		uint64_t n = h.map_len - o;

		r = cow_pwrite_all(fd, zeros, n < sizeof(zeros) ? n :
				   sizeof(zeros), h.map_offset + o);
	}
	if (r == 0 && ftruncate(fd, (off_t)(h.data_offset +
					    (h.nclusters << h.cluster_bits))) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, errlen, "%s: creating the overlay: %s", path,
			 strerror(-r));
		goto out;
	}
	rc = 0;
out:
	free(hdr);
	return rc;
}

/*
 * Creates path through path.tmp (written, synced, renamed, directory
 * synced): 0 with *fd open and locked; -EEXIST if another process made
 * it meanwhile; ND_COW_* otherwise.
 */
static int create(const struct nd_cow_base *base, const char *path, int *fd,
		  char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	struct stat st;
	int f, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return ND_COW_ERR;
	}
	f = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return ND_COW_ERR;
	}
	close(f);
	/* Locked, so two creators never write one file. */
	rc = cow_open_locked(tmp, &f, err, errlen);
	if (rc == -ENOENT)
		return -EEXIST;	/* renamed by the other creator */
	if (rc < 0)
		return rc;
	/*
	 * Another name for the file (a link made in DIR): not ours to
	 * overwrite. Dropping our name leaves it to its owner.
	 */
	if (fstat(f, &st) < 0 || st.st_nlink != 1) {
		if (unlink(tmp) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			close(f);
			return ND_COW_ERR;
		}
		close(f);
		return -EEXIST;
	}
	if (access(path, F_OK) == 0) {
		close(f);
		return -EEXIST;
	}
	if (write_new(f, base, path, err, errlen) < 0)
		goto fail;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST) {
			unlink(tmp);
			close(f);
			return -EEXIST;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	rc = cow_sync_parent(path);
	if (rc < 0) {
		snprintf(err, errlen, "%s: syncing its directory: %s", path,
			 strerror(-rc));
		close(f);
		return ND_COW_ERR;
	}
	*fd = f;
	return 0;
fail:
	unlink(tmp);
	close(f);
	return ND_COW_ERR;
}

/* Counts this attach in the usage record; no sync, failure harmless. */
static void record_attach(int fd)
{
	uint8_t rec[COW_USAGE_LEN];
	struct cow_usage u;

	if (cow_pread_all(fd, rec, sizeof(rec), COW_USAGE_OFF) < 0)
		return;
	cow_usage_decode(rec, &u);
	u.last = (int64_t)time(NULL);
	u.attaches++;
	cow_usage_encode(&u, rec);
	if (cow_pwrite_all(fd, rec, sizeof(rec), COW_USAGE_OFF) < 0)
		nd_debug("overlay usage record not written");
}

static int export_id(const struct cow_hdr *h, uint8_t id[ND_EXPORT_ID_LEN])
{
	static const char label[] = "netdisk cow export id";
	uint8_t buf[sizeof(label) - 1 + 16 + 8], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t o = sizeof(label) - 1;

	memcpy(buf, label, o);
	memcpy(buf + o, h->uuid, 16);
	cow_put64(buf + o + 16, h->size);
	if (EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < ND_EXPORT_ID_LEN)
		return -1;
	memcpy(id, md, ND_EXPORT_ID_LEN);
	return 0;
}

/* The handle over a checked header and map (map consumed). */
static struct cow *cow_new(int fd, const char *path, const struct cow_hdr *h,
			   uint8_t *map, const struct nd_cow_base *base)
{
	struct cow *w = calloc(1, sizeof(*w));
	struct statfs sf;

	if (!w)
		goto fail;
	w->fd = -1;
	w->nwords = h->map_len / 8;
	w->npages = h->map_len / COW_PAGE;
	w->dirty = calloc((w->npages + 63) / 64, sizeof(*w->dirty));
	w->sum = calloc((w->nwords + 63) / 64, sizeof(*w->sum));
	w->path = strdup(path);
	if (!w->dirty || !w->sum || !w->path) {
		free(w->dirty);
		free(w->sum);
		free(w->path);
		free(w);
		goto fail;
	}
	/*
	 * The loaded map becomes the live one, converted in place (a no-op
	 * on little-endian hosts): no second copy of a map that is 64 KiB
	 * per GiB, neither while opening nor afterwards in malloc's pools.
	 */
	_Static_assert(sizeof(*w->map) == 8, "map words are 8 bytes");
	w->map = (void *)map;
	for (uint64_t i = 0, sum = 0; i < w->nwords; i++) {
		uint64_t v = cow_get64(map + 8 * i);

		atomic_init(&w->map[i], v);
		if (v)
			sum |= 1ull << (i & 63);
		if ((i & 63) == 63 || i + 1 == w->nwords) {
			atomic_init(&w->sum[i >> 6], sum);
			sum = 0;
		}
	}
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&w->stripe[i], NULL);
	pthread_mutex_init(&w->commit_mu, NULL);
	pthread_cond_init(&w->commit_done, NULL);
	w->fd = fd;
	w->bops = base->e->ops;
	w->bh = base->e->h;
	w->size = h->size;
	w->nclusters = h->nclusters;
	w->map_offset = h->map_offset;
	w->data_offset = h->data_offset;
	w->cbits = h->cluster_bits;
	w->csize = h->cluster_size;
	w->in_memory = fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC ||
						  sf.f_type == RAMFS_MAGIC);
	w->mem = sizeof(*w) + w->nwords * sizeof(*w->map) +
		 (w->nwords + 63) / 64 * sizeof(*w->sum) +
		 (w->npages + 63) / 64 * sizeof(*w->dirty) + strlen(path) + 1;
	return w;
fail:
	free(map);
	return NULL;
}

int nd_cow_open(const struct nd_cow_base *base, const char *dir,
		const char *identity, struct nd_export *out, char *err,
		size_t errlen)
{
	char path[PATH_MAX], why[300];
	struct cow_hdr h;
	uint8_t *map = NULL;
	struct cow *w;
	int fd = -1, rc = -EEXIST;

	if (cow_path(path, sizeof(path), dir, identity, "") < 0) {
		snprintf(err, errlen, "overlay of '%s' in %s: invalid identity or path too long",
			 identity, dir);
		return ND_COW_ERR;
	}
	if (mkdir_p(dir, err, errlen) < 0)
		return ND_COW_ERR;
	for (int tries = 0; rc == -EEXIST && tries < 10; tries++) {
		rc = cow_open_locked(path, &fd, err, errlen);
		if (rc == -ENOENT)
			rc = create(base, path, &fd, err, errlen);
	}
	if (rc == -EEXIST) {
		snprintf(err, errlen, "%s: keeps being replaced", path);
		return ND_COW_ERR;
	}
	if (rc < 0)
		return rc;
	if (cow_load(fd, path, &h, &map, err, errlen) < 0) {
		close(fd);
		return ND_COW_ERR;
	}
	rc = cow_base_check(&h, base, why, sizeof(why));
	if (rc) {
		if (rc > 0)
			snprintf(err, errlen, "%s: base image changed: %s",
				 path, why);
		else
			snprintf(err, errlen, "%s: %s", path, why);
		free(map);
		close(fd);
		return rc > 0 ? ND_COW_BASE_CHANGED : ND_COW_ERR;
	}
	if (export_id(&h, out->id) < 0) {
		free(map);
		map = NULL;
	}
	if (!map || !(w = cow_new(fd, path, &h, map, base))) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return ND_COW_ERR;
	}
	record_attach(fd);
	out->ops = &cow_ops;
	out->h = w;
	out->size = base->e->size;
	out->block_size = base->e->block_size;
	out->read_only = false;
	out->caps = ND_EXP_FUA | ND_EXP_TRIM | ND_EXP_WRITE_ZEROES;
	out->writer = NULL;
	return 0;
}
