// SPDX-License-Identifier: MIT
/* Pre-shared key files, randomness and wiping. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "nd_wire.h"

/* A key file is 64 hex digits plus some whitespace; anything bigger is not one. */
#define ND_KEYFILE_MAX	4096

int nd_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(p, n) != 1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void nd_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

static int nd_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static int nd_hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nd_key_parse(const char *text, size_t len, uint8_t key[ND_KEY_LEN])
{
	uint8_t tmp[ND_KEY_LEN];
	size_t i;
	int bad = 0;

	if (!text)
		return -1;
	while (len && nd_is_space(text[0])) {
		text++;
		len--;
	}
	while (len && nd_is_space(text[len - 1]))
		len--;
	if (len != 2 * ND_KEY_LEN)
		return -1;
	for (i = 0; i < ND_KEY_LEN; i++) {
		int hi = nd_hex_val(text[2 * i]);
		int lo = nd_hex_val(text[2 * i + 1]);

		bad |= hi < 0 || lo < 0;
		tmp[i] = (uint8_t)(((hi & 0xf) << 4) | (lo & 0xf));
	}
	if (!bad)
		memcpy(key, tmp, ND_KEY_LEN);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return bad ? -1 : 0;
}

void nd_key_format(const uint8_t key[ND_KEY_LEN], char out[66])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < ND_KEY_LEN; i++) {
		out[2 * i] = hex[key[i] >> 4];
		out[2 * i + 1] = hex[key[i] & 0xf];
	}
	out[64] = '\n';
	out[65] = '\0';
}

__attribute__((format(printf, 3, 4)))
static void nd_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int nd_key_load(const char *path, uint8_t key[ND_KEY_LEN], char *err,
		size_t errlen)
{
	char buf[ND_KEYFILE_MAX + 1];
	size_t len = 0;
	struct stat st;
	int fd, ret = -1;

	if (!path) {
		nd_err(err, errlen, "no key file given");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		nd_err(err, errlen, "cannot open key file %s: %s", path,
		       strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		nd_err(err, errlen, "cannot stat key file %s: %s", path,
		       strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		nd_err(err, errlen, "key file %s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		nd_err(err, errlen,
		       "key file %s is accessible by others (mode %04o); chmod 600 it",
		       path, (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			nd_err(err, errlen, "cannot read key file %s: %s", path,
			       strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	if (len > ND_KEYFILE_MAX || nd_key_parse(buf, len, key)) {
		nd_err(err, errlen,
		       "key file %s is not a netdisk key (want 64 hex characters, see `netdisk keygen`)",
		       path);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return ret;
}
