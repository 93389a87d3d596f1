// The system side of a tap for lib/devices/net (and vhost-net): the addon's tap calls, fs's
// close, and a libuv poller per fd. Built here so that lib/devices never loads the addon.

import { closeSync } from 'node:fs';

import type { FdWatch, TapSyscalls } from '../devices/net/tap.js';
import { loadAddon, type NativeAddon } from '../native.js';

/**
 * Views as (offset, length) spans of one view of their whole ArrayBuffer: the guest's buffers are
 * all views of one mapping, and the addon takes spans with two N-API calls for the whole vector
 * where an array of views costs four per view (a merged receive vector has dozens of them, for
 * every frame). Views of different buffers fall back to the array form.
 */
export class SpanVector {
  spans = new Uint32Array(128);
  region: Uint8Array = new Uint8Array(0);
  private readonly regions = new WeakMap<ArrayBufferLike, Uint8Array>();

  /** Fills spans and region from `views`; their count, or -1 when they are not of one buffer. */
  build(views: readonly Uint8Array[]): number {
    const n = views.length;
    const first = views[0];
    if (first === undefined) return -1;
    const buffer = first.buffer;
    if (buffer.byteLength > 0xffff_ffff) return -1;
    if (this.spans.length < 2 * n) this.spans = new Uint32Array(4 * n);
    const spans = this.spans;
    for (let i = 0; i < n; i += 1) {
      const v = views[i] as Uint8Array;
      if (v.buffer !== buffer) return -1;
      spans[2 * i] = v.byteOffset;
      spans[2 * i + 1] = v.byteLength;
    }
    let region = this.regions.get(buffer);
    if (region === undefined || region.byteLength !== buffer.byteLength) {
      region = new Uint8Array(buffer);
      this.regions.set(buffer, region);
    }
    this.region = region;
    return n;
  }
}

/** `addon` defaults to the loaded addon, loaded on first use (a config without net never needs it). */
export function tapSyscalls(given?: NativeAddon): TapSyscalls {
  let loaded = given;
  const a = (): NativeAddon => (loaded ??= loadAddon());
  const vec = new SpanVector();
  let txSpans = new Float64Array(64);
  return {
    tapOpen: (name, multiQueue) => a().tapOpen(name, multiQueue),
    tapSetVnetHdrSize: (fd, size) => a().tapSetVnetHdrSize(fd, size),
    tapSetOffload: (fd, flags) => a().tapSetOffload(fd, flags),
    tapSetOffloadAsync: (fd, flags, cb) => a().tapSetOffload(fd, flags, cb),
    readv: (fd, buffers) => {
      const n = vec.build(buffers);
      return n < 0 ? a().readv(fd, buffers) : a().readvSpans(fd, vec.region, vec.spans, n);
    },
    writev: (fd, region, spans, count) => {
      // The chain's spans (a plain array) copied into a typed array the addon reads in one call.
      if (txSpans.length < 2 * count) txSpans = new Float64Array(4 * count);
      for (let i = 0; i < 2 * count; i += 1) txSpans[i] = spans[i]!;
      return a().writevSpans(fd, region, txSpans, count);
    },
    close: (fd) => closeSync(fd),
    watch: (fd, onEvent, onError): FdWatch => {
      // One libuv poll handle per fd (libuv allows no second one), its mask changed in place.
      const addon = a();
      const c = addon.constants;
      const poller = new addon.Poller(fd, (err, events) => {
        if (err !== null) onError(err);
        else onEvent((events & c.POLL_READABLE) !== 0, (events & c.POLL_WRITABLE) !== 0);
      });
      let mask = 0;
      return {
        set: (readable, writable) => {
          const next = (readable ? c.POLL_READABLE : 0) | (writable ? c.POLL_WRITABLE : 0);
          if (next === mask) return;
          mask = next;
          if (next === 0) poller.stop();
          else poller.start(next);
        },
        close: () => poller.close(),
      };
    },
  };
}
