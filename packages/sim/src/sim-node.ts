/**
 * One simulated server: the production runtime (`@raft/runtime`) on a simulated disk, network and clock. The node
 * adds nothing to what the runtime does; it only turns the runtime's I/O into events of the simulation (timers,
 * turns, fsync completions, messages) and reports each action to the safety checker.
 *
 * @packageDocumentation
 */
import type { Action, Entry, Index, NodeId, RaftNode, ReadId, SnapshotMeta } from '@raft/core';
import {
  type Clock,
  type Command,
  type ForwardReply,
  type ForwardRequest,
  type Machine,
  RaftRuntime,
  type RuntimeBugs,
  silentLogger,
} from '@raft/runtime';
import { type SafetyChecker, SafetyViolation } from './checker.js';
import type { Prng } from './prng.js';
import { SimDisk, SimStorage } from './sim-disk.js';
import type { SimRaftOptions, TimingOptions, TraceKind } from './types.js';

export { SimDisk, type StoredSnapshot } from './sim-disk.js';

/** A record of one applied entry (in this incarnation of the node). */
export interface AppliedRecord<C> {
  /** Log index. */
  readonly index: Index;
  /** The entry. */
  readonly entry: Entry<C>;
}

/** A timer, a turn of the runtime's action loop, or an fsync completion of one node. */
export interface NodeEvent {
  /** Virtual time it fires at, ms. */
  time: number;
  /** Scheduling order (set by the event queue). */
  seq: number;
  /** What fires. */
  kind: 'timer' | 'turn' | 'fsync';
  /** The node it belongs to. */
  node: NodeId;
  /** The node incarnation it belongs to: events of an earlier incarnation (before a crash) are ignored. */
  gen: number;
  /** What to run (timers and turns). */
  fn?: () => void;
  /** A timer's handle: cancelled timers are skipped. */
  handle?: { cancelled: boolean };
}

/** What a {@link SimNode} needs from its simulation ({@link Simulation} implements it). */
export interface SimNodeHost {
  /** Current virtual time, ms. */
  readonly now: number;
  /** The simulation's generator (every random choice comes from it). */
  readonly random: Prng;
  /** Heartbeat, election and fsync timing. */
  readonly timing: TimingOptions;
  /** The checker fed with every action, or null. */
  readonly checker: SafetyChecker<Command> | null;
  /** Options for every Raft node. */
  readonly raftOptions: SimRaftOptions;
  /** Runtime bugs to plant (tests only). */
  readonly runtimeBugs: RuntimeBugs;
  /** A fresh machine (each incarnation starts with one). */
  makeMachine(): Machine;
  /** Hands a message to the network. */
  send(message: import('@raft/core').Message<Command>): void;
  /** Hands a forwarded request (or its reply) to the network. */
  sendForward(
    from: NodeId,
    to: NodeId,
    item: { request: ForwardRequest } | { reply: ForwardReply },
    conn?: number,
  ): void;
  /** Schedules a node event. */
  schedule(event: NodeEvent): void;
  /** Whether trace events are wanted (callers skip building descriptions otherwise). */
  readonly tracing: boolean;
  /** Records a trace event. */
  trace(node: NodeId | null, kind: TraceKind, detail: string): void;
  /** Records an action for the determinism log. */
  recordAction(node: NodeId, action: Action<Command> | string): void;
  /** A read was answered (`index` null: it failed with `error`). */
  readResult(node: NodeId, readId: ReadId, index: Index | null, error?: string): void;
  /** Called after each turn of a node's action loop, once the checker has observed its state. */
  afterDrain(node: NodeId): void;
  /**
   * A check failed inside the runtime's loop. The runtime would treat the throw as its own failure, so the node
   * hands the violation to the simulation, which throws it when the current event is over.
   */
  violated(error: unknown): void;
}

