/**
 * Random schedules: a seeded mix of client traffic, faults, membership changes, snapshots, reads and leadership
 * transfers against a simulated cluster, with every safety property checked after every step and liveness checked
 * at the end. This is what the property tests (and the soak) run thousands of times.
 *
 * @packageDocumentation
 */
import { members, type NodeId } from '@raft/core';
import type { Machine, RuntimeBugs } from '@raft/runtime';
import { SafetyViolation } from './checker.js';
import { Prng } from './prng.js';
import { Simulation } from './simulation.js';
import type { KvCommand } from './state-machine.js';
import type { SimRaftOptions, TraceEvent, UnsafeBugs } from './types.js';

/** The kinds of step a random schedule takes, and how often (relative weights). */
export interface StepWeights {
  /** Let virtual time pass (1–60 ms of deliveries, timers and fsyncs). */
  run: number;
  /** Propose 1–5 commands (sometimes a batch of 30) on the leader, or occasionally on a random node. */
  propose: number;
  /** Issue a linearizable read on a random live node. */
  read: number;
  /** Crash a random live node (losing unflushed writes, or keeping a random prefix of them). */
  crash: number;
  /** Restart a random crashed node. */
  restart: number;
  /** Split the nodes into two random groups. */
  partition: number;
  /** Cut one node off. */
  isolate: number;
  /** Cut one direction of one link (asymmetric partition). */
  oneWay: number;
  /** Remove every partition. */
  heal: number;
  /** A burst of message loss or duplication for 20–200 ms. */
  burst: number;
  /** A membership change on the leader: addServer, addLearner, promote, removeServer or an arbitrary changeConfig. */
  member: number;
  /** A local snapshot + log compaction on a random live node. */
  snapshot: number;
  /** A leadership transfer to a random voter. */
  transfer: number;
  /**
   * An exactly-once command handed to a random node's runtime, as a TCP client would send it (forwarded to the
   * leader over the simulated network, retried by the runtime when the forward is lost, answered within its
   * timeout).
   */
  submit: number;
}

/** Default {@link StepWeights}. */
export const DEFAULT_WEIGHTS: Readonly<StepWeights> = {
  run: 40,
  propose: 14,
  read: 10,
  crash: 3,
  restart: 5,
  partition: 2,
  isolate: 2,
  oneWay: 2,
  heal: 4,
  burst: 2,
  member: 4,
  snapshot: 4,
  transfer: 2,
  submit: 4,
};

/** Relative weights of the membership operations of a `member` step. */
export interface MemberWeights {
  /** `addServer` (learner first, promoted once caught up). */
  addServer: number;
  /** `addLearner`. */
  addLearner: number;
  /** `promote` a learner. */
  promote: number;
  /** `removeServer` of a random member, the leader included. */
  remove: number;
  /** An arbitrary `changeConfig` (any voter set, through joint consensus). */
  change: number;
}

/** Default {@link MemberWeights}. */
export const DEFAULT_MEMBER_WEIGHTS: Readonly<MemberWeights> = {
  addServer: 3,
  addLearner: 1,
  promote: 2,
  remove: 3,
  change: 2,
};

/** The shape of one random run, drawn from its seed (any field can be forced). */
export interface Profile {
  /** Initial voters (3 or 5). */
  voters: number;
  /** Extra nodes that start empty and may be added by membership steps (0–2). */
  spares: number;
  /** Base message loss rate. */
  dropRate: number;
  /** Base duplication rate. */
  duplicateRate: number;
  /** Largest one-way latency in ms (latencies are uniform in [1, max)). */
  maxLatencyMs: number;
  /** Largest fsync latency in ms. */
  fsyncMaxMs: number;
  /** Largest clock drift of a node (fraction; see `TimingOptions.clockDrift`). */
  clockDrift: number;
  /** Core options (batch size, pipeline window, snapshot chunk size, read mode, PreVote, CheckQuorum). */
  raft: SimRaftOptions;
  /**
   * Probability that a node is cut off from everyone the moment it becomes leader, before its first messages
   * arrive (a reactive fault: it builds logs that diverge at the new leader's no-op, as in the Raft paper's
   * Figure 8).
   */
  isolateNewLeaderRate: number;
  /**
   * Probability that a leader is cut off from everyone right after it applies newly committed entries (before
   * its followers learn the new commit index).
   */
  isolateLeaderAfterCommitRate: number;
}

