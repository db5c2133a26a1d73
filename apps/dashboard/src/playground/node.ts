/**
 * One playground node: the production runtime (`@raft/runtime`, the same driver the TCP server and `@raft/sim` run)
 * on `@raft/sim`'s simulated disk, with the playground's virtual clock and network. The node adds nothing to what
 * the runtime does: it turns the runtime's clock and transport into playground events and flights, remembers the
 * Raft timer's deadline for the page, and shows every action to the safety checker.
 */
import type { Action, Message, NodeId } from '@raft/core';
import {
  type Clock,
  type Command,
  type ForwardRequest,
  RaftRuntime,
  type RuntimeRequest,
  silentLogger,
  type TimerHandle,
} from '@raft/runtime';
import { type SafetyChecker, SafetyViolation, SimDisk, SimStorage } from '@raft/sim';
import { ListMachine } from './machine.js';
import type { TimerView } from './types.js';

/** A timer set through the node's clock (the Raft timer, or one of the runtime's request timers). */
export interface TimerHandleBox {
  /** Set by `clearTimeout`: the event is skipped. */
  cancelled: boolean;
}

/** What a {@link PlaygroundNode} needs from the playground. */
export interface NodeHost {
  /** Virtual time, ms. */
  readonly now: number;
  /** The playground's seeded generator (the runtime's election jitter comes from it). */
  random(): number;
  /** The checker fed with every action. */
  readonly checker: SafetyChecker<Command>;
  /** Heartbeat interval and election timeout range, ms, and the core's `electionTicks`. */
  readonly timing: { heartbeatMs: number; electionMinMs: number; electionTicks: number };
  /** Schedules `fn` as a timer event of incarnation `gen`, `ms` from now. */
  setTimer(node: NodeId, gen: number, ms: number, fn: () => void): TimerHandleBox;
  /** Runs `fn` once the current event or user action is over, at the same virtual instant. */
  defer(node: NodeId, gen: number, fn: () => void): void;
  /** Puts a Raft message on the wire. */
  send(message: Message<Command>): void;
  /** Puts a forwarded client request on the wire. */
  forward(from: NodeId, to: NodeId, request: ForwardRequest): void;
  /** Adds a line to the event log. */
  log(text: string): void;
  /** A check failed (the playground stops). */
  violated(v: SafetyViolation): void;
}

/** A playground node: its disk survives crashes; its runtime and machine do not. */
export class PlaygroundNode {
  /** The disk (durable once synced; the playground syncs at the end of every event). */
  readonly disk = new SimDisk<Command>();
  /** The runtime of the current incarnation (null while crashed). */
  runtime: RaftRuntime | null = null;
  /** The state machine of the current incarnation. */
  machine = new ListMachine();
  /** The Raft timer (null while crashed). */
  timer: TimerView | null = null;
  /** Incarnation: events of an earlier one (before a crash) are ignored. */
  gen = 0;
  private raftTimer: TimerHandleBox | null = null;
  /** Set by the `setTimer` action: the clock's next `setTimeout` is the Raft timer it asks for. */
  private expectedTimer: TimerView['kind'] | null = null;
  /** The term this node led in at the end of its last turn, or -1 (the checker's leader-append-only rule). */
  private leaderTermBefore = -1;
  /** The campaign last logged while the node is a candidate (see `observeCampaign`); null otherwise. */
  private campaignLogged: { preVote: boolean; term: number } | null = null;

  /**
   * @param id - the node's id
   * @param host - the playground
   */
  constructor(
    readonly id: NodeId,
    private readonly host: NodeHost,
  ) {}

  /** Starts an incarnation from what is durable on the disk (nothing, the first time). */
  boot(): void {
    this.gen++;
    const gen = this.gen;
    const host = this.host;
    const storage = new SimStorage(this.disk, {
      // The playground makes every write durable at the end of the event that issued it (see `syncDisk`).
      queued: () => undefined,
      snapshotSaved: (meta, data) => this.guard(() => host.checker.snapshotTaken(this.id, meta, data)),
      compacted: (meta) => this.guard(() => host.checker.logCompacted(this.id, meta)),
      snapshotReceived: (meta, data) => this.guard(() => host.checker.snapshotInstalled(this.id, meta, data)),
    });
    this.machine = new ListMachine();
    this.timer = null;
    this.raftTimer = null;
    this.leaderTermBefore = -1;
    this.campaignLogged = null;
    host.checker.nodeStarted(this.id, this.disk.empty ? {} : storage.state);
    const t = host.timing;
    const runtime = new RaftRuntime({
      id: this.id,
      storage,
      transport: {
        send: (m) => host.send(m),
        forward: (to, request) => host.forward(this.id, to, request),
      },
      machine: this.machine,
      clock: this.clock(gen),
      heartbeatMs: t.heartbeatMs,
      electionTimeoutMs: t.electionMinMs,
      electionTimeoutMaxMs: 2 * t.electionMinMs,
      // The page draws whole logs from index 1: no snapshots, so no compaction.
      autoSnapshotEntries: 0,
      raft: { electionTicks: t.electionTicks },
      logger: silentLogger,
      tap: {
        action: (a) => this.guard(() => this.observeAction(a)),
        turn: () => this.guard(() => this.observeTurn()),
      },
      // A runtime that stops taking part hides a bug (nothing fails on the playground's disk): report it as one.
      onEvent: (e) => {
        if (e.type === 'failed') {
          host.violated(
            new SafetyViolation('runtime-contract', `${this.id}'s runtime stopped: ${e.error.message}`, {
              node: this.id,
            }),
          );
        }
      },
    });
    this.runtime = runtime;
    // The simulated storage answers synchronously: the runtime is up when this returns (its first turn is deferred).
    void runtime.start();
  }

