/**
 * A node's simulated disk, and the {@link RaftStorage} the runtime writes to it through.
 *
 * Writes are kept apart from durable data until an fsync covers them, as on a real disk: every write (term and
 * vote, log entries, a snapshot) goes into `pending`, and the owner ({@link SimNode}) completes it when its
 * simulated fsync fires. A crash loses what no fsync covered, except a random prefix of it, and may tear the first
 * lost log write (keep only some of its entries). Completions are {@link Completion}s, settled from the
 * simulation's event queue, so "the fsync finished" is an ordinary, replayable event.
 *
 * @packageDocumentation
 */
import type { ClusterConfig, Entry, HardState, Index, SnapshotMeta } from '@raft/core';
import { type Command, Completion, type PersistedState, type RaftStorage, type SnapshotReceiver } from '@raft/runtime';

/** A stored snapshot: its meta and the serialized state machine. */
export interface StoredSnapshot {
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The serialized state machine. */
  readonly data: Uint8Array;
}

/** One write waiting for an fsync. */
export type PendingWrite<C> =
  | { readonly kind: 'hardState'; readonly hardState: HardState; readonly done: Completion<void> }
  | { readonly kind: 'entries'; readonly entries: readonly Entry<C>[]; readonly done: Completion<void> }
  | {
      readonly kind: 'snapshot';
      readonly snapshot: StoredSnapshot;
      /** A leader's snapshot replaces the whole log; a local one keeps the entries after it. */
      readonly dropLog: boolean;
      readonly done: Completion<void>;
    };

/** A node's disk: durable state, plus writes waiting for an fsync. */
export class SimDisk<C = Command> {
  /** Durable term and vote. */
  hardState: HardState = { term: 0, votedFor: null };
  /** Durable snapshot. */
  snapshot: StoredSnapshot | null = null;
  /** Durable log entries, all after the snapshot, contiguous. */
  log: Entry<C>[] = [];
  /** Writes not yet covered by an fsync, in the order they were issued. */
  pending: PendingWrite<C>[] = [];

  /** Index of the snapshot (0 when none). */
  get base(): Index {
    return this.snapshot?.meta.index ?? 0;
  }

  /** Index of the last durable entry (or of the snapshot). */
  get lastIndex(): Index {
    return this.base + this.log.length;
  }

  /** True when nothing was ever written. */
  get empty(): boolean {
    return (
      this.hardState.term === 0 &&
      this.hardState.votedFor === null &&
      this.snapshot === null &&
      this.log.length === 0 &&
      this.pending.length === 0
    );
  }

  /**
   * Makes entries durable: drops the entries from the first one's index on, then appends. A write whose entries all
   * lie at or below the snapshot (a snapshot was taken while it was pending) still truncates: the entries it
   * replaced are not part of the log any more.
   */
  write(entries: readonly Entry<C>[]): void {
    if (entries.length === 0) return;
    const base = this.base;
    const keep = Math.max(0, entries[0].index - base - 1);
    if (keep > this.log.length) {
      throw new Error(`disk write at index ${entries[0].index} leaves a gap after ${this.lastIndex}`);
    }
    this.log.length = keep;
    for (const e of entries) if (e.index > base) this.log.push(e);
  }

  /** Makes one pending write durable. */
  private apply(w: PendingWrite<C>): void {
    if (w.kind === 'hardState') this.hardState = w.hardState;
    else if (w.kind === 'entries') this.write(w.entries);
    else {
      const { meta } = w.snapshot;
      this.snapshot = w.snapshot;
      if (w.dropLog) this.log = [];
      else this.compact(meta.index, meta.term);
    }
  }

  /**
   * Makes the first `count` pending writes durable, in order, and returns them (their completions are the caller's
   * to settle, once the disk is in its new state).
   */
  sync(count: number): PendingWrite<C>[] {
    const n = Math.min(count, this.pending.length);
    const done = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    for (const w of done) this.apply(w);
    return done;
  }

  /**
   * A crash: the first `keep` pending writes reached the disk, the rest are lost; the first lost one, if it is a
   * log write, may be torn: `tornEntries` of its entries (from the start) reached the disk.
   *
   * @returns how many pending writes were lost (a torn one counts as lost)
   */
  crash(keep: number, tornEntries = 0): number {
    const kept = Math.min(keep, this.pending.length);
    for (let i = 0; i < kept; i++) this.apply(this.pending[i]);
    const next = this.pending[kept];
    if (next !== undefined && next.kind === 'entries' && tornEntries > 0) {
      this.write(next.entries.slice(0, Math.min(tornEntries, next.entries.length)));
    }
    const lost = this.pending.length - kept;
    this.pending = [];
    return lost;
  }

  /**
   * Drops durable entries up to `index`, once a snapshot at (`index`, `term`) is durable. If the durable log holds a
   * different term at `index`, everything after it belongs to a replaced history: it is dropped too, as the Raft
   * paper's section 7 prescribes for a log that does not match a snapshot.
   */
  compact(index: Index, term: number): void {
    const at = this.log.find((e) => e.index === index);
    this.log = at !== undefined && at.term !== term ? [] : this.log.filter((e) => e.index > index);
  }

  /** The configuration in the durable state (last config entry of the log, else the snapshot's). */
  latestConfig(): ClusterConfig | null {
    for (let i = this.log.length - 1; i >= 0; i--) {
      const e = this.log[i];
      if (e.type === 'config') return e.config;
    }
    return this.snapshot?.meta.config ?? null;
  }

