/**
 * The playground's simulated cluster: every node runs the production runtime (`@raft/runtime`, the driver the TCP
 * server and `@raft/sim` run too) on a simulated disk, over a deterministic, seeded event loop with a virtual
 * clock and a network that can lose, cut and drop messages; nodes can crash and restart from their disks.
 *
 * The playground owns the event loop (not `@raft/sim`'s `Simulation`) because the page needs what a property-test
 * simulator does not expose: every message in flight (to animate it and to let the user drop one), the deadline of
 * every node's timer (to draw it), single-event stepping, and user actions injected between events and recorded
 * so that a session can be replayed. What each node *does* is not the playground's: the runtime carries out every
 * action of the core (durability gates included); `node.ts` only connects it to this loop. No DOM here, so it is
 * unit tested in Node.
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
import type { Message, NodeId } from '@raft/core';
import type { ApplyOutcome, Command, ForwardRequest } from '@raft/runtime';
import { EventQueue, SafetyChecker, type SafetyViolation, type Scheduled } from '@raft/sim';
import { type NodeHost, PlaygroundNode, type TimerHandleBox } from './node.js';
import { Prng } from './prng.js';
import {
  type ActionOutcome,
  describeAction,
  type Flight,
  flightType,
  type LogLine,
  type NodeView,
  type Payload,
  PlaygroundError,
  type PlaygroundOptions,
  type RecordedAction,
  type UserAction,
} from './types.js';

export { ListMachine } from './machine.js';
export {
  type ActionOutcome,
  commandText,
  decodeReplay,
  describeAction,
  encodeReplay,
  type Flight,
  flightType,
  type LogLine,
  type NodeView,
  type Payload,
  PlaygroundError,
  type PlaygroundOptions,
  type RecordedAction,
  type TimerView,
  type UserAction,
} from './types.js';

/** A timer set through a node's clock, or the arrival of a flight. */
type PlaygroundEvent = Scheduled &
  (
    | { kind: 'timer'; node: NodeId; gen: number; handle: TimerHandleBox; fn: () => void }
    | { kind: 'deliver'; flightId: number }
  );

const MAX_LOG_LINES = 300;
/**
 * Rounds of turns and disk syncs at one instant before the playground gives up: each round is a turn of some
 * node's runtime, so a few dozen suffice; thousands would mean nodes feeding each other work forever (a bug).
 */
const MAX_SETTLE_ROUNDS = 10_000;

/** A simulated cluster of runtime-driven `@raft/core` nodes on a virtual clock. */
export class Playground {
  /** Virtual time in ms. */
  now = 0;
  /** Events processed so far (timers that fired, flights that arrived or vanished). */
  steps = 0;
  /** The node ids, `n1`..`nN`. */
  readonly ids: readonly NodeId[];
  /** Every user action so far (replayed ones included), in order. */
  readonly recorded: RecordedAction[] = [];
  /** Recent notable events (role changes, crashes, answers), newest last. */
  readonly lines: LogLine[] = [];
  /** Probability that a message is lost in transit. */
  lossRate = 0;
  /** The first safety violation the checker found (the simulation stops there), or null. */
  violation: SafetyViolation | null = null;
  /**
   * The safety checker every node's actions are fed to (read it, do not feed it). Users may propose the same text
   * twice, so one command applied at two indexes is legitimate here.
   */
  readonly checker = new SafetyChecker<Command>({ commandKey: (c) => c.input, uniqueCommands: false });

