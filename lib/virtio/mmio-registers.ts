// virtio-mmio version 2 register offsets and fixed values (virtio 1.2 §4.2.2, table
// "MMIO Device Register Layout"). Offsets are relative to the device's MMIO window.

export const MMIO_MAGIC_VALUE = 0x000;
export const MMIO_VERSION = 0x004;
export const MMIO_DEVICE_ID = 0x008;
export const MMIO_VENDOR_ID = 0x00c;
export const MMIO_DEVICE_FEATURES = 0x010;
export const MMIO_DEVICE_FEATURES_SEL = 0x014;
export const MMIO_DRIVER_FEATURES = 0x020;
export const MMIO_DRIVER_FEATURES_SEL = 0x024;
export const MMIO_QUEUE_SEL = 0x030;
export const MMIO_QUEUE_NUM_MAX = 0x034;
export const MMIO_QUEUE_NUM = 0x038;
export const MMIO_QUEUE_READY = 0x044;
export const MMIO_QUEUE_NOTIFY = 0x050;
export const MMIO_INTERRUPT_STATUS = 0x060;
export const MMIO_INTERRUPT_ACK = 0x064;
export const MMIO_STATUS = 0x070;
export const MMIO_QUEUE_DESC_LOW = 0x080;
export const MMIO_QUEUE_DESC_HIGH = 0x084;
export const MMIO_QUEUE_DRIVER_LOW = 0x090;
export const MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const MMIO_SHM_SEL = 0x0ac;
export const MMIO_SHM_LEN_LOW = 0x0b0;
export const MMIO_SHM_LEN_HIGH = 0x0b4;
export const MMIO_SHM_BASE_LOW = 0x0b8;
export const MMIO_SHM_BASE_HIGH = 0x0bc;
export const MMIO_QUEUE_RESET = 0x0c0;
export const MMIO_CONFIG_GENERATION = 0x0fc;
export const MMIO_CONFIG = 0x100;

/** bao-virtio-dm's window size per device (bao-abi.md §5.1); config space ends here. */
export const MMIO_WINDOW_SIZE = 0x200;

/** "virt" in little-endian. */
export const MAGIC_VALUE = 0x7472_6976;
/** Version 2 is the modern (virtio 1.x) virtio-mmio interface; 1 is legacy. */
export const MMIO_VERSION_2 = 2;
/** Our VendorID: "BAO!" read as a little-endian u32 (any value is allowed, §4.2.2). */
export const BAO_VENDOR_ID = 0x214f_4142;

/** InterruptStatus bits (§4.2.2). */
export const INTERRUPT_VRING = 0x1;
export const INTERRUPT_CONFIG = 0x2;

/** SHMLen/SHMBase of a region that does not exist read as -1 (§4.2.2). */
export const SHM_ABSENT = 0xffff_ffff;
