// SPDX-License-Identifier: MIT
/*
 * Overlay files: the input is an overlay file for identity "lab" over a
 * fixed 64 KiB base. Byte 0 holds fix-ups that let the fuzzer past the
 * hashes: bit 0 recomputes the header checksum, bit 1 first writes the
 * base's size, mtime and binding into the header, bit 2 extends the file
 * (sparse) past the data offset the header names. The rest is the file.
 *
 * Oracle: nd_cow_check runs first and must answer consistent (0) or
 * findings (1); nd_cow_open must then accept exactly the files check
 * found consistent, refuse the others with one line, and an accepted
 * overlay must read what its map says (base, its data area, zeros),
 * take a write, and still be consistent after closing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fuzz_common.h"
#include "../../server/backend.h"
#include "../../server/cow.h"
#include "../../server/cow_format.h"
#include "../../server/log.h"

#define BASE_LEN	(64u << 10)
#define MAX_EXTEND	(8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[128], base_path[192], ov_path[192];
static struct nd_export base;
static struct nd_cow_base cb;
static uint8_t base_bytes[BASE_LEN];

static void cleanup(void)
{
	nd_export_close(&base);
	unlink(ov_path);
	unlink(base_path);
	rmdir(dir);
}

/* Per process (run.sh sweeps what a crashed one leaves). */
static void setup(void)
{
	char err[256];
	int fd;

	if (!getenv("ND_FUZZ_LOG"))
		nd_log_level = -1;
	snprintf(dir, sizeof(dir), "%s/netdisk-fuzz-cow-%d", fz_tmpdir(),
		 (int)getpid());
	snprintf(base_path, sizeof(base_path), "%s/base.img", dir);
	snprintf(ov_path, sizeof(ov_path), "%s/lab" ND_COW_SUFFIX, dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		fz_fail("%s: %s", dir, strerror(errno));
	for (size_t i = 0; i < BASE_LEN; i++)
		base_bytes[i] = (uint8_t)(i * 7 + (i >> 9) + 1);
	fd = open(base_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, base_bytes, BASE_LEN) != BASE_LEN)
		fz_fail("%s: cannot write", base_path);
	close(fd);
	if (nd_file_open(&base, base_path, true, err, sizeof(err)) < 0)
		fz_fail("%s", err);
	cb.e = &base;
	cb.path = base_path;
	atexit(cleanup);
}

static void fix_up(uint8_t *f, size_t n, uint8_t how)
{
	uint64_t size, mtime;
	uint8_t binding[32];
	char err[256];

	if (n < COW_HDR_LEN)
		return;
	if (how & 2) {
		if (cow_base_bind(&cb, &size, &mtime, binding, err,
				  sizeof(err)) < 0)
			fz_fail("binding: %s", err);
		cow_put64(f + 24, size);
		cow_put64(f + 80, size);
		cow_put64(f + 88, mtime);
		memcpy(f + 96, binding, 32);
	}
	if (how & 1) {
		unsigned int len = 0;

		if (EVP_Digest(f, COW_SUM_OFF, f + COW_SUM_OFF, &len,
			       EVP_sha256(), NULL) != 1)
			fz_fail("SHA-256 failed");
	}
}

static void write_file(const uint8_t *f, size_t n, uint8_t how)
{
	int fd = open(ov_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (n && write(fd, f, n) != (ssize_t)n))
		fz_fail("%s: cannot write", ov_path);
	if ((how & 4) && n >= 56) {
		uint64_t ext = cow_get64(f + 48) + (1u << 20) + BASE_LEN;

		if (ext > MAX_EXTEND)
			ext = MAX_EXTEND;
		if (ext > n && ftruncate(fd, (off_t)ext) < 0)
			fz_fail("%s: %s", ov_path, strerror(errno));
	}
	close(fd);
}

