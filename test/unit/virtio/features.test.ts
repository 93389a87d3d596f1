import { describe, expect, it } from 'vitest';
import {
  ACCESS_PLATFORM,
  checkAccepted,
  featureWord,
  hasFeature,
  IN_ORDER,
  RING_EVENT_IDX,
  RING_INDIRECT_DESC,
  RING_RESET,
  TRANSPORT_FEATURES,
  VERSION_1,
  withFeatureWord,
} from '../../../lib/virtio/features.js';

describe('feature bits', () => {
  it('sit at the positions of virtio 1.2 §6', () => {
    expect(RING_INDIRECT_DESC).toBe(1n << 28n);
    expect(RING_EVENT_IDX).toBe(1n << 29n);
    expect(VERSION_1).toBe(1n << 32n);
    expect(ACCESS_PLATFORM).toBe(1n << 33n);
    expect(IN_ORDER).toBe(1n << 35n);
    expect(RING_RESET).toBe(1n << 40n);
    expect(TRANSPORT_FEATURES).toBe(VERSION_1 | ACCESS_PLATFORM);
  });

  it('are shown to the driver as two 32-bit words; other selectors read 0', () => {
    const f = VERSION_1 | ACCESS_PLATFORM | RING_EVENT_IDX | 1n;
    expect(featureWord(f, 0)).toBe(0x2000_0001);
    expect(featureWord(f, 1)).toBe(0x3);
    expect(featureWord(f, 2)).toBe(0);
    expect(featureWord(f, -1)).toBe(0);
  });

  it('are assembled from the words the driver writes', () => {
    let f = withFeatureWord(0n, 0, 0x2000_0000);
    f = withFeatureWord(f, 1, 0x1);
    expect(f).toBe(RING_EVENT_IDX | VERSION_1);
    f = withFeatureWord(f, 0, 0);
    expect(f).toBe(VERSION_1);
    expect(withFeatureWord(0n, 1, 0xffff_ffff)).toBe(0xffff_ffffn << 32n);
  });

  it('are accepted only as a subset of the offer that includes VERSION_1', () => {
    const offer = TRANSPORT_FEATURES | RING_EVENT_IDX;
    expect(checkAccepted(offer, VERSION_1)).toEqual({ ok: true });
    expect(checkAccepted(offer, offer)).toEqual({ ok: true });
    expect(checkAccepted(offer, RING_EVENT_IDX)).toEqual({ ok: false, reason: 'VERSION_1_MISSING', extra: 0n });
    expect(checkAccepted(offer, VERSION_1 | IN_ORDER)).toEqual({ ok: false, reason: 'NOT_OFFERED', extra: IN_ORDER });
    expect(hasFeature(offer, RING_EVENT_IDX)).toBe(true);
    expect(hasFeature(offer, IN_ORDER)).toBe(false);
  });
});