/** A simulated server. Create them through {@link Simulation}. */
export class SimNode {
  /** The node's disk (survives crashes). */
  readonly disk = new SimDisk<Command>();
  /** The runtime of the current incarnation (null while crashed). */
  runtime: RaftRuntime | null = null;
  /** The machine of the current incarnation. */
  sm: Machine;
  /** Entries applied in this incarnation (the snapshot it started from covers the earlier ones). */
  applied: AppliedRecord<Command>[] = [];
  /** Index of the first element of `applied` minus one (the snapshot the incarnation started from). */
  appliedBase: Index = 0;
  /** Snapshots installed from a leader so far (all incarnations). */
  installs = 0;
  /** Number of crashes + restarts + wipes so far; events of earlier incarnations are ignored. */
  incarnation = 0;
  /**
   * How fast this node's clock runs relative to virtual time (1 = exact; 1.05 = its timers take 5% longer).
   * Drawn from `timing.clockDrift` when the simulation creates the node.
   */
  clockRate = 1;
  private fsyncPending = false;
  private fsyncCovers = 0;
  /** Role and term at the end of the last turn (for the checker's leader-append-only rule). */
  private leaderTermBefore = -1;

  /**
   * @param id - the node's identifier
   * @param host - the simulation
   */
  constructor(
    readonly id: NodeId,
    private readonly host: SimNodeHost,
  ) {
    this.sm = host.makeMachine();
  }

  /** True while the node runs. */
  get up(): boolean {
    return this.runtime !== null;
  }

  /** The core node of the current incarnation (null while crashed). */
  get raft(): RaftNode<Command> | null {
    return this.runtime?.node ?? null;
  }

  /** Highest index applied to the machine (or restored from a snapshot). */
  get appliedIndex(): Index {
    return this.runtime?.appliedIndex ?? this.appliedBase;
  }

  /** Starts a fresh node (empty disk). */
  start(): void {
    this.boot();
  }

  /** Restarts from the disk: what is durable, nothing else. */
  restart(): void {
    if (this.runtime !== null) throw new Error(`node ${this.id} is running`);
    this.boot();
  }

  private boot(): void {
    this.incarnation++;
    const gen = this.incarnation;
    const host = this.host;
    const storage = new SimStorage(this.disk, {
      queued: () => {
        if (!this.fsyncPending && this.incarnation === gen) this.startFsync();
      },
      snapshotSaved: (meta, data) => this.guard(() => this.onSnapshotSaved(meta, data)),
      compacted: (meta) =>
        this.guard(() => {
          host.checker?.logCompacted(this.id, meta);
          host.trace(this.id, 'snapshot', `snapshot at ${meta.index}/${meta.term}, log compacted`);
        }),
      snapshotReceived: (meta, data) => this.guard(() => this.onSnapshotReceived(meta, data)),
    });
    const persisted = storage.state;
    this.sm = host.makeMachine();
    this.appliedBase = persisted.snapshot?.index ?? 0;
    this.applied = [];
    this.leaderTermBefore = -1;
    host.checker?.nodeStarted(this.id, this.disk.empty ? {} : persisted);
    const t = host.timing;
    const runtime = new RaftRuntime({
      id: this.id,
      storage,
      transport: {
        send: (m) => host.send(m),
        forward: (to, request) => host.sendForward(this.id, to, { request }),
      },
      machine: this.sm,
      clock: this.clock(gen),
      heartbeatMs: t.heartbeatMs,
      electionTimeoutMs: t.electionMinMs,
      electionTimeoutMaxMs: t.electionMaxMs,
      autoSnapshotEntries: 0,
      raft: { electionTicks: Math.max(2, Math.round(t.electionMinMs / t.heartbeatMs)), ...host.raftOptions },
      logger: silentLogger,
      tap: {
        action: (a) => this.guard(() => this.observeAction(a)),
        turn: () => this.guard(() => this.observeTurn()),
      },
      unsafeBugs: host.runtimeBugs,
      // Nothing fails on a simulated disk: a runtime that stops taking part hides a bug, so it is one.
      onEvent: (e) => {
        if (e.type === 'failed') {
          host.violated(
            new SafetyViolation('runtime-contract', `node ${this.id}'s runtime stopped: ${e.error.message}`, {
              node: this.id,
            }),
          );
        }
      },
    });
    this.runtime = runtime;
    // The simulated storage answers synchronously: the node is up when this returns.
    void runtime.start();
  }

