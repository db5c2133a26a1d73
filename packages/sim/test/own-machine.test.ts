// A machine that is not deterministic must be caught by the checker under the built-in schedules.
import type { ApplyContext } from '@raft/runtime';
import { runSchedule } from '@raft/sim';
import { expect, it } from 'vitest';
import { AccountMachine, type Op } from '../examples/own-machine.test.js';

it('a machine that is not deterministic is caught (each instance adds its own bonus to deposits)', () => {
  let instances = 0;
  class Divergent extends AccountMachine {
    private readonly bonus = instances++ % 2;
    override apply(input: Op | 'balance', ctx: ApplyContext): number | boolean {
      const out = super.apply(input, ctx);
      if (ctx.kind === 'Command' && input !== 'balance' && 'deposit' in input) {
        super.apply({ deposit: this.bonus }, ctx);
      }
      return out;
    }
  }
  let caught: unknown = null;
  for (let seed = 1; seed <= 20 && caught === null; seed++) {
    try {
      runSchedule({
        seed,
        steps: 150,
        machine: () => new Divergent(),
        command: (random, n) => ({ deposit: random.int(1, 100), n }),
        query: () => 'balance',
      });
    } catch (e) {
      caught = e;
    }
  }
  expect(String(caught)).toMatch(/snapshot-safety|linearizable-read/);
});
