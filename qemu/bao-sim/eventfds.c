// SPDX-License-Identifier: GPL-2.0
/*
 * bao-sim eventfds: the kernel ioeventfd client (spec §3.7, DEASSIGN quirk included) and the
 * irqfd server (spec §3.8) of each device model.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include "bao_sim.h"

/* ------------------------------------------------------------------ ioeventfd */

static bool bs_ioevfd_conflict(struct bs_dm *dm, struct eventfd_ctx *ctx, u64 addr,
			       bool datamatch, u64 data)
{
	struct bs_ioeventfd *p;

	list_for_each_entry(p, &dm->ioeventfds, node)
		if (p->ctx == ctx && p->addr == addr &&
		    (!p->datamatch || !datamatch || p->data == data))
			return true;
	return false;
}

long bs_ioeventfd_ioctl(struct bs_dm *dm, struct bao_ioeventfd *a)
{
	struct eventfd_ctx *ctx;
	struct bs_ioeventfd *p;
	unsigned long fl;

	if (a->flags & BAO_IOEVENTFD_FLAG_DEASSIGN) {
		/* v2 quirk: drop the first ioeventfd of that eventfd, then register anew. */
		ctx = eventfd_ctx_fdget(a->fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
		spin_lock_irqsave(&dm->lock, fl);
		list_for_each_entry(p, &dm->ioeventfds, node) {
			if (p->ctx == ctx) {
				list_del(&p->node);
				spin_unlock_irqrestore(&dm->lock, fl);
				eventfd_ctx_put(p->ctx);
				kfree(p);
				goto removed;
			}
		}
		spin_unlock_irqrestore(&dm->lock, fl);
removed:
		eventfd_ctx_put(ctx);
	}
	if (a->len != 1 && a->len != 2 && a->len != 4 && a->len != 8)
		return -EINVAL;
	if (a->addr + a->len < a->addr)
		return -EINVAL;
	ctx = eventfd_ctx_fdget(a->fd);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p) {
		eventfd_ctx_put(ctx);
		return -ENOMEM;
	}
	p->ctx = ctx;
	p->addr = a->addr;
	p->len = a->len;
	p->datamatch = a->flags & BAO_IOEVENTFD_FLAG_DATAMATCH;
	p->data = a->data;
	spin_lock_irqsave(&dm->lock, fl);
	if (bs_ioevfd_conflict(dm, ctx, p->addr, p->datamatch, p->data)) {
		spin_unlock_irqrestore(&dm->lock, fl);
		eventfd_ctx_put(ctx);
		kfree(p);
		return -EEXIST;
	}
	list_add_tail(&p->node, &dm->ioeventfds);
	spin_unlock_irqrestore(&dm->lock, fl);
	return 0;
}

/*
 * Called with dm->lock held. A request whose bytes all lie inside one registered inclusive
 * range belongs to the kernel client, reads included: it never reaches ATTACH. Returns true
 * when the request was handled here (the caller completes it with 0).
 */
bool bs_ioeventfd_route(struct bs_dm *dm, struct bs_req *r)
{
	struct bs_ioeventfd *p;
	u64 last = r->addr + r->width - 1;
	bool inside = false;

	list_for_each_entry(p, &dm->ioeventfds, node) {
		if (r->addr >= p->addr && last <= p->addr + p->len - 1 && last >= r->addr) {
			inside = true;
			break;
		}
	}
	if (!inside)
		return false;
	if (r->op == BAO_IO_WRITE) {
		list_for_each_entry(p, &dm->ioeventfds, node) {
			if (p->addr == r->addr && p->len >= r->width &&
			    (!p->datamatch || p->data == r->value)) {
				eventfd_signal(p->ctx, 1);
				atomic64_inc(&dm->st.ioeventfd_signals);
				return true;
			}
		}
	}
	atomic64_inc(&dm->st.ioeventfd_swallowed);
	return true;
}

void bs_ioeventfd_release_all(struct bs_dm *dm)
{
	struct bs_ioeventfd *p, *t;

	list_for_each_entry_safe(p, t, &dm->ioeventfds, node) {
		list_del(&p->node);
		eventfd_ctx_put(p->ctx);
		kfree(p);
	}
}

/* ------------------------------------------------------------------ irqfd */

struct bs_irqfd {
	struct list_head node;
	struct bs_dm *dm;
	struct eventfd_ctx *ctx;
	wait_queue_entry_t wait;
	poll_table pt;
	wait_queue_head_t *wqh;
	struct work_struct shutdown;
};

