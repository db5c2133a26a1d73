import { describe, expect, it } from 'vitest';
import {
  EventQueue,
  type KvCommand,
  type KvStateMachine,
  Prng,
  runSchedule,
  SafetyChecker,
  SafetyViolation,
  Simulation,
} from '../src/index.js';

let nextId = 1;
const cmd = (key: string, value: number): KvCommand => ({ id: nextId++, key, value });

/** A 3-node cluster with a leader whose no-op has committed. */
function stableCluster(seed: number, options: Partial<ConstructorParameters<typeof Simulation>[0]> = {}) {
  const sim = new Simulation({ seed, nodes: 3, ...options } as ConstructorParameters<typeof Simulation>[0]);
  const ok = sim.runUntil(() => {
    const l = sim.leader();
    return l !== null && l.raft !== null && l.raft.commitIndex >= l.raft.lastLogIndex && l.raft.commitIndex >= 2;
  }, 5_000);
  expect(ok).toBe(true);
  return sim as Simulation<KvCommand>;
}

describe('building blocks', () => {
  it('the generator is a pure function of its seed', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 100 }, () => a.nextU32());
    expect(Array.from({ length: 100 }, () => b.nextU32())).toEqual(xs);
    expect(new Prng(43).nextU32()).not.toBe(xs[0]);
    const r = new Prng(7);
    for (let i = 0; i < 1000; i++) {
      const v = r.int(100, 200);
      expect(v >= 100 && v < 200).toBe(true);
    }
  });

  it('the event queue orders by time, then by scheduling order', () => {
    const q = new EventQueue<{ time: number; seq: number; name: string }>();
    for (const [time, name] of [
      [5, 'a'],
      [1, 'b'],
      [5, 'c'],
      [1, 'd'],
      [3, 'e'],
    ] as const) {
      q.push({ time, seq: 0, name });
    }
    const out: string[] = [];
    for (let e = q.pop(); e !== undefined; e = q.pop()) out.push(e.name);
    expect(out).toEqual(['b', 'd', 'e', 'a', 'c']);
  });

  it('the checker rejects two leaders in one term and two different entries applied at one index', () => {
    const c = new SafetyChecker<string>();
    c.stateChanged('a', 'leader', 3);
    expect(() => c.stateChanged('b', 'leader', 3)).toThrowError(SafetyViolation);
    try {
      c.stateChanged('b', 'leader', 3);
    } catch (e) {
      expect((e as SafetyViolation).property).toBe('election-safety');
    }
    c.proposed('x');
    c.proposed('y');
    c.applied('a', [{ index: 1, term: 1, type: 'command', command: 'x' }]);
    let caught: SafetyViolation | null = null;
    try {
      c.applied('b', [{ index: 1, term: 1, type: 'command', command: 'y' }]);
    } catch (e) {
      caught = e as SafetyViolation;
    }
    expect(caught?.property).toBe('state-machine-safety');
  });

  it('the checker rejects an applied command nobody proposed', () => {
    const c = new SafetyChecker<string>();
    expect(() => c.applied('a', [{ index: 1, term: 1, type: 'command', command: 'ghost' }])).toThrowError(
      /applied-was-proposed/,
    );
  });
});

