/**
 * One simulated server: a Raft node, its simulated disk (hard state, log with a pending-write queue flushed by a
 * simulated fsync, snapshot), its state machine, and the runtime that performs its actions.
 *
 * @packageDocumentation
 */
import type { Action, Entry, HardState, Index, Message, NodeId, ReadId, SnapshotMeta } from '@raft/core';
import { type SafetyChecker, SafetyViolation } from './checker.js';
import type { Prng } from './prng.js';
import type { StateMachine } from './state-machine.js';
import type { PersistedState, RaftEngine, RaftNodeLike, SimRaftOptions, TimingOptions, TraceKind } from './types.js';

/** A stored snapshot: its meta and the serialized state machine. */
export interface StoredSnapshot {
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The serialized state machine. */
  readonly data: Uint8Array;
}

/**
 * A node's simulated disk. `hardState`, `snapshot` and `log` are durable; `pending` holds log writes that an fsync
 * has not flushed yet (a crash loses them, or keeps a random prefix).
 */
export class SimDisk<C> {
  /** Durable term and vote. */
  hardState: HardState = { term: 0, votedFor: null };
  /** Durable snapshot. */
  snapshot: StoredSnapshot | null = null;
  /** Durable log entries, all after the snapshot, contiguous. */
  log: Entry<C>[] = [];
  /** Log writes waiting for an fsync, in action order. */
  pending: (readonly Entry<C>[])[] = [];

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
   * Makes one pending write durable: drops the entries from its first index on, then appends. A write whose
   * entries all lie at or below the snapshot (a snapshot was taken while it was pending) still truncates: the
   * entries it replaced are not part of the log any more.
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

  /**
   * Makes the first `count` pending writes durable (default: all of them), in order.
   *
   * @returns the last entry written, if any
   */
  flush(count = this.pending.length): Entry<C> | undefined {
    let last: Entry<C> | undefined;
    const n = Math.min(count, this.pending.length);
    for (let i = 0; i < n; i++) {
      const w = this.pending[i];
      this.write(w);
      if (w.length > 0) last = w[w.length - 1];
    }
    this.pending = n === this.pending.length ? [] : this.pending.slice(n);
    return last;
  }

  /**
   * Drops durable entries up to `index`, right after a snapshot at (`index`, `term`) was saved. If the durable log
   * holds a different term at `index`, everything after it belongs to a replaced history (its truncation is still
   * pending): it is dropped too, as the Raft paper's section 7 prescribes for a log that does not match a snapshot.
   */
  compact(index: Index, term: number): void {
    const at = this.log.find((e) => e.index === index);
    this.log = at !== undefined && at.term !== term ? [] : this.log.filter((e) => e.index > index);
  }

  /** The configuration in the durable state (last config entry of the log, else the snapshot's). */
  latestConfig(): SnapshotMeta['config'] | null {
    for (let i = this.log.length - 1; i >= 0; i--) {
      const e = this.log[i];
      if (e.type === 'config') return e.config;
    }
    return this.snapshot?.meta.config ?? null;
  }

  /** What the node loads on restart. */
  load(): PersistedState<C> {
    return { hardState: this.hardState, snapshot: this.snapshot?.meta ?? null, entries: this.log.slice() };
  }
}

/** A record of one applied entry (in this incarnation of the node). */
export interface AppliedRecord<C> {
  /** Log index. */
  readonly index: Index;
  /** The entry. */
  readonly entry: Entry<C>;
}

/** Pending timer or fsync event. */
export interface NodeEvent {
  /** Virtual time it fires at, ms. */
  time: number;
  /** Scheduling order (set by the event queue). */
  seq: number;
  /** A timer expiry or an fsync completion. */
  kind: 'timer' | 'fsync';
  /** The node it belongs to. */
  node: NodeId;
  /** Generation: a timer event is stale once the timer was re-armed, an fsync once the node crashed. */
  gen: number;
}

/** What a {@link SimNode} needs from its simulation ({@link Simulation} implements it). */
export interface SimNodeHost<C> {
  /** Current virtual time, ms. */
  readonly now: number;
  /** The simulation's generator (every random choice comes from it). */
  readonly random: Prng;
  /** Heartbeat, election and fsync timing. */
  readonly timing: TimingOptions;
  /** The checker fed with every action, or null. */
  readonly checker: SafetyChecker<C> | null;
  /** Creates Raft nodes. */
  readonly engine: RaftEngine<C>;
  /** Options for every Raft node. */
  readonly raftOptions: SimRaftOptions;
  /** A fresh state machine. */
  makeStateMachine(): StateMachine<C>;
  /** Hands a message to the network. */
  send(message: Message<C>): void;
  /** Schedules a timer or fsync event. */
  schedule(event: NodeEvent): void;
  /** Whether trace events are wanted (callers skip building descriptions otherwise). */
  readonly tracing: boolean;
  /** Records a trace event. */
  trace(node: NodeId | null, kind: TraceKind, detail: string): void;
  /** Records an action for the determinism log. */
  recordAction(node: NodeId, action: Action<C> | string): void;
  /** A read was answered (`index` null: it failed with `error`). */
  readResult(node: NodeId, readId: ReadId, index: Index | null, error?: string): void;
  /** Called once a node's actions are all performed and the checker has observed its state. */
  afterDrain(node: NodeId): void;
}

