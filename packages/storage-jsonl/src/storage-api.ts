/**
 * The public face of the storage: {@link JsonlStorage} (what a runtime calls), its options, what opening a
 * directory recovered and repaired, the chunked snapshot receiver and the counters. Kept apart from `storage.ts`
 * so that a reader of the API does not have to read the write queue, and the implementation can change freely.
 *
 * @packageDocumentation
 */

import type { Entry, HardState, Index, PersistedState, SnapshotMeta } from '@raft/core';
import type { RaftStorage, SnapshotReceiver as RuntimeSnapshotReceiver } from '@raft/runtime';
import type { Codec } from './codec.js';
import type { RecoveryRepair } from './recovery.js';
import type { SegmentState } from './segments.js';

/** Options of {@link openStorage}. */
export interface StorageOptions<C> {
  /**
   * Whether writes are made durable with `fdatasync` / `fsync` before their promises resolve. Default `true`.
   *
   * **`sync: false` gives up durability**: data still reaches the operating system in call order before promises
   * resolve, so it survives a crash of the *process*, but a power loss or kernel crash can lose any write that
   * was acknowledged, and can even leave a log whose acknowledged entries are missing while later hard state is
   * present. A Raft node that loses acknowledged writes can break the protocol's safety (vote twice in a term,
   * forget committed entries). Use it only for tests, benchmarks of everything but the disk, or data you can lose.
   */
  sync?: boolean;
  /**
   * Call `fdatasync` for log appends synchronously, on the calling thread, instead of on libuv's thread pool.
   * Default `false`.
   *
   * An asynchronous fdatasync costs a round trip to a pool thread and back through the event loop (about 50 µs
   * here), which caps one writer awaiting each append at about 0.75x the disk's raw fsync rate. With `true` a lone
   * writer reaches the raw rate, but **the event loop is blocked for every fsync**: nothing else in the process
   * runs meanwhile (no timers, no sockets; a Raft server would miss heartbeats while a slow disk stalls), and the
   * next batch cannot be prepared during the fsync, so many concurrent appenders get fewer entries per second.
   * Use it for a process whose only job is writing one entry at a time, on a disk with fast, steady fsyncs.
   * Ignored with `sync: false`.
   */
  blockingFsync?: boolean;
  /**
   * Target size of a log segment file in bytes. A segment is closed once a write makes it reach this size (it can
   * exceed it by up to one group-commit batch). Compaction deletes whole segments, so smaller segments free disk
   * sooner after a snapshot. Default 16 MiB.
   */
  segmentBytes?: number;
  /** How commands are stored in JSON. Default: {@link defaultCodec} (byte arrays as base64, JSON values as is). */
  codec?: Codec<C>;
}

/** What {@link openStorage} recovered from disk: pass it to `RaftNode.restart`. */
export type RecoveredState<C> = PersistedState<C>;

/**
 * What opening the directory repaired. Plain JSON data. A runtime should log `repaired` when it is not empty (a torn
 * tail means the process or the machine crashed in the middle of a write), e.g. with {@link formatRecoveryRepair}.
 */
export interface RecoveryReport {
  /** Every change made to the directory when it was opened, in order (empty if none). */
  readonly repaired: readonly RecoveryRepair[];
  /** The segment whose torn tail was truncated, or `null` (the `truncated` entry of `repaired`, if any). */
  readonly tornFile: string | null;
  /** How many bytes of torn tail were dropped. */
  readonly tornBytes: number;
  /** Leftover files deleted (temporary files, obsolete segments and snapshot data): the `deleted` entries. */
  readonly removedFiles: readonly string[];
}

/** One line of text for a repair, for logs: `truncated /data/log-0000000002.jsonl at byte 4096 (line 37, ...)`. */
export function formatRecoveryRepair(r: RecoveryRepair): string {
  switch (r.action) {
    case 'truncated':
      return `truncated ${r.file} at byte ${r.offset} (line ${r.line}), dropping ${r.bytes} bytes: ${r.reason}`;
    case 'rewroteHeader':
      return `rewrote the header of ${r.file}: ${r.reason}`;
    default:
      return `deleted ${r.file} (${r.bytes} bytes): ${r.reason}`;
  }
}

/** Chunked reception of a snapshot sent by a leader (see {@link JsonlStorage.beginSnapshotReceive}). */
export interface SnapshotReceiver extends RuntimeSnapshotReceiver {
  /** Bytes received so far: the offset the next chunk must start at. */
  readonly receivedBytes: number;
  /**
   * Store a chunk. `offset` must equal {@link SnapshotReceiver.receivedBytes}, or be 0 to restart the transfer.
   * Chunks are written to a temporary file; nothing is fsynced until `finish`.
   */
  write(offset: number, data: Uint8Array): Promise<void>;
  /**
   * Make the snapshot durable and install it: fsync and rename the data, replace `snapshot.json`, and drop the
   * whole log (ordered with the storage's other writes). Resolves once all of that is on disk.
   */
  finish(): Promise<void>;
  /** Abandon the transfer and delete the temporary file. */
  abort(): Promise<void>;
}

