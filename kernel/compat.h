/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place that knows kernel versions (style of the kernel's
 * backports and DRBD's compat layer). The driver is written against the
 * newest API and calls the nd_compat_* helpers below where the API differs
 * between the kernels netdisk supports: Debian 12's 6.1, 6.12
 * (bookworm-backports) and 7.3 (trixie-backports), all built and tested
 * here. Each entry names the kernel that changed the API; where the
 * change left a macro behind, the test is for the feature, so that a
 * distribution backport is picked up.
 * Nothing else in kernel/ includes <linux/version.h>. Where a change left
 * no macro, a type is tested with _Generic (as the kernel's own
 * __unqual_scalar_typeof does), which also sees stable backports.
 *
 * Checked against the installed headers and not needed: ->open/->release
 * taking blk_mode_t (6.5; netdisk has neither), sendpage (gone in 6.5;
 * netdisk copies with kernel_sendmsg, see nd_compat_sock_setup),
 * class_create without an owner (6.4; /dev/netdisk-control is a misc
 * device), the timeout and busy_iter callbacks without `reserved` (6.0,
 * older than the oldest kernel supported); 7.x's removal of page->index
 * (cache.c uses the folio's, right on every supported kernel).
 */
#ifndef ND_KERNEL_COMPAT_H
#define ND_KERNEL_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <net/sock.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "netdisk needs Linux 6.1 or newer"
#endif

/*
 * BLK_MQ_F_SHOULD_MERGE: removed in 6.14 (merging is the default), an enum
 * constant before, so only the version tells.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define ND_COMPAT_MQ_F_SHOULD_MERGE	0
#else
#define ND_COMPAT_MQ_F_SHOULD_MERGE	BLK_MQ_F_SHOULD_MERGE
#endif

/*
 * init_request's NUMA node: an int since 7.0 (NUMA_NO_NODE is -1; the
 * fix went to stable kernels too), unsigned int before. The type is taken
 * from the installed blk_mq_ops, not from the version.
 */
typedef __typeof__(_Generic(((struct blk_mq_ops *)NULL)->init_request,
	int (*)(struct blk_mq_tag_set *, struct request *, unsigned int,
		unsigned int): 0u,
	default: 0)) nd_compat_numa_node_t;

/*
 * kernel_connect() takes a struct sockaddr_unsized * since 6.19 (struct
 * sockaddr has a 14-byte sa_data; the length says how much is there), a
 * struct sockaddr * before: through void * both take the storage.
 */
static inline int nd_compat_kernel_connect(struct socket *sock,
					   const struct sockaddr_storage *addr,
					   int addrlen, int flags)
{
	return kernel_connect(sock, (void *)addr, addrlen, flags);
}

/*
 * Queue features: in queue_limits.features as BLK_FEAT_* since 6.11,
 * queue flags and blk_queue_write_cache() before. Older kernels get
 * private bits with the same names, applied after allocation.
 */
#ifdef BLK_FEAT_WRITE_CACHE
#define ND_COMPAT_HAVE_BLK_FEAT	1
typedef blk_features_t nd_compat_features_t;
#else
typedef unsigned int nd_compat_features_t;
#define BLK_FEAT_WRITE_CACHE	(1u << 0)
#define BLK_FEAT_FUA		(1u << 1)
#define BLK_FEAT_ROTATIONAL	(1u << 2)
#define BLK_FEAT_ADD_RANDOM	(1u << 3)

static inline void nd_compat_set_features(struct request_queue *q,
					  nd_compat_features_t f)
{
	if (f & BLK_FEAT_ROTATIONAL)
		blk_queue_flag_clear(QUEUE_FLAG_NONROT, q);
	else
		blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	if (f & BLK_FEAT_ADD_RANDOM)
		blk_queue_flag_set(QUEUE_FLAG_ADD_RANDOM, q);
	else
		blk_queue_flag_clear(QUEUE_FLAG_ADD_RANDOM, q);
	blk_queue_write_cache(q, f & BLK_FEAT_WRITE_CACHE, f & BLK_FEAT_FUA);
}
#endif

/*
 * A blk-mq disk with its limits and features set before anyone sees it.
 * 6.9 made blk_mq_alloc_disk() take the queue_limits (validated and applied
 * atomically), 6.9-6.11 removed the blk_queue_* limit setters. Before 6.9
 * the limits the driver fills in are applied with those setters.
 */
static inline struct gendisk *
nd_compat_alloc_disk(struct blk_mq_tag_set *set, struct queue_limits *lim,
		     nd_compat_features_t features, void *queuedata)
{
	struct gendisk *disk;

#ifdef ND_COMPAT_HAVE_BLK_FEAT
	lim->features |= features;
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	disk = blk_mq_alloc_disk(set, lim, queuedata);
#else
	disk = blk_mq_alloc_disk(set, queuedata);
	if (!IS_ERR(disk)) {
		struct request_queue *q = disk->queue;

		blk_queue_logical_block_size(q, lim->logical_block_size);
		blk_queue_physical_block_size(q, lim->physical_block_size);
		blk_queue_max_hw_sectors(q, lim->max_hw_sectors);
		blk_queue_max_segments(q, lim->max_segments);
		blk_queue_max_segment_size(q, lim->max_segment_size);
		blk_queue_max_discard_sectors(q, lim->max_hw_discard_sectors);
		q->limits.discard_granularity = lim->discard_granularity;
		blk_queue_max_write_zeroes_sectors(q,
						   lim->max_write_zeroes_sectors);
	}
#endif
#ifndef ND_COMPAT_HAVE_BLK_FEAT
	if (!IS_ERR(disk))
		nd_compat_set_features(disk->queue, features);
#endif
	return disk;
}

/*
 * Shrinkers: allocated by the core with shrinker_alloc() and found again
 * through ->private_data since 6.7; embedded and given to
 * register_shrinker() with a name before (6.0-6.6).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
static inline struct shrinker *
nd_compat_shrinker_create(const char *name, void *priv,
			  unsigned long (*count)(struct shrinker *,
						 struct shrink_control *),
			  unsigned long (*scan)(struct shrinker *,
						struct shrink_control *))
{
	struct shrinker *s = shrinker_alloc(0, "%s", name);

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = DEFAULT_SEEKS;
	s->private_data = priv;
	shrinker_register(s);
	return s;
}

static inline void *nd_compat_shrinker_private(struct shrinker *s)
{
	return s->private_data;
}

static inline void nd_compat_shrinker_free(struct shrinker *s)
{
	if (s)
		shrinker_free(s);
}
#else
struct nd_compat_shrinker {
	struct shrinker s;
	void *priv;
};

static inline struct shrinker *
nd_compat_shrinker_create(const char *name, void *priv,
			  unsigned long (*count)(struct shrinker *,
						 struct shrink_control *),
			  unsigned long (*scan)(struct shrinker *,
						struct shrink_control *))
{
	struct nd_compat_shrinker *w = kzalloc(sizeof(*w), GFP_KERNEL);

	if (!w)
		return NULL;
	w->s.count_objects = count;
	w->s.scan_objects = scan;
	w->s.seeks = DEFAULT_SEEKS;
	w->priv = priv;
	if (register_shrinker(&w->s, "%s", name)) {
		kfree(w);
		return NULL;
	}
	return &w->s;
}

static inline void *nd_compat_shrinker_private(struct shrinker *s)
{
	return container_of(s, struct nd_compat_shrinker, s)->priv;
}

static inline void nd_compat_shrinker_free(struct shrinker *s)
{
	if (!s)
		return;
	unregister_shrinker(s);
	kfree(container_of(s, struct nd_compat_shrinker, s));
}
#endif

/*
 * A block driver's socket: its allocations must not recurse into the
 * block layer (GFP_NOIO, may dip into reserves), and since 6.2 it must not
 * use current->task_frag either, which the task may be using itself when
 * it writes back through us (nbd and nvme-tcp do the same). Data is sent
 * with kernel_sendmsg from the connection's own record buffer, never with
 * MSG_SPLICE_PAGES (6.5): that buffer is reused for the next record as soon
 * as sendmsg returns, while spliced pages stay referenced by the socket
 * until the peer acknowledges them.
 */
static inline void nd_compat_sock_setup(struct sock *sk)
{
	sk->sk_allocation = GFP_NOIO | __GFP_MEMALLOC;
	/*
	 * A struct member, no macro, and not only 6.2+: Debian 12's 6.1 has
	 * it too (stable backport), so Kbuild looks in <net/sock.h>.
	 */
#ifdef ND_HAVE_SK_USE_TASK_FRAG
	sk->sk_use_task_frag = false;
#endif
}

#endif /* ND_KERNEL_COMPAT_H */
