// Where a planned restart saves the device models' state for the next process, after every
// device model has stopped taking requests and before the old process exits. The device-state
// layer (lib/vmm/state) already saves each change of the transport as it happens, and detach()
// neither resets a device nor drops its state, so by now the state file holds the live image:
// nothing more is written here. The new process opens the state files only once the old one has
// exited (takeOver waits for it), because a state file is locked by the process that serves it.

import type { KeptDeviceModel } from './kept-fds.js';

export type SaveStateHook = (models: readonly KeptDeviceModel[]) => Promise<void>;

export const saveDeviceStateForHandover: SaveStateHook = async () => {};
