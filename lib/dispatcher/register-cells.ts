// RegisterCellTable: trapped addresses the addon's ATTACH thread answers by itself (native/cells.cc),
// so that the hottest register accesses of a frontend (an interrupt's status read and ACK, the
// probe's constant reads) are COMPLETEd without waking JavaScript. The table is generic data —
// an address, a width, an action and a value word — and knows nothing of virtio: lib/vmm decides
// which registers become cells and lib/virtio keeps the state they stand for in the value words.
//
// Ordering between the native thread and JS (pinned by test/native/register-cells.test.ts and
// test/unit/virtio/mmio-transport-cells.test.ts):
// - Value words are only ever touched with atomics on both sides (Atomics.* here and in the
//   transport; __atomic seq_cst in C++), so a read-modify-write of one side never undoes the
//   other's: a bit JS sets (Atomics.or) while the frontend ACKs others (native and-not) survives.
// - JS sets an InterruptStatus bit BEFORE it writes the irqfd. The irqfd write is a syscall and the
//   frontend's read of InterruptStatus can only trap after the interrupt it raised, and reaches the
//   native thread through the kernel (ATTACH returning), so that read sees the bit: no stale
//   InterruptStatus that loses an interrupt.
// - An ACK clears only the bits the frontend wrote, atomically: a bit raised after its read and
//   not written back stays set (the next interrupt is not lost).
// - A trapped access is answered by exactly one side: the native thread either answers it here
//   (a hit) or queues it for JS, never both. Accesses of one vCPU are sequential (it waits for
//   each COMPLETE), so a cell never overtakes an earlier access of the same vCPU that went to JS.
// - Cells are published by storing the count last (Atomics.store, release); the native thread
//   loads it first (acquire), so it never sees a half-written cell.

/** Layout in 32-bit words; native/cells.h holds the same numbers. */
export const CELL_LAYOUT = {
  headerWords: 4,
  cellWords: 8,
  maxCells: 32,
  count: 0,
  completeFailures: 1,
  lastErrno: 2,
  /** Header word holding the word index of the hand-off timing block (0: none). */
  timingIndex: 3,
  /**
   * Timing block: 2 words of native-only timestamp, the sampling period (every n-th batch is
   * timed), a native-only batch counter, then the hand-off and JS-turn histograms.
   */
  timingBuckets: 96,
  timingPeriod: 2,
  timingHistograms: 4,
  /** Offsets inside a cell. */
  addrLow: 0,
  addrHigh: 1,
  width: 2,
  kind: 3,
  valueIndex: 4,
  hits: 5,
} as const;

/** What a hit does: a READ returns the value; a WRITE clears the written bits, or stores the value. */
export const CellKind = { Read: 1, ClearBits: 2, Store: 3 } as const;
export type CellKind = (typeof CellKind)[keyof typeof CellKind];

/** One 32-bit value word of a table: whoever changes it must use Atomics on `words[index]`. */
export interface CellWord {
  readonly words: Int32Array;
  readonly index: number;
}

/** Percentiles of a timing histogram, in microseconds (bucket lower bounds: within 19 %). */
export interface TimingSummary {
  readonly n: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/**
 * Where a request that went to JS spent its time in this process, per delivered batch: from the
 * moment the ATTACH thread queued it to the start of the JS delivery (the hand-off: the
 * ThreadSafeFunction's uv_async wake-up and the event loop getting to it), and the delivery
 * itself (decoding, the device model, the COMPLETEs).
 */
export interface HandOffTiming {
  readonly handoff: TimingSummary;
  readonly turn: TimingSummary;
}

/** Lower bound in ns of timing bucket `b` (native/cells.h: 4 buckets per octave from 256 ns). */
function bucketFloorNs(b: number): number {
  if (b === 0) return 0;
  const octave = 8 + Math.floor(b / 4);
  return (4 + (b % 4)) * 2 ** (octave - 2);
}

function summarize(words: Int32Array, from: number, buckets: number): TimingSummary {
  const counts: number[] = [];
  let n = 0;
  for (let b = 0; b < buckets; b += 1) {
    const c = Atomics.load(words, from + b) >>> 0;
    counts.push(c);
    n += c;
  }
  const at = (q: number): number => {
    if (n === 0) return 0;
    const rank = Math.ceil(q * n);
    let seen = 0;
    for (let b = 0; b < buckets; b += 1) {
      seen += counts[b]!;
      if (seen >= rank) return Math.round(bucketFloorNs(b) / 100) / 10;
    }
    return 0;
  };
  return { n, p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99), maxUs: at(1) };
}

export class RegisterCellTable {
  /** The memory the native thread reads (passed to the ATTACH loop). */
  readonly buffer: ArrayBuffer;
  readonly words: Int32Array;
  private readonly maxCells: number;
  private cells = 0;
  private values = 0;
  private readonly valueBase: number;
  private readonly valueWords: number;

