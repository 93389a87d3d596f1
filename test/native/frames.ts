// Ethernet frames for the tap tests: an ARP request the kernel answers, and a parser for its reply.

export const GUEST_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

function ip4(text: string): number[] {
  return text.split('.').map(Number);
}

/** who-has `target` tell `sender`, broadcast from GUEST_MAC. */
export function arpRequest(sender: string, target: string): Uint8Array {
  return Uint8Array.from([
    ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ...GUEST_MAC,
    0x08, 0x06, // ARP
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, request
    ...GUEST_MAC,
    ...ip4(sender),
    ...[0, 0, 0, 0, 0, 0],
    ...ip4(target),
  ]);
}

/** The ARP reply's sender IP when `frame` is an ARP reply to GUEST_MAC, else undefined. */
export function arpReplySender(frame: Uint8Array): string | undefined {
  if (frame.length < 42) return undefined;
  if (frame[12] !== 0x08 || frame[13] !== 0x06 || frame[21] !== 2) return undefined;
  for (let i = 0; i < 6; i += 1) if (frame[i] !== GUEST_MAC[i]) return undefined;
  return Array.from(frame.subarray(28, 32)).join('.');
}
