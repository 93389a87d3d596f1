// How the AttachLoop wrapper decodes the addon's deliveries: the addon copies each batch of up to
// 16 requests into the same ArrayBuffer (native/attach.cc), so the requests handed on must be
// copies that the next delivery does not change, and a batch in another buffer (a larger one)
// must be decoded from that buffer. A value below 2^32 (every READ's, and
// nearly every write's) decodes to a number, without a BigInt.

import { describe, expect, it } from 'vitest';

import { AttachLoop, decodeRequests, encodeRequests, type IoRequest } from '../../../lib/dispatcher/index.js';
import type { AttachCallback, NativeAddon } from '../../../lib/native.js';
import { IoOp } from '../../../lib/uapi/constants.js';
import { VIRTIO_REQUEST } from '../../../lib/uapi/layouts.js';

function fakeAddon(): { addon: NativeAddon; deliver: () => AttachCallback } {
  let cb: AttachCallback | undefined;
  const addon = {
    AttachLoop: class {
      constructor(_fd: number, _rev: number, callback: AttachCallback) {
        cb = callback;
      }
      stop(): Promise<void> {
        return Promise.resolve();
      }
    },
  } as unknown as NativeAddon;
  return { addon, deliver: () => cb! };
}

const req = (i: number, over: Partial<IoRequest> = {}): IoRequest => ({
  dmId: 3,
  addr: 0xa00_0010 + 4 * i,
  op: IoOp.Read,
  value: 0,
  accessWidth: 4,
  requestId: 100 + i,
  ...over,
});

describe('AttachLoop deliveries', () => {
  it('hands on copies: a delivery into the same buffer leaves the requests of the previous one as they were', () => {
    const { addon, deliver } = fakeAddon();
    const batches: IoRequest[][] = [];
    new AttachLoop(900, 0, 3, (r) => batches.push(r), () => {}, addon);
    const shared = new ArrayBuffer(16 * VIRTIO_REQUEST.size);
    const bytes = new Uint8Array(shared);
    const first = [req(0), req(1, { op: IoOp.Write, value: 0x1_0000_0005n })];
    bytes.set(new Uint8Array(encodeRequests(first)));
    deliver()(shared, 2, null, null);
    const second = [req(2, { op: IoOp.Write, value: 7 })];
    bytes.set(new Uint8Array(encodeRequests(second)));
    deliver()(shared, 1, null, null);
    expect(batches).toEqual([first, second]);
    // A larger batch arrives in a buffer of its own: decoded from that one, then the shared one again.
    const big = Array.from({ length: 20 }, (_, i) => req(10 + i));
    deliver()(encodeRequests(big), 20, null, null);
    bytes.set(new Uint8Array(encodeRequests([req(40)])));
    deliver()(shared, 1, null, null);
    expect(batches.slice(2)).toEqual([big, [req(40)]]);
  });

  it('decodes a value below 2^32 as a number and any other, high word included, as its bigint', () => {
    const values = [0, 1, 0xffff_ffff, 0x1_0000_0000n, 0x1_0000_0001n, 0xffff_ffff_ffff_ffffn];
    const raw = encodeRequests(values.map((value, i) => req(i, { op: IoOp.Write, value })));
    expect(decodeRequests(raw, values.length).map((r) => r.value)).toEqual(values);
    expect(decodeRequests(raw, values.length, new DataView(raw)).map((r) => r.value)).toEqual(values);
  });
});
