// SPDX-License-Identifier: MIT
/*
 * The administrator's operations on overlay files (netdiskd overlay
 * list|reset|merge|check), with or without a running server: all but
 * info and list take the overlay's lock, so they fail with "in use"
 * while a server has the overlay open, and a server cannot open it while
 * they work.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cow_format.h"
#include "log.h"

#define MERGE_CHUNK	(1u << 20)
#define MERGE_BLOCK	4096u		/* holes where whole blocks are zero */

static unsigned int entry(const uint8_t *map, uint64_t c)
{
	return (map[c >> 2] >> (2 * (c & 3))) & 3;
}

/* Disk bytes of cluster c (the last one may be short). */
static uint64_t cluster_bytes(const struct cow_hdr *h, uint64_t c)
{
	uint64_t a = c << h->cluster_bits;

	return h->size - a < h->cluster_size ? h->size - a : h->cluster_size;
}

int nd_cow_info(const char *dir, const char *identity,
		struct nd_cow_info *info, char *err, size_t errlen)
{
	char path[PATH_MAX];
	uint8_t rec[COW_USAGE_LEN], *map = NULL;
	struct cow_map_stats ms;
	struct cow_usage u;
	struct cow_hdr h;
	struct stat st;
	int fd, rc = -1;

	memset(info, 0, sizeof(*info));
	if (cow_path(path, sizeof(path), dir, identity, "") < 0) {
		snprintf(err, errlen, "'%s': invalid identity or path too long",
			 identity);
		return -1;
	}
	snprintf(info->identity, sizeof(info->identity), "%s", identity);
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (cow_load(fd, path, &h, &map, err, errlen) < 0)
		goto out;
	cow_map_scan(map, h.map_len, h.nclusters, &ms);
	info->size = h.size;
	info->allocated = (uint64_t)st.st_blocks * 512;
	info->data_bytes = ms.data << h.cluster_bits;
	info->zero_bytes = ms.zero << h.cluster_bits;
	/* The last cluster holds only the disk's bytes. */
	if (entry(map, h.nclusters - 1) == COW_DATA)
		info->data_bytes -= h.cluster_size -
				    cluster_bytes(&h, h.nclusters - 1);
	if (entry(map, h.nclusters - 1) == COW_ZERO)
		info->zero_bytes -= h.cluster_size -
				    cluster_bytes(&h, h.nclusters - 1);
	info->created = h.created;
	if (cow_pread_all(fd, rec, sizeof(rec), COW_USAGE_OFF) == 0) {
		cow_usage_decode(rec, &u);
		info->last_used = u.last;
		info->attaches = u.attaches;
	}
	rc = 0;
out:
	free(map);
	close(fd);
	return rc;
}

static int by_identity(const void *a, const void *b)
{
	return strcmp(((const struct nd_cow_info *)a)->identity,
		      ((const struct nd_cow_info *)b)->identity);
}

int nd_cow_list(const char *dir, struct nd_cow_info **out, int *n,
		char *err, size_t errlen)
{
	const size_t sl = strlen(ND_COW_SUFFIX);
	struct nd_cow_info *v = NULL;
	struct dirent *de;
	int cnt = 0, cap = 0;
	DIR *d;

	*out = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d))) {
		char id[ND_NAME_MAX + 1], why[512];
		size_t len = strlen(de->d_name);

		if (len <= sl || len - sl > ND_NAME_MAX ||
		    strcmp(de->d_name + len - sl, ND_COW_SUFFIX))
			continue;
		memcpy(id, de->d_name, len - sl);
		id[len - sl] = 0;
		if (!nd_name_valid((const uint8_t *)id, len - sl))
			continue;
		if (cnt == cap) {
			struct nd_cow_info *nv;

			cap = cap ? 2 * cap : 16;
			nv = realloc(v, (size_t)cap * sizeof(*v));
			if (!nv) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			v = nv;
		}
		if (nd_cow_info(dir, id, &v[cnt], why, sizeof(why)) < 0) {
			nd_warn("%s", why);
			memset(&v[cnt], 0, sizeof(v[cnt]));
			snprintf(v[cnt].identity, sizeof(v[cnt].identity),
				 "%s", id);
		}
		cnt++;
	}
	if (errno) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (cnt)
		qsort(v, (size_t)cnt, sizeof(*v), by_identity);
	*out = v;
	*n = cnt;
	return 0;
fail:
	closedir(d);
	free(v);
	return -1;
}

int nd_cow_reset(const char *dir, const char *identity, char *err,
		 size_t errlen)
{
	char path[PATH_MAX];
	int fd, rc;

	if (cow_path(path, sizeof(path), dir, identity, "") < 0) {
		snprintf(err, errlen, "'%s': invalid identity or path too long",
			 identity);
		return ND_COW_ERR;
	}
	rc = cow_open_locked(path, &fd, err, errlen);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	/* Under the lock: a server opening it now finds it gone. */
	if (unlink(path) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return ND_COW_ERR;
	}
	rc = cow_sync_parent(path);
	close(fd);
	if (rc < 0) {
		snprintf(err, errlen, "%s: syncing its directory: %s", path,
			 strerror(-rc));
		return ND_COW_ERR;
	}
	return 0;
}

