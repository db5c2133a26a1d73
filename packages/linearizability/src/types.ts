/**
 * History types: the events a client records, and the operations they pair into.
 *
 * @packageDocumentation
 */

import type { JsonValue } from '@raft/runtime';

/** The key-value operations the checker models. */
export type OpFn = 'put' | 'get' | 'cas' | 'delete';

/** What one history line says: an operation started (`invoke`) or how it ended. */
export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

/** Who issued an operation. Each process has at most one operation outstanding. */
export type ProcessId = number | string;

/**
 * One line of a history (see docs/history-format.md).
 *
 * - `invoke`: `value` is the argument: the new value for `put`, `[expected, new]` for `cas`, absent for `get`/`delete`.
 * - `ok`: the operation took effect exactly once. `get` puts the value read in `value` (`null` = absent);
 *   `put`/`delete` may report the previous value in `prev`; `cas` reports `applied` (absent means `true`).
 * - `fail`: the operation definitely did not take effect (it is dropped from the check).
 * - `info`: unknown outcome: it may have taken effect at any time after its invocation, or never.
 */
export interface HistoryEvent {
  /** Who issued the operation; pairs an invocation with the next completion of the same process. */
  readonly process: ProcessId;
  /** `invoke` starts an operation; `ok`, `fail` or `info` ends the process's outstanding one (see above). */
  readonly type: EventType;
  /** Which operation: `put`, `get`, `cas` (compare-and-set) or `delete`; a completion must repeat the invocation's. */
  readonly f: OpFn;
  /** The key operated on (keys are independent registers, checked separately); a completion must repeat it. */
  readonly key: string;
  /** Argument (on `invoke`) or value read (on an `ok` get). */
  readonly value?: JsonValue;
  /** On an `ok` put or delete: the value the key held just before (`null` = absent). Optional. */
  readonly prev?: JsonValue;
  /** On an `ok` cas: whether it replaced the value. Absent means `true`. */
  readonly applied?: boolean;
  /** Monotonic time in any unit (ns or ms); only the order matters. Non-decreasing along the file is expected. */
  readonly time: number;
  /** Free-form explanation for `fail` / `info` (for humans; ignored by the checker). */
  readonly error?: string;
}

/** How an operation ended. An operation whose completion is missing from the history counts as `info`. */
export type OpStatus = 'ok' | 'fail' | 'info';

/** An invocation paired with its completion. */
export interface Operation {
  /** Position among the history's operations, in invocation order. */
  readonly id: number;
  /** The issuing process, as in the events; operations of one process never overlap in time. */
  readonly process: ProcessId;
  /** `put`, `get`, `cas` (compare-and-set) or `delete`: decides which of the fields below are set. */
  readonly f: OpFn;
  /** The key; operations on different keys are checked independently. */
  readonly key: string;
  /**
   * `ok` or `fail` as the completion says (`fail` operations are left out of the check); `info` for an `info`
   * completion or none at all: it may have taken effect at any time after its call, or never.
   */
  readonly status: OpStatus;
  /** `put`: the value written. `cas`: the value written if it applies. Otherwise `null`. */
  readonly value: JsonValue;
  /** `cas` only: the value it expects. */
  readonly expected?: JsonValue;
  /** `get` with status `ok`: the value read. */
  readonly output?: JsonValue;
  /** `put` / `delete` with status `ok`: the previous value, when the client recorded it. */
  readonly prev?: JsonValue;
  /** `cas` with status `ok`: whether it applied. */
  readonly applied?: boolean;
  /** Invocation time. */
  readonly call: number;
  /** Completion time; `Infinity` for `info` (it may take effect at any later time). */
  readonly ret: number;
  /** Time of the completion event, when there is one (for `info` it differs from `ret`, which is `Infinity`). */
  readonly completeTime?: number;
  /** 1-based line number (or event position) of the invocation event, for reports. */
  readonly invokeLine: number;
  /** 1-based line number (or event position) of the completion event; absent when the history has none. */
  readonly completeLine?: number;
}

/** Raised when a history line is malformed or events do not pair up. `line` is 1-based (0 when unknown). */
export class HistoryFormatError extends Error {
  /** Stable machine-readable code. */
  readonly code = 'HISTORY_FORMAT' as const;
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(line > 0 ? `history line ${line}: ${message}` : message);
    this.name = 'HistoryFormatError';
  }
}