describe('the simulated cluster', () => {
  it('elects a leader, commits proposals on every node and serves linearizable reads', () => {
    const sim = stableCluster(1);
    const leader = sim.leader()!;
    for (let i = 0; i < 10; i++) expect(sim.propose(cmd('x', i)).ok).toBe(true);
    sim.runFor(200);
    for (const n of sim.nodes.values()) expect((n.sm as KvStateMachine).get('x')).toBe(9);
    const follower = sim.ids().find((id) => id !== leader.id)!;
    const r1 = sim.read(leader.id, 'x');
    const r2 = sim.read(follower, 'x');
    sim.runFor(100);
    expect(sim.reads.get(r1)?.value).toBe(9);
    expect(sim.reads.get(r2)?.value).toBe(9);
  });

  it('a crash loses writes that were not fsynced; the node restarts from exactly its disk', () => {
    const sim = stableCluster(2, { timing: { fsyncMinMs: 50, fsyncMaxMs: 51 } });
    sim.runFor(200);
    const follower = sim.ids().find((id) => id !== sim.leader()!.id)!;
    const before = sim.node(follower).disk.lastIndex;
    sim.propose(cmd('y', 1));
    sim.runFor(20); // delivered to the follower, not yet fsynced there
    expect(sim.node(follower).raft!.lastLogIndex).toBe(before + 1);
    expect(sim.node(follower).disk.lastIndex).toBe(before);
    expect(sim.crash(follower)).toBe(1);
    expect(sim.node(follower).disk.lastIndex).toBe(before);
    sim.restart(follower);
    expect(sim.node(follower).raft!.lastLogIndex).toBe(before);
    sim.runFor(500);
    expect((sim.node(follower).sm as KvStateMachine).get('y')).toBe(1);
  });

  it('an isolated leader is replaced; after healing it follows the new leader', () => {
    const sim = stableCluster(3);
    const old = sim.leader()!.id;
    sim.isolate(old);
    expect(sim.runUntil(() => sim.leader() !== null && sim.leader()!.id !== old, 5_000)).toBe(true);
    const term = sim.leader()!.raft!.currentTerm;
    sim.heal();
    sim.runFor(500);
    expect(sim.node(old).raft!.role).toBe('follower');
    expect(sim.node(old).raft!.currentTerm).toBeGreaterThanOrEqual(term);
  });

  it('a one-way cut from the leader makes the cut-off follower elect; PreVote keeps it from winning', () => {
    const sim = stableCluster(4);
    const leader = sim.leader()!.id;
    const follower = sim.ids().find((id) => id !== leader)!;
    sim.block(leader, follower);
    sim.runFor(2_000);
    // The cut-off node cannot win (the third node still hears from the leader and refuses), and the cluster stays
    // available: proposals commit on the majority.
    expect(sim.propose(cmd('z', 5)).ok).toBe(true);
    sim.runFor(200);
    const third = sim.ids().find((id) => id !== leader && id !== follower)!;
    expect((sim.node(third).sm as KvStateMachine).get('z')).toBe(5);
    expect(sim.network.connected(follower, leader)).toBe(true);
    expect(sim.network.connected(leader, follower)).toBe(false);
  });

  it('catches a lagging node up with a chunked snapshot after the leader compacted its log', () => {
    const sim = stableCluster(5, { raft: { snapshotChunkBytes: 16 } });
    const leader = sim.leader()!.id;
    const lagging = sim.ids().find((id) => id !== leader)!;
    sim.crash(lagging);
    for (let i = 0; i < 30; i++) sim.propose(cmd(`k${i % 4}`, i));
    sim.runFor(300);
    expect(sim.takeSnapshot(leader)).toBe(true);
    // The snapshot is saved at the leader's next fsync; only then is its log compacted.
    sim.runFor(20);
    sim.restart(lagging);
    sim.runFor(1_000);
    const node = sim.node(lagging);
    expect(node.installs).toBe(1);
    expect((node.sm as KvStateMachine).get('k1')).toBe(29);
    expect(sim.checker!.stats.snapshots).toBeGreaterThanOrEqual(2);
  });

  it('removes the leader through joint consensus; the rest elect a new leader at once', () => {
    const sim = stableCluster(6);
    const leader = sim.leader()!.id;
    const r = sim.input(leader, (n) => n.removeServer(leader));
    expect(r.ok).toBe(true);
    expect(sim.runUntil(() => sim.leader() !== null && sim.leader()!.id !== leader, 1_000)).toBe(true);
    expect(sim.leader()!.raft!.config!.voters).not.toContain(leader);
  });

  it('liveness: after a random schedule, a leader emerges, a proposal commits and every request is answered', () => {
    const r = runSchedule({ seed: 99, traceLimit: 0 });
    expect(r.leaderAfterMs).toBeGreaterThanOrEqual(0);
    expect(r.commitAfterMs).toBeGreaterThanOrEqual(r.leaderAfterMs);
    expect(r.answeredAfterMs).toBeGreaterThanOrEqual(r.commitAfterMs);
    expect(r.answeredAfterMs - r.commitAfterMs).toBeLessThanOrEqual(r.answerBoundMs);
    expect(r.sim.requests.size).toBeGreaterThan(0);
    const members = r.sim.quorumLeader()!.raft!.config!;
    const inCluster = [...members.voters, ...members.learners];
    expect(r.sim.unanswered().filter((u) => inCluster.includes(u.node))).toEqual([]);
  });

  // Issue 14, item 4: with 5% message loss, 51 of these 600 follower reads were never answered (a lost
  // ReadIndexRequest or ReadIndexResponse), although the leader stayed put.
  it('answers every follower read despite lost messages (seeds 1-30, 5% loss, 20 reads 50 ms apart)', () => {
    let answered = 0;
    let served = 0;
    let slowest = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const sim = new Simulation<KvCommand>({ seed, nodes: 3, network: { dropRate: 0.05 }, traceLimit: 0 });
      const leader = sim.runUntilStableLeader(5_000);
      expect(leader, `seed ${seed}: no leader`).not.toBeNull();
      const follower = sim.ids().find((id) => id !== leader!.id)!;
      const ids = [];
      for (let i = 0; i < 20; i++) {
        ids.push(sim.read(follower, 'x'));
        sim.runFor(50);
      }
      sim.runFor(30_000);
      expect(sim.leader()?.id, `seed ${seed}: the leader changed`).toBe(leader!.id);
      for (const id of ids) {
        const r = sim.reads.get(id)!;
        if (r.answeredAt === undefined) continue;
        answered++;
        if (r.error === undefined) served++;
        slowest = Math.max(slowest, r.answeredAt - r.issuedAt);
      }
      expect(sim.unanswered(), `seed ${seed}`).toEqual([]);
    }
    expect(answered).toBe(600);
    // Lost messages cost a resend after electionTicks heartbeats (100 ms here), not a failure.
    expect(served).toBeGreaterThanOrEqual(570);
    expect(slowest).toBeLessThan(1_000);
  });

  // Issue 14, item 6: right after heal() the old leader still believes it leads, although a newer term has begun;
  // what is proposed there is lost. quorumLeader() does not pick it; runUntilStableLeader() waits for the real one.
  it('leader() can return a deposed leader after heal(); quorumLeader() and runUntilStableLeader() do not', () => {
    // Without CheckQuorum an isolated leader never steps down by itself; the first seed (of 50) where it is the only
    // node that believes it leads when the partition heals, while a quorum is in a newer term.
    let found: { sim: Simulation<KvCommand>; old: string; term: number } | null = null;
    for (let seed = 1; seed <= 50 && found === null; seed++) {
      const sim = new Simulation<KvCommand>({ seed, nodes: 3, traceLimit: 0, raft: { checkQuorum: false } });
      const first = sim.runUntilStableLeader(5_000)!;
      const old = first.id;
      const term = first.raft!.currentTerm;
      sim.isolate(old);
      // Deposed for real: every other node (a quorum) moved to a newer term, so the old leader can commit nothing.
      const newer = () => sim.ids().every((id) => id === old || sim.node(id).raft!.currentTerm > term);
      expect(sim.runUntil(newer, 2_000)).toBe(true);
      sim.heal();
      if (sim.leader()?.id === old) found = { sim, old, term };
    }
    expect(found).not.toBeNull();
    const { sim, old, term } = found!;
    expect(sim.node(old).raft!.role).toBe('leader');
    expect(sim.quorumLeader()).toBeNull();
    const lost = sim.propose(cmd('deposed', 1), sim.leader()!.id);
    expect(lost.ok).toBe(true);
    const stable = sim.runUntilStableLeader(5_000);
    expect(stable).not.toBeNull();
    expect(stable!.raft!.currentTerm).toBeGreaterThan(term);
    const kept = sim.propose(cmd('kept', 2)); // default target: the quorum leader
    expect(kept.ok).toBe(true);
    sim.runFor(1_000);
    const outcomes = [...sim.requests.values()].map((r) => r.outcome);
    expect(outcomes).toEqual(['lost', 'committed']);
    expect((sim.node(old).sm as KvStateMachine).get('deposed')).toBeUndefined();
    expect((sim.node(old).sm as KvStateMachine).get('kept')).toBe(2);
  });

  it("answers a crashed node's requests DOWN and lists unanswered requests until then", () => {
    const sim = stableCluster(7);
    const leader = sim.leader()!.id;
    sim.isolate(leader);
    const p = sim.propose(cmd('p', 1), leader);
    expect(p.ok).toBe(true);
    const readId = sim.read(leader, 'p');
    sim.runFor(20);
    expect(
      sim
        .unanswered()
        .map((u) => u.kind)
        .sort(),
    ).toEqual(['propose', 'read']);
    sim.crash(leader);
    expect(sim.unanswered()).toEqual([]);
    expect(sim.reads.get(readId)?.error).toBe('DOWN');
    expect([...sim.requests.values()].at(-1)?.outcome).toBe('DOWN');
  });
});

describe('determinism', () => {
  it('the same seed gives a byte-identical action and trace stream; another seed does not', () => {
    const run = (seed: number) => {
      const r = runSchedule({ seed, steps: 200, traceLimit: 100_000, recordActions: true });
      const trace = r.sim
        .recentTrace()
        .map((e) => ({ ...e, detail: typeof e.detail === 'string' ? e.detail : e.detail }));
      return JSON.stringify({ actions: r.sim.actionLog, trace });
    };
    const a = run(2024);
    const b = run(2024);
    expect(a.length).toBeGreaterThan(10_000);
    expect(b).toBe(a);
    expect(run(2025)).not.toBe(a);
  });
});

// The bugs this simulator found in the core (even-sized quorums, a removed leader that never campaigned again, a
// losing candidate committing a stale suffix) are pinned down as hand-written scenarios in packages/core/test
// (config.test.ts, regressions.test.ts): seeds alone would stop reproducing them as soon as the schedule
// generator changes.
