// SPDX-License-Identifier: MIT
/*
 * Key files: nd_key_parse on the raw input is compared with an independent
 * reading of the format (64 hex digits, surrounding whitespace ignored),
 * and nd_key_load on the same bytes in a private 0600 file must agree with
 * it for anything up to the 4096-byte limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define KEYFILE_MAX	4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The spec, written independently of lib/keyfile.c. */
static int model(const uint8_t *p, size_t n, uint8_t key[ND_KEY_LEN])
{
	while (n && space(p[0])) {
		p++;
		n--;
	}
	while (n && space(p[n - 1]))
		n--;
	if (n != 2 * ND_KEY_LEN)
		return -1;
	for (size_t i = 0; i < ND_KEY_LEN; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t want[ND_KEY_LEN], got[ND_KEY_LEN], again[ND_KEY_LEN];
	char *text = malloc(size ? size : 1), fmt[66], err[512];
	int m, r, fd;

	if (!text)
		fz_fail("out of memory");
	memcpy(text, data, size);	/* exact size: ASan sees overreads */
	memset(got, 0x5a, sizeof(got));
	m = model(data, size, want);
	r = nd_key_parse(text, size, got);
	if (r != m)
		fz_fail("nd_key_parse returned %d, expected %d", r, m);
	if (r == 0) {
		if (memcmp(got, want, ND_KEY_LEN))
			fz_fail("nd_key_parse decoded a different key");
		nd_key_format(got, fmt);
		if (strlen(fmt) != 65 || nd_key_parse(fmt, 65, again) ||
		    memcmp(again, got, ND_KEY_LEN))
			fz_fail("nd_key_format does not round-trip");
	} else {
		for (size_t i = 0; i < ND_KEY_LEN; i++)
			if (got[i] != 0x5a)
				fz_fail("nd_key_parse wrote a key it rejected");
	}

	/* The same bytes as a key file, through nd_key_load. */
	/* Per process, removed after each input (run.sh sweeps up crashes). */
	if (!path[0])
		snprintf(path, sizeof(path), "%s/netdisk-fuzz-key-%d",
			 fz_tmpdir(), (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0)
		fz_fail("%s: %s", path, strerror(errno));
	if (write(fd, data, size) != (ssize_t)size)
		fz_fail("%s: short write", path);
	close(fd);
	err[0] = 0;
	memset(again, 0x5a, sizeof(again));
	r = nd_key_load(path, again, err, sizeof(err));
	unlink(path);
	if (size > KEYFILE_MAX) {
		if (r == 0)
			fz_fail("nd_key_load took a %zu-byte file", size);
	} else if (r != m || (r == 0 && memcmp(again, want, ND_KEY_LEN))) {
		fz_fail("nd_key_load returned %d, nd_key_parse %d", r, m);
	}
	if (r < 0 && (!err[0] || strchr(err, '\n')))
		fz_fail("nd_key_load: no one-line reason");
	free(text);
	return 0;
}
