// SPDX-License-Identifier: MIT
/* netdisk:// URL parsing: accepted forms, defaults, and refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "url.h"

static void expect_ok(const char *s, const char *host, uint16_t port,
		      const char *export_name)
{
	struct nd_url u;
	char err[256] = "";

	if (nd_url_parse(s, &u, err, sizeof(err)))
		fail_msg("'%s' refused: %s", s, err);
	assert_string_equal(u.host, host);
	assert_int_equal(u.port, port);
	assert_string_equal(u.export_name, export_name);
}

static void expect_bad(const char *s)
{
	struct nd_url u;
	char err[256] = "";

	if (!nd_url_parse(s, &u, err, sizeof(err)))
		fail_msg("'%s' accepted", s);
	/* One line, something said. */
	assert_true(err[0] != '\0');
	assert_null(strchr(err, '\n'));
}

static void test_forms(void **state)
{
	expect_ok("netdisk://server", "server", ND_DEFAULT_PORT, "default");
	expect_ok("netdisk://server/", "server", ND_DEFAULT_PORT, "default");
	expect_ok("netdisk://10.1.2.3:1234", "10.1.2.3", 1234, "default");
	expect_ok("netdisk://host.example:9/boot-img_1.0", "host.example", 9,
		  "boot-img_1.0");
	expect_ok("netdisk://[::1]", "::1", ND_DEFAULT_PORT, "default");
	expect_ok("netdisk://[fe80::1]:26548/x", "fe80::1", 26548, "x");
	expect_ok("netdisk://127.0.0.1:65535/default", "127.0.0.1", 65535,
		  "default");
}

static void test_refused(void **state)
{
	char longname[128];

	expect_bad("");
	expect_bad("server");
	expect_bad("nbd://server");
	expect_bad("netdisk://");
	expect_bad("netdisk://:26547");
	expect_bad("netdisk://host:0");
	expect_bad("netdisk://host:65536");
	expect_bad("netdisk://host:12x");
	expect_bad("netdisk://host:");
	expect_bad("netdisk://[::1");
	expect_bad("netdisk://::1");
	expect_bad("netdisk://host/ex port");
	expect_bad("netdisk://host/a/b");
	memset(longname, 'e', sizeof(longname));
	memcpy(longname, "netdisk://h/", 12);
	longname[12 + ND_NAME_MAX + 1] = '\0';	/* 65-byte export name */
	expect_bad(longname);
}

static void test_is_url_and_format(void **state)
{
	struct nd_url u;
	char err[128], out[512];

	assert_true(nd_url_is_url("netdisk://x"));
	assert_false(nd_url_is_url("/dev/sda"));
	assert_false(nd_url_is_url("disk.img"));
	assert_int_equal(nd_url_parse("netdisk://[::1]:7/e", &u, err,
				      sizeof(err)), 0);
	nd_url_format(&u, out, sizeof(out));
	assert_string_equal(out, "netdisk://[::1]:7/e");
	/* Formatting round-trips through the parser. */
	assert_int_equal(nd_url_parse(out, &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_is_url_and_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