/** A simulated server. Create them through {@link Simulation}. */
export class SimNode<C> {
  /** The node's disk (survives crashes). */
  readonly disk = new SimDisk<C>();
  /** The Raft node of the current incarnation (null while crashed). */
  raft: RaftNodeLike<C> | null = null;
  /** The state machine of the current incarnation. */
  sm: StateMachine<C>;
  /** Highest index applied to `sm`. */
  appliedIndex: Index = 0;
  /** Entries applied in this incarnation (the snapshot it started from covers the earlier ones). */
  applied: AppliedRecord<C>[] = [];
  /** Index of the first element of `applied` minus one (the snapshot the incarnation started from). */
  appliedBase: Index = 0;
  /** Snapshots installed from a leader so far (all incarnations). */
  installs = 0;
  /** Number of crashes + restarts + wipes so far; events of earlier incarnations are ignored. */
  incarnation = 0;
  private timerGen = 0;
  private fsyncPending = false;
  private fsyncCovers = 0;
  /**
   * How fast this node's clock runs relative to virtual time (1 = exact; 1.05 = its timers take 5% longer).
   * Drawn from `timing.clockDrift` when the simulation creates the node.
   */
  clockRate = 1;
  private incoming: { meta: SnapshotMeta; bytes: Uint8Array; done: boolean } | null = null;

  /**
   * @param id - the node's identifier
   * @param host - the simulation
   */
  constructor(
    readonly id: NodeId,
    private readonly host: SimNodeHost<C>,
  ) {
    this.sm = host.makeStateMachine();
  }

  /** True while the node runs. */
  get up(): boolean {
    return this.raft !== null;
  }

  /** Starts a fresh node (empty disk). */
  start(): void {
    this.incarnation++;
    this.sm = this.host.makeStateMachine();
    this.appliedIndex = 0;
    this.appliedBase = 0;
    this.applied = [];
    this.host.checker?.nodeStarted(this.id, {});
    this.raft = this.host.engine.start(this.id, this.host.raftOptions);
    this.drain(-1);
  }

  /** Restarts from the disk: hard state, durable log and snapshot; the state machine is restored from the snapshot. */
  restart(): void {
    if (this.raft !== null) throw new Error(`node ${this.id} is running`);
    this.incarnation++;
    const persisted = this.disk.load();
    this.sm = this.host.makeStateMachine();
    const snap = this.disk.snapshot;
    if (snap !== null) this.sm.restore(snap.data);
    this.appliedIndex = snap?.meta.index ?? 0;
    this.appliedBase = this.appliedIndex;
    this.applied = [];
    this.host.checker?.nodeStarted(this.id, persisted);
    this.raft = this.host.engine.restart(this.id, persisted, this.host.raftOptions);
    this.drain(-1);
  }

  /**
   * Crashes the node: volatile state is lost, and so are log writes not yet flushed, except that a random prefix of
   * them may have reached the disk when `keepPrefix` is true.
   */
  crash(keepPrefix: boolean): number {
    if (this.raft === null) return 0;
    this.raft = null;
    this.incarnation++;
    this.timerGen++;
    this.incoming = null;
    this.fsyncPending = false;
    const pending = this.disk.pending;
    const kept = keepPrefix ? this.host.random.int(0, pending.length + 1) : 0;
    for (let i = 0; i < kept; i++) this.disk.write(pending[i]);
    this.disk.pending = [];
    return pending.length - kept;
  }

  /** Erases the disk (the node must be crashed). It can then be started as a brand-new node. */
  wipe(): void {
    if (this.raft !== null) throw new Error(`node ${this.id} must be crashed before its disk is wiped`);
    this.disk.hardState = { term: 0, votedFor: null };
    this.disk.snapshot = null;
    this.disk.log = [];
    this.disk.pending = [];
  }

  /**
   * Runs one input against the Raft node and performs all resulting actions, in order.
   *
   * @returns what `fn` returned
   */
  input<T>(fn: (raft: RaftNodeLike<C>) => T): T {
    const raft = this.raft;
    if (raft === null) throw new Error(`node ${this.id} is down`);
    const leaderBefore = raft.role === 'leader' ? raft.currentTerm : -1;
    const result = fn(raft);
    this.drain(leaderBefore);
    return result;
  }

