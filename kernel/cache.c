// SPDX-License-Identifier: GPL-2.0
/*
 * Client cache (attach --cache-size): an in-memory, write-through cache of
 * the remote disk in whole pages, bounded by the configured size.
 *
 * - An xarray maps the page index to a struct page (or to a ghost entry,
 *   an xarray value, for 2Q's A1out history). page->lru links the page on
 *   the A1in FIFO or the Am LRU, the folio's index is its index (struct
 *   page lost its own in 7.x; a page from alloc_page() is its folio),
 *   page->private
 *   says which list. Pages are never changed once inserted (an update
 *   replaces the page), so a reader holding a reference copies outside
 *   the lock. One lock (the xarray's, irq-safe: completion may run in
 *   softirq) covers the xarray, the lists, the stripes and the counts.
 * - Policy: 2Q (Johnson & Shasha). A page read or written once enters
 *   A1in (a FIFO, a quarter of the cache); evicted from there, its index
 *   is remembered in A1out (ghosts, half the cache's page count). A page
 *   inserted again while its ghost is remembered goes to Am (LRU). So a
 *   sequential scan only churns A1in and cannot flush the hot set.
 * - Races between reads and writes of the same page: every write, discard
 *   and write-zeroes marks the stripes (index mod ND_CACHE_STRIPES) it
 *   touches in flight from submission to completion and stamps them with a
 *   sequence number when it starts and ends. A read fill is accepted only
 *   if no such operation touched the page's stripe during the read (none
 *   in flight, stamp not newer than the read's start); a write's data only
 *   if no other one touched it since the write started. Cached pages are
 *   invalidated when a write is submitted and its data inserted only when
 *   the server acknowledged it.
 * - Fills copy only kernel-private bytes, never the request's bio: with
 *   O_DIRECT its pages are the caller's memory, which another thread may
 *   change at any time. A read fills from the authenticated, decrypted
 *   reply before the request completes (nd_cache_fill_read); a write from
 *   the plaintext the sender built, staged on the cmd before it is sealed
 *   (nd_cache_stage_write) and inserted when that send is acknowledged.
 *   Staged pages (on cmd->cache_pages by page->lru) are attached under
 *   cmd->lock only while the request is in flight; once it is claimed the
 *   completion owns them, and nd_cache_complete inserts or frees them.
 */
#include <linux/blk-mq.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "netdisk.h"

#define ND_CACHE_STRIPES	4096u	/* a power of two */
#define ND_PG_AM		1ul	/* page_private: on Am, else A1in */
#define ND_CACHE_BATCH		16u	/* fills inserted per lock hold */

/* The page's index in the disk (see the head comment). */
static inline pgoff_t nd_pg_index(struct page *pg)
{
	return page_folio(pg)->index;
}

struct nd_stripe {
	u32 inflight;		/* writes, discards touching it */
	u64 stamp;		/* seq when one last started or ended */
};

struct nd_cache {
	struct xarray pages;
	struct list_head a1, am;
	unsigned long nr_a1, nr_am;
	unsigned long max_pages, kin;
	u64 seq, drop_seq;
	struct nd_stripe *stripes;
	unsigned long *ghosts;		/* ring of index + 1; 0: empty */
	unsigned long nr_ghosts, ghost_pos;
	struct shrinker *shrinker;
	atomic64_t hits, misses, evictions;
};

int nd_cache_check_size(u64 size)
{
	if (!size)
		return 0;
	if (size < PAGE_SIZE)
		return -EINVAL;
	/* More than the machine's memory cannot be meant. */
	if (size >> PAGE_SHIFT > totalram_pages())
		return -ENOMEM;
	return 0;
}

static void nd_cache_unlink(struct nd_cache *c, struct page *pg)
{
	list_del_init(&pg->lru);
	if (page_private(pg) & ND_PG_AM)
		c->nr_am--;
	else
		c->nr_a1--;
}

