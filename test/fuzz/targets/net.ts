// Fuzz target: virtio-net request handling. A NetDevice (one or two queue pairs, a decoded MTU
// and queue budget) behind the transport and a MockDriver, over a scripted tap. Besides the
// generic ring script (device-harness.ts) the input posts what a virtio_net driver posts, made
// hostile: transmit chains whose vnet header carries decoded flags and GSO types, split across
// descriptors, of decoded lengths around the MTU; receive buffers of decoded sizes (some too
// small for the header, some with a readable part); control commands of any class and command
// with data of plausible and implausible shapes and any ack room. The tap delivers decoded
// frames with decoded headers, pushes back (EAGAIN), fails (EIO) or goes away (EBADFD).
// Besides the shared oracle: every view handed to the tap lies inside the region; nothing
// larger than the negotiated maximum reaches the tap; a frame goes out only with a header the
// driver's features allow; the counters agree with what the tap saw; and once the tap takes
// everything, every chain taken has been given back except receive chains waiting in the merge
// reserve for a frame. Checked on each chain the device gives back:
//   * a receive frame carries a header that passes the driver's features (DATA_VALID cleared
//     where it must be), num_buffers says how many chains it took (1 without MRG_RXBUF) and
//     exactly that many follow, none empty; it is at least a header long, at most the
//     negotiated maximum, and with VIRTIO_NET_F_MTU no frame without GSO is larger than the
//     MTU allows;
//   * a control command is answered in its first writable byte (the ack, as QEMU and the
//     spec's struct virtio_net_ctrl put it), with OK or ERR and a used length of 1.
//
// A transmit chain held while the tap pushed back completes through a Promise (the QueueWorker
// publishes it from a microtask), so this target is asynchronous, as blk is: it lets the
// microtasks run after each step, as the daemon's event loop does after each callback. Run
// synchronously (the engine's --sync loop never empties the stack, so no microtask ever ran)
// every input left its queued completions behind, each holding its device and queues:
// MEMORY_GROWTH after 172,032 inputs, about 650 bytes an input.

import { NetDevice, parseMac } from '../../../lib/devices/net/index.js';
import { NET_F_CTRL_VQ, NET_F_MQ, NET_F_MRG_RXBUF, NET_F_MTU } from '../../../lib/devices/net/config.js';
import {
  ETH_OVERHEAD,
  GSO_ECN,
  GSO_NONE,
  HDR_NUM_BUFFERS,
  VNET_HDR_SIZE,
  checkRxHeader,
  checkTxHeader,
  decodeHeader,
  gatherHeader,
  maxRxFrame,
  maxTxFrame,
} from '../../../lib/devices/net/header.js';
import type { DescriptorChain } from '../../../lib/virtio/descriptor-chain.js';
import type { SplitQueue } from '../../../lib/virtio/split-queue.js';
import type { TapInterface, TapQueue } from '../../../lib/devices/net/tap.js';
import type { MockBuffer, MockQueue } from '../../../lib/virtio/testing/mock-driver.js';
import { MockDriverError } from '../../../lib/virtio/testing/mock-driver.js';
import { DeviceHarness, ScriptedEventLoop, microtasks } from '../device-harness.js';
import { FuzzInput } from '../decode.js';
import { beginInput, raiseSwallowed, setChainHooks, violated, watchedQueues } from '../oracle.js';

const MAC = parseMac('52:54:00:12:34:56')!;
/** Addresses a frame may be sent to and a MAC table may list (ours, broadcast, a peer, multicast). */
const ADDRESSES: readonly (readonly number[])[] = [
  MAC,
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x02, 0, 0, 0, 0, 0x01],
  [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
  [0x33, 0x33, 0, 0, 0, 0x01],
];
/** What the target leaves in a control command's ack byte: the device must overwrite it. */
const ACK_SENTINEL = 0xee;

type Handlers = { readable: () => void; writable: () => void; error: (err: Error) => void };

class ScriptedTapQueue implements TapQueue {
  readonly inbound: Uint8Array[] = [];
  full = false;
  readError: Error | undefined;
  writeError: Error | undefined;
  wantReadable = false;
  wantWritable = false;
  written = 0;
  handlers: Handlers | undefined;

  constructor(private readonly check: (views: readonly Uint8Array[], what: string) => number) {}

