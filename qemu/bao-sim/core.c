// SPDX-License-Identifier: GPL-2.0
/*
 * bao-sim core: module parameters, the device models (DMs), the request path that plays the
 * hypervisor's remio service (spec §3.9), /dev/bao-io-dispatcher and the per-DM anonymous fds
 * with the v2 ioctl and mmap semantics (spec §2.1, §3.4, §3.5).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/anon_inodes.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/ioport.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/sched.h>
#include <linux/cpumask.h>
#include <linux/workqueue.h>
#include <linux/debugfs.h>
#include <linux/reboot.h>
#include "bao_sim.h"

static unsigned int ndms = 8;
module_param(ndms, uint, 0444);
MODULE_PARM_DESC(ndms, "number of device models, ids 0..ndms-1 (max 16, default 8)");

static int frontends[BS_MAX_DMS];
static int nfrontends;
module_param_array(frontends, int, &nfrontends, 0444);
MODULE_PARM_DESC(frontends, "DM ids with a frontend virtio device attached (e.g. frontends=0,3)");

static ulong mmio_base = 0xa000000;
module_param(mmio_base, ulong, 0444);
MODULE_PARM_DESC(mmio_base, "virtio-mmio window of DM i = mmio_base + i * 0x200 unless mmio= says otherwise");

static ulong mmio[BS_MAX_DMS];
static int nmmio;
module_param_array(mmio, ulong, &nmmio, 0444);
MODULE_PARM_DESC(mmio, "per-DM virtio-mmio window addresses (size 0x200 each)");

static uint irq[BS_MAX_DMS];
static int nirq;
module_param_array(irq, uint, &nirq, 0444);
MODULE_PARM_DESC(irq, "per-DM interrupt number reported by DM_GET_INFO (default 48 + id)");

static ulong shmem_size = 1 << 20;
module_param(shmem_size, ulong, 0444);
MODULE_PARM_DESC(shmem_size, "shared region size of DMs without frontend (page multiple, <= 4 MiB, default 1 MiB)");

static ulong ram_shmem_addr = 0x100000;
module_param(ram_shmem_addr, ulong, 0444);
MODULE_PARM_DESC(ram_shmem_addr, "start of the shared region of DMs with a frontend: it covers guest RAM from here to the end of that System RAM block");

static char *abi = "v2";
module_param(abi, charp, 0444);
MODULE_PARM_DESC(abi, "driver ABI revision offered: v2 (default, /dev/bao-io-dispatcher), revA (/dev/bao-dm<N>) or revB (/dev/bao, type 0xA7)");

static int frontend_cpu;
module_param(frontend_cpu, int, 0444);
MODULE_PARM_DESC(frontend_cpu, "CPU playing the frontend VM's vCPU: frontend probe and device interrupts run there (default 0; -1: any CPU)");

static int bs_abi = BS_ABI_V2;
struct bs_dm *bs_dms[BS_MAX_DMS];
unsigned int bs_ndms;
struct workqueue_struct *bs_wq;
struct workqueue_struct *bs_cleanup_wq;
struct dentry *bs_debugfs_root;
static atomic64_t bs_next_id = ATOMIC64_INIT(0);

struct bs_dm *bs_dm_get(u64 id)
{
	return id < bs_ndms ? bs_dms[id] : NULL;
}

/* ------------------------------------------------------------------ requests */

/* Called with dm->lock held: the request leaves every list and its issuer resumes. */
void bs_req_finish(struct bs_dm *dm, struct bs_req *r, u64 result)
{
	if (!r->waited) {
		kfree(r);
		return;
	}
	r->result = result;
	r->finished = true;
	complete(&r->done);
}

/*
 * The hypervisor side of a frontend access (spec §3.9 steps 2-3): give it a slot id, route it
 * to the kernel ioeventfd client when an ioeventfd range covers it, else queue it FIFO for the
 * control client (ATTACH). Safe in atomic context.
 */
