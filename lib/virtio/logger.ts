// The logging surface lib/virtio and lib/devices depend on. It is the subset of pino's Logger
// that they use, so the daemon passes its pino child loggers straight in while these layers
// stay free of any logging library (and of the addon).

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

const drop = (): void => {};

/** A logger that discards everything: the default for library users and unit tests. */
export const silentLogger: Logger = {
  debug: drop,
  info: drop,
  warn: drop,
  error: drop,
  child: () => silentLogger,
};

/**
 * A count-based limit: the first 16 occurrences, then one in 1024. It bounds lines per event,
 * not per second, so guest-triggerable lines in lib/virtio and lib/devices go through the
 * time-based rateLimitedLogger (log-limiter.ts) instead.
 */
export function worthLogging(count: number): boolean {
  return count <= 16 || count % 1024 === 0;
}