/* Replaces the slot of idx (an evicted A1in page) with a ghost entry. */
static void nd_cache_ghost(struct nd_cache *c, unsigned long idx)
{
	unsigned long pos = c->ghost_pos, old = c->ghosts[pos];
	void *e;

	if (old) {	/* the oldest ghost is forgotten, if still a ghost */
		e = xa_load(&c->pages, old - 1);
		if (xa_is_value(e) && xa_to_value(e) == pos)
			__xa_erase(&c->pages, old - 1);
	}
	c->ghosts[pos] = idx + 1;
	c->ghost_pos = (pos + 1) % c->nr_ghosts;
	/* The slot exists: no allocation, cannot fail; be safe anyway. */
	if (xa_is_err(__xa_store(&c->pages, idx, xa_mk_value(pos), GFP_NOWAIT)))
		__xa_erase(&c->pages, idx);
}

/* Evicts one page by 2Q; lock held. Returns false if the cache is empty. */
static bool nd_cache_evict_one(struct nd_cache *c)
{
	bool from_a1 = c->nr_a1 && (c->nr_a1 > c->kin || !c->nr_am);
	struct page *pg;

	if (!c->nr_a1 && !c->nr_am)
		return false;
	pg = list_first_entry(from_a1 ? &c->a1 : &c->am, struct page, lru);
	nd_cache_unlink(c, pg);
	if (from_a1)
		nd_cache_ghost(c, nd_pg_index(pg));
	else
		__xa_erase(&c->pages, nd_pg_index(pg));
	put_page(pg);
	atomic64_inc(&c->evictions);
	return true;
}

/* Removes the pages of [first, last]; ghosts stay. Lock held. */
static void nd_cache_invalidate(struct nd_cache *c, unsigned long first,
				unsigned long last)
{
	unsigned long i;
	void *e;

	xa_for_each_range(&c->pages, i, e, first, last) {
		if (xa_is_value(e))
			continue;
		nd_cache_unlink(c, e);
		__xa_erase(&c->pages, i);
		put_page(e);
	}
}

/*
 * Inserts pg at idx (lock held); replace: an existing page is replaced
 * (write data), else kept (a read fill brings the same data). True if pg
 * is now owned by the cache.
 */
static bool nd_cache_insert(struct nd_cache *c, unsigned long idx,
			    struct page *pg, bool replace)
{
	void *old = xa_load(&c->pages, idx);
	bool am = xa_is_value(old);	/* seen recently: a ghost hit */

	if (old && !am) {
		if (!replace)
			return false;
		am = page_private((struct page *)old) & ND_PG_AM;
		nd_cache_unlink(c, old);
		__xa_erase(&c->pages, idx);
		put_page(old);
	}
	while (c->nr_a1 + c->nr_am >= c->max_pages)
		nd_cache_evict_one(c);
	if (xa_is_err(__xa_store(&c->pages, idx, pg, GFP_NOWAIT | __GFP_NOWARN)))
		return false;
	page_folio(pg)->index = idx;
	set_page_private(pg, am ? ND_PG_AM : 0);
	if (am) {
		list_add_tail(&pg->lru, &c->am);
		c->nr_am++;
	} else {
		list_add_tail(&pg->lru, &c->a1);
		c->nr_a1++;
	}
	return true;
}

/* The stripes of [first, last], each once, join or leave with stamp. */
static void nd_cache_mark(struct nd_cache *c, unsigned long first,
			  unsigned long last, int delta, u64 stamp)
{
	unsigned long n = min_t(unsigned long, last - first + 1,
				ND_CACHE_STRIPES), i;

	for (i = 0; i < n; i++) {
		struct nd_stripe *s = &c->stripes[(first + i) &
						  (ND_CACHE_STRIPES - 1)];

		s->inflight += delta;
		s->stamp = stamp;
	}
}

/* May data of a read (write) that started at seq be cached at idx? */
static bool nd_cache_fill_ok(struct nd_cache *c, unsigned long idx, u64 seq,
			     bool write)
{
	struct nd_stripe *s = &c->stripes[idx & (ND_CACHE_STRIPES - 1)];

	if (seq < c->drop_seq)
		return false;	/* started before the cache was dropped */
	if (write)	/* nobody else touched it since we started */
		return s->inflight == 1 && s->stamp == seq;
	return !s->inflight && s->stamp <= seq;
}

