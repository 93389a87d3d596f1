import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../lib/virtio/token-bucket.js';

describe('TokenBucket: a rate with a burst, on an injected clock', () => {
  it('starts full, refills at its rate, and never holds more than its burst', () => {
    let now = 0;
    const b = new TokenBucket({ rate: 100, burst: 10, now: () => now });
    expect(b.available()).toBe(10);
    expect(b.tryTake(10)).toBe(true);
    expect(b.tryTake(1)).toBe(false);
    now += 50;
    expect(b.available()).toBe(5);
    now += 10_000;
    expect(b.available()).toBe(10);
  });

  it('serves a request larger than what is left whole, then makes the next one wait for the debt', () => {
    let now = 0;
    const b = new TokenBucket({ rate: 1000, burst: 10, now: () => now });
    b.take(100);
    expect(b.available()).toBe(-90);
    expect(b.msUntilAvailable()).toBe(91);
    now += 91;
    expect(b.msUntilAvailable()).toBe(0);
  });

  it('can be unlimited', () => {
    const b = new TokenBucket({ rate: Number.POSITIVE_INFINITY, burst: 1 });
    b.take(1e12);
    expect(b.msUntilAvailable()).toBe(0);
  });

  it('refuses a rate or burst that is not positive', () => {
    expect(() => new TokenBucket({ rate: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ rate: 1, burst: Number.NaN })).toThrow(RangeError);
  });
});