void bs_submit(struct bs_dm *dm, struct bs_req *r)
{
	unsigned long fl;

	atomic64_inc(&dm->st.requests);
	spin_lock_irqsave(&dm->lock, fl);
	r->id = atomic64_inc_return(&bs_next_id);
	if (dm->aborting) {
		atomic64_inc(&dm->st.aborted);
		bs_req_finish(dm, r, ~0ULL);
	} else if (bs_ioeventfd_route(dm, r)) {
		bs_req_finish(dm, r, 0);
	} else {
		list_add_tail(&r->node, &dm->queue);
		WRITE_ONCE(dm->wake_gen, dm->wake_gen + 1);
		wake_up_interruptible(&dm->wq);
	}
	spin_unlock_irqrestore(&dm->lock, fl);
}

/* A frontend store that does not wait for completion (QueueNotify kicks in atomic context). */
int bs_submit_nowait(struct bs_dm *dm, u64 off, u32 width, u64 value)
{
	struct bs_req *r = kzalloc(sizeof(*r), GFP_ATOMIC);

	if (!r) {
		atomic64_inc(&dm->st.dropped);
		return -ENOMEM;
	}
	r->addr = dm->mmio_base + off;
	r->op = BAO_IO_WRITE;
	r->value = value;
	r->width = width;
	bs_submit(dm, r);
	return 0;
}

/*
 * A frontend access that stalls its caller until the backend completes it, like a vCPU paused
 * by Bao. Killable only for debugfs callers; the kernel's own virtio paths wait like a vCPU.
 */
u64 bs_access(struct bs_dm *dm, u64 off, u32 width, bool write, u64 value, int *err, bool killable)
{
	struct bs_req r = {
		.addr = dm->mmio_base + off,
		.op = write ? BAO_IO_WRITE : BAO_IO_READ,
		.value = write ? value : 0,
		.width = width,
		.waited = true,
	};
	unsigned long fl;

	if (err)
		*err = 0;
	if (!preemptible()) {
		/* Cannot stall here: a store is posted, a load reads as a bus error. */
		if (write)
			bs_submit_nowait(dm, off, width, value);
		return ~0ULL;
	}
	init_completion(&r.done);
	INIT_LIST_HEAD(&r.node);
	bs_submit(dm, &r);
	if (killable) {
		if (wait_for_completion_killable(&r.done)) {
			spin_lock_irqsave(&dm->lock, fl);
			if (!r.finished)
				list_del(&r.node);
			spin_unlock_irqrestore(&dm->lock, fl);
			if (!r.finished) {
				if (err)
					*err = -EINTR;
				return ~0ULL;
			}
		}
	} else {
		/* TASK_IDLE: the stall may last as long as no backend runs; not a hung task. */
		wait_for_completion_state(&r.done, TASK_IDLE);
	}
	return r.result;
}

/* Unload: every pending access reads as all-ones, later ones do not wait. */
void bs_dm_abort(struct bs_dm *dm)
{
	struct bs_req *r, *t;
	unsigned long fl;

	spin_lock_irqsave(&dm->lock, fl);
	dm->aborting = true;
	list_for_each_entry_safe(r, t, &dm->queue, node) {
		list_del(&r->node);
		atomic64_inc(&dm->st.aborted);
		bs_req_finish(dm, r, ~0ULL);
	}
	list_for_each_entry_safe(r, t, &dm->inflight, node) {
		list_del(&r->node);
		atomic64_inc(&dm->st.aborted);
		bs_req_finish(dm, r, ~0ULL);
	}
	spin_unlock_irqrestore(&dm->lock, fl);
	wake_up_interruptible_all(&dm->wq);
}

/*
 * Frontend work (probe, the device interrupt) runs on the frontend CPU, as on Bao, where the
 * frontend VM's interrupts are taken by its own vCPUs. It matters for drivers that spin with
 * interrupts off while the backend works: virtio_console's put_chars holds the hvc lock while it
 * waits, and the interrupt's in_intr takes that lock. Run elsewhere, on the backend's CPU, the
 * handler would spin there too and the backend could never answer.
 */
void bs_queue_frontend_work(struct work_struct *w)
{
	if (frontend_cpu >= 0)
		queue_work_on(frontend_cpu, bs_wq, w);
	else
		queue_work(bs_wq, w);
}

