// Errors of the daemon layer (lib/vmm): loading and validating a config, opening the device
// models, shutting down. Each class carries a stable string `code` that scripts and tests
// match on; messages are for people. Guest faults never reach this module (they are logged and
// counted by the devices), these are host-side failures only.

/** Base class: every lib/vmm error has a stable `code`. */
export class VmmError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Where in a text file something is (1-based, as editors show it). */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/** The config file could not be read at all: missing, not a file, no permission. */
export class ConfigFileError extends VmmError {
  readonly path: string;

  constructor(
    code: 'CONFIG_NOT_FOUND' | 'CONFIG_UNREADABLE' | 'CONFIG_TOO_LARGE',
    path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.path = path;
  }
}

/** The file is not valid YAML; `position` points at the first syntax error. */
export class ConfigSyntaxError extends VmmError {
  readonly path: string;
  readonly position: SourcePosition | undefined;

  constructor(path: string, message: string, position: SourcePosition | undefined, options?: { cause?: unknown }) {
    super('CONFIG_YAML_SYNTAX', message, options);
    this.path = path;
    this.position = position;
  }
}

/** One problem found in a config, located by its field path (`devices[1].mmio_addr`). */
export interface ConfigIssue {
  /** Dotted/indexed path as the user wrote the keys, e.g. `devices[0].type`; `` for the root. */
  readonly field: string;
  /** What is wrong and what to do about it. */
  readonly message: string;
  /** Position of the offending value in the file, when the config came from a file. */
  readonly position?: SourcePosition;
}

/** The config parsed but is not acceptable; `issues` lists every error (never just the first). */
export class ConfigInvalidError extends VmmError {
  readonly path: string | undefined;
  readonly issues: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];

  constructor(path: string | undefined, issues: readonly ConfigIssue[], warnings: readonly ConfigIssue[] = []) {
    const where = path ?? 'config';
    const lines = issues.map((i) => `  ${formatIssue(i)}`);
    super('CONFIG_INVALID', `${where}: ${issues.length} error(s)\n${lines.join('\n')}`);
    this.path = path;
    this.issues = issues;
    this.warnings = warnings;
  }
}

/** `devices[1].mmio_addr (line 7, column 16): message` */
export function formatIssue(issue: ConfigIssue): string {
  const at = issue.position ? ` (line ${issue.position.line}, column ${issue.position.column})` : '';
  return `${issue.field === '' ? '(root)' : issue.field}${at}: ${issue.message}`;
}

/** Identifies a config device entry in messages: index in the list plus its DM id and type. */
export interface DeviceRef {
  readonly index: number;
  readonly id: number;
  readonly type: string;
}

export function describeDevice(ref: DeviceRef): string {
  return `devices[${ref.index}] (${ref.type}, id ${ref.id})`;
}

/**
 * Opening one device failed (building the device, its backend, or its device model). The
 * daemon has already closed everything it opened before. `field` names the config key at
 * fault when the cause says so (e.g. `id` when the driver has no such DM).
 */
export class DeviceOpenError extends VmmError {
  readonly device: DeviceRef;
  readonly field: string | undefined;

  constructor(device: DeviceRef, field: string | undefined, options: { cause: unknown }) {
    const where = field === undefined ? describeDevice(device) : `${describeDevice(device)}.${field}`;
    super('DEVICE_OPEN_FAILED', `${where}: cannot open: ${causeMessage(options.cause)}`, options);
    this.device = device;
    this.field = field;
  }
}

/** A served device stopped by itself (its request loop ended) while the daemon was running. */
export class DeviceStoppedError extends VmmError {
  readonly device: DeviceRef;

  constructor(device: DeviceRef, options: { cause?: unknown }) {
    const why = options.cause === undefined ? 'stopped serving' : `stopped serving: ${causeMessage(options.cause)}`;
    super('DEVICE_STOPPED', `${describeDevice(device)}: ${why}`, options);
    this.device = device;
  }
}

/** Shutdown did not finish within the timeout; `pending` lists the devices still closing. */
export class ShutdownTimeoutError extends VmmError {
  readonly pending: readonly DeviceRef[];

  constructor(timeoutMs: number, pending: readonly DeviceRef[]) {
    super(
      'SHUTDOWN_TIMEOUT',
      `shutdown did not finish within ${timeoutMs} ms; still closing: ${pending.map(describeDevice).join(', ')}`,
    );
    this.pending = pending;
  }
}

/** The device-model factory (or another runtime part) cannot be loaded on this machine. */
export class ComponentUnavailableError extends VmmError {
  constructor(
    code: 'DEVICE_MODEL_FACTORY_UNAVAILABLE' | 'PTY_UNAVAILABLE' | 'TAP_UNAVAILABLE' | 'DATA_PLANE_UNAVAILABLE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export function causeMessage(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message;
  }
  return String(cause);
}