  /** @returns the entry this incarnation applied at `index`, if any. */
  appliedAt(index: Index): Entry<C> | undefined {
    return this.applied[index - this.appliedBase - 1]?.entry;
  }

  private startFsync(): void {
    const { fsyncMinMs, fsyncMaxMs } = this.host.timing;
    const delay = fsyncMaxMs > fsyncMinMs ? this.host.random.int(fsyncMinMs, fsyncMaxMs) : fsyncMinMs;
    this.fsyncPending = true;
    this.fsyncCovers = this.disk.pending.length;
    this.host.schedule({ time: this.host.now + delay, seq: 0, kind: 'fsync', node: this.id, gen: this.incarnation });
  }

  /** Handles a timer or fsync event addressed to this node. */
  fire(event: NodeEvent): void {
    if (this.raft === null || event.gen !== (event.kind === 'timer' ? this.timerGen : this.incarnation)) return;
    if (event.kind === 'timer') {
      if (this.host.tracing)
        this.host.trace(this.id, 'timeout', `${this.raft.role} timer fired (term ${this.raft.currentTerm})`);
      this.input((r) => r.handleTimeout());
    } else {
      // An fsync makes durable the writes issued before it started; later ones wait for the next fsync (group
      // commit), so a crash can still lose them.
      this.fsyncPending = false;
      const last = this.disk.flush(this.fsyncCovers);
      if (this.disk.pending.length > 0) this.startFsync();
      if (last !== undefined) {
        if (this.host.tracing) this.host.trace(this.id, 'fsync', `log durable up to ${last.index}/${last.term}`);
        this.input((r) => r.persisted(last.index, last.term));
      }
    }
  }

  /** Takes a local snapshot at the applied index, saves it, then compacts the log. */
  takeSnapshot(): boolean {
    const raft = this.raft;
    if (raft === null) return false;
    const index = raft.lastApplied;
    if (index <= this.disk.base || index === 0) return false;
    if (index !== this.appliedIndex) {
      throw new Error(`node ${this.id}: core lastApplied ${index} but the runtime applied up to ${this.appliedIndex}`);
    }
    const meta = raft.snapshotMeta(index);
    const data = this.sm.snapshot();
    this.host.checker?.snapshotTaken(this.id, meta, data);
    const previous = this.disk.snapshot;
    const previousLog = this.disk.log;
    this.disk.snapshot = { meta, data };
    this.disk.compact(meta.index, meta.term);
    const result = this.input((r) => r.compactLog(meta));
    if (!result.ok) {
      this.disk.snapshot = previous;
      this.disk.log = previousLog;
      this.host.trace(this.id, 'snapshot', `compactLog(${meta.index}) refused: ${result.error.code}`);
      return false;
    }
    this.host.checker?.logCompacted(this.id, meta);
    this.host.trace(this.id, 'snapshot', `snapshot at ${meta.index}/${meta.term}, log compacted`);
    return true;
  }

  private drain(leaderBefore: number): void {
    const raft = this.raft as RaftNodeLike<C>;
    const checker = this.host.checker;
    for (;;) {
      const actions = raft.takeActions();
      if (actions.length === 0) break;
      const isLeader = raft.role === 'leader';
      const steady = leaderBefore >= 0 && isLeader && raft.currentTerm === leaderBefore ? leaderBefore : -1;
      const leaderCommit = isLeader ? raft.commitIndex : -1;
      for (const a of actions) this.perform(raft, a, steady, leaderCommit);
      if (this.raft !== raft) return;
    }
    checker?.observe(this.id, raft);
    this.host.afterDrain(this.id);
  }

