// SPDX-License-Identifier: GPL-2.0
/*
 * bao-sim debugfs (/sys/kernel/debug/bao-sim/dm<N>/): info, counters, raw frontend register
 * accesses (a hostile or scripted frontend for tests) and a round-trip timer (benchmarks).
 *
 *   info    DM parameters and frontend state
 *   stats   counters
 *   access  write "read <off> <width>" | "write <off> <width> <value>" | "kick <off> <width> <value>"
 *           (kick = posted write, does not wait); read back "0x<value>\n" of the last access
 *           made through the same open file. <off> is relative to the virtio-mmio window.
 *   bench   write "<count> [<off> [<width> [<value>]]]": count READ accesses one after another
 *           (WRITEs of <value> when it is given); read back "count N\nmin_ns X\navg_ns Y\nmax_ns Z\n"
 *   sample  write "<count> <interval_us> [<off> [<width>]]": count READ accesses <interval_us>
 *           apart, the writer at SCHED_FIFO meanwhile; read back each round trip's ns, one a line
 *
 * Why sample: a frontend vCPU on Bao has a physical CPU of its own (Bao partitions CPUs
 * statically), so a trapped access costs the backend's time and nothing else: the vCPU resumes
 * as soon as the access is completed. In the QEMU test machine the frontends of several device
 * models share one guest CPU; a round trip taken by a task that is always runnable next to
 * another always-runnable one (bench, in a loop) includes the wait for the scheduler to give it
 * the CPU back after its completion. At SCHED_FIFO the completion's wakeup preempts the other
 * task at once, and sleeping between samples leaves that task the CPU nearly all the time.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/ktime.h>
#include <linux/sched/signal.h>
#include <linux/sched.h>
#include <linux/delay.h>
#include "bao_sim.h"

static unsigned int bs_count(struct list_head *head)
{
	struct list_head *p;
	unsigned int n = 0;

	list_for_each(p, head)
		n++;
	return n;
}

static int bs_info_show(struct seq_file *s, void *unused)
{
	struct bs_dm *dm = s->private;

	seq_printf(s, "id %u\nmmio_base 0x%llx\nmmio_size 0x%x\nshmem_addr 0x%llx\nshmem_size 0x%llx\n"
		   "irq %u\nfrontend %s\n", dm->id, dm->mmio_base, BS_MMIO_WINDOW, dm->shmem_addr,
		   dm->shmem_size, dm->irq, dm->fe_state);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(bs_info);

static int bs_stats_show(struct seq_file *s, void *unused)
{
	struct bs_dm *dm = s->private;
	struct bs_req *r;
	unsigned long fl;
	unsigned int queued = 0, inflight = 0, ioeventfds, irqfds;

	spin_lock_irqsave(&dm->lock, fl);
	list_for_each_entry(r, &dm->queue, node)
		queued++;
	list_for_each_entry(r, &dm->inflight, node)
		inflight++;
	ioeventfds = bs_count(&dm->ioeventfds);
	spin_unlock_irqrestore(&dm->lock, fl);
	spin_lock_irqsave(&dm->irqfd_lock, fl);
	irqfds = bs_count(&dm->irqfds);
	spin_unlock_irqrestore(&dm->irqfd_lock, fl);
	seq_printf(s, "requests %lld\ncompletions %lld\ncomplete_errors %lld\nattached %lld\n"
		   "irqfd_notifications %lld\nioeventfd_signals %lld\nioeventfd_swallowed %lld\n"
		   "fe_interrupts %lld\naborted %lld\ndropped %lld\nqueued %u\ninflight %u\n"
		   "ioeventfds %u\nirqfds %u\n",
		   atomic64_read(&dm->st.requests), atomic64_read(&dm->st.completions),
		   atomic64_read(&dm->st.complete_errors), atomic64_read(&dm->st.attached),
		   atomic64_read(&dm->st.irqfd_notifications),
		   atomic64_read(&dm->st.ioeventfd_signals),
		   atomic64_read(&dm->st.ioeventfd_swallowed), atomic64_read(&dm->st.fe_interrupts),
		   atomic64_read(&dm->st.aborted), atomic64_read(&dm->st.dropped), queued, inflight,
		   ioeventfds, irqfds);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(bs_stats);

/* Per open file: the answer of the last command written through it. */
struct bs_dbg_file {
	struct bs_dm *dm;
	char out[128];
};

static int bs_dbg_open(struct inode *inode, struct file *f)
{
	struct bs_dbg_file *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return -ENOMEM;
	d->dm = inode->i_private;
	f->private_data = d;
	return nonseekable_open(inode, f);
}

static int bs_dbg_release(struct inode *inode, struct file *f)
{
	kfree(f->private_data);
	return 0;
}

static ssize_t bs_dbg_read(struct file *f, char __user *buf, size_t count, loff_t *pos)
{
	struct bs_dbg_file *d = f->private_data;

	return simple_read_from_buffer(buf, count, pos, d->out, strlen(d->out));
}

static int bs_dbg_cmd(struct file *f, const char __user *ubuf, size_t count, char *cmd, size_t n)
{
	if (count == 0 || count >= n)
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, count))
		return -EFAULT;
	cmd[count] = 0;
	return 0;
}

static bool bs_width_ok(u32 w)
{
	return w == 1 || w == 2 || w == 4 || w == 8;
}

