// SPDX-License-Identifier: MIT
/* netdisk= boot parameters: accepted forms, attach arguments, refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bootarg.h"

/* The attach arguments of val, space-joined. */
static void expect_args(const char *val, const char *args)
{
	struct nd_bootarg b;
	char err[256] = "", joined[2048] = "";
	int i;

	if (nd_bootarg_parse(val, &b, err, sizeof(err)))
		fail_msg("'%s' refused: %s", val, err);
	for (i = 0; i < b.argc; i++) {
		if (i)
			strcat(joined, " ");
		strcat(joined, b.argv[i]);
	}
	assert_null(b.argv[b.argc]);
	assert_string_equal(joined, args);
	assert_string_equal(b.url, b.argv[b.argc - 1]);
}

/* Refused with a one-line message containing what. */
static void expect_bad(const char *val, const char *what)
{
	struct nd_bootarg b;
	char err[256] = "";

	if (!nd_bootarg_parse(val, &b, err, sizeof(err)))
		fail_msg("'%s' accepted", val);
	assert_null(strchr(err, '\n'));
	if (!strstr(err, what))
		fail_msg("'%s': message '%s' lacks '%s'", val, err, what);
}

static void test_forms(void **state)
{
	/* A root device reconnects for ever unless told otherwise. */
	expect_args("netdisk://10.0.2.100/root",
		    "attach --reconnect-timeout forever netdisk://10.0.2.100/root");
	expect_args("netdisk://server:9000/boot,ro",
		    "attach --read-only --reconnect-timeout forever netdisk://server:9000/boot");
	expect_args("netdisk://[fe80::1]/x,identity=lab-01,cache=64M,connections=2",
		    "attach --identity lab-01 --cache-size 64M --connections 2 --reconnect-timeout forever netdisk://[fe80::1]/x");
	expect_args("netdisk://s/x,reconnect-timeout=30",
		    "attach --reconnect-timeout 30 netdisk://s/x");
	expect_args("netdisk://s/x,reconnect-timeout=0,cache=0",
		    "attach --reconnect-timeout 0 --cache-size 0 netdisk://s/x");
	expect_args("netdisk://s", "attach --reconnect-timeout forever netdisk://s");
}

static void test_key_file(void **state)
{
	struct nd_bootarg b;
	char err[256];

	assert_int_equal(nd_bootarg_parse("netdisk://s/x", &b, err, sizeof(err)), 0);
	assert_null(b.key_file);
	assert_int_equal(nd_bootarg_parse("netdisk://s/x,key-file=/media/k.key",
					  &b, err, sizeof(err)), 0);
	assert_string_equal(b.key_file, "/media/k.key");
	/* Not an attach argument: the caller adds it. */
	assert_int_equal(b.argc, 4);
}

static void test_refused(void **state)
{
	char longval[1100];

	expect_bad("", "not a netdisk://");
	expect_bad("/dev/sda1", "not a netdisk://");
	expect_bad("nbd://s/x", "not a netdisk://");
	expect_bad("netdisk://", "");
	expect_bad("netdisk://s:0/x", "");
	expect_bad("netdisk://s/x,", "empty option");
	expect_bad("netdisk://s/x,,ro", "empty option");
	expect_bad("netdisk://s/x,frob", "unknown option 'frob'");
	expect_bad("netdisk://s/x,ro=1", "takes no value");
	expect_bad("netdisk://s/x,ro,ro", "given twice");
	expect_bad("netdisk://s/x,identity", "needs a value");
	expect_bad("netdisk://s/x,identity=", "needs a value");
	expect_bad("netdisk://s/x,identity=a/b", "invalid identity");
	expect_bad("netdisk://s/x,identity=a,identity=b", "given twice");
	expect_bad("netdisk://s/x,cache=lots", "invalid cache");
	expect_bad("netdisk://s/x,cache=1k", "invalid cache");
	expect_bad("netdisk://s/x,cache=100", "invalid cache");
	expect_bad("netdisk://s/x,cache=64MB", "invalid cache");
	expect_bad("netdisk://s/x,cache=-1", "invalid cache");
	expect_bad("netdisk://s/x,connections=0", "invalid connections");
	expect_bad("netdisk://s/x,connections=17", "invalid connections");
	expect_bad("netdisk://s/x,connections=+2", "invalid connections");
	expect_bad("netdisk://s/x,connections=99999999999", "invalid connections");
	expect_bad("netdisk://s/x,reconnect-timeout=86401", "invalid reconnect-timeout");
	expect_bad("netdisk://s/x,reconnect-timeout=never", "invalid reconnect-timeout");
	expect_bad("netdisk://s/x,key-file=boot.key", "absolute path");
	memset(longval, 'a', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	memcpy(longval, "netdisk://s/x,", 14);
	expect_bad(longval, "longer than");
}

struct seen {
	char vals[8][128];
	int n;
	int stop_at;
};

static int record(const char *val, void *p)
{
	struct seen *s = p;

	snprintf(s->vals[s->n], sizeof(s->vals[0]), "%s", val);
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

static void test_cmdline(void **state)
{
	struct seen s = { .stop_at = 0 };

	assert_int_equal(nd_bootarg_each("BOOT_IMAGE=/vmlinuz ip=dhcp netdisk=netdisk://a/r,ro root=/dev/netdisk0p1\tnetdisk=\"netdisk://b/d,identity=x\" xnetdisk=no quiet netdisk=\n",
					 record, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.vals[0], "netdisk://a/r,ro");
	assert_string_equal(s.vals[1], "netdisk://b/d,identity=x");
	assert_string_equal(s.vals[2], "");

	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(nd_bootarg_each("netdisk=1 netdisk=2", record, &s), 7);
	assert_int_equal(s.n, 1);

	memset(&s, 0, sizeof(s));
	assert_int_equal(nd_bootarg_each("", record, &s), 0);
	assert_int_equal(nd_bootarg_each("   \n", record, &s), 0);
	assert_int_equal(nd_bootarg_each("netdisk", record, &s), 0);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_cmdline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
