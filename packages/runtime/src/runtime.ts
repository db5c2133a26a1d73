/**
 * The runtime: one `@raft/core` node carried out against a {@link RaftStorage}, a {@link Transport}, a {@link Clock}
 * and the user's `Machine`. This is the only place the core's actions are performed; the TCP server, the
 * simulator and the playground all run it.
 *
 * Sections: lifecycle, the action loop and its durability gates, snapshots, and the state report. Client requests
 * (routing, forwarding, membership waits) are in `requests.ts`, which works on this class's state.
 *
 * @packageDocumentation
 */

import {
  type Action,
  type ClusterConfig,
  type Index,
  isVoter,
  type Message,
  type NodeId,
  RaftNode,
  type RaftOptions,
  type ReadId,
  type Role,
  type SnapshotMeta,
  type Term,
} from '@raft/core';
import { ErrorCode, errors, RpcError } from './errors.js';
import {
  type Clock,
  type ForwardReply,
  type ForwardRequest,
  type RaftStorage,
  systemClock,
  type Transport,
} from './io.js';
import { consoleLogger, type Logger } from './logger.js';
import { type ApplyOutcome, type Command, ReplicatedMachine } from './machine.js';
import { type ClientRequest, fail, proposalLost } from './request.js';
import { Requests } from './requests.js';
import { Snapshots } from './snapshots.js';
import { after, isThenable } from './sync.js';
import {
  type FollowerProgress,
  newRuntimeCounters,
  type RuntimeBugs,
  type RuntimeCounters,
  type RuntimeOptions,
  type RuntimeRequest,
  type RuntimeState,
} from './types.js';

/** Resolved options (defaults filled in). */
export interface ResolvedOptions {
  /** See {@link RuntimeOptions.heartbeatMs}. */
  readonly heartbeatMs: number;
  /** See {@link RuntimeOptions.electionTimeoutMs}. */
  readonly electionTimeoutMs: number;
  /** See {@link RuntimeOptions.electionTimeoutMaxMs}. */
  readonly electionTimeoutMaxMs: number;
  /** See {@link RuntimeOptions.requestTimeoutMs}. */
  readonly requestTimeoutMs: number;
  /** See {@link RuntimeOptions.autoSnapshotEntries}. */
  readonly autoSnapshotEntries: number;
  /** See {@link RuntimeOptions.maxInflightRequests}. */
  readonly maxInflightRequests: number;
  /** See {@link RuntimeOptions.maxCommandBytes}. */
  readonly maxCommandBytes: number;
}

/** Drains of the core in one turn before the rest waits for the next turn (so a flood of inputs cannot starve I/O). */
const MAX_DRAINS_PER_TURN = 8;

/** Members of a configuration: voters, then learners, then outgoing voters of a joint configuration. */
export function membersOf(c: ClusterConfig): string[] {
  const out = [...c.voters];
  for (const l of c.learners) if (!out.includes(l)) out.push(l);
  for (const o of c.oldVoters ?? []) if (!out.includes(o)) out.push(o);
  return out;
}

/** Whether `id` is a voter or learner of `c`. */
export function isMember(c: ClusterConfig, id: NodeId): boolean {
  return isVoter(c, id) || c.learners.includes(id);
}

/**
 * One Raft node at work. Create it with the opened storage, call {@link RaftRuntime.start}, feed it what the
 * transport receives ({@link RaftRuntime.receive}, {@link RaftRuntime.receiveForward}, ...) and ask it things through
 * the typed API ({@link RaftRuntime.apply}, {@link RaftRuntime.query}, ...) or {@link RaftRuntime.submit}.
 */
export class RaftRuntime {
  /** This node's id. */
  readonly id: NodeId;
  /** Resolved options. */
  readonly o: ResolvedOptions;
  /** Operator counters (see {@link RuntimeCounters}). */
  readonly counters: RuntimeCounters;
  /** @internal The core node (set by `start`). */
  node!: RaftNode<Command>;
  /** @internal The replicated machine: the user's machine plus exactly-once sessions. */
  readonly rm: ReplicatedMachine;
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly log: Logger;
  /** @internal */
  readonly transport: Transport;
  /** @internal */
  readonly storage: RaftStorage;
  /** @internal */
  readonly requests: Requests;
  /** @internal Planted bugs (tests only). */
  readonly bugs: RuntimeBugs;
  private running = false;
  private started = false;
  /** @internal Set when the node stopped taking part (storage failed, or a bug). */
  failure: RpcError | null = null;

