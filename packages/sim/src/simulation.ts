/**
 * The simulated cluster: virtual time, a deterministic event queue, the simulated network and disks, and the
 * safety checker wired to every action.
 *
 * @packageDocumentation
 */
import {
  type Action,
  hasQuorum,
  type Index,
  type Message,
  members,
  type NodeId,
  type RaftNode,
  type ReadId,
  type Term,
} from '@raft/core';
import type {
  ApplyOutcome,
  Command,
  ForwardReply,
  ForwardRequest,
  Machine,
  RuntimeBugs,
  RuntimeRequest,
} from '@raft/runtime';
import { ErrorCode as ErrorCodes, RpcError as RpcErrorClass, saysNotApplied } from '@raft/runtime';
import { configKey, SafetyChecker, SafetyViolation } from './checker.js';
import { EventQueue } from './event-queue.js';
import { Network, type NetworkOptions } from './network.js';
import { Prng } from './prng.js';
import { type NodeEvent, SimNode, type SimNodeHost } from './sim-node.js';
import { type KvCommand, KvStateMachine, ReferenceMachine } from './state-machine.js';
import {
  DEFAULT_TIMING,
  type SimRaftOptions,
  type SimResult,
  type TimingOptions,
  type TraceEvent,
  type TraceKind,
} from './types.js';

/** Options of a {@link Simulation}. Everything but `seed` has a default. */
export interface SimulationOptions {
  /** The seed: a simulation is a pure function of it (and of the calls made on it). */
  seed: number;
  /** The node ids, or how many nodes to create (`n1`, `n2`, ...). Default 3. */
  nodes?: number | readonly NodeId[];
  /**
   * Which nodes bootstrap the cluster (all call `createCluster(voters)`); the others start empty, ready to be added.
   * Default: every node. Pass `[]` to bootstrap nothing.
   */
  voters?: readonly NodeId[];
  /** Virtual-time settings (heartbeat, election range, fsync latency). */
  timing?: Partial<TimingOptions>;
  /** Network latency and faults. */
  network?: Partial<NetworkOptions>;
  /** Options passed to every Raft node (including test-only `unsafeBugs`). */
  raft?: SimRaftOptions;
  /**
   * Creates the machine every node runs, the same `Machine` the TCP server runs (default: {@link KvStateMachine}).
   * Its `snapshot()` must answer synchronously here. Commands (`C`) travel as JSON, as in production.
   */
  stateMachine?: () => Machine;
  /**
   * Reads the value a read returns from a machine (default: the machine's own answer to the query, as
   * `apply(query, {kind: 'Query'})`). Reads are checked against the committed log's value too, not only by index.
   */
  readValue?: (sm: Machine, query: unknown) => unknown;
  /** Runtime bugs to plant (plant-a-bug tests only). */
  runtimeBugs?: RuntimeBugs;
  /** Run the {@link SafetyChecker} (default true). */
  check?: boolean;
  /** How many trace events to keep (a ring buffer; default 400, 0 disables the trace). */
  traceLimit?: number;
  /** Record every action of every node as JSON in {@link Simulation.actionLog} (for determinism tests). Default false. */
  recordActions?: boolean;
}

/** The outcome of a read issued with {@link Simulation.read}. */
export interface ReadOutcome {
  /** The node that served (or failed) the read. */
  readonly node: NodeId;
  /** The read's identifier. */
  readonly readId: ReadId;
  /** What was asked (for the KV machine: the key). */
  readonly query: unknown;
  /** Virtual time the read was issued. */
  readonly issuedAt: number;
  /** Virtual time it was answered, once it is. */
  answeredAt?: number;
  /** The read index it was served at, if served. */
  index?: Index;
  /** The value returned, if served. */
  value?: unknown;
  /** The error code, if it failed. */
  error?: string;
}

type SimEvent =
  | NodeEvent
  | { time: number; seq: number; kind: 'deliver'; node: NodeId; message: Message<Command> }
  | {
      time: number;
      seq: number;
      kind: 'forward';
      node: NodeId;
      from: NodeId;
      /** The requester's incarnation: the connection the request and its reply travel on. */
      conn: number;
      item: { request: ForwardRequest } | { reply: ForwardReply };
    }
  | { time: number; seq: number; kind: 'lost'; node: NodeId; ids: number[]; conn: number };

/** What became of a request handed to a node's runtime with {@link Simulation.submit}. */
export interface SubmittedRequest {
  /** The node asked. */
  readonly node: NodeId;
  /** What was asked. */
  readonly request: RuntimeRequest;
  /** Virtual time it was submitted. */
  readonly issuedAt: number;
  /** Virtual time it was answered, once it is. */
  answeredAt?: number;
  /** The answer, once there is one. */
  outcome?: ApplyOutcome;
}

/**
 * A proposal or membership change issued through {@link Simulation.propose} or {@link Simulation.changeMembership},
 * and its answer, as a client of a real runtime would get it.
 */
