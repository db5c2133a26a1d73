/**
 * The Machine interface accepts the state types users naturally write. A state declared with an `interface` has no
 * implicit index signature, so a snapshot type of `JsonValue` rejected it (TS2322); this file is type-checked by the
 * package's `typecheck` script (tsconfig.test.json), so the old signature fails `pnpm typecheck` here.
 */
import { describe, expect, it } from 'vitest';
import { type ApplyContext, type Machine, ReplicatedMachine } from '../src/index.js';

interface Account {
  owner: string;
  balance: number;
  history: readonly { amount: number; at: number }[];
}

interface BankState {
  accounts: Account[];
  nextId: number;
}

type BankInput = { Deposit: { owner: string; amount: number } } | { Balance: string };

/** Default type parameters: `snapshot()` returns an interface-typed value. */
class Bank implements Machine<BankInput, number> {
  state: BankState = { accounts: [], nextId: 1 };
  apply(input: BankInput, ctx: ApplyContext): number {
    if ('Balance' in input) return this.state.accounts.find((a) => a.owner === input.Balance)?.balance ?? 0;
    let account = this.state.accounts.find((a) => a.owner === input.Deposit.owner);
    if (!account) {
      account = { owner: input.Deposit.owner, balance: 0, history: [] };
      this.state.accounts.push(account);
      this.state.nextId++;
    }
    account.balance += input.Deposit.amount;
    account.history = [...account.history, { amount: input.Deposit.amount, at: ctx.index }];
    return account.balance;
  }
  snapshot(): BankState {
    return structuredClone(this.state);
  }
  restore(snapshot: BankState): void {
    this.state = snapshot;
  }
}

/** The snapshot type given explicitly, and produced asynchronously. */
class AsyncBank implements Machine<BankInput, number, BankState> {
  private readonly bank = new Bank();
  get state(): BankState {
    return this.bank.state;
  }
  apply(input: BankInput, ctx: ApplyContext): number {
    return this.bank.apply(input, ctx);
  }
  snapshot(): Promise<BankState> {
    return Promise.resolve(this.bank.snapshot());
  }
  restore(snapshot: BankState): void {
    this.bank.restore(snapshot);
  }
}

describe('Machine typing', () => {
  it('an interface-typed state snapshots and restores through the replicated machine', async () => {
    for (const make of [(): Bank | AsyncBank => new Bank(), () => new AsyncBank()]) {
      const source = new ReplicatedMachine(make());
      const deposit = (owner: string, amount: number) => JSON.stringify({ Deposit: { owner, amount } });
      source.applyCommand({ input: deposit('ann', 5) }, 1, false);
      source.applyCommand({ input: deposit('bob', 7), clientId: 'c1', seq: 1 }, 2, false);
      source.applyCommand({ input: deposit('ann', 3) }, 3, false);
      const copy = make();
      new ReplicatedMachine(copy).restore(await source.snapshot());
      expect(copy.state).toEqual({
        accounts: [
          {
            owner: 'ann',
            balance: 8,
            history: [
              { amount: 5, at: 1 },
              { amount: 3, at: 3 },
            ],
          },
          { owner: 'bob', balance: 7, history: [{ amount: 7, at: 2 }] },
        ],
        nextId: 3,
      });
    }
  });
});
