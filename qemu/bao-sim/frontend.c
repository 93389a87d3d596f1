// SPDX-License-Identifier: GPL-2.0
/*
 * bao-sim frontend: a virtio transport on the guest's own virtio bus in which every
 * configuration operation is the virtio-mmio (version 2) register access that Linux's
 * virtio_mmio driver makes, sent as a request to the device model and waited for, as a frontend
 * vCPU stalls on Bao. Queue kicks are QueueNotify writes that do not wait; the irqfd raises the
 * device interrupt, handled here in a workqueue by reading InterruptStatus and writing
 * InterruptACK through requests. Ring memory comes from the DMA API on a platform device with
 * no IOMMU, so descriptor addresses are guest-physical and fall inside the DM's shared region,
 * which covers guest RAM (README.md, "Shared region").
 */
#include <linux/platform_device.h>
#include <linux/dma-mapping.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/slab.h>
#include <linux/interrupt.h>
#include <uapi/linux/virtio_config.h>
#include "bao_sim.h"

struct bs_fe {
	struct virtio_device vdev;
	struct bs_dm *dm;
	struct platform_device *pdev;
	struct work_struct probe_work;
	struct mutex irq_mutex;		/* handler vs find_vqs/del_vqs (virtio_mmio's request_irq) */
	bool handler_live;
	bool dead;			/* unloading: queues are broken as soon as they exist */
	bool registered;
	bool reg_failed;
};

static inline struct bs_fe *to_fe(struct virtio_device *vdev)
{
	return container_of(vdev, struct bs_fe, vdev);
}

static u64 rd(struct bs_fe *fe, u32 off, u32 width)
{
	return bs_access(fe->dm, off, width, false, 0, NULL, false);
}

static void wr(struct bs_fe *fe, u32 off, u32 width, u64 value)
{
	bs_access(fe->dm, off, width, true, value, NULL, false);
}

/* ------------------------------------------------------------------ config ops */

static void bs_get(struct virtio_device *vdev, unsigned int offset, void *buf, unsigned int len)
{
	struct bs_fe *fe = to_fe(vdev);
	u8 b;
	__le16 w;
	__le32 l;

	switch (len) {
	case 1:
		b = rd(fe, VM_CONFIG + offset, 1);
		memcpy(buf, &b, 1);
		break;
	case 2:
		w = cpu_to_le16(rd(fe, VM_CONFIG + offset, 2));
		memcpy(buf, &w, 2);
		break;
	case 4:
		l = cpu_to_le32(rd(fe, VM_CONFIG + offset, 4));
		memcpy(buf, &l, 4);
		break;
	case 8:
		/* virtio_mmio reads a 64-bit field as two 32-bit loads, low word first. */
		l = cpu_to_le32(rd(fe, VM_CONFIG + offset, 4));
		memcpy(buf, &l, 4);
		l = cpu_to_le32(rd(fe, VM_CONFIG + offset + 4, 4));
		memcpy(buf + 4, &l, 4);
		break;
	default:
		WARN_ONCE(1, "bao-sim: config read of %u bytes\n", len);
	}
}

static void bs_set(struct virtio_device *vdev, unsigned int offset, const void *buf,
		   unsigned int len)
{
	struct bs_fe *fe = to_fe(vdev);
	u8 b;
	__le16 w;
	__le32 l;

	switch (len) {
	case 1:
		memcpy(&b, buf, 1);
		wr(fe, VM_CONFIG + offset, 1, b);
		break;
	case 2:
		memcpy(&w, buf, 2);
		wr(fe, VM_CONFIG + offset, 2, le16_to_cpu(w));
		break;
	case 4:
		memcpy(&l, buf, 4);
		wr(fe, VM_CONFIG + offset, 4, le32_to_cpu(l));
		break;
	case 8:
		memcpy(&l, buf, 4);
		wr(fe, VM_CONFIG + offset, 4, le32_to_cpu(l));
		memcpy(&l, buf + 4, 4);
		wr(fe, VM_CONFIG + offset + 4, 4, le32_to_cpu(l));
		break;
	default:
		WARN_ONCE(1, "bao-sim: config write of %u bytes\n", len);
	}
}

