// SPDX-License-Identifier: GPL-2.0
/*
 * nd_delay: a test-only module (never installed) that widens a race window
 * on purpose. It probes one function (func=; a module's static functions
 * too, "module:function" if the name is ambiguous) and holds the CPU for
 * delay_ms when one of the next `hits` calls returns (on entry with
 * at_entry=1). Probe handlers run in atomic context, so it busy-waits; the
 * other CPUs run on meanwhile. With fail=1 a held call also returns retval
 * instead of its own result (0: an allocation that failed); the real result
 * is dropped (leaked, if it was memory: this is for throwaway test guests).
 *
 *   insmod nd_delay.ko func=nd_blk_fail_all delay_ms=2000
 *   echo 1 >/sys/module/nd_delay/parameters/hits	# arm: the next call
 *   cat /sys/module/nd_delay/parameters/held	# calls held so far
 */
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/spinlock.h>

#define ND_DELAY_MAX_MS	10000	/* well below the soft lockup detector */

static char *func;
module_param(func, charp, 0444);
MODULE_PARM_DESC(func, "function to probe (required)");

static bool at_entry;
module_param(at_entry, bool, 0444);
MODULE_PARM_DESC(at_entry, "hold on entry instead of on return");

static unsigned int delay_ms = 1000;
module_param(delay_ms, uint, 0644);
MODULE_PARM_DESC(delay_ms, "how long to hold the CPU, at most 10000 ms");

static bool fail;
module_param(fail, bool, 0444);
MODULE_PARM_DESC(fail, "held calls return retval (on return only)");

static long retval;
module_param(retval, long, 0444);
MODULE_PARM_DESC(retval, "what a held call returns with fail=1");

static int hits;
module_param(hits, int, 0644);
MODULE_PARM_DESC(hits, "calls still to hold (write to arm)");

static int held;
module_param(held, int, 0444);
MODULE_PARM_DESC(held, "calls held so far");

static DEFINE_SPINLOCK(nd_delay_lock);	/* hits and held vs. handlers */

/* True if this call was held (one of the armed hits). */
static bool nd_delay_hold(void)
{
	unsigned int ms = min_t(unsigned int, READ_ONCE(delay_ms),
				ND_DELAY_MAX_MS);
	unsigned long flags;
	bool take;
	u64 end;

	spin_lock_irqsave(&nd_delay_lock, flags);
	take = hits > 0;
	if (take) {
		hits--;
		held++;
	}
	spin_unlock_irqrestore(&nd_delay_lock, flags);
	if (!take)
		return false;
	pr_info_ratelimited("nd_delay: holding CPU %d for %u ms %s %s\n",
			    raw_smp_processor_id(), ms,
			    at_entry ? "entering" : "after", func);
	end = ktime_get_ns() + (u64)ms * NSEC_PER_MSEC;
	while (ktime_get_ns() < end)
		cpu_relax();
	return true;
}

static int nd_delay_pre(struct kprobe *p, struct pt_regs *regs)
{
	nd_delay_hold();
	return 0;
}

static int nd_delay_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	if (nd_delay_hold() && fail)
		regs_set_return_value(regs, retval);
	return 0;
}

static struct kprobe nd_delay_kp = { .pre_handler = nd_delay_pre };
static struct kretprobe nd_delay_rp = {
	.handler = nd_delay_ret,
	.maxactive = 16,	/* concurrent calls tracked; more are missed */
};
module_param_named(missed, nd_delay_rp.nmissed, int, 0444);
MODULE_PARM_DESC(missed, "returns not seen (too many concurrent calls)");

static int __init nd_delay_init(void)
{
	int err;

	if (!func || !*func || (fail && at_entry)) {
		pr_err("nd_delay: func= is required, fail=1 needs a return probe\n");
		return -EINVAL;
	}
	if (at_entry) {
		nd_delay_kp.symbol_name = func;
		err = register_kprobe(&nd_delay_kp);
	} else {
		nd_delay_rp.kp.symbol_name = func;
		err = register_kretprobe(&nd_delay_rp);
	}
	if (err) {
		pr_err("nd_delay: cannot probe %s (error %d)\n", func, err);
		return err;
	}
	pr_info("nd_delay: probing %s on %s\n", func,
		at_entry ? "entry" : "return");
	return 0;
}

static void __exit nd_delay_exit(void)
{
	if (at_entry)
		unregister_kprobe(&nd_delay_kp);
	else
		unregister_kretprobe(&nd_delay_rp);
}

module_init(nd_delay_init);
module_exit(nd_delay_exit);
MODULE_DESCRIPTION("netdisk tests: hold the CPU in a probed function");
MODULE_LICENSE("GPL");
