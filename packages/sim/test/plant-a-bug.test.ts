import type { RuntimeBugs } from '@raft/runtime';
import { describe, expect, it } from 'vitest';
import {
  type KvCommand,
  runSchedule,
  type SafetyProperty,
  SafetyViolation,
  ScheduleFailure,
  type ScheduleOptions,
  Simulation,
  type UnsafeBugs,
} from '../src/index.js';

// Proof that the properties bite: each test plants one known protocol bug in the core (RaftOptions.unsafeBugs)
// and requires the random schedules to catch it, as a violation of the property that bug breaks, within a bounded
// number of seeds. Each hunt uses a schedule mix that makes its bug's window likely (documented per case). The
// same seed must then pass with the bug removed, so the failure is the bug's doing and not the simulator's.

interface Hunt {
  readonly bug: keyof UnsafeBugs;
  /** The property the bug must be caught breaking (the first violation found must be one of these). */
  readonly expected: readonly SafetyProperty[];
  /** How many seeds the hunt may take at most. */
  readonly maxSeeds: number;
  readonly options: Omit<ScheduleOptions, 'seed'>;
  /** Check liveness too (only for bugs that break liveness; for the others a wedged run is skipped). */
  readonly liveness?: boolean;
}

const quiet = { member: 0, snapshot: 0, transfer: 0, read: 0, oneWay: 0, burst: 0, partition: 0, isolate: 0 };

const hunts: Hunt[] = [
  {
    // Figure 8: the old-term entry a new leader commits by counting replicas is overwritten by a later leader.
    // Leaders are cut off right after winning (so logs diverge at their no-ops) and right after committing.
    bug: 'commitOldTermByCount',
    expected: ['leader-completeness', 'state-machine-safety'],
    maxSeeds: 300,
    options: {
      weights: { ...quiet, crash: 0, restart: 6, heal: 14, propose: 12, run: 40 },
      profile: {
        voters: 3,
        spares: 0,
        isolateNewLeaderRate: 0.5,
        isolateLeaderAfterCommitRate: 0.5,
        raft: { maxEntriesPerMessage: 1, maxInflightMessages: 1 },
      },
    },
  },
  {
    // Deciding joint-phase elections and commits with C_new's majority only: arbitrary voter-set changes under
    // partitions let a C_old-only majority elect a leader that lacks entries C_new "committed".
    bug: 'jointNewMajorityOnly',
    expected: ['leader-completeness', 'state-machine-safety', 'election-safety'],
    maxSeeds: 300,
    options: {
      weights: { member: 15, partition: 5, isolate: 4, snapshot: 1 },
      memberWeights: { change: 10 },
      profile: { voters: 5, isolateNewLeaderRate: 0.3, isolateLeaderAfterCommitRate: 0 },
    },
  },
  {
    // Votes granted without the up-to-date check elect leaders that lack committed entries.
    bug: 'grantVoteIgnoringLog',
    expected: ['leader-completeness', 'state-machine-safety', 'election-safety'],
    maxSeeds: 200,
    options: {},
  },
  {
    // A leader that serves reads without a confirming heartbeat round answers stale reads once it is deposed
    // behind a partition it has not noticed yet.
    bug: 'readWithoutConfirmation',
    expected: ['linearizable-read'],
    maxSeeds: 300,
    options: { weights: { read: 25, isolate: 6, partition: 4, member: 0 } },
  },
  {
    // A follower that acknowledges entries before they are durable loses them in a crash after the leader counted
    // them; with slow fsyncs and frequent crashes a later leader lacks a committed entry.
    bug: 'ackUnpersisted',
    // The simulator now compares every acknowledgement with the follower's disk, so the first sign is 'durability'.
    expected: ['durability', 'leader-completeness', 'state-machine-safety'],
    maxSeeds: 300,
    options: {
      weights: { crash: 10, restart: 10, isolate: 4, propose: 20, member: 0, snapshot: 1 },
      profile: { voters: 3, spares: 0, fsyncMaxMs: 30, isolateNewLeaderRate: 0.3, isolateLeaderAfterCommitRate: 0 },
    },
  },
  {
    // Learners counted as voters let a leader commit with learners only; the voters then elect a leader without
    // those entries. Many learners (3 voters, 2 spares added as learners), partitions.
    bug: 'learnersCountInQuorum',
    expected: ['leader-completeness', 'state-machine-safety'],
    maxSeeds: 300,
    options: {
      weights: { member: 12, isolate: 4, partition: 4 },
      memberWeights: { addLearner: 8, addServer: 0, promote: 0, remove: 1, change: 1 },
      profile: { voters: 3, spares: 2 },
    },
  },
  {
    // Issue 14: a follower's read whose ReadIndexRequest (or answer) is lost, or a leader's read whose confirmation
    // round never completes, is never answered. Caught by the liveness check's "every request gets an answer".
    bug: 'forgetUnansweredReads',
    expected: ['liveness'],
    maxSeeds: 100,
    liveness: true,
    options: { weights: { read: 25, member: 1 }, profile: { dropRate: 0.08 } },
  },
  {
    // A snapshot described with the latest configuration instead of the one at its index: a snapshot taken while
    // a later config entry exists claims membership the committed prefix never had.
    bug: 'snapshotLatestConfig',
    expected: ['snapshot-safety'],
    maxSeeds: 100,
    options: { weights: { member: 12, snapshot: 12 } },
  },
];

