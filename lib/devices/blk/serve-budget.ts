// How much of a queue one turn of the event loop may serve: at most min(queue size, 64)
// chains, then the device yields (setImmediate) so that one busy frontend cannot keep the
// loop from the other device models. Kept in one place so a shared mechanism can replace it.

export const MAX_CHAINS_PER_TURN = 64;

export function chainsPerTurn(queueSize: number): number {
  return Math.min(queueSize, MAX_CHAINS_PER_TURN);
}

/** Runs `serve` later, once per pending request however many times it is asked. */
export class YieldScheduler {
  private pending = false;
  private handle: NodeJS.Immediate | undefined;

  constructor(private readonly serve: () => void) {}

  schedule(): void {
    if (this.pending) return;
    this.pending = true;
    this.handle = setImmediate(() => {
      this.pending = false;
      this.handle = undefined;
      this.serve();
    });
  }

  cancel(): void {
    if (this.handle !== undefined) clearImmediate(this.handle);
    this.handle = undefined;
    this.pending = false;
  }
}
