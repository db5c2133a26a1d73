/**
 * The state machine interface the simulator drives, and the default key-value machine used by the random schedules.
 *
 * @packageDocumentation
 */
import type { Index } from '@raft/core';

/**
 * A replicated state machine as the simulator sees it. Implement it to run your own application logic inside the
 * simulator.
 *
 * Requirements: `apply` must be deterministic; `snapshot` must serialize deterministically (two machines that applied
 * the same commands produce byte-identical snapshots), because the {@link SafetyChecker} compares snapshot bytes with
 * a reference machine replaying the committed log; `restore` must reproduce exactly the state that was snapshotted.
 *
 * @typeParam C - the command type carried in log entries
 */
export interface StateMachine<C> {
  /** Applies one committed command. `index` is its log index (commands arrive in increasing index order). */
  apply(command: C, index: Index): void;
  /** Serializes the whole state. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot produced by {@link StateMachine.snapshot}. */
  restore(data: Uint8Array): void;
}

/** The command of the default key-value state machine: "set `key` to `value`", with a unique `id` per proposal. */
export interface KvCommand {
  /** Unique per proposal, so the checker can tell whether an applied command was proposed (and applied once). */
  readonly id: number;
  /** The key to set. */
  readonly key: string;
  /** The value to store. */
  readonly value: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The default state machine: a map from string keys to numbers, plus a count of applied commands and a running
 * digest over (index, id) of every applied command, so that two machines are equal only if they applied the same
 * commands at the same indexes in the same order.
 */
export class KvStateMachine implements StateMachine<KvCommand> {
  /** The key-value map. */
  readonly data = new Map<string, number>();
  /** How many commands were applied (including those folded into a restored snapshot). */
  count = 0;
  /** FNV-1a style digest over (index, id) of every applied command. */
  digest = 0x811c9dc5;

  /** {@inheritDoc StateMachine.apply} */
  apply(command: KvCommand, index: Index): void {
    this.data.set(command.key, command.value);
    this.count++;
    let h = this.digest;
    h = Math.imul(h ^ (index & 0xffff), 0x01000193);
    h = Math.imul(h ^ (index >>> 16), 0x01000193);
    h = Math.imul(h ^ (command.id & 0xffff), 0x01000193);
    h = Math.imul(h ^ (command.id >>> 16), 0x01000193);
    this.digest = h >>> 0;
  }

  /** {@inheritDoc StateMachine.snapshot} */
  snapshot(): Uint8Array {
    const keys = [...this.data.keys()].sort();
    const kv: [string, number][] = keys.map((k) => [k, this.data.get(k) as number]);
    return encoder.encode(JSON.stringify({ count: this.count, digest: this.digest, kv }));
  }

  /** {@inheritDoc StateMachine.restore} */
  restore(data: Uint8Array): void {
    const parsed = JSON.parse(decoder.decode(data)) as { count: number; digest: number; kv: [string, number][] };
    this.data.clear();
    for (const [k, v] of parsed.kv) this.data.set(k, v);
    this.count = parsed.count;
    this.digest = parsed.digest;
  }

  /** @returns the value of `key`, or undefined. */
  get(key: string): number | undefined {
    return this.data.get(key);
  }
}

/** A canonical string for a {@link KvCommand} (used as its identity by the checker). */
export function kvCommandKey(command: KvCommand): string {
  return `${command.id}:${command.key}=${command.value}`;
}

/** Makes the `id`-th command of a simulation: a small key space so that writes overwrite each other. */
export function makeKvCommand(id: number, random: () => number): KvCommand {
  return { id, key: `k${Math.floor(random() * 8)}`, value: Math.floor(random() * 1000) };
}