  private perform(raft: RaftNodeLike<C>, a: Action<C>, steady: number, leaderCommit: Index): void {
    const host = this.host;
    host.recordAction(this.id, a);
    const checker = host.checker;
    switch (a.type) {
      case 'persistHardState':
        checker?.hardStatePersisted(this.id, a.hardState);
        this.disk.hardState = a.hardState;
        break;
      case 'appendEntries':
        if (a.entries.length === 0) break;
        checker?.logAppended(this.id, a.entries, steady, leaderCommit);
        this.disk.pending.push(a.entries);
        if (!this.fsyncPending) this.startFsync();
        break;
      case 'send':
        host.send(a.message);
        break;
      case 'setTimer': {
        const t = host.timing;
        const nominal = a.kind === 'heartbeat' ? t.heartbeatMs : host.random.int(t.electionMinMs, t.electionMaxMs);
        // This node's clock runs at `clockRate` (drift): its timers last that much longer or shorter in real time.
        const ms = this.clockRate === 1 ? nominal : Math.round(nominal * this.clockRate * 100) / 100;
        this.timerGen++;
        host.schedule({ time: host.now + ms, seq: 0, kind: 'timer', node: this.id, gen: this.timerGen });
        break;
      }
      case 'apply': {
        if (a.entries.length === 0) break;
        checker?.applied(this.id, a.entries);
        for (const e of a.entries) {
          if (e.index !== this.appliedIndex + 1) {
            throw new SafetyViolation(
              'state-machine-safety',
              `node ${this.id} applied entry ${e.index} but its state machine is at ${this.appliedIndex}`,
              { node: this.id, index: e.index, term: e.term },
            );
          }
          if (e.type === 'command') this.sm.apply(e.command, e.index);
          this.appliedIndex = e.index;
          this.applied.push({ index: e.index, entry: e });
          if (e.type === 'config' && host.tracing) {
            host.trace(this.id, 'config', `applied config ${JSON.stringify(e.config)} at ${e.index}`);
          }
        }
        const first = a.entries[0].index;
        const last = a.entries[a.entries.length - 1].index;
        if (host.tracing)
          host.trace(this.id, 'apply', first === last ? `applied ${first}` : `applied ${first}..${last}`);
        break;
      }
      case 'readReady':
        checker?.readReady(this.id, a.readId, a.index, this.appliedIndex);
        host.readResult(this.id, a.readId, a.index);
        break;
      case 'readFailed':
        checker?.readFailed(this.id, a.readId);
        host.readResult(this.id, a.readId, null, a.error);
        break;
      case 'readSnapshotChunk': {
        const snap = this.disk.snapshot;
        if (snap === null || snap.meta.index !== a.snapshot.index || snap.meta.term !== a.snapshot.term) {
          host.trace(
            this.id,
            'snapshot',
            `no longer holds snapshot ${a.snapshot.index}/${a.snapshot.term} for ${a.to}`,
          );
          break;
        }
        const end = Math.min(snap.data.length, a.offset + Math.max(1, a.maxBytes));
        const chunk = snap.data.slice(a.offset, end);
        raft.sendSnapshotChunk(a.to, snap.meta, a.offset, chunk, end >= snap.data.length);
        break;
      }
      case 'saveSnapshotChunk': {
        if (a.offset === 0) this.incoming = { meta: a.snapshot, bytes: new Uint8Array(0), done: false };
        const inc = this.incoming;
        if (
          inc === null ||
          inc.meta.index !== a.snapshot.index ||
          inc.meta.term !== a.snapshot.term ||
          a.offset > inc.bytes.length
        ) {
          throw new SafetyViolation(
            'runtime-contract',
            `node ${this.id}: saveSnapshotChunk at offset ${a.offset} of ${a.snapshot.index}/${a.snapshot.term} does not continue the transfer in progress`,
            { node: this.id, index: a.snapshot.index },
          );
        }
        const bytes = new Uint8Array(a.offset + a.data.length);
        bytes.set(inc.bytes.subarray(0, a.offset));
        bytes.set(a.data, a.offset);
        inc.bytes = bytes;
        inc.done = a.done;
        break;
      }
      case 'installSnapshot': {
        const inc = this.incoming;
        if (inc === null || !inc.done || inc.meta.index !== a.snapshot.index || inc.meta.term !== a.snapshot.term) {
          throw new SafetyViolation(
            'runtime-contract',
            `node ${this.id}: installSnapshot ${a.snapshot.index}/${a.snapshot.term} without all of its chunks saved`,
            { node: this.id, index: a.snapshot.index },
          );
        }
        const data = inc.bytes;
        this.incoming = null;
        this.installs++;
        checker?.snapshotInstalled(this.id, a.snapshot, data);
        this.disk.snapshot = { meta: a.snapshot, data };
        this.disk.log = [];
        this.disk.pending = [];
        this.fsyncCovers = 0;
        this.sm = host.makeStateMachine();
        this.sm.restore(data);
        this.appliedIndex = a.snapshot.index;
        this.appliedBase = a.snapshot.index;
        this.applied = [];
        host.trace(
          this.id,
          'install',
          `installed snapshot ${a.snapshot.index}/${a.snapshot.term} (${data.length} bytes)`,
        );
        raft.snapshotInstalled(a.snapshot);
        break;
      }
      case 'stateChanged':
        checker?.stateChanged(this.id, a.role, a.term);
        if (host.tracing)
          host.trace(this.id, 'state', `${a.role} in term ${a.term}${a.leaderId ? ` (leader ${a.leaderId})` : ''}`);
        break;
    }
  }
}