  /** Runs a check; a violation goes to the simulation (see {@link SimNodeHost.violated}) and is thrown on. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.host.violated(e);
      throw e;
    }
  }

  /** The runtime's clock: virtual time, timers and turns as events of this incarnation. */
  private clock(gen: number): Clock {
    const host = this.host;
    return {
      now: () => host.now,
      setTimeout: (fn, ms) => {
        const handle = { cancelled: false };
        // This node's clock runs at `clockRate` (drift): its timers last that much longer or shorter in real time.
        const real = this.clockRate === 1 ? ms : Math.round(ms * this.clockRate * 100) / 100;
        host.schedule({ time: host.now + real, seq: 0, kind: 'timer', node: this.id, gen, fn, handle });
        return handle;
      },
      clearTimeout: (h) => {
        if (h !== undefined && h !== null) (h as { cancelled: boolean }).cancelled = true;
      },
      defer: (fn) => host.schedule({ time: host.now, seq: 0, kind: 'turn', node: this.id, gen, fn }),
      random: () => host.random.next(),
    };
  }

  /**
   * Crashes the node: volatile state is lost, and so are writes no fsync covered, except that a random prefix of
   * them (and part of the next log write: a torn write) may have reached the disk when `keepPrefix` is true.
   *
   * @returns how many pending writes were lost
   */
  crash(keepPrefix: boolean): number {
    if (this.runtime === null) return 0;
    this.runtime = null;
    this.incarnation++;
    this.fsyncPending = false;
    const pending = this.disk.pending.length;
    const keep = keepPrefix ? this.host.random.int(0, pending + 1) : 0;
    const next = this.disk.pending[keep];
    const torn =
      keepPrefix && next !== undefined && next.kind === 'entries' && next.entries.length > 1
        ? this.host.random.int(0, next.entries.length)
        : 0;
    const lost = this.disk.crash(keep, torn);
    // What never reached its disk (nor another node) is forgotten, as the node itself forgets it.
    this.host.checker?.nodeCrashed(this.id, this.disk.load());
    return lost;
  }

  /** Erases the disk (the node must be crashed). It can then be started as a brand-new node. */
  wipe(): void {
    if (this.runtime !== null) throw new Error(`node ${this.id} must be crashed before its disk is wiped`);
    this.disk.wipe();
  }

  /**
   * Runs one input against the core node; the runtime carries out the resulting actions in its next turn.
   *
   * @returns what `fn` returned
   */
  input<T>(fn: (raft: RaftNode<Command>) => T): T {
    const runtime = this.runtime;
    if (runtime === null) throw new Error(`node ${this.id} is down`);
    const result = fn(runtime.node);
    runtime.kick();
    return result;
  }

  /** @returns the entry this incarnation applied at `index`, if any. */
  appliedAt(index: Index): Entry<Command> | undefined {
    return this.applied[index - this.appliedBase - 1]?.entry;
  }

  private startFsync(): void {
    const { fsyncMinMs, fsyncMaxMs } = this.host.timing;
    const delay = fsyncMaxMs > fsyncMinMs ? this.host.random.int(fsyncMinMs, fsyncMaxMs) : fsyncMinMs;
    this.fsyncPending = true;
    this.fsyncCovers = this.disk.pending.length;
    this.host.schedule({ time: this.host.now + delay, seq: 0, kind: 'fsync', node: this.id, gen: this.incarnation });
  }

