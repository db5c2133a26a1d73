/**
 * The playground's simulated cluster: real `@raft/core` nodes driven by a deterministic, seeded event loop over a
 * virtual clock, with a network that can lose, cut and drop messages, and nodes that can crash and restart.
 *
 * Why our own loop rather than `@raft/sim`'s: the playground needs things a property-test simulator does not
 * expose: a message-by-message view of what is in flight (to animate it and to let the user drop one), the
 * deadline of every node's timer (to draw it), single-event stepping, and user actions injected between events
 * and recorded so that a session can be replayed. This file has no DOM access, so it is unit tested in Node.
 *
 * Every action of every node is also fed to `@raft/sim`'s {@link SafetyChecker} (election safety, log matching,
 * leader completeness, state-machine safety, ...), so the page can say so if anything the user does ever breaks
 * Raft's guarantees; a violation stops the simulation.
 *
 * Determinism: every random choice (election timeouts, latencies, losses) is drawn from one seeded {@link Prng} in
 * event order, events at the same virtual time run in scheduling order, and each user action is recorded with the
 * virtual time and the number of events processed before it. Replaying the same seed with the same recorded
 * actions therefore reproduces the run exactly.
 */
import {
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  RaftNode,
  type RaftOptions,
  type Role,
} from '@raft/core';
import { SafetyChecker, SafetyViolation } from '@raft/sim';
import { Prng } from './prng.js';

/** Timing and size of a playground cluster. Every duration is in virtual milliseconds. */
export interface PlaygroundOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Number of nodes (clamped to 3..7). */
  nodes: number;
  /** Leader heartbeat interval. Default 100. */
  heartbeatMs?: number;
  /** Heartbeats per minimum election timeout (the core's `electionTicks`). Default 5. */
  electionTicks?: number;
  /** Smallest one-way message latency. Default 20. */
  minLatencyMs?: number;
  /** Largest one-way message latency. Default 60. */
  maxLatencyMs?: number;
}

/** Something the user did to the cluster. Every one is recorded for replay. */
export type UserAction =
  | { readonly type: 'crash'; readonly node: NodeId }
  | { readonly type: 'restart'; readonly node: NodeId }
  /** Cut every link of the node (or heal them if they are all cut already). */
  | { readonly type: 'isolate'; readonly node: NodeId }
  /** Cut the link between two nodes, or heal it if it is cut. */
  | { readonly type: 'toggleLink'; readonly a: NodeId; readonly b: NodeId }
  /** Heal every link. */
  | { readonly type: 'heal' }
  /** Lose one message that is in flight. */
  | { readonly type: 'drop'; readonly flightId: number }
  /** Probability (0..1) that any message sent from now on is lost. */
  | { readonly type: 'setLossRate'; readonly rate: number }
  /** Propose a command to the current leader. */
  | { readonly type: 'propose'; readonly command: string }
  /** Ask the current leader to hand leadership to `node`. */
  | { readonly type: 'transfer'; readonly node: NodeId };

/** A user action with the moment it happened: `at` virtual ms, after `step` processed events. */
export interface RecordedAction {
  readonly at: number;
  readonly step: number;
  readonly action: UserAction;
}

/** What became of a user action. */
export type ActionOutcome =
  | { readonly ok: true; readonly detail: string }
  | { readonly ok: false; readonly error: string };

/** A message on the wire. */
export interface Flight {
  readonly id: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly sentAt: number;
  readonly deliverAt: number;
  readonly message: Message<string>;
  /** Why it will not arrive, once it is known that it will not. */
  dropped: null | 'loss' | 'user' | 'partition' | 'crashed';
}

/** The state of a node's single timer. */
export interface TimerView {
  readonly kind: 'election' | 'heartbeat';
  readonly setAt: number;
  readonly deadline: number;
}