  readv(buffers: readonly Uint8Array[]): number {
    this.check(buffers, 'readv');
    if (this.readError) throw this.readError;
    const frame = this.inbound.shift();
    if (frame === undefined) return -1;
    let at = 0;
    for (const b of buffers) {
      if (at >= frame.length) break;
      const n = Math.min(b.length, frame.length - at);
      b.set(frame.subarray(at, at + n));
      at += n;
    }
    return frame.length;
  }

  writev(region: Uint8Array, spans: readonly number[], count: number): number {
    const buffers: Uint8Array[] = [];
    for (let i = 0; i < count; i += 1) {
      const off = spans[2 * i]!;
      const len = spans[2 * i + 1]!;
      if (!(off >= 0 && len >= 0 && off + len <= region.length)) violated('VIEW_OUTSIDE_REGION', `writev given [${off}, +${len}) outside its region`);
      else buffers.push(region.subarray(off, off + len));
    }
    const total = this.check(buffers, 'writev');
    if (this.writeError) throw this.writeError;
    if (this.full) return -1;
    this.written += 1;
    return total;
  }

  watch(handlers: Handlers): void {
    this.handlers = handlers;
  }

  want(readable: boolean, writable: boolean): void {
    this.wantReadable = readable;
    this.wantWritable = writable;
  }
}

class ScriptedTap implements TapInterface {
  readonly name = 'fuzztap';
  readonly queues: ScriptedTapQueue[];

  constructor(
    pairs: number,
    check: (views: readonly Uint8Array[], what: string) => number,
    private readonly loop: ScriptedEventLoop,
  ) {
    this.queues = Array.from({ length: pairs }, () => new ScriptedTapQueue(check));
  }

  setOffload(_flags: number, done: (err: Error | null) => void): void {
    this.loop.yield(() => done(null)); // the thread pool answers on a later turn
  }

  close(): void {}
}

function header(input: FuzzInput): Uint8Array {
  const h = new Uint8Array(VNET_HDR_SIZE);
  const v = new DataView(h.buffer);
  h[0] = input.pick([0, 0, 1, 2, 3, 0x80, input.u8()]);
  h[1] = input.pick([0, 0, 1, 3, 4, 0x81, 5, input.u8()]);
  v.setUint16(2, input.pick([0, 54, input.u16()]), true);
  v.setUint16(4, input.pick([0, 1448, input.u16()]), true);
  v.setUint16(6, input.pick([0, 34, input.u16()]), true);
  v.setUint16(8, input.pick([0, 16, input.u16()]), true);
  return h;
}

/** A MAC address: one of ADDRESSES mostly, sometimes any six bytes. */
function address(input: FuzzInput): readonly number[] {
  const b = input.u8();
  return b < 224 ? ADDRESSES[b % ADDRESSES.length]! : Array.from({ length: 6 }, () => input.u8());
}

/** A frame (vnet header first) of a decoded length: small, around the MTU's edge, or GSO-sized. */
function frame(input: FuzzInput, mtu: number): Uint8Array {
  const length = input.pick([0, 1, 5, 14, 60, 100, 600, 1400, 1530, 3000, 9030, mtu + 14, mtu + ETH_OVERHEAD, mtu + ETH_OVERHEAD + 1, mtu + ETH_OVERHEAD + 64]);
  const out = new Uint8Array(VNET_HDR_SIZE + length);
  out.set(header(input));
  if (length >= 6) out.set(address(input), VNET_HDR_SIZE);
  return input.bool() ? out : out.subarray(0, input.below(VNET_HDR_SIZE + 1)); // sometimes short
}

/** Posts a chain; its head, or undefined when the driver could not (no queue, no room). */
function post(q: MockQueue | undefined, buffers: MockBuffer[], input: FuzzInput): number | undefined {
  if (q === undefined || buffers.length === 0) return undefined;
  try {
    return q.add(buffers, { indirect: input.bool() });
  } catch (err) {
    if (!(err instanceof MockDriverError)) throw err; // out of descriptors or guest memory
    return undefined;
  }
}

