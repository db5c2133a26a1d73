/**
 * The ordered write queue with group commit. Every mutating call of the storage adds its encoded records to the open
 * batch (or queues a barrier: snapshot installation, compaction, close). One drain loop writes the queue in call
 * order: all records queued while the previous flush was in progress go out with a single `write` and a single
 * `fdatasync`, and a barrier runs only once everything before it is durable. Separate from `storage.ts`, which
 * validates and encodes calls, because this is the part that decides *when* bytes reach the disk.
 *
 * @packageDocumentation
 */

import type { HardState } from '@raft/core';
import { StorageError } from './errors.js';
import { LineBuffer } from './format.js';
import type { SegmentWriter } from './segments.js';

/** See `maybeStartEarly`. Large enough that a write+fsync of it costs about as much as a small one. */
const EARLY_FLUSH_BYTES = 64 * 1024;
/** Larger line buffers are dropped after use rather than kept for reuse. */
const MAX_SPARE_BUFFER_BYTES = 4 * 1024 * 1024;

/** Records queued together: written with one `write` and made durable with one `fdatasync`. */
export interface Batch {
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

/** The queue of one open storage's writes, drained in call order by one loop. */
export class GroupCommitQueue {
  private readonly queue: (Batch | Barrier)[] = [];
  /** The batch still accepting records (the last element of `queue`), if any. */
  private openBatch: Batch | null = null;
  /** A drain is scheduled or running. */
  private draining = false;
  /** The drain loop is running (past its first microtask). */
  private running = false;
  /** Line buffers of written batches, reused so that a busy storage does not allocate and grow one per flush. */
  private readonly spareBuffers: LineBuffer[] = [];
  /** The first failed write: after it the file contents are unknown and every later operation is refused. */
  failure: StorageError | null = null;

  constructor(private readonly writer: SegmentWriter) {}

  /** The open batch, started (and its drain scheduled) if there is none. */
  batch(): Batch {
    let b = this.openBatch;
    if (b === null) {
      b = newBatch(this.spareBuffers.pop() ?? new LineBuffer());
      this.openBatch = b;
      this.queue.push(b);
      this.kick();
    }
    return b;
  }

  /** Queue `run` after everything queued so far; later records go to a new batch. */
  barrier(run: () => Promise<void>): Promise<void> {
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
  maybeStartEarly(b: Batch): void {
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
}
