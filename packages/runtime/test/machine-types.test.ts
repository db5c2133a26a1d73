/**
 * The Machine interface accepts the state types users naturally write. A state declared with an `interface` has no
 * implicit index signature, so a snapshot type of `JsonValue` rejected it (TS2322); this file is type-checked by the
 * package's `typecheck` script (tsconfig.test.json), so the old signature fails `pnpm typecheck` here.
 */
import { decode, encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ApplyContext, type Machine, ReplicatedMachine } from '../src/index.js';
import { encodeBytesSnapshot } from '../src/machine.js';

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

describe('encodeBytesSnapshot', () => {
  it('decodes as MessagePack to what the general encoder gives for { v, s, b }', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 70_000 }),
        fc.array(fc.tuple(fc.string(), fc.nat(), fc.option(fc.string()), fc.option(fc.string())), { maxLength: 20 }),
        (bytes, sessions) => {
          const direct = decode(encodeBytesSnapshot(bytes, sessions)) as Record<string, unknown>;
          const general = decode(encode({ v: 2, b: bytes, s: sessions })) as Record<string, unknown>;
          expect(direct).toEqual(general);
          expect(Object.keys(direct).sort()).toEqual(['b', 's', 'v']);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('round-trips a byte-snapshot machine through the replicated machine', async () => {
    const state: { bytes: Uint8Array } = { bytes: new Uint8Array([1, 2, 3]) };
    const make = (): Machine<unknown, unknown, Uint8Array> => ({
      apply: () => null,
      snapshot: () => state.bytes,
      restore: (b) => {
        state.bytes = b;
      },
    });
    const source = new ReplicatedMachine(make());
    source.applyCommand({ input: '1', clientId: 'c', seq: 1 }, 1, false);
    const data = await source.snapshot();
    state.bytes = new Uint8Array();
    const copy = new ReplicatedMachine(make());
    copy.restore(data);
    expect([...state.bytes]).toEqual([1, 2, 3]);
    expect(copy.lookup('c', 1)).toEqual(source.lookup('c', 1));
  });
});