  // The action loop.
  private scheduled = false;
  private timer: unknown;
  /** Hard states handed to storage, and how many of them are durable: sends wait for the one before them. */
  private hsWritten = 0;
  private hsDurable = 0;
  private deferredSends: [number, Message<Command>][] = [];
  /** @internal Highest index applied to the machine (or restored from a snapshot). */
  appliedIndex = 0;
  private lastLeader: NodeId | null = null;
  private lastRole: Role = 'follower';

  /** @internal The latest snapshot taken or installed. */
  snapshotMeta: SnapshotMeta | null = null;
  /** @internal Snapshot production and installation. */
  readonly snapshots: Snapshots;

  constructor(private readonly options: RuntimeOptions) {
    this.id = options.id;
    this.o = {
      heartbeatMs: options.heartbeatMs ?? 100,
      electionTimeoutMs: options.electionTimeoutMs ?? 1000,
      electionTimeoutMaxMs: options.electionTimeoutMaxMs ?? 2 * (options.electionTimeoutMs ?? 1000),
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      autoSnapshotEntries: options.autoSnapshotEntries ?? 100_000,
      maxInflightRequests: options.maxInflightRequests ?? 100_000,
      maxCommandBytes: options.maxCommandBytes ?? 32 * 1024 * 1024,
    };
    if (this.o.heartbeatMs <= 0 || this.o.electionTimeoutMs < 2 * this.o.heartbeatMs) {
      throw new RpcError(ErrorCode.INVALID_PARAMS, 'electionTimeoutMs must be at least twice heartbeatMs');
    }
    this.counters = options.counters ?? newRuntimeCounters();
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? consoleLogger('warn', options.id);
    this.transport = options.transport;
    this.storage = options.storage;
    this.rm = new ReplicatedMachine(options.machine, options.maxSessions ?? 100_000);
    this.requests = new Requests(this);
    this.bugs = options.unsafeBugs ?? {};
    this.snapshots = new Snapshots(this);
  }

  /** Whether the runtime is running (started, not stopped; it may have failed). */
  get isRunning(): boolean {
    return this.running;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Lifecycle
  // ---------------------------------------------------------------------------------------------------------------

  /**
   * Restore the machine from the storage's latest snapshot, build the core node from what is durable, and start.
   * A runtime cannot be started twice: its machine already holds applied state.
   */
  start(): PromiseLike<void> {
    if (this.started) {
      return Promise.reject(
        new RpcError(
          ErrorCode.SHUTTING_DOWN,
          'a stopped runtime cannot be started again: create a new one with a fresh Machine on the same storage',
        ),
      );
    }
    this.started = true;
    const st = this.storage.state;
    if (st.snapshot === null) {
      this.begin();
      return Promise.resolve();
    }
    // A simulator's storage answers synchronously: then the node is up when this returns.
    const begun = after(this.storage.readSnapshot(), (snap) => {
      if (snap !== null) this.rm.restore(snap.data);
      this.snapshotMeta = st.snapshot;
      this.appliedIndex = st.snapshot?.index ?? 0;
      this.begin();
    });
    return isThenable(begun) ? begun : Promise.resolve();
  }

  /** The synchronous part of `start`, once the machine holds the snapshot. */
  private begin(): void {
    const st = this.storage.state;
    const raftOptions: RaftOptions = {
      electionTicks: Math.max(2, Math.round(this.o.electionTimeoutMs / this.o.heartbeatMs)),
      ...this.options.raft,
    };
    this.node =
      st.hardState.term === 0 && st.snapshot === null && st.entries.length === 0
        ? RaftNode.start<Command>(this.id, raftOptions)
        : RaftNode.restart<Command>(this.id, st, raftOptions);
    this.running = true;
    this.lastLeader = this.node.leaderId;
    this.lastRole = this.node.role;
    this.log.info('runtime started', { id: this.id, term: this.node.currentTerm, applied: this.appliedIndex });
    this.kick();
  }

  /**
   * Stop: pending requests fail with `SHUTTING_DOWN`, timers stop. With `graceful`, an encoding snapshot is awaited;
   * either way the storage is closed (a crash in a simulator simply drops the runtime instead).
   */
  stop(graceful = true): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.running = false;
    this.clock.clearTimeout(this.timer);
    this.requests.failAll(errors.shuttingDown());
    return this.snapshots
      .stop(graceful)
      .then(() => this.storage.close())
      .then(
        () => undefined,
        (e) => this.log.warn('closing storage failed', { error: (e as Error).message }),
      );
  }