  /** Drops the runtime with its machine, timers and pending requests; the disk keeps what was synced. */
  crash(): void {
    this.runtime = null;
    this.gen++;
    this.timer = null;
    this.raftTimer = null;
    this.expectedTimer = null;
    this.machine = new ListMachine();
    // Nothing is pending between events (every event ends with a sync); anything that were would be lost.
    this.disk.crash(0);
  }

  /**
   * Makes every pending write durable and completes it (the runtime then acknowledges entries, lets held-back
   * messages leave, ...). Returns whether there was anything to sync.
   */
  syncDisk(): boolean {
    if (this.disk.pending.length === 0) return false;
    const gen = this.gen;
    for (const w of this.disk.sync(this.disk.pending.length)) {
      if (this.gen !== gen) break;
      w.done.resolve();
    }
    return true;
  }

  /** Runs a client request on this node's runtime; `done` is told its answer (now, or after later events). */
  submit(request: RuntimeRequest, done: Parameters<RaftRuntime['submit']>[1]): void {
    this.runtime?.submit(request, done);
  }

  /**
   * The runtime's clock: virtual time, timers as playground events, turns at the end of the current event, and
   * the playground's seeded generator (so the election jitter replays).
   */
  private clock(gen: number): Clock {
    const host = this.host;
    return {
      now: () => host.now,
      setTimeout: (fn, ms) => {
        // The playground's clock ticks in whole virtual milliseconds (the page prints times as integers).
        const whole = Math.max(0, Math.floor(ms));
        const kind = this.expectedTimer;
        this.expectedTimer = null;
        const handle = host.setTimer(this.id, gen, whole, () => {
          if (handle === this.raftTimer) {
            this.raftTimer = null;
            this.timer = null;
          }
          fn();
        });
        if (kind !== null) {
          this.raftTimer = handle;
          this.timer = { kind, setAt: host.now, deadline: host.now + whole };
        }
        return handle;
      },
      clearTimeout: (h: TimerHandle) => {
        if (h === undefined || h === null) return;
        (h as TimerHandleBox).cancelled = true;
        if (h === this.raftTimer) {
          this.raftTimer = null;
          this.timer = null;
        }
      },
      defer: (fn) => host.defer(this.id, gen, fn),
      random: () => host.random(),
    };
  }

  /** Runs a check; a violation goes to the playground and is thrown on (the runtime then stops this node). */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof SafetyViolation) this.host.violated(e);
      throw e;
    }
  }

  /** The checker sees every action, in order, right before the runtime carries it out. */
  private observeAction(a: Action<Command>): void {
    const raft = this.runtime?.node;
    if (raft === undefined) return;
    this.host.checker.observeAction(this.id, a, raft, this.leaderTermBefore);
    if (a.type === 'setTimer') {
      // The runtime carries it out with exactly one `clock.setTimeout` right after this: that timer is drawn.
      this.expectedTimer = a.kind;
    } else if (a.type === 'send') {
      if (a.message.type === 'RequestVote') this.observeCampaign(a.message.preVote, a.message.term);
    } else if (a.type === 'stateChanged') {
      // Candidacies are logged from the vote requests (see observeCampaign): `candidate` here may be a PreVote.
      if (a.role === 'leader') this.host.log(`${this.id} became leader in term ${a.term}`);
      if (a.role !== 'candidate') this.campaignLogged = null;
    }
  }

  /**
   * Logs a campaign once, from the vote requests it sends. The core reports a PreVote round as role `candidate`
   * in the *current* term (the term only increments once the pre-vote is won), so logging `stateChanged` listed
   * every pre-vote as a candidacy in a term that already had a leader. A pre-vote is "starts a pre-vote for term
   * T" (T = the term it asks about); a candidacy is logged only for a real election, whose term is new. A round
   * repeated for the same term (an isolated node timing out again and again) is not logged again.
   */
  private observeCampaign(preVote: boolean, term: number): void {
    const c = this.campaignLogged;
    if (c !== null && c.preVote === preVote && c.term === term) return;
    this.campaignLogged = { preVote, term };
    this.host.log(
      preVote ? `${this.id} starts a pre-vote for term ${term}` : `${this.id} is a candidate in term ${term}`,
    );
  }

  private observeTurn(): void {
    const raft = this.runtime?.node;
    if (raft === undefined) return;
    this.leaderTermBefore = raft.role === 'leader' ? raft.currentTerm : -1;
    this.host.checker.observe(this.id, raft);
  }
}