/* Opens, locks and loads an existing overlay bound to base. */
static int open_bound(const struct nd_cow_base *base, const char *dir,
		      const char *identity, char *path, size_t pathlen,
		      int *fd, struct cow_hdr *h, uint8_t **map, char *err,
		      size_t errlen)
{
	char why[300];
	int rc;

	if (cow_path(path, pathlen, dir, identity, "") < 0) {
		snprintf(err, errlen, "'%s': invalid identity or path too long",
			 identity);
		return ND_COW_ERR;
	}
	rc = cow_open_locked(path, fd, err, errlen);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s: no overlay for identity '%s'", path,
			 identity);
		return ND_COW_ERR;
	}
	if (rc < 0)
		return rc;
	if (cow_load(*fd, path, h, map, err, errlen) < 0) {
		close(*fd);
		return ND_COW_ERR;
	}
	rc = cow_base_check(h, base, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "%s: %s%s", path,
			 rc > 0 ? "base image changed: " : "", why);
		free(*map);
		close(*fd);
		return rc > 0 ? ND_COW_BASE_CHANGED : ND_COW_ERR;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* What the identity reads at [off, off + n), n within one chunk. */
static int merge_read(const struct nd_cow_base *base, int fd,
		      const struct cow_hdr *h, const uint8_t *map, uint8_t *p,
		      uint64_t off, uint64_t n)
{
	const struct nd_export *e = base->e;
	uint64_t end = off + n;

	while (off < end) {
		uint64_t c = off >> h->cluster_bits;
		uint64_t to = (c + 1) << h->cluster_bits;
		int rc = 0;

		to = to < end ? to : end;
		switch (entry(map, c)) {
		case COW_BASE:
			rc = e->ops->pread(e->h, p, (uint32_t)(to - off), off);
			break;
		case COW_DATA:
			rc = cow_pread_all(fd, p, to - off,
					   h->data_offset + off);
			if (rc == -ENODATA)
				rc = -EIO;
			break;
		default:
			memset(p, 0, to - off);
		}
		if (rc < 0)
			return rc;
		p += to - off;
		off = to;
	}
	return 0;
}