/** Options of {@link runSchedule}. */
export interface ScheduleOptions {
  /** The seed: the whole run derives from it. */
  seed: number;
  /** Number of steps (default 200). */
  steps?: number;
  /** Plant known bugs in the core (plant-a-bug tests). */
  bugs?: UnsafeBugs;
  /** Plant known bugs in the runtime (plant-a-bug tests). */
  runtimeBugs?: RuntimeBugs;
  /** Override step weights. */
  weights?: Partial<StepWeights>;
  /** Force parts of the profile (the rest is still drawn from the seed). */
  profile?: Partial<Profile>;
  /** Relative weights of the membership operations a `member` step picks from. */
  memberWeights?: Partial<MemberWeights>;
  /** Longest virtual time one `run` step lets pass, ms (default 60). Shorter steps interleave faults more finely. */
  runMaxMs?: number;
  /** Check liveness at the end (default true). */
  liveness?: boolean;
  /** How many trace events to keep for the failure report (default 200; 0 is fastest). */
  traceLimit?: number;
  /**
   * Your machine, to property-test it under the built-in fault schedules (default: {@link KvStateMachine}). Every
   * node runs it through the production runtime; its `snapshot()` must answer synchronously here.
   */
  machine?: () => Machine;
  /**
   * Makes the `n`-th command (n = 1, 2, ...) from the schedule's generator; it must be a JSON value, and distinct
   * commands must have distinct JSON (the checker tells them apart by it). Default: a {@link KvCommand} on 4 keys.
   */
  command?: (random: Prng, n: number) => unknown;
  /** Makes a read's query (default: one of the KV machine's 4 keys). Reads are answered by your machine. */
  query?: (random: Prng) => unknown;
  /** Record the action stream (determinism tests). */
  recordActions?: boolean;
}

/** What a run did (for reports and sanity assertions). */
export interface ScheduleReport {
  /** The seed. */
  seed: number;
  /** The profile drawn from it. */
  profile: Profile;
  /** How many of each step kind ran. */
  steps: Record<keyof StepWeights, number>;
  /** Entries in the committed log at the end. */
  committed: number;
  /** Elections won. */
  elections: number;
  /** Reads served (checked) and failed. */
  readsServed: number;
  /** Reads that failed (no leader, leadership lost, ...). */
  readsFailed: number;
  /** Snapshots checked (taken or installed). */
  snapshots: number;
  /** Snapshot installs on followers. */
  installs: number;
  /** Configuration changes accepted by a leader. */
  configChanges: number;
  /** Virtual time at the end, ms. */
  virtualMs: number;
  /** Events processed. */
  events: number;
  /** Virtual ms from the end of faults to a {@link Simulation.quorumLeader} (liveness). */
  leaderAfterMs: number;
  /** Virtual ms from the end of faults to the liveness proposal being committed. */
  commitAfterMs: number;
  /**
   * The bound the commit had to meet, counted from the leader's emergence: {@link LIVENESS_COMMIT_MS} plus the
   * time to replicate the uncommitted backlog one message at a time.
   */
  commitBoundMs: number;
  /**
   * Virtual ms from the end of faults until every request issued to a member of the final configuration (reads,
   * proposals, membership changes) had its answer.
   */
  answeredAfterMs: number;
  /** The bound that had to meet, counted from the liveness proposal's commit (see {@link LIVENESS_ANSWER_MS}). */
  answerBoundMs: number;
  /** Requests left unanswered because their node is no longer a member (nothing can reach it any more). */
  orphaned: number;
  /** The simulation, for further inspection. */
  sim: Simulation<unknown>;
}

/** A run broke a property (or liveness). Carries the seed, the step and the recent trace. */
export class ScheduleFailure extends Error {
  override readonly name = 'ScheduleFailure';
  /** A stable code for programmatic handling. */
  readonly code = 'SCHEDULE_FAILED';
  /**
   * @param seed - the failing seed
   * @param step - the step at which it failed (steps = during the liveness phase)
   * @param violation - the underlying violation
   * @param trace - the last trace events before the failure
   * @param state - a one-line description of the cluster at the failure
   */
  constructor(
    readonly seed: number,
    readonly step: number,
    readonly violation: SafetyViolation,
    readonly trace: TraceEvent[],
    readonly state: string,
  ) {
    super(`seed ${seed}, step ${step}: ${violation.message}\n  cluster: ${state}`);
  }
}