/**
 * Runs seeds 1, 2, ... of `options` with `plant` applied until a schedule fails, then requires the failure to be one
 * of `expected` within `maxSeeds`, and the very same schedule to pass without the bug.
 */
function hunt(
  label: string,
  plant: Partial<ScheduleOptions>,
  h: { expected: readonly SafetyProperty[]; maxSeeds: number; options: Omit<ScheduleOptions, 'seed'> },
): void {
  let found: ScheduleFailure | null = null;
  let seeds = 0;
  for (let seed = 1; seed <= h.maxSeeds && found === null; seed++) {
    seeds++;
    try {
      runSchedule({ ...h.options, seed, traceLimit: 0, liveness: false, ...plant });
    } catch (e) {
      if (!(e instanceof ScheduleFailure)) throw e;
      found = e;
    }
  }
  expect(found, `${label} went unnoticed for ${h.maxSeeds} seeds`).not.toBeNull();
  const failure = found as ScheduleFailure;
  expect(h.expected).toContain(failure.violation.property);
  console.info(`[plant-a-bug] ${label}: caught at seed ${failure.seed} (${seeds} seeds): ${failure.violation.message}`);
  // Without the bug the very same schedule is safe.
  expect(() => runSchedule({ ...h.options, seed: failure.seed, traceLimit: 0 })).not.toThrow();
}

describe('plant a bug: the simulator catches each known protocol bug', () => {
  for (const h of hunts) {
    it(`${h.bug} is caught as ${h.expected.join(' or ')} within ${h.maxSeeds} seeds`, () => {
      // Liveness is not what most of these bugs break; a run the bug merely wedges is skipped, not counted as caught
      // (unless the hunt is for a liveness bug).
      hunt(h.bug, { bugs: { [h.bug]: true }, liveness: h.liveness ?? false }, h);
    });
  }
});

// The same proof for the runtime: each bug is planted in @raft/runtime (RuntimeOptions.unsafeBugs), which every
// simulated node runs, and must be caught within the stated number of seeds; the same seed passes without it.
interface RuntimeHunt {
  readonly bug: keyof RuntimeBugs;
  readonly expected: readonly SafetyProperty[];
  readonly maxSeeds: number;
  readonly options: Omit<ScheduleOptions, 'seed'>;
}

const runtimeHunts: RuntimeHunt[] = [
  // A vote (or any message of a new term) that leaves before the term and vote are on disk.
  { bug: 'sendBeforeHardStateDurable', expected: ['durability'], maxSeeds: 5, options: {} },
  // Term and vote never written: a restart forgets the vote.
  { bug: 'skipHardState', expected: ['durability'], maxSeeds: 5, options: {} },
  // Entries acknowledged to the leader before their fsync.
  { bug: 'persistedBeforeFsync', expected: ['durability'], maxSeeds: 5, options: {} },
  {
    // A leader's snapshot restored and reported installed before the storage made it durable: the follower then
    // acknowledges entries its disk does not hold. Needs snapshots and followers that fall behind them.
    bug: 'installBeforeDurable',
    expected: ['durability'],
    maxSeeds: 20,
    options: { weights: { snapshot: 15, crash: 6, restart: 8, isolate: 4, heal: 6 }, profile: { fsyncMaxMs: 20 } },
  },
  {
    // A retried exactly-once command whose earlier forwarded attempt was lost (and may have been applied) is
    // answered "not applied" when the retry fails. Needs forwarded commands, lost forwards and leader changes.
    bug: 'forgetLostAttempts',
    expected: ['client-answer'],
    maxSeeds: 20,
    options: {
      weights: { submit: 30, burst: 6, isolate: 5, partition: 4, crash: 3, restart: 5, heal: 6, transfer: 3 },
      profile: { dropRate: 0.05 },
    },
  },
];

describe('plant a bug: the simulator catches each known runtime bug', () => {
  for (const h of runtimeHunts) {
    it(`${h.bug} is caught as ${h.expected.join(' or ')} within ${h.maxSeeds} seeds`, () => {
      hunt(`runtime ${h.bug}`, { runtimeBugs: { [h.bug]: true } }, h);
    });
  }
});

