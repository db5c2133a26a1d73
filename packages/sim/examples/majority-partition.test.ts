import { type KvCommand, KvStateMachine, Simulation } from '@raft/sim';
import fc from 'fast-check';
import { expect, it } from 'vitest';

const majority = ['n3', 'n4', 'n5'];

it('a majority partition keeps committing', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
      const sim = new Simulation<KvCommand>({ seed, nodes: 5, network: { dropRate: 0.05 } });
      // Every run call checks Raft's safety properties and throws a SafetyViolation the moment one breaks.
      expect(
        sim.runUntil(() => sim.leader() !== null, 5_000),
        `seed ${seed}: no leader`,
      ).toBe(true);
      sim.partition([['n1', 'n2'], majority]);
      const majorityLeads = () => majority.includes(sim.leader()?.id ?? '');
      expect(sim.runUntil(majorityLeads, 10_000), `seed ${seed}: no leader in the majority`).toBe(true);
      const proposed = sim.propose({ id: 1, key: 'x', value: 1 }); // to the leader with the highest term
      expect(proposed.ok, `seed ${seed}: proposal refused`).toBe(true);
      const appliedEverywhere = () =>
        majority.every((id) => {
          const sm = sim.node(id).sm;
          return sm instanceof KvStateMachine && sm.data.get('x') === 1;
        });
      expect(sim.runUntil(appliedEverywhere, 10_000), `seed ${seed}: x = 1 not applied by the majority`).toBe(true);
    }),
    { numRuns: 20 }, // on failure fast-check prints the seed and path that replay it: fc.assert(..., { seed, path })
  );
});
