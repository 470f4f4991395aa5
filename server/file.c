// SPDX-License-Identifier: MIT
/*
 * File and block-device backend: pread/pwrite/fdatasync on one fd; TRIM and
 * WRITE_ZEROES by fallocate on files, BLKDISCARD/BLKZEROOUT on devices.
 *
 * Write-back errors: the kernel hands an error writing back the page cache
 * to the first fsync on the open file after it happened (errseq), and
 * every fsync after that succeeds although the data is gone. All sessions
 * share this fd, so whichever sync comes first (any connection's FLUSH or
 * FUA write) takes it. The backend therefore keeps it: once a sync has
 * failed, every later one fails too, until the backend is closed
 * (netdiskd restarts). See sync_begin/sync_end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backend.h"
#include "log.h"

/* A sync (fdatasync, RWF_DSYNC write) in progress. */
struct sync_rec {
	struct sync_rec *next;
	uint64_t ticket;		/* order of sync_begin */
};

struct file_h {
	int fd;
	bool blk;
	/* WRITE_ZEROES fallbacks found unsupported (set once, racy is fine). */
	bool no_zero_range;
	bool no_punch;
	bool no_nowait;		/* RWF_NOWAIT refused by this kernel/fs */
	bool no_wnowait;	/* same, for buffered writes */
	bool in_memory;		/* tmpfs/ramfs: a read never waits on a disk */
	char *path;			/* for the write-back error message */

	pthread_mutex_t sync_lock;	/* the fields below */
	pthread_cond_t sync_done;	/* a sync ended */
	struct sync_rec *syncs;		/* syncs in progress */
	uint64_t next_ticket;
	int wb_err;			/* errno of the lost write-back; sticky */
};

static const uint8_t zero_page[65536];

static int file_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
	struct file_h *f = h;
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(f->fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)	/* file shrank under us */
			return -EIO;
		p += n;
		len -= (uint32_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int file_pread_nowait(void *h, void *buf, uint32_t len, uint64_t off)
{
	struct file_h *f = h;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	ssize_t n;

	/*
	 * tmpfs refuses RWF_NOWAIT, but its pages are memory: a plain read
	 * is as quick (only a swapped-out page would wait).
	 */
	if (f->in_memory)
		n = pread(f->fd, buf, len, (off_t)off);
	else if (__atomic_load_n(&f->no_nowait, __ATOMIC_RELAXED))
		return -EAGAIN;
	else
		n = preadv2(f->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL ||
		      errno == ENOSYS))
		__atomic_store_n(&f->no_nowait, true, __ATOMIC_RELAXED);
	/* Partial, uncached or failed: the worker redoes it and reports. */
	return -EAGAIN;
}

/*
 * Registers a sync; -errno instead if write-back already failed (the sync
 * must then not be done: it would succeed).
 */
static int sync_begin(struct file_h *f, struct sync_rec *r)
{
	int rc = 0;

	pthread_mutex_lock(&f->sync_lock);
	if (f->wb_err) {
		rc = -f->wb_err;
	} else {
		r->ticket = f->next_ticket++;
		r->next = f->syncs;
		f->syncs = r;
	}
	pthread_mutex_unlock(&f->sync_lock);
	return rc;
}

static bool sync_running_before(const struct file_h *f, uint64_t ticket)
{
	for (const struct sync_rec *r = f->syncs; r; r = r->next)
		if (r->ticket < ticket)
			return true;
	return false;
}

/*
 * Ends sync r; lost is the errno of the write-back error it reported, or
 * 0. A sync that reported none still waits for the syncs that ran beside
 * it: one of them may have taken the error that covers our writes too.
 * Returns 0 or the latched error.
 */
