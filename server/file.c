// SPDX-License-Identifier: MIT
/* File and block-device backend: pread/pwrite/fdatasync on one fd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backend.h"

struct file_h {
	int fd;
};

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

static int file_pwrite(void *h, const void *buf, uint32_t len, uint64_t off,
		       bool fua)
{
	struct file_h *f = h;
	const uint8_t *p = buf;

	while (len) {
		struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n;

		/* RWF_DSYNC makes this one write durable, like FUA. */
		n = pwritev2(f->fd, &iov, 1, (off_t)off, fua ? RWF_DSYNC : 0);
		if (n < 0 && fua && (errno == EOPNOTSUPP || errno == EINVAL ||
				     errno == ENOSYS)) {
			n = pwrite(f->fd, p, len, (off_t)off);
			if (n > 0 && fdatasync(f->fd) < 0)
				return -errno;
		}
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

static int file_flush(void *h)
{
	struct file_h *f = h;

	return fdatasync(f->fd) < 0 ? -errno : 0;
}

static void file_close(void *h)
{
	struct file_h *f = h;

	close(f->fd);
	free(f);
}

static const struct nd_backend_ops file_ops = {
	.name = "file",
	.pread = file_pread,
	.pwrite = file_pwrite,
	.flush = file_flush,
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
	f = malloc(sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	f->fd = fd;
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
