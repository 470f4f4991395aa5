// SPDX-License-Identifier: MIT
/*
 * Overlay files (docs/COW-FORMAT.md): header and usage record encoding,
 * the rules a header must satisfy, map scans, the base binding, and
 * opening a file under its lock. No state: cow.c and cow_admin.c own the
 * files they open.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cow_format.h"

#define MASK_LO	0x5555555555555555ull	/* low bit of every 2-bit entry */

static int sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -1;
	return 0;
}

uint64_t cow_map_len(uint64_t nclusters)
{
	uint64_t bytes = (nclusters + 3) / 4;

	return (bytes + COW_PAGE - 1) / COW_PAGE * COW_PAGE;
}

void cow_layout(struct cow_hdr *h, uint64_t size, uint32_t cluster_bits)
{
	h->cluster_bits = cluster_bits;
	h->cluster_size = 1u << cluster_bits;
	h->size = size;
	h->nclusters = (size + h->cluster_size - 1) >> cluster_bits;
	h->map_offset = COW_MAP_OFFSET;
	h->map_len = cow_map_len(h->nclusters);
	h->data_offset = (h->map_offset + h->map_len + COW_DATA_ALIGN - 1) /
			 COW_DATA_ALIGN * COW_DATA_ALIGN;
}

void cow_hdr_encode(const struct cow_hdr *h, uint8_t buf[COW_HDR_LEN])
{
	memset(buf, 0, COW_HDR_LEN);
	memcpy(buf, COW_MAGIC, 8);
	cow_put32(buf + 8, h->version);
	cow_put32(buf + 12, h->incompat);
	cow_put32(buf + 16, h->compat);
	cow_put32(buf + 20, h->cluster_bits);
	cow_put64(buf + 24, h->size);
	cow_put64(buf + 32, h->map_offset);
	cow_put64(buf + 40, h->map_len);
	cow_put64(buf + 48, h->data_offset);
	memcpy(buf + 56, h->uuid, 16);
	cow_put64(buf + 72, (uint64_t)h->created);
	cow_put64(buf + 80, h->base_size);
	cow_put64(buf + 88, h->base_mtime_ns);
	memcpy(buf + 96, h->binding, 32);
	sha256(buf, COW_SUM_OFF, buf + COW_SUM_OFF);
}

int cow_hdr_decode(const uint8_t buf[COW_HDR_LEN], struct cow_hdr *h,
		   char *why, size_t whylen)
{
	uint8_t sum[32];

	memset(h, 0, sizeof(*h));
	if (memcmp(buf, COW_MAGIC, 8)) {
		snprintf(why, whylen, "not an overlay (bad magic)");
		return -1;
	}
	h->version = cow_get32(buf + 8);
	if (h->version != COW_VERSION) {
		snprintf(why, whylen, "unsupported version %u", h->version);
		return -1;
	}
	if (sha256(buf, COW_SUM_OFF, sum) < 0 ||
	    memcmp(sum, buf + COW_SUM_OFF, 32)) {
		snprintf(why, whylen, "header checksum mismatch");
		return -1;
	}
	h->incompat = cow_get32(buf + 12);
	h->compat = cow_get32(buf + 16);
	h->cluster_bits = cow_get32(buf + 20);
	h->size = cow_get64(buf + 24);
	h->map_offset = cow_get64(buf + 32);
	h->map_len = cow_get64(buf + 40);
	h->data_offset = cow_get64(buf + 48);
	memcpy(h->uuid, buf + 56, 16);
	h->created = (int64_t)cow_get64(buf + 72);
	h->base_size = cow_get64(buf + 80);
	h->base_mtime_ns = cow_get64(buf + 88);
	memcpy(h->binding, buf + 96, 32);
	if (h->incompat) {
		snprintf(why, whylen, "unknown incompatible features 0x%x",
			 h->incompat);
		return -1;
	}
	if (h->cluster_bits < COW_MIN_CLUSTER_BITS ||
	    h->cluster_bits > COW_MAX_CLUSTER_BITS) {
		snprintf(why, whylen, "bad cluster_bits %u", h->cluster_bits);
		return -1;
	}
	if (h->size == 0 || h->size > COW_MAX_SIZE) {
		snprintf(why, whylen, "bad disk size %llu",
			 (unsigned long long)h->size);
		return -1;
	}
	if (h->base_size != h->size) {
		snprintf(why, whylen, "disk size %llu differs from base size %llu",
			 (unsigned long long)h->size,
			 (unsigned long long)h->base_size);
		return -1;
	}
	h->cluster_size = 1u << h->cluster_bits;
	h->nclusters = (h->size + h->cluster_size - 1) >> h->cluster_bits;
	if (h->map_offset != COW_MAP_OFFSET) {
		snprintf(why, whylen, "bad map offset %llu",
			 (unsigned long long)h->map_offset);
		return -1;
	}
	if (h->map_len != cow_map_len(h->nclusters)) {
		snprintf(why, whylen, "bad map length %llu",
			 (unsigned long long)h->map_len);
		return -1;
	}
	if (h->data_offset % COW_DATA_ALIGN ||
	    h->data_offset < h->map_offset + h->map_len ||
	    h->data_offset > COW_MAX_DATA_OFFSET) {
		snprintf(why, whylen, "bad data offset %llu",
			 (unsigned long long)h->data_offset);
		return -1;
	}
	return 0;
}

