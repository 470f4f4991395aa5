// SPDX-License-Identifier: MIT
/*
 * nd_list_parse (lib/list.c): a whole ExportList is taken only if its
 * count matches its length exactly, every entry is valid and the names are
 * strictly ascending in byte order; each refusal says what was wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client.h"

struct list {
	uint8_t b[ND_LIST_MAX_LEN + 64];
	size_t len;
	uint32_t n;
};

static void start(struct list *l)
{
	l->len = ND_LIST_HDR_LEN;
	l->n = 0;
	nd_list_hdr_encode(l->b, 0);
}

static void add(struct list *l, const char *name, uint32_t flags,
		uint64_t size, uint32_t bs)
{
	struct nd_list_entry e = {
		.name_len = (uint8_t)strlen(name), .flags = flags,
		.size = size, .block_size = bs,
	};

	memcpy(e.name, name, e.name_len);
	l->len += nd_list_entry_encode(l->b + l->len, &e);
	nd_list_hdr_encode(l->b, ++l->n);
}

static struct nd_list_entry out[ND_LIST_MAX];
static char err[200];

/* Parses l; on failure err must contain want. */
static int parse(const struct list *l, const char *want)
{
	size_t count = 99;
	int rc;

	err[0] = '\0';
	rc = nd_list_parse(l->b, l->len, out, &count, err, sizeof(err));
	if (rc) {
		assert_int_equal(count, 0);
		if (!strstr(err, want))
			fail_msg("error '%s' lacks '%s'", err, want);
		return -1;
	}
	assert_int_equal(count, l->n);
	return 0;
}

static void test_good(void **state)
{
	struct list l;

	start(&l);
	assert_int_equal(parse(&l, ""), 0);	/* no exports at all */
	add(&l, "A", ND_EXP_FLUSH, 512, 512);
	/* Byte order: a prefix first, '.' (0x2e) before 'b'. */
	add(&l, "a", ND_EXP_READ_ONLY | ND_EXP_FLUSH, 1 << 20, 4096);
	add(&l, "a.b", ND_EXP_FLUSH | ND_LIST_BUSY, 1 << 20, 1024);
	add(&l, "ab", ND_LIST_FLAGS_KNOWN, ND_EXPORT_SIZE_LIMIT - 4096, 4096);
	assert_int_equal(parse(&l, ""), 0);
	assert_int_equal(out[1].name_len, 1);
	assert_memory_equal(out[2].name, "a.b", 3);
	assert_int_equal(out[2].flags, ND_EXP_FLUSH | ND_LIST_BUSY);
	assert_int_equal(out[2].block_size, 1024);
	assert_true(out[3].size == ND_EXPORT_SIZE_LIMIT - 4096);
}

static void test_count(void **state)
{
	struct list l;
	char name[8];
	int i;

	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 512, 512);
	nd_list_hdr_encode(l.b, 3);
	assert_int_equal(parse(&l, "count 3, but the list ends in entry 3"), -1);
	nd_list_hdr_encode(l.b, 1);
	assert_int_equal(parse(&l, "bytes after the last of 1 entries"), -1);
	nd_list_hdr_encode(l.b, 0);
	assert_int_equal(parse(&l, "after the last of 0 entries"), -1);
	nd_list_hdr_encode(l.b, 0xffffffffu);
	assert_int_equal(parse(&l, "over the limit"), -1);
	/* Trailing bytes, and a list cut inside its last entry. */
	nd_list_hdr_encode(l.b, 2);
	l.len++;
	assert_int_equal(parse(&l, "1 bytes after the last of 2 entries"), -1);
	l.len -= 2;
	assert_int_equal(parse(&l, "ends in entry 2"), -1);
	/* 1024 entries is the most. */
	start(&l);
	for (i = 0; i < ND_LIST_MAX; i++) {
		snprintf(name, sizeof(name), "e%04d", i);
		add(&l, name, 0, 512, 512);
	}
	assert_int_equal(parse(&l, ""), 0);
	add(&l, "zzz", 0, 512, 512);
	assert_int_equal(parse(&l, "count 1025 over the limit of 1024"), -1);
}

static void test_entries(void **state)
{
	struct list l;

	start(&l);
	add(&l, "a", 0x200, 512, 512);
	assert_int_equal(parse(&l, "entry 1: unknown flags 0x200"), -1);
	start(&l);
	add(&l, "a", ND_EXP_EXCLUSIVE, 512, 512);
	assert_int_equal(parse(&l, "unknown flags 0x20"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 0, 512);
	assert_int_equal(parse(&l, "entry 2: size 0 not in"), -1);
	start(&l);
	add(&l, "a", 0, ND_EXPORT_SIZE_LIMIT, 512);
	assert_int_equal(parse(&l, "size 9223372036854775808 not in"), -1);
	start(&l);
	add(&l, "a", 0, 4096 + 512, 4096);
	assert_int_equal(parse(&l, "not a multiple of the block size 4096"), -1);
	start(&l);
	add(&l, "a", 0, 4096, 3);
	assert_int_equal(parse(&l, "block size 3 not"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b/c", 0, 512, 512);
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	l.b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + 1] = 0;	/* its length */
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	l.b[ND_LIST_HDR_LEN + ND_LIST_ENTRY_FIXED + 1] = 200;
	assert_int_equal(parse(&l, "entry 2: invalid name"), -1);
	/* Not a list at all: a SessionInfo's first bytes. */
	memset(l.b, 0, 8);
	assert_int_equal(parse(&l, "not an export list"), -1);
}

static void test_order(void **state)
{
	struct list l;

	start(&l);
	add(&l, "b", 0, 512, 512);
	add(&l, "a", 0, 512, 512);
	assert_int_equal(parse(&l, "entry 2: 'a' not in name order"), -1);
	start(&l);
	add(&l, "ab", 0, 512, 512);
	add(&l, "a", 0, 512, 512);
	assert_int_equal(parse(&l, "'a' not in name order"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "B", 0, 512, 512);	/* 'B' (0x42) sorts before 'a' */
	assert_int_equal(parse(&l, "'B' not in name order"), -1);
	start(&l);
	add(&l, "a", 0, 512, 512);
	add(&l, "b", 0, 512, 512);
	add(&l, "b", ND_EXP_READ_ONLY, 1024, 512);
	assert_int_equal(parse(&l, "entry 3: 'b' listed twice"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_count),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
