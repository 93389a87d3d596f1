// SPDX-License-Identifier: GPL-2.0
/*
 * bao-sim IPC: /dev/baoipc0 and /dev/baoipc1 are the two guests of one shared-memory IPC object:
 * one region, crossed channels (what baoipc0 writes, baoipc1 reads and vice versa). read(),
 * write() and mmap() follow v2 (spec §7.2-7.4); a write that starts inside the channel
 * "notifies the peer" (the IPC hypercall), counted in debugfs bao-sim/ipc.
 */
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/uaccess.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include "bao_sim.h"

static ulong ipc_size = 0x10000;
module_param(ipc_size, ulong, 0444);
MODULE_PARM_DESC(ipc_size, "size of the IPC region shared by baoipc0 and baoipc1 (power-of-two pages, default 64 KiB)");

struct bs_ipc {
	struct miscdevice misc;
	char name[16];
	u64 read_off, read_size, write_off, write_size;
	atomic64_t notified;	/* IPC interrupts this side received from its peer's writes */
	atomic64_t writes;
	struct bs_ipc *peer;
};

static unsigned long ipc_pages;
static unsigned int ipc_order;
static struct bs_ipc ipcs[2];

static struct bs_ipc *bs_ipc_of(struct file *f)
{
	struct miscdevice *m = f->private_data;

	return container_of(m, struct bs_ipc, misc);
}

static ssize_t bs_ipc_read(struct file *f, char __user *buf, size_t count, loff_t *pos)
{
	struct bs_ipc *ipc = bs_ipc_of(f);
	u64 p = *pos;
	size_t n;

	if (p >= ipc->read_size)
		return 0;
	n = min_t(u64, count, ipc->read_size - p);
	if (copy_to_user(buf, (void *)ipc_pages + ipc->read_off + p, n))
		return -EFAULT;
	*pos = p + n;
	return n;
}

static ssize_t bs_ipc_write(struct file *f, const char __user *buf, size_t count, loff_t *pos)
{
	struct bs_ipc *ipc = bs_ipc_of(f);
	u64 p = *pos;
	size_t n;

	if (p >= ipc->write_size)
		return 0;
	n = min_t(u64, count, ipc->write_size - p);
	if (copy_from_user((void *)ipc_pages + ipc->write_off + p, buf, n))
		return -EFAULT;
	*pos = p + n;
	/* The IPC notify hypercall: every write starting inside the channel, even empty ones. */
	wmb();
	atomic64_inc(&ipc->writes);
	atomic64_inc(&ipc->peer->notified);
	return n;
}

/* v2: offset relative to the whole region; 0 < len, off < size, len <= size - off. */
static int bs_ipc_mmap(struct file *f, struct vm_area_struct *vma)
{
	unsigned long len = vma->vm_end - vma->vm_start;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;

	if (len == 0 || off >= ipc_size || len > ipc_size - off)
		return -EINVAL;
	return remap_pfn_range(vma, vma->vm_start, (virt_to_phys((void *)ipc_pages) + off) >> PAGE_SHIFT,
			       len, vma->vm_page_prot);
}

static int bs_ipc_open(struct inode *inode, struct file *f)
{
	return 0;	/* misc_open left the miscdevice in private_data */
}

static const struct file_operations bs_ipc_fops = {
	.owner = THIS_MODULE,
	.open = bs_ipc_open,
	.read = bs_ipc_read,
	.write = bs_ipc_write,
	.mmap = bs_ipc_mmap,
	.llseek = no_llseek,	/* v2 has no llseek: lseek fails with ESPIPE */
};

static int bs_ipc_stats_show(struct seq_file *s, void *unused)
{
	int i;

	seq_printf(s, "region_addr 0x%llx\nregion_size 0x%lx\n",
		   (u64)virt_to_phys((void *)ipc_pages), ipc_size);
	for (i = 0; i < 2; i++)
		seq_printf(s, "baoipc%d read 0x%llx+0x%llx write 0x%llx+0x%llx writes %lld notified %lld\n",
			   i, ipcs[i].read_off, ipcs[i].read_size, ipcs[i].write_off,
			   ipcs[i].write_size, atomic64_read(&ipcs[i].writes),
			   atomic64_read(&ipcs[i].notified));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(bs_ipc_stats);

int bs_ipc_init(void)
{
	u64 half;
	int i, ret;

	if (!ipc_size || !PAGE_ALIGNED(ipc_size) || ipc_size > (4UL << 20) ||
	    !is_power_of_2(ipc_size >> PAGE_SHIFT) || ipc_size < 2 * PAGE_SIZE)
		return -EINVAL;
	ipc_order = get_order(ipc_size);
	ipc_pages = __get_free_pages(GFP_KERNEL | __GFP_ZERO, ipc_order);
	if (!ipc_pages)
		return -ENOMEM;
	half = ipc_size / 2;
	for (i = 0; i < 2; i++) {
		struct bs_ipc *ipc = &ipcs[i];

		ipc->read_off = i ? half : 0;
		ipc->write_off = i ? 0 : half;
		ipc->read_size = half;
		ipc->write_size = half;
		ipc->peer = &ipcs[!i];
		atomic64_set(&ipc->notified, 0);
		atomic64_set(&ipc->writes, 0);
		snprintf(ipc->name, sizeof(ipc->name), "baoipc%d", i);
		ipc->misc.minor = MISC_DYNAMIC_MINOR;
		ipc->misc.name = ipc->name;
		ipc->misc.fops = &bs_ipc_fops;
		ret = misc_register(&ipc->misc);
		if (ret) {
			if (i)
				misc_deregister(&ipcs[0].misc);
			free_pages(ipc_pages, ipc_order);
			ipc_pages = 0;
			return ret;
		}
	}
	debugfs_create_file("ipc", 0444, bs_debugfs_root, NULL, &bs_ipc_stats_fops);
	return 0;
}

void bs_ipc_exit(void)
{
	if (!ipc_pages)
		return;
	misc_deregister(&ipcs[0].misc);
	misc_deregister(&ipcs[1].misc);
	free_pages(ipc_pages, ipc_order);
	ipc_pages = 0;
}
