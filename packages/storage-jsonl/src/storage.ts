/**
 * The storage object: {@link openStorage} opens (and recovers) a directory, and `Storage` validates and encodes every
 * call, keeps the log's logical state (last index, terms, latest snapshot) and hands the records to the group-commit
 * queue (`group-commit.ts`). The public types are in `storage-api.ts`, the directory lock in `lock.ts`, snapshot
 * files in `snapshot-files.ts`, segment files in `segments.ts`.
 *
 * Every mutating call is validated and encoded synchronously, then queued; a call's promise resolves only once its
 * data (and everything queued before it) is on disk. Snapshot installation, compaction and close are queue barriers,
 * so they too happen exactly in call order relative to appends and hard-state writes.
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { Entry, HardState, Index, SnapshotMeta } from '@raft/core';
import { checkHardState, checkSnapshotMeta, copyConfig, copyMeta, invalid, isNat } from './checks.js';
import { type Codec, defaultCodec, type JsonValue } from './codec.js';
import { StorageError } from './errors.js';
import {
  entryBody,
  hardStateBody,
  isClusterConfig,
  type StoredEntry,
  segmentFileName,
  snapshotDataFileName,
} from './format.js';
import { fsyncDir, isNotFound } from './fsutil.js';
import { GroupCommitQueue } from './group-commit.js';
import { removeLockFile, takeLock, unlockInProcess } from './lock.js';
import { type ScanResult, scanDataDir } from './recovery.js';
import { type SegmentState, SegmentWriter } from './segments.js';
import {
  ChunkFile,
  readSnapshotData,
  readSnapshotRange,
  type WrittenData,
  writeSnapshotData,
} from './snapshot-files.js';
import { type Counters, newCounters } from './stats.js';
import type {
  JsonlStorage,
  RecoveredState,
  RecoveryReport,
  SnapshotReceiver,
  StorageOptions,
  StorageStats,
} from './storage-api.js';

const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

class Storage<C> implements JsonlStorage<C> {
  readonly state: RecoveredState<C>;
  readonly recovery: RecoveryReport;

  /** The ordered write queue (group commit); its `failure` poisons the storage. */
  private readonly writes: GroupCommitQueue;
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
    this.writes = new GroupCommitQueue(writer);
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
    if (this.writes.failure) return this.writes.failure;
    if (this.closed) return new StorageError('CLOSED', 'the storage is closed', { file: this.dir });
    return null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------------------------------------------

  saveHardState(hs: HardState): Promise<void> {
    const err = this.unusable() ?? checkHardState(hs);
    if (err) return Promise.reject(err);
    const copy: HardState = { term: hs.term, votedFor: hs.votedFor };
    this.counters.hardStateCalls++;
    const b = this.writes.batch();
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
      return this.writes.batch().promise;
    }
    const first = entries[0].index;
    if (!isNat(first) || first < 1) return Promise.reject(invalid(`entry index ${first} is not a positive integer`));
    if (first <= this.snapIndex)
      return Promise.reject(invalid(`entry ${first} is at or below the snapshot's index ${this.snapIndex}`));
    if (first > this.last + 1)
      return Promise.reject(invalid(`entry ${first} would leave a gap: the log ends at index ${this.last}`));
    const b = this.writes.batch();
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
          b.buf.appendCommandJson(e.index, e.term, this.commandJson(e.command));
          continue;
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
    this.writes.maybeStartEarly(b);
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
    return this.writes.barrier(async () => {
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
    return this.writes.barrier(async () => {
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
    if (this.writes.failure) {
      this.closed = true;
      unlockInProcess(this.dir);
      return this.writer.close().catch(() => undefined);
    }
    this.closed = true;
    const receiver = this.receiver;
    this.receiver = null;
    return this.writes.barrier(async () => {
      if (receiver) await receiver.abort().catch(() => undefined);
      try {
        await this.writer.close();
        await removeLockFile(this.dir);
      } finally {
        unlockInProcess(this.dir);
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
    unlockInProcess(abs);
    await removeLockFile(abs).catch(() => undefined);
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
