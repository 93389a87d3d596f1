// The Bao ABI as lib/uapi states it, pinned against the literals of the spec (bao-abi.md §3.2,
// §3.3): if a table changes, these fail before any kernel is involved (STYLE.md guideline 11).

import { describe, expect, it } from 'vitest';

import {
  ABI,
  DM_INFO,
  DM_INFO_REVA,
  DM_INFO_REVB,
  IOEVENTFD,
  IOEVENTFD_FLAG_DATAMATCH,
  IOEVENTFD_FLAG_DEASSIGN,
  IRQFD,
  IRQFD_FLAG_DEASSIGN,
  IoOp,
  REVISION_ID,
  VIRTIO_REQUEST,
  hex32,
  ioc,
  iow,
  iowr,
} from '../../../lib/uapi/index.js';

describe('the _IOC encoding', () => {
  it('packs dir, size, type and nr as the asm-generic layout does', () => {
    expect(iowr(0xa6, 1, 32)).toBe(0xc020a601);
    expect(iow(0xa6, 5, 8)).toBe(0x4008a605);
    expect(ioc(0, 0xa6, 0, 0)).toBe(0x0000a600);
  });

  it('yields unsigned 32-bit values, printed as 0xC020A601', () => {
    expect(iowr(0xa6, 1, 32)).toBeGreaterThan(0);
    expect(hex32(0xc020a601)).toBe('0xC020A601');
  });

  it('refuses sizes that do not fit in 14 bits', () => {
    expect(() => iowr(0xa6, 1, 1 << 14)).toThrow(RangeError);
  });
});

describe('the primary ABI (OOT / v1 / v2)', () => {
  const t = ABI.primary;
  it('uses ioctl type 0xA6 and the five numbers of spec §3.2', () => {
    expect(t.ioctlType).toBe(0xa6);
    expect(t.ioctls).toEqual({
      BAO_IOCTL_DM_GET_INFO: 0xc020a601,
      BAO_IOCTL_IO_CLIENT_ATTACH: 0xc030a602,
      BAO_IOCTL_IO_REQUEST_COMPLETE: 0x4030a603,
      BAO_IOCTL_IOEVENTFD: 0x4020a604,
      BAO_IOCTL_IRQFD: 0x4008a605,
    });
  });

  it('has struct sizes 32 (dm info), 48 (request), 32 (ioeventfd), 8 (irqfd)', () => {
    expect(t.structs.bao_dm_info.size).toBe(32);
    expect(t.structs.bao_virtio_request.size).toBe(48);
    expect(t.structs.bao_ioeventfd.size).toBe(32);
    expect(t.structs.bao_irqfd.size).toBe(8);
  });

  it('lays bao_dm_info out as u32 id, padding, u64 addr, u64 size, u32 irq, s32 fd', () => {
    expect(DM_INFO.offsets).toEqual({ id: 0, shmem_addr: 8, shmem_size: 16, irq: 24, fd: 28 });
  });

  it('lays the request out as six u64 fields', () => {
    expect(VIRTIO_REQUEST.offsets).toEqual({ dm_id: 0, addr: 8, op: 16, value: 24, access_width: 32, request_id: 40 });
  });

  it('lays bao_ioeventfd and bao_irqfd out as spec §3.3 says', () => {
    expect(IOEVENTFD.offsets).toEqual({ fd: 0, flags: 4, addr: 8, len: 16, reserved: 20, data: 24 });
    expect(IRQFD.offsets).toEqual({ fd: 0, flags: 4 });
  });
});

describe('revA', () => {
  it('keeps the primary numbers and a 32-byte info without fd', () => {
    expect(ABI.revA.ioctls).toEqual(ABI.primary.ioctls);
    expect(DM_INFO_REVA.size).toBe(32);
    expect(DM_INFO_REVA.offsets).not.toHaveProperty('fd');
  });
});

describe('revB', () => {
  it('uses type 0xA7, CREATE_DM at nr 0 and the numbers of spec §3.2', () => {
    expect(ABI.revB.ioctlType).toBe(0xa7);
    expect(ABI.revB.ioctls).toEqual({
      BAO_IOCTL_CREATE_DM: 0x4018a700,
      BAO_IOCTL_DM_GET_INFO: 0xc018a701,
      BAO_IOCTL_IO_CLIENT_ATTACH: 0xc030a702,
      BAO_IOCTL_IO_REQUEST_COMPLETE: 0x4030a703,
      BAO_IOCTL_IOEVENTFD: 0x4020a704,
      BAO_IOCTL_IRQFD: 0x4008a705,
    });
  });

  it('has a 24-byte reordered info: u64 addr, u64 size, u32 id, u32 irq', () => {
    expect(DM_INFO_REVB).toEqual({ size: 24, offsets: { shmem_addr: 0, shmem_size: 8, id: 16, irq: 20 } });
  });
});

describe('op codes, flags and revision ids', () => {
  it('match spec §3.1', () => {
    expect(IoOp).toEqual({ Write: 0, Read: 1, Ask: 2, Notify: 3 });
    expect(IOEVENTFD_FLAG_DATAMATCH).toBe(2);
    expect(IOEVENTFD_FLAG_DEASSIGN).toBe(4);
    expect(IRQFD_FLAG_DEASSIGN).toBe(1);
  });

  it('number the revisions as native/bao_uapi.h does', () => {
    expect(REVISION_ID).toEqual({ primary: 0, revA: 1, revB: 2 });
  });
});