/** Counters reported by {@link JsonlStorage.stats}. */
export interface StorageStats {
  /** `appendEntries` calls accepted (including empty ones). */
  readonly appendCalls: number;
  /** Entries accepted by `appendEntries`. */
  readonly entriesAppended: number;
  /** `saveHardState` calls accepted. */
  readonly hardStateCalls: number;
  /** Group-commit flushes that wrote log records: one `write` each, plus one `fdatasync` each when `sync` is on. */
  readonly flushes: number;
  /** `fsync` / `fdatasync` calls of any file or directory (0 with `sync: false`). */
  readonly fsyncs: number;
  /** Bytes written to log segments (records and segment headers). */
  readonly logBytesWritten: number;
  /** Segment files created. */
  readonly segmentsCreated: number;
  /** Segment files deleted by compaction or snapshot installation. */
  readonly segmentsDeleted: number;
}

/** A data directory opened for writing. Create with {@link openStorage}. */
export interface JsonlStorage<C> extends RaftStorage<C> {
  /** The data directory (absolute path). */
  readonly dir: string;
  /** What was recovered when the storage was opened (it is not updated by later writes). */
  readonly state: RecoveredState<C>;
  /** What opening the directory repaired (torn tail truncated, leftovers deleted): log it if not empty. */
  readonly recovery: RecoveryReport;
  /** The latest hard state passed to {@link JsonlStorage.saveHardState} (or recovered), durable or not. */
  readonly hardState: HardState;
  /** Index of the last log entry, counting writes still in progress (the snapshot's index if the log is empty). */
  readonly lastIndex: Index;
  /** Metadata of the latest snapshot passed to `saveSnapshot` / `finish` (or recovered), durable or not. */
  readonly snapshotMeta: SnapshotMeta | null;

  /** Durably record the term and vote. Written in call order with appends; resolves once on disk. */
  saveHardState(hs: HardState): Promise<void>;
  /**
   * Durably store entries. Entries at or after `entries[0].index` are replaced (that is how a conflicting suffix is
   * truncated); `entries` must be contiguous and `entries[0].index` at most one past {@link JsonlStorage.lastIndex}
   * and above the snapshot's index. Resolves once these entries, and everything queued before them, are on disk:
   * then the runtime may call `node.persisted(lastEntry.index, lastEntry.term)`. Calls need not be awaited one by one:
   * they are written in call order, and all calls made while a flush is in progress share the next one (group
   * commit). An empty `entries` writes nothing and resolves once everything queued before it is durable.
   *
   * @throws StorageError `INVALID_ARGUMENT` (as a rejected promise; nothing is written) if the entries do not fit
   *   or a command cannot be encoded.
   */
  appendEntries(entries: readonly Entry<C>[]): Promise<void>;
  /**
   * Durably save a snapshot (metadata plus state-machine bytes). With `dropLog: true` (an installed snapshot from a
   * leader) the whole log is discarded. Otherwise (a local snapshot) the log is kept, unless it does not contain the
   * snapshot's last entry (same index and term), in which case it is discarded too, as Raft requires. Entries up to
   * the snapshot's index are no longer reported on the next open; call {@link JsonlStorage.compact} to delete them.
   * `data` must not be modified until the promise settles.
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array, opts?: { dropLog?: boolean }): Promise<void>;
  /**
   * Delete every whole segment file whose entries are all at or below `upTo` (a segment that also holds later
   * entries is kept). `upTo` must not exceed the snapshot's index.
   */
  compact(upTo: Index): Promise<void>;
  /**
   * Start receiving a snapshot in chunks. A previous unfinished reception is aborted. See {@link SnapshotReceiver}.
   */
  beginSnapshotReceive(meta: SnapshotMeta): SnapshotReceiver;
  /** The latest durable snapshot with its data (checksum verified), or `null`. */
  readSnapshot(): Promise<{ meta: SnapshotMeta; data: Uint8Array } | null>;
  /**
   * Up to `maxBytes` bytes at `offset` of the latest durable snapshot's data (fewer at the end), for sending it in
   * chunks. Pass `index` to make sure the snapshot is still the one being sent: if the current snapshot has another
   * index the call rejects with `INVALID_ARGUMENT` (the core then restarts the transfer with the new snapshot).
   */
  readSnapshotChunk(offset: number, maxBytes: number, index?: Index): Promise<Uint8Array>;
  /**
   * The snapshot whose data is durable and readable with {@link JsonlStorage.readSnapshotChunk}, with the size of its
   * data in bytes (so that a sender knows which chunk is the last), or `null`. Unlike
   * {@link JsonlStorage.snapshotMeta} it changes only once a saved or received snapshot is on disk.
   */
  readonly durableSnapshot: { readonly meta: SnapshotMeta; readonly bytes: number } | null;
  /** Describe the segment files (for diagnostics). */
  segments(): readonly SegmentState[];
  /** Counters since the storage was opened (for tests, benchmarks and metrics); a fresh copy on each call. */
  stats(): StorageStats;
  /** Finish queued writes, close files and release the directory. Later calls reject with `CLOSED`. */
  close(): Promise<void>;
}
