// Errors of the dispatcher layer (lib/dispatcher): finding the Bao driver, opening device models,
// using closed handles and mappings. Each has a stable string `code`. Syscall failures from the
// addon keep their own shape (code = errno name, errno, syscall, path) and travel as `cause`
// or unchanged.

export class DispatcherError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** No Bao device node under the dev root: the driver is not loaded (or not this kind of system). */
export class BaoNotPresentError extends DispatcherError {
  readonly devRoot: string;

  constructor(devRoot: string, looked: readonly string[]) {
    super(
      'BAO_NOT_PRESENT',
      `No Bao I/O dispatcher device node found (looked for ${looked.join(', ')}). ` +
        'Load the Bao I/O dispatcher driver in this backend VM (e.g. `modprobe bao-iodispatcher` or `modprobe bao`) ' +
        'and check that the device tree (or the revB module parameters) describe the device models.',
    );
    this.devRoot = devRoot;
  }
}

/** A Bao node exists but this process may not open it (EACCES/EPERM). */
export class BaoPermissionError extends DispatcherError {
  readonly path: string;

  constructor(path: string, cause: unknown) {
    super(
      'BAO_PERMISSION_DENIED',
      `Permission denied opening ${path}: the Bao drivers create their nodes root-only (0600). ` +
        `Run as root, or give this user access to the node (e.g. a udev rule or chmod/chgrp on ${path}).`,
      { cause },
    );
    this.path = path;
  }
}

/** The node answered with ENOTTY: not a Bao driver of the revision its name suggests. */
export class BaoWrongDeviceError extends DispatcherError {
  readonly path: string;

  constructor(path: string, revision: string, cause: unknown) {
    super(
      'BAO_WRONG_DEVICE',
      `${path} does not answer the Bao ${revision} ioctls (ENOTTY): it is not a Bao I/O dispatcher node of that ` +
        'revision, or the kernel speaks another ABI revision (see `baoctl abi` and `baoctl devices`).',
      { cause },
    );
    this.path = path;
  }
}

/** The device model id is not served by the driver (ENOENT on v1/v2, EINVAL on OOT, no node on revA). */
export class DeviceModelNotFoundError extends DispatcherError {
  readonly id: number;

  constructor(id: number, cause?: unknown) {
    super('BAO_DM_NOT_FOUND', `Bao device model ${id} does not exist on this system`, { cause });
    this.id = id;
  }
}

/** A DM fd kept from a previous process is not the device model it was kept as. */
export class DeviceModelMismatchError extends DispatcherError {
  readonly id: number;

  constructor(id: number, why: string) {
    super('BAO_DM_MISMATCH', `the kept fd of Bao device model ${id} does not fit: ${why}`);
    this.id = id;
  }
}

/** revB creates device models from the caller's description; these fields were missing. */
export class DeviceModelConfigMissingError extends DispatcherError {
  constructor(id: number, missing: readonly string[]) {
    super(
      'BAO_DM_CONFIG_MISSING',
      `This kernel speaks Bao revB (/dev/bao), which creates device model ${id} from the VMM's description: ` +
        `give ${missing.join(', ')} (the shared region's base and size and the backend interrupt line, as in the ` +
        "hypervisor's remio config).",
    );
  }
}

export class HandleClosedError extends DispatcherError {
  constructor(what: string) {
    super('HANDLE_CLOSED', `${what} is closed`);
  }
}

/** Access to a Mapping after unmap(). */
export class MappingClosedError extends DispatcherError {
  constructor() {
    super('MAPPING_CLOSED', 'the shared-memory mapping has been unmapped');
  }
}

/** The ATTACH loop ended because the device model is being torn down (EPERM, spec §3.4). */
export class DeviceModelGoneError extends DispatcherError {
  constructor(id: number, cause: unknown) {
    super('BAO_DM_GONE', `Bao device model ${id} went away (the driver is tearing it down)`, { cause });
  }
}

export class InvalidArgumentError extends DispatcherError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}