static int merge_copy(const struct nd_cow_base *base, int fd,
		      const struct cow_hdr *h, const uint8_t *map, int out,
		      const char *tmp, char *err, size_t errlen)
{
	uint8_t *buf = malloc(MERGE_CHUNK);
	int rc = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (ftruncate(out, (off_t)h->size) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	for (uint64_t off = 0; off < h->size && rc == 0; off += MERGE_CHUNK) {
		uint64_t n = h->size - off < MERGE_CHUNK ? h->size - off :
			     MERGE_CHUNK;

		rc = merge_read(base, fd, h, map, buf, off, n);
		if (rc < 0) {
			snprintf(err, errlen, "reading at %llu: %s",
				 (unsigned long long)off, strerror(-rc));
			break;
		}
		for (uint64_t b = 0; b < n && rc == 0; b += MERGE_BLOCK) {
			uint64_t k = n - b < MERGE_BLOCK ? n - b : MERGE_BLOCK;

			if (all_zero(buf + b, k))
				continue;	/* stays a hole */
			rc = cow_pwrite_all(out, buf + b, k, off + b);
			if (rc < 0)
				snprintf(err, errlen, "%s: %s", tmp,
					 strerror(-rc));
		}
	}
	free(buf);
	if (rc == 0 && fsync(out) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		rc = -1;
	}
	return rc < 0 ? -1 : 0;
}

int nd_cow_merge(const struct nd_cow_base *base, const char *dir,
		 const char *identity, const char *out_path, char *err,
		 size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct cow_hdr h;
	uint8_t *map = NULL;
	struct stat st;
	int fd, out, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", out_path) >=
	    sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", out_path);
		return ND_COW_ERR;
	}
	if (lstat(out_path, &st) == 0) {
		snprintf(err, errlen, "%s: already exists", out_path);
		return ND_COW_ERR;
	}
	rc = open_bound(base, dir, identity, path, sizeof(path), &fd, &h, &map,
			err, errlen);
	if (rc < 0)
		return rc;
	rc = ND_COW_ERR;
	/* An existing .tmp may be anyone's file: never ours to delete. */
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		   0600);
	if (out < 0) {
		snprintf(err, errlen, "%s: %s", tmp, errno == EEXIST ?
			 "already exists (left by an interrupted merge? remove it first)" :
			 strerror(errno));
		goto out;
	}
	if (merge_copy(base, fd, &h, map, out, tmp, err, errlen) < 0) {
		close(out);
		unlink(tmp);
		goto out;
	}
	close(out);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out_path, RENAME_NOREPLACE) < 0) {
		snprintf(err, errlen, "%s: %s", out_path,
			 errno == EEXIST ? "already exists" : strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = cow_sync_parent(out_path);
	if (rc < 0) {
		snprintf(err, errlen, "%s: syncing its directory: %s", out_path,
			 strerror(-rc));
		rc = ND_COW_ERR;
		goto out;
	}
	rc = 0;
out:
	free(map);
	close(fd);
	return rc;
}

/* ---- check ---- */

struct finding {
	FILE *report;
	const char *path;
	int n;
};

__attribute__((format(printf, 2, 3)))
static void found(struct finding *f, const char *fmt, ...)
{
	va_list ap;

	fprintf(f->report, "%s: ", f->path);
	va_start(ap, fmt);
	vfprintf(f->report, fmt, ap);
	va_end(ap);
	fputc('\n', f->report);
	f->n++;
}

/* Map entries, against the file's length. */
static int check_map(struct finding *f, int fd, const struct cow_hdr *h,
		     uint64_t flen, struct cow_map_stats *ms, char *err,
		     size_t errlen)
{
	uint8_t *map;
	int rc;

	memset(ms, 0, sizeof(*ms));
	if (flen < h->map_offset + h->map_len) {
		found(f, "damaged: the file ends inside the cluster map");
		return 0;
	}
	map = malloc(h->map_len);
	if (!map) {
		snprintf(err, errlen, "%s: out of memory for a %llu-byte map",
			 f->path, (unsigned long long)h->map_len);
		return -1;
	}
	rc = cow_pread_all(fd, map, h->map_len, h->map_offset);
	if (rc < 0) {
		snprintf(err, errlen, "%s: reading the map: %s", f->path,
			 strerror(rc == -ENODATA ? EIO : -rc));
		free(map);
		return -1;
	}
	cow_map_scan(map, h->map_len, h->nclusters, ms);
	free(map);
	if (ms->bad)
		found(f, "damaged: %llu map entries are 3 (invalid), the first for cluster %llu",
		      (unsigned long long)ms->bad,
		      (unsigned long long)ms->first_bad);
	if (ms->past_end)
		found(f, "damaged: %llu map entries past the end of the disk are not 0",
		      (unsigned long long)ms->past_end);
	if (ms->last_data &&
	    h->data_offset + (ms->last_data << h->cluster_bits) > flen)
		found(f, "damaged: cluster %llu holds data past the end of the file",
		      (unsigned long long)(ms->last_data - 1));
	return 0;
}

int nd_cow_check(const struct nd_cow_base *base, const char *dir,
		 const char *identity, FILE *report, char *err,
		 size_t errlen)
{
	char path[PATH_MAX], why[300];
	struct finding f = { .report = report, .path = path };
	struct cow_map_stats ms = { 0 };
	uint8_t *hdr = NULL;
	struct cow_hdr h;
	struct stat st;
	int fd, rc;

	if (cow_path(path, sizeof(path), dir, identity, "") < 0) {
		snprintf(err, errlen, "'%s': invalid identity or path too long",
			 identity);
		return ND_COW_ERR;
	}
	rc = cow_open_locked(path, &fd, err, errlen);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s: no overlay for identity '%s'", path,
			 identity);
		return ND_COW_ERR;
	}
	if (rc < 0)
		return rc;
	rc = ND_COW_ERR;
	hdr = malloc(COW_HDR_LEN);
	if (!hdr || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 hdr ? strerror(errno) : "out of memory");
		goto out;
	}
	if ((uint64_t)st.st_size < COW_HDR_LEN) {
		found(&f, "damaged: shorter than its header (%lld bytes)",
		      (long long)st.st_size);
		goto summary;
	}
	if (cow_pread_all(fd, hdr, COW_HDR_LEN, 0) < 0) {
		snprintf(err, errlen, "%s: reading the header: %s", path,
			 strerror(errno));
		goto out;
	}
	if (cow_hdr_decode(hdr, &h, why, sizeof(why)) < 0) {
		found(&f, "damaged: %s", why);
		goto summary;
	}
	if ((uint64_t)st.st_size < h.data_offset)
		found(&f, "damaged: shorter (%lld bytes) than its data offset %llu",
		      (long long)st.st_size, (unsigned long long)h.data_offset);
	if (check_map(&f, fd, &h, (uint64_t)st.st_size, &ms, err, errlen) < 0)
		goto out;
	switch (cow_base_check(&h, base, why, sizeof(why))) {
	case 0:
		break;
	case 1:
		found(&f, "base image changed: %s", why);
		break;
	default:
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
summary:
	if (f.n)
		fprintf(report, "%s: %d problem%s found\n", path, f.n,
			f.n == 1 ? "" : "s");
	else
		fprintf(report, "%s: consistent: %llu clusters of data, %llu of zeros\n",
			path, (unsigned long long)ms.data,
			(unsigned long long)ms.zero);
	rc = f.n ? 1 : 0;
out:
	free(hdr);
	close(fd);
	return rc;
}
