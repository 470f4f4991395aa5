// SPDX-License-Identifier: GPL-2.0
/*
 * The block device: blk-mq operations, request <-> protocol message
 * translation, completion and the sweep that fails everything outstanding.
 *
 * A request is "inflight" (cmd->inflight, under cmd->lock) from queue_rq
 * until exactly one of the receiver, the kill sweep, the timeout handler or
 * queue_rq itself claims it by clearing the flag; only the claimer
 * completes it, and a claimed request is never left on a send queue (its
 * tag is soon reused). The handle on the wire is
 * (cookie << 32 | blk_mq_unique_tag): the cookie changes at every dispatch,
 * so a reply for an earlier use of the tag cannot match; a reply is also
 * accepted only if the request was sent in the connection's current
 * generation (not before a reconnect, not yet resent after it).
 */
#include <linux/blkdev.h>
#include <linux/bvec.h>
#include <linux/module.h>

#include "netdisk.h"

static blk_status_t nd_status_to_blk(u16 status)
{
	switch (status) {
	case ND_OK:
		return BLK_STS_OK;
	case ND_ERR_NOSPC:
		return BLK_STS_NOSPC;
	case ND_ERR_NOTSUP:
		return BLK_STS_NOTSUPP;
	default:
		return BLK_STS_IOERR;
	}
}

static u8 nd_op_of(struct request *rq)
{
	switch (req_op(rq)) {
	case REQ_OP_READ:
		return ND_OP_READ;
	case REQ_OP_WRITE:
		return ND_OP_WRITE;
	case REQ_OP_DISCARD:
		return ND_OP_TRIM;
	case REQ_OP_WRITE_ZEROES:
		return ND_OP_WRITE_ZEROES;
	default:
		return ND_OP_FLUSH;
	}
}

int nd_blk_build(struct nd_device *dev, struct request *rq, u8 *body)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct nd_request r = {
		.op = nd_op_of(rq),
		.handle = (u64)cmd->cookie << 32 | blk_mq_unique_tag(rq),
	};
	struct req_iterator iter;
	struct bio_vec bv;
	u8 *data;

	if (r.op != ND_OP_FLUSH) {
		r.length = blk_rq_bytes(rq);
		r.offset = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	}
	if ((r.op == ND_OP_WRITE || r.op == ND_OP_WRITE_ZEROES) &&
	    (rq->cmd_flags & REQ_FUA) && (dev->info.flags & ND_EXP_FUA))
		r.flags = ND_REQ_FUA;
	nd_request_encode(body, &r);
	if (r.op != ND_OP_WRITE)
		return ND_REQ_HDR_LEN;
	data = body + ND_REQ_HDR_LEN;
	rq_for_each_segment(bv, rq, iter) {
		memcpy_from_bvec(data, &bv);
		data += bv.bv_len;
	}
	return ND_REQ_HDR_LEN + r.length;
}

/* Claims cmd for completion if it is still ours; true if claimed. */
bool nd_cmd_claim(struct nd_conn *c, struct nd_cmd *cmd, blk_status_t status)
{
	bool claimed;

	spin_lock(&c->queue_lock);
	spin_lock(&cmd->lock);
	claimed = cmd->inflight;
	if (claimed) {
		cmd->inflight = false;
		cmd->status = status;
		/* Queued (held or requeued) but never to be sent now. */
		list_del_init(&cmd->list);
	}
	spin_unlock(&cmd->lock);
	spin_unlock(&c->queue_lock);
	return claimed;
}

int nd_blk_complete_reply(struct nd_device *dev, unsigned int qid,
			  const struct nd_reply *rep, const u8 *data)
{
	u32 unique = (u32)rep->handle;
	u16 hwq = blk_mq_unique_tag_to_hwq(unique);
	struct nd_conn *c = dev->conns[qid];
	struct req_iterator iter;
	const u8 *src = data;
	struct request *rq;
	struct nd_cmd *cmd;
	struct bio_vec bv;

	if (hwq != qid)		/* replies come on the request's connection */
		return -ENOENT;
	rq = blk_mq_tag_to_rq(dev->tag_set.tags[hwq],
			      blk_mq_unique_tag_to_tag(unique));
	if (!rq)
		return -ENOENT;
	cmd = blk_mq_rq_to_pdu(rq);
	spin_lock(&cmd->lock);
	/* Sent in this generation: so it is on no queue either. */
	if (!cmd->inflight || cmd->sent_gen != c->gen ||
	    cmd->cookie != (u32)(rep->handle >> 32) ||
	    rep->op != nd_op_of(rq) ||
	    (rep->length && rep->length != blk_rq_bytes(rq))) {
		spin_unlock(&cmd->lock);
		return -ENOENT;
	}
	if (rep->op == ND_OP_READ && rep->status == ND_OK) {
		if (!rep->length) {
			spin_unlock(&cmd->lock);
			return -EPROTO;
		}
		rq_for_each_segment(bv, rq, iter) {
			memcpy_to_bvec(&bv, src);
			src += bv.bv_len;
		}
	}
	cmd->inflight = false;
	cmd->status = nd_status_to_blk(rep->status);
	spin_unlock(&cmd->lock);
	if (rep->status != ND_OK)
		pr_err_ratelimited("%s: server: %s\n", dev->name,
				   nd_status_str(rep->status));
	/* From our buffer, not the bio: that may be user memory (O_DIRECT). */
	if (dev->cache && rep->op == ND_OP_READ && rep->status == ND_OK)
		nd_cache_fill_read(dev->cache, rq, data);
	blk_mq_complete_request(rq);
	return 0;
}