  /** @internal Storage failed: the node can no longer keep its promises, so it stops taking part (like a crash). */
  fatal(e: unknown, as?: RpcError): void {
    if (this.failure !== null || !this.running) return;
    const message = (e as Error)?.message ?? String(e);
    this.log.error('the node stops taking part in the cluster', { error: message });
    this.failure = as ?? errors.storage(message);
    this.clock.clearTimeout(this.timer);
    this.requests.failAll(this.failure);
    this.options.onEvent?.({ type: 'failed', error: this.failure });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Inputs from the transport
  // ---------------------------------------------------------------------------------------------------------------

  /** Raft messages arrived from peers (already validated and addressed to this node). */
  receive(messages: readonly Message<Command>[]): void {
    if (!this.running || this.failure !== null) return;
    for (const m of messages) {
      try {
        this.node.handleMessage(m);
      } catch (e) {
        // The message passed validation but the core refused it: drop it, keep serving.
        this.log.warn('dropped a peer message the core refused', { from: m.from, type: m.type, error: String(e) });
      }
    }
    this.kick();
  }

  /** A peer forwarded a client request to this node; `reply` carries the answer back. */
  receiveForward(request: ForwardRequest, reply: (r: ForwardReply) => void): void {
    this.requests.onForward(request, reply);
  }

  /** Answers to this node's forwarded requests arrived. */
  forwardReplies(replies: readonly ForwardReply[]): void {
    this.requests.onReplies(replies);
  }

  /** These forwarded requests certainly did not leave (the leader is unreachable): they may be retried. */
  forwardsUnsent(requests: readonly ForwardRequest[]): void {
    this.requests.onUnsent(requests);
  }

  /** The connection carrying these forwarded requests (by id) closed before their answers: outcome unknown. */
  forwardsLost(ids: readonly number[]): void {
    this.requests.onLost(ids);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The action loop and its durability gates
  // ---------------------------------------------------------------------------------------------------------------

  /** @internal Run the loop soon: every input of this turn is batched into one drain of the core. */
  kick(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    this.clock.defer(this.runTurn);
  }

  /** {@link RaftRuntime.run} as one function for every turn (a turn is scheduled for every batch of inputs). */
  private readonly runTurn = (): void => this.run();

  private run(): void {
    if (!this.running || this.failure !== null) {
      this.scheduled = false;
      return;
    }
    // `scheduled` stays set during the turn: a kick from inside it (a request retried once a leader is known, a
    // proposal, a snapshot chunk read from memory) is served by draining again below, not by another turn.
    let more = false;
    try {
      let rounds = 0;
      while (this.runActions()) {
        if (++rounds >= MAX_DRAINS_PER_TURN) {
          more = true;
          break;
        }
      }
      this.scheduled = false;
      if (more) this.kick();
      this.transport.flush?.();
      this.options.tap?.turn?.();
    } catch (e) {
      this.scheduled = false;
      // A bug (here, in the core or in the Machine): stop taking part rather than crash the hosting process.
      this.log.error('internal error in the action loop', { error: (e as Error)?.stack ?? String(e) });
      this.fatal(e, errors.internal(`the node stopped taking part in the cluster: ${(e as Error)?.message ?? e}`));
    }
  }

  /** One drain of the core; returns whether there was anything to do. */
  private runActions(): boolean {
    let configApplied = false;
    let leaderChanged = false;
    const actions: Action<Command>[] = this.node.takeActions();
    if (actions.length === 0) return false;
    const tap = this.options.tap;
    const bugs = this.bugs;
    for (const a of actions) {
      tap?.action?.(a);
      switch (a.type) {
        case 'persistHardState': {
          // Gate: every send queued after this waits until this term/vote is durable (see `send`).
          if (bugs.skipHardState) break;
          const seq = ++this.hsWritten;
          this.storage.saveHardState(a.hardState).then(
            () => {
              this.hsDurable = Math.max(this.hsDurable, seq);
              this.flushDeferred();
            },
            (e) => this.fatal(e),
          );
          break;
        }
        case 'appendEntries': {
          const last = a.entries[a.entries.length - 1];
          const n = a.entries.length;
          // Written in the background; the core counts them (and acknowledges them) only once `persisted` says so.
          if (bugs.persistedBeforeFsync) this.node.persisted(last.index, last.term);
          this.storage.appendEntries(a.entries).then(
            () => {
              if (!this.running || this.failure !== null) return;
              this.counters.appendBatches++;
              this.counters.entriesPersisted += n;
              this.node.persisted(last.index, last.term);
              this.kick();
            },
            (e) => this.fatal(e),
          );
          break;
        }
        case 'send':
          // A message may speak in a term (or carry a vote) whose hard state is not on disk yet: hold it back.
          if (!bugs.sendBeforeHardStateDurable && (this.hsDurable < this.hsWritten || this.deferredSends.length > 0)) {
            this.deferredSends.push([this.hsWritten, a.message]);
          } else this.transport.send(a.message);
          break;
        case 'setTimer': {
          const ms =
            a.kind === 'heartbeat'
              ? this.o.heartbeatMs
              : this.o.electionTimeoutMs +
                this.clock.random() * (this.o.electionTimeoutMaxMs - this.o.electionTimeoutMs);
          this.clock.clearTimeout(this.timer);
          this.timer = this.clock.setTimeout(() => this.onTimer(), ms);
          break;
        }
        case 'apply':
          for (const e of a.entries) {
            this.appliedIndex = e.index;
            if (e.type === 'command') this.applyCommand(e.index, e.term, e.command);
            else {
              if (e.type === 'config') configApplied = true;
              this.requests.takeProposal(e.index)?.req.settle(fail(proposalLost()));
            }
          }
          break;
        case 'readReady':
          this.requests.readReady(a.readId);
          break;
        case 'readFailed':
          this.requests.readFailed(a.readId);
          break;
        case 'readSnapshotChunk':
          this.snapshots.readChunk(a.to, a.snapshot, a.offset, a.maxBytes);
          break;
        case 'saveSnapshotChunk':
          this.snapshots.saveChunk(a.snapshot, a.offset, a.data);
          break;
        case 'installSnapshot':
          this.snapshots.install(a.snapshot);
          break;
        case 'stateChanged':
          if (a.leaderId !== this.lastLeader || a.role !== this.lastRole) {
            if (a.leaderId !== this.lastLeader) this.counters.leaderChanges++;
            leaderChanged = true;
            this.lastLeader = a.leaderId;
            this.lastRole = a.role;
            this.log.info('state changed', { role: a.role, term: a.term, leader: a.leaderId });
            this.options.onEvent?.({ type: 'stateChanged', role: a.role, term: a.term, leader: a.leaderId });
          }
          break;
      }
    }
    if (configApplied) {
      const c = this.node.committedConfig;
      this.options.onEvent?.({ type: 'membershipChanged', voters: [...c.voters], learners: [...c.learners] });
    }
    if (configApplied || leaderChanged) this.requests.checkMemberWaits();
    if (leaderChanged && this.node.leaderId !== null) this.requests.drainWaiters();
    this.snapshots.maybeAuto();
    return true;
  }

  /** Sends held back behind a hard state go out once it is durable, in their original order. */
  private flushDeferred(): void {
    if (!this.running || this.failure !== null) return;
    let i = 0;
    const q = this.deferredSends;
    while (i < q.length && q[i][0] <= this.hsDurable) this.transport.send(q[i++][1]);
    this.deferredSends = i === q.length ? [] : q.slice(i);
    if (i > 0) this.transport.flush?.();
  }

  private onTimer(): void {
    if (!this.running || this.failure !== null) return;
    this.node.handleTimeout();
    this.kick();
  }

  private applyCommand(index: Index, term: Term, command: Command): void {
    this.counters.commandsApplied++;
    const prop = this.requests.takeProposal(index);
    if (prop === undefined) {
      this.rm.applyCommand(command, index, false);
      return;
    }
    if (prop.term !== term) {
      // Another leader's entry took this index: ours was truncated and will never be applied.
      this.rm.applyCommand(command, index, false);
      prop.req.settle(fail(proposalLost()));
      return;
    }
    prop.req.settle(this.rm.applyCommand(command, index, true));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Requests (the typed API; the work is in requests.ts)
  // ---------------------------------------------------------------------------------------------------------------

  /** Hand a request to the runtime; `done` is called exactly once with its outcome. */
  submit(request: RuntimeRequest, done: (o: ApplyOutcome) => void): void {
    try {
      this.requests.submit(request, done);
    } catch (e) {
      this.log.error('internal error while handling a request', {
        type: request.type,
        error: (e as Error)?.stack ?? String(e),
      });
      done(fail(errors.internal((e as Error)?.message ?? String(e))));
    }
  }

  private promise<T>(request: RuntimeRequest): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit(request, (o) => {
        if (!o.ok) reject(o.error);
        else resolve((o.json !== undefined ? JSON.parse(o.json) : o.output) as T);
      });
    });
  }