/** Virtual ms after the faults stop within which a leader must emerge (every node up, the network healed). */
export const LIVENESS_LEADER_MS = 5_000;
/**
 * Virtual ms after a leader emerged within which a new proposal must commit, plus an allowance for replicating the
 * entries that were still uncommitted when the faults stopped (see {@link ScheduleReport.commitBoundMs}).
 */
export const LIVENESS_COMMIT_MS = 5_000;
/**
 * Virtual ms after the liveness proposal committed within which every request issued during the run (reads,
 * proposals, membership changes) must have its answer, plus the same per-entry allowance as the commit bound for a
 * node that still has to catch up. Requests on nodes outside the final configuration are exempt (reported as
 * {@link ScheduleReport.orphaned}): nothing reaches such a node any more, so only a client-side timeout can end
 * them.
 */
export const LIVENESS_ANSWER_MS = 5_000;
/** Bound on events per step (guards against a livelock burning CPU). */
const MAX_EVENTS_PER_STEP = 20_000;

/** Draws a {@link Profile} from `random`, then applies `overrides`. */
export function drawProfile(random: Prng, overrides: Partial<Profile> = {}): Profile {
  const voters = random.chance(0.6) ? 3 : 5;
  const spares = random.int(0, 3);
  const lossy = random.chance(0.7);
  const reactive = random.chance(0.2);
  const readMode = random.chance(0.25) ? 'lease' : 'readIndex';
  const raft: SimRaftOptions = {
    electionTicks: 10,
    preVote: random.chance(0.85),
    // Lease reads rely on CheckQuorum; otherwise it is on most of the time.
    checkQuorum: readMode === 'lease' || random.chance(0.85),
    maxEntriesPerMessage: random.pick([1, 2, 4, 16, 4096]),
    maxInflightMessages: random.pick([1, 2, 4, 64]),
    snapshotChunkBytes: random.pick([16, 64, 256, 1 << 20]),
    readMode,
  };
  const profile: Profile = {
    voters,
    spares,
    dropRate: lossy ? random.float(0, 0.1) : 0,
    duplicateRate: lossy ? random.float(0, 0.05) : 0,
    maxLatencyMs: random.pick([2, 5, 10, 20]),
    fsyncMaxMs: random.pick([1, 3, 8, 15]),
    // Within the bound lease reads tolerate with the default options (below 1/9, see docs/core.md).
    clockDrift: random.pick([0, 0, 0.02, 0.05]),
    raft,
    // One run in five also cuts leaders off at the worst moments (right after winning, right after committing).
    isolateNewLeaderRate: reactive ? 0.3 : 0,
    isolateLeaderAfterCommitRate: reactive ? 0.2 : 0,
  };
  return { ...profile, ...overrides, raft: { ...profile.raft, ...overrides.raft } };
}

/**
 * Runs one random schedule. Every property is checked incrementally on every action and by an audit after every
 * step; at the end the faults stop and liveness is checked (a leader emerges and a new proposal commits within
 * {@link LIVENESS_LEADER_MS} + {@link LIVENESS_COMMIT_MS} of virtual time).
 *
 * @throws {@link ScheduleFailure} on any violated property
 */
