// systemd's file-descriptor store (sd_pid_notify_with_fds(3), FDSTORE=1): each kernel object a
// device model creates is sent to the service manager once, with its name, over $NOTIFY_SOCKET;
// systemd keeps it while the daemon restarts and hands it back through LISTEN_FDS. The unit must
// allow it (FileDescriptorStoreMax=, see systemd/node-bao.service): systemd drops fds sent
// beyond that. FDPOLL=0: systemd would otherwise drop an fd that reports POLLHUP/POLLERR, and the
// Bao driver's DM fds give no poll semantics of their own to rely on.

export type FdDatagramSender = (path: string, data: Buffer, fds: readonly number[]) => unknown;

/** The store call for KeptFds, or undefined outside systemd (no NOTIFY_SOCKET). */
export function systemdFdStore(env: NodeJS.ProcessEnv, send: FdDatagramSender | (() => FdDatagramSender)): ((name: string, fd: number) => void) | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '' || (!socket.startsWith('/') && !socket.startsWith('@'))) return undefined;
  let sender: FdDatagramSender | undefined;
  return (name, fd) => {
    sender ??= send.length === 0 ? (send as () => FdDatagramSender)() : (send as FdDatagramSender);
    sender(socket, Buffer.from(fdStoreMessage(name)), [fd]);
  };
}

export function fdStoreMessage(name: string): string {
  return `FDSTORE=1\nFDNAME=${name}\nFDPOLL=0`;
}

/** Asks systemd to drop what it keeps under `name` (a device model that was removed for good). */
export function fdStoreRemoveMessage(name: string): string {
  return `FDSTOREREMOVE=1\nFDNAME=${name}`;
}
