// SPDX-License-Identifier: MIT
/*
 * nd_list_parse (lib/list.c) on arbitrary ExportList bodies, copied into a
 * buffer of exactly their size so ASan sees any read past it. What it
 * accepts must re-encode to exactly the input, with valid entries in
 * strictly ascending byte order; what it refuses must report no entries
 * and say why.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nd_list_entry out[ND_LIST_MAX];
static uint8_t re[ND_LIST_MAX_LEN];

/* a strictly before b in byte order (a prefix first). */
static bool name_before(const struct nd_list_entry *a,
			const struct nd_list_entry *b)
{
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);

	return c < 0 || (c == 0 && a->name_len < b->name_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = malloc(size ? size : 1);
	size_t count = 12345, o = ND_LIST_HDR_LEN, i;
	char err[200];

	if (!b)
		fz_fail("out of memory");
	memcpy(b, data, size);
	err[0] = '\0';
	if (nd_list_parse(b, size, out, &count, err, sizeof(err))) {
		if (count != 0 || !err[0])
			fz_fail("refused with count %zu, reason '%s'", count, err);
		free(b);
		return 0;
	}
	if (count > ND_LIST_MAX || size > ND_LIST_MAX_LEN)
		fz_fail("accepted %zu entries in %zu bytes", count, size);
	nd_list_hdr_encode(re, (uint32_t)count);
	for (i = 0; i < count; i++) {
		const struct nd_list_entry *e = &out[i];

		if (!nd_name_valid(e->name, e->name_len) ||
		    (e->flags & ~ND_LIST_FLAGS_KNOWN) || !e->size ||
		    e->size >= ND_EXPORT_SIZE_LIMIT ||
		    e->size % e->block_size)
			fz_fail("entry %zu accepted out of range", i);
		if (i && !name_before(&out[i - 1], e))
			fz_fail("entry %zu not after entry %zu", i, i - 1);
		o += nd_list_entry_encode(re + o, e);
	}
	if (o != size || memcmp(re, b, size))
		fz_fail("accepted list does not re-encode to its %zu bytes", size);
	free(b);
	return 0;
}
