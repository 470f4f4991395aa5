// SPDX-License-Identifier: MIT
/*
 * netdiskd.conf: real files in a scratch directory through nd_config_load,
 * every refusal with its exact "FILE:LINE: message", the lookups, the
 * printout (which loads back to the same configuration) and the one-export
 * command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "nd_wire.h"
#include "../../server/config.h"
#include "../../server/log.h"
#include "../../server/server.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY_S "2222222222222222222222222222222222222222222222222222222222222222"

static char dir[64];
static char conf[128];

static void put_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * text with every '@' replaced by the scratch directory, in one of a few
 * static buffers (several expansions live at once).
 */
static char *expand(const char *text)
{
	static char ring[8][2048];
	static unsigned int next;
	char *out = ring[next++ % 8];
	size_t i, o = 0;

	for (i = 0; text[i]; i++) {
		assert_true(o + strlen(dir) + 1 < sizeof(ring[0]));
		if (text[i] == '@') {
			strcpy(out + o, dir);
			o += strlen(dir);
		} else {
			out[o++] = text[i];
		}
	}
	out[o] = 0;
	return out;
}

static void write_conf(const char *text)
{
	put_file("netdiskd.conf", expand(text), 0644);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/nd-config-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(conf, sizeof(conf), "%s/netdiskd.conf", dir);
	put_file("img1", "disk one", 0644);
	put_file("img2", "disk two", 0644);
	put_file("key", KEY_S "\n", 0600);
	if (mkdir(expand("@/keys"), 0700) < 0)
		return -1;
	put_file("keys/lab-01.key", KEY_A "\n", 0600);
	put_file("keys/db01.key", KEY_B "\n", 0400);
	put_file("keys/README", "not a key", 0644);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *const GOOD =
	"; a site's config\n"
	"[server]\n"
	"listen = ::1 127.0.0.1\n"
	"listen = localhost\n"
	"port = 0\n"
	"key-dir = @/keys\n"
	"key-file = @/key\n"
	"workers = 3\n"
	"grace = 7\n"
	"max-payload = 512K\n"
	"log-level = debug\n"
	"state-dir = @/state\n"
	"control = none\n"
	"\n"
	"[export zeta]\n"
	"  path = @/img2        ; indented, with a comment\n"
	"  read-only = yes\n"
	"  clients = lab-* db0[1-3]\n"
	"  clients = other\n"
	"[export alpha]\n"
	"path = @/img1\n";

static void load_ok(const char *text, struct nd_config *cfg)
{
	char err[1024] = "";

	write_conf(text);
	if (nd_config_load(conf, cfg, err, sizeof(err)) < 0)
		fail_msg("nd_config_load: %s", err);
}

static void test_good(void **state)
{
	struct nd_config cfg;
	const struct nd_cfg_export *e;
	uint8_t a[ND_KEY_LEN], s[ND_KEY_LEN];

	load_ok(GOOD, &cfg);
	assert_string_equal(cfg.file, conf);
	assert_int_equal(cfg.nlisten, 3);
	assert_string_equal(cfg.listen[0], "::1");
	assert_string_equal(cfg.listen[2], "localhost");
	assert_int_equal(cfg.port, 0);
	assert_int_equal(cfg.workers, 3);
	assert_int_equal(cfg.grace_s, 7);
	assert_int_equal(cfg.max_payload, 512 * 1024);
	assert_int_equal(cfg.log_level, ND_LOG_DEBUG);
	assert_string_equal(cfg.control, "");
	assert_true(cfg.have_shared_key);

	/* Sorted by name. */
	assert_int_equal(cfg.nexports, 2);
	assert_string_equal(cfg.exports[0].name, "alpha");
	assert_string_equal(cfg.exports[1].name, "zeta");
	assert_int_equal(cfg.exports[1].line, 15);
	assert_int_equal(cfg.nids, 2);
	assert_string_equal(cfg.ids[0].name, "db01");
	assert_string_equal(cfg.ids[1].name, "lab-01");

	e = nd_config_export(&cfg, "zeta");
	assert_non_null(e);
	assert_true(e->read_only);
	assert_int_equal(e->nclients, 3);
	assert_true(nd_config_allows(e, "lab-01"));
	assert_true(nd_config_allows(e, "lab-99"));
	assert_true(nd_config_allows(e, "db02"));
	assert_true(nd_config_allows(e, "other"));
	assert_false(nd_config_allows(e, "db04"));
	assert_false(nd_config_allows(e, "lab"));
	assert_false(nd_config_allows(e, "xlab-01"));
	e = nd_config_export(&cfg, "alpha");
	assert_non_null(e);
	assert_false(e->read_only);
	assert_int_equal(e->nclients, 0);
	assert_true(nd_config_allows(e, "anybody"));
	assert_null(nd_config_export(&cfg, "beta"));
	assert_null(nd_config_export(&cfg, "zet"));

	assert_int_equal(nd_key_parse(KEY_A, 64, a), 0);
	assert_int_equal(nd_key_parse(KEY_S, 64, s), 0);
	assert_memory_equal(nd_config_key(&cfg, "lab-01"), a, ND_KEY_LEN);
	assert_memory_equal(nd_config_key(&cfg, "stranger"), s, ND_KEY_LEN);
	nd_config_free(&cfg);
	assert_int_equal(cfg.nexports, 0);
	assert_null(cfg.exports);
}

static void test_defaults(void **state)
{
	struct nd_config cfg;

	load_ok("[export a]\npath = @/img1\n[server]\nkey-dir = @/keys\n",
		&cfg);
	assert_int_equal(cfg.nlisten, 0);
	assert_int_equal(cfg.port, ND_DEFAULT_PORT);
	assert_int_equal(cfg.workers, 0);
	assert_int_equal(cfg.grace_s, ND_SRV_DEFAULT_GRACE);
	assert_int_equal(cfg.max_payload, ND_DEFAULT_PAYLOAD);
	assert_int_equal(cfg.log_level, ND_LOG_INFO);
	assert_string_equal(cfg.state_dir, ND_CFG_DEFAULT_STATE);
	assert_string_equal(cfg.control, ND_CFG_DEFAULT_CONTROL);
	assert_false(cfg.have_shared_key);
	/* No shared key: only identities with a file of their own. */
	assert_non_null(nd_config_key(&cfg, "db01"));
	assert_null(nd_config_key(&cfg, "stranger"));
	assert_null(nd_config_key(&cfg, ""));
	nd_config_free(&cfg);
}

/* Byte-order mark, CRLF, '#' comments, "name: value", a missing newline. */
static void test_syntax_variants(void **state)
{
	struct nd_config cfg;

	load_ok("\xef\xbb\xbf# hash comment\r\n[server]\r\nkey-file: @/key\r\n"
		"\t[export a]\n\tpath=@/img1\n\tread-only=On", &cfg);
	assert_int_equal(cfg.nexports, 1);
	assert_true(cfg.exports[0].read_only);
	assert_string_equal(cfg.exports[0].path, expand("@/img1"));
	nd_config_free(&cfg);
}

/* The printout loads back to itself, and never holds a key. */
/* Printed lines stay within libinih's 198 characters, so they load again. */
static void test_print_long_lines(void **state)
{
	char name[256], text[1024], pat[61], big[190], *out = NULL;
	char *out2 = NULL;
	char err[1024], *line;
	struct nd_config cfg, again;
	size_t n = 0, n2 = 0, len;
	FILE *f;

	/* A path that fits "path=P" but not "path = P". */
	len = 193 - strlen(dir) - 1;
	assert_true(len < sizeof(name));
	memset(name, 'p', len);
	name[len] = 0;
	put_file(name, "", 0644);
	assert_int_equal(truncate(expand(strcat(strcpy(text, "@/"), name)),
				  1 << 20), 0);
	memset(pat, 'q', 60);
	pat[60] = 0;
	/* And a pattern that fits "clients=P" only. */
	memset(big, 'r', 189);
	big[189] = 0;
	snprintf(text, sizeof(text),
		 "[server]\nkey-file = @/key\n[export a]\npath=@/%s\n"
		 "clients = %s1 %s2\nclients = %s3 %s4\nclients=%s\n",
		 name, pat, pat, pat, pat, big);
	load_ok(text, &cfg);
	assert_int_equal(cfg.exports[0].nclients, 5);
	f = open_memstream(&out, &n);
	nd_config_print(f, &cfg);
	fclose(f);
	for (line = out; *line; line += len + 1) {
		len = strcspn(line, "\n");
		assert_true(len <= 198);
		if (!line[len])
			break;
	}
	put_file("netdiskd.conf", out, 0644);
	if (nd_config_load(conf, &again, err, sizeof(err)) < 0)
		fail_msg("printout does not load: %s\n%s", err, out);
	assert_int_equal(again.exports[0].nclients, 5);
	assert_string_equal(again.exports[0].path, cfg.exports[0].path);
	f = open_memstream(&out2, &n2);
	nd_config_print(f, &again);
	fclose(f);
	assert_string_equal(out, out2);
	nd_config_free(&again);
	nd_config_free(&cfg);
	free(out);
	free(out2);
}

static void test_print_round_trip(void **state)
{
	struct nd_config cfg, again;
	char *out = NULL, *out2 = NULL, err[1024];
	size_t n = 0, n2 = 0;
	FILE *f;

	load_ok(GOOD, &cfg);
	f = open_memstream(&out, &n);
	nd_config_print(f, &cfg);
	fclose(f);
	assert_non_null(strstr(out, "[export alpha]\npath = "));
	assert_non_null(strstr(out, "read-only = yes\n"));
	assert_non_null(strstr(out, "clients = lab-* db0[1-3] other\n"));
	assert_non_null(strstr(out, "max-payload = 512K\n"));
	assert_non_null(strstr(out, "workers = 3\n"));
	assert_non_null(strstr(out, "control = none\n"));
	assert_non_null(strstr(out, "<2 identities>"));
	assert_null(strstr(out, KEY_A));
	assert_null(strstr(out, KEY_B));
	assert_null(strstr(out, KEY_S));
	assert_null(strcasestr(out, "1111111111"));

	put_file("netdiskd.conf", out, 0644);
	if (nd_config_load(conf, &again, err, sizeof(err)) < 0)
		fail_msg("printout does not load: %s\n%s", err, out);
	f = open_memstream(&out2, &n2);
	nd_config_print(f, &again);
	fclose(f);
	assert_string_equal(out, out2);
	assert_int_equal(again.nids, 2);
	assert_memory_equal(again.ids[1].key, cfg.ids[1].key, ND_KEY_LEN);
	nd_config_free(&again);
	nd_config_free(&cfg);
	free(out);
	free(out2);

	/* Defaults are printed too. */
	load_ok("[export a]\npath = @/img1\n[server]\nkey-file = @/key\n", &cfg);
	f = open_memstream(&out, &n);
	nd_config_print(f, &cfg);
	fclose(f);
	assert_non_null(strstr(out, "port = 26547\n"));
	assert_non_null(strstr(out, "workers = auto\n"));
	assert_non_null(strstr(out, "grace = 30\n"));
	assert_non_null(strstr(out, "max-payload = 1M\n"));
	assert_non_null(strstr(out, "log-level = info\n"));
	assert_non_null(strstr(out, "state-dir = /var/lib/netdisk\n"));
	assert_non_null(strstr(out, "control = /run/netdisk/netdiskd.sock\n"));
	assert_non_null(strstr(out, "read-only = no\n"));
	assert_non_null(strstr(out, "; clients: every identity with a key\n"));
	free(out);
	nd_config_free(&cfg);
}

/*
 * Loads text and expects the refusal "<conf>:<msg>" exactly (msg holds
 * "LINE: message" with '@' for the scratch directory); cfg is left zeroed.
 */
static void refused(const char *text, const char *msg)
{
	struct nd_config cfg, zero;
	char err[1024] = "", want[1024];
	char *m = expand(msg);

	write_conf(text);
	memset(&cfg, 0x5a, sizeof(cfg));
	memset(&zero, 0, sizeof(zero));
	if (nd_config_load(conf, &cfg, err, sizeof(err)) == 0)
		fail_msg("loaded, expected: %s", m);
	snprintf(want, sizeof(want), "%s:%s", conf, m);
	if (strcmp(err, want))
		fail_msg("got      '%s'\nexpected '%s'", err, want);
	assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

#define SRV	"[server]\nkey-file = @/key\n"		/* lines 1-2 */
#define EXP	"[export e]\npath = @/img1\n"		/* lines 1-2 */

static void test_refuse_structure(void **state)
{
	refused(SRV "[client]\n" EXP,
		"3: unknown section [client] (want [server] or [export NAME])");
	refused(SRV "[exports a]\n",
		"3: unknown section [exports a] (want [server] or [export NAME])");
	refused(SRV "[export]\n",
		"3: unknown section [export] (want [server] or [export NAME])");
	refused(SRV "[export a b]\n",
		"3: invalid export name 'a b' (1-64 of [A-Za-z0-9._-])");
	refused(SRV "[export a/b]\n",
		"3: invalid export name 'a/b' (1-64 of [A-Za-z0-9._-])");
	refused(SRV "[export "
		"x2345678901234567890123456789012345678901234567890123456789012345]\n",
		"3: invalid export name "
		"'x2345678901234567890123456789012345678901234567890123456789012345'"
		" (1-64 of [A-Za-z0-9._-])");
	refused(SRV "[export e\n", "3: section header without ']'");
	refused(SRV "[export e] x\n", "3: text after the section header: 'x'");
	refused("port = 1\n" SRV EXP,
		"1: 'port' outside a section (put it under [server] or [export NAME])");
	refused(SRV "colour = blue\n" EXP,
		"3: unknown key 'colour' in [server]");
	refused(SRV EXP "size = 1G\n", "5: unknown key 'size' in [export e]");
	refused(SRV EXP "path\n", "5: expected key = value or [section]");
	refused(SRV EXP "path", "5: expected key = value or [section]");
	refused(SRV "\n\n; fine\nnot a key line\n" EXP,
		"6: expected key = value or [section]");
	refused(SRV "port = 1\n" "port = 2\n" EXP,
		"4: 'port' set twice (first on line 3)");
	refused(SRV EXP "read-only = yes\nread-only = no\n",
		"6: 'read-only' set twice (first on line 5)");
	refused(SRV EXP "path = @/img1\n",
		"5: 'path' set twice (first on line 4)");
	refused(SRV EXP "[server]\n",
		"5: [server] given twice (first on line 1)");
	refused(SRV EXP "\n[export e]\npath = @/img2\n",
		"6: export 'e' defined twice (first on line 3)");
	refused(SRV "[export a]\npath = @/img1\n[export b]\npath = @/img1\n",
		"6: export 'b': @/img1 is already export 'a' (line 4)");
	refused(SRV, "0: no export: add an [export NAME] section");
	refused(EXP, "0: no keys: set key-dir or key-file in [server]");
	refused(EXP "[server]\nport = 7\n",
		"0: no keys: set key-dir or key-file in [server]");
}

static void test_refuse_values(void **state)
{
	refused(SRV "port = 65536\n" EXP, "3: invalid port '65536' (0..65535)");
	refused(SRV "port = -1\n" EXP, "3: invalid port '-1' (0..65535)");
	refused(SRV "port = 80x\n" EXP, "3: invalid port '80x' (0..65535)");
	refused(SRV "port =\n" EXP, "3: invalid port '' (0..65535)");
	refused(SRV "workers = 0\n" EXP,
		"3: invalid workers '0' (auto or 1..256)");
	refused(SRV "workers = 257\n" EXP,
		"3: invalid workers '257' (auto or 1..256)");
	refused(SRV "grace = 86401\n" EXP,
		"3: invalid grace '86401' (0..86400 seconds)");
	refused(SRV "max-payload = 1000\n" EXP,
		"3: invalid max-payload '1000' (multiple of 4096, 4096..16M)");
	refused(SRV "max-payload = 17M\n" EXP,
		"3: invalid max-payload '17M' (multiple of 4096, 4096..16M)");
	refused(SRV "max-payload = 99999999999999999999M\n" EXP,
		"3: invalid max-payload '99999999999999999999M' (multiple of 4096, 4096..16M)");
	refused(SRV "log-level = loud\n" EXP,
		"3: invalid log-level 'loud' (error, warn, info, debug)");
	refused(SRV "listen = :: nohost!\n" EXP,
		"3: invalid listen address 'nohost!'");
	refused(SRV "listen = ::1\nlisten = ::1\n" EXP,
		"4: listen address '::1' given twice");
	refused(SRV "listen =\n" EXP,
		"3: listen: no address (leave it out to listen on all)");
	refused(SRV "listen = a b c d e f g h i j k l m n o p q\n" EXP,
		"3: more than 16 listen addresses");
	refused(SRV "state-dir = var/lib\n" EXP,
		"3: state-dir must be an absolute path, not 'var/lib'");
	refused(SRV "control = /run/"
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789.sock\n"
		EXP, "3: control socket path longer than 107 characters");
	refused(SRV EXP "read-only = maybe\n",
		"5: invalid read-only 'maybe' (yes or no)");
	refused(SRV EXP "clients =\n",
		"5: clients: empty list (leave it out to allow every identity with a key)");
}

static void test_refuse_paths(void **state)
{
	refused(SRV "[export e]\nread-only = yes\n", "3: export 'e' has no path");
	refused(SRV "[export e]\n[export f]\npath = @/img1\n",
		"3: export 'e' has no path");
	refused(SRV "[export e]\npath = @/nothere\n",
		"4: export 'e': @/nothere: No such file or directory");
	refused(SRV "[export e]\npath = @/keys\n",
		"4: export 'e': @/keys is not a regular file or block device");
	refused(SRV "[export e]\npath = img1\n",
		"4: path must be an absolute path, not 'img1'");
	refused(SRV "[export e]\npath =\n",
		"4: path must be an absolute path, not ''");
	if (geteuid() != 0) {
		put_file("noread", "x", 0200);
		refused(SRV "[export e]\npath = @/noread\nread-only = yes\n",
			"4: export 'e': cannot read @/noread: Permission denied");
		put_file("ro", "x", 0400);
		refused(SRV "[export e]\npath = @/ro\n",
			"4: export 'e': cannot read and write @/ro: Permission denied");
	}
}

static void test_refuse_patterns(void **state)
{
	refused(SRV EXP "clients = lab-[0-9\n",
		"5: bad pattern 'lab-[0-9' in clients: '[' without ']'");
	refused(SRV EXP "clients = a lab-[]\n",
		"5: bad pattern 'lab-[]' in clients: empty [...]");
	refused(SRV EXP "clients = lab/01\n",
		"5: bad pattern 'lab/01' in clients: only [A-Za-z0-9._-] and * ? [...] are allowed");
	refused(SRV EXP "clients = lab\\*\n",
		"5: bad pattern 'lab\\*' in clients: only [A-Za-z0-9._-] and * ? [...] are allowed");
	refused(SRV EXP "clients = [a*]\n",
		"5: bad pattern '[a*]' in clients: only [A-Za-z0-9._-] are allowed in [...]");
}

static void test_refuse_keys(void **state)
{
	refused("[server]\nkey-file = @/nokey\n" EXP,
		"2: key file @/nokey: No such file or directory");
	refused("[server]\nkey-file = key\n" EXP,
		"2: key-file must be an absolute path, not 'key'");
	put_file("key644", KEY_S, 0644);
	refused("[server]\nkey-file = @/key644\n" EXP,
		"2: key file @/key644 has mode 0644 (want 0600 or 0400)");
	put_file("key700", KEY_S, 0700);
	refused("[server]\nkey-file = @/key700\n" EXP,
		"2: key file @/key700 has mode 0700 (want 0600 or 0400)");
	put_file("badkey", "0011", 0600);
	refused("[server]\nkey-file = @/badkey\n" EXP,
		"2: key file @/badkey is not a netdisk key (want 64 hex characters, see `netdisk keygen`)");
	refused("[server]\nkey-file = @/keys\n" EXP,
		"2: key file @/keys is not a regular file");
	refused("[server]\nkey-dir = @/nodir\n" EXP,
		"2: key-dir @/nodir: No such file or directory");

	assert_int_equal(mkdir(expand("@/empty"), 0700), 0);
	refused("[server]\nkey-dir = @/empty\n" EXP,
		"2: key-dir @/empty has no IDENTITY.key file and no key-file is set: no client could connect");

	assert_int_equal(mkdir(expand("@/k1"), 0700), 0);
	put_file("k1/ok.key", KEY_A, 0600);
	put_file("k1/lab 01.key", KEY_A, 0600);
	refused("\n[server]\nkey-dir = @/k1\n" EXP,
		"3: key-dir @/k1: lab 01.key: not IDENTITY.key (1-64 of [A-Za-z0-9._-])");
	put_file("k1/lab 01.key", "", 0600);
	unlink(expand("@/k1/lab 01.key"));
	put_file("k1/lab-02.key", KEY_A, 0640);
	refused("[server]\nkey-dir = @/k1\n" EXP,
		"2: key file @/k1/lab-02.key has mode 0640 (want 0600 or 0400)");
	put_file("k1/lab-02.key", "nonsense", 0600);
	refused("[server]\nkey-dir = @/k1\n" EXP,
		"2: key file @/k1/lab-02.key is not a netdisk key (want 64 hex characters, see `netdisk keygen`)");

	/* Somebody else's key file: only root can hand one over to test. */
	if (geteuid() == 0) {
		put_file("k1/lab-02.key", KEY_A, 0600);
		assert_int_equal(chown(expand("@/k1/lab-02.key"), 65534, 65534), 0);
		refused("[server]\nkey-dir = @/k1\n" EXP,
			"2: key file @/k1/lab-02.key is owned by uid 65534 (want root or uid 0)");
	}
}

static void test_refuse_file(void **state)
{
	char line[300], text[400];
	struct nd_config cfg;
	char err[512];
	int fd;

	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = 0;
	snprintf(text, sizeof(text), SRV "; %s\n", line);
	refused(text, "3: line longer than 198 characters");

	write_conf("");
	fd = open(conf, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[server]\nport = 1\0\n", 19), 19);
	close(fd);
	assert_int_equal(nd_config_load(conf, &cfg, err, sizeof(err)), -1);
	snprintf(text, sizeof(text), "%s:2: NUL byte in the line", conf);
	assert_string_equal(err, text);

	assert_int_equal(nd_config_load(expand("@/missing.conf"), &cfg, err,
					sizeof(err)), -1);
	snprintf(text, sizeof(text),
		 "%s/missing.conf:0: cannot open: No such file or directory",
		 dir);
	assert_string_equal(err, text);

	/* What could never end or is no config file. */
	assert_int_equal(nd_config_load(expand("@/keys"), &cfg, err,
					sizeof(err)), -1);
	snprintf(text, sizeof(text), "%s/keys:0: not a regular file", dir);
	assert_string_equal(err, text);
	assert_int_equal(mkfifo(expand("@/fifo"), 0600), 0);
	fd = open(expand("@/fifo"), O_RDWR);	/* so the open does not block */
	assert_true(fd >= 0);
	assert_int_equal(nd_config_load(expand("@/fifo"), &cfg, err,
					sizeof(err)), -1);
	close(fd);
	snprintf(text, sizeof(text), "%s/fifo:0: not a regular file", dir);
	assert_string_equal(err, text);
	assert_int_equal(truncate(conf, (16 << 20) + 1), 0);
	assert_int_equal(nd_config_load(conf, &cfg, err, sizeof(err)), -1);
	snprintf(text, sizeof(text), "%s:0: larger than 16 MiB", conf);
	assert_string_equal(err, text);
}

/* Writes lines without end into a pipe until the reader closes it. */

/*
 * A line that never ends is refused after a bounded read, not read into
 * memory whole; a pipe (or /dev/zero) is refused before any read.
 */
static void test_refuse_endless_line(void **state)
{
	static char chunk[65536];
	struct nd_config cfg;
	char err[512], path[64];
	const char *file;
	int fds[2], i;
	FILE *f;

	file = expand("@/endless.conf");
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("[server]\nport = ", f);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 64; i++)	/* 4 MiB, no newline */
		assert_int_equal(fwrite(chunk, 1, sizeof(chunk), f),
				 sizeof(chunk));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(nd_config_load(file, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: line longer than 198 characters"));

	assert_int_equal(pipe(fds), 0);
	snprintf(path, sizeof(path), "/dev/fd/%d", fds[0]);
	assert_int_equal(nd_config_load(path, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	close(fds[0]);
	close(fds[1]);
}

static void test_from_args(void **state)
{
	struct nd_config_args a = {
		.file = expand("@/img1"), .key_file = expand("@/key"),
		.listen = "::1", .port = 7, .workers = 2, .grace_s = 3,
		.log_level = ND_LOG_WARN, .read_only = true,
	};
	struct nd_config cfg;
	uint8_t s[ND_KEY_LEN];
	char err[512];

	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), 0);
	assert_int_equal(nd_key_parse(KEY_S, 64, s), 0);
	assert_string_equal(cfg.file, "");
	assert_int_equal(cfg.nexports, 1);
	assert_string_equal(cfg.exports[0].name, "default");
	assert_string_equal(cfg.exports[0].path, a.file);
	assert_true(cfg.exports[0].read_only);
	assert_int_equal(cfg.nlisten, 1);
	assert_string_equal(cfg.listen[0], "::1");
	assert_int_equal(cfg.port, 7);
	assert_int_equal(cfg.max_payload, ND_DEFAULT_PAYLOAD);
	assert_string_equal(cfg.state_dir, ND_CFG_DEFAULT_STATE);
	assert_string_equal(cfg.control, "");
	/* Every identity gets the one key and every export. */
	assert_memory_equal(nd_config_key(&cfg, "default"), s, ND_KEY_LEN);
	assert_memory_equal(nd_config_key(&cfg, "anyone"), s, ND_KEY_LEN);
	assert_true(nd_config_allows(nd_config_export(&cfg, "default"),
				     "anyone"));
	nd_config_free(&cfg);

	a.export_name = "bad name";
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "invalid export name 'bad name' (1-64 of [A-Za-z0-9._-])");
	a.export_name = "img";
	a.key_file = expand("@/badkey");
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not a netdisk key"));
	a.key_file = NULL;
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "--file and --key-file are required");

	/* --cow DIR */
	a.key_file = expand("@/key");
	a.read_only = false;
	a.cow_dir = expand("@/ov/");
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.exports[0].cow_dir, expand("@/ov"));
	assert_false(cfg.exports[0].read_only);
	nd_config_free(&cfg);
	a.read_only = true;
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "--cow with --read-only: a copy-on-write export is read-write (the base is opened read-only)");
	a.read_only = false;
	a.cow_dir = "ov";
	assert_int_equal(nd_config_from_args(&a, &cfg, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "--cow needs an absolute directory path, not 'ov'");
}

/* cow = DIR: the base is only read; the overlay directory is one export's. */
static void test_cow(void **state)
{
	struct nd_config cfg;
	char *out = NULL;
	size_t n = 0;
	FILE *f;

	load_ok(SRV "[export g]\npath = @/img1\ncow = @/ov//\n"
		"[export h]\npath = @/img2\n", &cfg);
	assert_string_equal(cfg.exports[0].cow_dir, expand("@/ov"));
	assert_false(cfg.exports[0].read_only);
	assert_string_equal(cfg.exports[1].cow_dir, "");
	f = open_memstream(&out, &n);
	nd_config_print(f, &cfg);
	fclose(f);
	assert_non_null(strstr(out, expand("read-only = no\ncow = @/ov\n")));
	nd_config_free(&cfg);
	/* The printout loads again, cow and all. */
	put_file("netdiskd.conf", out, 0644);
	load_ok(out, &cfg);
	assert_string_equal(cfg.exports[0].cow_dir, expand("@/ov"));
	nd_config_free(&cfg);
	free(out);

	refused(SRV EXP "cow = ov\n",
		"5: cow must be an absolute path, not 'ov'");
	refused(SRV EXP "cow = ///\n",
		"5: cow = / : name a directory for the overlays");
	/* Found by fuzz_config: "@/vo " would print as a line inih trims. */
	refused(SRV EXP "cow = @/vo /\n",
		"5: cow '@/vo /': a directory name ending in a blank cannot be written in this file");
	refused(SRV EXP "cow = @/vo\v/\n",
		"5: cow '@/vo\v/': a directory name ending in a blank cannot be written in this file");
	refused(SRV EXP "cow = @/a\ncow = @/b\n",
		"6: 'cow' set twice (first on line 5)");
	refused(SRV EXP "cow = @/ov\nread-only = yes\n",
		"6: export 'e': read-only = yes with cow = @/ov: a copy-on-write export is read-write (each identity writes its own overlay; the base is opened read-only)");
	refused(SRV EXP "read-only = yes\ncow = @/ov\n",
		"5: export 'e': read-only = yes with cow = @/ov: a copy-on-write export is read-write (each identity writes its own overlay; the base is opened read-only)");
	refused(SRV EXP "cow = @/key\n",
		"5: export 'e': cow @/key is not a directory");
	refused(SRV EXP "cow = @/ov\n[export f]\npath = @/img2\ncow = @/ov/\n",
		"8: export 'f': cow @/ov is already the overlay directory of export 'e' (line 5)");
	/* One directory by two names (a symbolic link) is found too. */
	assert_int_equal(symlink(expand("@/keys"), expand("@/keys2")), 0);
	refused(SRV EXP "cow = @/keys\n[export f]\npath = @/img2\ncow = @/keys2\n",
		"8: export 'f': cow @/keys2 is already the overlay directory of export 'e' (line 5)");
	unlink(expand("@/keys2"));
	if (geteuid() != 0) {
		/* The base is only read: a read-only file is a fine base. */
		put_file("robase", "x", 0400);
		load_ok(SRV "[export e]\npath = @/robase\ncow = @/ov\n", &cfg);
		nd_config_free(&cfg);
		assert_int_equal(mkdir(expand("@/rodir"), 0500), 0);
		refused(SRV EXP "cow = @/rodir\n",
			"5: export 'e': cannot write in cow @/rodir: Permission denied");
	}
}

static void test_parse_num(void **state)
{
	long long v;

	assert_int_equal(nd_config_parse_num("4k", 0, 1 << 20, true, &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(nd_config_parse_num("16M", 0, 16 << 20, true, &v), 0);
	assert_int_equal(v, 16 << 20);
	assert_int_equal(nd_config_parse_num("4k", 0, 1 << 20, false, &v), -1);
	assert_int_equal(nd_config_parse_num(" 4", 0, 9, false, &v), -1);
	assert_int_equal(nd_config_parse_num("+4", 0, 9, false, &v), -1);
	assert_int_equal(nd_config_parse_num("10", 0, 9, false, &v), -1);
	assert_int_equal(nd_config_parse_num("9223372036854775807M", 0,
					     16 << 20, true, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_print_long_lines),
		cmocka_unit_test(test_refuse_structure),
		cmocka_unit_test(test_refuse_values),
		cmocka_unit_test(test_refuse_paths),
		cmocka_unit_test(test_refuse_patterns),
		cmocka_unit_test(test_refuse_file),
		cmocka_unit_test(test_refuse_endless_line),
		cmocka_unit_test(test_refuse_keys),
		cmocka_unit_test(test_from_args),
		cmocka_unit_test(test_cow),
		cmocka_unit_test(test_parse_num),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