struct nd_sweep {
	struct nd_device *dev;
	struct nd_conn *only;		/* NULL: every connection */
};

static bool nd_fail_one(struct request *rq, void *data)
{
	struct nd_sweep *sw = data;
	struct nd_conn *c = sw->dev->conns[rq->mq_hctx->queue_num];

	if (sw->only && sw->only != c)
		return true;
	if (nd_cmd_claim(c, blk_mq_rq_to_pdu(rq), BLK_STS_IOERR))
		blk_mq_complete_request(rq);
	return true;
}

void nd_blk_fail_all(struct nd_device *dev, struct nd_conn *c)
{
	struct nd_sweep sw = { .dev = dev, .only = c };

	if (dev->tag_set.tags)	/* not before the tag set exists */
		blk_mq_tagset_busy_iter(&dev->tag_set, nd_fail_one, &sw);
}

static blk_status_t nd_queue_rq(struct blk_mq_hw_ctx *hctx,
				const struct blk_mq_queue_data *bd)
{
	struct request *rq = bd->rq;
	struct nd_device *dev = rq->q->queuedata;
	blk_status_t status = BLK_STS_IOERR;
	struct nd_conn *conn;

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_FLUSH:
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		/* Only set up when the server advertises them. */
		if (!(dev->info.flags & (req_op(rq) == REQ_OP_DISCARD ?
					 ND_EXP_TRIM : ND_EXP_WRITE_ZEROES))) {
			status = BLK_STS_NOTSUPP;
			goto fail;
		}
		fallthrough;
	case REQ_OP_WRITE:
		/* 6.1's block layer only warns about writes to a ro disk. */
		if (dev->read_only) {
			pr_err_ratelimited("%s: write to read-only export\n",
					   dev->name);
			goto fail;
		}
		break;
	default:
		status = BLK_STS_NOTSUPP;
		goto fail;
	}
	/* Data travels only with READ and WRITE; the others fit in 2 GiB. */
	if ((req_op(rq) == REQ_OP_READ || req_op(rq) == REQ_OP_WRITE) &&
	    blk_rq_bytes(rq) > dev->info.max_payload)
		goto fail;
	blk_mq_start_request(rq);
	conn = dev->conns[hctx->queue_num];
	/* No hits while reconnecting: the export may prove to be changed. */
	if (dev->cache && nd_cache_queue(dev->cache, rq,
					 !nd_conn_reconnecting(conn) &&
					 !nd_conn_dead(conn))) {
		blk_mq_end_request(rq, BLK_STS_OK);
		return BLK_STS_OK;
	}
	if (nd_conn_queue(conn, rq))
		return BLK_STS_OK;
	if (dev->cache)
		nd_cache_complete(dev->cache, rq, status);
fail:
	/* blk-mq ends the request; count it like a failed reply. */
	atomic64_inc(&dev->errors);
	return status;
}

static void nd_complete_rq(struct request *rq)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct nd_device *dev = rq->q->queuedata;

	if (cmd->status) {
		atomic64_inc(&dev->errors);
	} else {
		switch (req_op(rq)) {
		case REQ_OP_READ:
			atomic64_inc(&dev->reads);
			atomic64_add(blk_rq_bytes(rq), &dev->read_bytes);
			break;
		case REQ_OP_WRITE:
			atomic64_inc(&dev->writes);
			atomic64_add(blk_rq_bytes(rq), &dev->write_bytes);
			break;
		case REQ_OP_DISCARD:
		case REQ_OP_WRITE_ZEROES:
			atomic64_inc(&dev->discards);
			break;
		default:
			atomic64_inc(&dev->flushes);
			break;
		}
	}
	if (dev->cache)
		nd_cache_complete(dev->cache, rq, cmd->status);
	blk_mq_end_request(rq, cmd->status);
}

/*
 * No answer within the timeout: the server is stuck. The connection is
 * broken off; while it is re-established the request is held (resent
 * later), once given up the sweep completes it with EIO. A server that
 * accepts every reconnect but never answers (a hung backend) would make
 * that go on for ever: a request outstanding longer than the I/O timeout
 * plus the reconnect timeout, resends included, fails with EIO alone.
 */