static void bs_irqfd_shutdown(struct work_struct *w)
{
	struct bs_irqfd *irqfd = container_of(w, struct bs_irqfd, shutdown);
	u64 cnt;

	eventfd_ctx_remove_wait_queue(irqfd->ctx, &irqfd->wait, &cnt);
	eventfd_ctx_put(irqfd->ctx);
	kfree(irqfd);
}

/* Called from the eventfd's wake-up (its lock held, interrupts off): never sleeps. */
static int bs_irqfd_wakeup(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct bs_irqfd *irqfd = container_of(wait, struct bs_irqfd, wait);
	__poll_t flags = key_to_poll(key);
	struct bs_dm *dm = irqfd->dm;
	unsigned long fl;

	if (flags & EPOLLIN)
		bs_dm_raise(dm);	/* one REMIO NOTIFY per wake-up, no coalescing */
	if (flags & EPOLLHUP) {
		spin_lock_irqsave(&dm->irqfd_lock, fl);
		if (!list_empty(&irqfd->node)) {
			list_del_init(&irqfd->node);
			queue_work(bs_cleanup_wq, &irqfd->shutdown);
		}
		spin_unlock_irqrestore(&dm->irqfd_lock, fl);
	}
	return 0;
}

static void bs_irqfd_ptable_queue(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct bs_irqfd *irqfd = container_of(pt, struct bs_irqfd, pt);

	irqfd->wqh = wqh;
	add_wait_queue(wqh, &irqfd->wait);
}

static long bs_irqfd_deassign(struct bs_dm *dm, int fd)
{
	struct eventfd_ctx *ctx = eventfd_ctx_fdget(fd);
	struct bs_irqfd *irqfd;
	unsigned long fl;

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	spin_lock_irqsave(&dm->irqfd_lock, fl);
	list_for_each_entry(irqfd, &dm->irqfds, node) {
		if (irqfd->ctx == ctx) {
			list_del_init(&irqfd->node);
			queue_work(bs_cleanup_wq, &irqfd->shutdown);
			break;
		}
	}
	spin_unlock_irqrestore(&dm->irqfd_lock, fl);
	eventfd_ctx_put(ctx);
	flush_workqueue(bs_cleanup_wq);
	return 0;
}

long bs_irqfd_ioctl(struct bs_dm *dm, struct bao_irqfd *a)
{
	struct bs_irqfd *irqfd, *t;
	struct eventfd_ctx *ctx;
	struct fd f;
	__poll_t events;
	unsigned long fl;
	long ret = 0;

	if (a->flags & BAO_IRQFD_FLAG_DEASSIGN)
		return bs_irqfd_deassign(dm, a->fd);
	f = fdget(a->fd);
	if (!f.file)
		return -EBADF;
	ctx = eventfd_ctx_fileget(f.file);
	if (IS_ERR(ctx)) {
		ret = PTR_ERR(ctx);
		goto out;
	}
	irqfd = kzalloc(sizeof(*irqfd), GFP_KERNEL);
	if (!irqfd) {
		eventfd_ctx_put(ctx);
		ret = -ENOMEM;
		goto out;
	}
	irqfd->dm = dm;
	irqfd->ctx = ctx;
	INIT_LIST_HEAD(&irqfd->node);
	INIT_WORK(&irqfd->shutdown, bs_irqfd_shutdown);
	init_waitqueue_func_entry(&irqfd->wait, bs_irqfd_wakeup);
	init_poll_funcptr(&irqfd->pt, bs_irqfd_ptable_queue);
	spin_lock_irqsave(&dm->irqfd_lock, fl);
	list_for_each_entry(t, &dm->irqfds, node) {
		if (t->ctx == ctx) {
			spin_unlock_irqrestore(&dm->irqfd_lock, fl);
			eventfd_ctx_put(ctx);
			kfree(irqfd);
			ret = -EBUSY;
			goto out;
		}
	}
	list_add_tail(&irqfd->node, &dm->irqfds);
	spin_unlock_irqrestore(&dm->irqfd_lock, fl);
	/* Hooks the wait entry; an eventfd already readable notifies once right away. */
	events = vfs_poll(f.file, &irqfd->pt);
	if (events & EPOLLIN)
		bs_dm_raise(dm);
out:
	fdput(f);
	return ret;
}

void bs_irqfd_release_all(struct bs_dm *dm)
{
	struct bs_irqfd *irqfd, *t;
	unsigned long fl;

	spin_lock_irqsave(&dm->irqfd_lock, fl);
	list_for_each_entry_safe(irqfd, t, &dm->irqfds, node) {
		list_del_init(&irqfd->node);
		queue_work(bs_cleanup_wq, &irqfd->shutdown);
	}
	spin_unlock_irqrestore(&dm->irqfd_lock, fl);
	flush_workqueue(bs_cleanup_wq);
}
