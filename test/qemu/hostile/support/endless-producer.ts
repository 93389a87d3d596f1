// The endless producer: a frontend that offers again, at once, every buffer the device gives
// back, and kicks, so that the device never runs out of work. The rng, block and net floods of
// the hostile suite play it against their device for a few seconds.

import type { InjectedFrontend, RingLayout } from './frontend.js';

export interface EndlessProducer {
  /** The queue index each re-offer kicks. */
  readonly queue: number;
  /**
   * The used index to start from. Read it before the kick that starts the flood: the device may
   * give every buffer back before the loop first looks, and starting from the index read after
   * would then never offer anything again.
   */
  readonly from: number;
  readonly ms: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Offers every head the device returns on `q` again for `ms`; resolves with how many it offered again. */
export async function offerUsedAgain(fe: InjectedFrontend, q: RingLayout, options: EndlessProducer): Promise<number> {
  let seen = options.from;
  let offered = 0;
  const end = Date.now() + options.ms;
  while (Date.now() < end) {
    const used = fe.usedIdx(q);
    const heads: number[] = [];
    while (seen !== used) {
      // A used element: le32 id (the chain's head), le32 len; the id as the device wrote it,
      // kept inside the table so that a device bug cannot make the test offer out of range.
      heads.push(fe.view.getUint32(q.used + 4 + 8 * (seen % q.size), true) % q.size);
      seen = (seen + 1) & 0xffff;
    }
    if (heads.length > 0) {
      offered += heads.length;
      fe.offer(q, ...heads);
      fe.kick(options.queue);
    }
    await sleep(2);
  }
  return offered;
}
