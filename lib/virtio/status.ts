// The device status field (virtio 1.2 §2.1) and the order in which a driver may set its
// bits (§3.1.1). The transport checks every Status write against VALID_TRANSITIONS; a
// write of 0 (reset) and adding FAILED are always allowed. DEVICE_NEEDS_RESET is owned by
// the device: the driver's copy of that bit is ignored on writes, so writing it back with the
// status is harmless, and a write of DEVICE_NEEDS_RESET alone is no reset (only 0 is).

export const ACKNOWLEDGE = 0x01;
export const DRIVER = 0x02;
export const DRIVER_OK = 0x04;
export const FEATURES_OK = 0x08;
export const DEVICE_NEEDS_RESET = 0x40;
export const FAILED = 0x80;

/** The bits a driver writes, in the only order §3.1.1 allows. */
export const VALID_TRANSITIONS: readonly (readonly [from: number, to: number])[] = [
  [0, ACKNOWLEDGE],
  [ACKNOWLEDGE, ACKNOWLEDGE | DRIVER],
  [ACKNOWLEDGE | DRIVER, ACKNOWLEDGE | DRIVER | FEATURES_OK],
  [ACKNOWLEDGE | DRIVER | FEATURES_OK, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK],
];

export type StatusChange =
  | { kind: 'reset' }
  | { kind: 'unchanged' }
  | { kind: 'failed' }
  | { kind: 'advance'; to: number }
  | { kind: 'invalid' };

/**
 * Classify a driver write of `written` while the status is `from` (without
 * DEVICE_NEEDS_RESET, which the caller masks off its own value).
 */
export function classifyStatusWrite(from: number, written: number): StatusChange {
  if (written === 0) return { kind: 'reset' };
  const to = written & ~DEVICE_NEEDS_RESET;
  if (to === 0) return { kind: 'invalid' };
  if (to === from) return { kind: 'unchanged' };
  // §2.1.1: the driver may give up at any point; it adds FAILED to the bits it had.
  if (to === (from | FAILED)) return { kind: 'failed' };
  if ((from & FAILED) !== 0) return { kind: 'invalid' };
  for (const [a, b] of VALID_TRANSITIONS) {
    if (a === from && b === to) return { kind: 'advance', to };
  }
  return { kind: 'invalid' };
}

export function formatStatus(status: number): string {
  const names: string[] = [];
  if (status & ACKNOWLEDGE) names.push('ACKNOWLEDGE');
  if (status & DRIVER) names.push('DRIVER');
  if (status & FEATURES_OK) names.push('FEATURES_OK');
  if (status & DRIVER_OK) names.push('DRIVER_OK');
  if (status & DEVICE_NEEDS_RESET) names.push('DEVICE_NEEDS_RESET');
  if (status & FAILED) names.push('FAILED');
  return names.length === 0 ? 'RESET' : names.join('|');
}
