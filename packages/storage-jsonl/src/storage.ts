/**
 * The storage object and its ordered write queue with group commit.
 *
 * Every mutating call is validated and encoded synchronously, then queued. One writer drains the queue in call
 * order: all records queued while the previous flush was in progress are written with a single `write` and made
 * durable with a single `fdatasync` (group commit). Snapshot installation, compaction and close are queue barriers,
 * so they too happen exactly in call order relative to appends and hard-state writes. A call's promise resolves
 * only once its data (and everything queued before it) is on disk.
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { ClusterConfig, Entry, HardState, Index, SnapshotMeta } from '@raft/core';
import { type Codec, defaultCodec, type JsonValue } from './codec.js';
import { StorageError } from './errors.js';
import {
  entryBody,
  hardStateBody,
  isClusterConfig,
  LineBuffer,
  LOCK_FILE,
  type StoredEntry,
  segmentFileName,
  snapshotDataFileName,
} from './format.js';
import { fsyncDir, isNotFound } from './fsutil.js';
import { type RecoveryRepair, type ScanResult, scanDataDir } from './recovery.js';
import { type SegmentState, SegmentWriter } from './segments.js';
import {
  ChunkFile,
  readSnapshotData,
  readSnapshotRange,
  type WrittenData,
  writeSnapshotData,
} from './snapshot-files.js';
import { type Counters, newCounters } from './stats.js';

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
export interface RecoveredState<C> {
  /** The latest term and vote (term 0 and no vote for a fresh directory). */
  readonly hardState: HardState;
  /** The latest snapshot's metadata, or `null` if there is none. */
  readonly snapshot: SnapshotMeta | null;
  /** Every log entry after the snapshot's index (after index 0 without a snapshot), in order. */
  readonly entries: Entry<C>[];
}

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
export interface SnapshotReceiver {
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
export interface JsonlStorage<C> {
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

const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
/** See `maybeStartEarly`. Large enough that a write+fsync of it costs about as much as a small one. */
const EARLY_FLUSH_BYTES = 64 * 1024;
/** Larger line buffers are dropped after use rather than kept for reuse. */
const MAX_SPARE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Directories opened by this process (the LOCK file guards against other processes). */
const openDirs = new Set<string>();

function isNat(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function invalid(message: string): StorageError {
  return new StorageError('INVALID_ARGUMENT', message);
}

function checkHardState(hs: HardState): StorageError | null {
  if (!hs || !isNat(hs.term)) return invalid('hard state term must be a non-negative integer');
  if (!(hs.votedFor === null || typeof hs.votedFor === 'string')) return invalid('votedFor must be a string or null');
  return null;
}

function checkSnapshotMeta(meta: SnapshotMeta): StorageError | null {
  if (!meta || !isNat(meta.index) || !isNat(meta.term)) return invalid('snapshot index and term must be integers');
  if (!isClusterConfig(meta.config)) return invalid('snapshot config must be a cluster configuration');
  return null;
}

function copyConfig(c: ClusterConfig): ClusterConfig {
  return c.oldVoters === undefined
    ? { voters: [...c.voters], learners: [...c.learners] }
    : { voters: [...c.voters], learners: [...c.learners], oldVoters: [...c.oldVoters] };
}

function copyMeta(m: SnapshotMeta): SnapshotMeta {
  return { index: m.index, term: m.term, config: copyConfig(m.config) };
}

async function takeLock(dir: string): Promise<void> {
  if (openDirs.has(dir))
    throw new StorageError('LOCKED', 'the data directory is already open in this process', { file: dir });
  const path = join(dir, LOCK_FILE);
  const mine = `${process.pid}\n`;
  try {
    // Exclusive creation: of two processes opening the directory at once, only one creates the file.
    await fs.writeFile(path, mine, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new StorageError('IO_ERROR', 'cannot create LOCK', { file: path, cause: e });
    // A LOCK left behind by a process that died (a crash, SIGKILL) is stale and taken over.
    let pid = Number.NaN;
    try {
      pid = Number((await fs.readFile(path, 'utf8')).trim());
    } catch (re) {
      if (!isNotFound(re)) throw new StorageError('IO_ERROR', 'cannot read LOCK', { file: path, cause: re });
    }
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid))
      throw new StorageError('LOCKED', `the data directory is in use by process ${pid}`, { file: path });
    await fs.writeFile(path, mine).catch((we) => {
      throw new StorageError('IO_ERROR', 'cannot write LOCK', { file: path, cause: we });
    });
  }
  openDirs.add(dir);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Batch {
  readonly kind: 'batch';
  readonly buf: LineBuffer;
  /** Bytes of this batch already written by a pre-write (and dropped from `buf`): see `maybeStartEarly`. */
  preWritten: number;
  lastIndex: number | null;
  maxIndex: number | null;
  hardState: HardState | null;
  readonly promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface Barrier {
  readonly kind: 'barrier';
  readonly run: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

function newBatch(buf: LineBuffer): Batch {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    kind: 'batch',
    buf,
    preWritten: 0,
    lastIndex: null,
    maxIndex: null,
    hardState: null,
    promise,
    resolve,
    reject,
  };
}

class Storage<C> implements JsonlStorage<C> {
  readonly state: RecoveredState<C>;
  readonly recovery: RecoveryReport;

  private readonly queue: (Batch | Barrier)[] = [];
  /** The batch still accepting records (the last element of `queue`), if any. */
  private openBatch: Batch | null = null;
  /** A drain is scheduled or running. */
  private draining = false;
  /** The drain loop is running (past its first microtask). */
  private running = false;
  /** Line buffers of written batches, reused so that a busy storage does not allocate and grow one per flush. */
  private readonly spareBuffers: LineBuffer[] = [];
  private failure: StorageError | null = null;
  private closed = false;

  // The logical state: what the log looks like once everything queued so far is written.
  private hs: HardState;
  private snap: SnapshotMeta | null;
  /** Index of the last entry (at least the snapshot's index). */
  private last: number;
  /** Terms of entries snapIndex+1 .. last. */
  private terms: number[];
  private generation: number;
  private receiver: ChunkFile | null = null;
  private readonly fastBytes: boolean;

  constructor(
    readonly dir: string,
    private readonly writer: SegmentWriter,
    private readonly codec: Codec<C>,
    private readonly sync: boolean,
    scan: ScanResult,
    entries: Entry<C>[],
    private readonly counters: Counters,
  ) {
    this.hs = scan.hardState;
    const s = scan.snapshot;
    this.snap = s ? { index: s.index, term: s.term, config: s.config } : null;
    this.last = scan.lastIndex;
    this.terms = scan.entries.map((e) => e.term);
    this.generation = s?.generation ?? 0;
    this.fastBytes = codec === (defaultCodec as unknown as Codec<C>);
    this.state = {
      hardState: { term: scan.hardState.term, votedFor: scan.hardState.votedFor },
      snapshot: this.snap ? copyMeta(this.snap) : null,
      entries,
    };
    this.recovery = {
      repaired: scan.repairs.map((r) => ({ ...r })),
      tornFile: scan.torn ? join(dir, scan.torn.file) : null,
      tornBytes: scan.torn?.bytes ?? 0,
      removedFiles: scan.leftovers.map((f) => join(dir, f)),
    };
  }

  get hardState(): HardState {
    return { term: this.hs.term, votedFor: this.hs.votedFor };
  }

  get lastIndex(): Index {
    return this.last;
  }

  get snapshotMeta(): SnapshotMeta | null {
    return this.snap ? copyMeta(this.snap) : null;
  }

  get durableSnapshot(): { readonly meta: SnapshotMeta; readonly bytes: number } | null {
    const rec = this.writer.snapshot;
    return rec ? { meta: { index: rec.index, term: rec.term, config: copyConfig(rec.config) }, bytes: rec.size } : null;
  }

  stats(): StorageStats {
    return { ...this.counters };
  }

  private get snapIndex(): number {
    return this.snap?.index ?? 0;
  }

  private termAt(i: number): number | undefined {
    if (this.snap && i === this.snap.index) return this.snap.term;
    if (i > this.snapIndex && i <= this.last) return this.terms[i - this.snapIndex - 1];
    return undefined;
  }

  private unusable(): StorageError | null {
    if (this.failure) return this.failure;
    if (this.closed) return new StorageError('CLOSED', 'the storage is closed', { file: this.dir });
    return null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // The queue
  // -------------------------------------------------------------------------------------------------------------

  private batch(): Batch {
    let b = this.openBatch;
    if (b === null) {
      b = newBatch(this.spareBuffers.pop() ?? new LineBuffer());
      this.openBatch = b;
      this.queue.push(b);
      this.kick();
    }
    return b;
  }

  private barrier(run: () => Promise<void>): Promise<void> {
    this.openBatch = null;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ kind: 'barrier', run, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    // Start on a microtask so that calls made in the same synchronous run share one write.
    queueMicrotask(() => this.startDrain());
  }

  private startDrain(): void {
    if (this.running) return;
    this.running = true;
    void this.drain();
  }

  /**
   * Called after records were added to the open batch, once it holds {@link EARLY_FLUSH_BYTES}:
   *
   * - If the disk is idle, flush it now instead of at the end of the current run of calls: the calls still to come
   *   then fill the next batch while this one is being written and fsynced, so encoding overlaps with the disk.
   *   Without this, many concurrent appenders that resume together after a flush would alternate between encoding
   *   (disk idle) and flushing (CPU idle).
   * - If the previous batch's fdatasync is running and this batch is next in line, pre-write what it holds so far
   *   (see {@link SegmentWriter.preWrite}): when that fdatasync completes, only the rest of this batch is left to
   *   copy before its own fdatasync starts, and the line buffer stays small. Acknowledgements do not change: the
   *   batch still resolves only after its own fdatasync, issued once all of it is written, and batches still
   *   resolve in order. Not while a barrier (snapshot, compaction) runs: what follows a barrier must reach the disk
   *   after it, possibly in another segment.
   */
  private maybeStartEarly(b: Batch): void {
    if (b.buf.length < EARLY_FLUSH_BYTES) return;
    if (!this.running) {
      this.startDrain();
      return;
    }
    if (this.failure !== null || this.queue.length !== 1 || this.queue[0] !== b) return;
    try {
      if (!this.writer.preWrite(b.buf.bytes())) return;
    } catch (e) {
      // Poison the storage now; the drain rejects this batch (and everything after it) when it gets there.
      this.failure = e as StorageError;
      return;
    }
    b.preWritten += b.buf.length;
    b.buf.reset();
  }

  private recycle(buf: LineBuffer): void {
    buf.reset();
    if (this.spareBuffers.length < 2 && buf.buf.length <= MAX_SPARE_BUFFER_BYTES) this.spareBuffers.push(buf);
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const op = this.queue.shift()!;
      if (op === this.openBatch) this.openBatch = null;
      if (this.failure) {
        op.reject(this.failure);
        continue;
      }
      try {
        if (op.kind === 'batch') {
          await this.writer.write({
            bytes: op.buf.bytes(),
            preWritten: op.preWritten,
            lastIndex: op.lastIndex,
            maxIndex: op.maxIndex,
            hardState: op.hardState,
          });
          this.recycle(op.buf);
        } else {
          await op.run();
        }
        op.resolve();
      } catch (e) {
        const err =
          e instanceof StorageError
            ? e
            : new StorageError('IO_ERROR', `write failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
        // After a failed write or fsync the file contents are unknown: refuse everything from now on.
        this.failure = err;
        op.reject(err);
      }
    }
    this.running = false;
    this.draining = false;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------------------------------------------

  saveHardState(hs: HardState): Promise<void> {
    const err = this.unusable() ?? checkHardState(hs);
    if (err) return Promise.reject(err);
    const copy: HardState = { term: hs.term, votedFor: hs.votedFor };
    this.counters.hardStateCalls++;
    const b = this.batch();
    b.buf.appendRecord(hardStateBody(copy));
    b.hardState = copy;
    this.hs = copy;
    return b.promise;
  }

  private commandJson(command: C): string {
    let json: JsonValue;
    try {
      json = this.codec.encode(command);
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError('INVALID_ARGUMENT', `the codec refused a command: ${(e as Error)?.message ?? e}`, {
        cause: e,
      });
    }
    const text = JSON.stringify(json);
    if (text === undefined) throw invalid('the codec returned a value that has no JSON form');
    return text;
  }

  appendEntries(entries: readonly Entry<C>[]): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    const n = entries.length;
    if (n === 0) {
      this.counters.appendCalls++;
      return this.batch().promise;
    }
    const first = entries[0].index;
    if (!isNat(first) || first < 1) return Promise.reject(invalid(`entry index ${first} is not a positive integer`));
    if (first <= this.snapIndex)
      return Promise.reject(invalid(`entry ${first} is at or below the snapshot's index ${this.snapIndex}`));
    if (first > this.last + 1)
      return Promise.reject(invalid(`entry ${first} would leave a gap: the log ends at index ${this.last}`));
    const b = this.batch();
    const mark = b.buf.length;
    try {
      for (let k = 0; k < n; k++) {
        const e = entries[k];
        if (e.index !== first + k) throw invalid(`entries are not contiguous: ${e.index} follows ${first + k - 1}`);
        if (!isNat(e.term)) throw invalid(`entry ${e.index} has an invalid term`);
        let payload = '';
        if (e.type === 'command') {
          if (this.fastBytes && e.command instanceof Uint8Array) {
            b.buf.appendCommandBytes(e.index, e.term, e.command);
            continue;
          }
          payload = this.commandJson(e.command);
        } else if (e.type === 'config') {
          if (!isClusterConfig(e.config)) throw invalid(`entry ${e.index} has an invalid config`);
          payload = JSON.stringify(copyConfig(e.config));
        } else if (e.type !== 'noop') throw invalid(`entry ${(e as Entry<C>).index} has an unknown type`);
        b.buf.appendRecord(entryBody(e.index, e.term, e.type, payload));
      }
    } catch (e) {
      b.buf.truncate(mark);
      return Promise.reject(e);
    }
    const terms = this.terms;
    // Only when a suffix is replaced: setting the length of a large array is not free, and this runs per append.
    const keep = first - 1 - this.snapIndex;
    if (terms.length > keep) terms.length = keep;
    for (let k = 0; k < n; k++) terms.push(entries[k].term);
    const lastIdx = first + n - 1;
    this.last = lastIdx;
    this.counters.appendCalls++;
    this.counters.entriesAppended += n;
    b.lastIndex = lastIdx;
    b.maxIndex = b.maxIndex === null ? lastIdx : Math.max(b.maxIndex, lastIdx);
    const promise = b.promise;
    this.maybeStartEarly(b);
    return promise;
  }

  /** Queue the switch to a snapshot whose data is being written by `data`. */
  private installSnapshot(meta: SnapshotMeta, file: string, data: Promise<WrittenData>, dropLog: boolean, gen: number) {
    const drop = dropLog || this.termAt(meta.index) !== meta.term || meta.index > this.last;
    const m = copyMeta(meta);
    if (drop) {
      this.terms = [];
      this.last = m.index;
    } else {
      this.terms.splice(0, m.index - this.snapIndex);
    }
    this.snap = m;
    return this.barrier(async () => {
      const written = await data;
      await this.writer.installSnapshot(m, file, written, gen, drop);
    });
  }

  private checkSnapshot(meta: SnapshotMeta): StorageError | null {
    const err = this.unusable() ?? checkSnapshotMeta(meta);
    if (err) return err;
    if (meta.index < this.snapIndex)
      return invalid(`snapshot at index ${meta.index} is older than the current one at ${this.snapIndex}`);
    return null;
  }

  saveSnapshot(meta: SnapshotMeta, data: Uint8Array, opts: { dropLog?: boolean } = {}): Promise<void> {
    const err = this.checkSnapshot(meta) ?? (data instanceof Uint8Array ? null : invalid('data must be a Uint8Array'));
    if (err) return Promise.reject(err);
    const gen = ++this.generation;
    const file = snapshotDataFileName(meta.index, gen);
    if (this.sync) this.counters.fsyncs++;
    const written = writeSnapshotData(this.dir, file, data, this.sync);
    written.catch(() => undefined); // reported by the barrier
    return this.installSnapshot(meta, file, written, opts.dropLog ?? false, gen);
  }

  beginSnapshotReceive(meta: SnapshotMeta): SnapshotReceiver {
    const err = checkSnapshotMeta(meta);
    if (err) throw err;
    const m = copyMeta(meta);
    if (this.receiver) void this.receiver.abort().catch(() => undefined);
    const gen = ++this.generation;
    const chunks = new ChunkFile(this.dir, snapshotDataFileName(m.index, gen), this.sync, this.counters);
    this.receiver = chunks;
    // Checked synchronously so that misuse (finishing twice, finishing an aborted or superseded transfer) is a
    // rejected call and not a failed queued write, which would make the whole storage refuse further writes.
    let ended = false;
    return {
      get receivedBytes() {
        return chunks.receivedBytes;
      },
      write: (offset, data) => {
        const e =
          this.unusable() ??
          (ended || this.receiver !== chunks ? invalid('the snapshot transfer was finished or aborted') : null);
        return e ? Promise.reject(e) : chunks.write(offset, data);
      },
      finish: () => {
        const e =
          this.checkSnapshot(m) ??
          (ended || this.receiver !== chunks ? invalid('the snapshot transfer was finished or aborted') : null);
        if (e) return Promise.reject(e);
        ended = true;
        this.receiver = null;
        const written = chunks.finish();
        written.catch(() => undefined);
        return this.installSnapshot(m, chunks.name, written, true, gen);
      },
      abort: () => {
        if (ended) return Promise.resolve();
        ended = true;
        if (this.receiver === chunks) this.receiver = null;
        return chunks.abort();
      },
    };
  }

  compact(upTo: Index): Promise<void> {
    const err = this.unusable();
    if (err) return Promise.reject(err);
    if (!isNat(upTo)) return Promise.reject(invalid('compact: upTo must be a non-negative integer'));
    if (upTo > this.snapIndex)
      return Promise.reject(invalid(`compact: index ${upTo} is beyond the snapshot's index ${this.snapIndex}`));
    return this.barrier(async () => {
      await this.writer.compact(upTo);
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------------------------------------------

  async readSnapshot(): Promise<{ meta: SnapshotMeta; data: Uint8Array } | null> {
    for (let attempt = 0; ; attempt++) {
      const rec = this.writer.snapshot;
      if (!rec) return null;
      try {
        const data = await readSnapshotData(this.dir, rec);
        return { meta: { index: rec.index, term: rec.term, config: copyConfig(rec.config) }, data };
      } catch (e) {
        // A newer snapshot replaced (and deleted) this one while we were opening it: read the newer one.
        if (isNotFound(e) && this.writer.snapshot !== rec && attempt < 3) continue;
        if (e instanceof StorageError) throw e;
        throw new StorageError('IO_ERROR', `cannot read snapshot: ${(e as Error).message}`, {
          file: join(this.dir, rec.file),
          cause: e,
        });
      }
    }
  }

  async readSnapshotChunk(offset: number, maxBytes: number, index?: Index): Promise<Uint8Array> {
    if (!isNat(offset) || !isNat(maxBytes)) throw invalid('offset and maxBytes must be non-negative integers');
    for (let attempt = 0; ; attempt++) {
      const rec = this.writer.snapshot;
      if (!rec) throw invalid('there is no snapshot');
      if (index !== undefined && rec.index !== index)
        throw invalid(`the snapshot at index ${index} was replaced by one at index ${rec.index}`);
      try {
        return await readSnapshotRange(this.dir, rec, offset, maxBytes);
      } catch (e) {
        if (isNotFound(e) && this.writer.snapshot !== rec && attempt < 3) continue;
        throw new StorageError('IO_ERROR', `cannot read snapshot: ${(e as Error).message}`, {
          file: join(this.dir, rec.file),
          cause: e,
        });
      }
    }
  }

  segments(): readonly SegmentState[] {
    return this.writer.list();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.failure) {
      this.closed = true;
      openDirs.delete(this.dir);
      return this.writer.close().catch(() => undefined);
    }
    this.closed = true;
    const receiver = this.receiver;
    this.receiver = null;
    return this.barrier(async () => {
      if (receiver) await receiver.abort().catch(() => undefined);
      try {
        await this.writer.close();
        await fs.rm(join(this.dir, LOCK_FILE), { force: true });
      } finally {
        openDirs.delete(this.dir);
      }
    });
  }
}

/**
 * Open (or create) a data directory: recover its contents, repair a torn tail, and return a storage ready for
 * writes. What was recovered is in `storage.state`, what was repaired in `storage.recovery`.
 *
 * @param dir - the node's data directory; created if missing. One directory per node.
 * @param options - see {@link StorageOptions}.
 * @throws StorageError `CORRUPT_RECORD`, `LOG_GAP`, `MISSING_SEGMENT`, `CORRUPT_SNAPSHOT`, `UNSUPPORTED_VERSION`
 *   (the directory is damaged; nothing was changed or deleted), `LOCKED` or `IO_ERROR`. A complete last record
 *   with a bad checksum is `CORRUPT_RECORD` too: only an incomplete line can be a torn write (see docs/storage.md).
 */
export async function openStorage<C = Uint8Array>(
  dir: string,
  options: StorageOptions<C> = {},
): Promise<JsonlStorage<C>> {
  const abs = resolvePath(dir);
  const sync = options.sync ?? true;
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!isNat(segmentBytes) || segmentBytes < 1) throw invalid('segmentBytes must be a positive integer');
  const codec = options.codec ?? (defaultCodec as unknown as Codec<C>);
  let created = false;
  try {
    created = (await fs.mkdir(abs, { recursive: true })) !== undefined;
  } catch (e) {
    throw new StorageError('IO_ERROR', `cannot create the data directory: ${(e as Error).message}`, {
      file: abs,
      cause: e,
    });
  }
  if (created && sync) await fsyncDir(dirname(abs)).catch(() => undefined);
  await takeLock(abs);
  const release = async (): Promise<void> => {
    openDirs.delete(abs);
    await fs.rm(join(abs, LOCK_FILE), { force: true }).catch(() => undefined);
  };
  const counters = newCounters();
  let scan: ScanResult;
  let entries: Entry<C>[];
  let writer: SegmentWriter;
  try {
    scan = await scanDataDir(abs);
    // Decode before repairing anything, so that a codec failure leaves the directory untouched.
    entries = scan.entries.map((e, k) => decodeEntry(abs, codec, e, scan.entrySegments[k]));
    writer = await SegmentWriter.open(abs, scan, sync, segmentBytes, counters, options.blockingFsync === true);
  } catch (e) {
    await release();
    throw e;
  }
  return new Storage<C>(abs, writer, codec, sync, scan, entries, counters);
}

function decodeEntry<C>(dir: string, codec: Codec<C>, e: StoredEntry, seq: number): Entry<C> {
  if (e.type === 'command') {
    let command: C;
    try {
      command = codec.decode(e.command);
    } catch (err) {
      throw new StorageError('CORRUPT_RECORD', `the codec cannot decode the command of entry ${e.index}`, {
        file: join(dir, segmentFileName(seq)),
        cause: err,
      });
    }
    return { index: e.index, term: e.term, type: 'command', command };
  }
  if (e.type === 'config') return { index: e.index, term: e.term, type: 'config', config: e.config };
  return { index: e.index, term: e.term, type: 'noop' };
}
