// Where a planned restart saves the device models' state (transport registers, queue positions,
// descriptors in flight) for the next process, after every device model has stopped taking
// requests and before the old process exits. The state itself is kept by the device-state layer
// (state files under /run); until that layer is wired in, this hook saves nothing, and the next
// process starts each device from reset: the frontend driver must then reset the device (or the
// frontend VM reboot) before it is served again, as after any restart today.

import type { KeptDeviceModel } from './kept-fds.js';

export type SaveStateHook = (models: readonly KeptDeviceModel[]) => Promise<void>;

export const saveDeviceStateForHandover: SaveStateHook = async () => {};