/* REMIO NOTIFY: the frontend interrupt of this DM fires. */
void bs_dm_raise(struct bs_dm *dm)
{
	atomic64_inc(&dm->st.irqfd_notifications);
	if (dm->fe)
		bs_queue_frontend_work(&dm->irq_work);
}

/* ------------------------------------------------------------------ DM fd */

static long bs_attach(struct bs_dm *dm, void __user *arg)
{
	struct bao_virtio_request req;
	struct bs_req *r;
	unsigned long fl;

	u64 gen;
	bool empty;
	int w = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	spin_lock_irqsave(&dm->lock, fl);
	empty = list_empty(&dm->queue);
	gen = dm->wake_gen;
	spin_unlock_irqrestore(&dm->lock, fl);
	/*
	 * Every sleeper leaves the wait at each new request, whoever takes it: the ones that find
	 * the queue empty get EFAULT, and v2 ignores the wait's result, so a signal surfaces as
	 * EFAULT too (spec §3.4, §9).
	 */
	if (empty)
		w = wait_event_interruptible(dm->wq, READ_ONCE(dm->wake_gen) != gen ||
					     READ_ONCE(dm->aborting));
	spin_lock_irqsave(&dm->lock, fl);
	if (dm->aborting) {
		spin_unlock_irqrestore(&dm->lock, fl);
		return -EPERM;
	}
	if (list_empty(&dm->queue)) {
		spin_unlock_irqrestore(&dm->lock, fl);
		/* revB tells the cases apart: a signal restarts (EINTR), an empty queue is EAGAIN. */
		if (bs_abi == BS_ABI_REVB)
			return w ? w : -EAGAIN;
		return -EFAULT;
	}
	r = list_first_entry(&dm->queue, struct bs_req, node);
	list_move_tail(&r->node, &dm->inflight);
	req.dm_id = dm->id;
	req.addr = r->addr;
	req.op = r->op;
	req.value = r->value;
	req.access_width = r->width;
	req.request_id = r->id;
	spin_unlock_irqrestore(&dm->lock, fl);
	atomic64_inc(&dm->st.attached);
	/* As in v2 the request has left the queue: a bad pointer loses it (frontend stalls). */
	if (copy_to_user(arg, &req, sizeof(req)))
		return -EFAULT;
	return 0;
}

/*
 * The REMIO READ/WRITE completion hypercall, whose raw status is the ioctl result (spec §3.4,
 * §4.1): dm_id is taken from the struct, not from the fd, as the drivers forward it unchecked.
 */
static long bs_complete(struct bs_dm *fd_dm, void __user *arg)
{
	struct bao_virtio_request req;
	struct bs_dm *dm;
	struct bs_req *r, *found = NULL;
	unsigned long fl;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	dm = bs_dm_get(req.dm_id);
	if (!dm || req.op > BAO_IO_NOTIFY) {
		atomic64_inc(&fd_dm->st.complete_errors);
		return -3;
	}
	if (req.op == BAO_IO_NOTIFY) {
		bs_dm_raise(dm);
		return 0;
	}
	if (req.op == BAO_IO_ASK) {
		/* An ASK with nothing for it to take fails with +1 in the hypervisor. */
		atomic64_inc(&fd_dm->st.complete_errors);
		return 1;
	}
	spin_lock_irqsave(&dm->lock, fl);
	list_for_each_entry(r, &dm->inflight, node) {
		if (r->id == req.request_id) {
			found = r;
			break;
		}
	}
	if (!found) {
		spin_unlock_irqrestore(&dm->lock, fl);
		atomic64_inc(&fd_dm->st.complete_errors);
		return -1;
	}
	list_del(&found->node);
	/* READ: the value lands verbatim in the vCPU register (no masking, spec §3.9 step 5). */
	bs_req_finish(dm, found, (req.op == BAO_IO_READ && found->op == BAO_IO_READ) ? req.value : 0);
	spin_unlock_irqrestore(&dm->lock, fl);
	atomic64_inc(&dm->st.completions);
	return 0;
}