/* What the accepted overlay must read, from the file as it is. */
static void model_read(uint8_t *want)
{
	static uint8_t area[BASE_LEN];
	uint8_t hdr[COW_HDR_LEN], *map;
	struct cow_hdr h;
	struct stat st;
	char why[256];
	int fd = open(ov_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 ||
	    pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr) ||
	    cow_hdr_decode(hdr, &h, why, sizeof(why)) < 0)
		fz_fail("accepted overlay has no valid header");
	map = malloc(h.map_len);
	if (!map || pread(fd, map, h.map_len, (off_t)h.map_offset) !=
		    (ssize_t)h.map_len)
		fz_fail("accepted overlay has no map");
	memset(area, 0, sizeof(area));
	if (pread(fd, area, sizeof(area), (off_t)h.data_offset) < 0)
		fz_fail("%s: %s", ov_path, strerror(errno));
	for (uint64_t off = 0; off < BASE_LEN; off++) {
		uint64_t c = off >> h.cluster_bits;
		unsigned int v = (map[c / 4] >> (2 * (c % 4))) & 3;

		if (v == COW_BAD)
			fz_fail("accepted overlay with a 3 in its map");
		if (v == COW_DATA && h.data_offset + ((c + 1) << h.cluster_bits) >
		    (uint64_t)st.st_size)
			fz_fail("accepted cluster %llu past the end of the file",
				(unsigned long long)c);
		want[off] = v == COW_BASE ? base_bytes[off] :
			    v == COW_DATA ? area[off] : 0;
	}
	free(map);
	close(fd);
}

static int check(char *rep, size_t n)
{
	char err[512] = "";
	FILE *fp = fmemopen(rep, n, "w");
	int rc;

	if (!fp)
		fz_fail("fmemopen");
	rc = nd_cow_check(&cb, dir, "lab", fp, err, sizeof(err));
	fclose(fp);
	if (rc != 0 && rc != 1)
		fz_fail("nd_cow_check returned %d: %s", rc, err);
	return rc;
}

static void use_accepted(struct nd_export *ov)
{
	static uint8_t want[BASE_LEN], got[BASE_LEN];
	uint8_t buf[1000];
	char rep[4096], err[512];

	model_read(want);
	if (ov->ops->pread(ov->h, got, BASE_LEN, 0))
		fz_fail("read of an accepted overlay failed");
	if (memcmp(want, got, BASE_LEN))
		fz_fail("accepted overlay reads other bytes than its map says");
	memset(buf, 0xab, sizeof(buf));
	if (ov->ops->pwrite(ov->h, buf, sizeof(buf), 3000, true) ||
	    ov->ops->write_zeroes(ov->h, 5000, 9000, false))
		fz_fail("write to an accepted overlay failed");
	nd_export_close(ov);
	if (check(rep, sizeof(rep)) != 0)
		fz_fail("inconsistent after a write: %s", rep);
	if (nd_cow_open(&cb, dir, "lab", ov, err, sizeof(err)))
		fz_fail("not reopened after a write: %s", err);
	if (ov->ops->pread(ov->h, got, BASE_LEN, 0))
		fz_fail("read after reopening failed");
	memcpy(want + 3000, buf, sizeof(buf));
	memset(want + 9000, 0, 5000);
	if (memcmp(want, got, BASE_LEN))
		fz_fail("reopened overlay lost the write");
	nd_export_close(ov);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nd_export ov = { 0 };
	char rep[4096], err[512] = "";
	uint8_t *f, how;
	int c, o;

	if (!dir[0])
		setup();
	if (size < 1)
		return 0;
	how = data[0];
	size--;
	f = malloc(size ? size : 1);
	if (!f)
		fz_fail("out of memory");
	memcpy(f, data + 1, size);
	fix_up(f, size, how);
	write_file(f, size, how);
	free(f);

	c = check(rep, sizeof(rep));
	if (!strchr(rep, '\n'))
		fz_fail("check wrote no report line");
	o = nd_cow_open(&cb, dir, "lab", &ov, err, sizeof(err));
	if (o == 0 && c != 0)
		fz_fail("opened an overlay check reported: %s", rep);
	if (o != 0 && c == 0)
		fz_fail("refused an overlay check found consistent: %s", err);
	if (o != 0 && o != ND_COW_ERR && o != ND_COW_BASE_CHANGED)
		fz_fail("nd_cow_open returned %d: %s", o, err);
	if (o != 0 && (!err[0] || strchr(err, '\n')))
		fz_fail("refusal without a one-line reason");
	if (o == 0)
		use_accepted(&ov);
	unlink(ov_path);
	return 0;
}
