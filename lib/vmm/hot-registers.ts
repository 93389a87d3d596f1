// HotRegisters: which virtio-mmio registers of one device model the native ATTACH thread answers
// by itself (lib/dispatcher/register-cells.ts), so that they cost the floor of a userspace device
// model instead of a hand-off to JavaScript and back. Lives in lib/vmm, which joins the two
// halves: the cell table is generic, the transport keeps InterruptStatus in the cell's value word.
//
// The cells, all 4 bytes wide (other widths are guest faults the transport counts):
// - InterruptStatus read and InterruptACK write: two accesses on every interrupt a frontend takes
//   (Linux's vm_interrupt). The value word is the transport's own InterruptStatus, changed only
//   atomically on both sides; the transport sets a bit before it signals the irqfd.
// - MagicValue, Version, DeviceID, VendorID reads: constants, read at every probe.
// Everything else (feature words, queue setup, Status, config space, QueueNotify without an
// ioeventfd) changes state or depends on it and goes to JS.

import { CELL_LAYOUT, CellKind, RegisterCellTable, type CellWord, type HandOffTiming } from '../dispatcher/register-cells.js';
import * as R from '../virtio/mmio-registers.js';
import type { MmioTransport } from '../virtio/mmio-transport.js';

const CONSTANTS = [R.MMIO_MAGIC_VALUE, R.MMIO_VERSION, R.MMIO_DEVICE_ID, R.MMIO_VENDOR_ID] as const;

/** Of the batches that go to JS, the hand-off timing measures one in this many. */
export const TIMING_EVERY = 16;

export class HotRegisters {
  /**
   * With hand-off timing of one batch in TIMING_EVERY that goes to JS: three clock reads per
   * timed batch, which under a clock source without a vDSO path (a TCG guest's) are system calls
   * on the access's own path; one in 16 keeps the percentiles and takes them off the others.
   */
  readonly table = new RegisterCellTable({ maxCells: 8, valueWords: 8, timing: { every: TIMING_EVERY } });
  /** Give this to the transport (MmioTransportOptions.interruptStatusWord). */
  readonly interruptStatus: CellWord;
  private readonly mmioAddr: number;

  constructor(mmioAddr: number) {
    this.mmioAddr = mmioAddr;
    this.interruptStatus = this.table.allocate(0);
  }

  /** Publish the cells once the transport exists (its constants are read from it). */
  publish(transport: MmioTransport): void {
    for (const offset of CONSTANTS) {
      const word = this.table.allocate(transport.read(offset, 4));
      this.table.add(this.mmioAddr + offset, 4, CellKind.Read, word);
    }
    this.table.add(this.mmioAddr + R.MMIO_INTERRUPT_STATUS, 4, CellKind.Read, this.interruptStatus);
    this.table.add(this.mmioAddr + R.MMIO_INTERRUPT_ACK, 4, CellKind.ClearBits, this.interruptStatus);
  }

  /** Every access goes to JS until resume() (while a tracer watches: lib/vmm/trace). */
  pause(): void {
    this.table.disable();
  }

  /** The native thread answers the cells again. */
  resume(): void {
    Atomics.store(this.table.words, CELL_LAYOUT.count, this.table.size);
  }

  /** Where the accesses that went to JS spent their time in this process (RegisterCellTable.handOffTiming). */
  get handOffTiming(): HandOffTiming | undefined {
    return this.table.handOffTiming();
  }

  /** Accesses the native thread answered. */
  get hits(): number {
    return this.table.totalHits;
  }
}
