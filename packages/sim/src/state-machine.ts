/**
 * The default key-value machine the random schedules run (a runtime `Machine`, like any user's), and the reference
 * replay the checker compares snapshots with.
 *
 * @packageDocumentation
 */
import type { Index } from '@raft/core';
import {
  type ApplyContext,
  type Command,
  isThenable,
  type JsonValue,
  type Machine,
  ReplicatedMachine,
} from '@raft/runtime';

/**
 * A machine as the {@link SafetyChecker} replays it for reference: commands applied in log order, and snapshot bytes
 * to compare. The simulator builds one from your {@link Machine} (with the runtime's exactly-once sessions), so
 * the bytes are the ones every node's runtime snapshots.
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

/**
 * The {@link StateMachine} of the runtime's replicated state (your machine plus exactly-once sessions), for the
 * checker's reference replays. The machine's `snapshot()` must answer synchronously in the simulator.
 */
export class ReferenceMachine implements StateMachine<Command> {
  private readonly rm: ReplicatedMachine;

  /** @param machine - a fresh machine of the kind the nodes run */
  constructor(machine: Machine) {
    this.rm = new ReplicatedMachine(machine);
  }

  /** {@inheritDoc StateMachine.apply} */
  apply(command: Command, index: Index): void {
    this.rm.applyCommand(command, index, false);
  }

  /** {@inheritDoc StateMachine.snapshot} */
  snapshot(): Uint8Array {
    const s = this.rm.snapshot();
    if (isThenable(s)) throw new Error('the simulator needs a Machine whose snapshot() answers synchronously');
    return s;
  }

  /** {@inheritDoc StateMachine.restore} */
  restore(data: Uint8Array): void {
    this.rm.restore(data);
  }
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
export class KvStateMachine implements Machine<KvCommand | string, number | null> {
  /** The key-value map. */
  readonly data = new Map<string, number>();
  /** How many commands were applied (including those folded into a restored snapshot). */
  count = 0;
  /** FNV-1a style digest over (index, id) of every applied command. */
  digest = 0x811c9dc5;

  /** A command sets a key (returns null); a read's input is a key, and returns its value (null when unset). */
  apply(input: KvCommand | string, ctx: ApplyContext): number | null {
    if (ctx.kind !== 'Command') return this.data.get(String(input)) ?? null;
    const command = input as KvCommand;
    const index = ctx.index;
    this.data.set(command.key, command.value);
    this.count++;
    let h = this.digest;
    h = Math.imul(h ^ (index & 0xffff), 0x01000193);
    h = Math.imul(h ^ (index >>> 16), 0x01000193);
    h = Math.imul(h ^ (command.id & 0xffff), 0x01000193);
    h = Math.imul(h ^ (command.id >>> 16), 0x01000193);
    this.digest = h >>> 0;
    return null;
  }

  /** The whole state as bytes (deterministic: keys sorted). */
  snapshot(): Uint8Array {
    const keys = [...this.data.keys()].sort();
    const kv: [string, number][] = keys.map((k) => [k, this.data.get(k) as number]);
    return encoder.encode(JSON.stringify({ count: this.count, digest: this.digest, kv }));
  }

  /** Replaces the state with what {@link KvStateMachine.snapshot} returned. */
  restore(data: Uint8Array | JsonValue): void {
    if (!(data instanceof Uint8Array)) throw new Error('KvStateMachine snapshots are bytes');
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