static long bs_dm_get_info_node(struct bs_dm *dm, unsigned int cmd, void __user *up)
{
	if (bs_abi == BS_ABI_REVA && cmd == BAO_IOCTL_DM_GET_INFO) {
		/* revA: the v2 struct without an fd (the tail stays zero here). */
		struct bao_dm_info info = { .id = dm->id, .shmem_addr = dm->shmem_addr,
					    .shmem_size = dm->shmem_size, .irq = dm->irq };
		return copy_to_user(up, &info, sizeof(info)) ? -EFAULT : 0;
	}
	if (bs_abi == BS_ABI_REVB && cmd == BAO_REVB_DM_GET_INFO) {
		struct bao_dm_info_revb info = { .shmem_addr = dm->shmem_addr,
						 .shmem_size = dm->shmem_size, .id = dm->id,
						 .irq = dm->irq };
		return copy_to_user(up, &info, sizeof(info)) ? -EFAULT : 0;
	}
	return -ENOTTY;
}

/* revB numbers the same DM ioctls with type 0xA7; v2 and revA with 0xA6. */
static unsigned int bs_dm_cmd(unsigned int cmd)
{
	if (bs_abi != BS_ABI_REVB)
		return _IOC_TYPE(cmd) == BAO_IOCTL_TYPE ? cmd : 0;
	switch (cmd) {
	case BAO_REVB_ATTACH:
		return BAO_IOCTL_IO_CLIENT_ATTACH;
	case BAO_REVB_COMPLETE:
		return BAO_IOCTL_IO_REQUEST_COMPLETE;
	case BAO_REVB_IOEVENTFD:
		return BAO_IOCTL_IOEVENTFD;
	case BAO_REVB_IRQFD:
		return BAO_IOCTL_IRQFD;
	default:
		return 0;
	}
}

static long bs_dm_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct bs_dm *dm = f->private_data;
	void __user *up = (void __user *)arg;

	switch (bs_dm_cmd(cmd)) {
	case BAO_IOCTL_IO_CLIENT_ATTACH:
		return bs_attach(dm, up);
	case BAO_IOCTL_IO_REQUEST_COMPLETE:
		return bs_complete(dm, up);
	case BAO_IOCTL_IOEVENTFD: {
		struct bao_ioeventfd a;

		if (copy_from_user(&a, up, sizeof(a)))
			return -EFAULT;
		return bs_ioeventfd_ioctl(dm, &a);
	}
	case BAO_IOCTL_IRQFD: {
		struct bao_irqfd a;

		if (copy_from_user(&a, up, sizeof(a)))
			return -EFAULT;
		return bs_irqfd_ioctl(dm, &a);
	}
	default:
		return bs_dm_get_info_node(dm, cmd, up);
	}
}

/* v2 mmap (spec §3.5): offset 0, 0 < length <= shmem_size, else EINVAL. */
static int bs_dm_mmap(struct file *f, struct vm_area_struct *vma)
{
	struct bs_dm *dm = f->private_data;
	unsigned long len = vma->vm_end - vma->vm_start;

	if (vma->vm_pgoff != 0 || len == 0 || len > dm->shmem_size)
		return -EINVAL;
	return remap_pfn_range(vma, vma->vm_start, dm->shmem_addr >> PAGE_SHIFT, len,
			       vma->vm_page_prot);
}

static loff_t bs_dm_llseek(struct file *f, loff_t off, int whence)
{
	struct bs_dm *dm = f->private_data;

	return fixed_size_llseek(f, off, whence, dm->shmem_size);
}

static const struct file_operations bs_dm_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = bs_dm_ioctl,
	.mmap = bs_dm_mmap,
	.llseek = bs_dm_llseek,
};

/* revA: the node is the DM (misc_open left the miscdevice in private_data). */
static int bs_reva_open(struct inode *inode, struct file *f)
{
	struct miscdevice *m = f->private_data;
	unsigned int i;

	for (i = 0; i < bs_ndms; i++) {
		if (bs_dms[i] && bs_dms[i]->misc == m) {
			f->private_data = bs_dms[i];
			return 0;
		}
	}
	return -ENODEV;
}

static const struct file_operations bs_reva_fops = {
	.owner = THIS_MODULE,
	.open = bs_reva_open,
	.unlocked_ioctl = bs_dm_ioctl,
	.mmap = bs_dm_mmap,
	.llseek = bs_dm_llseek,
};

