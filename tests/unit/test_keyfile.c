// SPDX-License-Identifier: MIT
/* Key file parsing and loading, randomness, wiping. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "netdisk_vectors.h"

#define HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/nd-keyfile-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int parse(const char *s, uint8_t key[ND_KEY_LEN])
{
	return nd_key_parse(s, strlen(s), key);
}

static void test_parse_good(void **state)
{
	static const char *const good[] = {
		HEX, HEX "\n", "  " HEX "  \n", "\t\r\n" HEX "\r\n\v\f ",
		"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t key[ND_KEY_LEN];

		memset(key, 0xee, sizeof(key));
		assert_int_equal(parse(good[i], key), 0);
		assert_memory_equal(key, nd_vec_psk, ND_KEY_LEN);
	}
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "\n", "   ",
		HEX "0",			/* 65 */
		HEX "00",			/* 33 bytes */
		HEX + 1,			/* 63 */
		HEX + 2,			/* 31 bytes */
		"0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1z",
		"00010203040506070809 a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		HEX "\nextra",
		"# comment\n" HEX,
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t key[ND_KEY_LEN], before[ND_KEY_LEN];

		memset(key, 0xee, sizeof(key));
		memcpy(before, key, sizeof(key));
		assert_int_equal(parse(bad[i], key), -1);
		/* A refused key leaves the output untouched. */
		assert_memory_equal(key, before, sizeof(key));
	}
	{
		/* Embedded NUL: the length counts, not the string. */
		char buf[70];
		uint8_t key[ND_KEY_LEN];

		memcpy(buf, HEX, 64);
		buf[10] = '\0';
		assert_int_equal(nd_key_parse(buf, 64, key), -1);
		assert_int_equal(nd_key_parse(NULL, 0, key), -1);
	}
}

static void test_format(void **state)
{
	uint8_t key[ND_KEY_LEN], back[ND_KEY_LEN];
	char out[66];
	int i;

	nd_key_format(nd_vec_psk, out);
	assert_string_equal(out, HEX "\n");
	for (i = 0; i < 20; i++) {
		assert_int_equal(nd_random(key, sizeof(key)), 0);
		nd_key_format(key, out);
		assert_int_equal(strlen(out), 65);
		assert_int_equal(parse(out, back), 0);
		assert_memory_equal(key, back, sizeof(key));
	}
}

static void write_file(const char *path, const char *text, size_t len,
		       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_load_good(void **state)
{
	char path[128], err[256] = "";
	uint8_t key[ND_KEY_LEN];

	snprintf(path, sizeof(path), "%s/good.key", dir);
	write_file(path, HEX "\n", 65, 0600);
	assert_int_equal(nd_key_load(path, key, err, sizeof(err)), 0);
	assert_memory_equal(key, nd_vec_psk, ND_KEY_LEN);
	write_file(path, "\n  " HEX "  \n\n", 71, 0400);
	assert_int_equal(nd_key_load(path, key, err, sizeof(err)), 0);
	assert_memory_equal(key, nd_vec_psk, ND_KEY_LEN);
	/* err may be NULL. */
	assert_int_equal(nd_key_load(path, key, NULL, 0), 0);
}

/* Loading fails, the message names the file and mentions want, never the key. */
static void expect_load_fail(const char *path, const char *want)
{
	char err[512] = "";
	uint8_t key[ND_KEY_LEN];

	assert_int_equal(nd_key_load(path, key, err, sizeof(err)), -1);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	assert_null(strchr(err, '\n'));
	assert_null(strstr(err, "0a0b0c0d0e0f"));
	assert_null(strstr(err, "0A0B0C0D0E0F"));
	/* Truncation is safe too. */
	assert_int_equal(nd_key_load(path, key, err, 8), -1);
	assert_true(strlen(err) < 8);
}

static void test_load_bad_content(void **state)
{
	static const char *const bad[] = {
		HEX + 2, HEX "00", "", "not a key\n",
		"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1G",
	};
	char path[128];
	size_t i;

	snprintf(path, sizeof(path), "%s/bad.key", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]), 0600);
		expect_load_fail(path, "is not a netdisk key");
	}
	{
		/* A big file made of valid hex and spaces: still refused. */
		size_t big = 100000;
		char *text = malloc(big);

		assert_non_null(text);
		memset(text, ' ', big);
		memcpy(text + big / 2, HEX, 64);
		write_file(path, text, big, 0600);
		free(text);
		expect_load_fail(path, "is not a netdisk key");
	}
}

static void test_load_permissions(void **state)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0660, 0606, 0610,
					0601, 0666, 0777, 0620, 0602 };
	char path[128], want[256];
	size_t i;

	snprintf(path, sizeof(path), "%s/open.key", dir);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		write_file(path, HEX "\n", 65, modes[i]);
		snprintf(want, sizeof(want),
			 "key file %s is accessible by others (mode %04o); chmod 600 it",
			 path, (unsigned int)modes[i]);
		expect_load_fail(path, want);
	}
	/* Owner-only modes are fine, whatever the owner bits. */
	write_file(path, HEX "\n", 65, 0700);
	{
		uint8_t key[ND_KEY_LEN];

		assert_int_equal(nd_key_load(path, key, NULL, 0), 0);
	}
}

static void test_load_missing(void **state)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/missing.key", dir);
	expect_load_fail(path, "cannot open key file");
	expect_load_fail(path, "No such file or directory");
	expect_load_fail(dir, "is not a regular file");
	expect_load_fail("/dev/null", "is not a regular file");
	{
		char err[64];
		uint8_t key[ND_KEY_LEN];

		assert_int_equal(nd_key_load(NULL, key, err, sizeof(err)), -1);
	}
}

static void test_random_and_wipe(void **state)
{
	uint8_t a[64], b[64], zero[64] = { 0 };

	assert_int_equal(nd_random(a, sizeof(a)), 0);
	assert_int_equal(nd_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_int_equal(nd_random(a, 0), 0);
	nd_wipe(a, sizeof(a));
	assert_memory_equal(a, zero, sizeof(a));
	nd_wipe(NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_load_good),
		cmocka_unit_test(test_load_bad_content),
		cmocka_unit_test(test_load_permissions),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_random_and_wipe),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