void cow_usage_decode(const uint8_t rec[COW_USAGE_LEN], struct cow_usage *u)
{
	uint8_t sum[32];

	u->last = 0;
	u->attaches = 0;
	if (sha256(rec, COW_USAGE_SUM_OFF, sum) < 0 ||
	    memcmp(sum, rec + COW_USAGE_SUM_OFF, 32))
		return;
	u->last = (int64_t)cow_get64(rec);
	u->attaches = cow_get64(rec + 8);
}

void cow_usage_encode(const struct cow_usage *u, uint8_t rec[COW_USAGE_LEN])
{
	memset(rec, 0, COW_USAGE_LEN);
	cow_put64(rec, (uint64_t)u->last);
	cow_put64(rec + 8, u->attaches);
	sha256(rec, COW_USAGE_SUM_OFF, rec + COW_USAGE_SUM_OFF);
}

/* floor(i * span / 63) without overflowing 64 bits. */
static uint64_t sample_off(int i, uint64_t span)
{
	uint64_t q = span / (COW_SAMPLES - 1), r = span % (COW_SAMPLES - 1);
	uint64_t off = q * (uint64_t)i + r * (uint64_t)i / (COW_SAMPLES - 1);

	return off / COW_SAMPLE_LEN * COW_SAMPLE_LEN;
}