  /** What the node loads on restart: only what is durable. */
  load(): PersistedState<C> {
    return { hardState: this.hardState, snapshot: this.snapshot?.meta ?? null, entries: this.log.slice() };
  }

  /** Erases everything (the node must be down). */
  wipe(): void {
    this.hardState = { term: 0, votedFor: null };
    this.snapshot = null;
    this.log = [];
    this.pending = [];
  }
}

/** What the simulated storage tells its node about. */
export interface SimStorageHooks {
  /** A write was queued: start an fsync if none is under way. */
  queued(): void;
  /** The runtime saved a local snapshot (called at once, before it is durable: the state was captured now). */
  snapshotSaved(meta: SnapshotMeta, data: Uint8Array): void;
  /** The runtime compacted the log up to a durable snapshot. */
  compacted(meta: SnapshotMeta): void;
  /** A leader's snapshot became durable (just before the runtime restores it). */
  snapshotReceived(meta: SnapshotMeta, data: Uint8Array): void;
}

/** The runtime's view of a {@link SimDisk} (one per node incarnation). */
export class SimStorage implements RaftStorage<Command> {
  /** What was durable when the incarnation started. */
  readonly state: PersistedState<Command>;
  private lastSnapshot: SnapshotMeta | null = null;
  /** Index of the newest snapshot written (queued or durable): like storage-jsonl, an older one is refused. */
  private newestSnapshot: Index;

  /**
   * @param disk - the node's disk
   * @param hooks - how the node learns about writes
   */
  constructor(
    private readonly disk: SimDisk<Command>,
    private readonly hooks: SimStorageHooks,
  ) {
    this.state = disk.load();
    this.newestSnapshot = disk.snapshot?.meta.index ?? 0;
  }

  private queue(w: PendingWrite<Command>): Completion<void> {
    this.disk.pending.push(w);
    this.hooks.queued();
    return w.done;
  }

  /** {@inheritDoc RaftStorage.saveHardState} */
  saveHardState(hardState: HardState): Completion<void> {
    return this.queue({ kind: 'hardState', hardState, done: new Completion() });
  }

  /** {@inheritDoc RaftStorage.appendEntries} */
  appendEntries(entries: readonly Entry<Command>[]): Completion<void> {
    return this.queue({ kind: 'entries', entries, done: new Completion() });
  }

  /** {@inheritDoc RaftStorage.saveSnapshot} */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array): Completion<void> {
    if (meta.index < this.newestSnapshot) {
      return rejected(new Error(`snapshot at ${meta.index} is older than the one at ${this.newestSnapshot}`));
    }
    this.newestSnapshot = meta.index;
    this.hooks.snapshotSaved(meta, data);
    this.lastSnapshot = meta;
    return this.queue({ kind: 'snapshot', snapshot: { meta, data }, dropLog: false, done: new Completion() });
  }

  /** {@inheritDoc RaftStorage.compact} */
  compact(upTo: Index): Completion<void> {
    // The disk dropped those entries when the snapshot became durable; this only tells the checker.
    const meta = this.lastSnapshot;
    if (meta !== null && meta.index === upTo) this.hooks.compacted(meta);
    return Completion.resolved<void>(undefined);
  }

  /** {@inheritDoc RaftStorage.beginSnapshotReceive} */
  beginSnapshotReceive(meta: SnapshotMeta): SnapshotReceiver {
    let bytes = new Uint8Array(0);
    const hooks = this.hooks;
    const storage = this;
    return {
      write(offset, data) {
        if (offset > bytes.length) {
          return rejected(
            new Error(`snapshot chunk at ${offset} does not continue the ${bytes.length} bytes received`),
          );
        }
        const next = new Uint8Array(offset + data.length);
        next.set(bytes.subarray(0, offset));
        next.set(data, offset);
        bytes = next;
        return Completion.resolved<void>(undefined);
      },
      finish() {
        const data = bytes;
        storage.newestSnapshot = Math.max(storage.newestSnapshot, meta.index);
        const done = new Completion<void>();
        // Tell the checker as it becomes durable, before the runtime restores it.
        const w: PendingWrite<Command> = { kind: 'snapshot', snapshot: { meta, data }, dropLog: true, done };
        storage.disk.pending.push(w);
        hooks.queued();
        return done.then(() => {
          hooks.snapshotReceived(meta, data);
        });
      },
      abort() {
        bytes = new Uint8Array(0);
        return Completion.resolved<void>(undefined);
      },
      bytes: () => bytes,
    };
  }

  /** {@inheritDoc RaftStorage.readSnapshot} */
  readSnapshot(): Completion<{ meta: SnapshotMeta; data: Uint8Array } | null> {
    const s = this.disk.snapshot;
    return Completion.resolved(s === null ? null : { meta: s.meta, data: s.data });
  }

  /** {@inheritDoc RaftStorage.readSnapshotChunk} */
  readSnapshotChunk(offset: number, maxBytes: number, index: Index): Completion<Uint8Array> {
    const s = this.disk.snapshot;
    if (s === null || s.meta.index !== index) {
      return rejected(new Error(`the durable snapshot is not at index ${index} any more`));
    }
    return Completion.resolved<Uint8Array>(
      s.data.slice(offset, Math.min(s.data.length, offset + Math.max(1, maxBytes))),
    );
  }

  /** {@inheritDoc RaftStorage.close} */
  close(): Completion<void> {
    return Completion.resolved<void>(undefined);
  }
}

function rejected<T>(e: Error): Completion<T> {
  const c = new Completion<T>();
  c.reject(e);
  return c;
}
