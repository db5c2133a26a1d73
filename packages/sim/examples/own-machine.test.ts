// docs/simulation.md quotes this file: property-testing your own Machine under the built-in fault schedules.
import type { ApplyContext, Machine } from '@raft/runtime';
import { runSchedule } from '@raft/sim';
import fc from 'fast-check';
import { expect, it } from 'vitest';

/** The state, typed with an interface as users write it. */
interface Account {
  balance: number;
  history: number[];
}

export type Op = { deposit: number } | { withdraw: number };

/** A bank account: withdrawals that would overdraw are refused (the output says so), deterministically. */
export class AccountMachine implements Machine<Op | 'balance', number | boolean> {
  private state: Account = { balance: 0, history: [] };

  apply(input: Op | 'balance', ctx: ApplyContext): number | boolean {
    if (ctx.kind !== 'Command' || input === 'balance') return this.state.balance;
    if ('deposit' in input) {
      this.state.balance += input.deposit;
      this.state.history.push(input.deposit);
      return true;
    }
    if (input.withdraw > this.state.balance) return false;
    this.state.balance -= input.withdraw;
    this.state.history.push(-input.withdraw);
    return true;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.state));
  }

  restore(data: unknown): void {
    this.state = JSON.parse(new TextDecoder().decode(data as Uint8Array)) as Account;
  }
}

it('the account machine keeps every safety property under random faults', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
      const report = runSchedule({
        seed,
        steps: 150,
        machine: () => new AccountMachine(),
        // The n-th command; distinct commands must have distinct JSON, hence the sequence number.
        command: (random, n) =>
          random.chance(0.5) ? { deposit: random.int(1, 100), n } : { withdraw: random.int(1, 100), n },
        query: () => 'balance',
      });
      expect(report.committed, `seed ${seed}`).toBeGreaterThan(0);
    }),
    { numRuns: 25 },
  );
});