export interface RequestOutcome {
  /** Sequence number of the request (its key in {@link Simulation.requests}). */
  readonly id: number;
  /** `propose` or `member` (a membership change). */
  readonly kind: 'propose' | 'member';
  /** The node it was sent to. */
  readonly node: NodeId;
  /** Virtual time it was issued. */
  readonly issuedAt: number;
  /** Where the node appended it, if it accepted it. */
  readonly index?: Index;
  /** The node's term when it accepted it (the entry's term). */
  readonly term?: Term;
  /** Virtual time it was answered, once it is. */
  answeredAt?: number;
  /**
   * The answer: `committed` (the node applied the entry at `index` with `term`), `lost` (the node applied another
   * entry there), `UNKNOWN` (the node's log dropped the entry before it was known committed: a newer leader
   * overwrote it, but a later leader that still holds it may commit it yet, as in the Raft paper's Figure 8, so
   * the client must retry idempotently), `DOWN` (the node crashed first: the client's connection broke) or the
   * core's error code when refused (`NOT_LEADER`, ...). Also `UNKNOWN` when the entry was applied through a
   * snapshot and no checker keeps the committed log.
   */
  outcome?: string;
}

/** A request still waiting for its answer (see {@link Simulation.unanswered}). */
export interface UnansweredRequest {
  /** `read`, `propose`, `member`, or `submit` (a request handed to the runtime with {@link Simulation.submit}). */
  readonly kind: 'read' | 'propose' | 'member' | 'submit';
  /** The node it was sent to. */
  readonly node: NodeId;
  /** Its id: the read id, or the request's sequence number. */
  readonly id: ReadId;
  /** Virtual time it was issued. */
  readonly issuedAt: number;
  /** The log index it was appended at (proposals and membership changes). */
  readonly index?: Index;
}

/** Largest number of events a single {@link Simulation.runFor} call processes (a guard against livelock). */
const MAX_EVENTS_PER_RUN = 1_000_000;

/**
 * A deterministic Raft cluster in virtual time.
 *
 * Everything random (latencies, losses, election timeouts, fsync delays, which prefix of unflushed writes survives a
 * crash) comes from one seeded generator, and events at equal times run in scheduling order, so a simulation is a
 * pure function of its seed and of the calls made on it. Every action of every node is checked by a
 * {@link SafetyChecker}; a violated property throws a {@link SafetyViolation} from the call that caused it.
 *
 * @example
 * ```ts
 * const sim = new Simulation({ seed: 42, nodes: 3 });
 * sim.runUntilStableLeader(5_000); // not sim.leader(): that may be a deposed leader
 * sim.propose({ id: 1, key: 'x', value: 7 }); // goes to sim.quorumLeader()
 * sim.runFor(100);
 * ```
 *
 * @typeParam C - the command type (default: the KV machine's {@link KvCommand})
 */
export class Simulation<C = KvCommand> implements SimNodeHost {
  /** The seed this simulation was created with. */
  readonly seed: number;
  /** The generator every random choice is drawn from. */
  readonly random: Prng;
  /** Virtual-time settings (mutable). */
  readonly timing: TimingOptions;
  /** The simulated network (mutable settings, partitions). */
  readonly network: Network;
  /** The safety checker, or null when checking is disabled. */
  readonly checker: SafetyChecker<Command> | null;
  /** Runtime bugs planted (tests only). */
  readonly runtimeBugs: RuntimeBugs;
  /** Options given to every Raft node. */
  readonly raftOptions: SimRaftOptions;
  /** The simulated servers by id. */
  readonly nodes = new Map<NodeId, SimNode>();
  /** Every request handed to a node's runtime with {@link Simulation.submit}, in order. */
  readonly submitted: SubmittedRequest[] = [];
  /** Submitted commands answered "certainly not applied" (checked against the committed log). */
  private readonly notApplied: SubmittedRequest[] = [];
  /** Every read issued so far, by read id. */
  readonly reads = new Map<ReadId, ReadOutcome>();
  /** Every proposal and membership change issued so far, by sequence number (see {@link RequestOutcome}). */
  readonly requests = new Map<number, RequestOutcome>();
  /** JSON lines of every action performed (only with `recordActions`). */
  readonly actionLog: string[] = [];
  /** Counters: events processed, messages sent, delivered and dropped. */
  readonly stats = { events: 0, sent: 0, delivered: 0, dropped: 0, duplicated: 0 };

  private readonly queue = new EventQueue<SimEvent>();
  private readonly makeSm: () => Machine;
  private readonly readValue: (sm: Machine, query: unknown) => unknown;
  private readonly traceRing: TraceEvent[] = [];
  private readonly traceLimit: number;
  private traceNext = 0;
  private readonly listeners: ((event: TraceEvent) => void)[] = [];
  private readonly recordActions: boolean;
  private readChecks: { read: ReadOutcome; node: SimNode; at: Index }[] = [];
  private time = 0;
  private nextReadId = 1;
  /** The first violation a node's checks raised during the current event (see {@link SimNodeHost.violated}). */
  private violation: unknown = null;
  private nextRequestId = 1;
  /** Accepted requests waiting for their answer, by node. */
  private readonly awaiting = new Map<NodeId, RequestOutcome[]>();
  /** For each node, when it last received a message from each peer, and in which term (see quorumLeader). */
  private readonly heard = new Map<NodeId, Map<NodeId, { time: number; term: Term }>>();