static u32 bs_generation(struct virtio_device *vdev)
{
	return rd(to_fe(vdev), VM_CONFIG_GENERATION, 4);
}

static u8 bs_get_status(struct virtio_device *vdev)
{
	struct bs_fe *fe = to_fe(vdev);
	u8 status = rd(fe, VM_STATUS, 4) & 0xff;

	/* Unloading: the aborted read is all-ones, but the device is gone, i.e. reset (0). */
	return fe->dm->aborting ? 0 : status;
}

static void bs_set_status(struct virtio_device *vdev, u8 status)
{
	wr(to_fe(vdev), VM_STATUS, 4, status);
}

static void bs_reset(struct virtio_device *vdev)
{
	wr(to_fe(vdev), VM_STATUS, 4, 0);
}

static u64 bs_get_features(struct virtio_device *vdev)
{
	struct bs_fe *fe = to_fe(vdev);
	u64 f;

	wr(fe, VM_DEVICE_FEATURES_SEL, 4, 1);
	f = (u64)(u32)rd(fe, VM_DEVICE_FEATURES, 4) << 32;
	wr(fe, VM_DEVICE_FEATURES_SEL, 4, 0);
	f |= (u32)rd(fe, VM_DEVICE_FEATURES, 4);
	return f;
}

static int bs_finalize_features(struct virtio_device *vdev)
{
	struct bs_fe *fe = to_fe(vdev);

	/* Keeps VIRTIO_F_ACCESS_PLATFORM: virtio_ring then goes through the DMA API. */
	vring_transport_features(vdev);
	if (!__virtio_test_bit(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "virtio-mmio version 2 devices must offer VIRTIO_F_VERSION_1\n");
		return -EINVAL;
	}
	wr(fe, VM_DRIVER_FEATURES_SEL, 4, 1);
	wr(fe, VM_DRIVER_FEATURES, 4, (u32)(vdev->features >> 32));
	wr(fe, VM_DRIVER_FEATURES_SEL, 4, 0);
	wr(fe, VM_DRIVER_FEATURES, 4, (u32)vdev->features);
	return 0;
}

/* QueueNotify may come with spinlocks held: post it, never wait (an ioeventfd fires inline). */
static bool bs_notify(struct virtqueue *vq)
{
	struct bs_fe *fe = to_fe(vq->vdev);

	bs_submit_nowait(fe->dm, VM_QUEUE_NOTIFY, 4, vq->index);
	return true;
}

static void bs_del_vq(struct bs_fe *fe, struct virtqueue *vq)
{
	wr(fe, VM_QUEUE_SEL, 4, vq->index);
	wr(fe, VM_QUEUE_READY, 4, 0);
	if (rd(fe, VM_QUEUE_READY, 4) && !fe->dm->aborting)
		dev_warn(&fe->vdev.dev, "queue %u still ready after disabling\n", vq->index);
	vring_del_virtqueue(vq);
}

static void bs_del_vqs_locked(struct virtio_device *vdev)
{
	struct bs_fe *fe = to_fe(vdev);
	struct virtqueue *vq, *n;

	list_for_each_entry_safe(vq, n, &vdev->vqs, list)
		bs_del_vq(fe, vq);
	fe->handler_live = false;
}

static void bs_del_vqs(struct virtio_device *vdev)
{
	struct bs_fe *fe = to_fe(vdev);

	mutex_lock(&fe->irq_mutex);
	bs_del_vqs_locked(vdev);
	mutex_unlock(&fe->irq_mutex);
}

