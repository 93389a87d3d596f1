// Options of `baoctl run`. `-c/--config` is bao-virtio-dm's own flag (spec §5.1), so a script
// calling `bao-virtio-dm --config x.yaml` switches by renaming the binary.

export interface RunArgs {
  /** Positional config path. */
  readonly file?: string | undefined;
  /** bao-virtio-dm's -c/--config. */
  readonly config?: string | undefined;
  readonly logLevel?: string | undefined;
  readonly logFormat?: string | undefined;
  /** Where to serve status (`baoctl status`); 'none' for nowhere. */
  readonly statusSocket?: string | undefined;
  /** host:port to serve /metrics (and /status) on TCP, for Prometheus. */
  readonly metricsListen?: string | undefined;
  /** Octal mode of the status socket, e.g. 0660. */
  readonly statusSocketMode?: string | undefined;
  /** Group (name or gid) that owns the status socket. */
  readonly statusSocketGroup?: string | undefined;
  /** Refuse unknown config keys. */
  readonly strict?: boolean | undefined;
  /** Append logs to this file (reopened on SIGHUP, for logrotate) instead of stderr. */
  readonly logFile?: string | undefined;
  /** Where device models keep the state that lets a restarted daemon resume them ('none': nowhere). */
  readonly stateDir?: string | undefined;
}

export const runOptions = {
  config: { alias: 'c', type: 'string', description: "the YAML config file (bao-virtio-dm's flag; same as the positional)" },
  'log-level': {
    type: 'string',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    description: 'log level (default: env BAO_LOG_LEVEL, then the config, then info)',
  },
  'log-format': {
    type: 'string',
    choices: ['json', 'pretty'],
    description: 'log format (default: env BAO_LOG_FORMAT, then the config, then pretty on a terminal, json otherwise)',
  },
  'status-socket': {
    type: 'string',
    description: "unix socket for `baoctl status` and GET /metrics (default /run/node-bao/status.sock; 'none': no status socket)",
  },
  'status-socket-mode': {
    type: 'string',
    description: 'octal mode of the status socket, e.g. 0660 with --status-socket-group (default: by the umask)',
  },
  'status-socket-group': {
    type: 'string',
    description: 'group (name or gid) owning the status socket, so its members may run `baoctl status` without root',
  },
  strict: { type: 'boolean', description: "refuse unknown config keys (with a 'did you mean'), also on a SIGHUP reload" },
  'log-file': {
    type: 'string',
    description: 'append logs to this file instead of stderr; reopened on SIGHUP (logrotate)',
  },
  'state-dir': {
    type: 'string',
    description: "directory of the state files that let a restarted daemon resume its devices without a frontend reset (default: env NODE_BAO_STATE_DIR, then /run/node-bao; 'none': keep no state)",
  },
  'metrics-listen': {
    type: 'string',
    description: 'also serve GET /metrics (Prometheus) and GET /status on TCP at host:port, e.g. 127.0.0.1:9464 (default: not at all)',
  },
} as const;
