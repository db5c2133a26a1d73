import { type KvCommand, Simulation } from '@raft/sim';
import fc from 'fast-check';
import { expect, it } from 'vitest';

it('a majority partition elects a new leader and keeps committing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
      const sim = new Simulation<KvCommand>({ seed, nodes: 5, network: { dropRate: 0.05 }, traceLimit: 0 });
      // Not sim.leader(): after a fault that may be a deposed leader, and what it accepts is lost.
      const first = sim.runUntilStableLeader(5_000);
      expect(first, `seed ${seed}: no leader`).not.toBeNull();
      const others = sim.ids().filter((id) => id !== first?.id);
      const majority = others.slice(1);
      sim.partition([[first?.id ?? '', others[0] ?? ''], majority]); // the old leader ends up in the minority
      sim.runFor(1_000); // the checker throws a SafetyViolation from here if anything breaks
      const leader = sim.runUntilStableLeader(5_000);
      expect(majority, `seed ${seed}: the majority elected nobody`).toContain(leader?.id);
      expect(sim.propose({ id: 1, key: 'x', value: 1 }).ok).toBe(true); // goes to sim.quorumLeader()
      sim.runUntil(() => sim.unanswered().length === 0, 2_000);
      expect(
        [...sim.requests.values()].map((r) => r.outcome),
        `seed ${seed}`,
      ).toEqual(['committed']);
    }),
    { numRuns: 20 },
  );
});