  /** Run a command through the log; resolves with the machine's output. Any member may be asked. */
  apply<O = unknown>(
    input: unknown,
    options: { clientId?: string; seq?: number; timeoutMs?: number } = {},
  ): Promise<O> {
    return this.promise({ type: 'command', input, ...options });
  }

  /** A linearizable read (ReadIndex); resolves with the machine's output. */
  query<O = unknown>(input: unknown, options: { timeoutMs?: number } = {}): Promise<O> {
    return this.promise({ type: 'query', input, ...options });
  }

  /** A read of this node's local state, with no freshness guarantee. */
  localQuery<O = unknown>(input: unknown): Promise<O> {
    return this.promise({ type: 'localQuery', input });
  }

  /** Make this (fresh) node a one-member cluster. */
  createCluster(): Promise<{ members: string[] }> {
    return this.promise({ type: 'createCluster' });
  }

  /** Add a server (as a learner, promoted once caught up); resolves with the members once it is a voter. */
  addServer(addr: NodeId, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise({ type: 'addServer', addr, ...options });
  }

  /** Remove a server; resolves with the members once the removal committed. */
  removeServer(addr: NodeId, options: { timeoutMs?: number } = {}): Promise<{ members: string[] }> {
    return this.promise({ type: 'removeServer', addr, ...options });
  }