static void nd_copy_page(struct page *dst, unsigned int doff,
			 struct page *src, unsigned int soff, unsigned int len)
{
	char *s = kmap_local_page(src);
	char *d = kmap_local_page(dst);

	memcpy(d + doff, s + soff, len);
	kunmap_local(d);
	kunmap_local(s);
}

static void nd_rq_range(struct request *rq, u64 *pos, unsigned long *first,
			unsigned long *last)
{
	*pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	*first = *pos >> PAGE_SHIFT;
	*last = (*pos + blk_rq_bytes(rq) - 1) >> PAGE_SHIFT;
}

/* A referenced cached page at idx, or NULL; a hit refreshes Am order. */
static struct page *nd_cache_get(struct nd_cache *c, unsigned long idx)
{
	struct page *pg;
	unsigned long flags;

	xa_lock_irqsave(&c->pages, flags);
	pg = xa_load(&c->pages, idx);
	if (xa_is_value(pg)) {
		pg = NULL;
	} else if (pg) {
		if (page_private(pg) & ND_PG_AM)
			list_move_tail(&pg->lru, &c->am);
		get_page(pg);
	}
	xa_unlock_irqrestore(&c->pages, flags);
	return pg;
}

/*
 * Calls fn on each piece of rq's data that lies in one device page, in
 * order: the page index, the offset in that page, the bio page and offset
 * holding the piece, its length. Stops, returning false, when fn does.
 */
typedef bool (*nd_piece_fn)(void *arg, unsigned long idx, unsigned int off,
			    struct page *bpage, unsigned int boff,
			    unsigned int n);

static bool nd_rq_walk(struct request *rq, nd_piece_fn fn, void *arg)
{
	u64 pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	struct req_iterator iter;
	struct bio_vec bv;

	rq_for_each_segment(bv, rq, iter) {
		unsigned int done = 0;

		while (done < bv.bv_len) {
			unsigned int off = pos & ~PAGE_MASK;
			unsigned int n = min_t(unsigned int, bv.bv_len - done,
					       PAGE_SIZE - off);

			if (!fn(arg, pos >> PAGE_SHIFT, off, bv.bv_page,
				bv.bv_offset + done, n))
				return false;
			pos += n;
			done += n;
		}
	}
	return true;
}

/* nd_cache_read's walk: the cached page the previous piece came from. */
struct nd_hit {
	struct nd_cache *c;
	unsigned long idx;
	struct page *pg;
};

static bool nd_hit_piece(void *arg, unsigned long idx, unsigned int off,
			 struct page *bpage, unsigned int boff, unsigned int n)
{
	struct nd_hit *h = arg;

	if (idx != h->idx) {
		if (h->pg)
			put_page(h->pg);
		h->pg = nd_cache_get(h->c, idx);
		h->idx = idx;
		if (!h->pg)
			return false;
	}
	nd_copy_page(bpage, boff, h->pg, off, n);
	return true;
}

/* Copies the whole of rq from the cache; false at the first missing page. */
static bool nd_cache_read(struct nd_cache *c, struct request *rq)
{
	struct nd_hit h = { .c = c, .idx = ULONG_MAX };
	bool all = nd_rq_walk(rq, nd_hit_piece, &h);

	if (h.pg)
		put_page(h.pg);
	return all;
}

bool nd_cache_queue(struct nd_cache *c, struct request *rq, bool hits_ok)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	unsigned long first, last, flags;
	u64 pos;

	if (!blk_rq_bytes(rq))
		return false;
	nd_rq_range(rq, &pos, &first, &last);
	switch (req_op(rq)) {
	case REQ_OP_READ:
		if (hits_ok && nd_cache_read(c, rq)) {
			atomic64_add(last - first + 1, &c->hits);
			return true;
		}
		atomic64_add(last - first + 1, &c->misses);
		xa_lock_irqsave(&c->pages, flags);
		cmd->cache_seq = c->seq;
		xa_unlock_irqrestore(&c->pages, flags);
		return false;
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		xa_lock_irqsave(&c->pages, flags);
		nd_cache_invalidate(c, first, last);
		cmd->cache_seq = ++c->seq;
		nd_cache_mark(c, first, last, 1, cmd->cache_seq);
		xa_unlock_irqrestore(&c->pages, flags);
		return false;
	default:
		return false;
	}
}