/** What the UI shows of one node. */
export interface NodeView {
  readonly id: NodeId;
  readonly up: boolean;
  /** True when every link to the other nodes is cut. */
  readonly isolated: boolean;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly lastLogIndex: number;
  /** The log (from the durable copy when the node is down). */
  readonly log: readonly Entry<string>[];
  readonly timer: TimerView | null;
  /** Commands the node's state machine applied, in order (lost on a crash, re-applied after restart). */
  readonly applied: readonly string[];
  /** Leader only: each follower's match index. */
  readonly matchIndex: Readonly<Record<NodeId, number>>;
}

/** A line of the event log shown under the cluster. */
export interface LogLine {
  readonly at: number;
  readonly text: string;
}

/** Thrown when a user action names something that does not exist (a programming error in the caller). */
export class PlaygroundError extends Error {
  constructor(
    readonly code: 'NO_SUCH_NODE' | 'BAD_ACTION',
    message: string,
  ) {
    super(message);
    this.name = 'PlaygroundError';
  }
}

interface Disk {
  hardState: HardState;
  entries: Entry<string>[];
}

interface SimNode {
  readonly id: NodeId;
  raft: RaftNode<string> | null;
  readonly disk: Disk;
  timer: TimerView | null;
  timerGen: number;
  applied: string[];
}

type SimEvent =
  | { time: number; seq: number; kind: 'timer'; node: NodeId; gen: number }
  | { time: number; seq: number; kind: 'deliver'; flightId: number };

/** A binary min-heap of events ordered by (time, seq), so equal-time events run in scheduling order. */
class EventQueue {
  private heap: SimEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  push(e: SimEvent): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

const MAX_LOG_LINES = 300;

/** A simulated cluster of `@raft/core` nodes on a virtual clock. */
export class Playground {
  /** Virtual time in ms. */
  now = 0;
  /** Events processed so far. */
  steps = 0;
  /** The node ids, `n1`..`nN`. */
  readonly ids: readonly NodeId[];
  /** Every user action so far (replayed ones included), in order. */
  readonly recorded: RecordedAction[] = [];
  /** Recent notable events (role changes, crashes, commits), newest last. */
  readonly lines: LogLine[] = [];
  /** Probability that a message is lost in transit. */
  lossRate = 0;
  /** The first safety violation the checker found (the simulation stops there), or null. */
  violation: SafetyViolation | null = null;

  private readonly opts: Required<PlaygroundOptions>;
  private readonly rng: Prng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly queue = new EventQueue();
  private readonly flights = new Map<number, Flight>();
  private readonly cut = new Set<string>();
  private seq = 0;
  private nextFlightId = 1;
  private pendingReplay: RecordedAction[];
  // Users may propose the same text twice, so one command applied at two indexes is legitimate here.
  private readonly checker = new SafetyChecker<string>({ commandKey: (c) => c, uniqueCommands: false });

  /**
   * @param options - seed, size and timing.
   * @param replay - actions recorded in an earlier session with the same options; they are applied again at the
   *   same virtual times as time advances.
   */
  constructor(options: PlaygroundOptions, replay: readonly RecordedAction[] = []) {
    const n = Math.min(7, Math.max(3, Math.floor(options.nodes) || 3));
    this.opts = {
      seed: options.seed >>> 0,
      nodes: n,
      heartbeatMs: options.heartbeatMs ?? 100,
      electionTicks: options.electionTicks ?? 5,
      minLatencyMs: options.minLatencyMs ?? 20,
      maxLatencyMs: options.maxLatencyMs ?? 60,
    };
    this.rng = new Prng(this.opts.seed);
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.pendingReplay = [...replay].sort((a, b) => a.step - b.step || a.at - b.at);
    for (const id of this.ids) {
      const raft = RaftNode.start<string>(id, this.raftOptions());
      const node: SimNode = {
        id,
        raft,
        disk: { hardState: { term: 0, votedFor: null }, entries: [] },
        timer: null,
        timerGen: 0,
        applied: [],
      };
      this.nodes.set(id, node);
      this.checker.nodeStarted(id, {});
      // Every initial voter bootstraps with the same configuration (see docs/core.md, createCluster).
      this.input(node, (r) => r.createCluster(this.ids));
    }
  }

