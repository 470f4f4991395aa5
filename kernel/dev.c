// SPDX-License-Identifier: GPL-2.0
/*
 * Device lifetime: attach (connect, handshake, disk), detach and the index
 * IDR. nd_devs_lock serialises every change of a device's state, so
 * concurrent attach/detach/rmmod cannot see a half-built or half-freed
 * device. The struct nd_device itself is freed by the disk's free_disk
 * callback, after the last opener of a force-detached disk is gone.
 */
#include <linux/cpumask.h>
#include <linux/idr.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/module.h>
#include <linux/nsproxy.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/string.h>
#include <net/net_namespace.h>

#include "netdisk.h"

static DEFINE_MUTEX(nd_devs_lock);
static DEFINE_IDR(nd_devs);

/* Connections fail together; one reconnecting makes the device so. */
static const char *nd_dev_state(struct nd_device *dev)
{
	bool reconnecting = false;
	unsigned int i;

	if (!dev->conns)
		return "detaching";
	for (i = 0; i < dev->nr_conns; i++) {
		if (nd_conn_dead(dev->conns[i]))
			return "dead";
		reconnecting |= nd_conn_reconnecting(dev->conns[i]);
	}
	return reconnecting ? "reconnecting" : "connected";
}

const char *nd_state_name(struct nd_device *dev)
{
	switch (READ_ONCE(dev->state)) {
	case ND_STATE_ATTACHING:
		return "attaching";
	case ND_STATE_DETACHING:
		return "detaching";
	default:
		return nd_dev_state(dev);
	}
}

/* Copies a NUL-terminated name; "" means "default". */
static int nd_take_name(const char *src, u8 *dst, u8 *len, char *copy)
{
	size_t n = strnlen(src, ND_ATTACH_NAME_MAX);

	if (n == ND_ATTACH_NAME_MAX)
		return -EINVAL;
	if (!n) {
		src = "default";
		n = 7;
	}
	if (!nd_name_valid((const u8 *)src, n))
		return -EINVAL;
	memcpy(dst, src, n);
	*len = n;
	memcpy(copy, src, n);
	copy[n] = '\0';
	return 0;
}

static int nd_check_attach(const struct nd_attach *a)
{
	const struct sockaddr *sa = (const struct sockaddr *)a->addr;
	size_t i;

	if (a->flags & ~ND_ATTACH_FLAGS_ALL)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(a->reserved); i++)
		if (a->reserved[i])
			return -EINVAL;
	if (nd_cache_check_size(a->cache_size))
		return nd_cache_check_size(a->cache_size);
	if (a->nr_connections > ND_MAX_CONNECTIONS)
		return -EINVAL;
	if (!(a->flags & ND_ATTACH_RECONNECT) ? a->reconnect_timeout_s != 0 :
	    (a->reconnect_timeout_s > ND_RECONNECT_MAX_S &&
	     a->reconnect_timeout_s != ND_RECONNECT_FOREVER))
		return -EINVAL;
	if (a->max_payload && (a->max_payload < ND_MIN_PAYLOAD ||
			       a->max_payload > ND_MAX_PAYLOAD ||
			       a->max_payload % ND_MIN_PAYLOAD))
		return -EINVAL;
	if (a->io_timeout_s > 3600 || a->connect_timeout_ms > 600000)
		return -EINVAL;
	if (strnlen(a->display, ND_ATTACH_DISPLAY_MAX) == ND_ATTACH_DISPLAY_MAX)
		return -EINVAL;
	if (sa->sa_family == AF_INET &&
	    a->addr_len == sizeof(struct sockaddr_in))
		return 0;
	if (sa->sa_family == AF_INET6 &&
	    a->addr_len == sizeof(struct sockaddr_in6))
		return 0;
	return -EAFNOSUPPORT;
}

static void nd_fill_out(struct nd_attach_out *out, const struct nd_hs_result *r)
{
	out->result = r->result;
	out->server_status = r->server_status;
	out->errno_val = r->err < 0 ? -r->err : 0;
}

static void nd_idr_remove(int index)
{
	mutex_lock(&nd_devs_lock);
	idr_remove(&nd_devs, index);
	mutex_unlock(&nd_devs_lock);
}

/*
 * Closes and frees the connections (none started, or the disk is gone).
 * All are closed before any is freed: a closing one may look at the others.
 */