  private readonly timingBase: number;

  /**
   * `timing`: the native side also measures the hand-off of requests that go to JS
   * (handOffTiming); `{ every: n }` times only every n-th batch (three clock reads each, which
   * are system calls where the clock source has no vDSO path).
   */
  constructor(options: { maxCells?: number; valueWords?: number; timing?: boolean | { readonly every: number } } = {}) {
    this.maxCells = Math.min(options.maxCells ?? 16, CELL_LAYOUT.maxCells);
    this.valueWords = options.valueWords ?? 16;
    this.valueBase = CELL_LAYOUT.headerWords + this.maxCells * CELL_LAYOUT.cellWords;
    const timing = options.timing ?? false;
    const timingWords = timing === false ? 0 : CELL_LAYOUT.timingHistograms + 2 * CELL_LAYOUT.timingBuckets;
    this.timingBase = timingWords === 0 ? 0 : this.valueBase + this.valueWords;
    this.buffer = new ArrayBuffer((this.valueBase + this.valueWords + timingWords) * 4);
    this.words = new Int32Array(this.buffer);
    if (timing !== false) {
      const every = timing === true ? 1 : timing.every;
      if (!Number.isInteger(every) || every < 1 || every > 0x7fff_ffff) throw new RangeError(`RegisterCellTable: timing.every must be a positive integer, got ${every}`);
      Atomics.store(this.words, this.timingBase + CELL_LAYOUT.timingPeriod, every);
      Atomics.store(this.words, CELL_LAYOUT.timingIndex, this.timingBase);
    }
  }

  /** The hand-off timing measured so far, or undefined when the table was made without `timing`. */
  handOffTiming(): HandOffTiming | undefined {
    if (this.timingBase === 0) return undefined;
    const b = CELL_LAYOUT.timingBuckets;
    return {
      handoff: summarize(this.words, this.timingBase + CELL_LAYOUT.timingHistograms, b),
      turn: summarize(this.words, this.timingBase + CELL_LAYOUT.timingHistograms + b, b),
    };
  }

  /** A new value word, starting at `initial`. */
  allocate(initial = 0): CellWord {
    if (this.values >= this.valueWords) throw new RangeError(`RegisterCellTable: all ${this.valueWords} value words are in use`);
    const index = this.valueBase + this.values;
    this.values += 1;
    Atomics.store(this.words, index, initial | 0);
    return { words: this.words, index };
  }

  /** Accesses of exactly `width` bytes at guest-physical `addr` become cell `kind` on `value`; returns the cell's number. */
  add(addr: number, width: number, kind: CellKind, value: CellWord): number {
    if (value.words !== this.words) throw new RangeError('RegisterCellTable: the value word belongs to another table');
    if (this.cells >= this.maxCells) throw new RangeError(`RegisterCellTable: all ${this.maxCells} cells are in use`);
    if (width !== 1 && width !== 2 && width !== 4) throw new RangeError(`RegisterCellTable: cells are 1, 2 or 4 bytes wide, got ${width}`);
    const n = this.cells;
    const at = CELL_LAYOUT.headerWords + n * CELL_LAYOUT.cellWords;
    const w = this.words;
    w[at + CELL_LAYOUT.addrLow] = addr % 0x1_0000_0000 | 0;
    w[at + CELL_LAYOUT.addrHigh] = Math.floor(addr / 0x1_0000_0000) | 0;
    w[at + CELL_LAYOUT.width] = width;
    w[at + CELL_LAYOUT.kind] = kind;
    w[at + CELL_LAYOUT.valueIndex] = value.index;
    w[at + CELL_LAYOUT.hits] = 0;
    this.cells = n + 1;
    Atomics.store(w, CELL_LAYOUT.count, this.cells); // publish last
    return n;
  }

  /** No access is answered natively any more (already queued ones are unaffected). */
  disable(): void {
    Atomics.store(this.words, CELL_LAYOUT.count, 0);
  }

  get size(): number {
    return this.cells;
  }

  /** Accesses cell `n` answered. */
  hits(n: number): number {
    return Atomics.load(this.words, CELL_LAYOUT.headerWords + n * CELL_LAYOUT.cellWords + CELL_LAYOUT.hits) >>> 0;
  }

  /** Accesses all cells answered. */
  get totalHits(): number {
    let sum = 0;
    for (let n = 0; n < this.cells; n += 1) sum += this.hits(n);
    return sum;
  }

  /** COMPLETEs of cell hits the hypervisor refused, and the errno of the last one. */
  get completeFailures(): { count: number; lastErrno: number } {
    return {
      count: Atomics.load(this.words, CELL_LAYOUT.completeFailures) >>> 0,
      lastErrno: Atomics.load(this.words, CELL_LAYOUT.lastErrno),
    };
  }
}
