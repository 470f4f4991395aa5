// SPDX-License-Identifier: MIT
/*
 * The list-exports answer (docs/PROTOCOL.md "Export list"): after the
 * client proved its key, the ExportList of exactly the exports its
 * identity may use, in name order (the configuration's), each with the
 * flags a read-write session would get and ND_LIST_BUSY while a writer
 * session holds it (on a copy-on-write export: while the identity's own
 * overlay has a session).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * Flags of the entry for x as identity would get it; sess_lock held (its
 * writer). A cow export is read-write to everyone, busy for an identity
 * whose overlay has a session (or an overlay command at work).
 */
static uint32_t entry_flags_locked(struct nd_exp *x, const char *identity)
{
	uint32_t f = ND_EXP_FLUSH;

	if (x->cow_dir[0])
		return f | ND_EXP_FUA | ND_EXP_TRIM | ND_EXP_WRITE_ZEROES |
		       (nd_exp_cow_busy_locked(x, identity) ? ND_LIST_BUSY : 0);
	if (x->e.read_only)
		f |= ND_EXP_READ_ONLY;
	else
		f |= x->e.caps & (ND_EXP_FUA | ND_EXP_TRIM |
				  ND_EXP_WRITE_ZEROES);
	if (x->e.writer)
		f |= ND_LIST_BUSY;
	return f;
}

uint8_t *nd_list_build(struct nd_server *s, const char *identity,
		       size_t *len)
{
	const struct nd_config *cfg = &s->cfg;
	uint8_t *buf = malloc(ND_LIST_MAX_LEN);
	size_t o = ND_LIST_HDR_LEN;
	uint32_t n = 0;

	if (!buf)
		return NULL;
	pthread_mutex_lock(&s->sess_lock);
	for (int i = 0; i < cfg->nexports && n < ND_LIST_MAX; i++) {
		struct nd_exp *x = s->exps[i];
		struct nd_list_entry e = { 0 };

		if (!x->open || !nd_config_allows(&cfg->exports[i], identity))
			continue;
		e.name_len = (uint8_t)strlen(x->e.name);
		memcpy(e.name, x->e.name, e.name_len);
		e.flags = entry_flags_locked(x, identity);
		e.size = x->e.size;
		e.block_size = x->e.block_size;
		o += nd_list_entry_encode(buf + o, &e);
		n++;
	}
	pthread_mutex_unlock(&s->sess_lock);
	nd_list_hdr_encode(buf, n);
	*len = o;
	return buf;
}
