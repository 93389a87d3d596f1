// The virtio-console configuration space and feature bits (virtio 1.2 §5.3.3, §5.3.4).
// Values follow bao-virtio-dm (spec §5.2): cols 80, rows 25, max_nr_ports 1. We also lay out
// emerg_wr (offset 8), since VIRTIO_CONSOLE_F_EMERG_WRITE costs one write handler.

/** virtio 1.2 §5.3.3: the size fields are valid (we do not offer it: no resize events). */
export const VIRTIO_CONSOLE_F_SIZE = 1n << 0n;
/** Several ports and the control queues (not offered: one port only). */
export const VIRTIO_CONSOLE_F_MULTIPORT = 1n << 1n;
/** The driver may write one character to emerg_wr before the queues are up. */
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 1n << 2n;

export const CONSOLE_DEVICE_ID = 3;
export const RECEIVEQ = 0;
export const TRANSMITQ = 1;

export const CONFIG_COLS = 0;
export const CONFIG_ROWS = 2;
export const CONFIG_MAX_NR_PORTS = 4;
export const CONFIG_EMERG_WR = 8;
export const CONFIG_SIZE = 12;

export interface ConsoleGeometry {
  readonly cols: number;
  readonly rows: number;
}

export const DEFAULT_GEOMETRY: ConsoleGeometry = { cols: 80, rows: 25 };

export function buildConfigSpace(geometry: ConsoleGeometry = DEFAULT_GEOMETRY): Uint8Array {
  const bytes = new Uint8Array(CONFIG_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint16(CONFIG_COLS, geometry.cols, true);
  view.setUint16(CONFIG_ROWS, geometry.rows, true);
  view.setUint32(CONFIG_MAX_NR_PORTS, 1, true);
  return bytes;
}