export function runSchedule(options: ScheduleOptions): ScheduleReport {
  const seed = options.seed;
  const setup = new Prng(seed);
  const profile = drawProfile(setup, options.profile);
  const weights: StepWeights = { ...DEFAULT_WEIGHTS, ...options.weights };
  const memberWeights: MemberWeights = { ...DEFAULT_MEMBER_WEIGHTS, ...options.memberWeights };
  const stepCount = options.steps ?? 200;
  const runMaxMs = Math.max(1, options.runMaxMs ?? 60);
  const ids = Array.from({ length: profile.voters + profile.spares }, (_, i) => `n${i + 1}`);
  const sim = new Simulation<unknown>({
    stateMachine: options.machine,
    seed: setup.nextU32(),
    nodes: ids,
    voters: ids.slice(0, profile.voters),
    network: {
      minLatencyMs: 1,
      maxLatencyMs: profile.maxLatencyMs,
      dropRate: profile.dropRate,
      duplicateRate: profile.duplicateRate,
    },
    timing: { fsyncMinMs: 0, fsyncMaxMs: profile.fsyncMaxMs, clockDrift: profile.clockDrift },
    raft: { ...profile.raft, unsafeBugs: options.bugs },
    runtimeBugs: options.runtimeBugs,
    traceLimit: options.traceLimit ?? 200,
    recordActions: options.recordActions,
  });
  const rnd = sim.random;
  const counts = Object.fromEntries(Object.keys(DEFAULT_WEIGHTS).map((k) => [k, 0])) as Record<
    keyof StepWeights,
    number
  >;
  let commandId = 0;
  const clientSeqs = [0, 0, 0];
  let configChanges = 0;
  const makeCommand =
    options.command ?? ((r: Prng, n: number): KvCommand => ({ id: n, key: `k${r.int(0, 4)}`, value: r.int(0, 1000) }));
  const nextCommand = (): unknown => makeCommand(rnd, ++commandId);
  const makeQuery = options.query ?? ((r: Prng) => `k${r.int(0, 4)}`);
  const isolateNewLeader = profile.isolateNewLeaderRate;
  const isolateAfterCommit = profile.isolateLeaderAfterCommitRate;
  let faultsActive = true;
  if (isolateNewLeader > 0 || isolateAfterCommit > 0) {
    sim.onTrace((e) => {
      if (
        isolateNewLeader > 0 &&
        faultsActive &&
        e.kind === 'state' &&
        e.node !== null &&
        typeof e.detail === 'string' &&
        e.detail.startsWith('leader') &&
        rnd.chance(isolateNewLeader)
      ) {
        sim.isolate(e.node);
      } else if (
        isolateAfterCommit > 0 &&
        faultsActive &&
        e.kind === 'apply' &&
        e.node !== null &&
        sim.node(e.node).raft?.role === 'leader' &&
        rnd.chance(isolateAfterCommit)
      ) {
        sim.isolate(e.node);
      }
    });
  }

  let step = 0;
  const fail = (e: unknown): never => {
    if (e instanceof SafetyViolation) throw new ScheduleFailure(seed, step, e, sim.recentTrace(), sim.describe());
    throw e;
  };

  try {
    for (step = 0; step < stepCount; step++) {
      const kind = rnd.weighted(weights);
      counts[kind]++;
      const live = ids.filter((id) => sim.node(id).up);
      const down = ids.filter((id) => !sim.node(id).up);
      const leader = sim.leader();
      switch (kind) {
        case 'run':
          sim.runFor(rnd.int(1, runMaxMs + 1), MAX_EVENTS_PER_STEP);
          break;
        case 'submit': {
          const client = rnd.int(0, 3);
          sim.submit(rnd.pick(ids), {
            type: 'command',
            input: nextCommand(),
            clientId: `client${client}`,
            seq: ++clientSeqs[client],
            timeoutMs: rnd.int(50, 500),
          });
          break;
        }
        case 'propose': {
          const n = rnd.chance(0.1) ? 30 : rnd.int(1, 6);
          const target = rnd.chance(0.85) ? (leader?.id ?? rnd.pick(ids)) : rnd.pick(ids);
          for (let i = 0; i < n; i++) sim.propose(nextCommand(), target);
          break;
        }
        case 'read':
          if (live.length > 0) {
            const n = rnd.int(1, 4);
            // Half the reads go to a node that believes it leads: a deposed leader that has not noticed yet is
            // exactly where a stale read would come from.
            const leaders = live.filter((id) => sim.node(id).raft?.role === 'leader');
            const target = leaders.length > 0 && rnd.chance(0.5) ? rnd.pick(leaders) : rnd.pick(live);
            for (let i = 0; i < n; i++) sim.read(target, makeQuery(rnd));
          }
          break;
        case 'crash':
          if (live.length > 0) sim.crash(rnd.pick(live), rnd.chance(0.5));
          break;
        case 'restart':
          if (down.length > 0) sim.restart(rnd.pick(down));
          break;
        case 'partition': {
          const shuffled = rnd.shuffle(ids);
          const cut = rnd.int(1, shuffled.length);
          sim.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
          break;
        }
        case 'isolate':
          sim.isolate(rnd.chance(0.5) && leader !== null ? leader.id : rnd.pick(ids));
          break;
        case 'oneWay': {
          const from = rnd.chance(0.5) && leader !== null ? leader.id : rnd.pick(ids);
          const to = rnd.pick(ids.filter((id) => id !== from));
          if (rnd.chance(0.5)) sim.block(from, to);
          else sim.block(to, from);
          break;
        }
        case 'heal':
          sim.heal();
          break;
        case 'burst': {
          const until = sim.now + rnd.int(20, 200);
          if (rnd.chance(0.5)) sim.network.dropBurstUntil(until, rnd.float(0.2, 0.8));
          else sim.network.duplicateBurstUntil(until, rnd.float(0.2, 0.8));
          break;
        }
        case 'member':
          if (leader !== null && memberStep(sim, leader.id, ids, rnd, memberWeights)) configChanges++;
          break;
        case 'snapshot':
          if (live.length > 0) sim.takeSnapshot(rnd.pick(live));
          break;
        case 'transfer':
          if (leader !== null) {
            const voters = leader.raft?.config?.voters ?? [];
            if (voters.length > 0) sim.input(leader.id, (r) => r.transferLeadership(rnd.pick(voters)));
          }
          break;
      }
      sim.audit();
    }

    // Liveness: the faults stop, every node comes back, the network heals.
    const faultsEnd = sim.now;
    faultsActive = false;
    sim.heal();
    sim.network.options.dropRate = 0;
    sim.network.options.duplicateRate = 0;
    for (const id of ids) sim.restart(id);
    // createCluster is a request like any other: a crash before its configuration entry was persisted loses it, and
    // the operator sends it again. When no node kept it there is no cluster yet, so do what the operator would.
    const bootstrapLost = ids.every((id) => {
      const raft = sim.node(id).raft;
      return (raft?.config?.voters.length ?? 0) === 0 && (raft?.lastLogIndex ?? 0) === 0;
    });
    if (bootstrapLost) {
      const voters = ids.slice(0, profile.voters);
      for (const v of voters) {
        const r = sim.node(v).input((raft) => raft.createCluster([...voters]));
        if (!r.ok) throw new SafetyViolation('liveness', `createCluster again on ${v} failed: ${r.error.message}`);
      }
    }
    let leaderAfterMs = -1;
    let commitAfterMs = -1;
    let commitBoundMs = -1;
    let answeredAfterMs = -1;
    let answerBoundMs = -1;
    let orphaned = 0;
    if (options.liveness !== false) {
      if (!sim.runUntil(() => sim.quorumLeader() !== null, LIVENESS_LEADER_MS)) {
        throw new SafetyViolation('liveness', `no leader within ${LIVENESS_LEADER_MS} ms after faults stopped`);
      }
      leaderAfterMs = round2(sim.now - faultsEnd);
      // Entries appended but not yet known committed must replicate before anything new commits; with one entry per
      // message and a 20 ms network that alone can take seconds, so the bound grows with that backlog.
      let lastIndex = 0;
      for (const id of ids) lastIndex = Math.max(lastIndex, sim.node(id).raft?.lastLogIndex ?? 0);
      const backlog = Math.max(0, lastIndex - (sim.checker?.committedLength ?? 0));
      const perEntryMs =
        (2 * profile.maxLatencyMs + profile.fsyncMaxMs + sim.timing.heartbeatMs) /
        (profile.raft.maxEntriesPerMessage ?? 1);
      commitBoundMs = Math.ceil(LIVENESS_COMMIT_MS + backlog * perEntryMs);
      const deadline = sim.now + commitBoundMs;
      let committed = false;
      while (!committed && sim.now < deadline) {
        const command = nextCommand();
        const r = sim.propose(command);
        if (!r.ok) {
          sim.runFor(10);
          continue;
        }
        const { index, term } = r.value;
        sim.runUntil(() => {
          const c = sim.checker?.committedAt(index);
          return c !== undefined || sim.quorumLeader()?.raft?.currentTerm !== term;
        }, deadline - sim.now);
        const c = sim.checker?.committedAt(index);
        committed = c !== undefined && c.type === 'command' && c.command.input === JSON.stringify(command);
      }
      if (!committed) {
        throw new SafetyViolation(
          'liveness',
          `a new proposal did not commit within ${commitBoundMs} ms after a leader emerged (${LIVENESS_COMMIT_MS} ms + ${backlog} uncommitted entries to replicate)`,
        );
      }
      commitAfterMs = round2(sim.now - faultsEnd);
      sim.audit();
      // Every request gets its answer (success or failure): a read nobody answers, or a proposal whose fate its
      // node never learns, hangs a client for ever.
      let behind = 0;
      const committedNow = sim.checker?.committedLength ?? 0;
      for (const id of ids) behind = Math.max(behind, committedNow - sim.node(id).appliedIndex);
      answerBoundMs = Math.ceil(LIVENESS_ANSWER_MS + behind * perEntryMs);
      const pending = () => {
        const config = sim.quorumLeader()?.raft?.config;
        const reachable = config === null || config === undefined ? null : members(config);
        const all = sim.unanswered();
        const open = reachable === null ? all : all.filter((r) => reachable.includes(r.node));
        orphaned = all.length - open.length;
        return open;
      };
      sim.runUntil(() => pending().length === 0, answerBoundMs);
      const open = pending();
      if (open.length > 0) {
        const r = open[0];
        throw new SafetyViolation(
          'liveness',
          `${open.length} request(s) still unanswered ${answerBoundMs} ms after the liveness proposal committed; the oldest: ${r.kind} #${String(r.id)} on ${r.node} issued at ${r.issuedAt} ms${r.index === undefined ? '' : ` (index ${r.index})`}`,
          { node: r.node, index: r.index },
        );
      }
      answeredAfterMs = round2(sim.now - faultsEnd);
      checkAnswers(sim);
    }
    sim.checkClientAnswers();
    step = stepCount;
    let readsServed = 0;
    let readsFailed = 0;
    for (const r of sim.reads.values()) {
      if (r.index !== undefined) readsServed++;
      else if (r.error !== undefined) readsFailed++;
    }
    const checker = sim.checker;
    return {
      seed,
      profile,
      steps: counts,
      committed: checker?.committedLength ?? 0,
      elections: checker?.stats.elections ?? 0,
      readsServed,
      readsFailed,
      snapshots: checker?.stats.snapshots ?? 0,
      installs: ids.reduce((n, id) => n + sim.node(id).installs, 0),
      configChanges,
      virtualMs: round2(sim.now),
      events: sim.stats.events,
      leaderAfterMs,
      commitAfterMs,
      commitBoundMs,
      answeredAfterMs,
      answerBoundMs,
      orphaned,
      sim,
    };
  } catch (e) {
    return fail(e);
  }
}

