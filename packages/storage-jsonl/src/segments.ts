/**
 * The physical side of the log: segment files, rotation, compaction and snapshot switch-over. Everything here runs
 * on the storage's single write queue (see group-commit.ts), one operation at a time, so it needs no locking.
 *
 * A segment is `log-<seq>.jsonl`. Its first line is a header repeating the hard state and the log index reached so
 * far (`prev`), so that a segment can be read without the ones before it and deleting old segments never loses the
 * term or vote. Appends go to the last segment; when it has reached `segmentBytes`, the next write opens a new one.
 *
 * @packageDocumentation
 */

import fs from 'node:fs/promises';
import { join } from 'node:path';
import type { HardState, SnapshotMeta } from '@raft/core';
import { crcHex } from './crc32.js';
import { StorageError } from './errors.js';
import { encodeLine, type SnapshotMetaRecord, segmentFileName, segmentHeaderBody } from './format.js';
import {
  close,
  fdatasync,
  fdatasyncSync,
  fsync,
  fsyncDir,
  ioError,
  isNotFound,
  open,
  writeAll,
  writeAllSync,
} from './fsutil.js';
import type { ScanResult } from './recovery.js';
import { type WrittenData, writeSnapshotMeta } from './snapshot-files.js';
import type { Counters } from './stats.js';

/** What the writer tracks about one segment file. */
export interface SegmentState {
  /** Sequence number. */
  readonly seq: number;
  /** File name. */
  readonly file: string;
  /** Log index reached before the segment (from its header). */
  readonly prev: number;
  /** Highest entry index written to it, or `null` if none. */
  maxIndex: number | null;
  /** Current size in bytes. */
  bytes: number;
  /** Size of its header line. */
  readonly headerBytes: number;
}

/** One group-commit flush: the encoded lines plus what they change. */
export interface BatchWrite {
  /** The lines not yet written (the batch's earlier lines may have been written by {@link SegmentWriter.preWrite}). */
  readonly bytes: Uint8Array;
  /** How many bytes of the batch {@link SegmentWriter.preWrite} already wrote to the active segment. */
  readonly preWritten: number;
  /** Index of the last entry record in the batch, or `null` if it has none. */
  readonly lastIndex: number | null;
  /** Highest entry index in the batch, or `null`. */
  readonly maxIndex: number | null;
  /** The last hard state in the batch, or `null`. */
  readonly hardState: HardState | null;
}

/**
 * Batches up to this size are written with a synchronous `write` (see `writeAllSync`); larger ones asynchronously, so
 * that the event loop is never blocked for long by a big copy or by the kernel throttling a writer. Not smaller: an
 * asynchronous write completes only once the event loop is free again, and under group commit the loop is busy
 * exactly then, encoding the next batch for the appenders the previous flush released, so the fdatasync would start
 * only after all of that encoding (measured: 1,000 appenders of 50-byte commands went from 280,000 to 700,000
 * entries/s when ~100 KB batches stopped being written asynchronously). Copying 1 MiB into the page cache takes a
 * fraction of a millisecond.
 */
const SYNC_WRITE_MAX_BYTES = 1024 * 1024;

function wrapIo(what: string, file: string) {
  return (e: unknown): never => {
    throw ioError(what, file, e);
  };
}

/** Owns the open segment file and applies batches, rotation, compaction and snapshot switch-over. */
export class SegmentWriter {
  private fd: number;
  /** Index of the last entry record written (the `prev` of the next segment). */
  private lastWritten: number;
  /** The hard state as of the last write. */
  private writtenHs: HardState;
  /**
   * A batch is written completely and its fdatasync (and directory fsync) is in progress: the only time
   * {@link SegmentWriter.preWrite} may add bytes, since they then follow everything written before.
   */
  private syncingBatch = false;

  private constructor(
    private readonly dir: string,
    private readonly sync: boolean,
    private readonly segmentBytes: number,
    private readonly segments: SegmentState[],
    fd: number,
    lastWritten: number,
    writtenHs: HardState,
    /** The snapshot in effect on disk. */
    public snapshot: SnapshotMetaRecord | null,
    private readonly counters: Counters,
    /** Log appends call fdatasync synchronously (see `StorageOptions.blockingFsync`). */
    private readonly blockingFsync: boolean,
  ) {
    this.fd = fd;
    this.lastWritten = lastWritten;
    this.writtenHs = writtenHs;
  }

