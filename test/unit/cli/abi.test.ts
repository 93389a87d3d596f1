// `baoctl abi`: prints the addon's tables for every revision and whether TypeScript agrees;
// exit 1 on any disagreement. The addon is injected, so this runs as a unit test.

import { describe, expect, it } from 'vitest';

import { abiReport, runAbi } from '../../../lib/cli/cmds/abi/handler.js';
import type { NativeAddon, NativeRevisionAbi } from '../../../lib/native.js';
import { ABI, type Revision } from '../../../lib/uapi/index.js';

function capture() {
  let text = '';
  return { out: { write: (s: string) => (text += s) }, text: () => text };
}

/** An addon whose abi() says what lib/uapi says (what the real one does: see test/native/abi.test.ts). */
const agreeing = (): Pick<NativeAddon, 'abi'> => ({
  abi: () => structuredClone(ABI) as unknown as Record<Revision, NativeRevisionAbi>,
});

describe('baoctl abi --json', () => {
  it('lists the primary ioctls with their hex values and agreement', () => {
    const c = capture();
    expect(runAbi({ json: true }, { out: c.out, addon: agreeing })).toBe(0);
    const report = JSON.parse(c.text());
    expect(report.agrees).toBe(true);
    const rows = Object.fromEntries(report.revisions.primary.ioctls.map((r: { name: string; value: string }) => [r.name, r.value]));
    expect(rows).toEqual({
      BAO_IOCTL_DM_GET_INFO: '0xC020A601',
      BAO_IOCTL_IO_CLIENT_ATTACH: '0xC030A602',
      BAO_IOCTL_IO_REQUEST_COMPLETE: '0x4030A603',
      BAO_IOCTL_IOEVENTFD: '0x4020A604',
      BAO_IOCTL_IRQFD: '0x4008A605',
    });
    const sizes = Object.fromEntries(report.revisions.primary.structs.map((s: { name: string; size: number }) => [s.name, s.size]));
    expect(sizes).toEqual({ bao_dm_info: 32, bao_virtio_request: 48, bao_ioeventfd: 32, bao_irqfd: 8 });
  });

  it('includes revA and the revB table with CREATE_DM and the 24-byte info', () => {
    const c = capture();
    runAbi({ json: true }, { out: c.out, addon: agreeing });
    const report = JSON.parse(c.text());
    expect(Object.keys(report.revisions)).toEqual(['primary', 'revA', 'revB']);
    expect(report.revisions.revB.ioctlType).toBe('0xA7');
    expect(report.revisions.revB.ioctls[0]).toEqual({
      name: 'BAO_IOCTL_CREATE_DM',
      value: '0x4018A700',
      typescript: '0x4018A700',
      agrees: true,
    });
    expect(report.revisions.revB.structs.find((s: { name: string }) => s.name === 'bao_dm_info').size).toBe(24);
  });
});

describe('baoctl abi', () => {
  it('prints one table per revision and says the two sides agree', () => {
    const c = capture();
    expect(runAbi({ json: false }, { out: c.out, addon: agreeing })).toBe(0);
    expect(c.text()).toMatch(/primary .*ioctl type 0xA6/);
    expect(c.text()).toMatch(/BAO_IOCTL_DM_GET_INFO\s+0xC020A601/);
    expect(c.text()).toMatch(/struct bao_dm_info\s+24 bytes/);
    expect(c.text()).toContain('agree on every value');
  });

  it('flags a value the addon computes differently and exits 1', () => {
    const bad = agreeing().abi();
    (bad.primary.ioctls as Record<string, number>).BAO_IOCTL_IRQFD = 0x4010a605;
    expect(abiReport(bad).agrees).toBe(false);
    const c = capture();
    expect(runAbi({ json: false }, { out: c.out, addon: () => ({ abi: () => bad }) })).toBe(1);
    expect(c.text()).toMatch(/0x4010A605\s+\(TypeScript: 0x4008A605\)/);
    expect(c.text()).toContain('MISMATCH');
  });
});