static void nd_dev_free_conns(struct nd_device *dev)
{
	unsigned int i;

	if (!dev->conns)
		return;
	for (i = 0; i < dev->nr_conns; i++)
		if (dev->conns[i])
			nd_conn_close(dev->conns[i], false);
	for (i = 0; i < dev->nr_conns; i++)
		nd_conn_free(dev->conns[i]);
	kfree(dev->conns);
	dev->conns = NULL;
}

/* Workqueues and the network namespace; after the connections are gone. */
static void nd_dev_put_res(struct nd_device *dev)
{
	if (dev->tx_wq)
		destroy_workqueue(dev->tx_wq);
	if (dev->reconnect_wq)
		destroy_workqueue(dev->reconnect_wq);
	dev->tx_wq = NULL;
	dev->reconnect_wq = NULL;
	if (dev->net)
		put_net(dev->net);
	dev->net = NULL;
}

/*
 * Connects every connection: the first one opens the session, the others
 * join it with its token. Fills r with the first failure.
 */
static int nd_dev_connect(struct nd_device *dev, struct nd_hs_result *r)
{
	struct nd_hs_result *r2;
	unsigned int i;

	nd_conn_connect(dev->conns[0], dev->params, r);
	if (r->result != ND_ATTACH_OK)
		return r->err ?: -EIO;
	memcpy(dev->params->token, r->info.token, ND_TOKEN_LEN);
	if (dev->nr_conns == 1)
		return 0;
	r2 = kzalloc(sizeof(*r2), GFP_KERNEL);
	if (!r2)
		return -ENOMEM;
	for (i = 1; i < dev->nr_conns; i++) {
		nd_conn_connect(dev->conns[i], dev->params, r2);
		if (r2->result == ND_ATTACH_OK &&
		    (r2->info.size != r->info.size ||
		     r2->info.max_payload != r->info.max_payload ||
		     memcmp(r2->info.token, r->info.token, ND_TOKEN_LEN))) {
			pr_err("%s: connection %u joined a different session\n",
			       dev->name, i);
			r2->result = ND_ATTACH_PROTO;
			r2->err = -EPROTO;
		}
		if (r2->result != ND_ATTACH_OK) {
			*r = *r2;
			break;
		}
	}
	kfree_sensitive(r2);
	return r->result == ND_ATTACH_OK ? 0 : (r->err ?: -EIO);
}