/* revB: closing the CREATE_DM fd destroys the DM (its eventfd bindings go with it). */
static int bs_revb_release(struct inode *inode, struct file *f)
{
	struct bs_dm *dm = f->private_data;

	bs_irqfd_release_all(dm);
	bs_ioeventfd_release_all(dm);
	atomic_set(&dm->revb_open, 0);
	return 0;
}

static const struct file_operations bs_revb_dm_fops = {
	.owner = THIS_MODULE,
	.release = bs_revb_release,
	.unlocked_ioctl = bs_dm_ioctl,
	.mmap = bs_dm_mmap,
	.llseek = bs_dm_llseek,
};

static long bs_ctl_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct bao_dm_info_revb info;
	struct bs_dm *dm;
	char name[16];
	int fd;

	if (cmd != BAO_REVB_CREATE_DM)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, sizeof(info)))
		return -EFAULT;
	dm = bs_dm_get(info.id);
	if (!dm)
		return -EINVAL;
	if (atomic_cmpxchg(&dm->revb_open, 0, 1) != 0)
		return -EEXIST;
	snprintf(name, sizeof(name), "bao-dm%u", dm->id);
	fd = anon_inode_getfd(name, &bs_revb_dm_fops, dm, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		atomic_set(&dm->revb_open, 0);
	return fd;
}

static const struct file_operations bs_ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = bs_ctl_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice bs_ctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "bao",
	.fops = &bs_ctl_fops,
};

/* ------------------------------------------------------------------ dispatcher node */

