// SPDX-License-Identifier: GPL-2.0
/*
 * nd_freescan: a test-only module (never installed) that catches secrets
 * freed without being wiped. It kprobes kfree() and kmem_cache_free() and,
 * before each object goes back to the allocator, looks for known byte
 * strings in it (pattern=, hex, up to 4, comma-separated: e.g. the session
 * token a test server hands out and the PSK). kfree_sensitive() wipes
 * before it calls kfree(), so only frees that leave a secret readable in
 * free memory count. The first frees found are logged with their caller.
 *
 *   insmod nd_freescan.ko pattern=00112233445566778899aabbccddeeff,...
 *   cat /sys/module/nd_freescan/parameters/found	# such frees so far
 *
 * Loading checks the probe on its own objects first (each freed once
 * holding a pattern: found must count them), so a probe that sees nothing
 * cannot pass for clean memory. Scanning every free is slow: for short tests.
 * Not seen: memory freed by other paths (pages, kfree_bulk, vfree).
 */
/* hex2bin(): in <linux/kernel.h>, moved to <linux/hex.h> in 7.x (Kbuild) */
#ifdef ND_HAVE_LINUX_HEX_H
#include <linux/hex.h>
#endif
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/ptrace.h>
#include <linux/slab.h>
#include <linux/string.h>

#define ND_FREESCAN_MAX		64	/* longest pattern, bytes */
#define ND_FREESCAN_PATS	4
#define ND_FREESCAN_LOGGED	8	/* frees logged with their caller */

static char *pattern[ND_FREESCAN_PATS];
static int npattern;
module_param_array(pattern, charp, &npattern, 0444);
MODULE_PARM_DESC(pattern, "hex byte strings to look for (required)");

static atomic_t found = ATOMIC_INIT(0);
module_param_named(found, found.counter, int, 0444);
MODULE_PARM_DESC(found, "frees of an object holding the pattern");

static atomic64_t scanned = ATOMIC64_INIT(0);
module_param_named(scanned, scanned.counter, ullong, 0444);
MODULE_PARM_DESC(scanned, "objects looked at");

static struct {
	u8 b[ND_FREESCAN_MAX];
	size_t len;
} pats[ND_FREESCAN_PATS];

/* The number of the first pattern found in obj (from 1), or 0. */
static int nd_freescan_has(const void *obj, size_t size)
{
	const u8 *p, *end;
	int i;

	for (i = 0; i < npattern; i++) {
		if (size < pats[i].len)
			continue;
		end = (const u8 *)obj + size - pats[i].len;
		for (p = obj; p <= end; p++) {
			p = memchr(p, pats[i].b[0], end - p + 1);
			if (!p)
				break;
			if (!memcmp(p, pats[i].b, pats[i].len))
				return i + 1;
		}
	}
	return 0;
}

/* The caller is the return address on top of the stack at entry (x86). */
static void nd_freescan_check(const void *obj, size_t size,
			      struct pt_regs *regs, const char *how)
{
	unsigned long caller = *(unsigned long *)kernel_stack_pointer(regs);
	int which;

	atomic64_inc(&scanned);
	which = nd_freescan_has(obj, size);
	if (!which)
		return;
	if (atomic_inc_return(&found) <= ND_FREESCAN_LOGGED)
		pr_warn("nd_freescan: %s of %zu bytes holding pattern %d, from %pS\n",
			how, size, which, (void *)caller);
}

static int nd_freescan_kfree(struct kprobe *kp, struct pt_regs *regs)
{
	const void *obj = (const void *)regs_get_kernel_argument(regs, 0);

	if (!ZERO_OR_NULL_PTR(obj))
		nd_freescan_check(obj, ksize(obj), regs, "kfree");
	return 0;
}

static int nd_freescan_cache_free(struct kprobe *kp, struct pt_regs *regs)
{
	struct kmem_cache *s = (void *)regs_get_kernel_argument(regs, 0);
	const void *obj = (const void *)regs_get_kernel_argument(regs, 1);

	if (s && obj)
		nd_freescan_check(obj, kmem_cache_size(s), regs,
				  "kmem_cache_free");
	return 0;
}

static struct kprobe nd_freescan_kps[] = {
	{ .symbol_name = "kfree", .pre_handler = nd_freescan_kfree },
	{ .symbol_name = "kmem_cache_free",
	  .pre_handler = nd_freescan_cache_free },
};
static struct kprobe *nd_freescan_kpp[] = {
	&nd_freescan_kps[0], &nd_freescan_kps[1],
};

static int __init nd_freescan_init(void)
{
	size_t len;
	u8 *probe;
	int err, i;

	for (i = 0; i < npattern; i++) {
		len = strlen(pattern[i]);
		if (!len || len % 2 || len / 2 > ND_FREESCAN_MAX ||
		    hex2bin(pats[i].b, pattern[i], len / 2)) {
			pr_err("nd_freescan: a pattern is 2 to %d hex characters\n",
			       2 * ND_FREESCAN_MAX);
			return -EINVAL;
		}
		pats[i].len = len / 2;
	}
	if (!npattern) {
		pr_err("nd_freescan: pattern= is required\n");
		return -EINVAL;
	}
	err = register_kprobes(nd_freescan_kpp, ARRAY_SIZE(nd_freescan_kpp));
	if (err) {
		pr_err("nd_freescan: cannot probe the free functions (error %d)\n",
		       err);
		return err;
	}
	/* The probe must see frees that leave a pattern behind. */
	for (i = 0; i < npattern; i++) {
		probe = kmalloc(pats[i].len + 16, GFP_KERNEL);
		if (!probe) {
			err = -ENOMEM;
			goto fail;
		}
		memcpy(probe + 16, pats[i].b, pats[i].len);
		kfree(probe);
	}
	if (atomic_read(&found) != npattern) {
		pr_err("nd_freescan: the probe missed a free holding a pattern\n");
		err = -EIO;
		goto fail;
	}
	atomic_set(&found, 0);
	pr_info("nd_freescan: looking for %d pattern(s) in every kfree/kmem_cache_free\n",
		npattern);
	return 0;
fail:
	unregister_kprobes(nd_freescan_kpp, ARRAY_SIZE(nd_freescan_kpp));
	return err;
}

static void __exit nd_freescan_exit(void)
{
	unregister_kprobes(nd_freescan_kpp, ARRAY_SIZE(nd_freescan_kpp));
	pr_info("nd_freescan: %d free(s) holding a pattern in %lld scanned\n",
		atomic_read(&found), atomic64_read(&scanned));
}

module_init(nd_freescan_init);
module_exit(nd_freescan_exit);
MODULE_DESCRIPTION("netdisk tests: count frees of memory holding a secret");
MODULE_LICENSE("GPL");