  /** Handles an event addressed to this node. */
  fire(event: NodeEvent): void {
    if (this.runtime === null || event.gen !== this.incarnation) return;
    if (event.kind === 'timer') {
      if (event.handle?.cancelled) return;
      if (this.host.tracing) {
        const r = this.runtime.node;
        this.host.trace(this.id, 'timeout', `${r.role} timer fired (term ${r.currentTerm})`);
      }
      event.fn?.();
    } else if (event.kind === 'turn') {
      event.fn?.();
    } else {
      // An fsync makes durable the writes issued before it started; later ones wait for the next fsync (group
      // commit), so a crash can still lose them.
      this.fsyncPending = false;
      const done = this.disk.sync(this.fsyncCovers);
      if (this.disk.pending.length > 0) this.startFsync();
      const last = done.reduce<Entry<Command> | undefined>(
        (l, w) => (w.kind === 'entries' && w.entries.length > 0 ? w.entries[w.entries.length - 1] : l),
        undefined,
      );
      if (last !== undefined && this.host.tracing) {
        this.host.trace(this.id, 'fsync', `log durable up to ${last.index}/${last.term}`);
      }
      for (const w of done) {
        if (this.incarnation !== event.gen) break;
        w.done.resolve();
      }
    }
  }

  /** Takes a snapshot at the applied index through the runtime (saved at the next fsync, then the log compacted). */
  takeSnapshot(): boolean {
    const runtime = this.runtime;
    if (runtime === null) return false;
    const index = runtime.appliedIndex;
    if (index <= this.disk.base || index === 0) return false;
    let error: unknown;
    runtime.snapshots.take((e) => {
      error = e;
    });
    if (error !== undefined) {
      this.host.trace(this.id, 'snapshot', `snapshot at ${index} refused: ${String(error)}`);
      return false;
    }
    return true;
  }

  private onSnapshotSaved(meta: SnapshotMeta, data: Uint8Array): void {
    this.host.checker?.snapshotTaken(this.id, meta, data);
  }

  private onSnapshotReceived(meta: SnapshotMeta, data: Uint8Array): void {
    this.installs++;
    this.host.checker?.snapshotInstalled(this.id, meta, data);
    this.appliedBase = meta.index;
    this.applied = [];
    this.host.trace(this.id, 'install', `installed snapshot ${meta.index}/${meta.term} (${data.length} bytes)`);
  }

  /** The checker sees every action, in order, right before the runtime carries it out. */
  private observeAction(a: Action<Command>): void {
    const host = this.host;
    const raft = this.runtime?.node;
    if (raft === undefined) return;
    host.recordAction(this.id, a);
    host.checker?.observeAction(this.id, a, raft, this.leaderTermBefore);
    if (a.type === 'apply' && a.entries.length > 0) {
      let at = this.runtime?.appliedIndex ?? 0;
      for (const e of a.entries) {
        if (e.index !== at + 1) {
          throw new SafetyViolation(
            'state-machine-safety',
            `node ${this.id} applied entry ${e.index} but its state machine is at ${at}`,
            { node: this.id, index: e.index, term: e.term },
          );
        }
        at = e.index;
        this.applied.push({ index: e.index, entry: e });
        if (e.type === 'config' && host.tracing) {
          host.trace(this.id, 'config', `applied config ${JSON.stringify(e.config)} at ${e.index}`);
        }
      }
      if (host.tracing) {
        const first = a.entries[0].index;
        const last = a.entries[a.entries.length - 1].index;
        host.trace(this.id, 'apply', first === last ? `applied ${first}` : `applied ${first}..${last}`);
      }
    } else if (a.type === 'readReady') {
      host.checker?.readReady(this.id, a.readId, a.index, this.runtime?.appliedIndex ?? 0);
      host.readResult(this.id, a.readId, a.index);
    } else if (a.type === 'readFailed') {
      host.checker?.readFailed(this.id, a.readId);
      host.readResult(this.id, a.readId, null, a.error);
    } else if (a.type === 'stateChanged' && host.tracing) {
      host.trace(this.id, 'state', `${a.role} in term ${a.term}${a.leaderId ? ` (leader ${a.leaderId})` : ''}`);
    }
  }

  private observeTurn(): void {
    const raft = this.runtime?.node;
    if (raft === undefined) return;
    this.leaderTermBefore = raft.role === 'leader' ? raft.currentTerm : -1;
    this.host.checker?.observe(this.id, raft);
    this.host.afterDrain(this.id);
  }
}
