// SPDX-License-Identifier: MIT
/* netdisk= kernel command line parameters (bootarg.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootarg.h"
#include "url.h"

/* Largest --reconnect-timeout attach takes in seconds (kernel's limit). */
#define BOOT_RECONNECT_MAX	86400

static int bad(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

/* Copies s into b->buf; the buffer holds every word of one value. */
static char *keep(struct nd_bootarg *b, size_t *used, const char *s)
{
	size_t len = strlen(s);
	char *p = b->buf + *used;

	memcpy(p, s, len + 1);
	*used += len + 1;
	return p;
}

/* Decimal digits only, in [min, max]. */
static bool uint_in(const char *s, unsigned long min, unsigned long max)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)s[0]) || strlen(s) > 10)
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	return !*end && !errno && v >= min && v <= max;
}

/* SIZE as attach's --cache-size takes it: digits, one k/m/g/t suffix. */
static bool size_ok(const char *s)
{
	static const char units[] = "kmgt";
	size_t n = strspn(s, "0123456789");
	unsigned long long v;
	const char *u;

	if (!n || n > 15)
		return false;
	v = strtoull(s, NULL, 10);
	if (s[n]) {
		u = strchr(units, tolower((unsigned char)s[n]));
		if (!u || s[n + 1] ||
		    __builtin_mul_overflow(v, 1ull << (10 * (u - units + 1)), &v))
			return false;
	}
	return !v || v >= 4096;
}

static int add(struct nd_bootarg *b, size_t *used, const char *opt,
	       const char *val)
{
	b->argv[b->argc++] = keep(b, used, opt);
	if (val)
		b->argv[b->argc++] = keep(b, used, val);
	return 0;
}

/* One OPTION[=VALUE] word; seen: bit per option, to refuse repeats. */
static int parse_option(struct nd_bootarg *b, size_t *used, char *tok,
			unsigned int *seen, char *err, size_t errlen)
{
	static const char *const names[] = {
		"identity", "ro", "cache", "connections", "reconnect-timeout",
		"key-file",
	};
	char *val = strchr(tok, '=');
	unsigned int i;

	if (val)
		*val++ = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], tok))
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return bad(err, errlen, "unknown option '%s' (identity=, ro, cache=, connections=, reconnect-timeout=, key-file=)",
			   tok);
	if (*seen & (1u << i))
		return bad(err, errlen, "option '%s' given twice", tok);
	*seen |= 1u << i;
	if (i == 1) {
		if (val)
			return bad(err, errlen, "option '%s' takes no value", tok);
		return add(b, used, "--read-only", NULL);
	}
	if (!val || !*val)
		return bad(err, errlen, "option '%s' needs a value", tok);
	switch (i) {
	case 0:
		if (!nd_name_valid((const uint8_t *)val, strlen(val)))
			return bad(err, errlen, "invalid identity '%s' (1-64 of [A-Za-z0-9._-])",
				   val);
		return add(b, used, "--identity", val);
	case 2:
		if (!size_ok(val))
			return bad(err, errlen, "invalid cache '%s' (bytes with k, m, g, t suffix; 0 or at least 4k)",
				   val);
		return add(b, used, "--cache-size", val);
	case 3:
		if (!uint_in(val, 1, 16))
			return bad(err, errlen, "invalid connections '%s' (1..16)",
				   val);
		return add(b, used, "--connections", val);
	case 4:
		if (strcmp(val, "forever") && !uint_in(val, 0, BOOT_RECONNECT_MAX))
			return bad(err, errlen, "invalid reconnect-timeout '%s' (seconds, 0..86400, or forever)",
				   val);
		return add(b, used, "--reconnect-timeout", val);
	default:
		if (val[0] != '/')
			return bad(err, errlen, "invalid key-file '%s' (an absolute path)",
				   val);
		b->key_file = keep(b, used, val);
		return 0;
	}
}

int nd_bootarg_parse(const char *val, struct nd_bootarg *b, char *err,
		     size_t errlen)
{
	char copy[ND_BOOTARG_MAX + 1], uerr[160], *tok;
	unsigned int seen = 0;
	struct nd_url u;
	size_t used = 0;

	memset(b, 0, sizeof(*b));
	if (strlen(val) > ND_BOOTARG_MAX)
		return bad(err, errlen, "value longer than %s bytes", "1024");
	memcpy(copy, val, strlen(val) + 1);
	tok = strchr(copy, ',');
	if (tok)
		*tok++ = '\0';
	if (!nd_url_is_url(copy))
		return bad(err, errlen, "'%s' is not a netdisk://HOST[:PORT]/EXPORT URL",
			   copy);
	if (nd_url_parse(copy, &u, uerr, sizeof(uerr)))
		return bad(err, errlen, "%s", uerr);
	b->argv[b->argc++] = keep(b, &used, "attach");
	if (tok) {
		/* Empty words (",,", a trailing ",") are typos: refused. */
		char *p = tok;

		for (;;) {
			char *comma = strchr(p, ',');

			if (comma)
				*comma = '\0';
			if (!*p)
				return bad(err, errlen, "empty option%s", "");
			if (parse_option(b, &used, p, &seen, err, errlen))
				return -1;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	if (!(seen & (1u << 4)))
		add(b, &used, "--reconnect-timeout", "forever");
	b->url = b->argv[b->argc++] = keep(b, &used, copy);
	b->argv[b->argc] = NULL;
	return 0;
}

int nd_bootarg_each(const char *cmdline,
		    int (*fn)(const char *val, void *ctx), void *ctx)
{
	char word[ND_BOOTARG_MAX + sizeof(ND_BOOTARG_PARAM) + 1];
	const char *p = cmdline;
	size_t n;
	bool quoted;
	int rc;

	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			return 0;
		n = 0;
		quoted = false;
		for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
			if (*p == '"') {
				quoted = !quoted;
				continue;
			}
			/* Overlong: kept cut, so the parser says "longer than". */
			if (n < sizeof(word) - 1)
				word[n++] = *p;
		}
		word[n] = '\0';
		if (strncmp(word, ND_BOOTARG_PARAM, strlen(ND_BOOTARG_PARAM)))
			continue;
		rc = fn(word + strlen(ND_BOOTARG_PARAM), ctx);
		if (rc)
			return rc;
	}
}
