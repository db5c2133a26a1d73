/**
 * Durable JSON Lines storage for `@raft/core`: term and vote, log segments with group-commit fsync, snapshots, and
 * crash recovery that verifies a CRC-32 on every line. See docs/storage.md.
 *
 * @packageDocumentation
 */

export { type BytesOrJson, type Codec, defaultCodec, type JsonValue } from './codec.js';
export { crc32 } from './crc32.js';
export { isStorageError, StorageError, type StorageErrorCode, type StorageErrorLocation } from './errors.js';
export type { StoredEntry } from './format.js';
export {
  formatInspectReport,
  type InspectedSegment,
  type InspectOptions,
  type InspectReport,
  inspectDataDir,
} from './inspect.js';
export { type CommandOutput, INSPECT_USAGE, runInspectCommand } from './inspect-command.js';
export type { RecoveryRepair, TornTail } from './recovery.js';
export type { SegmentState } from './segments.js';
export { openStorage } from './storage.js';
export {
  formatRecoveryRepair,
  type JsonlStorage,
  type RecoveredState,
  type RecoveryReport,
  type SnapshotReceiver,
  type StorageOptions,
  type StorageStats,
} from './storage-api.js';