static struct virtqueue *bs_setup_vq(struct bs_fe *fe, unsigned int index,
				     void (*callback)(struct virtqueue *vq), const char *name,
				     bool ctx)
{
	struct virtqueue *vq;
	u32 num;
	u64 a;

	wr(fe, VM_QUEUE_SEL, 4, index);
	if (rd(fe, VM_QUEUE_READY, 4))
		return ERR_PTR(-ENOENT);
	num = rd(fe, VM_QUEUE_NUM_MAX, 4);
	if (!num)
		return ERR_PTR(-ENOENT);
	vq = vring_create_virtqueue(index, num, PAGE_SIZE, &fe->vdev, true, true, ctx,
				    bs_notify, callback, name);
	if (!vq)
		return ERR_PTR(-ENOMEM);
	vq->num_max = num;
	wr(fe, VM_QUEUE_NUM, 4, virtqueue_get_vring_size(vq));
	a = virtqueue_get_desc_addr(vq);
	wr(fe, VM_QUEUE_DESC_LOW, 4, (u32)a);
	wr(fe, VM_QUEUE_DESC_HIGH, 4, (u32)(a >> 32));
	a = virtqueue_get_avail_addr(vq);
	wr(fe, VM_QUEUE_DRIVER_LOW, 4, (u32)a);
	wr(fe, VM_QUEUE_DRIVER_HIGH, 4, (u32)(a >> 32));
	a = virtqueue_get_used_addr(vq);
	wr(fe, VM_QUEUE_DEVICE_LOW, 4, (u32)a);
	wr(fe, VM_QUEUE_DEVICE_HIGH, 4, (u32)(a >> 32));
	wr(fe, VM_QUEUE_READY, 4, 1);
	return vq;
}

static int bs_find_vqs(struct virtio_device *vdev, unsigned int nvqs, struct virtqueue *vqs[],
		       vq_callback_t *callbacks[], const char * const names[], const bool *ctx,
		       struct irq_affinity *desc)
{
	struct bs_fe *fe = to_fe(vdev);
	unsigned int i, qi = 0;

	mutex_lock(&fe->irq_mutex);
	fe->handler_live = true;	/* virtio_mmio requests its IRQ before setting up queues */
	for (i = 0; i < nvqs; i++) {
		if (!names[i]) {
			vqs[i] = NULL;
			continue;
		}
		vqs[i] = bs_setup_vq(fe, qi++, callbacks[i], names[i], ctx ? ctx[i] : false);
		if (IS_ERR(vqs[i])) {
			int err = PTR_ERR(vqs[i]);

			bs_del_vqs_locked(vdev);
			mutex_unlock(&fe->irq_mutex);
			return err;
		}
	}
	if (fe->dead)
		virtio_break_device(vdev);
	mutex_unlock(&fe->irq_mutex);
	return 0;
}

static const char *bs_bus_name(struct virtio_device *vdev)
{
	return "bao-sim";
}

static const struct virtio_config_ops bs_config_ops = {
	.get = bs_get,
	.set = bs_set,
	.generation = bs_generation,
	.get_status = bs_get_status,
	.set_status = bs_set_status,
	.reset = bs_reset,
	.find_vqs = bs_find_vqs,
	.del_vqs = bs_del_vqs,
	.get_features = bs_get_features,
	.finalize_features = bs_finalize_features,
	.bus_name = bs_bus_name,
};

/* ------------------------------------------------------------------ interrupt */

/* The device interrupt (REMIO NOTIFY), run where it may stall on register accesses. */
void bs_fe_interrupt(struct work_struct *w)
{
	struct bs_dm *dm = container_of(w, struct bs_dm, irq_work);
	struct bs_fe *fe = READ_ONCE(dm->fe);
	struct virtqueue *vq;
	unsigned long fl;
	u32 status;

	if (!fe)
		return;
	mutex_lock(&fe->irq_mutex);
	if (!fe->handler_live || dm->aborting)
		goto out;
	atomic64_inc(&dm->st.fe_interrupts);
	status = rd(fe, VM_INTERRUPT_STATUS, 4);
	wr(fe, VM_INTERRUPT_ACK, 4, status);
	if (dm->aborting)
		goto out;
	if (status & VM_INT_CONFIG)
		virtio_config_changed(&fe->vdev);
	if (status & VM_INT_VRING) {
		/* Callbacks expect interrupt context: bottom halves and interrupts off, as there. */
		local_bh_disable();
		list_for_each_entry(vq, &fe->vdev.vqs, list) {
			local_irq_save(fl);
			vring_interrupt(0, vq);
			local_irq_restore(fl);
		}
		local_bh_enable();
	}
out:
	mutex_unlock(&fe->irq_mutex);
}

/* ------------------------------------------------------------------ probe / remove */

static void bs_fe_release(struct device *dev)
{
	struct virtio_device *vdev = container_of(dev, struct virtio_device, dev);

	kfree(to_fe(vdev));
}