static int sync_end(struct file_h *f, struct sync_rec *r, int lost)
{
	struct sync_rec **pp;
	bool first = false;
	int rc;

	pthread_mutex_lock(&f->sync_lock);
	for (pp = &f->syncs; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	if (lost && !f->wb_err) {
		__atomic_store_n(&f->wb_err, lost, __ATOMIC_RELAXED);
		first = true;
	}
	if (!lost) {
		uint64_t limit = f->next_ticket;

		while (!f->wb_err && sync_running_before(f, limit))
			pthread_cond_wait(&f->sync_done, &f->sync_lock);
	}
	rc = -f->wb_err;
	pthread_cond_broadcast(&f->sync_done);
	pthread_mutex_unlock(&f->sync_lock);
	if (first)
		nd_err("%s: write-back failed (%s): writes acknowledged earlier may be lost; every FLUSH and FUA write fails from now on, until netdiskd is restarted",
		       f->path, strerror(lost));
	return rc;
}

/* fdatasync, through the write-back error latch. */
static int file_sync(struct file_h *f)
{
	struct sync_rec r;
	int rc = sync_begin(f, &r);

	if (rc < 0)
		return rc;
	while ((rc = fdatasync(f->fd)) < 0 && errno == EINTR)
		;
	return sync_end(f, &r, rc < 0 ? errno : 0);
}

/* Writes everything with pwritev2 flags; 0 or -errno. */
static int write_all(struct file_h *f, const uint8_t *p, uint32_t len,
		     uint64_t off, int flags)
{
	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = pwritev2(f->fd, &iov, 1, (off_t)off, flags);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (uint32_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * FUA: RWF_DSYNC makes this one write durable (syncing only its range).
 * Its error may come from the write (no space, file size limit, a block
 * that could not be read) or from the sync, which may have taken a
 * write-back error of earlier writes: a plain write of the same bytes
 * tells them apart, as it fails again only in the first case.
 */
static int write_fua(struct file_h *f, const uint8_t *p, uint32_t len,
		     uint64_t off)
{
	struct sync_rec r;
	int rc = sync_begin(f, &r);
	int lost = 0, latched;

	if (rc < 0)
		return rc;
	rc = write_all(f, p, len, off, RWF_DSYNC);
	if (rc == -EOPNOTSUPP || rc == -EINVAL || rc == -ENOSYS) {
		/* No RWF_DSYNC here: write, then sync the whole file. */
		rc = write_all(f, p, len, off, 0);
		if (rc == 0) {
			while ((rc = fdatasync(f->fd)) < 0 && errno == EINTR)
				;
			if (rc < 0)
				lost = errno;
		}
	} else if (rc < 0 && write_all(f, p, len, off, 0) == 0) {
		lost = -rc;
	}
	latched = sync_end(f, &r, lost);
	return latched ? latched : rc;
}

static int file_pwrite(void *h, const void *buf, uint32_t len, uint64_t off,
		       bool fua)
{
	struct file_h *f = h;

	if (fua)
		return write_fua(f, buf, len, off);
	return write_all(f, buf, len, off, 0);
}

static int file_pwrite_nowait(void *h, const void *buf, uint32_t len,
			      uint64_t off, bool fua)
{
	struct file_h *f = h;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	ssize_t n;

	/*
	 * tmpfs pages are memory: the write is a copy into them and FUA
	 * changes nothing (its fsync is a no-op). Anything else goes through
	 * the page cache only without FUA and only if RWF_NOWAIT is accepted
	 * (no page to read in, no dirty throttling, no block allocation).
	 */
	if (fua && __atomic_load_n(&f->wb_err, __ATOMIC_RELAXED))
		return -EAGAIN;	/* the worker reports it */
	if (f->in_memory)
		n = pwrite(f->fd, buf, len, (off_t)off);
	else if (fua || f->blk ||
		 __atomic_load_n(&f->no_wnowait, __ATOMIC_RELAXED))
		return -EAGAIN;
	else
		n = pwritev2(f->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && !f->in_memory && (errno == EOPNOTSUPP ||
				       errno == EINVAL || errno == ENOSYS))
		__atomic_store_n(&f->no_wnowait, true, __ATOMIC_RELAXED);
	/* Partial or failed: the worker rewrites it all and reports. */
	return -EAGAIN;
}

static int file_flush(void *h)
{
	return file_sync(h);
}

static bool notsup(int e)
{
	return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL;
}

static int file_trim(void *h, uint32_t len, uint64_t off)
{
	struct file_h *f = h;

	if (f->blk) {
		uint64_t range[2] = { off, len };

		return ioctl(f->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	/* KEEP_SIZE: a hole at the end must not shrink the export. */
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

static int write_zero_pages(struct file_h *f, uint32_t len, uint64_t off)
{
	while (len) {
		uint32_t n = len < sizeof(zero_page) ? len : sizeof(zero_page);
		int rc = write_all(f, zero_page, n, off, 0);

		if (rc < 0)
			return rc;
		len -= n;
		off += n;
	}
	return 0;
}

static int file_write_zeroes(void *h, uint32_t len, uint64_t off, bool fua)
{
	struct file_h *f = h;
	int rc = -EOPNOTSUPP;

	if (f->blk) {
		uint64_t range[2] = { off, len };

		/* The kernel falls back to writing zeroes itself. */
		rc = ioctl(f->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
	} else {
		if (!__atomic_load_n(&f->no_zero_range, __ATOMIC_RELAXED)) {
			rc = fallocate(f->fd, FALLOC_FL_ZERO_RANGE |
				       FALLOC_FL_KEEP_SIZE, (off_t)off,
				       (off_t)len) < 0 ? -errno : 0;
			if (rc < 0 && notsup(-rc))
				__atomic_store_n(&f->no_zero_range, true,
						 __ATOMIC_RELAXED);
		}
		if (rc < 0 && notsup(-rc) &&
		    !__atomic_load_n(&f->no_punch, __ATOMIC_RELAXED)) {
			rc = file_trim(f, len, off);
			if (rc < 0 && notsup(-rc))
				__atomic_store_n(&f->no_punch, true,
						 __ATOMIC_RELAXED);
		}
		if (rc < 0 && notsup(-rc))
			rc = write_zero_pages(f, len, off);
	}
	if (rc == 0 && fua)
		rc = file_sync(f);
	return rc;
}

/*
 * Can this export be trimmed? Files: punch a hole past the end (KEEP_SIZE,
 * so nothing changes) and see whether the filesystem refuses. Devices:
 * the queue's discard_max_bytes (a partition's is its disk's).
 */
static bool can_trim(int fd, const struct stat *st, uint64_t size)
{
	if (S_ISREG(st->st_mode))
		return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)size, ND_SECTOR_SIZE) == 0;
	for (int i = 0; i < 2; i++) {
		char p[128];
		unsigned long long max = 0;
		FILE *fp;

		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/%squeue/discard_max_bytes",
			 major(st->st_rdev), minor(st->st_rdev),
			 i ? "../" : "");
		fp = fopen(p, "re");
		if (!fp)
			continue;
		if (fscanf(fp, "%llu", &max) != 1)
			max = 0;
		fclose(fp);
		return max > 0;
	}
	return false;
}

static void file_close(void *h)
{
	struct file_h *f = h;

	close(f->fd);
	pthread_mutex_destroy(&f->sync_lock);
	pthread_cond_destroy(&f->sync_done);
	free(f->path);
	free(f);
}

static const struct nd_backend_ops file_ops = {
	.name = "file",
	.pread = file_pread,
	.pread_nowait = file_pread_nowait,
	.pwrite = file_pwrite,
	.pwrite_nowait = file_pwrite_nowait,
	.flush = file_flush,
	.trim = file_trim,
	.write_zeroes = file_write_zeroes,
	.close = file_close,
};

/*
 * export id = SHA-256("netdisk export id" || dev || ino || rdev || size),
 * first 16 bytes: stable across server restarts for the same file, changes
 * when a different file or a resized one is exported.
 */
static int export_id(const struct stat *st, uint64_t size,
		     uint8_t id[ND_EXPORT_ID_LEN])
{
	static const char label[] = "netdisk export id";
	uint8_t buf[sizeof(label) - 1 + 4 * 8];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t o = sizeof(label) - 1;

	memcpy(buf, label, o);
	nd_put64(buf + o, (uint64_t)st->st_dev);
	nd_put64(buf + o + 8, (uint64_t)st->st_ino);
	nd_put64(buf + o + 16, (uint64_t)st->st_rdev);
	nd_put64(buf + o + 24, size);
	if (EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < ND_EXPORT_ID_LEN)
		return -1;
	memcpy(id, md, ND_EXPORT_ID_LEN);
	return 0;
}

/*
 * One read-write server or any number of read-only ones per file: the
 * write lock a server grants its client (and the client cache built on
 * it) means nothing if another process writes the same file. An OFD lock
 * on the whole file, exclusive for read-write and shared for read-only;
 * it lives as long as fd and is dropped by the kernel if we die.
 */
static int lock_export(int fd, const char *path, bool read_only, char *err,
		       size_t errlen)
{
	struct flock fl = {
		.l_type = read_only ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES) {
		snprintf(err, errlen, "%s: cannot lock: %s", path,
			 strerror(errno));
		return -1;
	}
	fl.l_type = read_only ? F_RDLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = fl.l_len = 0;
	fl.l_pid = 0;
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_RDLCK)
		snprintf(err, errlen,
			 "%s: in use: another process holds a read lock on it (a netdiskd serving it read-only?)",
			 path);
	else
		snprintf(err, errlen,
			 "%s: in use: another process holds a write lock on it (a netdiskd serving it read-write?)",
			 path);
	return -1;
}

int nd_file_open(struct nd_export *e, const char *path, bool read_only,
		 char *err, size_t errlen)
{
	struct file_h *f;
	struct stat st;
	uint64_t size;
	uint32_t bsize = ND_SECTOR_SIZE;
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file or block device",
			 path);
		return -1;
	}
	/* A writable block device must not be mounted or used elsewhere. */
	if (S_ISBLK(st.st_mode) && !read_only)
		flags |= O_EXCL;
	fd = open(path, flags);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (lock_export(fd, path, read_only, err, errlen) < 0)
		goto fail;
	if (S_ISBLK(st.st_mode)) {
		int ss = 0;

		if (ioctl(fd, BLKGETSIZE64, &size) < 0 ||
		    ioctl(fd, BLKSSZGET, &ss) < 0) {
			snprintf(err, errlen, "%s: cannot get device size: %s",
				 path, strerror(errno));
			goto fail;
		}
		if (ss != 512 && ss != 1024 && ss != 2048 && ss != 4096) {
			snprintf(err, errlen,
				 "%s: unsupported logical block size %d",
				 path, ss);
			goto fail;
		}
		bsize = (uint32_t)ss;
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		snprintf(err, errlen, "%s: not a regular file or block device",
			 path);
		goto fail;
	}
	if (size == 0) {
		snprintf(err, errlen, "%s: export is empty", path);
		goto fail;
	}
	if (size % bsize) {
		snprintf(err, errlen,
			 "%s: size %llu is not a multiple of %u bytes", path,
			 (unsigned long long)size, bsize);
		goto fail;
	}
	if (export_id(&st, size, e->id) < 0) {
		snprintf(err, errlen, "%s: cannot compute export id", path);
		goto fail;
	}
	f = calloc(1, sizeof(*f));
	if (f)
		f->path = strdup(path);
	if (!f || !f->path) {
		free(f);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&f->sync_lock, NULL);
	pthread_cond_init(&f->sync_done, NULL);
	f->fd = fd;
	f->blk = S_ISBLK(st.st_mode);
	f->no_zero_range = false;
	f->no_punch = false;
	f->no_nowait = false;
	f->no_wnowait = false;
	f->in_memory = false;
	if (S_ISREG(st.st_mode)) {
		struct statfs sf;

		f->in_memory = fstatfs(fd, &sf) == 0 &&
			       (sf.f_type == TMPFS_MAGIC ||
				sf.f_type == RAMFS_MAGIC);
	}
	e->caps = 0;
	if (!read_only) {
		/* FUA via RWF_DSYNC (or pwrite + fdatasync); zeroes always. */
		e->caps = ND_EXP_FUA | ND_EXP_WRITE_ZEROES;
		if (can_trim(fd, &st, size))
			e->caps |= ND_EXP_TRIM;
	}
	e->ops = &file_ops;
	e->h = f;
	e->size = size;
	e->block_size = bsize;
	e->read_only = read_only;
	e->writer = NULL;
	return 0;
fail:
	close(fd);
	return -1;
}

void nd_export_close(struct nd_export *e)
{
	if (e->ops && e->h)
		e->ops->close(e->h);
	e->ops = NULL;
	e->h = NULL;
}