int cow_base_bind(const struct nd_cow_base *b, uint64_t *size,
		  uint64_t *mtime_ns, uint8_t binding[32], char *err,
		  size_t errlen)
{
	static const char label[] = "netdisk cow base 1";
	const struct nd_export *e = b->e;
	uint64_t n = e->size < COW_SAMPLE_LEN ? e->size : COW_SAMPLE_LEN;
	uint8_t word[16], *buf = NULL;
	unsigned int len = 0;
	EVP_MD_CTX *ctx;
	struct stat st;
	int rc = -1;

	if (stat(b->path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", b->path, strerror(errno));
		return -1;
	}
	/* Its mtime would bind the overlay to a file we do not serve. */
	if ((b->dev || b->ino) && ((uint64_t)st.st_dev != b->dev ||
				   (uint64_t)st.st_ino != b->ino)) {
		snprintf(err, errlen, "base %s was replaced since it was opened (the old file is still served; restart netdiskd to serve the new one)",
			 b->path);
		return -1;
	}
	*size = e->size;
	*mtime_ns = 0;
	if (S_ISREG(st.st_mode))
		*mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
			    (uint64_t)st.st_mtim.tv_nsec;
	cow_put64(word, *size);
	cow_put64(word + 8, *mtime_ns);
	ctx = EVP_MD_CTX_new();
	buf = malloc(COW_SAMPLE_LEN);
	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, label, sizeof(label) - 1) != 1 ||
	    EVP_DigestUpdate(ctx, word, sizeof(word)) != 1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < COW_SAMPLES; i++) {
		uint64_t off = sample_off(i, e->size - n);
		int r = e->ops->pread(e->h, buf, (uint32_t)n, off);

		if (r < 0) {
			snprintf(err, errlen, "%s: read at %llu: %s", b->path,
				 (unsigned long long)off, strerror(-r));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, n) != 1) {
			snprintf(err, errlen, "SHA-256 failed");
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, binding, &len) != 1 || len != 32) {
		snprintf(err, errlen, "SHA-256 failed");
		goto out;
	}
	rc = 0;
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int cow_base_check(const struct cow_hdr *h, const struct nd_cow_base *b,
		   char *why, size_t whylen)
{
	uint64_t size, mtime;
	uint8_t binding[32];

	if (cow_base_bind(b, &size, &mtime, binding, why, whylen) < 0)
		return -1;
	if (size != h->base_size) {
		snprintf(why, whylen, "base %s is %llu bytes, was %llu",
			 b->path, (unsigned long long)size,
			 (unsigned long long)h->base_size);
		return 1;
	}
	if (mtime != h->base_mtime_ns) {
		snprintf(why, whylen, "base %s was modified (mtime %llu.%09llu, was %llu.%09llu)",
			 b->path, (unsigned long long)(mtime / 1000000000),
			 (unsigned long long)(mtime % 1000000000),
			 (unsigned long long)(h->base_mtime_ns / 1000000000),
			 (unsigned long long)(h->base_mtime_ns % 1000000000));
		return 1;
	}
	if (memcmp(binding, h->binding, 32)) {
		snprintf(why, whylen, "base %s has other contents (binding differs)",
			 b->path);
		return 1;
	}
	return 0;
}

void cow_map_scan(const uint8_t *map, uint64_t map_len, uint64_t nclusters,
		  struct cow_map_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (uint64_t w = 0; w < map_len / 8; w++) {
		uint64_t v = cow_get64(map + 8 * w), lo = v & MASK_LO;
		uint64_t hi = (v >> 1) & MASK_LO, first = w * 32;
		uint64_t ones = lo & ~hi, bad = lo & hi;

		if (!v)
			continue;
		if (first + 32 > nclusters) {
			/* Entries at and after nclusters must be 0. */
			unsigned int keep = nclusters > first ?
					    (unsigned int)(nclusters - first) : 0;

			for (uint64_t t = v >> (2 * keep); t; t >>= 2)
				st->past_end += (t & 3) != 0;
			v = keep ? v & (~0ull >> (64 - 2 * keep)) : 0;
			lo = v & MASK_LO;
			hi = (v >> 1) & MASK_LO;
			ones = lo & ~hi;
			bad = lo & hi;
		}
		st->data += (uint64_t)__builtin_popcountll(ones);
		st->zero += (uint64_t)__builtin_popcountll(hi & ~lo);
		if (bad) {
			if (!st->bad)
				st->first_bad = first +
					(uint64_t)__builtin_ctzll(bad) / 2;
			st->bad += (uint64_t)__builtin_popcountll(bad);
		}
		if (ones)
			st->last_data = first + (63 - (uint64_t)__builtin_clzll(ones)) / 2 + 1;
	}
}

int cow_path(char *out, size_t outlen, const char *dir, const char *identity,
	     const char *suffix)
{
	size_t n = strlen(identity);

	if (!nd_name_valid((const uint8_t *)identity, n))
		return -1;
	if ((size_t)snprintf(out, outlen, "%s/%s%s%s", dir, identity,
			     ND_COW_SUFFIX, suffix) >= outlen)
		return -1;
	return 0;
}