int nd_dev_attach(struct nd_attach *a)
{
	struct nd_attach_out *out = &a->out;
	struct nd_conn_params *p;
	struct nd_hs_result r = { .result = ND_ATTACH_LOCAL };
	struct nd_device *dev;
	unsigned int i;
	int err, index;

	memset(out, 0, sizeof(*out));
	out->result = ND_ATTACH_LOCAL;
	err = nd_check_attach(a);
	if (err) {
		out->errno_val = -err;
		return err;
	}

	p = kzalloc(sizeof(*p), GFP_KERNEL);
	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!p || !dev) {
		err = -ENOMEM;
		goto fail_free;
	}
	err = nd_take_name(a->identity, p->identity, &p->identity_len,
			   dev->identity) ?:
	      nd_take_name(a->export_name, p->export_name, &p->export_len,
			   dev->export_name);
	if (err)
		goto fail_free;
	memcpy(&p->addr, a->addr, a->addr_len);
	p->addr_len = a->addr_len;
	p->connect_timeout_ms = a->connect_timeout_ms ?: ND_CONNECT_TIMEOUT_MS;
	p->flags = (a->flags & ND_ATTACH_READ_ONLY) ? ND_CF_READ_ONLY : 0;
	p->max_payload = a->max_payload;
	memcpy(p->psk, a->key, ND_KEY_LEN);
	memzero_explicit(a->key, sizeof(a->key));
	strscpy(dev->server, a->display, sizeof(dev->server));
	dev->io_timeout_s = a->io_timeout_s ?: ND_IO_TIMEOUT_S;
	dev->reconnect_timeout_s = a->reconnect_timeout_s;
	dev->nr_conns = a->nr_connections ?:
			min_t(unsigned int, num_online_cpus(),
			      ND_DEFAULT_CONNECTIONS);
	mutex_init(&dev->session_lock);
	dev->state = ND_STATE_ATTACHING;
	/* Kept (with the PSK) for reconnecting; wiped when dev goes. */
	dev->params = p;
	p = NULL;

	/* Reserve the index first, so handshake errors name the device. */
	mutex_lock(&nd_devs_lock);
	index = idr_alloc(&nd_devs, NULL, 0, ND_MAX_DEVICES, GFP_KERNEL);
	mutex_unlock(&nd_devs_lock);
	if (index < 0) {
		err = index == -ENOSPC ? -ENFILE : index;
		goto fail_free;
	}
	dev->index = index;
	snprintf(dev->name, sizeof(dev->name), ND_DISK_PREFIX "%d", index);
	/* Reconnects run in a worker: they use the namespace of the attach. */
	dev->net = get_net(current->nsproxy->net_ns);
	/* Both run in the I/O path: they must make progress under reclaim. */
	dev->tx_wq = alloc_workqueue("%s", WQ_MEM_RECLAIM | WQ_UNBOUND, 0,
				     dev->name);
	dev->reconnect_wq = alloc_workqueue("%s-reconnect",
					    WQ_MEM_RECLAIM | WQ_UNBOUND, 0,
					    dev->name);
	if (!dev->tx_wq || !dev->reconnect_wq) {
		err = -ENOMEM;
		goto fail_idr;
	}

	dev->conns = kcalloc(dev->nr_conns, sizeof(*dev->conns), GFP_KERNEL);
	if (!dev->conns) {
		err = -ENOMEM;
		goto fail_idr;
	}
	for (i = 0; i < dev->nr_conns; i++) {
		dev->conns[i] = nd_conn_create(dev, i);
		if (!dev->conns[i]) {
			err = -ENOMEM;
			goto fail_conn;
		}
	}
	err = nd_dev_connect(dev, &r);
	if (err) {
		if (r.result != ND_ATTACH_OK)
			nd_fill_out(out, &r);
		goto fail_conn;
	}
	dev->info = r.info;
	/* The token lives only in params, which is wiped when freed. */
	memzero_explicit(dev->info.token, ND_TOKEN_LEN);
	dev->read_only = (r.info.flags & ND_EXP_READ_ONLY) ||
			 (a->flags & ND_ATTACH_READ_ONLY);
	if (a->cache_size) {
		/* Coherent only if nobody else can write the export. */
		if (!(r.info.flags & ND_EXP_EXCLUSIVE)) {
			pr_err("%s: no cache: others may write export %s (read-only session on a read-write export)\n",
			       dev->name, dev->export_name);
			out->result = ND_ATTACH_CACHE_REFUSED;
			err = -EPERM;
			goto fail_conn;
		}
		dev->cache = nd_cache_create(a->cache_size, dev->name);
		if (!dev->cache) {
			err = -ENOMEM;
			goto fail_conn;
		}
	}

	err = nd_blk_init_disk(dev);
	if (err)
		goto fail_conn;
	for (i = 0; i < dev->nr_conns; i++) {
		err = nd_conn_start(dev->conns[i]);
		if (err)
			goto fail_disk;
	}
	/* Reads the partition table: the receivers are already running. */
	err = device_add_disk(NULL, dev->disk, nd_disk_groups);
	if (err)
		goto fail_disk;

	mutex_lock(&nd_devs_lock);
	dev->state = ND_STATE_CONNECTED;
	idr_replace(&nd_devs, dev, index);
	mutex_unlock(&nd_devs_lock);

	pr_info("%s: attached %s export %s, %llu bytes, %u connection%s%s\n",
		dev->name, dev->server, dev->export_name, dev->info.size,
		dev->nr_conns, dev->nr_conns == 1 ? "" : "s",
		dev->read_only ? ", read-only" : "");
	if (dev->cache)
		pr_info("%s: cache of %llu KiB\n", dev->name,
			a->cache_size >> 10);
	if (r.info.flags & ND_EXP_READ_ONLY)
		pr_info("%s: read-only export\n", dev->name);
	out->result = ND_ATTACH_OK;
	out->index = index;
	out->size = dev->info.size;
	out->block_size = dev->info.block_size;
	out->export_flags = dev->info.flags;
	out->max_payload = dev->info.max_payload;
	memzero_explicit(&r, sizeof(r));
	return 0;