  private readonly opts: Required<PlaygroundOptions>;
  private readonly rng: Prng;
  private readonly nodes = new Map<NodeId, PlaygroundNode>();
  private readonly queue = new EventQueue<PlaygroundEvent>();
  private readonly flights = new Map<number, Flight>();
  private readonly cut = new Set<string>();
  /** Runtime turns (the clock's `defer`) waiting for the current event or user action to end. */
  private deferred: { node: NodeId; gen: number; fn: () => void }[] = [];
  private nextFlightId = 1;
  private pendingReplay: RecordedAction[];

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
      electionTicks: Math.max(2, options.electionTicks ?? 5),
      minLatencyMs: options.minLatencyMs ?? 20,
      maxLatencyMs: options.maxLatencyMs ?? 60,
    };
    this.rng = new Prng(this.opts.seed);
    this.ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    this.pendingReplay = [...replay].sort((a, b) => a.step - b.step || a.at - b.at);
    const host = this.host();
    for (const id of this.ids) this.nodes.set(id, new PlaygroundNode(id, host));
    for (const node of this.nodes.values()) {
      node.boot();
      const runtime = node.runtime;
      if (runtime === null) throw new Error(`${node.id} did not start`);
      // Every initial voter bootstraps with the same configuration (see docs/core.md, createCluster).
      const r = runtime.node.createCluster(this.ids);
      if (!r.ok) throw new Error(`createCluster on ${node.id} failed: ${r.error.message}`);
      runtime.kick();
    }
    this.settle();
  }

  /** The options in force (after defaults and clamping). */
  get options(): Readonly<Required<PlaygroundOptions>> {
    return this.opts;
  }

  /** What the nodes see of the playground. */
  private host(): NodeHost {
    const pg = this;
    const h = this.opts.heartbeatMs;
    return {
      get now() {
        return pg.now;
      },
      random: () => pg.rng.next(),
      checker: this.checker,
      timing: { heartbeatMs: h, electionMinMs: this.opts.electionTicks * h, electionTicks: this.opts.electionTicks },
      setTimer: (node, gen, ms, fn) => {
        const handle: TimerHandleBox = { cancelled: false };
        this.queue.push({ time: this.now + ms, seq: 0, kind: 'timer', node, gen, handle, fn });
        return handle;
      },
      defer: (node, gen, fn) => this.deferred.push({ node, gen, fn }),
      send: (m: Message<Command>) => this.transmit(m.from, m.to, { kind: 'message', message: m }),
      forward: (from, to, request: ForwardRequest) => this.transmit(from, to, { kind: 'forward', request }),
      log: (text) => this.log(text),
      violated: (v) => {
        if (this.violation !== null) return;
        this.violation = v;
        this.log(`SAFETY VIOLATION: ${v.message}`);
      },
    };
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
      const ev = this.peekLive();
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
    if (this.peekLive() === undefined) return false;
    this.processNext();
    return true;
  }

  /** The virtual time of the next event, or null. */
  nextEventTime(): number | null {
    return this.peekLive()?.time ?? null;
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

  /**
   * The next event that will do something. Cancelled timers and timers of a crashed incarnation are discarded
   * without counting as steps, so single-stepping never shows an event that changed nothing.
   */
  private peekLive(): PlaygroundEvent | undefined {
    for (;;) {
      const ev = this.queue.peek();
      if (ev === undefined || ev.kind === 'deliver') return ev;
      const node = this.nodes.get(ev.node);
      if (!ev.handle.cancelled && node !== undefined && node.runtime !== null && node.gen === ev.gen) return ev;
      this.queue.pop();
    }
  }

  private processNext(): void {
    const ev = this.queue.pop();
    if (ev === undefined) return;
    this.now = ev.time;
    this.steps++;
    if (ev.kind === 'timer') ev.fn();
    else this.deliver(ev.flightId);
    this.settle();
  }

  /**
   * Finishes the current instant: runs the runtimes' deferred turns and makes every write durable (completing it),
   * until nothing is left. A write is therefore durable before the event that issued it ends: the playground's disk
   * is "synchronous" as seen from the events, yet the runtime still waits for each completion (a vote leaves only
   * once it is on disk), exactly as it does on a real disk.
   */
  private settle(): void {
    for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
      const due = this.deferred;
      this.deferred = [];
      for (const d of due) {
        const node = this.nodes.get(d.node);
        if (node !== undefined && node.runtime !== null && node.gen === d.gen) d.fn();
      }
      let synced = false;
      for (const node of this.nodes.values()) if (node.syncDisk()) synced = true;
      if (!synced && this.deferred.length === 0) return;
    }
    throw new PlaygroundError(
      'RUNAWAY',
      `the nodes were still busy after ${MAX_SETTLE_ROUNDS} turns at ${this.now} ms`,
    );
  }

  // -------------------------------------------------------------------------------------------------------------
  // The network
  // -------------------------------------------------------------------------------------------------------------

  /** Puts something on the wire (the runtime's `Transport.send` and `forward` end here). */
  private transmit(from: NodeId, to: NodeId, payload: Payload): void {
    const lat =
      this.opts.minLatencyMs + Math.floor(this.rng.next() * (this.opts.maxLatencyMs - this.opts.minLatencyMs + 1));
    // Draw the loss coin for every message (even when lossRate is 0) so that changing the rate later does not
    // shift every other random choice of the run.
    const coin = this.rng.next();
    const f: Flight = {
      ...payload,
      id: this.nextFlightId++,
      from,
      to,
      sentAt: this.now,
      deliverAt: this.now + lat,
      dropped: coin < this.lossRate ? 'loss' : this.isCut(from, to) ? 'partition' : null,
    };
    this.flights.set(f.id, f);
    this.queue.push({ time: f.deliverAt, seq: 0, kind: 'deliver', flightId: f.id });
  }

  private deliver(flightId: number): void {
    const f = this.flights.get(flightId);
    if (f === undefined) return;
    this.flights.delete(f.id);
    const target = this.nodes.get(f.to)?.runtime ?? null;
    if (f.dropped === null && target === null) f.dropped = 'crashed';
    if (f.dropped === null && this.isCut(f.from, f.to)) f.dropped = 'partition';
    if (f.dropped !== null) {
      // A forwarded request travels on a connection: losing it (or its answer) breaks that connection, and the
      // requester learns that the outcome is unknown, as it would from a closed TCP connection.
      if (f.kind === 'forward') this.nodes.get(f.from)?.runtime?.forwardsLost([f.request[0]]);
      else if (f.kind === 'reply') this.nodes.get(f.to)?.runtime?.forwardsLost([f.reply[0]]);
      return;
    }
    if (target === null) return;
    if (f.kind === 'message') target.receive([f.message]);
    else if (f.kind === 'forward') {
      target.receiveForward(f.request, (reply) => this.transmit(f.to, f.from, { kind: 'reply', reply }));
    } else target.forwardReplies([f.reply]);
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
    // What the action set off at this instant (a runtime turn, a disk write) completes before time moves on.
    this.settle();
    return out;
  }

  private execute(action: UserAction): ActionOutcome {
    switch (action.type) {
      case 'crash': {
        const n = this.node(action.node);
        if (n.runtime === null) return { ok: false, error: `${n.id} is already down` };
        n.crash();
        return { ok: true, detail: `${n.id} crashed` };
      }
      case 'restart': {
        const n = this.node(action.node);
        if (n.runtime !== null) return { ok: false, error: `${n.id} is already up` };
        n.boot();
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
        return { ok: true, detail: `${flightType(f)} ${f.from}→${f.to} dropped` };
      }
      case 'setLossRate': {
        const r = Number.isFinite(action.rate) ? Math.min(1, Math.max(0, action.rate)) : 0;
        this.lossRate = r;
        return { ok: true, detail: `message loss ${Math.round(r * 100)}%` };
      }
      case 'propose':
        return this.propose(action.command);
      case 'transfer':
        return this.transfer(action.node);
      default:
        throw new PlaygroundError('BAD_ACTION', `unknown action ${JSON.stringify(action)}`);
    }
  }

  /**
   * Hands a command to the leader's runtime, as a client of the TCP server would (`Apply`). The outcome line says
   * where it was appended; the runtime's answer (applied, or why not) arrives later and goes to the event log.
   */
  private propose(command: string): ActionOutcome {
    const leader = this.leader();
    const rt = leader?.runtime ?? null;
    if (leader === null || rt === null) return { ok: false, error: 'no leader right now' };
    // The payload the runtime will put in the log (its `input` is JSON text): the checker must know it was asked for.
    this.checker.proposed({ input: JSON.stringify(command) });
    const before = rt.node.lastLogIndex;
    const now = this.request(leader, { type: 'command', input: command }, (o) =>
      o.ok
        ? `${leader.id} answered ${JSON.stringify(command)}: applied (output ${o.json ?? JSON.stringify(o.output)})`
        : `${leader.id} answered ${JSON.stringify(command)}: ${o.error.message}`,
    );
    if (now !== null)
      return now.ok ? { ok: true, detail: 'applied' } : { ok: false, error: `${leader.id}: ${now.error.message}` };
    const n = rt.node;
    if (n.lastLogIndex > before) {
      return { ok: true, detail: `${leader.id} appended it at index ${n.lastLogIndex} (term ${n.lastLogTerm})` };
    }
    return { ok: true, detail: `${leader.id} holds it until it can propose it (a leadership change is under way)` };
  }

  /** Asks the leader's runtime to hand leadership to `target` (`TransferLeadership` on the TCP server). */
  private transfer(target: NodeId): ActionOutcome {
    this.node(target);
    const leader = this.leader();
    const rt = leader?.runtime ?? null;
    if (leader === null || rt === null) return { ok: false, error: 'no leader right now' };
    const now = this.request(leader, { type: 'transferLeadership', addr: target }, (o) =>
      o.ok ? `leadership moved from ${leader.id} to ${target}` : `transfer to ${target}: ${o.error.message}`,
    );
    if (now !== null) {
      return now.ok
        ? { ok: true, detail: `${target} leads already` }
        : { ok: false, error: `${leader.id}: ${now.error.message}` };
    }
    if (rt.node.transferTarget === target)
      return { ok: true, detail: `${leader.id} is handing leadership to ${target}` };
    return { ok: true, detail: `${leader.id} will hand leadership to ${target} once it can (a change is under way)` };
  }

  /**
   * Submits a request to a node's runtime. Returns its outcome when the runtime answered at once (a refusal);
   * otherwise null, and the later answer goes to the event log as `describe` puts it.
   */
  private request(
    node: PlaygroundNode,
    request: Parameters<PlaygroundNode['submit']>[0],
    describe: (o: ApplyOutcome) => string,
  ): ApplyOutcome | null {
    const answered: { now: ApplyOutcome | null; sync: boolean } = { now: null, sync: true };
    node.submit(request, (o) => {
      if (answered.sync) answered.now = o;
      else this.log(describe(o));
    });
    answered.sync = false;
    return answered.now;
  }

  private node(id: NodeId): PlaygroundNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new PlaygroundError('NO_SUCH_NODE', `no node ${JSON.stringify(id)}`);
    return n;
  }

  /** The live leader with the highest term, if any. */
  private leader(): PlaygroundNode | null {
    let best: PlaygroundNode | null = null;
    for (const n of this.nodes.values()) {
      const r = n.runtime?.node;
      if (r?.role !== 'leader') continue;
      if (best === null || (best.runtime?.node.currentTerm ?? 0) < r.currentTerm) best = n;
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
      const others = this.ids.filter((x) => x !== id);
      const isolated = others.every((o) => this.isCut(id, o));
      const rt = n.runtime;
      if (rt === null) {
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
          lastLogIndex: n.disk.lastIndex,
          log: n.disk.log,
          timer: null,
          applied: [],
          matchIndex: {},
        };
      }
      const r = rt.node;
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
        lastApplied: rt.appliedIndex,
        lastLogIndex: r.lastLogIndex,
        log: r.entries(1),
        timer: n.timer,
        applied: n.machine.applied,
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
      v.log.map((e) => `${e.index}:${e.term}:${e.type === 'command' ? e.command.input : e.type}`).join(','),
      v.timer ? `${v.timer.kind}@${v.timer.deadline}` : '-',
      v.applied.join(','),
    ]);
    const wire = this.inFlight().map((f) => `${f.id}:${flightType(f)}:${f.from}>${f.to}@${f.deliverAt}:${f.dropped}`);
    return JSON.stringify({ now: this.now, steps: this.steps, nodes, wire, cut: [...this.cut].sort() });
  }
}

function linkKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
