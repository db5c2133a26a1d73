/**
 * A linearizability checker for key-value histories: per-key decomposition, a Wing & Gong / Lowe search with
 * memoization, `info` operations treated as possibly taken, and failures shrunk to a small window.
 *
 * @example
 * ```ts
 * import { checkHistory, formatResult, readHistoryFile } from '@raft/linearizability';
 * const result = checkHistory(readHistoryFile('history.jsonl'));
 * console.log(formatResult(result)); // verdict: linearizable | not-linearizable | unknown
 * ```
 *
 * @packageDocumentation
 */

// The JSON value type and the canonical text values are compared by are the runtime's, re-exported for convenience.
export { canonicalJson, type JsonValue } from '@raft/runtime';
export {
  type CheckOptions,
  type CheckResult,
  checkHistory,
  checkOperations,
  formatOperation,
  formatResult,
  formatWitness,
  type InitialState,
  type KeyReport,
  type Verdict,
  type Witness,
} from './check.js';
export {
  appendHistoryFile,
  formatEvent,
  formatHistory,
  operationsToEvents,
  pairOperations,
  parseHistory,
  readHistoryFile,
  readOperationsFile,
  validateEvent,
  writeHistoryFile,
} from './history.js';
export {
  type EventType,
  type HistoryEvent,
  HistoryFormatError,
  type Operation,
  type OpFn,
  type OpStatus,
  type ProcessId,
} from './types.js';
