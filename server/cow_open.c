// SPDX-License-Identifier: MIT
/*
 * Opening an identity's overlay (nd_cow_open): creating it on first use
 * (written to IDENTITY.ndcow.tmp, synced, renamed, directory synced),
 * taking its lock, checking its header, map and base binding, counting
 * the attach; then cow.c serves it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cow_format.h"
#include "log.h"
#include "nd_wire.h"

static const uint8_t zeros[COW_PAGE];

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
	/* Allocated now, so a commit never needs new space. */
	for (uint64_t o = 0; r == 0 && o < h.map_len; o += COW_PAGE)
		r = cow_pwrite_all(fd, zeros, COW_PAGE, h.map_offset + o);
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

int nd_cow_open(const struct nd_cow_base *base, const char *dir,
		const char *identity, struct nd_export *out, char *err,
		size_t errlen)
{
	char path[PATH_MAX], why[300];
	struct cow_hdr h;
	uint8_t *map = NULL;
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
			snprintf(err, errlen, "%s: base image changed: %s; reset the overlay or restore the base",
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
	if (!map || cow_serve(fd, path, &h, map, base, out) < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return ND_COW_ERR;
	}
	record_attach(fd);
	out->size = base->e->size;
	out->block_size = base->e->block_size;
	out->read_only = false;
	out->caps = ND_EXP_FUA | ND_EXP_TRIM | ND_EXP_WRITE_ZEROES;
	out->writer = NULL;
	return 0;
}