static long bs_disp_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct bao_dm_info info;
	struct bs_dm *dm;
	char name[16];

	if (cmd != BAO_IOCTL_DM_GET_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, sizeof(info)))
		return -EFAULT;
	dm = bs_dm_get(info.id);
	if (!dm)
		return -ENOENT;
	info.shmem_addr = dm->shmem_addr;
	info.shmem_size = dm->shmem_size;
	info.irq = dm->irq;
	snprintf(name, sizeof(name), "bao-dm%u", dm->id);
	/* A new fd per call; a failure is reported in the struct, the ioctl still returns 0. */
	info.fd = anon_inode_getfd(name, &bs_dm_fops, dm, O_RDWR | O_CLOEXEC);
	if (copy_to_user((void __user *)arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static const struct file_operations bs_disp_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = bs_disp_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice bs_disp_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "bao-io-dispatcher",
	.fops = &bs_disp_fops,
};

/* ------------------------------------------------------------------ setup */

/* End of the System RAM block holding ram_shmem_addr: the frontend DMs' region (README). */
static u64 bs_ram_block_end(u64 start)
{
	struct resource *res;

	for (res = iomem_resource.child; res; res = res->sibling) {
		if ((res->flags & IORESOURCE_SYSTEM_RAM) == IORESOURCE_SYSTEM_RAM &&
		    res->start <= start && start <= res->end)
			return res->end + 1;
	}
	return 0;
}

static void bs_dm_free(struct bs_dm *dm)
{
	if (dm->shmem_pages)
		free_pages(dm->shmem_pages, dm->shmem_order);
	kfree(dm);
}

static int bs_dm_create(unsigned int id, bool fe)
{
	struct bs_dm *dm = kzalloc(sizeof(*dm), GFP_KERNEL);

	if (!dm)
		return -ENOMEM;
	dm->id = id;
	dm->mmio_base = (nmmio > id && mmio[id]) ? mmio[id] : mmio_base + id * BS_MMIO_WINDOW;
	dm->irq = (nirq > id && irq[id]) ? irq[id] : 48 + id;
	dm->has_fe = fe;
	spin_lock_init(&dm->lock);
	spin_lock_init(&dm->irqfd_lock);
	INIT_LIST_HEAD(&dm->queue);
	INIT_LIST_HEAD(&dm->inflight);
	INIT_LIST_HEAD(&dm->ioeventfds);
	INIT_LIST_HEAD(&dm->irqfds);
	init_waitqueue_head(&dm->wq);
	INIT_WORK(&dm->irq_work, bs_fe_interrupt);
	dm->fe_state = fe ? "probing" : "none";
	if (fe) {
		u64 end = bs_ram_block_end(ram_shmem_addr);

		if (!end || !PAGE_ALIGNED(ram_shmem_addr)) {
			pr_err("bao-sim: dm%u: no System RAM block at %#lx\n", id, ram_shmem_addr);
			kfree(dm);
			return -EINVAL;
		}
		dm->shmem_addr = ram_shmem_addr;
		dm->shmem_size = end - ram_shmem_addr;
	} else {
		dm->shmem_order = get_order(shmem_size);
		dm->shmem_pages = __get_free_pages(GFP_KERNEL | __GFP_ZERO, dm->shmem_order);
		if (!dm->shmem_pages) {
			kfree(dm);
			return -ENOMEM;
		}
		dm->shmem_addr = virt_to_phys((void *)dm->shmem_pages);
		dm->shmem_size = shmem_size;
	}
	bs_dms[id] = dm;
	bs_debugfs_dm(dm);
	return 0;
}

static void bs_teardown(void)
{
	unsigned int i;

	for (i = 0; i < bs_ndms; i++)
		if (bs_dms[i])
			bs_dm_abort(bs_dms[i]);
	for (i = 0; i < bs_ndms; i++) {
		struct bs_dm *dm = bs_dms[i];

		if (!dm)
			continue;
		if (dm->fe)
			bs_fe_destroy(dm);
		cancel_work_sync(&dm->irq_work);
		bs_irqfd_release_all(dm);
		bs_ioeventfd_release_all(dm);
	}
	if (bs_wq)
		destroy_workqueue(bs_wq);
	if (bs_cleanup_wq)
		destroy_workqueue(bs_cleanup_wq);
	bs_wq = NULL;
	bs_cleanup_wq = NULL;
	debugfs_remove_recursive(bs_debugfs_root);
	for (i = 0; i < bs_ndms; i++) {
		if (bs_dms[i])
			bs_dm_free(bs_dms[i]);
		bs_dms[i] = NULL;
	}
}

/*
 * The machine going down (halt, power-off, reboot, kexec): the kernel's shutdown resets every
 * virtio device that has a driver bound (virtio_dev_shutdown), through register accesses that
 * wait for a backend. A frontend whose DM's daemon died or stopped would wait for good, as a
 * frontend vCPU stays paused on Bao, and the machine would never power off. No backend outlives
 * the machine: from here on every DM's accesses are aborted, as at unload (reads complete as
 * all-ones, later accesses do not wait). Runs before any device's shutdown.
 */
static int bs_reboot(struct notifier_block *nb, unsigned long action, void *data)
{
	unsigned int i;

	for (i = 0; i < bs_ndms; i++)
		if (bs_dms[i])
			bs_dm_abort(bs_dms[i]);
	return NOTIFY_DONE;
}

static struct notifier_block bs_reboot_nb = { .notifier_call = bs_reboot };

static void bs_nodes_deregister(void)
{
	unsigned int i;

	if (bs_abi == BS_ABI_V2)
		misc_deregister(&bs_disp_misc);
	if (bs_abi == BS_ABI_REVB)
		misc_deregister(&bs_ctl_misc);
	for (i = 0; i < bs_ndms; i++) {
		if (bs_dms[i] && bs_dms[i]->misc) {
			misc_deregister(bs_dms[i]->misc);
			kfree(bs_dms[i]->misc);
			bs_dms[i]->misc = NULL;
		}
	}
}

/* The nodes of the chosen ABI revision (spec §2.1): one dispatcher, one node per DM, or /dev/bao. */
static int bs_nodes_register(void)
{
	unsigned int i;
	int ret;

	if (bs_abi == BS_ABI_V2)
		return misc_register(&bs_disp_misc);
	if (bs_abi == BS_ABI_REVB)
		return misc_register(&bs_ctl_misc);
	for (i = 0; i < bs_ndms; i++) {
		struct bs_dm *dm = bs_dms[i];
		struct miscdevice *m = kzalloc(sizeof(*m), GFP_KERNEL);

		if (!m) {
			ret = -ENOMEM;
			goto fail;
		}
		snprintf(dm->misc_name, sizeof(dm->misc_name), "bao-dm%u", dm->id);
		m->minor = MISC_DYNAMIC_MINOR;
		m->name = dm->misc_name;
		m->fops = &bs_reva_fops;
		ret = misc_register(m);
		if (ret) {
			kfree(m);
			goto fail;
		}
		dm->misc = m;
	}
	return 0;
fail:
	bs_nodes_deregister();
	return ret;
}

static int __init bs_init(void)
{
	unsigned int i;
	int ret, k;

	if (ndms > BS_MAX_DMS || ndms == 0 || !shmem_size || !PAGE_ALIGNED(shmem_size) ||
	    shmem_size > (4UL << 20) || !is_power_of_2(shmem_size >> PAGE_SHIFT)) {
		pr_err("bao-sim: bad parameters (ndms 1..16, shmem_size a power-of-two page count <= 4 MiB)\n");
		return -EINVAL;
	}
	if (!strcmp(abi, "v2")) {
		bs_abi = BS_ABI_V2;
	} else if (!strcmp(abi, "revA")) {
		bs_abi = BS_ABI_REVA;
	} else if (!strcmp(abi, "revB")) {
		bs_abi = BS_ABI_REVB;
	} else {
		pr_err("bao-sim: abi must be v2, revA or revB\n");
		return -EINVAL;
	}
	for (k = 0; k < nfrontends; k++) {
		if (frontends[k] < 0 || frontends[k] >= ndms) {
			pr_err("bao-sim: frontend DM id %d out of range\n", frontends[k]);
			return -EINVAL;
		}
	}
	if (frontend_cpu >= (int)nr_cpu_ids || (frontend_cpu >= 0 && !cpu_online(frontend_cpu))) {
		pr_err("bao-sim: frontend_cpu %d is not an online CPU\n", frontend_cpu);
		return -EINVAL;
	}
	/* Per-CPU (bound) so that queue_work_on really runs on frontend_cpu. */
	bs_wq = alloc_workqueue("bao-sim", frontend_cpu >= 0 ? 0 : WQ_UNBOUND, 0);
	bs_cleanup_wq = alloc_workqueue("bao-sim-cleanup", 0, 0);
	if (!bs_wq || !bs_cleanup_wq) {
		if (bs_wq)
			destroy_workqueue(bs_wq);
		if (bs_cleanup_wq)
			destroy_workqueue(bs_cleanup_wq);
		return -ENOMEM;
	}
	bs_debugfs_root = debugfs_create_dir("bao-sim", NULL);
	bs_ndms = ndms;
	for (i = 0; i < ndms; i++) {
		bool fe = false;

		for (k = 0; k < nfrontends; k++)
			fe |= frontends[k] == i;
		ret = bs_dm_create(i, fe);
		if (ret)
			goto fail;
	}
	ret = bs_ipc_init();
	if (ret)
		goto fail;
	ret = bs_nodes_register();
	if (ret) {
		bs_ipc_exit();
		goto fail;
	}
	/* Frontends probe from the workqueue: insmod and boot never wait for a backend. */
	for (i = 0; i < ndms; i++) {
		if (bs_dms[i]->has_fe) {
			ret = bs_fe_create(bs_dms[i]);
			if (ret)
				pr_warn("bao-sim: dm%u: frontend not created (%d)\n", i, ret);
		}
	}
	register_reboot_notifier(&bs_reboot_nb);
	pr_info("bao-sim: %u device models, %d with a frontend, ABI %s, frontend CPU %d\n", ndms,
		nfrontends, abi, frontend_cpu);
	return 0;
fail:
	bs_teardown();
	return ret;
}

static void __exit bs_exit(void)
{
	unregister_reboot_notifier(&bs_reboot_nb);
	bs_nodes_deregister();
	bs_ipc_exit();
	bs_teardown();
	pr_info("bao-sim: unloaded\n");
}

module_init(bs_init);
module_exit(bs_exit);
MODULE_LICENSE("GPL");
MODULE_AUTHOR("node-bao");
MODULE_DESCRIPTION("Bao hypervisor remio/IPC simulator with the v2 I/O dispatcher ABI");