  /**
   * Apply the repairs a scan found necessary (truncate a torn tail, delete leftovers, rewrite a torn header,
   * create the first segment) and open the last segment for appending.
   */
  static async open(
    dir: string,
    scan: ScanResult,
    sync: boolean,
    segmentBytes: number,
    counters: Counters,
    blockingFsync = false,
  ): Promise<SegmentWriter> {
    let dirty = false;
    if (scan.torn) {
      const file = join(dir, scan.torn.file);
      await fs.truncate(file, scan.torn.offset).catch(wrapIo('truncating a torn tail', file));
      if (sync) {
        const fd = await open(file, 'r+').catch(wrapIo('opening a segment', file));
        counters.fsyncs++;
        await fsync(fd).catch(wrapIo('fsync', file));
        await close(fd);
      }
    }
    for (const name of scan.leftovers) {
      await fs.rm(join(dir, name), { force: true }).catch(wrapIo('deleting a leftover file', join(dir, name)));
      dirty = true;
    }

    const segments: SegmentState[] = [];
    for (const s of scan.segments) {
      if (s.prev === null) continue; // torn header: rewritten below
      segments.push({
        seq: s.seq,
        file: s.file,
        prev: s.prev,
        maxIndex: s.maxIndex,
        bytes: scan.torn && scan.torn.file === s.file ? scan.torn.offset : s.validBytes,
        headerBytes: 0,
      });
    }
    const lastScanned = scan.segments[scan.segments.length - 1];
    let fd: number;
    if (lastScanned === undefined || lastScanned.prev === null) {
      // No segment, or the last one lost its header to a torn write: (re)create it.
      const seq = lastScanned?.seq ?? Math.max(1, scan.snapshot?.logStart ?? 1);
      const file = segmentFileName(seq);
      const path = join(dir, file);
      const header = encodeLine(segmentHeaderBody(seq, scan.lastIndex, scan.hardState));
      fd = await open(path, 'w').catch(wrapIo('creating a segment', path));
      await writeAll(fd, header).catch(wrapIo('writing a segment header', path));
      if (sync) {
        counters.fsyncs++;
        await fdatasync(fd).catch(wrapIo('fsync', path));
      }
      await close(fd);
      counters.segmentsCreated++;
      segments.push({
        seq,
        file,
        prev: scan.lastIndex,
        maxIndex: null,
        bytes: header.length,
        headerBytes: header.length,
      });
      dirty = true;
    }
    if (dirty && sync) {
      counters.fsyncs++;
      await fsyncDir(dir).catch(wrapIo('fsync of the data directory', dir));
    }
    const active = segments[segments.length - 1];
    const activePath = join(dir, active.file);
    fd = await open(activePath, 'a').catch(wrapIo('opening the active segment', activePath));
    return new SegmentWriter(
      dir,
      sync,
      segmentBytes,
      segments,
      fd,
      scan.lastIndex,
      scan.hardState,
      scan.snapshot,
      counters,
      blockingFsync,
    );
  }

  /** A copy of the segment list (oldest first). */
  list(): readonly SegmentState[] {
    return this.segments.map((s) => ({ ...s }));
  }

  private get active(): SegmentState {
    return this.segments[this.segments.length - 1];
  }

  /** Create segment `seq` with a header and make it the active one (the old file is closed). */
  private async startSegment(prev: number): Promise<void> {
    const seq = this.active.seq + 1;
    const file = segmentFileName(seq);
    const path = join(this.dir, file);
    const header = encodeLine(segmentHeaderBody(seq, prev, this.writtenHs));
    const fd = await open(path, 'ax').catch(wrapIo('creating a segment', path));
    await writeAll(fd, header).catch(wrapIo('writing a segment header', path));
    this.counters.segmentsCreated++;
    this.counters.logBytesWritten += header.length;
    const old = this.fd;
    this.fd = fd;
    this.segments.push({ seq, file, prev, maxIndex: null, bytes: header.length, headerBytes: header.length });
    await close(old).catch(wrapIo('closing a segment', path));
  }

  /**
   * Append one batch to the active segment (rotating first if it is full), then fdatasync it. If a new segment was
   * created, the directory is fsynced too before this resolves.
   */
  async write(batch: BatchWrite): Promise<void> {
    let rotated = false;
    const active = this.active;
    // A batch that was partly pre-written continues in the segment that holds its first part.
    if (batch.preWritten === 0 && batch.bytes.length > 0 && this.isFull(active)) {
      await this.startSegment(this.lastWritten);
      rotated = true;
    }
    const seg = this.active;
    const n = batch.bytes.length;
    if (n > 0 || batch.preWritten > 0) {
      // try/catch rather than .catch(closure), and the path only on failure: this is the hot path of every flush.
      try {
        if (n <= SYNC_WRITE_MAX_BYTES) writeAllSync(this.fd, batch.bytes);
        else await writeAll(this.fd, batch.bytes);
      } catch (e) {
        throw ioError('writing to a segment', join(this.dir, seg.file), e);
      }
      this.counters.flushes++;
      this.counters.logBytesWritten += n;
      seg.bytes += n;
      if (this.sync) {
        this.counters.fsyncs++;
        this.syncingBatch = true;
        try {
          if (this.blockingFsync) fdatasyncSync(this.fd);
          else await fdatasync(this.fd);
          if (rotated) {
            // The new file's directory entry must be durable too, or a crash could lose the whole segment.
            this.counters.fsyncs++;
            await fsyncDir(this.dir).catch(wrapIo('fsync of the data directory', this.dir));
          }
        } catch (e) {
          throw e instanceof StorageError ? e : ioError('fdatasync', join(this.dir, seg.file), e);
        } finally {
          this.syncingBatch = false;
        }
      }
    }
    if (batch.maxIndex !== null)
      seg.maxIndex = seg.maxIndex === null ? batch.maxIndex : Math.max(seg.maxIndex, batch.maxIndex);
    if (batch.lastIndex !== null) this.lastWritten = batch.lastIndex;
    if (batch.hardState !== null) this.writtenHs = batch.hardState;
  }