  /** Move leadership to `addr` (default: the most caught-up other voter). */
  transferLeadership(addr?: NodeId, options: { timeoutMs?: number } = {}): Promise<{ leader: string }> {
    return this.promise(
      addr === undefined
        ? { type: 'transferLeadership', ...options }
        : { type: 'transferLeadership', addr, ...options },
    );
  }

  /** Snapshot the machine now and compact the log. */
  takeSnapshot(): Promise<{ snapshotIndex: number }> {
    return this.promise({ type: 'takeSnapshot' });
  }

  /** This node's state; with `stateHash`, a hash of the replicated state at `appliedIndex`. */
  getState(options: { stateHash?: boolean } = {}): Promise<RuntimeState> {
    return this.promise({ type: 'state', ...options });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------------------------------

  /** This node's state now (synchronous; see {@link RaftRuntime.getState} for the hash). */
  state(): RuntimeState {
    const n = this.node;
    const c = n.config;
    const s: RuntimeState = {
      id: this.id,
      role: n.role,
      membership: isVoter(c, this.id) ? 'voter' : c.learners.includes(this.id) ? 'learner' : 'none',
      term: n.currentTerm,
      votedFor: n.votedFor,
      leader: n.leaderId,
      members: membersOf(c),
      voters: [...c.voters],
      learners: [...c.learners],
      commitIndex: n.commitIndex,
      appliedIndex: this.appliedIndex,
      firstLogIndex: n.firstLogIndex,
      lastLogIndex: n.lastLogIndex,
      lastLogTerm: n.lastLogTerm,
      persistedIndex: n.persistedIndex,
      snapshotIndex: this.snapshotMeta?.index ?? 0,
      snapshotTerm: this.snapshotMeta?.term ?? 0,
      sessions: this.rm.sessionCount,
    };
    if (c.oldVoters !== undefined) s.oldVoters = [...c.oldVoters];
    if (n.role === 'leader') {
      const f: Record<string, FollowerProgress> = {};
      for (const [id, pr] of n.progress()) {
        if (id === this.id) continue;
        f[id] = {
          matchIndex: pr.matchIndex,
          nextIndex: pr.nextIndex,
          lag: Math.max(0, n.lastLogIndex - pr.matchIndex),
          state: pr.state,
          inflight: pr.inflight,
        };
      }
      s.followers = f;
    }
    return s;
  }

  /** @internal Whether this node is in the configuration (or an outgoing voter of a joint one). */
  isMemberNow(): boolean {
    return isMember(this.node.config, this.id) || (this.node.config.oldVoters ?? []).includes(this.id);
  }

  /** @internal Requests in flight (for tests). */
  get inflight(): number {
    return this.requests.inflight;
  }
}

export type { ClientRequest, ReadId };
