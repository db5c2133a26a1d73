/**
 * Error codes (JSON-RPC 2.0 numbers, so a JSON-RPC front end passes them through unchanged) and the one error class
 * every request of the runtime's API rejects with.
 *
 * @packageDocumentation
 */

/**
 * Every error code the server answers with. The first five are JSON-RPC 2.0's own; the others (in JSON-RPC's
 * "server error" range) are this package's application codes. See docs/node-tcp.md for what to do about each.
 */
export const ErrorCode = {
  /** The line (or WebSocket message) is not valid JSON. */
  PARSE_ERROR: -32700,
  /** The JSON is not a valid JSON-RPC 2.0 request (or the line exceeds `maxLineBytes`). */
  INVALID_REQUEST: -32600,
  /** No such method. */
  METHOD_NOT_FOUND: -32601,
  /** The params have the wrong shape, or the state machine's `validate` refused the input. */
  INVALID_PARAMS: -32602,
  /** A bug: the server failed in a way it did not expect. The message says what happened. */
  INTERNAL_ERROR: -32603,
  /** No leader is known (election in progress, or no quorum is reachable). Retry later. */
  NO_LEADER: -32000,
  /** This server is not a member of any cluster yet: call `CreateCluster` on it or `AddServer` it elsewhere. */
  NOT_A_MEMBER: -32001,
  /** `CreateCluster` on a server that already belongs to a cluster. */
  CLUSTER_ALREADY_CREATED: -32002,
  /**
   * The request did not finish within its timeout. For a command this means "outcome unknown": it may still be
   * applied. Retry with the same `client`/`seq` to make the retry safe.
   */
  TIMEOUT: -32003,
  /** Another membership change is still in progress and did not finish within the request's timeout. */
  CONFIG_CHANGE_IN_PROGRESS: -32004,
  /** The command was proposed but a leader change overwrote it: it was **not** applied. Safe to retry. */
  PROPOSAL_LOST: -32005,
  /** The membership change or leadership transfer names an invalid server (not a member, last voter, ...). */
  INVALID_MEMBER: -32006,
  /** `seq` is older than the latest applied for this `client`: its output is no longer known. */
  STALE_SEQUENCE: -32007,
  /** The state machine threw while applying the input. */
  MACHINE_ERROR: -32008,
  /** The server is shutting down. */
  SHUTTING_DOWN: -32009,
  /** Too many requests are in flight on this server. Retry later. */
  OVERLOADED: -32010,
  /** Storage failed (disk full, I/O error). The server needs an operator. */
  STORAGE_ERROR: -32011,
  /** A leadership transfer is in progress and did not finish within the request's timeout. */
  TRANSFER_IN_PROGRESS: -32012,
  /**
   * An answer, a batch's answers, or a connection's unsent answers would exceed `maxClientOutputBytes`. The
   * request was run (a command may have been applied); only its answer was dropped. On a connection whose unsent
   * answers exceed the limit this is the last line before the server closes it.
   */
  OUTPUT_LIMIT_EXCEEDED: -32013,
  /**
   * The server requires a client token (it has a credentials file) and this request carried none, or an unknown
   * one; or the server accepts TLS connections only and this one was plain text. Authenticate (TCP lines and
   * WebSocket: an `Authenticate` call; HTTP: `Authorization: Bearer <token>`) and retry: it was not applied.
   */
  UNAUTHENTICATED: -32014,
  /** The client's token is valid but its role does not allow this method (a `read` token sending a command). */
  FORBIDDEN: -32015,
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Extra, machine-readable details attached to some errors (the JSON-RPC error's `data` member). */
export interface RpcErrorData {
  /** The leader this server knows of, if any. */
  leader?: string | null;
  /** True when the request was certainly not applied, so retrying it cannot apply it twice. */
  notApplied?: boolean;
  /** Anything else (for example the state machine's validation message as `reason`). */
  [key: string]: unknown;
}

/**
 * The error every promise of the server's API rejects with, and the `error` member of a JSON-RPC response.
 * `code` is one of {@link ErrorCode}; `message` says what happened and what to do.
 */
export class RpcError extends Error {
  /** The JSON-RPC error code (see {@link ErrorCode}). */
  readonly code: number;
  /** Optional details (see {@link RpcErrorData}). */
  readonly data: RpcErrorData | undefined;

  constructor(code: number, message: string, data?: RpcErrorData) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }

  /** The JSON-RPC error object. */
  toJSON(): { code: number; message: string; data?: RpcErrorData } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** Shorthand constructors for the errors the server produces. */
export const errors = {
  invalidParams: (message: string, data?: RpcErrorData) =>
    new RpcError(ErrorCode.INVALID_PARAMS, `invalid params: ${message}`, data),
  noLeader: (leader: string | null = null) =>
    new RpcError(
      ErrorCode.NO_LEADER,
      'no leader is known: an election is in progress or a quorum of servers is unreachable; retry later',
      { leader, notApplied: true },
    ),
  notAMember: (id: string) =>
    new RpcError(
      ErrorCode.NOT_A_MEMBER,
      `server ${id} is not a member of any cluster yet: call CreateCluster on it, or AddServer it on a cluster member`,
      { notApplied: true },
    ),
  shuttingDown: () =>
    new RpcError(
      ErrorCode.SHUTTING_DOWN,
      'the server is not running (stopped or not started); retry on another server',
      {
        notApplied: true,
      },
    ),
  timeout: (what: string, ms: number, notApplied: boolean) =>
    new RpcError(
      ErrorCode.TIMEOUT,
      notApplied
        ? `${what} did not finish within ${ms} ms; it was not applied, retry later`
        : `${what} did not finish within ${ms} ms; its outcome is unknown (retry with the same clientId and seq to make the retry safe)`,
      { notApplied },
    ),
  storage: (message: string) =>
    new RpcError(ErrorCode.STORAGE_ERROR, `storage failed, the server stopped serving: ${message}`, {}),
  internal: (message: string) => new RpcError(ErrorCode.INTERNAL_ERROR, `internal error: ${message}`),
};
