// The ABI of each I/O dispatcher revision as data (spec §3.2, §8): ioctl type, numbers computed
// from the _IOC encoding and the struct sizes, and the layouts. Together with
// lib/dispatcher/revision-ops.ts this is the only place revision differences live.

import { iow, iowr } from './ioc.js';
import {
  DM_INFO,
  DM_INFO_REVA,
  DM_INFO_REVB,
  IOEVENTFD,
  IRQFD,
  VIRTIO_REQUEST,
  type StructLayout,
} from './layouts.js';

/**
 * primary = OOT = v1 = v2 (/dev/bao-io-dispatcher, what bao-virtio-dm speaks);
 * revA = one /dev/bao-dm<N> node per DM; revB = /dev/bao + CREATE_DM, type 0xA7.
 */
export type Revision = 'primary' | 'revA' | 'revB';

export const REVISIONS: readonly Revision[] = ['primary', 'revA', 'revB'];

/** The number the addon takes for a revision (native/bao_uapi.h `enum Revision`). */
export const REVISION_ID: Readonly<Record<Revision, 0 | 1 | 2>> = { primary: 0, revA: 1, revB: 2 };

export type IoctlName =
  | 'BAO_IOCTL_CREATE_DM'
  | 'BAO_IOCTL_DM_GET_INFO'
  | 'BAO_IOCTL_IO_CLIENT_ATTACH'
  | 'BAO_IOCTL_IO_REQUEST_COMPLETE'
  | 'BAO_IOCTL_IOEVENTFD'
  | 'BAO_IOCTL_IRQFD';

export type StructName = 'bao_dm_info' | 'bao_virtio_request' | 'bao_ioeventfd' | 'bao_irqfd';

/** One revision's ABI; the addon's abi() returns the same shape (minus `revision`). */
export interface RevisionAbi {
  readonly ioctlType: number;
  readonly ioctls: Readonly<Partial<Record<IoctlName, number>>>;
  readonly structs: Readonly<Record<StructName, StructLayout>>;
}

export const BAO_IOCTL_TYPE = 0xa6;
export const BAO_IOCTL_TYPE_REVB = 0xa7;

function dmIoctls(type: number, infoSize: number): Record<Exclude<IoctlName, 'BAO_IOCTL_CREATE_DM'>, number> {
  return {
    BAO_IOCTL_DM_GET_INFO: iowr(type, 0x01, infoSize),
    BAO_IOCTL_IO_CLIENT_ATTACH: iowr(type, 0x02, VIRTIO_REQUEST.size),
    BAO_IOCTL_IO_REQUEST_COMPLETE: iow(type, 0x03, VIRTIO_REQUEST.size),
    BAO_IOCTL_IOEVENTFD: iow(type, 0x04, IOEVENTFD.size),
    BAO_IOCTL_IRQFD: iow(type, 0x05, IRQFD.size),
  };
}

const common = { bao_virtio_request: VIRTIO_REQUEST, bao_ioeventfd: IOEVENTFD, bao_irqfd: IRQFD };

export const ABI: Readonly<Record<Revision, RevisionAbi>> = {
  primary: {
    ioctlType: BAO_IOCTL_TYPE,
    ioctls: dmIoctls(BAO_IOCTL_TYPE, DM_INFO.size),
    structs: { bao_dm_info: DM_INFO, ...common },
  },
  revA: {
    ioctlType: BAO_IOCTL_TYPE,
    ioctls: dmIoctls(BAO_IOCTL_TYPE, DM_INFO_REVA.size),
    structs: { bao_dm_info: DM_INFO_REVA, ...common },
  },
  revB: {
    ioctlType: BAO_IOCTL_TYPE_REVB,
    ioctls: {
      BAO_IOCTL_CREATE_DM: iow(BAO_IOCTL_TYPE_REVB, 0x00, DM_INFO_REVB.size),
      ...dmIoctls(BAO_IOCTL_TYPE_REVB, DM_INFO_REVB.size),
    },
    structs: { bao_dm_info: DM_INFO_REVB, ...common },
  },
};