  private isFull(seg: SegmentState): boolean {
    return seg.bytes >= this.segmentBytes && seg.bytes > seg.headerBytes;
  }

  /**
   * Write the first part of the next batch to the active segment now, while the previous batch's fdatasync is still
   * running, so that when it completes only the batch's last part remains to be copied before the next fdatasync
   * starts. Nothing is made durable or acknowledged here: the batch's own flush ({@link SegmentWriter.write} with
   * `preWritten`) fdatasyncs it, and that fdatasync is issued after every part was written. (An fdatasync already in
   * progress may or may not carry these bytes to disk; nobody relies on it.)
   *
   * @returns `false`, having written nothing, if no batch's fdatasync is in progress (pre-writing during a
   *   batch's own write, a rotation or a barrier would put bytes out of order) or if the active segment is full (the
   *   batch then waits for its flush, which starts a new segment first).
   */
  preWrite(bytes: Uint8Array): boolean {
    const seg = this.active;
    if (!this.syncingBatch || this.isFull(seg)) return false;
    try {
      writeAllSync(this.fd, bytes);
    } catch (e) {
      throw ioError('writing to a segment', join(this.dir, seg.file), e);
    }
    seg.bytes += bytes.length;
    this.counters.logBytesWritten += bytes.length;
    return true;
  }

  /**
   * Make a snapshot (whose data file is already written) take effect: write `snapshot.json`; if `dropLog`, start a
   * new segment after the snapshot's index and delete every older segment; finally delete the previous snapshot's
   * data file.
   */
  async installSnapshot(
    meta: SnapshotMeta,
    file: string,
    data: WrittenData,
    generation: number,
    dropLog: boolean,
  ): Promise<void> {
    const rec: SnapshotMetaRecord = {
      index: meta.index,
      term: meta.term,
      config: meta.config,
      file,
      size: data.size,
      dataCrc: crcHex(data.crc),
      logStart: dropLog ? this.active.seq + 1 : this.segments[0].seq,
      generation,
      hardState: this.writtenHs,
    };
    if (this.sync) this.counters.fsyncs += 2;
    await writeSnapshotMeta(this.dir, rec, this.sync);
    const previous = this.snapshot;
    this.snapshot = rec;
    if (dropLog) {
      await this.startSegment(meta.index);
      this.lastWritten = meta.index;
      const activePath = join(this.dir, this.active.file);
      if (this.sync) {
        this.counters.fsyncs += 2;
        await fdatasync(this.fd).catch(wrapIo('fdatasync', activePath));
        await fsyncDir(this.dir).catch(wrapIo('fsync of the data directory', this.dir));
      }
      while (this.segments.length > 1) {
        const old = this.segments[0];
        await unlinkIfExists(join(this.dir, old.file));
        this.segments.shift();
        this.counters.segmentsDeleted++;
      }
    }
    if (previous && previous.file !== file) await unlinkIfExists(join(this.dir, previous.file));
  }

  /**
   * Delete the oldest segments whose every entry record is at or below `upTo` (and after which the log continues at
   * or below `upTo`). The active segment is never deleted.
   *
   * @returns the number of segments deleted.
   */
  async compact(upTo: number): Promise<number> {
    let n = 0;
    while (this.segments.length > 1) {
      const s = this.segments[0];
      const next = this.segments[1];
      if ((s.maxIndex ?? 0) > upTo || next.prev > upTo) break;
      await unlinkIfExists(join(this.dir, s.file));
      this.segments.shift();
      this.counters.segmentsDeleted++;
      n++;
    }
    return n;
  }

  /** Close the active segment file. */
  async close(): Promise<void> {
    await close(this.fd).catch(wrapIo('closing a segment', join(this.dir, this.active.file)));
  }
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (e) {
    if (!isNotFound(e)) throw ioError('deleting a file', path, e);
  }
}
