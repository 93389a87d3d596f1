/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bao-sim: shared declarations. bao-sim plays, inside one guest kernel, the Bao hypervisor's
 * remote I/O (remio) and IPC services, the v2 I/O dispatcher and IPC drivers that expose them to
 * userspace, and the frontend side (a virtio transport that turns configuration operations into
 * virtio-mmio register accesses queued to a device model). ABI: shared/spec/bao-abi.md.
 */
#ifndef BAO_SIM_H
#define BAO_SIM_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/completion.h>
#include <linux/atomic.h>
#include <linux/miscdevice.h>

/* ---- v2 UAPI (spec §3.1-3.3); layouts are fixed by the ABI, not by this module ---- */
struct bao_virtio_request {
	__u64 dm_id;
	__u64 addr;
	__u64 op;
	__u64 value;
	__u64 access_width;
	__u64 request_id;
};

struct bao_dm_info {
	__u32 id;
	__u64 shmem_addr;
	__u64 shmem_size;
	__u32 irq;
	__s32 fd;
};

struct bao_ioeventfd {
	__u32 fd;
	__u32 flags;
	__u64 addr;
	__u32 len;
	__u32 reserved;
	__u64 data;
};

struct bao_irqfd {
	__s32 fd;
	__u32 flags;
};

#define BAO_IOCTL_TYPE 0xA6
#define BAO_IOCTL_DM_GET_INFO _IOWR(BAO_IOCTL_TYPE, 0x01, struct bao_dm_info)
#define BAO_IOCTL_IO_CLIENT_ATTACH _IOWR(BAO_IOCTL_TYPE, 0x02, struct bao_virtio_request)
#define BAO_IOCTL_IO_REQUEST_COMPLETE _IOW(BAO_IOCTL_TYPE, 0x03, struct bao_virtio_request)
#define BAO_IOCTL_IOEVENTFD _IOW(BAO_IOCTL_TYPE, 0x04, struct bao_ioeventfd)
#define BAO_IOCTL_IRQFD _IOW(BAO_IOCTL_TYPE, 0x05, struct bao_irqfd)

/* revB (spec §3.2, §3.3): type 0xA7, a reordered 24-byte info struct, CREATE_DM on /dev/bao. */
struct bao_dm_info_revb {
	__u64 shmem_addr;
	__u64 shmem_size;
	__u32 id;
	__u32 irq;
};

#define BAO_REVB_TYPE 0xA7
#define BAO_REVB_CREATE_DM _IOW(BAO_REVB_TYPE, 0x00, struct bao_dm_info_revb)
#define BAO_REVB_DM_GET_INFO _IOWR(BAO_REVB_TYPE, 0x01, struct bao_dm_info_revb)
#define BAO_REVB_ATTACH _IOWR(BAO_REVB_TYPE, 0x02, struct bao_virtio_request)
#define BAO_REVB_COMPLETE _IOW(BAO_REVB_TYPE, 0x03, struct bao_virtio_request)
#define BAO_REVB_IOEVENTFD _IOW(BAO_REVB_TYPE, 0x04, struct bao_ioeventfd)
#define BAO_REVB_IRQFD _IOW(BAO_REVB_TYPE, 0x05, struct bao_irqfd)

enum bs_abi { BS_ABI_V2, BS_ABI_REVA, BS_ABI_REVB };

#define BAO_IO_WRITE 0
#define BAO_IO_READ 1
#define BAO_IO_ASK 2
#define BAO_IO_NOTIFY 3

#define BAO_IOEVENTFD_FLAG_DATAMATCH (1 << 1)
#define BAO_IOEVENTFD_FLAG_DEASSIGN (1 << 2)
#define BAO_IRQFD_FLAG_DEASSIGN 1

#define BS_MAX_DMS 16
#define BS_MMIO_WINDOW 0x200

/* virtio-mmio v2 register offsets (virtio spec 4.2.2) used by the frontend transport. */
#define VM_MAGIC 0x000
#define VM_VERSION 0x004
#define VM_DEVICE_ID 0x008
#define VM_VENDOR_ID 0x00c
#define VM_DEVICE_FEATURES 0x010
#define VM_DEVICE_FEATURES_SEL 0x014
#define VM_DRIVER_FEATURES 0x020
#define VM_DRIVER_FEATURES_SEL 0x024
#define VM_QUEUE_SEL 0x030
#define VM_QUEUE_NUM_MAX 0x034
#define VM_QUEUE_NUM 0x038
#define VM_QUEUE_READY 0x044
#define VM_QUEUE_NOTIFY 0x050
#define VM_INTERRUPT_STATUS 0x060
#define VM_INTERRUPT_ACK 0x064
#define VM_STATUS 0x070
#define VM_QUEUE_DESC_LOW 0x080
#define VM_QUEUE_DESC_HIGH 0x084
#define VM_QUEUE_DRIVER_LOW 0x090
#define VM_QUEUE_DRIVER_HIGH 0x094
#define VM_QUEUE_DEVICE_LOW 0x0a0
#define VM_QUEUE_DEVICE_HIGH 0x0a4
#define VM_CONFIG_GENERATION 0x0fc
#define VM_CONFIG 0x100
#define VM_MAGIC_VALUE 0x74726976
#define VM_INT_VRING 1
#define VM_INT_CONFIG 2