/** A control command: class, command, data of some shape, and some room for the ack. */
function command(input: FuzzInput): MockBuffer[] {
  const cls = input.pick([0, 1, 4, input.u8()]);
  const cmd = input.pick([0, 1, input.u8()]);
  let data: number[];
  switch (input.below(6)) {
    case 0:
      data = [input.u8()];
      break;
    case 1: {
      const pairs = input.pick([0, 1, 2, 3, input.u16()]);
      data = [pairs & 0xff, pairs >> 8];
      break;
    }
    case 2:
      data = [...address(input)];
      break;
    case 3: {
      data = [];
      for (let t = 0; t < 2; t += 1) {
        const n = input.pick([0, 1, 2, 0xffffffff]);
        data.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
        for (let i = 0; i < Math.min(n, 3); i += 1) data.push(...address(input));
      }
      break;
    }
    case 4:
      data = Array.from(input.bytes(40));
      break;
    default:
      data = [];
  }
  const bytes = [cls, cmd, ...data];
  const buffers: MockBuffer[] = [];
  if (input.bool() || bytes.length < 2) buffers.push({ data: bytes });
  else {
    const cut = 1 + input.below(bytes.length - 1);
    buffers.push({ data: bytes.slice(0, cut) }, { data: bytes.slice(cut) });
  }
  const ack = input.pick([1, 1, 1, 0, 4, -1, -2]);
  if (ack === -2) buffers.push({ data: [ACK_SENTINEL], writable: true }, { length: 0, writable: true });
  else if (ack > 0) buffers.push({ data: new Array<number>(ack).fill(ACK_SENTINEL), writable: true });
  else if (ack === 0) buffers.push({ length: 0, writable: true });
  return buffers;
}