/* Frees the pages on list (not in the cache), leaving it empty. */
static void nd_free_pages(struct list_head *list)
{
	struct page *pg, *tmp;

	list_for_each_entry_safe(pg, tmp, list, lru) {
		list_del(&pg->lru);
		put_page(pg);
	}
}

/*
 * Private copies of the pages that [pos, pos + len) covers entirely, from
 * data (the bytes at pos), appended to list with its index set. A page
 * that cannot be had at once is left out: failing to cache is fine.
 */
static void nd_copy_pages(struct list_head *list, u64 pos, u32 len,
			  const u8 *data)
{
	unsigned long idx = DIV_ROUND_UP_ULL(pos, PAGE_SIZE);
	unsigned long end = (pos + len) >> PAGE_SHIFT;
	struct page *pg;

	for (; idx < end; idx++) {
		pg = alloc_page(GFP_NOWAIT | __GFP_NOWARN);
		if (!pg)
			break;
		memcpy_to_page(pg, 0, data + ((u64)idx << PAGE_SHIFT) - pos,
			       PAGE_SIZE);
		page_folio(pg)->index = idx;
		list_add_tail(&pg->lru, list);
	}
}

/*
 * Inserts the pages on list that a read (write) started at seq may fill,
 * a few per lock hold (a request may carry megabytes); frees the others.
 */
static void nd_cache_insert_pages(struct nd_cache *c, struct list_head *list,
				  u64 seq, bool write)
{
	unsigned long flags;
	struct page *pg;
	LIST_HEAD(left);
	unsigned int n;

	while (!list_empty(list)) {
		xa_lock_irqsave(&c->pages, flags);
		for (n = 0; n < ND_CACHE_BATCH && !list_empty(list); n++) {
			pg = list_first_entry(list, struct page, lru);
			list_del(&pg->lru);
			if (!nd_cache_fill_ok(c, nd_pg_index(pg), seq, write) ||
			    !nd_cache_insert(c, nd_pg_index(pg), pg, write))
				list_add_tail(&pg->lru, &left);
		}
		xa_unlock_irqrestore(&c->pages, flags);
	}
	nd_free_pages(&left);
}

void nd_cache_fill_read(struct nd_cache *c, struct request *rq,
			const u8 *data)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	LIST_HEAD(pages);

	nd_copy_pages(&pages, (u64)blk_rq_pos(rq) << SECTOR_SHIFT,
		      blk_rq_bytes(rq), data);
	nd_cache_insert_pages(c, &pages, cmd->cache_seq, false);
}

void nd_cache_stage_write(struct nd_cache *c, struct nd_cmd *cmd,
			  const u8 *body, int len)
{
	struct nd_request r;
	LIST_HEAD(pages);
	LIST_HEAD(old);

	if (!c || len < 0 || nd_request_decode(body, len, U32_MAX, &r) ||
	    r.op != ND_OP_WRITE)
		return;
	nd_copy_pages(&pages, r.offset, r.length, body + ND_REQ_HDR_LEN);
	/*
	 * Only while this send can still be answered: once claimed, the
	 * completion owns the list. Whatever an earlier send staged goes,
	 * even if nothing could be copied this time.
	 */
	spin_lock(&cmd->lock);
	if (cmd->inflight && cmd->cookie == (u32)(r.handle >> 32)) {
		list_splice_init(&cmd->cache_pages, &old);
		list_splice_init(&pages, &cmd->cache_pages);
	}
	spin_unlock(&cmd->lock);
	nd_free_pages(&old);
	nd_free_pages(&pages);
}

