// The names under which a device model's kernel objects are kept across a restart (systemd's
// FDNAME=, the hand-over manifest): which DM each fd belongs to and what it is, so that the next
// process can tell them apart and check each against its config. Names obey systemd's rules for
// FDNAME (printable ASCII, no ':', at most 255 characters).
//
//   dm<id>-<shmem addr hex>-<shmem size hex>-<irq>   the DM fd, with what DM_GET_INFO said
//   dm<id>-irq                                       the eventfd registered as its irqfd
//   dm<id>-kick<queue>                               the eventfd registered as queue <queue>'s ioeventfd
//
// The DM fd's name carries its info because on the out-of-tree and v1 drivers the next process
// must not ask DM_GET_INFO again: that makes a new DM fd, which it could never close.

export type KeptFdRole =
  | { readonly kind: 'dm'; readonly dm: number; readonly shmemAddr: bigint; readonly shmemSize: bigint; readonly irq: number }
  | { readonly kind: 'irq'; readonly dm: number }
  | { readonly kind: 'kick'; readonly dm: number; readonly queue: number };

const DM = /^dm(\d{1,5})-([0-9a-f]{1,16})-([0-9a-f]{1,16})-(\d{1,10})$/;
const IRQ = /^dm(\d{1,5})-irq$/;
const KICK = /^dm(\d{1,5})-kick(\d{1,5})$/;

export function formatFdName(role: KeptFdRole): string {
  switch (role.kind) {
    case 'dm':
      return `dm${role.dm}-${role.shmemAddr.toString(16)}-${role.shmemSize.toString(16)}-${role.irq}`;
    case 'irq':
      return `dm${role.dm}-irq`;
    case 'kick':
      return `dm${role.dm}-kick${role.queue}`;
  }
}

/** The role a name stands for, or undefined when it is not one of ours. */
export function parseFdName(name: string): KeptFdRole | undefined {
  let m = DM.exec(name);
  if (m !== null) return { kind: 'dm', dm: Number(m[1]), shmemAddr: BigInt(`0x${m[2]}`), shmemSize: BigInt(`0x${m[3]}`), irq: Number(m[4]) };
  m = IRQ.exec(name);
  if (m !== null) return { kind: 'irq', dm: Number(m[1]) };
  m = KICK.exec(name);
  if (m !== null) return { kind: 'kick', dm: Number(m[1]), queue: Number(m[2]) };
  return undefined;
}