/* virtio_mmio_probe's sequence: MagicValue, Version, DeviceID (0 = no device), VendorID. */
static void bs_fe_probe(struct work_struct *w)
{
	struct bs_fe *fe = container_of(w, struct bs_fe, probe_work);
	struct bs_dm *dm = fe->dm;
	u64 magic, version, devid, vendor;
	int ret;

	magic = rd(fe, VM_MAGIC, 4);
	if ((u32)magic != VM_MAGIC_VALUE) {
		pr_warn("bao-sim: dm%u: wrong magic value 0x%08x\n", dm->id, (u32)magic);
		dm->fe_state = "bad-magic";
		return;
	}
	version = (u32)rd(fe, VM_VERSION, 4);
	if (version != 2) {
		pr_warn("bao-sim: dm%u: virtio-mmio version %llu not supported (modern only)\n",
			dm->id, version);
		dm->fe_state = "bad-version";
		return;
	}
	devid = (u32)rd(fe, VM_DEVICE_ID, 4);
	if (devid == 0) {
		/* virtio_mmio treats ID 0 as a placeholder without function. */
		pr_info("bao-sim: dm%u: device ID 0, no device\n", dm->id);
		dm->fe_state = "no-device";
		return;
	}
	vendor = (u32)rd(fe, VM_VENDOR_ID, 4);
	if (dm->aborting) {
		dm->fe_state = "aborted";
		return;
	}
	fe->vdev.id.device = devid;
	fe->vdev.id.vendor = vendor;
	fe->vdev.config = &bs_config_ops;
	fe->vdev.dev.parent = &fe->pdev->dev;
	fe->vdev.dev.release = bs_fe_release;
	ret = register_virtio_device(&fe->vdev);
	if (ret) {
		pr_warn("bao-sim: dm%u: register_virtio_device failed (%d)\n", dm->id, ret);
		fe->reg_failed = true;
		dm->fe_state = "register-failed";
		return;
	}
	fe->registered = true;
	dm->fe_state = "registered";
	pr_info("bao-sim: dm%u: virtio device id %llu registered as %s\n", dm->id, devid,
		dev_name(&fe->vdev.dev));
}

int bs_fe_create(struct bs_dm *dm)
{
	struct bs_fe *fe = kzalloc(sizeof(*fe), GFP_KERNEL);
	struct platform_device *pdev;

	if (!fe)
		return -ENOMEM;
	pdev = platform_device_register_simple("bao-sim-frontend", dm->id, NULL, 0);
	if (IS_ERR(pdev)) {
		kfree(fe);
		return PTR_ERR(pdev);
	}
	if (!pdev->dev.dma_mask)
		pdev->dev.dma_mask = &pdev->dev.coherent_dma_mask;
	dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	fe->dm = dm;
	fe->pdev = pdev;
	mutex_init(&fe->irq_mutex);
	INIT_WORK(&fe->probe_work, bs_fe_probe);
	WRITE_ONCE(dm->fe, fe);
	bs_queue_frontend_work(&fe->probe_work);
	return 0;
}

/* Unload: accesses are already aborted (all-ones, no waiting), so every step finishes. */
void bs_fe_destroy(struct bs_dm *dm)
{
	struct bs_fe *fe = dm->fe;
	struct platform_device *pdev = fe->pdev;

	/*
	 * Drivers busy-wait for some replies (virtio_console's and virtio_net's control messages:
	 * "until the buffer is used or the queue is broken"); with the backend gone, break the
	 * queues so a probe or remove in progress can finish.
	 */
	mutex_lock(&fe->irq_mutex);
	fe->dead = true;
	if (fe->handler_live)
		virtio_break_device(&fe->vdev);
	mutex_unlock(&fe->irq_mutex);
	flush_work(&fe->probe_work);
	WRITE_ONCE(dm->fe, NULL);
	cancel_work_sync(&dm->irq_work);
	if (fe->registered)
		unregister_virtio_device(&fe->vdev);
	else if (fe->reg_failed)
		put_device(&fe->vdev.dev);
	else
		kfree(fe);
	platform_device_unregister(pdev);
}
