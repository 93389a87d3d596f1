// The control queue (virtio 1.2 §5.1.6.5): class, command, data (device-readable), then one ack
// byte (device-writable). Linux waits for the ack by spinning, often with rtnl held, so every
// command is answered at once from state in this process and never through a tap ioctl.
// Served: RX mode (promiscuous, all-multicast) and the MAC table, recorded here and enforced on
// receive by filter.ts; the MAC address (it also updates the config space); and MQ's
// VQ_PAIRS_SET (how many pairs the driver uses).

import { copyFromReadable, type DescriptorChain } from '../../virtio/descriptor-chain.js';

export const CTRL_RX = 0;
export const CTRL_RX_PROMISC = 0;
export const CTRL_RX_ALLMULTI = 1;
export const CTRL_MAC = 1;
export const CTRL_MAC_TABLE_SET = 0;
export const CTRL_MAC_ADDR_SET = 1;
export const CTRL_MQ = 4;
export const CTRL_MQ_VQ_PAIRS_SET = 0;
export const CTRL_OK = 0;
export const CTRL_ERR = 1;

/** Limit on what one command may carry: two MAC tables of a few thousand entries at most. */
const MAX_COMMAND_BYTES = 64 * 1024;

export interface CtrlState {
  promisc: boolean;
  allmulti: boolean;
  unicastFilter: string[];
  multicastFilter: string[];
}

export interface CtrlHandlers {
  readonly maxPairs: number;
  readonly mq: boolean;
  readonly macAddr: boolean;
  setPairs(pairs: number): void;
  setMac(mac: Uint8Array): void;
  readonly state: CtrlState;
}

/** The state after reset: promiscuous until the driver programs a filter (as QEMU's device). */
export function newCtrlState(): CtrlState {
  return { promisc: true, allmulti: false, unicastFilter: [], multicastFilter: [] };
}

/** Executes one command chain; returns the ack, or undefined if it has no room for one. */
export function executeCommand(chain: DescriptorChain, handlers: CtrlHandlers): { ack: number; ok: boolean; reason?: string } {
  if (chain.readableLength < 2) return { ack: CTRL_ERR, ok: false, reason: 'command shorter than its class and code' };
  if (chain.readableLength > MAX_COMMAND_BYTES) return { ack: CTRL_ERR, ok: false, reason: 'command too long' };
  const bytes = new Uint8Array(chain.readableLength);
  copyFromReadable(chain, bytes);
  const cls = bytes[0] as number;
  const cmd = bytes[1] as number;
  const data = bytes.subarray(2);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bad = (reason: string) => ({ ack: CTRL_ERR, ok: false, reason });
  switch (cls) {
    case CTRL_RX: {
      if (data.length !== 1) return bad('RX command data is not one byte');
      const on = data[0] !== 0;
      if (cmd === CTRL_RX_PROMISC) handlers.state.promisc = on;
      else if (cmd === CTRL_RX_ALLMULTI) handlers.state.allmulti = on;
      else return bad(`unknown RX command ${cmd}`);
      return { ack: CTRL_OK, ok: true };
    }
    case CTRL_MAC: {
      if (cmd === CTRL_MAC_ADDR_SET) {
        if (!handlers.macAddr) return bad('MAC_ADDR_SET without VIRTIO_NET_F_CTRL_MAC_ADDR');
        if (data.length !== 6) return bad('MAC_ADDR_SET data is not 6 bytes');
        handlers.setMac(data);
        return { ack: CTRL_OK, ok: true };
      }
      if (cmd === CTRL_MAC_TABLE_SET) {
        // Two tables (unicast, multicast), each a u32 count then count * 6 bytes.
        const tables: string[][] = [];
        let at = 0;
        for (let t = 0; t < 2; t += 1) {
          if (at + 4 > data.length) return bad('MAC table truncated');
          const entries = view.getUint32(at, true);
          at += 4;
          if (entries > (data.length - at) / 6) return bad('MAC table longer than the command');
          const macs: string[] = [];
          for (let i = 0; i < entries; i += 1, at += 6) macs.push(Array.from(data.subarray(at, at + 6), (b) => b.toString(16).padStart(2, '0')).join(':'));
          tables.push(macs);
        }
        if (at !== data.length) return bad('MAC table command has trailing bytes');
        handlers.state.unicastFilter = tables[0] as string[];
        handlers.state.multicastFilter = tables[1] as string[];
        return { ack: CTRL_OK, ok: true };
      }
      return bad(`unknown MAC command ${cmd}`);
    }
    case CTRL_MQ: {
      if (!handlers.mq) return bad('MQ command without VIRTIO_NET_F_MQ');
      if (cmd !== CTRL_MQ_VQ_PAIRS_SET) return bad(`unsupported MQ command ${cmd}`);
      if (data.length !== 2) return bad('VQ_PAIRS_SET data is not a u16');
      const pairs = view.getUint16(0, true);
      if (pairs < 1 || pairs > handlers.maxPairs) return bad(`VQ_PAIRS_SET ${pairs} outside 1..${handlers.maxPairs}`);
      handlers.setPairs(pairs);
      return { ack: CTRL_OK, ok: true };
    }
    default:
      return bad(`unsupported command class ${cls}`);
  }
}