  /** The options in force (after defaults and clamping). */
  get options(): Readonly<Required<PlaygroundOptions>> {
    return this.opts;
  }

  private raftOptions(): RaftOptions {
    return { electionTicks: this.opts.electionTicks };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Time
  // -------------------------------------------------------------------------------------------------------------

  /** Runs every event (and replayed action) up to virtual time `t`, then sets the clock to `t`. */
  advanceTo(t: number): void {
    if (this.violation !== null) return;
    for (;;) {
      if (this.violation !== null) return;
      if (this.runDueReplay(t)) continue;
      const ev = this.queue.peek();
      if (ev === undefined || ev.time > t) break;
      this.processNext();
    }
    if (t > this.now) this.now = t;
  }

  /** Runs exactly one event (jumping the clock to it). Returns false when nothing is scheduled. */
  step(): boolean {
    if (this.violation !== null) return false;
    while (this.runDueReplay(Number.POSITIVE_INFINITY)) {
      // replayed actions recorded at this point run before the next event, as they did originally
    }
    if (this.queue.size === 0) return false;
    this.processNext();
    return true;
  }

  /** The virtual time of the next event, or null. */
  nextEventTime(): number | null {
    return this.queue.peek()?.time ?? null;
  }

  /** Replayed actions not yet applied. */
  get pendingReplayCount(): number {
    return this.pendingReplay.length;
  }

  private runDueReplay(t: number): boolean {
    const r = this.pendingReplay[0];
    if (r === undefined || r.step !== this.steps || r.at > t) return false;
    this.pendingReplay.shift();
    if (r.at > this.now) this.now = r.at;
    this.apply(r.action);
    return true;
  }

  private processNext(): void {
    const ev = this.queue.pop();
    if (ev === undefined) return;
    this.now = ev.time;
    this.steps++;
    if (ev.kind === 'timer') {
      const node = this.nodes.get(ev.node);
      if (node === undefined || node.raft === null || node.timerGen !== ev.gen) return; // stale or crashed
      node.timer = null;
      this.input(node, (r) => r.handleTimeout());
      return;
    }
    const f = this.flights.get(ev.flightId);
    if (f === undefined) return;
    this.flights.delete(f.id);
    if (f.dropped !== null) return;
    const target = this.nodes.get(f.to);
    if (target === undefined || target.raft === null) {
      f.dropped = 'crashed';
      return;
    }
    if (this.isCut(f.from, f.to)) {
      f.dropped = 'partition';
      return;
    }
    this.input(target, (r) => r.handleMessage(f.message));
  }

  private schedule(
    e: { time: number; kind: 'timer'; node: NodeId; gen: number } | { time: number; kind: 'deliver'; flightId: number },
  ): void {
    this.queue.push({ ...e, seq: this.seq++ } as SimEvent);
  }

  // -------------------------------------------------------------------------------------------------------------
  // The runtime: carry out a node's actions
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Feeds one input to a live node and performs its actions. A safety violation found meanwhile is kept in
   * {@link Playground.violation} (and stops the run) rather than thrown, so the page can show it.
   */
  private input<T>(node: SimNode, fn: (raft: RaftNode<string>) => T): T | undefined {
    const raft = node.raft;
    if (raft === null) return undefined;
    // The checker's leader-append-only rule needs to know whether the node led in the same term before the input.
    const leaderBefore = raft.role === 'leader' ? raft.currentTerm : -1;
    try {
      const out = fn(raft);
      this.drain(node, raft, leaderBefore);
      return out;
    } catch (e) {
      if (!(e instanceof SafetyViolation)) throw e;
      this.violation = e;
      this.log(`SAFETY VIOLATION: ${e.message}`);
      return undefined;
    }
  }

  private drain(node: SimNode, raft: RaftNode<string>, leaderBefore: number): void {
    const checker = this.checker;
    // persisted() queues more actions (acks, commits), so drain until the node is quiet.
    for (let round = 0; round < 1000; round++) {
      const actions = raft.takeActions();
      if (actions.length === 0) break;
      const isLeader = raft.role === 'leader';
      const steady = leaderBefore >= 0 && isLeader && raft.currentTerm === leaderBefore ? leaderBefore : -1;
      const leaderCommit = isLeader ? raft.commitIndex : -1;
      for (const a of actions) {
        switch (a.type) {
          case 'persistHardState':
            checker.hardStatePersisted(node.id, a.hardState);
            // The virtual disk is synchronous: durable before any later send leaves (durability rule 2).
            node.disk.hardState = a.hardState;
            break;
          case 'appendEntries': {
            const first = a.entries[0];
            if (first === undefined) break;
            checker.logAppended(node.id, a.entries, steady, leaderCommit);
            node.disk.entries.length = first.index - 1; // no compaction here: entry i is at position i - 1
            node.disk.entries.push(...a.entries);
            const last = a.entries[a.entries.length - 1];
            raft.persisted(last.index, last.term);
            break;
          }
          case 'send':
            this.send(a.message);
            break;
          case 'setTimer': {
            const h = this.opts.heartbeatMs;
            const min = this.opts.electionTicks * h;
            const ms = a.kind === 'heartbeat' ? h : min + Math.floor(this.rng.next() * min);
            node.timerGen++;
            node.timer = { kind: a.kind, setAt: this.now, deadline: this.now + ms };
            this.schedule({ time: this.now + ms, kind: 'timer', node: node.id, gen: node.timerGen });
            break;
          }
          case 'apply':
            if (a.entries.length > 0) checker.applied(node.id, a.entries);
            for (const e of a.entries) {
              if (e.type === 'command') node.applied.push(e.command);
            }
            break;
          case 'stateChanged':
            checker.stateChanged(node.id, a.role, a.term);
            if (a.role === 'leader') this.log(`${node.id} became leader in term ${a.term}`);
            else if (a.role === 'candidate') this.log(`${node.id} is a candidate in term ${a.term}`);
            break;
          default:
            // Reads and snapshot transfer are not used: the playground never compacts its logs.
            break;
        }
      }
    }
    checker.observe(node.id, raft);
  }

  private send(message: Message<string>): void {
    const lat =
      this.opts.minLatencyMs + Math.floor(this.rng.next() * (this.opts.maxLatencyMs - this.opts.minLatencyMs + 1));
    // Draw the loss coin for every message (even when lossRate is 0) so that changing the rate later does not
    // shift every other random choice of the run.
    const coin = this.rng.next();
    const f: Flight = {
      id: this.nextFlightId++,
      from: message.from,
      to: message.to,
      sentAt: this.now,
      deliverAt: this.now + lat,
      message,
      dropped: coin < this.lossRate ? 'loss' : this.isCut(message.from, message.to) ? 'partition' : null,
    };
    this.flights.set(f.id, f);
    this.schedule({ time: f.deliverAt, kind: 'deliver', flightId: f.id });
  }

  private isCut(a: NodeId, b: NodeId): boolean {
    return this.cut.has(linkKey(a, b));
  }

  private log(text: string): void {
    this.lines.push({ at: this.now, text });
    if (this.lines.length > MAX_LOG_LINES) this.lines.splice(0, this.lines.length - MAX_LOG_LINES);
  }

  // -------------------------------------------------------------------------------------------------------------
  // User actions
  // -------------------------------------------------------------------------------------------------------------

  /** Applies a user action now and records it for replay. */
  perform(action: UserAction): ActionOutcome {
    return this.apply(action);
  }

  private apply(action: UserAction): ActionOutcome {
    this.recorded.push({ at: this.now, step: this.steps, action });
    const out = this.execute(action);
    this.log(`you: ${describeAction(action)} → ${out.ok ? out.detail : `refused: ${out.error}`}`);
    return out;
  }

  private execute(action: UserAction): ActionOutcome {
    switch (action.type) {
      case 'crash': {
        const n = this.node(action.node);
        if (n.raft === null) return { ok: false, error: `${n.id} is already down` };
        n.raft = null;
        n.timer = null;
        n.timerGen++; // its pending timer event becomes stale
        n.applied = []; // the state machine is in memory; it is rebuilt from the log after a restart
        return { ok: true, detail: `${n.id} crashed` };
      }
      case 'restart': {
        const n = this.node(action.node);
        if (n.raft !== null) return { ok: false, error: `${n.id} is already up` };
        const persisted = { hardState: n.disk.hardState, snapshot: null, entries: n.disk.entries.slice() };
        n.raft = RaftNode.restart<string>(n.id, persisted, this.raftOptions());
        this.checker.nodeStarted(n.id, persisted);
        this.input(n, () => undefined);
        return { ok: true, detail: `${n.id} restarted in term ${n.disk.hardState.term}` };
      }
      case 'isolate': {
        const n = this.node(action.node);
        const others = this.ids.filter((x) => x !== n.id);
        const isolated = others.every((o) => this.isCut(n.id, o));
        for (const o of others) {
          if (isolated) this.cut.delete(linkKey(n.id, o));
          else this.cut.add(linkKey(n.id, o));
        }
        return { ok: true, detail: isolated ? `${n.id} reconnected` : `${n.id} isolated` };
      }
      case 'toggleLink': {
        this.node(action.a);
        this.node(action.b);
        if (action.a === action.b) return { ok: false, error: 'a link needs two different nodes' };
        const k = linkKey(action.a, action.b);
        if (this.cut.has(k)) {
          this.cut.delete(k);
          return { ok: true, detail: `link ${action.a}–${action.b} healed` };
        }
        this.cut.add(k);
        return { ok: true, detail: `link ${action.a}–${action.b} cut` };
      }
      case 'heal':
        this.cut.clear();
        return { ok: true, detail: 'network healed' };
      case 'drop': {
        const f = this.flights.get(action.flightId);
        if (f === undefined || f.dropped !== null)
          return { ok: false, error: `message #${action.flightId} is not in flight` };
        f.dropped = 'user';
        return { ok: true, detail: `${f.message.type} ${f.from}→${f.to} dropped` };
      }
      case 'setLossRate': {
        const r = Number.isFinite(action.rate) ? Math.min(1, Math.max(0, action.rate)) : 0;
        this.lossRate = r;
        return { ok: true, detail: `message loss ${Math.round(r * 100)}%` };
      }
      case 'propose': {
        const leader = this.leader();
        if (leader === null || leader.raft === null) return { ok: false, error: 'no leader right now' };
        this.checker.proposed(action.command);
        const r = this.input(leader, (raft) => raft.propose(action.command));
        if (r === undefined) return { ok: false, error: 'safety violation' };
        if (!r.ok) return { ok: false, error: `${leader.id}: ${r.error.code}` };
        return { ok: true, detail: `${leader.id} appended it at index ${r.value.index} (term ${r.value.term})` };
      }
      case 'transfer': {
        this.node(action.node);
        const leader = this.leader();
        if (leader === null || leader.raft === null) return { ok: false, error: 'no leader right now' };
        const r = this.input(leader, (raft) => raft.transferLeadership(action.node));
        if (r === undefined) return { ok: false, error: 'safety violation' };
        if (!r.ok) return { ok: false, error: `${leader.id}: ${r.error.code}` };
        return { ok: true, detail: `${leader.id} is handing leadership to ${action.node}` };
      }
      default:
        throw new PlaygroundError('BAD_ACTION', `unknown action ${JSON.stringify(action)}`);
    }
  }

  private node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new PlaygroundError('NO_SUCH_NODE', `no node ${JSON.stringify(id)}`);
    return n;
  }

