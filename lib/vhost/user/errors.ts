// Errors of the vhost-user frontend, each with a `code` (STYLE.md): the message says what to do.

export type VhostUserErrorCode =
  | 'BACKEND_MISSING'
  | 'BACKEND_NOT_LISTENING'
  | 'BACKEND_CONNECT_FAILED'
  | 'BACKEND_DISCONNECTED'
  | 'BACKEND_TIMEOUT'
  | 'BACKEND_REFUSED'
  | 'PROTOCOL_ERROR'
  | 'PROTOCOL_FEATURE_MISSING'
  | 'FEATURES_MISSING'
  | 'NOT_CONNECTED';

export class VhostUserError extends Error {
  override readonly name = 'VhostUserError';

  constructor(
    readonly code: VhostUserErrorCode,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