/** Each `committed` / `lost` answer must agree with the committed log (the simulator's answers are checked too). */
function checkAnswers(sim: Simulation<unknown>): void {
  const checker = sim.checker;
  if (checker === null) return;
  for (const r of sim.requests.values()) {
    if (r.index === undefined || (r.outcome !== 'committed' && r.outcome !== 'lost')) continue;
    const entry = checker.committedAt(r.index);
    const committed = entry !== undefined && entry.term === r.term;
    if (committed !== (r.outcome === 'committed')) {
      throw new SafetyViolation(
        'liveness',
        `${r.kind} #${r.id} on ${r.node} was answered '${r.outcome}' but the committed log ${entry === undefined ? 'does not reach' : `has term ${entry.term} at`} index ${r.index}`,
        { node: r.node, index: r.index },
      );
    }
  }
}

/** Rounds to 1/100 ms (drifting clocks make event times fractional). */
function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** One random membership change on the leader. Returns whether the leader accepted it. */
function memberStep(
  sim: Simulation<unknown>,
  leader: NodeId,
  ids: readonly NodeId[],
  rnd: Prng,
  weights: MemberWeights,
): boolean {
  const raft = sim.node(leader).raft;
  if (raft === null || raft.config === null) return false;
  const config = raft.config;
  const voters = [...config.voters];
  const learners = [...config.learners];
  const outsiders = ids.filter((id) => !voters.includes(id) && !learners.includes(id));
  const op = rnd.weighted(weights);
  let r: { ok: boolean };
  switch (op) {
    case 'addServer':
      r = sim.changeMembership(leader, (n) => n.addServer(outsiders.length > 0 ? rnd.pick(outsiders) : rnd.pick(ids)));
      break;
    case 'addLearner':
      r = sim.changeMembership(leader, (n) => n.addLearner(outsiders.length > 0 ? rnd.pick(outsiders) : rnd.pick(ids)));
      break;
    case 'promote':
      r = sim.changeMembership(leader, (n) => n.promote(learners.length > 0 ? rnd.pick(learners) : rnd.pick(ids)));
      break;
    case 'remove':
      // Never shrink below one voter; removing the leader itself is allowed (and exercised).
      r = sim.changeMembership(leader, (n) => n.removeServer(rnd.pick([...voters, ...learners])));
      break;
    default: {
      // An arbitrary joint change: any non-empty voter set drawn from every node, any learners among the rest.
      const shuffled = rnd.shuffle(ids);
      const nv = rnd.int(1, Math.min(shuffled.length, 5) + 1);
      const nextVoters = shuffled.slice(0, nv);
      const nextLearners = shuffled.slice(nv).filter(() => rnd.chance(0.4));
      r = sim.changeMembership(leader, (n) => n.changeConfig({ voters: nextVoters, learners: nextLearners }));
    }
  }
  return r.ok;
}