fail_disk:
	for (i = 0; i < dev->nr_conns; i++)
		nd_conn_close(dev->conns[i], false);
	put_disk(dev->disk);	/* not added: free_disk is not called */
	blk_mq_free_tag_set(&dev->tag_set);
fail_conn:
	nd_dev_free_conns(dev);
	nd_cache_free(dev->cache);
fail_idr:
	nd_dev_put_res(dev);
	nd_idr_remove(index);
fail_free:
	if (out->result == ND_ATTACH_LOCAL)
		out->errno_val = -err;
	kfree_sensitive(p);
	if (dev)
		kfree_sensitive(dev->params);
	kfree_sensitive(dev);
	memzero_explicit(&r, sizeof(r));
	return err;
}

/*
 * Gives the whole device up: every connection fails its I/O with EIO. All
 * are marked dead and their queues emptied before the one sweep, so no
 * request it completes is still linked on a queue, where a reconnecting
 * connection could find it after its tag was reused.
 */
void nd_dev_fail(struct nd_device *dev, const char *why)
{
	bool first = false, closing = false;
	unsigned int i;

	for (i = 0; i < dev->nr_conns; i++) {
		first |= nd_conn_mark_dead(dev->conns[i]);
		closing |= test_bit(ND_CONN_CLOSING, &dev->conns[i]->flags);
	}
	if (!first)
		return;		/* someone else sweeps */
	if (why && !closing)
		pr_err("%s: %s\n", dev->name, why);
	for (i = 0; i < dev->nr_conns; i++)
		nd_conn_shutdown(dev->conns[i]);
	nd_blk_fail_all(dev, NULL);
}

/* Tears down an attached device whose state is already DETACHING. */
static void nd_dev_remove(struct nd_device *dev, bool force)
{
	unsigned int i;

	for (i = 0; i < dev->nr_conns; i++)
		set_bit(ND_CONN_CLOSING, &dev->conns[i]->flags);
	if (force)
		nd_dev_fail(dev, NULL);
	/* Syncs, drains the queue and exits it: no queue_rq after this. */
	del_gendisk(dev->disk);
	for (i = 0; i < dev->nr_conns; i++)
		nd_conn_close(dev->conns[i], !force);
	nd_dev_free_conns(dev);
	nd_dev_put_res(dev);
	nd_cache_free(dev->cache);	/* no I/O left: the queue is gone */
	dev->cache = NULL;
	kfree_sensitive(dev->params);	/* the PSK */
	dev->params = NULL;
	blk_mq_free_tag_set(&dev->tag_set);
	/* Only now: the name netdiskN is free for the next attach. */
	nd_idr_remove(dev->index);
	pr_info("%s: detached\n", dev->name);
	put_disk(dev->disk);	/* frees dev once the last opener is gone */
}

int nd_dev_detach(u32 index, bool force)
{
	struct nd_device *dev;
	unsigned int openers;

	if (index >= ND_MAX_DEVICES)
		return -ENOENT;
	mutex_lock(&nd_devs_lock);
	dev = idr_find(&nd_devs, index);
	if (!dev || dev->state != ND_STATE_CONNECTED) {
		mutex_unlock(&nd_devs_lock);
		return -ENOENT;
	}
	mutex_lock(&dev->disk->open_mutex);
	openers = disk_openers(dev->disk);
	mutex_unlock(&dev->disk->open_mutex);
	if (openers && !force) {
		mutex_unlock(&nd_devs_lock);
		return -EBUSY;
	}
	WRITE_ONCE(dev->state, ND_STATE_DETACHING);
	mutex_unlock(&nd_devs_lock);
	nd_dev_remove(dev, force);
	return 0;
}

/* Module exit: nobody can hold a disk open (that pins the module). */
void nd_dev_detach_all(void)
{
	struct nd_device *dev;
	int id;

	for (;;) {
		mutex_lock(&nd_devs_lock);
		idr_for_each_entry(&nd_devs, dev, id)
			if (dev->state == ND_STATE_CONNECTED)
				break;
		if (dev)
			WRITE_ONCE(dev->state, ND_STATE_DETACHING);
		mutex_unlock(&nd_devs_lock);
		if (!dev)
			break;
		nd_dev_remove(dev, false);
	}
	idr_destroy(&nd_devs);
}