/* A frontend register access in flight (the hypervisor's request slot, spec §3.9). */
struct bs_req {
	struct list_head node;	/* in dm->queue (PENDING) or dm->inflight (PROCESSING) */
	u64 addr, op, value, width, id;
	u64 result;		/* READ: value userspace completed with */
	bool waited;		/* a frontend context sleeps on done; else heap, freed on finish */
	bool finished;
	struct completion done;
};

struct bs_ioeventfd {
	struct list_head node;
	struct eventfd_ctx *ctx;
	u64 addr;
	u32 len;
	bool datamatch;
	u64 data;
};

struct bs_fe;

struct bs_stats {
	atomic64_t requests;		/* frontend accesses submitted */
	atomic64_t completions;		/* COMPLETE ioctls that completed a request */
	atomic64_t complete_errors;	/* COMPLETE ioctls rejected (unknown id, ...) */
	atomic64_t attached;		/* requests delivered to ATTACH */
	atomic64_t irqfd_notifications;	/* irqfd wake-ups = REMIO NOTIFY hypercalls */
	atomic64_t ioeventfd_signals;	/* writes that signalled an ioeventfd */
	atomic64_t ioeventfd_swallowed;	/* reads / non-matching writes completed in the kernel */
	atomic64_t fe_interrupts;	/* frontend interrupt handler runs */
	atomic64_t aborted;		/* accesses completed with all-ones on unload */
	atomic64_t dropped;		/* atomic-context kicks that could not be allocated */
};

struct bs_dm {
	u32 id;
	u64 mmio_base;
	u64 shmem_addr, shmem_size;
	unsigned long shmem_pages;	/* private region (no frontend): __get_free_pages result */
	unsigned int shmem_order;
	u32 irq;
	bool has_fe;

	spinlock_t lock;		/* queue, inflight, ioeventfds, aborting */
	struct list_head queue;
	struct list_head inflight;
	struct list_head ioeventfds;
	wait_queue_head_t wq;		/* ATTACH sleepers (non-exclusive: all woken, one wins) */
	bool aborting;
	u64 wake_gen;		/* bumped per queued request: wakes every sleeper */

	spinlock_t irqfd_lock;
	struct list_head irqfds;
	struct work_struct irq_work;	/* the frontend's interrupt handler (sleeping context) */

	struct bs_fe *fe;
	const char *fe_state;

	struct miscdevice *misc;	/* revA: /dev/bao-dm<N> */
	char misc_name[16];
	atomic_t revb_open;		/* revB: the DM exists while its CREATE_DM fd is open */
	struct bs_stats st;
	struct dentry *dbg;
};

extern struct bs_dm *bs_dms[BS_MAX_DMS];
extern unsigned int bs_ndms;
extern struct workqueue_struct *bs_wq;
void bs_queue_frontend_work(struct work_struct *w);
extern struct workqueue_struct *bs_cleanup_wq;
extern struct dentry *bs_debugfs_root;

struct bs_dm *bs_dm_get(u64 id);
void bs_submit(struct bs_dm *dm, struct bs_req *r);
void bs_req_finish(struct bs_dm *dm, struct bs_req *r, u64 result);
u64 bs_access(struct bs_dm *dm, u64 off, u32 width, bool write, u64 value, int *err,
	      bool killable);
int bs_submit_nowait(struct bs_dm *dm, u64 off, u32 width, u64 value);
void bs_dm_abort(struct bs_dm *dm);
void bs_dm_raise(struct bs_dm *dm);

/* eventfds.c */
long bs_ioeventfd_ioctl(struct bs_dm *dm, struct bao_ioeventfd *a);
bool bs_ioeventfd_route(struct bs_dm *dm, struct bs_req *r);
void bs_ioeventfd_release_all(struct bs_dm *dm);
long bs_irqfd_ioctl(struct bs_dm *dm, struct bao_irqfd *a);
void bs_irqfd_release_all(struct bs_dm *dm);

/* frontend.c */
int bs_fe_create(struct bs_dm *dm);
void bs_fe_destroy(struct bs_dm *dm);
void bs_fe_interrupt(struct work_struct *w);

/* ipc.c */
int bs_ipc_init(void);
void bs_ipc_exit(void);

/* debugfs.c */
void bs_debugfs_dm(struct bs_dm *dm);

#endif