int cow_open_locked(const char *path, int *fd, char *err, size_t errlen)
{
	for (int tries = 0; tries < 10; tries++) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		struct stat a, b;
		int f;

		/* Never open a device node or a FIFO found there. */
		if (lstat(path, &a) == 0 && !S_ISREG(a.st_mode)) {
			snprintf(err, errlen, "%s: not a regular file", path);
			return ND_COW_ERR;
		}
		f = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (f < 0) {
			if (errno == ENOENT)
				return -ENOENT;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return ND_COW_ERR;
		}
		if (fstat(f, &a) < 0 || !S_ISREG(a.st_mode)) {
			snprintf(err, errlen, "%s: not a regular file", path);
			close(f);
			return ND_COW_ERR;
		}
		if (fcntl(f, F_OFD_SETLK, &fl) < 0) {
			int e = errno;

			close(f);
			if (e == EAGAIN || e == EACCES) {
				snprintf(err, errlen,
					 "%s: in use (a netdiskd serving it, or an overlay command)",
					 path);
				return ND_COW_IN_USE;
			}
			snprintf(err, errlen, "%s: cannot lock: %s", path,
				 strerror(e));
			return ND_COW_ERR;
		}
		/* Reset unlinks under the lock: we may hold a removed file. */
		if (lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino) {
			*fd = f;
			return 0;
		}
		close(f);
	}
	snprintf(err, errlen, "%s: keeps being replaced", path);
	return ND_COW_ERR;
}

int cow_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cow_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cow_sync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int cow_load(int fd, const char *path, struct cow_hdr *h, uint8_t **map,
	     char *err, size_t errlen)
{
	uint8_t *hdr = malloc(COW_HDR_LEN), *m = NULL;
	struct cow_map_stats st;
	char why[200];
	struct stat sb;
	int rc;

	if (!hdr) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = cow_pread_all(fd, hdr, COW_HDR_LEN, 0);
	if (rc == -ENODATA) {
		snprintf(err, errlen, "%s: damaged overlay: shorter than its header",
			 path);
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		goto fail;
	}
	if (cow_hdr_decode(hdr, h, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: damaged overlay: %s", path, why);
		goto fail;
	}
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < h->data_offset) {
		snprintf(err, errlen, "%s: damaged overlay: shorter than its data offset %llu",
			 path, (unsigned long long)h->data_offset);
		goto fail;
	}
	free(hdr);
	hdr = NULL;
	if (!map)
		return 0;
	m = malloc(h->map_len);
	if (!m) {
		snprintf(err, errlen, "%s: out of memory for a %llu-byte map",
			 path, (unsigned long long)h->map_len);
		goto fail;
	}
	rc = cow_pread_all(fd, m, h->map_len, h->map_offset);
	if (rc < 0) {
		snprintf(err, errlen, "%s: reading the map: %s", path,
			 strerror(rc == -ENODATA ? EIO : -rc));
		goto fail;
	}
	cow_map_scan(m, h->map_len, h->nclusters, &st);
	if (st.bad) {
		snprintf(err, errlen, "%s: damaged overlay: invalid map entry for cluster %llu (%llu in all)",
			 path, (unsigned long long)st.first_bad,
			 (unsigned long long)st.bad);
		goto fail;
	}
	if (st.past_end) {
		snprintf(err, errlen, "%s: damaged overlay: map entries past the end of the disk",
			 path);
		goto fail;
	}
	if (st.last_data && h->data_offset + (st.last_data << h->cluster_bits) >
	    (uint64_t)sb.st_size) {
		snprintf(err, errlen, "%s: damaged overlay: cluster %llu is past the end of the file",
			 path, (unsigned long long)(st.last_data - 1));
		goto fail;
	}
	*map = m;
	return 0;
fail:
	free(hdr);
	free(m);
	return -1;
}