// Leadership transfer: the leader must stop serving lease reads once it has told the target to campaign, because
// the voters grant the target's transfer election even though they still follow the leader (its lease no longer
// protects anything). The scenario, with seed-driven timing: a 5-node lease-mode cluster transfers leadership; right
// after the TimeoutNow is delivered the old leader is partitioned with one follower; the target wins with the
// other two, commits a write, and the old leader is asked to read.
describe('leadership transfer against lease reads', () => {
  function staleReadsDuringTransfer(bug: boolean, seeds: number): { stale: number; tried: number } {
    let stale = 0;
    let tried = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const sim = new Simulation<KvCommand>({
        seed,
        nodes: 5,
        raft: { readMode: 'lease', unsafeBugs: { leaseDuringTransfer: bug } },
        traceLimit: 0,
      });
      const ready = (id: string) => {
        const r = sim.node(id).raft;
        return r !== null && r.role === 'leader' && r.commitIndex === r.lastLogIndex;
      };
      expect(sim.runUntil(() => sim.leader() !== null && ready(sim.leader()!.id), 5_000)).toBe(true);
      sim.runFor(sim.random.int(0, 20));
      const old = sim.leader()!.id;
      const others = sim.ids().filter((id) => id !== old);
      const target = sim.random.pick(others);
      expect(sim.input(old, (r) => r.transferLeadership(target)).ok).toBe(true);
      // The moment the target starts its transfer election, cut the old leader off with one bystander.
      if (!sim.runUntil(() => sim.node(target).raft?.role !== 'follower', 500)) continue;
      const bystander = sim.random.pick(others.filter((id) => id !== target));
      sim.partition([[old, bystander], others.filter((id) => id !== bystander)]);
      if (!sim.runUntil(() => ready(target), 500)) continue;
      sim.propose({ id: seed, key: 'a', value: seed }, target);
      if (!sim.runUntil(() => ready(target), 500)) continue;
      tried++;
      try {
        sim.read(old, 'a');
        sim.runFor(1);
      } catch (e) {
        if (!(e instanceof SafetyViolation) || e.property !== 'linearizable-read') throw e;
        stale++;
      }
    }
    return { stale, tried };
  }

  it('leaseDuringTransfer (lease reads while transferring) is caught as linearizable-read within 40 seeds', () => {
    const r = staleReadsDuringTransfer(true, 40);
    expect(r.tried).toBeGreaterThanOrEqual(30);
    expect(r.stale).toBeGreaterThan(0);
  });

  it('without the bug the same transfers never serve a stale read', () => {
    const r = staleReadsDuringTransfer(false, 40);
    expect(r.tried).toBeGreaterThanOrEqual(30);
    expect(r.stale).toBe(0);
  });
});

// Lease reads are safe only while clocks drift less than the bound in docs/core.md (with the default
// leaseTicks = electionTicks - 2: leaseTicks * (1 + d) < electionTicks * (1 - d), so d < 1/9). The scenario: the
// leader's clock runs slow, the followers' fast; the leader is cut off, the followers elect a new leader that
// commits a write; then the old leader serves a lease read.
describe('clock drift against lease reads', () => {
  function staleLeaseReads(slowRate: number, fastRate: number, seeds: number): { stale: number; tried: number } {
    let stale = 0;
    let tried = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const sim = new Simulation<KvCommand>({ seed, nodes: 3, raft: { readMode: 'lease' }, traceLimit: 0 });
      const ready = (id: string) => {
        const r = sim.node(id).raft;
        return r !== null && r.role === 'leader' && r.commitIndex === r.lastLogIndex;
      };
      expect(sim.runUntil(() => sim.leader() !== null && ready(sim.leader()!.id), 5_000)).toBe(true);
      const old = sim.leader()!;
      for (const n of sim.nodes.values()) n.clockRate = n === old ? slowRate : fastRate;
      sim.runFor(50 + seed); // a few heartbeats at the new rates, ending at varied points of the heartbeat cycle
      sim.isolate(old.id);
      const replaced = () => {
        const l = sim.leader();
        return l !== null && l.id !== old.id && ready(l.id);
      };
      if (!sim.runUntil(replaced, 2_000)) continue;
      const fresh = sim.leader()!.id;
      sim.propose({ id: seed, key: 'a', value: seed }, fresh);
      sim.runUntil(() => ready(fresh) && sim.node(fresh).raft!.commitIndex > 2, 500);
      tried++;
      try {
        sim.read(old.id, 'a');
        sim.runFor(1);
      } catch (e) {
        if (!(e instanceof SafetyViolation) || e.property !== 'linearizable-read') throw e;
        stale++;
      }
    }
    return { stale, tried };
  }

  it('beyond the bound (45% drift) a stale lease read is caught', () => {
    const r = staleLeaseReads(1.45, 0.55, 60);
    expect(r.tried).toBeGreaterThanOrEqual(50);
    expect(r.stale).toBeGreaterThan(0);
  });

  it('within the bound (5% drift) the same scenarios never read stale', () => {
    const r = staleLeaseReads(1.05, 0.95, 60);
    expect(r.tried).toBeGreaterThanOrEqual(50);
    expect(r.stale).toBe(0);
  });
});