  /** The live leader with the highest term, if any. */
  private leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      if (n.raft?.role !== 'leader') continue;
      if (best === null || (best.raft?.currentTerm ?? 0) < n.raft.currentTerm) best = n;
    }
    return best;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Views
  // -------------------------------------------------------------------------------------------------------------

  /** The id of the live leader with the highest term, or null. */
  leaderId(): NodeId | null {
    return this.leader()?.id ?? null;
  }

  /** Whether the link between two nodes is cut. */
  linkCut(a: NodeId, b: NodeId): boolean {
    return this.isCut(a, b);
  }

  /** Messages on the wire (including ones already known to be lost, until their delivery time). */
  inFlight(): Flight[] {
    return [...this.flights.values()];
  }

  /** A snapshot of every node for the UI. */
  view(): NodeView[] {
    return this.ids.map((id) => {
      const n = this.node(id);
      const r = n.raft;
      const others = this.ids.filter((x) => x !== id);
      const isolated = others.every((o) => this.isCut(id, o));
      if (r === null) {
        const last = n.disk.entries.length;
        return {
          id,
          up: false,
          isolated,
          role: 'follower',
          term: n.disk.hardState.term,
          votedFor: n.disk.hardState.votedFor,
          leaderId: null,
          commitIndex: 0,
          lastApplied: 0,
          lastLogIndex: last,
          log: n.disk.entries,
          timer: null,
          applied: [],
          matchIndex: {},
        };
      }
      const matchIndex: Record<NodeId, number> = {};
      for (const [peer, p] of r.progress()) if (peer !== id) matchIndex[peer] = p.matchIndex;
      return {
        id,
        up: true,
        isolated,
        role: r.role,
        term: r.currentTerm,
        votedFor: r.votedFor,
        leaderId: r.leaderId,
        commitIndex: r.commitIndex,
        lastApplied: r.lastApplied,
        lastLogIndex: r.lastLogIndex,
        log: r.entries(1),
        timer: n.timer,
        applied: n.applied,
        matchIndex,
      };
    });
  }