export async function fuzz(data: Uint8Array): Promise<void> {
  beginInput();
  const input = new FuzzInput(data);
  const pairs = input.pick([1, 2]);
  const mtu = input.pick([68, 576, 1500, 9000]);
  const maxQueue = input.pick([1, 2, 4, 16, 64, 256]);
  const budget = input.pick([{}, { chains: 1 }, { chains: 4, bytes: 2048 }, { bytes: 1 }]);
  const loop = new ScriptedEventLoop();
  let harness: DeviceHarness | undefined;
  let device: NetDevice | undefined;
  const check = (views: readonly Uint8Array[], what: string): number => {
    let total = 0;
    const region = harness?.driver.memory.bytes;
    for (const v of views) {
      total += v.byteLength;
      if (region === undefined) continue;
      const start = v.byteOffset - region.byteOffset;
      if (v.buffer !== region.buffer || start < 0 || start + v.byteLength > region.byteLength) {
        violated('VIEW_OUTSIDE_REGION', `${what} given [${start}, +${v.byteLength}) outside the region`);
      }
    }
    if (what === 'writev' && harness !== undefined && device !== undefined) {
      const features = harness.driver.transport.features;
      const max = maxTxFrame(features, mtu);
      if (total > max) violated('TX_OVERSIZE', `${total} bytes written to the tap; the negotiated maximum is ${max}`);
      const scratch = new Uint8Array(VNET_HDR_SIZE);
      if (!gatherHeader(views, scratch)) violated('TX_SHORT', `${total} bytes written to the tap, shorter than the header`);
      const verdict = checkTxHeader(decodeHeader(scratch), features);
      if (verdict !== 'ok') violated('TX_OFFLOAD', `a frame with header verdict '${verdict}' reached the tap`);
    }
    return total;
  };
  const tap = new ScriptedTap(pairs, check, loop);
  device = new NetDevice({ tap, mac: MAC, mtu, queueSize: maxQueue, scheduler: loop, budget });
  harness = new DeviceHarness(device, input, { maxQueueSize: 256, completesSynchronously: () => false }, loop);
  harness.init();
  const h = harness;
  const net = device;
  const ctrlIndex = (): number => 2 * ((h.driver.transport.features & NET_F_MQ) !== 0n ? pairs : 1);
  const acks = new Set<number>();
  const writableTaken: Uint8Array[] = [];
  /** Per receive queue: chains still to come for the frame being published, and its length so far. */
  const merging = new Map<SplitQueue, { left: number; total: number; gso: number }>();
  const scratch = new Uint8Array(VNET_HDR_SIZE);
  const queueIndexOf = (queue: SplitQueue): number => h.queues.findIndex((q) => q?.descTable === queue.descTable);
  setChainHooks({
    popped: (_queue, chain: DescriptorChain) => {
      for (const b of chain.writable) if (b.byteLength > 0) writableTaken.push(b);
    },
    used: (queue, head, written, chain) => {
      const index = queueIndexOf(queue);
      if (index < 0 || chain === undefined) return;
      const features = h.driver.transport.features;
      if (index === ctrlIndex() && (features & NET_F_CTRL_VQ) !== 0n) checkAck(head, written, chain);
      else if ((index & 1) === 0 && index < 2 * pairs) checkRx(queue, head, written, chain, features);
    },
  });
  const checkAck = (head: number, written: number, chain: DescriptorChain): void => {
    const ack = chain.writable.find((b) => b.byteLength > 0)?.subarray(0, 1);
    if (written === 0) {
      if (ack !== undefined) violated('CTRL_UNANSWERED', `control command ${head} given back unanswered; it has room for the ack`);
      return;
    }
    if (written !== 1) violated('CTRL_USED_LENGTH', `control command ${head} given back with ${written} bytes; the ack is one`);
    if (ack === undefined || !acks.has(ack.byteOffset)) return;
    // An ack byte another chain's writable buffer covers can be overwritten by that chain's answer.
    if (writableTaken.filter((b) => b.buffer === ack.buffer && b.byteOffset <= ack.byteOffset && ack.byteOffset < b.byteOffset + b.byteLength).length > 1) return;
    if (ack[0] === ACK_SENTINEL) violated('CTRL_ACK_NOT_WRITTEN', `control command ${head} answered without writing its ack (the first writable byte)`);
    if (ack[0]! > 1) violated('CTRL_ACK_VALUE', `control command ${head} answered with ack ${ack[0]}`);
  };
  const checkRx = (queue: SplitQueue, head: number, written: number, chain: DescriptorChain, features: bigint): void => {
    const m = merging.get(queue);
    if (m !== undefined && m.left > 0) {
      if (written === 0) violated('RX_NUM_BUFFERS', `receive chain ${head} given back empty inside a frame that needs ${m.left} more`);
      m.left -= 1;
      m.total += written;
      if (m.left === 0) checkRxFrame(m.total, m.gso, features);
      return;
    }
    if (written === 0) return; // returned unused (no room for a header, a readable part)
    if (written < VNET_HDR_SIZE || !gatherHeader(chain.writable, scratch)) violated('RX_SHORT', `receive chain ${head} given back with ${written} bytes, less than the header`);
    const hdr = decodeHeader(scratch);
    const verdict = checkRxHeader(hdr, features);
    if (verdict !== 'ok') violated('RX_OFFLOAD', `a frame with header verdict '${verdict}' reached the guest`);
    const count = scratch[HDR_NUM_BUFFERS]! | (scratch[HDR_NUM_BUFFERS + 1]! << 8);
    const mergeable = (features & NET_F_MRG_RXBUF) !== 0n;
    if (count < 1 || (!mergeable && count !== 1)) violated('RX_NUM_BUFFERS', `num_buffers ${count} ${mergeable ? '' : 'without MRG_RXBUF'}`);
    merging.set(queue, { left: count - 1, total: written, gso: hdr.gsoType & ~GSO_ECN });
    if (count === 1) checkRxFrame(written, hdr.gsoType & ~GSO_ECN, features);
  };
  const checkRxFrame = (total: number, gso: number, features: bigint): void => {
    const max = maxRxFrame(features, mtu);
    if (total > max) violated('RX_OVERSIZE', `a frame of ${total} bytes reached the guest; the negotiated maximum is ${max}`);
    if ((features & NET_F_MTU) !== 0n && gso === GSO_NONE && total > VNET_HDR_SIZE + mtu + ETH_OVERHEAD) {
      violated('RX_ABOVE_MTU', `a frame of ${total - VNET_HDR_SIZE} bytes without GSO reached a driver that negotiated an MTU of ${mtu}`);
    }
  };
  const readable = (j: number): void => {
    const q = tap.queues[j]!;
    if (q.wantReadable && (q.inbound.length > 0 || q.readError)) h.deliver(`tap ${j} readable`, () => q.handlers?.readable());
  };
  const writable = (j: number): void => {
    const q = tap.queues[j]!;
    if (q.wantWritable && !q.full) h.deliver(`tap ${j} writable`, () => q.handlers?.writable());
  };
  for (let steps = 0; steps < 64 && !input.done; steps += 1) {
    const op = input.u8();
    if (op < 0x90 && h.step(op)) {
      await microtasks();
      continue;
    }
    const j = input.below(pairs);
    switch (input.u8() % 8) {
      case 0: {
        const q = tap.queues[j]!;
        if (q.inbound.length < 64) q.inbound.push(frame(input, mtu));
        readable(j);
        break;
      }
      case 1: {
        const f = frame(input, mtu);
        const parts: MockBuffer[] = [];
        let at = 0;
        for (let n = input.below(3); n > 0 && at < f.length; n -= 1) {
          const cut = at + 1 + input.below(f.length - at);
          parts.push({ data: f.subarray(at, cut) });
          at = cut;
        }
        if (at < f.length || parts.length === 0) parts.push({ data: f.subarray(at) });
        if (input.u8() < 16) parts.push({ length: input.pick([0, 1, 64]), writable: true }); // a transmit chain must not have one
        post(h.queues[2 * j + 1], parts, input);
        if (input.bool()) h.deliver(`kick tx ${j}`, () => h.driver.kick(2 * j + 1));
        break;
      }
      case 2: {
        for (let n = 1 + input.below(8); n > 0; n -= 1) {
          const parts: MockBuffer[] = input.below(8) === 0 ? [{ length: 8 }] : [];
          // One buffer mostly; sometimes the header split from the data, or several pieces.
          for (let k = input.below(4) === 0 ? 1 + input.below(3) : 1; k > 0; k -= 1) {
            const length = input.pick([0, 4, 11, 12, 64, 1526, 4096, 6, 10, mtu + ETH_OVERHEAD + VNET_HDR_SIZE, mtu]);
            parts.push({ length, writable: true });
          }
          post(h.queues[2 * j], parts, input);
        }
        if (input.bool()) h.deliver(`kick rx ${j}`, () => h.driver.kick(2 * j));
        break;
      }
      case 3: {
        if ((h.driver.transport.features & NET_F_CTRL_VQ) === 0n) break;
        const ci = ctrlIndex();
        const cmd = command(input);
        const head = post(h.queues[ci], cmd, input);
        const ackAt = cmd.findIndex((b) => b.writable === true && (b.length ?? b.data?.length ?? 0) > 0);
        const view = head === undefined || ackAt < 0 ? undefined : h.queues[ci]!.buffers(head)[ackAt];
        if (view !== undefined) acks.add(view.byteOffset);
        h.deliver('kick ctrl', () => h.driver.kick(ci));
        break;
      }
      case 4:
        tap.queues[j]!.full = input.bool();
        writable(j);
        break;
      case 5: {
        const q = tap.queues[j]!;
        const err = input.pick([undefined, 'EIO', 'EBADFD']);
        const e = err === undefined ? undefined : Object.assign(new Error(err), { code: err });
        if (input.bool()) q.readError = e;
        else q.writeError = e;
        readable(j);
        break;
      }
      case 6:
        writable(j);
        break;
      default:
        readable(j);
    }
    await microtasks();
  }
  // The tap takes everything from now on: every transmit and control chain comes back.
  for (const q of tap.queues) {
    q.full = false;
    q.writeError = undefined;
    q.readError = undefined;
  }
  for (let round = 0; round < 8; round += 1) {
    h.settle();
    tap.queues.forEach((_, j) => writable(j));
    await microtasks();
  }
  h.settle();
  await microtasks();
  raiseSwallowed();
  // Every chain taken is given back, or still held by the device: a receive chain in the merge
  // reserve, or one whose handler has not settled (counted in flight until then).
  for (const w of watchedQueues()) {
    if (w.queue.closed || w.outstanding.size === 0) continue;
    const index = h.queues.findIndex((q) => q?.descTable === w.queue.descTable);
    let count = 0;
    for (const o of w.outstanding.values()) count += o.count;
    const held = index < 0 ? 0 : net.chainsHeld(index);
    if (count > held) violated('REQUEST_NOT_COMPLETED', `queue ${index}: ${count} chains taken and not given back; the device holds ${held}`);
  }
  const sent = tap.queues.reduce((n, q) => n + q.written, 0);
  if (net.metrics.txFrames !== sent) violated('NET_COUNTERS', `metrics say ${net.metrics.txFrames} frames sent; the tap took ${sent}`);
  // Whatever completes at the reset is dropped there, in this input: nothing is left queued.
  void net.reset();
  await microtasks();
  raiseSwallowed();
}
