// SPDX-License-Identifier: GPL-2.0
/*
 * netdisk.ko: encrypted network block device client (protocol 2).
 * Loading creates no device; /dev/netdisk-control attaches exports.
 */
#include <linux/blkdev.h>
#include <linux/build_bug.h>
#include <linux/module.h>
#include <linux/workqueue.h>

#include "netdisk.h"

int nd_major;

static int __init nd_init(void)
{
	int err, tries;

	/* The ioctl ABI: same layout for 32- and 64-bit userspace. */
	BUILD_BUG_ON(sizeof(struct nd_attach) != 592);
	BUILD_BUG_ON(sizeof(struct nd_detach) != 32);

	/*
	 * The first use of gcm(aes) instantiates it and runs the crypto
	 * manager's tests; on a slow (emulated) CPU that can outlast the
	 * 60 s larval wait, which then reports -ETIMEDOUT. Try again.
	 */
	for (tries = 0; tries < 3; tries++) {
		err = nd_selftest();
		if (err != -ETIMEDOUT)
			break;
	}
	if (err) {
		pr_err("netdisk: crypto self-test failed, not loading\n");
		return err;
	}
	nd_major = register_blkdev(0, ND_DISK_PREFIX);
	if (nd_major < 0)
		return nd_major;
	err = nd_ctl_init();
	if (err)
		goto fail_blk;
	pr_info("netdisk: loaded (protocol %d)\n", ND_VERSION);
	return 0;

fail_blk:
	unregister_blkdev(nd_major, ND_DISK_PREFIX);
	return err;
}

static void __exit nd_exit(void)
{
	nd_ctl_exit();
	nd_dev_detach_all();
	unregister_blkdev(nd_major, ND_DISK_PREFIX);
	pr_info("netdisk: unloaded\n");
}

module_init(nd_init);
module_exit(nd_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("netdisk: encrypted network block device client");
MODULE_SOFTDEP("pre: gcm hmac");
MODULE_VERSION(NETDISK_VERSION);