  /**
   * A compact description of the whole simulated state (clock, nodes, logs, wire): equal fingerprints mean equal
   * runs, which is what the replay test compares.
   */
  fingerprint(): string {
    const nodes = this.view().map((v) => [
      v.id,
      v.up,
      v.role,
      v.term,
      v.votedFor,
      v.leaderId,
      v.commitIndex,
      v.log.map((e) => `${e.index}:${e.term}:${e.type === 'command' ? e.command : e.type}`).join(','),
      v.timer ? `${v.timer.kind}@${v.timer.deadline}` : '-',
      v.applied.join(','),
    ]);
    const wire = this.inFlight().map((f) => `${f.id}:${f.message.type}:${f.from}>${f.to}@${f.deliverAt}:${f.dropped}`);
    return JSON.stringify({ now: this.now, steps: this.steps, nodes, wire, cut: [...this.cut].sort() });
  }
}

function linkKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** A short human description of a user action, for the event log. */
export function describeAction(a: UserAction): string {
  switch (a.type) {
    case 'crash':
    case 'restart':
    case 'isolate':
      return `${a.type} ${a.node}`;
    case 'toggleLink':
      return `toggle link ${a.a}–${a.b}`;
    case 'heal':
      return 'heal network';
    case 'drop':
      return `drop message #${a.flightId}`;
    case 'setLossRate':
      return `set loss ${Math.round(a.rate * 100)}%`;
    case 'propose':
      return `propose ${JSON.stringify(a.command)}`;
    case 'transfer':
      return `transfer leadership to ${a.node}`;
  }
}

/** Encodes recorded actions for a URL (`&replay=`): compact JSON, URI-safe. */
export function encodeReplay(actions: readonly RecordedAction[]): string {
  return encodeURIComponent(JSON.stringify(actions.map((r) => [r.at, r.step, r.action])));
}

/** Decodes {@link encodeReplay}'s output; returns an empty list for anything malformed. */
export function decodeReplay(text: string): RecordedAction[] {
  try {
    const raw = JSON.parse(decodeURIComponent(text)) as unknown;
    if (!Array.isArray(raw)) return [];
    const out: RecordedAction[] = [];
    for (const row of raw) {
      if (!Array.isArray(row) || typeof row[0] !== 'number' || typeof row[1] !== 'number') return [];
      const action = row[2] as UserAction;
      if (action === null || typeof action !== 'object' || typeof action.type !== 'string') return [];
      out.push({ at: row[0], step: row[1], action });
    }
    return out;
  } catch {
    return [];
  }
}
