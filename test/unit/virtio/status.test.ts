import { describe, expect, it } from 'vitest';
import {
  ACKNOWLEDGE,
  classifyStatusWrite,
  DEVICE_NEEDS_RESET,
  DRIVER,
  DRIVER_OK,
  FAILED,
  FEATURES_OK,
  formatStatus,
  VALID_TRANSITIONS,
} from '../../../lib/virtio/status.js';

const A = ACKNOWLEDGE;
const AD = A | DRIVER;
const ADF = AD | FEATURES_OK;
const ADFO = ADF | DRIVER_OK;

describe('device status transitions (virtio 1.2 §2.1, §3.1.1)', () => {
  it('has the bit values of the spec', () => {
    expect([ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, FAILED]).toEqual([1, 2, 4, 8, 128]);
  });

  it('lists the initialisation sequence as its valid transitions', () => {
    expect(VALID_TRANSITIONS).toEqual([
      [0, A],
      [A, AD],
      [AD, ADF],
      [ADF, ADFO],
    ]);
  });

  const cases: [from: number, to: number, kind: string][] = [
    [0, A, 'advance'],
    [A, AD, 'advance'],
    [AD, ADF, 'advance'],
    [ADF, ADFO, 'advance'],
    [ADFO, 0, 'reset'],
    [A, 0, 'reset'],
    [0, 0, 'reset'],
    [AD, AD, 'unchanged'],
    [AD, AD | FAILED, 'failed'],
    [ADFO, ADFO | FAILED, 'failed'],
    [0, FAILED, 'failed'],
    [0, AD, 'invalid'],
    [A, ADF, 'invalid'],
    [AD, AD | DRIVER_OK, 'invalid'],
    [0, DRIVER_OK, 'invalid'],
    [ADF, AD, 'invalid'],
    [ADFO, ADF, 'invalid'],
    [AD | FAILED, ADF | FAILED, 'invalid'],
    [AD | FAILED, A | FAILED, 'invalid'],
    [A, A | 0x10, 'invalid'],
    // DEVICE_NEEDS_RESET in a write is ignored: alone it is no reset, with the status it is harmless.
    [ADFO, DEVICE_NEEDS_RESET, 'invalid'],
    [ADFO, ADFO | DEVICE_NEEDS_RESET, 'unchanged'],
    [ADFO, ADFO | DEVICE_NEEDS_RESET | FAILED, 'failed'],
  ];
  it.each(cases)('from %i, a write of %i is %s', (from, to, kind) => {
    expect(classifyStatusWrite(from, to).kind).toBe(kind);
  });

  it('names status values for logs', () => {
    expect(formatStatus(0)).toBe('RESET');
    expect(formatStatus(ADFO)).toBe('ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK');
  });
});
