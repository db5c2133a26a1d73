import type { NodeId, RaftErrorCode } from './types.js';

/**
 * Why the core refused an input. A value, not a crash: methods that can be refused return a {@link Result}
 * holding one of these. `leaderId` is a hint for redirecting a request when the code is `NOT_LEADER`.
 */
export class RaftError extends Error {
  /** The machine-readable reason. */
  readonly code: RaftErrorCode;
  /** The leader this node knows of, if any (useful with `NOT_LEADER`). */
  readonly leaderId: NodeId | null;

  constructor(code: RaftErrorCode, message: string, leaderId: NodeId | null = null) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
    this.leaderId = leaderId;
  }
}

/** The outcome of an input that may be refused. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: RaftError };

/** Builds a successful {@link Result}. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** Builds a refused {@link Result}. */
export function err<T>(code: RaftErrorCode, message: string, leaderId: NodeId | null = null): Result<T> {
  return { ok: false, error: new RaftError(code, message, leaderId) };
}
