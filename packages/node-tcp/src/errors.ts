/**
 * The errors of the TCP adapter: the runtime's codes and error class (re-exported), and the client's connection error.
 *
 * @packageDocumentation
 */

export { ErrorCode, type ErrorCodeValue, errors, RpcError, type RpcErrorData } from '@raft/runtime';

/**
 * Raised by `RpcClient` when the connection failed. `sent` tells whether the request may have reached the
 * server (false: it certainly did not, so a retry cannot apply it twice).
 */
export class ConnectionError extends Error {
  /** Always `CONNECTION`: tells it apart from an {@link RpcError} (whose `code` is a number). */
  readonly code = 'CONNECTION' as const;
  /** Whether the request may have reached the server. */
  readonly sent: boolean;

  constructor(message: string, sent: boolean) {
    super(message);
    this.name = 'ConnectionError';
    this.sent = sent;
  }
}