static ssize_t bs_access_write(struct file *f, const char __user *ubuf, size_t count, loff_t *pos)
{
	struct bs_dbg_file *d = f->private_data;
	char cmd[128], op[8];
	u64 off, value = 0;
	u32 width;
	int n, err;
	u64 res;

	err = bs_dbg_cmd(f, ubuf, count, cmd, sizeof(cmd));
	if (err)
		return err;
	n = sscanf(cmd, "%7s %lli %u %lli", op, &off, &width, &value);
	if (n < 3 || !bs_width_ok(width))
		return -EINVAL;
	if (!strcmp(op, "read")) {
		res = bs_access(d->dm, off, width, false, 0, &err, true);
	} else if (!strcmp(op, "write") && n == 4) {
		res = bs_access(d->dm, off, width, true, value, &err, true);
	} else if (!strcmp(op, "kick") && n == 4) {
		err = bs_submit_nowait(d->dm, off, width, value);
		res = 0;
	} else {
		return -EINVAL;
	}
	if (err)
		return err;
	snprintf(d->out, sizeof(d->out), "0x%llx\n", res);
	return count;
}

static const struct file_operations bs_access_fops = {
	.owner = THIS_MODULE,
	.open = bs_dbg_open,
	.release = bs_dbg_release,
	.read = bs_dbg_read,
	.write = bs_access_write,
	.llseek = no_llseek,
};

static ssize_t bs_bench_write(struct file *f, const char __user *ubuf, size_t count, loff_t *pos)
{
	struct bs_dbg_file *d = f->private_data;
	char cmd[64];
	u64 n = 0, off = 0, value = 0, i, t, min = U64_MAX, max = 0, sum = 0;
	u32 width = 4;
	int err, fields;

	err = bs_dbg_cmd(f, ubuf, count, cmd, sizeof(cmd));
	if (err)
		return err;
	fields = sscanf(cmd, "%llu %lli %u %lli", &n, &off, &width, &value);
	if (fields < 1 || n == 0 || !bs_width_ok(width))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		t = ktime_get_ns();
		bs_access(d->dm, off, width, fields >= 4, value, &err, true);
		if (err)
			return err;
		t = ktime_get_ns() - t;
		min = min(min, t);
		max = max(max, t);
		sum += t;
	}
	snprintf(d->out, sizeof(d->out), "count %llu\nmin_ns %llu\navg_ns %llu\nmax_ns %llu\n",
		 n, min, div64_u64(sum, n), max);
	return count;
}

static const struct file_operations bs_bench_fops = {
	.owner = THIS_MODULE,
	.open = bs_dbg_open,
	.release = bs_dbg_release,
	.read = bs_dbg_read,
	.write = bs_bench_write,
	.llseek = no_llseek,
};

#define BS_SAMPLE_MAX 512
#define BS_SAMPLE_LINE 21 /* a u64 in decimal and a newline */

/* Per open file: the round trips of the last batch, formatted. */
struct bs_sample_file {
	struct bs_dm *dm;
	char *out;
	size_t len;
};

static int bs_sample_open(struct inode *inode, struct file *f)
{
	struct bs_sample_file *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return -ENOMEM;
	d->dm = inode->i_private;
	d->out = kmalloc(BS_SAMPLE_MAX * BS_SAMPLE_LINE + 1, GFP_KERNEL);
	if (!d->out) {
		kfree(d);
		return -ENOMEM;
	}
	f->private_data = d;
	return nonseekable_open(inode, f);
}

static int bs_sample_release(struct inode *inode, struct file *f)
{
	struct bs_sample_file *d = f->private_data;

	kfree(d->out);
	kfree(d);
	return 0;
}

static ssize_t bs_sample_read(struct file *f, char __user *buf, size_t count, loff_t *pos)
{
	struct bs_sample_file *d = f->private_data;

	return simple_read_from_buffer(buf, count, pos, d->out, d->len);
}

static ssize_t bs_sample_write(struct file *f, const char __user *ubuf, size_t count, loff_t *pos)
{
	struct bs_sample_file *d = f->private_data;
	char cmd[64];
	u64 n = 0, off = 0, t;
	u32 interval = 0, width = 4;
	bool rt = rt_task(current);
	int nice = task_nice(current);
	int err, fields;
	u64 i;

	err = bs_dbg_cmd(f, ubuf, count, cmd, sizeof(cmd));
	if (err)
		return err;
	fields = sscanf(cmd, "%llu %u %lli %u", &n, &interval, &off, &width);
	if (fields < 2 || n == 0 || n > BS_SAMPLE_MAX || interval > USEC_PER_SEC ||
	    !bs_width_ok(width))
		return -EINVAL;
	d->len = 0;
	if (!rt)
		sched_set_fifo(current);
	for (i = 0; i < n && !err; i++) {
		if (i && interval)
			usleep_range(interval, interval + interval / 8 + 1);
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		t = ktime_get_ns();
		bs_access(d->dm, off, width, false, 0, &err, true);
		t = ktime_get_ns() - t;
		if (!err)
			d->len += scnprintf(d->out + d->len, BS_SAMPLE_LINE + 1, "%llu\n", t);
	}
	if (!rt)
		sched_set_normal(current, nice);
	return err ? err : count;
}

static const struct file_operations bs_sample_fops = {
	.owner = THIS_MODULE,
	.open = bs_sample_open,
	.release = bs_sample_release,
	.read = bs_sample_read,
	.write = bs_sample_write,
	.llseek = no_llseek,
};

void bs_debugfs_dm(struct bs_dm *dm)
{
	char name[8];

	snprintf(name, sizeof(name), "dm%u", dm->id);
	dm->dbg = debugfs_create_dir(name, bs_debugfs_root);
	debugfs_create_file("info", 0444, dm->dbg, dm, &bs_info_fops);
	debugfs_create_file("stats", 0444, dm->dbg, dm, &bs_stats_fops);
	debugfs_create_file("access", 0600, dm->dbg, dm, &bs_access_fops);
	debugfs_create_file("bench", 0600, dm->dbg, dm, &bs_bench_fops);
	debugfs_create_file("sample", 0600, dm->dbg, dm, &bs_sample_fops);
}
