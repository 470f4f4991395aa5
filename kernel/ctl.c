// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/netdisk-control: the ATTACH and DETACH ioctls (include/netdisk_ioctl.h).
 * Only CAP_SYS_ADMIN may use it. An open control file pins the module; an
 * attached device does not (module exit detaches it).
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "netdisk.h"

static long nd_ctl_attach(struct nd_attach __user *ua)
{
	struct nd_attach *a;
	long ret;

	a = kmalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	if (copy_from_user(a, ua, sizeof(*a))) {
		ret = -EFAULT;
		goto out;
	}
	ret = nd_dev_attach(a);
	/* Only the out part goes back: never echo the key. */
	if (copy_to_user(&ua->out, &a->out, sizeof(a->out)))
		ret = -EFAULT;
out:
	kfree_sensitive(a);
	return ret;
}

static long nd_ctl_detach(struct nd_detach __user *ud)
{
	struct nd_detach d;
	size_t i;

	if (copy_from_user(&d, ud, sizeof(d)))
		return -EFAULT;
	if (d.flags & ~ND_DETACH_FLAGS_ALL)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(d.reserved); i++)
		if (d.reserved[i])
			return -EINVAL;
	return nd_dev_detach(d.index, d.flags & ND_DETACH_FORCE);
}

static long nd_ctl_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case ND_IOC_ATTACH:
		return nd_ctl_attach((struct nd_attach __user *)arg);
	case ND_IOC_DETACH:
		return nd_ctl_detach((struct nd_detach __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations nd_ctl_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= nd_ctl_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice nd_ctl_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= ND_CTL_NAME,
	.fops	= &nd_ctl_fops,
	.mode	= 0600,
};

int nd_ctl_init(void)
{
	return misc_register(&nd_ctl_dev);
}

void nd_ctl_exit(void)
{
	misc_deregister(&nd_ctl_dev);
}