  /** @param options - see {@link SimulationOptions} */
  constructor(options: SimulationOptions) {
    this.seed = options.seed;
    this.random = new Prng(options.seed);
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.network = new Network(this.random, options.network);
    this.raftOptions = options.raft ?? {};
    this.runtimeBugs = options.runtimeBugs ?? {};
    this.makeSm = options.stateMachine ?? (() => new KvStateMachine());
    this.readValue = options.readValue ?? ((sm, query) => sm.apply(query, { kind: 'Query', index: 0 }));
    this.checker =
      options.check === false
        ? null
        : new SafetyChecker<Command>({
            commandKey: commandKey,
            stateMachine: () => new ReferenceMachine(this.makeSm()),
            // A retried exactly-once command may be in the log twice; the session table applies it once.
            mayRepeat: (c) => c.clientId !== undefined,
          });
    this.traceLimit = Math.max(0, options.traceLimit ?? 400);
    this.recordActions = options.recordActions ?? false;
    const ids =
      typeof options.nodes === 'number' || options.nodes === undefined
        ? Array.from({ length: (options.nodes as number | undefined) ?? 3 }, (_, i) => `n${i + 1}`)
        : [...options.nodes];
    if (ids.length === 0 || new Set(ids).size !== ids.length)
      throw new RangeError('node ids must be non-empty and unique');
    for (const id of ids) {
      const node = new SimNode(id, this);
      const d = this.timing.clockDrift;
      if (d > 0) node.clockRate = 1 + this.random.float(-d, d);
      this.nodes.set(id, node);
    }
    for (const node of this.nodes.values()) node.start();
    const voters = options.voters ?? ids;
    for (const v of voters) {
      const node = this.node(v);
      const r = node.input((raft) => raft.createCluster([...voters]));
      if (!r.ok) throw new Error(`createCluster on ${v} failed: ${r.error.message}`);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Host interface (used by SimNode)
  // -------------------------------------------------------------------------------------------------------------

  /** The current virtual time in ms. */
  get now(): number {
    return this.time;
  }

  /** Whether trace events are being kept or listened to. */
  get tracing(): boolean {
    return this.traceLimit > 0 || this.listeners.length > 0;
  }

  /** @internal Creates a machine (used by nodes on start and restart). */
  makeMachine(): Machine {
    return this.makeSm();
  }

  /**
   * @internal A node forwards a client request to the leader, or the leader answers: the network decides its fate.
   * A request or reply that is lost makes the requester's transport report the forward as lost (outcome unknown)
   * one heartbeat later, as a TCP transport does when the connection carrying it closes; one that cannot leave at
   * all (no route to the peer) is reported unsent at once.
   */
  sendForward(
    from: NodeId,
    to: NodeId,
    item: { request: ForwardRequest } | { reply: ForwardReply },
    conn = this.nodes.get(from)?.incarnation ?? 0,
  ): void {
    const requester = 'request' in item ? from : to;
    const id = 'request' in item ? item.request[0] : item.reply[0];
    const lost = () =>
      this.queue.push({
        time: this.time + this.timing.heartbeatMs,
        seq: 0,
        kind: 'lost',
        node: requester,
        ids: [id],
        conn,
      });
    if (!this.nodes.has(to) || !this.network.connected(from, to)) {
      if ('request' in item) this.nodes.get(from)?.runtime?.forwardsUnsent([item.request]);
      else lost();
      return;
    }
    const fate = this.network.fate(this.time);
    if (fate.length === 0) {
      lost();
      return;
    }
    // A forwarded request travels on a connection: it is delivered once, never duplicated, and its reply can only
    // reach the incarnation of the requester that opened the connection (`conn`): a restarted node never gets an
    // answer meant for its previous life (the ids of its forwards start over).
    this.queue.push({ time: this.time + fate[0], seq: 0, kind: 'forward', node: to, from, item, conn });
  }

  /** @internal A node sends a message: the network decides its fate. */
  send(message: Message<Command>): void {
    if (this.checker !== null) this.checkDurable(message);
    this.stats.sent++;
    if (!this.nodes.has(message.to) || !this.network.connected(message.from, message.to)) {
      this.stats.dropped++;
      return;
    }
    const fate = this.network.fate(this.time);
    if (fate.length === 0) {
      this.stats.dropped++;
      if (this.tracing) this.trace(message.from, 'drop', message as Message<unknown>);
      return;
    }
    if (fate.length > 1) this.stats.duplicated++;
    for (const latency of fate) {
      this.queue.push({ time: this.time + latency, seq: 0, kind: 'deliver', node: message.to, message });
    }
  }

  /**
   * What leaves a node must already be on its disk: the term it speaks in (a PreVote asks about a term it has not
   * taken yet), the vote it grants, the entries it acknowledges. These are the runtime's durability gates seen
   * from outside, so a runtime that sends first and writes later fails here at once, not only after the unlucky
   * crash that makes it matter.
   */
  private checkDurable(m: Message<Command>): void {
    const node = this.nodes.get(m.from);
    if (node === undefined) return;
    const disk = node.disk;
    const preVote = (m.type === 'RequestVote' || m.type === 'RequestVoteResponse') && m.preVote;
    const fail = (what: string) => {
      const v = new SafetyViolation('durability', `node ${m.from} sent ${describeMessage(m)} ${what}`, {
        node: m.from,
        term: m.term,
      });
      // Raised inside the node's runtime, which would take it for its own failure: surface it after the event.
      this.violated(v);
      throw v;
    };
    const hs = disk.hardState;
    if (!preVote && m.term > hs.term) fail(`while its disk holds term ${hs.term}`);
    // A message held back behind a write may leave after later writes (a newer term) are durable too: what it says
    // was durable when it was written, so only messages of the disk's current term are compared in detail.
    if (m.term !== hs.term) return;
    if (m.type === 'RequestVoteResponse' && m.granted && !m.preVote && hs.votedFor !== m.to) {
      fail(`while its disk holds vote ${String(hs.votedFor)} in term ${hs.term}`);
    }
    if (m.type === 'AppendEntriesResponse' && m.success && m.matchIndex > disk.lastIndex) {
      fail(`while its disk holds entries up to ${disk.lastIndex} only`);
    }
  }

  /** @internal A node's check failed inside its runtime: thrown when the current event is over. */
  violated(error: unknown): void {
    if (this.violation === null) this.violation = error;
  }

  /** @internal Schedules a node's timer or fsync. */
  schedule(event: NodeEvent): void {
    this.queue.push(event);
  }

  /** @internal Records a trace event. */
  trace(node: NodeId | null, kind: TraceKind, detail: string | Message<unknown>): void {
    if (!this.tracing) return;
    const event: TraceEvent = { time: this.time, node, kind, detail };
    if (this.traceLimit > 0) {
      if (this.traceRing.length < this.traceLimit) this.traceRing.push(event);
      else this.traceRing[this.traceNext] = event;
      this.traceNext = (this.traceNext + 1) % this.traceLimit;
    }
    for (const l of this.listeners) l(event);
  }

  /** @internal Records an action (only with `recordActions`). */
  recordAction(node: NodeId, action: Action<Command> | string): void {
    if (!this.recordActions) return;
    this.actionLog.push(
      `${this.time} ${node} ${typeof action === 'string' ? action : JSON.stringify(action, jsonBytes)}`,
    );
  }

  /** @internal A node answered a read. */
  readResult(node: NodeId, readId: ReadId, index: Index | null, error?: string): void {
    const r = this.reads.get(readId);
    if (r === undefined) return;
    r.answeredAt = this.time;
    if (index === null) {
      r.error = error ?? 'FAILED';
      if (this.tracing) this.trace(node, 'readFailed', `read #${String(readId)} failed: ${r.error}`);
      return;
    }
    r.index = index;
    const sim = this.nodes.get(node);
    if (sim !== undefined) {
      r.value = this.readValue(sim.sm, r.query);
      // Checked once the node's drain is over: the checker learns the commit index the node applied up to
      // only when it observes the node's state after the actions.
      this.readChecks.push({ read: r, node: sim, at: sim.appliedIndex });
    }
    if (this.tracing) {
      this.trace(node, 'readReady', `read #${String(readId)} ${String(r.query)} = ${String(r.value)} (index ${index})`);
    }
  }

  /**
   * @internal Runs the read checks deferred during a node's drain.
   *
   * The value a read returned must be the value in the committed log at the node's applied index, an index that
   * is at least the commit index observed when the read began (the checker verifies that bound) and at most the
   * highest commit index now: so the read saw every write committed before it began and nothing uncommitted.
   */
  afterDrain(node: NodeId): void {
    if (this.awaiting.has(node)) this.settleRequests(node);
    if (this.readChecks.length === 0) return;
    const checks = this.readChecks;
    this.readChecks = [];
    for (const c of checks) this.checkReadValue(c.read, c.node, c.at);
  }

  /**
   * Answers the node's accepted requests whose fate it now knows, the way a runtime would: by the term of the entry
   * it applies at the request's index, or `UNKNOWN` once its log no longer holds the entry (a newer leader cut it:
   * the node may never learn more, since the log need not grow back to that index).
   */
  private settleRequests(id: NodeId): void {
    const list = this.awaiting.get(id);
    const node = this.nodes.get(id);
    const raft = node?.raft;
    if (list === undefined || node === undefined || raft === null || raft === undefined) return;
    const keep: RequestOutcome[] = [];
    for (const r of list) {
      const index = r.index as Index;
      if (node.appliedIndex >= index) {
        const entry = node.appliedAt(index) ?? this.checker?.committedAt(index);
        this.answer(r, entry === undefined ? 'UNKNOWN' : entry.term === r.term ? 'committed' : 'lost');
      } else if (raft.lastLogIndex < index) {
        this.answer(r, 'UNKNOWN');
      } else {
        keep.push(r);
      }
    }
    if (keep.length === 0) this.awaiting.delete(id);
    else if (keep.length !== list.length) this.awaiting.set(id, keep);
  }

  private answer(r: RequestOutcome, outcome: string): void {
    r.answeredAt = this.time;
    r.outcome = outcome;
  }

  /** Records a request sent to `node` and, if the node accepted it at `index`, waits for its fate. */
  private track(kind: 'propose' | 'member', node: SimNode, accepted: { index: Index; term: Term } | string) {
    const id = this.nextRequestId++;
    if (typeof accepted === 'string') {
      this.requests.set(id, { id, kind, node: node.id, issuedAt: this.time, answeredAt: this.time, outcome: accepted });
      return;
    }
    const r: RequestOutcome = { id, kind, node: node.id, issuedAt: this.time, ...accepted };
    this.requests.set(id, r);
    const list = this.awaiting.get(node.id);
    if (list === undefined) this.awaiting.set(node.id, [r]);
    else list.push(r);
    this.settleRequests(node.id);
  }

  private checkReadValue(r: ReadOutcome, node: SimNode, at: Index): void {
    const checker = this.checker;
    if (checker === null) return;
    if (at > checker.committedLength) {
      throw new SafetyViolation(
        'linearizable-read',
        `node ${node.id} served read #${String(r.readId)} from state applied up to ${at}, beyond the committed log (${checker.committedLength})`,
        { node: node.id, index: at },
      );
    }
    const machine = this.makeSm();
    new ReferenceMachine(machine).restore(checker.referenceState(at));
    const want = this.readValue(machine, r.query);
    if (!Object.is(want, r.value)) {
      throw new SafetyViolation(
        'linearizable-read',
        `node ${node.id} read ${String(r.query)} = ${String(r.value)} at index ${at}, but the committed log has ${String(want)} there`,
        { node: node.id, index: at },
      );
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Running
  // -------------------------------------------------------------------------------------------------------------

  /** Subscribes to trace events (returns an unsubscribe function). Used by the demo and the playground. */
  onTrace(listener: (event: TraceEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** The most recent trace events, oldest first (at most `traceLimit`). */
  recentTrace(): TraceEvent[] {
    if (this.traceRing.length < this.traceLimit) return this.traceRing.slice();
    return [...this.traceRing.slice(this.traceNext), ...this.traceRing.slice(0, this.traceNext)];
  }

  /** Number of pending events (messages in flight, timers, fsyncs). */
  get pendingEvents(): number {
    return this.queue.size;
  }

  /**
   * Processes the next event (a message delivery, a timer or an fsync), advancing virtual time to it.
   *
   * @returns false when nothing is scheduled
   */
  step(): boolean {
    try {
      return this.stepInner();
    } finally {
      const v = this.violation;
      if (v !== null) {
        this.violation = null;
        // biome-ignore lint/correctness/noUnsafeFinally: the violation is what the caller must see.
        throw v;
      }
    }
  }

  private stepInner(): boolean {
    const e = this.queue.pop();
    if (e === undefined) return false;
    this.time = e.time;
    this.stats.events++;
    if (e.kind === 'deliver') {
      const to = this.nodes.get(e.node);
      const m = e.message;
      if (to === undefined || !to.up || !this.network.connected(m.from, m.to)) {
        this.stats.dropped++;
        return true;
      }
      this.stats.delivered++;
      let heard = this.heard.get(e.node);
      if (heard === undefined) {
        heard = new Map();
        this.heard.set(e.node, heard);
      }
      heard.set(m.from, { time: this.time, term: m.term });
      if (this.tracing) this.trace(e.node, 'deliver', m as Message<unknown>);
      to.runtime?.receive([m]);
    } else if (e.kind === 'forward') {
      const to = this.nodes.get(e.node);
      const runtime = to?.runtime;
      const isRequest = 'request' in e.item;
      const requester = isRequest ? e.from : e.node;
      // A reply for an earlier incarnation of its requester: that connection is gone.
      if (!isRequest && to?.incarnation !== e.conn) return true;
      if (runtime === undefined || runtime === null || !this.network.connected(e.from, e.node)) {
        const id = 'request' in e.item ? e.item.request[0] : e.item.reply[0];
        this.queue.push({
          time: this.time + this.timing.heartbeatMs,
          seq: 0,
          kind: 'lost',
          node: requester,
          ids: [id],
          conn: e.conn,
        });
        return true;
      }
      if (this.tracing) {
        const what =
          'request' in e.item
            ? `forwarded request #${e.item.request[0]} ${e.from}->${e.node} (${e.item.request[1].t}, hop ${e.item.request[3]})`
            : `reply to #${e.item.reply[0]} ${e.from}->${e.node} (${e.item.reply[1] === 1 ? 'ok' : `error ${e.item.reply[2]}`})`;
        this.trace(e.node, 'deliver', what);
      }
      if ('request' in e.item) {
        const { from, conn } = e;
        runtime.receiveForward(e.item.request, (reply) => this.sendForward(e.node, from, { reply }, conn));
      } else runtime.forwardReplies([e.item.reply]);
    } else if (e.kind === 'lost') {
      const node = this.nodes.get(e.node);
      if (node?.incarnation !== e.conn) return true;
      if (this.tracing) this.trace(e.node, 'drop', `forwarded request #${e.ids.join(',')} lost (outcome unknown)`);
      node.runtime?.forwardsLost(e.ids);
    } else {
      this.nodes.get(e.node)?.fire(e);
    }
    return true;
  }

  /**
   * Processes every event up to virtual time `now + ms` (then sets the clock there).
   *
   * @param maxEvents - safety bound on the number of events (default 1,000,000)
   * @returns the number of events processed
   */
  runFor(ms: number, maxEvents = MAX_EVENTS_PER_RUN): number {
    const until = this.time + ms;
    let n = 0;
    for (;;) {
      const next = this.queue.peek();
      if (next === undefined || next.time > until || n >= maxEvents) break;
      this.step();
      n++;
    }
    if (n < maxEvents) this.time = Math.max(this.time, until);
    return n;
  }

  /**
   * Runs until `done()` holds (checked after every event) or `maxMs` of virtual time pass.
   *
   * @returns whether `done()` held
   */
  runUntil(done: () => boolean, maxMs: number, maxEvents = MAX_EVENTS_PER_RUN): boolean {
    const until = this.time + maxMs;
    let n = 0;
    while (!done()) {
      const next = this.queue.peek();
      if (next === undefined || next.time > until || n >= maxEvents) {
        if (next === undefined || next.time > until) this.time = Math.max(this.time, until);
        return done();
      }
      this.step();
      n++;
    }
    return true;
  }

  /**
   * Whole-cluster checks (no leader holds two uncommitted config entries; each node's real log equals what its
   * actions imply). Cheap enough to call after every step; the random schedules do.
   */
  audit(): void {
    const checker = this.checker;
    if (checker === null) return;
    const views: { id: NodeId; view: RaftNode<Command> }[] = [];
    for (const n of this.nodes.values()) if (n.raft !== null) views.push({ id: n.id, view: n.raft });
    checker.audit(views);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Faults
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Crashes a node: it loses its volatile state and every log write not yet fsynced (with `keepPrefix`, a random
   * prefix of those writes survives, as after a torn batch). Messages it already sent stay in flight.
   *
   * @returns how many pending writes were lost
   */
  crash(id: NodeId, keepPrefix = false): number {
    const node = this.node(id);
    if (!node.up) return 0;
    const lost = node.crash(keepPrefix);
    // Its clients' connections break: whatever it had not answered, its client will never learn from it.
    for (const r of this.submitted) {
      if (r.node === id && r.outcome === undefined) {
        r.outcome = { ok: false, error: connectionLost(id) };
        r.answeredAt = this.time;
      }
    }
    // The clients of a crashed server lose their connections: every request it had not answered gets `DOWN`.
    for (const r of this.awaiting.get(id) ?? []) this.answer(r, 'DOWN');
    this.awaiting.delete(id);
    for (const r of this.reads.values()) {
      if (r.node === id && r.answeredAt === undefined) {
        r.error = 'DOWN';
        r.answeredAt = this.time;
      }
    }
    this.trace(id, 'crash', `crashed (${lost} unflushed write${lost === 1 ? '' : 's'} lost)`);
    this.recordAction(id, 'crash');
    return lost;
  }

  /** Restarts a crashed node from exactly what its disk holds. */
  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.up) return;
    this.trace(
      id,
      'restart',
      `restarting from disk: term ${node.disk.hardState.term}, log up to ${node.disk.lastIndex}`,
    );
    this.recordAction(id, 'restart');
    node.restart();
  }

  /** Splits the cluster into groups that cannot talk to each other (unlisted nodes form one more group). */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.network.partition(groups, this.ids());
    this.trace(null, 'network', `partition ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
  }

  /** Cuts every link to and from `id`. */
  isolate(id: NodeId): void {
    this.network.isolate(id, this.ids());
    this.trace(null, 'network', `isolate ${id}`);
  }

  /** Cuts the link from `from` to `to` only (an asymmetric partition). */
  block(from: NodeId, to: NodeId): void {
    this.network.block(from, to);
    this.trace(null, 'network', `block ${from} -> ${to}`);
  }

  /** Removes every partition and ends loss/duplication bursts. */
  heal(): void {
    this.network.heal();
    this.trace(null, 'network', 'heal');
  }

  // -------------------------------------------------------------------------------------------------------------
  // Clients
  // -------------------------------------------------------------------------------------------------------------

  /** The node ids, in creation order. */
  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  /** @returns the simulated node `id` (throws if unknown). */
  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new RangeError(`unknown node ${id}`);
    return n;
  }

  /**
   * The live node that believes it leads with the highest term, or null. It may be **deposed** without knowing it
   * yet (right after `heal()`, say, before a newer term reaches it): what is proposed there is then lost. To act on
   * a leader that still holds its quorum, use {@link Simulation.quorumLeader} or
   * {@link Simulation.runUntilStableLeader}.
   */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      const r = n.raft;
      if (
        r !== null &&
        r.role === 'leader' &&
        (best === null || r.currentTerm > (best.raft as RaftNode<Command>).currentTerm)
      ) {
        best = n;
      }
    }
    return best;
  }

  /**
   * A leader that currently holds a quorum, or null. A live node qualifies when it is leader and
   * - within the last `timing.electionMinMs` (one minimum election timeout) it received a message in its current
   *   term from enough voters to form, with itself, a quorum of its configuration (of both halves of a joint one):
   *   no other leader can have been elected in that time;
   * - no live member of its configuration (voter or learner) that it can exchange messages with (both directions
   *   open) has a higher term: such a node would depose it at the next exchange. Non-members are left out: a
   *   removed server that keeps campaigning in ever higher terms is ignored by the cluster, and a leader never
   *   sends it anything to reject.
   *
   * The highest-term qualifying node is returned. What a client proposes there commits unless a fault strikes
   * afterwards. Checked from the simulator's global view; nothing runs.
   */
  quorumLeader(): SimNode | null {
    const since = this.time - this.timing.electionMinMs;
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      const r = n.raft;
      if (r === null || r.role !== 'leader' || r.config === null) continue;
      const term = r.currentTerm;
      if (best !== null && term <= (best.raft as RaftNode<Command>).currentTerm) continue;
      const heard = this.heard.get(n.id);
      const fresh = (id: NodeId) => {
        if (id === n.id) return true;
        const h = heard?.get(id);
        return h !== undefined && h.term === term && h.time >= since;
      };
      if (!hasQuorum(r.config, fresh)) continue;
      const inConfig = members(r.config);
      let newer = false;
      for (const o of this.nodes.values()) {
        const or = o.raft;
        if (or === null || o === n || or.currentTerm <= term || !inConfig.includes(o.id)) continue;
        if (this.network.connected(n.id, o.id) && this.network.connected(o.id, n.id)) newer = true;
      }
      if (!newer) best = n;
    }
    return best;
  }

  /**
   * Runs until a {@link Simulation.quorumLeader} has committed an entry of its own term (its no-op: it then knows
   * the commit index, serves reads and accepts membership changes), for at most `maxMs` of virtual time.
   *
   * @returns that leader, or null if none emerged in time
   */
  runUntilStableLeader(maxMs = 5_000): SimNode | null {
    let found: SimNode | null = null;
    this.runUntil(() => {
      const l = this.quorumLeader();
      found = l !== null && this.committedInOwnTerm(l) ? l : null;
      return found !== null;
    }, maxMs);
    return found;
  }

  /** Whether leader `n` has applied an entry of its current term (it applies what it commits at once). */
  private committedInOwnTerm(n: SimNode): boolean {
    const r = n.raft;
    if (r === null) return false;
    const applied = n.appliedIndex;
    const snap = n.disk.snapshot?.meta;
    const term = n.appliedAt(applied)?.term ?? (snap !== undefined && snap.index === applied ? snap.term : -1);
    return term === r.currentTerm;
  }

  /**
   * Runs `fn` as an input on node `id` (performing the resulting actions). Use it for any `RaftNode` method the
   * simulation does not wrap, e.g. `sim.input('n1', (r) => r.addServer('n4'))`.
   */
  input<T>(id: NodeId, fn: (raft: RaftNode<Command>) => T): T {
    return this.node(id).input(fn);
  }

  /**
   * Proposes `command` on node `id` (default: the {@link Simulation.quorumLeader}, so that a deposed leader is not
   * picked). The checker records it as proposed first; its answer is tracked in {@link Simulation.requests}.
   *
   * @returns the core's answer (refused when the node is down, not the leader, ...)
   */
  propose(command: C, id?: NodeId): SimResult<{ index: Index; term: number }> {
    const target = id === undefined ? this.quorumLeader() : this.node(id);
    if (target === null || !target.up) return refused('NOT_LEADER', 'no live leader');
    // Commands travel as JSON text, exactly as the runtime puts them in the log.
    const cmd: Command = { input: JSON.stringify(command) };
    this.checker?.proposed(cmd);
    const r = target.input((raft) => raft.propose(cmd));
    this.track('propose', target, r.ok ? r.value : r.error.code);
    if (this.tracing) {
      this.trace(
        target.id,
        'propose',
        r.ok ? `proposed ${describe(command)} at ${r.value.index}` : `propose refused: ${r.error.code}`,
      );
    }
    this.recordAction(target.id, `propose ${r.ok ? r.value.index : r.error.code}`);
    return r;
  }

  /**
   * Issues a linearizable read of `query` (for the KV machine: a key) on node `id`. The outcome appears in
   * {@link Simulation.reads} under the returned id once the node answers.
   */
  read(id: NodeId, query: unknown): ReadId {
    const node = this.node(id);
    const readId = this.nextReadId++;
    this.reads.set(readId, { node: id, readId, query, issuedAt: this.time });
    if (!node.up) {
      const r = this.reads.get(readId) as ReadOutcome;
      r.error = 'DOWN';
      r.answeredAt = this.time;
      return readId;
    }
    this.checker?.readIssued(id, readId);
    if (this.tracing) this.trace(id, 'read', `read #${readId} of ${String(query)}`);
    this.recordAction(id, `read ${readId}`);
    node.input((raft) => raft.read(readId));
    return readId;
  }

  /**
   * Runs a membership change on node `id` (`fn` calls `addServer`, `addLearner`, `promote`, `removeServer` or
   * `changeConfig`) and tracks its answer in {@link Simulation.requests} like a proposal: the configuration entry at
   * the returned index must be applied (or lost) on that node.
   *
   * @returns what `fn` returned
   */
  changeMembership(id: NodeId, fn: (raft: RaftNode<Command>) => SimResult<unknown>): SimResult<unknown> {
    const node = this.node(id);
    if (!node.up) return refused('DOWN', `node ${id} is down`);
    const r = node.input(fn);
    const term = node.raft?.currentTerm ?? 0;
    const index = r.ok ? (r.value as { index?: unknown } | null)?.index : undefined;
    this.track('member', node, r.ok ? (typeof index === 'number' ? { index, term } : 'UNKNOWN') : r.error.code);
    return r;
  }

  /**
   * Every read, proposal and membership change not answered yet, oldest first. Once the faults stop each must be
   * answered within a bound (the random schedules check it; see docs/simulation.md, "Liveness").
   */
  unanswered(): UnansweredRequest[] {
    const out: UnansweredRequest[] = [];
    for (const r of this.reads.values()) {
      if (r.answeredAt === undefined) out.push({ kind: 'read', node: r.node, id: r.readId, issuedAt: r.issuedAt });
    }
    for (const list of this.awaiting.values()) {
      for (const r of list) out.push({ kind: r.kind, node: r.node, id: r.id, issuedAt: r.issuedAt, index: r.index });
    }
    this.submitted.forEach((r, i) => {
      if (r.outcome === undefined) out.push({ kind: 'submit', node: r.node, id: i, issuedAt: r.issuedAt });
    });
    return out.sort((a, b) => a.issuedAt - b.issuedAt);
  }

  /** Takes a snapshot of node `id`'s state machine at its applied index and compacts its log. */
  takeSnapshot(id: NodeId): boolean {
    const node = this.node(id);
    if (!node.up) return false;
    this.recordAction(id, 'snapshot');
    return node.takeSnapshot();
  }

  /**
   * Hands `request` to node `id`'s runtime, as a client of the TCP server would (a command is forwarded to the
   * leader, a query runs ReadIndex, ...). The outcome appears in {@link Simulation.submitted} once the runtime answers.
   */
  submit(id: NodeId, request: RuntimeRequest): SubmittedRequest {
    const node = this.node(id);
    const r: SubmittedRequest = { node: id, request, issuedAt: this.time };
    this.submitted.push(r);
    const runtime = node.runtime;
    const done = (o: ApplyOutcome) => {
      if (r.outcome !== undefined) return;
      r.outcome = o;
      r.answeredAt = this.time;
      if (this.tracing) {
        const what = o.ok ? 'ok' : `error ${o.error.code}: ${o.error.message}`;
        this.trace(id, 'note', `answered ${request.type} #${this.submitted.indexOf(r)}: ${what}`);
      }
      if (!o.ok && request.type === 'command' && saysNotApplied(o.error)) {
        this.notApplied.push(r);
        this.checkNotApplied(r);
      }
    };
    if (this.tracing)
      this.trace(
        id,
        'note',
        `submitted ${request.type} #${this.submitted.length - 1} ${JSON.stringify(request).slice(0, 120)}`,
      );
    if (runtime === null) done({ ok: false, error: downError(id) });
    else {
      if (request.type === 'command') this.checker?.proposed(commandOf(request));
      runtime.submit(request, done);
    }
    return r;
  }

  /**
   * A client told "certainly not applied" must never find its command applied: checked when the answer comes, and
   * again by {@link Simulation.checkClientAnswers} once the run is over (the entry may commit later).
   */
  private checkNotApplied(r: SubmittedRequest): void {
    const checker = this.checker;
    if (checker === null || r.request.type !== 'command') return;
    if (checker.isCommitted(commandOf(r.request))) {
      const v = new SafetyViolation(
        'client-answer',
        `node ${r.node} answered ${r.outcome?.ok === false ? r.outcome.error.message : '?'} for ${JSON.stringify(r.request.input)} (client ${String(r.request.clientId)} seq ${String(r.request.seq)}), which is in the committed log`,
        { node: r.node },
      );
      this.violated(v);
      throw v;
    }
  }

  /** Re-checks every "not applied" answer against the committed log (call at the end of a run). */
  checkClientAnswers(): void {
    for (const r of this.notApplied) this.checkNotApplied(r);
  }

  /** A one-line description of every node (role, term, log, commit), for logs and failure reports. */
  describe(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      const r = n.raft;
      if (r === null) parts.push(`${n.id}:down(disk ${n.disk.hardState.term}/${n.disk.lastIndex})`);
      else {
        const c = r.config;
        const cfg = c === null ? '' : ` ${configKey(c)}`;
        parts.push(`${n.id}:${r.role[0]}${r.currentTerm} log ${r.lastLogIndex} commit ${r.commitIndex}${cfg}`);
      }
    }
    return `t=${this.time} ${parts.join(' | ')}`;
  }
}

/** The checker's identity of a command: its JSON text (with its session, when it has one). */
function commandKey(c: Command): string {
  return c.clientId === undefined ? c.input : `${c.clientId}#${c.seq}:${c.input}`;
}

/** The log payload a command request becomes (as the runtime builds it). */
function commandOf(r: Extract<RuntimeRequest, { type: 'command' }>): Command {
  const input = JSON.stringify(r.input);
  return r.clientId !== undefined && r.seq !== undefined ? { input, clientId: r.clientId, seq: r.seq } : { input };
}

function connectionLost(id: NodeId): import('@raft/runtime').RpcError {
  return new RpcErrorClass(ErrorCodes.TIMEOUT, `node ${id} crashed before answering: the outcome is unknown`, {
    notApplied: false,
  });
}

function downError(id: NodeId): import('@raft/runtime').RpcError {
  return new RpcErrorClass(ErrorCodes.SHUTTING_DOWN, `node ${id} is down`, { notApplied: true });
}

function refused<T>(code: string, message: string): SimResult<T> {
  return { ok: false, error: { code, message } };
}

function describe(command: unknown): string {
  const c = command as Partial<KvCommand> | null;
  if (c !== null && typeof c === 'object' && typeof c.key === 'string') return `${c.key}=${String(c.value)}`;
  return JSON.stringify(command) ?? String(command);
}

/** JSON replacer that prints byte arrays compactly (snapshot chunks). */
function jsonBytes(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? `bytes:${Array.from(value).join(',')}` : value;
}

/** Formats a trace event as one readable line. */
export function formatTraceEvent(e: TraceEvent): string {
  const who = e.node === null ? '*' : e.node;
  const detail = typeof e.detail === 'string' ? e.detail : describeMessage(e.detail);
  const time = Number.isInteger(e.time) ? String(e.time) : e.time.toFixed(2);
  return `${time.padStart(6)}ms ${who.padEnd(4)} ${e.kind.padEnd(9)} ${detail}`;
}

/** A short description of a message. */
export function describeMessage(m: Message<unknown>): string {
  const head = `${m.type} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case 'RequestVote':
      return `${head}${m.preVote ? ' pre' : ''} last ${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'RequestVoteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'denied'}`;
    case 'AppendEntries':
      return `${head} prev ${m.prevLogIndex}/${m.prevLogTerm} +${m.entries.length} commit ${m.leaderCommit}`;
    case 'AppendEntriesResponse':
      return `${head} ${m.success ? 'ok' : 'reject'} match ${m.matchIndex}`;
    case 'InstallSnapshot':
      return `${head} snap ${m.snapshot.index}/${m.snapshot.term} @${m.offset}+${m.data.length}${m.done ? ' done' : ''}`;
    case 'InstallSnapshotResponse':
      return `${head} snap ${m.snapshotIndex} next ${m.nextOffset}`;
    case 'ReadIndexRequest':
      return `${head} reads ${m.readIds.length}`;
    case 'ReadIndexResponse':
      return `${head} index ${m.readIndex}`;
    default:
      return head;
  }
}