static enum blk_eh_timer_return nd_timeout(struct request *rq)
{
	struct nd_device *dev = rq->q->queuedata;
	struct nd_conn *c = dev->conns[rq->mq_hctx->queue_num];
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);
	unsigned int limit;

	if (!nd_conn_reconnecting(c))
		nd_conn_kill(c, "request timed out (server not responding)");
	if (nd_conn_dead(c))
		return BLK_EH_DONE;
	/* The limit now: a shutdown may have bounded a root device's. */
	limit = nd_dev_reconnect_timeout(dev);
	if (limit != ND_RECONNECT_FOREVER &&
	    time_after_eq(jiffies, cmd->queued_at +
			  (dev->io_timeout_s + (unsigned long)limit) * HZ) &&
	    nd_cmd_claim(c, cmd, BLK_STS_IOERR)) {
		pr_err_ratelimited("%s: no answer to a request within %u s, across reconnects: failing it\n",
				   dev->name, dev->io_timeout_s + limit);
		blk_mq_complete_request(rq);
		return BLK_EH_DONE;
	}
	return BLK_EH_RESET_TIMER;
}

static int nd_init_request(struct blk_mq_tag_set *set, struct request *rq,
			   unsigned int hctx_idx,
			   nd_compat_numa_node_t numa_node)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);

	spin_lock_init(&cmd->lock);
	INIT_LIST_HEAD(&cmd->list);
	INIT_LIST_HEAD(&cmd->cache_pages);
	return 0;
}

static void nd_exit_request(struct blk_mq_tag_set *set, struct request *rq,
			    unsigned int hctx_idx)
{
	struct nd_cmd *cmd = blk_mq_rq_to_pdu(rq);

	/* Every request that staged pages completed and freed them. */
	WARN_ON_ONCE(!list_empty(&cmd->cache_pages));
}

static const struct blk_mq_ops nd_mq_ops = {
	.queue_rq	= nd_queue_rq,
	.complete	= nd_complete_rq,
	.timeout	= nd_timeout,
	.init_request	= nd_init_request,
	.exit_request	= nd_exit_request,
};

/* Last reference to the disk gone (after detach and the last close). */
static void nd_free_disk(struct gendisk *disk)
{
	kfree_sensitive(disk->private_data);	/* held session details */
}

static const struct block_device_operations nd_fops = {
	.owner		= THIS_MODULE,
	.free_disk	= nd_free_disk,
};

/* Tag set and disk, sized from the session info; not yet added. */
int nd_blk_init_disk(struct nd_device *dev)
{
	struct blk_mq_tag_set *set = &dev->tag_set;
	const struct nd_session_info *info = &dev->info;
	struct queue_limits lim = {
		.logical_block_size = info->block_size,
		.physical_block_size = info->block_size,
		.max_hw_sectors = info->max_payload >> SECTOR_SHIFT,
		/* Data is copied through a bounce buffer: any segmentation. */
		.max_segments = USHRT_MAX,
		.max_segment_size = UINT_MAX,
	};
	nd_compat_features_t features = 0;	/* not rotational, no entropy */
	struct gendisk *disk;
	int err;

	if (info->flags & ND_EXP_FLUSH)
		features |= BLK_FEAT_WRITE_CACHE;
	if (info->flags & ND_EXP_FUA)
		features |= BLK_FEAT_FUA;
	if (info->flags & ND_EXP_TRIM) {
		lim.max_hw_discard_sectors = ND_MAX_RANGE >> SECTOR_SHIFT;
		lim.discard_granularity = info->block_size;
	}
	if (info->flags & ND_EXP_WRITE_ZEROES)
		lim.max_write_zeroes_sectors = ND_MAX_RANGE >> SECTOR_SHIFT;

	set->ops = &nd_mq_ops;
	set->nr_hw_queues = dev->nr_conns;
	set->queue_depth = ND_QUEUE_DEPTH;
	set->numa_node = NUMA_NO_NODE;
	set->cmd_size = sizeof(struct nd_cmd);
	set->flags = ND_COMPAT_MQ_F_SHOULD_MERGE;
	set->timeout = dev->io_timeout_s * HZ;
	set->driver_data = dev;
	err = blk_mq_alloc_tag_set(set);
	if (err)
		return err;

	disk = nd_compat_alloc_disk(set, &lim, features, dev);
	if (IS_ERR(disk)) {
		blk_mq_free_tag_set(set);
		return PTR_ERR(disk);
	}
	disk->major = nd_major;
	disk->first_minor = dev->index << ND_PART_SHIFT;
	disk->minors = 1 << ND_PART_SHIFT;
	disk->fops = &nd_fops;
	disk->private_data = dev;
	strscpy(disk->disk_name, dev->name, DISK_NAME_LEN);
	set_capacity(disk, info->size >> SECTOR_SHIFT);
	set_disk_ro(disk, dev->read_only);
	dev->disk = disk;
	return 0;
}
