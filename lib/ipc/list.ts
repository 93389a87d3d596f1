// Which IPC shared-memory nodes exist (/dev/baoipc<N>, spec §2.2), by name.

import { scanBaoNodes, type NumberedNode } from '../dispatcher/nodes.js';

export function listIpcDevices(devRoot = '/dev'): readonly NumberedNode[] {
  return scanBaoNodes(devRoot).ipc;
}
