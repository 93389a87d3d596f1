// IoVector: the data of one block request, as ranges of the shared region ((offset, length)
// pairs in a Float64Array) rather than one Uint8Array view per range. A 1 MiB request from
// Linux is about 256 page-sized buffers: as views that was 256 objects made per request and
// four N-API calls per view in the addon; as spans it is one typed array, read by the addon
// in two calls. Engines that need views (node:fs) make them with views().
// A Float64Array and not a Uint32Array: a region may be larger than 4 GiB.

export class IoVector {
  /**
   * `spans` holds `spans.length / 2` (offset, length) pairs, each a range of `region` (offsets
   * are relative to `region`, not to its buffer); `length` is the sum of their lengths.
   */
  constructor(
    readonly region: Uint8Array,
    readonly spans: Float64Array,
    readonly length: number,
  ) {}

  /** A vector over views of one buffer (tests; a device's own zero buffer). */
  static ofViews(views: readonly Uint8Array[]): IoVector {
    const first = views[0];
    const buffer = first?.buffer ?? new ArrayBuffer(0);
    const region = new Uint8Array(buffer);
    const spans = new Float64Array(2 * views.length);
    let length = 0;
    views.forEach((v, i) => {
      if (v.buffer !== buffer) throw new RangeError('IoVector.ofViews: the views must share one buffer');
      spans[2 * i] = v.byteOffset;
      spans[2 * i + 1] = v.byteLength;
      length += v.byteLength;
    });
    return new IoVector(region, spans, length);
  }

  /** How many ranges. */
  get count(): number {
    return this.spans.length >>> 1;
  }

  /** The ranges as views of the region (the same bytes, not copies). */
  views(): Uint8Array[] {
    const { region, spans } = this;
    const out = new Array<Uint8Array>(spans.length >>> 1);
    for (let i = 0; i < out.length; i += 1) out[i] = new Uint8Array(region.buffer, region.byteOffset + spans[2 * i]!, spans[2 * i + 1]!);
    return out;
  }

  /** The vector past its first `n` bytes (a short transfer continues there). */
  advance(n: number): IoVector {
    const spans = this.spans;
    let skip = n;
    let i = 0;
    while (i < spans.length && skip >= spans[i + 1]!) {
      skip -= spans[i + 1]!;
      i += 2;
    }
    const rest = spans.slice(i);
    if (rest.length > 0) {
      rest[0] = rest[0]! + skip;
      rest[1] = rest[1]! - skip;
    }
    return new IoVector(this.region, rest, Math.max(0, this.length - n));
  }

  /** Sets every byte of the ranges to `value`. */
  fill(value: number): void {
    const { region, spans } = this;
    for (let i = 0; i < spans.length; i += 2) region.fill(value, spans[i]!, spans[i]! + spans[i + 1]!);
  }
}
