// SPDX-License-Identifier: GPL-2.0
/*
 * /sys/block/netdiskN/netdisk/: what the device is connected to, its state
 * and I/O counters; never shows key material. Read-only but for
 * reconnect_timeout.
 */
#include <linux/blkdev.h>
#include <linux/device.h>
#include <linux/sysfs.h>

#include "netdisk.h"

static struct nd_device *nd_from_dev(struct device *d)
{
	return dev_to_disk(d)->private_data;
}

#define ND_STR_ATTR(name, expr)						\
static ssize_t name##_show(struct device *d,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct nd_device *dev = nd_from_dev(d);				\
									\
	return sysfs_emit(buf, "%s\n", expr);				\
}									\
static DEVICE_ATTR_RO(name)

#define ND_U64_ATTR(name, expr)						\
static ssize_t name##_show(struct device *d,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct nd_device *dev = nd_from_dev(d);				\
									\
	return sysfs_emit(buf, "%llu\n", (unsigned long long)(expr));	\
}									\
static DEVICE_ATTR_RO(name)

ND_STR_ATTR(server, dev->server);
ND_STR_ATTR(export, dev->export_name);
ND_STR_ATTR(identity, dev->identity);
ND_STR_ATTR(state, nd_state_name(dev));
ND_U64_ATTR(read_only, dev->read_only);
ND_U64_ATTR(max_payload, dev->info.max_payload);
ND_U64_ATTR(export_flags, dev->info.flags);
ND_U64_ATTR(reads, atomic64_read(&dev->reads));
ND_U64_ATTR(writes, atomic64_read(&dev->writes));
ND_U64_ATTR(flushes, atomic64_read(&dev->flushes));
ND_U64_ATTR(read_bytes, atomic64_read(&dev->read_bytes));
ND_U64_ATTR(write_bytes, atomic64_read(&dev->write_bytes));
ND_U64_ATTR(errors, atomic64_read(&dev->errors));
ND_U64_ATTR(connections, dev->nr_conns);
ND_U64_ATTR(discards, atomic64_read(&dev->discards));
ND_U64_ATTR(reconnects, atomic64_read(&dev->reconnects));

/* Seconds, or "forever" (ND_RECONNECT_FOREVER: no limit). */
static ssize_t reconnect_timeout_show(struct device *d,
				      struct device_attribute *attr, char *buf)
{
	unsigned int s = nd_dev_reconnect_timeout(nd_from_dev(d));

	if (s == ND_RECONNECT_FOREVER)
		return sysfs_emit(buf, "forever\n");
	return sysfs_emit(buf, "%u\n", s);
}

/*
 * Root only (0644). Counts from when a broken connection broke, checked
 * at its next reconnect attempt (within 5 s) and by the request timeout:
 * a shutdown bounds a root device's "forever" this way, and a limit
 * shorter than an outage already going on fails its I/O at once.
 */
static ssize_t reconnect_timeout_store(struct device *d,
				       struct device_attribute *attr,
				       const char *buf, size_t count)
{
	unsigned int s;

	if (sysfs_streq(buf, "forever"))
		s = ND_RECONNECT_FOREVER;
	else if (kstrtouint(buf, 10, &s) || s > ND_RECONNECT_MAX_S)
		return -EINVAL;
	WRITE_ONCE(nd_from_dev(d)->reconnect_timeout_s, s);
	return count;
}
static DEVICE_ATTR_RW(reconnect_timeout);

#define ND_CACHE_ATTR(name)						\
static ssize_t cache_##name##_show(struct device *d,			\
				   struct device_attribute *attr,	\
				   char *buf)				\
{									\
	struct nd_cache_stats s;					\
									\
	nd_cache_stats(nd_from_dev(d)->cache, &s);			\
	return sysfs_emit(buf, "%llu\n", (unsigned long long)s.name);	\
}									\
static DEVICE_ATTR_RO(cache_##name)

ND_CACHE_ATTR(size);
ND_CACHE_ATTR(used);
ND_CACHE_ATTR(hits);
ND_CACHE_ATTR(misses);
ND_CACHE_ATTR(evictions);

static struct attribute *nd_attrs[] = {
	&dev_attr_server.attr,
	&dev_attr_export.attr,
	&dev_attr_identity.attr,
	&dev_attr_state.attr,
	&dev_attr_read_only.attr,
	&dev_attr_max_payload.attr,
	&dev_attr_export_flags.attr,
	&dev_attr_reads.attr,
	&dev_attr_writes.attr,
	&dev_attr_flushes.attr,
	&dev_attr_read_bytes.attr,
	&dev_attr_write_bytes.attr,
	&dev_attr_errors.attr,
	&dev_attr_connections.attr,
	&dev_attr_discards.attr,
	&dev_attr_reconnects.attr,
	&dev_attr_reconnect_timeout.attr,
	&dev_attr_cache_size.attr,
	&dev_attr_cache_used.attr,
	&dev_attr_cache_hits.attr,
	&dev_attr_cache_misses.attr,
	&dev_attr_cache_evictions.attr,
	NULL,
};

static const struct attribute_group nd_attr_group = {
	.name = "netdisk",
	.attrs = nd_attrs,
};

const struct attribute_group *nd_disk_groups[] = {
	&nd_attr_group,
	NULL,
};
