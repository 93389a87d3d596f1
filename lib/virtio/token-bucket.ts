// TokenBucket: a rate limit with a burst, for anything a frontend can make a device do without
// bound (entropy bytes, console output bytes, log lines). Tokens refill continuously at `rate`
// per second up to `burst`. take() may leave the bucket in debt: a request larger than what is
// left is served whole and the debt is paid back before the next one is admitted, so requests
// are never split or dropped, and over any interval the total stays within rate * t + burst +
// one request. Time comes from an injected clock (milliseconds) so tests need no real waiting.

export interface TokenBucketOptions {
  /** Tokens per second; Infinity disables the limit. */
  readonly rate: number;
  /** Tokens the bucket holds when full (and at start). */
  readonly burst: number;
  /** Milliseconds, monotonic (default performance.now). */
  readonly now?: () => number;
}

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.rate > 0) || !(options.burst > 0)) {
      throw new RangeError(`token bucket needs a positive rate and burst (got ${options.rate}, ${options.burst})`);
    }
    this.rate = options.rate;
    this.burst = options.burst;
    this.now = options.now ?? (() => performance.now());
    this.tokens = this.burst;
    this.last = this.now();
  }

  get unlimited(): boolean {
    return this.rate === Number.POSITIVE_INFINITY;
  }

  /** Tokens there now (negative while in debt). */
  available(): number {
    if (this.unlimited) return Number.POSITIVE_INFINITY;
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
      this.last = t;
    }
    return this.tokens;
  }

  /** Take `n` tokens if there are that many; false leaves the bucket unchanged. */
  tryTake(n = 1): boolean {
    if (this.available() < n) return false;
    if (!this.unlimited) this.tokens -= n;
    return true;
  }

  /** Take `n` tokens, going into debt if need be (call only when admitted: available() > 0). */
  take(n: number): void {
    this.available();
    if (!this.unlimited) this.tokens -= n;
  }

  /** Milliseconds until at least one token is there (0 if there is one now). */
  msUntilAvailable(): number {
    const a = this.available();
    if (a >= 1) return 0;
    return Math.max(1, Math.ceil(((1 - a) * 1000) / this.rate));
  }
}