void nd_cache_complete(struct nd_cache *c, struct request *rq,
		       blk_status_t status)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	unsigned long first, last, flags;
	LIST_HEAD(staged);
	u64 pos;

	/* rq is claimed: no sender stages pages any more, no lock needed. */
	list_splice_init(&cmd->cache_pages, &staged);
	switch (req_op(rq)) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		if (!blk_rq_bytes(rq))
			break;	/* not marked by nd_cache_queue */
		/* Before leaving the stripes: the write rule counts on it. */
		if (status == BLK_STS_OK)
			nd_cache_insert_pages(c, &staged, cmd->cache_seq, true);
		nd_rq_range(rq, &pos, &first, &last);
		xa_lock_irqsave(&c->pages, flags);
		nd_cache_mark(c, first, last, -1, ++c->seq);
		xa_unlock_irqrestore(&c->pages, flags);
		break;
	default:	/* a read's pages came with its reply */
		break;
	}
	nd_free_pages(&staged);
}

/* Forgets everything: fills of reads or writes started before are refused. */
void nd_cache_drop(struct nd_cache *c)
{
	unsigned long i, flags;
	void *e;

	if (!c)
		return;
	xa_lock_irqsave(&c->pages, flags);
	xa_for_each(&c->pages, i, e) {
		if (!xa_is_value(e)) {
			nd_cache_unlink(c, e);
			put_page(e);
		}
		__xa_erase(&c->pages, i);
	}
	memset(c->ghosts, 0, c->nr_ghosts * sizeof(*c->ghosts));
	c->ghost_pos = 0;
	c->drop_seq = ++c->seq;
	xa_unlock_irqrestore(&c->pages, flags);
}

static unsigned long nd_cache_count(struct shrinker *s,
				    struct shrink_control *sc)
{
	struct nd_cache *c = nd_compat_shrinker_private(s);
	unsigned long n = READ_ONCE(c->nr_a1) + READ_ONCE(c->nr_am);

	return n ?: SHRINK_EMPTY;
}

static unsigned long nd_cache_scan(struct shrinker *s,
				   struct shrink_control *sc)
{
	struct nd_cache *c = nd_compat_shrinker_private(s);
	unsigned long freed = 0, flags;

	xa_lock_irqsave(&c->pages, flags);
	while (freed < sc->nr_to_scan && nd_cache_evict_one(c))
		freed++;
	xa_unlock_irqrestore(&c->pages, flags);
	return freed ?: SHRINK_STOP;
}

void nd_cache_free(struct nd_cache *c)
{
	if (!c)
		return;
	nd_compat_shrinker_free(c->shrinker);
	nd_cache_drop(c);
	xa_destroy(&c->pages);
	kvfree(c->ghosts);
	kvfree(c->stripes);
	kfree(c);
}

struct nd_cache *nd_cache_create(u64 size, const char *name)
{
	struct nd_cache *c = kzalloc(sizeof(*c), GFP_KERNEL);
	char sname[32];

	if (!c)
		return NULL;
	xa_init_flags(&c->pages, XA_FLAGS_LOCK_IRQ);
	INIT_LIST_HEAD(&c->a1);
	INIT_LIST_HEAD(&c->am);
	c->max_pages = size >> PAGE_SHIFT;
	c->kin = max(c->max_pages / 4, 1ul);
	c->nr_ghosts = max(c->max_pages / 2, 1ul);
	c->stripes = kvcalloc(ND_CACHE_STRIPES, sizeof(*c->stripes),
			      GFP_KERNEL);
	c->ghosts = kvcalloc(c->nr_ghosts, sizeof(*c->ghosts), GFP_KERNEL);
	if (!c->stripes || !c->ghosts)
		goto fail;
	snprintf(sname, sizeof(sname), "netdisk-cache-%s", name);
	c->shrinker = nd_compat_shrinker_create(sname, c, nd_cache_count,
						nd_cache_scan);
	if (!c->shrinker)
		goto fail;
	return c;
fail:
	nd_cache_free(c);
	return NULL;
}

void nd_cache_stats(struct nd_cache *c, struct nd_cache_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!c)
		return;
	s->size = (u64)c->max_pages << PAGE_SHIFT;
	s->used = (u64)(READ_ONCE(c->nr_a1) + READ_ONCE(c->nr_am)) <<
		  PAGE_SHIFT;
	s->hits = atomic64_read(&c->hits);
	s->misses = atomic64_read(&c->misses);
	s->evictions = atomic64_read(&c->evictions);
}
