/**
 * Snapshots in the runtime: producing one from the machine (automatically or on request), saving it and compacting
 * the log only once it is durable; sending one to a follower in chunks; receiving one and restoring the machine
 * only once it is durable. Separate from `runtime.ts` because it is one concern with its own state (the snapshot
 * under way, the incoming transfer).
 *
 * @packageDocumentation
 */

import type { NodeId, SnapshotMeta } from '@raft/core';
import type { RaftStorage } from './io.js';
import type { RaftRuntime } from './runtime.js';
import { after, attempt, Serial } from './sync.js';

/** The runtime's snapshot work (one per runtime). */
export class Snapshots {
  /** Callers waiting for the snapshot under way (`null`: none is). */
  private waiters: ((error?: unknown) => void)[] | null = null;
  private autoRetryAt = 0;
  private receiver: ReturnType<RaftStorage['beginSnapshotReceive']> | null = null;
  private readonly receiveChain = new Serial();

  /** @param rt - the runtime whose node and storage it works on */
  constructor(private readonly rt: RaftRuntime) {}

  /** Stop: wait for a snapshot under way (when `graceful`), then abandon an incoming transfer. */
  stop(graceful: boolean): Promise<void> {
    const waiters = this.waiters;
    const done = graceful && waiters !== null ? new Promise<void>((r) => waiters.push(() => r())) : Promise.resolve();
    return done
      .then(() => this.receiver?.abort())
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.receiver = null;
      });
  }

  /** Take a snapshot if `autoSnapshotEntries` were applied since the last one. */
  maybeAuto(): void {
    const every = this.rt.o.autoSnapshotEntries;
    if (every <= 0 || this.waiters !== null || this.receiver !== null) return;
    if (this.rt.appliedIndex - (this.rt.snapshotMeta?.index ?? 0) < every || this.rt.appliedIndex < this.autoRetryAt) {
      return;
    }
    const at = this.rt.appliedIndex;
    this.take((e) => {
      // Do not retry on every turn after a failure: wait for another `every` entries.
      if (e !== undefined) this.autoRetryAt = at + every;
    });
  }

  /**
   * Snapshot the machine at the applied index, save it durably, then compact the log; `done` is told once with the
   * error, if any (a call while one is under way joins it).
   */
  take(done: (error?: unknown) => void = () => undefined): void {
    if (this.waiters !== null) {
      this.waiters.push(done);
      return;
    }
    const index = this.rt.appliedIndex;
    // A leader's snapshot being received or made durable is newer than anything this node could take now: its own
    // would reach the storage after it and move the snapshot backwards (storage-jsonl refuses that, which is fatal).
    // Nothing to do: the incoming snapshot is the one to keep.
    if (index <= (this.rt.snapshotMeta?.index ?? 0) || index === 0 || this.receiver !== null) {
      done();
      return;
    }
    let meta: SnapshotMeta;
    try {
      meta = this.rt.node.snapshotMeta(index);
    } catch (e) {
      done(e);
      return;
    }
    const waiters = [done];
    this.waiters = waiters;
    const finish = (error?: unknown) => {
      this.waiters = null;
      for (const w of waiters) w(error);
    };
    const t0 = this.rt.clock.now();
    // A leader's snapshot installed while this one was being encoded is newer: keep it, drop this one (storage would
    // refuse an older snapshot, and its log no longer holds the entries between the two).
    const superseded = () => !this.rt.isRunning || (this.rt.snapshotMeta?.index ?? 0) >= meta.index;
    const machineFailed = (e: unknown) => {
      this.rt.log.error('the state machine failed to produce a snapshot', { index, error: String(e) });
      finish(e);
    };
    const storageFailed = (e: unknown) => {
      if (this.rt.isRunning) this.rt.fatal(e);
      finish(e);
    };
    // The machine captures its state at `index` now; encoding it may take several turns (a large state is
    // serialised in slices so heartbeats keep flowing), and commands go on being applied meanwhile.
    after<Uint8Array, void>(
      attempt(() => this.rt.rm.snapshot()),
      (data) => {
        if (superseded()) {
          this.rt.log.info('snapshot dropped: a newer one was installed meanwhile', { index: meta.index });
          finish();
          return;
        }
        after<void, void>(
          attempt(() => this.rt.storage.saveSnapshot(meta, data)),
          () => {
            if (superseded()) {
              finish();
              return;
            }
            // Gate: the log is compacted (in the core and on disk) only after the snapshot is durable.
            this.rt.snapshotMeta = meta;
            this.rt.counters.snapshotsTaken++;
            const r = this.rt.node.compactLog(meta);
            if (!r.ok) this.rt.log.warn('log compaction refused', { index: meta.index, error: r.error.message });
            this.rt.kick();
            after<void, void>(
              attempt(() => this.rt.storage.compact(meta.index)),
              () => {
                this.rt.log.info('snapshot taken', {
                  index: meta.index,
                  bytes: data.length,
                  ms: this.rt.clock.now() - t0,
                });
                finish();
              },
              storageFailed,
            );
          },
          storageFailed,
        );
      },
      machineFailed,
    );
  }

  /** A leader's `readSnapshotChunk` action: read from storage, hand the chunk to the core. */
  readChunk(to: NodeId, meta: SnapshotMeta, offset: number, maxBytes: number): void {
    this.rt.storage.readSnapshotChunk(offset, maxBytes, meta.index).then(
      (data) => {
        if (!this.rt.isRunning || this.rt.failure !== null) return;
        if (offset === 0) this.rt.counters.snapshotsSent++;
        this.rt.node.sendSnapshotChunk(to, meta, offset, data, data.length < maxBytes);
        this.rt.kick();
      },
      // The snapshot was replaced meanwhile: the core restarts the transfer with the new one.
      (e) => this.rt.log.debug?.('snapshot chunk unavailable', { to, index: meta.index, error: (e as Error).message }),
    );
  }

  /** A follower's `saveSnapshotChunk` action: write the chunk, in order. */
  saveChunk(meta: SnapshotMeta, offset: number, data: Uint8Array): void {
    if (offset === 0 || this.receiver === null) {
      const old = this.receiver;
      this.receiver = this.rt.storage.beginSnapshotReceive(meta);
      if (old !== null) this.rt.log.debug?.('restarting snapshot reception', { index: meta.index });
    }
    const receiver = this.receiver;
    this.receiveChain.push(
      () => receiver.write(offset, data),
      (e) => this.rt.log.warn('saving a snapshot chunk failed', { error: (e as Error).message }),
    );
  }

  /** A follower's `installSnapshot` action: make it durable, then restore the machine and tell the core. */
  install(meta: SnapshotMeta): void {
    const receiver = this.receiver;
    if (receiver === null) return;
    const restore = (data: Uint8Array) => {
      this.rt.rm.restore(data);
      this.rt.appliedIndex = meta.index;
      this.rt.snapshotMeta = meta;
      this.rt.counters.snapshotsInstalled++;
      this.rt.node.snapshotInstalled(meta);
      this.rt.requests.snapshotCovers(meta.index);
      this.rt.log.info('snapshot installed', { index: meta.index, bytes: data.length });
      this.rt.kick();
    };
    let restoredEarly = false;
    if (this.rt.bugs.installBeforeDurable && receiver.bytes !== undefined) {
      const data = receiver.bytes();
      if (data !== null) {
        restore(data);
        restoredEarly = true;
      }
    }
    // Gate: the machine is restored and the core told only once the snapshot is durable.
    this.receiveChain.push(
      () =>
        after(receiver.finish(), () =>
          after(this.rt.storage.readSnapshot(), (snap) => {
            if (this.receiver === receiver) this.receiver = null;
            if (!this.rt.isRunning || snap === null || restoredEarly) return;
            restore(snap.data);
          }),
        ),
      (e) => this.rt.fatal(e),
    );
  }
}
